/**
 * Importing a checkpoint archive (archive.ts): the archive is input from whoever made it, so it is
 * reviewed before anything is made (its description parsed, names checked before they become
 * paths, host access refused unless trusted, the image, networks and volumes looked up), then the
 * container is recreated here (a new id) with its filesystem changes, its volumes' data and its
 * checkpoint, and (with `start`) restored. All or nothing: on any error nothing of it remains.
 */
import { existsSync, promises as fsp } from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { conflict, errorMessage, invalidArgument, notFound, permissionDenied } from '../base/errors.js';
import { isObject } from '../base/json.js';
import { log } from '../base/log.js';
import type { ArchiveDeps } from './deps.js';
import { type ExportDoc, stageDir, tar, untarStream } from './archive.js';
import { restoreOf } from './checkpoints.js';
import { NAME_RE, checkpointDir, parseMeta, writeMeta } from './store.js';

export interface ImportOptions {
  name?: string;
  start: boolean;
  /** a pre-dump staged before (stageCheckpoint's token) */
  stage?: string;
  /** the importer trusts the archive with access to the host (hostAccessOf) */
  hostAccess?: boolean;
  pull: (ref: string) => Promise<unknown>;
}

/**
 * What in an archive's HostConfig reaches past the container: host namespaces, privileges,
 * devices, host paths, relaxed confinement. An archive is input from whoever made it, so these
 * are applied only when the importer says it trusts the archive (`hostAccess`); migrate and clone
 * do (the archive comes from the caller's own daemon), `restore --import` needs
 * `--allow-host-access`. Returns a description of each, empty when there are none. The cgroup
 * namespace this host gives every container by default (`cgroupnsDefault`: host on cgroup v1, as
 * dockerd) is no extra access.
 */
export function hostAccessOf(hc: ExportDoc['hostConfig'], cgroupnsDefault: 'host' | 'private' = 'private'): string[] {
  const found: string[] = [];
  const h = hc as Record<string, unknown>;
  const list = (k: string): unknown[] => (Array.isArray(h[k]) ? (h[k] as unknown[]) : []);
  if (h['Privileged'] === true) found.push('--privileged');
  for (const ns of ['NetworkMode', 'PidMode', 'IpcMode', 'UTSMode', 'UsernsMode', 'CgroupnsMode'] as const)
    if (h[ns] === 'host' && !(ns === 'CgroupnsMode' && cgroupnsDefault === 'host')) found.push(`${ns}=host`);
  for (const b of list('Binds'))
    if (typeof b === 'string' && b.startsWith('/')) found.push(`bind mount ${b.split(':')[0]}`);
  for (const m of list('Mounts'))
    if (m && typeof m === 'object' && (m as { Type?: unknown }).Type === 'bind')
      found.push(`bind mount ${String((m as { Source?: unknown }).Source)}`);
  if (list('Devices').length) found.push('devices');
  if (list('DeviceCgroupRules').length) found.push('device cgroup rules');
  if (list('CapAdd').length) found.push(`capabilities ${list('CapAdd').join(',')}`);
  for (const so of list('SecurityOpt'))
    if (typeof so === 'string' && /unconfined|^label[:=]disable/.test(so)) found.push(`--security-opt ${so}`);
  const driver = h['VolumeDriver'];
  if (typeof driver === 'string' && driver && driver !== 'local') found.push(`volume driver ${driver}`);
  return found;
}

