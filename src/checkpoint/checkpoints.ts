/**
 * The checkpoint verbs: create (CRIU through the runtime: a dump, a pre-dump or a post-copy
 * checkpoint with its page server), list, remove, and the restore plan `start --checkpoint` needs.
 * Which statuses allow a checkpoint or a restore is the engine's status table (deps.check).
 */
import { existsSync, promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { dateOf } from '../base/clock.js';
import { conflict, invalidArgument, notFound, unavailable } from '../base/errors.js';
import { portFree } from '../network/host.js';
import type { CheckpointDeps, ContainerView, RestorePlan } from './deps.js';
import { type CheckpointMeta, checkName, checkpointDir, readCheckpoint, writeMeta } from './store.js';

export interface CreateOptions {
  name: string;
  dir?: string | null;
  exit: boolean;
  tcpEstablished: boolean;
  preDump?: boolean;
  parent?: string;
  lazy?: string;
  signal?: AbortSignal;
}

/** The checks before anything is written; returns the page server's ADDRESS:PORT for post-copy. */
async function plan(deps: CheckpointDeps, c: ContainerView, o: CreateOptions): Promise<string | undefined> {
  checkName(o.name);
  deps.check(c, 'checkpoint');
  const path = join(checkpointDir(deps, c, o.dir), o.name);
  if (existsSync(path)) throw conflict(`checkpoint with name ${o.name} already exists for container ${c.name}`);
  const host = deps.runtime.host().checkpoint;
  if (o.preDump) {
    if (!host.preCopy) throw invalidArgument(`pre-dump is not possible here: ${host.preCopyReason}`);
    o.exit = false; // a pre-dump copies memory while the container runs
  }
  if (o.parent) {
    checkName(o.parent);
    const parent = await readCheckpoint(deps, c, o.parent, o.dir);
    if (!parent.meta.preDump) throw invalidArgument(`checkpoint ${o.parent} is not a pre-dump`);
  }
  if (o.lazy === undefined) return undefined;
  if (!host.postCopy) throw invalidArgument(`post-copy is not possible here: ${host.postCopyReason}`);
  if (o.preDump || o.parent || !o.exit)
    throw invalidArgument(
      'a post-copy checkpoint stops the container and stands alone (no pre-dump, no --leave-running)',
    );
  const address = o.lazy || '127.0.0.1';
  if (!/^\d{1,3}(\.\d{1,3}){3}$/.test(address))
    throw invalidArgument(`page server address ${address}: an IPv4 address`);
  return `${address}:${await freePort(address)}`;
}

/**
 * POST /containers/{id}/checkpoints. With `exit` (Docker's default) the container stops, as after
 * `stop`. `lazy` (post-copy, ADDRESS to serve pages on): the container stops, its images are
 * written without the memory pages, and a page server on ADDRESS:<a free port> serves them to
 * whoever restores the checkpoint; the restore resumes at once and pages follow on demand. The page
 * server ends when every page was fetched; removing the container waits for that.
 * Returns the page server's ADDRESS:PORT for a lazy checkpoint. A failure leaves no checkpoint.
 */
export async function createCheckpoint(
  deps: CheckpointDeps,
  ref: string,
  o: CreateOptions,
): Promise<{ pageServer?: string }> {
  const c = deps.get(ref);
  const pageServer = await plan(deps, c, o);
  const path = join(checkpointDir(deps, c, o.dir), o.name);
  await fsp.mkdir(path, { recursive: true, mode: 0o700 });
  // CRIU's log goes beside, not into, the checkpoint: a failed one is removed, its log kept for the error
  const work = join(deps.containerDir(c.id), 'criu-logs', o.name);
  await fsp.rm(work, { recursive: true, force: true });
  await fsp.mkdir(work, { recursive: true, mode: 0o700 });
  const meta: CheckpointMeta = {
    created: dateOf(deps.clock).toISOString(),
    container: c.id,
    addresses: deps.addressesOf(c.id),
    tcpEstablished: o.tcpEstablished,
    ...(o.preDump ? { preDump: true } : {}),
    ...(o.parent ? { parent: o.parent } : {}),
    ...(pageServer ? { pageServer } : {}),
  };
  if (o.exit) deps.setManuallyStopped(c.id, true); // no restart policy brings it back
  try {
    await dump(deps, c, o, path, work, pageServer);
  } catch (e) {
    await fsp.rm(path, { recursive: true, force: true }); // no half-written checkpoint is listed
    if (o.exit) deps.setManuallyStopped(c.id, false);
    throw e;
  }
  await writeMeta(path, meta);
  await fsp.rm(work, { recursive: true, force: true });
  // recorded as exited before the answer, except post-copy: the process stays (stopped) until its pages are gone
  if (o.exit && !pageServer) await deps.exited(c.id);
  deps.emit('checkpoint', c.id, { name: c.name, checkpoint: o.name });
  return pageServer ? { pageServer } : {};
}

async function dump(
  deps: CheckpointDeps,
  c: ContainerView,
  o: CreateOptions,
  path: string,
  work: string,
  pageServer?: string,
) {
  const initPid = c.state.pid;
  if (pageServer) {
    const lazy = { imagePath: path, workPath: path, tcpEstablished: o.tcpEstablished, pageServer, initPid };
    deps.servePages(c.id, o.name, await deps.runtime.checkpointLazy(c.id, lazy));
    return;
  }
  await deps.runtime.checkpoint(c.id, {
    imagePath: path,
    workPath: work,
    leaveRunning: !o.exit,
    tcpEstablished: o.tcpEstablished,
    initPid,
    ...(o.preDump ? { preDump: true } : {}),
    ...(o.parent ? { parentPath: `../${o.parent}` } : {}),
    ...(o.signal ? { signal: o.signal } : {}),
  });
}

/** A port nothing listens on at `address` (the page server's), from the dynamic range. */
async function freePort(address: string): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const port = 32768 + Math.floor(Math.random() * 28000);
    if (await portFree('tcp', address, port)) return port;
  }
  throw unavailable(`no free port for a page server on ${address}`);
}

