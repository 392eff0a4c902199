/**
 * The Runtime: conmon + crun/runc. It only executes and holds no state of its own beyond files
 * under its run dir, so a restarted daemon reconnects by path:
 *   <runDir>/<runtime>/            the OCI runtime's --root (its state per container)
 *   <runDir>/exits/<id>            exit code files conmon writes
 *   <runDir>/s/<id[:12]>           conmon's link to the bundle, holding the `attach` socket (short path)
 *   <runDir>/c/<id>/               conmon.pid, pid
 *   <runDir>/x/<exec id>/          one exec: process.json, pids, exit dir, log
 *   <runDir>/bin/<runtime>         the runtime's binary, bind-mounted read-only (see pinBinary)
 * The bundle (config.json, conmon's `ctl` fifo) lives in the engine's container dir.
 */
import { execFile, spawn } from 'node:child_process';
import { constants as osConstants } from 'node:os';
import { promisify } from 'node:util';
import { promises as fsp, readFileSync, existsSync, watch, openSync, writeSync, closeSync, constants as fsc, readdirSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { conflict, errorMessage, invalidArgument, notFound, unavailable } from '../base/errors.js';
import { isMountPoint } from '../base/fs.js';
import { MNT_DETACH, MS_BIND, MS_RDONLY, mount, umount } from '../base/syscalls.js';
import { isObject } from '../base/json.js';
import { log } from '../base/log.js';
import { newId } from '../base/ids.js';
import type { AttachSession, CgroupStats, CreateOptions, ExecHandle, ExecOptions, HostInfo, Resources, Runtime, RuntimeName, RuntimeStatus, SpecInput } from './types.js';
import { buildSpec, resourcesJson } from './spec.js';
import { connectAttach } from './attach.js';
import { runtimeError, startConmon } from './conmon.js';
import { cgroupPids, cgroupStats, pruneEmptyCgroups, removeCgroup } from './cgroups.js';
import { criuLogErrors } from './criu.js';
import { Checkpointer, endConmon, type CheckpointOptions, type LazyCheckpointOptions } from './checkpoint.js';

const run = promisify(execFile);
const short = (id: string) => id.slice(0, 12);
const MS_REMOUNT = 32;

/**
 * crun and runc copy themselves (or bind-mount themselves read-only) and re-execute on every
 * create, start and exec, so that a container cannot overwrite the host's binary through
 * /proc/self/exe (CVE-2019-5736) — a second exec and dynamic link each time. Both skip that
 * when their binary already sits on a read-only mount and _LIBCONTAINER_CLONED_BINARY is set
 * (their cloned_binary.c): the protection is the same, paid once per daemon instead of per call.
 * Returns the pinned path, or the binary's own path when bind mounts are not allowed here.
 */
function pinBinary(real: string, target: string): string {
  try {
    if (isMountPoint(target)) umount(target, MNT_DETACH); // a previous daemon's: re-pin the current binary
    writeFileSync(target, '', { mode: 0o755 });
    mount(real, target, '', MS_BIND, '');
    mount('', target, '', MS_REMOUNT | MS_BIND | MS_RDONLY, '');
    return target;
  } catch (e) {
    log.warn('cannot pin the runtime binary read-only; it will copy itself on each call', { binary: real, err: errorMessage(e) });
    return real;
  }
}
const RUNTIME_ENV = { PATH: process.env['PATH'] ?? '/usr/sbin:/usr/bin:/sbin:/bin', _LIBCONTAINER_CLONED_BINARY: '1' };

export class ConmonRuntime implements Runtime {
  private readonly exits: string;
  private readonly sockets: string;
  private readonly ctrs: string;
  private readonly execs: string;
  /** Which runtime created each container (the one that must manage it). */
  private readonly runtimeOf = new Map<string, RuntimeName>();
  /** Each runtime's binary as invoked (pinned read-only when possible). */
  private readonly bins = new Map<RuntimeName, string>();

  /** CRIU-backed operations (checkpoint.ts): the probe, dumps, post-copy, and the deadline of each. */
  private readonly cr: Checkpointer;

  /**
   * `checkpointDeadlineMs`: how long any one CRIU-backed operation (dump, pre-dump, restore, the
   * start of a page server or lazy-pages daemon) may take before CRIU is ended and the container
   * given back its processes.
   */
  constructor(private readonly runDir: string, private readonly info: HostInfo, checkpointDeadlineMs = 120_000) {
    this.cr = new Checkpointer({ runDir, info, env: RUNTIME_ENV, bin: (n) => this.bin(n), rt: (id) => this.rt(id), cli: (id, args) => this.cli(id, args) }, checkpointDeadlineMs);
    this.exits = join(runDir, 'exits');
    this.sockets = join(runDir, 's');
    this.ctrs = join(runDir, 'c');
    this.execs = join(runDir, 'x');
  }

  async init(): Promise<void> {
    for (const d of [this.exits, this.sockets, this.ctrs, this.execs, join(this.runDir, 'bin'), join(this.runDir, 'crun'), join(this.runDir, 'runc')]) await fsp.mkdir(d, { recursive: true });
    for (const [name, rt] of Object.entries(this.info.runtimes) as Array<[RuntimeName, { path: string }]>)
      this.bins.set(name, pinBinary(rt.path, join(this.runDir, 'bin', name)));
    const pruned = await pruneEmptyCgroups(this.info.cgroupVersion, '/berth');
    if (pruned) log.info('removed cgroups left by exited containers', { count: pruned });
    this.cr.startProbe();
    if (this.info.checkpoint.capable.length) {
      // CRIU at info level, not runc's debug level: at debug CRIU logs a line per page range (megabytes
      // for a large dump, written while the container is frozen); errors and the page server's
      // "Starting ... server on port" (lazy-pages.ts waits for it) are info or above
      const file = join(this.runDir, 'criu.conf');
      await fsp.writeFile(file, '# written by berthd: CRIU settings for runc checkpoints and restores\nverbosity=3\n');
      this.info.checkpoint.configFile = file;
    }
  }

  private bin(name: RuntimeName): string {
    return this.bins.get(name) ?? this.info.runtimes[name]?.path ?? name;
  }

  host(): HostInfo {
    return this.info;
  }

  private rt(id: string): RuntimeName {
    const known = this.runtimeOf.get(id);
    if (known) return known;
    try {
      const name = readFileSync(join(this.ctrs, id, 'runtime'), 'utf8').trim() as RuntimeName;
      this.runtimeOf.set(id, name);
      return name;
    } catch {
      return this.info.defaultRuntime;
    }
  }

  private cli(id: string, args: string[]) {
    const name = this.rt(id);
    return run(this.bin(name), [`--root=${join(this.runDir, name)}`, ...args], { maxBuffer: 4 * 1024 * 1024, env: RUNTIME_ENV, timeout: 60_000, killSignal: 'SIGKILL' });
  }

  /**
   * `create`, or with `restore` a restore from a CRIU checkpoint: conmon runs `<runtime> restore
   * --detach --image-path <dir>` instead, and the process goes on at once (no `start`).
   */
  async create(o: CreateOptions, spec: SpecInput, restore?: { imagePath: string; workPath: string; tcpEstablished: boolean; lazyPages?: boolean }): Promise<{ pid: number; conmonPid: number }> {
    if (!this.info.runtimes[o.runtime]) throw invalidArgument(`runtime ${o.runtime} is not installed`);
    if (restore) await this.cr.ready(o.runtime, 'restore');
    const tp = performance.now();
    const config = buildSpec(spec, this.info);
    const cdir = join(this.ctrs, o.id);
    this.runtimeOf.set(o.id, o.runtime);
    await Promise.all([
      fsp.writeFile(join(o.bundleDir, 'config.json'), JSON.stringify(config), { mode: 0o600 }),
      fsp.mkdir(cdir, { recursive: true }).then(() => fsp.writeFile(join(cdir, 'runtime'), o.runtime)),
      fsp.rm(join(this.exits, o.id), { force: true }),
      fsp.rm(join(this.sockets, short(o.id)), { force: true }),
    ]);
    const args = [
      '--api-version', '1', '-c', o.id, '-u', short(o.id), '-n', o.id, '-r', this.bin(o.runtime), '-b', o.bundleDir,
      '-p', join(cdir, 'pid'), '-P', join(cdir, 'conmon.pid'), '-l', `k8s-file:${o.logPath}`,
      '--exit-dir', this.exits, '--socket-dir-path', this.sockets, '--runtime-arg', `--root=${join(this.runDir, o.runtime)}`,
      // no fsync of the log when the container exits (it came before the exit file: every exit
      // waited for the disk); logs are written as they come, as dockerd's json-file does
      '--log-level', 'error', '--no-sync-log',
    ];
    if (o.tty) args.push('-t');
    if (o.openStdin) args.push('-i');
    if (o.openStdin && !o.stdinOnce) args.push('--leave-stdin-open');
    if (restore) {
      // runc takes CRIU's path; crun finds it in PATH (pathPrefix below)
      if (o.runtime === 'runc') args.push('--runtime-arg', `--criu=${this.info.checkpoint.criuPath}`);
      args.push('--restore', restore.imagePath, '--runtime-opt', `--work-path=${restore.workPath}`);
      if (restore.tcpEstablished) args.push('--runtime-opt', '--tcp-established');
      if (restore.lazyPages) args.push('--runtime-opt', '--lazy-pages');
    }
    const tc = performance.now();
    const h = startConmon(this.info.conmon.path, args, { attach: false, ...(restore ? { pathPrefix: this.cr.criuDir } : {}) });
    let msg;
    try {
      msg = await h.sync.next(restore ? this.cr.deadlineMs : undefined);
      log.debug('conmon', { id: o.id, prepMs: +(tc - tp).toFixed(1), spawnToPidMs: +(performance.now() - tc).toFixed(1) });
    } catch (e) {
      // a restore past its deadline: conmon, the runtime and CRIU go (conmon's session), then its state
      if (restore) await endConmon(h.pid, cdir);
      await this.delete(o.id);
      if (restore && spec.cgroupsPath) await removeCgroup(this.info.cgroupVersion, spec.cgroupsPath);
      if (restore) {
        const tail = await criuLogErrors(join(restore.workPath, 'restore.log'));
        throw unavailable(`restore did not finish in ${this.cr.deadlineMs / 1000} s: CRIU was ended${tail ? ` (criu: ${tail})` : ''}; CRIU's log: ${join(restore.workPath, 'restore.log')}`);
      }
      throw runtimeError(`${errorMessage(e)} ${h.stderr()}`);
    }
    if (msg.data < 0) {
      await this.delete(o.id);
      throw runtimeError(msg.message ?? (h.stderr() || 'unknown error'));
    }
    const conmonPid = Number(await fsp.readFile(join(cdir, 'conmon.pid'), 'utf8').catch(() => '0'));
    return { pid: msg.data, conmonPid };
  }

  async runToCompletion(o: { id: string; bundleDir: string; runtime: RuntimeName; signal?: AbortSignal; onOutput: (stream: 'stdout' | 'stderr', chunk: Buffer) => void }, spec: SpecInput): Promise<number> {
    if (!this.info.runtimes[o.runtime]) throw invalidArgument(`runtime ${o.runtime} is not installed`);
    o.signal?.throwIfAborted();
    await fsp.writeFile(join(o.bundleDir, 'config.json'), JSON.stringify(buildSpec(spec, this.info)), { mode: 0o600 });
    this.runtimeOf.set(o.id, o.runtime);
    const root = `--root=${join(this.runDir, o.runtime)}`;
    const p = spawn(this.bin(o.runtime), [root, 'run', '--bundle', o.bundleDir, o.id], { stdio: ['ignore', 'pipe', 'pipe'], env: RUNTIME_ENV });
    p.stdout.on('data', (d: Buffer) => o.onOutput('stdout', d));
    p.stderr.on('data', (d: Buffer) => o.onOutput('stderr', d));
    // An abort kills the container through the runtime, retrying until the runtime knows it: an
    // abort while `run` is still creating it must not leave its process behind (killing the
    // runtime's own process would orphan the container's init).
    let exited = false;
    const onAbort = () => {
      if (exited) return;
      this.cli(o.id, ['kill', o.id, 'KILL']).catch(() => setTimeout(onAbort, 50));
    };
    o.signal?.addEventListener('abort', onAbort, { once: true });
    if (o.signal?.aborted) onAbort();
    try {
      return await new Promise<number>((resolve, reject) => {
        p.on('error', (e) => reject(runtimeError(errorMessage(e))));
        p.on('close', (code, sig) => resolve(code ?? 128 + (sig ? (osConstants.signals[sig] ?? 9) : 9)));
      });
    } finally {
      exited = true;
      o.signal?.removeEventListener('abort', onAbort);
      this.runtimeOf.delete(o.id);
      if (existsSync(join(this.runDir, o.runtime, o.id))) await run(this.bin(o.runtime), [root, 'delete', '--force', o.id], { env: RUNTIME_ENV }).catch(() => undefined);
    }
  }

  checkpoint(id: string, o: CheckpointOptions): Promise<void> {
    return this.cr.checkpoint(id, o);
  }

  checkpointLazy(id: string, o: LazyCheckpointOptions): Promise<{ served: Promise<void>; cancel: () => Promise<void> }> {
    return this.cr.checkpointLazy(id, o);
  }

  lazyPages(o: { imagePath: string; workPath: string; pageServer: string }): Promise<{ done: Promise<void>; cancel: () => void }> {
    return this.cr.lazyPages(o);
  }

  async start(id: string): Promise<void> {
    if (this.rt(id) === 'crun' && this.openExecFifo(id)) return;
    try {
      await this.cli(id, ['start', id]);
    } catch (e) {
      throw runtimeError((e as { stderr?: string }).stderr || errorMessage(e));
    }
  }

  /**
   * `crun start` without spawning crun: its start only opens the state dir's exec.fifo for
   * writing, unlinks it and writes one byte, which releases the container's init blocked on the
   * other end (crun's libcrun_status_write_exec_fifo; we use no start hooks or notify socket).
   * False when the fifo has no reader (the init died): then crun itself reports why.
   */
  private openExecFifo(id: string): boolean {
    const fifo = join(this.runDir, 'crun', id, 'exec.fifo');
    let fd: number;
    try {
      fd = openSync(fifo, fsc.O_WRONLY | fsc.O_NONBLOCK);
    } catch {
      return false;
    }
    try {
      unlinkSync(fifo);
      writeSync(fd, Buffer.of(0));
      return true;
    } catch {
      return false;
    } finally {
      closeSync(fd);
    }
  }

  async kill(id: string, signal: number, all = false): Promise<void> {
    try {
      await this.cli(id, ['kill', ...(all ? ['--all'] : []), id, String(signal)]);
    } catch (e) {
      throw conflict(`cannot kill container ${id}: ${((e as { stderr?: string }).stderr || errorMessage(e)).trim()}`);
    }
  }

  async pause(id: string): Promise<void> {
    await this.cli(id, ['pause', id]).catch((e: unknown) => {
      throw conflict(`cannot pause container ${id}: ${((e as { stderr?: string }).stderr || errorMessage(e)).trim()}`);
    });
  }

  async resume(id: string): Promise<void> {
    await this.cli(id, ['resume', id]).catch((e: unknown) => {
      throw conflict(`cannot unpause container ${id}: ${((e as { stderr?: string }).stderr || errorMessage(e)).trim()}`);
    });
  }

  /**
   * For a container whose process has exited (conmon wrote its exit file), deleting it is removing
   * the runtime's state dir and the container's (empty) cgroups: done here without spawning the
   * runtime, which halves the exit path. Anything else goes through `<runtime> delete --force`.
   */
  private async deleteExited(id: string): Promise<boolean> {
    if (!existsSync(join(this.exits, id))) return false;
    const cg = `/berth/${id}`;
    const dirs = this.info.cgroupVersion === 2
      ? [`/sys/fs/cgroup${cg}`]
      : readdirSync('/sys/fs/cgroup').map((c) => `/sys/fs/cgroup/${c}${cg}`);
    const removed = await Promise.all(
      dirs.map((d) =>
        fsp.rmdir(d).then(
          () => true,
          (e: NodeJS.ErrnoException) => e.code === 'ENOENT', // busy: let the runtime handle it
        ),
      ),
    );
    if (removed.includes(false)) return false;
    await fsp.rm(join(this.runDir, this.rt(id), id), { recursive: true, force: true });
    return true;
  }

  async delete(id: string): Promise<void> {
    await this.cr.settled(id);
    const stateDir = join(this.runDir, this.rt(id), id);
    if (existsSync(stateDir) && !(await this.deleteExited(id))) await this.cli(id, ['delete', '--force', id]).catch(() => undefined);
    await Promise.all([
      fsp.rm(join(this.sockets, short(id)), { force: true }),
      fsp.rm(join(this.exits, id), { force: true }),
      fsp.rm(join(this.ctrs, id), { recursive: true, force: true }),
    ]);
  }

  async state(id: string): Promise<{ status: RuntimeStatus; pid: number } | null> {
    try {
      const { stdout } = await this.cli(id, ['state', id]);
      const v: unknown = JSON.parse(stdout);
      if (!isObject(v) || typeof v['status'] !== 'string') return null;
      return { status: v['status'] as RuntimeStatus, pid: typeof v['pid'] === 'number' ? v['pid'] : 0 };
    } catch {
      return null;
    }
  }

  async exitCode(id: string): Promise<{ code: number; at: Date } | null> {
    const f = join(this.exits, id);
    try {
      const [text, st] = await Promise.all([fsp.readFile(f, 'utf8'), fsp.stat(f)]);
      const code = Number(text.trim());
      return Number.isFinite(code) ? { code, at: st.mtime } : null;
    } catch {
      return null;
    }
  }

  watchExits(cb: (id: string) => void): void {
    const seen = new Map<string, number>();
    const report = (name: string) => {
      try {
        const m = statSync(join(this.exits, name)).mtimeMs;
        if (seen.get(name) === m) return;
        seen.set(name, m);
        cb(name);
      } catch {
        seen.delete(name);
      }
    };
    watch(this.exits, (_ev, name) => name && report(name.toString())).unref();
    // A safety net for events the watcher may coalesce.
    setInterval(() => {
      for (const name of readdirSync(this.exits)) report(name);
    }, 1000).unref();
  }

  async monitorAlive(id: string): Promise<boolean> {
    try {
      const pid = Number(await fsp.readFile(join(this.ctrs, id, 'conmon.pid'), 'utf8'));
      return pid > 0 && (await fsp.readFile(`/proc/${pid}/cmdline`, 'utf8')).includes('conmon');
    } catch {
      return false;
    }
  }

  attach(id: string, opts: { stdin: boolean }): Promise<AttachSession> {
    return connectAttach(join(this.sockets, short(id), 'attach'), opts);
  }

  /** conmon's control fifo in the bundle: `1 <h> <w>` resizes the terminal. */
  private resizeVia(bundle: string, h: number, w: number): void {
    const ctl = join(bundle, 'ctl');
    if (!existsSync(ctl)) return;
    const fd = openSync(ctl, fsc.O_WRONLY | fsc.O_NONBLOCK);
    try {
      writeSync(fd, `1 ${h} ${w}\n`);
    } finally {
      closeSync(fd);
    }
  }

  async resize(id: string, h: number, w: number): Promise<void> {
    const link = join(this.sockets, short(id));
    this.resizeVia(await fsp.realpath(link).catch(() => link), h, w);
  }

  async exec(id: string, o: ExecOptions): Promise<ExecHandle> {
    const bundleLink = join(this.sockets, short(id));
    const bundle = await fsp.realpath(bundleLink).catch(() => {
      throw notFound(`container ${id} has no running monitor`);
    });
    const cfg = JSON.parse(await fsp.readFile(join(bundle, 'config.json'), 'utf8')) as { process?: Record<string, unknown> };
    const execId = newId<string>();
    const dir = join(this.execs, short(execId));
    await fsp.mkdir(join(dir, 'exit'), { recursive: true });
    const all = this.info.capabilities;
    const caps = o.privileged ? { bounding: all, effective: all, permitted: all } : cfg.process?.['capabilities'];
    const processSpec = {
      terminal: o.tty,
      user: { uid: o.user.uid, gid: o.user.gid, ...(o.user.additionalGids.length ? { additionalGids: o.user.additionalGids } : {}) },
      args: o.args,
      env: o.env,
      cwd: o.cwd || '/',
      capabilities: caps,
      noNewPrivileges: cfg.process?.['noNewPrivileges'] ?? false,
      ...(cfg.process?.['rlimits'] ? { rlimits: cfg.process['rlimits'] } : {}),
    };
    await fsp.writeFile(join(dir, 'process.json'), JSON.stringify(processSpec), { mode: 0o600 }); // the exec's environment
    const name = this.rt(id);
    const attach = !o.detach;
    const args = [
      '--api-version', '1', '-c', id, '-u', short(execId), '-n', id, '-r', this.bin(name), '-b', dir,
      '-p', join(dir, 'pid'), '-l', `k8s-file:${join(dir, 'log')}`, '--exit-dir', join(dir, 'exit'), '--socket-dir-path', this.sockets,
      '--runtime-arg', `--root=${join(this.runDir, name)}`, '--exec', '--exec-process-spec', join(dir, 'process.json'), '--log-level', 'error', '--no-sync-log',
    ];
    if (o.tty) args.push('-t');
    if (o.openStdin) args.push('-i');
    if (attach) args.push('--exec-attach');
    const h = startConmon(this.info.conmon.path, args, { attach });
    let session: AttachSession | null = null;
    if (attach && h.attachPipe && h.startPipe) {
      h.startPipe.write('0'); // conmon waits for a first start message before anything else
      const ready = await h.attachPipe.next();
      if (ready.data < 0) throw runtimeError(ready.message ?? 'exec attach failed', 'exec');
      session = await connectAttach(join(this.sockets, short(execId), 'attach'), { stdin: o.openStdin });
      h.startPipe.write('0'); // and a second one, once we are attached, to run the process
    }
    const started = await h.sync.next().catch(async (e: unknown) => {
      await new Promise((r) => setTimeout(r, 50)); // conmon's stderr can trail its sync pipe
      return { data: -1, message: h.stderr().trim() || errorMessage(e) };
    });
    if (started.data < 0) {
      session?.close();
      await fsp.rm(dir, { recursive: true, force: true });
      throw runtimeError(started.message ?? h.stderr(), 'exec');
    }
    const exitFile = join(dir, 'exit', id);
    const wait = async (): Promise<number> => {
      const m = await h.sync.next(24 * 3600_000).catch(() => null);
      let code = m ? m.data : NaN;
      for (let i = 0; !Number.isFinite(code) && i < 50; i++) {
        code = Number((await fsp.readFile(exitFile, 'utf8').catch(() => '')).trim() || NaN);
        if (!Number.isFinite(code)) await new Promise((r) => setTimeout(r, 100));
      }
      setTimeout(() => void fsp.rm(dir, { recursive: true, force: true }), 1000).unref();
      await fsp.rm(join(this.sockets, short(execId)), { force: true });
      return Number.isFinite(code) ? code : 126;
    };
    const done = wait();
    return {
      pid: started.data,
      attach: session,
      logPath: join(dir, 'log'),
      wait: () => done,
      resize: async (hh, ww) => this.resizeVia(dir, hh, ww),
    };
  }

  async update(id: string, r: Resources): Promise<void> {
    const res = resourcesJson(r);
    const file = join(this.ctrs, id, 'update.json');
    await fsp.writeFile(file, JSON.stringify(res), { mode: 0o600 });
    try {
      await this.cli(id, ['update', '--resources', file, id]);
    } catch (e) {
      throw invalidArgument(`Cannot update container ${id}: ${((e as { stderr?: string }).stderr || errorMessage(e)).trim()}`);
    }
  }

  stats(id: string): Promise<CgroupStats> {
    return cgroupStats(this.info.cgroupVersion, `/berth/${id}`);
  }

  pids(id: string): Promise<number[]> {
    return cgroupPids(this.info.cgroupVersion, `/berth/${id}`);
  }
}

export function logRuntimeInfo(info: HostInfo): void {
  log.info('runtime', { default: info.defaultRuntime, cgroup: info.cgroupVersion, repair: info.cgroupRepair });
}
