/** Engine API network request bodies (create, connect, disconnect), decoded as dockerd decodes them (see engine-api.ts). */
import { isIP } from 'node:net';
import { invalidArgument } from '../base/errors.js';
import { decodeGo } from './go-json.js';
import * as schema from './engine-schema.js';
import { CONTROL, validateEndpoint, type EndpointSettings } from './engine-api.js';

type Obj = Record<string, unknown>;

export interface NetworkCreateRequest {
  Name: string;
  Driver?: string;
  Internal?: boolean;
  Attachable?: boolean;
  EnableIPv6?: boolean;
  Labels?: Record<string, string>;
  Options?: Record<string, string>;
  IPAM?: {
    Driver?: string;
    Options?: Record<string, string>;
    Config?: Array<{
      Subnet?: string;
      Gateway?: string;
      IPRange?: string;
      AuxiliaryAddresses?: Record<string, string>;
    }>;
  };
  CheckDuplicate?: boolean;
}

/** POST /networks/create body. */
export function parseNetworkCreate(v: unknown): NetworkCreateRequest {
  const o = decodeGo(schema.networkCreateRequest, v ?? {}) as NetworkCreateRequest & Obj;
  if (!o.Name) throw invalidArgument('network name is required'); // dockerd: name is required
  if (o['ConfigOnly'] || (o['ConfigFrom'] as { Network?: string } | undefined)?.Network || o['Ingress'])
    throw invalidArgument('config-only, config-from and ingress networks are Swarm features berth does not have');
  const ipamDriver = o.IPAM?.Driver ?? '';
  if (ipamDriver !== '' && ipamDriver !== 'default')
    throw invalidArgument(`IPAM driver "${ipamDriver}" is not supported: only the default one`);
  // an IPv4 or IPv6 subnet per entry (the manager takes one of each); gateway, range and auxiliary
  // addresses of the subnet's family
  const cidr = (t: string) => /^[0-9A-Fa-f:.]+\/\d{1,3}$/.test(t) && isIP(t.slice(0, t.lastIndexOf('/'))) !== 0;
  for (const c of o.IPAM?.Config ?? []) {
    for (const k of ['Subnet', 'IPRange'] as const)
      if (c[k] && !cidr(c[k]))
        throw invalidArgument(`invalid ${k === 'Subnet' ? 'subnet' : 'ip-range'} ${c[k]}: a CIDR is expected`);
    const family = c.Subnet ? isIP(c.Subnet.slice(0, c.Subnet.lastIndexOf('/'))) : 0;
    const check = (what: string, ip: string) => {
      if (!isIP(ip) || (family && isIP(ip) !== family))
        throw invalidArgument(`invalid ${what} ${ip}: an IPv${family || 4} address is expected`);
    };
    if (c.Gateway) check('gateway', c.Gateway);
    for (const [k, a] of Object.entries(c.AuxiliaryAddresses ?? {})) {
      if (CONTROL.test(k)) throw invalidArgument(`invalid auxiliary address name ${JSON.stringify(k)}`);
      check(`auxiliary address ${k}=`, a);
    }
  }
  for (const [k, val] of Object.entries(o.IPAM?.Options ?? {}))
    if (CONTROL.test(k) || CONTROL.test(val))
      throw invalidArgument(`invalid IPAM option ${JSON.stringify(k)}: control characters`);
  const bridge = o.Options?.['com.docker.network.bridge.name'];
  // a Linux interface name (it reaches `ip` and nft scripts): 1-15 characters, no separators
  if (bridge !== undefined && !/^[A-Za-z0-9_.-]{1,15}$/.test(bridge))
    throw invalidArgument(`invalid bridge name ${JSON.stringify(bridge)}: 1 to 15 of [A-Za-z0-9_.-]`);
  for (const [k, val] of Object.entries(o.Options ?? {}))
    if (CONTROL.test(k) || CONTROL.test(val))
      throw invalidArgument(`invalid network option ${JSON.stringify(k)}: control characters`);
  return o;
}

/** POST /networks/{id}/connect and /disconnect bodies. */
export function parseNetworkConnect(v: unknown): { Container: string; EndpointConfig: EndpointSettings } {
  const o = decodeGo(schema.networkConnect, v ?? {}) as { Container?: string; EndpointConfig?: EndpointSettings };
  if (!o.Container) throw invalidArgument('network connect: Container is required');
  return { Container: o.Container, EndpointConfig: validateEndpoint(o.EndpointConfig ?? {}, 'EndpointConfig') };
}
export function parseNetworkDisconnect(v: unknown): { Container: string; Force: boolean } {
  const o = decodeGo(schema.networkDisconnect, v ?? {}) as { Container?: string; Force?: boolean };
  if (!o.Container) throw invalidArgument('network disconnect: Container is required');
  return { Container: o.Container, Force: o.Force ?? false };
}
