/**
 * The registry's two byte paths, written for CPU per byte (a fresh `berth registry` serving a
 * 100 MiB skopeo copy spends most of its time here, before V8 has optimized anything):
 *
 * - `appendBody`: a request body appended to an upload's data file. Each chunk node:http hands
 *   over is hashed and kept until about 1 MiB is pending, then the batch goes to the file in one
 *   `writev` on libuv's pool while the next batch fills (larger batches keep more chunks alive
 *   until a GC, which a fresh process pays in page faults). One write at a time: two on the
 *   pool's threads can land out of order (seen under load: a blob whose bytes did not match the
 *   digest its hash had verified). The request is paused while a full batch waits. No stream
 *   pipeline: a few lines of JS per chunk, no Writable machinery.
 * - `sendFile`: a byte range of a blob file written to a response from a small pool of reused
 *   1 MiB buffers (read the next while the last is being sent). A buffer goes back to the pool
 *   only once the socket has taken it (the write's callback), so nothing is sent from a buffer
 *   being refilled; no per-read Buffer (a `createReadStream` of 1 MiB reads maps fresh memory
 *   for each, which a fresh process pays in page faults).
 */
import type { Hash } from 'node:crypto';
import { close, open, read, writev } from 'node:fs';
import type { ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';

/** Bytes pending before a batch goes to the file. */
const BATCH = 1 << 20;

/**
 * Appends `body` to the file at `path`, hashing every byte into `hash` in order; resolves with
 * the number of bytes appended once all of them are in the file. A failure to write (ENOSPC,
 * EIO) or a body cut short rejects; then `hash` may hold bytes the file does not (the caller
 * drops it and rehashes the file), and what was written stays (the caller owns the file).
 */
export function appendBody(path: string, body: Readable, hash: Hash): Promise<number> {
  return new Promise((resolve, reject) => {
    let fd = -1;
    let n = 0;
    let pending: Buffer[] = [];
    let pendingBytes = 0;
    let writes = 0; // batches out: at most one, so the file gets them in order (O_APPEND on the pool's threads)
    let ended = false; // the body's last byte arrived
    let finished = false; // no more bytes are taken: the body ended and is written, or it failed
    let closed = false;
    let failure: Error | null = null;
    /** Settles once no write is out: the fd is never closed under a write. */
    const maybeClose = (): void => {
      if (!finished || writes > 0 || closed) return;
      closed = true;
      const settle = () => (failure ? reject(failure) : resolve(n));
      if (fd >= 0) close(fd, settle);
      else settle();
    };
    const finish = (e: Error | null): void => {
      failure ??= e;
      finished = true;
      body.off('data', onData);
      maybeClose();
    };
    const flush = (): void => {
      if (fd < 0 || finished) return;
      if (pendingBytes > 0 && writes === 0) {
        const bufs = pending;
        pending = [];
        pendingBytes = 0;
        writes++;
        // libuv writes the whole vector (it loops on short writes)
        writev(fd, bufs, (err) => {
          writes--;
          if (err) return finish(err);
          if (finished) return maybeClose();
          if (!ended) body.resume();
          flush();
        });
      }
      if (ended && writes === 0 && pendingBytes === 0) finish(null);
    };
    const onData = (c: Buffer): void => {
      n += c.length;
      hash.update(c);
      pending.push(c);
      pendingBytes += c.length;
      if (pendingBytes >= BATCH) {
        flush();
        if (pendingBytes >= BATCH) body.pause(); // a batch is being written and the next is full
      }
    };
    body.on('data', onData);
    body.pause(); // until the file is open
    body.once('end', () => {
      ended = true;
      flush();
    });
    body.once('error', (e) => finish(e));
    body.once('close', () => {
      if (!ended) finish(new Error(`the request body ended after ${n} bytes`));
    });
    open(path, 'a', (err, f) => {
      if (closed) return void (err || close(f, () => undefined));
      if (err) return finish(err);
      fd = f;
      body.resume();
      flush();
    });
  });
}

const CHUNK = 1 << 20;
/** Buffers the socket has finished with, for the next read (one response uses two at a time). */
const pool: Buffer[] = [];
const POOL_MAX = 8;

/**
 * Writes bytes `start`..`end` (inclusive) of the file at `path` to `res`, whose headers the caller
 * has set, then ends it. A file shorter than the range, or a read error, destroys the response
 * (the client sees a body shorter than its Content-Length). One read at a time, in order; the
 * next is read while the last is being sent.
 */
export function sendFile(res: ServerResponse, path: string, start: number, end: number): void {
  let fd = -1;
  let pos = start;
  let reading = false;
  let sending = 0; // buffers the socket still holds
  let done = false;
  const finish = (e: Error | null): void => {
    if (done) return;
    done = true;
    if (fd >= 0) close(fd, () => undefined);
    if (e) res.destroy(e);
    else if (!res.destroyed) res.end();
  };
  // the client went away: stop reading (a buffer still held by the socket is left to the GC)
  res.once('close', () => finish(null));
  const next = (): void => {
    if (done || reading) return;
    if (pos > end) {
      if (sending === 0) finish(null);
      return;
    }
    if (sending >= 2) return;
    const buf = pool.pop() ?? Buffer.allocUnsafeSlow(CHUNK);
    const want = Math.min(CHUNK, end - pos + 1);
    const at = pos;
    pos += want;
    reading = true;
    read(fd, buf, 0, want, at, (e, got) => {
      reading = false;
      if (done) return;
      if (e || got !== want) return finish(e ?? new Error(`blob file ${path} is shorter than its range`));
      sending++;
      res.write(buf.subarray(0, got), (we) => {
        sending--;
        if (we) return finish(we);
        if (pool.length < POOL_MAX) pool.push(buf);
        next();
      });
      next();
    });
  };
  open(path, 'r', (err, f) => {
    if (done) return void (err || close(f, () => undefined));
    if (err) return finish(err);
    fd = f;
    next();
  });
}
