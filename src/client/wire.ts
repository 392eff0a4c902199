/**
 * The CLI's connection to the daemon for a request that is not upgraded: bytes out, bytes in, an
 * end. Two ways to one socket, chosen once per process:
 * - libuv's pipe handle, driven directly (Node's `pipe_wrap` and `stream_wrap` bindings, which
 *   node:net itself is built on). This spares a short-lived CLI the loading of node:net and
 *   node:stream, ~5 ms of every `berth ps` (cli/README.md "Start-up");
 * - node:net, whenever the bindings are not there in the shape this code knows (another Node),
 *   when Node was asked to warn about them (`--pending-deprecation`), or when `BERTH_CLI_WIRE=net`.
 * Both give the same events in the same order: data*, then end or error, once; nothing after close().
 */
import { connect } from 'node:net';
import { constants } from 'node:os';

export interface WireEvents {
  data(b: Buffer): void;
  /** The daemon closed its side. */
  end(): void;
  error(e: NodeJS.ErrnoException): void;
}

export interface Wire {
  write(b: Buffer): void;
  /** Closes the connection; no event follows. Idempotent. */
  close(): void;
}

export type WireKind = 'pipe' | 'net';

/** Which way this process takes by default: 'pipe' (the bindings) when it can, else 'net'. */
export function wireKind(): WireKind {
  return libuvPipe() ? 'pipe' : 'net';
}

/** Connects to the unix socket at `path`; events arrive from the next tick on. */
export function dial(path: string, ev: WireEvents, kind: WireKind = wireKind()): Wire {
  if (kind === 'net') return dialNet(path, ev);
  const uv = libuvPipe();
  if (!uv) throw new Error("this Node has no libuv pipe bindings in the shape client/wire.ts drives: use 'net'");
  return dialPipe(uv, path, ev);
}

function dialNet(path: string, ev: WireEvents): Wire {
  const sock = connect(path);
  let closed = false;
  sock.on('data', (b: Buffer) => closed || ev.data(b));
  sock.on('end', () => closed || ev.end());
  sock.on('error', (e) => closed || ev.error(e));
  return {
    write: (b) => void sock.write(b),
    close: () => {
      closed = true;
      sock.destroy();
    },
  };
}

// --- the bindings, as Node 20 has them (lib/net.js and lib/internal/stream_base_commons.js) ---

interface ReqWrap {
  oncomplete: (status: number) => void;
}
interface WriteReq extends ReqWrap {
  handle: PipeHandle;
  async: boolean;
}
interface PipeHandle {
  connect(req: ReqWrap, path: string): number;
  writeBuffer(req: WriteReq, b: Buffer): number;
  readStart(): number;
  readStop(): number;
  close(): void;
  onread: (ab: ArrayBuffer) => void;
}
interface LibuvPipe {
  newPipe(): PipeHandle;
  newConnectReq(): ReqWrap;
  newWriteReq(): WriteReq;
  /**
   * Node's shared `streamBaseState`: at [readBytes] the last read's length or error, at [offset]
   * where in its ArrayBuffer it starts, at [lastWriteAsync] whether the last write was queued.
   */
  state: Int32Array;
  readBytes: number;
  offset: number;
  lastWriteAsync: number;
}

let probed: LibuvPipe | null | undefined;

