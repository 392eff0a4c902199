/**
 * The few syscalls Node lacks, through koffi (a C FFI shipped prebuilt in its npm package):
 * mount(2), umount2(2), xattrs, mknod(2), connecting SOCK_SEQPACKET sockets, and the two
 * interface ioctls the network manager needs on the host side (bridge port, link up), and openat2(2) /
 * readlinkat(2) for the rooted file layer (archive/rooted.ts), copy_file_range(2) for layer unpacking. Process-wide calls only (never setns here: Node is
 * multi-threaded). Errors carry the syscall, the path and errno's name (and `errno`, `code`).
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { constants } from 'node:os';
import { BerthError, codeOfErrno, internal, unavailable } from './errors.js';

const require = createRequire(import.meta.url);
type Fn = ((...args: unknown[]) => number) & { async: (...args: unknown[]) => void };
interface Koffi {
  load(name: string): { func(sig: string): Fn };
  errno(): number;
}
const koffi = require('koffi') as Koffi;
/** libc through koffi, for the other modules that call it (spawn.ts). */
export const libc = koffi.load('libc.so.6');
const fns = {
  mount: libc.func(
    'int mount(const char *source, const char *target, const char *fstype, unsigned long flags, const char *data)',
  ),
  umount2: libc.func('int umount2(const char *target, int flags)'),
  lsetxattr: libc.func('int lsetxattr(const char *path, const char *name, const void *value, size_t size, int flags)'),
  lgetxattr: libc.func('long lgetxattr(const char *path, const char *name, _Out_ uint8_t *value, size_t size)'),
  mknod: libc.func('int mknod(const char *path, unsigned int mode, unsigned long dev)'),
  socket: libc.func('int socket(int domain, int type, int protocol)'),
  connect: libc.func('int connect(int fd, const void *addr, uint32_t len)'),
  close: libc.func('int close(int fd)'),
  ioctl: libc.func('int ioctl(int fd, unsigned long request, _Inout_ uint8_t *arg)'),
  syscall: libc.func('long syscall(long number, ...)'),
  readlinkat: libc.func('long readlinkat(int dirfd, const char *path, _Out_ uint8_t *buf, size_t size)'),
  statx: libc.func('int statx(int dirfd, const char *path, int flags, unsigned int mask, _Out_ uint8_t *buf)'),
  copyFileRange: libc.func(
    'long copy_file_range(int fd_in, void *off_in, int fd_out, void *off_out, size_t len, unsigned int flags)',
  ),
};

export const errnoName = (n: number): string =>
  Object.entries(constants.errno).find(([, v]) => v === n)?.[0] ?? `errno ${n}`;

/** A failed system call: its category from errno (codeOfErrno), `errno` and its name kept for callers. */
function syscallError(e: number, what: string): BerthError {
  const name = errnoName(e);
  return Object.assign(new BerthError(codeOfErrno(name), `${what}: ${name}`), { errno: e, errnoName: name });
}

function check(rc: number, what: string): void {
  if (rc < 0) {
    const e = koffi.errno();
    throw syscallError(e, what);
  }
}

/**
 * An error of a failed *at call, shaped like Node's fs errors (`code` is errno's name): a plain
 * Error, for the caller to map (a BerthError's `code` is its category and must stay one).
 */
function sysError(e: number, what: string): Error {
  return Object.assign(new Error(`${what}: ${errnoName(e)}`), {
    errno: e,
    code: errnoName(e),
    syscall: what.split(' ')[0],
  });
}

export const MNT_DETACH = 2;
export const MS_RDONLY = 1;
export const MS_BIND = 4096;
export const MS_NOSUID = 2;
export const MS_NODEV = 4;
export const MS_NOEXEC = 8;
export const MS_REMOUNT = 32;

export function mount(source: string, target: string, fstype: string, flags: number, data: string): void {
  check(fns.mount(source, target, fstype, flags, data), `mount ${fstype} on ${target}`);
}

export function umount(target: string, flags = 0): void {
  check(fns.umount2(target, flags), `umount ${target}`);
}