export async function listCheckpoints(
  deps: CheckpointDeps,
  ref: string,
  dir?: string | null,
): Promise<Array<{ Name: string }>> {
  const base = checkpointDir(deps, deps.get(ref), dir);
  const names = await fsp.readdir(base).catch(() => [] as string[]);
  return names
    .filter((n) => existsSync(join(base, n, 'berth.json')))
    .sort()
    .map((Name) => ({ Name }));
}

/**
 * Removes a checkpoint (a corrupt one too: that is how it is cleaned up). A post-copy checkpoint
 * still serving its pages: removing it ends the server, and the stopped process goes on (how a
 * migration that failed before the target resumed is rolled back).
 */
export async function removeCheckpoint(
  deps: CheckpointDeps,
  ref: string,
  name: string,
  dir?: string | null,
): Promise<void> {
  const c = deps.get(ref);
  checkName(name);
  const path = join(checkpointDir(deps, c, dir), name);
  if (!existsSync(join(path, 'berth.json')))
    throw notFound(`checkpoint ${name} does not exist for container ${c.name}`);
  if (await deps.cancelPageServer(c.id, name)) deps.setManuallyStopped(c.id, false);
  await fsp.rm(path, { recursive: true, force: true });
}

/** What `start --checkpoint` needs: the images (checked) and the addresses to keep. */
export async function restoreOf(
  deps: CheckpointDeps,
  c: ContainerView,
  name: string,
  dir?: string | null,
): Promise<RestorePlan> {
  const { path, meta } = await readCheckpoint(deps, c, name, dir);
  if (meta.preDump) throw invalidArgument(`checkpoint ${name} is a pre-dump: restore the checkpoint made after it`);
  if (!existsSync(join(path, 'inventory.img')))
    throw invalidArgument(`checkpoint ${name} of container ${c.name} is incomplete (no CRIU inventory)`);
  deps.check(c, 'restore');
  return {
    imagePath: path,
    workPath: path,
    tcpEstablished: meta.tcpEstablished,
    addresses: meta.addresses,
    ...(meta.pageServer ? { pageServer: meta.pageServer } : {}),
  };
}
