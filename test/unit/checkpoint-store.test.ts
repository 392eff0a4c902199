/**
 * checkpoint/: a checkpoint that is not there is NotFound; one whose berth.json is cut short or is
 * not a checkpoint's description is corrupt (FailedPrecondition), never "does not exist"; names
 * are checked before they become paths. And the status table answers for checkpoint and restore.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ManualClock } from '../../src/base/clock.js';
import { conflict, isBerthError, unavailable } from '../../src/base/errors.js';
import { createCheckpoint, listCheckpoints } from '../../src/checkpoint/checkpoints.js';
import type { CheckpointDeps, ContainerView } from '../../src/checkpoint/deps.js';
import type { HostInfo } from '../../src/runtime/types.js';
import { readCheckpoint } from '../../src/checkpoint/store.js';
import { can, refusal, type Status } from '../../src/engine/state.js';

const c = { id: 'c1', name: 'web' } as ContainerView;

test('berth.json: missing is NotFound, corrupt is its own error, valid is read', async () => {
  const root = mkdtempSync(join(tmpdir(), 'berth-cp-'));
  const deps = { containerDir: () => root };
  const dir = join(root, 'checkpoints');
  try {
    await assert.rejects(
      readCheckpoint(deps, c, 'none'),
      (e) => isBerthError(e, 'NotFound') && /checkpoint none does not exist for container web/.test(e.message),
    );
    await assert.rejects(readCheckpoint(deps, c, '../x'), (e) => isBerthError(e, 'InvalidArgument'));
    mkdirSync(join(dir, 'cp'), { recursive: true });
    const bad = [
      '{"created": "2026-',
      '',
      '[]',
      '{"addresses": {"n": 1}, "tcpEstablished": false}',
      '{"addresses": {}}',
    ];
    for (const text of bad) {
      writeFileSync(join(dir, 'cp', 'berth.json'), text);
      await assert.rejects(
        readCheckpoint(deps, c, 'cp'),
        (e) => isBerthError(e, 'FailedPrecondition') && /checkpoint cp of container web is corrupt/.test(e.message),
        text,
      );
    }
    const meta = {
      created: '2026-01-01T00:00:00.000Z',
      container: 'c1',
      addresses: { n1: '10.0.0.2' },
      tcpEstablished: true,
    };
    writeFileSync(join(dir, 'cp', 'berth.json'), JSON.stringify(meta));
    assert.deepEqual(await readCheckpoint(deps, c, 'cp'), { path: join(dir, 'cp'), meta });
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('the status table: a checkpoint needs a running container; a restore one that is not running', () => {
  const all: Status[] = ['created', 'running', 'paused', 'restarting', 'removing', 'exited', 'dead'];
  assert.deepEqual(
    all.filter((s) => can(s, 'checkpoint')),
    ['running'],
  );
  assert.deepEqual(
    all.filter((s) => can(s, 'restore')),
    ['created', 'exited'],
  );
  assert.equal(refusal('exited', 'checkpoint', 'web', 'c1'), 'Container web is not running');
  assert.equal(
    refusal('paused', 'restore', 'web', 'c1'),
    'Container web is running: stop it before restoring a checkpoint',
  );
  assert.equal(refusal('dead', 'restore', 'web', 'c1'), 'Container c1 is dead', 'as a start would say');
});

/** checkpoint/'s deps over real files and a runner that fails or succeeds as told (no CRIU, no root). */
function fakeDeps(root: string, status: Status, dump: () => Promise<void>) {
  const events: string[] = [];
  const stoppedByHand: boolean[] = [];
  const container = {
    id: 'c1',
    name: 'web',
    imageId: 'i',
    config: {},
    hostConfig: {},
    state: { pid: 4242 },
  } as ContainerView;
  const host = {
    checkpoint: { preCopy: false, preCopyReason: 'no soft-dirty', postCopy: false, postCopyReason: 'no' },
  } as HostInfo;
  const deps: CheckpointDeps = {
    clock: new ManualClock(Date.UTC(2026, 11, 2)),
    runtime: { host: () => host, checkpoint: dump, checkpointLazy: () => Promise.reject(new Error('not here')) },
    get: () => container,
    check: (c, op) => {
      if (!can(status, op)) throw conflict(refusal(status, op, c.name, c.id));
    },
    containerDir: () => root,
    addressesOf: () => ({ net1: '10.0.0.2' }),
    setManuallyStopped: (_id, v) => void stoppedByHand.push(v),
    exited: () => Promise.resolve(),
    servePages: () => undefined,
    cancelPageServer: () => Promise.resolve(false),
    emit: (action) => void events.push(action),
  };
  return { deps, events, stoppedByHand };
}

test('create: a failed dump leaves no checkpoint and undoes "stopped by hand"; a refused status makes nothing', async () => {
  const root = mkdtempSync(join(tmpdir(), 'berth-cp-'));
  try {
    const failing = fakeDeps(root, 'running', () =>
      Promise.reject(unavailable('checkpoint (dump) did not finish in 1 s')),
    );
    await assert.rejects(
      createCheckpoint(failing.deps, 'web', { name: 'c1', exit: true, tcpEstablished: false }),
      (e) => isBerthError(e, 'Unavailable'),
    );
    assert.equal(existsSync(join(root, 'checkpoints', 'c1')), false, 'no half-written checkpoint');
    assert.deepEqual(failing.stoppedByHand, [true, false]);
    assert.deepEqual(failing.events, []);

    const exited = fakeDeps(root, 'exited', () => Promise.resolve());
    await assert.rejects(
      createCheckpoint(exited.deps, 'web', { name: 'c2', exit: true, tcpEstablished: false }),
      (e) => isBerthError(e, 'Conflict') && e.message === 'Container web is not running',
    );
    assert.equal(existsSync(join(root, 'checkpoints', 'c2')), false);
    assert.deepEqual(exited.stoppedByHand, []);
    const preDump = fakeDeps(root, 'running', () => Promise.resolve());
    await assert.rejects(
      createCheckpoint(preDump.deps, 'web', { name: 'p', exit: false, tcpEstablished: false, preDump: true }),
      /pre-dump is not possible here: no soft-dirty/,
    );

    const ok = fakeDeps(root, 'running', () => Promise.resolve());
    assert.deepEqual(await createCheckpoint(ok.deps, 'web', { name: 'c3', exit: true, tcpEstablished: true }), {});
    const { meta } = await readCheckpoint(ok.deps, { id: 'c1', name: 'web' } as ContainerView, 'c3');
    assert.deepEqual(meta, {
      created: '2026-12-02T00:00:00.000Z',
      container: 'c1',
      addresses: { net1: '10.0.0.2' },
      tcpEstablished: true,
    });
    assert.deepEqual(ok.events, ['checkpoint']);
    assert.deepEqual(await listCheckpoints(ok.deps, 'web'), [{ Name: 'c3' }]);
    await assert.rejects(
      createCheckpoint(ok.deps, 'web', { name: 'c3', exit: true, tcpEstablished: true }),
      (e) => isBerthError(e, 'Conflict') && /already exists/.test(e.message),
    );
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
