/**
 * Issue #19 (the daemon's and the CLI's own cost): the shortcuts taken on the create/start/wait
 * path keep their guarantees. No timing is asserted (the figures are bench/api-cost.sh's and
 * bench/cli-cost.sh's); each case is about what a client sees.
 * - An exited container's runtime state is deleted after `wait` has answered (lifecycle.ts): a
 *   start at once after the wait must wait for that deletion and run, again and again.
 * - conmon is spawned off the event loop (base/spawn.ts spawnProcessAsync): concurrent starts each
 *   get their own container, pid and exit code.
 * - The CLI runs from V8's code cache (bin/berth): same output with or without the cache.
 */
import { before, after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { REPO, startDaemon, type Daemon } from './harness.js';

describe('cost paths', () => {
  let d: Daemon;
  before(async () => {
    d = await startDaemon();
  });
  after(async () => {
    await d?.stop();
  });

  const json = async <T>(method: string, path: string, body?: unknown): Promise<T> => {
    const r = await d.api(method, path, body);
    assert.ok(r.status < 300, `${method} ${path}: ${r.status} ${r.text}`);
    return r.body as T;
  };

  test('start at once after wait, 15 times: each run starts, exits with its code, and logs its line', async () => {
    const { Id } = await json<{ Id: string }>('POST', '/containers/create', {
      Image: 'busybox',
      Cmd: ['sh', '-c', 'echo run; exit 3'],
      HostConfig: { NetworkMode: 'none' },
    });
    for (let i = 0; i < 15; i++) {
      await json('POST', `/containers/${Id}/start`);
      const w = await json<{ StatusCode: number }>('POST', `/containers/${Id}/wait`);
      assert.equal(w.StatusCode, 3, `run ${i}`);
    }
    const st = await json<{ State: { Status: string; ExitCode: number }; RestartCount: number }>(
      'GET',
      `/containers/${Id}/json`,
    );
    assert.equal(st.State.Status, 'exited');
    assert.equal(st.State.ExitCode, 3);
    const logs = await d.docker(['logs', Id]);
    assert.equal(logs.stdout.split('\n').filter((l) => l === 'run').length, 15);
    // removal right after a wait: nothing of the runtime's state is left behind
    await json('POST', `/containers/${Id}/start`);
    await json('POST', `/containers/${Id}/wait`);
    await json('DELETE', `/containers/${Id}`);
    // (the files go after the answer: waited for, as a condition, up to 10 s)
    const left = () => readdirSync(join(d.dir, 'run', 'runtime', 'crun')).includes(Id);
    for (let i = 0; i < 200 && left(); i++) await new Promise((r) => setTimeout(r, 50));
    assert.ok(!left(), 'runtime state removed');
  });

  test('8 concurrent create+start+wait: each its own container and exit code', async () => {
    const one = async (k: number) => {
      const { Id } = await json<{ Id: string }>('POST', '/containers/create', {
        Image: 'busybox',
        Cmd: ['sh', '-c', `echo $$; exit ${10 + k}`],
        HostConfig: { NetworkMode: 'none' },
      });
      await json('POST', `/containers/${Id}/start`);
      const w = await json<{ StatusCode: number }>('POST', `/containers/${Id}/wait`);
      return { Id, code: w.StatusCode };
    };
    const runs = await Promise.all(Array.from({ length: 8 }, (_, k) => one(k)));
    assert.deepEqual(
      runs.map((r) => r.code),
      Array.from({ length: 8 }, (_, k) => 10 + k),
    );
    assert.equal(new Set(runs.map((r) => r.Id)).size, 8);
    for (const r of runs) {
      // each container is its own PID namespace's init
      assert.equal((await d.docker(['logs', r.Id])).stdout.trim(), '1');
      await json('DELETE', `/containers/${r.Id}`);
    }
  });

  test('the CLI gives the same output with and without its code cache', async () => {
    await json('POST', '/containers/create?name=cost-cache', { Image: 'busybox', Cmd: ['true'] });
    const cmds = [
      ['ps', '-a', '--format', '{{.Names}} {{.Image}}'],
      ['images', '--format', '{{.Repository}}:{{.Tag}}'],
      ['inspect', '-f', '{{.Name}}', 'cost-cache'],
    ];
    const outputs = async () => {
      const out: string[] = [];
      for (const c of cmds) out.push((await d.berth(c)).stdout);
      return out;
    };
    const dist = join(REPO, 'dist');
    const cache = readdirSync(dist).find((f) => /^berth\.cjs\..*\.cache$/.test(f));
    assert.ok(cache, 'the build made a code cache');
    const withCache = await outputs();
    renameSync(join(dist, cache), join(dist, `${cache}.away`));
    let without: string[];
    try {
      without = await outputs();
    } finally {
      renameSync(join(dist, `${cache}.away`), join(dist, cache));
    }
    assert.deepEqual(without, withCache);
    assert.match(withCache[0]!, /^cost-cache busybox$/m);
    assert.equal(withCache[2]!.trim(), '/cost-cache');
    await json('DELETE', '/containers/cost-cache');
  });
});
