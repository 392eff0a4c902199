/**
 * The local image store (ImageStore): images are config blobs in content/, named by tags in
 * SQLite; their layers are blobs (uncompressed tars, keyed by diff id) unpacked once into
 * snapshot layers keyed by chain id. Load/save/import/commit live in their own files.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { conflict, invalidArgument, isBerthError, notFound } from '../base/errors.js';
import type { Digest } from '../base/digest.js';
import { shortId } from '../base/ids.js';
import type { Db } from '../metadata/db.js';
import { migrate } from '../metadata/db.js';
import type { GcRoots } from '../metadata/gc.js';
import type { ContentStore } from '../content/store.js';
import type { LayerStore, Snapshotter } from '../snapshot/types.js';
import { applyLayer, maybeGunzip } from '../archive/layer.js';
import { parseImageConfig } from '../spec/image-parse.js';
import type { HistoryEntry } from '../spec/image.js';
import type { ImageRecord, RemoveResult } from './types.js';
import { idPrefix, normalizeTagged, parseReference } from './reference.js';

const MIGRATIONS = [
  `CREATE TABLE images (id TEXT PRIMARY KEY, parent TEXT NOT NULL DEFAULT '', size INTEGER NOT NULL, created TEXT NOT NULL);
   CREATE TABLE tags (ref TEXT PRIMARY KEY, image_id TEXT NOT NULL REFERENCES images(id));
   CREATE TABLE digests (ref TEXT PRIMARY KEY, image_id TEXT NOT NULL REFERENCES images(id))`,
];

/** Chain ids per OCI image-spec: chain(L1) = diff(L1); chain(Ln) = sha256(chain(Ln-1) + " " + diff(Ln)). */
export function chainIds(diffIds: readonly string[]): string[] {
  const out: string[] = [];
  for (const d of diffIds) {
    const prev = out[out.length - 1];
    out.push(prev ? `sha256:${createHash('sha256').update(`${prev} ${d}`).digest('hex')}` : d);
  }
  return out;
}

/**
 * `ref` as the tag it names (`busybox` = `busybox:latest`), refused as dockerd's reference store
 * refuses it: a repository named `sha256` would read as a digest.
 */
export function tagOf(ref: string): string {
  const tag = normalizeTagged(ref);
  if (tag.startsWith('sha256:'))
    throw invalidArgument('refusing to create an ambiguous tag using digest algorithm as name');
  return tag;
}

/** `created` of an image whose config has none. */
const EPOCH = '1970-01-01T00:00:00.000Z';

export class ImageCore {
  private readonly cache = new Map<string, ImageRecord>();
  /** Other holders of layers (the build cache): chains of diff ids kept when no image uses them. */
  private readonly retainers: Array<() => string[][]> = [];

  constructor(
    readonly db: Db,
    readonly content: ContentStore,
    readonly snapshots: LayerStore & Snapshotter,
  ) {
    migrate(db, 'images', MIGRATIONS);
  }

  /**
   * Streams a layer tar (plain or gzip) into content as an uncompressed blob; its digest is the
   * diff id. With `expectedDiffId`, a layer of other content is refused before it lands.
   */
  async ingestLayer(input: Readable, expectedDiffId?: string): Promise<{ diffId: Digest; size: number }> {
    const { digest, size } = await this.content.write(
      await maybeGunzip(input),
      expectedDiffId ? { digest: expectedDiffId as Digest } : undefined,
    );
    return { diffId: digest, size };
  }

  /** Unpacks every layer of a chain into snapshots (in parallel; each layer once). */
  async unpack(diffIds: readonly string[]): Promise<string | null> {
    const chains = chainIds(diffIds);
    await Promise.all(diffIds.map((_, i) => this.unpackOne(diffIds, i, chains)));
    return chains[chains.length - 1] ?? null;
  }

  /** Unpacks layer `i` of a chain (its blob must be in content); a no-op when it is unpacked. */
  unpackOne(diffIds: readonly string[], i: number, chains = chainIds(diffIds)): Promise<void> {
    const d = diffIds[i]!;
    return this.snapshots.commitLayer(
      { chainId: chains[i]!, parent: i ? chains[i - 1]! : null, diffId: d, size: this.content.size(d as Digest) },
      (dir) => applyLayer(this.content.path(d as Digest), dir),
    );
  }

  /**
   * Registers an image from its config bytes; every layer blob must already be in content.
   * Idempotent: the same config gives the same id.
   */
  async addImage(configBytes: Buffer, parent = ''): Promise<ImageRecord> {
    const known = `sha256:${createHash('sha256').update(configBytes).digest('hex')}`;
    if (this.db.prepare('SELECT 1 FROM images WHERE id = ?').get(known) && this.content.has(known as Digest))
      return this.byId(known); // a cached rebuild
    const config = parseImageConfig(configBytes);
    for (const d of config.rootfs.diff_ids)
      if (!this.content.has(d as Digest)) throw invalidArgument(`layer ${d} is missing`);
    await this.unpack(config.rootfs.diff_ids);
    const { digest } = await this.content.writeBytes(configBytes);
    const size = config.rootfs.diff_ids.reduce((n, d) => n + this.content.size(d as Digest), 0);
    this.db
      .prepare('INSERT OR IGNORE INTO images (id, parent, size, created) VALUES (?, ?, ?, ?)')
      .run(digest, parent, size, config.created ?? EPOCH);
    this.cache.delete(digest);
    return this.byId(digest);
  }

