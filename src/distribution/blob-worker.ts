/**
 * A worker thread that downloads one layer blob into a file (blob-fetch.ts is its other half):
 * GET (following redirects; the Authorization header only to the registry's own origin), size
 * and digest checked as bytes go by, gunzipped when the blob is gzip, the uncompressed bytes
 * hashed (the diff id) and written with batched writev. Nothing of it runs on the daemon's event
 * loop: no sha256, no HTTP parsing, and no per-chunk Buffers in the daemon's heap (whose major
 * GCs, triggered by the external memory of 1 GiB of chunks, were a third of berthd's CPU in a pull).
 * The worker never decides what lands: it answers the diff digest and size, and the daemon checks
 * them against the config and renames the file into content (or removes it).
 */
import { createHash, type Hash } from 'node:crypto';
import { closeSync, openSync, writeSync, writevSync } from 'node:fs';
import { request as httpRequest, type ClientRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { parentPort } from 'node:worker_threads';
import { createGunzip, type Gunzip } from 'node:zlib';

export interface BlobJob {
  id: number;
  url: string;
  /** the registry's origin: the only one the Authorization header goes to */
  origin: string;
  auth: string | null;
  /** the ingest file to write (created here, O_EXCL) */
  path: string;
  digest: string;
  size: number;
  /** hash the blob itself too (a compressed layer, or a digest that is not the diff id's sha256) */
  hashBlob: boolean;
  /** progress: a message at least this many bytes apart */
  step: number;
  /** no byte for this long: the download fails */
  idleMs: number;
}

/** What a job ends with: a status other than 200 (nothing read), or the uncompressed bytes' digest and size. */
export interface BlobDone {
  status: number;
  /** a 401's WWW-Authenticate */
  challenge?: string;
  diffDigest?: string;
  diffSize?: number;
}

export type BlobReply =
  { id: number; n: number } | { id: number; done: BlobDone } | { id: number; error: string; invalid: boolean };

class Invalid extends Error {}

const BATCH = 1 << 20;

function get(url: URL, j: BlobJob, redirects: number): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = {};
    if (j.auth && url.origin === j.origin) headers['Authorization'] = j.auth;
    const req = (url.protocol === 'https:' ? httpsRequest : httpRequest)(url, { headers }, (res) => {
      const status = res.statusCode ?? 0;
      if (status >= 300 && status < 400 && res.headers.location && redirects > 0) {
        res.resume();
        get(new URL(res.headers.location, url), j, redirects - 1).then(resolve, reject);
        return;
      }
      resolve(res);
    });
    req.setTimeout(j.idleMs, () => req.destroy(new Error(`no data from ${url.host} for ${j.idleMs / 1000} s`)));
    req.on('error', (e) => reject(new Error(`Get "${url}": ${e.message}`)));
    req.end();
  });
}

/** Writes every byte of `bufs` at the file's position. */
function writeAll(fd: number, bufs: Buffer[]): void {
  let w = writevSync(fd, bufs);
  if (w === bufs.reduce((a, b) => a + b.length, 0)) return;
  for (const b of bufs) {
    if (w >= b.length) {
      w -= b.length;
      continue;
    }
    let off = w;
    w = 0;
    while (off < b.length) off += writeSync(fd, b, off);
  }
}

async function run(j: BlobJob): Promise<BlobDone> {
  const res = await get(new URL(j.url), j, 3);
  if (res.statusCode !== 200) {
    res.destroy();
    const challenge = res.headers['www-authenticate'];
    return { status: res.statusCode ?? 0, ...(challenge ? { challenge: String(challenge) } : {}) };
  }
  const alg = j.digest.startsWith('sha512:') ? 'sha512' : 'sha256';
  const blobHash: Hash | null = j.hashBlob ? createHash(alg) : null;
  const diffHash = createHash('sha256');
  const fd = openSync(j.path, 'wx', 0o644);
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  let diffSize = 0;
  const out = (b: Buffer): void => {
    diffHash.update(b);
    diffSize += b.length;
    pending.push(b);
    pendingBytes += b.length;
    if (pendingBytes >= BATCH) flush();
  };
  const flush = (): void => {
    if (!pending.length) return;
    writeAll(fd, pending);
    pending = [];
    pendingBytes = 0;
  };
  try {
    await new Promise<void>((resolve, reject) => {
      let n = 0;
      let posted = 0;
      let head: Buffer | null = Buffer.alloc(0); // the first bytes, until gzip or not is known
      let gz: Gunzip | null = null;
      let failed = false;
      const fail = (e: Error): void => {
        if (failed) return;
        failed = true;
        res.destroy();
        gz?.destroy();
        reject(e);
      };
      const feed = (b: Buffer): void => {
        if (gz) {
          if (!gz.write(b)) {
            res.pause();
            gz.once('drain', () => res.resume());
          }
        } else out(b);
      };
      const start = (b: Buffer): void => {
        if (b.length >= 2 && b[0] === 0x1f && b[1] === 0x8b) {
          gz = createGunzip();
          gz.on('data', (o: Buffer) => {
            try {
              out(o);
            } catch (e) {
              fail(e as Error); // ENOSPC, EIO
            }
          });
          gz.on('error', (e) => fail(new Invalid(`invalid gzip in blob ${j.digest}: ${e.message}`)));
        }
        if (b.length) feed(b);
      };
      const finish = (): void => {
        const got = blobHash ? `${alg}:${blobHash.digest('hex')}` : j.digest;
        if (got !== j.digest || n !== j.size)
          return fail(new Invalid(`blob ${j.digest} failed verification: got ${got} (${n} bytes, expected ${j.size})`));
        if (!gz) return resolve();
        gz.once('end', () => resolve());
        gz.end();
      };
      res.on('data', (c: Buffer) => {
        if (failed) return;
        n += c.length;
        if (n > j.size) return fail(new Invalid(`blob ${j.digest} is longer than its ${j.size} bytes`));
        blobHash?.update(c);
        try {
          if (head) {
            head = Buffer.concat([head, c]);
            if (head.length < 2) return;
            const h = head;
            head = null;
            start(h);
          } else feed(c);
        } catch (e) {
          return fail(e as Error);
        }
        if (n - posted >= j.step || n === j.size) {
          posted = n;
          parentPort!.postMessage({ id: j.id, n } satisfies BlobReply);
        }
      });
      res.on('end', () => {
        if (failed) return;
        if (head) {
          const h = head;
          head = null;
          start(h);
        }
        finish();
      });
      res.on('error', (e) => fail(e));
      // from here on the deadline is this body's: no byte for idleMs fails the download
      const req = (res as IncomingMessage & { req: ClientRequest }).req;
      req.removeAllListeners('timeout');
      req.setTimeout(j.idleMs, () =>
        fail(new Error(`fetching blob ${j.digest}: no data from the registry for ${j.idleMs / 1000} s`)),
      );
      res.on('close', () => {
        if (!res.complete) fail(new Error(`fetching blob ${j.digest}: the connection closed after ${n} bytes`));
      });
    });
    flush();
  } finally {
    closeSync(fd);
  }
  return { status: 200, diffDigest: `sha256:${diffHash.digest('hex')}`, diffSize };
}

parentPort?.on('message', (j: BlobJob) => {
  run(j).then(
    (done) => parentPort!.postMessage({ id: j.id, done }),
    (e: unknown) =>
      parentPort!.postMessage({ id: j.id, error: (e as Error).message ?? String(e), invalid: e instanceof Invalid }),
  );
});
