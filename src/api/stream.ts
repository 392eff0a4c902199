/**
 * Docker's stdio stream framing. Non-TTY streams are multiplexed: each frame is an 8-byte header
 * [stream 1=stdout 2=stderr, 0, 0, 0, uint32 BE length] and the payload. TTY streams are raw.
 */
import { invalidArgument } from '../base/errors.js';
import { Writable, type Duplex } from 'node:stream';

export const STDOUT = 1;
export const STDERR = 2;

export function frame(stream: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(8);
  h[0] = stream;
  h.writeUInt32BE(payload.length, 4);
  return Buffer.concat([h, payload]);
}

/** A hijacked connection or a streaming HTTP response, as one writable/readable pair. */
export interface IoStream {
  write(b: Buffer): void;
  end(): void;
  /** Client input (stdin), present on hijacked connections. */
  input: NodeJS.ReadableStream | null;
  onClose(cb: () => void): void;
  readonly closed: boolean;
  /**
   * Backpressure: null when the peer keeps up, else a promise that settles once what was written
   * has gone out (or the connection closed). A producer that can wait (save, logs) awaits it
   * instead of buffering without bound.
   */
  drain(): Promise<void> | null;
}

/** `drain()` of a writable: null when it takes more now, else when it drains or closes. */
export function drainOf(
  w: NodeJS.WritableStream & { writableNeedDrain?: boolean; destroyed?: boolean },
): Promise<void> | null {
  if (!w.writableNeedDrain || w.destroyed) return null;
  return new Promise((resolve) => {
    const done = () => {
      w.off('drain', done);
      w.off('close', done);
      resolve();
    };
    w.once('drain', done);
    w.once('close', done);
  });
}

/**
 * A Writable into a streamed response with backpressure: a chunk is taken only once the client
 * has taken the one before (the producer — tar, save, a checkpoint export — waits instead of
 * buffering without bound), and writes fail once the client has gone (the producer stops).
 */
export function responseSink(io: IoStream): Writable {
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      if (io.closed) return cb(new Error('the client closed the connection'));
      io.write(chunk);
      const wait = io.drain();
      if (wait) void wait.then(() => cb(io.closed ? new Error('the client closed the connection') : null));
      else cb();
    },
  });
  // a client gone mid-stream stops the producer (its writes fail); once the producer is done, a
  // close is nothing to report, and an 'error' with nobody listening must not end the daemon
  sink.on('error', () => undefined);
  io.onClose(() => {
    if (!sink.writableFinished) sink.destroy(new Error('the client closed the connection'));
  });
  return sink;
}

export function writerFor(io: IoStream, tty: boolean): (s: 'stdout' | 'stderr', b: Buffer) => void {
  return tty ? (_s, b) => io.write(b) : (s, b) => io.write(frame(s === 'stderr' ? STDERR : STDOUT, b));
}

export function socketIo(sock: Duplex): IoStream {
  let closed = false;
  const closers: Array<() => void> = [];
  const fire = () => {
    if (closed) return;
    closed = true;
    for (const c of closers) c();
  };
  sock.on('close', fire);
  sock.on('error', fire);
  return {
    write: (b) => {
      if (!closed) sock.write(b);
    },
    end: () => {
      if (!closed) sock.end();
    },
    input: sock,
    onClose: (cb) => closers.push(cb),
    drain: () => (closed ? null : drainOf(sock)),
    get closed() {
      return closed;
    },
  };
}

/**
 * Detach key sequence (`ctrl-p,ctrl-q` default; `ctrl-<a-z@[\\]^_>` or single characters).
 * Returns a filter for stdin chunks that reports when the sequence was typed.
 */
export function parseDetachKeys(spec: string): number[] {
  const keys = (spec || 'ctrl-p,ctrl-q').split(',').map((k) => k.trim());
  return keys.map((k) => {
    const m = /^ctrl-(.)$/i.exec(k);
    if (m) {
      const c = m[1]!.toLowerCase();
      if (c >= 'a' && c <= 'z') return c.charCodeAt(0) - 96;
      const map: Record<string, number> = { '@': 0, '[': 27, '\\': 28, ']': 29, '^': 30, _: 31 };
      const v = map[c];
      if (v !== undefined) return v;
    } else if (k.length === 1) return k.charCodeAt(0);
    throw invalidArgument(`Invalid detach keys (${spec}) provided`);
  });
}

export class DetachFilter {
  private matched = 0;
  constructor(private readonly keys: number[]) {}
  /** Returns the bytes to forward and whether the detach sequence completed. */
  feed(chunk: Buffer): { pass: Buffer; detach: boolean } {
    const out: number[] = [];
    for (const byte of chunk) {
      if (byte === this.keys[this.matched]) {
        this.matched++;
        if (this.matched === this.keys.length) return { pass: Buffer.from(out), detach: true };
        continue;
      }
      if (this.matched > 0) out.push(...this.keys.slice(0, this.matched));
      this.matched = 0;
      if (byte === this.keys[0]) this.matched = 1;
      else out.push(byte);
    }
    return { pass: Buffer.from(out), detach: false };
  }
}
