/**
 * Overlay networks' records as the cluster store keeps them (overlay-catalog.ts has the layout):
 * the endpoint document, a network record's checks, the default subnet and VNI. Pure.
 */
import { cidrText, contains, ipToInt, overlaps, parseCidr, type Cidr } from './ipam.js';
import type { NetworkRecord } from './records.js';
import type { NetworkSpec } from '../plugins/interfaces.js';

/** Where berth's keys live in etcd. */
export const PREFIX = '/berth/v1/';

/** An endpoint as the store keeps it. */
export interface EndpointDoc {
  Ip: string;
  Mac: string;
  ContainerId: string;
  EndpointId: string;
  /** its container's name, then its aliases and hostname */
  Names: string[];
  /** the host it runs on, and that host's advertise address */
  Host: string;
  Vtep: string;
  /** claimed by a restore not yet announced: the other hosts do not send to it yet */
  Pending?: boolean;
}

/** A peer as `network inspect` shows it (dockerd's `Peers`). */
export interface PeerInfo {
  Name: string;
  IP: string;
}

const FIRST_VNI = 4097; // dockerd's overlay driver starts above 4096

/** The first 10.x.y.0/24 (dockerd's default overlay pool, 10.0.0.0/8 in /24s) that overlaps none of `taken`. */
export function pickOverlaySubnet(taken: readonly Cidr[]): string | null {
  for (let base = ipToInt('10.0.0.0'); base < ipToInt('11.0.0.0'); base += 256) {
    const c: Cidr = { base, prefix: 24 };
    if (!taken.some((t) => overlaps(t, c))) return cidrText(c);
  }
  return null;
}

/** The lowest VNI from 4097 not in `used`. */
export function pickVni(used: ReadonlySet<number>): number {
  let v = FIRST_VNI;
  while (used.has(v)) v++;
  return v;
}

/**
 * Whether a record read from the cluster store (or the cache) can be brought up: its id names its
 * devices and its subnet and gateway go into `ip` and `nft` scripts, so they must be what they say.
 * Anyone who can write to etcd controls the cluster's networks, but never a script's text.
 */
export function wellFormed(n: NetworkRecord, id: string): boolean {
  try {
    const c = n.IPAM?.Config?.[0];
    if (n.Id !== id || !/^[0-9a-f]{64}$/.test(id) || !c || typeof n.Name !== 'string') return false;
    const subnet = parseCidr(c.Subnet);
    return contains(subnet, ipToInt(c.Gateway)) && typeof n.Options === 'object' && n.Options !== null;
  } catch {
    return false;
  }
}

export const specOfOverlay = (n: NetworkRecord): NetworkSpec => {
  const c = n.IPAM.Config[0]!;
  return {
    id: n.Id,
    name: n.Name,
    pool: c.Subnet,
    gateway: `${c.Gateway}/${parseCidr(c.Subnet).prefix}`,
    options: n.Options,
    internal: n.Internal,
    isDefault: false,
  };
};

export const parseJson = <T>(s: string): T | undefined => {
  try {
    return JSON.parse(s) as T;
  } catch {
    return undefined;
  }
};
