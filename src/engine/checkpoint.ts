/**
 * Checkpoints (issue #6): a running container frozen to disk with CRIU through its runtime, and
 * started again from there. A checkpoint is a directory `<dir>/<name>/` (default dir:
 * `<container dir>/checkpoints`) with CRIU's images and `berth.json` (when, the addresses the
 * process had on each network, whether TCP connections were kept). The container's filesystem
 * changes stay in its own writable layer, which a restore reuses.
 */
import { randomBytes } from 'node:crypto';
import { createWriteStream, existsSync, promises as fsp } from 'node:fs';
import { join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { conflict, errorMessage, failedPrecondition, invalidArgument, notFound, permissionDenied, unavailable } from '../base/errors.js';
import { isObject } from '../base/json.js';
import { portFree } from '../network/host.js';
import { log } from '../base/log.js';
import { isGzip } from '../archive/layer.js';
import { CommandError, runCommand } from '../base/proc.js';
import type { Engine } from './engine.js';
import type { ContainerRecord } from './record.js';
import type { Restore } from './lifecycle.js';

const NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

export interface CheckpointMeta {
  created: string;
  container: string;
  /** network id -> the IPv4 address the process had */
  addresses: Record<string, string>;
  tcpEstablished: boolean;
  /** a pre-dump (memory copied while running; not restorable by itself) */
  preDump?: boolean;
  /** the pre-dump whose pages this checkpoint does not repeat (CRIU's `parent` link) */
  parent?: string;
  /** post-copy: the memory pages are not in the images but served by a page server at ADDRESS:PORT */
  pageServer?: string;
}

export function checkpointDir(engine: Engine, rec: ContainerRecord, dir?: string | null): string {
  return dir || join(engine.containerDir(rec.id), 'checkpoints');
}

function checkName(name: string): void {
  if (!NAME_RE.test(name)) throw invalidArgument(`invalid checkpoint name: ${JSON.stringify(name)}`);
}

/** POST /containers/{id}/checkpoints. With `exit` (Docker's default) the container stops, as after `stop`. */
/**
 * `lazy` (post-copy, ADDRESS to serve pages on): the container stops, its images are written
 * without the memory pages, and a page server on ADDRESS:<a free port> serves them to whoever
 * restores the checkpoint — the restore resumes at once and pages follow on demand. The page
 * server ends when every page was fetched; removing the container waits for that.
 * Returns the page server's ADDRESS:PORT for a lazy checkpoint.
 */
export async function createCheckpoint(engine: Engine, ref: string, o: { name: string; dir?: string | null; exit: boolean; tcpEstablished: boolean; preDump?: boolean; parent?: string; lazy?: string; signal?: AbortSignal }): Promise<{ pageServer?: string }> {
  const rec = engine.get(ref);
  checkName(o.name);
  if (rec.state.status !== 'running') throw conflict(`Container ${rec.name} is not running`);
  const path = join(checkpointDir(engine, rec, o.dir), o.name);
  if (existsSync(path)) throw conflict(`checkpoint with name ${o.name} already exists for container ${rec.name}`);
  if (o.preDump) {
    const host = engine.runtime.host().checkpoint;
    if (!host.preCopy) throw invalidArgument(`pre-dump is not possible here: ${host.preCopyReason}`);
    o.exit = false; // a pre-dump copies memory while the container runs
  }
  if (o.parent) {
    checkName(o.parent);
    const parent = await readCheckpoint(engine, rec, o.parent, o.dir);
    if (!parent.meta.preDump) throw invalidArgument(`checkpoint ${o.parent} is not a pre-dump`);
  }
  let pageServer: string | undefined;
  if (o.lazy !== undefined) {
    const host = engine.runtime.host().checkpoint;
    if (!host.postCopy) throw invalidArgument(`post-copy is not possible here: ${host.postCopyReason}`);
    if (o.preDump || o.parent || !o.exit) throw invalidArgument('a post-copy checkpoint stops the container and stands alone (no pre-dump, no --leave-running)');
    const address = o.lazy || '127.0.0.1';
    if (!/^\d{1,3}(\.\d{1,3}){3}$/.test(address)) throw invalidArgument(`page server address ${address}: an IPv4 address`);
    pageServer = `${address}:${await freePort(address)}`;
  }
  await fsp.mkdir(path, { recursive: true, mode: 0o700 });
  // CRIU's log goes beside, not into, the checkpoint: a failed one is removed, its log kept for the error
  const work = join(engine.containerDir(rec.id), 'criu-logs', o.name);
  await fsp.rm(work, { recursive: true, force: true });
  await fsp.mkdir(work, { recursive: true, mode: 0o700 });
  const meta: CheckpointMeta = {
    created: new Date().toISOString(),
    container: rec.id,
    addresses: Object.fromEntries(engine.networks.endpoints({ containerId: rec.id }).map((e) => [e.networkId, e.ip])),
    tcpEstablished: o.tcpEstablished,
    ...(o.preDump ? { preDump: true } : {}),
    ...(o.parent ? { parent: o.parent } : {}),
    ...(pageServer ? { pageServer } : {}),
  };
  if (o.exit) {
    rec.manuallyStopped = true; // no restart policy brings it back
    engine.store.save(rec);
  }
  try {
    if (pageServer) {
      engine.servePages(rec.id, o.name, await engine.runtime.checkpointLazy(rec.id, { imagePath: path, workPath: path, tcpEstablished: o.tcpEstablished, pageServer, initPid: rec.state.pid }));
    } else {
      await engine.runtime.checkpoint(rec.id, {
        imagePath: path, workPath: work, leaveRunning: !o.exit, tcpEstablished: o.tcpEstablished, initPid: rec.state.pid,
        ...(o.preDump ? { preDump: true } : {}), ...(o.parent ? { parentPath: `../${o.parent}` } : {}), ...(o.signal ? { signal: o.signal } : {}),
      });
    }
  } catch (e) {
    await fsp.rm(path, { recursive: true, force: true }); // no half-written checkpoint is listed
    if (o.exit) {
      rec.manuallyStopped = false;
      engine.store.save(rec);
    }
    throw e;
  }
  await fsp.writeFile(join(path, 'berth.json'), JSON.stringify(meta), { mode: 0o600 });
  await fsp.rm(work, { recursive: true, force: true });
  // recorded as exited before the answer — except post-copy: the process stays (stopped) until its pages are gone
  if (o.exit && !pageServer) await engine.lifecycle.exitPromise(rec.id);
  engine.events.emit('container', 'checkpoint', rec.id, { name: rec.name, checkpoint: o.name });
  return pageServer ? { pageServer } : {};
}

/** A port nothing listens on at `address` (the page server's), from the dynamic range. */
async function freePort(address: string): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const port = 32768 + Math.floor(Math.random() * 28000);
    if (await portFree('tcp', address, port)) return port;
  }
  throw unavailable(`no free port for a page server on ${address}`);
}

