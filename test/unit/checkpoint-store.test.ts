/**
 * checkpoint/: a checkpoint that is not there is NotFound; one whose berth.json is cut short or is
 * not a checkpoint's description is corrupt (FailedPrecondition), never "does not exist"; names
 * are checked before they become paths. And the status table answers for checkpoint and restore.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isBerthError } from '../../src/base/errors.js';
import type { ContainerView } from '../../src/checkpoint/deps.js';
import { readCheckpoint } from '../../src/checkpoint/store.js';
import { can, refusal, type Status } from '../../src/engine/state.js';

const c = { id: 'c1', name: 'web' } as ContainerView;

test('berth.json: missing is NotFound, corrupt is its own error, valid is read', async () => {
  const root = mkdtempSync(join(tmpdir(), 'berth-cp-'));
  const deps = { containerDir: () => root };
  const dir = join(root, 'checkpoints');
  try {
    await assert.rejects(readCheckpoint(deps, c, 'none'), (e) => isBerthError(e, 'NotFound') && /checkpoint none does not exist for container web/.test(e.message));
    await assert.rejects(readCheckpoint(deps, c, '../x'), (e) => isBerthError(e, 'InvalidArgument'));
    mkdirSync(join(dir, 'cp'), { recursive: true });
    const bad = ['{"created": "2026-', '', '[]', '{"addresses": {"n": 1}, "tcpEstablished": false}', '{"addresses": {}}'];
    for (const text of bad) {
      writeFileSync(join(dir, 'cp', 'berth.json'), text);
      await assert.rejects(readCheckpoint(deps, c, 'cp'), (e) => isBerthError(e, 'FailedPrecondition') && /checkpoint cp of container web is corrupt/.test(e.message), text);
    }
    const meta = { created: '2026-01-01T00:00:00.000Z', container: 'c1', addresses: { n1: '10.0.0.2' }, tcpEstablished: true };
    writeFileSync(join(dir, 'cp', 'berth.json'), JSON.stringify(meta));
    assert.deepEqual(await readCheckpoint(deps, c, 'cp'), { path: join(dir, 'cp'), meta });
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('the status table: a checkpoint needs a running container; a restore one that is not running', () => {
  const all: Status[] = ['created', 'running', 'paused', 'restarting', 'removing', 'exited', 'dead'];
  assert.deepEqual(all.filter((s) => can(s, 'checkpoint')), ['running']);
  assert.deepEqual(all.filter((s) => can(s, 'restore')), ['created', 'exited']);
  assert.equal(refusal('exited', 'checkpoint', 'web', 'c1'), 'Container web is not running');
  assert.equal(refusal('paused', 'restore', 'web', 'c1'), 'Container web is running: stop it before restoring a checkpoint');
  assert.equal(refusal('dead', 'restore', 'web', 'c1'), 'Container c1 is dead', 'as a start would say');
});
