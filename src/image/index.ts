/**
 * The image stack berthd uses: content store + overlay snapshotter + image store, the leases and
 * the garbage collector over them, and the mounter the engine mounts container rootfs with.
 * `ImageService` implements `ImageStore`.
 */
import { join } from 'node:path';
import { promises as fsp, readFileSync } from 'node:fs';
import type { Readable, Writable } from 'node:stream';
import { invalidArgument } from '../base/errors.js';
import { log } from '../base/log.js';
import { dateOf, systemClock, type Clock } from '../base/clock.js';
import type { Digest } from '../base/digest.js';
import { mount, umountAsync, MNT_DETACH } from '../base/syscalls.js';
import type { Db } from '../metadata/db.js';
import { LeaseManager } from '../metadata/leases.js';
import { SqliteSnapshotRecords } from '../metadata/snapshot-records.js';
import { Collector, type GcReport } from '../metadata/gc.js';
import { ContentStore, DigestMismatch } from '../content/store.js';
import type { Leases } from '../content/lease.js';
import { OverlaySnapshotter } from '../snapshot/overlay.js';
import type { Mount } from '../snapshot/types.js';
import type { ImageConfig, ImageRuntimeConfig } from '../spec/image.js';
import type { CommitOptions, ImageRecord, ImageStore, RemoveResult } from './types.js';
import { ImageCore, tagOf } from './store.js';
import { loadArchive, saveArchive } from './archive-io.js';

type ImportOptions = { ref?: string; message?: string; config?: ImageRuntimeConfig; platform?: string };

export class ImageService implements ImageStore {
  constructor(
    private readonly core: ImageCore,
    private readonly tmp: string,
    private readonly leases: Leases,
    private readonly collector: Collector,
    private readonly clock: Clock = systemClock,
  ) {}

  /**
   * Runs `work` holding a lease: what it lands in content and snapshots (or reuses) is not
   * collected until it settles. Pull, load, import and commit take one; a build calls this.
   */
  withLease<T>(label: string, work: () => Promise<T>): Promise<T> {
    return this.leases.withLease(label, work);
  }

  /** Collects unreferenced blobs and layers now (one collection at a time; see ../metadata/gc.ts). */
  collectGarbage(): Promise<GcReport> {
    return this.collector.collect();
  }

  list(): ImageRecord[] {
    return this.core.list();
  }
  get(ref: string): ImageRecord {
    return this.core.resolve(ref).image;
  }
  tag(ref: string, target: string): void {
    this.core.setTag(target, this.get(ref).id);
  }
  remove(
    ref: string,
    opts: { force: boolean; noPrune: boolean },
    isUsed: (id: Digest) => boolean,
  ): Promise<RemoveResult[]> {
    return this.core.remove(ref, opts, isUsed);
  }
  load(input: Readable): Promise<string[]> {
    return this.withLease('load', () => loadArchive(this.core, this.tmp, input));
  }
  save(refs: string[], out: Writable): Promise<void> {
    return saveArchive(this.core, refs, out);
  }
  history(ref: string) {
    return this.core.history(ref);
  }
  diskUsage(): { layersSize: number } {
    return { layersSize: this.core.layersSize() };
  }

  // --- for distribution (pull and push) ---------------------------------------------------

  hasLayer(diffId: string): boolean {
    return this.core.content.has(diffId as Digest);
  }

  /**
   * Streams a layer (gzip or plain) into content, checked against the diff id the config names
   * before it lands: a layer of other content is never committed.
   */
  async ingestLayer(input: Readable, expectedDiffId: string): Promise<void> {
    try {
      await this.core.ingestLayer(input, expectedDiffId);
    } catch (e) {
      throw diffIdError(e, expectedDiffId);
    }
  }

