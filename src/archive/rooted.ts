/**
 * The rooted file layer: every lookup inside a container's (or an image's) tree is made by the
 * kernel relative to a directory fd we hold, so a path can never leave the root, however the
 * tree changes under us (CVE-2018-15664: a container swapping a path component with a symlink
 * while berthd works on it).
 *
 * - `RootedFs.resolve` walks a container path one component at a time: each step is
 *   openat2(parentFd, name, O_PATH|O_NOFOLLOW, RESOLVE_IN_ROOT|RESOLVE_NO_SYMLINKS|RESOLVE_NO_MAGICLINKS),
 *   so the kernel looks up exactly one name below a directory we hold and follows nothing. A
 *   symlink met on the way is read from its own fd (readlinkat(fd, "")) and its target walked in
 *   the container's namespace: absolute targets restart at the root, `..` stops at the root.
 *   Between components the container's mount table (volumes, binds, /etc/hosts...) is consulted,
 *   so a path inside a volume reaches the volume, as dockerd's mounted volumes do.
 * - Everything done afterwards names the result by fd: `/proc/self/fd/<dirfd>/<name>` with the
 *   l*-calls that never follow the last name (lstat, lchown, lutimes, readlink, unlink, rmdir,
 *   mkdir, symlink, link), or `/proc/self/fd/<fd>` of an fd opened here (chmod, open for reading).
 * - `resolveInRoot` (a string path) remains for static trees (build contexts, image views, a
 *   container before it first runs): the kernel resolves it (RESOLVE_IN_ROOT) but the caller reopens
 *   it by name, so it is not for a tree a running process can change.
 */
import { closeSync, fstatSync, mkdirSync, openSync, promises as fsp, readSync, type Stats } from 'node:fs';
import { posix } from 'node:path';
import { invalidArgument, internal, notFound, BerthError } from '../base/errors.js';
import {
  O_DIRECTORY,
  O_NOFOLLOW,
  O_PATH,
  RESOLVE_BENEATH,
  RESOLVE_IN_ROOT,
  RESOLVE_NO_MAGICLINKS,
  RESOLVE_NO_SYMLINKS,
  openat2,
  readlinkFd,
} from '../base/syscalls.js';

/** A mount inside the root: the container path it covers and the host path it shows. */
export interface RootMount {
  destination: string;
  source: string;
  readOnly: boolean;
}

/** The path of an fd we hold (or of `name` in the directory fd `dir`), for Node's fs calls. */
export function fdPath(fd: number, name?: string): string {
  return name === undefined ? `/proc/self/fd/${fd}` : `/proc/self/fd/${fd}/${name}`;
}

/** A path's components: empty and `.` dropped, `..` kept (the walk pops them inside the root). */
export function splitPath(p: string): string[] {
  return p.split('/').filter((c) => c !== '' && c !== '.');
}

const MAX_HOPS = 40; // Linux's MAXSYMLINKS
const MAX_MKDIRS = 4096; // PATH_MAX/2 components, and then some for retries
const STEP = RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;

/** Opens one name below `dirFd` without following anything (a symlink gives its own fd). */
export function openChild(dirFd: number, name: string, flags = O_PATH): number {
  if (name === '' || name === '.' || name === '..' || name.includes('/'))
    throw internal(`not a single path component: ${JSON.stringify(name)}`);
  return openat2(dirFd, name, flags | O_NOFOLLOW, STEP);
}

interface MountFd {
  path: string;
  fd: number;
  readOnly: boolean;
  st: Stats;
}

interface Node {
  name: string;
  fd: number;
  st: Stats;
  owned: boolean;
  mount: MountFd | null;
}

/** The result of a walk. The caller closes it (its fds) when done. */
export interface Resolved {
  /** O_PATH fd of the target (a symlink's own when not followed), -1 when it does not exist. */
  fd: number;
  st: Stats | null;
  /** O_PATH fd of the directory holding the target and its name there; -1/'' for the root or a mount's root. */
  parentFd: number;
  name: string;
  /** The container path reached (symlinks expanded). */
  path: string;
  /** The target is the root or a mount's root: it cannot be removed or replaced. */
  isMountRoot: boolean;
  /** The target lies on a read-only mount. */
  readOnly: boolean;
  /** The container path of the mount the target lies on ('' for the root filesystem). */
  mount: string;
  close(): void;
}

