/**
 * RFC 6455 framing, server side: the accept key (4.2.2), client frames (5.2: masked, RSV clear,
 * control frames final and at most 125 bytes, messages at most 1 MiB), and one connection that
 * reassembles fragments, answers ping and close, and sends unmasked frames. Protocol errors close
 * with 1002 (1009 for size). Nothing here knows Kubernetes' channels.
 */
import { createHash } from 'node:crypto';
import type { Duplex } from 'node:stream';
import type { Clock, ClockTimer } from '../../base/clock.js';
import { IDLE_TIMEOUT_MS } from './spdy/session.js';

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
const MAX_MESSAGE = 1024 * 1024;

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
export class WsConn {
  private buf: Buffer = Buffer.alloc(0);
  private fragments: Buffer[] = [];
  private fragmentLen = 0;
  private closed = false;
  private lastActive: number;
  private idleTimer: ClockTimer | undefined;

  constructor(
    readonly socket: Duplex,
    private readonly onMessage: (m: Buffer) => void,
    private readonly onGone: () => void,
    private readonly clock: Clock,
    private readonly idleMs = IDLE_TIMEOUT_MS,
  ) {
    this.lastActive = clock.now();
    this.armIdle(idleMs);
    socket.on('data', (c: Buffer) => this.onData(c));
    socket.on('close', () => this.gone());
    socket.on('end', () => this.gone());
    socket.on('error', () => this.gone());
  }

  feed(head: Buffer): void {
    if (head.length > 0) this.onData(head);
  }

  /** No message either way for `idleMs` ends the connection (kubelet's streamIdleTimeout). */
  private armIdle(ms: number): void {
    this.idleTimer = this.clock.setTimeout(() => {
      const idle = this.clock.now() - this.lastActive;
      if (idle >= this.idleMs) this.socket.destroy();
      else this.armIdle(this.idleMs - idle);
    }, ms);
  }

  private gone(): void {
    this.idleTimer?.cancel();
    if (!this.closed) {
      this.closed = true;
      this.socket.destroy();
    }
    this.onGone();
  }

  private onData(chunk: Buffer): void {
    if (this.closed) return;
    this.lastActive = this.clock.now();
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
      case 8: {
        // Close: answer with its code (1000 for none, or one that must not be sent: 7.4.1) and go.
        const code = f.payload.length >= 2 ? f.payload.readUInt16BE(0) : 1000;
        this.close(code < 1000 || code === 1005 || code === 1006 || code === 1015 ? 1000 : code);
        return;
      }
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
    this.lastActive = this.clock.now();
    if (this.socket.writableLength > 16 * 1024 * 1024) {
      // The peer stopped reading (a ping flood, say): drop it rather than buffer without end.
      this.socket.destroy();
      return true;
    }
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
