/**
 * Extracts an untrusted tar into a directory with every path resolved by the kernel inside it:
 * the one set of containment rules for the archives berthd takes whole (image layers, `docker
 * load` archives, build contexts).
 *
 * - The destination is opened once; each entry's parent directory is opened with openat2(2)
 *   `RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV` from it, so a symlink an earlier
 *   entry planted (`a -> /etc`, `a -> ../../..`) resolves inside the destination, as in dockerd's
 *   chroot, and never outside. The entry itself is made with a *at(2) call on one name in that
 *   directory fd (the last component is never followed); a regular file is created O_EXCL.
 * - Hard links name their target inside the destination, resolved the same way (linkat without
 *   AT_SYMLINK_FOLLOW): a link can never reach a file outside.
 * - Names: `..` that leaves the root, NUL bytes, components over 255 bytes, paths over 4096 bytes
 *   are refused; a leading `/` is dropped (`/etc/x` is `etc/x`, as dockerd does).
 * - Whiteouts (policy `overlay`): `.wh.<name>` must name one entry (not empty, `.`, `..`, nor
 *   another `.wh.` name) and becomes overlayfs's char device 0/0; `.wh..wh..opq` must sit in a
 *   directory below the root and becomes `trusted.overlay.opaque=y` on it. Any other `.wh.` use
 *   (a `.wh.` directory component, `.wh..wh.<x>`) is a bad layer.
 * - Devices: layers may hold FIFOs, the overlay whiteout 0/0 and the character devices dockerd's
 *   default containers get (null, zero, full, random, urandom, tty, console, ptmx); any other
 *   device, and every block device, is refused. Load archives and build contexts hold no devices.
 * - Counts: at most `maxEntries` entries (env BERTH_ARCHIVE_MAX_ENTRIES, default 1,000,000).
 * - xattrs: `trusted.*` and `security.selinux` from an archive are dropped (an archive must not set
 *   overlayfs's own attributes such as trusted.overlay.redirect); others are set when `xattrs`.
 *
 * Every refusal is InvalidArgument naming the entry; the caller removes the destination.
 */
import {
  chmodSync,
  closeSync,
  createReadStream,
  fchmodSync,
  fchownSync,
  fstatSync,
  futimesSync,
  readSync,
  rmSync,
  writeSync,
} from 'node:fs';
import { posix } from 'node:path';
import type { Readable } from 'node:stream';
import { errorMessage, invalidArgument, isBerthError } from '../base/errors.js';
import {
  AT_FDCWD,
  OFLAG,
  RESOLVE,
  S_IF,
  errnoOf,
  fsetXattr,
  lchownAt,
  linkAt,
  lstatModeAt,
  lutimesAt,
  mkdirAt,
  mknodAt,
  openat2Fd,
  symlinkAt,
  unlinkAt,
} from '../base/syscalls.js';
import { readTar, TarFile, type TarHeader } from './tar-reader.js';

export interface ExtractPolicy {
  /** Names the archive in messages: `layer`, `image archive`, `build context`. */
  what: string;
  /** `overlay`: OCI whiteouts become overlayfs's; `none`: `.wh.` names are plain files. */
  whiteouts: 'overlay' | 'none';
  /** Keep the archive's numeric owners (else everything is root's). */
  owners: boolean;
  /** Devices allowed: the layer set, or none. */
  devices: 'layer' | 'none';
  /** Set the archive's xattrs (minus the dropped ones). */
  xattrs: boolean;
  /** Apply a `./` entry's owner and mode to the destination itself. */
  rootMetadata: boolean;
  maxEntries?: number;
}

export const LAYER_POLICY: ExtractPolicy = {
  what: 'layer',
  whiteouts: 'overlay',
  owners: true,
  devices: 'layer',
  xattrs: true,
  rootMetadata: true,
};
export const LOAD_POLICY: ExtractPolicy = {
  what: 'image archive',
  whiteouts: 'none',
  owners: false,
  devices: 'none',
  xattrs: false,
  rootMetadata: false,
};
export const CONTEXT_POLICY: ExtractPolicy = {
  what: 'build context',
  whiteouts: 'none',
  owners: false,
  devices: 'none',
  xattrs: false,
  rootMetadata: false,
};

