/**
 * A SPDY/3.1 client as client-go's is (k8s.io/apimachinery util/httpstream/spdy over
 * moby/spdystream), with remotecommand v1-v4 and portforward on top, for tests of the CRI
 * streaming server (src/cri/stream) here and in the CRI service's tests.
 *
 * Written apart from the server's codec on purpose (only SPDY/3's dictionary is shared, and a unit
 * test pins its sha256): a framing mistake made on both sides would otherwise pass unseen.
 *
 * Like client-go, the client opens every stream and waits for each SYN_REPLY in turn. By default
 * it does no flow control, as spdystream does not (no SETTINGS, no WINDOW_UPDATE, windows
 * ignored). With `flowControl` it is a strict SPDY/3.1 peer instead: it announces a window, obeys
 * the server's windows and counts every byte the server sends past ours (`violations`).
 */
import { connect as netConnect, type Socket } from 'node:net';
import { Duplex, Readable } from 'node:stream';
import zlib from 'node:zlib';
import { SPDY3_DICTIONARY } from '../../src/cri/stream/spdy/dictionary.js';

export interface UpgradeResult {
  status: number;
  headers: Record<string, string[]>;
  /** The body of a refused upgrade. */
  body: string;
  conn?: SpdyClient;
}

export interface ClientOptions {
  /** Be a flow-controlled SPDY/3.1 peer with this initial window (else: spdystream's behaviour). */
  flowControl?: { window: number };
  /** Extra request headers (name, value) sent as they are. */
  headers?: [string, string][];
  /** Request method (GET, as client-go's SPDY round tripper for exec, POST for kubectl's). */
  method?: string;
}

/** Opens the HTTP/1.1 connection, asks for the upgrade and, on 101, returns the SPDY client. */
export async function dialSpdy(url: string, protocols: string[], opts: ClientOptions = {}): Promise<UpgradeResult> {
  const u = new URL(url);
  const socket = netConnect({ host: u.hostname.replace(/^\[|\]$/g, ''), port: Number(u.port) });
  socket.setNoDelay(true); // as Go's net.Dial
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  const lines = [
    `${opts.method ?? 'POST'} ${u.pathname}${u.search} HTTP/1.1`,
    `Host: ${u.host}`,
    'Connection: Upgrade',
    'Upgrade: SPDY/3.1',
    ...protocols.map((p) => `X-Stream-Protocol-Version: ${p}`),
    ...(opts.headers ?? []).map(([k, v]) => `${k}: ${v}`),
  ];
  socket.write(`${lines.join('\r\n')}\r\n\r\n`);
  return readResponse(socket, (rest) => new SpdyClient(socket, rest, opts));
}

export async function readResponse(socket: Socket, make: (rest: Buffer) => SpdyClient): Promise<UpgradeResult> {
  let buf = Buffer.alloc(0);
  for (;;) {
    const end = buf.indexOf('\r\n\r\n');
    if (end >= 0) {
      const [statusLine, ...hl] = buf.subarray(0, end).toString('latin1').split('\r\n');
      const status = Number(statusLine!.split(' ')[1]);
      const headers: Record<string, string[]> = {};
      for (const l of hl) {
        const i = l.indexOf(':');
        const k = l.slice(0, i).trim().toLowerCase();
        (headers[k] ??= []).push(l.slice(i + 1).trim());
      }
      const rest = buf.subarray(end + 4);
      if (status === 101) {
        socket.removeAllListeners('data');
        return { status, headers, body: '', conn: make(rest) };
      }
      const chunks: Buffer[] = [rest];
      await new Promise<void>((resolve) => {
        socket.removeAllListeners('data');
        socket.on('data', (c: Buffer) => chunks.push(c));
        socket.once('close', () => resolve());
        socket.once('end', () => resolve());
      });
      socket.destroy();
      return { status, headers, body: Buffer.concat(chunks).toString('utf8') };
    }
    const chunk = await new Promise<Buffer | null>((resolve) => {
      const onData = (c: Buffer) => {
        socket.off('close', onClose);
        resolve(c);
      };
      const onClose = () => {
        socket.off('data', onData);
        resolve(null);
      };
      socket.once('data', onData);
      socket.once('close', onClose);
    });
    if (!chunk) throw new Error(`connection closed before a response (${buf.length} bytes)`);
    buf = Buffer.concat([buf, chunk]);
  }
}

