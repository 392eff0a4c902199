/**
 * Header-block compression (SPDY/3.1 section 2.6.10.1): one zlib context per direction for the
 * whole connection, primed with SPDY/3's dictionary, each block ending on a sync flush. Node's zlib
 * is asynchronous, so each context runs one block at a time, in the order blocks were handed to it:
 * the order of the frames on the wire is the order of the blocks in the stream.
 */
import zlib from 'node:zlib';
import { SPDY3_DICTIONARY } from './dictionary.js';
import { SpdyProtocolError } from './frames.js';

type Engine = zlib.Deflate | zlib.Inflate;

function runBlock(z: Engine, input: Buffer, maxOutput: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let total = 0;
    let done = false;
    const finish = (err: Error | null) => {
      if (done) return;
      done = true;
      z.off('data', onData);
      z.off('error', onError);
      if (err) reject(err);
      else resolve(Buffer.concat(chunks, total));
    };
    const onData = (c: Buffer) => {
      total += c.length;
      if (total > maxOutput) finish(new SpdyProtocolError(`header block inflates past ${maxOutput} bytes`));
      else chunks.push(c);
    };
    const onError = (e: Error) => finish(new SpdyProtocolError(`bad compressed header block: ${e.message}`));
    z.on('data', onData);
    z.on('error', onError);
    z.write(input);
    z.flush(zlib.constants.Z_SYNC_FLUSH, () => finish(null));
  });
}

class Context {
  private chain: Promise<unknown> = Promise.resolve();
  private dead = false;

  constructor(
    private readonly z: Engine,
    private readonly maxOutput: number,
  ) {
    // An error after close (or a late one) must never be an unhandled 'error' event.
    z.on('error', () => {
      this.dead = true;
    });
  }

  run(input: Buffer): Promise<Buffer> {
    const next = this.chain.then(() => {
      if (this.dead) throw new SpdyProtocolError('header compression context is broken');
      return runBlock(this.z, input, this.maxOutput);
    });
    this.chain = next.catch(() => {
      this.dead = true;
    });
    return next;
  }

  close(): void {
    this.dead = true;
    this.z.close();
  }
}

/** Compresses the header blocks one endpoint sends. */
export class HeaderCompressor {
  private readonly ctx = new Context(zlib.createDeflate({ dictionary: SPDY3_DICTIONARY }), Number.MAX_SAFE_INTEGER);
  compress(block: Buffer): Promise<Buffer> {
    return this.ctx.run(block);
  }
  close(): void {
    this.ctx.close();
  }
}

/** Inflates the header blocks one endpoint receives; a block inflating past `maxOutput` is an error. */
export class HeaderDecompressor {
  private readonly ctx: Context;
  constructor(maxOutput = 256 * 1024) {
    this.ctx = new Context(zlib.createInflate({ dictionary: SPDY3_DICTIONARY }), maxOutput);
  }
  decompress(block: Buffer): Promise<Buffer> {
    return this.ctx.run(block);
  }
  close(): void {
    this.ctx.close();
  }
}
