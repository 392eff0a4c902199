/**
 * CNI wire types (containernetworking/cni SPEC.md, spec versions 0.3.0 to 1.0.0): a network
 * configuration list as it lies in a conf dir (or a single network configuration, which a runtime
 * turns into a list of one, as libcni's ConfListFromConf does), a plugin's Result and its error, and
 * the record berth caches per attachment. Pure: the runner is network/cni.ts.
 */
import { invalidArgument } from '../base/errors.js';
import { isObject, type JsonObject } from '../base/json.js';
import { isIP } from 'node:net';

/**
 * The spec versions berth speaks. 0.1.0 and 0.2.0 had another Result (`ip4`/`ip6`) and no chaining;
 * a conflist of those versions is refused with a plain message.
 */
export const CNI_VERSIONS: readonly string[] = ['0.3.0', '0.3.1', '0.4.0', '1.0.0'];

/** SPEC "Network configuration" `name`, and the container id of ADD's parameters. */
export const CNI_NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

/** A plugin's `type` is the file name of its executable: never a path. */
const PLUGIN_TYPE_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

export interface CniPluginConf {
  /** the executable's file name */
  type: string;
  /** the `capabilities` it declares (CONVENTIONS.md): only these get `runtimeConfig` keys */
  capabilities: ReadonlySet<string>;
  /** the plugin's configuration as written, unknown fields included (they go to the plugin) */
  raw: JsonObject;
}

export interface CniConfList {
  cniVersion: string;
  name: string;
  /** SPEC "Network Configuration Lists": no CHECK when true */
  disableCheck: boolean;
  plugins: CniPluginConf[];
  /** the list as read (a single configuration is wrapped into a list of one) */
  raw: JsonObject;
}

function version(v: unknown, where: string): string {
  if (typeof v !== 'string' || v === '') throw invalidArgument(`${where}: cniVersion is missing`);
  if (!CNI_VERSIONS.includes(v))
    throw invalidArgument(`${where}: cniVersion ${v} is not supported (berth speaks ${CNI_VERSIONS.join(', ')})`);
  return v;
}

function plugin(v: unknown, where: string): CniPluginConf {
  if (!isObject(v)) throw invalidArgument(`${where}: expected an object`);
  const type = v['type'];
  if (typeof type !== 'string' || type === '') throw invalidArgument(`${where}: type is missing`);
  if (!PLUGIN_TYPE_RE.test(type)) throw invalidArgument(`${where}: type ${JSON.stringify(type)} is not a plugin name`);
  const caps = new Set<string>();
  const c = v['capabilities'];
  if (c !== undefined) {
    if (!isObject(c)) throw invalidArgument(`${where}.capabilities: expected an object`);
    for (const [k, on] of Object.entries(c)) {
      if (typeof on !== 'boolean') throw invalidArgument(`${where}.capabilities.${k}: expected a boolean`);
      if (on) caps.add(k);
    }
  }
  return { type, capabilities: caps, raw: v };
}

/**
 * A conf file's content: a list (`plugins`) or a single configuration (`type`). `file` names it in
 * the messages. The list's `name` and `cniVersion` are the ones every plugin of it gets.
 */
export function parseConfList(text: string, file: string): CniConfList {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw invalidArgument(`${file}: not JSON: ${e instanceof Error ? e.message : String(e)}`);
  }
  if (!isObject(v)) throw invalidArgument(`${file}: expected a JSON object`);
  const name = v['name'];
  if (typeof name !== 'string' || !CNI_NAME_RE.test(name))
    throw invalidArgument(`${file}: name ${JSON.stringify(name ?? null)} is not a network name`);
  const cniVersion = version(v['cniVersion'], file);
  const dc = v['disableCheck'];
  // the spec's text says "string", libcni takes a boolean; both are accepted
  const disableCheck = dc === true || dc === 'true';
  if ('plugins' in v) {
    const list = v['plugins'];
    if (!Array.isArray(list) || list.length === 0) throw invalidArgument(`${file}: plugins: expected a non-empty list`);
    const plugins = list.map((p, i) => plugin(p, `${file}: plugins[${i}]`));
    return { cniVersion, name, disableCheck, plugins, raw: v };
  }
  const one = plugin(v, file);
  return {
    cniVersion,
    name,
    disableCheck,
    plugins: [one],
    raw: { cniVersion, name, plugins: [v] },
  };
}

