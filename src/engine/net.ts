/**
 * A container's networking as the engine decides it: which networks `--network` and
 * NetworkingConfig name (resolved and checked at create), which ports it publishes, and the
 * /etc/hosts and /etc/resolv.conf it gets once its addresses are known (at start).
 */
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { invalidArgument, notFound } from '../base/errors.js';
import type { EndpointSettings, HostConfig, ContainerConfig } from '../spec/engine-api.js';
import { isIP } from 'node:net';
import type { Attachable, EndpointRequest, NetworkManager, NetworkRecord } from '../network/manager.js';
import { contains, ipToInt, parseCidr } from '../network/ipam.js';
import { contains6, ip6ToBig, parseCidr6 } from '../network/ipam6.js';
import type { ContainerRecord } from './record.js';

const SPECIAL = new Set(['none', 'host']);

/**
 * What a container asks of one network, from its EndpointSettings: aliases, static IPv4/IPv6
 * addresses, link-local addresses, MAC, per-network links and driver options (all kept: inspect
 * shows them back, as dockerd).
 */
export function requestOf(s: EndpointSettings | undefined, mac?: string): EndpointRequest {
  const ipv4 = s?.IPAMConfig?.IPv4Address || undefined;
  const ipv6 = s?.IPAMConfig?.IPv6Address || undefined;
  const m = s?.MacAddress || mac || undefined;
  if (m && !/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/i.test(m)) throw invalidArgument(`invalid MAC address: ${m}`);
  if (ipv4) ipToInt(ipv4);
  if (ipv6) ip6ToBig(ipv6);
  const lli = s?.IPAMConfig?.LinkLocalIPs ?? [];
  for (const a of lli) {
    // an address the interface can carry: not unspecified, loopback or multicast
    const bad = isIP(a) === 4 ? /^(0\.|127\.|22[4-9]\.|2[3-5]\d\.)/.test(a) : !isIP(a) || /^(::1?$|ff)/i.test(a);
    if (bad) throw invalidArgument(`invalid link-local IP address: ${a}`);
  }
  return {
    aliases: [...(s?.Aliases ?? [])],
    ...(ipv4 ? { ipv4 } : {}),
    ...(ipv6 ? { ipv6 } : {}),
    ...(m ? { mac: m.toLowerCase() } : {}),
    ...(s?.Links?.length ? { links: [...s.Links] } : {}),
    ...(s?.DriverOpts && Object.keys(s.DriverOpts).length ? { driverOpts: { ...s.DriverOpts } } : {}),
    ...(lli.length ? { linkLocalIPs: [...lli] } : {}),
  };
}

/**
 * A request checked against its network (at create and connect): static addresses and aliases
 * only on user-defined networks, inside the network's subnets.
 */
export function checkRequest(n: NetworkRecord, req: EndpointRequest): void {
  if (n.isDefault && (req.ipv4 || req.ipv6))
    throw invalidArgument('user specified IP address is supported on user defined networks only');
  if (n.isDefault && req.aliases.length)
    throw invalidArgument('network-scoped alias is supported only for containers in user defined networks');
  const c4 = n.IPAM.Config.find((c) => !c.Subnet.includes(':'));
  if (req.ipv4 && c4 && !contains(parseCidr(c4.Subnet), ipToInt(req.ipv4)))
    throw invalidArgument(`invalid address ${req.ipv4}: not in network ${n.Name}'s subnet ${c4.Subnet}`);
  if (req.ipv6) {
    const c6 = n.IPAM.Config.find((c) => c.Subnet.includes(':'));
    if (!n.EnableIPv6 || !c6) throw invalidArgument(`network ${n.Name} has no IPv6 (EnableIPv6 and an IPv6 subnet)`);
    if (!contains6(parseCidr6(c6.Subnet), ip6ToBig(req.ipv6)))
      throw invalidArgument(`invalid address ${req.ipv6}: not in network ${n.Name}'s subnet ${c6.Subnet}`);
  }
}

