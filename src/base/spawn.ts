/**
 * Starting a process that detaches (conmon daemonizes) with posix_spawn(3), through koffi.
 *
 * Node's spawn forks the whole daemon, page tables and all, and its main thread waits for the
 * child's exec: ~2.5 ms per conmon at berthd's size, on the path of every start and exec. glibc's
 * posix_spawn clones with CLONE_VM|CLONE_VFORK, which costs the same (~0.25 ms) whatever the
 * daemon's size. The child gets /dev/null on the fds not given a pipe, a session of its own, and
 * is reaped when it exits (SIGCHLD); the pipes come back as streams.
 */
import { Socket } from 'node:net';
import type { Readable, Writable } from 'node:stream';
import { internal } from './errors.js';
import { errnoName, libc } from './syscalls.js';

const fns = {
  pipe2: libc.func('int pipe2(_Out_ int *fds, int flags)'),
  close: libc.func('int close(int fd)'),
  faInit: libc.func('int posix_spawn_file_actions_init(void *fa)'),
  faDestroy: libc.func('int posix_spawn_file_actions_destroy(void *fa)'),
  faDup2: libc.func('int posix_spawn_file_actions_adddup2(void *fa, int fd, int newfd)'),
  faOpen: libc.func('int posix_spawn_file_actions_addopen(void *fa, int fd, const char *path, int oflag, unsigned int mode)'),
  attrInit: libc.func('int posix_spawnattr_init(void *attr)'),
  attrDestroy: libc.func('int posix_spawnattr_destroy(void *attr)'),
  attrSetFlags: libc.func('int posix_spawnattr_setflags(void *attr, short flags)'),
  spawn: libc.func('int posix_spawn(_Out_ int *pid, const char *path, void *fa, void *attr, const char **argv, const char **envp)'),
  waitpid: libc.func('int waitpid(int pid, _Out_ int *status, int options)'),
};

const O_RDWR = 2;
const O_CLOEXEC = 0o2000000;
const POSIX_SPAWN_SETSID = 0x80; // glibc
const WNOHANG = 1;
/** sizeof(posix_spawn_file_actions_t) is 80 and sizeof(posix_spawnattr_t) 336 on glibc x86_64/arm64: room to spare */
const OPAQUE_BYTES = 1024;

/** Children spawned here that have not been reaped yet. */
const unreaped = new Set<number>();
let reaper: NodeJS.Timeout | null = null;

function reap(): void {
  const status = [0];
  for (const pid of unreaped) if (fns.waitpid(pid, status, WNOHANG) !== 0) unreaped.delete(pid);
  if (!unreaped.size) {
    process.removeListener('SIGCHLD', reap);
    if (reaper) clearInterval(reaper);
    reaper = null;
  }
}

function track(pid: number): void {
  if (!unreaped.size) {
    process.on('SIGCHLD', reap);
    reaper = setInterval(reap, 1000).unref(); // signals coalesce; this catches what they miss
  }
  unreaped.add(pid);
}

function pipe(): [number, number] {
  const fds = [0, 0];
  if (fns.pipe2(fds, O_CLOEXEC) < 0) throw internal('pipe2 failed');
  return [fds[0]!, fds[1]!];
}

export interface Spawned {
  pid: number;
  /** the read ends of the pipes the child writes to, by the child's fd */
  out: Map<number, Readable>;
  /** the write ends of the pipes the child reads from, by the child's fd */
  in: Map<number, Writable>;
}

/**
 * Runs `path` with `args` and exactly `env` in a new session. `out`: child fds that get a pipe the
 * child writes to (stderr, conmon's sync pipe); `into`: child fds that get a pipe the child reads.
 * Every other fd of 0, 1, 2 is /dev/null; the daemon's own fds are close-on-exec.
 */
export function spawnDetached(path: string, args: string[], env: Record<string, string>, o: { out: number[]; into?: number[] }): Spawned {
  const fa = Buffer.alloc(OPAQUE_BYTES);
  const attr = Buffer.alloc(OPAQUE_BYTES);
  const ours: number[] = [];
  const theirs: number[] = [];
  const out = new Map<number, Readable>();
  const into = new Map<number, Writable>();
  fns.faInit(fa);
  fns.attrInit(attr);
  try {
    fns.attrSetFlags(attr, POSIX_SPAWN_SETSID);
    const given = new Set([...o.out, ...(o.into ?? [])]);
    for (const fd of [0, 1, 2]) if (!given.has(fd)) fns.faOpen(fa, fd, '/dev/null', O_RDWR, 0);
    const ends: Array<{ childFd: number; mine: number; write: boolean }> = [];
    for (const childFd of o.out) {
      const [r, w] = pipe();
      ours.push(r);
      theirs.push(w);
      ends.push({ childFd, mine: r, write: false });
      fns.faDup2(fa, w, childFd); // dup2 clears close-on-exec on the child's copy
    }
    for (const childFd of o.into ?? []) {
      const [r, w] = pipe();
      ours.push(w);
      theirs.push(r);
      ends.push({ childFd, mine: w, write: true });
      fns.faDup2(fa, r, childFd);
    }
    const pid = [0];
    const rc = fns.spawn(pid, path, fa, attr, [path, ...args, null], [...Object.entries(env).map(([k, v]) => `${k}=${v}`), null]);
    if (rc !== 0) throw internal(`cannot run ${path}: ${errnoName(rc)}`);
    track(pid[0]!);
    for (const e of ends) {
      const s = new Socket({ fd: e.mine, readable: !e.write, writable: e.write });
      s.on('error', () => undefined); // a child that exits early (EPIPE, reset): the caller sees 'close'
      if (e.write) into.set(e.childFd, s);
      else out.set(e.childFd, s);
    }
    ours.length = 0; // owned by the sockets now
    return { pid: pid[0]!, out, in: into };
  } finally {
    for (const fd of theirs) fns.close(fd);
    for (const fd of ours) fns.close(fd);
    fns.faDestroy(fa);
    fns.attrDestroy(attr);
  }
}