/**
 * copy_file_range(2) of up to `len` bytes from `fdIn`'s file position to `fdOut`'s (both advance),
 * on a libuv worker thread: the kernel copies page cache to page cache, no byte passes through
 * the event loop. Resolves the bytes copied (0 at the end of `fdIn`), or -1 when the call failed
 * (EXDEV across filesystems, ENOSYS, EINVAL...; the worker's errno is not ours): the caller then
 * copies through userspace, which reports a real I/O error with its errno. Positions are unchanged
 * on failure.
 */
export function copyFileRangeAsync(fdIn: number, fdOut: number, len: number): Promise<number> {
  return new Promise((resolve, reject) => {
    fns.copyFileRange.async(fdIn, null, fdOut, null, len, 0, (err: unknown, rc: number) => {
      if (err) reject(err instanceof Error ? err : internal(String(err)));
      else resolve(rc < 0 ? -1 : rc);
    });
  });
}

/**
 * umount2(2) on a libuv worker thread: unmounting an overlay syncs and tears down its superblock
 * in the calling thread (~2-3 ms here, MNT_DETACH or not), which must not stall the daemon's
 * event loop. A failure is retried synchronously to read its errno (the worker's is not ours).
 */
export function umountAsync(target: string, flags = 0): Promise<void> {
  return new Promise((resolve, reject) => {
    fns.umount2.async(target, flags, (err: unknown, rc: number) => {
      if (err) reject(err instanceof Error ? err : internal(String(err)));
      else if (rc === 0) resolve();
      else {
        try {
          umount(target, flags);
          resolve(); // it went in between
        } catch (e) {
          reject(e);
        }
      }
    });
  });
}

const AT_NO_AUTOMOUNT = 0x800;
const STATX_TYPE = 1;
const STATX_ATTR_MOUNT_ROOT = 0x2000;

/**
 * Whether `path` (its last component not followed) is the root of a mount, by statx(2)'s
 * STATX_ATTR_MOUNT_ROOT: null when the kernel does not say (before 5.8) or the path cannot be
 * stat'ed. One system call, whatever the size of the mount table (reading /proc/self/mountinfo
 * costs ~0.5 KB a mount: 6 MB at 10,000 containers).
 */
export function isMountRoot(path: string): boolean | null {
  const buf = Buffer.alloc(256);
  if (fns.statx(AT_FDCWD, path, AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT, STATX_TYPE, buf) < 0) return null;
  // struct statx: stx_attributes at 8, stx_attributes_mask at 56 (both u64; the bit is in the low word)
  if (!(buf.readUInt32LE(56) & STATX_ATTR_MOUNT_ROOT)) return null;
  return (buf.readUInt32LE(8) & STATX_ATTR_MOUNT_ROOT) !== 0;
}

/**
 * Whether `p` is a mount point: statx(2) says; where it cannot (an old kernel),
 * /proc/self/mountinfo, whose size grows with every container's rootfs mount.
 */
export function isMountPoint(p: string): boolean {
  const root = isMountRoot(p);
  if (root !== null) return root;
  let info = '';
  try {
    info = readFileSync('/proc/self/mountinfo', 'utf8');
  } catch {
    return false;
  }
  const esc = p.replace(/ /g, '\\040');
  return info.split('\n').some((l) => l.split(' ')[4] === esc);
}

export function setXattr(path: string, name: string, value: string): void {
  const b = Buffer.from(value);
  check(fns.lsetxattr(path, name, b, b.length, 0), `setxattr ${name} on ${path}`);
}

/** The xattr's value, or null when the file does not have it. */
export function getXattr(path: string, name: string): string | null {
  const buf = Buffer.alloc(256);
  const n = fns.lgetxattr(path, name, buf, buf.length);
  if (n < 0) return null;
  return buf.subarray(0, n).toString();
}

/** A character device 0/0: overlayfs's whiteout. */
export function mknodWhiteout(path: string): void {
  check(fns.mknod(path, 0o20000 | 0o000, 0), `mknod ${path}`);
}

const AF_UNIX = 1;
const SOCK_SEQPACKET = 5;
const SOCK_CLOEXEC = 0o2000000;
const SUN_PATH_MAX = 108;

