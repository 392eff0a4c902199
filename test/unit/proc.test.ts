/** base/proc.ts: a helper program's failure is a BerthError, and its deadline kills it. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CommandError, runCommand } from '../../src/base/proc.js';
import { isBerthError } from '../../src/base/errors.js';

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
