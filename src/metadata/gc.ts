/**
 * Content garbage collection: mark and sweep over blobs (content/) and committed snapshots
 * (snapshot/). Live are: what the roots name (every image's config and layers, the build
 * cache's layers: the image store says), what a live lease holds, the parents of active snapshots
 * (containers, build steps), and every ancestor of a live layer. Everything else goes.
 *
 * Order, so that nothing that lands meanwhile is taken (see ../content/lease.ts):
 * 1. watch claims; 2. list what is on disk (blobs, layer dirs without a record);
 * 3. mark, synchronously (records, leases, roots: one consistent view);
 * 4. sweep, each item with a last look at the claims made since 1, with no await between the
 *    look and the unlink/rename. An item that landed after 2 is not in the lists; one that landed
 *    before 2 was claimed (by its lease) before it was visible, so 3 or 4 sees it.
 */
import type { BlobInfo } from '../content/store.js';
import { watchClaims, type LeasedKind } from '../content/lease.js';
import type { Digest } from '../base/digest.js';
import { isBerthError } from '../base/errors.js';
import type { LayerInfo, LayerStore, SnapshotSweep } from '../snapshot/types.js';
import type { Held } from './leases.js';

/** What the image store references: blob digests (configs, layers) and layer chain ids. */
export interface GcRoots {
  blobs: ReadonlySet<string>;
  chains: ReadonlySet<string>;
}

export interface GcInput {
  /** blobs on disk */
  blobs: readonly BlobInfo[];
  /** committed snapshots on record */
  layers: readonly LayerInfo[];
  /** layer directories on disk without a record */
  orphanDirs: readonly string[];
  activeParents: ReadonlyArray<string | null>;
  held: Held;
  roots: GcRoots;
}

export interface GcPlan {
  blobs: BlobInfo[];
  /** children before their parents */
  layers: LayerInfo[];
  orphanDirs: string[];
}

/** The mark: what is garbage, given one consistent view. Pure. */
export function planCollection(i: GcInput): GcPlan {
  const byChain = new Map(i.layers.map((l) => [l.chainId, l]));
  const live = new Set<string>();
  const mark = (chain: string | null): void => {
    for (let c = chain; c !== null && !live.has(c); c = byChain.get(c)?.parent ?? null) live.add(c);
  };
  for (const c of i.roots.chains) mark(c);
  for (const c of i.held.snapshots) mark(c);
  for (const c of i.activeParents) mark(c);
  const depth = (l: LayerInfo): number => {
    let n = 0;
    for (let p = l.parent; p !== null; p = byChain.get(p)?.parent ?? null) n++;
    return n;
  };
  const layers = i.layers.filter((l) => !live.has(l.chainId)).map((l) => ({ l, d: depth(l) }));
  layers.sort((a, b) => b.d - a.d);
  return {
    blobs: i.blobs.filter((b) => !i.roots.blobs.has(b.digest) && !i.held.blobs.has(b.digest)),
    layers: layers.map((x) => x.l),
    orphanDirs: i.orphanDirs.filter((c) => !live.has(c)),
  };
}

export interface GcReport {
  blobs: number;
  layers: number;
  /** layer directories without a record */
  dirs: number;
  /** bytes freed: blob sizes, layer sizes (the layer tar's, as recorded) and the orphan dirs' files */
  bytes: number;
  /** leases of dead daemon runs dropped */
  deadLeases: number;
}

export interface GcStores {
  content: { list(): Promise<BlobInfo[]>; deleteUnless(d: Digest, keep: () => boolean): boolean };
  snapshots: Pick<LayerStore, 'allLayers'> & SnapshotSweep;
  leases: { held(): Held; dropDead(): number };
  /** What the image store (and the build cache) reference; computed synchronously. */
  roots(): GcRoots;
}

/** Runs collections one at a time: a request during a run waits for it and then runs its own. */
export class Collector {
  private tail: Promise<unknown> = Promise.resolve();

  constructor(private readonly s: GcStores) {}

  collect(): Promise<GcReport> {
    const run = this.tail.then(
      () => this.once(),
      () => this.once(),
    );
    this.tail = run.catch(() => undefined);
    return run;
  }

  private async once(): Promise<GcReport> {
    const claimed = new Set<string>();
    const stop = watchClaims((kind: LeasedKind, id: string) => void claimed.add(`${kind}:${id}`));
    try {
      const deadLeases = this.s.leases.dropDead();
      const [blobs, orphanDirs] = await Promise.all([this.s.content.list(), this.s.snapshots.orphanLayerDirs()]);
      const plan = planCollection({
        blobs,
        orphanDirs,
        layers: this.s.snapshots.allLayers(),
        activeParents: this.s.snapshots.activeParents(),
        held: this.s.leases.held(),
        roots: this.s.roots(),
      });
      const report: GcReport = { blobs: 0, layers: 0, dirs: 0, bytes: 0, deadLeases };
      const keep = (kind: LeasedKind, id: string) => () => claimed.has(`${kind}:${id}`);
      for (const l of plan.layers) {
        try {
          if (!this.s.snapshots.removeLayerUnless(l.chainId, keep('snapshot', l.chainId))) continue;
        } catch (e) {
          if (isBerthError(e, 'Conflict')) continue; // something was built on it since the mark
          throw e;
        }
        report.layers++;
        report.bytes += l.size;
      }
      for (const c of plan.orphanDirs) {
        const bytes = await this.s.snapshots.removeOrphanDir(c, keep('snapshot', c));
        if (bytes === null) continue;
        report.dirs++;
        report.bytes += bytes;
      }
      for (const b of plan.blobs) {
        if (!this.s.content.deleteUnless(b.digest, keep('blob', b.digest))) continue;
        report.blobs++;
        report.bytes += b.size;
      }
      return report;
    } finally {
      stop();
    }
  }
}
