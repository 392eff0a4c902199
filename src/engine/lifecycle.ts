/**
 * Lifecycle verbs on containers: start, stop, kill, pause/unpause, restart; exit handling, the
 * restart policy (restart.ts) and attach before start. Each verb asks the status table first;
 * the start path itself is start.ts.
 */
import { conflict, errorMessage, internal } from '../base/errors.js';
import { log } from '../base/log.js';
import { dateOf, type ClockTimer } from '../base/clock.js';
import type { AttachSession } from '../runtime/types.js';
import type { HostConfig } from '../spec/engine-api.js';
import type { ContainerRecord } from './record.js';
import { can, ensure, hasTask, isActive, refusal } from './state.js';
import { RestartManager, shouldRestart } from './restart.js';
import { parseSignal } from './config.js';
import { AttachBroker, startTask, validateSpec, type LifecycleDeps, type Restore } from './start.js';
import { actorOf } from './actor.js';

export type { ContainerHost, LifecycleDeps, Restore } from './start.js';

/** How long a SIGKILL may take to show as an exit before the exit is recorded without conmon. */
export const KILL_WAIT_MS = 10_000;

export class Lifecycle {
  private readonly exitListeners = new Map<string, Array<() => void>>();
  private readonly restarts: RestartManager;
  private readonly attachBroker: AttachBroker;
  private readonly handlingExit = new Map<string, Promise<void>>();
  /** a signal being sent and its `kill` event: the exit it causes is handled after it (below) */
  private readonly signalling = new Map<string, Promise<unknown>>();
  /** Starts under way (API or restart manager): stop and remove wait for them to settle. */
  private readonly starting = new Map<string, Promise<boolean>>();
  /**
   * Runtime deletions of exited containers, made after their waiters were told (off the path of
   * `wait`): a start of the container, and its removal, wait for its deletion first.
   */
  private readonly deleting = new Map<string, Promise<void>>();

  constructor(private readonly d: LifecycleDeps) {
    this.restarts = new RestartManager(d.clock);
    this.attachBroker = new AttachBroker(d.runtime);
  }

  /** Settles once the runtime's state of container `id`, exited, is deleted (at once when nothing is being deleted). */
  runtimeDeleted(id: string): Promise<void> {
    return this.deleting.get(id) ?? Promise.resolve();
  }

  /** Builds the OCI spec with placeholder rootfs/user to reject bad caps, ulimits, resources at create time. */
  validateSpec(hostConfig: HostConfig): void {
    validateSpec(this.d, hostConfig);
  }

  /**
   * Attach to the container's stdio. A running container is attached now; a created or exited one
   * on its next start, after the runtime created it and before its process runs (no output lost).
   */
  attach(rec: ContainerRecord, opts: { stdin: boolean }): { session: Promise<AttachSession>; cancel: () => void } {
    return this.attachBroker.attach(rec, opts);
  }

  /** Resolves true with `p`, false once `ms` passed first (on the injected clock). */
  private within(p: Promise<unknown>, ms: number): Promise<boolean> {
    let timer: ClockTimer | undefined;
    const late = new Promise<boolean>((resolve) => (timer = this.d.clock.setTimeout(() => resolve(false), ms)));
    return Promise.race([p.then(() => true), late]).finally(() => timer?.cancel());
  }

  /** Resolves when the container next exits (or at once if it is not active). */
  exitPromise(id: string): Promise<void> {
    const rec = this.d.store.find(id);
    if (!rec || !hasTask(rec.state.status)) return Promise.resolve();
    return new Promise((resolve) => {
      const list = this.exitListeners.get(id) ?? [];
      list.push(resolve);
      this.exitListeners.set(id, list);
    });
  }

  /** POST /containers/{id}/start (`restore`: from a checkpoint). Returns false when it was already running (HTTP 304). */
  start(rec: ContainerRecord, restore?: Restore): Promise<boolean> {
    return this.startFrom(rec, restore, false);
  }

  /** `fromRestart`: the restart manager's start, from `restarting` (which stays the status until it runs). */
  private startFrom(rec: ContainerRecord, restore: Restore | undefined, fromRestart: boolean): Promise<boolean> {
    const inflight = this.starting.get(rec.id);
    if (inflight) return inflight.then(() => false);
    const p = this.doStart(rec, restore, fromRestart).finally(() => this.starting.delete(rec.id));
    this.starting.set(rec.id, p);
    // Like dockerd: a --rm container that fails to start is removed (`docker run --rm` waits for it).
    return p.catch(async (e: unknown) => {
      if (rec.hostConfig.AutoRemove && !this.d.containers.isRemoving(rec.id))
        await this.d.containers
          .remove(rec.id, { force: true, volumes: true })
          .catch((err: unknown) => log.warn('auto-remove failed', { id: rec.id, err: errorMessage(err) }));
      throw e;
    });
  }

