/**
 * A gRPC server over one HTTP/2 connection the daemon did not accept itself: the h2c-upgraded
 * `POST /grpc` connection, on which the client speaks first (HTTP/2 preface) and the daemon serves
 * (node:http2 `createServer()` with the connection handed in as a 'connection'). gRPC over HTTP/2
 * as PROTOCOL-HTTP2.md puts it: a POST to `/<package.Service>/<Method>` with `content-type:
 * application/grpc`, messages framed as [compressed flag, uint32 BE length, bytes], the status in
 * the `grpc-status`/`grpc-message` trailers (or a trailers-only response for an early error).
 *
 * Unary and server-streaming methods only (what Control's served methods are); a request is one
 * message of at most 16 MiB; compressed messages are refused (no grpc-accept-encoding is offered).
 * A call's AbortSignal fires when its stream goes away before the answer is complete.
 */
import { constants, createServer, type IncomingHttpHeaders, type ServerHttp2Stream } from 'node:http2';
import type { Duplex } from 'node:stream';
import { BerthError, errorMessage } from '../base/errors.js';
import { GRPC, GrpcError } from './grpc-client.js';
import type { ServedMethod } from './protos.js';

/** More gRPC status codes (grpc/doc/statuscodes.md) the server answers with. */
export const GRPC_SERVER = {
  ...GRPC,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  INTERNAL: 13,
} as const;

const MAX_MESSAGE = 16 * 1024 * 1024;

/** A served method's handler: gets the decoded request, sends (one or, when streaming, many) responses. */
export type Handler = (req: unknown, send: (res: object | Buffer) => void, signal: AbortSignal) => Promise<void>;

export interface ServedService {
  /** the full service name, `moby.buildkit.v1.Control` */
  name: string;
  /** by method name ('Solve'); a method not here, or without a handler, answers UNIMPLEMENTED */
  methods: Map<string, ServedMethod>;
  handlers: Record<string, Handler | undefined>;
}

function frame(msg: Buffer): Buffer {
  const h = Buffer.alloc(5);
  h.writeUInt32BE(msg.length, 1);
  return Buffer.concat([h, msg]);
}

/** A BerthError's code as a gRPC status. */
function statusOf(e: unknown): number {
  if (e instanceof GrpcError) return e.code;
  if (!(e instanceof BerthError)) return GRPC_SERVER.UNKNOWN;
  switch (e.code) {
    case 'NotFound':
      return GRPC_SERVER.NOT_FOUND;
    case 'AlreadyExists':
      return GRPC_SERVER.ALREADY_EXISTS;
    case 'InvalidArgument':
      return GRPC_SERVER.INVALID_ARGUMENT;
    case 'Conflict':
    case 'FailedPrecondition':
      return GRPC_SERVER.FAILED_PRECONDITION;
    case 'Unauthorized':
    case 'PermissionDenied':
      return GRPC_SERVER.PERMISSION_DENIED;
    case 'Unavailable':
      return GRPC_SERVER.UNAVAILABLE;
    case 'NotImplemented':
      return GRPC_SERVER.UNIMPLEMENTED;
    default:
      return GRPC_SERVER.UNKNOWN;
  }
}

/** grpc-message is percent-encoded (PROTOCOL-HTTP2.md: Status-Message). */
const encodeMessage = (m: string) =>
  encodeURIComponent(m.slice(0, 4096)).replace(/%(2[0-9A-F]|3[A-F]|40|5[B-F]|60|7[B-E])/g, (x) =>
    String.fromCharCode(parseInt(x.slice(1), 16)),
  );

/** Reads the one request message of a call (unary or server-streaming). */
function readRequest(stream: ServerHttp2Stream): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    let msg: Buffer | null = null;
    stream.on('data', (c: Buffer) => {
      if (msg) return; // a second message of a non-streaming request: ignored
      buf = Buffer.concat([buf, c]);
      if (buf.length >= 5) {
        if (buf[0] !== 0)
          return reject(new GrpcError(GRPC_SERVER.UNIMPLEMENTED, 'compressed messages are not supported'));
        const len = buf.readUInt32BE(1);
        if (len > MAX_MESSAGE)
          return reject(new GrpcError(GRPC_SERVER.RESOURCE_EXHAUSTED, `request message larger than ${MAX_MESSAGE}`));
        if (buf.length >= 5 + len) msg = buf.subarray(5, 5 + len);
      }
    });
    stream.on('end', () =>
      msg ? resolve(msg) : reject(new GrpcError(GRPC_SERVER.INTERNAL, 'the request has no complete message')),
    );
    stream.on('close', () => reject(new GrpcError(GRPC_SERVER.CANCELLED, 'the call was cancelled')));
  });
}

