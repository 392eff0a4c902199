/**
 * The engine's state machine without the engine: a Lifecycle, HealthMonitor and the reconcile
 * deps over the fake runtime, a ManualClock, an in-memory SQLite store and a temporary directory
 * for the containers' files. No root, no network, no wall clock.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { ManualClock } from '../../../src/base/clock.js';
import { newId, type ContainerId } from '../../../src/base/ids.js';
import { ContainerStore } from '../../../src/engine/store.js';
import { EventBus, type EngineEvent } from '../../../src/engine/events.js';
import { Waiters } from '../../../src/engine/waiters.js';
import { HealthMonitor } from '../../../src/engine/health.js';
import { Lifecycle, type ContainerHost } from '../../../src/engine/lifecycle.js';
import type { NetnsOps } from '../../../src/engine/start.js';
import type { ReconcileDeps } from '../../../src/engine/reconcile.js';
import { initialState, type ContainerRecord } from '../../../src/engine/record.js';
import type { ContainerConfig, HostConfig } from '../../../src/spec/engine-api.js';
import type { NetworkManager } from '../../../src/network/manager.js';
import { FakeRuntime } from './runtime.js';

/** A network manager with no networks: the containers here run with `--network none`. */
const noNetworks = {
  endpoints: () => [],
  get: () => ({ isDefault: true }),
  addressFree: () => true,
  attach: async () => undefined,
} as unknown as NetworkManager;

export class Bench {
  readonly clock = new ManualClock();
  readonly runtime = new FakeRuntime(this.clock);
  readonly db = new Database(':memory:');
  readonly store: ContainerStore;
  readonly events = new EventBus(this.clock);
  readonly waiters = new Waiters();
  readonly health: HealthMonitor;
  readonly lifecycle: Lifecycle;
  readonly root = mkdtempSync(join(tmpdir(), 'berth-unit-'));
  readonly seen: EngineEvent[] = [];
  /** what the engine was asked to do with a container's files */
  readonly fileOps: string[] = [];
  readonly containers: ContainerHost;
  /** containers that get a named network namespace (as a checkpointable runtime's do) */
  readonly named = new Set<string>();
  /** the named namespaces that exist, and what was done to them */
  readonly namespaces = new Set<string>();
  readonly netnsOps: string[] = [];
  readonly netns: NetnsOps = {
    exists: (n) => this.namespaces.has(n),
    add: async (n) => {
      if (this.namespaces.has(n)) throw new Error(`Cannot create namespace file "/run/netns/${n}": File exists`);
      this.netnsOps.push(`add ${n}`);
      this.namespaces.add(n);
    },
    del: async (n) => {
      this.netnsOps.push(`del ${n}`);
      this.namespaces.delete(n);
    },
  };

  constructor() {
    this.db.exec('CREATE TABLE IF NOT EXISTS schema_migrations (subsystem TEXT PRIMARY KEY, version INTEGER NOT NULL)');
    this.store = new ContainerStore(this.db);
    this.events.subscribe((e) => this.seen.push(e));
    const { clock, store, events, waiters, runtime } = this;
    this.health = new HealthMonitor({
      clock,
      store,
      events,
      exec: (rec, argv) =>
        runtime.exec(rec.id, {
          args: argv,
          env: [],
          cwd: '/',
          user: { uid: 0, gid: 0, additionalGids: [] },
          tty: false,
          openStdin: false,
          privileged: false,
          detach: true,
        }),
      killProbe: (pid) => runtime.killExec(pid),
    });
    this.containers = {
      containerDir: (id) => join(this.root, 'containers', id),
      logPathOf: (id) => join(this.root, 'containers', id, 'ctr.log'),
      ensureMounted: async (rec) => join(this.root, 'containers', rec.id, 'rootfs'),
      stageRootfs: async () => null,
      namedNetns: (rec) => this.netnsOf(rec.id),
      // as Engine.unwire: the endpoints, then the namespace berth made
      unwire: async (rec) => {
        this.fileOps.push(`unwire ${rec.id}`);
        const n = this.netnsOf(rec.id);
        if (n) await this.netns.del(n);
      },
      volumeUsers: () => [],
      isRemoving: () => false,
      remove: async (id) => {
        const rec = this.store.get(id);
        this.store.delete(rec);
        this.waiters.removed(rec.id, rec.state.exitCode);
        this.fileOps.push(`remove ${id}`);
      },
    };
    this.lifecycle = new Lifecycle({
      clock,
      store,
      events,
      waiters,
      runtime,
      health: this.health,
      networks: noNetworks,
      volumes: { mountFor: async () => '/', unmountFor: async () => undefined },
      defaultRuntime: 'crun',
      containers: this.containers,
      netns: this.netns,
    });
    runtime.watchExits((id) => void this.lifecycle.onExit(id));
  }

