/**
 * Starting conmon and talking to it over its pipes (conmon's `_OCI_SYNCPIPE`, `_OCI_ATTACHPIPE`,
 * `_OCI_STARTPIPE` protocol, API version 1: one JSON object `{"data": N, "message": "..."}` per
 * report; N < 0 is a failure with the runtime's message). conmon daemonizes: the process we spawn
 * exits at once and the monitor outlives the daemon; with `--sync` (a container's conmon) the
 * process we spawn is the monitor (a session of its own, so it outlives the daemon too).
 */
import { accessSync, constants as fsc, existsSync } from 'node:fs';
import type { Readable, Writable } from 'node:stream';
import { unavailable } from '../base/errors.js';
import { isObject } from '../base/json.js';
import { spawnProcessAsync } from '../base/spawn.js';
import { runCommand } from '../base/proc.js';
import { isMountPoint } from '../base/syscalls.js';

export interface SyncMessage {
  data: number;
  message?: string;
}

/** Reads `{"data": ...}` reports from a conmon pipe, one at a time. */
export class SyncReader {
  private buf = '';
  private readonly queue: SyncMessage[] = [];
  private waiting: Array<{ resolve: (m: SyncMessage) => void; reject: (e: Error) => void }> = [];
  private closed = false;

  constructor(
    private readonly stream: Readable,
    private readonly what: string,
  ) {
    stream.on('data', (c: Buffer) => {
      this.buf += c.toString();
      this.parse();
    });
    const end = () => {
      this.closed = true;
      for (const w of this.waiting) w.reject(unavailable(`conmon closed its ${what} pipe without reporting`));
      this.waiting = [];
    };
    stream.on('end', end);
    stream.on('close', end);
    stream.on('error', end);
  }

  private parse(): void {
    // conmon writes objects without separators in some versions: split on balanced braces.
    for (;;) {
      const start = this.buf.indexOf('{');
      const stop = this.buf.indexOf('}', start);
      if (start < 0 || stop < 0) return;
      const text = this.buf.slice(start, stop + 1);
      this.buf = this.buf.slice(stop + 1);
      let v: unknown;
      try {
        v = JSON.parse(text);
      } catch {
        continue;
      }
      if (!isObject(v) || typeof v['data'] !== 'number') continue;
      const m: SyncMessage = { data: v['data'] };
      if (typeof v['message'] === 'string') m.message = v['message'];
      const w = this.waiting.shift();
      if (w) w.resolve(m);
      else this.queue.push(m);
    }
  }

  /**
   * Closes our end. conmon keeps its end of a container's sync pipe for the container's life: a
   * daemon that kept reading it held one descriptor per running container (10,000 containers:
   * half of nofile here). conmon goes on without a reader, as it does after a daemon restart.
   */
  close(): void {
    this.stream.destroy();
  }

  next(timeoutMs = 60_000): Promise<SyncMessage> {
    const q = this.queue.shift();
    if (q) return Promise.resolve(q);
    if (this.closed) return Promise.reject(unavailable(`conmon closed its ${this.what} pipe without reporting`));
    return new Promise((resolve, reject) => {
      const t = setTimeout(
        () => reject(unavailable(`conmon did not report on its ${this.what} pipe in ${timeoutMs} ms`)),
        timeoutMs,
      );
      this.waiting.push({
        resolve: (m) => {
          clearTimeout(t);
          resolve(m);
        },
        reject: (e) => {
          clearTimeout(t);
          reject(e);
        },
      });
    });
  }
}

export interface ConmonHandle {
  /** the process started (conmon before it daemonizes, or with --sync the monitor; a session of its own) */
  pid: number;
  sync: SyncReader;
  attachPipe: SyncReader | null;
  startPipe: Writable | null;
  stderr: () => string;
  /** Settles once conmon's stderr is closed (all of it read) or `deadlineMs` passed, whichever is first. */
  stderrClosed: (deadlineMs: number) => Promise<void>;
  /** With `stage`: the rootfs mounted in conmon's namespace-to-be, conmon not exec'd yet (below). */
  staged: Staged | null;
}

/** A mount made in the staging namespace (snapshot/'s `Mount`, overlay only). */
export interface StageMount {
  type: string;
  source: string;
  options: string[];
}

