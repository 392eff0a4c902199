/**
 * The restart manager (lifecycle.ts) over the fake runtime and a ManualClock: policies, back-off
 * doubling from 100 ms to 1 min and its reset after 10 s of running, and no restart after a stop.
 */
import { StartFailure } from '../../src/runtime/errors.js';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Bench } from './fakes/engine.js';
import { KILL_WAIT_MS } from '../../src/engine/lifecycle.js';
import { BACKOFF_MAX_MS, BACKOFF_RESET_AFTER_MS, BACKOFF_START_MS } from '../../src/engine/restart.js';
import type { ContainerRecord } from '../../src/engine/record.js';

async function exitNow(b: Bench, rec: ContainerRecord, code: number): Promise<void> {
  const died = b.next('die', rec.id);
  b.runtime.exit(rec.id, code);
  await died;
}

/** The restart comes exactly `ms` after the exit: not a millisecond before. */
async function restartsAfter(b: Bench, rec: ContainerRecord, ms: number): Promise<void> {
  assert.equal(rec.state.status, 'restarting');
  const started = b.next('start', rec.id);
  b.clock.advance(ms - 1);
  assert.equal(rec.state.status, 'restarting', `no restart before ${ms} ms`);
  b.clock.advance(1);
  await started;
  assert.equal(rec.state.status, 'running');
}

test('always: restarts after exit 0 and after a failure, counting restarts', async (t) => {
  const b = new Bench();
  t.after(() => b.close());
  const rec = b.add({ restart: { Name: 'always', MaximumRetryCount: 0 } });
  assert.equal(await b.lifecycle.start(rec), true);
  await exitNow(b, rec, 0);
  await restartsAfter(b, rec, BACKOFF_START_MS);
  await exitNow(b, rec, 3);
  await restartsAfter(b, rec, BACKOFF_START_MS * 2);
  assert.equal(rec.restartCount, 2);
  assert.deepEqual(b.actions(rec.id), ['start', 'die', 'start', 'die', 'start']);
  // the exit code and time the runtime recorded
  assert.equal(rec.state.exitCode, 0);
});

test('back-off doubles from 100 ms up to 1 min, and resets after 10 s of running', async (t) => {
  const b = new Bench();
  t.after(() => b.close());
  const rec = b.add({ restart: { Name: 'always', MaximumRetryCount: 0 } });
  await b.lifecycle.start(rec);
  const delays: number[] = [];
  for (let d = BACKOFF_START_MS; delays.length < 12; d = Math.min(d * 2, BACKOFF_MAX_MS)) {
    await exitNow(b, rec, 1);
    await restartsAfter(b, rec, d);
    delays.push(d);
  }
  assert.deepEqual(delays, [100, 200, 400, 800, 1600, 3200, 6400, 12800, 25600, 51200, 60000, 60000]);
  // ran just under 10 s: the back-off goes on from 1 min
  b.clock.advance(BACKOFF_RESET_AFTER_MS - 1);
  await exitNow(b, rec, 1);
  await restartsAfter(b, rec, BACKOFF_MAX_MS);
  // ran 10 s: back to 100 ms
  b.clock.advance(BACKOFF_RESET_AFTER_MS);
  await exitNow(b, rec, 1);
  await restartsAfter(b, rec, BACKOFF_START_MS);
  assert.equal(rec.restartCount, 14);
});

test('on-failure:2 restarts two failures, then stays exited; each exit wakes the waiters of its time', async (t) => {
  const b = new Bench();
  t.after(() => b.close());
  const rec = b.add({ restart: { Name: 'on-failure', MaximumRetryCount: 2 } });
  await b.lifecycle.start(rec);
  const woke: Array<[string, number]> = [];
  const waitFor = (c: 'not-running' | 'next-exit' | 'removed', tag: string) =>
    void b.waiters.add(rec.id, c).then((code) => woke.push([tag, code]));
  waitFor('not-running', 'first');
  waitFor('next-exit', 'first-next');
  waitFor('removed', 'removed');
  await exitNow(b, rec, 1);
  // dockerd 20.10: a wait on a container the policy restarts returns with that exit's code
  await b.until(() => woke.length === 2);
  assert.deepEqual(woke.sort(), [
    ['first', 1],
    ['first-next', 1],
  ]);
  // begun during the back-off: restarting counts as running, the wait is for the next exit
  waitFor('not-running', 'second');
  await restartsAfter(b, rec, 100);
  await exitNow(b, rec, 2);
  await b.until(() => woke.length === 3);
  assert.deepEqual(woke[2], ['second', 2]);
  await restartsAfter(b, rec, 200);
  waitFor('next-exit', 'last');
  await exitNow(b, rec, 3);
  assert.equal(rec.state.status, 'exited');
  assert.equal(rec.restartCount, 2);
  assert.equal(b.clock.pending, 0, 'no restart scheduled');
  await b.until(() => woke.length === 4);
  assert.deepEqual(woke[3], ['last', 3]);
  assert.ok(!woke.some(([tag]) => tag === 'removed'), 'removed waits for the removal');
  // dockerd 20.10: RestartCount 2, exited; `docker start` -> 0, then 1 restarting, 2 exited again
  await b.lifecycle.start(rec);
  assert.equal(rec.restartCount, 0);
  await exitNow(b, rec, 1);
  assert.equal(rec.restartCount, 1);
  await restartsAfter(b, rec, 100); // and the back-off starts again
});

