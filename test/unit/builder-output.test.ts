/** OrderedOutput: stages' lines in Dockerfile order although they run at once; memory bounded; rm/forcerm lines. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { OrderedOutput } from '../../src/builder/output.js';

function sink() {
  const lines: string[] = [];
  return {
    lines,
    out: { stream: (t: string) => lines.push(t), step: () => undefined, aux: (id: string) => lines.push(`aux ${id}`) },
  };
}

test('a later stage is held until the earlier ones finish, then written in stage order', async () => {
  const { lines, out } = sink();
  const o = new OrderedOutput(out, { rm: true, force: false });
  o.setOrder([2, 0, 1]);
  const stage = (i: number, wait: number) =>
    o.inStage(i, async () => {
      o.stream(`s${i} a`);
      await sleep(wait);
      o.stream(`s${i} b`);
      o.aux(`id${i}`);
      o.finished(i);
    });
  await Promise.all([stage(2, 1), stage(1, 5), stage(0, 30)]);
  o.stream('end'); // outside any stage: at once
  assert.deepEqual(lines, ['s0 a', 's0 b', 'aux id0', 's1 a', 's1 b', 'aux id1', 's2 a', 's2 b', 'aux id2', 'end']);
});

test('a failed build writes what the stages up to the failing one held, not the later ones', async () => {
  const { lines, out } = sink();
  const o = new OrderedOutput(out, { rm: true, force: false });
  o.setOrder([0, 1, 2]);
  await o.inStage(2, async () => o.stream('later'));
  await o.inStage(1, async () => o.stream('failing'));
  await o.inStage(0, async () => o.stream('first'));
  o.flushAll(1);
  assert.deepEqual(lines, ['first', 'failing']);
});

test('what is held is bounded: past 8 MiB a later stage writes at once', async () => {
  const { lines, out } = sink();
  const o = new OrderedOutput(out, { rm: true, force: false });
  o.setOrder([0, 1]);
  const chunk = 'x'.repeat(1 << 20);
  await o.inStage(1, async () => {
    for (let i = 0; i < 10; i++) o.stream(chunk);
  });
  assert.equal(lines.length, 2, 'eight chunks (8 MiB) held, the rest written');
  await o.inStage(0, async () => o.finished(0));
  assert.equal(lines.length, 10);
});

test('Running in / Removing intermediate container follow rm and forcerm', async () => {
  for (const [rm, force, ok, removed] of [
    [true, false, true, true],
    [true, false, false, false],
    [false, false, true, false],
    [false, true, false, true],
  ] as const) {
    const { lines, out } = sink();
    const o = new OrderedOutput(out, { rm, force });
    o.setOrder([0]);
    await o.inStage(0, async () => {
      o.running();
      o.stepEnded(ok);
      o.stepEnded(ok); // once per container
    });
    const id = /^ ---> Running in ([0-9a-f]{12})\n$/.exec(lines[0]!)?.[1];
    assert.ok(id, lines[0]);
    assert.deepEqual(
      lines.slice(1),
      removed ? [`Removing intermediate container ${id}\n`] : [],
      `${rm} ${force} ${ok}`,
    );
  }
});