  netnsOf(id: string): string | null {
    return this.named.has(id) ? `berth-${id.slice(0, 16)}` : null;
  }

  /** What reconcile needs, over this bench. */
  reconcileDeps(frozen: (id: string) => boolean | null = () => false): ReconcileDeps {
    return {
      clock: this.clock,
      root: this.root,
      store: this.store,
      runtime: this.runtime,
      lifecycle: this.lifecycle,
      health: this.health,
      events: this.events,
      networks: noNetworks,
      namedNetns: this.containers.namedNetns,
      unwire: this.containers.unwire,
      netns: this.netns,
      discardFiles: async (id) => {
        this.fileOps.push(`discard ${id}`);
        rmSync(join(this.root, 'containers', id), { recursive: true, force: true });
      },
      frozen: async (id) => frozen(id),
    };
  }

  /** A created container (record stored, dirs made), `--network none`. */
  add(
    o: { restart?: HostConfig['RestartPolicy']; config?: ContainerConfig; autoRemove?: boolean } = {},
  ): ContainerRecord {
    const id = newId<ContainerId>();
    mkdirSync(join(this.root, 'containers', id, 'rootfs'), { recursive: true });
    const rec: ContainerRecord = {
      id,
      name: `c-${id.slice(0, 8)}`,
      created: new Date(this.clock.now()).toISOString(),
      imageId: 'sha256:fake',
      config: { Image: 'busybox', Cmd: ['sh'], Hostname: id.slice(0, 12), ...o.config },
      hostConfig: {
        NetworkMode: 'none',
        RestartPolicy: o.restart ?? { Name: 'no', MaximumRetryCount: 0 },
        ...(o.autoRemove ? { AutoRemove: true } : {}),
      },
      path: 'sh',
      args: [],
      runtime: 'crun',
      state: initialState(),
      restartCount: 0,
      manuallyStopped: false,
      execIds: [],
      networks: [],
      mounts: [],
    };
    this.store.insert(rec);
    return rec;
  }

  /** Resolves with the next event with `action` (for `id`, when given). */
  next(action: string, id?: string): Promise<EngineEvent> {
    return new Promise((resolve) => {
      const off = this.events.subscribe((e) => {
        if (e.Action === action && (id === undefined || e.Actor.ID === id)) {
          off();
          resolve(e);
        }
      });
    });
  }

  /**
   * Resolves once `cond` holds, checked after each turn of the event loop (no timers, no sleeps).
   * Some steps wait on real I/O (a probe reads its log file through libuv's thread pool), which a
   * loaded machine can hold up for many turns, so the bound is 10 s of real time, not a turn count.
   */
  async until(cond: () => boolean, what = 'condition'): Promise<void> {
    const giveUp = performance.now() + 10_000;
    while (performance.now() < giveUp) {
      if (cond()) return;
      await new Promise((r) => setImmediate(r));
    }
    if (cond()) return;
    throw new Error(`never true: ${what}`);
  }

  actions(id: string): string[] {
    return this.seen.filter((e) => e.Actor.ID === id).map((e) => e.Action);
  }

  close(): void {
    this.db.close();
    rmSync(this.root, { recursive: true, force: true });
  }
}