export const WH = '.wh.';
export const OPAQUE = '.wh..wh..opq';
const OPAQUE_XATTR = 'trusted.overlay.opaque';
const MAX_PATH = 4096;
const MAX_NAME = 255;
/** Character devices a layer may carry: dockerd's default container devices, and the whiteout 0/0. */
const LAYER_CHAR_DEVICES = new Set(['0:0', '1:3', '1:5', '1:7', '1:8', '1:9', '5:0', '5:1', '5:2']);
const IN_ROOT = RESOLVE.IN_ROOT | RESOLVE.NO_MAGICLINKS | RESOLVE.NO_XDEV;

export function defaultMaxEntries(): number {
  const v = Number(process.env['BERTH_ARCHIVE_MAX_ENTRIES']);
  return Number.isInteger(v) && v > 0 ? v : 1_000_000;
}

/** An archive entry's name, cleaned: relative, no `.`/`..` components; `''` is the root. Throws when it leaves the root. */
export function cleanEntryName(raw: string, what: string): string {
  if (raw.includes('\0')) throw invalidArgument(`invalid ${what}: entry name with a NUL byte`);
  if (Buffer.byteLength(raw) > MAX_PATH)
    throw invalidArgument(`invalid ${what}: entry name longer than ${MAX_PATH} bytes`);
  const n = posix.normalize(`/${raw}`); // a leading `/` or `..` cannot climb above `/` here ...
  const lexical = posix.normalize(raw.replace(/^\/+/, '') || '.');
  if (lexical === '..' || lexical.startsWith('../'))
    throw invalidArgument(`invalid ${what}: entry ${JSON.stringify(raw)} leaves the archive root`); // ... so test the relative form
  const rel = n.replace(/^\/+/, '').replace(/\/+$/, '');
  for (const c of rel.split('/'))
    if (Buffer.byteLength(c) > MAX_NAME)
      throw invalidArgument(`invalid ${what}: entry name component longer than ${MAX_NAME} bytes`);
  return rel;
}

const refuse = (what: string, name: string, why: string) =>
  invalidArgument(`invalid ${what}: ${JSON.stringify(name)}: ${why}`);

/** Runs `fn` with an fd, closing it after. */
function withFd<T>(fd: number, fn: (fd: number) => T): T {
  try {
    return fn(fd);
  } finally {
    closeSyncFd(fd);
  }
}
function closeSyncFd(fd: number): void {
  closeSync(fd); // node's fs.closeSync takes any fd
}

class Extractor {
  private readonly root: number;
  /** Directory times, applied last (later entries change them). */
  private readonly dirTimes = new Map<string, number>();
  private entries = 0;
  private readonly max: number;

  constructor(
    dest: string,
    private readonly p: ExtractPolicy,
  ) {
    this.root = openat2Fd(AT_FDCWD, dest, OFLAG.PATH | OFLAG.DIRECTORY, 0, 0);
    this.max = p.maxEntries ?? defaultMaxEntries();
  }

  close(): void {
    this.forgetParent();
    closeSyncFd(this.root);
  }

  /** The last parent directory used (entries come grouped by directory): its relative path and O_PATH fd. */
  private cached: { rel: string; fd: number } | null = null;

  /** The O_PATH fd of directory `rel`, made when missing; owned by the cache (do not close). */
  private parent(rel: string): number {
    if (this.cached?.rel === rel) return this.cached.fd;
    this.forgetParent();
    const fd = this.dir(rel, true);
    this.cached = { rel, fd };
    return fd;
  }

  /**
   * The cache holds only the parent of the entry being made. An entry removes at most a child of
   * its own parent, never that parent, so the cached fd always names the live directory; a later
   * entry under a removed or replaced directory has another parent and is looked up afresh.
   */
  private forgetParent(): void {
    if (this.cached) closeSyncFd(this.cached.fd);
    this.cached = null;
  }

