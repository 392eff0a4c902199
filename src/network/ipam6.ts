/**
 * IPv6 address math (pure), the counterpart of ipam.ts for a network's IPv6 subnet: parse and
 * print addresses (RFC 5952 text), CIDRs, the gateway (the subnet's first address unless given),
 * and the lowest free address. dockerd has no default IPv6 pool: a network with `EnableIPv6`
 * names its subnet.
 */
import { isIPv6 } from 'node:net';
import { conflict, invalidArgument, permissionDenied } from '../base/errors.js';

export interface Cidr6 {
  base: bigint;
  prefix: number;
}

const ALL = (1n << 128n) - 1n;

/** An IPv6 address (any valid text, IPv4-mapped tail included) as a 128-bit number. */
export function ip6ToBig(ip: string): bigint {
  if (!isIPv6(ip) || ip.includes('%')) throw invalidArgument(`invalid IPv6 address: ${ip}`);
  let text = ip;
  const v4 = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (v4) {
    const [a, b, c, d] = v4.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, v4.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = '', tail] = text.split('::');
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  return groups.reduce((n, g) => (n << 16n) | BigInt(parseInt(g, 16)), 0n);
}

/** RFC 5952 text: lower case, no leading zeros, the longest run (2+) of zero groups as `::`. */
export function bigToIp6(n: bigint): string {
  const g = Array.from({ length: 8 }, (_, i) => Number((n >> BigInt(112 - 16 * i)) & 0xffffn));
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
    i = j;
  }
  const hex = g.map((x) => x.toString(16));
  if (best < 0) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
}

const mask6 = (prefix: number): bigint => (ALL << BigInt(128 - prefix)) & ALL;

export function parseCidr6(text: string): Cidr6 {
  const m = /^([0-9A-Fa-f:.]+)\/(\d{1,3})$/.exec(text.trim());
  if (!m || Number(m[2]) > 128) throw invalidArgument(`invalid CIDR address: ${text}`);
  const prefix = Number(m[2]);
  return { base: ip6ToBig(m[1]!) & mask6(prefix), prefix };
}

export const cidr6Text = (c: Cidr6): string => `${bigToIp6(c.base)}/${c.prefix}`;
export const contains6 = (c: Cidr6, ip: bigint): boolean => (ip & mask6(c.prefix)) === c.base;
export const overlaps6 = (a: Cidr6, b: Cidr6): boolean => contains6(a, b.base) || contains6(b, a.base);
export const isV6 = (cidrOrIp: string): boolean => cidrOrIp.includes(':');

/** What `network create` asks of IPAM for the IPv6 subnet. */
export interface PoolRequest6 {
  Subnet: string;
  Gateway?: string;
  IPRange?: string;
  AuxiliaryAddresses?: Record<string, string>;
}

/**
 * The IPv6 pool of a new network (pure): the subnet asked for, checked against the other networks'
 * IPv6 subnets; the gateway (first address unless given), the ip-range and auxiliary addresses
 * checked to be inside it. The subnet keeps the text it was given in, as dockerd shows it.
 */
export function planPool6(
  want: PoolRequest6,
  others: ReadonlyArray<{ name: string; subnet: string }>,
): { Subnet: string; Gateway: string; IPRange?: string; AuxiliaryAddresses?: Record<string, string> } {
  const subnet = parseCidr6(want.Subnet);
  if (subnet.prefix > 126) throw invalidArgument(`invalid subnet ${want.Subnet}: too small for a network`);
  const clash = others.find((o) => overlaps6(parseCidr6(o.subnet), subnet));
  if (clash) {
    throw conflict(
      `invalid pool request: Pool overlaps with other one on this address space (${clash.name} uses ${clash.subnet})`,
    );
  }
  const gateway = want.Gateway ? ip6ToBig(want.Gateway) : subnet.base + 1n;
  if (!contains6(subnet, gateway))
    throw invalidArgument(`failed to allocate gateway (${want.Gateway}): Requested address is out of range`);
  if (want.IPRange) {
    const r = parseCidr6(want.IPRange);
    if (!contains6(subnet, r.base) || r.prefix < subnet.prefix)
      throw invalidArgument(`invalid ip-range ${want.IPRange}: not inside subnet ${cidr6Text(subnet)}`);
  }
  for (const [k, a] of Object.entries(want.AuxiliaryAddresses ?? {}))
    if (!contains6(subnet, ip6ToBig(a)))
      throw permissionDenied(`auxiliary address: (${k}:${a}) must belong to the master pool: ${want.Subnet}`);
  return {
    Subnet: want.Subnet,
    Gateway: bigToIp6(gateway),
    ...(want.IPRange ? { IPRange: want.IPRange } : {}),
    ...(want.AuxiliaryAddresses ? { AuxiliaryAddresses: want.AuxiliaryAddresses } : {}),
  };
}

/** The lowest free address in `range` (inside `subnet`), after the subnet's own address; null when none is free. */
export function freeAddress6(subnet: Cidr6, range: Cidr6, used: ReadonlySet<bigint>): bigint | null {
  const first = range.base > subnet.base ? range.base : subnet.base + 1n;
  const rangeEnd = range.base + (1n << BigInt(128 - range.prefix)) - 1n;
  const subnetEnd = subnet.base + (1n << BigInt(128 - subnet.prefix)) - 1n;
  const last = rangeEnd < subnetEnd ? rangeEnd : subnetEnd;
  // a bounded scan: past the used addresses there is always a free one in a subnet this big
  for (let ip = first, i = 0; ip <= last && i <= used.size + 1; ip++, i++) if (!used.has(ip)) return ip;
  return null;
}
