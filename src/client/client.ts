/**
 * A minimal Engine API client over a unix socket. It speaks HTTP/1.1 itself, one request per
 * connection: node:http would cost the CLI ~8 ms of start-up (its modules, and a host check that
 * compiles the IPv6 regex) for nothing a unix socket needs. Errors from the daemon become
 * ApiError with Docker's message; hijack() upgrades a connection for attach/exec and returns the
 * raw socket (paused: the reader resumes it once listening).
 */
import { connect, type Socket } from 'node:net';
import { PassThrough, Transform, type Readable } from 'node:stream';

export const API_PREFIX = '/v1.45';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** A response body, with the status and the (lower-cased) headers. */
export interface Response extends Readable {
  statusCode: number;
  headers: Record<string, string>;
}

interface RequestOptions {
  body?: unknown;
  raw?: NodeJS.ReadableStream;
  headers?: Record<string, string>;
}

interface Head {
  sock: Socket;
  status: number;
  headers: Record<string, string>;
  rest: Buffer;
}

export function socketFromHost(host: string): string {
  if (host.startsWith('unix://')) return host.slice(7);
  if (host.startsWith('/')) return host;
  throw new Error(`unsupported host ${host}: only unix:// sockets are supported`);
}

/** Frames a request body in HTTP chunks. */
const chunked = () =>
  new Transform({
    transform(c: Buffer, _e, cb) {
      cb(
        null,
        c.length ? Buffer.concat([Buffer.from(`${c.length.toString(16)}\r\n`), c, Buffer.from('\r\n')]) : undefined,
      );
    },
    flush(cb) {
      cb(null, Buffer.from('0\r\n\r\n'));
    },
  });

/** Decodes a chunked response body; `done` once the last chunk was read. */
class Dechunker {
  done = false;
  private buf: Buffer = Buffer.alloc(0);
  /** -1: reading a size line; > 0: bytes of chunk data left; 0: the CRLF after the data. */
  private left = -1;
  constructor(private readonly emit: (b: Buffer) => void) {}

  push(c: Buffer): void {
    this.buf = this.buf.length ? Buffer.concat([this.buf, c]) : c;
    while (!this.done) {
      if (this.left < 0) {
        const nl = this.buf.indexOf('\r\n');
        if (nl < 0) return;
        const size = parseInt(this.buf.subarray(0, nl).toString('latin1'), 16);
        this.buf = this.buf.subarray(nl + 2);
        if (!(size > 0)) {
          this.done = true;
          return;
        }
        this.left = size;
      } else if (this.left > 0) {
        if (!this.buf.length) return;
        const take = Math.min(this.left, this.buf.length);
        this.emit(this.buf.subarray(0, take));
        this.buf = this.buf.subarray(take);
        this.left -= take;
      } else {
        if (this.buf.length < 2) return;
        this.buf = this.buf.subarray(2);
        this.left = -1;
      }
    }
  }
}

/**
 * A response body's framing (chunked, Content-Length, or up to the close): returns what to feed the
 * socket's bytes to; it passes the body's bytes to `write` and calls `finish` at the body's end.
 */
function framer(h: Head, write: (b: Buffer) => void, finish: () => void): (b: Buffer) => void {
  if (h.headers['transfer-encoding'] === 'chunked') {
    const d = new Dechunker(write);
    return (b) => {
      d.push(b);
      if (d.done) finish();
    };
  }
  if (h.headers['content-length'] !== undefined) {
    let left = Number(h.headers['content-length']);
    return (b) => {
      write(b.subarray(0, left));
      left -= Math.min(left, b.length);
      if (left === 0) finish();
    };
  }
  return write;
}

export class Client {
  constructor(readonly socketPath: string) {}