export interface CniInterface {
  name: string;
  mac?: string;
  /** the netns path, for interfaces inside the container */
  sandbox?: string;
}

export interface CniIpConfig {
  /** CIDR notation: `10.86.0.5/16` */
  address: string;
  gateway?: string;
  /** index into `interfaces` */
  interface?: number;
}

export interface CniRoute {
  dst: string;
  gw?: string;
}

export interface CniDns {
  nameservers?: string[];
  domain?: string;
  search?: string[];
  options?: string[];
}

/** SPEC "Result" (0.3.0 and later). `raw` is what the plugin printed: it is the next plugin's `prevResult`. */
export interface CniResult {
  cniVersion: string;
  interfaces: CniInterface[];
  ips: CniIpConfig[];
  routes: CniRoute[];
  dns: CniDns;
  raw: JsonObject;
}

const str = (o: JsonObject, k: string, where: string): string | undefined => {
  const v = o[k];
  if (v === undefined || v === null || v === '') return undefined;
  if (typeof v !== 'string') throw invalidArgument(`${where}.${k}: expected a string`);
  return v;
};
const strs = (o: JsonObject, k: string, where: string): string[] | undefined => {
  const v = o[k];
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string'))
    throw invalidArgument(`${where}.${k}: expected a list of strings`);
  return v as string[];
};
const objects = (o: JsonObject, k: string, where: string): JsonObject[] => {
  const v = o[k];
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v) || !v.every(isObject)) throw invalidArgument(`${where}.${k}: expected a list of objects`);
  return v;
};

function cidr(v: string | undefined, where: string): string {
  const [ip, len, extra] = (v ?? '').split('/');
  const n = Number(len);
  const fam = isIP(ip ?? '');
  if (extra !== undefined || fam === 0 || !/^\d+$/.test(len ?? '') || n > (fam === 4 ? 32 : 128))
    throw invalidArgument(`${where}: ${JSON.stringify(v ?? null)} is not an address in CIDR notation`);
  return v!;
}

/** A plugin's ADD output. `where` names the plugin for the messages. */
export function parseResult(v: unknown, where: string): CniResult {
  if (!isObject(v)) throw invalidArgument(`${where}: result is not a JSON object`);
  const cniVersion = str(v, 'cniVersion', where) ?? '';
  const interfaces = objects(v, 'interfaces', where).map((o, i) => {
    const w = `${where}.interfaces[${i}]`;
    const name = str(o, 'name', w);
    if (name === undefined) throw invalidArgument(`${w}.name is missing`);
    const mac = str(o, 'mac', w);
    const sandbox = str(o, 'sandbox', w);
    return { name, ...(mac !== undefined ? { mac } : {}), ...(sandbox !== undefined ? { sandbox } : {}) };
  });
  const ips = objects(v, 'ips', where).map((o, i) => {
    const w = `${where}.ips[${i}]`;
    const address = cidr(str(o, 'address', w), `${w}.address`);
    const gateway = str(o, 'gateway', w);
    if (gateway !== undefined && isIP(gateway) === 0) throw invalidArgument(`${w}.gateway: not an address`);
    const ifc = o['interface'];
    if (ifc !== undefined && ifc !== null && (!Number.isInteger(ifc) || (ifc as number) < 0))
      throw invalidArgument(`${w}.interface: expected an index`);
    return {
      address,
      ...(gateway !== undefined ? { gateway } : {}),
      ...(typeof ifc === 'number' ? { interface: ifc } : {}),
    };
  });
  const routes = objects(v, 'routes', where).map((o, i) => {
    const w = `${where}.routes[${i}]`;
    const dst = cidr(str(o, 'dst', w), `${w}.dst`);
    const gw = str(o, 'gw', w);
    return { dst, ...(gw !== undefined ? { gw } : {}) };
  });
  const d = v['dns'];
  const dns: CniDns = {};
  if (isObject(d)) {
    const ns = strs(d, 'nameservers', `${where}.dns`);
    const domain = str(d, 'domain', `${where}.dns`);
    const search = strs(d, 'search', `${where}.dns`);
    const options = strs(d, 'options', `${where}.dns`);
    if (ns) dns.nameservers = ns;
    if (domain !== undefined) dns.domain = domain;
    if (search) dns.search = search;
    if (options) dns.options = options;
  }
  return { cniVersion, interfaces, ips, routes, dns, raw: v };
}

/** SPEC "Error": what a failing plugin prints on stdout; undefined when the output is not one. */
export interface CniErrorBody {
  code: number;
  msg: string;
  details?: string;
}

