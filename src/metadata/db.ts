import Database from 'better-sqlite3';
import { chmodSync, closeSync, constants as fsc, lstatSync, openSync } from 'node:fs';

export type Db = Database.Database;

/**
 * Opens berth.db (WAL). Each subsystem owns its tables and brings its own migrations:
 * `migrate(db, 'images', [sql1, sql2, ...])` applies the ones not yet applied, in order,
 * each in a transaction. Never edit a released migration; append a new one.
 */
export function openDb(path: string): Db {
  createPrivate(path);
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.pragma('foreign_keys = ON');
  db.pragma('busy_timeout = 5000');
  db.exec('CREATE TABLE IF NOT EXISTS schema_migrations (subsystem TEXT PRIMARY KEY, version INTEGER NOT NULL)');
  cacheStatements(db);
  return db;
}

/** How many distinct SQL texts are kept prepared (berth's are all literals: a few dozen). */
const MAX_STATEMENTS = 256;

/**
 * `db.prepare(sql)` answers the statement prepared before for the same text: preparing costs
 * ~14 µs here against ~0.4 µs for running a simple one, and the stores prepare on every call (a
 * cached rebuild prepared ~100 times). Safe as berth uses statements: synchronously, never
 * `iterate()`d (a statement iterating could not serve a second caller), never switched to
 * `pluck`/`raw`/`expand` modes (which would stay on the shared statement). SQLite prepares a
 * statement again by itself when the schema changes under it.
 */
function cacheStatements(db: Db): void {
  const prepare = db.prepare.bind(db) as (sql: string) => Database.Statement;
  const stmts = new Map<string, Database.Statement>();
  (db as unknown as { prepare: (sql: string) => Database.Statement }).prepare = (sql: string) => {
    let s = stmts.get(sql);
    if (!s) {
      s = prepare(sql);
      if (stmts.size < MAX_STATEMENTS) stmts.set(sql, s);
    }
    return s;
  };
}

export function migrate(db: Db, subsystem: string, steps: readonly string[]): void {
  const row = db.prepare('SELECT version FROM schema_migrations WHERE subsystem = ?').get(subsystem) as
    { version: number } | undefined;
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

/**
 * The database holds every container's environment (secrets included): it is made 0600 before
 * SQLite opens it, and SQLite gives its -wal and -shm files the database file's mode. An existing
 * file (an older install, a loosened mode) is closed again here, its -wal and -shm too.
 */
function createPrivate(path: string): void {
  if (path === ':memory:' || path === '' || path.startsWith('file:')) return; // SQLite's names for no file (or a URI): nothing to make
  try {
    closeSync(openSync(path, fsc.O_CREAT | fsc.O_EXCL | fsc.O_WRONLY | fsc.O_NOFOLLOW, 0o600));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
  }
  for (const p of [path, `${path}-wal`, `${path}-shm`, `${path}-journal`]) {
    try {
      if (lstatSync(p).isFile() && (lstatSync(p).mode & 0o777) !== 0o600) chmodSync(p, 0o600);
    } catch {
      /* not there */
    }
  }
}
