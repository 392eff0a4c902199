/** The operations the verbs added to the status table (issue #15): resize and top, with dockerd's words. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { can, refusal, type Status } from '../../src/engine/state.js';

const statuses: Status[] = ['created', 'running', 'paused', 'restarting', 'removing', 'exited', 'dead'];

for (const op of ['resize', 'top'] as const) {
  test(`${op}: only a running or paused container`, () => {
    for (const s of statuses) assert.equal(can(s, op), s === 'running' || s === 'paused', `${op} in ${s}`);
    assert.equal(refusal('exited', op, 'web', 'abc'), 'Container abc is not running');
  });
}
