/**
 * Issue #16 (Fidelity), images and distribution: berthd answers as dockerd 20.10 does. What
 * dockerd 20.10.24 answered on this machine (a private dockerd, Debian's docker-registry and berth's
 * registry on loopback) is quoted in each case; the tests run against berthd only.
 */
import { before, after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { Readable } from 'node:stream';
import * as tar from 'tar-stream';
import { FIXTURE, startDaemon, type Daemon } from './harness.js';
import { htpasswd, startBerthRegistry, type Registry } from './registry-harness.js';

const sha = (b: Buffer | string) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const bi = (b: Buffer) => b as unknown as BodyInit;

/** The files of a tar (small ones). */
async function untar(b: Buffer): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  const ex = tar.extract();
  ex.on('entry', (h, stream, next) => {
    const parts: Buffer[] = [];
    stream.on('data', (c: unknown) => parts.push(c as Buffer));
    stream.on('end', () => {
      if (h.type === 'file') out.set(h.name.replace(/^\.\//, ''), Buffer.concat(parts));
      next();
    });
  });
  await new Promise<void>((resolve, reject) => {
    ex.on('finish', resolve);
    ex.on('error', reject);
    Readable.from([b]).pipe(ex);
  });
  return out;
}

async function tarOf(files: Array<[string, Buffer | string]>): Promise<Buffer> {
  const pack = tar.pack();
  for (const [name, data] of files) {
    if (name.endsWith('/')) pack.entry({ name, type: 'directory', mode: 0o755 });
    else pack.entry({ name, mode: 0o644 }, data);
  }
  pack.finalize();
  const parts: Buffer[] = [];
  for await (const c of pack as unknown as AsyncIterable<Buffer>) parts.push(c);
  return Buffer.concat(parts);
}

describe('images and distribution as dockerd answers them', () => {
  let d: Daemon;
  let reg: Registry; // open
  let treg: Registry; // token auth, user alice
  let fixture: Map<string, Buffer>;
  let layer: Buffer; // the busybox fixture's one layer (uncompressed)

  function raw(
    method: string,
    path: string,
    body?: Buffer,
    headers: Record<string, string> = {},
  ): Promise<{ status: number; text: string; body: Buffer }> {
    return new Promise((resolve, reject) => {
      const req = http.request({ socketPath: d.sock, method, path: `/v1.41${path}`, headers }, (res) => {
        const parts: Buffer[] = [];
        res.on('data', (c: Buffer) => parts.push(c));
        res.on('end', () => {
          const b = Buffer.concat(parts);
          resolve({ status: res.statusCode ?? 0, text: b.toString('utf8'), body: b });
        });
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end(body);
    });
  }
  const lines = (text: string) =>
    text
      .split(/\r?\n/)
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  const imageIds = async () =>
    ((await d.api('GET', '/images/json?all=1')).body as Array<{ Id: string }>).map((i) => i.Id).sort();

  before(async () => {
    d = await startDaemon();
    reg = await startBerthRegistry();
    treg = await startBerthRegistry((dir) => ['--htpasswd', htpasswd(dir, { alice: 'pw-a' }), '--auth', 'token']);
    fixture = await untar(readFileSync(FIXTURE));
    const manifest = JSON.parse(fixture.get('manifest.json')!.toString()) as Array<{ Layers: string[] }>;
    layer = fixture.get(manifest[0]!.Layers[0]!)!;
  });
  after(async () => {
    await d?.stop();
    await reg?.stop();
    await treg?.stop();
  });

  test('save by ID writes no repo tags; by name every tag of the repository; by tag that tag', async () => {
    await d.docker(['tag', 'busybox', 'busybox:other']);
    await d.docker(['tag', 'busybox', 'fi/other:x']);
    const id = (JSON.parse((await d.docker(['image', 'inspect', 'busybox'])).stdout)[0] as { Id: string }).Id;
    const save = async (path: string) => {
      const r = await raw('GET', path);
      assert.equal(r.status, 200, r.text);
      const files = await untar(r.body);
      return {
        manifest: JSON.parse(files.get('manifest.json')!.toString()) as Array<{ RepoTags: string[] | null }>,
        repositories: files.has('repositories')
          ? (JSON.parse(files.get('repositories')!.toString()) as Record<string, Record<string, string>>)
          : null,
      };
    };
    // dockerd, GET /images/<id>/get: manifest.json [{"Config":...,"RepoTags":null,"Layers":[...]}], no repositories file
    for (const ref of [id, id.slice(7), id.slice(7, 19)]) {
      const byId = await save(`/images/${ref}/get`);
      assert.equal(byId.manifest.length, 1);
      assert.equal(byId.manifest[0]!.RepoTags, null, `by ${ref}: before this fix, every tag of the image`);
      assert.equal(byId.repositories, null, `by ${ref}`);
    }
    // dockerd, GET /images/busybox/get with busybox:latest and busybox:other:
    // "RepoTags":["busybox:latest","busybox:other"], repositories {"busybox":{"latest":...,"other":...}}
    const byName = await save('/images/busybox/get');
    assert.deepEqual(byName.manifest[0]!.RepoTags!.sort(), ['busybox:latest', 'busybox:other']);
    assert.deepEqual(Object.keys(byName.repositories!['busybox']!).sort(), ['latest', 'other']);
    assert.equal(byName.repositories!['fi/other'], undefined);
    const byTag = await save('/images/busybox:other/get');
    assert.deepEqual(byTag.manifest[0]!.RepoTags, ['busybox:other']);
    assert.deepEqual(Object.keys(byTag.repositories!), ['busybox']);
    await d.docker(['rmi', 'busybox:other', 'fi/other:x']);
  });

  test('load of a non-tar: 200 and the error inside the stream (quiet=0 and quiet=1); nothing loaded', async () => {
    const before = await imageIds();
    for (const quiet of ['0', '1']) {
      // dockerd: HTTP/1.1 200 OK, {"errorDetail":{"message":"Error processing tar file(exit status 1):
      // unexpected EOF"},"error":"Error processing tar file(exit status 1): unexpected EOF"}
      for (const body of [Buffer.from('hello, not a tar\n'), Buffer.alloc(0), await tarOf([['hostname', 'x']])]) {
        const r = await raw('POST', `/images/load?quiet=${quiet}`, body, { 'Content-Type': 'application/x-tar' });
        assert.equal(r.status, 200, `quiet=${quiet}: before this fix, a 400 (${r.text})`);
        const msgs = lines(r.text);
        const last = msgs.at(-1)!;
        assert.ok(last['errorDetail'], r.text);
        assert.equal((last['errorDetail'] as { message: string }).message, last['error']);
        assert.match(String(last['error']), /invalid|tar|archive/i);
      }
    }
    assert.deepEqual(await imageIds(), before);
  });

  /** The v1 json dockerd 20.10 wrote for the fixture's layer in a `docker save` (its legacy half). */
  const V1_ID = 'fbb912b7302616120719bec48dac7457e7d6bd5798dc3fadae4e2cc46123c38c';
  const v1Json = (id: string, parent?: string, cmd: string[] | null = null) =>
    JSON.stringify({
      id,
      ...(parent ? { parent } : {}),
      created: '2024-01-01T00:00:00Z',
      container_config: {
        Hostname: '',
        Domainname: '',
        User: '',
        AttachStdin: false,
        AttachStdout: false,
        AttachStderr: false,
        Tty: false,
        OpenStdin: false,
        StdinOnce: false,
        Env: null,
        Cmd: cmd,
        Image: '',
        Volumes: null,
        WorkingDir: '',
        Entrypoint: null,
        OnBuild: null,
        Labels: null,
      },
      config: {
        Hostname: '',
        Domainname: '',
        User: '',
        AttachStdin: false,
        AttachStdout: false,
        AttachStderr: false,
        Tty: false,
        OpenStdin: false,
        StdinOnce: false,
        Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'],
        Cmd: ['sh'],
        Image: '',
        Volumes: null,
        WorkingDir: '',
        Entrypoint: null,
        OnBuild: null,
        Labels: null,
      },
      architecture: 'amd64',
      os: 'linux',
    });

  test('the legacy layout (repositories, <id>/json, VERSION, layer.tar, no manifest.json) loads, with the ID dockerd gives it', async () => {
    // dockerd 20.10, `docker save busybox` less its manifest.json, loaded: RepoTags ["legacy/bb:1"],
    // Id sha256:eacdfe62dc534b226ea767a1f310f9cccb12b3e9271d8ae086b922053aa285c1 (the config
    // v1.MakeConfigFromV1Config makes), one layer, history [{"created":"2024-01-01T00:00:00Z"}]
    const archive = await tarOf([
      [`${V1_ID}/`, ''],
      [`${V1_ID}/json`, v1Json(V1_ID)],
      [`${V1_ID}/VERSION`, '1.0'],
      [`${V1_ID}/layer.tar`, layer],
      ['repositories', JSON.stringify({ 'legacy/bb': { '1': V1_ID } })],
    ]);
    const r = await raw('POST', '/images/load?quiet=0', archive, { 'Content-Type': 'application/x-tar' });
    assert.equal(r.status, 200);
    assert.doesNotMatch(r.text, /errorDetail/, `before this fix: refused (${r.text})`);
    const ins = (await d.api('GET', '/images/legacy/bb:1/json')).body as {
      Id: string;
      RootFS: { Layers: string[] };
      Config: { Cmd: string[] };
    };
    assert.equal(ins.Id, 'sha256:eacdfe62dc534b226ea767a1f310f9cccb12b3e9271d8ae086b922053aa285c1');
    assert.deepEqual(ins.RootFS.Layers, [sha(layer)]);
    assert.deepEqual(ins.Config.Cmd, ['sh']);
    const out = await d.docker(['run', '--rm', 'legacy/bb:1', 'echo', 'legacy ok']);
    assert.equal(out.stdout.trim(), 'legacy ok');

    // a chain: the child's one layer over its parent's; the child's parent is the parent's image
    const CHILD = 'c'.repeat(64);
    const childLayer = await tarOf([['hello.txt', 'from the child layer\n']]);
    const chain = await tarOf([
      [`${V1_ID}/json`, v1Json(V1_ID)],
      [`${V1_ID}/layer.tar`, layer],
      [`${CHILD}/json`, v1Json(CHILD, V1_ID, ['/bin/sh', '-c', 'echo hi > /hello.txt'])],
      [`${CHILD}/VERSION`, '1.0'],
      [`${CHILD}/layer.tar`, childLayer],
      ['repositories', JSON.stringify({ 'legacy/child': { latest: CHILD } })],
    ]);
    const c = await raw('POST', '/images/load', chain, { 'Content-Type': 'application/x-tar' });
    assert.doesNotMatch(c.text, /errorDetail/, c.text);
    const child = (await d.api('GET', '/images/legacy/child/json')).body as {
      Parent: string;
      RootFS: { Layers: string[] };
    };
    assert.equal(child.Parent, ins.Id);
    // dockerd: an image without a name that is another's parent shows only with all=1
    await d.docker(['rmi', 'legacy/bb:1']);
    const listed = async (q: string) =>
      ((await d.api('GET', `/images/json${q}`)).body as Array<{ Id: string }>).map((i) => i.Id);
    assert.ok(!(await listed('')).includes(ins.Id), 'the untagged parent is hidden');
    assert.ok((await listed('?all=1')).includes(ins.Id), 'all=1 shows it');
    await d.api('POST', `/images/${ins.Id}/tag?repo=legacy/bb&tag=1`);
    assert.deepEqual(child.RootFS.Layers, [sha(layer), sha(childLayer)]);
    const hist = (await d.api('GET', '/images/legacy/child/history')).body as Array<{ CreatedBy: string }>;
    assert.equal(hist[0]!.CreatedBy, '/bin/sh -c echo hi > /hello.txt');
    assert.equal(
      (await d.docker(['run', '--rm', 'legacy/child', 'cat', '/hello.txt'])).stdout,
      'from the child layer\n',
    );

    // refused inside the stream, nothing tagged: a parent loop, a tag naming no image (dockerd:
    // "invalid target ID: <id>"), a parent that escapes
    const before = await imageIds();
    const A = 'a'.repeat(64);
    const B = 'b'.repeat(64);
    for (const [what, files, msg] of [
      [
        'a parent loop',
        [
          [`${A}/json`, v1Json(A, B)],
          [`${A}/layer.tar`, childLayer],
          [`${B}/json`, v1Json(B, A)],
          [`${B}/layer.tar`, childLayer],
          ['repositories', JSON.stringify({ 'legacy/loop': { '1': A } })],
        ],
        /loop/,
      ],
      [
        'a tag naming no image',
        [
          [`${A}/json`, v1Json(A)],
          [`${A}/layer.tar`, childLayer],
          ['repositories', JSON.stringify({ 'legacy/bad': { '1': B } })],
        ],
        new RegExp(`invalid target ID: ${B}`),
      ],
      [
        'a parent outside',
        [
          [`${A}/json`, v1Json(A, '../../../etc')],
          [`${A}/layer.tar`, childLayer],
          ['repositories', JSON.stringify({ 'legacy/esc': { '1': A } })],
        ],
        /bad parent id/,
      ],
    ] as Array<[string, Array<[string, string | Buffer]>, RegExp]>) {
      const x = await raw('POST', '/images/load', await tarOf(files), { 'Content-Type': 'application/x-tar' });
      assert.equal(x.status, 200, what);
      assert.match(x.text, /errorDetail/, what);
      assert.match(x.text, msg, `${what}: ${x.text}`);
    }
    for (const t of ['legacy/loop:1', 'legacy/bad:1', 'legacy/esc:1'])
      assert.equal((await d.api('GET', `/images/${t}/json`)).status, 404, t);
    assert.deepEqual(await imageIds(), before, 'nothing registered');
  });

  /** Pushes busybox as `<addr>/<repo>:1` and an index `<repo>:multi` naming it for linux/amd64 only. */
  async function pushWithIndex(r: Registry, repo: string, auth?: string): Promise<{ digest: string; size: number }> {
    const ref = `${r.addr}/${repo}:1`;
    await d.docker(['tag', 'busybox', ref]);
    await d.docker(['push', ref]);
    await d.docker(['rmi', ref]);
    const headers: Record<string, string> = {
      Accept: 'application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json',
    };
    if (auth) headers['Authorization'] = auth;
    const m = await fetch(`http://${r.addr}/v2/${repo}/manifests/1`, { headers });
    assert.equal(m.status, 200);
    const bytes = Buffer.from(await m.arrayBuffer());
    const desc = {
      mediaType: m.headers.get('content-type')!,
      digest: sha(bytes),
      size: bytes.length,
      platform: { architecture: 'amd64', os: 'linux' },
    };
    const index = Buffer.from(
      JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [desc] }),
    );
    const put = await fetch(`http://${r.addr}/v2/${repo}/manifests/multi`, {
      method: 'PUT',
      body: bi(index),
      headers: { 'Content-Type': 'application/vnd.oci.image.index.v1+json', ...(auth ? { Authorization: auth } : {}) },
    });
    assert.equal(put.status, 201, await put.text());
    return { digest: sha(index), size: index.length };
  }

  test('pull validates platform (400 with dockerd words); a platform the list lacks is an error inside the stream', async () => {
    await pushWithIndex(reg, 'fi/plat');
    const before = await imageIds();
    const pull = (platform: string, tag = 'multi') =>
      raw('POST', `/images/create?fromImage=${reg.addr}/fi/plat&tag=${tag}&platform=${encodeURIComponent(platform)}`);
    // dockerd 20.10: 400 {"message":"\"foo/bar/baz/qux\": cannot parse platform specifier: invalid argument"}
    for (const [p, msg] of [
      ['foo/bar/baz/qux', '"foo/bar/baz/qux": cannot parse platform specifier: invalid argument'],
      ['foo', '"foo": unknown operating system or architecture: invalid argument'],
      [
        'linux/am d64',
        '"am d64" is an invalid component of "linux/am d64": platform specifier component must match "^[A-Za-z0-9_-]+$": invalid argument',
      ],
      [
        'linux/',
        '"" is an invalid component of "linux/": platform specifier component must match "^[A-Za-z0-9_-]+$": invalid argument',
      ],
    ]) {
      const r = await pull(p!);
      assert.equal(r.status, 400, `${p}: ${r.text}`);
      assert.equal((JSON.parse(r.text) as { message: string }).message, msg);
    }
    // dockerd: 200, {"status":"Pulling from bb","id":"multi"} then {"errorDetail":{"message":"no matching
    // manifest for linux/arm64 in the manifest list entries"},...}; "aarch64" is normalized to arm64
    for (const [p, named] of [
      ['linux/arm64', 'linux/arm64'],
      ['linux/aarch64', 'linux/arm64'],
      ['arm64', 'linux/arm64'],
      ['windows', 'windows/amd64'],
      ['linux/arm/v7', 'linux/arm/v7'],
    ]) {
      const r = await pull(p!);
      assert.equal(r.status, 200, `${p}: ${r.text}`);
      const msgs = lines(r.text);
      assert.equal(msgs[0]!['status'], 'Pulling from fi/plat');
      assert.equal(msgs.at(-1)!['error'], `no matching manifest for ${named} in the manifest list entries`);
    }
    assert.deepEqual(await imageIds(), before, 'nothing pulled');
    // dockerd normalizes case: LINUX/AMD64 pulls the amd64 entry
    const ok = await pull('LINUX/AMD64');
    assert.equal(ok.status, 200);
    assert.doesNotMatch(ok.text, /errorDetail/, ok.text);
  });

  test('a missing repository, tag or digest: 404 with dockerd words (clients map them to ImageNotFound)', async () => {
    await pushWithIndex(reg, 'fi/there');
    const pull = (q: string, headers: Record<string, string> = {}) =>
      raw('POST', `/images/create?${q}`, undefined, headers);
    const expect = async (q: string, msg: RegExp, headers: Record<string, string> = {}) => {
      const r = await pull(q, headers);
      assert.equal(r.status, 404, `${q}: ${r.text}`);
      assert.match((JSON.parse(r.text) as { message: string }).message, msg, q);
    };
    // dockerd against a registry that says NAME_UNKNOWN: 404 {"message":"repository 127.0.0.1:5997/pub/nope
    // not found: name unknown: repository name not known to registry: pub/nope"}
    await expect(
      `fromImage=${reg.addr}/fi/nope&tag=1`,
      new RegExp(`^repository ${reg.addr}/fi/nope not found: name unknown: repository name not known to registry`),
    );
    // dockerd: 404 {"message":"manifest for 127.0.0.1:5999/bb:nosuchtag not found: manifest unknown: manifest unknown"}
    await expect(
      `fromImage=${reg.addr}/fi/there&tag=nosuch`,
      new RegExp(`^manifest for ${reg.addr}/fi/there:nosuch not found: manifest unknown: `),
    );
    await expect(
      `fromImage=${reg.addr}/fi/there@${sha('none')}`,
      new RegExp(`^manifest for ${reg.addr}/fi/there@${sha('none')} not found: manifest unknown: `),
    );
    // a private repository through token auth, anonymously or without the right: dockerd (as with
    // Docker Hub, whose registry says error="insufficient_scope"): 404 "pull access denied for X,
    // repository does not exist or may require 'docker login': denied: requested access to the resource is denied"
    const denied = new RegExp(
      `^pull access denied for ${treg.addr}/private/nope, repository does not exist or may require 'docker login': denied: `,
    );
    await expect(`fromImage=${treg.addr}/private/nope&tag=1`, denied);
    // with credentials, a repository that does not exist: NAME_UNKNOWN's words
    const auth = Buffer.from(JSON.stringify({ username: 'alice', password: 'pw-a' })).toString('base64');
    await expect(
      `fromImage=${treg.addr}/private/nope&tag=1`,
      new RegExp(`^repository ${treg.addr}/private/nope not found: name unknown`),
      { 'X-Registry-Auth': auth },
    );
  });

  test('GET /distribution/{name}/json: descriptor and platforms, with X-Registry-Auth', async () => {
    const index = await pushWithIndex(reg, 'fi/dist');
    const inspect = (name: string, headers: Record<string, string> = {}) =>
      raw('GET', `/distribution/${name}/json`, undefined, headers);
    // dockerd 20.10: {"Descriptor":{"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json",
    // "digest":"sha256:a42c...","size":318},"Platforms":[{"architecture":"amd64","os":"linux"}]}
    const list = await inspect(`${reg.addr}/fi/dist:multi`);
    assert.equal(list.status, 200, `before this fix: 404 page not found (${list.text})`);
    assert.deepEqual(JSON.parse(list.text), {
      Descriptor: { mediaType: 'application/vnd.oci.image.index.v1+json', digest: index.digest, size: index.size },
      Platforms: [{ architecture: 'amd64', os: 'linux' }],
    });
    // an image manifest: its config's platform (dockerd: "Platforms":[{"architecture":"amd64","os":"linux"}])
    const one = JSON.parse((await inspect(`${reg.addr}/fi/dist:1`)).text) as {
      Descriptor: { mediaType: string; digest: string; size: number };
      Platforms: unknown[];
    };
    assert.equal(one.Descriptor.mediaType, 'application/vnd.oci.image.manifest.v1+json');
    assert.match(one.Descriptor.digest, /^sha256:[a-f0-9]{64}$/);
    assert.deepEqual(one.Platforms, [{ architecture: 'amd64', os: 'linux' }]);
    assert.deepEqual(Object.keys(JSON.parse((await inspect(`${reg.addr}/fi/dist:1`)).text) as object), [
      'Descriptor',
      'Platforms',
    ]);
    // by digest
    const byDigest = JSON.parse((await inspect(`${reg.addr}/fi/dist@${one.Descriptor.digest}`)).text) as typeof one;
    assert.deepEqual(byDigest.Descriptor, one.Descriptor);
    // dockerd: 404 {"message":"manifest unknown: manifest unknown"}; 400 "invalid reference format: repository
    // name must be lowercase"
    const missing = await inspect(`${reg.addr}/fi/dist:nosuch`);
    assert.equal(missing.status, 404);
    assert.match((JSON.parse(missing.text) as { message: string }).message, /^manifest unknown: /);
    assert.equal((await inspect('UPPER:1')).status, 400);
    // token auth: with X-Registry-Auth it answers
    const bearer = async () => {
      const t = await fetch(
        `http://${treg.addr}/token?service=berth-registry&scope=${encodeURIComponent('repository:private/dist:pull,push')}`,
        { headers: { Authorization: `Basic ${Buffer.from('alice:pw-a').toString('base64')}` } },
      );
      return `Bearer ${((await t.json()) as { token: string }).token}`;
    };
    const auth = Buffer.from(JSON.stringify({ username: 'alice', password: 'pw-a' })).toString('base64');
    await d.docker(['login', '-u', 'alice', '--password-stdin', treg.addr], { input: 'pw-a' });
    await pushWithIndex(treg, 'private/dist', await bearer());
    await d.docker(['logout', treg.addr]);
    const authed = await inspect(`${treg.addr}/private/dist:multi`, { 'X-Registry-Auth': auth });
    assert.equal(authed.status, 200, authed.text);
    assert.deepEqual((JSON.parse(authed.text) as { Platforms: unknown }).Platforms, [
      { architecture: 'amd64', os: 'linux' },
    ]);
    // dockerd against this registry without credentials: 403 {"message":"errors:\ndenied: requested access to
    // the resource is denied\nunauthorized\n"} (the token it got anonymously lacks the scope)
    const anon = await inspect(`${treg.addr}/private/dist:multi`);
    assert.equal(anon.status, 403, anon.text);
    assert.match(anon.text, /denied: requested access to the resource is denied/);
  });
  test('filters, tag and save errors in dockerd words', async () => {
    const msg = async (method: string, path: string, status: number) => {
      const r = await raw(method, path);
      assert.equal(r.status, status, `${method} ${path}: ${r.text}`);
      return (JSON.parse(r.text) as { message: string }).message;
    };
    const q = (f: object) => encodeURIComponent(JSON.stringify(f));
    // dockerd 20.10: 400 {"message":"Invalid filter 'foo'"} (list and prune); "Invalid filter 'dangling=[foo]'"
    assert.equal(await msg('GET', `/images/json?filters=${q({ foo: ['x'] })}`, 400), "Invalid filter 'foo'");
    assert.equal(await msg('GET', `/images/json?filters=${q({ 'label!': ['a'] })}`, 400), "Invalid filter 'label!'");
    assert.equal(
      await msg('GET', `/images/json?filters=${q({ dangling: ['foo'] })}`, 400),
      "Invalid filter 'dangling=[foo]'",
    );
    assert.equal(await msg('POST', `/images/prune?filters=${q({ before: ['x'] })}`, 400), "Invalid filter 'before'");
    assert.equal(
      await msg('POST', `/images/prune?filters=${q({ dangling: ['foo'] })}`, 400),
      "Invalid filter 'dangling=[foo]'",
    );
    // dockerd: "failed to parse value as time or duration: \"x\"" (with a 500)
    assert.equal(
      await msg('POST', `/images/prune?filters=${q({ until: ['x'] })}`, 400),
      'failed to parse value as time or duration: "x"',
    );
    // until, label! and dangling as a Go boolean ("1"): accepted; until=24h keeps an image made now
    await d.docker(['tag', 'busybox', 'fi/keep:1']);
    const before = await imageIds();
    for (const f of [{ until: ['24h'] }, { 'label!': ['a'] }, { dangling: ['1'] }, { until: ['2001-01-01'] }]) {
      const r = await raw('POST', `/images/prune?filters=${q(f)}`);
      assert.equal(r.status, 200, `${JSON.stringify(f)}: ${r.text}`);
    }
    // dangling=false prunes every unused image; until older than the fixture's 2024 keeps them all
    const none = await raw('POST', `/images/prune?filters=${q({ dangling: ['false'], until: ['1700000000'] })}`);
    assert.equal((JSON.parse(none.text) as { ImagesDeleted: unknown }).ImagesDeleted, null);
    assert.deepEqual(await imageIds(), before);
    await d.docker(['rmi', 'fi/keep:1']);
    // dockerd: "invalid tag format" (create and tag), "invalid reference format" (tag without repo)
    assert.equal(await msg('POST', '/images/create?fromImage=busybox&tag=UPPER:x', 400), 'invalid tag format');
    assert.equal(await msg('POST', '/images/busybox/tag?repo=x&tag=a:b', 400), 'invalid tag format');
    assert.equal(await msg('POST', '/images/busybox/tag', 400), 'invalid reference format');
    // dockerd: 400 "refusing to create an ambiguous tag using digest algorithm as name" (tag, and a load naming one)
    for (const path of ['/images/busybox/tag?repo=sha256&tag=x', '/images/busybox/tag?repo=docker.io/library/sha256'])
      assert.equal(await msg('POST', path, 400), 'refusing to create an ambiguous tag using digest algorithm as name');
    const ambiguous = await raw(
      'POST',
      '/images/load',
      await tarOf([
        [`${V1_ID}/json`, v1Json(V1_ID)],
        [`${V1_ID}/layer.tar`, layer],
        ['repositories', JSON.stringify({ sha256: { x: V1_ID } })],
      ]),
    );
    assert.match(ambiguous.text, /refusing to create an ambiguous tag/);
    assert.equal(await msg('POST', '/images/create?fromImage=busybox&tag=sha256:abc', 400), 'invalid tag format');
    // dockerd: 404 {"message":"No such image: nope"} for save, the name as given
    assert.equal(await msg('GET', '/images/nope/get', 404), 'No such image: nope');
    assert.equal(await msg('GET', '/images/get?names=nope', 404), 'No such image: nope');
    // a name alone whose repository has tags but no `latest`: saved (dockerd saves every tag of it)
    await d.docker(['tag', 'busybox', 'fi/nolatest:x']);
    const saved = await raw('GET', '/images/fi/nolatest/get');
    assert.equal(saved.status, 200, saved.text);
    const files = await untar(saved.body);
    assert.deepEqual(
      (JSON.parse(files.get('manifest.json')!.toString()) as Array<{ RepoTags: string[] }>)[0]!.RepoTags,
      ['fi/nolatest:x'],
    );
    await d.docker(['rmi', 'fi/nolatest:x']);
  });
  test('GET /images/search: the index a term names, dockerd filters and limits, its error words', async () => {
    // a v1 search index on loopback (Docker Hub's API): it records what it was asked
    const asked: Array<{ url: string; auth: string }> = [];
    const srv = http.createServer((req, res) => {
      asked.push({ url: req.url ?? '', auth: req.headers.authorization ?? '' });
      if (!req.url?.startsWith('/v1/search')) return void res.writeHead(404).end();
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end(
        JSON.stringify({
          query: 'bb',
          num_results: 3,
          results: [
            { name: 'fi/bb', description: 'one', star_count: 10, is_official: true, is_automated: false },
            { name: 'fi/bb2', description: 'two', star_count: 2, is_official: false, is_automated: true },
            { name: 'fi/bb3', description: 'three', star_count: 0, is_official: false, is_automated: false },
          ],
        }),
      );
    });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
    const port = (srv.address() as { port: number }).port;
    try {
      const search = (q: string, headers: Record<string, string> = {}) =>
        raw('GET', `/images/search?${q}`, undefined, headers);
      const term = `term=${encodeURIComponent(`127.0.0.1:${port}/bb`)}`;
      const all = await search(term);
      assert.equal(all.status, 200, `before this fix: 404 page not found (${all.text})`);
      const list = JSON.parse(all.text) as Array<Record<string, unknown>>;
      assert.equal(list.length, 3);
      // dockerd's field order
      assert.deepEqual(Object.keys(list[0]!), ['star_count', 'is_official', 'name', 'is_automated', 'description']);
      assert.equal(asked.at(-1)!.url, '/v1/search?q=bb&n=25');
      const names = async (q: string) =>
        (JSON.parse((await search(`${term}&${q}`)).text) as Array<{ name: string }>).map((r) => r.name);
      const f = (x: object) => `filters=${encodeURIComponent(JSON.stringify(x))}`;
      assert.deepEqual(await names(f({ 'is-official': ['true'] })), ['fi/bb']);
      assert.deepEqual(await names(f({ 'is-automated': ['true'] })), ['fi/bb2']);
      assert.deepEqual(await names(f({ stars: ['1'] })), ['fi/bb', 'fi/bb2']);
      await search(`${term}&limit=7`);
      assert.equal(asked.at(-1)!.url, '/v1/search?q=bb&n=7');
      // X-Registry-Auth goes to the index as basic credentials
      const auth = Buffer.from(JSON.stringify({ username: 'alice', password: 'pw-a' })).toString('base64');
      await search(term, { 'X-Registry-Auth': auth });
      assert.equal(asked.at(-1)!.auth, `Basic ${Buffer.from('alice:pw-a').toString('base64')}`);
      const n = asked.length;
      // dockerd 20.10's answers, before any request to the index
      for (const [q, status, message] of [
        [`${term}&limit=101`, 400, 'Limit 101 is outside the range of [1, 100]'],
        [`${term}&limit=0`, 400, 'Limit 0 is outside the range of [1, 100]'],
        [`${term}&${f({ foo: ['x'] })}`, 400, "Invalid filter 'foo'"],
        [`${term}&${f({ stars: ['x'] })}`, 400, "Invalid filter 'stars=x'"],
        [`${term}&${f({ 'is-official': ['x'] })}`, 400, "Invalid filter 'is-official=[x]'"],
      ] as Array<[string, number, string]>) {
        const r = await search(q);
        assert.equal(r.status, status, `${q}: ${r.text}`);
        assert.equal((JSON.parse(r.text) as { message: string }).message, message);
      }
      assert.equal(asked.length, n, 'no request for a refused search');
      // an index without the v1 search API: dockerd 500 {"message":"Unexpected status code 404"}
      const noSearch = await search(`term=${encodeURIComponent(`${reg.addr}/bb`)}`);
      assert.equal(noSearch.status, 500);
      assert.equal((JSON.parse(noSearch.text) as { message: string }).message, 'Unexpected status code 404');
    } finally {
      await new Promise((r) => srv.close(r));
    }
  });
  test('image list and inspect: the fields dockerd 20.10 shows, by API version', async () => {
    const get = async (v: string, path: string) => {
      const r = await new Promise<string>((resolve, reject) => {
        const req = http.request({ socketPath: d.sock, path: `/v${v}${path}` }, (res) => {
          let t = '';
          res.on('data', (c: Buffer) => (t += c.toString()));
          res.on('end', () => resolve(t));
        });
        req.on('error', reject);
        req.end();
      });
      return JSON.parse(r) as Record<string, unknown>;
    };
    // dockerd 20.10, GET /v1.41/images/busybox/json: these keys in this order, the full container.Config
    const ins = await get('1.41', '/images/busybox/json');
    assert.deepEqual(Object.keys(ins), [
      'Id',
      'RepoTags',
      'RepoDigests',
      'Parent',
      'Comment',
      'Created',
      'Container',
      'ContainerConfig',
      'DockerVersion',
      'Author',
      'Config',
      'Architecture',
      'Os',
      'Size',
      'VirtualSize',
      'GraphDriver',
      'RootFS',
      'Metadata',
    ]);
    const zero = {
      Hostname: '',
      Domainname: '',
      User: '',
      AttachStdin: false,
      AttachStdout: false,
      AttachStderr: false,
      Tty: false,
      OpenStdin: false,
      StdinOnce: false,
      Env: null,
      Cmd: null,
      Image: '',
      Volumes: null,
      WorkingDir: '',
      Entrypoint: null,
      OnBuild: null,
      Labels: null,
    };
    assert.deepEqual(ins['ContainerConfig'], zero);
    assert.deepEqual(ins['Config'], {
      ...zero,
      Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'],
      Cmd: ['sh'],
    });
    assert.deepEqual(Object.keys(ins['Config'] as object), Object.keys(zero));
    // API 1.45 dropped Container, ContainerConfig and VirtualSize (1.44)
    const now = await get('1.45', '/images/busybox/json');
    for (const k of ['Container', 'ContainerConfig', 'VirtualSize']) assert.ok(!(k in now), k);
    // the list: "Labels":null and "RepoDigests":null when there are none
    const list = (await get('1.41', '/images/json')) as unknown as Array<Record<string, unknown>>;
    const bb = list.find((i) => (i['RepoTags'] as string[]).includes('legacy/bb:1'))!; // loaded: no repo digest
    assert.equal(bb['Labels'], null);
    assert.equal(bb['RepoDigests'], null);
    assert.equal(bb['VirtualSize'], bb['Size']);
  });
  test('POST /images/create?fromSrc=<url>: dockerd downloads the rootfs itself', async () => {
    const srv = http.createServer((req, res) => {
      if (req.url === '/rootfs.tar') {
        res.writeHead(200, { 'Content-Type': 'application/x-tar' });
        return void res.end(layer);
      }
      res.writeHead(404, { 'Content-Type': 'text/plain' });
      res.end('File not found');
    });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
    const port = (srv.address() as { port: number }).port;
    try {
      const url = `http://127.0.0.1:${port}/rootfs.tar`;
      // dockerd 20.10: 200, {"status":"Downloading from http://127.0.0.1:5996/rootfs.tar"}, Importing
      // progress, {"status":"sha256:6321..."}
      const r = await raw('POST', `/images/create?fromSrc=${encodeURIComponent(url)}&repo=fi/url&tag=1`);
      assert.equal(r.status, 200, `before this fix: 501 (${r.text})`);
      const msgs = lines(r.text);
      assert.equal(msgs[0]!['status'], `Downloading from ${url}`);
      const id = String(msgs.at(-1)!['status']);
      assert.match(id, /^sha256:[a-f0-9]{64}$/);
      const ins = (await d.api('GET', '/images/fi/url:1/json')).body as { Id: string; RootFS: { Layers: string[] } };
      assert.equal(ins.Id, id);
      assert.deepEqual(ins.RootFS.Layers, [sha(layer)]);
      assert.equal((await d.docker(['run', '--rm', 'fi/url:1', 'echo', 'imported'])).stdout.trim(), 'imported');
      // dockerd: 404 {"message":"failed to GET http://127.0.0.1:5996/nope.tar with status 404 File not found: ..."}
      const before = await imageIds();
      const missing = await raw(
        'POST',
        `/images/create?fromSrc=${encodeURIComponent(`http://127.0.0.1:${port}/nope`)}`,
      );
      assert.equal(missing.status, 404);
      assert.match(
        (JSON.parse(missing.text) as { message: string }).message,
        new RegExp(`^failed to GET http://127\\.0\\.0\\.1:${port}/nope with status 404 Not Found: File not found`),
      );
      // no scheme: http://<src>, its path dropped (dockerd: "Downloading from http://127.0.0.1:5996"), the
      // answer (not a tar) fails inside the stream
      const bare = await raw('POST', `/images/create?fromSrc=${encodeURIComponent(`127.0.0.1:${port}/rootfs.tar`)}`);
      assert.equal(bare.status, 404, bare.text); // "/" answers 404 here
      assert.match(bare.text, new RegExp(`http://127\\.0\\.0\\.1:${port} with status 404`));
      // dockerd: 500 {"message":"Get \"ftp://127.0.0.1:5996/x\": unsupported protocol scheme \"ftp\""}
      const ftp = await raw('POST', `/images/create?fromSrc=${encodeURIComponent('ftp://127.0.0.1/x')}`);
      assert.equal(ftp.status, 400);
      assert.equal(
        (JSON.parse(ftp.text) as { message: string }).message,
        'Get "ftp://127.0.0.1/x": unsupported protocol scheme "ftp"',
      );
      assert.deepEqual(await imageIds(), before, 'nothing imported');
    } finally {
      await new Promise((r) => srv.close(r));
    }
  });
});
