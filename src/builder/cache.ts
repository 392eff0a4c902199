/**
 * The build cache: step key -> the image config the step produced (its layers in content/ and
 * snapshots/). Kept in SQLite, so hits survive daemon restarts. An entry whose layers were
 * removed is a miss and is dropped. The layers of entries are retained by the image store
 * (not deleted with the last image that used them) until `builder prune`.
 */
import { createHash } from 'node:crypto';
import type { Clock } from '../base/clock.js';
import type { Db } from '../metadata/db.js';
import { migrate } from '../metadata/db.js';
import { parseImageConfig } from '../spec/image-parse.js';
import type { ImageConfig } from '../spec/image.js';

const MIGRATIONS = [
  'CREATE TABLE build_cache (key TEXT PRIMARY KEY, config TEXT NOT NULL, created TEXT NOT NULL, ' +
    'last_used TEXT NOT NULL)',
];

/** A step's key: the previous step's key and what this step does (instruction, args, file digests). */
export function stepKey(parent: string, ...parts: string[]): string {
  const h = createHash('sha256').update(parent);
  for (const p of parts) h.update('\0').update(p);
  return `sha256:${h.digest('hex')}`;
}

export class BuildCache {
  constructor(
    private readonly db: Db,
    private readonly clock: Clock,
  ) {
    migrate(db, 'builder', MIGRATIONS);
  }

  get(key: string, layerPresent: (diffId: string) => boolean): ImageConfig | null {
    const row = this.db.prepare('SELECT config FROM build_cache WHERE key = ?').get(key) as
      { config: string } | undefined;
    if (!row) return null;
    const config = parseImageConfig(Buffer.from(row.config));
    if (!config.rootfs.diff_ids.every(layerPresent)) {
      this.db.prepare('DELETE FROM build_cache WHERE key = ?').run(key);
      return null;
    }
    this.db
      .prepare('UPDATE build_cache SET last_used = ? WHERE key = ?')
      .run(new Date(this.clock.now()).toISOString(), key);
    return config;
  }

  put(key: string, config: ImageConfig): void {
    const now = new Date(this.clock.now()).toISOString();
    this.db
      .prepare(
        'INSERT INTO build_cache (key, config, created, last_used) VALUES (?, ?, ?, ?) ' +
          'ON CONFLICT(key) DO UPDATE SET config = excluded.config, last_used = excluded.last_used',
      )
      .run(key, JSON.stringify(config), now, now);
  }

  /** The layer chains (diff ids) the cache keeps alive. */
  chains(): string[][] {
    return (this.db.prepare('SELECT config FROM build_cache').all() as Array<{ config: string }>).map(
      (r) => (JSON.parse(r.config) as ImageConfig).rootfs.diff_ids,
    );
  }

  /** Every entry: its key and when it was made and last used (BuildKit's DiskUsage records). */
  entries(): Array<{ key: string; created: string; lastUsed: string }> {
    return this.db
      .prepare('SELECT key, created, last_used AS lastUsed FROM build_cache ORDER BY created')
      .all() as Array<{ key: string; created: string; lastUsed: string }>;
  }

  count(): number {
    return (this.db.prepare('SELECT COUNT(*) AS n FROM build_cache').get() as { n: number }).n;
  }

  /** Drops every entry (or those unused since `before`); returns how many. */
  clear(before?: Date): number {
    return before
      ? this.db.prepare('DELETE FROM build_cache WHERE last_used < ?').run(before.toISOString()).changes
      : this.db.prepare('DELETE FROM build_cache').run().changes;
  }
}
