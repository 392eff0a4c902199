/**
 * Issue #15, item 1: the Engine API's routes call one engine verb each; the verbs own the state
 * checks and the events. What clients see is unchanged, except the failures the issue names:
 * an attach that fails is told (not a silent EOF), a malformed path escape is the client's 400.
 */
import { before, after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { renameSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { startDaemon, type Daemon } from './harness.js';

interface Ev {
  Type: string;
  Action: string;
  Actor: { ID: string; Attributes: Record<string, string> };
}

/** A raw request; the whole body as bytes (a streamed answer included). */
function raw(d: Daemon, method: string, path: string): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath: d.sock, path, method }, (r) => {
      const chunks: Buffer[] = [];
      r.on('data', (c: Buffer) => chunks.push(c));
      r.on('end', () => resolve({ status: r.statusCode ?? 0, body: Buffer.concat(chunks) }));
    });
    req.setTimeout(20_000, () => req.destroy(new Error('no answer in 20 s')));
    req.on('error', reject);
    req.end();
  });
}

describe('engine verbs behind the API', () => {
  let d: Daemon;
  before(async () => {
    d = await startDaemon();
  });
  after(async () => {
    await d?.docker(['rm', '-f', 'v1', 'v2'], { allowFail: true });
    await d?.stop();
  });

  /** Events since `t0` (seconds) up to now. */
  const events = async (t0: number): Promise<Ev[]> => {
    const r = await d.api('GET', `/events?since=${t0}&until=${Math.ceil(Date.now() / 1000) + 1}`);
    assert.equal(r.status, 200);
    return r.text
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Ev);
  };

  test('each verb emits its event (update, commit, tag, export, network and volume verbs)', async () => {
    const t0 = Math.floor(Date.now() / 1000) - 1;
    await d.docker(['run', '-d', '--name', 'v1', '--network', 'none', 'busybox', 'sleep', '300']);
    await d.docker(['update', '--memory', '64m', '--memory-swap', '128m', 'v1']);
    await d.docker(['commit', 'v1', 'verbs-commit:1']);
    await d.docker(['tag', 'verbs-commit:1', 'verbs-commit:2']);
    assert.equal((await raw(d, 'GET', '/containers/v1/export')).status, 200);
    await d.docker(['network', 'create', 'vnet']);
    await d.docker(['create', '--name', 'v2', 'busybox', 'true']);
    await d.docker(['network', 'connect', 'vnet', 'v2']);
    await d.docker(['network', 'disconnect', 'vnet', 'v2']);
    await d.docker(['network', 'rm', 'vnet']);
    await d.docker(['volume', 'create', 'vvol']);
    await d.docker(['volume', 'rm', 'vvol']);
    await d.docker(['rmi', 'verbs-commit:2']);
    const seen = (await events(t0)).map((e) => `${e.Type} ${e.Action}`);
    for (const want of [
      'container update',
      'container commit',
      'image tag',
      'container export',
      'network create',
      'network connect',
      'network disconnect',
      'network destroy',
      'volume create',
      'volume destroy',
      'image untag',
    ])
      assert.ok(seen.includes(want), `event ${want} in ${seen.join(', ')}`);
    // commit froze and thawed the container without its record changing
    assert.equal((await d.docker(['inspect', '-f', '{{.State.Status}}', 'v1'])).stdout.trim(), 'running');
    const top = await d.docker(['top', 'v1']);
    assert.match(top.stdout, /sleep 300/);
  });

  test('an attach that fails is not a silent EOF: logged, and the error ends the stream', async () => {
    const id = (await d.docker(['inspect', '-f', '{{.Id}}', 'v1'])).stdout.trim();
    // conmon's attach socket of the running container goes away: the runtime's attach fails
    const sock = join(d.dir, 'run', 'runtime', 's', id.slice(0, 12), 'attach');
    renameSync(sock, `${sock}.gone`);
    try {
      const r = await raw(d, 'POST', '/containers/v1/attach?stream=1&stdout=1&stderr=1');
      assert.equal(r.status, 200);
      // one stderr frame (non-TTY: multiplexed) with the reason
      assert.equal(r.body[0], 2, `a stderr frame, got ${JSON.stringify(r.body.toString())}`);
      assert.match(r.body.subarray(8).toString(), /^Error attaching to container v1: /);
      assert.match(d.logs(), /attach failed/);
    } finally {
      renameSync(`${sock}.gone`, sock);
    }
    // and attaching works again once the socket is back
    const ok = await d.docker(['exec', 'v1', 'echo', 'still here']);
    assert.equal(ok.stdout.trim(), 'still here');
  });

  test('a malformed %-escape in a path is 400, not 500', async () => {
    const r = await d.api('GET', '/containers/%E0%A4%A/json');
    assert.equal(r.status, 400, r.text);
    assert.match((r.body as { message: string }).message, /invalid URL escape/);
    assert.equal((await d.api('GET', '/_ping')).status, 200);
  });

  test("bad detach keys are 400 with dockerd's words, checked before the container is looked up (as dockerd)", async () => {
    for (const ref of ['v1', 'nosuchcontainer']) {
      const r = await d.api('POST', `/containers/${ref}/attach?stream=1&stdin=1&detachKeys=ctrl-%3F%3F`);
      assert.equal(r.status, 400, r.text);
      assert.equal((r.body as { message: string }).message, 'Invalid detach keys (ctrl-??) provided');
    }
  });
});