// ---- the client's own SPDY/3 codec ----

const ctl = (type: number, flags: number, payload: Buffer): Buffer => {
  const h = Buffer.alloc(8);
  h.writeUInt32BE(((0x8003 << 16) | type) >>> 0, 0);
  h.writeUInt32BE(((flags << 24) | payload.length) >>> 0, 4);
  return Buffer.concat([h, payload]);
};
const u32 = (...vs: number[]): Buffer => {
  const b = Buffer.alloc(4 * vs.length);
  vs.forEach((v, i) => b.writeUInt32BE(v >>> 0, 4 * i));
  return b;
};

function headerBlock(h: Record<string, string>): Buffer {
  const parts = [u32(Object.keys(h).length)];
  for (const [k, v] of Object.entries(h)) {
    const kb = Buffer.from(k.toLowerCase());
    const vb = Buffer.from(v);
    parts.push(u32(kb.length), kb, u32(vb.length), vb);
  }
  return Buffer.concat(parts);
}

function parseHeaderBlock(b: Buffer): Record<string, string> {
  const n = b.readUInt32BE(0);
  let o = 4;
  const out: Record<string, string> = {};
  for (let i = 0; i < n; i++) {
    const kl = b.readUInt32BE(o);
    const k = b.toString('utf8', o + 4, o + 4 + kl);
    o += 4 + kl;
    const vl = b.readUInt32BE(o);
    out[k] = b.toString('utf8', o + 4, o + 4 + vl);
    o += 4 + vl;
  }
  return out;
}

/** Serialised zlib over one context (client-go's framer: one per direction). */
class Z {
  private chain: Promise<unknown> = Promise.resolve();
  constructor(private readonly z: zlib.Deflate | zlib.Inflate) {
    z.on('error', () => {});
  }
  run(input: Buffer): Promise<Buffer> {
    const next = this.chain.then(
      () =>
        new Promise<Buffer>((resolve, reject) => {
          const chunks: Buffer[] = [];
          const onData = (c: Buffer) => chunks.push(c);
          this.z.on('data', onData);
          this.z.once('error', reject);
          this.z.write(input);
          this.z.flush(zlib.constants.Z_SYNC_FLUSH, () => {
            this.z.off('data', onData);
            this.z.off('error', reject);
            resolve(Buffer.concat(chunks));
          });
        }),
    );
    this.chain = next.catch(() => {});
    return next;
  }
  close(): void {
    this.z.close();
  }
}

export class ClientStream extends Duplex {
  replyHeaders: Record<string, string> | undefined;
  readonly replied: Promise<void>;
  reset: number | undefined;
  sendWindow: number;
  recvWindow: number;
  private onReply!: () => void;
  private onReset!: (e: Error) => void;
  private remoteDone = false;

  constructor(
    private readonly c: SpdyClient,
    readonly id: number,
  ) {
    super({ allowHalfOpen: true });
    this.sendWindow = 65536;
    this.recvWindow = c.flow ? c.flow.window : Infinity;
    this.replied = new Promise((resolve, reject) => {
      this.onReply = resolve;
      this.onReset = reject;
    });
    this.replied.catch(() => {});
    this.on('error', () => {});
  }

  gotReply(h: Record<string, string>, fin: boolean): void {
    this.replyHeaders = h;
    this.onReply();
    if (fin) this.gotFin();
  }

  gotData(d: Buffer, fin: boolean): void {
    if (this.c.flow) {
      this.recvWindow -= d.length;
      if (this.recvWindow < 0) this.c.violations++;
    }
    if (d.length > 0) this.push(d);
    if (fin) this.gotFin();
    else this.creditConsumed();
  }

  gotFin(): void {
    if (this.remoteDone) return;
    this.remoteDone = true;
    this.push(null);
  }

  gotReset(status: number): void {
    this.reset = status;
    this.onReset(new Error(`stream ${this.id} reset with status ${status}`));
    this.destroy();
  }

  override _read(): void {
    this.creditConsumed();
    setImmediate(() => this.creditConsumed());
  }

