/**
 * A runtime in memory for unit tests: the task, exec and stats roles (and post-copy's lazyPages,
 * which lifecycle may ask for), with exits the test controls. No process, no root, no wall clock:
 * exit times come from the injected clock.
 *
 * A task goes created -> running (start) -> stopped (exit). `exit(id, code)` ends it as conmon
 * would: the exit is recorded, the monitor goes, `watchExits` callbacks run. A signal ends the task
 * with 128+signal unless the test said the process ignores it (`ignoreSignals`).
 */
import type { Clock } from '../../../src/base/clock.js';
import type {
  AttachSession,
  CgroupStats,
  CheckpointRuntime,
  CreateOptions,
  ExecHandle,
  ExecOptions,
  ExecRuntime,
  HostInfo,
  Resources,
  RuntimeStatus,
  SpecArg,
  SpecInput,
  StatsRuntime,
  TaskRuntime,
} from '../../../src/runtime/types.js';

export interface FakeTask {
  status: RuntimeStatus;
  pid: number;
  conmonPid: number;
  /** conmon still runs */
  monitor: boolean;
  exit: { code: number; at: Date } | null;
  spec: SpecInput;
  resources: Resources | null;
  /** a signal sent while frozen, delivered when thawed */
  pendingSignal?: number;
}

/** What an exec of the fake does: exit with `code` (now, or when the test calls `finish`), writing nothing. */
export interface FakeExec {
  id: string;
  pid: number;
  opts: ExecOptions;
  finish(code: number): void;
}

export class FakeRuntime implements TaskRuntime, ExecRuntime, StatsRuntime, Pick<CheckpointRuntime, 'lazyPages'> {
  readonly tasks = new Map<string, FakeTask>();
  /** every call, in order: `create <id>`, `kill <id> <signal>`, ... */
  readonly calls: string[] = [];
  /** signals the container's process ignores (by number) */
  readonly ignoreSignals = new Set<number>();
  /** the next create of these ids fails with this error */
  readonly failCreate = new Map<string, Error>();
  /** execs under way, oldest first */
  readonly execs: FakeExec[] = [];
  /** How an exec ends: a number exits at once with it, 'hang' waits for `finish` (or a kill). */
  execResult: (argv: string[]) => number | 'hang' = () => 0;
  private readonly exitWatchers: Array<(id: string) => void> = [];
  private nextPid = 1000;

  constructor(private readonly clock: Clock) {}

  /** The process of `id` ends with `code`, as conmon records it. */
  exit(id: string, code: number): void {
    const t = this.task(id);
    if (t.status === 'stopped') return;
    t.status = 'stopped';
    t.monitor = false;
    t.exit = { code, at: new Date(this.clock.now()) };
    for (const cb of this.exitWatchers) cb(id);
  }

  /** A task left by a daemon that died (reconcile's input): no create call seen. */
  leave(id: string, t: Partial<FakeTask>): FakeTask {
    const task: FakeTask = {
      status: 'running',
      pid: this.nextPid++,
      conmonPid: this.nextPid++,
      monitor: true,
      exit: null,
      spec: {} as SpecInput,
      resources: null,
      ...t,
    };
    this.tasks.set(id, task);
    return task;
  }

  private task(id: string): FakeTask {
    const t = this.tasks.get(id);
    if (!t) throw new Error(`fake runtime: no task ${id}`);
    return t;
  }

  host(): HostInfo {
    return {
      cgroupVersion: 2,
      cgroupDriver: 'cgroupfs',
      cgroupRepair: '',
      tuning: [],
      runtimes: { crun: { path: '/fake/crun', version: 'fake' } },
      defaultRuntime: 'crun',
      conmon: { path: '/fake/conmon', version: 'fake' },
      seccomp: true,
      blkioWeight: true,
      apparmor: false,
      selinux: false,
      capabilities: ['CAP_CHOWN', 'CAP_KILL', 'CAP_NET_BIND_SERVICE', 'CAP_SETUID', 'CAP_SETGID', 'CAP_SYS_ADMIN'],
      rlimits: { nofile: { soft: 1024, hard: 1048576 } },
      init: null,
      checkpoint: {
        criu: '',
        criuPath: '',
        runtimes: [],
        capable: [],
        probe: 'failed',
        reason: 'fake',
        preCopy: false,
        preCopyReason: '',
        postCopy: false,
        postCopyReason: '',
      },
      kernelVersion: '6.0.0',
      memTotal: 8 << 30,
      ncpu: 2,
      warnings: [],
    };
  }

  async create(opts: CreateOptions, specArg: SpecArg): Promise<{ pid: number; conmonPid: number }> {
    this.calls.push(`create ${opts.id}`);
    if (typeof specArg === 'function') throw new Error('the fake runtime stages no rootfs');
    const spec = await specArg; // as createTask: a spec still being made is awaited, its error is the create's
    const fail = this.failCreate.get(opts.id);
    if (fail) {
      this.failCreate.delete(opts.id);
      throw fail;
    }
    const old = this.tasks.get(opts.id);
    if (old && old.status !== 'stopped') throw new Error(`container "${opts.id}" already exists`);
    const t = this.leave(opts.id, { status: 'created', spec });
    return { pid: t.pid, conmonPid: t.conmonPid };
  }

