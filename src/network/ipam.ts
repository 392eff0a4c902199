/**
 * IPv4 address math (pure): CIDRs, the pools networks get their subnets from (Docker's defaults:
 * 172.17-31.0.0/16 then 192.168.0-240.0/20), overlap checks against the host's routes, and the
 * choice of a free address in a subnet or `--ip-range`.
 */
import { readFileSync } from 'node:fs';
import { conflict, invalidArgument } from '../base/errors.js';

export interface Cidr {
  /** network address as an unsigned 32-bit number */
  base: number;
  prefix: number;
}

export function ipToInt(ip: string): number {
  const parts = ip.split('.');
  if (parts.length !== 4 || parts.some((p) => !/^\d{1,3}$/.test(p) || Number(p) > 255))
    throw invalidArgument(`invalid IPv4 address: ${ip}`);
  return parts.reduce((n, p) => n * 256 + Number(p), 0) >>> 0;
}

export function intToIp(n: number): string {
  return [24, 16, 8, 0].map((s) => (n >>> s) & 255).join('.');
}

const maskOf = (prefix: number) => (prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0);

export function parseCidr(text: string): Cidr {
  const m = /^([\d.]+)\/(\d{1,2})$/.exec(text.trim());
  if (!m || Number(m[2]) > 32) throw invalidArgument(`invalid CIDR address: ${text}`);
  const prefix = Number(m[2]);
  return { base: (ipToInt(m[1]!) & maskOf(prefix)) >>> 0, prefix };
}

export const cidrText = (c: Cidr): string => `${intToIp(c.base)}/${c.prefix}`;
export const size = (c: Cidr): number => 2 ** (32 - c.prefix);
export const contains = (c: Cidr, ip: number): boolean => (ip & maskOf(c.prefix)) >>> 0 === c.base;
export const overlaps = (a: Cidr, b: Cidr): boolean => contains(a, b.base) || contains(b, a.base);

/** The host's IPv4 routes (destination networks), from /proc/net/route; the default route excluded. */
export function hostRoutes(): Cidr[] {
  let text = '';
  try {
    text = readFileSync('/proc/net/route', 'utf8');
  } catch {
    return [];
  }
  const out: Cidr[] = [];
  for (const line of text.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 8) continue;
    // little-endian hex on this host: the bytes in network order are the reverse of the text
    const be = (hex: string) => Buffer.from(hex, 'hex').readUInt32LE(0) >>> 0;
    const dest = be(f[1]!);
    const mask = be(f[7]!);
    if (mask === 0) continue;
    let bits = 0;
    for (let m = mask; m; m = (m << 1) >>> 0) bits++;
    out.push({ base: dest, prefix: bits });
  }
  return out;
}

/** Docker's default address pools, in order. */
export function* defaultPools(): Generator<Cidr> {
  for (let i = 17; i <= 31; i++) yield { base: ipToInt(`172.${i}.0.0`), prefix: 16 };
  for (let i = 0; i <= 240; i += 16) yield { base: ipToInt(`192.168.${i}.0`), prefix: 20 };
}

/** The first pool subnet that overlaps none of `taken` (other networks, host routes). */
export function pickSubnet(taken: readonly Cidr[]): Cidr {
  for (const c of defaultPools()) if (!taken.some((t) => overlaps(t, c))) return c;
  throw invalidArgument(
    'could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network',
  );
}

/**
 * The lowest free host address in `range` (inside `subnet`), skipping the network and broadcast
 * addresses and `used`. Null when the range is full.
 */
export function freeAddress(subnet: Cidr, range: Cidr, used: ReadonlySet<number>): number | null {
  const first = Math.max(range.base, subnet.base + 1);
  const last = Math.min(range.base + size(range) - 1, subnet.base + size(subnet) - 2);
  for (let ip = first; ip <= last; ip++) if (!used.has(ip)) return ip;
  return null;
}

/** Docker's MAC for an address: 02:42 followed by the four bytes of the IPv4 address. */
export function macOf(ip: number): string {
  return ['02', '42', ...[24, 16, 8, 0].map((s) => ((ip >>> s) & 255).toString(16).padStart(2, '0'))].join(':');
}

/**
 * A network interface name berth creates or names in a script: Linux's IFNAMSIZ (15), and only
 * characters that cannot end an `ip -batch` line, leave an nftables string or climb out of
 * /proc/sys/net/ipv4/conf/ ('/', '..', whitespace, quotes, newlines are all refused).
 */
export const IFNAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$/;

/** What `network create` asks of IPAM (its `IPAM.Config` entry, all optional). */
export interface PoolRequest {
  Subnet?: string;
  Gateway?: string;
  IPRange?: string;
}

/**
 * The pool of a new network (pure): the subnet asked for, checked against the other networks'
 * (`others`: name and subnet), or the first default pool that overlaps neither them nor `routes`
 * (the host's); the gateway (the subnet's first address unless given) and the `--ip-range`, both
 * checked to be inside the subnet. Throws InvalidArgument or Conflict with Docker's wording.
 */
export function planPool(
  want: PoolRequest,
  others: ReadonlyArray<{ name: string; subnet: string }>,
  routes: readonly Cidr[],
): { Subnet: string; Gateway: string; IPRange?: string } {
  let subnet: Cidr;
  if (want.Subnet) {
    subnet = parseCidr(want.Subnet);
    if (subnet.prefix > 30) throw invalidArgument(`invalid subnet ${want.Subnet}: too small for a network`);
    const clash = others.find((o) => overlaps(parseCidr(o.subnet), subnet));
    if (clash) {
      throw conflict(
        `invalid pool request: Pool overlaps with other one on this address space (${clash.name} uses ${clash.subnet})`,
      );
    }
  } else subnet = pickSubnet([...others.map((o) => parseCidr(o.subnet)), ...routes]);
  const gateway = want.Gateway ? ipToInt(want.Gateway) : subnet.base + 1;
  if (!contains(subnet, gateway))
    throw invalidArgument(`failed to allocate gateway (${want.Gateway}): Requested address is out of range`); // dockerd's words
  if (want.IPRange) {
    const r = parseCidr(want.IPRange);
    if (!contains(subnet, r.base) || r.prefix < subnet.prefix) {
      throw invalidArgument(`invalid ip-range ${want.IPRange}: not inside subnet ${cidrText(subnet)}`);
    }
  }
  return { Subnet: cidrText(subnet), Gateway: intToIp(gateway), ...(want.IPRange ? { IPRange: want.IPRange } : {}) };
}
