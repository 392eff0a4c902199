/**
 * A container's filesystem seen from the host, for `docker cp` (stat, copy out) and `docker export`.
 * Every path is walked by rooted.ts: looked up by the kernel below fds we hold, symlinks followed
 * inside the root, `..` stopping at the root, volumes and binds reached as the container sees
 * them. Copy in is extract.ts.
 */
import { closeSync, fstatSync, type Stats } from 'node:fs';
import { posix } from 'node:path';
import type { Writable } from 'node:stream';
import { invalidArgument, notFound } from '../base/errors.js';
import { O_DIRECTORY, O_PATH, openat2, readlinkFd } from '../base/syscalls.js';
import { packFrom } from './pack.js';
import { RootedFs, fsError } from './rooted.js';

export { resolveInRoot } from './rooted.js';
export { extractInto } from './cp-in.js';

export interface PathStat {
  name: string;
  size: number;
  /** Go's os.FileMode bits, as Docker sends them. */
  mode: number;
  mtime: string;
  linkTarget: string;
}

function goMode(st: Stats): number {
  let m = st.mode & 0o777;
  if (st.isDirectory()) m |= 2 ** 31;
  if (st.isSymbolicLink()) m |= 2 ** 27;
  if (st.isCharacterDevice()) m |= (2 ** 26) | (2 ** 21);
  if (st.isBlockDevice()) m |= 2 ** 26;
  if (st.isFIFO()) m |= 2 ** 25;
  if (st.isSocket()) m |= 2 ** 24;
  if (st.mode & 0o4000) m |= 2 ** 23;
  if (st.mode & 0o2000) m |= 2 ** 22;
  if (st.mode & 0o1000) m |= 2 ** 20;
  return m >>> 0;
}

/** Walks `path`; a missing target is Docker's "Could not find the file" (404). */
function lookup(fs: RootedFs, path: string, followLast: boolean) {
  let r;
  try {
    r = fs.resolve(path, { followLast });
  } catch (e) {
    throw fsError(e, path);
  }
  if (r.fd < 0) {
    r.close();
    throw notFound(`Could not find the file ${path} in container`);
  }
  return r as typeof r & { st: Stats };
}

/**
 * PUT /containers/{id}/archive's target, checked as dockerd checks it before anything is written:
 * it must exist (404) and be a directory, symlinks followed (dockerd's words: "extraction point is
 * not a directory").
 */
export function checkExtractPoint(fs: RootedFs, path: string): void {
  const r = lookup(fs, path, true);
  try {
    if (!r.st.isDirectory()) throw invalidArgument('extraction point is not a directory');
  } finally {
    r.close();
  }
}

/** HEAD /containers/{id}/archive: the path's own stat (a last symlink is not followed). */
export function statPath(fs: RootedFs, path: string): PathStat {
  const r = lookup(fs, path, false);
  try {
    const linkTarget = r.st.isSymbolicLink() ? readlinkFd(r.fd) : '';
    return {
      name: posix.basename(path) || '/',
      size: r.st.size,
      mode: goMode(r.st),
      mtime: r.st.mtime.toISOString(),
      linkTarget,
    };
  } finally {
    r.close();
  }
}

/**
 * Tar of `path` (file or directory), entries named from its base name, like `docker cp ctr:/a/b`.
 * A last symlink is followed only when the path ends with `/` or `/.` (as dockerd).
 */
export async function packPath(fs: RootedFs, path: string, out: Writable): Promise<void> {
  const followLast = path.endsWith('/.') || path.endsWith('/');
  const r = lookup(fs, path, followLast);
  try {
    // dockerd names the entries after filepath.Base of the path with a trailing `/.` kept
    // (archive.PreserveTrailingDotOrSeparator): `/data/.` gives `./`, `./x`; `/data/` gives `data/`
    const trimmed = path.replace(/\/+$/, '');
    const name = trimmed === '.' || trimmed.endsWith('/.') ? '.' : posix.basename(r.path) || '.';
    await packFrom({ fd: r.fd, st: r.st, parentFd: r.parentFd, name: r.name, fs, path: r.path }, out, {
      prefix: name,
      includeRoot: true,
    });
  } finally {
    r.close();
  }
}

/** Tar of the whole root filesystem (`docker export`: the container's own files, no volumes). */
export async function packDir(root: string, out: Writable): Promise<void> {
  const fd = openat2(-100, root, O_PATH | O_DIRECTORY, 0);
  try {
    await packFrom({ fd, st: fstatSync(fd) }, out);
  } finally {
    closeSync(fd);
  }
}