  /** Gives back the window of the bytes the reader took, as a SPDY/3.1 peer does (spdystream never does). */
  private creditConsumed(): void {
    const flow = this.c.flow;
    if (!flow || this.remoteDone || this.destroyed) return;
    const consumed = flow.window - this.recvWindow - this.readableLength;
    if (consumed <= 0) return;
    if (consumed >= flow.window / 2 || this.readableLength === 0) {
      this.recvWindow += consumed;
      this.c.send(ctl(9, 0, u32(this.id, consumed)));
      this.c.creditSession(consumed);
    }
  }

  override _write(chunk: Buffer, _e: BufferEncoding, cb: (e?: Error | null) => void): void {
    void (async () => {
      let off = 0;
      while (off < chunk.length) {
        if (this.destroyed || this.c.closed) throw new Error('stream gone');
        let n = Math.min(32 * 1024, chunk.length - off);
        if (this.c.flow) {
          const avail = Math.min(this.sendWindow, this.c.sendWindow);
          if (avail <= 0) {
            await this.c.windowOpened();
            continue;
          }
          n = Math.min(n, avail);
          this.sendWindow -= n;
          this.c.sendWindow -= n;
        }
        const h = Buffer.alloc(8);
        h.writeUInt32BE(this.id, 0);
        h.writeUInt32BE(n, 4);
        this.c.send(Buffer.concat([h, chunk.subarray(off, off + n)]));
        off += n;
      }
    })().then(
      () => cb(),
      (e: Error) => cb(e),
    );
  }

  override _final(cb: () => void): void {
    const h = Buffer.alloc(8);
    h.writeUInt32BE(this.id, 0);
    h.writeUInt32BE(0x01000000, 4);
    this.c.send(h);
    cb();
  }

  /** Sends RST_STREAM CANCEL. */
  cancel(): void {
    this.c.send(ctl(3, 0, u32(this.id, 5)));
    this.destroy();
  }
}

export class SpdyClient {
  private readonly deflate = new Z(zlib.createDeflate({ dictionary: SPDY3_DICTIONARY, level: 9 }));
  private readonly inflate = new Z(zlib.createInflate({ dictionary: SPDY3_DICTIONARY }));
  private readonly streams = new Map<number, ClientStream>();
  private nextId = 1;
  private buf: Buffer = Buffer.alloc(0);
  private chain: Promise<void> = Promise.resolve();
  private out: Promise<void> = Promise.resolve();
  private waiters: (() => void)[] = [];
  private sessionRecv: number;
  readonly flow: { window: number } | undefined;
  sendWindow = 65536;
  closed = false;
  goAway: { lastGoodStreamId: number; status: number } | undefined;
  /** Bytes the server sent past a window we announced (strict mode). */
  violations = 0;
  /** WINDOW_UPDATE frames the server sent. */
  windowUpdates = 0;
  pings: number[] = [];
  readonly done: Promise<void>;

  constructor(
    readonly socket: Socket,
    rest: Buffer,
    opts: ClientOptions,
  ) {
    this.flow = opts.flowControl;
    this.sessionRecv = 65536;
    this.done = new Promise((resolve) => socket.once('close', () => void this.chain.then(() => resolve())));
    socket.on('data', (c: Buffer) => this.onData(c));
    socket.on('error', () => {});
    socket.on('close', () => {
      this.closed = true;
      this.wake();
      // After the frames already read (they are handled in order, asynchronously): what arrived
      // stays readable and the streams just end, as spdystream closes their channels.
      this.chain = this.chain.then(() => {
        for (const s of this.streams.values()) s.gotFin();
        this.deflate.close();
        this.inflate.close();
      });
    });
    if (this.flow) this.send(ctl(4, 0, Buffer.concat([u32(1), u32(7, this.flow.window)])));
    if (rest.length) this.onData(rest);
  }

  /** Writes raw bytes in frame order (after whatever is queued). */
  send(b: Buffer): void {
    this.out = this.out.then(() => {
      if (!this.socket.destroyed) this.socket.write(b);
    });
  }

  creditSession(n: number): void {
    this.send(ctl(9, 0, u32(0, n)));
    this.sessionRecv += n;
  }