  /** Sends the request; resolves with the response's head once it arrived. */
  private send(method: string, path: string, opts: RequestOptions, upgrade: boolean): Promise<Head> {
    return new Promise((resolve, reject) => {
      const sock = connect(this.socketPath);
      const headers: Record<string, string> = { Host: 'berth', 'User-Agent': 'berth-cli', ...(opts.headers ?? {}) };
      const payload = opts.body === undefined ? null : Buffer.from(JSON.stringify(opts.body));
      if (payload) headers['Content-Type'] = 'application/json';
      if (upgrade) Object.assign(headers, { Connection: 'Upgrade', Upgrade: 'tcp' });
      else headers['Connection'] = 'close';
      if (opts.raw) headers['Transfer-Encoding'] = 'chunked';
      else headers['Content-Length'] = String(payload?.length ?? 0);
      const head = `${method} ${API_PREFIX}${path} HTTP/1.1\r\n${Object.entries(headers)
        .map(([k, v]) => `${k}: ${v}\r\n`)
        .join('')}\r\n`;
      sock.write(payload ? Buffer.concat([Buffer.from(head, 'latin1'), payload]) : head);
      if (opts.raw) (opts.raw as Readable).pipe(chunked()).pipe(sock, { end: false });

      let buf: Buffer = Buffer.alloc(0);
      let answered = false;
      const fail = (e: NodeJS.ErrnoException) => {
        if (answered) return;
        answered = true;
        sock.destroy();
        reject(
          e.code === 'ENOENT' || e.code === 'ECONNREFUSED'
            ? new Error(`Cannot connect to the berth daemon at unix://${this.socketPath}. Is berthd running?`)
            : e,
        );
      };
      const onData = (c: Buffer) => {
        buf = buf.length ? Buffer.concat([buf, c]) : c;
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        answered = true;
        sock.off('data', onData);
        sock.off('end', onEnd);
        sock.pause();
        const [statusLine = '', ...lines] = buf.subarray(0, end).toString('latin1').split('\r\n');
        const hdrs: Record<string, string> = {};
        for (const l of lines) {
          const i = l.indexOf(':');
          if (i > 0) hdrs[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
        }
        resolve({ sock, status: Number(statusLine.split(' ')[1]), headers: hdrs, rest: buf.subarray(end + 4) });
      };
      const onEnd = () => fail(new Error('the daemon closed the connection without answering'));
      sock.on('data', onData);
      sock.on('end', onEnd);
      sock.on('error', fail);
    });
  }

  /** The response body as a stream; ends when the body does (and closes the connection). */
  private body(method: string, h: Head): Response {
    const out = new PassThrough();
    const res = Object.assign(out, { statusCode: h.status, headers: h.headers }) as PassThrough & Response;
    const { sock } = h;
    const finish = () => {
      if (!out.writableEnded) out.end();
      sock.destroy();
    };
    sock.on('error', (e) => out.destroy(e));
    out.on('close', () => sock.destroy());
    if (method === 'HEAD' || h.status === 204 || h.status === 304) {
      finish();
      return res;
    }
    const feed = framer(
      h,
      (b) => {
        if (b.length && !out.write(b)) {
          sock.pause();
          out.once('drain', () => sock.resume());
        }
      },
      finish,
    );
    sock.on('data', feed);
    sock.on('end', finish);
    if (h.rest.length) feed(h.rest);
    if (!out.writableEnded) sock.resume();
    return res;
  }

  /**
   * The whole response body as text, read off the socket without a stream in between: what json()
   * and the errors take (a PassThrough costs every `berth ps` ~1 ms of start-up, cli/README.md).
   */
  private text(method: string, h: Head): Promise<string> {
    return new Promise((resolve, reject) => {
      const { sock } = h;
      const parts: Buffer[] = [];
      let done = false;
      const finish = () => {
        if (done) return;
        done = true;
        sock.destroy();
        resolve(Buffer.concat(parts).toString());
      };
      sock.on('error', (e) => {
        if (done) return;
        done = true;
        reject(e);
      });
      if (method === 'HEAD' || h.status === 204 || h.status === 304) return finish();
      const feed = framer(
        h,
        (b) => {
          if (b.length) parts.push(b);
        },
        finish,
      );
      sock.on('data', feed);
      sock.on('end', finish);
      if (h.rest.length) feed(h.rest);
      if (!done) sock.resume();
    });
  }

  private async request(method: string, path: string, opts: RequestOptions = {}): Promise<Response> {
    const res = this.body(method, await this.send(method, path, opts, false));
    if (res.statusCode >= 400) throw apiError(res.statusCode, await readText(res));
    return res;
  }

  async json<T = unknown>(method: string, path: string, body?: unknown): Promise<T> {
    const h = await this.send(method, path, body === undefined ? {} : { body }, false);
    const text = await this.text(method, h);
    if (h.status >= 400) throw apiError(h.status, text);
    return (text ? JSON.parse(text) : undefined) as T;
  }

  /**
   * Sends the request and resolves once the daemon answered its head, with the body's text still to
   * come (`wait`: the head says the wait is set, the body comes when the container exits) and a way to
   * drop it. An error status rejects, with the daemon's message.
   */
  async pending(method: string, path: string): Promise<{ text: Promise<string>; close(): void }> {
    const h = await this.send(method, path, {}, false);
    if (h.status >= 400) throw apiError(h.status, await this.text(method, h));
    return { text: this.text(method, h), close: () => h.sock.destroy() };
  }

  /** A streaming response (logs, events, stats, save). */
  stream(method: string, path: string, opts: RequestOptions = {}): Promise<Response> {
    return this.request(method, path, opts);
  }

  /** POST with `Upgrade: tcp`; resolves with the raw socket (paused) once the daemon answered 101. */
  async hijack(path: string, body?: unknown): Promise<Socket> {
    const h = await this.send('POST', path, body === undefined ? {} : { body }, true);
    if (h.status === 101) {
      if (h.rest.length) h.sock.unshift(h.rest);
      return h.sock;
    }
    throw apiError(h.status, await this.text('POST', h));
  }
}

function apiError(status: number, text: string): ApiError {
  let message = text.trim();
  try {
    const v = JSON.parse(text) as { message?: unknown };
    if (typeof v.message === 'string') message = v.message;
  } catch {
    /* plain text */
  }
  return new ApiError(status, message);
}

/** A stream's whole text, UTF-8 (decoded once at the end: a character may be split across chunks). */
export function readText(s: NodeJS.ReadableStream): Promise<string> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    s.on('data', (c: Buffer | string) => parts.push(typeof c === 'string' ? Buffer.from(c) : c));
    s.on('end', () => resolve(Buffer.concat(parts).toString()));
    s.on('error', reject);
  });
}

/** Splits Docker's multiplexed stream into stdout/stderr writes. */
export class Demux {
  private buf: Buffer = Buffer.alloc(0);
  constructor(private readonly out: (stream: 1 | 2, b: Buffer) => void) {}
  push(chunk: Buffer): void {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    while (this.buf.length >= 8) {
      const len = this.buf.readUInt32BE(4);
      if (this.buf.length < 8 + len) return;
      const kind = this.buf[0] === 2 ? 2 : 1;
      this.out(kind, this.buf.subarray(8, 8 + len));
      this.buf = this.buf.subarray(8 + len);
    }
  }
}
