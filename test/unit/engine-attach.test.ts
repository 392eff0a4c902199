/**
 * Attach before start (start.ts's AttachBroker) and the event bus's time, over the fake runtime
 * and a ManualClock: an attacher waiting for a created container gets its session after the
 * runtime created it and before its process starts (no output lost), or the start's error.
 */
import { StartFailure } from '../../src/runtime/errors.js';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Bench } from './fakes/engine.js';

test('an attach to a created container connects between the runtime create and start', async (t) => {
  const b = new Bench();
  t.after(() => b.close());
  const rec = b.add();
  const { session } = b.lifecycle.attach(rec, { stdin: true });
  let attached = false;
  void session.then(() => (attached = true));
  await b.until(() => true);
  assert.equal(attached, false, 'waits for the start');
  await b.lifecycle.start(rec);
  await session;
  assert.deepEqual(b.runtime.calls, [`create ${rec.id}`, `attach ${rec.id} stdin`, `start ${rec.id}`]);
  // running: attached at once
  await b.lifecycle.attach(rec, { stdin: false }).session;
  assert.equal(b.runtime.calls.at(-1), `attach ${rec.id}`);
});

test("a failed start gives the waiting attacher the start's error; a cancelled attacher is not connected", async (t) => {
  const b = new Bench();
  t.after(() => b.close());
  const rec = b.add();
  const waiting = b.lifecycle.attach(rec, { stdin: false });
  const cancelled = b.lifecycle.attach(rec, { stdin: true });
  cancelled.cancel();
  b.runtime.failCreate.set(rec.id, new StartFailure('permission-denied', 'permission denied'));
  await assert.rejects(b.lifecycle.start(rec), /permission denied/);
  await assert.rejects(waiting.session, /permission denied/);
  assert.equal(rec.state.exitCode, 126);
  await b.lifecycle.start(rec);
  assert.equal(b.runtime.calls.filter((c) => c.startsWith('attach')).length, 0, 'nobody left to connect');
});

test("events carry the clock's time; --since replays from the ring", async (t) => {
  const b = new Bench();
  t.after(() => b.close());
  const rec = b.add();
  await b.lifecycle.start(rec);
  const start = b.seen.at(-1)!;
  assert.equal(start.time, Math.floor(b.clock.now() / 1000));
  assert.ok(Math.abs(start.timeNano / 1e6 - b.clock.now()) < 1);
  b.clock.advance(5000);
  await b.lifecycle.pause(rec);
  const pause = b.seen.at(-1)!;
  assert.equal(pause.time - start.time, 5);
  assert.deepEqual(
    b.events.history(pause.timeNano).map((e) => e.Action),
    ['pause'],
  );
  assert.equal(rec.state.startedAt, new Date(b.clock.now() - 5000).toISOString(), 'started at the clock time');
});
