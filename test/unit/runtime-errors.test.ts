/**
 * runtime/: a failed start or exec is typed (errors.ts), so the engine picks 127/126 by reason,
 * never by reading the message; an exec's exit file is awaited on a condition with a deadline
 * (exits.ts), not by sleeping. Real files, a manual clock for the deadline.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ManualClock, systemClock } from '../../src/base/clock.js';
import { isBerthError } from '../../src/base/errors.js';
import { StartFailure, exitCodeOfStartFailure, runtimeError } from '../../src/runtime/errors.js';
import { waitForExitFile } from '../../src/runtime/exits.js';
import { pollUntil } from '../../src/runtime/poll.js';

test('a runtime failure is typed by reason; the exit code comes from the type', () => {
  const cases: Array<[string, 'create' | 'exec', string, number]> = [
    ['executable file `nope` not found in $PATH: No such file or directory', 'create', 'not-found', 127],
    ['exec: "nope": executable file not found in $PATH', 'exec', 'not-found', 127],
    ['exec `/etc/passwd`: Permission denied', 'exec', 'permission-denied', 126],
    // runc through logrus: its quotes escaped
    [
      'time="2026-12-02T05:46:17Z" level=error msg="exec failed: unable to start container process: exec: \\"/no/such\\": stat /no/such: no such file or directory"',
      'exec',
      'not-found',
      127,
    ],
    ['open `/dev/null`: Operation not permitted', 'create', 'other', 128],
  ];
  for (const [text, op, reason, code] of cases) {
    const e = runtimeError(text, op);
    assert.ok(e instanceof StartFailure, text);
    assert.ok(isBerthError(e, 'InvalidArgument'), 'still the InvalidArgument it was (400)');
    assert.equal(e.reason, reason, text);
    assert.equal(exitCodeOfStartFailure(e, 128), code, text);
  }
  // the wording clients look for is kept
  assert.match(
    runtimeError('exec: "nope": executable file not found', 'exec').message,
    /^OCI runtime exec failed: exec failed: .*executable file not found/,
  );
  // the type decides, not the text: an error that only says the words is no StartFailure
  assert.equal(exitCodeOfStartFailure(new Error('executable file not found; permission denied'), 126), 126);
  assert.equal(exitCodeOfStartFailure(new Error('executable file not found'), 128), 128);
});

test('an exit file is awaited: found when conmon writes it, null at the deadline', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'berth-exits-'));
  try {
    // written after the wait began: the watcher (or the poll) finds it
    const later = waitForExitFile(join(dir, 'a'), systemClock, 10_000, 20);
    writeFileSync(join(dir, 'a'), '');
    writeFileSync(join(dir, 'a'), '7');
    assert.equal(await later, 7);
    // already there
    assert.equal(await waitForExitFile(join(dir, 'a'), systemClock, 10_000), 7);
    // never written: the deadline answers, on the injected clock
    const clock = new ManualClock();
    const never = waitForExitFile(join(dir, 'b'), clock, 5000);
    clock.advance(4999);
    clock.advance(1);
    assert.equal(await never, null);
    assert.equal(clock.pending, 0, 'no timer left behind');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a condition is polled on the clock until it holds, or answers false at the deadline', async () => {
  const clock = new ManualClock();
  const turn = () => new Promise((r) => setImmediate(r)); // lets the poll reach its next sleep
  let checks = 0;
  const soon = pollUntil(() => ++checks >= 3, { clock, deadlineMs: 1000, everyMs: 50 });
  for (let i = 0; i < 3; i++) {
    await turn();
    clock.advance(50);
  }
  assert.equal(await soon, true);
  assert.equal(checks, 3, 'checked once per interval');
  const start = clock.now();
  const never = pollUntil(() => false, { clock, deadlineMs: 120, everyMs: 50 });
  for (let i = 0; i < 5; i++) {
    await turn();
    clock.advance(50);
  }
  assert.equal(await never, false);
  assert.ok(clock.now() - start >= 120);
  let stopped = false;
  const ended = pollUntil(() => false, { clock, deadlineMs: 10_000, everyMs: 50, stop: () => stopped });
  stopped = true;
  assert.equal(await ended, false, 'stop() ends it before the deadline');
});