/**
 * conmon's staging mount namespace (issue #19, ../snapshot/README.md "The host's mount table"):
 * `unshare --mount --propagation slave` and a shell mount the rootfs at `target` in a namespace
 * of the container's own, report on fd 6, wait for `go` on stdin, then exec conmon. crun and the
 * container copy that namespace's table (the host's base lines and this one mount) whatever the
 * number of containers; conmon keeps it alive (also across a daemon kill -9) and it goes with
 * conmon. Call order: `mounted`, then exactly one of `go` or `abort`.
 */
export interface Staged {
  /** Settles once the rootfs is mounted; rejects with mount's words when it could not be. */
  mounted: Promise<void>;
  /** Where berthd reads the mounted rootfs: `/proc/<pid>/root<target>` (the namespace's view). */
  view: string;
  /** conmon is exec'd in the namespace (config.json must be written by then). */
  go(): void;
  /** The shell exits without exec'ing conmon: the namespace and its mount go with it. */
  abort(): void;
}

/**
 * The staging tools. berth's own helper first (scripts/berth-stage.sh builds
 * src/runtime/berth-stage.c into /usr/local/lib/berth): unshare, rslave, the mounts, the report
 * and the wait for `go` in one static process that then execs conmon. Without it, Debian's static
 * busybox (its unshare, sh and mount are one static binary: ~13 ms of CPU for the three here
 * against ~26 ms for util-linux's and dash), else util-linux's unshare and mount and /bin/sh, with
 * the script below: the same protocol. `BERTH_STAGE_HELPER` names another helper ('' = none).
 */
export const STAGE_HELPER = stageHelper(process.env['BERTH_STAGE_HELPER'] ?? '/usr/local/lib/berth/berth-stage');
const BUSYBOX = ['/bin/busybox', '/usr/bin/busybox'].find((p) => existsSync(p));
const STAGE = BUSYBOX
  ? { unshare: [BUSYBOX, 'unshare', '-m'], sh: [BUSYBOX, 'sh'], mount: `${BUSYBOX} mount` }
  : { unshare: ['unshare', '--mount'], sh: ['/bin/sh'], mount: 'mount' };

function stageHelper(path: string): string | null {
  if (!path) return null;
  try {
    accessSync(path, fsc.X_OK);
    return path;
  } catch {
    return null;
  }
}

// $1 target, $2 count, then (type, options, source) per mount, then conmon's argv
const STAGE_SCRIPT = [
  't=$1; n=$2; shift 2',
  `while [ "$n" -gt 0 ]; do ${STAGE.mount} -t "$1" -o "$2" -- "$3" "$t" || exit 125; shift 3; n=$((n-1)); done`,
  'echo mounted >&6; exec 6>&-',
  'read -r go || exit 125',
  '[ "$go" = go ] || exit 125',
  'exec "$@" </dev/null',
].join('\n');

/** The staging process's argv: target, count, (type, options, source) per mount, conmon's argv. */
function stageArgv(stage: { mounts: StageMount[]; target: string }, conmon: string[]): string[] {
  const rest = [
    stage.target,
    String(stage.mounts.length),
    ...stage.mounts.flatMap((m) => [m.type, m.options.join(','), m.source]),
    ...conmon,
  ];
  if (STAGE_HELPER) return [STAGE_HELPER, 'stage', ...rest];
  return [...STAGE.unshare, '--propagation', 'slave', '--', ...STAGE.sh, '-c', STAGE_SCRIPT, 'sh', ...rest];
}

// the runtime's failure text, typed (errors.ts); re-exported for the callers of this module
export { isCommandNotFound, runtimeError } from './errors.js';