  /** An O_PATH fd of directory `rel` (in the root), made (0755, root's) with its missing parents when absent. */
  private dir(rel: string, create: boolean): number {
    if (rel === '') return openat2Fd(this.root, '.', OFLAG.PATH | OFLAG.DIRECTORY, 0, IN_ROOT);
    try {
      return openat2Fd(this.root, rel, OFLAG.PATH | OFLAG.DIRECTORY, 0, IN_ROOT);
    } catch (e) {
      if (!create || errnoOf(e) !== 'ENOENT') throw this.fsError(rel, e);
    }
    const parent = this.dir(posix.dirname(rel) === '.' ? '' : posix.dirname(rel), true);
    withFd(parent, (fd) => {
      try {
        mkdirAt(fd, posix.basename(rel), 0o755);
      } catch (e) {
        if (errnoOf(e) !== 'EEXIST') throw this.fsError(rel, e);
      }
    });
    try {
      return openat2Fd(this.root, rel, OFLAG.PATH | OFLAG.DIRECTORY, 0, IN_ROOT);
    } catch (e) {
      throw this.fsError(rel, e);
    }
  }

  private fsError(name: string, e: unknown): Error {
    if (isBerthError(e, 'InvalidArgument')) return e;
    const en = errnoOf(e);
    if (
      en === 'ENOTDIR' ||
      en === 'ENOENT' ||
      en === 'EXDEV' ||
      en === 'ELOOP' ||
      en === 'ENAMETOOLONG' ||
      en === 'EEXIST' ||
      en === 'EPERM' ||
      en === 'EISDIR' ||
      en === 'EMLINK'
    )
      return refuse(this.p.what, name, en === 'EXDEV' ? 'path leaves the archive root' : en);
    return e instanceof Error ? e : new Error(String(e));
  }

  /**
   * Removes whatever is at `name` in `dirfd` (a directory with everything in it); keeps a directory
   * when `keepDir`. Returns whether a directory was kept.
   */
  private clear(dirfd: number, name: string, keepDir: boolean): boolean {
    const mode = lstatModeAt(dirfd, name);
    if (mode === null) return false;
    const isDir = (mode & S_IF.MT) === S_IF.DIR;
    if (isDir && keepDir) return true;
    if (isDir)
      // the fd's directory itself; `name` is one component, rm does not follow symlinks below it
      rmSync(`/proc/self/fd/${dirfd}/${name}`, { recursive: true, force: true });
    else unlinkAt(dirfd, name, false);
    return false;
  }

  private xattrsOf(h: TarHeader): Array<[string, Buffer]> {
    if (!this.p.xattrs) return [];
    return [...h.xattrs].filter(([k]) => !k.startsWith('trusted.') && k !== 'security.selinux');
  }

  async entry(h: TarHeader, body: () => AsyncGenerator<Buffer>, copyTo?: (fd: number) => Promise<void>): Promise<void> {
    if (++this.entries > this.max) throw invalidArgument(`invalid ${this.p.what}: more than ${this.max} entries`);
    const name = cleanEntryName(h.name, this.p.what);
    if (name === '') {
      if (h.type !== 'directory') throw refuse(this.p.what, h.name, 'the archive root must be a directory');
      if (this.p.rootMetadata) this.meta(this.root, '.', h, true);
      return;
    }
    const parts = name.split('/');
    const base = parts[parts.length - 1]!;
    const parentRel = parts.slice(0, -1).join('/');
    if (this.p.whiteouts === 'overlay') {
      if (parts.slice(0, -1).some((c) => c.startsWith(WH)))
        throw refuse(this.p.what, h.name, 'a whiteout cannot be a directory');
      if (base.startsWith(WH)) return this.whiteout(h, parentRel, base);
    }
    if (h.type === 'fifo' && this.p.devices === 'none') throw refuse(this.p.what, h.name, 'a FIFO is not allowed here');
    if (h.type === 'char' || h.type === 'block') {
      const dev = `${h.devmajor}:${h.devminor}`;
      if (this.p.devices === 'none' || h.type === 'block' || !LAYER_CHAR_DEVICES.has(dev))
        throw refuse(this.p.what, h.name, `${h.type} device ${dev} is not allowed`);
    }
    try {
      await this.make(this.parent(parentRel), name, base, h, body, copyTo);
    } catch (e) {
      throw this.fsError(name, e);
    }
  }

