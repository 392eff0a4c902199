/**
 * A minimal Engine API client over a unix socket (node:http, kept small so the CLI starts fast).
 * Errors from the daemon become ApiError with Docker's message; hijack() upgrades a connection
 * for attach/exec and returns the raw socket.
 */
import http from 'node:http';
import type { Socket } from 'node:net';

export const API_PREFIX = '/v1.45';

export class ApiError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

export function socketFromHost(host: string): string {
  if (host.startsWith('unix://')) return host.slice(7);
  if (host.startsWith('/')) return host;
  throw new Error(`unsupported host ${host}: only unix:// sockets are supported`);
}

export class Client {
  constructor(readonly socketPath: string) {}

  private request(method: string, path: string, opts: { body?: unknown; raw?: NodeJS.ReadableStream; headers?: Record<string, string> } = {}): Promise<http.IncomingMessage> {
    return new Promise((resolve, reject) => {
      const headers: Record<string, string> = { ...(opts.headers ?? {}) };
      let payload: string | undefined;
      if (opts.body !== undefined) {
        payload = JSON.stringify(opts.body);
        headers['Content-Type'] = 'application/json';
        headers['Content-Length'] = String(Buffer.byteLength(payload));
      }
      const req = http.request({ socketPath: this.socketPath, path: API_PREFIX + path, method, headers }, async (res) => {
        if ((res.statusCode ?? 500) >= 400) {
          const text = await readText(res);
          let message = text.trim();
          try {
            const v = JSON.parse(text) as { message?: unknown };
            if (typeof v.message === 'string') message = v.message;
          } catch {
            /* plain text */
          }
          reject(new ApiError(res.statusCode ?? 500, message));
          return;
        }
        resolve(res);
      });
      req.on('error', (e: NodeJS.ErrnoException) =>
        reject(e.code === 'ENOENT' || e.code === 'ECONNREFUSED' ? new Error(`Cannot connect to the berth daemon at unix://${this.socketPath}. Is berthd running?`) : e),
      );
      if (opts.raw) opts.raw.pipe(req);
      else req.end(payload);
    });
  }

  async json<T = unknown>(method: string, path: string, body?: unknown): Promise<T> {
    const res = await this.request(method, path, body === undefined ? {} : { body });
    const text = await readText(res);
    return (text ? JSON.parse(text) : undefined) as T;
  }

  /** A streaming response (logs, events, stats, save). */
  stream(method: string, path: string, opts: { body?: unknown; raw?: NodeJS.ReadableStream; headers?: Record<string, string> } = {}): Promise<http.IncomingMessage> {
    return this.request(method, path, opts);
  }

  /** POST with `Upgrade: tcp`; resolves with the raw socket once the daemon answered 101. */
  hijack(path: string, body?: unknown): Promise<Socket> {
    return new Promise((resolve, reject) => {
      const payload = body === undefined ? '' : JSON.stringify(body);
      const req = http.request({
        socketPath: this.socketPath,
        path: API_PREFIX + path,
        method: 'POST',
        headers: { Connection: 'Upgrade', Upgrade: 'tcp', 'Content-Type': 'application/json', 'Content-Length': String(Buffer.byteLength(payload)) },
      });
      req.on('upgrade', (_res, socket, head) => {
        if (head.length) socket.unshift(head);
        resolve(socket);
      });
      req.on('response', async (res) => {
        const text = await readText(res);
        let message = text;
        try {
          message = (JSON.parse(text) as { message: string }).message;
        } catch {
          /* plain */
        }
        reject(new ApiError(res.statusCode ?? 500, message));
      });
      req.on('error', reject);
      req.end(payload);
    });
  }
}

export function readText(s: NodeJS.ReadableStream): Promise<string> {
  return new Promise((resolve, reject) => {
    let t = '';
    s.on('data', (c: Buffer) => (t += c.toString()));
    s.on('end', () => resolve(t));
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
