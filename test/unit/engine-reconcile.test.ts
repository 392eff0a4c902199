/**
 * Live restore (reconcile.ts) after a daemon crash at each step of create, start, run, stop and
 * remove, over the fake runtime: what the records, the runtime's state and the container dirs say
 * when berthd comes back, and what it makes of them.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Bench } from './fakes/engine.js';
import { reconcile } from '../../src/engine/reconcile.js';
import { RestoreGate } from '../../src/engine/restore-gate.js';
import { newId } from '../../src/base/ids.js';
import type { ContainerRecord } from '../../src/engine/record.js';

/** A record as a crashed daemon left it: running since `startedAt`, with the pid the task has. */
function running(b: Bench, rec: ContainerRecord, status: 'running' | 'paused' = 'running'): void {
  const t = b.runtime.leave(rec.id, { status: status === 'paused' ? 'paused' : 'running' });
  rec.state = {
    ...rec.state,
    status,
    pid: t.pid,
    conmonPid: t.conmonPid,
    startedAt: new Date(b.clock.now()).toISOString(),
  };
  b.store.save(rec);
}

test('crash in create: a container dir without a record is removed (with any runtime state)', async (t) => {
  const b = new Bench();
  t.after(() => b.close());
  const bare = newId();
  mkdirSync(join(b.root, 'containers', bare, 'rootfs'), { recursive: true });
  const withTask = newId();
  mkdirSync(join(b.root, 'containers', withTask), { recursive: true });
  b.runtime.leave(withTask, { status: 'created' });
  const kept = b.add();
  await reconcile(b.reconcileDeps());
  for (const id of [bare, withTask]) {
    assert.equal(existsSync(join(b.root, 'containers', id)), false, `${id} dir removed`);
    assert.ok(b.runtime.calls.includes(`delete ${id}`));
    assert.ok(b.fileOps.includes(`discard ${id}`));
  }
  assert.equal(b.runtime.tasks.has(withTask), false, 'its task is gone');
  assert.ok(existsSync(join(b.root, 'containers', kept.id)), 'a container with a record stays');
  assert.equal(b.fileOps.includes(`discard ${kept.id}`), false);
});

test('crash in start before the runtime start: the task is deleted, the container stays created and starts', async (t) => {
  const b = new Bench();
  t.after(() => b.close());
  const rec = b.add();
  b.runtime.leave(rec.id, { status: 'created' });
  await reconcile(b.reconcileDeps());
  assert.equal(rec.state.status, 'created');
  assert.equal(b.runtime.tasks.has(rec.id), false);
  assert.deepEqual(b.actions(rec.id), []);
  assert.equal(await b.lifecycle.start(rec), true, 'no "already exists" from the runtime');
  assert.equal(rec.state.status, 'running');
});

test('crash in start after the runtime start: the running task is adopted', async (t) => {
  const b = new Bench();
  t.after(() => b.close());
  const rec = b.add();
  const task = b.runtime.leave(rec.id, { status: 'running' });
  await reconcile(b.reconcileDeps());
  assert.equal(rec.state.status, 'running');
  assert.equal(rec.state.pid, task.pid);
  assert.equal(rec.state.startedAt, new Date(b.clock.now()).toISOString());
  assert.deepEqual(b.actions(rec.id), ['start']);
  // and its exit is handled as any other
  b.runtime.exit(rec.id, 4);
  await b.until(() => rec.state.status === 'exited');
  assert.equal(rec.state.exitCode, 4);
});

test('a running container whose monitor lives stays running; its probes resume with their state', async (t) => {
  const b = new Bench();
  t.after(() => b.close());
  const S = 1_000_000_000;
  const rec = b.add({ config: { Image: 'busybox', Healthcheck: { Test: ['CMD', 'check'], Interval: 5 * S } } });
  running(b, rec);
  rec.state.health = { Status: 'healthy', FailingStreak: 0, Log: [] };
  b.store.save(rec);
  await reconcile(b.reconcileDeps());
  assert.equal(rec.state.status, 'running');
  assert.equal(rec.state.health?.Status, 'healthy', 'status kept (resume)');
  assert.equal(b.clock.pending, 1, 'next probe scheduled');
  assert.deepEqual(b.runtime.calls, [], 'nothing spawned, nothing deleted');
});

test('exited while the daemon was away: the recorded exit code, then the restart policy', async (t) => {
  const b = new Bench();
  t.after(() => b.close());
  const plain = b.add();
  const always = b.add({ restart: { Name: 'always', MaximumRetryCount: 0 } });
  for (const rec of [plain, always]) {
    running(b, rec);
    b.runtime.exit(rec.id, 42); // nobody listening: the daemon is down
  }
  await reconcile(b.reconcileDeps());
  assert.equal(plain.state.status, 'exited');
  assert.equal(plain.state.exitCode, 42);
  assert.deepEqual(b.actions(plain.id), ['die']);
  assert.equal(always.state.status, 'restarting');
  const started = b.next('start', always.id);
  b.clock.advance(100);
  await started;
  assert.equal(always.state.status, 'running');
  assert.equal(always.restartCount, 1);
});

