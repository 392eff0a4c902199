/**
 * CRIU under a deadline. Every CRIU-backed operation (a runtime's checkpoint, pre-dump or restore,
 * CRIU's own dump/restore in the probe) runs as a process group of its own; when its deadline
 * passes, its caller aborts, or it dies, the whole group is killed and the container is rescued:
 * CRIU freezes a container through its freezer cgroup and seizes its tasks with ptrace, and a CRIU
 * that is killed releases the ptrace seizure (the kernel detaches a dead tracer's tracees) but
 * not the freezer, so `rescue` thaws the cgroup. The container is then as it was: running.
 *
 * The capability probe: whether CRIU really checkpoints and restores on this kernel. `criu check`
 * is not enough (CRIU 4.1.1 passes it on kernel 6.18.44 and then hangs in every dump's parasite
 * cure), so the probe dumps and restores a tiny process of its own, each step under a deadline.
 * The verdict depends only on the kernel and the CRIU binary, so it is cached per (kernel, CRIU
 * binary) under /var/cache/berth/probe and the probe runs once per machine, in the background.
 */
import { createHash } from 'node:crypto';
import { spawn } from 'node:child_process';
import { existsSync, promises as fsp, readFileSync, statSync } from 'node:fs';
import { constants as osConstants, release, version as kernelBuild } from 'node:os';
import { join } from 'node:path';
import { errorMessage, unavailable } from '../base/errors.js';
import { log } from '../base/log.js';
import { spawnProcess } from '../base/spawn.js';
import { type Clock, dateOf, systemClock } from '../base/clock.js';
import { pollUntil } from './poll.js';
type CgroupVersion = 1 | 2;

export class CriuTimeout extends Error {}

