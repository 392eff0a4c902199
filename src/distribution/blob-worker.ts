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
import { connect } from 'node:net';
import { request as httpsRequest } from 'node:https';
import { parentPort } from 'node:worker_threads';
import { createGunzip, type Gunzip } from 'node:zlib';

export interface BlobJob {
  id: number;
  url: string;
  /** the registry's origin: the only one the Authorization header goes to */
  origin: string;
  auth: string | null;
  /** the ingest file to write (made or emptied here; the caller removes it on failure) */
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

/**
 * Where a blob's body goes, whichever transport reads it: counted and checked against the
 * descriptor's size, hashed when asked, gunzipped when it starts with gzip's magic, the
 * uncompressed bytes hashed (the diff id) and written to `fd`. `data` takes a chunk that may be
 * reused once it returns (`transient`: the plain path writes it at once, gzip copies it) and
 * answers false when the reader should wait for `onDrain`.
 */
class Sink {
  n = 0;
  private posted = 0;
  private head: Buffer | null = Buffer.alloc(0);
  private gz: Gunzip | null = null;
  private readonly alg: 'sha256' | 'sha512';
  private readonly blobHash: Hash | null;
  private readonly diffHash = createHash('sha256');
  private diffSize = 0;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  /** set when the gunzip stream fails: the transport stops at its next chunk */
  error: Error | null = null;

  constructor(
    private readonly j: BlobJob,
    private readonly fd: number,
  ) {
    this.alg = j.digest.startsWith('sha512:') ? 'sha512' : 'sha256';
    this.blobHash = j.hashBlob ? createHash(this.alg) : null;
  }

  /** Throws Invalid past the descriptor's size, or a write's error (ENOSPC, EIO). */
  data(c: Buffer, transient: boolean): boolean {
    if (this.error) throw this.error;
    this.n += c.length;
    if (this.n > this.j.size) throw new Invalid(`blob ${this.j.digest} is longer than its ${this.j.size} bytes`);
    this.blobHash?.update(c);
    let more = true;
    if (this.head) {
      this.head = Buffer.concat([this.head, c]); // a copy: the chunk may be reused
      if (this.head.length >= 2) more = this.start();
    } else more = this.feed(c, transient);
    if (this.n - this.posted >= this.j.step || this.n === this.j.size) {
      this.posted = this.n;
      parentPort!.postMessage({ id: this.j.id, n: this.n } satisfies BlobReply);
    }
    return more;
  }

  onDrain(f: () => void): void {
    if (this.gz) this.gz.once('drain', f);
    else f();
  }

  private start(): boolean {
    const h = this.head!;
    this.head = null;
    if (h.length >= 2 && h[0] === 0x1f && h[1] === 0x8b) {
      const gz = createGunzip();
      this.gz = gz;
      gz.on('data', (o: Buffer) => {
        try {
          this.out(o, false);
        } catch (e) {
          this.error = e as Error; // ENOSPC, EIO
          gz.destroy();
        }
      });
      gz.on('error', (e) => (this.error ??= new Invalid(`invalid gzip in blob ${this.j.digest}: ${e.message}`)));
    }
    return h.length ? this.feed(h, false) : true;
  }

  private feed(b: Buffer, transient: boolean): boolean {
    if (this.gz) return this.gz.write(transient ? Buffer.from(b) : b);
    this.out(b, transient);
    return true;
  }

  private out(b: Buffer, transient: boolean): void {
    this.diffHash.update(b);
    this.diffSize += b.length;
    if (transient) {
      this.flush();
      writeAll(this.fd, [b]);
      return;
    }
    this.pending.push(b);
    this.pendingBytes += b.length;
    if (this.pendingBytes >= BATCH) this.flush();
  }

  private flush(): void {
    if (!this.pending.length) return;
    writeAll(this.fd, this.pending);
    this.pending = [];
    this.pendingBytes = 0;
  }

