/**
 * The runtime's CRIU-backed operations: the capability probe (criu.ts) and its verdict in the host
 * info, checkpoints and pre-dumps through runc or crun, post-copy's lazy checkpoint and
 * lazy-pages daemon. Each runs under the daemon's checkpoint deadline and, when it is cut short,
 * gives the container back its processes (criu.ts `rescue`). ConmonRuntime (oci.ts) owns the
 * runtimes and delegates here; a restore itself is a conmon create (oci.ts) that asks `ready`.
 */
import { promises as fsp } from 'node:fs';
import { dirname, join } from 'node:path';
import { errorMessage, invalidArgument, unavailable } from '../base/errors.js';
import { log } from '../base/log.js';
import type { RuntimeName } from './types.js';
import type { RunDir } from './core.js';
import { runtimeError } from './errors.js';
import { lazyCheckpoint, lazyPagesDaemon } from './lazy-pages.js';
import { CriuTimeout, criuLogErrors, notCapable, probeCriu, rescue, runGroup } from './criu.js';

export interface CheckpointOptions {
  imagePath: string;
  workPath: string;
  leaveRunning: boolean;
  tcpEstablished: boolean;
  preDump?: boolean;
  parentPath?: string;
  initPid: number;
  signal?: AbortSignal;
}

export interface LazyCheckpointOptions {
  imagePath: string;
  workPath: string;
  tcpEstablished: boolean;
  pageServer: string;
  initPid: number;
}

/** What the checkpointer needs of the runtime that owns it (core.ts `RunDir`). */
export type RuntimeAccess = Pick<RunDir, 'info' | 'env' | 'clock' | 'bin' | 'rt' | 'cli' | 'stateRoot'>;