  /**
   * The same for a layer written by someone else (a download worker): `fill(path)` writes the
   * uncompressed tar to a new ingest file and reports its sha256 and size; it lands only as the
   * diff id the config names, and nothing is left behind when it fails.
   */
  async ingestLayerFile(
    fill: (path: string) => Promise<{ digest: string; size: number }>,
    expectedDiffId: string,
  ): Promise<void> {
    const f = this.core.content.ingestFile();
    let got;
    try {
      got = await fill(f.path);
    } catch (e) {
      await f.drop();
      throw e;
    }
    try {
      await f.land({ digest: got.digest as Digest, size: got.size }, { digest: expectedDiffId as Digest });
    } catch (e) {
      throw diffIdError(e, expectedDiffId);
    }
  }

  /** Unpacks layer `i` of the chain `diffIds` as soon as its blob is in (pull overlaps unpacking with downloads). */
  unpackLayer(diffIds: readonly string[], i: number): Promise<void> {
    return this.core.unpackOne(diffIds, i);
  }

  /** Registers a pulled image (every layer in content) and names it: `name:tag` and/or `name@digest`. */
  async register(configBytes: Buffer, names: { tag?: string; digestRef?: string }): Promise<ImageRecord> {
    const img = await this.core.addImage(configBytes);
    if (names.tag) this.core.setTag(names.tag, img.id);
    if (names.digestRef) this.core.addDigest(names.digestRef, img.id);
    return this.core.byId(img.id);
  }

  /** Records that `name@digest` (a registry's manifest digest) is this image. */
  addDigest(digestRef: string, id: string): void {
    this.core.addDigest(digestRef, id);
  }

  configBytes(id: string): Buffer {
    return readFileSync(this.core.content.path(id as Digest));
  }

  /** A layer's uncompressed tar (its digest is the diff id). */
  layerStream(diffId: string): Readable {
    return this.core.content.reader(diffId as Digest);
  }

  layerSize(diffId: string): number {
    return this.core.content.size(diffId as Digest);
  }

  // --- for the builder -------------------------------------------------------------------

  /** Writes the layer tar `fill` produces into content; its digest is the diff id. */
  async writeLayer(fill: (out: Writable) => Promise<void>): Promise<{ diffId: Digest; size: number }> {
    const w = this.core.content.openWriter();
    try {
      await fill(w.stream); // fill ends the stream
    } catch (e) {
      await w.abort();
      throw e;
    }
    const { digest, size } = await w.commit();
    return { diffId: digest, size };
  }

  /** Unpacks every layer of a chain (each once); returns the top chain id (null: no layers). */
  unpack(diffIds: readonly string[]): Promise<string | null> {
    return this.core.unpack(diffIds);
  }

  /** Keeps the layers `chains()` names when no image uses them (the build cache). */
  retain(chains: () => string[][]): void {
    this.core.retain(chains);
  }

  /** Collects what nothing references (images, retainers, leases, containers); returns the bytes freed. */
  async collectLayers(): Promise<number> {
    return (await this.collectGarbage()).bytes;
  }

  importRootfs(input: Readable, opts: ImportOptions): Promise<ImageRecord> {
    return this.withLease('import', () => this.importLeased(input, opts));
  }

  private async importLeased(input: Readable, opts: ImportOptions): Promise<ImageRecord> {
    const [os = 'linux', architecture = 'amd64'] = (opts.platform ?? 'linux/amd64').split('/');
    if (os !== 'linux') throw invalidArgument(`unsupported os ${os}`);
    if (opts.ref) this.validateTag(opts.ref);
    const { diffId } = await this.core.ingestLayer(input);
    const created = dateOf(this.clock).toISOString();
    const config: ImageConfig = {
      architecture,
      os,
      created,
      config: opts.config ?? {},
      rootfs: { type: 'layers', diff_ids: [diffId] },
      history: [{ created, created_by: '', comment: opts.message || 'Imported from -' }],
    };
    const img = await this.core.addImage(Buffer.from(JSON.stringify(config)));
    if (opts.ref) this.core.setTag(opts.ref, img.id);
    return this.get(img.id);
  }

  commit(opts: CommitOptions): Promise<ImageRecord> {
    return this.withLease('commit', () => this.commitLeased(opts));
  }