  /** `p` (a signal's runtime call and its event), which an exit of `id` seen meanwhile waits for. */
  private signalled<T>(id: string, p: Promise<T>): Promise<T> {
    const held = p.catch(() => undefined);
    this.signalling.set(id, held);
    void held.then(() => {
      if (this.signalling.get(id) === held) this.signalling.delete(id);
    });
    return p;
  }

  /** Resolves once no start of the container is under way. */
  async settled(id: string): Promise<void> {
    await this.starting.get(id)?.catch(() => undefined);
  }

  private async doStart(rec: ContainerRecord, restore: Restore | undefined, fromRestart: boolean): Promise<boolean> {
    if (rec.state.status === 'running') return false; // Docker's 304, before the table's refusal
    if (!fromRestart || rec.state.status !== 'restarting') ensure(rec, 'start');
    const { d } = this;
    await this.runtimeDeleted(rec.id); // the last run's state, going since it exited
    const created = await startTask(d, this.attachBroker, rec, restore);
    rec.state = {
      ...rec.state,
      status: 'running',
      pid: created.pid,
      conmonPid: created.conmonPid,
      error: '',
      exitCode: 0,
      startedAt: dateOf(d.clock).toISOString(),
      oomKilled: false,
    };
    rec.manuallyStopped = false;
    // a start that is not the restart manager's begins the count again (dockerd's
    // ResetRestartManager(true): on-failure:2 exhausted, `docker start` gives it 2 more)
    if (!fromRestart) {
      rec.restartCount = 0;
      this.restarts.reset(rec.id);
    }
    d.store.save(rec);
    d.events.emit('container', 'start', rec.id, actorOf(rec));
    d.health.start(rec);
    return true;
  }

  /** Volumes the exited container used: unmounted (local with options, plugins) unless another running container uses them. */
  private async releaseVolumes(rec: ContainerRecord): Promise<void> {
    for (const m of rec.mounts ?? []) {
      if (m.Type !== 'volume' || !m.Name) continue;
      const stillUsed = this.d.containers
        .volumeUsers(m.Name)
        .some((id) => id !== rec.id && this.d.store.find(id)?.state.status === 'running');
      await this.d.volumes
        .unmountFor(m.Name, rec.id, stillUsed)
        .catch((e: unknown) => log.warn('volume unmount failed', { name: m.Name, err: errorMessage(e) }));
    }
  }

  /** POST /containers/{id}/stop. Returns false when it was not running (HTTP 304). */
  async stop(rec: ContainerRecord, timeoutSec?: number, signal?: string): Promise<boolean> {
    this.cancelRestart(rec.id);
    await this.settled(rec.id);
    if (rec.state.status === 'restarting') {
      rec.manuallyStopped = true;
      rec.state.status = 'exited';
      this.d.store.save(rec);
      this.d.waiters.exited(rec.id, rec.state.exitCode);
      return true;
    }
    if (!isActive(rec.state.status)) return false;
    rec.manuallyStopped = true;
    this.d.store.save(rec);
    const sig = parseSignal(signal || rec.config.StopSignal || 'SIGTERM');
    const t = timeoutSec ?? rec.config.StopTimeout ?? 10;
    const exited = this.exitPromise(rec.id);
    await this.signal(rec, sig);
    const inTime = t < 0 ? await exited.then(() => true) : await this.within(exited, t * 1000);
    if (!inTime) await this.killAndWait(rec);
    this.d.events.emit('container', 'stop', rec.id, actorOf(rec));
    return true;
  }

  /**
   * A stop's signal, with dockerd's events: `kill` {signal}, and for a paused container the
   * `unpause` that lets it act on it (20.10: kill 15, unpause, kill 9, die, stop).
   */
  private async signal(rec: ContainerRecord, sig: number): Promise<void> {
    try {
      await this.signalled(
        rec.id,
        this.d.runtime
          .kill(rec.id, sig)
          .then(() => this.d.events.emit('container', 'kill', rec.id, actorOf(rec, { signal: String(sig) }))),
      );
      if (rec.state.status === 'paused') {
        await this.d.runtime.resume(rec.id);
        rec.state.status = 'running';
        this.d.store.save(rec);
        this.d.events.emit('container', 'unpause', rec.id, actorOf(rec));
      }
    } catch (e) {
      log.debug('signal failed', { id: rec.id, err: errorMessage(e) });
    }
  }

