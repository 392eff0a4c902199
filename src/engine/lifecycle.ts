/**
 * Lifecycle verbs on containers: start, stop, kill, pause/unpause, restart; exit handling and
 * the restart manager (policies with back-off). Each verb asks the status table first.
 */
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { conflict, errorMessage, isBerthError, wrap } from '../base/errors.js';
import { log } from '../base/log.js';
import { dateOf, type Clock, type ClockTimer } from '../base/clock.js';
import type { AttachSession, CheckpointRuntime, RuntimeName, TaskRuntime } from '../runtime/types.js';
import type { HostConfig } from '../spec/engine-api.js';
import { buildSpec } from '../runtime/spec.js';
import { resolveUser } from '../runtime/user.js';
import { isCommandNotFound } from '../runtime/conmon.js';
import { ZERO_TIME, type ContainerRecord } from './record.js';
import { ensure, hasTask, isActive } from './state.js';
import { RestartManager, shouldRestart } from './restart.js';
import type { ContainerStore } from './store.js';
import type { EventBus } from './events.js';
import type { Waiters } from './waiters.js';
import type { HealthMonitor } from './health.js';
import type { NetworkManager } from '../network/manager.js';
import type { VolumeManager } from '../volume/manager.js';
import { parseSignal } from './config.js';
import { specInputOf } from './spec-input.js';
import { attachableOf, writeNetFiles } from './net.js';
import { linkEnv, linkHosts, resolveLinks } from './links.js';
import { netnsAdd, netnsDel } from '../network/host.js';

/** A start that restores a checkpoint: its CRIU images, and the addresses (network id -> IPv4) to keep. */
export interface Restore {
  imagePath: string;
  workPath: string;
  tcpEstablished: boolean;
  addresses: Record<string, string>;
  /** post-copy: the page server the memory pages come from */
  pageServer?: string;
}

interface PendingAttach {
  stdin: boolean;
  resolve: (s: AttachSession) => void;
  reject: (e: unknown) => void;
}

/** How long a SIGKILL may take to show as an exit before the exit is recorded without conmon. */
export const KILL_WAIT_MS = 10_000;

/** A container's files and wiring, as the engine keeps them (paths, rootfs mount, networking). */
export interface ContainerHost {
  containerDir(id: string): string;
  logPathOf(id: string): string;
  /** Mounts the rootfs if it is not; its path. */
  ensureMounted(rec: ContainerRecord): Promise<string>;
  /** config.json made 0600 before the runtime writes the environment into it. */
  privateBundle(id: string): Promise<void>;
  /** The network namespace berth makes for the container, or null. */
  namedNetns(rec: ContainerRecord): string | null;
  unwire(rec: ContainerRecord, processGone?: boolean): Promise<void>;
  /** Containers that mount volume `name`. */
  volumeUsers(name: string): string[];
  isRemoving(id: string): boolean;
  /** Forced removal (`--rm`, auto-remove after an exit). */
  remove(id: string, opts: { force: boolean; volumes?: boolean }): Promise<void>;
}

/** What the lifecycle needs; the engine fills it (engine.ts). */
export interface LifecycleDeps {
  clock: Clock;
  store: Pick<ContainerStore, 'find' | 'get' | 'save'>;
  /** the task role, and post-copy's lazy-pages daemon for a restore */
  runtime: TaskRuntime & Pick<CheckpointRuntime, 'lazyPages'>;
  events: Pick<EventBus, 'emit'>;
  waiters: Pick<Waiters, 'exited'>;
  health: Pick<HealthMonitor, 'start' | 'stop'>;
  networks: NetworkManager;
  volumes: Pick<VolumeManager, 'mountFor' | 'unmountFor'>;
  defaultRuntime: RuntimeName;
  containers: ContainerHost;
}

export class Lifecycle {
  private readonly exitListeners = new Map<string, Array<() => void>>();
  private readonly restarts: RestartManager;
  private readonly pendingAttach = new Map<string, PendingAttach[]>();
  private readonly handlingExit = new Set<string>();
  /** Starts under way (API or restart manager): stop and remove wait for them to settle. */
  private readonly starting = new Map<string, Promise<boolean>>();

  constructor(private readonly d: LifecycleDeps) {
    this.restarts = new RestartManager(d.clock);
  }

