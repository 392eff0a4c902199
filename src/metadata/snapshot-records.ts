/**
 * The snapshotter's records in berth.db: committed layers (`layers`) and active snapshots
 * (`active`), under the subsystem name `snapshots` (the tables and migration the snapshotter
 * used to apply itself: an existing database is read as it is).
 */
import type { LayerInfo, SnapshotRecords } from '../snapshot/types.js';
import { migrate, type Db } from './db.js';

const MIGRATIONS = [
  `CREATE TABLE layers (chain_id TEXT PRIMARY KEY, parent TEXT, diff_id TEXT NOT NULL, size INTEGER NOT NULL);
   CREATE TABLE active (key TEXT PRIMARY KEY, parent TEXT)`,
];

interface LayerRow {
  chain_id: string;
  parent: string | null;
  diff_id: string;
  size: number;
}

const infoOf = (r: LayerRow): LayerInfo => ({ chainId: r.chain_id, parent: r.parent, diffId: r.diff_id, size: r.size });

export class SqliteSnapshotRecords implements SnapshotRecords {
  constructor(private readonly db: Db) {
    migrate(db, 'snapshots', MIGRATIONS);
  }

  layer(chainId: string): LayerInfo | undefined {
    const sql = 'SELECT chain_id, parent, diff_id, size FROM layers WHERE chain_id = ?';
    const r = this.db.prepare(sql).get(chainId) as LayerRow | undefined;
    return r && infoOf(r);
  }

  layers(): LayerInfo[] {
    return (this.db.prepare('SELECT chain_id, parent, diff_id, size FROM layers').all() as LayerRow[]).map(infoOf);
  }

  addLayer(info: LayerInfo): void {
    this.db
      .prepare('INSERT OR IGNORE INTO layers (chain_id, parent, diff_id, size) VALUES (?, ?, ?, ?)')
      .run(info.chainId, info.parent, info.diffId, info.size);
  }

  deleteLayer(chainId: string): void {
    this.db.prepare('DELETE FROM layers WHERE chain_id = ?').run(chainId);
  }

  hasChildren(chainId: string): boolean {
    const sql = 'SELECT 1 FROM layers WHERE parent = ? UNION SELECT 1 FROM active WHERE parent = ?';
    return this.db.prepare(sql).get(chainId, chainId) !== undefined;
  }

  activeParent(key: string): string | null | undefined {
    const row = this.db.prepare('SELECT parent FROM active WHERE key = ?').get(key) as
      { parent: string | null } | undefined;
    return row ? row.parent : undefined;
  }

  addActive(key: string, parent: string | null): void {
    this.db.prepare('INSERT INTO active (key, parent) VALUES (?, ?)').run(key, parent);
  }

  deleteActive(key: string): void {
    this.db.prepare('DELETE FROM active WHERE key = ?').run(key);
  }

  activeKeys(prefix: string): string[] {
    const rows = this.db.prepare('SELECT key FROM active WHERE key LIKE ?').all(`${prefix}%`) as Array<{ key: string }>;
    return rows.map((r) => r.key);
  }

  activeParents(): Array<string | null> {
    const rows = this.db.prepare('SELECT DISTINCT parent FROM active').all() as Array<{ parent: string | null }>;
    return rows.map((r) => r.parent);
  }
}