  byId(id: string): ImageRecord {
    const hit = this.cache.get(id);
    if (hit) {
      hit.repoTags = this.tagsOf(id);
      hit.repoDigests = this.digestsOf(id);
      return hit;
    }
    const row = this.db.prepare('SELECT id, parent, size, created FROM images WHERE id = ?').get(id) as
      { id: string; parent: string; size: number; created: string } | undefined;
    if (!row) throw notFound(`No such image: ${id}`);
    const config = parseImageConfig(readFileSync(this.content.path(id as Digest))); // small, cached after the first read
    const chains = chainIds(config.rootfs.diff_ids);
    const rec: ImageRecord = {
      id: row.id as Digest,
      repoTags: this.tagsOf(id),
      repoDigests: this.digestsOf(id),
      parent: row.parent,
      created: config.created ?? row.created,
      size: row.size,
      config,
      topChainId: chains[chains.length - 1] ?? null,
    };
    this.cache.set(id, rec);
    return rec;
  }

  private tagsOf(id: string): string[] {
    return (
      this.db.prepare('SELECT ref FROM tags WHERE image_id = ? ORDER BY ref').all(id) as Array<{ ref: string }>
    ).map((r) => r.ref);
  }

  private digestsOf(id: string): string[] {
    return (
      this.db.prepare('SELECT ref FROM digests WHERE image_id = ? ORDER BY ref').all(id) as Array<{ ref: string }>
    ).map((r) => r.ref);
  }

  list(): ImageRecord[] {
    return (this.db.prepare('SELECT id FROM images').all() as Array<{ id: string }>).map((r) => this.byId(r.id));
  }

  /** Resolves a reference: tag first, then `name@digest`, then a unique id prefix (as Docker). */
  resolve(ref: string): { image: ImageRecord; tag: string | null } {
    const prefix = idPrefix(ref);
    if (prefix && (ref.startsWith('sha256:') || prefix.length === 64))
      return { image: this.byPrefix(ref, prefix), tag: null };
    const r = parseReference(ref);
    if (r.digest) {
      const row = this.db.prepare('SELECT image_id FROM digests WHERE ref = ?').get(`${r.name}@${r.digest}`) as
        { image_id: string } | undefined;
      if (!row) throw notFound(`No such image: ${ref}`);
      return { image: this.byId(row.image_id), tag: null };
    }
    const tag = `${r.name}:${r.tag ?? 'latest'}`;
    const row = this.db.prepare('SELECT image_id FROM tags WHERE ref = ?').get(tag) as { image_id: string } | undefined;
    if (row) return { image: this.byId(row.image_id), tag };
    if (prefix && !r.tag) return { image: this.byPrefix(ref, prefix), tag: null };
    throw notFound(`No such image: ${tag}`);
  }

  private byPrefix(ref: string, prefix: string): ImageRecord {
    const rows = this.db.prepare('SELECT id FROM images WHERE id LIKE ?').all(`sha256:${prefix}%`) as Array<{
      id: string;
    }>;
    if (rows.length === 0) throw notFound(`No such image: ${ref}`);
    if (rows.length > 1) throw invalidArgument(`multiple images found with provided prefix: ${ref}`);
    return this.byId(rows[0]!.id);
  }

  setTag(ref: string, id: string): void {
    const tag = tagOf(ref);
    this.db
      .prepare(
        'INSERT INTO tags (ref, image_id) VALUES (?, ?) ON CONFLICT(ref) DO UPDATE SET image_id = excluded.image_id',
      )
      .run(tag, id);
  }

  retain(chains: () => string[][]): void {
    this.retainers.push(chains);
  }

  private retained(): string[][] {
    return [...this.list().map((i) => i.config.rootfs.diff_ids), ...this.retainers.flatMap((r) => r())];
  }

  /** The diff ids of every image's (and retainer's) layers: blobs that must stay in content. */
  usedDiffIds(): Set<string> {
    return new Set(this.retained().flat());
  }

  private usedChains(): Set<string> {
    return new Set(this.retained().flatMap((d) => chainIds(d)));
  }

  /** What the collector must keep (../metadata/gc.ts): every image's config and layers, and the retainers' layers. */
  gcRoots(): GcRoots {
    const images = this.list();
    const retained = this.retained();
    return {
      blobs: new Set([...images.map((i) => i.id), ...retained.flat()]),
      chains: new Set(retained.flatMap((d) => chainIds(d))),
    };
  }

  addDigest(ref: string, id: string): void {
    this.db
      .prepare(
        'INSERT INTO digests (ref, image_id) VALUES (?, ?) ON CONFLICT(ref) DO UPDATE SET image_id = excluded.image_id',
      )
      .run(ref, id);
    this.cache.delete(id);
  }

