/**
 * The restart manager: whether a container's restart policy brings it back after an exit, and
 * when. dockerd's back-off: 100 ms doubling to 1 min, reset when the container ran for 10 s or
 * more. Timers run on the injected clock; a container has one pending restart at most.
 */
import type { Clock, ClockTimer } from '../base/clock.js';
import type { ContainerRecord } from './record.js';

export const BACKOFF_START_MS = 100;
export const BACKOFF_MAX_MS = 60_000;
export const BACKOFF_RESET_AFTER_MS = 10_000;

/**
 * `no`, `on-failure[:N]` (a non-zero exit, N restarts at most; 0: no limit), `always`,
 * `unless-stopped`; never after an explicit stop (`manuallyStopped`). `rec.state.exitCode` is
 * the exit's code.
 */
export function shouldRestart(rec: ContainerRecord): boolean {
  if (rec.manuallyStopped) return false;
  const p = rec.hostConfig.RestartPolicy ?? { Name: 'no', MaximumRetryCount: 0 };
  switch (p.Name) {
    case 'always':
    case 'unless-stopped':
      return true;
    case 'on-failure':
      return rec.state.exitCode !== 0 && (p.MaximumRetryCount === 0 || rec.restartCount < p.MaximumRetryCount);
    default:
      return false;
  }
}

export class RestartManager {
  private readonly timers = new Map<string, ClockTimer>();
  private readonly backoff = new Map<string, number>();

  constructor(private readonly clock: Clock) {}

  /** Calls `fire` once the container's next back-off delay passed (`ranMs`: how long it ran); the delay. */
  schedule(id: string, ranMs: number, fire: () => void): number {
    this.cancel(id);
    const prev = ranMs >= BACKOFF_RESET_AFTER_MS ? 0 : (this.backoff.get(id) ?? 0);
    const delay = prev === 0 ? BACKOFF_START_MS : Math.min(prev * 2, BACKOFF_MAX_MS);
    this.backoff.set(id, delay);
    this.timers.set(
      id,
      this.clock.setTimeout(() => {
        this.timers.delete(id);
        fire();
      }, delay),
    );
    return delay;
  }

  /** Starts the back-off again from 100 ms (a start not the restart manager's; dockerd's ResetRestartManager). */
  reset(id: string): void {
    this.cancel(id);
    this.backoff.delete(id);
  }

  /** Drops the pending restart, if any (a stop, a kill, a removal). */
  cancel(id: string): void {
    this.timers.get(id)?.cancel();
    this.timers.delete(id);
  }
}
