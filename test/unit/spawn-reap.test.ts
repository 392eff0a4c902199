/**
 * base/spawn.ts's reaper: children that live long (conmon run with --sync lives as long as its
 * container) do not hide the exits of others, the exit statuses are right, and a child of Node's
 * child_process exiting meanwhile is reaped by Node (its status intact) while ours still are by us.
 * base/janitor.ts: trees are removed on its thread, a missing path is nothing, the fallback works.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AsyncLocalStorage } from 'node:async_hooks';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { spawnProcess, spawnProcessAsync } from '../../src/base/spawn.js';
import { removeTree } from '../../src/base/janitor.js';

const within = <T>(p: Promise<T>, ms: number, what: string): Promise<T> =>
  Promise.race([p, new Promise<T>((_, reject) => setTimeout(() => reject(new Error(`${what}: not in ${ms} ms`)), ms))]);

test('a running child keeps nothing of the async context it was spawned in (a request scope)', async () => {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  const scope = new AsyncLocalStorage<{ response: Buffer }>();
  let ref: WeakRef<object> | undefined;
  // the reaper's timer is made by the first spawn: here, outside the scope (one timer, not one per child)
  const first = spawnProcess('sleep', ['30'], process.env, { out: [] });
  // as a container's start: spawned in a request's scope, running long after the request ended
  const child = await scope.run({ response: Buffer.alloc(1 << 20) }, async () => {
    ref = new WeakRef(scope.getStore()!);
    return spawnProcessAsync('sleep', ['30'], process.env, { out: [] });
  });
  try {
    for (let i = 0; i < 5 && ref!.deref(); i++) {
      await new Promise((r) => setImmediate(r));
      gc();
    }
    assert.equal(ref!.deref(), undefined, 'the scope of the spawn is collectable while the child runs');
  } finally {
    process.kill(child.pid, 'SIGKILL');
    process.kill(first.pid, 'SIGKILL');
  }
  // asked for after its exit, or before: the same status
  assert.deepEqual(await within(child.exited, 5000, 'killed child'), { code: null, signal: 'SIGKILL' });
  const late = spawnProcess('sh', ['-c', 'exit 3'], process.env, { out: [] });
  await new Promise((r) => setTimeout(r, 300));
  assert.deepEqual(await within(late.exited, 5000, 'asked late'), { code: 3, signal: null });
});

test('exits are reported while long-lived children stay unreaped, with their codes and signals', async () => {
  const long = Array.from({ length: 20 }, () => spawnProcess('sleep', ['30'], process.env, { out: [] }));
  try {
    const codes = await within(
      Promise.all([0, 1, 7, 42].map((c) => spawnProcess('sh', ['-c', `exit ${c}`], process.env, { out: [] }).exited)),
      5000,
      'short children',
    );
    assert.deepEqual(
      codes.map((s) => s.code),
      [0, 1, 7, 42],
    );
    const killed = spawnProcess('sleep', ['30'], process.env, { out: [] });
    process.kill(killed.pid, 'SIGKILL');
    assert.deepEqual(await within(killed.exited, 5000, 'killed child'), { code: null, signal: 'SIGKILL' });
    // the long ones are still running: not reported
    let reported = 0;
    for (const l of long) void l.exited.then(() => reported++);
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(reported, 0);
  } finally {
    for (const l of long) process.kill(l.pid, 'SIGKILL');
  }
  await within(Promise.all(long.map((l) => l.exited)), 5000, 'long children after kill');
});

test("a child of Node's child_process exiting with ours: each is reaped by its owner, statuses intact", async () => {
  const long = spawnProcess('sleep', ['30'], process.env, { out: [] });
  try {
    for (let i = 0; i < 10; i++) {
      const node = new Promise<number | null>((resolve) =>
        execFile('sh', ['-c', 'exit 3'], (e) => resolve(e ? ((e as { code?: number }).code ?? null) : 0)),
      );
      const ours = spawnProcess('sh', ['-c', 'exit 5'], process.env, { out: [] });
      // ours may be named after Node's (not reaped yet): the one-second tick is the net
      const [n, o] = await within(Promise.all([node, ours.exited]), 5000, `round ${i}`);
      assert.equal(n, 3);
      assert.equal(o.code, 5);
    }
  } finally {
    process.kill(long.pid, 'SIGKILL');
  }
  await within(long.exited, 5000, 'long child after kill');
});

test('removeTree removes a tree on the janitor thread (links not followed), and a missing path is nothing', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'janitor-'));
  const outside = mkdtempSync(join(tmpdir(), 'janitor-outside-'));
  try {
    writeFileSync(join(outside, 'keep'), 'x');
    const tree = join(dir, 'tree');
    mkdirSync(join(tree, 'a', 'b'), { recursive: true });
    writeFileSync(join(tree, 'a', 'b', 'f'), 'data');
    symlinkSync(outside, join(tree, 'a', 'link'));
    await removeTree(tree);
    assert.equal(existsSync(tree), false);
    assert.equal(existsSync(join(outside, 'keep')), true, 'a symlink in the tree is removed, not followed');
    await removeTree(join(dir, 'never-there'));
    const many = Array.from({ length: 20 }, (_, i) => join(dir, `t${i}`));
    for (const t of many) mkdirSync(join(t, 'x'), { recursive: true });
    await Promise.all(many.map(removeTree));
    assert.equal(
      many.some((t) => existsSync(t)),
      false,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
    rmSync(outside, { recursive: true, force: true });
  }
});