  /** The body ended: checks size and blob digest, drains the gunzip, answers the diff digest and size. */
  async end(): Promise<BlobDone> {
    if (this.error) throw this.error;
    if (this.head) this.start();
    const got = this.blobHash ? `${this.alg}:${this.blobHash.digest('hex')}` : this.j.digest;
    if (got !== this.j.digest || this.n !== this.j.size)
      throw new Invalid(
        `blob ${this.j.digest} failed verification: got ${got} (${this.n} bytes, expected ${this.j.size})`,
      );
    const gz = this.gz;
    if (gz)
      await new Promise<void>((resolve, reject) => {
        gz.once('end', resolve);
        gz.once('error', () => reject(this.error));
        gz.once('close', () => (this.error ? reject(this.error) : resolve()));
        gz.end();
      });
    if (this.error) throw this.error;
    this.flush();
    return { status: 200, diffDigest: `sha256:${this.diffHash.digest('hex')}`, diffSize: this.diffSize };
  }

  destroy(): void {
    this.gz?.destroy();
  }
}

const stalled = (j: BlobJob) =>
  new Error(`fetching blob ${j.digest}: no data from the registry for ${j.idleMs / 1000} s`);
const cut = (j: BlobJob, n: number) => new Error(`fetching blob ${j.digest}: the connection closed after ${n} bytes`);

/** node:http (https, redirects, chunked bodies): a GET, its redirects followed. */
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
    req.setTimeout(j.idleMs, () => req.destroy(stalled(j)));
    req.on('error', (e) => reject(new Error(`Get "${url}": ${e.message}`)));
    req.end();
  });
}

function notOk(res: { statusCode?: number | undefined; headers: Record<string, unknown> }): BlobDone {
  const challenge = res.headers['www-authenticate'];
  return { status: res.statusCode ?? 0, ...(challenge ? { challenge: String(challenge) } : {}) };
}

/** The general path: node:http, each chunk a new Buffer. */
async function viaHttp(j: BlobJob, fd: number): Promise<BlobDone> {
  const res = await get(new URL(j.url), j, 3);
  if (res.statusCode !== 200) {
    res.destroy();
    return notOk(res);
  }
  const sink = new Sink(j, fd);
  await new Promise<void>((resolve, reject) => {
    let failed = false;
    const fail = (e: Error): void => {
      if (failed) return;
      failed = true;
      res.destroy();
      sink.destroy();
      reject(e);
    };
    res.on('data', (c: Buffer) => {
      if (failed) return;
      try {
        if (!sink.data(c, false)) {
          res.pause();
          sink.onDrain(() => res.resume());
        }
      } catch (e) {
        fail(e as Error);
      }
    });
    res.on('end', () => {
      if (!failed) resolve();
    });
    res.on('error', (e) => fail(e));
    // from here on the deadline is this body's: no byte for idleMs fails the download
    const req = (res as IncomingMessage & { req: ClientRequest }).req;
    req.removeAllListeners('timeout');
    req.setTimeout(j.idleMs, () => fail(stalled(j)));
    res.on('close', () => {
      if (!res.complete) fail(cut(j, sink.n));
    });
  });
  try {
    return await sink.end();
  } finally {
    sink.destroy();
  }
}

const READ_BUFFER = 1 << 20;

/**
 * The fast path, for plain HTTP (a registry on loopback or the LAN, `--insecure-registry`): one
 * GET over a socket that reads into one reused 1 MiB buffer (`onread`), so a body of any size
 * allocates nothing and is copied once (kernel to buffer; then hashed and written from it).
 * Takes a 200 with a Content-Length, or any other status with its challenge; answers null for
 * what it does not take (a redirect, a chunked or length-less 200): the caller asks again
 * through node:http.
 */