export function errCode(e: unknown): string {
  return (e as { code?: unknown }).code === undefined ? '' : String((e as { code?: unknown }).code);
}

/** A failed file operation on a container path as a berth error: the caller's mistake is a 4xx. */
export function fsError(e: unknown, path: string): BerthError {
  if (e instanceof BerthError) return e;
  const code = errCode(e);
  const msg = e instanceof Error ? e.message.replace(/\/proc\/self\/fd\/\d+\/?/g, '') : String(e);
  switch (code) {
    case 'ENOENT':
      return notFound(`Could not find the file ${path} in container`, e);
    case 'ENOTDIR':
    case 'ELOOP':
    case 'ENAMETOOLONG':
    case 'EEXIST':
    case 'EISDIR':
    case 'EXDEV':
    case 'EPERM':
    case 'EROFS':
    case 'ENOTEMPTY':
    case 'EINVAL':
    case 'EACCES':
    case 'EBUSY':
    case 'EMLINK':
      return invalidArgument(`${path}: ${code}`, e);
    default:
      return internal(`${path}: ${msg}`, e);
  }
}

function nodeError(code: string, what: string): Error {
  return Object.assign(new Error(`${code}: ${what}`), { code });
}

export class RootedFs {
  private closed = false;

  private constructor(
    readonly root: string,
    private readonly rootFd: number,
    private readonly rootSt: Stats,
    private readonly mounts: Map<string, MountFd>,
  ) {}

  /**
   * Opens `root` (a directory berthd owns) and the sources of `mounts` (paths berthd chose: volume
   * dirs, bind sources, the container's hosts file). A mount whose source is gone is left out.
   */
  static open(root: string, mounts: readonly RootMount[] = []): RootedFs {
    const rootFd = openat2(-100, root, O_PATH | O_DIRECTORY, 0);
    const table = new Map<string, MountFd>();
    const fs = new RootedFs(root, rootFd, fstatSync(rootFd), table);
    try {
      // shallow mounts first: a deeper destination is looked up through them, as the runtime does
      const sorted = [...mounts]
        .map((m) => ({ ...m, destination: posix.normalize('/' + m.destination) }))
        .filter((m) => m.destination !== '/')
        .sort((a, b) => splitPath(a.destination).length - splitPath(b.destination).length);
      for (const m of sorted) {
        let fd: number;
        try {
          fd = openat2(-100, m.source, O_PATH, 0);
        } catch {
          continue; // its source is gone: the container would not start either
        }
        const path = fs.canonical(m.destination);
        const old = table.get(path);
        if (old) closeSync(old.fd);
        table.set(path, { path, fd, readOnly: m.readOnly, st: fstatSync(fd) });
      }
      return fs;
    } catch (e) {
      fs.close();
      throw e;
    }
  }

  /**
   * Where the runtime puts a mount with destination `dest`: its symlinks resolved inside the root
   * (crun and runc follow them when they make the mount point). As given when it cannot be walked.
   */
  private canonical(dest: string): string {
    try {
      const r = this.resolve(dest, { followLast: true });
      r.close();
      return r.path;
    } catch {
      return dest;
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const m of this.mounts.values()) closeSync(m.fd);
    closeSync(this.rootFd);
  }

  /** The mount whose root is exactly container path `path`, if any. */
  mountAt(path: string): { fd: number; readOnly: boolean; st: Stats } | null {
    return this.mounts.get(path) ?? null;
  }