export async function listCheckpoints(engine: Engine, ref: string, dir?: string | null): Promise<Array<{ Name: string }>> {
  const rec = engine.get(ref);
  const base = checkpointDir(engine, rec, dir);
  const names = await fsp.readdir(base).catch(() => [] as string[]);
  return names.filter((n) => existsSync(join(base, n, 'berth.json'))).sort().map((Name) => ({ Name }));
}

export async function removeCheckpoint(engine: Engine, ref: string, name: string, dir?: string | null): Promise<void> {
  const rec = engine.get(ref);
  checkName(name);
  const path = join(checkpointDir(engine, rec, dir), name);
  if (!existsSync(join(path, 'berth.json'))) throw notFound(`checkpoint ${name} does not exist for container ${rec.name}`);
  // a post-copy checkpoint still serving its pages: removing it ends the server, and the stopped
  // process goes on (how a migration that failed before the target resumed is rolled back)
  if (await engine.cancelPageServer(rec.id, name)) {
    rec.manuallyStopped = false;
    engine.store.save(rec);
  }
  await fsp.rm(path, { recursive: true, force: true });
}

/** A checkpoint's directory and metadata; NotFound when there is none of that name. */
async function readCheckpoint(engine: Engine, rec: ContainerRecord, name: string, dir?: string | null): Promise<{ path: string; meta: CheckpointMeta }> {
  checkName(name);
  const path = join(checkpointDir(engine, rec, dir), name);
  try {
    return { path, meta: JSON.parse(await fsp.readFile(join(path, 'berth.json'), 'utf8')) as CheckpointMeta };
  } catch {
    throw notFound(`checkpoint ${name} does not exist for container ${rec.name}`);
  }
}

