/**
 * What a front door shows of a container (inspect, list, df): the record with the facts other
 * services hold about it (addresses, ports, volume paths, sizes), read in one place, so that no
 * front door reaches into the network or volume managers. Read-only.
 */
import type { Endpoint, EndpointRequest, NetworkRecord, PortBinding } from '../network/manager.js';
import type { ContainerRecord } from './record.js';
import type { Engine } from './engine.js';
import type { Filters } from './filters.js';
import { labelsMatch } from './filters.js';

export type { Endpoint, EndpointRequest, NetworkRecord, PortBinding };

export interface ContainerFacts {
  rec: ContainerRecord;
  /** the container dir: bundle, hosts files */
  dir: string;
  logPath: string;
  rootfs: string;
  ports: PortBinding[];
  /** the networks it names, that still exist, with its endpoint while wired */
  networks: Array<{ net: NetworkRecord; req: EndpointRequest; endpoint: Endpoint | undefined }>;
  /** its endpoint on the default bridge, while wired */
  defaultEndpoint: Endpoint | undefined;
  /** mount point of each named volume it mounts */
  volumePaths: ReadonlyMap<string, string>;
  /** when the facts were read (the engine's clock): how long it has been up or down */
  now: number;
  /** the writable layer's bytes and the image's (asked for: `size`) */
  size?: { rw: number; rootFs: number };
}

export async function factsOf(e: Engine, rec: ContainerRecord, withSize: boolean): Promise<ContainerFacts> {
  const eps = e.networks.endpoints({ containerId: rec.id });
  const networks: ContainerFacts['networks'] = [];
  for (const [id, req] of rec.networks ?? []) {
    const net = e.networks.find(id);
    if (net) networks.push({ net, req, endpoint: eps.find((x) => x.networkId === id) });
  }
  const volumePaths = new Map<string, string>();
  for (const m of rec.mounts ?? [])
    if (m.Type === 'volume' && m.Name) volumePaths.set(m.Name, e.volumes.find(m.Name)?.Mountpoint ?? '');
  const facts: ContainerFacts = {
    rec,
    now: e.clock.now(),
    dir: e.containerDir(rec.id),
    logPath: e.logPathOf(rec.id),
    rootfs: e.rootfsOf(rec.id),
    ports: e.networks.ports(rec.id),
    networks,
    volumePaths,
    defaultEndpoint: eps.find((x) => e.networks.find(x.networkId)?.isDefault),
  };
  if (withSize) {
    const rw = await e.snapshots.usage(rec.id).catch(() => 0);
    facts.size = { rw, rootFs: rw + (e.images.list().find((i) => i.id === rec.imageId)?.size ?? 0) };
  }
  return facts;
}

/** dockerd's `name` filter: a regular expression over the name with or without its slash (`^web$`, `^/web$`, `we`). */
function nameMatches(pattern: string, name: string): boolean {
  // dockerd's regexps (RE2) run in linear time; V8's backtrack. A pattern that could backtrack
  // exponentially needs a quantified group (`(a+)+`, `(a|a)*`, `((a))+`) or a back-reference: such
  // patterns (and long ones) are matched as plain text, so no filter can stall the daemon.
  if (pattern.length > 256 || /\)[*+?{]/.test(pattern) || /\\[1-9k]/.test(pattern))
    return name.includes(pattern.replace(/^\//, ''));
  try {
    const re = new RegExp(pattern);
    return re.test(name) || re.test(`/${name}`);
  } catch {
    return name.includes(pattern.replace(/^\//, ''));
  }
}

function safeImageId(e: Engine, ref: string): string | undefined {
  try {
    return e.images.get(ref).id;
  } catch {
    return undefined;
  }
}

/** `docker ps`'s filters (dockerd's keys and rules). */
export function containerMatches(e: Engine, c: ContainerRecord, f: Filters): boolean {
  const any = (k: string, pred: (v: string) => boolean) => !f[k] || f[k]!.some(pred);
  const created = (ref: string) => {
    const o = e.store.find(ref);
    return o ? Date.parse(o.created) : undefined;
  };
  return (
    any('status', (s) => s === c.state.status) &&
    any('name', (n) => nameMatches(n, c.name)) &&
    any('id', (i) => c.id.startsWith(i)) &&
    any('exited', (x) => c.state.status === 'exited' && String(c.state.exitCode) === x) &&
    any(
      'health',
      (h) => (c.state.health && c.config.Healthcheck?.Test?.[0] !== 'NONE' ? c.state.health.Status : 'none') === h,
    ) &&
    any(
      'ancestor',
      (a) =>
        c.config.Image === a ||
        c.imageId === a ||
        c.imageId.replace('sha256:', '').startsWith(a) ||
        safeImageId(e, a) === c.imageId,
    ) &&
    any('before', (b) => {
      const t = created(b);
      return t !== undefined && Date.parse(c.created) < t;
    }) &&
    any('since', (s) => {
      const t = created(s);
      return t !== undefined && Date.parse(c.created) > t;
    }) &&
    labelsMatch(f['label'], c.config.Labels ?? {})
  );
}