  /** Resolves true with `p`, false once `ms` passed first (on the injected clock). */
  private within(p: Promise<unknown>, ms: number): Promise<boolean> {
    let timer: ClockTimer | undefined;
    const late = new Promise<boolean>((resolve) => (timer = this.d.clock.setTimeout(() => resolve(false), ms)));
    return Promise.race([p.then(() => true), late]).finally(() => timer?.cancel());
  }

  /** Builds the OCI spec with placeholder rootfs/user to reject bad caps, ulimits, resources at create time. */
  validateSpec(hostConfig: HostConfig): void {
    const probe = {
      id: 'probe',
      name: 'probe',
      created: '',
      imageId: '',
      config: { Hostname: 'probe' },
      hostConfig,
      path: 'true',
      args: [],
      runtime: this.d.defaultRuntime,
      state: {
        status: 'created' as const,
        pid: 0,
        conmonPid: 0,
        exitCode: 0,
        error: '',
        oomKilled: false,
        startedAt: '',
        finishedAt: '',
      },
      restartCount: 0,
      manuallyStopped: false,
      execIds: [],
      mounts: [],
    } as unknown as ContainerRecord;
    const host = this.d.runtime.host();
    buildSpec(
      specInputOf(probe, { rootfs: '/', containerDir: '/', user: { uid: 0, gid: 0, additionalGids: [] }, host }),
      host,
    );
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

  /**
   * Attach to the container's stdio. A running container is attached now; a created or exited one
   * on its next start, after the runtime created it and before its process runs (no output lost).
   */
  attach(rec: ContainerRecord, opts: { stdin: boolean }): { session: Promise<AttachSession>; cancel: () => void } {
    if (rec.state.status === 'running' || rec.state.status === 'paused') {
      return { session: this.d.runtime.attach(rec.id, opts), cancel: () => undefined };
    }
    let entry: PendingAttach | undefined;
    const session = new Promise<AttachSession>((resolve, reject) => {
      entry = { stdin: opts.stdin, resolve, reject };
      const list = this.pendingAttach.get(rec.id) ?? [];
      list.push(entry);
      this.pendingAttach.set(rec.id, list);
    });
    const cancel = () => {
      const list = this.pendingAttach.get(rec.id);
      if (list && entry)
        this.pendingAttach.set(
          rec.id,
          list.filter((p) => p !== entry),
        );
    };
    return { session, cancel };
  }

  /** POST /containers/{id}/start (`restore`: from a checkpoint). Returns false when it was already running (HTTP 304). */
  start(rec: ContainerRecord, restore?: Restore): Promise<boolean> {
    const inflight = this.starting.get(rec.id);
    if (inflight) return inflight.then(() => false);
    const p = this.doStart(rec, restore).finally(() => this.starting.delete(rec.id));
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

  /** Resolves once no start of the container is under way. */
  async settled(id: string): Promise<void> {
    await this.starting.get(id)?.catch(() => undefined);
  }

  private async doStart(rec: ContainerRecord, restore?: Restore): Promise<boolean> {
    if (rec.state.status === 'running') return false; // Docker's 304, before the table's refusal
    ensure(rec, 'start');
    const { d } = this;
    const t0 = performance.now();
    // post-copy: CRIU's lazy-pages daemon (which fetches the pages from the page server for this
    // restore) starts at once, while the rootfs and the network are made ready: downtime saved
    const lazy = restore?.pageServer
      ? d.runtime.lazyPages({
          imagePath: restore.imagePath,
          workPath: restore.workPath,
          pageServer: restore.pageServer,
        })
      : null;
    lazy?.catch(() => undefined);
    const stopLazy = () =>
      lazy?.then(
        (l) => l.cancel(),
        () => undefined,
      );
    try {
      return await this.startPrepared(rec, restore, t0, lazy);
    } catch (e) {
      await stopLazy();
      throw e;
    }
  }

  private async startPrepared(
    rec: ContainerRecord,
    restore: Restore | undefined,
    t0: number,
    lazy: Promise<unknown> | null,
  ): Promise<boolean> {
    const { d } = this;
    // a container that can be checkpointed gets a namespace berth makes (CRIU then leaves the
    // network to berth, and a restore goes into a namespace wired beforehand); made while the
    // rootfs is mounted (two `ip` runs that need not wait for it)
    const named = this.d.containers.namedNetns(rec);
    const netnsMade = named
      ? (existsSync(`/run/netns/${named}`) ? netnsDel(named) : Promise.resolve()).then(() => netnsAdd(named))
      : null;
    netnsMade?.catch(() => undefined);
    // nothing of a failed start stays: the namespace goes once its making has settled
    const undoNetns = async () => {
      if (named) await netnsMade!.catch(() => undefined).then(() => netnsDel(named));
    };
    let rootfs: string;
    try {
      rootfs = await this.d.containers.ensureMounted(rec);
    } catch (e) {
      await undoNetns();
      throw e;
    }
    const tm = performance.now();
    const host = d.runtime.host();
    let spec: ReturnType<typeof specInputOf>;
    let links: ReturnType<typeof resolveLinks>;
    try {
      const user = await resolveUser(rootfs, rec.config.User ?? '', rec.hostConfig.GroupAdd ?? []);
      links = resolveLinks(d.networks, rec, (ref) => d.store.find(ref));
      // `--network container:<id>`: the other container's hostname too, as dockerd does
      const netOwner = rec.hostConfig.NetworkMode?.startsWith('container:')
        ? d.store.find(rec.hostConfig.NetworkMode.slice('container:'.length))
        : undefined;
      if (netOwner?.config.Hostname && rec.config.Hostname !== netOwner.config.Hostname) {
        rec.config = { ...rec.config, Hostname: netOwner.config.Hostname };
        await writeFile(join(this.d.containers.containerDir(rec.id), 'hostname'), `${netOwner.config.Hostname}\n`);
      }
      await netnsMade;
      const sources = new Map<string, string>();
      for (const m of rec.mounts ?? [])
        if (m.Type === 'volume' && m.Name) sources.set(m.Name, await d.volumes.mountFor(m.Name, rec.id));
      spec = specInputOf(rec, {
        rootfs,
        containerDir: this.d.containers.containerDir(rec.id),
        user,
        host,
        volumeSources: sources,
        extraEnv: linkEnv(rec.name, links),
        netns: named ? `/run/netns/${named}` : this.joinedNs(rec.hostConfig.NetworkMode, 'net', 'network namespace'),
        pidns: this.joinedNs(rec.hostConfig.PidMode, 'pid', 'PID namespace'),
        ipcns: this.joinedNs(rec.hostConfig.IpcMode, 'ipc', 'IPC namespace'),
      });
      // a restore keeps the addresses the checkpointed process had, when they are free
      const wiring = restore
        ? {
            ...attachableOf(rec),
            networks: (rec.networks ?? []).map(([id, req]): [string, typeof req] => [
              id,
              restore.addresses[id] && d.networks.addressFree(id, restore.addresses[id])
                ? { ...req, ipv4: restore.addresses[id] }
                : req,
            ]),
          }
        : attachableOf(rec);
      if (named && rec.networks?.length) await d.networks.attach(wiring, { name: named });
    } catch (e) {
      await undoNetns();
      throw e;
    }
    const ts = performance.now();
    // A container that ran before may have runtime state left (e.g. after a daemon crash).
    if (rec.state.startedAt !== ZERO_TIME) await d.runtime.delete(rec.id).catch(() => undefined);
    let created: { pid: number; conmonPid: number };
    try {
      await this.d.containers.privateBundle(rec.id); // config.json 0600 before the runtime writes the environment into it
      if (lazy) await lazy;
      created = await d.runtime.create(
        {
          id: rec.id,
          bundleDir: this.d.containers.containerDir(rec.id),
          runtime: rec.runtime,
          tty: rec.config.Tty ?? false,
          openStdin: rec.config.OpenStdin ?? false,
          stdinOnce: rec.config.StdinOnce ?? false,
          logPath: this.d.containers.logPathOf(rec.id),
        },
        spec,
        restore && {
          imagePath: restore.imagePath,
          workPath: restore.workPath,
          tcpEstablished: restore.tcpEstablished,
          ...(restore.pageServer ? { lazyPages: true } : {}),
        },
      );
    } catch (e) {
      if (named) await this.d.containers.unwire(rec); // wired before create: nothing of it stays
      const msg = errorMessage(e);
      rec.state.error = msg;
      rec.state.exitCode = isCommandNotFound(msg) ? 127 : /permission denied/i.test(msg) ? 126 : 128;
      if (rec.state.status !== 'created') rec.state.status = 'exited';
      d.store.save(rec);
      this.failPendingAttach(rec.id, e);
      d.events.emit('container', 'die', rec.id, {
        exitCode: String(rec.state.exitCode),
        image: rec.config.Image ?? '',
        name: rec.name,
      });
      throw isBerthError(e) ? e : wrap(e, 'failed to create task for container');
    }
    if (rec.networks?.length && !named) {
      try {
        await d.networks.attach(attachableOf(rec), { pid: created.pid });
      } catch (e) {
        await d.runtime.delete(rec.id).catch(() => undefined);
        rec.state.error = errorMessage(e);
        rec.state.exitCode = 128;
        if (rec.state.status !== 'created') rec.state.status = 'exited';
        d.store.save(rec);
        this.failPendingAttach(rec.id, e);
        throw e;
      }
    }
    await writeNetFiles(d.networks, rec, this.d.containers.containerDir(rec.id), linkHosts(links));
    const t1 = performance.now();
    const pending = this.pendingAttach.get(rec.id) ?? [];
    this.pendingAttach.delete(rec.id);
    await Promise.all(
      pending.map(async (p) => {
        try {
          p.resolve(await d.runtime.attach(rec.id, { stdin: p.stdin }));
        } catch (e) {
          p.reject(e);
        }
      }),
    );
    const t2 = performance.now();
    if (!restore) await d.runtime.start(rec.id); // a restored process runs already
    log.debug('started', {
      id: rec.id,
      mountMs: +(tm - t0).toFixed(1),
      specMs: +(ts - tm).toFixed(1),
      prepareAndCreateMs: +(t1 - t0).toFixed(1),
      attachMs: +(t2 - t1).toFixed(1),
      startMs: +(performance.now() - t2).toFixed(1),
    });
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
    d.store.save(rec);
    d.events.emit('container', 'start', rec.id, { image: rec.config.Image ?? '', name: rec.name });
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

  /** `--network|--pid|--ipc container:<id>`: the other container's namespace (it must run). */
  private joinedNs(mode: string | undefined, ns: 'net' | 'pid' | 'ipc', what: string): string | undefined {
    if (!mode?.startsWith('container:')) return undefined;
    const other = this.d.store.get(mode.slice('container:'.length));
    if (other.state.status !== 'running' || !other.state.pid)
      throw conflict(`cannot join ${what} of a non running container: ${other.name}`);
    return `/proc/${other.state.pid}/ns/${ns}`;
  }

  private failPendingAttach(id: string, e: unknown): void {
    for (const p of this.pendingAttach.get(id) ?? []) p.reject(e);
    this.pendingAttach.delete(id);
  }

  /** POST /containers/{id}/stop. Returns false when it was not running (HTTP 304). */
  async stop(rec: ContainerRecord, timeoutSec?: number, signal?: string): Promise<boolean> {
    this.cancelRestart(rec.id);
    await this.settled(rec.id);
    if (rec.state.status === 'restarting') {
      rec.manuallyStopped = true;
      rec.state.status = 'exited';
      this.d.store.save(rec);
      this.d.waiters.exited(rec.id, rec.state.exitCode, false);
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
    this.d.events.emit('container', 'stop', rec.id, { image: rec.config.Image ?? '', name: rec.name });
    return true;
  }

  private async signal(rec: ContainerRecord, sig: number): Promise<void> {
    try {
      await this.d.runtime.kill(rec.id, sig);
      if (rec.state.status === 'paused') await this.d.runtime.resume(rec.id);
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
    await this.d.runtime.kill(rec.id, 9, true).catch(() => undefined);
    if (rec.state.status === 'paused') await this.d.runtime.resume(rec.id).catch(() => undefined);
    const ok = await this.within(exited, KILL_WAIT_MS);
    if (!ok) {
      // conmon lost: record the exit ourselves so the container does not stay "running" forever.
      await this.onExit(rec.id, 137);
    }
  }

  /** POST /containers/{id}/kill. SIGKILL returns once the container exited (as dockerd's: clients remove it next). */
  async kill(rec: ContainerRecord, signal: string | undefined): Promise<void> {
    const sig = parseSignal(signal || 'SIGKILL');
    ensure(rec, 'kill');
    const exited = sig === 9 ? this.exitPromise(rec.id) : null;
    await this.d.runtime.kill(rec.id, sig);
    if (sig === 9 && rec.state.status === 'paused') await this.d.runtime.resume(rec.id).catch(() => undefined);
    this.d.events.emit('container', 'kill', rec.id, {
      image: rec.config.Image ?? '',
      name: rec.name,
      signal: String(sig),
    });
    if (exited) await this.within(exited, KILL_WAIT_MS);
  }

  async pause(rec: ContainerRecord): Promise<void> {
    ensure(rec, 'pause');
    await this.d.runtime.pause(rec.id);
    rec.state.status = 'paused';
    this.d.store.save(rec);
    this.d.events.emit('container', 'pause', rec.id, { image: rec.config.Image ?? '', name: rec.name });
  }

  async unpause(rec: ContainerRecord): Promise<void> {
    ensure(rec, 'unpause');
    await this.d.runtime.resume(rec.id);
    rec.state.status = 'running';
    this.d.store.save(rec);
    this.d.events.emit('container', 'unpause', rec.id, { image: rec.config.Image ?? '', name: rec.name });
  }

  async restart(rec: ContainerRecord, timeoutSec?: number, signal?: string): Promise<void> {
    await this.stop(rec, timeoutSec, signal);
    await this.start(rec);
    this.d.events.emit('container', 'restart', rec.id, { image: rec.config.Image ?? '', name: rec.name });
  }

  /**
   * Records an exit that conmon wrote (or `forcedCode` when the monitor is gone), wakes waiters,
   * applies the restart policy or auto-removal. Safe to call more than once per exit.
   */
  async onExit(id: string, forcedCode?: number): Promise<void> {
    // A short-lived process can exit before its start has recorded it as running.
    await this.settled(id);
    const rec = this.d.store.find(id);
    if (!rec || !hasTask(rec.state.status) || this.handlingExit.has(id)) return;
    this.handlingExit.add(id);
    try {
      const ex =
        forcedCode === undefined ? await this.d.runtime.exitCode(id) : { code: forcedCode, at: dateOf(this.d.clock) };
      if (!ex) return;
      this.d.health.stop(id);
      log.debug('exit seen', { id, afterMs: this.d.clock.now() - ex.at.getTime() });
      const willRestart = shouldRestart({ ...rec, state: { ...rec.state, exitCode: ex.code } });
      const autoRemove = !willRestart && rec.hostConfig.AutoRemove && !this.d.containers.isRemoving(id);
      // the runtime's state goes now, unless the container goes: its removal deletes it, off the clients' path
      if (!autoRemove) await this.d.runtime.delete(id).catch(() => undefined);
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
      };
      this.d.store.save(rec);
      this.d.events.emit('container', 'die', id, {
        exitCode: String(ex.code),
        image: rec.config.Image ?? '',
        name: rec.name,
      });
      for (const l of this.exitListeners.get(id) ?? []) l();
      this.exitListeners.delete(id);
      this.d.waiters.exited(id, ex.code, willRestart);
      if (willRestart) this.scheduleRestart(rec, ranMs);
      else if (autoRemove)
        await this.d.containers
          .remove(id, { force: true, volumes: true })
          .catch((e: unknown) => log.warn('auto-remove failed', { id, err: errorMessage(e) }));
    } finally {
      this.handlingExit.delete(id);
    }
  }

  private scheduleRestart(rec: ContainerRecord, ranMs: number): void {
    this.restarts.schedule(rec.id, ranMs, () => {
      const cur = this.d.store.find(rec.id);
      if (!cur || cur.state.status !== 'restarting') return;
      cur.restartCount++;
      cur.state.status = 'exited';
      this.start(cur).catch((e: unknown) => {
        log.warn('restart failed', { id: rec.id, err: errorMessage(e) });
        cur.state.status = 'exited';
        this.d.store.save(cur);
        this.d.waiters.exited(cur.id, cur.state.exitCode, false);
      });
    });
  }

  cancelRestart(id: string): void {
    this.restarts.cancel(id);
  }
}