/** What `start --checkpoint` needs: the images (checked) and the addresses to keep. */
export async function restoreOf(engine: Engine, rec: ContainerRecord, name: string, dir?: string | null): Promise<Restore> {
  const { path, meta } = await readCheckpoint(engine, rec, name, dir);
  if (meta.preDump) throw invalidArgument(`checkpoint ${name} is a pre-dump: restore the checkpoint made after it`);
  if (!existsSync(join(path, 'inventory.img'))) throw invalidArgument(`checkpoint ${name} of container ${rec.name} is incomplete (no CRIU inventory)`);
  if (rec.state.status === 'running' || rec.state.status === 'paused') throw conflict(`Container ${rec.name} is running: stop it before restoring a checkpoint`);
  return { imagePath: path, workPath: path, tcpEstablished: meta.tcpEstablished, addresses: meta.addresses, ...(meta.pageServer ? { pageServer: meta.pageServer } : {}) };
}

/** The description inside an exported checkpoint archive. */
interface ExportDoc {
  version: 1;
  name: string;
  checkpoint: string;
  image: { id: string; ref: string };
  config: ContainerRecord['config'];
  hostConfig: ContainerRecord['hostConfig'];
  /** network name -> what the container asked of it */
  networks: Array<[string, { aliases: string[]; ipv4?: string; mac?: string }]>;
  /** network name -> the address the process had there */
  addresses: Record<string, string>;
  meta: CheckpointMeta;
  /** with --with-volumes: the local volumes it mounts, their data in `volumes/<i>.tar` */
  volumes?: Array<{ name: string; destination: string; anonymous: boolean; labels: Record<string, string>; file: string }>;
}

export interface ExportOptions {
  dir?: string | null;
  /** gzip (default); a migration on a fast link is quicker without */
  compress?: boolean;
  /** include the pre-dump the checkpoint builds on (default), unless the target has it staged */
  withParent?: boolean;
  /** carry the data of the local volumes the container mounts */
  withVolumes?: boolean;
}

/**
 * gzip for checkpoint archives: pigz when installed (parallel, and at -1 ~3x faster than gzip's
 * default on CRIU's images; the archive is still plain gzip), else gzip -1.
 */
const GZIP = existsSync('/usr/bin/pigz') ? 'pigz' : 'gzip';

/** Extracts a checkpoint archive (gzip'd or not) from a stream into `dir`. */
async function untarStream(input: Readable, dir: string): Promise<void> {
  const gz = await isGzip(input);
  await tar(['-x', ...(gz ? ['-I', GZIP] : []), '-C', dir, '--no-same-owner', '--same-permissions'], { stdin: input });
}

function tar(args: string[], io: { stdin?: Readable; stdout?: Writable }): Promise<void> {
  return runCommand('tar', args, { ...(io.stdin ? { input: io.stdin } : {}), ...(io.stdout ? { output: io.stdout } : {}) }).catch((e: unknown) => {
    throw invalidArgument(`checkpoint archive: ${errorMessage(e)}`);
  });
}

/**
 * A checkpoint as one archive (tar, gzip'd unless `compress` is false — a migration on a fast link
 * is quicker without): `berth-export.json` (the container's config, its image,
 * its networks by name), `rootfs-diff.tar` (its writable layer, as a layer tar) and `checkpoint/`
 * (CRIU's images). Any berthd with the image (or able to pull it) can import it.
 */