  untag(tag: string): void {
    this.db.prepare('DELETE FROM tags WHERE ref = ?').run(tag);
  }

  children(id: string): string[] {
    return (this.db.prepare('SELECT id FROM images WHERE parent = ?').all(id) as Array<{ id: string }>).map(
      (r) => r.id,
    );
  }

  /** Deletes an image record and its config blob; then every layer no other image uses. Returns the bytes freed. */
  async deleteImage(id: string): Promise<number> {
    const img = this.byId(id);
    this.db.transaction(() => {
      this.db.prepare('DELETE FROM tags WHERE image_id = ?').run(id);
      this.db.prepare('DELETE FROM digests WHERE image_id = ?').run(id);
      this.db.prepare('DELETE FROM images WHERE id = ?').run(id);
    })();
    this.cache.delete(id);
    const used = this.usedChains();
    const usedDiffs = this.usedDiffIds();
    const mine = chainIds(img.config.rootfs.diff_ids);
    let freed = 0;
    for (const c of mine.reverse()) {
      if (used.has(c)) continue;
      const size = this.snapshots.layer(c)?.size ?? 0;
      const gone = await this.snapshots.removeLayer(c).then(
        () => true,
        (e: unknown) => {
          if (isBerthError(e, 'Conflict')) return false; // in use by a container: stays
          throw e;
        },
      );
      if (gone) freed += size;
    }
    for (const d of new Set(img.config.rootfs.diff_ids)) {
      if (!usedDiffs.has(d)) freed += await this.deleteBlob(d as Digest);
    }
    if (!this.db.prepare('SELECT 1 FROM images WHERE id = ?').get(id)) freed += await this.deleteBlob(id as Digest);
    return freed;
  }

  /** Deletes a blob; returns its size (0 when it was not there). */
  private async deleteBlob(d: Digest): Promise<number> {
    const size = this.content.has(d) ? this.content.size(d) : 0;
    await this.content.delete(d);
    return size;
  }

  /** `docker rmi` semantics. */
  async remove(
    ref: string,
    opts: { force: boolean; noPrune: boolean },
    isUsed: (id: Digest) => boolean,
  ): Promise<RemoveResult[]> {
    const { image, tag } = this.resolve(ref);
    const out: RemoveResult[] = [];
    const tags = image.repoTags;
    if (tag && tags.length > 1) {
      this.untag(tag);
      return [{ Untagged: tag }, ...this.untagDigestsOfRepo(image.id, tag)];
    }
    if (!tag && tags.length > 1 && !opts.force)
      throw conflict(
        `conflict: unable to delete ${shortId(image.id)} (must be forced) - image is referenced in multiple repositories`,
      );
    if (isUsed(image.id)) {
      if (!opts.force) {
        throw conflict(
          tag
            ? `conflict: unable to remove repository reference "${ref}" (must force) - container is using its referenced image ${shortId(image.id)}`
            : `conflict: unable to delete ${shortId(image.id)} (must be forced) - image is being used by a container`,
        );
      }
      for (const t of tag ? [tag] : tags) {
        this.untag(t);
        out.push({ Untagged: t });
      }
      return out;
    }
    if (this.children(image.id).length > 0 && !tag)
      throw conflict(
        `conflict: unable to delete ${shortId(image.id)} (cannot be forced) - image has dependent child images`,
      );
    for (const t of tags) out.push({ Untagged: t });
    for (const d of image.repoDigests) out.push({ Untagged: d });
    if (this.children(image.id).length > 0) {
      for (const t of tags) this.untag(t);
      return out;
    }
    await this.deleteImage(image.id);
    out.push({ Deleted: image.id });
    return out;
  }

  /**
   * After `tag` was removed: the image's `repo@digest` references of the same repository go too
   * when no other tag of that repository still names the image (dockerd's rule).
   */
  private untagDigestsOfRepo(id: string, tag: string): RemoveResult[] {
    const repo = tag.slice(0, tag.lastIndexOf(':'));
    if (this.tagsOf(id).some((t) => t.slice(0, t.lastIndexOf(':')) === repo)) return [];
    const out: RemoveResult[] = [];
    for (const d of this.digestsOf(id).filter((d) => d.slice(0, d.indexOf('@')) === repo)) {
      this.db.prepare('DELETE FROM digests WHERE ref = ?').run(d);
      out.push({ Untagged: d });
    }
    this.cache.delete(id);
    return out;
  }

  history(ref: string): Array<HistoryEntry & { id: string; size: number }> {
    const img = this.resolve(ref).image;
    const diffs = [...img.config.rootfs.diff_ids];
    const entries: HistoryEntry[] = img.config.history ?? diffs.map(() => ({}));
    const out = entries.map((h) => ({
      ...h,
      id: '<missing>',
      size: h.empty_layer ? 0 : this.content.size((diffs.shift() ?? '') as Digest),
    }));
    out.reverse();
    if (out[0]) out[0].id = img.id;
    return out;
  }

  layersSize(): number {
    return this.snapshots.allLayers().reduce((n, l) => n + l.size, 0);
  }
}