  windowOpened(): Promise<void> {
    return new Promise((r) => this.waiters.push(r));
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  /** Opens a stream and waits for its SYN_REPLY (client-go's CreateStream does both). */
  async createStream(headers: Record<string, string>, fin = false, extraFlags = 0): Promise<ClientStream> {
    const id = this.nextId;
    this.nextId += 2;
    const s = new ClientStream(this, id);
    this.streams.set(id, s);
    const block = this.deflate.run(headerBlock(headers));
    this.out = this.out.then(async () => {
      const b = await block;
      const p = Buffer.concat([u32(id, 0), Buffer.from([0, 0]), b]);
      if (!this.socket.destroyed) this.socket.write(ctl(1, (fin ? 1 : 0) | extraFlags, p));
    });
    await s.replied;
    return s;
  }

  ping(id: number): void {
    this.send(ctl(6, 0, u32(id)));
  }

  /** GOAWAY and end, as spdystream's Close. */
  close(): void {
    this.send(ctl(7, 0, u32(0, 0)));
    this.out = this.out.then(() => {
      this.socket.end();
    });
  }

  private onData(c: Buffer): void {
    this.buf = Buffer.concat([this.buf, c]);
    for (;;) {
      if (this.buf.length < 8) return;
      const len = this.buf.readUIntBE(5, 3);
      if (this.buf.length < 8 + len) return;
      const f = this.buf.subarray(0, 8 + len);
      this.buf = this.buf.subarray(8 + len);
      this.chain = this.chain
        .then(() => this.frame(f))
        .catch(() => {
          this.socket.destroy();
        });
    }
  }

  private async frame(f: Buffer): Promise<void> {
    const flags = f[4]!;
    const p = f.subarray(8);
    if ((f[0]! & 0x80) === 0) {
      const id = f.readUInt32BE(0) & 0x7fffffff;
      if (this.flow) {
        this.sessionRecv -= p.length;
        if (this.sessionRecv < 0) this.violations++;
      }
      this.streams.get(id)?.gotData(p, (flags & 1) !== 0);
      return;
    }
    const type = f.readUInt16BE(2);
    switch (type) {
      case 2: {
        const id = p.readUInt32BE(0) & 0x7fffffff;
        const h = parseHeaderBlock(await this.inflate.run(p.subarray(4)));
        this.streams.get(id)?.gotReply(h, (flags & 1) !== 0);
        return;
      }
      case 3:
        this.streams.get(p.readUInt32BE(0) & 0x7fffffff)?.gotReset(p.readUInt32BE(4));
        return;
      case 6: {
        const id = p.readUInt32BE(0);
        this.pings.push(id);
        if (id % 2 === 0) this.ping(id);
        return;
      }
      case 7:
        this.goAway = { lastGoodStreamId: p.readUInt32BE(0), status: p.readUInt32BE(4) };
        return;
      case 8:
        await this.inflate.run(p.subarray(4));
        return;
      case 9: {
        this.windowUpdates++;
        if (!this.flow) return; // spdystream ignores them
        const id = p.readUInt32BE(0) & 0x7fffffff;
        const d = p.readUInt32BE(4) & 0x7fffffff;
        if (id === 0) this.sendWindow += d;
        else {
          const s = this.streams.get(id);
          if (s) s.sendWindow += d;
        }
        this.wake();
        return;
      }
      default:
        return;
    }
  }
}

// ---- remotecommand (client-go tools/remotecommand, protocol v1-v4) ----

export interface TermSize {
  Width: number;
  Height: number;
}

export interface CommandOptions {
  stdin?: boolean;
  stdout?: boolean;
  stderr?: boolean;
  tty?: boolean;
  protocols?: string[];
  client?: ClientOptions;
}

export interface CommandSession {
  conn: SpdyClient;
  protocol: string;
  error: ClientStream;
  stdin?: ClientStream;
  stdout?: ClientStream;
  stderr?: ClientStream;
  resize?: ClientStream;
  /** Everything the server wrote on the error stream, at its end. */
  errorText: Promise<string>;
}

export const readAll = async (r: Readable): Promise<Buffer> => {
  const chunks: Buffer[] = [];
  try {
    for await (const c of r) chunks.push(c as Buffer);
  } catch {
    // a reset stream: what came before it
  }
  return Buffer.concat(chunks);
};

/** Upgrades and opens the streams in client-go's order (error, stdin, stdout, stderr, resize). */
export async function openCommand(url: string, o: CommandOptions): Promise<CommandSession> {
  const protocols = o.protocols ?? ['v4.channel.k8s.io', 'v3.channel.k8s.io', 'v2.channel.k8s.io', 'channel.k8s.io'];
  const r = await dialSpdy(url, protocols, o.client);
  if (r.status !== 101 || !r.conn) throw new Error(`upgrade refused: ${r.status} ${r.body}`);
  const conn = r.conn;
  const protocol = r.headers['x-stream-protocol-version']?.[0] ?? '';
  const version = protocol === 'channel.k8s.io' ? 1 : Number(protocol[1]);
  const error = await conn.createStream({ streamtype: 'error' });
  // client-go never writes on, nor half-closes, the error stream (v2.go createStreams).
  const errorText = readAll(error).then((b) => b.toString('utf8'));
  const s: CommandSession = { conn, protocol, error, errorText };
  if (o.stdin) s.stdin = await conn.createStream({ streamtype: 'stdin' });
  if (o.stdout) s.stdout = await conn.createStream({ streamtype: 'stdout' });
  if (o.stderr && !(o.tty && version >= 2)) s.stderr = await conn.createStream({ streamtype: 'stderr' });
  if (o.tty && version >= 3) s.resize = await conn.createStream({ streamtype: 'resize' });
  return s;
}

export interface Status {
  status?: string;
  message?: string;
  reason?: string;
  code?: number;
  details?: { causes?: { reason?: string; message?: string }[] };
}

/** client-go's errorDecoderV4: the exit code of a NonZeroExitCode status, 0 on success. */
export function exitCodeOf(text: string): { exitCode: number | null; status: Status | null; error?: string } {
  if (text.length === 0) return { exitCode: 0, status: null };
  const st = JSON.parse(text) as Status;
  if (st.status === 'Success') return { exitCode: 0, status: st };
  if (st.reason === 'NonZeroExitCode') {
    const c = st.details?.causes?.find((x) => x.reason === 'ExitCode');
    return { exitCode: c ? Number(c.message) : null, status: st };
  }
  return { exitCode: null, status: st, error: st.message ?? '' };
}

export interface CommandResult {
  stdout: Buffer;
  stderr: Buffer;
  errorText: string;
  exitCode: number | null;
  status: Status | null;
  protocol: string;
  conn: SpdyClient;
}

/** A whole exec or attach, as `kubectl exec` runs it: stdin copied then half-closed, output read to the end. */
export async function runCommandClient(
  url: string,
  o: CommandOptions & { input?: Buffer; resizes?: TermSize[] },
): Promise<CommandResult> {
  const s = await openCommand(url, { ...o, stdin: o.stdin ?? o.input !== undefined });
  if (s.resize) {
    for (const r of o.resizes ?? []) s.resize.write(JSON.stringify(r) + '\n');
  }
  if (s.stdin) {
    if (o.input) s.stdin.write(o.input);
    s.stdin.end();
  }
  const [stdout, stderr] = await Promise.all([
    s.stdout ? readAll(s.stdout) : Buffer.alloc(0),
    s.stderr ? readAll(s.stderr) : Buffer.alloc(0),
  ]);
  const errorText = await s.errorText;
  s.conn.close();
  const v4 = s.protocol.startsWith('v4');
  const decoded = v4 ? exitCodeOf(errorText) : { exitCode: errorText ? null : 0, status: null };
  return {
    stdout,
    stderr,
    errorText,
    exitCode: decoded.exitCode,
    status: decoded.status,
    protocol: s.protocol,
    conn: s.conn,
  };
}

// ---- portforward (client-go tools/portforward) ----

export interface Forward {
  data: ClientStream;
  /** What the server wrote on the error stream ('' for none), at its end. */
  error: Promise<string>;
}

export async function dialPortForward(url: string, opts: ClientOptions = {}): Promise<SpdyClient> {
  const r = await dialSpdy(url, ['portforward.k8s.io'], opts);
  if (r.status !== 101 || !r.conn) throw new Error(`upgrade refused: ${r.status} ${r.body}`);
  return r.conn;
}

/** One forwarded connection: the error stream (half-closed at once) then the data stream. */
export async function openForward(conn: SpdyClient, port: number, requestId: number): Promise<Forward> {
  const h = { port: String(port), requestid: String(requestId) };
  const errorStream = await conn.createStream({ ...h, streamtype: 'error' });
  errorStream.end();
  const error = readAll(errorStream).then((b) => b.toString('utf8'));
  const data = await conn.createStream({ ...h, streamtype: 'data' });
  return { data, error };
}
