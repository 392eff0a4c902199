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

/** Go's filepath.Base: trailing slashes dropped, `/` for the root. */
function goBase(p: string): string {
  const t = p.replace(/\/+$/, '');
  if (t === '') return p === '' ? '.' : '/';
  return t.slice(t.lastIndexOf('/') + 1);
}

/**
 * The path as dockerd reads an archive path (daemon/archive.go): cleaned lexically under `/`
 * (filepath.Join: `/nope/..` is `/`), with a trailing `/.` or `/` kept
 * (archive.PreserveTrailingDotOrSeparator). The walk of the result is still the kernel's, inside
 * the container's root.
 */
export function archivePath(path: string): string {
  let p = posix.normalize(`/${path}`);
  if (p.length > 1) p = p.replace(/\/+$/, '');
  if (goBase(p) !== '.' && goBase(path) === '.') p += p.endsWith('/') ? '.' : '/.';
  if (!p.endsWith('/') && path.endsWith('/')) p += '/';
  return p;
}

/**
 * Walks `path` (as `archivePath` reads it); a last symlink is followed when the path ends with
 * `/` or `/.`, and the target must then be a directory. A missing target is Docker's "Could not
 * find the file" (404), named as the client asked.
 */
function lookup(fs: RootedFs, path: string, followLast?: boolean) {
  const p = archivePath(path);
  const trailing = p.endsWith('/') || p.endsWith('/.');
  let r;
  try {
    r = fs.resolve(p, { followLast: followLast ?? trailing });
  } catch (e) {
    throw fsError(e, path);
  }
  if (r.fd < 0) {
    r.close();
    throw notFound(`Could not find the file ${path} in container`);
  }
  if (trailing && !r.st?.isDirectory()) {
    r.close();
    // dockerd: 500 "lstat <host path>/etc/passwd/: not a directory"; the container's path here
    throw invalidArgument(`lstat ${p}: not a directory`);
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

/**
 * HEAD /containers/{id}/archive: the path's own stat (a last symlink is not followed unless the
 * path ends with `/` or `/.`), named as dockerd names it (`/v/.` is `.`, `/` is `/`).
 */
export function statPath(fs: RootedFs, path: string): PathStat {
  const r = lookup(fs, path);
  try {
    const linkTarget = r.st.isSymbolicLink() ? readlinkFd(r.fd) : '';
    return {
      name: goBase(archivePath(path)),
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
  const r = lookup(fs, path);
  try {
    // dockerd names the entries after filepath.Base of the path with a trailing `/.` kept
    // (archive.PreserveTrailingDotOrSeparator): `/data/.` gives `./`, `./x`; `/data/` gives `data/`
    const base = goBase(archivePath(path));
    const name = base === '/' ? '.' : base;
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