  private async make(
    parent: number,
    name: string,
    base: string,
    h: TarHeader,
    body: () => AsyncGenerator<Buffer>,
    copyTo?: (fd: number) => Promise<void>,
  ): Promise<void> {
    const kept = this.clear(parent, base, h.type === 'directory');
    switch (h.type) {
      case 'directory': {
        if (!kept) mkdirAt(parent, base, 0o700);
        this.meta(parent, base, h, true);
        this.dirTimes.set(name, h.mtimeMs);
        return;
      }
      case 'file': {
        const fd = openat2Fd(
          parent,
          base,
          OFLAG.WRONLY | OFLAG.CREAT | OFLAG.EXCL | OFLAG.NOFOLLOW,
          0o600,
          RESOLVE.NO_SYMLINKS | RESOLVE.BENEATH,
        );
        try {
          // from a tar file: copied by the kernel on a worker thread (copy_file_range), never through JS
          if (copyTo) await copyTo(fd);
          // chunks of at most a stream's buffer: written in place (a page-cache write), the loop turns between chunks
          else
            for await (const c of body())
              for (let off = 0; off < c.length;) off += writeSync(fd, c, off, c.length - off);
          if (this.p.owners) fchownSync(fd, h.uid, h.gid); // before the mode: chown clears set-id bits
          fchmodSync(fd, h.mode);
          for (const [k, v] of this.xattrsOf(h)) fsetXattr(fd, k, v);
          futimesSync(fd, h.mtimeMs / 1000, h.mtimeMs / 1000);
        } finally {
          closeSyncFd(fd);
        }
        return;
      }
      case 'symlink':
        if (h.linkname === '' || h.linkname.includes('\0') || Buffer.byteLength(h.linkname) > MAX_PATH)
          throw refuse(this.p.what, h.name, 'bad symlink target');
        symlinkAt(h.linkname, parent, base);
        this.meta(parent, base, h, false);
        return;
      case 'link': {
        const target = cleanEntryName(h.linkname, this.p.what);
        if (target === '') throw refuse(this.p.what, h.name, 'hard link to the archive root');
        const tParts = target.split('/');
        const tParent = this.dir(tParts.slice(0, -1).join('/'), false);
        withFd(tParent, (fd) => linkAt(fd, tParts[tParts.length - 1]!, parent, base));
        return;
      }
      case 'char':
      case 'block':
      case 'fifo': {
        const type = h.type === 'fifo' ? S_IF.FIFO : h.type === 'char' ? S_IF.CHR : S_IF.BLK;
        mknodAt(parent, base, type | 0o600, h.devmajor, h.devminor);
        this.meta(parent, base, h, true);
        return;
      }
    }
  }

  /** Owner, mode, xattrs, times of `base` in `dirfd` (mode and xattrs need an fd: not on symlinks). */
  private meta(dirfd: number, base: string, h: TarHeader, notLink: boolean): void {
    if (this.p.owners) lchownAt(dirfd, base, h.uid, h.gid);
    if (notLink) {
      // O_PATH fds cannot fchmod/fsetxattr; open the entry itself (never following: it is not a symlink)
      const isDir = h.type === 'directory';
      const canOpen = isDir || h.type === 'file';
      if (canOpen) {
        const fd = openat2Fd(
          dirfd,
          base,
          (isDir ? OFLAG.DIRECTORY : 0) | OFLAG.RDONLY | OFLAG.NOFOLLOW,
          0,
          RESOLVE.NO_SYMLINKS | RESOLVE.BENEATH,
        );
        withFd(fd, (f) => {
          fchmodFd(f, h.mode);
          for (const [k, v] of this.xattrsOf(h)) fsetXattr(f, k, v);
        });
      } else chmodAt(dirfd, base, h.mode);
    }
    if (h.type !== 'directory') lutimesAt(dirfd, base, h.mtimeMs, h.mtimeMs);
  }

  private whiteout(h: TarHeader, parentRel: string, base: string): void {
    if (h.type === 'directory') throw refuse(this.p.what, h.name, 'a whiteout cannot be a directory');
    if (base === OPAQUE) {
      if (parentRel === '')
        throw refuse(this.p.what, h.name, 'an opaque whiteout must be inside a directory of the layer');
      this.parent(parentRel); // made when missing
      const fd = openat2Fd(this.root, parentRel, OFLAG.DIRECTORY | OFLAG.RDONLY, 0, IN_ROOT);
      withFd(fd, (f) => fsetXattr(f, OPAQUE_XATTR, Buffer.from('y')));
      return;
    }
    const target = base.slice(WH.length);
    if (target === '' || target === '.' || target === '..' || target.startsWith(WH) || target.includes('/'))
      throw refuse(this.p.what, h.name, 'a whiteout must name one entry');
    try {
      const parent = this.parent(parentRel);
      this.clear(parent, target, false);
      mknodAt(parent, target, S_IF.CHR, 0, 0);
    } catch (e) {
      throw this.fsError(h.name, e);
    }
  }

