/**
 * Time, injected (DESIGN.md: host access is injected so unit tests run without root or a wall
 * clock). Code that reads the time or waits takes a `Clock`; the daemon passes `systemClock`,
 * unit tests a `ManualClock` that moves only when the test says so.
 */
export interface Clock {
  /** Milliseconds since the Unix epoch. */
  now(): number;
  /** Calls `fn` once, `ms` from now; the handle cancels it. Never keeps the process alive. */
  setTimeout(fn: () => void, ms: number): ClockTimer;
  /** Resolves `ms` from now; rejects with the signal's reason when it aborts first. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

export interface ClockTimer {
  cancel(): void;
}

/** The current time as a Date, from a clock. */
export const dateOf = (clock: Clock): Date => new Date(clock.now());

/** Seconds since the epoch (Docker's `time`/`Created` fields) from a clock. */
export const unixSeconds = (clock: Clock): number => Math.floor(clock.now() / 1000);

function sleepWith(clock: Clock, ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = () => {
      timer.cancel();
      reject(signal!.reason);
    };
    const timer = clock.setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout(fn, ms) {
    const t = setTimeout(fn, ms);
    t.unref();
    return { cancel: () => clearTimeout(t) };
  },
  sleep(ms, signal) {
    return sleepWith(systemClock, ms, signal);
  },
};

/**
 * A clock for tests: time stands still until `advance`, which runs every timer that falls due,
 * in order of due time (then of creation), each seeing `now()` at its own due time.
 */
export class ManualClock implements Clock {
  private current: number;
  private seq = 0;
  private readonly timers = new Map<number, { due: number; fn: () => void }>();

  constructor(start = Date.UTC(2026, 0, 1)) {
    this.current = start;
  }

  now(): number {
    return this.current;
  }

  setTimeout(fn: () => void, ms: number): ClockTimer {
    const id = this.seq++;
    this.timers.set(id, { due: this.current + Math.max(0, ms), fn });
    return { cancel: () => this.timers.delete(id) };
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return sleepWith(this, ms, signal);
  }

  /** Timers not yet run. */
  get pending(): number {
    return this.timers.size;
  }

  /** Moves time forward by `ms`, running the timers that fall due (and those they set, if due). */
  advance(ms: number): void {
    const until = this.current + ms;
    for (;;) {
      let next: [number, { due: number; fn: () => void }] | undefined;
      for (const entry of this.timers) {
        if (entry[1].due <= until && (!next || entry[1].due < next[1].due)) next = entry;
      }
      if (!next) break;
      this.timers.delete(next[0]);
      this.current = Math.max(this.current, next[1].due);
      next[1].fn();
    }
    this.current = until;
  }
}