  /**
   * Walks `path` inside the root. `followLast`: a symlink as the last component is followed (else
   * the link itself is the target). `mkdirs`: missing directories on the way are made (0755,
   * root-owned, as dockerd's archive does); otherwise only the last component may be missing.
   * `lenient`: a missing directory on the way ends the walk; the rest is taken as given in `path`
   * (and `fd` is -1).
   */
  resolve(path: string, opts: { followLast?: boolean; mkdirs?: boolean; lenient?: boolean } = {}): Resolved {
    if (this.closed) throw internal('rooted fs used after close');
    if (path.includes('\0')) throw nodeError('EINVAL', 'a path with a NUL byte');
    const rootNode: Node = { name: '', fd: this.rootFd, st: this.rootSt, owned: false, mount: null };
    const stack: Node[] = [rootNode];
    const queue = splitPath(path);
    let hops = 0;
    let made = 0;
    const logical = (extra?: string) =>
      '/' + [...stack.slice(1).map((n) => n.name), ...(extra === undefined ? [] : [extra])].join('/');
    const drop = (n: Node | undefined) => {
      if (n?.owned) closeSync(n.fd);
    };
    const fail = (e: unknown): never => {
      for (const n of stack) drop(n);
      throw e;
    };
    let missing: string | null = null;
    while (queue.length > 0) {
      const c = queue.shift()!;
      if (c === '..') {
        if (stack.length > 1) drop(stack.pop());
        continue;
      }
      const top = stack[stack.length - 1]!;
      const here = logical(c);
      const m = this.mounts.get(here);
      if (m) {
        stack.push({ name: c, fd: m.fd, st: m.st, owned: false, mount: m });
        continue;
      }
      if (!top.st.isDirectory()) fail(nodeError('ENOTDIR', logical()));
      let fd: number;
      try {
        fd = openChild(top.fd, c);
      } catch (e) {
        if (errCode(e) !== 'ENOENT') fail(e);
        if (!opts.mkdirs) {
          if (queue.length > 0 && !opts.lenient) fail(e);
          missing = [c, ...queue.filter((q) => q !== '..')].join('/');
          break;
        }
        if (top.mount?.readOnly) fail(nodeError('EROFS', logical()));
        if (++made > MAX_MKDIRS) fail(nodeError('ENOENT', here)); // someone removes them as fast as they are made
        try {
          mkdirSync(fdPath(top.fd, c), 0o755);
        } catch (e2) {
          if (errCode(e2) !== 'EEXIST') fail(e2);
        }
        queue.unshift(c); // open what is there now (made by us or by someone else: looked at like anything else)
        continue;
      }
      let st: Stats;
      try {
        st = fstatSync(fd);
      } catch (e) {
        closeSync(fd);
        fail(e);
      }
      if (st!.isSymbolicLink() && (queue.length > 0 || opts.followLast)) {
        let target: string;
        try {
          target = readlinkFd(fd);
        } finally {
          closeSync(fd);
        }
        if (++hops > MAX_HOPS) fail(nodeError('ELOOP', here));
        if (target.startsWith('/')) while (stack.length > 1) drop(stack.pop());
        if (target === '') fail(nodeError('ENOENT', here));
        queue.unshift(...splitPath(target));
        continue;
      }
      stack.push({ name: c, fd, st: st!, owned: true, mount: top.mount });
    }
    const readOnly = stack.some((n) => n.mount?.readOnly);
    if (missing !== null) {
      const parent = stack[stack.length - 1]!;
      const mount = parent.mount?.path ?? '';
      if (!parent.st.isDirectory()) fail(nodeError('ENOTDIR', logical()));
      for (const n of stack.slice(0, -1)) drop(n);
      return {
        fd: -1,
        st: null,
        parentFd: parent.fd,
        name: missing,
        path: logical(missing),
        isMountRoot: false,
        readOnly,
        mount,
        close: () => drop(parent),
      };
    }
    const target = stack[stack.length - 1]!;
    const parent = stack.length > 1 ? stack[stack.length - 2]! : null;
    for (const n of stack.slice(0, -2)) drop(n);
    if (stack.length === 1) drop(undefined);
    const isMountRoot = target === rootNode || !target.owned;
    return {
      fd: target.fd,
      st: target.st,
      parentFd: parent && !isMountRoot ? parent.fd : -1,
      name: isMountRoot ? '' : target.name,
      path: logical(),
      isMountRoot,
      readOnly,
      mount: target.mount?.path ?? '',
      close: () => {
        drop(target);
        if (parent) drop(parent);
      },
    };
  }
}

/**
 * Removes `name` in directory `dirFd` and, if it is a directory, everything below it, each level
 * through its own fd (never a path walk that a swapped symlink could redirect).
 */
export async function removeTree(dirFd: number, name: string): Promise<void> {
  let fd: number;
  try {
    fd = openChild(dirFd, name);
  } catch (e) {
    if (errCode(e) === 'ENOENT') return;
    throw e;
  }
  try {
    const st = fstatSync(fd);
    if (!st.isDirectory()) {
      await fsp.unlink(fdPath(dirFd, name));
      return;
    }
    for (const child of await fsp.readdir(fdPath(fd))) await removeTree(fd, child);
  } finally {
    closeSync(fd);
  }
  await fsp.rmdir(fdPath(dirFd, name));
}