export function parseErrorBody(text: string): CniErrorBody | undefined {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (!isObject(v) || typeof v['code'] !== 'number' || typeof v['msg'] !== 'string') return undefined;
  const details = typeof v['details'] === 'string' && v['details'] !== '' ? v['details'] : undefined;
  return { code: v['code'], msg: v['msg'], ...(details !== undefined ? { details } : {}) };
}

/** CONVENTIONS.md `portMappings` capability, as the portmap plugin takes it in `runtimeConfig`. */
export interface CniPortMapping {
  hostPort: number;
  containerPort: number;
  protocol: 'tcp' | 'udp' | 'sctp';
  hostIP?: string;
}

const PROTOCOLS: readonly string[] = ['tcp', 'udp', 'sctp'];

/**
 * Checks port mappings from a caller or from the cache. A mapping without a host port (0) publishes
 * nothing and is left out, as containerd does.
 */
export function parsePortMappings(v: unknown, where: string): CniPortMapping[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw invalidArgument(`${where}: expected a list`);
  const out: CniPortMapping[] = [];
  v.forEach((m: unknown, i) => {
    const w = `${where}[${i}]`;
    if (!isObject(m)) throw invalidArgument(`${w}: expected an object`);
    const port = (k: string, zeroOk: boolean): number => {
      const p = m[k];
      if (typeof p !== 'number' || !Number.isInteger(p) || p < (zeroOk ? 0 : 1) || p > 65535)
        throw invalidArgument(`${w}.${k}: ${JSON.stringify(p ?? null)} is not a port`);
      return p;
    };
    const hostPort = port('hostPort', true);
    const containerPort = port('containerPort', false);
    const protocol = m['protocol'] ?? 'tcp';
    if (typeof protocol !== 'string' || !PROTOCOLS.includes(protocol))
      throw invalidArgument(`${w}.protocol: ${JSON.stringify(protocol)} is not tcp, udp or sctp`);
    const hostIP = m['hostIP'];
    if (hostIP !== undefined && hostIP !== null && hostIP !== '' && (typeof hostIP !== 'string' || isIP(hostIP) === 0))
      throw invalidArgument(`${w}.hostIP: ${JSON.stringify(hostIP)} is not an address`);
    if (hostPort === 0) return;
    out.push({
      hostPort,
      containerPort,
      protocol: protocol as CniPortMapping['protocol'],
      ...(typeof hostIP === 'string' && hostIP !== '' ? { hostIP } : {}),
    });
  });
  return out;
}

/**
 * What berth keeps per attachment (container id, interface) between ADD and DEL, so that DEL runs
 * with the configuration, arguments and result of the ADD even if the conf dir changed since
 * (libcni keeps the same in its cache dir). `result` is null while the ADD has not finished.
 */
export interface CniCacheRecord {
  kind: 'berthCniCacheV1';
  containerId: string;
  ifName: string;
  netnsPath: string;
  /** the conflist as it was at ADD */
  network: JsonObject;
  cniArgs: Array<[string, string]>;
  portMappings: CniPortMapping[];
  result: JsonObject | null;
}

export function parseCacheRecord(text: string, file: string): CniCacheRecord {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw invalidArgument(`${file}: not JSON`);
  }
  if (!isObject(v) || v['kind'] !== 'berthCniCacheV1') throw invalidArgument(`${file}: not a berth CNI cache record`);
  const s = (k: string): string => {
    const x = v[k];
    if (typeof x !== 'string') throw invalidArgument(`${file}: ${k}: expected a string`);
    return x;
  };
  const network = v['network'];
  if (!isObject(network)) throw invalidArgument(`${file}: network: expected an object`);
  const args = v['cniArgs'];
  if (
    !Array.isArray(args) ||
    !args.every((a) => Array.isArray(a) && a.length === 2 && a.every((x) => typeof x === 'string'))
  )
    throw invalidArgument(`${file}: cniArgs: expected a list of pairs`);
  const result = v['result'];
  if (result !== null && !isObject(result)) throw invalidArgument(`${file}: result: expected an object or null`);
  return {
    kind: 'berthCniCacheV1',
    containerId: s('containerId'),
    ifName: s('ifName'),
    netnsPath: s('netnsPath'),
    network,
    cniArgs: args as Array<[string, string]>,
    portMappings: parsePortMappings(v['portMappings'], `${file}: portMappings`),
    result,
  };
}
