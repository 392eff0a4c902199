/**
 * A minimal Engine API client over a unix socket. It speaks HTTP/1.1 itself, one request per
 * connection: node:http would cost the CLI ~8 ms of start-up (its modules, and a host check that
 * compiles the IPv6 regex) for nothing a unix socket needs. Errors from the daemon become
 * ApiError with Docker's message; hijack() upgrades a connection for attach/exec and returns the
 * raw socket (paused: the reader resumes it once listening).
 * json() and pending() (most verbs' only requests) go over client/wire.ts, which spares a
 * short-lived CLI node:net and node:stream; streamed bodies and upgrades take a node:net socket.
 */
import { connect, type Socket } from 'node:net';
import { PassThrough, Transform, type Readable } from 'node:stream';
import { dial, wireKind, type WireKind } from './wire.js';

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
function framer(headers: Record<string, string>, write: (b: Buffer) => void, finish: () => void): (b: Buffer) => void {
  if (headers['transfer-encoding'] === 'chunked') {
    const d = new Dechunker(write);
    return (b) => {
      d.push(b);
      if (d.done) finish();
    };
  }
  if (headers['content-length'] !== undefined) {
    let left = Number(headers['content-length']);
    return (b) => {
      write(b.subarray(0, left));
      left -= Math.min(left, b.length);
      if (left === 0) finish();
    };
  }
  return write;
}

/** A request's bytes: the head, then the JSON body if any (a streamed body follows, chunked). */
function requestBytes(method: string, path: string, opts: RequestOptions, upgrade: boolean): Buffer {
  const headers: Record<string, string> = { Host: 'berth', 'User-Agent': 'berth-cli', ...(opts.headers ?? {}) };
  const payload = opts.body === undefined ? null : Buffer.from(JSON.stringify(opts.body));
  if (payload) headers['Content-Type'] = 'application/json';
  if (upgrade) Object.assign(headers, { Connection: 'Upgrade', Upgrade: 'tcp' });
  else headers['Connection'] = 'close';
  if (opts.raw) headers['Transfer-Encoding'] = 'chunked';
  else headers['Content-Length'] = String(payload?.length ?? 0);
  const head = Buffer.from(
    `${method} ${API_PREFIX}${path} HTTP/1.1\r\n${Object.entries(headers)
      .map(([k, v]) => `${k}: ${v}\r\n`)
      .join('')}\r\n`,
    'latin1',
  );
  return payload ? Buffer.concat([head, payload]) : head;
}

/** The response's head once `buf` holds all of it: status, lower-cased headers, and where the body starts. */
function parseHead(buf: Buffer): { status: number; headers: Record<string, string>; bodyAt: number } | undefined {
  const end = buf.indexOf('\r\n\r\n');
  if (end < 0) return undefined;
  const [statusLine = '', ...lines] = buf.subarray(0, end).toString('latin1').split('\r\n');
  const headers: Record<string, string> = {};
  for (const l of lines) {
    const i = l.indexOf(':');
    if (i > 0) headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
  }
  return { status: Number(statusLine.split(' ')[1]), headers, bodyAt: end + 4 };
}

const hasNoBody = (method: string, status: number) => method === 'HEAD' || status === 204 || status === 304;

/** What a failed connect says: the daemon is not there, or the error itself. */
function connectError(e: NodeJS.ErrnoException, socketPath: string): Error {
  return e.code === 'ENOENT' || e.code === 'ECONNREFUSED'
    ? new Error(`Cannot connect to the berth daemon at unix://${socketPath}. Is berthd running?`)
    : e;
}

const NO_ANSWER = 'the daemon closed the connection without answering';
const noop = () => undefined;

/** A response whose head has arrived; its whole body's text comes in `text`. */
interface Answer {
  status: number;
  text: Promise<string>;
  /** Drops the connection (and the body still to come). */
  close(): void;
}

export class Client {
  /** `wire`: how json(), pending() and upgradeForOutput() connect (client/wire.ts; tests pick both). */
  constructor(
    readonly socketPath: string,
    private readonly wire: WireKind = wireKind(),
  ) {}