  private async commitLeased(opts: CommitOptions): Promise<ImageRecord> {
    if (opts.ref) this.validateTag(opts.ref);
    const w = this.core.content.openWriter();
    try {
      await this.core.snapshots.packDiff(opts.snapshotKey, w.stream);
    } catch (e) {
      await w.abort();
      throw e;
    }
    const { digest: diffId } = await w.commit();
    const created = dateOf(this.clock).toISOString();
    const parent = opts.parent.config;
    const history = [
      ...(parent.history ?? []),
      {
        created,
        created_by: opts.createdBy ?? '',
        ...(opts.author ? { author: opts.author } : {}),
        ...(opts.comment ? { comment: opts.comment } : {}),
      },
    ];
    const config: ImageConfig = {
      ...parent,
      created,
      config: opts.config,
      rootfs: { type: 'layers', diff_ids: [...parent.rootfs.diff_ids, diffId] },
      history,
      ...(opts.author ? { author: opts.author } : {}),
    };
    const img = await this.core.addImage(Buffer.from(JSON.stringify(config)), opts.parent.id);
    if (opts.ref) this.core.setTag(opts.ref, img.id);
    return this.get(img.id);
  }

  async prune(opts: {
    all: boolean;
    isUsed: (id: Digest) => boolean;
    labelFilter?: (labels: Record<string, string>) => boolean;
    until?: number;
  }) {
    const deleted: RemoveResult[] = [];
    let spaceReclaimed = 0;
    // Children first, so that parents become deletable in the same pass.
    const candidates = this.list().sort((a, b) => Date.parse(b.created) - Date.parse(a.created));
    for (const img of candidates) {
      if (opts.isUsed(img.id) || (!opts.all && img.repoTags.length > 0)) continue;
      if (opts.labelFilter && !opts.labelFilter(img.config.config?.Labels ?? {})) continue;
      if (opts.until !== undefined && !(Date.parse(img.created) < opts.until)) continue;
      if (this.core.children(img.id).length > 0) continue;
      for (const t of img.repoTags) deleted.push({ Untagged: t });
      spaceReclaimed += await this.core.deleteImage(img.id);
      deleted.push({ Deleted: img.id });
    }
    // and what nothing references any more: orphans of crashed or failed pulls, builds and loads
    const gc = await this.collectGarbage();
    log.info('content gc', { ...gc });
    spaceReclaimed += gc.bytes;
    return { deleted, spaceReclaimed };
  }

  /** Refuses a bad reference before any work is done (nothing is stored for it). */
  private validateTag(ref: string): void {
    tagOf(ref);
  }
}

export async function openImageStack(o: { root: string; db: Db; clock?: Clock }) {
  const clock = o.clock ?? systemClock;
  const content = new ContentStore(o.root);
  await content.init();
  const snapshots = new OverlaySnapshotter(o.root, new SqliteSnapshotRecords(o.db));
  await snapshots.init();
  const tmp = join(o.root, 'tmp');
  await fsp.rm(tmp, { recursive: true, force: true });
  await fsp.mkdir(tmp, { recursive: true });
  const core = new ImageCore(o.db, content, snapshots);
  const leases = new LeaseManager(o.db, clock);
  const collector = new Collector({ content, snapshots, leases, roots: () => core.gcRoots() });
  const images = new ImageService(core, tmp, leases, collector, clock);
  const mounter = {
    async mountAll(mounts: Mount[], target: string): Promise<void> {
      for (const m of mounts) mount(m.source, target, m.type, 0, m.options.join(','));
    },
    async unmount(target: string): Promise<void> {
      await umountAsync(target, MNT_DETACH);
    },
  };
  return { images, snapshots, mounter };
}

/** A layer whose content is not the diff id its config names is the image's fault (InvalidArgument); other failures pass. */
function diffIdError(e: unknown, expectedDiffId: string): unknown {
  return e instanceof DigestMismatch
    ? invalidArgument(`layer content does not match the config's diff id ${expectedDiffId}: ${e.message}`, e)
    : e;
}