  /** SIGKILL to every process and wait for conmon to record the exit. */
  async killAndWait(rec: ContainerRecord): Promise<void> {
    this.cancelRestart(rec.id);
    await this.settled(rec.id);
    if (!isActive(rec.state.status)) return;
    if (rec.state.status === 'restarting') {
      this.cancelRestart(rec.id);
      rec.state.status = 'exited';
      return;
    }
    const exited = this.exitPromise(rec.id);
    await this.signalled(
      rec.id,
      this.d.runtime.kill(rec.id, 9, true).then(
        () => this.d.events.emit('container', 'kill', rec.id, actorOf(rec, { signal: '9' })), // dockerd's, for rm -f too
        () => undefined,
      ),
    );
    if (rec.state.status === 'paused') await this.d.runtime.resume(rec.id).catch(() => undefined);
    const ok = await this.within(exited, KILL_WAIT_MS);
    if (!ok) {
      // conmon lost: record the exit ourselves so the container does not stay "running" forever.
      await this.onExit(rec.id, 137);
    }
  }

  /** POST /containers/{id}/kill. SIGKILL returns once the container exited (as dockerd's: clients remove it next). */
  /**
   * As dockerd's: a kill through the API marks the container manually stopped (its restart
   * policy does not bring it back: 20.10 left a `--restart=always` container exited 137 after
   * `docker kill`), and a kill of a restarting container cancels the restart (204, no signal,
   * no event; it stays exited).
   */
  async kill(rec: ContainerRecord, signal: string | undefined): Promise<void> {
    const sig = parseSignal(signal || 'SIGKILL');
    ensure(rec, 'kill');
    rec.manuallyStopped = true;
    this.d.store.save(rec);
    if (rec.state.status === 'restarting') {
      this.cancelRestart(rec.id);
      await this.settled(rec.id); // the restart's start, if it is under way
      if (rec.state.status === 'restarting') {
        rec.state.status = 'exited';
        this.d.store.save(rec);
        this.d.waiters.exited(rec.id, rec.state.exitCode);
        return;
      }
      rec.manuallyStopped = true; // the start cleared it: the process it started is killed below
      this.d.store.save(rec);
    }
    const exited = sig === 9 ? this.exitPromise(rec.id) : null;
    const sent = async () => {
      await this.d.runtime.kill(rec.id, sig).catch(async (e: unknown) => {
        // a process that ended before its exit was handled: dockerd ignores "no such process" (its
        // exit is on the way) and answers 204
        const st = await this.d.runtime.state(rec.id).catch(() => null);
        if (st && st.status !== 'stopped') throw e;
        log.debug('kill: the process is gone already', { id: rec.id, err: errorMessage(e) });
      });
      if (sig === 9 && rec.state.status === 'paused') await this.d.runtime.resume(rec.id).catch(() => undefined);
      this.d.events.emit('container', 'kill', rec.id, actorOf(rec, { signal: String(sig) }));
    };
    await this.signalled(rec.id, sent());
    if (exited) await this.within(exited, KILL_WAIT_MS);
  }

  async pause(rec: ContainerRecord): Promise<void> {
    ensure(rec, 'pause');
    await this.d.runtime.pause(rec.id);
    rec.state.status = 'paused';
    this.d.store.save(rec);
    this.d.events.emit('container', 'pause', rec.id, actorOf(rec));
  }

  async unpause(rec: ContainerRecord): Promise<void> {
    // dockerd 20.10 answers an unpause of a container that is not paused with a 500 (an untyped
    // error), {"message":"Container <id> is not paused"}
    if (!can(rec.state.status, 'unpause')) throw internal(refusal(rec.state.status, 'unpause', rec.name, rec.id));
    await this.d.runtime.resume(rec.id);
    rec.state.status = 'running';
    this.d.store.save(rec);
    this.d.events.emit('container', 'unpause', rec.id, actorOf(rec));
  }

  async restart(rec: ContainerRecord, timeoutSec?: number, signal?: string): Promise<void> {
    await this.stop(rec, timeoutSec, signal);
    await this.start(rec);
    this.d.events.emit('container', 'restart', rec.id, actorOf(rec));
  }

