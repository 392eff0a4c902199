import type { Db } from '../metadata/db.js';
import { migrate } from '../metadata/db.js';
import { alreadyExists, notFound, invalidArgument, internal } from '../base/errors.js';
import { asObject } from '../base/json.js';
import { namespaceOf, type ContainerRecord, type Namespace } from './record.js';

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

/** The name's key, in memory and in the table's unique `name` column: `k8s.io/<name>` outside Docker's namespace. */
const keyOf = (ns: Namespace, name: string): string => (ns ? `${ns}/${name}` : name);

export class ContainerStore {
  private readonly byId = new Map<string, ContainerRecord>();
  private readonly byName = new Map<string, ContainerRecord>();

  constructor(private readonly db: Db) {
    migrate(db, 'containers', MIGRATIONS);
    for (const row of db.prepare('SELECT doc FROM containers').all() as Array<{ doc: string }>) {
      const rec = parseRecord(JSON.parse(row.doc));
      this.byId.set(rec.id, rec);
      this.byName.set(keyOf(namespaceOf(rec), rec.name), rec);
    }
  }

  static validName(name: string): void {
    if (!NAME_RE.test(name))
      throw invalidArgument(`Invalid container name (${name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed`);
  }

  /** Every container, of every namespace (the engine's own bookkeeping). */
  all(): ContainerRecord[] {
    return [...this.byId.values()];
  }

  /** By full id only (no name, no prefix scan). */
  byFullId(id: string): ContainerRecord | undefined {
    return this.byId.get(id);
  }

  /** The containers of one front door's namespace. */
  inNamespace(ns: Namespace): ContainerRecord[] {
    return this.all().filter((r) => namespaceOf(r) === ns);
  }

  /**
   * Finds by full id, name (with or without '/'), or unique id prefix. With `ns`, only in that
   * namespace (what a front door may see); without, ids of any namespace and Docker's names.
   */
  find(ref: string, ns?: Namespace): ContainerRecord | undefined {
    const inNs = (r: ContainerRecord | undefined) => (r && (ns === undefined || namespaceOf(r) === ns) ? r : undefined);
    const exact = inNs(this.byId.get(ref)) ?? this.byName.get(keyOf(ns ?? '', ref.replace(/^\//, '')));
    if (exact) return exact;
    if (!/^[a-f0-9]+$/.test(ref)) return undefined;
    let found: ContainerRecord | undefined;
    for (const r of this.byId.values()) {
      if (r.id.startsWith(ref) && inNs(r)) {
        if (found) throw invalidArgument(`multiple IDs found with provided prefix: ${ref}`);
        found = r;
      }
    }
    return found;
  }

  get(ref: string, ns?: Namespace): ContainerRecord {
    const r = this.find(ref, ns);
    if (!r) throw notFound(`No such container: ${ref}`);
    return r;
  }

  insert(rec: ContainerRecord): void {
    const key = keyOf(namespaceOf(rec), rec.name);
    const clash = this.byName.get(key);
    if (clash) throw alreadyExists(nameInUse(rec.name, clash.id));
    this.db.prepare('INSERT INTO containers (id, name, doc) VALUES (?, ?, ?)').run(rec.id, key, JSON.stringify(rec));
    this.byId.set(rec.id, rec);
    this.byName.set(key, rec);
  }

  /** Persists the record after in-place changes. */
  save(rec: ContainerRecord): void {
    if (!this.byId.has(rec.id)) throw internal(`saving unknown container ${rec.id}`);
    this.db.prepare('UPDATE containers SET doc = ? WHERE id = ?').run(JSON.stringify(rec), rec.id);
  }

  /** Docker's namespace only (the CRI has no rename). */
  rename(rec: ContainerRecord, newName: string): void {
    ContainerStore.validName(newName);
    if (namespaceOf(rec) !== '') throw invalidArgument(`container ${rec.id} is not the Docker API's`);
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
    this.byName.delete(keyOf(namespaceOf(rec), rec.name));
  }
}

function parseRecord(v: unknown): ContainerRecord {
  const o = asObject(v, 'container record');
  if (typeof o['id'] !== 'string' || typeof o['name'] !== 'string' || typeof o['state'] !== 'object')
    throw internal('corrupt container record in berth.db');
  return o as unknown as ContainerRecord;
}
