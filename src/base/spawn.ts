/**
 * Starting processes with posix_spawn(3), through koffi: conmon (which daemonizes) and the helper
 * programs berthd runs to completion (tar, ip, nft, cp: base/proc.ts).
 *
 * Node's spawn forks the whole daemon, page tables and all, and its main thread waits for the
 * child's exec: ~2.5 ms per process at berthd's size, on the path of every start, exec and build.
 * glibc's posix_spawn clones with CLONE_VM|CLONE_VFORK, which costs the same (~0.25 ms) whatever
 * the daemon's size. The child gets /dev/null on the fds of 0-2 not given a pipe; the pipes come
 * back as streams; the child is reaped on SIGCHLD and its exit status reported.
 */
import { Socket } from 'node:net';
import { constants as osConstants } from 'node:os';
import type { Readable, Writable } from 'node:stream';
import { internal } from './errors.js';
import { errnoName, libc } from './syscalls.js';

const fns = {
  pipe2: libc.func('int pipe2(_Out_ int *fds, int flags)'),
  close: libc.func('int close(int fd)'),
  faInit: libc.func('int posix_spawn_file_actions_init(void *fa)'),
  faDestroy: libc.func('int posix_spawn_file_actions_destroy(void *fa)'),
  faDup2: libc.func('int posix_spawn_file_actions_adddup2(void *fa, int fd, int newfd)'),
  faChdir: libc.func('int posix_spawn_file_actions_addchdir_np(void *fa, const char *path)'),
  faOpen: libc.func(
    'int posix_spawn_file_actions_addopen(void *fa, int fd, const char *path, int oflag, unsigned int mode)',
  ),
  attrInit: libc.func('int posix_spawnattr_init(void *attr)'),
  attrDestroy: libc.func('int posix_spawnattr_destroy(void *attr)'),
  attrSetFlags: libc.func('int posix_spawnattr_setflags(void *attr, short flags)'),
  spawnp: libc.func(
    'int posix_spawnp(_Out_ int *pid, const char *file, void *fa, void *attr, const char **argv, const char **envp)',
  ),
  waitpid: libc.func('int waitpid(int pid, _Out_ int *status, int options)'),
  waitid: libc.func('int waitid(int idtype, int id, void *infop, int options)'),
};

const O_RDWR = 2;
const O_CLOEXEC = 0o2000000;
const POSIX_SPAWN_SETSID = 0x80; // glibc
const WNOHANG = 1;
const P_ALL = 0;
const WEXITED = 4;
const WNOWAIT = 0x01000000;
/** sizeof(siginfo_t) is 128; si_pid is at 16 on every 64-bit Linux (three ints, then the union, 8-aligned) */
const SIGINFO_BYTES = 128;
const SI_PID = 16;
/** sizeof(posix_spawn_file_actions_t) is 80 and sizeof(posix_spawnattr_t) 336 on glibc x86_64/arm64: room to spare */
const OPAQUE_BYTES = 1024;

export interface ExitStatus {
  /** the exit code, or null when a signal ended it */
  code: number | null;
  signal: NodeJS.Signals | null;
}

/**
 * A child spawned here and not reaped yet: its status once known, and who waits for it. A plain
 * record and no promise until someone asks (`Spawned.exited`): a promise made in a request's
 * async context keeps that context (AsyncLocalStorage: the request's response, its closures)
 * alive as long as it is pending, and a container's conmon is pending for the container's life
 * (~8 KB of heap per running container, found in a heap snapshot at 2,000).
 */
interface Unreaped {
  status?: ExitStatus;
  wake?: (s: ExitStatus) => void;
}

/** Children spawned here that have not been reaped yet. */
const unreaped = new Map<number, Unreaped>();

function settle(child: Unreaped, status: ExitStatus): void {
  child.status = status;
  child.wake?.(status);
}
let reaper: NodeJS.Timeout | null = null;
const signalName = (n: number) =>
  (Object.entries(osConstants.signals).find(([, v]) => v === n)?.[0] ?? null) as NodeJS.Signals | null;

/**
 * Reaps the children of ours that exited, one waitpid each: the kernel names an exited child
 * (waitid with WNOWAIT, which leaves it unreaped) until it names none or one that is not ours
 * (Node's child_process reaps its own). O(exits), not O(children): a conmon run with --sync is a
 * child of berthd for its container's whole life, so thousands can be in `unreaped`. Only when the
 * kernel names a child that is not ours (one of Node's, not reaped yet) is each of ours asked.
 */
