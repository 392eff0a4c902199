/**
 * The status table (state.ts) as the lifecycle applies it, status by status: every verb the table
 * refuses in a status is refused by lifecycle.ts with Conflict and dockerd's words, and nothing
 * changes; every verb it allows moves the container to the status the verb promises.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Bench } from './fakes/engine.js';
import { can, refusal, type Operation, type Status } from '../../src/engine/state.js';
import { isBerthError } from '../../src/base/errors.js';
import type { ContainerRecord } from '../../src/engine/record.js';

/** A container in `status`, as the lifecycle gets it there (removing and dead: the record says so). */
async function inStatus(b: Bench, status: Status): Promise<ContainerRecord> {
  const rec = b.add(status === 'restarting' ? { restart: { Name: 'always', MaximumRetryCount: 0 } } : {});
  if (status === 'created') return rec;
  if (status === 'removing' || status === 'dead') {
    rec.state.status = status;
    b.store.save(rec);
    return rec;
  }
  await b.lifecycle.start(rec);
  if (status === 'paused') await b.lifecycle.pause(rec);
  if (status === 'exited' || status === 'restarting') {
    const died = b.next('die', rec.id);
    b.runtime.exit(rec.id, 1);
    await died;
  }
  assert.equal(rec.state.status, status);
  return rec;
}

type Verb = 'start' | 'kill' | 'pause' | 'unpause';
const verbs: Record<Verb, (b: Bench, rec: ContainerRecord) => Promise<unknown>> = {
  start: (b, rec) => b.lifecycle.start(rec),
  kill: (b, rec) => b.lifecycle.kill(rec, 'SIGKILL'),
  pause: (b, rec) => b.lifecycle.pause(rec),
  unpause: (b, rec) => b.lifecycle.unpause(rec),
};
/** Where an allowed verb takes the container. */
const after: Record<Verb, Status> = { start: 'running', kill: 'exited', pause: 'paused', unpause: 'running' };

const statuses: Status[] = ['created', 'running', 'paused', 'restarting', 'removing', 'exited', 'dead'];

for (const status of statuses) {
  test(`${status}: start, kill, pause, unpause as the table says`, async (t) => {
    const b = new Bench();
    t.after(() => b.close());
    for (const verb of Object.keys(verbs) as Verb[]) {
      const rec = await inStatus(b, status);
      const calls = b.runtime.calls.length;
      if (status === 'running' && verb === 'start') {
        // Docker's 304 comes before the table's refusal
        assert.equal(await b.lifecycle.start(rec), false);
        assert.equal(b.runtime.calls.length, calls);
        continue;
      }
      if (can(status, verb as Operation)) {
        await verbs[verb](b, rec);
        await b.until(() => rec.state.status === after[verb], `${verb} from ${status} -> ${after[verb]}`);
        continue;
      }
      await assert.rejects(verbs[verb](b, rec), (e: unknown) => {
        // dockerd: 409 for each, except unpause's 500 ("Container <id> is not paused")
        assert.ok(isBerthError(e, verb === 'unpause' ? 'Internal' : 'Conflict'), `${verb} in ${status}: ${String(e)}`);
        assert.equal((e as Error).message, refusal(status, verb as Operation, rec.name, rec.id));
        return true;
      });
      assert.equal(rec.state.status, status, `a refused ${verb} changes nothing`);
      assert.equal(b.runtime.calls.length, calls, `a refused ${verb} asks nothing of the runtime`);
    }
  });
}

test('stop: active statuses end exited (and stay so); others are a no-op (304)', async (t) => {
  const b = new Bench();
  t.after(() => b.close());
  for (const status of statuses) {
    const rec = await inStatus(b, status);
    const active = status === 'running' || status === 'paused' || status === 'restarting';
    assert.equal(await b.lifecycle.stop(rec, 1), active, status);
    assert.equal(rec.state.status, active ? 'exited' : status);
    if (active) assert.equal(rec.manuallyStopped, true);
  }
  const creates = () => b.runtime.calls.filter((c) => c.startsWith('create')).length;
  const before = creates();
  b.clock.advance(120_000);
  assert.equal(creates(), before, 'nothing restarted');
});

test('restart: from created, running, paused and exited the container ends running', async (t) => {
  const b = new Bench();
  t.after(() => b.close());
  for (const status of ['created', 'running', 'paused', 'exited'] as const) {
    const rec = await inStatus(b, status);
    await b.lifecycle.restart(rec, 1);
    assert.equal(rec.state.status, 'running', status);
    assert.equal(b.actions(rec.id).at(-1), 'restart');
  }
});
