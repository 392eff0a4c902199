/**
 * The few syscalls Node lacks, through koffi (a C FFI shipped prebuilt in its npm package):
 * mount(2), umount2(2), xattrs, mknod(2), and connecting SOCK_SEQPACKET sockets. Process-wide calls only (never setns here: Node is
 * multi-threaded). Errors carry the syscall, the path and errno's name.
 */
import { createRequire } from 'node:module';
import { constants } from 'node:os';
import { internal } from './errors.js';

const require = createRequire(import.meta.url);
type Fn = (...args: unknown[]) => number;
interface Koffi {
  load(name: string): { func(sig: string): Fn };
  errno(): number;
}
const koffi = require('koffi') as Koffi;
const libc = koffi.load('libc.so.6');
const fns = {
  mount: libc.func('int mount(const char *source, const char *target, const char *fstype, unsigned long flags, const char *data)'),
  umount2: libc.func('int umount2(const char *target, int flags)'),
  lsetxattr: libc.func('int lsetxattr(const char *path, const char *name, const void *value, size_t size, int flags)'),
  lgetxattr: libc.func('long lgetxattr(const char *path, const char *name, _Out_ uint8_t *value, size_t size)'),
  mknod: libc.func('int mknod(const char *path, unsigned int mode, unsigned long dev)'),
  socket: libc.func('int socket(int domain, int type, int protocol)'),
  connect: libc.func('int connect(int fd, const void *addr, uint32_t len)'),
  close: libc.func('int close(int fd)'),
};

const errnoName = (n: number): string => Object.entries(constants.errno).find(([, v]) => v === n)?.[0] ?? `errno ${n}`;

function check(rc: number, what: string): void {
  if (rc < 0) {
    const e = koffi.errno();
    const err = internal(`${what}: ${errnoName(e)}`);
    (err as { errno?: number }).errno = e;
    throw err;
  }
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