function reap(): void {
  const info = Buffer.alloc(SIGINFO_BYTES);
  for (;;) {
    info.fill(0);
    if (fns.waitid(P_ALL, 0, info, WEXITED | WNOHANG | WNOWAIT) !== 0) {
      reapEach(); // ECHILD: no child at all, so whatever is still listed was reaped elsewhere
      break;
    }
    const pid = info.readInt32LE(SI_PID);
    if (pid <= 0) break; // none exited
    const done = unreaped.get(pid);
    if (!done) {
      reapEach();
      break;
    }
    const status = [0];
    const rc = fns.waitpid(pid, status, WNOHANG);
    if (rc === 0) break; // cannot be: it was named as exited
    unreaped.delete(pid);
    settle(done, rc < 0 ? { code: null, signal: null } : statusOf(status[0]!));
  }
  if (!unreaped.size) {
    process.removeListener('SIGCHLD', reap);
    if (reaper) clearInterval(reaper);
    reaper = null;
  }
}

/** Asks each child of ours (while one that is not ours hides them from waitid). */
function reapEach(): void {
  const status = [0];
  for (const [pid, done] of unreaped) {
    const rc = fns.waitpid(pid, status, WNOHANG);
    if (rc === 0) continue; // still running
    unreaped.delete(pid);
    // rc < 0: not our child any more (ECHILD): nothing to report
    settle(done, rc < 0 ? { code: null, signal: null } : statusOf(status[0]!));
  }
}

function statusOf(st: number): ExitStatus {
  return (st & 0x7f) === 0 ? { code: (st >> 8) & 0xff, signal: null } : { code: null, signal: signalName(st & 0x7f) };
}

/** Listens for SIGCHLD; called before a spawn, so that a child that exits at once is not missed. */
function startReaper(): void {
  if (reaper) return;
  process.on('SIGCHLD', reap);
  // keeps the event loop alive until every child is reaped (a signal handler does not), and is a
  // safety net: a SIGCHLD reaps every child of ours that exited (signals coalesce)
  reaper = setInterval(reap, 1000);
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
  /** resolves when the child exited (it is reaped then); made on first use */
  readonly exited: Promise<ExitStatus>;
}

/**
 * `out`: the child's fds that write into a pipe we read; `into`: those that read a pipe we write;
 * `detached`: a session of its own; `cwd`: its working directory (else the daemon's).
 */
export interface SpawnOptions {
  out: number[];
  into?: number[];
  detached?: boolean;
  cwd?: string;
}

/** A spawn made ready: file actions and attributes, the pipes, argv and envp. */
interface Prepared {
  fa: Buffer;
  attr: Buffer;
  /** our ends of the pipes, closed by `release` unless the sockets own them (`adopt` empties it) */
  ours: number[];
  /** the child's ends, closed by `release` once the spawn call returned */
  theirs: number[];
  ends: Array<{ childFd: number; mine: number; write: boolean }>;
  argv: Array<string | null>;
  envp: Array<string | null>;
}

function prepare(file: string, args: string[], env: NodeJS.ProcessEnv, o: SpawnOptions): Prepared {
  const p: Prepared = {
    fa: Buffer.alloc(OPAQUE_BYTES),
    attr: Buffer.alloc(OPAQUE_BYTES),
    ours: [],
    theirs: [],
    ends: [],
    argv: [file, ...args, null],
    envp: [
      ...Object.entries(env)
        .filter(([, v]) => v !== undefined)
        .map(([k, v]) => `${k}=${v}`),
      null,
    ],
  };
  fns.faInit(p.fa);
  fns.attrInit(p.attr);
  try {
    if (o.detached) fns.attrSetFlags(p.attr, POSIX_SPAWN_SETSID);
    if (o.cwd !== undefined) fns.faChdir(p.fa, o.cwd);
    const given = new Set([...o.out, ...(o.into ?? [])]);
    for (const fd of [0, 1, 2]) if (!given.has(fd)) fns.faOpen(p.fa, fd, '/dev/null', O_RDWR, 0);
    for (const [childFds, write] of [
      [o.out, false],
      [o.into ?? [], true],
    ] as const) {
      for (const childFd of childFds) {
        const [r, w] = pipe();
        p.ours.push(write ? w : r);
        p.theirs.push(write ? r : w);
        p.ends.push({ childFd, mine: write ? w : r, write });
        fns.faDup2(p.fa, write ? r : w, childFd); // dup2 clears close-on-exec on the child's copy
      }
    }
  } catch (e) {
    release(p);
    throw e;
  }
  return p;
}

