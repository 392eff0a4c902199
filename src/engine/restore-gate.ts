/**
 * The API answers while live restore (./reconcile.ts) is still going, and never shows a state that
 * restore has yet to correct (a container recorded running whose process died while the daemon
 * was away). A request that reads or changes one container waits for that container's restore,
 * which runs at once when its turn has not come (a hurried one goes first, it does not wait for
 * the ones before it); a request that sees many containers (the list, `info`, a create) waits for
 * all of them. Restore is one pass of file reads per container in the healthy case, so the wait is
 * short; what restore starts afterwards (restart policies, orphaned files) is not waited for.
 * Open by default: an engine that never ran restore (unit tests) gates nothing.
 */
export class RestoreGate {
  private tasks: ReadonlyMap<string, () => Promise<void>> = new Map();
  private all: Promise<void> = Promise.resolve();
  private opened: () => void = () => undefined;

  /**
   * Closes the gate over the containers in `tasks` (id -> its restore, which must be idempotent
   * and never reject: it is called by restore's workers and by any request that hurries it).
   */
  begin(tasks: ReadonlyMap<string, () => Promise<void>>): void {
    this.tasks = tasks;
    this.all = new Promise((r) => (this.opened = r));
  }

  /** Every container is restored: the gate opens. */
  finish(): void {
    this.tasks = new Map();
    this.opened();
  }

  /** Resolves once container `id` is restored, restoring it now when its turn has not come. */
  one(id: string): Promise<void> {
    return this.tasks.get(id)?.() ?? Promise.resolve();
  }

  /** Resolves once every container is restored. */
  done(): Promise<void> {
    return this.all;
  }
}

/** `f` run at most once: later calls get the first call's promise. */
export function once(f: () => Promise<void>): () => Promise<void> {
  let p: Promise<void> | undefined;
  return () => (p ??= f());
}