/**
 * A connected AF_UNIX SOCK_SEQPACKET socket's fd (blocking connect: on a unix socket it returns
 * at once). The caller owns the fd.
 */
export function connectSeqpacket(path: string): number {
  const name = Buffer.from(path);
  if (name.length >= SUN_PATH_MAX) throw internal(`socket path too long (${name.length} bytes): ${path}`);
  const addr = Buffer.alloc(2 + SUN_PATH_MAX);
  addr.writeUInt16LE(AF_UNIX, 0);
  name.copy(addr, 2);
  const fd = fns.socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  check(fd, 'socket');
  const rc = fns.connect(fd, addr, addr.length);
  if (rc < 0) {
    const e = koffi.errno();
    fns.close(fd);
    throw syscallError(e, `connect ${path}`);
  }
  return fd;
}

export function closeFd(fd: number): void {
  fns.close(fd);
}

const AF_INET = 2;
const SOCK_DGRAM = 2;
const SIOCGIFFLAGS = 0x8913;
const SIOCSIFFLAGS = 0x8914;
const SIOCBRADDIF = 0x89a2;
const IFF_UP = 1;
const IFREQ_SIZE = 40;

let ctlFd = -1;
function ifreq(name: string): Buffer {
  const b = Buffer.alloc(IFREQ_SIZE);
  if (Buffer.byteLength(name) > 15) throw internal(`interface name too long: ${name}`);
  b.write(name, 0, 'latin1');
  return b;
}
function ctl(): number {
  if (ctlFd < 0) {
    ctlFd = fns.socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    check(ctlFd, 'socket');
  }
  return ctlFd;
}

/** `ip link set <port> master <bridge>` (SIOCBRADDIF; the host's network namespace). */
export function bridgeAddPort(bridge: string, portIndex: number): void {
  const b = ifreq(bridge);
  b.writeInt32LE(portIndex, 16);
  check(fns.ioctl(ctl(), SIOCBRADDIF, b), `add ${portIndex} to bridge ${bridge}`);
}

/** `ip link set <name> up` (SIOCGIFFLAGS + SIOCSIFFLAGS). */
export function linkUp(name: string): void {
  const b = ifreq(name);
  check(fns.ioctl(ctl(), SIOCGIFFLAGS, b), `flags of ${name}`);
  b.writeInt16LE(b.readInt16LE(16) | IFF_UP, 16);
  check(fns.ioctl(ctl(), SIOCSIFFLAGS, b), `set ${name} up`);
}

/*
 * Rooted file operations: openat2(2) with RESOLVE_IN_ROOT and the *at(2) calls on the directory
 * fds it returns. Every path given to openat2Fd is resolved by the kernel as if `dirfd` were `/`
 * (symlinks and `..` cannot leave it); the *at wrappers take one name (no `/`) in a directory fd
 * opened that way, and never follow a symlink in that last component. Used by archive/extract.ts.
 */
const rootedFns = {
  mkdirat: libc.func('int mkdirat(int dirfd, const char *path, unsigned int mode)'),
  symlinkat: libc.func('int symlinkat(const char *target, int dirfd, const char *path)'),
  linkat: libc.func('int linkat(int olddirfd, const char *oldpath, int newdirfd, const char *newpath, int flags)'),
  mknodat: libc.func('int mknodat(int dirfd, const char *path, unsigned int mode, unsigned long dev)'),
  fchownat: libc.func('int fchownat(int dirfd, const char *path, unsigned int uid, unsigned int gid, int flags)'),
  unlinkat: libc.func('int unlinkat(int dirfd, const char *path, int flags)'),
  utimensat: libc.func('int utimensat(int dirfd, const char *path, const uint8_t *times, int flags)'),
  fsetxattr: libc.func('int fsetxattr(int fd, const char *name, const uint8_t *value, size_t size, int flags)'),
  fstatat: libc.func('int fstatat(int dirfd, const char *path, _Out_ uint8_t *buf, int flags)'),
};

