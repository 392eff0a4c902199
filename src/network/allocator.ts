/**
 * Address allocations (`ip_allocations`): a row per address handed out, keyed by network and
 * address, written before any wiring, so an address is never handed out twice. Released with the
 * endpoint that holds it (records.ts `deleteEndpoints`) or with the network.
 */
import type { Db } from '../metadata/db.js';
import { conflict, invalidArgument } from '../base/errors.js';
import { contains, freeAddress, intToIp, ipToInt, parseCidr } from './ipam.js';
import type { NetworkRecord } from './records.js';

export class AddressAllocator {
  /** `db` has the network schema (records.ts NetworkStore made it). */
  constructor(private readonly db: Db) {}

  private used(networkId: string): Set<number> {
    const rows = this.db.prepare('SELECT ip FROM ip_allocations WHERE network_id = ?').all(networkId) as Array<{
      ip: string;
    }>;
    return new Set(rows.map((r) => ipToInt(r.ip)));
  }

  /** Whether `ip` is in network `n`'s subnet, not its gateway, and free. */
  free(n: NetworkRecord, ip: string): boolean {
    const c = n.IPAM.Config[0]!;
    if (!contains(parseCidr(c.Subnet), ipToInt(ip)) || ipToInt(ip) === ipToInt(c.Gateway)) return false;
    return !this.db.prepare('SELECT 1 FROM ip_allocations WHERE network_id = ? AND ip = ?').get(n.Id, ip);
  }

  /** An address on `n` for `owner`: `requested` if it is in the subnet and free, else the lowest free one. */
  allocate(n: NetworkRecord, owner: string, requested?: string): string {
    const c = n.IPAM.Config[0]!;
    const subnet = parseCidr(c.Subnet);
    const used = this.used(n.Id);
    used.add(ipToInt(c.Gateway));
    let ip: number | null;
    if (requested) {
      ip = ipToInt(requested);
      if (!contains(subnet, ip))
        throw invalidArgument(`invalid address ${requested}: not in network ${n.Name}'s subnet ${c.Subnet}`);
      if (used.has(ip)) throw conflict(`Address already in use: ${requested} on network ${n.Name}`);
    } else {
      ip = freeAddress(subnet, c.IPRange ? parseCidr(c.IPRange) : subnet, used);
      if (ip === null) throw conflict(`no available IPv4 addresses on network ${n.Name}`);
    }
    this.db
      .prepare('INSERT INTO ip_allocations (network_id, ip, owner) VALUES (?, ?, ?)')
      .run(n.Id, intToIp(ip), owner);
    return intToIp(ip);
  }
}
