/**
 * The CRI's CheckpointContainer (KEP 2008, "forensic container checkpointing"): a running k8s.io
 * container is checkpointed with CRIU leaving it running, and berth's own export archive of that
 * checkpoint (checkpoint/archive.ts, the format `berth restore --import` reads; not CRI-O's
 * checkpointctl layout) is written to the caller's `location`. Its HostConfig joins the pod's infra
 * (`container:<id>`), so restoring it is not done yet (cri/README.md). The file is written safely: under a
 * temporary name created exclusively (O_EXCL|O_NOFOLLOW, 0600) in the existing directory of
 * `location`, synced, then hard-linked to `location` (link(2) never replaces and never follows a
 * symlink there) and the temporary name removed. On any failure, or when `signal` ends it, nothing
 * is left (no file, no checkpoint in the container's directory) and the container still runs.
 */
import { randomBytes } from 'node:crypto';
import {
  close as closeCb,
  constants,
  createWriteStream,
  fsync as fsyncCb,
  open as openCb,
  promises as fsp,
} from 'node:fs';
import { promisify } from 'node:util';
import { basename, dirname, isAbsolute, join, normalize } from 'node:path';
import { alreadyExists, errorMessage, invalidArgument, isBerthError, unavailable } from '../base/errors.js';
import * as verbs from '../checkpoint/checkpoints.js';
import * as archive from '../checkpoint/archive.js';
import { checkpointDeps } from './checkpoint.js';
import type { Engine } from './engine.js';

const NS = 'k8s.io' as const;
const open = promisify(openCb);
const fsync = promisify(fsyncCb);
const close = promisify(closeCb);

/** The checks on `location` before anything is done: absolute, clean, in an existing directory, not there yet. */
async function checkLocation(location: string): Promise<string> {
  if (!location) throw invalidArgument('location is required');
  if (location.includes('\0')) throw invalidArgument('location: a path without NUL bytes');
  if (!isAbsolute(location)) throw invalidArgument(`location ${JSON.stringify(location)}: an absolute path`);
  if (location.split('/').includes('..') || normalize(location) !== location || location.endsWith('/'))
    throw invalidArgument(`location ${JSON.stringify(location)}: a clean path to a file (no '..', '//', './')`);
  const dir = dirname(location);
  const st = await fsp.stat(dir).catch(() => null);
  if (!st?.isDirectory()) throw invalidArgument(`location ${location}: directory ${dir} does not exist`);
  if (await fsp.lstat(location).catch(() => null)) throw alreadyExists(`location ${location} already exists`);
  return dir;
}

/**
 * Checkpoints k8s.io container `id` (running) to an archive at `location`. `signal` (the request's
 * deadline) ends CRIU and the export; what was made is removed and the error thrown.
 */
export async function checkpointToFile(e: Engine, id: string, location: string, signal: AbortSignal): Promise<void> {
  const dir = await checkLocation(location);
  const rec = e.store.get(id, NS);
  const deps = checkpointDeps(e, NS);
  const name = `cri-${randomBytes(8).toString('hex')}`;
  const tmp = join(dir, `.${basename(location)}.berth-${randomBytes(6).toString('hex')}`);
  let made = false;
  const aborted = () => signal.aborted;
  try {
    await verbs.createCheckpoint(deps, rec.id, { name, exit: false, tcpEstablished: false, signal });
    made = true;
    if (aborted()) throw unavailable('checkpoint: the deadline passed');
    const fd = await open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
    try {
      // a plain fd: a FileHandle's stream with autoClose off leaves the handle's sync/close pending forever
      const out = createWriteStream('', { fd, autoClose: false });
      const stop = () => out.destroy(new Error('the deadline passed'));
      signal.addEventListener('abort', stop, { once: true });
      try {
        await archive.exportCheckpoint(deps, rec.id, name, out, {});
        await new Promise<void>((resolve, reject) => {
          out.once('error', reject);
          out.end(() => resolve());
        });
      } finally {
        signal.removeEventListener('abort', stop);
      }
      if (aborted()) throw unavailable('checkpoint export: the deadline passed');
      await fsync(fd);
    } finally {
      await close(fd);
    }
    await fsp.link(tmp, location).catch((err: unknown) => {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw alreadyExists(`location ${location} already exists`);
      throw unavailable(`location ${location}: ${errorMessage(err)}`);
    });
  } catch (err) {
    if (isBerthError(err) || aborted()) throw err;
    throw unavailable(`checkpoint of ${rec.id}: ${errorMessage(err)}`, err);
  } finally {
    await fsp.rm(tmp, { force: true });
    if (made) await verbs.removeCheckpoint(deps, rec.id, name).catch(() => undefined);
  }
}
