import { invalidArgument } from '../base/errors.js';

/**
 * POST /containers/{id}/wait. Conditions as in Docker: `not-running` (now if not running; a
 * restarting container counts as running), `next-exit` (the next exit), `removed` (after
 * removal). Resolves with the exit code. As dockerd's (its `SetRestarting` closes the stop
 * channel): an exit wakes `not-running` and `next-exit` waiters even when the restart policy
 * brings the container back; dockerd 20.10 answered `{"Error":null,"StatusCode":3}` to both on a
 * `--restart=always` container exiting 3, and to a wait that began while it was restarting.
 */
export type WaitCondition = 'not-running' | 'next-exit' | 'removed';

interface Waiter {
  condition: WaitCondition;
  resolve: (code: number) => void;
}

export class Waiters {
  private readonly byId = new Map<string, Waiter[]>();

  add(id: string, condition: WaitCondition): Promise<number> {
    return new Promise((resolve) => {
      const list = this.byId.get(id) ?? [];
      list.push({ condition, resolve });
      this.byId.set(id, list);
    });
  }

  /** Called on every exit, restarts included: wakes the `not-running` and `next-exit` waiters. */
  exited(id: string, code: number): void {
    this.settle(id, code, (w) => w.condition !== 'removed');
  }

  removed(id: string, code: number): void {
    this.settle(id, code, () => true);
  }

  cancel(id: string, resolve: (code: number) => void): void {
    const list = this.byId.get(id);
    if (list)
      this.byId.set(
        id,
        list.filter((w) => w.resolve !== resolve),
      );
  }

  private settle(id: string, code: number, match: (w: Waiter) => boolean): void {
    const list = this.byId.get(id);
    if (!list) return;
    const keep: Waiter[] = [];
    for (const w of list) match(w) ? w.resolve(code) : keep.push(w);
    if (keep.length) this.byId.set(id, keep);
    else this.byId.delete(id);
  }
}

export function parseWaitCondition(s: string | null): WaitCondition {
  if (s === null || s === '' || s === 'not-running') return 'not-running';
  if (s === 'next-exit' || s === 'removed') return s;
  throw invalidArgument(`invalid condition: "${s}"`);
}
