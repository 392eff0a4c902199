/**
 * Legacy links (`--link name[:alias]`, compose's `links:`), as dockerd keeps them: the linked
 * container must exist at create and run at start; the linking container gets an /etc/hosts line
 * for it (`<ip> <alias> <id[:12]> <name>`) and, over the default bridge, dockerd's environment
 * variables (`<ALIAS>_NAME`, `<ALIAS>_PORT_<port>_<PROTO>...` for its exposed ports,
 * `<ALIAS>_ENV_<var>` for its environment).
 * HostConfig.Links is stored in dockerd's form, `/<name>:/<linker>/<alias>`.
 */
import { conflict, invalidArgument } from '../base/errors.js';
import type { NetworkManager } from '../network/manager.js';
import type { ContainerRecord } from './record.js';

export interface Link {
  alias: string;
  /** the linked container */
  target: ContainerRecord;
  /** its address on a network the linking container joins */
  ip: string;
  /** whether that network is the default bridge (dockerd gives the link's variables only there) */
  onDefault: boolean;
}

/** `name`, `name:alias` or dockerd's `/name:/linker/alias` -> target and alias. */
function parseLink(text: string): { target: string; alias: string } {
  const [target = '', alias] = text.split(':');
  const t = target.replace(/^\//, '');
  const a = (alias ?? t).split('/').pop() ?? '';
  if (!t || !a || text.split(':').length > 2) throw invalidArgument(`invalid link: ${text}`);
  return { target: t, alias: a };
}

/** At create: every link names an existing container; returns them in dockerd's stored form. */
export function planLinks(
  links: readonly string[],
  linker: string,
  find: (ref: string) => ContainerRecord | undefined,
): string[] {
  return links.map((l) => {
    const { target, alias } = parseLink(l);
    const rec = find(target);
    // 400, not 404: clients take a 404 from create for a missing image and pull
    if (!rec) throw invalidArgument(`could not get container for ${target}: No such container: ${target}`);
    return `/${rec.name}:/${linker}/${alias}`;
  });
}

/** At start: the linked containers, running, with their address on a network `rec` joins. */
export function resolveLinks(
  nets: NetworkManager,
  rec: ContainerRecord,
  find: (ref: string) => ContainerRecord | undefined,
): Link[] {
  const mine = new Set((rec.networks ?? []).map(([id]) => id));
  return (rec.hostConfig.Links ?? []).map((l) => {
    const { target, alias } = parseLink(l);
    const t = find(target);
    if (!t || t.state.status !== 'running')
      throw conflict(`Cannot link to a non running container: /${target} AS /${rec.name}/${alias}`);
    const ep = nets.endpoints({ containerId: t.id }).find((e) => mine.has(e.networkId));
    if (!ep) throw conflict(`Cannot link to /${target}: it shares no network with /${rec.name}`);
    return { alias, target: t, ip: ep.ip, onDefault: nets.get(ep.networkId).isDefault };
  });
}

const envName = (s: string) => s.toUpperCase().replace(/[^A-Z0-9]/g, '_');

/** dockerd's link environment (daemon/links/links.go), for links over the default bridge. */
export function linkEnv(linker: string, links: readonly Link[]): string[] {
  const out: string[] = [];
  for (const { alias, target, ip } of links.filter((l) => l.onDefault)) {
    const p = envName(alias);
    out.push(`${p}_NAME=/${linker}/${alias}`);
    const ports = Object.keys(target.config.ExposedPorts ?? {})
      .map((k) => ({ port: Number(k.split('/')[0]), proto: k.split('/')[1] ?? 'tcp' }))
      .sort((a, b) => a.port - b.port || a.proto.localeCompare(b.proto));
    if (ports[0]) out.push(`${p}_PORT=${ports[0].proto}://${ip}:${ports[0].port}`);
    for (const { port, proto } of ports) {
      const k = `${p}_PORT_${port}_${proto.toUpperCase()}`;
      out.push(`${k}=${proto}://${ip}:${port}`, `${k}_ADDR=${ip}`, `${k}_PORT=${port}`, `${k}_PROTO=${proto}`);
    }
    for (const e of target.config.Env ?? []) {
      const i = e.indexOf('=');
      const k = i < 0 ? e : e.slice(0, i);
      if (k === 'HOME' || k === 'PATH' || k === 'HOSTNAME') continue;
      out.push(`${p}_ENV_${k}=${i < 0 ? '' : e.slice(i + 1)}`);
    }
  }
  return out;
}

/** The /etc/hosts lines of the links. */
export function linkHosts(links: readonly Link[]): string[] {
  return links.map((l) => `${l.ip}\t${l.alias} ${l.target.id.slice(0, 12)} ${l.target.name}`);
}