/** Closes the child's ends (and ours, unless adopted) and frees the spawn's attributes. */
function release(p: Prepared): void {
  for (const fd of p.theirs) fns.close(fd);
  for (const fd of p.ours) fns.close(fd);
  p.theirs.length = 0;
  p.ours.length = 0;
  fns.faDestroy(p.fa);
  fns.attrDestroy(p.attr);
}

function spawnFailed(file: string, rc: number): Error {
  reap(); // stops the reaper when no child is left
  const e = internal(`cannot run ${file}: ${errnoName(rc)}`);
  (e as { code?: string }).code = errnoName(rc);
  return e;
}

/** The running child: our pipe ends as streams, its exit awaited. */
function adopt(p: Prepared, pid: number): Spawned {
  const out = new Map<number, Readable>();
  const into = new Map<number, Writable>();
  const child: Unreaped = {};
  unreaped.set(pid, child);
  let exited: Promise<ExitStatus> | undefined;
  for (const e of p.ends) {
    const s = new Socket({ fd: e.mine, readable: !e.write, writable: e.write });
    s.on('error', () => undefined); // a child that exits early (EPIPE, reset): the caller sees 'close'
    if (e.write) into.set(e.childFd, s);
    else out.set(e.childFd, s);
  }
  p.ours.length = 0; // owned by the sockets now
  return {
    pid,
    out,
    in: into,
    get exited() {
      return (exited ??= child.status ? Promise.resolve(child.status) : new Promise((r) => (child.wake = r)));
    },
  };
}

/**
 * Runs `file` (looked up in PATH unless it has a slash) with `args` and exactly `env`. `out`:
 * child fds that get a pipe the child writes to; `into`: child fds that get a pipe it reads.
 * Every other fd of 0, 1, 2 is /dev/null; the daemon's own fds are close-on-exec. `detached`:
 * in a session of its own (conmon, which outlives the daemon).
 */
export function spawnProcess(file: string, args: string[], env: NodeJS.ProcessEnv, o: SpawnOptions): Spawned {
  const p = prepare(file, args, env, o);
  try {
    startReaper();
    const pid = [0];
    const rc = fns.spawnp(pid, file, p.fa, p.attr, p.argv, p.envp);
    if (rc !== 0) throw spawnFailed(file, rc);
    return adopt(p, pid[0]!);
  } finally {
    release(p);
  }
}

/**
 * `spawnProcess` with the posix_spawn call on one of koffi's worker threads: the child's clone
 * and exec (the calling thread waits for them: CLONE_VFORK) do not hold the daemon's event loop.
 * Under load that wait is the child's scheduling delay (~2 ms here idle, 15 ms and more on a busy
 * machine), once per container start and exec. Same contract, settled once the child has exec'd.
 */
export function spawnProcessAsync(
  file: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  o: SpawnOptions,
): Promise<Spawned> {
  const p = prepare(file, args, env, o);
  startReaper();
  const pid = [0];
  return new Promise<Spawned>((resolve, reject) => {
    const done = (err: unknown, rc: number) => {
      try {
        if (err) throw err instanceof Error ? err : internal(`cannot run ${file}: ${String(err)}`);
        if (rc !== 0) throw spawnFailed(file, rc);
        const s = adopt(p, pid[0]!);
        // a SIGCHLD that came while the call ran may have found nothing to wait for (and stopped
        // the reaper): listen again, and reap a child that is gone already
        startReaper();
        reap();
        resolve(s);
      } catch (e) {
        reject(e instanceof Error ? e : internal(String(e)));
      } finally {
        release(p);
      }
    };
    try {
      fns.spawnp.async(pid, file, p.fa, p.attr, p.argv, p.envp, done);
    } catch (e) {
      release(p);
      reap();
      reject(e instanceof Error ? e : internal(String(e)));
    }
  });
}
