/**
 * Issue #3, the engine's side: pull verifies every byte (a tampered blob is refused and nothing is
 * registered), picks the platform from an index (--platform another), reuses layers it has, pulls
 * by digest; push sends only what the registry lacks.
 */
import { before, after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { REPO, startDaemon, type Daemon } from './harness.js';
import { startBerthRegistry, type Registry } from './registry-harness.js';

const sha = (b: Buffer | string) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const bi = (b: Buffer) => b as unknown as BodyInit;
const run = promisify(execFile);

describe('pull and push through berthd', () => {
  let d: Daemon;
  let reg: Registry;
  before(async () => {
    d = await startDaemon();
    reg = await startBerthRegistry();
  });
  after(async () => {
    await d?.stop();
    await reg?.stop();
  });

  const blobs = () => readdirSync(join(d.root, 'content', 'blobs', 'sha256')).sort();

  test('push sends only what the registry lacks; pull by digest; layers already present are not fetched', async () => {
    const ref = `${reg.addr}/p/bb:1`;
    await d.docker(['tag', 'busybox', ref]);
    const first = await d.docker(['push', ref]);
    assert.match(first.stdout, /Pushed/);
    const again = await d.docker(['push', ref]);
    assert.match(again.stdout, /Layer already exists/);
    assert.doesNotMatch(again.stdout, /Pushed/);
    const digest = /digest: (sha256:[a-f0-9]{64})/.exec(again.stdout)![1]!;
    const pulled = await d.docker(['pull', `${reg.addr}/p/bb@${digest}`]);
    assert.match(pulled.stdout, /Already exists/);
    const ins = JSON.parse((await d.docker(['image', 'inspect', `${reg.addr}/p/bb@${digest}`])).stdout)[0] as {
      Id: string;
    };
    assert.equal(ins.Id, JSON.parse((await d.docker(['image', 'inspect', 'busybox'])).stdout)[0].Id);
  });

  test('an index: the host platform by default, --platform picks another; an absent platform is a clear error', async () => {
    const base = `http://${reg.addr}`;
    const busyboxId = (JSON.parse((await d.docker(['image', 'inspect', 'busybox'])).stdout)[0] as { Id: string }).Id;
    const config = JSON.parse(
      readFileSync(join(d.root, 'content', 'blobs', 'sha256', busyboxId.slice(7)), 'utf8'),
    ) as Record<string, unknown>;
    const layerDigest = (config['rootfs'] as { diff_ids: string[] }).diff_ids[0]!;
    const put = async (path: string, body: Buffer, type?: string) => {
      const r = await fetch(`${base}${path}`, {
        method: path.includes('/manifests/') ? 'PUT' : 'POST',
        body: bi(body),
        headers: type ? { 'Content-Type': type } : {},
      });
      assert.ok(r.status === 201, `${path}: ${r.status} ${await r.text()}`);
    };
    // the layer is in the registry already (pushed above, repository p/bb): mount it
    assert.equal(
      (await fetch(`${base}/v2/multi/img/blobs/uploads/?mount=${layerDigest}&from=p/bb`, { method: 'POST' })).status,
      201,
    );
    const layerSize = Number(
      (await fetch(`${base}/v2/multi/img/blobs/${layerDigest}`, { method: 'HEAD' })).headers.get('content-length'),
    );
    const manifests = [];
    for (const arch of ['amd64', 'arm64']) {
      const cfg = Buffer.from(
        JSON.stringify({
          ...config,
          architecture: arch,
          config: { ...(config['config'] as object), Labels: { arch } },
        }),
      );
      await put(`/v2/multi/img/blobs/uploads/?digest=${sha(cfg)}`, cfg);
      const m = Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha(cfg), size: cfg.length },
          layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: layerDigest, size: layerSize }],
        }),
      );
      await put(`/v2/multi/img/manifests/${sha(m)}`, m, 'application/vnd.oci.image.manifest.v1+json');
      manifests.push({
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        digest: sha(m),
        size: m.length,
        platform: { os: 'linux', architecture: arch },
      });
    }
    const index = Buffer.from(
      JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests }),
    );
    await put('/v2/multi/img/manifests/latest', index, 'application/vnd.oci.image.index.v1+json');
    const ref = `${reg.addr}/multi/img:latest`;
    const host = process.arch === 'arm64' ? 'arm64' : 'amd64';
    await d.docker(['pull', ref]);
    const label = async (r: string) =>
      (
        JSON.parse((await d.docker(['image', 'inspect', r])).stdout)[0] as {
          Config: { Labels: Record<string, string> };
        }
      ).Config.Labels['arch'];
    assert.equal(await label(ref), host);
    const other = host === 'amd64' ? 'arm64' : 'amd64';
    await d.docker(['pull', '--platform', `linux/${other}`, ref]);
    assert.equal(await label(ref), other);
    const none = await d.docker(['pull', '--platform', 'linux/s390x', ref], { allowFail: true });
    assert.notEqual(none.code, 0);
    assert.match(none.stderr, /no matching manifest for linux\/s390x/);
  });

  test('pull --all-tags; a Docker Hub mirror serves docker.io names', async () => {
    for (const t of ['a1', 'a2']) {
      await d.docker(['tag', 'busybox', `${reg.addr}/all/bb:${t}`]);
      await d.docker(['push', `${reg.addr}/all/bb:${t}`]);
      await d.docker(['rmi', `${reg.addr}/all/bb:${t}`]);
    }
    await d.docker(['pull', '--all-tags', `${reg.addr}/all/bb`]);
    const tags = (await d.docker(['images', '--format', '{{.Tag}}', `${reg.addr}/all/bb`])).stdout
      .trim()
      .split('\n')
      .sort();
    assert.deepEqual(tags, ['a1', 'a2']);
    await d.docker(['tag', 'busybox', `${reg.addr}/library/busybox:mirrored`]);
    await d.docker(['push', `${reg.addr}/library/busybox:mirrored`]);
    const m = await startDaemon({ args: ['--registry-mirror', `http://${reg.addr}`] });
    try {
      await m.docker(['pull', 'busybox:mirrored']);
      assert.equal(
        (await m.docker(['run', '--rm', 'busybox:mirrored', 'echo', 'via mirror'])).stdout.trim(),
        'via mirror',
      );
    } finally {
      await m.stop();
    }
  });

  test('an interrupted pull resumes: verified layers are not fetched again', async () => {
    await run('node', [join(REPO, 'bench/make-image.mjs'), join(d.dir, 'two.tar'), '2', '1', 'two:1']);
    await d.docker(['load', '-i', join(d.dir, 'two.tar')]);
    const ref = `${reg.addr}/resume/two:1`;
    await d.docker(['tag', 'two:1', ref]);
    await d.docker(['push', ref]);
    const diffIds = (
      JSON.parse((await d.docker(['image', 'inspect', ref])).stdout)[0] as { RootFS: { Layers: string[] } }
    ).RootFS.Layers;
    await d.docker(['rmi', 'two:1', ref]);
    // the second layer is damaged in the registry: the pull stops there
    const file = join(reg.root, 'blobs', 'sha256', diffIds[1]!.slice(7));
    const good = readFileSync(file);
    const bad = Buffer.from(good);
    bad[100] = bad[100]! ^ 1;
    writeFileSync(file, bad);
    assert.notEqual((await d.docker(['pull', ref], { allowFail: true })).code, 0);
    writeFileSync(file, good);
    const again = await d.docker(['pull', ref]);
    assert.match(
      again.stdout,
      new RegExp(`${diffIds[0]!.slice(7, 19)}: Already exists`),
      'the first layer was kept from the failed pull',
    );
    assert.match(again.stdout, new RegExp(`${diffIds[1]!.slice(7, 19)}: Download complete`));
  });

  test('on a terminal, berth pull draws a progress bar per layer, redrawn in place', async () => {
    const ref = `${reg.addr}/tty/bb:1`;
    await d.docker(['tag', 'busybox', ref]);
    await d.docker(['push', ref]);
    await d.docker(['image', 'prune', '-a', '-f']).catch(() => undefined);
    await d.docker(['rmi', '-f', ref, 'busybox']).catch(() => undefined);
    // script(1) gives the CLI a pseudo-terminal and copies what it draws to stdout
    const out = await run('script', ['-q', '-e', '-c', `${join(REPO, 'bin/berth')} pull ${ref}`, '/dev/null'], {
      env: d.env,
    });
    assert.match(out.stdout, /Downloading \[=*>\s*\] [\d.]+[kM]B\/[\d.]+MB/, 'a bar with sizes');
    assert.match(out.stdout, /\x1b\[\d+A/, 'lines are redrawn in place (cursor up)');
    assert.match(out.stdout, /Pull complete/);
    await d.docker(['tag', ref, 'busybox']);
  });

  test('a tampered blob is refused: nothing is registered and no blob lands', async () => {
    const ref = `${reg.addr}/t/bb:1`;
    await d.docker(['tag', 'busybox', ref]);
    await d.docker(['push', ref]);
    await d.docker(['image', 'prune', '-a', '-f']); // no containers: every image goes, and with them the layer
    assert.deepEqual(JSON.parse((await d.api('GET', '/images/json')).text), [], 'no image holds the layer any more');
    const before = blobs();
    // flip one byte of the layer in the registry's storage
    const manifest = (await (
      await fetch(`http://${reg.addr}/v2/t/bb/manifests/1`, {
        headers: { Accept: 'application/vnd.oci.image.manifest.v1+json' },
      })
    ).json()) as { layers: Array<{ digest: string }> };
    const file = join(reg.root, 'blobs', 'sha256', manifest.layers[0]!.digest.slice(7));
    const bytes = readFileSync(file);
    bytes[bytes.length - 600] = bytes[bytes.length - 600]! ^ 0xff;
    writeFileSync(file, bytes);
    const r = await d.docker(['pull', ref], { allowFail: true });
    assert.notEqual(r.code, 0);
    assert.match(r.stdout + r.stderr, /failed verification|does not match/);
    assert.equal(
      (await d.docker(['image', 'inspect', ref], { allowFail: true })).code,
      1,
      'the image is not registered',
    );
    assert.deepEqual(blobs(), before, 'no blob of the failed pull stays');
  });
});