export async function exportCheckpoint(engine: Engine, ref: string, name: string, out: Writable, o: ExportOptions = {}): Promise<void> {
  const { compress = true, withParent = true } = o;
  const rec = engine.get(ref);
  const { path, meta } = await readCheckpoint(engine, rec, name, o.dir);
  // volumes are checked before anything is written: a volume that cannot travel is an error up front
  const volumes = o.withVolumes ? (rec.mounts ?? []).filter((m) => m.Type === 'volume' && m.Name).map((m) => ({ m, v: engine.volumes.get(m.Name!) })) : [];
  for (const { v } of volumes)
    if (v.Driver !== 'local' || v.Options['device']) throw failedPrecondition(`volume ${v.Name} (driver ${v.Driver}${v.Options['device'] ? `, device ${v.Options['device']}` : ''}): --with-volumes carries the data of plain local volumes only`);
  const staging = await fsp.mkdtemp(join(engine.root, 'tmp', 'export-'));
  try {
    const doc: ExportDoc = {
      version: 1, name: rec.name, checkpoint: name, image: { id: rec.imageId, ref: rec.config.Image ?? '' }, config: rec.config, hostConfig: rec.hostConfig,
      networks: (rec.networks ?? []).map(([id, req]) => [engine.networks.find(id)?.Name ?? id, req]),
      addresses: Object.fromEntries(Object.entries(meta.addresses).map(([id, ip]) => [engine.networks.find(id)?.Name ?? id, ip])),
      meta,
    };
    const parts = ['berth-export.json', 'rootfs-diff.tar', 'checkpoint'];
    if (volumes.length) {
      await fsp.mkdir(join(staging, 'volumes'));
      doc.volumes = [];
      for (const [i, { m, v }] of volumes.entries()) {
        const file = `volumes/${i}.tar`;
        await tar(['-c', '-f', join(staging, file), '--numeric-owner', '-C', engine.volumes.dataDir(v.Name), '.'], {});
        doc.volumes.push({ name: v.Name, destination: m.Destination, anonymous: Boolean(m.anonymous), labels: v.Labels, file });
      }
      parts.push('volumes');
    }
    await fsp.writeFile(join(staging, 'berth-export.json'), JSON.stringify(doc));
    const diff = createWriteStream(join(staging, 'rootfs-diff.tar'));
    await engine.snapshots.packDiff(rec.id, diff);
    // the images go in by hard links (same filesystem: nothing is copied); a checkpoint made after a
    // pre-dump needs the pre-dump's pages too, unless the target has them already (migration)
    await hardlinkTree(path, join(staging, 'checkpoint'));
    if (meta.parent && withParent) {
      await hardlinkTree(join(path, '..', meta.parent), join(staging, 'checkpoint-parent'));
      parts.push('checkpoint-parent');
    }
    await tar(['-c', ...(compress ? ['-I', `${GZIP} -1`] : []), '-C', staging, ...parts], { stdout: out });
  } finally {
    await fsp.rm(staging, { recursive: true, force: true });
  }
}

/**
 * Recreates an exported container here (a new id; `name` or the original name) with its
 * filesystem changes and the checkpoint, and (with `start`) restores it. All or nothing: on any
 * error nothing of the new container remains.
 */
/** A copy of a directory by hard links (a plain copy when it is on another filesystem). */
async function hardlinkTree(from: string, to: string): Promise<void> {
  try {
    await runCommand('cp', ['-al', from, to]);
  } catch (e) {
    if (!(e instanceof CommandError && /cross-device/i.test(e.stderr))) throw invalidArgument(`checkpoint images: ${errorMessage(e)}`);
    await fsp.rm(to, { recursive: true, force: true });
    await runCommand('cp', ['-a', from, to]).catch((e2: unknown) => {
      throw invalidArgument(`checkpoint images: ${errorMessage(e2)}`);
    });
  }
}

/** Unpacks an exported pre-dump where a later import can find it (`stage`): migration's pre-copy. */
export async function stageCheckpoint(engine: Engine, input: Readable): Promise<string> {
  const token = randomBytes(12).toString('hex');
  const dir = join(engine.root, 'tmp', `stage-${token}`);
  await fsp.mkdir(dir, { recursive: true, mode: 0o700 });
  try {
    await untarStream(input, dir);
    if (!existsSync(join(dir, 'checkpoint'))) throw invalidArgument('not a checkpoint archive: no checkpoint images');
  } catch (e) {
    await fsp.rm(dir, { recursive: true, force: true });
    throw e;
  }
  return token;
}

/**
 * What in an archive's HostConfig reaches past the container: host namespaces, privileges,
 * devices, host paths, relaxed confinement. An archive is input from whoever made it, so these
 * are applied only when the importer says it trusts the archive (`hostAccess`); migrate and clone
 * do (the archive comes from the caller's own daemon), `restore --import` needs
 * `--allow-host-access`. Returns a description of each, empty when there are none.
 */
