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
import { invalidArgument } from '../base/errors.js';

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

/**
 * What a list reads once for all its containers, instead of per container: the endpoints and port
 * bindings of every container (two queries, not two per container: 25-45 ms of a 1,000-container
 * `ps`), and with `size` the writable layers' bytes (measured in the daemon, not a process per
 * container: 2.2 s at 1,000) and the images' sizes.
 */
export interface ListContext {
  endpoints: ReadonlyMap<string, Endpoint[]>;
  ports: ReadonlyMap<string, PortBinding[]>;
  /** every network by id */
  networks: ReadonlyMap<string, NetworkRecord>;
  sizes?: { rw: ReadonlyMap<string, number>; image: ReadonlyMap<string, number> };
}

const grouped = <T extends { containerId: string }>(xs: T[]): Map<string, T[]> => {
  const m = new Map<string, T[]>();
  for (const x of xs) {
    const l = m.get(x.containerId);
    if (l) l.push(x);
    else m.set(x.containerId, [x]);
  }
  return m;
};

/** The ListContext of a list: every container's endpoints and ports, the networks. */
export function listContext(e: Engine): ListContext {
  return {
    endpoints: grouped(e.networks.endpoints()),
    ports: grouped(e.networks.ports()),
    networks: new Map(e.networks.list().map((n) => [n.Id, n])),
  };
}

/** The sizes a list with `size` shows, for `recs`. */
export async function listSizes(
  e: Engine,
  recs: readonly ContainerRecord[],
): Promise<NonNullable<ListContext['sizes']>> {
  return {
    rw: await e.snapshots.usages(recs.map((r) => r.id)),
    image: new Map(e.images.list().map((i) => [i.id, i.size])),
  };
}

export async function factsOf(
  e: Engine,
  rec: ContainerRecord,
  withSize: boolean,
  ctx?: ListContext,
): Promise<ContainerFacts> {
  const facts = factsNow(e, rec, ctx);
  if (withSize && ctx?.sizes) {
    const rw = ctx.sizes.rw.get(rec.id) ?? 0;
    facts.size = { rw, rootFs: rw + (ctx.sizes.image.get(rec.imageId) ?? 0) };
  } else if (withSize) {
    const rw = await e.snapshots.usage(rec.id).catch(() => 0);
    facts.size = { rw, rootFs: rw + (e.images.list().find((i) => i.id === rec.imageId)?.size ?? 0) };
  }
  return facts;
}

/**
 * The facts without sizes, or with the sizes a list measured (`ctx.sizes`): synchronous, so a list
 * makes no promise per container (each is an async hook under the API's request scope).
 */
export function listFacts(e: Engine, rec: ContainerRecord, ctx: ListContext): ContainerFacts {
  const facts = factsNow(e, rec, ctx);
  if (ctx.sizes) {
    const rw = ctx.sizes.rw.get(rec.id) ?? 0;
    facts.size = { rw, rootFs: rw + (ctx.sizes.image.get(rec.imageId) ?? 0) };
  }
  return facts;
}

