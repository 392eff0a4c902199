/**
 * A gRPC client over one HTTP/2 connection the daemon did not dial: the h2c-upgraded `POST /session`
 * connection, on which the daemon is the client (HTTP/2 preface and all) and the build client
 * serves (BuildKit's session/grpchijack). gRPC over HTTP/2 as PROTOCOL-HTTP2.md puts it: a POST to
 * `/<package.Service>/<Method>`, `content-type: application/grpc`, `te: trailers`, messages framed
 * as [compressed flag, uint32 BE length, bytes], the status in the `grpc-status` trailer.
 */
import { connect, constants, type ClientHttp2Session } from 'node:http2';
import type { Duplex } from 'node:stream';
import type { Rpc } from './protos.js';

/** gRPC status codes used here (grpc/doc/statuscodes.md). */
export const GRPC = {
  OK: 0,
  CANCELLED: 1,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  UNIMPLEMENTED: 12,
  UNAVAILABLE: 14,
} as const;

/** How long a unary call (a secret, credentials) may take before the daemon gives up on it. */
const UNARY_DEADLINE_MS = 30_000;

export class GrpcError extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

/** A gRPC message larger than this is refused (what the daemon reads from a client is bounded). */
const MAX_MESSAGE = 16 * 1024 * 1024;

function frame(msg: Buffer): Buffer {
  const h = Buffer.alloc(5);
  h.writeUInt32BE(msg.length, 1);
  return Buffer.concat([h, msg]);
}

export class GrpcConnection {
  private readonly h2: ClientHttp2Session;
  readonly closed: Promise<void>;

  /** Starts HTTP/2 (as the client) on `conn`; `closed` settles when the connection ends. */
  constructor(conn: Duplex) {
    this.h2 = connect('http://localhost', { createConnection: () => conn as never });
    this.h2.on('error', () => undefined); // a broken session ends in 'close'; calls fail on their own
    this.closed = new Promise((resolve) => this.h2.once('close', () => resolve()));
    conn.once('close', () => this.h2.destroy());
  }

  get isClosed(): boolean {
    return this.h2.closed || this.h2.destroyed;
  }

  /** One unary call; rejects with a GrpcError carrying the peer's status, or when `signal` aborts. */
  unary<Req, Res>(
    rpc: Rpc<Req, Res>,
    req: Req,
    signal: AbortSignal,
    metadata: Record<string, string> = {},
  ): Promise<Res> {
    return new Promise((resolve, reject) => {
      if (this.isClosed) return reject(new GrpcError(GRPC.UNAVAILABLE, 'the session connection is closed'));
      const s = this.h2.request({
        [constants.HTTP2_HEADER_METHOD]: 'POST',
        [constants.HTTP2_HEADER_PATH]: rpc.path,
        [constants.HTTP2_HEADER_CONTENT_TYPE]: 'application/grpc',
        te: 'trailers',
        ...metadata,
      });
      let buf = Buffer.alloc(0);
      let status: number | null = null;
      let message = '';
      const onAbort = () => s.close(constants.NGHTTP2_CANCEL);
      signal.addEventListener('abort', onAbort, { once: true });
      // a client that never answers does not hold a build forever
      let timedOut = false;
      const deadline = setTimeout(() => {
        timedOut = true;
        s.close(constants.NGHTTP2_CANCEL);
      }, UNARY_DEADLINE_MS);
      const readStatus = (h: Record<string, unknown>) => {
        if (h['grpc-status'] !== undefined) {
          status = Number(h['grpc-status']);
          message = decodeURIComponent(String(h['grpc-message'] ?? ''));
        }
      };
      s.on('response', (h) => readStatus(h));
      s.on('trailers', (h) => readStatus(h));
      s.on('data', (c: Buffer) => {
        buf = Buffer.concat([buf, c]);
        if (buf.length > MAX_MESSAGE + 5) s.close(constants.NGHTTP2_CANCEL);
      });
      s.on('error', () => undefined); // 'close' reports it
      s.on('close', () => {
        clearTimeout(deadline);
        signal.removeEventListener('abort', onAbort);
        if (signal.aborted) return reject(new GrpcError(GRPC.CANCELLED, 'cancelled'));
        if (timedOut)
          return reject(
            new GrpcError(GRPC.DEADLINE_EXCEEDED, `${rpc.path}: no answer in ${UNARY_DEADLINE_MS / 1000} s`),
          );
        if (status === null)
          return reject(new GrpcError(GRPC.UNAVAILABLE, `${rpc.path}: the stream ended without a status`));
        if (status !== GRPC.OK)
          return reject(new GrpcError(status, `${rpc.path}: ${message || `gRPC status ${status}`}`));
        if (buf.length < 5) return reject(new GrpcError(GRPC.UNAVAILABLE, `${rpc.path}: no response message`));
        const len = buf.readUInt32BE(1);
        if (buf[0] !== 0)
          return reject(new GrpcError(GRPC.UNIMPLEMENTED, `${rpc.path}: compressed messages are not supported`));
        if (len > MAX_MESSAGE || buf.length < 5 + len)
          return reject(new GrpcError(GRPC.UNAVAILABLE, `${rpc.path}: truncated or oversized response`));
        try {
          resolve(rpc.decode(buf.subarray(5, 5 + len)));
        } catch (e) {
          reject(new GrpcError(GRPC.UNAVAILABLE, `${rpc.path}: bad response: ${(e as Error).message}`));
        }
      });
      s.end(frame(rpc.encode(req)));
    });
  }