  async start(id: string): Promise<void> {
    this.calls.push(`start ${id}`);
    const t = this.task(id);
    if (t.status !== 'created') throw new Error(`cannot start a container in status ${t.status}`);
    t.status = 'running';
  }

  async kill(id: string, signal: number): Promise<void> {
    this.calls.push(`kill ${id} ${signal}`);
    const t = this.task(id);
    if (t.status === 'stopped') throw new Error('container not running');
    if (this.ignoreSignals.has(signal)) return;
    // a frozen process sees the signal once thawed; SIGKILL ends it anyway
    if (t.status === 'paused' && signal !== 9) t.pendingSignal = signal;
    else this.exit(id, 128 + signal);
  }

  async pause(id: string): Promise<void> {
    this.calls.push(`pause ${id}`);
    const t = this.task(id);
    if (t.status !== 'running') throw new Error('container not running');
    t.status = 'paused';
  }

  async resume(id: string): Promise<void> {
    this.calls.push(`resume ${id}`);
    const t = this.task(id);
    if (t.status !== 'paused') throw new Error('container not paused');
    t.status = 'running';
    if (t.pendingSignal !== undefined) this.exit(id, 128 + t.pendingSignal);
  }

  async delete(id: string): Promise<void> {
    this.calls.push(`delete ${id}`);
    const t = this.tasks.get(id);
    if (t && t.status !== 'stopped') this.exit(id, 137); // the runtime kills what it deletes
    this.tasks.delete(id);
  }

  async state(id: string): Promise<{ status: RuntimeStatus; pid: number } | null> {
    const t = this.tasks.get(id);
    return t ? { status: t.status, pid: t.pid } : null;
  }

  async exitCode(id: string): Promise<{ code: number; at: Date } | null> {
    return this.tasks.get(id)?.exit ?? null;
  }

  watchExits(cb: (id: string) => void): void {
    this.exitWatchers.push(cb);
  }

  async monitorAlive(id: string): Promise<boolean> {
    return this.tasks.get(id)?.monitor ?? false;
  }

  /** A session on the task's stdio (conmon's attach socket exists from create on); output is not modelled. */
  async attach(id: string, opts: { stdin: boolean }): Promise<AttachSession> {
    const t = this.task(id);
    if (t.status === 'stopped') throw new Error('container has exited');
    this.calls.push(`attach ${id}${opts.stdin ? ' stdin' : ''}`);
    return {
      stdin: null,
      onOutput: () => undefined,
      onEnd: () => undefined,
      closeStdin: () => undefined,
      close: () => undefined,
    };
  }

  async resize(): Promise<void> {}
  async reopenLog(): Promise<boolean> {
    return false;
  }

  async update(id: string, resources: Resources): Promise<void> {
    this.task(id).resources = resources;
  }

  async exec(id: string, opts: ExecOptions): Promise<ExecHandle> {
    const t = this.task(id);
    if (t.status !== 'running') throw new Error(`cannot exec in a ${t.status} container`);
    this.calls.push(`exec ${id} ${opts.args.join(' ')}`);
    let finish!: (code: number) => void;
    const done = new Promise<number>((resolve) => (finish = resolve));
    const pid = this.nextPid++;
    const e: FakeExec = {
      id,
      pid,
      opts,
      finish: (code) => {
        this.execs.splice(this.execs.indexOf(e), 1);
        finish(code);
      },
    };
    this.execs.push(e);
    const result = this.execResult(opts.args);
    if (result !== 'hang') e.finish(result);
    return {
      pid,
      attach: null,
      logPath: `/nonexistent/fake-exec-${pid}.log`,
      wait: () => done,
      resize: async () => {},
    };
  }

  /** An exec's process gets SIGKILL (a health probe past its timeout). */
  killExec(pid: number): void {
    this.execs.find((e) => e.pid === pid)?.finish(137);
  }

  async stats(id: string): Promise<CgroupStats> {
    this.task(id);
    return {
      cpuTotalNs: 0,
      cpuUserNs: 0,
      cpuSystemNs: 0,
      perCpuNs: [0, 0],
      systemCpuNs: 0,
      onlineCpus: 2,
      memUsage: 0,
      memLimit: 0,
      memStats: {},
      pids: 1,
      pidsLimit: 0,
      blkioRead: 0,
      blkioWrite: 0,
      memMaxUsage: 0,
      memFailcnt: 0,
      throttling: { periods: 0, throttledPeriods: 0, throttledTimeNs: 0 },
      blkio: {
        io_service_bytes_recursive: [],
        io_serviced_recursive: [],
        io_queue_recursive: [],
        io_service_time_recursive: [],
        io_wait_time_recursive: [],
        io_merged_recursive: [],
        io_time_recursive: [],
        sectors_recursive: [],
      },
    };
  }

  /** the OOM killer's count per container (a test sets it before the exit) */
  readonly oomKillCount = new Map<string, number>();

  async oomKills(id: string): Promise<number> {
    return this.oomKillCount.get(id) ?? 0;
  }

  async pids(id: string): Promise<number[]> {
    const t = this.task(id);
    return t.status === 'stopped' ? [] : [t.pid];
  }

  async lazyPages(): Promise<{ done: Promise<void>; cancel: () => void }> {
    throw new Error('fake runtime: post-copy is not modelled');
  }
}