export const AT_FDCWD = -100;
export const AT_SYMLINK_NOFOLLOW = 0x100;
export const AT_REMOVEDIR = 0x200;
/** open(2) flags (x86_64 values). */
export const OFLAG = {
  RDONLY: 0,
  WRONLY: 1,
  CREAT: 0o100,
  EXCL: 0o200,
  TRUNC: 0o1000,
  NONBLOCK: 0o4000,
  DIRECTORY: 0o200000,
  NOFOLLOW: 0o400000,
  CLOEXEC: 0o2000000,
  PATH: 0o10000000,
} as const;
/** openat2(2) `resolve` flags. */
export const RESOLVE = { NO_XDEV: 0x01, NO_MAGICLINKS: 0x02, NO_SYMLINKS: 0x04, BENEATH: 0x08, IN_ROOT: 0x10 } as const;
/** File type bits of st_mode. */
export const S_IF = {
  MT: 0o170000,
  DIR: 0o040000,
  CHR: 0o020000,
  BLK: 0o060000,
  REG: 0o100000,
  FIFO: 0o010000,
  LNK: 0o120000,
} as const;

function checkAt(rc: number, what: string): number {
  if (rc < 0) {
    const e = koffi.errno();
    throw syscallError(e, what);
  }
  return rc;
}

/** errno's name of an error thrown by these wrappers (`ENOENT`), or null. */
export function errnoOf(e: unknown): string | null {
  const n = (e as { errnoName?: unknown } | null)?.errnoName;
  return typeof n === 'string' ? n : null;
}

/**
 * openat2(2) for the extractor: like `openat2` below (O_CLOEXEC always, a raced walk retried),
 * its errors in this block's style (errnoOf); the caller closes the fd.
 */
export function openat2Fd(dirfd: number, path: string, flags: number, mode: number, resolve: number): number {
  try {
    return openat2(dirfd, path, flags, resolve, mode);
  } catch (e) {
    const code = (e as { code?: string }).code ?? 'EIO';
    if (code === 'ENOSYS')
      throw unavailable('openat2(2) is not available: berth needs Linux 5.6 or newer to unpack archives safely');
    const err = internal(`openat2 ${path}: ${code}`);
    (err as { errno?: number; errnoName?: string }).errno = (e as { errno?: number }).errno ?? 0;
    (err as { errno?: number; errnoName?: string }).errnoName = code;
    throw err;
  }
}

export function mkdirAt(dirfd: number, name: string, mode: number): void {
  checkAt(rootedFns.mkdirat(dirfd, name, mode), `mkdirat ${name}`);
}
export function symlinkAt(target: string, dirfd: number, name: string): void {
  checkAt(rootedFns.symlinkat(target, dirfd, name), `symlinkat ${name}`);
}
/** A hard link `newdirfd/newname` to `olddirfd/oldname` (a symlink there is linked, not followed). */
export function linkAt(olddirfd: number, oldname: string, newdirfd: number, newname: string): void {
  checkAt(rootedFns.linkat(olddirfd, oldname, newdirfd, newname, 0), `linkat ${newname}`);
}
export function mknodAt(dirfd: number, name: string, mode: number, major: number, minor: number): void {
  // glibc's makedev()
  const dev =
    (BigInt(major & 0xfff) << 8n) |
    (BigInt(major & ~0xfff) << 32n) |
    BigInt(minor & 0xff) |
    (BigInt(minor & ~0xff) << 12n);
  checkAt(rootedFns.mknodat(dirfd, name, mode, dev), `mknodat ${name}`);
}
export function lchownAt(dirfd: number, name: string, uid: number, gid: number): void {
  checkAt(rootedFns.fchownat(dirfd, name, uid, gid, AT_SYMLINK_NOFOLLOW), `fchownat ${name}`);
}
export function unlinkAt(dirfd: number, name: string, dir: boolean): void {
  checkAt(rootedFns.unlinkat(dirfd, name, dir ? AT_REMOVEDIR : 0), `unlinkat ${name}`);
}
/** Sets atime and mtime (ms since the epoch) of `name` in `dirfd` without following a symlink. */
export function lutimesAt(dirfd: number, name: string, atimeMs: number, mtimeMs: number): void {
  const t = Buffer.alloc(32);
  for (const [i, ms] of [atimeMs, mtimeMs].entries()) {
    const s = Math.floor(ms / 1000);
    t.writeBigInt64LE(BigInt(s), i * 16);
    t.writeBigInt64LE(BigInt(Math.round((ms - s * 1000) * 1e6)), i * 16 + 8);
  }
  checkAt(rootedFns.utimensat(dirfd, name, t, AT_SYMLINK_NOFOLLOW), `utimensat ${name}`);
}
export function fsetXattr(fd: number, name: string, value: Buffer): void {
  checkAt(rootedFns.fsetxattr(fd, name, value, value.length, 0), `fsetxattr ${name}`);
}
/** st_mode of `name` in `dirfd` (not following a symlink), or null when nothing is there. */
export function lstatModeAt(dirfd: number, name: string): number | null {
  const st = Buffer.alloc(144); // struct stat, x86_64
  const rc = rootedFns.fstatat(dirfd, name, st, AT_SYMLINK_NOFOLLOW);
  if (rc < 0) {
    const e = koffi.errno();
    if (e === constants.errno.ENOENT) return null;
    checkAt(rc, `fstatat ${name}`);
  }
  return st.readUInt32LE(24);
}

