/**
 * Content-addressed blobs: `<root>/content/blobs/sha256/<hex>`. A write streams into
 * `<root>/content/ingest/<random>` while hashing, then commit verifies the digest (and size, when
 * expected) and renames into place: a blob is visible complete or not at all. A failed write
 * leaves no blob and removes its ingest file (commit always closes the writer, even on error).
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, promises as fsp, statSync } from 'node:fs';
import { join } from 'node:path';
import { Transform, type Readable, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { invalidArgument, notFound } from '../base/errors.js';
import { digestHex, type Digest } from '../base/digest.js';

export interface BlobInfo {
  digest: Digest;
  size: number;
}

export class ContentStore {
  readonly blobs: string;
  private readonly ingest: string;

  constructor(root: string) {
    this.blobs = join(root, 'content', 'blobs', 'sha256');
    this.ingest = join(root, 'content', 'ingest');
  }

  async init(): Promise<void> {
    await fsp.mkdir(this.blobs, { recursive: true });
    await fsp.rm(this.ingest, { recursive: true, force: true }); // interrupted writes of a previous run
    await fsp.mkdir(this.ingest, { recursive: true });
  }

  path(d: Digest): string {
    return join(this.blobs, digestHex(d));
  }

  has(d: Digest): boolean {
    try {
      statSync(this.path(d));
      return true;
    } catch {
      return false;
    }
  }

  size(d: Digest): number {
    try {
      return statSync(this.path(d)).size;
    } catch {
      throw notFound(`blob ${d} not found`);
    }
  }

  reader(d: Digest): Readable {
    if (!this.has(d)) throw notFound(`blob ${d} not found`);
    return createReadStream(this.path(d));
  }

  async readJson(d: Digest): Promise<Buffer> {
    return fsp.readFile(this.path(d));
  }

  /**
   * A writer: `stream` takes the bytes; `commit(expected?)` verifies and lands the blob;
   * `abort()` drops it. Use `write()` for the whole flow from a Readable.
   */
  openWriter(): { stream: Writable; commit: (expected?: Partial<BlobInfo>) => Promise<BlobInfo>; abort: () => Promise<void> } {
    const tmp = join(this.ingest, randomBytes(8).toString('hex'));
    const hash = createHash('sha256');
    let size = 0;
    const file = createWriteStream(tmp, { highWaterMark: 4 << 20 }); // batches chunks into few writev calls
    const tee = new Transform({
      transform(chunk: Buffer, _e, cb) {
        hash.update(chunk);
        size += chunk.length;
        cb(null, chunk);
      },
    });
    const done = pipeline(tee, file);
    const abort = async () => {
      tee.destroy();
      await done.catch(() => undefined);
      await fsp.rm(tmp, { force: true });
    };
    const commit = async (expected?: Partial<BlobInfo>): Promise<BlobInfo> => {
      try {
        await done;
        const digest = `sha256:${hash.digest('hex')}` as Digest;
        if (expected?.digest && expected.digest !== digest) throw invalidArgument(`digest mismatch: expected ${expected.digest}, got ${digest}`);
        if (expected?.size !== undefined && expected.size !== size) throw invalidArgument(`size mismatch for ${digest}: expected ${expected.size}, got ${size}`);
        await fsp.rename(tmp, this.path(digest));
        return { digest, size };
      } catch (e) {
        await fsp.rm(tmp, { force: true });
        throw e;
      }
    };
    return { stream: tee, commit, abort };
  }

  /** Streams `input` into a new blob (verified against `expected` when given). */
  async write(input: Readable, expected?: Partial<BlobInfo>): Promise<BlobInfo> {
    const w = this.openWriter();
    try {
      await pipeline(input, w.stream);
    } catch (e) {
      await w.abort();
      throw e;
    }
    return w.commit(expected);
  }

  async writeBytes(data: Buffer): Promise<BlobInfo> {
    const { Readable } = await import('node:stream');
    return this.write(Readable.from([data]));
  }

  async delete(d: Digest): Promise<void> {
    await fsp.rm(this.path(d), { force: true });
  }
}