/**
 * The networks a new container joins, checked now so that `create` fails cleanly: NetworkMode
 * (`default`/`bridge`, `none`, `host`, `container:<id>`, a network name or id) and any further
 * EndpointsConfig entries; static addresses and aliases only on user-defined networks.
 */
export function planNetworks(
  nets: NetworkManager,
  hc: HostConfig,
  endpoints: Record<string, EndpointSettings>,
  config: ContainerConfig,
  findContainer: (ref: string) => unknown,
): Array<[string, EndpointRequest]> {
  const mode = hc.NetworkMode || 'default';
  hc.NetworkMode = mode;
  if (SPECIAL.has(mode)) {
    // dockerd: a host/none container joins no other network (the CLI names the mode itself in EndpointsConfig)
    if (Object.keys(endpoints).some((k) => k !== mode))
      throw invalidArgument(
        mode === 'host'
          ? 'container cannot be disconnected from host network or connected to host network'
          : 'container cannot be connected to multiple networks with one of the networks in private (none) mode',
      );
    return [];
  }
  if (mode.startsWith('container:')) {
    if (!findContainer(mode.slice('container:'.length)))
      throw notFound(`No such container: ${mode.slice('container:'.length)}`);
    return [];
  }
  const primary = nets.get(mode === 'default' ? 'bridge' : mode);
  const out: Array<[string, EndpointRequest]> = [];
  const add = (netRef: string, s: EndpointSettings | undefined, mac?: string) => {
    const n = nets.get(netRef === 'default' ? 'bridge' : netRef);
    if (out.some(([id]) => id === n.Id)) return;
    if (n.predefined)
      throw invalidArgument(
        n.Driver === 'host'
          ? 'container cannot be disconnected from host network or connected to host network'
          : 'container cannot be connected to multiple networks with one of the networks in private (none) mode',
      );
    const req = requestOf(s, mac);
    checkRequest(n, req);
    out.push([n.Id, req]);
  };
  const legacyMac =
    typeof (config as { MacAddress?: unknown }).MacAddress === 'string'
      ? ((config as { MacAddress?: string }).MacAddress ?? '')
      : '';
  add(primary.Id, endpoints[mode] ?? endpoints[primary.Name] ?? endpoints[primary.Id], legacyMac);
  for (const [ref, s] of Object.entries(endpoints)) add(ref, s);
  checkPorts(hc);
  return out;
}

/** PortBindings keys `80/tcp`, host ports a number, a range, or empty or 0 (any free port). */
function checkPorts(hc: HostConfig): void {
  for (const [key, list] of Object.entries(hc.PortBindings ?? {})) {
    const m = /^(\d+)(?:\/(tcp|udp|sctp))?$/.exec(key);
    if (!m || Number(m[1]) < 1 || Number(m[1]) > 65535) throw invalidArgument(`invalid port specification: "${key}"`);
    if (m[2] === 'sctp') throw invalidArgument('sctp ports are not supported');
    for (const b of list ?? []) {
      if (b.HostPort && !/^\d+(-\d+)?$/.test(b.HostPort)) throw invalidArgument(`invalid hostPort: ${b.HostPort}`);
      if (b.HostPort && b.HostPort !== '0' && b.HostPort.split('-').some((p) => Number(p) < 1 || Number(p) > 65535))
        throw invalidArgument(`invalid hostPort: ${b.HostPort}`);
      if (b.HostIp && b.HostIp !== '0.0.0.0') ipToInt(b.HostIp);
    }
  }
}

