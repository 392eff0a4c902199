/**
 * The Runtime: conmon + crun/runc. It only executes and holds no state of its own beyond files
 * under its run dir (core.ts has the layout), so a restarted daemon reconnects by path. This class
 * is the `Runtime` the engine holds; each verb lives in the file of its concern:
 *   task.ts        create (and restore), start, delete, resize
 *   exec.ts        exec specs and conmon's exec
 *   run.ts         the build runner (`<runtime> run` to completion)
 *   checkpoint.ts  CRIU-backed verbs (probe, dumps, post-copy)
 *   exits.ts       exit files and conmon's pid file
 *   cgroups.ts     stats, pids, cgroup clean-up
 *   pin.ts         pinning the runtimes' binaries read-only
 */
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { type Clock, systemClock } from '../base/clock.js';
import { conflict, invalidArgument } from '../base/errors.js';
import { isObject } from '../base/json.js';
import { log } from '../base/log.js';
import type {
  AttachSession,
  CgroupStats,
  CreateOptions,
  ExecHandle,
  ExecOptions,
  HostInfo,
  Resources,
  Runtime,
  RuntimeName,
  RuntimeStatus,
  SpecInput,
  SpecArg,
} from './types.js';
import { checkUnified, MASKED_PATHS, resourcesJson } from './spec.js';
import { connectAttach } from './attach.js';
import { cgroupOomKills, cgroupPids, cgroupStats, makeCgroupSkel, pruneEmptyCgroups } from './cgroups.js';
import { Checkpointer, type CheckpointOptions, type LazyCheckpointOptions } from './checkpoint.js';
import { cliMessage, RunDir, short } from './core.js';
import { execIn } from './exec.js';
import { conmonAlive, readExitFile, watchExitDir } from './exits.js';
import { pinBinary } from './pin.js';
import { runToCompletion, type RunOptions } from './run.js';
import { createTask, deleteTask, reopenLogVia, resizeVia, type RestoreFrom, startTask } from './task.js';

export class ConmonRuntime implements Runtime {
  private readonly d: RunDir;
  /** CRIU-backed operations (checkpoint.ts): the probe, dumps, post-copy, and the deadline of each. */
  private readonly cr: Checkpointer;

  /**
   * `checkpointDeadlineMs`: how long any one CRIU-backed operation (dump, pre-dump, restore, the
   * start of a page server or lazy-pages daemon) may take before CRIU is ended and the container
   * given back its processes.
   */
  constructor(
    runDir: string,
    private readonly info: HostInfo,
    checkpointDeadlineMs = 120_000,
    clock: Clock = systemClock,
  ) {
    this.d = new RunDir(runDir, info, clock);
    this.cr = new Checkpointer(this.d, checkpointDeadlineMs);
  }

  async init(): Promise<void> {
    const { d } = this;
    const dirs = [d.exits, d.sockets, d.ctrs, d.execs, join(d.root, 'bin'), d.stateRoot('crun'), d.stateRoot('runc')];
    for (const dir of dirs) await fsp.mkdir(dir, { recursive: true });
    for (const [name, rt] of Object.entries(this.info.runtimes) as Array<[RuntimeName, { path: string }]>)
      d.bins.set(name, pinBinary(rt.path, join(d.root, 'bin', name)));
    this.info.maskDir = await makeMaskDir(join(d.root, 'masked'));
    if (this.info.cgroupVersion === 1) this.info.cgroupSkel = makeCgroupSkel(join(d.root, 'cgroup'));
    this.cr.startProbe();
    if (this.info.checkpoint.capable.length) {
      // CRIU at info level, not runc's debug level: at debug CRIU logs a line per page range (megabytes
      // for a large dump, written while the container is frozen); errors and the page server's
      // "Starting ... server on port" (lazy-pages.ts waits for it) are info or above
      const file = join(d.root, 'criu.conf');
      await fsp.writeFile(file, '# written by berthd: CRIU settings for runc checkpoints and restores\nverbosity=3\n');
      this.info.checkpoint.configFile = file;
    }
  }

  host(): HostInfo {
    return this.info;
  }

  async pruneCgroups(keep?: (id: string) => boolean): Promise<number> {
    const pruned = await pruneEmptyCgroups(this.info.cgroupVersion, '/berth', keep);
    if (pruned) log.info('removed cgroups left by exited containers', { count: pruned });
    return pruned;
  }

  create(
    o: CreateOptions,
    spec: SpecArg,
    restore?: RestoreFrom,
  ): Promise<{ pid: number; conmonPid: number }> {
    return createTask(this.d, this.cr, o, spec, restore);
  }

  runToCompletion(o: RunOptions, spec: SpecInput): Promise<number> {
    return runToCompletion(this.d, o, spec);
  }

  checkpoint(id: string, o: CheckpointOptions): Promise<void> {
    return this.cr.checkpoint(id, o);
  }

