import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock, systemClock } from '../../src/base/clock.js';

test('a manual clock runs due timers in order, each at its own time', () => {
  const clock = new ManualClock(1000);
  const seen: string[] = [];
  clock.setTimeout(() => seen.push(`b@${clock.now()}`), 20);
  clock.setTimeout(() => seen.push(`a@${clock.now()}`), 10);
  const c = clock.setTimeout(() => seen.push('cancelled'), 15);
  c.cancel();
  clock.setTimeout(() => clock.setTimeout(() => seen.push(`nested@${clock.now()}`), 5), 12);
  clock.advance(19);
  assert.deepEqual(seen, ['a@1010', 'nested@1017']);
  assert.equal(clock.now(), 1019);
  clock.advance(1);
  assert.deepEqual(seen, ['a@1010', 'nested@1017', 'b@1020']);
  assert.equal(clock.pending, 0);
});

test('sleep resolves when the clock reaches it and rejects on abort', async () => {
  const clock = new ManualClock(0);
  let done = false;
  const p = clock.sleep(100).then(() => (done = true));
  clock.advance(99);
  await Promise.resolve();
  assert.equal(done, false);
  clock.advance(1);
  await p;
  assert.equal(done, true);
  const ac = new AbortController();
  const q = clock.sleep(50, ac.signal);
  ac.abort(new Error('stop'));
  await assert.rejects(q, /stop/);
  assert.equal(clock.pending, 0);
  await assert.rejects(systemClock.sleep(10, AbortSignal.abort(new Error('early'))), /early/);
});
