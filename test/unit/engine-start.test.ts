/**
 * The start path's network namespace (start.ts) for a container of a runtime that can
 * checkpoint: made before the runtime's create, replaced when a crash left one, removed when the
 * start fails and when the container exits; live restore removes one its dead process left.
 */
import { StartFailure } from '../../src/runtime/errors.js';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Bench } from './fakes/engine.js';
import { reconcile } from '../../src/engine/reconcile.js';

test('the namespace is made before create and goes with the exit', async (t) => {
  const b = new Bench();
  t.after(() => b.close());
  const rec = b.add();
  b.named.add(rec.id);
  const ns = b.netnsOf(rec.id)!;
  await b.lifecycle.start(rec);
  assert.deepEqual(b.netnsOps, [`add ${ns}`]);
  assert.deepEqual(b.runtime.tasks.get(rec.id)?.spec.network, { path: `/run/netns/${ns}` });
  const died = b.next('die', rec.id);
  b.runtime.exit(rec.id, 0);
  await died;
  assert.deepEqual(b.netnsOps, [`add ${ns}`, `del ${ns}`]);
  assert.equal(b.namespaces.size, 0);
});

test('a namespace a crash left is replaced; a failed create leaves none', async (t) => {
  const b = new Bench();
  t.after(() => b.close());
  const rec = b.add();
  b.named.add(rec.id);
  const ns = b.netnsOf(rec.id)!;
  b.namespaces.add(ns);
  b.runtime.failCreate.set(rec.id, new StartFailure('not-found', 'executable file not found in $PATH'));
  await assert.rejects(b.lifecycle.start(rec), /executable file not found/);
  assert.deepEqual(b.netnsOps, [`del ${ns}`, `add ${ns}`, `del ${ns}`]);
  assert.equal(b.namespaces.size, 0, 'nothing of the failed start stays');
  assert.equal(rec.state.status, 'created');
  await b.lifecycle.start(rec);
  assert.equal(rec.state.status, 'running');
  assert.ok(b.namespaces.has(ns));
});

test('live restore removes the namespace of a container that died with the daemon away', async (t) => {
  const b = new Bench();
  t.after(() => b.close());
  const rec = b.add();
  b.named.add(rec.id);
  const ns = b.netnsOf(rec.id)!;
  rec.state.status = 'exited';
  b.store.save(rec);
  b.namespaces.add(ns);
  await reconcile(b.reconcileDeps());
  assert.equal(b.namespaces.has(ns), false);
});
