/**
 * The server end of one SPDY/3.1 connection (after the HTTP/1.1 upgrade): frames in and out,
 * header compression, streams the client opens, PING, GOAWAY and flow control.
 *
 * Contracts:
 * - The client opens every stream (client-go does); `onStream` gets each new one with its headers
 *   and must `reply()` or `reset()` it. Server-initiated streams are not needed by any protocol here.
 * - Frames leave in the order they were queued; a header block is compressed in that same order.
 * - A malformed frame (bad length, bad version, bad header block, bad zlib) ends this connection
 *   with GOAWAY PROTOCOL_ERROR; it never throws out of the session.
 * - Flow control (2.6.8, 3.1's session window): we always advertise and replenish our receive
 *   windows with WINDOW_UPDATE as the reader consumes. We honour the peer's windows once the peer
 *   shows it does flow control (a SETTINGS INITIAL_WINDOW_SIZE or a WINDOW_UPDATE): moby/spdystream,
 *   client-go's SPDY library, never sends WINDOW_UPDATE, and waiting for one would hang every
 *   transfer past 64 KiB. For such a peer, TCP is the back-pressure: a stream whose reader lags makes
 *   us stop reading the socket until it drains.
 */
import { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';
import type { Clock, ClockTimer } from '../../../base/clock.js';
import {
  DEFAULT_WINDOW,
  FLAG_FIN,
  FLAG_UNIDIRECTIONAL,
  GoAwayStatus,
  RstStatus,
  SETTINGS_INITIAL_WINDOW_SIZE,
  SpdyProtocolError,
  decodeHeaderBlock,
  encodeGoAway,
  encodeHeaderBlock,
  encodePing,
  encodeRstStream,
  encodeWindowUpdate,
  parseFrame,
  type Frame,
  type HeaderMap,
} from './frames.js';
import { SpdyStream, type StreamHost } from './stream.js';
import { HeaderCompressor, HeaderDecompressor } from './zlib.js';

/** What may wait in the socket's write buffer: more means the peer stopped reading (a PING flood, say). */
const WRITE_BUFFER_LIMIT = 16 * 1024 * 1024;
/** kubelet's default streamIdleTimeout: a connection with no frame either way for this long is closed. */
export const IDLE_TIMEOUT_MS = 4 * 60 * 60 * 1000;

export interface SpdySessionOptions {
  clock: Clock;
  /** Gets every stream the client opens, with its headers; must reply or reset it. */
  onStream: (stream: SpdyStream) => void;
  /** Largest frame we accept (bytes of payload). */
  maxFrameLength?: number;
  /** Streams open at once; more are refused (RST_STREAM REFUSED_STREAM). */
  maxStreams?: number;
  /** No frame either way for this long ends the connection (default IDLE_TIMEOUT_MS). */
  idleTimeoutMs?: number;
}

export class SpdySession extends EventEmitter implements StreamHost {
  private readonly streams = new Map<number, SpdyStream>();
  private readonly compressor = new HeaderCompressor();
  private readonly decompressor = new HeaderDecompressor();
  private readonly maxFrame: number;
  private readonly maxStreams: number;
  // Input: chunks not yet parsed, concatenated only once a whole frame is there.
  private pending: Buffer[] = [];
  private pendingLen = 0;
  private busy = false;
  // Output: frames in order; a header-bearing frame is a promise until its block is compressed.
  private readonly out: (Buffer | Promise<Buffer>)[] = [];
  private flushing = false;
  private lastStreamId = 0;
  private goneAway = false;
  private closing = false;
  private dead = false;
  private graceTimer: ClockTimer | undefined;
  private idleTimer: ClockTimer | undefined;
  private lastActive: number;
  private readonly idleMs: number;
  private heldBy = new Set<SpdyStream>();
  /** True once the peer shows it does SPDY/3.1 flow control. */
  peerFlowControl = false;
  private peerInitialWindow = DEFAULT_WINDOW;
  sendWindow = DEFAULT_WINDOW;
  private recvCredit = 0;
  private readonly windowWaiters: (() => void)[] = [];
  /** Resolves when the socket is gone. */
  readonly done: Promise<void>;
  /** Why the session ended, when it was not a clean close. */
  failure: string | undefined;

  constructor(
    readonly socket: Duplex,
    private readonly opts: SpdySessionOptions,
  ) {
    super();
    this.maxFrame = opts.maxFrameLength ?? 1024 * 1024;
    this.maxStreams = opts.maxStreams ?? 256;
    this.idleMs = opts.idleTimeoutMs ?? IDLE_TIMEOUT_MS;
    this.lastActive = opts.clock.now();
    this.armIdle(this.idleMs);
    this.done = new Promise((resolve) => socket.once('close', () => resolve()));
    socket.on('data', (c: Buffer) => this.onData(c));
    socket.on('error', () => this.teardown());
    socket.on('close', () => this.teardown());
    socket.on('end', () => this.teardown());
    socket.on('drain', () => this.wakeWindowWaiters());
  }

  /** Bytes that came after the HTTP upgrade request, already read from the socket. */
  feed(head: Buffer): void {
    if (head.length > 0) this.onData(head);
  }

  get isOpen(): boolean {
    return !this.dead;
  }

  /** Sends GOAWAY, lets queued frames leave, then ends the connection. Idempotent. */
  close(): void {
    if (this.dead || this.closing) return;
    this.closing = true;
    // Whatever the client still sends is not for anyone: read on, so its FIN (or close) reaches us.
    this.heldBy.clear();
    this.socket.resume();
    this.enqueue(encodeGoAway(this.lastStreamId, GoAwayStatus.Ok));
    this.whenFlushed(() => {
      this.socket.end();
      // The client should close its end now; if it does not, we do.
      this.graceTimer = this.opts.clock.setTimeout(() => this.teardown(), 5000);
    });
  }

  /** Ends the connection now: every stream is destroyed, the socket too. */
  destroy(reason?: string): void {
    if (reason && !this.failure) this.failure = reason;
    this.teardown();
  }

  /** Checks for idleness when the timer falls due; activity only moves a timestamp. */
  private armIdle(ms: number): void {
    this.idleTimer = this.opts.clock.setTimeout(() => {
      const idle = this.opts.clock.now() - this.lastActive;
      if (idle >= this.idleMs) this.destroy(`idle for ${Math.round(idle / 1000)} s`);
      else this.armIdle(this.idleMs - idle);
    }, ms);
  }

  private fail(err: unknown): void {
    if (this.dead) return;
    const msg = err instanceof Error ? err.message : String(err);
    this.failure = `SPDY protocol error: ${msg}`;
    // Best effort: tell the peer, then drop the connection.
    if (!this.socket.destroyed) this.socket.write(encodeGoAway(this.lastStreamId, GoAwayStatus.ProtocolError));
    this.teardown();
  }

  private teardown(): void {
    if (this.dead) return;
    this.dead = true;
    this.graceTimer?.cancel();
    this.idleTimer?.cancel();
    for (const s of this.streams.values()) s.abort();
    this.streams.clear();
    this.compressor.close();
    this.decompressor.close();
    this.socket.destroy();
    this.wakeWindowWaiters();
    this.emit('close');
  }

  // ---- input ----

  private onData(chunk: Buffer): void {
    if (this.dead) return;
    this.lastActive = this.opts.clock.now();
    this.pending.push(chunk);
    this.pendingLen += chunk.length;
    if (!this.busy) void this.pump();
  }

  private take(): Frame | null {
    if (this.pendingLen < 8) return null;
    if (this.pending.length > 1 && this.pending[0]!.length < 8) this.pending = [Buffer.concat(this.pending)];
    const head = this.pending[0]!;
    const need = 8 + head.readUIntBE(5, 3);
    if (need - 8 > this.maxFrame) throw new SpdyProtocolError(`frame of ${need - 8} bytes is over the limit`);
    if (this.pendingLen < need) return null;
    const buf = this.pending.length === 1 ? head : Buffer.concat(this.pending, this.pendingLen);
    const r = parseFrame(buf, this.maxFrame);
    if (!r) return null;
    const rest = buf.subarray(r.size);
    this.pending = rest.length > 0 ? [rest] : [];
    this.pendingLen = rest.length;
    return r.frame;
  }

  private async pump(): Promise<void> {
    this.busy = true;
    try {
      for (;;) {
        if (this.dead) return;
        const frame = this.take();
        if (!frame) return;
        const p = this.handle(frame);
        if (p) await p;
      }
    } catch (e) {
      this.fail(e);
    } finally {
      this.busy = false;
    }
  }

  private handle(f: Frame): Promise<void> | void {
    switch (f.type) {
      case 'data':
        return this.onDataFrame(f.streamId, f.flags, f.data);
      case 'syn_stream':
        return this.onSynStream(f.streamId, f.flags, f.block);
      case 'syn_reply':
        // We open no streams; still inflate the block to keep the zlib context in step.
        return this.decompressor.decompress(f.block).then(() => this.rst(f.streamId, RstStatus.InvalidStream));
      case 'headers':
        return this.decompressor.decompress(f.block).then((raw) => {
          decodeHeaderBlock(raw);
          if (f.flags & FLAG_FIN) this.streams.get(f.streamId)?.remoteFin();
        });
      case 'rst_stream':
        this.streams.get(f.streamId)?.abort();
        return;
      case 'settings':
        for (const e of f.entries) {
          if (e.id === SETTINGS_INITIAL_WINDOW_SIZE) {
            if (e.value > 0x7fffffff) throw new SpdyProtocolError('initial window too large');
            const delta = e.value - this.peerInitialWindow;
            this.peerInitialWindow = e.value;
            this.peerFlowControl = true;
            for (const s of this.streams.values()) s.sendWindow += delta;
            this.wakeWindowWaiters();
          }
        }
        return;
      case 'ping':
        // Client pings are odd (2.6.5); answer them, ignore echoes of ours.
        if (f.id % 2 === 1) this.enqueue(encodePing(f.id));
        return;
      case 'goaway':
        this.goneAway = true;
        return;
      case 'window_update': {
        this.peerFlowControl = true;
        if (f.streamId === 0) {
          this.sendWindow += f.delta;
          if (this.sendWindow > 0x7fffffff) throw new SpdyProtocolError('session window overflow');
        } else {
          const s = this.streams.get(f.streamId);
          if (s) {
            s.sendWindow += f.delta;
            if (s.sendWindow > 0x7fffffff) this.rst(s.id, RstStatus.FlowControlError);
          }
        }
        this.wakeWindowWaiters();
        return;
      }
      case 'unknown':
        return;
    }
  }

  private async onSynStream(id: number, flags: number, block: Buffer): Promise<void> {
    const headers = decodeHeaderBlock(await this.decompressor.decompress(block));
    if (id % 2 === 0 || id <= this.lastStreamId) {
      this.rst(id, RstStatus.ProtocolError);
      return;
    }
    this.lastStreamId = id;
    // A unidirectional stream could carry nothing back (no reply, no FIN): no protocol here uses one.
    const refuse = (flags & FLAG_UNIDIRECTIONAL) !== 0 || this.goneAway || this.closing || this.dead;
    if (refuse || this.streams.size >= this.maxStreams) {
      this.rst(id, RstStatus.RefusedStream);
      return;
    }
    const s = new SpdyStream(this, id, headers, this.peerInitialWindow);
    this.streams.set(id, s);
    if (flags & FLAG_FIN) s.remoteFin();
    this.opts.onStream(s);
  }

  private onDataFrame(id: number, flags: number, data: Buffer): void {
    const s = this.streams.get(id);
    if (!s) {
      // A stream we reset or never had: its bytes still count against the session window.
      this.credit(data.length);
      return;
    }
    s.receive(data, (flags & FLAG_FIN) !== 0);
  }

  /** Stops reading the socket while `s` holds too much unread data (peers without flow control). */
  hold(s: SpdyStream): void {
    if (this.peerFlowControl) return;
    this.heldBy.add(s);
    this.socket.pause();
  }

  release(s: SpdyStream): void {
    if (this.heldBy.delete(s) && this.heldBy.size === 0 && !this.dead) this.socket.resume();
  }

  /** Replenishes the session receive window by bytes a reader consumed. */
  credit(n: number): void {
    this.recvCredit += n;
    if (this.recvCredit >= DEFAULT_WINDOW / 2) {
      this.enqueue(encodeWindowUpdate(0, this.recvCredit));
      this.recvCredit = 0;
    }
  }

  // ---- output ----

  enqueue(frame: Buffer | Promise<Buffer>): void {
    if (this.dead) return;
    this.lastActive = this.opts.clock.now();
    if (this.socket.writableLength > WRITE_BUFFER_LIMIT) {
      this.destroy('the peer does not read what we send');
      return;
    }
    if (!this.flushing && this.out.length === 0 && Buffer.isBuffer(frame)) {
      this.socket.write(frame);
      return;
    }
    this.out.push(frame);
    if (!this.flushing) void this.flush();
  }

  private async flush(): Promise<void> {
    this.flushing = true;
    try {
      while (this.out.length > 0 && !this.dead) {
        const next = this.out.shift()!;
        const buf = Buffer.isBuffer(next) ? next : await next;
        if (!this.dead) this.socket.write(buf);
      }
    } catch (e) {
      this.fail(e);
    } finally {
      this.flushing = false;
      this.emit('flushed');
    }
  }

  private whenFlushed(fn: () => void): void {
    if (!this.flushing && this.out.length === 0) fn();
    else this.once('flushed', () => this.whenFlushed(fn));
  }

  headerFrame(build: (block: Buffer) => Buffer, headers: HeaderMap): Promise<Buffer> {
    return this.compressor.compress(encodeHeaderBlock(headers)).then(build);
  }

  rst(id: number, status: number): void {
    this.enqueue(encodeRstStream(id, status));
    const s = this.streams.get(id);
    if (s) {
      this.streams.delete(id);
      s.abort();
    }
  }

  forget(s: SpdyStream): void {
    if (this.streams.get(s.id) === s) this.streams.delete(s.id);
    this.release(s);
  }

  /** Resolves when a window may have opened (or the session died). */
  waitWindow(): Promise<void> {
    return new Promise((resolve) => {
      if (this.dead) resolve();
      else this.windowWaiters.push(resolve);
    });
  }

  private wakeWindowWaiters(): void {
    for (const w of this.windowWaiters.splice(0)) w();
  }

  /** True when the socket's write buffer is full: a writer should wait for 'drain'. */
  get congested(): boolean {
    return this.socket.writableNeedDrain;
  }
}
