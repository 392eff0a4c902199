import type { Db } from '../metadata/db.js';
import { migrate } from '../metadata/db.js';
import { alreadyExists, notFound, invalidArgument, internal } from '../base/errors.js';
import { asObject } from '../base/json.js';
import type { ContainerRecord } from './record.js';

const MIGRATIONS = [
  `CREATE TABLE containers (
     id   TEXT PRIMARY KEY,
     name TEXT NOT NULL UNIQUE,
     doc  TEXT NOT NULL
   )`,
];

const NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

/**
 * Container records: SQLite is the truth, an in-memory map serves reads. Every mutation is
 * written through before it returns, so a killed daemon restarts from what it last promised.
 */
/** dockerd's words for a name another container holds (clients match on "is already in use"). */
export const nameInUse = (name: string, id: string): string =>
  `Conflict. The container name "/${name}" is already in use by container "${id}". ` +
  'You have to remove (or rename) that container to be able to reuse that name.';

export class ContainerStore {
  private readonly byId = new Map<string, ContainerRecord>();
  private readonly byName = new Map<string, ContainerRecord>();

  constructor(private readonly db: Db) {
    migrate(db, 'containers', MIGRATIONS);
    for (const row of db.prepare('SELECT doc FROM containers').all() as Array<{ doc: string }>) {
      const rec = parseRecord(JSON.parse(row.doc));
      this.byId.set(rec.id, rec);
      this.byName.set(rec.name, rec);
    }
  }

  static validName(name: string): void {
    if (!NAME_RE.test(name))
      throw invalidArgument(`Invalid container name (${name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed`);
  }

  all(): ContainerRecord[] {
    return [...this.byId.values()];
  }

  /** By full id only (no name, no prefix scan). */
  byFullId(id: string): ContainerRecord | undefined {
    return this.byId.get(id);
  }

  /** Finds by full id, name (with or without '/'), or unique id prefix. */
  find(ref: string): ContainerRecord | undefined {
    const exact = this.byId.get(ref) ?? this.byName.get(ref.replace(/^\//, ''));
    if (exact) return exact;
    if (!/^[a-f0-9]+$/.test(ref)) return undefined;
    let found: ContainerRecord | undefined;
    for (const r of this.byId.values()) {
      if (r.id.startsWith(ref)) {
        if (found) throw invalidArgument(`multiple IDs found with provided prefix: ${ref}`);
        found = r;
      }
    }
    return found;
  }

  get(ref: string): ContainerRecord {
    const r = this.find(ref);
    if (!r) throw notFound(`No such container: ${ref}`);
    return r;
  }

  insert(rec: ContainerRecord): void {
    const clash = this.byName.get(rec.name);
    if (clash) throw alreadyExists(nameInUse(rec.name, clash.id));
    this.db
      .prepare('INSERT INTO containers (id, name, doc) VALUES (?, ?, ?)')
      .run(rec.id, rec.name, JSON.stringify(rec));
    this.byId.set(rec.id, rec);
    this.byName.set(rec.name, rec);
  }

  /** Persists the record after in-place changes. */
  save(rec: ContainerRecord): void {
    if (!this.byId.has(rec.id)) throw internal(`saving unknown container ${rec.id}`);
    this.db.prepare('UPDATE containers SET doc = ? WHERE id = ?').run(JSON.stringify(rec), rec.id);
  }

  rename(rec: ContainerRecord, newName: string): void {
    ContainerStore.validName(newName);
    const clash = this.byName.get(newName);
    if (clash && clash.id !== rec.id) throw alreadyExists(nameInUse(newName, clash.id));
    const old = rec.name;
    rec.name = newName;
    try {
      this.db.prepare('UPDATE containers SET name = ?, doc = ? WHERE id = ?').run(newName, JSON.stringify(rec), rec.id);
    } catch (e) {
      rec.name = old;
      throw e;
    }
    this.byName.delete(old);
    this.byName.set(newName, rec);
  }

  delete(rec: ContainerRecord): void {
    this.db.prepare('DELETE FROM containers WHERE id = ?').run(rec.id);
    this.byId.delete(rec.id);
    this.byName.delete(rec.name);
  }
}

function parseRecord(v: unknown): ContainerRecord {
  const o = asObject(v, 'container record');
  if (typeof o['id'] !== 'string' || typeof o['name'] !== 'string' || typeof o['state'] !== 'object')
    throw internal('corrupt container record in berth.db');
  return o as unknown as ContainerRecord;
}
