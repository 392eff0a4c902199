/**
 * Health checks (health.ts) over the fake runtime's execs and a ManualClock: starting -> healthy
 * -> unhealthy after Retries failures, the start period's grace and cadence, probe timeouts,
 * paused and stopped containers.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Bench } from './fakes/engine.js';
import type { ContainerRecord } from '../../src/engine/record.js';

const S = 1_000_000_000; // ns per second: the Healthcheck's unit

function healthy(b: Bench, hc: Record<string, number> = {}): ContainerRecord {
  return b.add({ config: { Image: 'busybox', Healthcheck: { Test: ['CMD', 'check'], Interval: 5 * S, ...hc } } });
}

const probes = (b: Bench) => b.runtime.calls.filter((c) => c.startsWith('exec ')).length;

/** Moves the clock `ms` and waits until `n` probes in all were recorded and the next one is scheduled. */
async function probeAt(b: Bench, rec: ContainerRecord, ms: number, n: number): Promise<void> {
  b.clock.advance(ms);
  await b.until(
    () => (rec.state.health?.Log.length ?? 0) >= Math.min(n, 5) && probes(b) === n && b.clock.pending === 1,
    `probe ${n}`,
  );
}

test('starting -> healthy on a success; unhealthy after Retries failures in a row; healthy again', async (t) => {
  const b = new Bench();
  t.after(() => b.close());
  const rec = healthy(b, { Retries: 3 });
  await b.lifecycle.start(rec);
  assert.deepEqual(rec.state.health, { Status: 'starting', FailingStreak: 0, Log: [] });
  b.clock.advance(4999);
  assert.equal(probes(b), 0, 'first probe one interval after the start');
  await probeAt(b, rec, 1, 1);
  assert.equal(rec.state.health?.Status, 'healthy');
  b.runtime.execResult = () => 1;
  await probeAt(b, rec, 5000, 2);
  await probeAt(b, rec, 5000, 3);
  assert.equal(rec.state.health?.Status, 'healthy');
  assert.equal(rec.state.health?.FailingStreak, 2);
  await probeAt(b, rec, 5000, 4);
  assert.equal(rec.state.health?.Status, 'unhealthy');
  assert.equal(rec.state.health?.FailingStreak, 3);
  b.runtime.execResult = () => 0;
  await probeAt(b, rec, 5000, 5);
  assert.equal(rec.state.health?.Status, 'healthy');
  assert.equal(rec.state.health?.FailingStreak, 0);
  await probeAt(b, rec, 5000, 6);
  assert.equal(rec.state.health?.Log.length, 5, 'the last 5 results');
  const h = b.actions(rec.id).filter((a) => a.startsWith('health_status'));
  assert.deepEqual(h, ['health_status: healthy', 'health_status: unhealthy', 'health_status: healthy']);
  // the probe's times come from the clock
  assert.equal(rec.state.health?.Log.at(-1)?.Start, new Date(b.clock.now()).toISOString());
  // persisted with the record
  const row = b.db.prepare('SELECT doc FROM containers WHERE id = ?').get(rec.id) as { doc: string };
  assert.equal(JSON.parse(row.doc).state.health.Status, 'healthy');
});

test('start period: failures do not count while starting, probes every StartInterval; then they count', async (t) => {
  const b = new Bench();
  t.after(() => b.close());
  const rec = healthy(b, { Retries: 1, StartPeriod: 10 * S, StartInterval: 1 * S, Interval: 30 * S });
  b.runtime.execResult = () => 1;
  await b.lifecycle.start(rec);
  for (let n = 1; n <= 9; n++) {
    await probeAt(b, rec, 1000, n);
    assert.equal(rec.state.health?.Status, 'starting', `probe ${n} within the start period`);
    assert.equal(rec.state.health?.FailingStreak, 0);
  }
  await probeAt(b, rec, 1000, 10); // at 10 s: the start period is over
  assert.equal(rec.state.health?.Status, 'unhealthy');
  assert.equal(rec.state.health?.FailingStreak, 1);
  b.clock.advance(29_999);
  assert.equal(probes(b), 10, 'out of the start period: every Interval');
  await probeAt(b, rec, 1, 11);
});

test('a success within the start period makes it healthy; then the Interval applies', async (t) => {
  const b = new Bench();
  t.after(() => b.close());
  const rec = healthy(b, { StartPeriod: 60 * S, StartInterval: 1 * S, Interval: 20 * S });
  await b.lifecycle.start(rec);
  await probeAt(b, rec, 1000, 1);
  assert.equal(rec.state.health?.Status, 'healthy');
  b.clock.advance(19_999);
  assert.equal(probes(b), 1);
  await probeAt(b, rec, 1, 2);
});

test('a probe over its Timeout is killed and counts as a failure (exit -1)', async (t) => {
  const b = new Bench();
  t.after(() => b.close());
  const rec = healthy(b, { Timeout: 2 * S, Retries: 1 });
  b.runtime.execResult = () => 'hang';
  await b.lifecycle.start(rec);
  b.clock.advance(5000);
  await b.until(() => b.runtime.execs.length === 1, 'probe running');
  b.clock.advance(1999);
  assert.equal(b.runtime.execs.length, 1, 'still running before its timeout');
  b.clock.advance(1);
  await b.until(() => rec.state.health?.Log.length === 1, 'result');
  assert.equal(b.runtime.execs.length, 0, 'the probe was killed');
  assert.deepEqual(
    { ...rec.state.health?.Log[0], Start: '', End: '' },
    { Start: '', End: '', ExitCode: -1, Output: 'Health check exceeded timeout (2s)' },
  );
  assert.equal(rec.state.health?.Status, 'unhealthy');
});

test('a paused container is not probed; a stopped one keeps its health and restarts at starting', async (t) => {
  const b = new Bench();
  t.after(() => b.close());
  const rec = healthy(b);
  await b.lifecycle.start(rec);
  await probeAt(b, rec, 5000, 1);
  await b.lifecycle.pause(rec);
  b.clock.advance(5000);
  await b.until(() => b.clock.pending === 1, 'next probe scheduled');
  assert.equal(probes(b), 0 + 1, 'no probe while paused');
  await b.lifecycle.unpause(rec);
  await probeAt(b, rec, 5000, 2);
  await b.lifecycle.stop(rec);
  assert.equal(b.clock.pending, 0, 'probing stopped');
  assert.equal(rec.state.health?.Status, 'healthy');
  assert.equal(rec.state.health?.Log.length, 2);
  await b.lifecycle.start(rec);
  assert.deepEqual(rec.state.health, { Status: 'starting', FailingStreak: 0, Log: [] });
});

test('no health check, or NONE: no probes', async (t) => {
  const b = new Bench();
  t.after(() => b.close());
  const none = b.add({ config: { Image: 'busybox', Healthcheck: { Test: ['NONE'] } } });
  const plain = b.add();
  await b.lifecycle.start(none);
  await b.lifecycle.start(plain);
  assert.equal(b.clock.pending, 0);
  assert.equal(none.state.health, undefined);
});