export interface GroupRun {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs `file args` in a session (and so a process group) of its own and resolves with its exit
 * code and stderr. When `deadlineMs` passes or `signal` aborts, the whole group is SIGKILLed
 * (the runtime and the CRIU it started) and the promise rejects with CriuTimeout (deadline) or
 * the abort reason; the caller then rescues what the group was working on.
 */
export function runGroup(
  file: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  o: { deadlineMs: number; signal?: AbortSignal | undefined; what: string },
): Promise<GroupRun> {
  return new Promise((resolve, reject) => {
    o.signal?.throwIfAborted();
    const p = spawnProcess(file, args, env, { out: [1, 2], detached: true });
    let stdout = '';
    let stderr = '';
    p.out.get(1)!.on('data', (d: Buffer) => {
      if (stdout.length < 64 * 1024) stdout += d.toString();
    });
    p.out.get(2)!.on('data', (d: Buffer) => {
      if (stderr.length < 64 * 1024) stderr += d.toString();
    });
    let ended: Error | null = null;
    const kill = (why: Error) => {
      if (ended) return;
      ended = why;
      try {
        process.kill(-p.pid, 'SIGKILL');
      } catch {
        /* gone already */
      }
    };
    const timer = setTimeout(
      () => kill(new CriuTimeout(`${o.what} did not finish in ${Math.round(o.deadlineMs / 100) / 10} s`)),
      o.deadlineMs,
    );
    const onAbort = () =>
      kill(
        o.signal?.reason instanceof Error
          ? o.signal.reason
          : new Error(`${o.what} was cancelled: the client went away`),
      );
    o.signal?.addEventListener('abort', onAbort, { once: true });
    void p.exited.then((status) => {
      clearTimeout(timer);
      o.signal?.removeEventListener('abort', onAbort);
      // the group's other members (CRIU under the runtime) go with it, also on success
      try {
        process.kill(-p.pid, 'SIGKILL');
      } catch {
        /* none left */
      }
      if (ended) reject(ended);
      else
        resolve({
          code: status.code ?? 128 + (status.signal ? (osConstants.signals[status.signal] ?? 9) : 9),
          stdout,
          stderr,
        });
    });
  });
}

/** The container's cgroup (relative to a hierarchy's mount) as its init process sees it. */
function cgroupOf(pid: number, version: CgroupVersion): string | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/cgroup`, 'utf8');
  } catch {
    return null;
  }
  for (const line of text.split('\n')) {
    const [, controllers, path] = line.split(':');
    if (path === undefined) continue;
    if (version === 2 ? controllers === '' && line.startsWith('0::') : controllers!.split(',').includes('freezer'))
      return path;
  }
  return null;
}

/**
 * Gives a container whose checkpoint was cut short back its processes: thaws its freezer cgroup
 * (CRIU froze it; killing CRIU leaves it frozen) and wakes any task left stopped. Idempotent;
 * answers whether the init process is alive.
 */
export async function rescue(pid: number, version: CgroupVersion, clock: Clock = systemClock): Promise<boolean> {
  if (pid <= 0 || !existsSync(`/proc/${pid}`)) return false;
  const cg = cgroupOf(pid, version);
  if (cg !== null) {
    const file =
      version === 2 ? join('/sys/fs/cgroup', cg, 'cgroup.freeze') : join('/sys/fs/cgroup/freezer', cg, 'freezer.state');
    const value = version === 2 ? '0' : 'THAWED';
    // a thaw can take a moment to settle (FREEZING -> THAWED); write until it reads back, a second at most
    const thawed = async () => {
      await fsp.writeFile(file, value).catch(() => undefined);
      const now = (await fsp.readFile(file, 'utf8').catch(() => value)).trim();
      return version === 2 ? now === '0' : now === 'THAWED';
    };
    await pollUntil(thawed, { clock, deadlineMs: 1000, everyMs: 20 });
  }
  // tasks in a ptrace-stop go on when their tracer dies; a task left in a group stop needs SIGCONT
  for (const task of await fsp.readdir(`/proc/${pid}/task`).catch(() => [] as string[])) {
    const state = /^State:\s+(\S)/m.exec(
      await fsp.readFile(`/proc/${pid}/task/${task}/status`, 'utf8').catch(() => ''),
    )?.[1];
    if (state === 'T') {
      try {
        process.kill(pid, 'SIGCONT');
      } catch {
        /* gone */
      }
      break;
    }
  }
  return existsSync(`/proc/${pid}`);
}

/** The probe's verdict, cached per kernel and CRIU binary. */
export interface ProbeResult {
  ok: boolean;
  /** CRIU's version (`criu --version`), empty when it did not say */
  version: string;
  /** why not, with the step and the log (empty when ok) */
  reason: string;
  /** CRIU's soft-dirty memory tracking works (pre-dumps, pre-copy migration) */
  memTrack: boolean;
  /** ISO time of the probe */
  at: string;
}

const PROBE_CACHE = '/var/cache/berth/probe';
const PROBE_VERSION = 1; // bump when the probe changes: cached verdicts are re-probed

function probeKey(criu: string): string {
  const st = statSync(criu);
  return createHash('sha256')
    .update(JSON.stringify([PROBE_VERSION, release(), kernelBuild(), criu, st.size, st.mtimeMs]))
    .digest('hex')
    .slice(0, 16);
}

/**
 * Whether CRIU can checkpoint and restore on this host: cached, else probed (`deadlineMs` per
 * step). Never throws: a failure is a verdict with its reason.
 */
export async function probeCriu(
  criu: string,
  env: NodeJS.ProcessEnv,
  deadlineMs: number,
  clock: Clock,
): Promise<ProbeResult> {
  let key: string;
  try {
    key = probeKey(criu);
  } catch (e) {
    const reason = `CRIU at ${criu}: ${errorMessage(e)}`;
    return { ok: false, version: '', reason, memTrack: false, at: dateOf(clock).toISOString() };
  }
  const cached = join(PROBE_CACHE, `criu-${key}.json`);
  try {
    const r = JSON.parse(await fsp.readFile(cached, 'utf8')) as ProbeResult;
    // a failure is probed again after an hour (it may have been a machine too loaded to finish)
    if (r.ok || clock.now() - Date.parse(r.at) < 3600_000) return r;
  } catch {
    /* not probed yet */
  }
  const t0 = performance.now();
  const result = await probe(criu, env, deadlineMs, clock);
  log.info('CRIU probe', {
    ok: result.ok,
    reason: result.reason,
    memTrack: result.memTrack,
    ms: Math.round(performance.now() - t0),
  });
  // a failure is cached too (for an hour): a CRIU that hangs here would hang again at every start
  await fsp
    .mkdir(PROBE_CACHE, { recursive: true, mode: 0o700 })
    .then(() => fsp.writeFile(cached, JSON.stringify(result), { mode: 0o600 }))
    .catch(() => undefined);
  return result;
}

async function probe(criu: string, env: NodeJS.ProcessEnv, deadlineMs: number, clock: Clock): Promise<ProbeResult> {
  const at = dateOf(clock).toISOString();
  let version = '';
  const fail = (reason: string): ProbeResult => ({ ok: false, version, reason, memTrack: false, at });
  const step = async (what: string, args: string[], logFile?: string): Promise<string | null> => {
    try {
      const r = await runGroup(criu, args, env, { deadlineMs, what: `criu ${what}` });
      if (r.code === 0) return null;
      const tail = logFile ? await criuLogErrors(logFile) : r.stderr.trim().split('\n').slice(-2).join('; ');
      return `criu ${what} failed (exit ${r.code})${tail ? `: ${tail}` : ''}`;
    } catch (e) {
      return `${errorMessage(e)}${e instanceof CriuTimeout && logFile ? ` (it hangs on this kernel; its log ends: ${await lastLine(logFile)})` : ''}`;
    }
  };
  try {
    const r = await runGroup(criu, ['--version'], env, { deadlineMs, what: 'criu --version' });
    version = /Version:\s*(\S+)/.exec(r.stdout)?.[1] ?? '';
  } catch (e) {
    return fail(errorMessage(e));
  }
  const checked = await step('check', ['check']);
  if (checked) return fail(checked);
  const dir = await fsp.mkdtemp('/tmp/berth-criu-probe-');
  // the probe's target: a process of its own session (no terminal: no --shell-job) that does nothing
  const target = spawn('sleep', ['600'], { detached: true, stdio: 'ignore' });
  const gone = new Promise<void>((r) => target.once('exit', () => r()));
  try {
    if (!target.pid) return fail('cannot start the probe process');
    const dumped = await step(
      'dump',
      ['dump', '-t', String(target.pid), '-D', dir, '-o', 'dump.log', '-v4'],
      join(dir, 'dump.log'),
    );
    if (dumped) return fail(dumped);
    await gone; // dumped and killed: reaped, so its pid is free for the restore
    const restored = await step(
      'restore',
      ['restore', '-D', dir, '-o', 'restore.log', '-v4', '-d', '--pidfile', join(dir, 'restored.pid')],
      join(dir, 'restore.log'),
    );
    if (restored) return fail(restored);
    const pid = Number(await fsp.readFile(join(dir, 'restored.pid'), 'utf8').catch(() => '0'));
    if (pid > 0) process.kill(pid, 'SIGKILL');
    const memTrack =
      (await step('check --feature mem_dirty_track', ['check', '--feature', 'mem_dirty_track'])) === null;
    return { ok: true, version, reason: '', memTrack, at };
  } finally {
    try {
      target.kill('SIGKILL');
    } catch {
      /* dumped */
    }
    await fsp.rm(dir, { recursive: true, force: true });
  }
}

async function lastLine(file: string): Promise<string> {
  const t = await fsp.readFile(file, 'utf8').catch(() => '');
  return t.trim().split('\n').pop() ?? '';
}

/** The last error lines of a CRIU log, for an error message. */
export async function criuLogErrors(file: string): Promise<string> {
  return fsp.readFile(file, 'utf8').then(
    (t) =>
      t
        .split('\n')
        .filter((l) => /Error|error/.test(l) && !/RLIMIT_NOFILE/.test(l))
        .slice(-3)
        .join('; '),
    () => '',
  );
}

/** The error a checkpoint operation gets when the probe said no. */
export function notCapable(reason: string) {
  return unavailable(`checkpoint/restore is not possible on this host: ${reason}`);
}
