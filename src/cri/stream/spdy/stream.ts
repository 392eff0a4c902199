/**
 * One SPDY/3.1 stream the client opened, as a Node Duplex. It speaks to its connection only
 * through `StreamHost` (which SpdySession implements), so the two files do not import each other.
 */
import { Duplex } from 'node:stream';
import { FLAG_FIN, RstStatus, encodeData, encodeSynReply, encodeWindowUpdate, type HeaderMap } from './frames.js';

/** What one connection reads unread into a stream before it stops reading the socket (no-flow-control peers). */
export const STREAM_READ_LIMIT = 256 * 1024;
/** Largest DATA payload we send in one frame. */
export const MAX_SEND_CHUNK = 32 * 1024;

/** The connection, as its streams see it. */
export interface StreamHost {
  readonly isOpen: boolean;
  /** True once the peer shows it does flow control. */
  readonly peerFlowControl: boolean;
  /** The session send window (SPDY/3.1), shared by all streams. */
  sendWindow: number;
  /** True when the socket's write buffer is full. */
  readonly congested: boolean;
  enqueue(frame: Buffer | Promise<Buffer>): void;
  headerFrame(build: (block: Buffer) => Buffer, headers: HeaderMap): Promise<Buffer>;
  rst(id: number, status: number): void;
  forget(s: SpdyStream): void;
  credit(n: number): void;
  hold(s: SpdyStream): void;
  release(s: SpdyStream): void;
  /** Resolves when a window may have opened or the socket drained (or the connection died). */
  waitWindow(): Promise<void>;
}

/**
 * One stream the client opened. Readable: the client's DATA. Writable: our DATA; `end()` sends
 * FIN. `destroy()` before both sides finished sends RST_STREAM CANCEL. Never emits 'error' to an
 * unlistening world: a reset stream just closes.
 */
export class SpdyStream extends Duplex {
  private replied = false;
  private localDone = false;
  private remoteDone = false;
  private aborted = false;
  private unacked = 0;
  private held = false;
  sendWindow: number;

  constructor(
    private readonly session: StreamHost,
    readonly id: number,
    readonly headers: HeaderMap,
    initialWindow: number,
  ) {
    super({ allowHalfOpen: true, readableHighWaterMark: 64 * 1024, writableHighWaterMark: 32 * 1024 });
    this.sendWindow = initialWindow;
    this.on('error', () => {});
  }

  /** The first value of a header (names are lowercase). */
  header(name: string): string | undefined {
    return this.headers.get(name)?.[0];
  }

  /** SYN_REPLY; with `fin`, we send nothing on this stream. */
  reply(fin = false): void {
    if (this.replied || this.aborted) return;
    this.replied = true;
    const flags = fin ? FLAG_FIN : 0;
    this.session.enqueue(this.session.headerFrame((b) => encodeSynReply(this.id, flags, b), new Map()));
    if (fin) {
      this.localDone = true;
      this.maybeDone();
    }
  }

  /** RST_STREAM with `status`; the stream is gone. */
  reset(status: number = RstStatus.Cancel): void {
    if (this.aborted) return;
    this.session.rst(this.id, status);
  }

  /** The stream ended abruptly (RST from the peer, the session died): no more events but 'close'. */
  abort(): void {
    if (this.aborted) return;
    this.aborted = true;
    this.session.forget(this);
    this.destroy();
  }

  receive(data: Buffer, fin: boolean): void {
    if (this.remoteDone || this.aborted) {
      this.session.credit(data.length);
      if (!this.aborted && data.length > 0) this.reset(RstStatus.StreamAlreadyClosed);
      return;
    }
    if (data.length > 0) {
      this.unacked += data.length;
      if (this.push(data)) this.ack();
      else if (this.readableLength > STREAM_READ_LIMIT && !this.held) {
        this.held = true;
        this.session.hold(this);
      }
    }
    if (fin) this.remoteFin();
  }

  remoteFin(): void {
    if (this.remoteDone) return;
    this.remoteDone = true;
    this.push(null);
    this.maybeDone();
  }

  private ack(): void {
    if (this.unacked === 0) return;
    const n = this.unacked;
    this.unacked = 0;
    this.session.credit(n);
    if (!this.remoteDone && n > 0) this.session.enqueue(encodeWindowUpdate(this.id, n));
  }

  override _read(): void {
    if (this.held) {
      this.held = false;
      this.session.release(this);
    }
    this.ack();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    void this.send(chunk).then(
      () => cb(),
      (e: Error) => cb(e),
    );
  }

  private async send(chunk: Buffer): Promise<void> {
    let off = 0;
    while (off < chunk.length) {
      if (this.aborted || !this.session.isOpen) throw new Error('stream reset');
      let n = Math.min(MAX_SEND_CHUNK, chunk.length - off);
      if (this.session.peerFlowControl) {
        const avail = Math.min(this.sendWindow, this.session.sendWindow);
        if (avail <= 0) {
          await this.session.waitWindow();
          continue;
        }
        n = Math.min(n, avail);
      }
      this.sendWindow -= n;
      this.session.sendWindow -= n;
      this.session.enqueue(encodeData(this.id, chunk.subarray(off, off + n), false));
      off += n;
      while (this.session.congested && this.session.isOpen && !this.aborted) await this.session.waitWindow();
    }
  }

  override _final(cb: (err?: Error | null) => void): void {
    if (!this.aborted && !this.localDone) {
      this.localDone = true;
      this.session.enqueue(encodeData(this.id, Buffer.alloc(0), true));
      this.maybeDone();
    }
    cb();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    if (!this.aborted) {
      this.aborted = true;
      if (!(this.localDone && this.remoteDone)) this.session.rst(this.id, RstStatus.Cancel);
      this.session.forget(this);
    }
    cb(err);
  }

  private maybeDone(): void {
    if (this.localDone && this.remoteDone) this.session.forget(this);
  }
}