test('the restart manager start keeps `restarting` until the process runs (never `exited` in between)', async (t) => {
  const b = new Bench();
  t.after(() => b.close());
  const rec = b.add({ restart: { Name: 'always', MaximumRetryCount: 0 } });
  await b.lifecycle.start(rec);
  await exitNow(b, rec, 4);
  assert.equal(rec.restartCount, 1, 'counted when decided, as dockerd: inspect during the back-off shows it');
  const seen: string[] = [];
  const create = b.runtime.create.bind(b.runtime);
  b.runtime.create = async (...args: Parameters<typeof create>) => {
    seen.push(rec.state.status); // the status while the runtime creates the restarted container
    return create(...args);
  };
  await restartsAfter(b, rec, BACKOFF_START_MS);
  assert.deepEqual(seen, ['restarting']);
  assert.equal(rec.restartCount, 1);
});

test('on-failure does not restart exit 0; on-failure:0 has no limit; no never restarts', async (t) => {
  const b = new Bench();
  t.after(() => b.close());
  const ok = b.add({ restart: { Name: 'on-failure', MaximumRetryCount: 0 } });
  await b.lifecycle.start(ok);
  await exitNow(b, ok, 0);
  assert.equal(ok.state.status, 'exited');
  assert.equal(b.clock.pending, 0);
  await b.lifecycle.start(ok);
  let delay = 100;
  for (let i = 0; i < 5; i++, delay *= 2) {
    await exitNow(b, ok, 1);
    await restartsAfter(b, ok, delay);
  }
  const no = b.add();
  await b.lifecycle.start(no);
  await exitNow(b, no, 1);
  assert.equal(no.state.status, 'exited');
  assert.equal(no.state.exitCode, 1);
  assert.equal(no.restartCount, 0);
});

for (const policy of ['always', 'unless-stopped'] as const) {
  test(`${policy}: no restart after an explicit stop; a start clears the stop`, async (t) => {
    const b = new Bench();
    t.after(() => b.close());
    const rec = b.add({ restart: { Name: policy, MaximumRetryCount: 0 } });
    await b.lifecycle.start(rec);
    assert.equal(await b.lifecycle.stop(rec, 10), true);
    assert.equal(rec.state.status, 'exited');
    assert.equal(rec.state.exitCode, 143, 'SIGTERM ended it');
    assert.equal(rec.manuallyStopped, true);
    assert.equal(b.clock.pending, 0, 'nothing scheduled');
    b.clock.advance(BACKOFF_MAX_MS * 2);
    assert.equal(rec.state.status, 'exited');
    assert.deepEqual(b.actions(rec.id), ['start', 'kill', 'die', 'stop']); // dockerd: the stop's signal is a kill event
    assert.equal(await b.lifecycle.stop(rec), false, 'a stopped container: nothing to stop (304)');
    await b.lifecycle.start(rec);
    assert.equal(rec.manuallyStopped, false);
    await exitNow(b, rec, 0);
    await restartsAfter(b, rec, 100);
  });
}

test('a stop during the back-off cancels the restart', async (t) => {
  const b = new Bench();
  t.after(() => b.close());
  const rec = b.add({ restart: { Name: 'always', MaximumRetryCount: 0 } });
  await b.lifecycle.start(rec);
  await exitNow(b, rec, 1);
  assert.equal(rec.state.status, 'restarting');
  assert.equal(await b.lifecycle.stop(rec), true);
  assert.equal(rec.state.status, 'exited');
  assert.equal(rec.manuallyStopped, true);
  assert.equal(b.clock.pending, 0);
  b.clock.advance(1000);
  assert.equal(b.runtime.calls.filter((c) => c.startsWith('create')).length, 1);
});

test('stop: SIGTERM, then SIGKILL once the timeout passes on the clock', async (t) => {
  const b = new Bench();
  t.after(() => b.close());
  const rec = b.add({ restart: { Name: 'always', MaximumRetryCount: 0 } });
  await b.lifecycle.start(rec);
  b.runtime.ignoreSignals.add(15);
  let stopped = false;
  const stop = b.lifecycle.stop(rec, 5).then(() => (stopped = true));
  await b.until(() => b.runtime.calls.includes(`kill ${rec.id} 15`), 'SIGTERM');
  b.clock.advance(4999);
  await b.until(() => b.clock.pending === 1, 'the stop timer alone');
  assert.equal(stopped, false);
  assert.equal(rec.state.status, 'running');
  b.clock.advance(1);
  await stop;
  assert.equal(rec.state.exitCode, 137);
  assert.equal(rec.state.status, 'exited');
  assert.ok(b.runtime.calls.includes(`kill ${rec.id} 9`));
  assert.equal(b.clock.pending, 0, 'no restart after a stop');
});