/** What the network manager needs to wire a container: its networks and published ports. */
export function attachableOf(rec: ContainerRecord): Attachable {
  const ports: Attachable['ports'] = [];
  const bindings = rec.hostConfig.PortBindings ?? {};
  for (const [key, list] of Object.entries(bindings)) {
    const [port, proto = 'tcp'] = key.split('/');
    for (const b of list ?? [{ HostIp: '', HostPort: '' }])
      ports.push({
        proto: proto as 'tcp' | 'udp',
        containerPort: Number(port),
        hostIp: b.HostIp ?? '',
        hostPort: b.HostPort === '0' ? '' : (b.HostPort ?? ''),
      });
  }
  if (rec.hostConfig.PublishAllPorts) {
    for (const key of Object.keys(rec.config.ExposedPorts ?? {})) {
      if (key in bindings) continue;
      const [port, proto = 'tcp'] = key.split('/');
      if (proto === 'tcp' || proto === 'udp')
        ports.push({ proto, containerPort: Number(port), hostIp: '', hostPort: '' });
    }
  }
  return { id: rec.id, name: rec.name, networks: rec.networks ?? [], ports };
}

/**
 * /etc/hosts and /etc/resolv.conf once the container's addresses are known. They are rewritten
 * in place: the container bind-mounts these very files.
 */
export async function writeNetFiles(
  nets: NetworkManager,
  rec: ContainerRecord,
  dir: string,
  linkHosts: readonly string[] = [],
): Promise<void> {
  const hc = rec.hostConfig;
  if (hc.NetworkMode === 'host') return;
  const eps = nets.endpoints({ containerId: rec.id });
  const hn = rec.config.Hostname || rec.id.slice(0, 12);
  // as dockerd: the container's addresses (IPv6 ones too) with its hostname
  const own = eps.length
    ? eps.flatMap((e) => [`${e.ip}\t${hn}`, ...(e.ip6 ? [`${e.ip6}\t${hn}`] : [])])
    : [`127.0.1.1\t${hn}`];
  const gateway = eps[0]?.gateway;
  const extra = (hc.ExtraHosts ?? []).map((h) => {
    const i = h.indexOf(':'); // dockerd splits at the first colon: `name:::1` is IPv6
    const name = h.slice(0, i);
    let ip = h.slice(i + 1).replace(/^\[(.*)\]$/, '$1');
    if (ip === 'host-gateway') ip = gateway ?? '127.0.0.1';
    if (i <= 0 || !ip) throw invalidArgument(`invalid extra host: ${h}`);
    return `${ip}\t${name}`;
  });
  const hosts = [
    '127.0.0.1\tlocalhost',
    '::1\tlocalhost ip6-localhost ip6-loopback',
    'fe00::0\tip6-localnet',
    'ff00::0\tip6-mcastprefix',
    'ff02::1\tip6-allnodes',
    'ff02::2\tip6-allrouters',
    ...extra,
    ...linkHosts,
    ...own,
  ];
  const [, hostResolv] = await Promise.all([
    fsp.writeFile(join(dir, 'hosts'), `${hosts.join('\n')}\n`),
    fsp.readFile('/etc/resolv.conf', 'utf8').catch(() => ''),
  ]);
  const keep = hostResolv.split('\n').filter((l) => /^\s*(search|options|domain)\s/.test(l));
  const userNet = eps.find((e) => !nets.get(e.networkId).isDefault);
  const servers = hc.Dns?.length
    ? hc.Dns
    : userNet
      ? [userNet.gateway] // the network's name server: container names, then the host's servers
      : hostResolv
          .split('\n')
          .map((l) => /^\s*nameserver\s+(\S+)/.exec(l)?.[1])
          .filter((s): s is string => !!s && !s.startsWith('127.'));
  const lines = [
    ...servers.map((s) => `nameserver ${s}`),
    ...(hc.DnsSearch?.length ? [`search ${hc.DnsSearch.join(' ')}`] : keep.filter((l) => !/^\s*options/.test(l))),
    ...(hc.DnsOptions?.length ? [`options ${hc.DnsOptions.join(' ')}`] : keep.filter((l) => /^\s*options/.test(l))),
  ];
  await fsp.writeFile(join(dir, 'resolv.conf'), `${lines.join('\n')}\n`);
}
