/**
 * Packs a directory tree into a tar stream (tar-stream), one entry per file, hardlinks kept.
 * `transform` lets a caller rename, drop or add entries (layer diffs turn overlay whiteouts
 * into `.wh.` entries). Never buffers file content: files are streamed into the tar.
 */
import { createReadStream, promises as fsp, type Stats } from 'node:fs';
import { join } from 'node:path';
import type { Writable } from 'node:stream';
import * as tar from 'tar-stream';
import type { Header } from 'tar-stream';

export type Headers = Partial<Header> & { name: string };

export interface PackEntry {
  /** Path inside the tar, without a leading slash. */
  name: string;
  abs: string;
  st: Stats;
}

/** What to emit for an entry: the entry itself (default), nothing, or extra entries. */
export type Transform = (e: PackEntry) => { skip?: boolean; replace?: Headers; extra?: Headers[] };

type Pack = tar.Pack;

/** Adds one entry; a regular file's content is streamed from `abs`. */
export function addEntry(pack: Pack, header: Headers, abs: string | null): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const cb = (err?: Error | null) => (err ? reject(err) : resolve());
    if (abs && header.type === 'file' && (header.size ?? 0) > 0) {
      const entry = pack.entry(header, cb);
      const rs = createReadStream(abs);
      (entry as unknown as NodeJS.EventEmitter).on('error', reject); // else a failed entry's error is unhandled and kills the process
      rs.on('error', (e) => {
        reject(e);
        (entry as unknown as { destroy(e: Error): void }).destroy(e);
      });
      rs.pipe(entry as unknown as NodeJS.WritableStream);
    } else {
      pack.entry(header, '', cb);
    }
  });
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
    return { ...base, type: st.isCharacterDevice() ? 'character-device' : 'block-device', devmajor: Math.floor(st.rdev / 256), devminor: st.rdev % 256 };
  if (st.isFIFO()) return { ...base, type: 'fifo' };
  return null; // sockets are not archived
}

/**
 * Writes a tar of `dir` to `out`. `prefix` is prepended to names (e.g. `b` for `cp ctr:/a/b`).
 * With `single`, only `dir` itself (a file or symlink) is archived under `prefix`.
 */
/** A tar pack piped into `out`; `done` resolves when `out` has taken everything after finalize(). */
export function packInto(out: Writable): { pack: Pack; done: Promise<void> } {
  const pack = tar.pack();
  const done = new Promise<void>((resolve, reject) => {
    out.on('error', reject);
    pack.on('error', reject);
    out.on('finish', resolve);
  });
  done.catch(() => undefined); // a producer that fails before awaiting `done` must not leave its rejection unhandled
  (pack as unknown as NodeJS.ReadableStream).pipe(out);
  return { pack, done };
}

export async function packTree(dir: string, out: Writable, opts: { prefix?: string; transform?: Transform; includeRoot?: boolean } = {}): Promise<void> {
  const { pack, done } = packInto(out);
  const links = new Map<string, string>();
  const emit = async (e: PackEntry) => {
    const t = opts.transform?.(e) ?? {};
    if (!t.skip) {
      const h = t.replace ?? headerOf(e, links);
      if (h) {
        if (h.type === 'symlink' && !h.linkname) h.linkname = await fsp.readlink(e.abs);
        await addEntry(pack, h, e.abs);
      }
    }
    for (const x of t.extra ?? []) await addEntry(pack, x, null);
  };
  const walk = async (abs: string, name: string): Promise<void> => {
    const names = (await fsp.readdir(abs)).sort();
    for (const n of names) {
      const childAbs = join(abs, n);
      const childName = name ? `${name}/${n}` : n;
      const st = await fsp.lstat(childAbs);
      await emit({ name: childName, abs: childAbs, st });
      if (st.isDirectory()) await walk(childAbs, childName);
    }
  };
  const rootSt = await fsp.lstat(dir);
  const prefix = opts.prefix ?? '';
  if (opts.includeRoot || !rootSt.isDirectory()) await emit({ name: prefix || '.', abs: dir, st: rootSt });
  if (rootSt.isDirectory()) await walk(dir, prefix);
  pack.finalize();
  await done;
}
