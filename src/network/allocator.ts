/**
 * Address allocations (`ip_allocations`): a row per address handed out, keyed by network and
 * address, written before any wiring, so an address is never handed out twice. Released with the
 * endpoint that holds it (records.ts `deleteEndpoints`) or with the network.
 */
import type { Db } from '../metadata/db.js';
import { conflict, invalidArgument } from '../base/errors.js';
import { contains, freeAddress, intToIp, ipToInt, parseCidr } from './ipam.js';
import { bigToIp6, contains6, freeAddress6, ip6ToBig, isV6, parseCidr6 } from './ipam6.js';
import type { IpamConfig, NetworkRecord } from './records.js';

/** A network's IPv4 subnet (the first) and IPv6 subnet (if any). */
export const v4Config = (n: NetworkRecord): IpamConfig | undefined => n.IPAM.Config.find((c) => !isV6(c.Subnet));
export const v6Config = (n: NetworkRecord): IpamConfig | undefined => n.IPAM.Config.find((c) => isV6(c.Subnet));

export class AddressAllocator {
  /** `db` has the network schema (records.ts NetworkStore made it). */
  constructor(private readonly db: Db) {}

  private rows(networkId: string): string[] {
    const rows = this.db.prepare('SELECT ip FROM ip_allocations WHERE network_id = ?').all(networkId) as Array<{
      ip: string;
    }>;
    return rows.map((r) => r.ip);
  }

  /** The IPv4 addresses taken on a network: allocations, the gateway, the auxiliary addresses. */
  private used(networkId: string, c: IpamConfig): Set<number> {
    const taken = [...this.rows(networkId), c.Gateway, ...Object.values(c.AuxiliaryAddresses ?? {})];
    return new Set(taken.filter((ip) => !isV6(ip)).map(ipToInt));
  }

  /** Whether `ip` is in network `n`'s subnet, not its gateway nor an auxiliary address, and free. */
  free(n: NetworkRecord, ip: string): boolean {
    const c = v4Config(n);
    if (!c || !contains(parseCidr(c.Subnet), ipToInt(ip))) return false;
    return !this.used(n.Id, c).has(ipToInt(ip));
  }

  /** An IPv6 address on `n` for `owner`: `requested` if in its IPv6 subnet and free, else the lowest free one. */
  allocate6(n: NetworkRecord, owner: string, requested?: string): string {
    const c = v6Config(n);
    if (!c) throw invalidArgument(`network ${n.Name} has no IPv6 subnet`);
    const subnet = parseCidr6(c.Subnet);
    const taken = [...this.rows(n.Id), c.Gateway, ...Object.values(c.AuxiliaryAddresses ?? {})];
    const used = new Set(taken.filter(isV6).map(ip6ToBig));
    let ip: bigint | null;
    if (requested) {
      ip = ip6ToBig(requested);
      if (!contains6(subnet, ip))
        throw invalidArgument(`invalid address ${requested}: not in network ${n.Name}'s subnet ${c.Subnet}`);
      if (used.has(ip)) throw conflict(`Address already in use: ${requested} on network ${n.Name}`);
    } else {
      ip = freeAddress6(subnet, c.IPRange ? parseCidr6(c.IPRange) : subnet, used);
      if (ip === null) throw conflict(`no available IPv6 addresses on network ${n.Name}`);
    }
    const text = bigToIp6(ip);
    this.db.prepare('INSERT INTO ip_allocations (network_id, ip, owner) VALUES (?, ?, ?)').run(n.Id, text, owner);
    return text;
  }

  /** An address on `n` for `owner`: `requested` if it is in the subnet and free, else the lowest free one. */
  allocate(n: NetworkRecord, owner: string, requested?: string): string {
    const c = v4Config(n);
    if (!c) throw invalidArgument(`network ${n.Name} has no IPv4 subnet`);
    const subnet = parseCidr(c.Subnet);
    const used = this.used(n.Id, c);
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