test('kill: a process that never reports its exit is recorded exited after the kill deadline', async (t) => {
  const b = new Bench();
  t.after(() => b.close());
  const rec = b.add();
  await b.lifecycle.start(rec);
  b.runtime.ignoreSignals.add(9);
  // conmon lost: the kill does not end the task and no exit is recorded
  b.runtime.kill = async (id, sig) => void b.runtime.calls.push(`kill ${id} ${sig}`);
  const done = b.lifecycle.killAndWait(rec);
  await b.until(() => b.runtime.calls.includes(`kill ${rec.id} 9`));
  b.clock.advance(KILL_WAIT_MS);
  await done;
  assert.equal(rec.state.status, 'exited');
  assert.equal(rec.state.exitCode, 137);
});

test('auto-remove: an exited --rm container is removed; a failed create of one leaves no running state', async (t) => {
  const b = new Bench();
  t.after(() => b.close());
  const rec = b.add({ autoRemove: true });
  await b.lifecycle.start(rec);
  const removed = b.waiters.add(rec.id, 'removed');
  b.runtime.exit(rec.id, 0);
  assert.equal(await removed, 0);
  assert.equal(b.store.find(rec.id), undefined);
  const bad = b.add();
  b.runtime.failCreate.set(bad.id, new StartFailure('not-found', 'executable file not found in $PATH'));
  await assert.rejects(b.lifecycle.start(bad));
  assert.equal(bad.state.status, 'created');
  assert.equal(bad.state.exitCode, 127);
  // dockerd 20.10 tells no `die` for a start whose runtime create failed (no process ran)
  assert.deepEqual(b.actions(bad.id), []);
});

test('OOMKilled: an exit after the OOM killer ended a process says so, with an oom event; the next start clears it', async (t) => {
  const b = new Bench();
  t.after(() => b.close());
  const rec = b.add();
  await b.lifecycle.start(rec);
  b.runtime.oomKillCount.set(rec.id, 1); // a child was killed; the init exits 0 (dockerd 20.10: OOMKilled true)
  await exitNow(b, rec, 0);
  assert.equal(rec.state.oomKilled, true);
  assert.equal(rec.state.exitCode, 0);
  assert.deepEqual(b.actions(rec.id), ['start', 'oom', 'die']);
  b.runtime.oomKillCount.delete(rec.id);
  await b.lifecycle.start(rec);
  assert.equal(rec.state.oomKilled, false);
  await exitNow(b, rec, 1);
  assert.equal(rec.state.oomKilled, false, 'no OOM kill this time');
});

test('kill: an API kill is a manual stop (no restart); a kill during the back-off cancels the restart', async (t) => {
  const b = new Bench();
  t.after(() => b.close());
  // dockerd 20.10: `docker kill` of a --restart=always container leaves it exited 137, RestartCount 0
  const rec = b.add({ restart: { Name: 'always', MaximumRetryCount: 0 } });
  await b.lifecycle.start(rec);
  await b.lifecycle.kill(rec, 'SIGKILL');
  await b.until(() => rec.state.status === 'exited', 'the exit');
  assert.equal(rec.state.exitCode, 137);
  assert.equal(rec.manuallyStopped, true);
  assert.equal(b.clock.pending, 0, 'no restart scheduled');
  // dockerd: a kill of a restarting container answers 204, sends nothing, emits no kill; it stays exited
  const r2 = b.add({ restart: { Name: 'always', MaximumRetryCount: 0 } });
  await b.lifecycle.start(r2);
  await exitNow(b, r2, 2);
  assert.equal(r2.state.status, 'restarting');
  let woke: number | null = null;
  void b.waiters.add(r2.id, 'not-running').then((c) => (woke = c));
  const calls = b.runtime.calls.length;
  await b.lifecycle.kill(r2, undefined);
  assert.equal(r2.state.status, 'exited');
  assert.equal(b.runtime.calls.length, calls, 'no signal: there is no process');
  assert.equal(b.clock.pending, 0);
  b.clock.advance(BACKOFF_MAX_MS);
  assert.equal(r2.state.status, 'exited');
  assert.deepEqual(b.actions(r2.id), ['start', 'die']);
  await b.until(() => woke !== null);
  assert.equal(woke, 2);
});

test('kill of a process that ended before its exit was handled: done (dockerd ignores "no such process")', async (t) => {
  const b = new Bench();
  t.after(() => b.close());
  const rec = b.add();
  await b.lifecycle.start(rec);
  b.runtime.tasks.get(rec.id)!.status = 'stopped'; // gone; conmon's exit not seen yet
  await b.lifecycle.kill(rec, 'SIGTERM');
  assert.equal(b.actions(rec.id).at(-1), 'kill');
  // a kill the runtime refuses while the process still runs is still an error
  const other = b.add();
  await b.lifecycle.start(other);
  const kill = b.runtime.kill.bind(b.runtime);
  b.runtime.kill = async (id, sig) => {
    if (id === other.id) throw new Error('permission denied');
    return kill(id, sig);
  };
  await assert.rejects(b.lifecycle.kill(other, 'SIGTERM'), /permission denied/);
});
