import { test } from 'node:test';
import assert from 'node:assert/strict';
import { can, refusal, type Status, type Operation } from '../../src/engine/state.js';

const table: Record<Status, Operation[]> = {
  created: ['start', 'stop', 'remove', 'attach', 'commit', 'update', 'restart'],
  running: ['stop', 'kill', 'pause', 'exec', 'attach', 'commit', 'update', 'restart'],
  paused: ['stop', 'kill', 'unpause', 'attach', 'commit', 'update', 'restart'],
  restarting: ['stop', 'kill', 'attach', 'commit', 'update', 'restart'],
  removing: [],
  exited: ['start', 'stop', 'remove', 'attach', 'commit', 'update', 'restart'],
  dead: ['remove'],
};
const ops: Operation[] = [
  'start',
  'stop',
  'kill',
  'pause',
  'unpause',
  'remove',
  'exec',
  'attach',
  'commit',
  'update',
  'restart',
];

for (const [status, allowed] of Object.entries(table) as Array<[Status, Operation[]]>) {
  test(`status ${status}: exactly ${allowed.join(', ') || 'nothing'} allowed`, () => {
    for (const op of ops) assert.equal(can(status, op), allowed.includes(op), `${op} in ${status}`);
  });
}

test('refusals use dockerd wording', () => {
  assert.match(
    refusal('running', 'remove', 'web', 'abc'),
    /cannot remove container "\/web": container is running: stop the container before removing or force remove/,
  );
  assert.match(refusal('paused', 'exec', 'web', 'abc'), /is paused, unpause the container before exec/);
  assert.match(refusal('exited', 'exec', 'web', 'abc'), /Container abc is not running/);
  assert.match(refusal('running', 'unpause', 'web', 'abc'), /is not paused/);
});
