/**
 * One tar entry at a time (tar-stream), for every producer of tars: headers from a file's stat,
 * and content written with exactly the size the header announced. No syscalls beyond Node's:
 * the CLI bundles this file.
 */
import { promises as fsp, type Stats } from 'node:fs';
import { once } from 'node:events';
import type { Writable } from 'node:stream';
import * as tar from 'tar-stream';
import type { Header } from 'tar-stream';

export type Headers = Partial<Header> & { name: string };

export interface PackEntry {
  /** Path inside the tar, without a leading slash. */
  name: string;
  /**
   * A path naming the entry through its parent directory's fd (`/proc/self/fd/N/name`), valid
   * during the call: use it only with calls that do not follow the last name (lstat, lgetxattr).
   */
  abs: string;
  st: Stats;
}

/** What to emit for an entry: the entry itself (default), nothing, or extra entries. */
export type Transform = (e: PackEntry) => { skip?: boolean; replace?: Headers; extra?: Headers[] };

export type Pack = tar.Pack;
type EntryStream = Writable;

const CHUNK = 256 * 1024;

/**
 * Writes one entry whose content is read from `fh` (null: none). Exactly `header.size` bytes go
 * into the tar whatever the file does meanwhile: a shorter file is padded with zeros, a longer one cut.
 */
export async function writeEntry(pack: Pack, header: Headers, fh: fsp.FileHandle | null): Promise<void> {
  const size = header.type === 'file' ? (header.size ?? 0) : 0;
  if (size === 0 || !fh) {
    await new Promise<void>((resolve, reject) =>
      pack.entry({ ...header, ...(header.type === 'file' ? { size: 0 } : {}) }, '', (err) =>
        err ? reject(err) : resolve(),
      ),
    );
    return;
  }
  let settle!: Promise<void>;
  const entry = pack.entry(header, undefined) as unknown as EntryStream;
  settle = new Promise<void>((resolve, reject) => {
    entry.on('error', reject);
    entry.on('finish', resolve);
    (entry as unknown as NodeJS.EventEmitter).on('close', resolve);
  });
  settle.catch(() => undefined);
  try {
    let left = size;
    let eof = false;
    while (left > 0) {
      const buf = Buffer.alloc(Math.min(CHUNK, left)); // zeros: the padding when the file came up short
      let n = buf.length;
      if (!eof) {
        const { bytesRead } = await fh.read(buf, 0, buf.length, null);
        if (bytesRead === 0) eof = true;
        else n = bytesRead;
      }
      left -= n;
      if (!entry.write(n === buf.length ? buf : buf.subarray(0, n))) await Promise.race([once(entry, 'drain'), settle]);
    }
    entry.end();
  } catch (e) {
    entry.destroy(e instanceof Error ? e : new Error(String(e)));
    throw e;
  }
  await settle;
}

/** Adds one entry; a regular file's content is streamed from the host path `abs` (a tree nothing changes). */
export async function addEntry(pack: Pack, header: Headers, abs: string | null): Promise<void> {
  if (!abs || header.type !== 'file' || !header.size) return writeEntry(pack, header, null);
  const fh = await fsp.open(abs, 'r');
  try {
    await writeEntry(pack, header, fh);
  } finally {
    await fh.close();
  }
}

/** The tar header of a file as found on disk (hardlinks to a file seen before become links). */
export function headerOf(e: PackEntry, links: Map<string, string>): Headers | null {
  const { st } = e;
  const base = { name: e.name, mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, mtime: st.mtime };
  if (st.isDirectory()) return { ...base, name: e.name.endsWith('/') ? e.name : `${e.name}/`, type: 'directory' };
  if (st.isSymbolicLink()) return { ...base, type: 'symlink', linkname: '' };
  if (st.isFile()) {
    if (st.nlink > 1) {
      const key = `${st.dev}:${st.ino}`;
      const first = links.get(key);
      if (first) return { ...base, type: 'link', linkname: first, size: 0 };
      links.set(key, e.name);
    }
    return { ...base, type: 'file', size: st.size };
  }
  if (st.isCharacterDevice() || st.isBlockDevice())
    return {
      ...base,
      type: st.isCharacterDevice() ? 'character-device' : 'block-device',
      devmajor: Math.floor(st.rdev / 256),
      devminor: st.rdev % 256,
    };
  if (st.isFIFO()) return { ...base, type: 'fifo' };
  return null; // sockets are not archived
}

/**
 * A tar pack piped into `out`; `done` resolves when `out` has taken everything after finalize().
 * `done` is marked handled: a caller that gives up early (and destroys the pack) leaves no
 * unhandled rejection behind.
 */
export function packInto(out: Writable): { pack: Pack; done: Promise<void> } {
  const pack = tar.pack();
  const done = new Promise<void>((resolve, reject) => {
    out.on('error', reject);
    pack.on('error', reject);
    out.on('finish', resolve);
    out.on('close', () => reject(new Error('output closed before the archive was complete')));
  });
  done.catch(() => undefined);
  (pack as unknown as NodeJS.ReadableStream).pipe(out);
  return { pack, done };
}