const SYS_OPENAT2 = 437; // x86_64 and aarch64 alike (the new syscall table)
export const O_PATH = 0o10000000;
export const O_NOFOLLOW = 0o400000;
export const O_DIRECTORY = 0o200000;
export const O_CLOEXEC = 0o2000000;
/** openat2(2) `resolve` flags (linux/openat2.h). */
export const RESOLVE_NO_XDEV = 0x01;
export const RESOLVE_NO_MAGICLINKS = 0x02;
export const RESOLVE_NO_SYMLINKS = 0x04;
export const RESOLVE_BENEATH = 0x08;
export const RESOLVE_IN_ROOT = 0x10;

/**
 * openat2(2): `path` resolved relative to `dirfd` under the `resolve` rules (kernel-side: with
 * RESOLVE_IN_ROOT, `..` and absolute symlinks stop at `dirfd`). Returns the new fd (the caller
 * owns it); throws an error with `code` = errno's name (ENOENT, ELOOP, EXDEV...). O_CLOEXEC is added.
 */
export function openat2(dirfd: number, path: string, flags: number, resolve: number, mode = 0): number {
  const how = Buffer.alloc(24);
  how.writeBigUInt64LE(BigInt(flags | O_CLOEXEC), 0);
  how.writeBigUInt64LE(BigInt(mode), 8);
  how.writeBigUInt64LE(BigInt(resolve), 16);
  for (let tries = 0; ; tries++) {
    const fd = fns.syscall(SYS_OPENAT2, 'int', dirfd, 'str', path, 'void *', how, 'size_t', how.length);
    if (fd >= 0) return fd;
    const e = koffi.errno();
    // EAGAIN: a rename somewhere raced a RESOLVE_IN_ROOT/BENEATH walk; the kernel asks to retry
    if ((e === constants.errno.EINTR || e === constants.errno.EAGAIN) && tries < 100) continue;
    throw sysError(e, `openat2 ${path}`);
  }
}

/** The target of the symlink that `fd` (an O_PATH|O_NOFOLLOW fd) refers to: readlinkat(fd, "", ...). */
export function readlinkFd(fd: number): string {
  const buf = Buffer.alloc(4096);
  const n = fns.readlinkat(fd, '', buf, buf.length);
  if (n < 0) throw sysError(koffi.errno(), `readlinkat fd ${fd}`);
  return buf.subarray(0, n).toString();
}

/** mknod(2) of any type (`mode` has the S_IF* bits). Give it a /proc/self/fd/N/name path to make it relative to a dir fd. */
export function mknod(path: string, mode: number, dev: number): void {
  const rc = fns.mknod(path, mode, dev);
  if (rc < 0) throw sysError(koffi.errno(), `mknod ${path}`);
}