/** Kills a conmon and what it runs (its session: the runtime, CRIU), by the pid started and the one it daemonized to. */
export async function endConmon(startedPid: number, cdir: string): Promise<void> {
  const daemonized = Number(await fsp.readFile(join(cdir, 'conmon.pid'), 'utf8').catch(() => '0'));
  for (const pid of [startedPid, daemonized]) {
    if (pid <= 0) continue;
    for (const target of [-pid, pid]) {
      try {
        process.kill(target, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
  }
}

export class Checkpointer {
  /**
   * Checkpoints in progress: a dump ends the container's process, and its exit handling must not
   * delete the runtime's state under the runtime still finishing the checkpoint (crun removes its
   * state dir itself then and fails when it is gone): `delete` waits for them.
   */
  private readonly inProgress = new Map<string, Promise<unknown>>();

  /** The CRIU probe's verdict (criu.ts): checkpoint operations wait for it. */
  private probed: Promise<void> = Promise.resolve();

  constructor(
    private readonly r: RuntimeAccess,
    readonly deadlineMs: number,
  ) {}

  /** Starts the probe in the background (at daemon start). */
  startProbe(): void {
    this.probed = this.probe();
  }

  /** The directory of berth's CRIU ('' without one): first in PATH for crun's libcriu. */
  get criuDir(): string {
    return this.r.info.checkpoint.criuPath ? dirname(this.r.info.checkpoint.criuPath) : '';
  }

  /** Settles when no checkpoint of container `id` is in progress (the runtime's delete waits for it). */
  async settled(id: string): Promise<void> {
    await this.inProgress.get(id);
  }

  /** Runs the CRIU probe in the background and records its verdict in the host info. */
  private async probe(): Promise<void> {
    const cp = this.r.info.checkpoint;
    if (!cp.criuPath || !cp.capable.length) {
      cp.probe = 'failed';
      if (cp.criuPath) cp.reason = 'no runtime here is built with CRIU';
      return;
    }
    const r = await probeCriu(cp.criuPath, this.env, Math.min(this.deadlineMs, 30_000), this.r.clock);
    cp.criu = r.version;
    cp.probe = r.ok ? 'ok' : 'failed';
    cp.runtimes = r.ok ? [...cp.capable] : [];
    cp.reason = r.ok
      ? ''
      : `CRIU${cp.criu ? ` ${cp.criu}` : ''} cannot checkpoint on this kernel (${this.r.info.kernelVersion}): ${r.reason}`;
    cp.preCopy = r.ok && r.memTrack;
    cp.preCopyReason = cp.preCopy
      ? ''
      : r.ok
        ? 'the kernel has no soft-dirty memory tracking (CONFIG_MEM_SOFT_DIRTY), which CRIU pre-dumps need'
        : cp.reason;
    if (!r.ok) {
      cp.postCopy = false;
      cp.postCopyReason = cp.reason;
      log.warn('checkpoint/restore is not possible here', { reason: cp.reason });
    }
  }

  /** The environment of a CRIU-backed runtime call: berth's CRIU first in PATH (crun's libcriu runs `criu` from PATH). */
  private get env(): NodeJS.ProcessEnv {
    const dir = this.criuDir;
    return { ...this.r.env, PATH: dir ? `${dir}:${this.r.env.PATH}` : this.r.env.PATH };
  }

  /**
   * Waits for the probe, then answers at once: Unavailable when CRIU cannot checkpoint here,
   * InvalidArgument when the container's runtime cannot.
   */
  async ready(rt: RuntimeName, verb: 'checkpoint' | 'restore'): Promise<void> {
    await this.probed;
    const cp = this.r.info.checkpoint;
    if (cp.probe !== 'ok') throw notCapable(cp.reason);
    if (!cp.runtimes.includes(rt))
      throw invalidArgument(
        `cannot ${verb}: the container runs under ${rt}, which is built without CRIU here; use --runtime ${cp.runtimes[0] ?? 'runc'}`,
      );
  }

  /**
   * CRIU checkpoint through the runtime into `imagePath` (CRIU's log in `workPath`); the process
   * stops unless `leaveRunning`. Under the deadline: when it passes or `signal` aborts, the
   * runtime and CRIU are killed and the container's processes given back (thawed, resumed); the
   * error names the stage and the log. `initPid` is the container's init (what to rescue).
   */
  async checkpoint(id: string, o: CheckpointOptions): Promise<void> {
    const rt = this.r.rt(id);
    await this.ready(rt, 'checkpoint');
    const stage = o.preDump ? 'pre-dump' : 'dump';
    const args = [
      `--root=${this.r.stateRoot(rt)}`,
      ...(rt === 'runc' ? [`--criu=${this.r.info.checkpoint.criuPath}`] : []),
      'checkpoint',
      '--image-path',
      o.imagePath,
      '--work-path',
      o.workPath,
    ];
    if (o.leaveRunning) args.push('--leave-running');
    if (o.tcpEstablished) args.push('--tcp-established');
    if (o.preDump) args.push('--pre-dump');
    if (o.parentPath) args.push('--parent-path', o.parentPath);
    const logFile = join(o.workPath, 'dump.log'); // runc's and crun's name for dumps and pre-dumps
    let r;
    const running = runGroup(this.r.bin(rt), [...args, id], this.env, {
      deadlineMs: this.deadlineMs,
      signal: o.signal,
      what: `checkpoint (${stage})`,
    });
    this.inProgress.set(
      id,
      running.catch(() => undefined),
    );
    try {
      r = await running;
    } catch (e) {
      const alive = await rescue(o.initPid, this.r.info.cgroupVersion, this.r.clock);
      if (alive && rt === 'runc') await this.r.cli(id, ['resume', id]).catch(() => undefined); // runc's view of a thawed cgroup
      const what =
        e instanceof CriuTimeout
          ? `checkpoint (${stage}) did not finish in ${this.deadlineMs / 1000} s`
          : `checkpoint (${stage}): ${errorMessage(e)}`;
      throw unavailable(`${what}: CRIU was ended${alive ? ' and the container goes on' : ''}; CRIU's log: ${logFile}`);
    } finally {
      this.inProgress.delete(id);
    }
    if (r.code !== 0) {
      await rescue(o.initPid, this.r.info.cgroupVersion, this.r.clock);
      const tail = await criuLogErrors(logFile);
      throw runtimeError(
        `checkpoint (${stage}) failed: ${r.stderr.trim()}${tail ? ` (criu: ${tail})` : ''}; CRIU's log: ${logFile}`,
      );
    }
  }

  async checkpointLazy(
    id: string,
    o: LazyCheckpointOptions,
  ): Promise<{ served: Promise<void>; cancel: () => Promise<void> }> {
    const rt = this.r.rt(id);
    await this.ready(rt, 'checkpoint');
    if (rt !== 'runc')
      throw invalidArgument(`post-copy checkpoints need runc (crun has no lazy pages); the container runs under ${rt}`);
    const { initPid, ...rest } = o;
    try {
      return await lazyCheckpoint({
        runtime: this.r.bin(rt),
        root: this.r.stateRoot(rt),
        criu: this.r.info.checkpoint.criuPath,
        env: this.r.env,
        id,
        deadlineMs: this.deadlineMs,
        ...rest,
      });
    } catch (e) {
      await rescue(initPid, this.r.info.cgroupVersion, this.r.clock); // its group was killed: the container goes on
      throw e;
    }
  }

  lazyPages(o: {
    imagePath: string;
    workPath: string;
    pageServer: string;
  }): Promise<{ done: Promise<void>; cancel: () => void }> {
    return lazyPagesDaemon({ criu: this.r.info.checkpoint.criuPath, env: this.r.env, ...o });
  }
}
