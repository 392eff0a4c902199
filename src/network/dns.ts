/**
 * The name server of user-defined networks: one UDP socket per network on its gateway address,
 * port 53 (containers' resolv.conf names it). It answers A and AAAA queries for the containers
 * the asking container can see (the manager's `resolve`: by name, hostname, alias, short id,
 * link alias, `name.network`, in any case) from the live tables, so a name goes away when its
 * container leaves and a rename shows at once. Names with a dot it does not know go to the
 * host's name servers; a single-label name it does not know is NXDOMAIN at once.
 */
import { createSocket, type Socket } from 'node:dgram';
import { ip6ToBig } from './ipam6.js';
import { readFileSync } from 'node:fs';
import { log } from '../base/log.js';
import { errorMessage } from '../base/errors.js';
import { systemClock, type Clock } from '../base/clock.js';

const TYPE_A = 1;
const TYPE_AAAA = 28;
const CLASS_IN = 1;

/** A name's addresses, by family. */
export interface Addresses {
  v4: string[];
  v6: string[];
}

export interface Question {
  id: number;
  /** the name asked, in lower case */
  name: string;
  /** the name as asked (the network part of `name.network` is compared exactly, as dockerd does) */
  asked: string;
  type: number;
  /** the question section's bytes, echoed in the answer */
  raw: Buffer;
  rd: boolean;
}

/** Parses a query's header and first question; null when it is not one. */
export function parseQuery(msg: Buffer): Question | null {
  if (msg.length < 12) return null;
  const flags = msg.readUInt16BE(2);
  if (flags & 0x8000 || msg.readUInt16BE(4) < 1) return null; // a response, or no question
  const labels: string[] = [];
  let o = 12;
  for (;;) {
    if (o >= msg.length) return null;
    const len = msg[o]!;
    if (len === 0) break;
    if (len & 0xc0 || o + 1 + len > msg.length) return null; // no compression in questions
    labels.push(msg.subarray(o + 1, o + 1 + len).toString('latin1'));
    o += 1 + len;
  }
  if (o + 5 > msg.length) return null;
  const type = msg.readUInt16BE(o + 1);
  return {
    id: msg.readUInt16BE(0),
    name: labels.join('.').toLowerCase(),
    asked: labels.join('.'),
    type,
    raw: msg.subarray(12, o + 5),
    rd: !!(flags & 0x0100),
  };
}

/**
 * An answer to `q`: `rcode` 0 with A records for `ips` (AAAA records for `ips6` to an AAAA question,
 * none for other types), or 3 (NXDOMAIN) / 2 (SERVFAIL).
 */
export function answer(
  q: Question,
  ips: readonly string[],
  rcode = 0,
  ttl = 600,
  ips6: readonly string[] = [],
): Buffer {
  const records = rcode !== 0 ? [] : q.type === TYPE_A ? ips : q.type === TYPE_AAAA ? ips6 : [];
  const head = Buffer.alloc(12);
  head.writeUInt16BE(q.id, 0);
  head.writeUInt16BE(0x8000 | 0x0400 | (q.rd ? 0x0100 : 0) | 0x0080 | rcode, 2); // QR, AA, RD echoed, RA
  head.writeUInt16BE(1, 4);
  head.writeUInt16BE(records.length, 6);
  const rrs = records.map((ip) => {
    const v6 = q.type === TYPE_AAAA;
    const rr = Buffer.alloc(v6 ? 28 : 16);
    rr.writeUInt16BE(0xc00c, 0); // the name: a pointer to the question's
    rr.writeUInt16BE(v6 ? TYPE_AAAA : TYPE_A, 2);
    rr.writeUInt16BE(CLASS_IN, 4);
    rr.writeUInt32BE(ttl, 6);
    rr.writeUInt16BE(v6 ? 16 : 4, 10);
    if (v6) {
      const n = ip6ToBig(ip);
      for (let i = 0; i < 16; i++) rr.writeUInt8(Number((n >> BigInt(120 - 8 * i)) & 0xffn), 12 + i);
    } else ip.split('.').forEach((b, i) => rr.writeUInt8(Number(b), 12 + i));
    return rr;
  });
  return Buffer.concat([head, q.raw, ...rrs]);
}

