/**
 * Waiting on a condition the kernel or another process makes true, where there is nothing to be
 * told by (a cgroup emptying, a freezer thawing, a log line, a socket appearing): checked every
 * `everyMs` on the injected clock, until it holds or the deadline passes. Never a fixed sleep.
 */
import type { Clock } from '../base/clock.js';

/** Whether `ready` came to hold before `deadlineMs` passed (checked once more at the deadline). */
export async function pollUntil(
  ready: () => Promise<boolean> | boolean,
  o: { clock: Clock; deadlineMs: number; everyMs: number; stop?: () => boolean },
): Promise<boolean> {
  const end = o.clock.now() + o.deadlineMs;
  for (;;) {
    if (await ready()) return true;
    if (o.stop?.() || o.clock.now() >= end) return false;
    await o.clock.sleep(Math.min(o.everyMs, Math.max(0, end - o.clock.now())));
  }
}
