/**
 * Removing directory trees off the event loop in one piece: a worker thread (janitor-worker.ts)
 * that runs `rmSync` on each tree it is sent, made on first use and unref'd when idle.
 *
 * Why not `fsp.rm`: through libuv's pool every lstat, unlink and rmdir is a round trip (a futex
 * wake of a pool thread, an eventfd write, an epoll wake of the loop, and promise work on the
 * main thread). A removed container's dir and writable layer are ~40 of them: about as much CPU
 * as the calls themselves, spent beside the next container's create and start. Why not `rmSync`
 * on the main thread: on the root's disk under load one removal held the loop ~40 ms.
 *
 * Removal is best effort like `fsp.rm(path, { recursive: true, force: true })`: nothing when the
 * path is not there. When the worker cannot run (its file missing in a bundle, or it died), the
 * trees go through `fsp.rm` as before.
 */
import { existsSync, promises as fsp } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { JanitorJob, JanitorReply } from './janitor-worker.js';

const WORKER = new URL('./janitor-worker.js', import.meta.url);

let worker: Worker | null = null;
let usable: boolean | undefined;
const pending = new Map<number, { resolve: () => void; reject: (e: Error) => void }>();
let nextId = 1;

function janitor(): Worker | null {
  if (worker) return worker;
  usable ??= process.env['BERTH_JANITOR'] !== '0' && existsSync(fileURLToPath(WORKER));
  if (!usable) return null;
  const w = new Worker(WORKER);
  w.unref();
  const fail = (e: Error): void => {
    if (worker === w) worker = null;
    for (const p of pending.values()) p.reject(e);
    pending.clear();
  };
  w.on('message', (m: JanitorReply) => {
    const p = pending.get(m.id);
    if (!p) return;
    pending.delete(m.id);
    if (!pending.size) w.unref();
    if (m.error === undefined) p.resolve();
    else p.reject(Object.assign(new Error(m.error), { code: m.code }));
  });
  w.on('error', fail);
  w.on('exit', (code) => fail(new Error(`the janitor thread exited with ${code}`)));
  worker = w;
  return w;
}

/** Removes the tree at `path` (a file, or a directory and all below it); nothing when it is not there. */
export function removeTree(path: string): Promise<void> {
  const w = janitor();
  if (!w) return fsp.rm(path, { recursive: true, force: true });
  const id = nextId++;
  return new Promise<void>((resolve, reject) => {
    pending.set(id, { resolve, reject });
    w.ref(); // a removal in flight holds the daemon up, as a pool call does
    w.postMessage({ id, path } satisfies JanitorJob);
  }).catch((e: Error & { code?: string }) =>
    // the worker died under this job: the tree goes the pool's way
    e.code === undefined ? fsp.rm(path, { recursive: true, force: true }) : Promise.reject(e),
  );
}