  checkpointLazy(
    id: string,
    o: LazyCheckpointOptions,
  ): Promise<{ served: Promise<void>; cancel: () => Promise<void> }> {
    return this.cr.checkpointLazy(id, o);
  }

  lazyPages(o: {
    imagePath: string;
    workPath: string;
    pageServer: string;
  }): Promise<{ done: Promise<void>; cancel: () => void }> {
    return this.cr.lazyPages(o);
  }

  start(id: string): Promise<void> {
    return startTask(this.d, id);
  }

  async kill(id: string, signal: number, all = false): Promise<void> {
    try {
      await this.d.cli(id, ['kill', ...(all ? ['--all'] : []), id, String(signal)]);
    } catch (e) {
      throw conflict(`cannot kill container ${id}: ${cliMessage(e)}`);
    }
  }

  async pause(id: string): Promise<void> {
    await this.d.cli(id, ['pause', id]).catch((e: unknown) => {
      throw conflict(`cannot pause container ${id}: ${cliMessage(e)}`);
    });
  }

  async resume(id: string): Promise<void> {
    await this.d.cli(id, ['resume', id]).catch((e: unknown) => {
      throw conflict(`cannot unpause container ${id}: ${cliMessage(e)}`);
    });
  }

  async delete(id: string): Promise<void> {
    await this.cr.settled(id); // a checkpoint still finishing keeps the runtime's state until it is done
    await deleteTask(this.d, id);
  }

  async state(id: string): Promise<{ status: RuntimeStatus; pid: number } | null> {
    try {
      const { stdout } = await this.d.cli(id, ['state', id]);
      const v: unknown = JSON.parse(stdout);
      if (!isObject(v) || typeof v['status'] !== 'string') return null;
      return { status: v['status'] as RuntimeStatus, pid: typeof v['pid'] === 'number' ? v['pid'] : 0 };
    } catch {
      return null;
    }
  }

  exitCode(id: string): Promise<{ code: number; at: Date } | null> {
    return readExitFile(join(this.d.exits, id));
  }

  watchExits(cb: (id: string) => void): void {
    watchExitDir(this.d.exits, cb, this.d.clock);
  }

  monitorAlive(id: string): Promise<boolean> {
    return conmonAlive(join(this.d.ctrs, id, 'conmon.pid'));
  }

  attach(id: string, opts: { stdin: boolean }): Promise<AttachSession> {
    return connectAttach(join(this.d.sockets, short(id), 'attach'), opts);
  }

  async resize(id: string, h: number, w: number): Promise<void> {
    const link = join(this.d.sockets, short(id));
    resizeVia(await fsp.realpath(link).catch(() => link), h, w);
  }

  async reopenLog(id: string): Promise<boolean> {
    const link = join(this.d.sockets, short(id));
    return reopenLogVia(await fsp.realpath(link).catch(() => link));
  }

  exec(id: string, o: ExecOptions): Promise<ExecHandle> {
    return execIn(this.d, id, o);
  }

  async update(id: string, r: Resources): Promise<void> {
    checkUnified(r, this.info.cgroupVersion);
    const file = join(this.d.ctrs, id, 'update.json');
    await fsp.writeFile(file, JSON.stringify(resourcesJson(r)), { mode: 0o600 });
    try {
      await this.d.cli(id, ['update', '--resources', file, id]);
    } catch (e) {
      throw invalidArgument(`Cannot update container ${id}: ${cliMessage(e)}`);
    }
  }

  stats(id: string): Promise<CgroupStats> {
    return cgroupStats(this.info.cgroupVersion, this.d.cgroupOf(id));
  }

  pids(id: string): Promise<number[]> {
    return cgroupPids(this.info.cgroupVersion, this.d.cgroupOf(id));
  }

  oomKills(id: string): Promise<number> {
    return cgroupOomKills(this.info.cgroupVersion, this.d.cgroupOf(id));
  }
}

export function logRuntimeInfo(info: HostInfo): void {
  log.info('runtime', { default: info.defaultRuntime, cgroup: info.cgroupVersion, repair: info.cgroupRepair });
}

/**
 * The empty directory bound over the masked directories, made (0555, empty) under the runtime's
 * private root; and which masked paths are directories on this kernel. Undefined when it is not an
 * empty directory of ours (the runtime then masks them with a tmpfs each, as before).
 */
export async function makeMaskDir(source: string): Promise<{ source: string; paths: string[] } | undefined> {
  await fsp.mkdir(source, { recursive: true, mode: 0o555 });
  const st = await fsp.lstat(source);
  if (!st.isDirectory() || (await fsp.readdir(source)).length) {
    log.warn('the masked directories get a tmpfs each: not an empty directory', { path: source });
    return undefined;
  }
  await fsp.chmod(source, 0o555);
  const isDir = (p: string) =>
    fsp.stat(p).then(
      (s) => s.isDirectory(),
      () => false,
    );
  const paths = [];
  for (const p of MASKED_PATHS) if (await isDir(p)) paths.push(p);
  return { source, paths };
}
