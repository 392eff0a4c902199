/**
 * Live restore: what berthd does at start so that a `kill -9` of the daemon loses nothing and
 * leaves nothing half done.
 * - containers whose conmon still runs stay running (and attachable: conmon holds their stdio);
 * - a running container left frozen although its record says running (the daemon died while
 *   `commit` had paused it, or in the middle of a pause) is resumed; a record saying paused whose
 *   container is not frozen (died in the middle of an unpause) says running again;
 * - containers that exited meanwhile get the exit code conmon wrote, then their restart policy;
 * - containers whose monitor vanished without an exit file (host reboot) are marked exited (255);
 * - a start the daemon died in is finished or undone: a container whose record is not active but
 *   whose runtime state remains (conmon alive) is adopted as running when its process already
 *   runs (the start had gone through), else its runtime state is deleted (the process, if any, is
 *   killed) and its endpoints released, so that it is cleanly Created/Exited and startable;
 * - container directories without a record (a crash mid-create) are unmounted and removed;
 * - containers with `always` / `unless-stopped` (not stopped by hand) are started again.
 * Cost: one pass over the records, their probes in parallel; the healthy case reads files only
 * (conmon's pid file, /proc, the freezer state: synchronous reads, a few microseconds each) and
 * spawns no process. The daemon answers meanwhile: `reconcile` closes the engine's RestoreGate
 * before it returns, a request waits for the containers it concerns (./restore-gate.ts), and the
 * pass yields to the event loop at least every 10 ms so that /_ping and the hurried
 * requests are served. Orphaned container dirs are cleaned up after the gate opened, and the
 * restart policies' starts go 4 at a time.
 */
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { errorMessage } from '../base/errors.js';
import { log } from '../base/log.js';
import { dateOf, type Clock } from '../base/clock.js';
import { cgroupFrozen } from '../runtime/cgroups.js';
import type { TaskRuntime } from '../runtime/types.js';
import type { NetworkManager } from '../network/manager.js';
import { netnsNameOf, type ContainerRecord } from './record.js';
import { isActive } from './state.js';
import { cgroupPathOrDefault } from './spec-input.js';
import type { ContainerStore } from './store.js';
import type { EventBus } from './events.js';
import type { HealthMonitor } from './health.js';
import type { Lifecycle } from './lifecycle.js';
import { hostNetns, type NetnsOps } from './start.js';
import { once, type RestoreGate } from './restore-gate.js';

/** What live restore needs (the engine has each of these: berthd passes it). */
export interface ReconcileDeps {
  clock: Clock;
  /** the daemon's root: `<root>/containers/<id>` are the containers' dirs */
  root: string;
  store: Pick<ContainerStore, 'all' | 'find' | 'save' | 'delete'>;
  runtime: TaskRuntime;
  lifecycle: Pick<Lifecycle, 'start' | 'onExit'>;
  health: Pick<HealthMonitor, 'start'>;
  events: Pick<EventBus, 'emit'>;
  networks: Pick<NetworkManager, 'endpoints' | 'detach'>;
  namedNetns(rec: ContainerRecord): string | null;
  unwire(rec: ContainerRecord, processGone?: boolean): Promise<void>;
  /** Unmounts and deletes a container's files, its dir last. Idempotent. */
  discardFiles(id: string): Promise<void>;
  /** Whether the container's cgroup is frozen (null: no cgroup where berth puts them). Default: its freezer file. */
  frozen?: (id: string) => Promise<boolean | null>;
  /** default: the host's `ip netns` */
  netns?: NetnsOps;
  /** closed while restore runs (requests wait on it); none: nothing waits */
  restoreGate?: RestoreGate;
}

/**
 * Containers restored at most this many at a time (bounded: 10,000 records must not open 10,000
 * files, or spawn 10,000 runtimes, at once).
 */
const CONCURRENCY = 16;
/** Containers whose restart policy starts them at daemon start, this many at a time (each spawns the runtime). */
const RESTART_CONCURRENCY = 4;

interface Probe {
  rec: ContainerRecord;
  /** conmon still runs */
  alive: boolean;
  /** its cgroup is frozen (null: no cgroup, or not asked) */
  frozen: boolean | null;
}