/** The host's name servers (not loopback ones: containers cannot reach those). */
export function upstreamServers(): string[] {
  try {
    return readFileSync('/etc/resolv.conf', 'utf8')
      .split('\n')
      .map((l) => /^\s*nameserver\s+(\S+)/.exec(l)?.[1])
      .filter((s): s is string => !!s && !s.startsWith('127.') && s.includes('.'));
  } catch {
    return [];
  }
}

/** One network's server. `lookup(name, client)`: the addresses `name` has for the container at address `client`. */
export class NetworkDns {
  private sock: Socket | null = null;

  constructor(
    private readonly address: string,
    private readonly lookup: (name: string, client: string) => Addresses,
    private readonly clock: Clock = systemClock,
  ) {}

  async start(): Promise<void> {
    const sock = createSocket({ type: 'udp4', reuseAddr: true });
    sock.on('message', (msg, from) => void this.handle(msg, from.address, from.port));
    sock.on('error', (e) => log.warn('network dns error', { address: this.address, err: errorMessage(e) }));
    await new Promise<void>((resolve, reject) => {
      sock.once('error', reject);
      sock.bind(53, this.address, () => {
        sock.off('error', reject);
        resolve();
      });
    });
    this.sock = sock;
  }

  close(): void {
    this.sock?.close();
    this.sock = null;
  }

  private async handle(msg: Buffer, host: string, port: number): Promise<void> {
    const q = parseQuery(msg);
    if (!q || !this.sock) return;
    const name = q.name.replace(/\.$/, '');
    const ips = this.lookup(q.asked.replace(/\.$/, ''), host);
    // a known name answers itself, with the records of the question's type (none: NODATA)
    if (ips.v4.length || ips.v6.length) return this.reply(answer(q, ips.v4, 0, 600, ips.v6), host, port);
    if (!name.includes('.')) return this.reply(answer(q, [], 3), host, port);
    this.reply((await forward(msg, this.clock)) ?? answer(q, [], 2), host, port);
  }

  private reply(b: Buffer, host: string, port: number): void {
    this.sock?.send(b, port, host);
  }
}

/** Relays a query to the first host name server that answers within 2 s (by `clock`). */
function forward(msg: Buffer, clock: Clock): Promise<Buffer | null> {
  const servers = upstreamServers();
  if (!servers.length) return Promise.resolve(null);
  return new Promise((resolve) => {
    const s = createSocket('udp4');
    const done = (b: Buffer | null) => {
      t.cancel();
      s.close();
      resolve(b);
    };
    const t = clock.setTimeout(() => done(null), 2000);
    s.on('message', (b) => done(b));
    s.on('error', () => done(null));
    s.send(msg, 53, servers[0]!);
  });
}

/**
 * The name servers of the networks that have one, by network id. `resolve(networkId, name, client)`
 * reads the live endpoints and containers, so a name goes with its container. A server that cannot start (the address
 * is taken) is a warning: the network works without names.
 */
export class NameService {
  private readonly servers = new Map<string, NetworkDns>();

  constructor(
    private readonly resolve: (networkId: string, name: string, client: string) => Addresses,
    private readonly clock: Clock = systemClock,
  ) {}

  /** Serves network `networkId`'s names on `address`:53 (idempotent). */
  async serve(networkId: string, networkName: string, address: string): Promise<void> {
    if (this.servers.has(networkId)) return;
    const d = new NetworkDns(address, (name, client) => this.resolve(networkId, name, client), this.clock);
    try {
      await d.start();
      this.servers.set(networkId, d);
    } catch (e) {
      log.warn('name service not available on network', { network: networkName, err: errorMessage(e) });
    }
  }

  stop(networkId: string): void {
    this.servers.get(networkId)?.close();
    this.servers.delete(networkId);
  }

  close(): void {
    for (const d of this.servers.values()) d.close();
    this.servers.clear();
  }
}
