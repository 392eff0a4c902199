/**
 * Leases in berth.db. A lease belongs to one run of the daemon (`run`, random per start; the
 * root's lock file keeps one daemon per root): a lease of another run was left by a daemon that
 * died (kill -9, a crash, power loss) and holds nothing. A live lease is deleted when its work
 * settles, whatever the outcome, with what it held (`lease_resources`, ON DELETE CASCADE).
 */
import { randomBytes } from 'node:crypto';
import type { Clock } from '../base/clock.js';
import { heldLease, runUnder, type Lease, type Leases } from '../content/lease.js';
import { migrate, type Db } from './db.js';

const MIGRATIONS = [
  `CREATE TABLE leases (id TEXT PRIMARY KEY, run TEXT NOT NULL, label TEXT NOT NULL, created INTEGER NOT NULL);
   CREATE TABLE lease_resources (lease TEXT NOT NULL REFERENCES leases(id) ON DELETE CASCADE,
     kind TEXT NOT NULL, id TEXT NOT NULL, PRIMARY KEY (lease, kind, id))`,
];

export interface LeaseRecord {
  id: string;
  run: string;
  label: string;
  /** ms since the epoch, from the clock */
  created: number;
}

/** What live leases hold, by kind. */
export interface Held {
  blobs: Set<string>;
  snapshots: Set<string>;
}

export class LeaseManager implements Leases {
  /** This daemon run's id. */
  readonly run: string;

  constructor(
    private readonly db: Db,
    private readonly clock: Clock,
    run = randomBytes(8).toString('hex'),
  ) {
    this.run = run;
    migrate(db, 'leases', MIGRATIONS);
  }

  async withLease<T>(label: string, work: () => Promise<T>): Promise<T> {
    const lease = this.create(label, heldLease());
    try {
      return await runUnder(lease, work);
    } finally {
      this.db.transaction(() => {
        this.db.prepare('DELETE FROM lease_resources WHERE lease = ?').run(lease.id);
        this.db.prepare('DELETE FROM leases WHERE id = ?').run(lease.id);
      })();
    }
  }

  /** A lease record and its handle; `outer` (the lease of the work this one runs in) holds what it holds too. */
  private create(label: string, outer: Lease | undefined): Lease {
    const id = randomBytes(8).toString('hex');
    this.db
      .prepare('INSERT INTO leases (id, run, label, created) VALUES (?, ?, ?, ?)')
      .run(id, this.run, label, this.clock.now());
    const insert = this.db.prepare(
      `INSERT OR IGNORE INTO lease_resources (lease, kind, id)
       SELECT ?, ?, ? WHERE EXISTS (SELECT 1 FROM leases WHERE id = ?)`,
    );
    return {
      id,
      hold: (kind, item) => {
        insert.run(id, kind, item, id);
        outer?.hold(kind, item);
      },
    };
  }

  /** Leases on record (live and dead). */
  list(): LeaseRecord[] {
    return this.db.prepare('SELECT id, run, label, created FROM leases ORDER BY created').all() as LeaseRecord[];
  }

  /** What the leases of this run hold; a dead run's leases hold nothing. */
  held(): Held {
    const rows = this.db
      .prepare('SELECT r.kind, r.id FROM lease_resources r JOIN leases l ON l.id = r.lease WHERE l.run = ?')
      .all(this.run) as Array<{ kind: string; id: string }>;
    const out: Held = { blobs: new Set(), snapshots: new Set() };
    for (const r of rows) (r.kind === 'blob' ? out.blobs : out.snapshots).add(r.id);
    return out;
  }

  /** Deletes the leases of dead runs (what they held is then garbage like anything unreferenced). Returns how many. */
  dropDead(): number {
    return this.db.transaction(() => {
      this.db
        .prepare('DELETE FROM lease_resources WHERE lease IN (SELECT id FROM leases WHERE run != ?)')
        .run(this.run);
      return this.db.prepare('DELETE FROM leases WHERE run != ?').run(this.run).changes;
    })();
  }
}
