import Database from 'better-sqlite3';

export type Db = Database.Database;

/**
 * Opens berth.db (WAL). Each subsystem owns its tables and brings its own migrations:
 * `migrate(db, 'images', [sql1, sql2, ...])` applies the ones not yet applied, in order,
 * each in a transaction. Never edit a released migration; append a new one.
 */
export function openDb(path: string): Db {
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.pragma('foreign_keys = ON');
  db.pragma('busy_timeout = 5000');
  db.exec('CREATE TABLE IF NOT EXISTS schema_migrations (subsystem TEXT PRIMARY KEY, version INTEGER NOT NULL)');
  return db;
}

export function migrate(db: Db, subsystem: string, steps: readonly string[]): void {
  const row = db.prepare('SELECT version FROM schema_migrations WHERE subsystem = ?').get(subsystem) as
    | { version: number }
    | undefined;
  const from = row?.version ?? 0;
  for (let v = from; v < steps.length; v++) {
    const sql = steps[v]!;
    db.transaction(() => {
      db.exec(sql);
      db.prepare(
        'INSERT INTO schema_migrations (subsystem, version) VALUES (?, ?) ON CONFLICT(subsystem) DO UPDATE SET version = excluded.version',
      ).run(subsystem, v + 1);
    })();
  }
}
