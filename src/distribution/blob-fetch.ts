/**
 * Layer downloads on worker threads (blob-worker.ts): a pool of at most four workers, made on
 * first use and kept (unref'd: an idle one never holds the daemon up). The daemon's event loop
 * only sees a progress message per bar cell and the final digest.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { invalidArgument, unavailable } from '../base/errors.js';
import type { BlobDone, BlobJob, BlobReply } from './blob-worker.js';

const WORKER = new URL('./blob-worker.js', import.meta.url);
const MAX_WORKERS = 4;
/** A download that brings no byte for this long fails (BERTH_PULL_IDLE_SECONDS). */
const IDLE_MS = (Number(process.env['BERTH_PULL_IDLE_SECONDS']) || 300) * 1000;

interface Job {
  job: BlobJob;
  onBytes: (n: number) => void;
  resolve: (d: BlobDone) => void;
  reject: (e: Error) => void;
}

const idle: Worker[] = [];
const busy = new Map<Worker, Job>();
const queue: Job[] = [];
let nextId = 1;

/** Whether downloads can go to workers (the worker's file is there: not in a bundle). */
export const workersAvailable = (): boolean =>
  process.env['BERTH_PULL_WORKERS'] !== '0' && existsSync(fileURLToPath(WORKER));

function spawn(): Worker {
  const w = new Worker(WORKER);
  const fail = (e: Error): void => {
    const j = busy.get(w);
    busy.delete(w);
    const i = idle.indexOf(w);
    if (i >= 0) idle.splice(i, 1);
    j?.reject(unavailable(`layer download worker failed: ${e.message}`));
    pump();
  };
  w.on('message', (m: BlobReply) => {
    const j = busy.get(w);
    if (!j || m.id !== j.job.id) return;
    if ('n' in m) return j.onBytes(m.n);
    busy.delete(w);
    idle.push(w);
    w.unref();
    if ('done' in m) j.resolve(m.done);
    else j.reject(m.invalid ? invalidArgument(m.error) : unavailable(m.error));
    pump();
  });
  w.on('error', fail);
  w.on('exit', (code) => fail(new Error(`exited with ${code}`)));
  return w;
}

function pump(): void {
  while (queue.length) {
    const w = idle.pop() ?? (busy.size + idle.length < MAX_WORKERS ? spawn() : null);
    if (!w) return;
    const j = queue.shift()!;
    busy.set(w, j);
    w.ref();
    w.postMessage(j.job);
  }
}

/**
 * Downloads `url` into the new file `path` on a worker: the blob checked against `digest` and
 * `size` (hashed only with `hashBlob`), gunzipped when it is gzip. Resolves with the status when
 * it is not 200 (with a 401's challenge), else with the uncompressed bytes' sha256 and size. The
 * caller removes `path` on failure.
 */
export function fetchBlobToFile(
  o: Omit<BlobJob, 'id' | 'step' | 'idleMs'>,
  onBytes: (n: number) => void,
): Promise<BlobDone> {
  return new Promise((resolve, reject) => {
    const job: BlobJob = { ...o, id: nextId++, step: Math.max(512 * 1024, Math.ceil(o.size / 50)), idleMs: IDLE_MS };
    queue.push({ job, onBytes, resolve, reject });
    pump();
  });
}