async function call(service: ServedService, stream: ServerHttp2Stream, headers: IncomingHttpHeaders): Promise<void> {
  const abort = new AbortController();
  let finished = false;
  stream.on('close', () => {
    if (!finished) abort.abort(new Error('the client cancelled the call'));
  });
  stream.on('error', () => undefined);
  // grpc-timeout (PROTOCOL-HTTP2.md: up to 8 digits and a unit): the call is cancelled when it passes
  let expired = false;
  const timeout = /^(\d{1,8})([HMSmun])$/.exec(String(headers['grpc-timeout'] ?? ''));
  const ms = timeout
    ? Number(timeout[1]) * { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 1e-3, n: 1e-6 }[timeout[2] as 'H']
    : Infinity;
  const timer =
    ms < 2 ** 31
      ? setTimeout(() => {
          expired = true;
          abort.abort(new Error('context deadline exceeded'));
        }, Math.ceil(ms))
      : null;
  stream.once('close', () => timer && clearTimeout(timer));
  let sentHeaders = false;
  const end = (code: number, message: string) => {
    finished = true;
    if (stream.closed || stream.destroyed) return;
    const trailers = { 'grpc-status': String(code), ...(message ? { 'grpc-message': encodeMessage(message) } : {}) };
    if (!sentHeaders) {
      // trailers-only response
      stream.respond({ ':status': 200, 'content-type': 'application/grpc', ...trailers }, { endStream: true });
      return;
    }
    stream.once('wantTrailers', () => stream.sendTrailers(trailers));
    stream.end();
  };
  const path = String(headers[constants.HTTP2_HEADER_PATH] ?? '');
  const ct = String(headers[constants.HTTP2_HEADER_CONTENT_TYPE] ?? '');
  if (headers[constants.HTTP2_HEADER_METHOD] !== 'POST' || !ct.startsWith('application/grpc')) {
    finished = true;
    stream.respond({ ':status': 415 }, { endStream: true });
    return;
  }
  const [, svc = '', name = ''] = /^\/([^/]*)\/([^/]*)$/.exec(path) ?? [];
  const m = service.methods.get(name);
  const handler = m && m.path === path ? service.handlers[name] : undefined;
  if (!m || !handler) {
    stream.resume();
    // grpc-go's words (dockerd 20.10 answers these for Control/Info and an unknown service)
    return end(
      GRPC_SERVER.UNIMPLEMENTED,
      svc !== service.name
        ? `unknown service ${svc}`
        : `unknown method ${name} for service ${svc}` +
            (m ? ` (not served by berth, which serves ${Object.keys(service.handlers).join(', ')})` : ''),
    );
  }
  try {
    const raw = await readRequest(stream);
    let req: unknown;
    try {
      req = m.decodeRequest(raw);
    } catch (e) {
      throw new GrpcError(GRPC_SERVER.INTERNAL, `grpc: error unmarshalling request: ${errorMessage(e)}`);
    }
    await handler(
      req,
      (res) => {
        if (abort.signal.aborted || stream.closed) return;
        if (!sentHeaders) {
          stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
          sentHeaders = true;
        }
        stream.write(frame(Buffer.isBuffer(res) ? res : m.encodeResponse(res)));
      },
      abort.signal,
    );
    if (expired) end(GRPC_SERVER.DEADLINE_EXCEEDED, 'context deadline exceeded');
    else end(GRPC_SERVER.OK, '');
  } catch (e) {
    if (expired) end(GRPC_SERVER.DEADLINE_EXCEEDED, 'context deadline exceeded');
    else end(abort.signal.aborted ? GRPC_SERVER.CANCELLED : statusOf(e), errorMessage(e));
  }
}

/** Serves `service` on `conn` until the connection ends. */
export function serveGrpc(conn: Duplex, service: ServedService): Promise<void> {
  return new Promise((resolve) => {
    // bounded: a client cannot open streams without end on one connection
    const server = createServer({ settings: { maxConcurrentStreams: 100 }, maxSessionMemory: 32 });
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      server.close();
      conn.destroy();
      resolve();
    };
    server.on('session', (s) => {
      s.on('error', () => undefined);
      s.once('close', finish);
    });
    server.on('sessionError', () => finish());
    server.on('stream', (stream, headers) => void call(service, stream, headers));
    conn.once('close', finish);
    conn.on('error', () => undefined);
    server.emit('connection', conn);
  });
}
