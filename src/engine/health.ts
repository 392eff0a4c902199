/**
 * Health checks (HEALTHCHECK, `run --health-*`), as dockerd runs them: while a container runs, a
 * probe runs inside it every Interval (StartInterval during StartPeriod), one at a time; exit 0
 * is healthy, anything else a failure, a probe over Timeout is killed and a failure. Retries
 * failures in a row make it unhealthy (failures within StartPeriod do not count until one
 * succeeds). The status lives in the container's state (State.Health: persisted, kept after the
 * container stops, reset to `starting` by its next start) with the last 5 probes' output; each
 * change is a `health_status: <status>` event. A daemon restart resumes the probes (live restore).
 */
import { promises as fsp } from 'node:fs';
import { errorMessage } from '../base/errors.js';
import { log } from '../base/log.js';
import { dateOf, type Clock, type ClockTimer } from '../base/clock.js';
import type { ExecHandle } from '../runtime/types.js';
import type { ContainerRecord, HealthProbeResult } from './record.js';
import type { ContainerStore } from './store.js';
import type { EventBus } from './events.js';
import { LogParser } from './logs.js';

/** A probe's process: detached, in the container, with the container's defaults (exec.ts's execIn). */
export type ProbeExec = (rec: ContainerRecord, argv: string[]) => Promise<ExecHandle>;

/** What the health monitor needs; the engine fills it (engine.ts). */
export interface HealthDeps {
  clock: Clock;
  store: Pick<ContainerStore, 'find' | 'save'>;
  events: Pick<EventBus, 'emit'>;
  exec: ProbeExec;
  /** Ends a probe past its timeout (SIGKILL to the exec's pid). */
  killProbe?: (pid: number) => void;
}

const killPid = (pid: number): void => {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    /* gone already */
  }
};

export type { HealthProbeResult, HealthState, HealthStatus } from './record.js';

const NS_PER_MS = 1_000_000;
/** dockerd's defaults (daemon/health.go) */
const DEFAULT_INTERVAL_MS = 30_000;
const DEFAULT_TIMEOUT_MS = 30_000;
const DEFAULT_START_INTERVAL_MS = 5_000;
const DEFAULT_RETRIES = 3;
const MAX_LOG_ENTRIES = 5;
const MAX_OUTPUT_BYTES = 4096;

interface Probe {
  argv: string[];
  intervalMs: number;
  timeoutMs: number;
  startPeriodMs: number;
  startIntervalMs: number;
  retries: number;
}

function probeOf(rec: ContainerRecord): Probe | null {
  const h = rec.config.Healthcheck;
  const test = h?.Test ?? [];
  if (!h || test.length < 2 || test[0] === 'NONE') return null;
  const shell =
    Array.isArray(rec.config['Shell']) && rec.config['Shell'].length
      ? (rec.config['Shell'] as string[])
      : ['/bin/sh', '-c'];
  // at most a timer's range (2^31-1 ms, ~24.8 days): a longer one would fire at once, and probe in a loop
  const ms = (ns: number | undefined, dflt: number) =>
    ns ? Math.min(2 ** 31 - 1, Math.max(1, Math.round(ns / NS_PER_MS))) : dflt;
  return {
    argv: test[0] === 'CMD-SHELL' ? [...shell, test.slice(1).join(' ')] : test.slice(1),
    intervalMs: ms(h.Interval, DEFAULT_INTERVAL_MS),
    timeoutMs: ms(h.Timeout, DEFAULT_TIMEOUT_MS),
    startPeriodMs: ms(h.StartPeriod, 0),
    startIntervalMs: ms(h.StartInterval, DEFAULT_START_INTERVAL_MS),
    retries: h.Retries ? h.Retries : DEFAULT_RETRIES,
  };
}

export class HealthMonitor {
  private readonly timers = new Map<string, ClockTimer>();

  constructor(private readonly d: HealthDeps) {}

  /**
   * Starts probing a container that just started (`resume`: one that kept running while the
   * daemon was away: its status stays). No-op without a health check.
   */
  start(rec: ContainerRecord, resume = false): void {
    this.stop(rec.id);
    const probe = probeOf(rec);
    if (!probe) return;
    if (!resume || !rec.state.health) {
      rec.state.health = { Status: 'starting', FailingStreak: 0, Log: [] };
      this.d.store.save(rec);
    }
    this.schedule(rec.id, probe);
  }

