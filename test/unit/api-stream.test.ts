import { test } from 'node:test';
import assert from 'node:assert/strict';
import { frame, DetachFilter, parseDetachKeys } from '../../src/api/stream.js';
import { parseFilters, labelsMatch } from '../../src/api/filters.js';
import { statusOf } from '../../src/api/errors.js';
import { openDb } from '../../src/metadata/db.js';
import { ContainerStore } from '../../src/engine/store.js';
import { initialState, type ContainerRecord } from '../../src/engine/record.js';
import { Waiters } from '../../src/engine/waiters.js';

test('multiplexed frames: 8-byte header then payload', () => {
  const f = frame(2, Buffer.from('hey'));
  assert.deepEqual([...f.subarray(0, 8)], [2, 0, 0, 0, 0, 0, 0, 3]);
  assert.equal(f.subarray(8).toString(), 'hey');
});

test('detach keys: default ctrl-p ctrl-q; a partial match is passed through', () => {
  const d = new DetachFilter(parseDetachKeys(''));
  assert.deepEqual(d.feed(Buffer.from([104, 16, 105])), { pass: Buffer.from([104, 16, 105]), detach: false });
  const r = d.feed(Buffer.from([120, 16, 17]));
  assert.equal(r.detach, true);
  assert.deepEqual([...r.pass], [120]);
  assert.deepEqual(parseDetachKeys('ctrl-a,x'), [1, 120]);
  assert.throws(() => parseDetachKeys('ctrl-ab'), /Invalid detach keys/);
});

test('filters: both JSON forms; labels', () => {
  assert.deepEqual(parseFilters('{"status":["running"]}'), { status: ['running'] });
  assert.deepEqual(parseFilters('{"status":{"exited":true}}'), { status: ['exited'] });
  assert.throws(() => parseFilters('nope'), /invalid filter/);
  assert.equal(labelsMatch(['a=1', 'b'], { a: '1', b: '' }), true);
  assert.equal(labelsMatch(['a=2'], { a: '1' }), false);
});

test('error codes map to Docker statuses', () => {
  assert.equal(statusOf('NotFound'), 404);
  assert.equal(statusOf('Conflict'), 409);
  assert.equal(statusOf('AlreadyExists'), 409);
  assert.equal(statusOf('InvalidArgument'), 400);
  assert.equal(statusOf('NotImplemented'), 501);
});

const rec = (id: string, name: string): ContainerRecord => ({
  id: id as ContainerRecord['id'],
  name,
  created: new Date().toISOString(),
  imageId: 'sha256:x',
  config: {},
  hostConfig: {},
  path: 'true',
  args: [],
  runtime: 'crun',
  state: initialState(),
  restartCount: 0,
  manuallyStopped: false,
  execIds: [],
});

test('container store: unique names, prefix lookup, survives reopen', () => {
  const db = openDb(':memory:');
  const s = new ContainerStore(db);
  s.insert(rec('a'.repeat(64), 'one'));
  s.insert(rec('ab' + 'c'.repeat(62), 'two'));
  assert.throws(() => s.insert(rec('d'.repeat(64), 'one')), /name "\/one" is already in use/);
  assert.equal(s.get('/two').name, 'two');
  assert.equal(s.get('abc').name, 'two');
  assert.throws(() => s.get('a'), /multiple IDs/);
  assert.throws(() => s.get('zzz'), /No such container: zzz/);
  const two = s.get('two');
  two.state.exitCode = 3;
  s.save(two);
  s.rename(two, 'three');
  const again = new ContainerStore(db);
  assert.equal(again.get('three').state.exitCode, 3);
  assert.throws(() => ContainerStore.validName('bad name'), /Invalid container name/);
});

test('waiters: not-running/next-exit wake on every exit (restarts too, as dockerd); removed waits for removal', async () => {
  const w = new Waiters();
  const next = w.add('c', 'next-exit');
  const removed = w.add('c', 'removed');
  w.exited('c', 1); // an exit the restart policy follows with a restart: dockerd answers 1 here
  const again = w.add('c', 'not-running');
  w.exited('c', 2);
  assert.equal(await next, 1);
  assert.equal(await again, 2);
  let done = false;
  void removed.then(() => (done = true));
  await new Promise((r) => setImmediate(r));
  assert.equal(done, false);
  w.removed('c', 2);
  assert.equal(await removed, 2);
});