export function hostAccessOf(hc: ContainerRecord['hostConfig']): string[] {
  const found: string[] = [];
  const h = hc as Record<string, unknown>;
  if (h['Privileged'] === true) found.push('--privileged');
  for (const ns of ['NetworkMode', 'PidMode', 'IpcMode', 'UTSMode', 'UsernsMode', 'CgroupnsMode'] as const)
    if (h[ns] === 'host') found.push(`${ns}=host`);
  const binds = Array.isArray(h['Binds']) ? (h['Binds'] as unknown[]) : [];
  for (const b of binds) if (typeof b === 'string' && b.startsWith('/')) found.push(`bind mount ${b.split(':')[0]}`);
  const mounts = Array.isArray(h['Mounts']) ? (h['Mounts'] as unknown[]) : [];
  for (const m of mounts) if (m && typeof m === 'object' && (m as { Type?: unknown }).Type === 'bind') found.push(`bind mount ${String((m as { Source?: unknown }).Source)}`);
  if (Array.isArray(h['Devices']) && h['Devices'].length) found.push('devices');
  if (Array.isArray(h['DeviceCgroupRules']) && h['DeviceCgroupRules'].length) found.push('device cgroup rules');
  if (Array.isArray(h['CapAdd']) && h['CapAdd'].length) found.push(`capabilities ${(h['CapAdd'] as unknown[]).join(',')}`);
  const secopts = Array.isArray(h['SecurityOpt']) ? (h['SecurityOpt'] as unknown[]) : [];
  for (const so of secopts) if (typeof so === 'string' && /unconfined|^label[:=]disable/.test(so)) found.push(`--security-opt ${so}`);
  if (typeof h['VolumeDriver'] === 'string' && h['VolumeDriver'] && h['VolumeDriver'] !== 'local') found.push(`volume driver ${h['VolumeDriver']}`);
  return found;
}