  /** Stops probing (the container stopped, is removed, or the daemon leaves). */
  stop(id: string): void {
    this.timers.get(id)?.cancel();
    this.timers.delete(id);
  }

  private schedule(id: string, probe: Probe): void {
    const rec = this.d.store.find(id);
    if (!rec) return;
    const inStartPeriod = this.d.clock.now() - Date.parse(rec.state.startedAt) < probe.startPeriodMs;
    const delay = inStartPeriod && rec.state.health?.Status === 'starting' ? probe.startIntervalMs : probe.intervalMs;
    const timer = this.d.clock.setTimeout(() => {
      void this.runOnce(id, probe)
        .catch((e: unknown) => log.warn('health check failed to run', { id, err: errorMessage(e) }))
        .finally(() => {
          if (this.timers.get(id) !== timer) return; // stopped or started again meanwhile
          this.timers.delete(id);
          const st = this.d.store.find(id)?.state.status;
          if (st === 'running' || st === 'paused') this.schedule(id, probe);
        });
    }, delay);
    this.timers.set(id, timer);
  }

  private async runOnce(id: string, probe: Probe): Promise<void> {
    const rec = this.d.store.find(id);
    if (!rec || rec.state.status !== 'running') return; // paused: no probe, nothing counted
    const result = await this.exec(rec, probe);
    const cur = this.d.store.find(id);
    if (!cur || cur.state.status !== 'running' || cur.state.startedAt !== rec.state.startedAt || !this.timers.has(id))
      return; // it stopped meanwhile
    this.record(cur, probe, result);
  }

  private async exec(rec: ContainerRecord, probe: Probe): Promise<HealthProbeResult> {
    const { clock } = this.d;
    const start = dateOf(clock);
    let handle: ExecHandle;
    try {
      handle = await this.d.exec(rec, probe.argv);
    } catch (e) {
      return { Start: start.toISOString(), End: dateOf(clock).toISOString(), ExitCode: -1, Output: errorMessage(e) };
    }
    let timedOut = false;
    const timer = clock.setTimeout(() => {
      timedOut = true;
      (this.d.killProbe ?? killPid)(handle.pid);
    }, probe.timeoutMs);
    const code = await handle.wait().finally(() => timer.cancel());
    const end = dateOf(clock);
    if (timedOut)
      return {
        Start: start.toISOString(),
        End: end.toISOString(),
        ExitCode: -1,
        Output: `Health check exceeded timeout (${probe.timeoutMs / 1000}s)`,
      };
    let output = '';
    const parser = new LogParser();
    parser.push(await fsp.readFile(handle.logPath).catch(() => Buffer.alloc(0)), (l) => (output += l.text));
    parser.push(Buffer.from('\n'), (l) => (output += l.text)); // a last line without its newline
    if (Buffer.byteLength(output) > MAX_OUTPUT_BYTES)
      output = Buffer.from(output).subarray(0, MAX_OUTPUT_BYTES).toString();
    return { Start: start.toISOString(), End: end.toISOString(), ExitCode: code, Output: output };
  }

  /** dockerd's handleProbeResult: the streak, the status, the last results, the event on a change. */
  private record(rec: ContainerRecord, probe: Probe, r: HealthProbeResult): void {
    const h = rec.state.health ?? { Status: 'starting', FailingStreak: 0, Log: [] };
    const before = h.Status;
    h.Log = [...h.Log, r].slice(-MAX_LOG_ENTRIES);
    if (r.ExitCode === 0) {
      h.FailingStreak = 0;
      h.Status = 'healthy';
    } else {
      const grace =
        h.Status === 'starting' && this.d.clock.now() - Date.parse(rec.state.startedAt) < probe.startPeriodMs;
      if (!grace) {
        h.FailingStreak++;
        if (h.FailingStreak >= probe.retries) h.Status = 'unhealthy';
      }
    }
    rec.state.health = h;
    this.d.store.save(rec);
    if (h.Status !== before)
      this.d.events.emit('container', `health_status: ${h.Status}`, rec.id, {
        image: rec.config.Image ?? '',
        name: rec.name,
      });
  }
}
