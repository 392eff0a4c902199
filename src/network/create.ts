/**
 * A new network's record from `POST /networks/create`, before any host change (manager.ts calls
 * these, then the driver): the name and driver checks in dockerd's order, the IPAM configs, and
 * the record of a bridge (or plugin) network or of an overlay network with its pool's plan.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { NetworkCreateRequest } from '../spec/network-api.js';
import type { Clock } from '../base/clock.js';
import { conflict, invalidArgument, notFound, permissionDenied } from '../base/errors.js';
import { cidrText, contains, hostRoutes, ipToInt, parseCidr, planPool } from './ipam.js';
import { isV6, planPool6 } from './ipam6.js';
import { mtuOf, VNI_OPTION, vniOf } from './overlay.js';
import { pickOverlaySubnet } from './overlay-docs.js';
import type { IpamConfig, NetworkRecord } from './records.js';

export const DEFAULT_NAME = 'bridge';
/** dockerd's pre-defined networks besides `bridge`: name -> driver */
export const PREDEFINED: ReadonlyArray<[string, string]> = [
  ['none', 'null'],
  ['host', 'host'],
];
const CONTROL = /[\u0000-\u001f\u007f]/;

type Want = { Subnet?: string; Gateway?: string; IPRange?: string; AuxiliaryAddresses?: Record<string, string> };
type Subnets = Array<{ name: string; subnet: string }>;

/** Whether the host's kernel has IPv6 on (it is off when the sysctl is missing or 1). */
function hostIpv6(): boolean {
  try {
    return readFileSync('/proc/sys/net/ipv6/conf/all/disable_ipv6', 'utf8').trim() === '0';
  } catch {
    return false;
  }
}

/** The name's and driver's checks, in dockerd's order; answers the driver's name. `exists`: a network of that name. */
export function checkName(o: NetworkCreateRequest, exists: (name: string) => boolean): string {
  // dockerd's rule (libnetwork config.ValidateName): any name that is not blank. The name never
  // reaches a device or a script (the bridge is named from the id); control characters are refused.
  if (!o.Name || !o.Name.trim()) throw invalidArgument(`invalid name: ${o.Name ?? ''}`);
  if (CONTROL.test(o.Name)) throw invalidArgument(`invalid name ${JSON.stringify(o.Name)}: control characters`);
  const pre = PREDEFINED.find(([name]) => name === o.Name);
  if (pre) throw permissionDenied(`operation is not permitted on predefined ${o.Name} network `);
  if (exists(o.Name)) throw conflict(`network with name ${o.Name} already exists`);
  const driverName = o.Driver || 'bridge';
  if (PREDEFINED.some(([, d]) => d === driverName))
    throw permissionDenied(`only one instance of "${driverName}" network is allowed`);
  return driverName;
}

/** The reserved names and the IPAM configs' checks (after the driver was found); answers the v4 and v6 configs. */
export function checkIpam(
  o: NetworkCreateRequest,
  isDefault: boolean,
  driverName: string,
): {
  v4: NonNullable<NonNullable<NetworkCreateRequest['IPAM']>['Config']>;
  v6: NonNullable<NonNullable<NetworkCreateRequest['IPAM']>['Config']>;
} {
  if (o.Name === 'default' || (o.Name === DEFAULT_NAME && !isDefault)) {
    throw conflict(`network with name ${o.Name} already exists`);
  }
  const cfgs = o.IPAM?.Config ?? [];
  const v4 = cfgs.filter((c) => !isV6(c.Subnet ?? '') && !isV6(c.Gateway ?? ''));
  const v6 = cfgs.filter((c) => isV6(c.Subnet ?? '') || isV6(c.Gateway ?? ''));
  if (v4.length > 1 || v6.length > 1) throw permissionDenied("bridge driver doesn't support multiple subnets"); // dockerd, 403
  if (v6[0] && !v6[0].Subnet) throw invalidArgument('an IPv6 gateway needs an IPv6 subnet');
  if (o.EnableIPv6 && !v6[0])
    throw notFound(
      'could not find an available, non-overlapping IPv6 address pool among the defaults to assign to the network',
    );
  if (o.EnableIPv6 && driverName !== 'bridge') throw invalidArgument('IPv6 is supported on bridge networks only');
  return { v4, v6 };
}