export async function importCheckpoint(engine: Engine, input: Readable, o: { name?: string; start: boolean; stage?: string; hostAccess?: boolean; pull: (ref: string) => Promise<unknown> }): Promise<{ id: string; name: string }> {
  const staging = await fsp.mkdtemp(join(engine.root, 'tmp', 'import-'));
  let created: string | null = null;
  const madeVolumes: string[] = [];
  try {
    const t0 = performance.now();
    await untarStream(input, staging).catch((e: unknown) => {
      throw invalidArgument(`not a checkpoint archive: ${errorMessage(e)}`);
    });
    let doc: ExportDoc;
    try {
      doc = JSON.parse(await fsp.readFile(join(staging, 'berth-export.json'), 'utf8')) as ExportDoc;
    } catch {
      throw invalidArgument('not a checkpoint archive: berth-export.json is missing or broken');
    }
    if (doc.version !== 1 || !doc.checkpoint || !existsSync(join(staging, 'checkpoint', 'inventory.img')) || !existsSync(join(staging, 'rootfs-diff.tar')))
      throw invalidArgument('not a checkpoint archive: parts are missing (checkpoint images or filesystem changes)');
    // names from the archive become paths here: checked as names, never joined as given
    if (typeof doc.checkpoint !== 'string' || !NAME_RE.test(doc.checkpoint)) throw invalidArgument(`not a checkpoint archive: invalid checkpoint name ${JSON.stringify(doc.checkpoint)}`);
    if (doc.meta?.parent !== undefined && (typeof doc.meta.parent !== 'string' || !NAME_RE.test(doc.meta.parent) || doc.meta.parent === doc.checkpoint))
      throw invalidArgument(`not a checkpoint archive: invalid parent checkpoint name ${JSON.stringify(doc.meta.parent)}`);
    if (!isObject(doc.config) || !isObject(doc.hostConfig) || !Array.isArray(doc.networks) || !isObject(doc.image)) throw invalidArgument('not a checkpoint archive: berth-export.json is malformed');
    const access = hostAccessOf(doc.hostConfig);
    if (access.length && !o.hostAccess)
      throw permissionDenied(`the checkpoint archive asks for access to the host (${access.join('; ')}): import it with --allow-host-access (allowHostAccess=1) if you trust who made it`);
    // the image: the same one by id, else by its name here, else pulled
    const local = (ref: string) => {
      try {
        return engine.images.get(ref).id;
      } catch {
        return null;
      }
    };
    let image = local(doc.image.id) ?? (doc.image.ref ? local(doc.image.ref) : null);
    if (!image) {
      if (!doc.image.ref) throw notFound(`image ${doc.image.id} is not on this host`);
      await o.pull(doc.image.ref).catch((e: unknown) => {
        throw notFound(`image ${doc.image.ref} is not on this host and cannot be pulled: ${errorMessage(e)}`);
      });
      image = engine.images.get(doc.image.ref).id;
    }
    const [first, ...more] = doc.networks;
    const mode = doc.hostConfig.NetworkMode ?? 'default';
    for (const [n] of doc.networks) if (!engine.networks.find(n === 'default' ? 'bridge' : n)) throw notFound(`network ${n} not found on this host`);
    const endpoints = Object.fromEntries([...(first ? [[mode === 'default' ? 'default' : first[0], first[1]] as const] : []), ...more].map(([n, req]) => [n, { Aliases: req.aliases, ...(req.mac ? { MacAddress: req.mac } : {}) }]));
    // named volumes that travelled: made here with their data (never over a volume that exists)
    const carried = doc.volumes ?? [];
    for (const v of carried) {
      if (!/^volumes\/\d+\.tar$/.test(v.file) || !existsSync(join(staging, v.file))) throw invalidArgument(`not a checkpoint archive: the data of volume ${v.name} is missing`);
      if (!v.anonymous && engine.volumes.find(v.name)) throw conflict(`volume ${v.name} already exists on this host: remove it, or import without volumes`);
    }
    const fill = (name: string, file: string) => tar(['-x', '-f', join(staging, file), '--numeric-owner', '-C', engine.volumes.dataDir(name)], {});
    for (const v of carried.filter((x) => !x.anonymous)) {
      await engine.volumes.create({ Name: v.name, Labels: v.labels });
      madeVolumes.push(v.name);
      await fill(v.name, v.file);
    }
    const body = { ...doc.config, Image: image, HostConfig: { ...doc.hostConfig, AutoRemove: false }, NetworkingConfig: { EndpointsConfig: endpoints } };
    const tu = performance.now();
    const { id } = await engine.create(body, o.name ?? doc.name);
    const tc = performance.now();
    created = id;
    // anonymous volumes are new ones here (made by create): found by where they are mounted
    for (const v of carried.filter((x) => x.anonymous)) {
      const m = (engine.get(id).mounts ?? []).find((x) => x.Type === 'volume' && x.anonymous && x.Destination === v.destination);
      if (m?.Name) await fill(m.Name, v.file);
    }
    await engine.replaceUpper(id, join(staging, 'rootfs-diff.tar'));
    const rec = engine.get(id);
    const dest = join(checkpointDir(engine, rec), doc.checkpoint);
    await fsp.mkdir(join(dest, '..'), { recursive: true });
    await fsp.rename(join(staging, 'checkpoint'), dest); // same filesystem (<root>/tmp): no copy of the images
    if (doc.meta.parent) {
      // the pre-dump the images build on: in the archive, or staged before (migration's pre-copy)
      if (o.stage && !/^[0-9a-f]{24}$/.test(o.stage)) throw invalidArgument('invalid stage');
      const parentSrc = existsSync(join(staging, 'checkpoint-parent')) ? join(staging, 'checkpoint-parent') : o.stage ? join(engine.root, 'tmp', `stage-${o.stage}`, 'checkpoint') : null;
      if (!parentSrc || !existsSync(parentSrc)) throw invalidArgument(`checkpoint ${doc.checkpoint} builds on pre-dump ${doc.meta.parent}, which is neither in the archive nor staged`);
      await fsp.rename(parentSrc, join(dest, '..', doc.meta.parent));
      if (o.stage) await fsp.rm(join(engine.root, 'tmp', `stage-${o.stage}`), { recursive: true, force: true });
    }
    // the addresses the process had, on the networks of the same names here (used when free)
    const addresses: Record<string, string> = {};
    for (const [n, ip] of Object.entries(doc.addresses ?? {})) {
      const net = engine.networks.find(n === 'default' ? 'bridge' : n);
      if (net) addresses[net.Id] = ip;
    }
    await fsp.writeFile(join(dest, 'berth.json'), JSON.stringify({ ...doc.meta, container: id, addresses }), { mode: 0o600 });
    const tp = performance.now();
    if (o.start) await engine.lifecycle.start(rec, await restoreOf(engine, rec, doc.checkpoint));
    log.debug('imported', { id, untarMs: +(tu - t0).toFixed(1), createMs: +(tc - tu).toFixed(1), filesMs: +(tp - tc).toFixed(1), startMs: +(performance.now() - tp).toFixed(1) });
    return { id, name: rec.name };
  } catch (e) {
    if (created) await engine.remove(created, { force: true, volumes: true }).catch(() => undefined);
    for (const v of madeVolumes) await engine.volumes.remove(v, [], true).catch(() => undefined);
    throw e;
  } finally {
    await fsp.rm(staging, { recursive: true, force: true });
  }
}