function viaSocket(j: BlobJob, fd: number): Promise<BlobDone | null> {
  const url = new URL(j.url);
  const sink = new Sink(j, fd);
  return new Promise((resolve, reject) => {
    let head: Buffer | null = Buffer.alloc(0); // the status line and headers, until the blank line
    let left = 0; // body bytes still to come
    let settled = false;
    const buffer = Buffer.allocUnsafe(READ_BUFFER);
    const finish = (e: Error | null, v?: BlobDone | null): void => {
      if (settled) return;
      settled = true;
      sock.destroy();
      if (e) {
        sink.destroy();
        reject(e);
      } else resolve(v ?? null);
    };
    const body = (c: Buffer): boolean => {
      if (c.length > left) return (finish(new Invalid(`blob ${j.digest} is longer than its ${j.size} bytes`)), false);
      left -= c.length;
      const more = sink.data(c, true);
      if (left === 0) {
        sock.removeAllListeners('close');
        sink.end().then(
          (d) => finish(null, d),
          (e: Error) => finish(e),
        );
        return false;
      }
      if (!more) {
        sock.pause();
        sink.onDrain(() => sock.resume());
      }
      return true;
    };
    const headers = (raw: string): boolean => {
      const lines = raw.split('\r\n');
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '');
      if (!m) return (finish(new Error(`fetching blob ${j.digest}: not an HTTP response`)), false);
      const h: Record<string, string> = {};
      for (const l of lines.slice(1)) {
        const i = l.indexOf(':');
        if (i > 0) h[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
      }
      const status = Number(m[1]);
      if (status !== 200)
        return (finish(null, status >= 300 && status < 400 ? null : notOk({ statusCode: status, headers: h })), false);
      const len = h['content-length'];
      if (h['transfer-encoding'] || !len || !/^\d+$/.test(len)) return (finish(null, null), false);
      left = Number(len);
      if (left > j.size) return (finish(new Invalid(`blob ${j.digest} is longer than its ${j.size} bytes`)), false);
      return true;
    };
    const sock = connect({
      host: url.hostname.replace(/^\[|\]$/g, ''),
      port: Number(url.port || 80),
      onread: {
        buffer,
        callback: (n: number, buf: Uint8Array): boolean => {
          if (settled) return false;
          try {
            let c = Buffer.from(buf.buffer, buf.byteOffset, n);
            if (head) {
              head = Buffer.concat([head, c]);
              const end = head.indexOf('\r\n\r\n');
              if (end < 0) {
                if (head.length > 64 << 10)
                  finish(new Error(`fetching blob ${j.digest}: response headers over 64 KiB`));
                return true;
              }
              const rest = head.subarray(end + 4);
              const ok = headers(head.subarray(0, end).toString('latin1'));
              head = null;
              if (!ok) return false;
              if (!rest.length) return left === 0 ? body(rest) : true;
              c = rest; // a copy already (concat)
            }
            return body(c);
          } catch (e) {
            finish(e as Error);
            return false;
          }
        },
      },
    });
    sock.setNoDelay(true);
    sock.setTimeout(j.idleMs, () => finish(stalled(j)));
    sock.on('error', (e) => finish(new Error(`Get "${url}": ${e.message}`)));
    sock.on('close', () => finish(cut(j, sink.n)));
    sock.on('connect', () => {
      const auth = j.auth && url.origin === j.origin ? `Authorization: ${j.auth}\r\n` : '';
      sock.write(
        `GET ${url.pathname}${url.search} HTTP/1.1\r\nHost: ${url.host}\r\nUser-Agent: berth\r\n${auth}Connection: close\r\n\r\n`,
      );
    });
  });
}

async function run(j: BlobJob): Promise<BlobDone> {
  const plain = new URL(j.url).protocol === 'http:';
  let fd = openSync(j.path, 'w', 0o644); // a retry after a 401 writes it again
  try {
    if (plain) {
      const r = await viaSocket(j, fd);
      if (r) return r;
      // a redirect or a chunked body: again through node:http, from an empty file
      closeSync(fd);
      fd = openSync(j.path, 'w', 0o644);
    }
    return await viaHttp(j, fd);
  } finally {
    closeSync(fd);
  }
}

parentPort?.on('message', (j: BlobJob) => {
  run(j).then(
    (done) => parentPort!.postMessage({ id: j.id, done }),
    (e: unknown) =>
      parentPort!.postMessage({ id: j.id, error: (e as Error).message ?? String(e), invalid: e instanceof Invalid }),
  );
});
