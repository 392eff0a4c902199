/**
 * Issue #17: the CRI's ImageService against a real berthd and berth's own registry on loopback
 * (htpasswd users, token auth): PullImage with the kubelet's AuthConfig (username/password, or
 * `auth` as base64), refused without it, ImageStatus and ListImages after, RemoveImage
 * idempotent and refused for an image a container uses; the images are the Docker API's too.
 */
import { before, after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import { startDaemon, type Daemon } from './harness.js';
import { htpasswd, startBerthRegistry, type Registry } from './registry-harness.js';
import { criClient, codeOf, type CriClient } from './cri-client.js';

describe('CRI ImageService', () => {
  const dir = mkdtempSync('/tmp/berth-criimg-');
  const sock = join(dir, 'cri.sock');
  let d: Daemon;
  let reg: Registry;
  let cri: CriClient;
  let ref = '';
  const user = { username: 'kube', password: 'pw-Kube-Secret9' };

  before(async () => {
    d = await startDaemon({ args: ['--cri-socket', sock, '--cni-conf-dir', join(dir, 'no-cni')] });
    reg = await startBerthRegistry((rdir) => [
      '--htpasswd',
      htpasswd(rdir, { [user.username]: user.password }),
      '--auth',
      'token',
    ]);
    ref = `${reg.addr}/priv/bb:1`;
    await d.docker(['tag', 'busybox', ref]);
    await d.docker(['login', '-u', user.username, '--password-stdin', reg.addr], { input: `${user.password}\n` });
    await d.docker(['push', ref]);
    await d.docker(['logout', reg.addr]);
    await d.docker(['rmi', ref]);
    cri = criClient(sock);
  });

  after(async () => {
    cri?.close();
    await d?.stop();
    await reg?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const statusOf = async (image: string) =>
    ((await cri.image('ImageStatus', { image: { image } })) as { image: { id: string; repo_tags: string[] } | null })
      .image;

  test('PullImage without credentials: refused, nothing pulled', async () => {
    // the one pull path answers as dockerd does (NotFound, "pull access denied ... may require
    // 'docker login'"): a private repository does not tell strangers that it exists
    await assert.rejects(cri.image('PullImage', { image: { image: ref } }), (e: unknown) => {
      assert.ok([status.NOT_FOUND, status.UNAUTHENTICATED].includes(codeOf(e)), String(e));
      assert.match(String(e), /denied|unauthorized|authentication/i);
      return true;
    });
    assert.equal(await statusOf(ref), null);
    await assert.rejects(
      cri.image('PullImage', { image: { image: ref }, auth: { ...user, password: 'wrong' } }),
      (e: unknown) => [status.NOT_FOUND, status.UNAUTHENTICATED].includes(codeOf(e)),
    );
    assert.equal(await statusOf(ref), null);
  });

  test('PullImage with username/password: the image, its status, listed, seen by the Docker API', async () => {
    const r = await cri.image('PullImage', { image: { image: ref }, auth: user });
    assert.match(r['image_ref'] as string, /^sha256:[a-f0-9]{64}$/);
    const st = await statusOf(ref);
    assert.equal(st?.id, r['image_ref']);
    assert.ok(st?.repo_tags.includes(ref), st?.repo_tags.join());
    const l = (await cri.image('ListImages', { filter: { image: { image: ref } } })) as {
      images: Array<{ id: string }>;
    };
    assert.deepEqual(
      l.images.map((i) => i.id),
      [r['image_ref']],
    );
    assert.equal((await d.docker(['image', 'inspect', '-f', '{{.Id}}', ref])).stdout.trim(), r['image_ref']);
  });

  test('RemoveImage: gone, and again no error; PullImage with `auth` (base64 user:password)', async () => {
    await cri.image('RemoveImage', { image: { image: ref } });
    assert.equal(await statusOf(ref), null);
    await cri.image('RemoveImage', { image: { image: ref } });
    const auth = Buffer.from(`${user.username}:${user.password}`).toString('base64');
    await cri.image('PullImage', { image: { image: ref }, auth: { auth, server_address: reg.addr } });
    assert.notEqual(await statusOf(ref), null);
  });

  test('bad pulls: a malformed reference, token auth berth does not do', async () => {
    await assert.rejects(
      cri.image('PullImage', { image: { image: 'UPPER/Case::x' } }),
      (e: unknown) => codeOf(e) === status.INVALID_ARGUMENT,
    );
    await assert.rejects(
      cri.image('PullImage', { image: { image: ref }, auth: { registry_token: 'abc' } }),
      (e: unknown) => codeOf(e) === status.UNIMPLEMENTED,
    );
  });

  test('RemoveImage of an image a CRI container uses is refused; the image stays', async () => {
    const config = { metadata: { name: 'img', uid: 'uid-img', namespace: 'default', attempt: 0 } };
    const pod = (await cri.runtime('RunPodSandbox', { config }))['pod_sandbox_id'] as string;
    try {
      await cri.runtime('CreateContainer', {
        pod_sandbox_id: pod,
        sandbox_config: config,
        config: { metadata: { name: 'c' }, image: { image: ref }, command: ['sleep', '1000'] },
      });
      await assert.rejects(
        cri.image('RemoveImage', { image: { image: ref } }),
        (e: unknown) => codeOf(e) === status.FAILED_PRECONDITION,
      );
      assert.notEqual(await statusOf(ref), null);
    } finally {
      await cri.runtime('RemovePodSandbox', { pod_sandbox_id: pod });
    }
  });
});