/** berth-export.json, parsed and checked: names from the archive become paths here. */
async function review(staging: string, o: ImportOptions, cgroupnsDefault: 'host' | 'private'): Promise<ExportDoc> {
  let doc: ExportDoc;
  try {
    doc = JSON.parse(await fsp.readFile(join(staging, 'berth-export.json'), 'utf8')) as ExportDoc;
  } catch {
    throw invalidArgument('not a checkpoint archive: berth-export.json is missing or broken');
  }
  const hasParts =
    existsSync(join(staging, 'checkpoint', 'inventory.img')) && existsSync(join(staging, 'rootfs-diff.tar'));
  if (!isObject(doc) || doc.version !== 1 || !doc.checkpoint || !hasParts)
    throw invalidArgument('not a checkpoint archive: parts are missing (checkpoint images or filesystem changes)');
  // names from the archive become paths here: checked as names, never joined as given
  if (typeof doc.checkpoint !== 'string' || !NAME_RE.test(doc.checkpoint))
    throw invalidArgument(`not a checkpoint archive: invalid checkpoint name ${JSON.stringify(doc.checkpoint)}`);
  const parent: unknown = doc.meta?.parent;
  if (parent !== undefined && (typeof parent !== 'string' || !NAME_RE.test(parent) || parent === doc.checkpoint))
    throw invalidArgument(`not a checkpoint archive: invalid parent checkpoint name ${JSON.stringify(parent)}`);
  if (!isObject(doc.config) || !isObject(doc.hostConfig) || !Array.isArray(doc.networks) || !isObject(doc.image))
    throw invalidArgument('not a checkpoint archive: berth-export.json is malformed');
  // what the restore reads back (berth.json): checked now, so a bad one is refused before anything is made
  if (!parseMeta({ ...(isObject(doc.meta) ? doc.meta : {}), addresses: {} }))
    throw invalidArgument('not a checkpoint archive: berth-export.json is malformed (checkpoint description)');
  const access = hostAccessOf(doc.hostConfig, cgroupnsDefault);
  if (access.length && !o.hostAccess)
    throw permissionDenied(
      `the checkpoint archive asks for access to the host (${access.join('; ')}): ` +
        'import it with --allow-host-access (allowHostAccess=1) if you trust who made it',
    );
  if (o.stage && doc.meta.parent && !/^[0-9a-f]{24}$/.test(o.stage)) throw invalidArgument('invalid stage');
  return doc;
}

/** The image: the same one by id, else by its name here, else pulled. */
async function imageFor(deps: ArchiveDeps, doc: ExportDoc, pull: ImportOptions['pull']): Promise<string> {
  const here = deps.imageId(doc.image.id) ?? (doc.image.ref ? deps.imageId(doc.image.ref) : null);
  if (here) return here;
  if (!doc.image.ref) throw notFound(`image ${doc.image.id} is not on this host`);
  await pull(doc.image.ref).catch((e: unknown) => {
    throw notFound(`image ${doc.image.ref} is not on this host and cannot be pulled: ${errorMessage(e)}`);
  });
  const pulled = deps.imageId(doc.image.ref);
  if (!pulled) throw notFound(`No such image: ${doc.image.ref}`);
  return pulled;
}

