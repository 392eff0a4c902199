/**
 * BuildKit's wire pieces without a daemon: the Status trace made from the builder's output, the
 * secret ids a Dockerfile asks for, and the context stream that waits for its secrets.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough, Readable } from 'node:stream';
import { pack } from 'tar-stream';
import { ManualClock } from '../../src/base/clock.js';
import { Trace } from '../../src/buildkit/trace.js';
import { secretIds, withSecrets } from '../../src/buildkit/secrets.js';
import { decodeStatus, type StatusResponse } from '../../src/buildkit/protos.js';

test('the trace: a vertex per step, its logs, cached flags, legacy-only lines dropped, failures marked', () => {
  const clock = new ManualClock();
  const out: StatusResponse[] = [];
  const t = new Trace(clock, (b) => out.push(decodeStatus(b)));
  const o = t.output();
  o.stream('Step 1/3 : FROM busybox\n ---> 1234\nStep 2/3 : RUN echo ');
  o.stream('hi\nhi\n\x1b[91moops\n\x1b[0m');
  o.step({ stage: '', index: 2, total: 3, text: 'RUN echo hi', cached: false, ms: 5 });
  o.stream('Step 3/3 : CMD ["x"]\n ---> Using cache\n');
  o.step({ stage: '', index: 3, total: 3, text: 'CMD ["x"]', cached: true, ms: 1 });
  o.stream('Successfully built 1234\nSuccessfully tagged a:latest\n');
  t.finish();
  const vertexes = out.flatMap((s) => s.vertexes);
  const names = [...new Set(vertexes.map((v) => v.name))];
  assert.deepEqual(names, ['[1/3] FROM busybox', '[2/3] RUN echo hi', '[3/3] CMD ["x"]']);
  const run = vertexes.filter((v) => v.name === '[2/3] RUN echo hi');
  assert.equal(run.length, 2);
  assert.ok(run[1]!.completed && !run[1]!.cached && !run[1]!.error);
  assert.equal(run[0]!.digest, run[1]!.digest);
  assert.ok(vertexes.find((v) => v.name === '[3/3] CMD ["x"]' && v.completed)!.cached);
  const logs = out.flatMap((s) => s.logs).map((l) => [Number(l.stream), Buffer.from(l.msg).toString(), l.vertex]);
  assert.deepEqual(logs, [
    [1, 'hi\n', run[0]!.digest],
    [2, 'oops\n', run[0]!.digest],
  ]);
  // the FROM step without a step event is completed by finish(); nothing legacy-only became a log
  assert.ok(vertexes.some((v) => v.name === '[1/3] FROM busybox' && v.completed));

  const failed: StatusResponse[] = [];
  const t2 = new Trace(clock, (b) => failed.push(decodeStatus(b)));
  t2.output().stream('Step 1/1 : RUN false\n');
  t2.fail('exit code 1');
  assert.equal(failed.at(-1)!.vertexes[0]!.error, 'exit code 1');
});

test('secret ids: id= or the target base name, ONBUILD included, bad Dockerfiles ignored', () => {
  const df = [
    'FROM busybox',
    'RUN --mount=type=secret,id=a cat /run/secrets/a',
    'RUN --mount=type=secret,target=/etc/b.txt --mount=type=cache,target=/c true',
    'ONBUILD RUN --mount=type=secret,id=c true',
    'RUN --mount=type=bind,source=x,target=/y true',
  ].join('\n');
  assert.deepEqual(secretIds(df).sort(), ['a', 'b.txt', 'c']);
  assert.deepEqual(secretIds('FROM\nRUNN x'), []);
});

async function tarOf(files: Record<string, string>): Promise<Buffer> {
  const p = pack();
  for (const [name, body] of Object.entries(files)) p.entry({ name }, body);
  p.finalize();
  const chunks: Buffer[] = [];
  for await (const c of p as unknown as AsyncIterable<Buffer>) chunks.push(c);
  return Buffer.concat(chunks);
}

test('the context stream ends only after the secrets are fetched, unchanged byte for byte', async () => {
  const tar = await tarOf({
    'sub/Dockerfile.x': 'FROM a\nRUN --mount=type=secret,id=k true\n',
    'f.txt': 'x'.repeat(5000),
  });
  const src = new PassThrough();
  let fetched: string | null = 'not called';
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const out = withSecrets(src, './sub/Dockerfile.x', async (text) => {
    fetched = text;
    await gate;
  });
  const got: Buffer[] = [];
  let ended = false;
  out.on('data', (c: Buffer) => got.push(c));
  out.on('end', () => (ended = true));
  for (let i = 0; i < tar.length; i += 700) src.write(tar.subarray(i, i + 700));
  src.end();
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(ended, false, 'the context ended before the secrets were there');
  assert.match(String(fetched), /RUN --mount=type=secret,id=k/);
  assert.ok(Buffer.concat(got).length < tar.length);
  release();
  await new Promise((r) => out.once('end', r));
  assert.ok(Buffer.concat(got).equals(tar));

  // a failing fetch fails the context stream
  const bad = withSecrets(Readable.from([tar]), 'sub/Dockerfile.x', async () => {
    throw new Error('secret k: the session went away');
  });
  await assert.rejects(
    (async () => {
      for await (const _ of bad) void _;
    })(),
    /the session went away/,
  );
});
