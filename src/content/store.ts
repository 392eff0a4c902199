/**
 * Content-addressed blobs: `<root>/content/blobs/sha256/<hex>`. A write streams into
 * `<root>/content/ingest/<random>` while hashing, then commit verifies the digest (and size, when
 * expected) and renames into place: a blob is visible complete or not at all. A failed write
 * leaves no blob and removes its ingest file (commit always closes the writer, even on error).
 * A blob landed (or found by `has`) under a lease is held by it (./lease.ts) before it is visible.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, promises as fsp, statSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { Readable, Transform, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { BerthError, codeOfErrno, errorMessage, notFound } from '../base/errors.js';
import { digestHex, type Digest } from '../base/digest.js';
import { claim } from './lease.js';

export interface BlobInfo {
  digest: Digest;
  size: number;
}

/** A blob whose bytes are not the digest it was expected to be (InvalidArgument). */
export class DigestMismatch extends BerthError {
  constructor(
    readonly expected: string,
    readonly actual: string,
  ) {
    super('InvalidArgument', `digest mismatch: expected ${expected}, got ${actual}`);
  }
}

const errnoOf = (e: unknown): string | undefined => (e as NodeJS.ErrnoException | null)?.code;

/** A failed file operation on a blob, in its errno's category (EACCES stays PermissionDenied, EIO Internal). */
function blobError(e: unknown, what: string): BerthError {
  const code = errnoOf(e);
  return new BerthError(code ? codeOfErrno(code) : 'Internal', `${what}: ${errorMessage(e)}`, { cause: e });
}

const HEX = /^[a-f0-9]{64}$/;

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

  /** Whether the blob is there (held by the context's lease when it is). Other errors than ENOENT throw. */
  has(d: Digest): boolean {
    try {
      statSync(this.path(d));
    } catch (e) {
      if (errnoOf(e) === 'ENOENT') return false;
      throw blobError(e, `blob ${d}`);
    }
    claim('blob', d);
    return true;
  }

  size(d: Digest): number {
    try {
      return statSync(this.path(d)).size;
    } catch (e) {
      if (errnoOf(e) === 'ENOENT') throw notFound(`blob ${d} not found`);
      throw blobError(e, `blob ${d}`);
    }
  }

  reader(d: Digest): Readable {
    if (!this.has(d)) throw notFound(`blob ${d} not found`);
    return createReadStream(this.path(d));
  }

  async readJson(d: Digest): Promise<Buffer> {
    return fsp.readFile(this.path(d));
  }

  /** Every blob on disk with its size (for the garbage collector). Names that are not a sha256 hex are left alone. */
  async list(): Promise<BlobInfo[]> {
    const out: BlobInfo[] = [];
    for (const name of await fsp.readdir(this.blobs)) {
      if (!HEX.test(name)) continue;
      try {
        out.push({ digest: `sha256:${name}` as Digest, size: (await fsp.lstat(join(this.blobs, name))).size });
      } catch (e) {
        if (errnoOf(e) !== 'ENOENT') throw blobError(e, `blob sha256:${name}`);
      }
    }
    return out;
  }

  /**
   * A writer: `stream` takes the bytes; `commit(expected?)` verifies and lands the blob;
   * `abort()` drops it. Use `write()` for the whole flow from a Readable.
   */
  openWriter(): {
    stream: Writable;
    commit: (expected?: Partial<BlobInfo>) => Promise<BlobInfo>;
    abort: () => Promise<void>;
  } {
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
      await done.catch(async (e: unknown) => {
        await fsp.rm(tmp, { force: true });
        throw e;
      });
      return this.land(tmp, { digest: `sha256:${hash.digest('hex')}` as Digest, size }, expected);
    };
    return { stream: tee, commit, abort };
  }

  /**
   * An ingest file for a writer elsewhere (a download on a worker thread): the writer creates
   * `path` and reports the sha256 and size of what it wrote; `land` checks them against
   * `expected` and renames the file into place, `drop` removes it. Either removes it on failure.
   */
  ingestFile(): {
    path: string;
    land: (got: BlobInfo, expected?: Partial<BlobInfo>) => Promise<BlobInfo>;
    drop: () => Promise<void>;
  } {
    const tmp = join(this.ingest, randomBytes(8).toString('hex'));
    return {
      path: tmp,
      land: (got, expected) => this.land(tmp, got, expected),
      drop: () => fsp.rm(tmp, { force: true }),
    };
  }

  /** Verifies a written ingest file's digest and size against `expected` and renames it into place. */
  private async land(tmp: string, got: BlobInfo, expected?: Partial<BlobInfo>): Promise<BlobInfo> {
    const { digest, size } = got;
    try {
      if (expected?.digest && expected.digest !== digest) throw new DigestMismatch(expected.digest, digest);
      if (expected?.size !== undefined && expected.size !== size) {
        throw new BerthError('InvalidArgument', `size mismatch for ${digest}: expected ${expected.size}, got ${size}`);
      }
      claim('blob', digest); // before it is visible: a collector listing now finds it held
      await fsp.rename(tmp, this.path(digest)).catch((e: unknown) => {
        throw blobError(e, `landing blob ${digest}`); // ENOSPC stays Unavailable, EACCES PermissionDenied
      });
      return { digest, size };
    } catch (e) {
      await fsp.rm(tmp, { force: true });
      throw e;
    }
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
    return this.write(Readable.from([data]));
  }

  /** Deletes a blob; one that is not there is fine. Any other failure keeps its category (EACCES is not a 404). */
  async delete(d: Digest): Promise<void> {
    try {
      await fsp.unlink(this.path(d));
    } catch (e) {
      if (errnoOf(e) !== 'ENOENT') throw blobError(e, `deleting blob ${d}`);
    }
  }

  /**
   * Deletes a blob unless `keep()` says otherwise, with no await between the check and the unlink
   * (the collector's last look: a lease that took the blob meanwhile keeps it). Returns whether it went.
   */
  deleteUnless(d: Digest, keep: () => boolean): boolean {
    if (keep()) return false;
    try {
      unlinkSync(this.path(d));
      return true;
    } catch (e) {
      if (errnoOf(e) === 'ENOENT') return false;
      throw blobError(e, `deleting blob ${d}`);
    }
  }
}