/**
 * At most this long (ms) between two yields to the event loop: the healthy case is synchronous
 * reads, whose cost grows with the machine's load (~2 ms a container at load 19 with 6,449
 * containers, against 0.1 ms on a quiet machine); a count-based yield let the daemon's own start
 * (and its socket) wait 13 s behind restore.
 */
const YIELD_MS = 10;

/**
 * `fn` over `items`, `limit` at a time. Every `yieldMs` all workers wait for one turn of the event
 * loop: calls that complete at once (file reads made synchronously) would otherwise chain
 * microtasks and starve the API's sockets for the whole pass.
 */
async function inParallel<T, R>(items: T[], limit: number, fn: (t: T) => Promise<R>, yieldMs = Infinity) {
  const out: R[] = new Array<R>(items.length);
  let next = 0;
  let lastYield = performance.now();
  let pause: Promise<void> | null = null;
  const worker = async () => {
    for (let i = next++; i < items.length; i = next++) {
      if (pause) await pause;
      out[i] = await fn(items[i]!);
      if (!pause && performance.now() - lastYield >= yieldMs) {
        lastYield = performance.now();
        pause = new Promise((r) =>
          setImmediate(() => {
            pause = null;
            r();
          }),
        );
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

/**
 * Live restore. Closes `d.restoreGate` before it returns (so the caller may open the API right
 * after calling it) and opens it when every container is restored; the pass begins once
 * `o.startAfter` settled (berthd: once its socket listens, so that its own start-up does not wait
 * behind the pass). The promise resolves after the cleanup that follows (orphans, restart policies).
 */
export function reconcile(d: ReconcileDeps, o: { startAfter?: Promise<unknown> } = {}): Promise<void> {
  const { store } = d;
  const toRestart: string[] = [];
  const t0 = performance.now();
  const all = store.all();
  const tasks = new Map<string, () => Promise<void>>();
  for (const rec of all)
    tasks.set(
      rec.id,
      once(async () => {
        try {
          await restoreOne(d, await probe(d, rec), toRestart);
        } catch (e) {
          log.warn('live restore of a container failed', { id: rec.id, err: errorMessage(e) });
        }
      }),
    );
  d.restoreGate?.begin(tasks);
  return (async () => {
    try {
      // the pass waits for the daemon to be listening (berthd's startAfter); a hurried request runs its task before
      await o.startAfter?.catch(() => undefined);
      await inParallel([...tasks.values()], CONCURRENCY, (task) => task(), YIELD_MS);
    } finally {
      d.restoreGate?.finish();
    }
    log.info('live restore', { containers: all.length, ms: Math.round(performance.now() - t0) });
    await removeOrphans(d);
    await inParallel(toRestart, RESTART_CONCURRENCY, async (id) => {
      const rec = store.find(id);
      if (rec)
        await d.lifecycle
          .start(rec)
          .catch((e: unknown) => log.warn('restart at daemon start failed', { id, err: errorMessage(e) }));
    });
  })();
}

/** What is true of the container now: file reads only, and the removal of runtime state a crash left. */
async function probe(d: ReconcileDeps, rec: ContainerRecord): Promise<Probe> {
  const { runtime } = d;
  const status = rec.state.status;
  if (status === 'removing') return { rec, alive: false, frozen: null };
  const alive = await runtime.monitorAlive(rec.id);
  const running = status === 'running' || status === 'paused';
  // not active and no monitor: runtime state a crash left would make the next create fail
  // ("container ... already exists"); with none, this is a few file checks, no process
  if (!running && !alive)
    await runtime
      .delete(rec.id)
      .catch((e: unknown) => log.warn('runtime delete failed', { id: rec.id, err: errorMessage(e) }));
  const frozenOf =
    d.frozen ?? ((id: string) => cgroupFrozen(runtime.host().cgroupVersion, cgroupPathOrDefault(rec.hostConfig, id)));
  const frozen = alive && running ? await frozenOf(rec.id) : null;
  return { rec, alive, frozen };
}

async function restoreOne(d: ReconcileDeps, p: Probe, toRestart: string[]): Promise<void> {
  const { rec } = p;
  const { store } = d;
  if (rec.state.status === 'removing') {
    await d.discardFiles(rec.id);
    store.delete(rec);
    return;
  }
  if (rec.state.status === 'restarting') {
    rec.state.status = 'exited';
    store.save(rec);
  }
  if (!isActive(rec.state.status)) {
    if (await settleInterruptedStart(d, p)) return;
    const named = d.namedNetns(rec);
    if (named && (d.netns ?? hostNetns).exists(named)) await (d.netns ?? hostNetns).del(named); // its process died with the daemon away
    const pol = rec.hostConfig.RestartPolicy?.Name;
    if (!rec.manuallyStopped && (pol === 'always' || pol === 'unless-stopped')) toRestart.push(rec.id);
    return;
  }
  if (p.alive) {
    await settleFreezer(d, p);
    d.health.start(rec, true); // its probes go on
    return;
  }
  const ex = await d.runtime.exitCode(rec.id);
  await d.lifecycle.onExit(rec.id, ex ? ex.code : 255);
  if (!ex) {
    rec.state.error = 'container monitor exited without recording an exit code';
    store.save(rec);
  }
}

/**
 * A running container's freezer against its record. Only a record saying `paused` was paused by
 * the user (pause saves it after the runtime paused); a frozen container whose record says running
 * was paused by an operation that did not finish (commit) and is resumed.
 */
async function settleFreezer(d: ReconcileDeps, p: Probe): Promise<void> {
  const { rec } = p;
  let frozen = p.frozen;
  if (frozen === null) {
    // no freezer file where berth puts cgroups: ask the runtime (spawns it; not the common case)
    const st = await d.runtime.state(rec.id).catch(() => null);
    if (!st || (st.status !== 'paused' && st.status !== 'running')) return;
    frozen = st.status === 'paused';
  }
  if (frozen && rec.state.status === 'running') {
    log.info('resuming a container paused by an interrupted operation', { id: rec.id });
    await d.runtime.resume(rec.id);
  } else if (!frozen && rec.state.status === 'paused') {
    rec.state.status = 'running';
    d.store.save(rec);
  }
}

/**
 * A record that is not active (created, exited) with a live monitor: the daemon died in a start.
 * Finished when the container's process runs (the start had gone through: the runtime's start is
 * its last step), else undone: its runtime state goes (the runtime kills a created container's
 * init) and its endpoints are released. A record without a live monitor gets its runtime state
 * removed too (a file check when there is none). True when the container runs now.
 */
async function settleInterruptedStart(d: ReconcileDeps, p: Probe): Promise<boolean> {
  const { rec } = p;
  if (!p.alive) {
    if (d.networks.endpoints({ containerId: rec.id }).length) await d.unwire(rec, true);
    return false; // its runtime state went with the probe
  }
  const st = await d.runtime.state(rec.id).catch(() => null);
  if (st && (st.status === 'running' || st.status === 'paused') && st.pid > 0) {
    if (st.status === 'paused') await d.runtime.resume(rec.id);
    log.info('finishing a start the daemon died in', { id: rec.id });
    rec.state = {
      ...rec.state,
      status: 'running',
      pid: st.pid,
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
  log.info('undoing a start the daemon died in', { id: rec.id, runtimeStatus: st?.status ?? 'unknown' });
  await d.runtime.delete(rec.id);
  if (d.networks.endpoints({ containerId: rec.id }).length) await d.unwire(rec, true);
  return false;
}

async function removeOrphans(d: ReconcileDeps): Promise<void> {
  const dir = join(d.root, 'containers');
  let names: string[];
  try {
    names = await fsp.readdir(dir);
  } catch {
    return;
  }
  for (const name of names) {
    if (/^[a-f0-9]{64}$/.test(name) && !d.store.find(name)) {
      log.info('removing leftover container files', { id: name });
      await d.runtime.delete(name).catch(() => undefined);
      // its networking too: endpoints (addresses, ports, veths) and the namespace berth named for it
      if (d.networks.endpoints({ containerId: name }).length)
        await d.networks
          .detach(name, undefined, true)
          .catch((e: unknown) => log.warn('network detach failed', { id: name, err: errorMessage(e) }));
      const netns = d.netns ?? hostNetns;
      if (netns.exists(netnsNameOf(name))) await netns.del(netnsNameOf(name));
      await d.discardFiles(name);
    }
  }
}
