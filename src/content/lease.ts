/**
 * Leases, as containerd has them: a pull, a build, a load or an import holds a lease while it
 * writes, and every blob and snapshot it lands (or finds and reuses) is held by that lease until
 * the work is done and an image (or the build cache) references what it made. The garbage
 * collector never takes what a live lease holds. The lease of the running work travels with the
 * async context (like Go's context.Context): writers below the work need no extra argument.
 *
 * The records (SQLite) and the collector live in ../metadata/; this file is the small interface
 * the stores call, so that content/ and snapshot/ need nothing above them.
 */
import { AsyncLocalStorage } from 'node:async_hooks';

export type LeasedKind = 'blob' | 'snapshot';

export interface Lease {
  readonly id: string;
  /**
   * Records that the lease holds `id` (a blob digest, or a committed snapshot's chain id).
   * Contract: called synchronously BEFORE the item becomes visible (before the rename that lands
   * it) or right when an existing one is reused, so a collector that lists first and marks after
   * never sees it unheld. Idempotent; a no-op once the lease is released.
   */
  hold(kind: LeasedKind, id: string): void;
}

/** Runs work under a lease (the front of pull, build, load, import and commit). */
export interface Leases {
  /** Holds a new lease for `work` (and what it starts in its async context); released when it settles. */
  withLease<T>(label: string, work: () => Promise<T>): Promise<T>;
}

const current = new AsyncLocalStorage<Lease>();
const watchers = new Set<(kind: LeasedKind, id: string) => void>();

/**
 * What a store calls when a blob or committed snapshot lands or is reused: the context's lease
 * (if any) holds it, and a collection under way (`watchClaims`) will not take it, lease or not.
 * Synchronous, before the item becomes visible (see `Lease.hold`).
 */
export function claim(kind: LeasedKind, id: string): void {
  current.getStore()?.hold(kind, id);
  for (const w of watchers) w(kind, id);
}

/** Calls `fn` on every claim until the returned function is called (the collector's last look). */
export function watchClaims(fn: (kind: LeasedKind, id: string) => void): () => void {
  watchers.add(fn);
  return () => void watchers.delete(fn);
}

/** The lease of the work running in this async context, if any. */
export function heldLease(): Lease | undefined {
  return current.getStore();
}

/** Runs `work` with `lease` as the context's lease (for ../metadata/leases.ts). */
export function runUnder<T>(lease: Lease, work: () => Promise<T>): Promise<T> {
  return current.run(lease, work);
}
