/**
 * Published ports: the `port_bindings` table and the choice of a host port (Docker's ephemeral
 * range when none is given). A port is taken when one of berth's bindings holds it on the same
 * or a wildcard address, or when the host has it bound (a bind test). The DNAT rules are
 * rendered from these rows into the bridge driver's nftables table (nft.ts, bridge.ts).
 */
import type { Db } from '../metadata/db.js';
import { ipToInt } from './ipam.js';
import type { PortBinding } from './records.js';

/** Docker's ephemeral range, where a binding without a host port gets one. */
export const EPHEMERAL = { lo: 49153, hi: 60999 };

/** The address a binding listens on: '' and `0.0.0.0` are every address; others must be IPv4 addresses. */
export function bindAddress(hostIp: string): string {
  if (hostIp === '' || hostIp === '0.0.0.0') return '0.0.0.0';
  ipToInt(hostIp); // InvalidArgument when it is not one
  return hostIp;
}

/** The host ports a request may take, first to last: `8080`, `8000-8010`, '' (the ephemeral range). */
export function hostPortRange(hostPort: string): [number, number] {
  if (!hostPort) return [EPHEMERAL.lo, EPHEMERAL.hi];
  const [lo, hi] = hostPort.split('-').map(Number) as [number, number?];
  return [lo, hi ?? lo];
}

/**
 * The first port of `range` that is neither `taken` (berth's bindings) nor busy on the host
 * (`free` false); else why the last one tried could not be had.
 */
export async function pickHostPort(
  [lo, last]: [number, number],
  taken: (port: number) => boolean,
  free: (port: number) => Promise<boolean>,
): Promise<{ port: number } | { error: string }> {
  let error = '';
  for (let port = lo; port <= last; port++) {
    if (taken(port)) {
      error = 'port is already allocated';
      continue;
    }
    if (!(await free(port))) {
      error = 'address already in use';
      continue;
    }
    return { port };
  }
  return { error: error || 'no free port' };
}

const docs = (rows: unknown): PortBinding[] =>
  (rows as Array<{ doc: string }>).map((r) => JSON.parse(r.doc) as PortBinding);

/** The `port_bindings` table (`db` has the network schema: records.ts NetworkStore made it). */
export class PortTable {
  constructor(private readonly db: Db) {}

  list(containerId?: string): PortBinding[] {
    if (containerId)
      return docs(this.db.prepare('SELECT doc FROM port_bindings WHERE container_id = ?').all(containerId));
    return docs(this.db.prepare('SELECT doc FROM port_bindings').all());
  }

  /** Whether a binding holds `port` on `hostIp`, or on any address when either is the wildcard. */
  taken(proto: 'tcp' | 'udp', hostIp: string, port: number): boolean {
    return !!this.db
      .prepare(
        'SELECT 1 FROM port_bindings WHERE proto = ? AND host_port = ? ' +
          "AND (host_ip = ? OR host_ip = '0.0.0.0' OR ? = '0.0.0.0')",
      )
      .get(proto, port, hostIp, hostIp);
  }

  insert(b: PortBinding): void {
    this.db
      .prepare('INSERT INTO port_bindings (proto, host_ip, host_port, container_id, doc) VALUES (?, ?, ?, ?, ?)')
      .run(b.proto, b.hostIp, b.hostPort, b.containerId, JSON.stringify(b));
  }

  /** Drops a container's bindings; whether it had any. */
  release(containerId: string): boolean {
    return this.db.prepare('DELETE FROM port_bindings WHERE container_id = ?').run(containerId).changes > 0;
  }
}
