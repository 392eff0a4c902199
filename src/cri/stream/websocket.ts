/**
 * Exec and attach over websocket (RFC 6455), in the channel protocols of k8s.io/apiserver's
 * wsstream as kubelet serves them (cri/streaming/remotecommand/websocket.go) plus v5:
 * every binary message starts with its channel byte: 0 stdin, 1 stdout, 2 stderr, 3 error (the
 * status), 4 resize. `v5.channel.k8s.io` adds the close message `[255, channel]` from the client,
 * which half-closes that channel (stdin's end reaches the process). No subprotocol at all is
 * `channel.k8s.io`. Client frames must be masked; a protocol error closes this connection only.
 */
import { createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { PassThrough, Writable, type Duplex } from 'node:stream';
import type { Clock } from '../../base/clock.js';
import type { CommandRun } from './remotecommand.js';
import { runCommand } from './remotecommand.js';

export const WEBSOCKET_PROTOCOLS = ['v5.channel.k8s.io', 'v4.channel.k8s.io', 'channel.k8s.io'] as const;

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
const MAX_MESSAGE = 1024 * 1024;
const STDIN = 0;
const STDOUT = 1;
const STDERR = 2;
const ERROR = 3;
const RESIZE = 4;
const CLOSE = 255;

export function isWebSocketUpgrade(req: IncomingMessage): boolean {
  const up = String(req.headers['upgrade'] ?? '').toLowerCase();
  const conn = String(req.headers['connection'] ?? '').toLowerCase();
  return up.split(',').some((s) => s.trim() === 'websocket') && conn.includes('upgrade');
}

export const acceptKey = (key: string): string =>
  createHash('sha1')
    .update(key + GUID)
    .digest('base64');

/** A server frame: FIN set, never masked (RFC 6455 5.1). */
export function encodeFrame(opcode: number, payload: Buffer): Buffer {
  const len = payload.length;
  let head: Buffer;
  if (len < 126) {
    head = Buffer.from([0x80 | opcode, len]);
  } else if (len < 65536) {
    head = Buffer.alloc(4);
    head[0] = 0x80 | opcode;
    head[1] = 126;
    head.writeUInt16BE(len, 2);
  } else {
    head = Buffer.alloc(10);
    head[0] = 0x80 | opcode;
    head[1] = 127;
    head.writeBigUInt64BE(BigInt(len), 2);
  }
  return Buffer.concat([head, payload]);
}

export class WebSocketProtocolError extends Error {
  override readonly name = 'WebSocketProtocolError';
  constructor(
    message: string,
    readonly closeCode = 1002,
  ) {
    super(message);
  }
}

export interface WsFrame {
  fin: boolean;
  opcode: number;
  payload: Buffer;
}

/** Reads one client frame from the front of `buf` (null: not all there yet); checks mask, RSV, sizes. */
export function parseClientFrame(buf: Buffer, maxPayload = MAX_MESSAGE): { frame: WsFrame; size: number } | null {
  if (buf.length < 2) return null;
  const b0 = buf[0]!;
  const b1 = buf[1]!;
  if (b0 & 0x70) throw new WebSocketProtocolError('reserved bits set without an extension');
  const opcode = b0 & 0x0f;
  const fin = (b0 & 0x80) !== 0;
  if (![0, 1, 2, 8, 9, 10].includes(opcode)) throw new WebSocketProtocolError(`unknown opcode ${opcode}`);
  if ((b1 & 0x80) === 0) throw new WebSocketProtocolError('client frame not masked');
  let len = b1 & 0x7f;
  let off = 2;
  if (len === 126) {
    if (buf.length < 4) return null;
    len = buf.readUInt16BE(2);
    off = 4;
  } else if (len === 127) {
    if (buf.length < 10) return null;
    const big = buf.readBigUInt64BE(2);
    if (big > BigInt(maxPayload)) throw new WebSocketProtocolError('frame too large', 1009);
    len = Number(big);
    off = 10;
  }
  if (opcode >= 8 && (!fin || len > 125)) throw new WebSocketProtocolError('bad control frame');
  if (len > maxPayload) throw new WebSocketProtocolError('frame too large', 1009);
  if (buf.length < off + 4 + len) return null;
  const mask = buf.subarray(off, off + 4);
  const payload = Buffer.from(buf.subarray(off + 4, off + 4 + len));
  for (let i = 0; i < payload.length; i++) payload[i]! ^= mask[i & 3]!;
  return { frame: { fin, opcode, payload }, size: off + 4 + len };
}

/** One websocket connection, server side: messages in, binary messages out. */
class WsConn {
  private buf: Buffer = Buffer.alloc(0);
  private fragments: Buffer[] = [];
  private fragmentLen = 0;
  private closed = false;

  constructor(
    readonly socket: Duplex,
    private readonly onMessage: (m: Buffer) => void,
    private readonly onGone: () => void,
    private readonly clock: Clock,
  ) {
    socket.on('data', (c: Buffer) => this.onData(c));
    socket.on('close', () => this.gone());
    socket.on('end', () => this.gone());
    socket.on('error', () => this.gone());
  }

  feed(head: Buffer): void {
    if (head.length > 0) this.onData(head);
  }

  private gone(): void {
    if (!this.closed) {
      this.closed = true;
      this.socket.destroy();
    }
    this.onGone();
  }

  private onData(chunk: Buffer): void {
    if (this.closed) return;
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    try {
      for (;;) {
        const r = parseClientFrame(this.buf);
        if (!r) return;
        this.buf = this.buf.subarray(r.size);
        this.frame(r.frame);
        if (this.closed) return;
      }
    } catch (e) {
      const code = e instanceof WebSocketProtocolError ? e.closeCode : 1002;
      this.close(code);
    }
  }

  private frame(f: WsFrame): void {
    switch (f.opcode) {
      case 8: // close: answer it and go
        this.close(f.payload.length >= 2 ? f.payload.readUInt16BE(0) : 1000);
        return;
      case 9:
        this.write(10, f.payload);
        return;
      case 10:
        return;
      case 0:
        if (this.fragments.length === 0) throw new WebSocketProtocolError('continuation without a message');
        break;
      default:
        if (this.fragments.length > 0) throw new WebSocketProtocolError('new message inside a fragmented one');
    }
    this.fragments.push(f.payload);
    this.fragmentLen += f.payload.length;
    if (this.fragmentLen > MAX_MESSAGE) throw new WebSocketProtocolError('message too large', 1009);
    if (!f.fin) return;
    const msg = Buffer.concat(this.fragments, this.fragmentLen);
    this.fragments = [];
    this.fragmentLen = 0;
    this.onMessage(msg);
  }

  write(opcode: number, payload: Buffer): boolean {
    if (this.closed) return true;
    return this.socket.write(encodeFrame(opcode, payload));
  }

  /** Sends a close frame and ends the connection. */
  close(code = 1000): void {
    if (this.closed) return;
    const p = Buffer.alloc(2);
    p.writeUInt16BE(code, 0);
    this.socket.write(encodeFrame(8, p));
    this.closed = true;
    this.socket.end();
    this.clock.setTimeout(() => this.socket.destroy(), 5000);
  }
}

/** A writable that sends each chunk as a binary message on `channel`. */
function channelWriter(ws: WsConn, channel: number): Writable {
  const w = new Writable({
    highWaterMark: 32 * 1024,
    write(chunk: Buffer, _enc, cb) {
      let ok = true;
      for (let off = 0; off < chunk.length; off += 64 * 1024) {
        ok = ws.write(2, Buffer.concat([Buffer.from([channel]), chunk.subarray(off, off + 64 * 1024)]));
      }
      if (ok || ws.socket.destroyed) cb();
      else ws.socket.once('drain', () => cb());
    },
  });
  w.on('error', () => {});
  return w;
}

interface WsOptions {
  stdin: boolean;
  stdout: boolean;
  stderr: boolean;
  tty: boolean;
}

/** Upgrades to websocket and runs one exec or attach; resolves when it is over. */
export async function serveWebSocketCommand(
  req: IncomingMessage,
  socket: Duplex,
  head: Buffer,
  command: CommandRun,
  opts: WsOptions,
  outer: AbortSignal,
  clock: Clock,
): Promise<void> {
  const key = req.headers['sec-websocket-key'];
  const version = req.headers['sec-websocket-version'];
  const refuse = (msg: string): void => {
    socket.end(
      `HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n` +
        `Content-Length: ${Buffer.byteLength(msg) + 1}\r\n\r\n${msg}\n`,
    );
  };
  if (typeof key !== 'string' || Buffer.from(key, 'base64').length !== 16) return refuse('bad Sec-WebSocket-Key');
  if (version !== '13') return refuse('unsupported Sec-WebSocket-Version');
  const offered = String(req.headers['sec-websocket-protocol'] ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  let protocol: string | undefined;
  if (offered.length > 0) {
    protocol = offered.find((p) => (WEBSOCKET_PROTOCOLS as readonly string[]).includes(p));
    if (!protocol) return refuse(`unable to negotiate protocol: client supports [${offered.join(' ')}]`);
  }
  const proto = protocol ?? 'channel.k8s.io';
  socket.write(
    'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
      `Sec-WebSocket-Accept: ${acceptKey(key)}\r\n` +
      (protocol ? `Sec-WebSocket-Protocol: ${protocol}\r\n` : '') +
      '\r\n',
  );

  const ac = new AbortController();
  const abort = () => ac.abort(new Error('the client went away'));
  outer.addEventListener('abort', abort, { once: true });
  const stdin = opts.stdin ? new PassThrough({ highWaterMark: 64 * 1024 }) : undefined;
  const resize = opts.tty ? new PassThrough() : undefined;
  const v5 = proto === 'v5.channel.k8s.io';
  const ws: WsConn = new WsConn(
    socket,
    (m) => {
      if (m.length === 0) return;
      const ch = m[0]!;
      const data = m.subarray(1);
      if (ch === STDIN && stdin && !stdin.writableEnded) {
        if (!stdin.write(data)) {
          socket.pause();
          stdin.once('drain', () => socket.resume());
        }
      } else if (ch === RESIZE && resize && !resize.writableEnded) {
        resize.write(data);
      } else if (ch === CLOSE && v5 && data.length >= 1) {
        if (data[0] === STDIN) stdin?.end();
        if (data[0] === RESIZE) resize?.end();
      }
    },
    () => {
      stdin?.end();
      resize?.end();
      abort();
    },
    clock,
  );
  if (outer.aborted) abort();
  ac.signal.addEventListener('abort', () => ws.socket.destroy(), { once: true });
  ws.feed(head);

  const stdout = opts.stdout ? channelWriter(ws, STDOUT) : undefined;
  const stderr = opts.stderr && !opts.tty ? channelWriter(ws, STDERR) : undefined;
  const error = channelWriter(ws, ERROR);
  // kubelet's "connection established" signal: an empty message on the lowest writable channel.
  ws.write(2, Buffer.from([stdout ? STDOUT : stderr ? STDERR : ERROR]));

  await runCommand(
    command,
    {
      error,
      ...(stdin ? { stdin } : {}),
      ...(stdout ? { stdout } : {}),
      ...(stderr ? { stderr } : {}),
      ...(resize ? { resize } : {}),
    },
    proto !== 'channel.k8s.io',
    ac.signal,
  );
  outer.removeEventListener('abort', abort);
  if (!ac.signal.aborted) ws.close(1000);
  await new Promise<void>((resolve) => {
    if (socket.destroyed) resolve();
    else socket.once('close', () => resolve());
  });
}