  /**
   * A request with no streamed body, on the lightest connection this Node offers (client/wire.ts):
   * resolves once the head arrived. What json() and pending() take. With `upgraded`, the request
   * asks for `Upgrade: tcp`, and after a 101 the stream's bytes go to it; `text` resolves (empty)
   * when the daemon closes the stream.
   */
  private call(method: string, path: string, body: unknown, upgraded?: (b: Buffer) => void): Promise<Answer> {
    return new Promise((resolveHead, rejectHead) => {
      let buf: Buffer = Buffer.alloc(0);
      let feed: ((b: Buffer) => void) | undefined;
      const parts: Buffer[] = [];
      let settle: { resolve(t: string): void; reject(e: Error): void } | undefined;
      const text = new Promise<string>((resolve, reject) => (settle = { resolve, reject }));
      let done = false;
      const finish = () => {
        if (done) return;
        done = true;
        wire.close();
        settle?.resolve(Buffer.concat(parts).toString());
      };
      const wire = dial(
        this.socketPath,
        {
          data: (b) => {
            if (feed) return feed(b);
            buf = buf.length ? Buffer.concat([buf, b]) : b;
            const h = parseHead(buf);
            if (!h) return;
            resolveHead({ status: h.status, text, close: () => wire.close() });
            if (upgraded && h.status === 101) feed = upgraded;
            else if (hasNoBody(method, h.status)) return finish();
            else
              feed = framer(
                h.headers,
                (c) => {
                  if (c.length) parts.push(c);
                },
                finish,
              );
            const rest = buf.subarray(h.bodyAt);
            if (rest.length) feed(rest);
          },
          end: () => (feed ? finish() : rejectHead(new Error(NO_ANSWER))),
          error: (e) => (feed ? settle?.reject(e) : rejectHead(connectError(e, this.socketPath))),
        },
        this.wire,
      );
      wire.write(requestBytes(method, path, body === undefined ? {} : { body }, upgraded !== undefined));
    });
  }

  /** Sends the request on a node:net socket; resolves with the response's head once it arrived. */
  private send(method: string, path: string, opts: RequestOptions, upgrade: boolean): Promise<Head> {
    return new Promise((resolve, reject) => {
      const sock = connect(this.socketPath);
      sock.write(requestBytes(method, path, opts, upgrade));
      if (opts.raw) (opts.raw as Readable).pipe(chunked()).pipe(sock, { end: false });

      let buf: Buffer = Buffer.alloc(0);
      let answered = false;
      const fail = (e: NodeJS.ErrnoException) => {
        if (answered) return;
        answered = true;
        sock.destroy();
        reject(connectError(e, this.socketPath));
      };
      const onData = (c: Buffer) => {
        buf = buf.length ? Buffer.concat([buf, c]) : c;
        const h = parseHead(buf);
        if (!h) return;
        answered = true;
        sock.off('data', onData);
        sock.off('end', onEnd);
        sock.pause();
        resolve({ sock, status: h.status, headers: h.headers, rest: buf.subarray(h.bodyAt) });
      };
      const onEnd = () => fail(new Error(NO_ANSWER));
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
    if (hasNoBody(method, h.status)) {
      finish();
      return res;
    }
    const feed = framer(
      h.headers,
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

  private async request(method: string, path: string, opts: RequestOptions = {}): Promise<Response> {
    const res = this.body(method, await this.send(method, path, opts, false));
    if (res.statusCode >= 400) throw apiError(res.statusCode, await readText(res));
    return res;
  }

  async json<T = unknown>(method: string, path: string, body?: unknown): Promise<T> {
    const a = await this.call(method, path, body);
    const text = await a.text;
    if (a.status >= 400) throw apiError(a.status, text);
    return (text ? JSON.parse(text) : undefined) as T;
  }

  /**
   * Sends the request and resolves once the daemon answered its head, with the body's text still to
   * come (`wait`: the head says the wait is set, the body comes when the container exits) and a way to
   * drop it. An error status rejects, with the daemon's message.
   */
  async pending(method: string, path: string): Promise<{ text: Promise<string>; close(): void }> {
    const a = await this.call(method, path, undefined);
    if (a.status >= 400) throw apiError(a.status, await a.text);
    return { text: a.text, close: a.close };
  }

  /**
   * POST with `Upgrade: tcp` for a stream that is only read (an attach without stdin), on the light
   * wire: resolves once the daemon answered 101; from then on the stream's bytes go to `onData`, and
   * `ended` resolves when the daemon closes it (or the connection fails).
   */
  async upgradeForOutput(path: string, onData: (b: Buffer) => void): Promise<{ ended: Promise<void>; close(): void }> {
    const a = await this.call('POST', path, undefined, onData);
    if (a.status !== 101) throw apiError(a.status, await a.text);
    return { ended: a.text.then(noop, noop), close: a.close };
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
    throw apiError(h.status, await readText(this.body('POST', h)));
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