  /** Directory mtimes, deepest first (setting a child's does not touch its parent's). */
  finish(): void {
    for (const [rel, ms] of [...this.dirTimes].sort((a, b) => b[0].length - a[0].length)) {
      const parentRel = posix.dirname(rel) === '.' ? '' : posix.dirname(rel);
      try {
        const fd = this.dir(parentRel, false);
        withFd(fd, (f) => lutimesAt(f, posix.basename(rel), ms, ms));
      } catch {
        /* replaced by a later entry */
      }
    }
  }
}

function fchmodFd(fd: number, mode: number): void {
  fchmodSync(fd, mode);
}
/** chmod of a FIFO or device node we just made (opening one could block): by path below the parent's fd. */
function chmodAt(dirfd: number, base: string, mode: number): void {
  chmodSync(`/proc/self/fd/${dirfd}/${base}`, mode);
}

/**
 * Extracts the tar `input` into the existing directory `dest` under `policy`. Throws
 * InvalidArgument for a bad archive (the caller removes `dest`); never writes outside `dest`.
 */
export async function extractTar(input: Readable | TarFile, dest: string, policy: ExtractPolicy): Promise<void> {
  const x = new Extractor(dest, policy);
  try {
    for await (const { header, body, copyTo } of readTar(input)) await x.entry(header, body, copyTo);
    x.finish();
  } catch (e) {
    if (isBerthError(e) && (e.code !== 'InvalidArgument' || e.message.startsWith('invalid '))) throw e;
    throw invalidArgument(`invalid ${policy.what}: ${errorMessage(e)}`, e);
  } finally {
    x.close();
    if (!(input instanceof TarFile)) input.destroy(); // a TarFile's fd is its opener's to close
  }
}

/**
 * Read access to an extracted archive's files, every name resolved inside its directory by the
 * kernel (a symlink the archive planted is followed only within it, as `docker save`'s own
 * layer symlinks need), and only regular files opened. Close it when done.
 */
export class RootedDir {
  private readonly fd: number;

  constructor(
    readonly dir: string,
    private readonly what: string,
  ) {
    this.fd = openat2Fd(AT_FDCWD, dir, OFLAG.PATH | OFLAG.DIRECTORY, 0, 0);
  }

  /** A read-only fd of regular file `rel`; the caller closes it. NotFound-like refusals are InvalidArgument. */
  openFile(rel: string): number {
    const name = cleanEntryName(rel, this.what);
    let fd: number;
    try {
      // O_NONBLOCK: a FIFO opens at once (and is refused below) instead of blocking the daemon
      fd = openat2Fd(this.fd, name || '.', OFLAG.RDONLY | OFLAG.NONBLOCK, 0, IN_ROOT);
    } catch (e) {
      throw invalidArgument(`invalid ${this.what}: ${JSON.stringify(rel)}: ${errnoOf(e) ?? errorMessage(e)}`);
    }
    if (!fstatSync(fd).isFile()) {
      closeSyncFd(fd);
      throw invalidArgument(`invalid ${this.what}: ${JSON.stringify(rel)} is not a regular file`);
    }
    return fd;
  }

  exists(rel: string): boolean {
    try {
      closeSync(this.openFile(rel));
      return true;
    } catch {
      return false;
    }
  }

  /** A small file's bytes (manifests, configs): at most `max` bytes. */
  readSmall(rel: string, max = 8 << 20): Buffer {
    return withFd(this.openFile(rel), (fd) => {
      const size = fstatSync(fd).size;
      if (size > max) throw invalidArgument(`invalid ${this.what}: ${JSON.stringify(rel)} is larger than ${max} bytes`);
      const b = Buffer.alloc(size);
      let off = 0;
      while (off < size) {
        const n = readSync(fd, b, off, size - off, off);
        if (n === 0) break;
        off += n;
      }
      return b.subarray(0, off);
    });
  }

  /** A stream of file `rel` (it owns and closes its fd). */
  stream(rel: string): Readable {
    return createReadStream('', { fd: this.openFile(rel) });
  }

  close(): void {
    closeSyncFd(this.fd);
  }
}
