/**
 * Packs a directory tree into a tar stream (tar-stream), one entry per file, hardlinks kept.
 * `transform` lets a caller rename, drop or add entries (layer diffs turn overlay whiteouts
 * into `.wh.` entries). Never buffers file content: files are streamed into the tar.
 *
 * The walk holds an fd for every directory on its path and looks each name up below it without
 * following anything (rooted.ts), so a tree that changes while it is packed (a running container)
 * can neither redirect the walk out of it nor make it fail: a file is written with exactly the
 * size its header announced (cut, or padded with zeros), and a name that vanished is skipped.
 */
import { closeSync, fstat as fstatCb, promises as fsp, type Stats } from 'node:fs';
import { promisify } from 'node:util';
import type { Writable } from 'node:stream';
import { headerOf, packInto, writeEntry, type PackEntry, type Transform } from './entry.js';
import { O_DIRECTORY, O_PATH, openat2, readlinkFd } from '../base/syscalls.js';
import { errCode, fdPath, openChild, type RootedFs } from './rooted.js';

export { addEntry, headerOf, packInto, type Headers, type PackEntry, type Transform } from './entry.js';

const fstat = promisify(fstatCb);

export interface PackOptions {
  /** Prepended to names (e.g. `b` for `cp ctr:/a/b`). */
  prefix?: string;
  transform?: Transform;
  /** Archive the start directory itself too (as `prefix`, or `.`). */
  includeRoot?: boolean;
}

/** Where a walk starts: an fd we hold (O_PATH) and its stat; `fs` and `path` route into mounts. */
export interface WalkStart {
  fd: number;
  st: Stats;
  /** The fd of the directory holding the start and its name there (for `abs`), when known. */
  parentFd?: number;
  name?: string;
  fs?: RootedFs;
  /** The start's container path (for mount lookups). */
  path?: string;
}

/** Writes a tar of the tree at `start` to `out`; the tree is read only through fds (see above). */
export async function packFrom(start: WalkStart, out: Writable, opts: PackOptions = {}): Promise<void> {
  const { pack, done } = packInto(out);
  const links = new Map<string, string>();
  const emit = async (e: PackEntry, fd: number) => {
    const t = opts.transform?.(e) ?? {};
    if (!t.skip) {
      const h = t.replace ?? headerOf(e, links);
      if (h) {
        if (h.type === 'symlink' && !h.linkname) h.linkname = readlinkFd(fd);
        if (h.type === 'file' && !t.replace && (h.size ?? 0) > 0) {
          const fh = await fsp.open(fdPath(fd), 'r'); // the very inode we stat'ed, reopened through our fd
          try {
            await writeEntry(pack, h, fh);
          } finally {
            await fh.close();
          }
        } else await writeEntry(pack, h, null);
      }
    }
    for (const x of t.extra ?? []) await writeEntry(pack, x, null);
  };
  const walk = async (dirFd: number, path: string, name: string): Promise<void> => {
    const names = (await fsp.readdir(fdPath(dirFd))).sort();
    for (const n of names) {
      const childPath = path === '/' ? `/${n}` : `${path}/${n}`;
      const childName = name ? `${name}/${n}` : n;
      const mount = start.fs?.mountAt(childPath) ?? null;
      let fd: number;
      try {
        fd = mount ? mount.fd : openChild(dirFd, n); // a mount's fd is the RootedFs's: not closed here
      } catch (e) {
        if (errCode(e) === 'ENOENT') continue; // removed since readdir
        throw e;
      }
      try {
        const st = mount ? mount.st : await fstat(fd);
        await emit({ name: childName, abs: fdPath(dirFd, n), st }, fd);
        if (st.isDirectory()) await walk(fd, childPath, childName);
      } finally {
        if (!mount) closeSync(fd);
      }
    }
  };
  try {
    const prefix = opts.prefix ?? '';
    const abs =
      start.parentFd !== undefined && start.parentFd >= 0 && start.name
        ? fdPath(start.parentFd, start.name)
        : fdPath(start.fd);
    if (opts.includeRoot || !start.st.isDirectory()) await emit({ name: prefix || '.', abs, st: start.st }, start.fd);
    if (start.st.isDirectory()) await walk(start.fd, start.path ?? '/', prefix);
    pack.finalize();
  } catch (e) {
    pack.destroy(e instanceof Error ? e : new Error(String(e)));
    throw e;
  }
  await done;
}

/** Writes a tar of the host directory `dir` (berthd's own: a layer or an upper dir) to `out`. */
export async function packTree(dir: string, out: Writable, opts: PackOptions = {}): Promise<void> {
  const fd = openat2(-100, dir, O_PATH | O_DIRECTORY, 0);
  try {
    await packFrom({ fd, st: await fstat(fd) }, out, opts);
  } finally {
    closeSync(fd);
  }
}