/** The auxiliary addresses must be in the pool's subnet (dockerd's 403). */
function withAux(pool: IpamConfig, aux: Record<string, string> | undefined): IpamConfig {
  for (const [k, a] of Object.entries(aux ?? {})) {
    if (isV6(a) || !contains(parseCidr(pool.Subnet), ipToInt(a)))
      throw permissionDenied(`auxiliary address: (${k}:${a}) must belong to the master pool: ${pool.Subnet}`);
  }
  if (aux) pool.AuxiliaryAddresses = aux;
  return pool;
}

/** A local network's record (bridge or plugin): its pools planned against `subnets(v6)` of the other networks. */
export function localRecord(
  o: NetworkCreateRequest,
  isDefault: boolean,
  driverName: string,
  { v4, v6 }: ReturnType<typeof checkIpam>,
  subnets: (want6: boolean) => Subnets,
  clock: Clock,
): NetworkRecord {
  if (o.EnableIPv6 && !hostIpv6())
    throw invalidArgument('IPv6 is disabled on this host (net.ipv6.conf.all.disable_ipv6 is not 0)');
  const pool = withAux(planPool(v4[0] ?? {}, subnets(false), hostRoutes()), v4[0]?.AuxiliaryAddresses);
  if (v4[0]?.Subnet && !v4[0].Gateway) pool.gatewayChosen = true;
  const pool6: IpamConfig | undefined = v6[0]
    ? planPool6({ ...v6[0], Subnet: v6[0].Subnet! }, subnets(true))
    : undefined;
  if (pool6 && !v6[0]!.Gateway) pool6.gatewayChosen = true;
  return {
    Id: randomBytes(32).toString('hex'),
    Name: o.Name,
    Driver: driverName,
    Scope: 'local',
    Created: new Date(clock.now()).toISOString(),
    Internal: !!o.Internal,
    Attachable: !!o.Attachable,
    EnableIPv6: !!o.EnableIPv6,
    Labels: o.Labels ?? {},
    Options: o.Options ?? {},
    IPAM: { Driver: 'default', Options: o.IPAM?.Options ?? null, Config: pool6 ? [pool, pool6] : [pool] },
    bridge: '',
    isDefault,
  };
}

/**
 * An overlay network's record (`-d overlay`, its IPAM config left to the cluster store's
 * transaction) and `plan`: its subnet (asked, or the first free 10.x.y.0/24) checked against
 * every network of the cluster (`taken`) and of this host (`localSubnets`, its routes). `-o`
 * options as given; a VNI (`vxlanid_list`) and an MTU may be asked (checked here).
 */
export function overlayRecord(
  o: NetworkCreateRequest,
  want: Want,
  localSubnets: Subnets,
  clock: Clock,
): { rec: NetworkRecord; plan: (taken: Subnets) => IpamConfig } {
  const options = { ...(o.Options ?? {}) };
  if (options[VNI_OPTION] !== undefined) vniOf(options); // InvalidArgument before anything is written
  mtuOf(options);
  const routes = hostRoutes();
  const plan = (taken: Subnets) => {
    const others = [...localSubnets, ...taken];
    let subnet = want.Subnet;
    if (!subnet) {
      // this host's routes, less the overlay networks' own subnets (their bridges are up here)
      const own = new Set(taken.map((t) => t.subnet));
      const busy = [...others.map((x) => parseCidr(x.subnet)), ...routes.filter((r) => !own.has(cidrText(r)))];
      subnet = pickOverlaySubnet(busy) ?? undefined;
      if (!subnet)
        throw invalidArgument('could not find an available, non-overlapping IPv4 address pool for the overlay network');
    }
    const pool = withAux(planPool({ ...want, Subnet: subnet }, others, []), want.AuxiliaryAddresses);
    if (want.Subnet && !want.Gateway) pool.gatewayChosen = true;
    return pool;
  };
  const rec: NetworkRecord = {
    Id: randomBytes(32).toString('hex'),
    Name: o.Name,
    Driver: 'overlay',
    Scope: 'global',
    Created: new Date(clock.now()).toISOString(),
    Internal: !!o.Internal,
    Attachable: !!o.Attachable,
    EnableIPv6: false,
    Labels: o.Labels ?? {},
    Options: options,
    IPAM: { Driver: 'default', Options: o.IPAM?.Options ?? null, Config: [] },
    bridge: '',
    isDefault: false,
  };
  return { rec, plan };
}
