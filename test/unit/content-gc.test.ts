/**
 * Content GC (issue #15 part 5): the mark (planCollection, pure) and the sweep over a real
 * content store, overlay snapshotter records and leases in SQLite, in a temp dir. A blob or layer
 * goes only when no image root, live lease or active snapshot (or a live child) keeps it; a dead
 * daemon run's lease keeps nothing; bytes reported are the bytes removed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { ManualClock } from '../../src/base/clock.js';
import { isBerthError } from '../../src/base/errors.js';
import { sha256, type Digest } from '../../src/base/digest.js';
import { ContentStore } from '../../src/content/store.js';
import { claim } from '../../src/content/lease.js';
import { openDb } from '../../src/metadata/db.js';
import { Collector, planCollection, type GcRoots } from '../../src/metadata/gc.js';
import { LeaseManager } from '../../src/metadata/leases.js';
import { SqliteSnapshotRecords } from '../../src/metadata/snapshot-records.js';
import { OverlaySnapshotter } from '../../src/snapshot/overlay.js';
import type { LayerInfo } from '../../src/snapshot/types.js';

const d = (c: string) => `sha256:${c.repeat(64)}` as Digest;
const layer = (c: string, parent: string | null, size = 10): LayerInfo => ({
  chainId: d(c),
  parent: parent && d(parent),
  diffId: d(c),
  size,
});
const none = { blobs: new Set<string>(), snapshots: new Set<string>() };

test('mark: roots, leases and active snapshots keep a layer and its ancestors; the rest goes children first', () => {
  const layers = [
    layer('a', null),
    layer('b', 'a'),
    layer('c', 'b'),
    layer('e', null),
    layer('f', 'e'),
    layer('g', null),
    layer('h', null),
  ];
  const plan = planCollection({
    blobs: [
      { digest: d('1'), size: 1 },
      { digest: d('2'), size: 2 },
      { digest: d('3'), size: 3 },
    ],
    layers,
    orphanDirs: [d('9'), d('a')],
    activeParents: [d('g'), null],
    held: { blobs: new Set([d('3')]), snapshots: new Set() },
    roots: { blobs: new Set([d('1')]), chains: new Set([d('b')]) },
  });
  assert.deepEqual(
    plan.blobs.map((b) => b.digest),
    [d('2')],
  ); // 1: an image's; 3: leased
  // a, b: image chain (b and its parent); g: a container's parent; c, f, e, h go: f (child) before e
  assert.deepEqual(
    plan.layers.map((l) => l.chainId),
    [d('c'), d('f'), d('e'), d('h')],
  );
  assert.deepEqual(plan.orphanDirs, [d('9')]); // a dir named for a marked chain stays
  const leasedTop = planCollection({
    blobs: [],
    layers,
    orphanDirs: [],
    activeParents: [],
    roots: { blobs: new Set(), chains: new Set() },
    held: { blobs: new Set(), snapshots: new Set([d('c')]) },
  });
  assert.deepEqual(
    leasedTop.layers.map((l) => l.chainId),
    [d('f'), d('e'), d('g'), d('h')],
  );
  const empty = planCollection({
    blobs: [],
    layers: [],
    orphanDirs: [],
    activeParents: [],
    held: none,
    roots: { blobs: new Set(), chains: new Set() },
  });
  assert.deepEqual(empty, { blobs: [], layers: [], orphanDirs: [] });
});

function stack(root: string, run: string) {
  const db = openDb(join(root, 'berth.db'));
  const content = new ContentStore(root);
  const snapshots = new OverlaySnapshotter(root, new SqliteSnapshotRecords(db));
  const leases = new LeaseManager(db, new ManualClock(), run);
  let roots: GcRoots = { blobs: new Set(), chains: new Set() };
  const gc = new Collector({ content, snapshots, leases, roots: () => roots });
  return { db, content, snapshots, leases, gc, setRoots: (r: GcRoots) => void (roots = r) };
}

const fill = (text: string) => async (dir: string) => writeFileSync(join(dir, 'f'), text);

test("sweep: orphans and a dead run's lease go; roots, live leases and active parents stay; bytes are counted", async () => {
  const root = mkdtempSync(join(tmpdir(), 'gc-'));
  try {
    // a daemon run that dies holding a lease: its blob and layer are orphans after the restart
    const dead = stack(root, 'dead');
    await dead.content.init();
    await dead.snapshots.init();
    let landed!: () => void;
    const orphaned = new Promise<void>((r) => (landed = r));
    void dead.leases.withLease('pull x', async () => {
      await dead.content.writeBytes(Buffer.from('orphan blob'));
      await dead.snapshots.commitLayer(layer('o', null, 7), fill('orphan layer'));
      landed();
      await new Promise(() => undefined); // killed here: the lease is never released
    });
    await orphaned;
    assert.equal(dead.leases.list().length, 1);
    dead.db.close();

    const s = stack(root, 'live');
    await s.content.init();
    await s.snapshots.init();
    const img = await s.content.writeBytes(Buffer.from('image config'));
    await s.snapshots.commitLayer(layer('a', null, 5), fill('a'));
    await s.snapshots.commitLayer(layer('b', 'a', 6), fill('b'));
    await s.snapshots.commitLayer(layer('c', null, 8), fill('c'));
    await s.snapshots.prepare('container1', d('c')); // a container's layer
    mkdirSync(join(root, 'snapshots', 'layers', '9'.repeat(64), 'fs'), { recursive: true }); // renamed in, record never written
    writeFileSync(join(root, 'snapshots', 'layers', '9'.repeat(64), 'fs', 'x'), '12345');
    s.setRoots({ blobs: new Set([img.digest]), chains: new Set([d('b')]) });

    let release!: () => void;
    let inside!: () => void;
    const held = new Promise<void>((r) => (inside = r));
    const live = s.leases.withLease('pull y', async () => {
      await s.content.writeBytes(Buffer.from('pulling'));
      await s.snapshots.commitLayer(layer('p', null, 3), fill('p'));
      inside();
      await new Promise<void>((r) => (release = r));
    });
    await held;
    const r1 = await s.gc.collect();
    assert.deepEqual({ ...r1, bytes: undefined }, { blobs: 1, layers: 1, dirs: 1, bytes: undefined, deadLeases: 1 });
    assert.equal(r1.bytes, 'orphan blob'.length + 7 + 5);
    assert.ok(!s.content.has(sha256('orphan blob')));
    assert.ok(!existsSync(join(root, 'snapshots', 'layers', 'o'.repeat(64))) || !s.snapshots.layer(d('o')));
    assert.equal(s.snapshots.layer(d('o')), undefined);
    assert.ok(s.content.has(img.digest) && s.content.has(sha256('pulling')));
    for (const c of ['a', 'b', 'c', 'p']) assert.ok(s.snapshots.layer(d(c)), `layer ${c} kept`);
    assert.deepEqual(
      s.leases.list().map((l) => l.label),
      ['pull y'],
    );

    release();
    await live; // released without registering anything: what it landed is garbage now
    const r2 = await s.gc.collect();
    assert.deepEqual({ blobs: r2.blobs, layers: r2.layers, dirs: r2.dirs }, { blobs: 1, layers: 1, dirs: 0 });
    assert.equal(r2.bytes, 'pulling'.length + 3);
    assert.equal(s.snapshots.layer(d('p')), undefined);
    await s.snapshots.remove('container1');
    s.setRoots({ blobs: new Set(), chains: new Set() });
    const r3 = await s.gc.collect();
    assert.equal(r3.layers, 3); // b before a; c once its container is gone
    assert.equal((await s.gc.collect()).bytes, 0); // nothing left to take
    s.db.close();
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('content: a delete that fails keeps its category (EPERM is PermissionDenied, not a 404 or silence)', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'gc-'));
  const cs = new ContentStore(root);
  await cs.init();
  const b = await cs.writeBytes(Buffer.from('immutable'));
  try {
    try {
      execFileSync('chattr', ['+i', cs.path(b.digest)], { stdio: 'ignore' });
    } catch {
      t.skip('chattr +i is not available on this filesystem');
      return;
    }
    await assert.rejects(cs.delete(b.digest), (e: unknown) => isBerthError(e, 'PermissionDenied'));
    assert.throws(
      () => cs.deleteUnless(b.digest, () => false),
      (e: unknown) => isBerthError(e, 'PermissionDenied'),
    );
    assert.ok(cs.has(b.digest));
    await cs.delete(sha256('never written')); // absent is fine
    assert.throws(
      () => cs.size(sha256('never written')),
      (e: unknown) => isBerthError(e, 'NotFound'),
    );
  } finally {
    execFileSync('chattr', ['-i', cs.path(b.digest)], { stdio: 'ignore' });
    rmSync(root, { recursive: true, force: true });
  }
});

test('sweep: a blob that lands during a collection, with or without a lease, is not taken (the last look at claims)', async () => {
  const root = mkdtempSync(join(tmpdir(), 'gc-'));
  try {
    const s = stack(root, 'live');
    await s.content.init();
    await s.snapshots.init();
    const old = await s.content.writeBytes(Buffer.from('garbage from before'));
    let late: Digest | undefined;
    // the listing runs after the blob landed (no lease, no root): only the claim watch can keep it
    const listing = s.content.list.bind(s.content);
    const gc = new Collector({
      content: {
        list: async () => {
          late ??= (await s.content.writeBytes(Buffer.from('landed while collecting'))).digest;
          return listing();
        },
        deleteUnless: (dg, keep) => s.content.deleteUnless(dg, keep),
      },
      snapshots: s.snapshots,
      leases: s.leases,
      roots: () => ({ blobs: new Set(), chains: new Set() }),
    });
    const r = await gc.collect();
    assert.equal(r.blobs, 1);
    assert.ok(!s.content.has(old.digest));
    assert.ok(late && s.content.has(late), 'claimed during the collection: kept');
    assert.equal((await gc.collect()).blobs, 1); // the next collection, with nothing holding it, takes it
    s.db.close();
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('leases: held while the work runs (nested ones hold for the outer too), released whatever the outcome', async () => {
  const db = openDb(':memory:');
  const clock = new ManualClock();
  const leases = new LeaseManager(db, clock, 'run1');
  const blob = sha256('x');
  await leases.withLease('build', async () => {
    await leases.withLease('pull busybox', async () => {
      claim('blob', blob);
      assert.deepEqual(
        leases.list().map((l) => [l.label, l.created]),
        [
          ['build', clock.now()],
          ['pull busybox', clock.now()],
        ],
      );
    });
    assert.deepEqual(
      leases.list().map((l) => l.label),
      ['build'],
    );
    assert.ok(leases.held().blobs.has(blob), 'the outer lease holds what the inner one landed');
  });
  assert.deepEqual(leases.list(), []);
  assert.equal(leases.held().blobs.size, 0);
  await assert.rejects(
    leases.withLease('load', async () => {
      claim('snapshot', d('a'));
      throw new Error('bad archive');
    }),
    /bad archive/,
  );
  assert.deepEqual(leases.list(), []);
  claim('blob', blob); // no lease in this context: nothing recorded, no error
  const other = new LeaseManager(db, clock, 'run2'); // the next daemon run on the same database
  let inside!: () => void;
  const entered = new Promise<void>((r) => (inside = r));
  void leases.withLease('pull stuck', async () => {
    claim('blob', blob);
    inside();
    await new Promise(() => undefined);
  });
  await entered;
  assert.equal(other.held().blobs.size, 0, 'a lease of another run holds nothing');
  assert.equal(other.dropDead(), 1);
  assert.deepEqual(other.list(), []);
  db.close();
});