/** Opens `name` below `dirFd` as a directory for reading its entries (O_DIRECTORY|O_NOFOLLOW). */
export function openDir(dirFd: number, name: string): number {
  return openChild(dirFd, name, O_PATH | O_DIRECTORY);
}

/**
 * A string path for `path` inside `root`: symlinks expanded by the rooted walk (the last one only
 * with `followLast`), so no existing component of the result is a symlink; a missing tail is
 * appended as given (nothing exists below a missing name, so the kernel cannot follow it anywhere).
 * For trees nothing changes while they are read (build contexts, image views, a container before
 * its first start): the caller reopens the result by name.
 */
export async function resolveInRoot(root: string, path: string, followLast = true): Promise<string> {
  const fs = RootedFs.open(root);
  try {
    const r = fs.resolve(posix.normalize('/' + path), { followLast, lenient: true });
    r.close();
    return posix.join(root, r.path);
  } catch (e) {
    if (errCode(e) === 'ELOOP') throw invalidArgument(`too many levels of symbolic links: ${path}`);
    if (errCode(e) === 'ENOTDIR') throw invalidArgument(`not a directory: ${path}`);
    throw e;
  } finally {
    fs.close();
  }
}

/**
 * lstat of `path` inside `root` (a tree nothing changes meanwhile, e.g. an image view): the parents
 * resolved by the kernel in the root (RESOLVE_IN_ROOT), the last name not followed; null when missing.
 */
export function lstatInRoot(root: string, path: string): Stats | null {
  const rootFd = openat2(-100, root, O_PATH | O_DIRECTORY, 0);
  try {
    const rel = splitPath(posix.normalize('/' + path)).join('/') || '.';
    let fd: number;
    try {
      fd = openat2(rootFd, rel, O_PATH | O_NOFOLLOW, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS);
    } catch (e) {
      if (['ENOENT', 'ENOTDIR', 'ELOOP', 'ENAMETOOLONG'].includes(errCode(e))) return null;
      throw e;
    }
    try {
      return fstatSync(fd);
    } finally {
      closeSync(fd);
    }
  } finally {
    closeSync(rootFd);
  }
}

/**
 * The directory holding `path` below the host directory `dir` (walked with no symlink followed at
 * all: RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS) and the last name, or null when that walk fails. For
 * berthd's own clean-ups in trees a container wrote (a build step's upper dir).
 */
export function parentBeneath(dirFd: number, path: string): { fd: number; name: string; close(): void } | null {
  const parts = splitPath(path);
  const name = parts.pop();
  if (!name || name === '..' || parts.includes('..')) return null;
  if (parts.length === 0) return { fd: dirFd, name, close: () => undefined };
  try {
    const fd = openat2(
      dirFd,
      parts.join('/'),
      O_PATH | O_DIRECTORY | O_NOFOLLOW,
      RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
    );
    return { fd, name, close: () => closeSync(fd) };
  } catch {
    return null;
  }
}

/** Files up to this size are read on the calling thread (a page-cache copy), larger ones in the pool. */
const SMALL_READ = 64 * 1024;

/**
 * The content of the regular file at `path` inside `root` (symlinks followed inside the root, by
 * the walk above), read through the fd the walk opened: safe on a tree a running container changes.
 * For small files (passwd, group); `max` bytes at most.
 */
export async function readFileInRoot(root: string, path: string, max = 4 * 1024 * 1024): Promise<Buffer> {
  const fs = RootedFs.open(root);
  try {
    const r = fs.resolve(path, { followLast: true });
    try {
      if (r.fd < 0) throw Object.assign(new Error(`ENOENT: ${path}`), { code: 'ENOENT' });
      if (!r.st?.isFile()) throw Object.assign(new Error(`EINVAL: ${path} is not a regular file`), { code: 'EINVAL' });
      const buf = Buffer.alloc(Math.min(max, r.st.size));
      if (buf.length <= SMALL_READ) {
        // a start reads passwd and group this way: in the thread pool's queue, behind the removal of
        // the last container's cgroups, each of open, read and close could wait milliseconds
        const fd = openSync(fdPath(r.fd), 'r');
        try {
          return buf.subarray(0, readSync(fd, buf, 0, buf.length, 0));
        } finally {
          closeSync(fd);
        }
      }
      const fh = await fsp.open(fdPath(r.fd), 'r');
      try {
        const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
        return buf.subarray(0, bytesRead);
      } finally {
        await fh.close();
      }
    } finally {
      r.close();
    }
  } finally {
    fs.close();
  }
}
