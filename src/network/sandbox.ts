/**
 * A container's network namespace (the protocol's sandbox) as `ip` takes it, and the commands that
 * configure an endpoint's interface inside it. Shared by the bridge driver (which makes its veth
 * there) and the manager (which moves a plugin's interface there).
 */

/** A container's network namespace: its init's (while it runs) or a named one berth made (/run/netns/<name>). */
export type Netns = { pid: number } | { name: string };

const NAMED = '/run/netns/';

/** The namespace's path (the plugin protocol's SandboxKey). */
export const nsPath = (ns: Netns): string => ('pid' in ns ? `/proc/${ns.pid}/ns/net` : `${NAMED}${ns.name}`);

/** A sandbox key as `ip -n` takes it: a name under /run/netns (a relative path from there reaches /proc). */
export const nsArgOf = (key: string): string => (key.startsWith(NAMED) ? key.slice(NAMED.length) : `../..${key}`);

/** A sandbox key as `ip link set ... netns` takes it: a pid or a name under /run/netns. */
export function nsRefOf(key: string): string {
  if (key.startsWith(NAMED)) return key.slice(NAMED.length);
  const m = /^\/proc\/(\d+)\/ns\/net$/.exec(key);
  if (!m) throw new TypeError(`not a sandbox key: ${key}`);
  return m[1]!;
}

/** IPv6 and further addresses of an endpoint's interface. */
export interface MoreAddresses {
  /** its IPv6 address with prefix (no duplicate address detection: usable at once) */
  address6?: string;
  /** the default IPv6 route's gateway */
  route6?: string | null;
  /** LinkLocalIPs: addresses added as given (a bare address gets /32 or /128) */
  extra?: readonly string[];
}

/** An endpoint's interface in the sandbox: named `ifname` already; its MAC, addresses, up, the default routes. */
export function interfaceLines(
  ifname: string,
  address: string,
  mac: string,
  routeVia: string | null,
  more: MoreAddresses = {},
): string[] {
  return [
    `link set dev ${ifname} address ${mac}`,
    `addr add ${address} dev ${ifname}`,
    ...(more.address6 ? [`addr add ${more.address6} dev ${ifname} nodad`] : []),
    ...(more.extra ?? []).map((a) => `addr add ${a} dev ${ifname}${a.includes(':') ? ' nodad' : ''}`),
    `link set ${ifname} up`,
    ...(routeVia ? [`route add default via ${routeVia}`] : []),
    ...(more.route6 ? [`route add ::/0 via ${more.route6} dev ${ifname}`] : []),
  ];
}