  /**
   * A bidirectional stream (`stream Req` -> `stream Res`): `send` frames one message, `end` half-
   * closes, `messages` yields the peer's messages and ends when the peer ends with status OK (or
   * throws a GrpcError). Aborting `signal` resets the stream (RST_STREAM CANCEL).
   */
  bidi<Req, Res>(
    rpc: Rpc<Req, Res>,
    signal: AbortSignal,
    metadata: Record<string, string | string[]> = {},
  ): { send(m: Req): Promise<void>; end(): void; messages: AsyncIterable<Res> } {
    if (this.isClosed) throw new GrpcError(GRPC.UNAVAILABLE, 'the session connection is closed');
    const s = this.h2.request({
      [constants.HTTP2_HEADER_METHOD]: 'POST',
      [constants.HTTP2_HEADER_PATH]: rpc.path,
      [constants.HTTP2_HEADER_CONTENT_TYPE]: 'application/grpc',
      te: 'trailers',
      ...metadata,
    });
    let status: number | null = null;
    let message = '';
    const readStatus = (h: Record<string, unknown>) => {
      if (h['grpc-status'] !== undefined) {
        status = Number(h['grpc-status']);
        message = decodeURIComponent(String(h['grpc-message'] ?? ''));
      }
    };
    s.on('response', (h) => readStatus(h));
    s.on('trailers', (h) => readStatus(h));
    s.on('error', () => undefined); // the reader reports it
    const onAbort = () => s.close(constants.NGHTTP2_CANCEL);
    signal.addEventListener('abort', onAbort, { once: true });
    s.once('close', () => signal.removeEventListener('abort', onAbort));
    async function* messages(): AsyncGenerator<Res> {
      let buf: Buffer = Buffer.alloc(0);
      for await (const c of s as AsyncIterable<Buffer>) {
        buf = buf.length ? Buffer.concat([buf, c]) : c;
        while (buf.length >= 5) {
          const len = buf.readUInt32BE(1);
          if (buf[0] !== 0)
            throw new GrpcError(GRPC.UNIMPLEMENTED, `${rpc.path}: compressed messages are not supported`);
          if (len > MAX_MESSAGE)
            throw new GrpcError(GRPC.UNAVAILABLE, `${rpc.path}: message of ${len} bytes is too large`);
          if (buf.length < 5 + len) break;
          const m = buf.subarray(5, 5 + len);
          buf = buf.subarray(5 + len);
          yield rpc.decode(m);
        }
      }
      if (signal.aborted) throw new GrpcError(GRPC.CANCELLED, 'cancelled');
      if (status === null) throw new GrpcError(GRPC.UNAVAILABLE, `${rpc.path}: the stream ended without a status`);
      if (status !== GRPC.OK) throw new GrpcError(status, `${rpc.path}: ${message || `gRPC status ${status}`}`);
    }
    return {
      send: (m) =>
        new Promise((resolve, reject) => {
          if (s.closed || s.destroyed) return reject(new GrpcError(GRPC.UNAVAILABLE, `${rpc.path}: stream closed`));
          if (s.write(frame(rpc.encodeRequest(m)))) resolve();
          else s.once('drain', () => resolve());
        }),
      end: () => void s.end(),
      messages: messages(),
    };
  }

  close(): void {
    this.h2.destroy();
  }
}