test('monitor gone without an exit file (host reboot): exited 255 with the reason', async (t) => {
  const b = new Bench();
  t.after(() => b.close());
  const rec = b.add();
  running(b, rec);
  b.runtime.tasks.delete(rec.id);
  await reconcile(b.reconcileDeps());
  assert.equal(rec.state.status, 'exited');
  assert.equal(rec.state.exitCode, 255);
  assert.equal(rec.state.error, 'container monitor exited without recording an exit code');
});

test('crash in remove: a record saying removing goes with its files', async (t) => {
  const b = new Bench();
  t.after(() => b.close());
  const rec = b.add();
  rec.state.status = 'removing';
  b.store.save(rec);
  await reconcile(b.reconcileDeps());
  assert.equal(b.store.find(rec.id), undefined);
  assert.ok(b.fileOps.includes(`discard ${rec.id}`));
  assert.equal(existsSync(join(b.root, 'containers', rec.id)), false);
});

test('crash in a restart back-off: always comes back at daemon start; a stopped unless-stopped does not', async (t) => {
  const b = new Bench();
  t.after(() => b.close());
  const restarting = b.add({ restart: { Name: 'always', MaximumRetryCount: 0 } });
  restarting.state.status = 'restarting';
  b.store.save(restarting);
  const stopped = b.add({ restart: { Name: 'unless-stopped', MaximumRetryCount: 0 } });
  stopped.state.status = 'exited';
  stopped.manuallyStopped = true;
  b.store.save(stopped);
  const exited = b.add({ restart: { Name: 'unless-stopped', MaximumRetryCount: 0 } });
  exited.state.status = 'exited';
  b.store.save(exited);
  b.runtime.leave(exited.id, { status: 'stopped', monitor: false, exit: { code: 0, at: new Date(b.clock.now()) } });
  await reconcile(b.reconcileDeps());
  assert.equal(restarting.state.status, 'running');
  assert.equal(exited.state.status, 'running', 'its leftover runtime state was deleted first');
  assert.ok(b.runtime.calls.indexOf(`delete ${exited.id}`) < b.runtime.calls.indexOf(`create ${exited.id}`));
  assert.equal(stopped.state.status, 'exited');
  assert.equal(b.runtime.calls.includes(`create ${stopped.id}`), false);
});

test('freezer against the record: frozen but "running" is resumed; "paused" but thawed says running', async (t) => {
  const b = new Bench();
  t.after(() => b.close());
  const frozenRunning = b.add();
  running(b, frozenRunning);
  b.runtime.tasks.get(frozenRunning.id)!.status = 'paused'; // commit had paused it
  const thawedPaused = b.add();
  running(b, thawedPaused, 'paused');
  b.runtime.tasks.get(thawedPaused.id)!.status = 'running'; // died in an unpause
  const paused = b.add();
  running(b, paused, 'paused');
  const frozen = new Set<string>([frozenRunning.id, paused.id]);
  await reconcile(b.reconcileDeps((id) => frozen.has(id)));
  assert.ok(b.runtime.calls.includes(`resume ${frozenRunning.id}`));
  assert.equal(frozenRunning.state.status, 'running');
  assert.equal(b.runtime.tasks.get(frozenRunning.id)?.status, 'running');
  assert.equal(thawedPaused.state.status, 'running');
  assert.equal(paused.state.status, 'paused', "a user's pause stays");
  assert.equal(b.runtime.calls.includes(`resume ${paused.id}`), false);
});

test('no cgroup freezer: the runtime is asked', async (t) => {
  const b = new Bench();
  t.after(() => b.close());
  const rec = b.add();
  running(b, rec);
  b.runtime.tasks.get(rec.id)!.status = 'paused';
  await reconcile(b.reconcileDeps(() => null));
  assert.ok(b.runtime.calls.includes(`resume ${rec.id}`));
});

test('the restore gate: a request for one container gets it restored first; the list waits for all (issue #19)', async (t) => {
  const b = new Bench();
  t.after(() => b.close());
  const recs = Array.from({ length: 200 }, () => b.add());
  for (const rec of recs) running(b, rec);
  const last = recs[recs.length - 1]!;
  b.runtime.exit(last.id, 9); // died while the daemon was away; last in restore's order
  const gate = new RestoreGate();
  let probed = 0; // running containers whose freezer restore has read
  const deps = {
    ...b.reconcileDeps(),
    restoreGate: gate,
    frozen: async () => {
      probed++;
      return false;
    },
  };
  const done = reconcile(deps); // closes the gate before it returns
  let listed = false;
  const all = gate.done().then(() => (listed = true));
  await gate.one(last.id); // a request that asks for it hurries it
  assert.equal(last.state.status, 'exited', 'its exit is recorded before the request goes on');
  assert.equal(last.state.exitCode, 9);
  assert.ok(probed < recs.length - 1, `restored before the ones ahead of it (${probed} were)`);
  assert.equal(listed, false, 'a request for all still waits');
  await all;
  assert.equal(probed, recs.length - 1, 'every other one restored when the gate opens');
  assert.ok(recs.slice(0, -1).every((r) => r.state.status === 'running'));
  await done;
  await gate.one(recs[0]!.id); // open: resolves at once
});
