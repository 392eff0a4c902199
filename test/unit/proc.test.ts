/** base/proc.ts: a helper program's failure is a BerthError, its deadline kills it (and its group), env. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CommandError, runCommand } from '../../src/base/proc.js';
import { isBerthError } from '../../src/base/errors.js';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

test('a helper program that exits non-zero fails with its stderr and exit code', async () => {
  const e = await runCommand('sh', ['-c', 'echo nope >&2; exit 3']).then(
    () => null,
    (err: unknown) => err,
  );
  assert.ok(e instanceof CommandError && isBerthError(e, 'Internal'));
  assert.equal(e.exitCode, 3);
  assert.equal(e.message, 'nope');
});

test('a helper program past its deadline is killed and the call fails', async () => {
  const started = Date.now();
  const e = await runCommand('sleep', ['30'], { timeoutMs: 200 }).then(
    () => null,
    (err: unknown) => err,
  );
  assert.ok(e instanceof CommandError);
  assert.equal(e.exitCode, null);
  assert.match(e.message, /sleep did not finish in 0.2 s and was killed/);
  assert.ok(Date.now() - started < 10_000, 'the call returned long before the program would have');
});

test('env replaces the environment', async () => {
  await runCommand('sh', ['-c', 'test "$X" = y && test -z "${HOME:-}"'], {
    env: { X: 'y', PATH: process.env['PATH'] },
  });
});

/** Whether a process runs (a zombie or a gone pid does not). */
const running = (pid: number) => {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
};

test('the deadline ends the call even when a child of the helper holds its pipes; with group the child dies too', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'berth-proc-'));
  try {
    for (const group of [false, true]) {
      const pidFile = join(dir, `pid-${group}`);
      const e = await runCommand('sh', ['-c', `sleep 30 & echo $! > ${pidFile}; wait`], { timeoutMs: 300, group }).then(
        () => null,
        (err: unknown) => err,
      );
      assert.ok(e instanceof CommandError && e.exitCode === null, String(e));
      const child = Number(readFileSync(pidFile, 'utf8'));
      if (group) {
        for (let i = 0; i < 100 && running(child); i++) await new Promise((r) => setTimeout(r, 50));
        assert.equal(running(child), false, "the helper's child was killed with its group");
      } else process.kill(child, 'SIGKILL'); // outside the group kill: the test ends it
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