/** Starts conmon; settles once it has exec'd (the spawn runs off the event loop: base/spawn.ts). */
export async function startConmon(
  path: string,
  args: string[],
  opts: {
    attach: boolean;
    /** conmon waits for a byte on its start pipe before it runs the runtime (`startPipe` of the handle) */
    startPipe?: boolean;
    pathPrefix?: string;
    cwd: string;
    stage?: { mounts: StageMount[]; target: string };
  },
): Promise<ConmonHandle> {
  // conmon passes its environment on to the runtime: see pinBinary in oci.ts for the second
  // variable; `pathPrefix` puts berth's CRIU first for a runtime that finds it in PATH (crun)
  const PATH = process.env['PATH'] ?? '/usr/sbin:/usr/bin:/sbin:/bin';
  const env: Record<string, string> = {
    PATH: opts.pathPrefix ? `${opts.pathPrefix}:${PATH}` : PATH,
    _OCI_SYNCPIPE: '3',
    _LIBCONTAINER_CLONED_BINARY: '1',
  };
  if (opts.attach) env['_OCI_ATTACHPIPE'] = '4';
  const startPipe = opts.attach || opts.startPipe === true;
  if (startPipe) env['_OCI_STARTPIPE'] = '5';
  // in its bundle's directory: conmon writes an `oom` file into its working directory when the
  // container is OOM-killed (it landed wherever berthd had been started)
  const fds = {
    out: opts.attach ? [2, 3, 4] : [2, 3],
    ...(startPipe ? { into: [5] } : {}),
    detached: true,
    cwd: opts.cwd,
  };
  const stage = opts.stage;
  const staging = stage ? stageArgv(stage, [path, ...args]) : null;
  const child = staging
    ? await spawnProcessAsync(staging[0]!, staging.slice(1), env, {
        ...fds,
        out: [...fds.out, 6],
        into: [...(fds.into ?? []), 0],
      })
    : await spawnProcessAsync(path, args, env, fds);
  let err = '';
  const errStream = child.out.get(2)!;
  errStream.on('data', (d: Buffer) => (err += d.toString()));
  const closed = new Promise<void>((resolve) => {
    errStream.once('close', resolve);
    errStream.once('end', resolve);
    errStream.once('error', () => resolve());
  });
  const sync = new SyncReader(child.out.get(3)!, 'sync');
  return {
    pid: child.pid,
    sync,
    attachPipe: opts.attach ? new SyncReader(child.out.get(4)!, 'attach') : null,
    startPipe: startPipe ? child.in.get(5)! : null,
    stderr: () => err,
    stderrClosed: (deadlineMs) => within(closed, deadlineMs),
    staged: stage
      ? stagedOf(child.out.get(6)!, child.in.get(0)!, `/proc/${child.pid}/root${stage.target}`, () => err)
      : null,
  };
}

function stagedOf(report: Readable, stdin: Writable, view: string, stderr: () => string): Staged {
  const mounted = new Promise<void>((resolve, reject) => {
    let text = '';
    report.on('data', (d: Buffer) => {
      text += d.toString();
      if (text.includes('mounted')) resolve();
    });
    const end = () =>
      reject(unavailable(`could not mount the container's rootfs in its namespace: ${stderr().trim()}`));
    report.once('end', end);
    report.once('close', end);
    report.once('error', end);
  });
  mounted.catch(() => undefined);
  stdin.on('error', () => undefined); // the shell gone: its exit tells
  return {
    mounted,
    view,
    go: () => stdin.end('go\n'),
    abort: () => stdin.destroy(),
  };
}

/**
 * Once the runtime's create returned (the container joined its network namespace): the staging
 * namespace's copy of /run/netns goes (lazily, with every named netns in it). `ip netns` makes
 * /run/netns a shared mount; as a slave copy it would receive every later `ip netns add` of the
 * host (one mount per staging namespace per add: O(n) a start, O(n^2) mounts in all); as a
 * private one it would pin the namespaces of containers removed later. Nothing when the host has
 * no /run/netns mount. Bounded (5 s); a failure is logged by the caller, the container runs on.
 */
export async function detachNetnsCopies(conmonPid: number): Promise<void> {
  if (!conmonPid || !isMountPoint('/run/netns')) return;
  const [cmd, ...argv] = STAGE_HELPER
    ? [STAGE_HELPER, 'detach-netns', String(conmonPid)]
    : [
        ...(BUSYBOX ? [BUSYBOX, 'nsenter'] : ['nsenter']),
        ...['-t', String(conmonPid), '-m', '--'],
        ...(BUSYBOX ? [BUSYBOX, 'umount'] : ['umount']),
        ...['-l', '/run/netns'],
      ];
  await runCommand(cmd!, argv, { timeoutMs: 5_000 });
}

/** `p`, or nothing once `ms` passed first. */
function within(p: Promise<void>, ms: number): Promise<void> {
  let t: NodeJS.Timeout | undefined;
  const cut = new Promise<void>((resolve) => (t = setTimeout(resolve, ms)));
  return Promise.race([p, cut]).finally(() => clearTimeout(t));
}