/** The bindings in the shape this file drives, or null (then node:net is used). Probed once. */
function libuvPipe(): LibuvPipe | null {
  if (probed !== undefined) return probed;
  probed = null;
  const nodeOptions = process.env['NODE_OPTIONS'] ?? '';
  if (
    process.env['BERTH_CLI_WIRE'] === 'net' ||
    process.execArgv.includes('--pending-deprecation') ||
    nodeOptions.includes('--pending-deprecation')
  )
    return probed;
  try {
    const binding = (process as unknown as { binding?: (name: string) => Record<string, unknown> }).binding;
    if (typeof binding !== 'function') return probed;
    const pw = binding.call(process, 'pipe_wrap');
    const sw = binding.call(process, 'stream_wrap');
    const { Pipe, PipeConnectWrap } = pw;
    const socketType = (pw['constants'] as Record<string, unknown> | undefined)?.['SOCKET'];
    const { WriteWrap, streamBaseState, kReadBytesOrError, kArrayBufferOffset, kLastWriteWasAsync } = sw;
    if (
      typeof Pipe !== 'function' ||
      typeof PipeConnectWrap !== 'function' ||
      typeof WriteWrap !== 'function' ||
      typeof socketType !== 'number' ||
      !(streamBaseState instanceof Int32Array) ||
      typeof kReadBytesOrError !== 'number' ||
      typeof kArrayBufferOffset !== 'number' ||
      typeof kLastWriteWasAsync !== 'number'
    )
      return probed;
    const proto = Pipe.prototype as Record<string, unknown>;
    for (const m of ['connect', 'writeBuffer', 'readStart', 'readStop', 'close'])
      if (typeof proto[m] !== 'function') return probed;
    type Ctor<T> = new (arg?: number) => T;
    probed = {
      newPipe: () => new (Pipe as Ctor<PipeHandle>)(socketType),
      newConnectReq: () => new (PipeConnectWrap as Ctor<ReqWrap>)(),
      newWriteReq: () => new (WriteWrap as Ctor<WriteReq>)(),
      state: streamBaseState,
      readBytes: kReadBytesOrError,
      offset: kArrayBufferOffset,
      lastWriteAsync: kLastWriteWasAsync,
    };
  } catch {
    probed = null;
  }
  return probed;
}

const UV_EOF = -4095;

/** An errno error as node:net makes it (`code`, `errno`, `syscall`), from a libuv status. */
function uvError(status: number, syscall: string, path?: string): NodeJS.ErrnoException {
  const code = Object.entries(constants.errno).find(([, n]) => n === -status)?.[0] ?? `E${-status}`;
  const e: NodeJS.ErrnoException = new Error(`${syscall} ${code}${path === undefined ? '' : ` ${path}`}`);
  e.code = code;
  e.errno = status;
  e.syscall = syscall;
  if (path !== undefined) e.path = path;
  return e;
}

function dialPipe(uv: LibuvPipe, path: string, ev: WireEvents): Wire {
  const handle = uv.newPipe();
  let closed = false;
  let connected = false;
  let pending: Buffer[] = [];
  // the requests libuv still works on, held here until their oncomplete
  const inFlight = new Set<ReqWrap>();
  const fail = (e: NodeJS.ErrnoException) => {
    if (closed) return;
    close();
    ev.error(e);
  };
  const close = () => {
    if (closed) return;
    closed = true;
    pending = [];
    if (connected) handle.readStop();
    handle.close();
  };
  const send = (b: Buffer) => {
    const req = uv.newWriteReq();
    req.handle = handle;
    req.async = false;
    req.oncomplete = (status) => {
      inFlight.delete(req);
      if (status < 0) fail(uvError(status, 'write'));
    };
    const err = handle.writeBuffer(req, b);
    if (err < 0) return void process.nextTick(fail, uvError(err, 'write')); // on the next tick, as every event
    // written at once (the usual case: libuv tries the write first) or queued, to complete later
    if (uv.state[uv.lastWriteAsync]) inFlight.add(req);
  };
  handle.onread = (ab) => {
    if (closed) return;
    const n = uv.state[uv.readBytes] ?? UV_EOF;
    if (n > 0) return ev.data(Buffer.from(ab, uv.state[uv.offset] ?? 0, n));
    if (n === 0) return; // nothing this time (EAGAIN)
    if (n === UV_EOF) {
      close();
      return ev.end();
    }
    fail(uvError(n, 'read'));
  };
  const connectReq = uv.newConnectReq();
  connectReq.oncomplete = (status) => {
    inFlight.delete(connectReq);
    if (closed) return;
    if (status < 0) return fail(uvError(status, 'connect', path));
    connected = true;
    for (const b of pending) send(b);
    pending = [];
    const err = handle.readStart();
    if (err < 0) fail(uvError(err, 'read'));
  };
  inFlight.add(connectReq);
  const err = handle.connect(connectReq, path);
  if (err < 0) {
    inFlight.delete(connectReq);
    process.nextTick(fail, uvError(err, 'connect', path));
  }
  return {
    write: (b) => {
      if (closed) return;
      if (connected) send(b);
      else pending.push(b);
    },
    close,
  };
}