export async function importCheckpoint(
  deps: ArchiveDeps,
  input: Readable,
  o: ImportOptions,
): Promise<{ id: string; name: string }> {
  const staging = await fsp.mkdtemp(join(deps.root, 'tmp', 'import-'));
  let created: string | null = null;
  const madeVolumes: string[] = [];
  try {
    const t0 = performance.now();
    await untarStream(input, staging).catch((e: unknown) => {
      throw invalidArgument(`not a checkpoint archive: ${errorMessage(e)}`);
    });
    const doc = await review(staging, o, deps.cgroupnsDefault);
    const image = await imageFor(deps, doc, o.pull);
    const [first, ...more] = doc.networks;
    const mode = doc.hostConfig.NetworkMode ?? 'default';
    const netHere = (n: string) => deps.network(n === 'default' ? 'bridge' : n);
    for (const [n] of doc.networks) if (!netHere(n)) throw notFound(`network ${n} not found on this host`);
    const asked = [...(first ? [[mode === 'default' ? 'default' : first[0], first[1]] as const] : []), ...more];
    const endpoints = Object.fromEntries(
      asked.map(([n, req]) => [n, { Aliases: req.aliases, ...(req.mac ? { MacAddress: req.mac } : {}) }]),
    );
    // named volumes that travelled: made here with their data (never over a volume that exists)
    const carried = doc.volumes ?? [];
    for (const v of carried) {
      if (!/^volumes\/\d+\.tar$/.test(v.file) || !existsSync(join(staging, v.file)))
        throw invalidArgument(`not a checkpoint archive: the data of volume ${v.name} is missing`);
      if (!v.anonymous && deps.volumes.find(v.name))
        throw conflict(`volume ${v.name} already exists on this host: remove it, or import without volumes`);
    }
    const fill = (name: string, file: string) =>
      tar(['-x', '-f', join(staging, file), '--numeric-owner', '-C', deps.volumes.dataDir(name)], {});
    for (const v of carried.filter((x) => !x.anonymous)) {
      await deps.volumes.create({ Name: v.name, Labels: v.labels });
      madeVolumes.push(v.name);
      await fill(v.name, v.file);
    }
    const body = {
      ...doc.config,
      Image: image,
      HostConfig: { ...doc.hostConfig, AutoRemove: false },
      NetworkingConfig: { EndpointsConfig: endpoints },
    };
    const tu = performance.now();
    const { id } = await deps.create(body, o.name ?? doc.name);
    const tc = performance.now();
    created = id;
    // anonymous volumes are new ones here (made by create): found by where they are mounted
    for (const v of carried.filter((x) => x.anonymous)) {
      const m = (deps.get(id).mounts ?? []).find(
        (x) => x.Type === 'volume' && x.anonymous && x.Destination === v.destination,
      );
      if (m?.Name) await fill(m.Name, v.file);
    }
    await deps.replaceUpper(id, join(staging, 'rootfs-diff.tar'));
    const c = deps.get(id);
    const dest = join(checkpointDir(deps, c), doc.checkpoint);
    await fsp.mkdir(join(dest, '..'), { recursive: true });
    await fsp.rename(join(staging, 'checkpoint'), dest); // same filesystem (<root>/tmp): no copy of the images
    if (doc.meta.parent) await placeParent(deps, staging, dest, doc, o.stage);
    // the addresses the process had, on the networks of the same names here (used when free)
    const addresses: Record<string, string> = {};
    for (const [n, ip] of Object.entries(doc.addresses ?? {})) {
      const net = netHere(n);
      if (net) addresses[net.Id] = ip;
    }
    await writeMeta(dest, { ...doc.meta, container: id, addresses });
    const tp = performance.now();
    if (o.start) await deps.startRestored(id, await restoreOf(deps, c, doc.checkpoint));
    const ms = (a: number, b: number) => +(b - a).toFixed(1);
    log.debug('imported', {
      id,
      untarMs: ms(t0, tu),
      createMs: ms(tu, tc),
      filesMs: ms(tc, tp),
      startMs: ms(tp, performance.now()),
    });
    return { id, name: c.name };
  } catch (e) {
    if (created) await deps.remove(created).catch(() => undefined);
    for (const v of madeVolumes) await deps.volumes.remove(v).catch(() => undefined);
    throw e;
  } finally {
    await fsp.rm(staging, { recursive: true, force: true });
  }
}

/** The pre-dump the images build on: in the archive, or staged before (migration's pre-copy). */
async function placeParent(
  deps: ArchiveDeps,
  staging: string,
  dest: string,
  doc: ExportDoc,
  stage?: string,
): Promise<void> {
  const parent = doc.meta.parent!;
  const inArchive = join(staging, 'checkpoint-parent');
  const src = existsSync(inArchive) ? inArchive : stage ? join(stageDir(deps.root, stage), 'checkpoint') : null;
  if (!src || !existsSync(src))
    throw invalidArgument(
      `checkpoint ${doc.checkpoint} builds on pre-dump ${parent}, which is neither in the archive nor staged`,
    );
  await fsp.rename(src, join(dest, '..', parent));
  if (stage) await fsp.rm(stageDir(deps.root, stage), { recursive: true, force: true });
}
