/**
 * A websocket client (RFC 6455) for the channel protocols (`v5.channel.k8s.io`, `v4.channel.k8s.io`,
 * `channel.k8s.io`) as client-go's websocket executor speaks them: masked binary messages whose first
 * byte is the channel. Its own framing, apart from the server's.
 */
import { createHash, randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';

export interface WsMessage {
  opcode: number;
  data: Buffer;
}

export class WsClient {
  private buf: Buffer = Buffer.alloc(0);
  readonly messages: WsMessage[] = [];
  private waiters: (() => void)[] = [];
  closed = false;
  readonly done: Promise<void>;

  constructor(
    readonly socket: Socket,
    readonly protocol: string | undefined,
    rest: Buffer,
  ) {
    this.done = new Promise((r) => socket.once('close', () => r()));
    socket.on('data', (c: Buffer) => this.onData(c));
    socket.on('error', () => {});
    socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
    if (rest.length) this.onData(rest);
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  private onData(c: Buffer): void {
    this.buf = Buffer.concat([this.buf, c]);
    for (;;) {
      if (this.buf.length < 2) return;
      let len = this.buf[1]! & 0x7f;
      let off = 2;
      if (len === 126) {
        if (this.buf.length < 4) return;
        len = this.buf.readUInt16BE(2);
        off = 4;
      } else if (len === 127) {
        if (this.buf.length < 10) return;
        len = Number(this.buf.readBigUInt64BE(2));
        off = 10;
      }
      if (this.buf.length < off + len) return;
      this.messages.push({ opcode: this.buf[0]! & 0x0f, data: Buffer.from(this.buf.subarray(off, off + len)) });
      this.buf = this.buf.subarray(off + len);
      this.wake();
    }
  }

  /** A masked frame; `mask: false` breaks RFC 6455 on purpose. */
  frame(opcode: number, payload: Buffer, opts: { mask?: boolean; fin?: boolean } = {}): void {
    const mask = opts.mask ?? true;
    const len = payload.length;
    const head: number[] = [((opts.fin ?? true) ? 0x80 : 0) | opcode];
    const m = mask ? 0x80 : 0;
    let ext = Buffer.alloc(0);
    if (len < 126) head.push(m | len);
    else if (len < 65536) {
      head.push(m | 126);
      ext = Buffer.alloc(2);
      ext.writeUInt16BE(len);
    } else {
      head.push(m | 127);
      ext = Buffer.alloc(8);
      ext.writeBigUInt64BE(BigInt(len));
    }
    let body = payload;
    let key = Buffer.alloc(0);
    if (mask) {
      key = randomBytes(4);
      body = Buffer.from(payload);
      for (let i = 0; i < body.length; i++) body[i]! ^= key[i & 3]!;
    }
    this.socket.write(Buffer.concat([Buffer.from(head), ext, key, body]));
  }

  send(channel: number, data: Buffer | string): void {
    this.frame(2, Buffer.concat([Buffer.from([channel]), Buffer.from(data)]));
  }

  /** Waits (on arriving messages, not on time) until `pred` holds or the connection is gone. */
  async until(pred: () => boolean): Promise<void> {
    while (!pred() && !this.closed) await new Promise<void>((r) => this.waiters.push(r));
  }

  /** What arrived so far on `channel`, channel bytes stripped. */
  channel(channel: number): Buffer {
    return Buffer.concat(
      this.messages.filter((m) => m.opcode === 2 && m.data[0] === channel).map((m) => m.data.subarray(1)),
    );
  }

  /** Waits until the server closed the connection; returns the bytes per channel and the close code. */
  async collect(): Promise<{
    channels: Map<number, Buffer>;
    closeCode: number | undefined;
    first: WsMessage | undefined;
  }> {
    while (!this.closed) await new Promise<void>((r) => this.waiters.push(r));
    const channels = new Map<number, Buffer>();
    let closeCode: number | undefined;
    for (const m of this.messages) {
      if (m.opcode === 8) closeCode = m.data.length >= 2 ? m.data.readUInt16BE(0) : undefined;
      if (m.opcode !== 2 || m.data.length === 0) continue;
      const ch = m.data[0]!;
      channels.set(ch, Buffer.concat([channels.get(ch) ?? Buffer.alloc(0), m.data.subarray(1)]));
    }
    return { channels, closeCode, first: this.messages[0] };
  }
}

export async function dialWs(
  url: string,
  protocols: string[],
): Promise<{ status: number; text: string; ws?: WsClient }> {
  const u = new URL(url);
  const socket = connect({ host: u.hostname, port: Number(u.port) });
  socket.setNoDelay(true);
  const key = randomBytes(16).toString('base64');
  socket.write(
    [
      `GET ${u.pathname} HTTP/1.1`,
      `Host: ${u.host}`,
      'Connection: Upgrade',
      'Upgrade: websocket',
      'Sec-WebSocket-Version: 13',
      `Sec-WebSocket-Key: ${key}`,
      ...(protocols.length ? [`Sec-WebSocket-Protocol: ${protocols.join(', ')}`] : []),
      '',
      '',
    ].join('\r\n'),
  );
  let buf = Buffer.alloc(0);
  for (;;) {
    const c = await new Promise<Buffer | null>((resolve) => {
      const onData = (d: Buffer) => {
        socket.off('close', onClose);
        resolve(d);
      };
      const onClose = () => {
        socket.off('data', onData);
        resolve(null);
      };
      socket.once('data', onData);
      socket.once('close', onClose);
    });
    if (c) buf = Buffer.concat([buf, c]);
    const end = buf.indexOf('\r\n\r\n');
    if (end < 0 && c) continue;
    const head = buf.subarray(0, end < 0 ? buf.length : end).toString('latin1');
    const status = Number(head.split(' ')[1]);
    if (status !== 101) {
      socket.destroy();
      return { status, text: buf.toString('latin1') };
    }
    const accept = /sec-websocket-accept: *(\S+)/i.exec(head)?.[1];
    const want = createHash('sha1')
      .update(key + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11')
      .digest('base64');
    if (accept !== want) throw new Error(`bad Sec-WebSocket-Accept ${accept}`);
    const proto = /sec-websocket-protocol: *(\S+)/i.exec(head)?.[1];
    socket.removeAllListeners('data');
    return { status, text: head, ws: new WsClient(socket, proto, buf.subarray(end + 4)) };
  }
}