  /**
   * Records an exit that conmon wrote (or `forcedCode` when the monitor is gone), wakes waiters,
   * applies the restart policy or auto-removal. Safe to call more than once per exit: a call while
   * the exit is being handled resolves when that handling is done (live restore and the exit
   * watcher both report an exit that happened while the daemon was down, and restore must not let
   * a request through before the exit is recorded).
   */
  async onExit(id: string, forcedCode?: number): Promise<void> {
    // A short-lived process can exit before its start has recorded it as running.
    await this.settled(id);
    // dockerd's order, kill then die: the exit a signal caused can be seen (its exit file read)
    // before the runtime's `kill` call has returned
    await this.signalling.get(id);
    const inFlight = this.handlingExit.get(id);
    if (inFlight) return inFlight;
    const rec = this.d.store.find(id);
    if (!rec || !hasTask(rec.state.status)) return;
    const handling = this.handleExit(id, rec, forcedCode);
    this.handlingExit.set(id, handling);
    try {
      await handling;
    } finally {
      this.handlingExit.delete(id);
    }
  }

  private async handleExit(id: string, rec: ContainerRecord, forcedCode: number | undefined): Promise<void> {
    const ex =
      forcedCode === undefined ? await this.d.runtime.exitCode(id) : { code: forcedCode, at: dateOf(this.d.clock) };
    if (!ex) return;
    this.d.health.stop(id);
    log.debug('exit seen', { id, afterMs: this.d.clock.now() - ex.at.getTime() });
    const willRestart = shouldRestart({ ...rec, state: { ...rec.state, exitCode: ex.code } });
    const autoRemove = !willRestart && rec.hostConfig.AutoRemove && !this.d.containers.isRemoving(id);
    // State.OOMKilled: the OOM killer ended a process of it (the cgroup goes with the runtime's
    // delete). dockerd 20.10 said true for an init killed (137) and for an init that exited 0
    // after a child was killed, with one `oom` event.
    const oomKilled = (await this.d.runtime.oomKills(id).catch(() => 0)) > 0;
    await this.d.containers.unwire(rec, true);
    await this.releaseVolumes(rec);
    const ranMs = this.d.clock.now() - Date.parse(rec.state.startedAt);
    rec.state = {
      ...rec.state,
      status: willRestart ? 'restarting' : 'exited',
      pid: 0,
      conmonPid: 0,
      exitCode: ex.code,
      finishedAt: ex.at.toISOString(),
      oomKilled,
    };
    // dockerd counts the restart when it decides it (RestartCount++ with SetRestarting): inspect
    // during the back-off already shows it
    if (willRestart) rec.restartCount++;
    this.d.store.save(rec);
    // the runtime's state goes now, unless the container goes (its removal deletes it): as the
    // exit is told, not before (a start or removal of it waits for it: runtimeDeleted, set here
    // in the same turn as the save, so no request sees the exit without it). Not earlier: its
    // unlinks on the run dir's disk ran between the exit and the answer to `wait`.
    if (!autoRemove) {
      const del = this.d.runtime.delete(id).catch(() => undefined);
      this.deleting.set(id, del);
      void del.then(() => this.deleting.get(id) === del && this.deleting.delete(id));
    }
    if (oomKilled) this.d.events.emit('container', 'oom', id, actorOf(rec));
    this.d.events.emit('container', 'die', id, actorOf(rec, { exitCode: String(ex.code) }));
    for (const l of this.exitListeners.get(id) ?? []) l();
    this.exitListeners.delete(id);
    this.d.waiters.exited(id, ex.code);
    if (willRestart) this.scheduleRestart(rec, ranMs);
    else if (autoRemove)
      await this.d.containers
        .remove(id, { force: true, volumes: true })
        .catch((e: unknown) => log.warn('auto-remove failed', { id, err: errorMessage(e) }));
  }

  private scheduleRestart(rec: ContainerRecord, ranMs: number): void {
    this.restarts.schedule(rec.id, ranMs, () => {
      const cur = this.d.store.find(rec.id);
      if (!cur || cur.state.status !== 'restarting') return;
      // still `restarting` while it starts (dockerd: State.Restarting until it runs): a wait
      // begun now waits for the next exit, inspect never shows `exited` in between
      this.startFrom(cur, undefined, true).catch((e: unknown) => {
        log.warn('restart failed', { id: rec.id, err: errorMessage(e) });
        cur.state.status = 'exited';
        this.d.store.save(cur);
        this.d.waiters.exited(cur.id, cur.state.exitCode);
      });
    });
  }

  cancelRestart(id: string): void {
    this.restarts.cancel(id);
  }
}
