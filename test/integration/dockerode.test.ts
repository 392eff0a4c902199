/** Issue #2 acceptance 2: a dockerode (npm) scenario against berthd. */
import { before, after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import Docker from 'dockerode';
import { startDaemon, type Daemon } from './harness.js';

describe('dockerode against berthd', () => {
  let d: Daemon;
  let docker: Docker;
  before(async () => {
    d = await startDaemon();
    docker = new Docker({ socketPath: d.sock });
  });
  after(async () => {
    await d?.stop();
  });

  test('create, attach, start, wait, logs, remove', async () => {
    const c = await docker.createContainer({
      Image: 'busybox',
      Cmd: ['sh', '-c', 'echo to-out; echo to-err >&2; exit 5'],
      AttachStdout: true,
      AttachStderr: true,
    });
    const stream = await c.attach({ stream: true, stdout: true, stderr: true, hijack: true });
    const out = new PassThrough();
    const err = new PassThrough();
    let stdout = '';
    let stderr = '';
    out.on('data', (b: Buffer) => (stdout += b.toString()));
    err.on('data', (b: Buffer) => (stderr += b.toString()));
    docker.modem.demuxStream(stream, out, err);
    const ended = new Promise((r) => stream.on('end', r));
    const waited = c.wait({ condition: 'next-exit' });
    await c.start();
    const res = (await waited) as { StatusCode: number };
    await ended;
    assert.equal(res.StatusCode, 5);
    assert.equal(stdout, 'to-out\n');
    assert.equal(stderr, 'to-err\n');
    const logs = (await c.logs({ stdout: true, stderr: false })) as unknown as Buffer;
    assert.match(logs.toString(), /to-out/);
    assert.doesNotMatch(logs.toString(), /to-err/);
    const info = await c.inspect();
    assert.equal(info.State.ExitCode, 5);
    await c.remove();
    await assert.rejects(c.inspect(), /no such container/i);
  });

  test('list, exec and image listing', async () => {
    const c = await docker.createContainer({ Image: 'busybox', Cmd: ['sleep', '100'], name: 'dockerode-sleeper' });
    await c.start();
    const list = await docker.listContainers();
    assert.ok(list.some((x) => x.Names.includes('/dockerode-sleeper')));
    const ex = await c.exec({ Cmd: ['sh', '-c', 'echo exec-ok'], AttachStdout: true, AttachStderr: true });
    const s = await ex.start({ hijack: true, stdin: false });
    const out = new PassThrough();
    let text = '';
    out.on('data', (b: Buffer) => (text += b.toString()));
    docker.modem.demuxStream(s, out, out);
    await new Promise((r) => s.on('end', r));
    assert.equal(text, 'exec-ok\n');
    const inspected = await ex.inspect();
    assert.equal(inspected.ExitCode, 0);
    const images = await docker.listImages();
    assert.ok(images.some((i) => (i.RepoTags ?? []).includes('busybox:latest')));
    await c.remove({ force: true });
  });
});
