/**
 * The few syscalls Node lacks, through koffi (a C FFI shipped prebuilt in its npm package):
 * mount(2), umount2(2), xattrs, mknod(2), connecting SOCK_SEQPACKET sockets, and the two
 * interface ioctls the network manager needs on the host side (bridge port, link up), and openat2(2) /
 * readlinkat(2) for the rooted file layer (archive/rooted.ts). Process-wide calls only (never setns here: Node is
 * multi-threaded). Errors carry the syscall, the path and errno's name (and `errno`, `code`).
 */
import { createRequire } from 'node:module';
import { constants } from 'node:os';
import { internal } from './errors.js';

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
  mount: libc.func('int mount(const char *source, const char *target, const char *fstype, unsigned long flags, const char *data)'),
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
};

export const errnoName = (n: number): string => Object.entries(constants.errno).find(([, v]) => v === n)?.[0] ?? `errno ${n}`;

function check(rc: number, what: string): void {
  if (rc < 0) {
    const e = koffi.errno();
    const err = internal(`${what}: ${errnoName(e)}`);
    (err as { errno?: number }).errno = e;
    throw err;
  }
}

/**
 * An error of a failed *at call, shaped like Node's fs errors (`code` is errno's name): a plain
 * Error, for the caller to map (a BerthError's `code` is its category and must stay one).
 */
function sysError(e: number, what: string): Error {
  return Object.assign(new Error(`${what}: ${errnoName(e)}`), { errno: e, code: errnoName(e), syscall: what.split(' ')[0] });
}

export const MNT_DETACH = 2;
export const MS_RDONLY = 1;
export const MS_BIND = 4096;

export function mount(source: string, target: string, fstype: string, flags: number, data: string): void {
  check(fns.mount(source, target, fstype, flags, data), `mount ${fstype} on ${target}`);
}

export function umount(target: string, flags = 0): void {
  check(fns.umount2(target, flags), `umount ${target}`);
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
    const err = internal(`connect ${path}: ${errnoName(e)}`);
    (err as { errno?: number }).errno = e;
    throw err;
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
