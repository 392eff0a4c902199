/**
 * Exec instances over their narrow deps (issue #15: exec.ts no longer takes the Engine): a fake
 * runtime exec and a ManualClock, no root. Checks go through the status table; events are emitted.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ManualClock } from '../../src/base/clock.js';
import { isBerthError } from '../../src/base/errors.js';
import type { ContainerId } from '../../src/base/ids.js';
import { Execs, type ExecDeps } from '../../src/engine/exec.js';
import { initialState, type ContainerRecord } from '../../src/engine/record.js';
import { can, refusal, type Operation } from '../../src/engine/state.js';
import { conflict, notFound } from '../../src/base/errors.js';

function fixture(status: ContainerRecord['state']['status']) {
  const rootfs = mkdtempSync(join(tmpdir(), 'berth-exec-'));
  const rec: ContainerRecord = {
    id: 'c'.repeat(64) as ContainerId,
    name: 'web',
    created: '',
    imageId: 'sha256:x',
    config: { Image: 'busybox', Env: ['A=1'] },
    hostConfig: {},
    path: 'sh',
    args: [],
    runtime: 'crun',
    state: { ...initialState(), status },
    restartCount: 0,
    manuallyStopped: false,
    execIds: [],
  };
  const events: string[] = [];
  const clock = new ManualClock();
  let exit!: (code: number) => void;
  const ran: Array<{ args: string[]; env: string[] }> = [];
  const deps: ExecDeps = {
    get: (ref) => {
      if (ref !== rec.id && ref !== rec.name) throw notFound(`No such container: ${ref}`);
      return rec;
    },
    find: (ref) => (ref === rec.id || ref === rec.name ? rec : undefined),
    check: (r: ContainerRecord, op: Operation) => {
      if (!can(r.state.status, op)) throw conflict(refusal(r.state.status, op, r.name, r.id));
    },
    rootfsView: async () => rootfs,
    runtime: {
      exec: async (_id, o) => {
        ran.push({ args: o.args, env: o.env });
        return {
          pid: 42,
          attach: null,
          logPath: '',
          resize: async () => undefined,
          wait: () => new Promise<number>((r) => (exit = r)),
        };
      },
    },
    events: { emit: (_type, action) => void events.push(action.split(':')[0]!) },
    clock,
  };
  return {
    rec,
    deps,
    events,
    clock,
    ran,
    exit: (c: number) => exit(c),
    done: () => rmSync(rootfs, { recursive: true, force: true }),
  };
}

test('exec in a running container: create, start, exit; events; forgotten 5 minutes after it ended', async () => {
  const f = fixture('running');
  try {
    const execs = new Execs(f.deps);
    const id = execs.create('web', { Cmd: ['echo', 'hi'], Env: ['B=2'] });
    assert.deepEqual(f.rec.execIds, [id]);
    const { exec } = await execs.start(id, { detach: true });
    assert.equal(exec.pid, 42);
    assert.deepEqual(f.ran, [{ args: ['echo', 'hi'], env: ['A=1', 'B=2'] }]);
    // dockerd 20.10's words (409 both)
    assert.throws(() => execs.startable(id), new RegExp(`Error: Exec command ${id} is already running$`));
    f.exit(3);
    await new Promise((r) => setImmediate(r));
    assert.equal(execs.get(id).exitCode, 3);
    assert.throws(() => execs.startable(id), new RegExp(`Error: Exec command ${id} has already run$`));
    // a finished exec's terminal: dockerd 404 "no such exec"
    await assert.rejects(execs.resize(id, 10, 10), (e) => isBerthError(e, 'NotFound') && e.message === 'no such exec');
    assert.deepEqual(f.rec.execIds, []);
    assert.deepEqual(f.events, ['exec_create', 'exec_start', 'exec_die']);
    f.clock.advance(5 * 60_000 - 1);
    assert.equal(execs.get(id).id, id);
    f.clock.advance(1);
    assert.throws(
      () => execs.get(id),
      (e) => isBerthError(e, 'NotFound'),
    );
  } finally {
    f.done();
  }
});

for (const status of ['created', 'paused', 'exited'] as const) {
  test(`exec in a ${status} container: refused by the status table, nothing made`, () => {
    const f = fixture(status);
    try {
      const execs = new Execs(f.deps);
      assert.throws(
        () => execs.create('web', { Cmd: ['true'] }),
        (e) =>
          isBerthError(e, 'Conflict') &&
          e.message ===
            (status === 'paused'
              ? 'Container web is paused, unpause the container before exec' // dockerd: the name as asked
              : refusal(status, 'exec', 'web', f.rec.id)),
      );
      assert.deepEqual(f.rec.execIds, []);
      assert.deepEqual(f.events, []);
    } finally {
      f.done();
    }
  });
}