function factsNow(e: Engine, rec: ContainerRecord, ctx: ListContext | undefined): ContainerFacts {
  const eps = ctx ? (ctx.endpoints.get(rec.id) ?? []) : e.networks.endpoints({ containerId: rec.id });
  const networks: ContainerFacts['networks'] = [];
  for (const [id, req] of rec.networks ?? []) {
    const net = ctx ? ctx.networks.get(id) : e.networks.find(id);
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
    ports: ctx ? (ctx.ports.get(rec.id) ?? []) : e.networks.ports(rec.id),
    networks,
    volumePaths,
    defaultEndpoint: eps.find((x) => (ctx ? ctx.networks.get(x.networkId) : e.networks.find(x.networkId))?.isDefault),
  };
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

/** The keys dockerd takes for `GET /containers/json` (daemon/list.go acceptedPsFilterTags). */
const PS_FILTERS = new Set([
  'ancestor',
  'before',
  'exited',
  'expose',
  'health',
  'id',
  'is-task',
  'isolation',
  'label',
  'name',
  'network',
  'publish',
  'since',
  'status',
  'volume',
]);
const STATUSES = ['created', 'restarting', 'running', 'removing', 'paused', 'exited', 'dead'];

/** Refuses what dockerd refuses before listing: "Invalid filter 'bogus'", "Invalid filter 'status=x'". */
export function checkContainerFilters(f: Filters): void {
  for (const k of Object.keys(f)) if (!PS_FILTERS.has(k)) throw invalidArgument(`Invalid filter '${k}'`);
  for (const s of f['status'] ?? []) if (!STATUSES.includes(s)) throw invalidArgument(`Invalid filter 'status=${s}'`);
  for (const k of ['publish', 'expose'] as const) for (const v of f[k] ?? []) portsOfFilter(k, v);
}

/** `80`, `80/udp`, `8000-8010/tcp` -> the `port/proto` keys it names (dockerd's portOp, nat.ParsePortRange). */
function portsOfFilter(key: string, v: string): string[] {
  if (v.includes(':')) throw invalidArgument(`filter for '${key}' should not contain ':': ${v}`);
  const slash = v.lastIndexOf('/');
  const port = slash < 0 ? v : v.slice(0, slash);
  const proto = slash < 0 ? 'tcp' : v.slice(slash + 1).toLowerCase();
  const m = /^(\d+)(?:-(\d+))?$/.exec(port);
  if (!m) {
    const bad = port.split('-').find((x) => !/^\d+$/.test(x)) ?? port;
    throw invalidArgument(
      `error while looking up for ${key} ${v}: strconv.ParseUint: parsing ${JSON.stringify(bad)}: invalid syntax`,
    );
  }
  const lo = Number(m[1]);
  const hi = m[2] !== undefined ? Number(m[2]) : lo;
  if (lo > 65535 || hi > 65535 || hi < lo)
    throw invalidArgument(`error while looking up for ${key} ${v}: invalid range`);
  return Array.from({ length: hi - lo + 1 }, (_, i) => `${lo + i}/${proto}`);
}

/** The network names and ids a container is on, as NetworkSettings.Networks shows them. */
function networksOf(e: Engine, c: ContainerRecord): Array<{ name: string; id: string }> {
  const nets = (c.networks ?? []).flatMap(([id]) => {
    const n = e.networks.find(id);
    return n ? [{ name: n.Name, id: n.Id }] : [];
  });
  if (nets.length) return nets;
  const mode = c.hostConfig.NetworkMode ?? 'default';
  return mode.startsWith('container:') ? [] : [{ name: mode === 'default' ? 'none' : mode, id: '' }];
}

/** `docker ps`'s filters (dockerd's keys and rules). */
export function containerMatches(e: Engine, c: ContainerRecord, f: Filters, ctx?: ListContext): boolean {
  const portsOf = (id: string) => (ctx ? (ctx.ports.get(id) ?? []) : e.networks.ports(id));
  const wiredOf = (id: string) => (ctx ? ctx.endpoints.has(id) : e.networks.endpoints({ containerId: id }).length > 0);
  const passes = (k: string, pred: (v: string) => boolean) => !f[k] || f[k]!.some(pred);
  const created = (ref: string) => {
    const o = e.store.find(ref);
    return o ? Date.parse(o.created) : undefined;
  };
  return (
    passes('status', (s) => s === c.state.status) &&
    passes('name', (n) => nameMatches(n, c.name)) &&
    passes('id', (i) => c.id.startsWith(i)) &&
    passes('exited', (x) => c.state.status === 'exited' && String(c.state.exitCode) === x) &&
    passes(
      'health',
      (h) => (c.state.health && c.config.Healthcheck?.Test?.[0] !== 'NONE' ? c.state.health.Status : 'none') === h,
    ) &&
    passes(
      'ancestor',
      (a) =>
        c.config.Image === a ||
        c.imageId === a ||
        c.imageId.replace('sha256:', '').startsWith(a) ||
        safeImageId(e, a) === c.imageId,
    ) &&
    passes('before', (b) => {
      const t = created(b);
      return t !== undefined && Date.parse(c.created) < t;
    }) &&
    passes('since', (s) => {
      const t = created(s);
      return t !== undefined && Date.parse(c.created) > t;
    }) &&
    labelsMatch(f['label'], c.config.Labels ?? {}) &&
    // a volume's name (a bind's source) or a mount's destination; tmpfs mounts are not mount points
    passes('volume', (v) =>
      (c.mounts ?? []).some(
        (m) => m.Type !== 'tmpfs' && (m.Destination === v || (m.Type === 'volume' ? m.Name : m.Source) === v),
      ),
    ) &&
    passes('network', (v) => networksOf(e, c).some((n) => n.name === v || (n.id !== '' && n.id.startsWith(v)))) &&
    passes('is-task', (v) => v !== 'true' && v !== '1') && // no swarm: no container is a task
    passes('isolation', (v) => v === 'default' || v === '') &&
    // dockerd matches both on NetworkSettings.Ports, which only a wired (running) container has:
    // `expose` any port there, `publish` one bound to a host port
    passes('expose', (v) => {
      const published = new Set(portsOf(c.id).map((b) => `${b.containerPort}/${b.proto}`));
      const wired = wiredOf(c.id);
      const exposed = wired ? Object.keys(c.config.ExposedPorts ?? {}) : [];
      return portsOfFilter('expose', v).some((p) => published.has(p) || exposed.includes(p));
    }) &&
    passes('publish', (v) => {
      const published = new Set(portsOf(c.id).map((b) => `${b.containerPort}/${b.proto}`));
      return portsOfFilter('publish', v).some((p) => published.has(p));
    })
  );
}
