/**
 * Issue #3 acceptance 4: berth registry speaks the OCI distribution spec endpoint by endpoint;
 * every push error path answers with the spec's code and leaves storage unchanged; gc keeps
 * referenced blobs and removes unreferenced ones.
 */
import { before, after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { execFile } from 'node:child_process';
import { readdirSync, renameSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join, relative } from 'node:path';
import { promisify } from 'node:util';
import { REPO } from './harness.js';
import { htpasswd, startBerthRegistry, type Registry } from './registry-harness.js';

const run = promisify(execFile);
const sha = (b: Buffer | string) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
/** Node's Buffer as fetch's body type (they are compatible at run time). */
const bi = (b: Buffer) => b as unknown as BodyInit;

/** Every file under the registry root with its size (what "storage unchanged" compares). */
function snapshot(root: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out.push(`${relative(root, p)}:${statSync(p).size}`);
    }
  };
  walk(root);
  return out.sort();
}

/** A raw HTTP request line, unnormalized (fetch would resolve `..`). */
function rawGet(addr: string, path: string): Promise<number> {
  const [host, port] = addr.split(':');
  return new Promise((resolve, reject) => {
    const s = connect(Number(port), host, () =>
      s.write(`GET ${path} HTTP/1.1\r\nHost: ${addr}\r\nConnection: close\r\n\r\n`),
    );
    let data = '';
    s.on('data', (c: Buffer) => (data += c.toString()));
    s.on('end', () => resolve(Number(data.split(' ')[1])));
    s.on('error', reject);
  });
}

/**
 * A PATCH whose body goes chunked (Transfer-Encoding, no Content-Length: what skopeo sends), over
 * a raw socket. With `cutAfter`, the connection is destroyed once that many bytes of the body
 * are written (an upload cut short); else resolves with the status.
 */
function rawPatch(addr: string, path: string, body: Buffer, cutAfter?: number): Promise<number | null> {
  const [host, port] = addr.split(':');
  return new Promise((resolve, reject) => {
    const s = connect(Number(port), host, async () => {
      s.write(`PATCH ${path} HTTP/1.1\r\nHost: ${addr}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n`);
      const end = cutAfter ?? body.length;
      for (let at = 0; at < end; at += 256 << 10) {
        const c = body.subarray(at, Math.min(end, at + (256 << 10)));
        const more = s.write(Buffer.concat([Buffer.from(`${c.length.toString(16)}\r\n`), c, Buffer.from('\r\n')]));
        if (!more) await new Promise((r) => s.once('drain', r));
      }
      if (cutAfter !== undefined) {
        // let the bytes reach the registry, then go away mid-body
        await new Promise((r) => setTimeout(r, 200));
        s.destroy();
        return resolve(null);
      }
      s.write('0\r\n\r\n');
    });
    let data = '';
    s.on('data', (c: Buffer) => (data += c.toString()));
    s.on('end', () => resolve(Number(data.split(' ')[1])));
    s.on('error', reject);
  });
}

describe('registry protocol', () => {
  let reg: Registry;
  let base: string;
  const errCode = async (r: Response) => ((await r.json()) as { errors: Array<{ code: string }> }).errors[0]!.code;
  const pushBlob = async (repo: string, data: Buffer) => {
    const r = await fetch(`${base}/v2/${repo}/blobs/uploads/?digest=${sha(data)}`, {
      method: 'POST',
      body: bi(data),
      headers: { 'Content-Type': 'application/octet-stream' },
    });
    assert.equal(r.status, 201);
    return sha(data);
  };
  const manifest = (config: Buffer, layers: Buffer[], extra: Record<string, unknown> = {}) =>
    Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha(config), size: config.length },
        layers: layers.map((l) => ({
          mediaType: 'application/vnd.oci.image.layer.v1.tar',
          digest: sha(l),
          size: l.length,
        })),
        ...extra,
      }),
    );
  const putManifest = (repo: string, ref: string, body: Buffer, type = OCI_MANIFEST) =>
    fetch(`${base}/v2/${repo}/manifests/${ref}`, { method: 'PUT', body: bi(body), headers: { 'Content-Type': type } });

  before(async () => {
    reg = await startBerthRegistry(() => ['--delete-enabled']);
    base = `http://${reg.addr}`;
  });
  after(async () => {
    await reg?.stop();
  });

  test('pull and push endpoints: monolithic, POST+PUT, chunked PATCH with status, mount, manifests by tag and digest, ranges', async () => {
    assert.equal((await fetch(`${base}/v2/`)).headers.get('docker-distribution-api-version'), 'registry/2.0');
    const config = Buffer.from('{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}');
    await pushBlob('a/img', config);
    // POST then PATCH in two chunks then PUT
    const layer = Buffer.from('0123456789abcdefghij'.repeat(100));
    const start = await fetch(`${base}/v2/a/img/blobs/uploads/`, { method: 'POST' });
    assert.equal(start.status, 202);
    const loc = new URL(start.headers.get('location')!, base);
    const p1 = await fetch(loc, {
      method: 'PATCH',
      body: bi(layer.subarray(0, 1000)),
      headers: { 'Content-Range': '0-999', 'Content-Type': 'application/octet-stream' },
    });
    assert.equal(p1.status, 202);
    assert.equal(p1.headers.get('range'), '0-999');
    const status = await fetch(loc);
    assert.equal(status.status, 204);
    assert.equal(status.headers.get('range'), '0-999');
    const outOfOrder = await fetch(loc, {
      method: 'PATCH',
      body: bi(layer.subarray(1500)),
      headers: { 'Content-Range': '1500-1999' },
    });
    assert.equal(outOfOrder.status, 416, 'a chunk that does not start where the upload is');
    const p2 = await fetch(loc, {
      method: 'PATCH',
      body: bi(layer.subarray(1000)),
      headers: { 'Content-Range': '1000-1999' },
    });
    assert.equal(p2.status, 202);
    const done = await fetch(`${loc}${loc.search ? '&' : '?'}digest=${sha(layer)}`, { method: 'PUT' });
    assert.equal(done.status, 201);
    assert.equal(done.headers.get('docker-content-digest'), sha(layer));
    // blobs: HEAD, GET, Range
    const head = await fetch(`${base}/v2/a/img/blobs/${sha(layer)}`, { method: 'HEAD' });
    assert.equal(head.headers.get('content-length'), '2000');
    const part = await fetch(`${base}/v2/a/img/blobs/${sha(layer)}`, { headers: { Range: 'bytes=10-19' } });
    assert.equal(part.status, 206);
    assert.equal(await part.text(), layer.subarray(10, 20).toString());
    assert.equal((await fetch(`${base}/v2/a/img/blobs/${sha('nope')}`)).status, 404);
    // manifest by tag, then by digest; GET/HEAD with the right content type and digest
    const m = manifest(config, [layer]);
    const put = await putManifest('a/img', 'v1', m);
    assert.equal(put.status, 201);
    assert.equal(put.headers.get('docker-content-digest'), sha(m));
    assert.equal((await putManifest('a/img', sha(m), m)).status, 201);
    const got = await fetch(`${base}/v2/a/img/manifests/v1`, { headers: { Accept: OCI_MANIFEST } });
    assert.equal(got.headers.get('content-type'), OCI_MANIFEST);
    assert.ok(Buffer.from(await got.arrayBuffer()).equals(m));
    assert.equal((await fetch(`${base}/v2/a/img/manifests/${sha(m)}`, { method: 'HEAD' })).status, 200);
    assert.equal((await fetch(`${base}/v2/a/img/manifests/nope`)).status, 404);
    // cross-repository mount
    const mount = await fetch(`${base}/v2/b/other/blobs/uploads/?mount=${sha(layer)}&from=a/img`, { method: 'POST' });
    assert.equal(mount.status, 201);
    assert.equal((await fetch(`${base}/v2/b/other/blobs/${sha(layer)}`, { method: 'HEAD' })).status, 200);
    const noMount = await fetch(`${base}/v2/b/other/blobs/uploads/?mount=${sha('absent')}&from=a/img`, {
      method: 'POST',
    });
    assert.equal(noMount.status, 202, 'an impossible mount starts an ordinary upload');
  });

  test('content discovery: tags/list and _catalog pagination with Link, referrers with artifactType filter', async () => {
    const config = Buffer.from('{"rootfs":{"type":"layers","diff_ids":[]}}');
    await pushBlob('c/tags', config);
    const m = manifest(config, []);
    for (const t of ['t3', 't1', 't2', 't4']) assert.equal((await putManifest('c/tags', t, m)).status, 201);
    const page1 = await fetch(`${base}/v2/c/tags/tags/list?n=2`);
    assert.deepEqual(((await page1.json()) as { tags: string[] }).tags, ['t1', 't2']);
    assert.match(page1.headers.get('link') ?? '', /<\/v2\/c\/tags\/tags\/list\?n=2&last=t2>; rel="next"/);
    assert.deepEqual(
      ((await (await fetch(`${base}/v2/c/tags/tags/list?n=2&last=t2`)).json()) as { tags: string[] }).tags,
      ['t3', 't4'],
    );
    assert.equal((await fetch(`${base}/v2/no/such/tags/list`)).status, 404);
    const cat = (await (await fetch(`${base}/v2/_catalog?n=100`)).json()) as { repositories: string[] };
    assert.ok(cat.repositories.includes('c/tags') && cat.repositories.includes('a/img'));
    // an artifact referring to the image
    const empty = Buffer.from('{}');
    await pushBlob('c/tags', empty);
    const sig = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        artifactType: 'application/vnd.example.sig',
        config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: sha(empty), size: 2 },
        layers: [],
        subject: { mediaType: OCI_MANIFEST, digest: sha(m), size: m.length },
      }),
    );
    const put = await putManifest('c/tags', sha(sig), sig);
    assert.equal(put.status, 201);
    assert.equal(put.headers.get('oci-subject'), sha(m));
    const refs = (await (await fetch(`${base}/v2/c/tags/referrers/${sha(m)}`)).json()) as {
      manifests: Array<{ digest: string; artifactType: string }>;
    };
    assert.deepEqual(
      refs.manifests.map((x) => [x.digest, x.artifactType]),
      [[sha(sig), 'application/vnd.example.sig']],
    );
    const filtered = await fetch(`${base}/v2/c/tags/referrers/${sha(m)}?artifactType=application/other`);
    assert.equal(filtered.headers.get('oci-filters-applied'), 'artifactType');
    assert.deepEqual(((await filtered.json()) as { manifests: unknown[] }).manifests, []);
  });

  test('large bodies: a chunked PATCH of several write batches, GETs and ranges across read buffers; an upload cut short verifies only the bytes it holds', async () => {
    const data = randomBytes(9 * 1024 * 1024 + 12345);
    const uploadPath = async () => {
      const s = await fetch(`${base}/v2/big/img/blobs/uploads/`, { method: 'POST' });
      assert.equal(s.status, 202);
      return new URL(s.headers.get('location')!, base);
    };
    const rangeOf = async (loc: URL) => (await fetch(loc)).headers.get('range');
    // whole, chunked like skopeo, then an empty PUT with the digest
    const loc = await uploadPath();
    assert.equal(await rawPatch(reg.addr, loc.pathname, data), 202);
    assert.equal(await rangeOf(loc), `0-${data.length - 1}`);
    assert.equal((await fetch(`${loc}?digest=${sha(data)}`, { method: 'PUT' })).status, 201);
    const blob = `${base}/v2/big/img/blobs/${sha(data)}`;
    const got = await fetch(blob);
    assert.equal(got.headers.get('content-length'), String(data.length));
    assert.equal(got.headers.get('docker-content-digest'), sha(data));
    assert.ok(Buffer.from(await got.arrayBuffer()).equals(data), 'the GET returns the bytes pushed');
    const mid = await fetch(blob, { headers: { Range: `bytes=${(1 << 20) - 7}-${3 * (1 << 20) + 5}` } });
    assert.equal(mid.status, 206);
    assert.equal(mid.headers.get('content-range'), `bytes ${(1 << 20) - 7}-${3 * (1 << 20) + 5}/${data.length}`);
    assert.ok(Buffer.from(await mid.arrayBuffer()).equals(data.subarray((1 << 20) - 7, 3 * (1 << 20) + 6)));
    const tail = await fetch(blob, { headers: { Range: 'bytes=-100' } });
    assert.ok(Buffer.from(await tail.arrayBuffer()).equals(data.subarray(data.length - 100)));

    // cut short, then finished with the digest of the whole: refused, and nothing is left behind
    const before = snapshot(reg.root);
    const cut = await uploadPath();
    assert.equal(await rawPatch(reg.addr, cut.pathname, data, 6 * 1024 * 1024), null);
    const r = await fetch(`${cut}?digest=${sha(data)}`, { method: 'PUT' });
    assert.equal(r.status, 400);
    assert.equal(await errCode(r), 'DIGEST_INVALID');
    assert.deepEqual(snapshot(reg.root), before, 'no blob and no upload left behind');

    // cut short, then resumed where the registry says it is: the blob is exactly the bytes sent
    const resumed = await uploadPath();
    assert.equal(await rawPatch(reg.addr, resumed.pathname, data, 5 * 1024 * 1024 + 99), null);
    let held = '';
    for (let i = 0; i < 100; i++) {
      // the registry may still be writing what it received: wait until the size holds still
      const a = await rangeOf(resumed);
      await new Promise((res) => setTimeout(res, 100));
      if (a !== null && a === (await rangeOf(resumed))) {
        held = a;
        break;
      }
    }
    const k = Number(held.split('-')[1]) + 1;
    assert.ok(k > 0 && k <= 5 * 1024 * 1024 + 99, `the upload holds ${held}`);
    const rest = await fetch(resumed, {
      method: 'PATCH',
      body: bi(data.subarray(k)),
      headers: { 'Content-Range': `${k}-${data.length - 1}` },
    });
    assert.equal(rest.status, 202);
    const fin = await fetch(`${resumed}?digest=${sha(data)}`, { method: 'PUT' });
    assert.equal(fin.status, 201);
  });

  test('every push error path: the spec code, and storage unchanged', async () => {
    const config = Buffer.from('{"rootfs":{"type":"layers","diff_ids":[]}}');
    await pushBlob('e/img', config);
    const before = snapshot(reg.root);
    const expect = async (r: Promise<Response>, status: number, code: string) => {
      const res = await r;
      assert.equal(res.status, status);
      assert.equal(await errCode(res), code);
    };
    const data = Buffer.from('some layer bytes');
    await expect(
      fetch(`${base}/v2/e/img/blobs/uploads/?digest=${sha('other')}`, { method: 'POST', body: bi(data) }),
      400,
      'DIGEST_INVALID',
    );
    const s = await fetch(`${base}/v2/e/img/blobs/uploads/`, { method: 'POST' });
    const loc = new URL(s.headers.get('location')!, base);
    await expect(fetch(`${loc}?digest=${sha('other')}`, { method: 'PUT', body: bi(data) }), 400, 'DIGEST_INVALID');
    await expect(fetch(`${loc}?digest=${sha(data)}`, { method: 'PUT', body: bi(data) }), 404, 'BLOB_UPLOAD_UNKNOWN'); // the failed upload is gone
    await expect(
      fetch(`${base}/v2/e/img/blobs/uploads/00000000-0000-0000-0000-000000000000`, { method: 'PATCH', body: bi(data) }),
      404,
      'BLOB_UPLOAD_UNKNOWN',
    );
    await expect(
      putManifest('e/img', 'v1', manifest(config, [Buffer.from('never uploaded')])),
      400,
      'MANIFEST_BLOB_UNKNOWN',
    );
    await expect(putManifest('e/img', 'v1', Buffer.from('{not json')), 400, 'MANIFEST_INVALID');
    await expect(
      putManifest(
        'e/img',
        'v1',
        Buffer.from('{"schemaVersion":2,"mediaType":"application/x-unknown"}'),
        'application/x-unknown',
      ),
      400,
      'MANIFEST_INVALID',
    );
    await expect(
      putManifest('e/img', 'v1', Buffer.from('{"schemaVersion":1,"name":"e/img","tag":"v1","fsLayers":[]}')),
      400,
      'UNSUPPORTED',
    );
    await expect(putManifest('e/img', sha('different'), manifest(config, [])), 400, 'DIGEST_INVALID');
    await expect(putManifest('e/img', 'v1', Buffer.alloc(5 * 1024 * 1024, 0x20)), 413, 'SIZE_INVALID');
    await expect(fetch(`${base}/v2/UPPER/case/manifests/v1`), 400, 'NAME_INVALID');
    await expect(
      fetch(`${base}/v2/e/img/manifests/bad:tag:x`, { method: 'PUT', body: bi(manifest(config, [])) }),
      400,
      'MANIFEST_INVALID',
    );
    for (const path of [
      '/v2/../../etc/passwd/blobs/sha256:00',
      '/v2/e/../../../etc/manifests/latest',
      '/v2/e/%2e%2e/blobs/uploads/',
      '/v2/e/img/blobs/..%2f..%2fetc',
    ]) {
      const st = await rawGet(reg.addr, path);
      assert.ok(st === 400 || st === 404 || st === 405, `${path} answered ${st}`);
    }
    assert.deepEqual(snapshot(reg.root), before, 'no blob, link, tag or upload was left behind');
  });

  test('delete and gc: unreferenced blobs go, referenced ones and recent uploads stay', async () => {
    const config = Buffer.from('{"rootfs":{"type":"layers","diff_ids":["x"]}}');
    const keep = Buffer.from('layer that stays referenced');
    const drop = Buffer.from('layer only the deleted manifest used');
    for (const b of [config, keep, drop]) await pushBlob('g/img', b);
    const m1 = manifest(config, [keep]);
    const m2 = manifest(config, [keep, drop]);
    await putManifest('g/img', 'keep', m1);
    await putManifest('g/img', 'gone', m2);
    const young = Buffer.from('an upload whose manifest is not pushed yet');
    await pushBlob('g/img', young);
    assert.equal((await fetch(`${base}/v2/g/img/manifests/${sha(m2)}`, { method: 'DELETE' })).status, 202);
    assert.equal((await fetch(`${base}/v2/g/img/manifests/gone`)).status, 404, 'its tag went with it');
    const blobPath = (d: string) => join(reg.root, 'blobs', 'sha256', d.slice(7));
    const old = new Date(Date.now() - 2 * 3600 * 1000);
    for (const b of [config, keep, drop, m1, m2]) utimesSync(blobPath(sha(b)), old, old);
    const out = await run(join(REPO, 'bin/berth'), ['registry', 'gc', '--root', reg.root, '--grace', '3600']);
    const result = JSON.parse(out.stdout) as { deleted: string[] };
    assert.ok(result.deleted.includes(sha(drop)), 'the unreferenced layer is collected');
    assert.ok(result.deleted.includes(sha(m2)), 'the deleted manifest is collected');
    for (const b of [config, keep, m1]) assert.ok(!result.deleted.includes(sha(b)), 'referenced blobs stay');
    assert.ok(!result.deleted.includes(sha(young)), 'a blob younger than the grace period stays');
    assert.equal((await fetch(`${base}/v2/g/img/blobs/${sha(drop)}`, { method: 'HEAD' })).status, 404);
    const pulled = await fetch(`${base}/v2/g/img/blobs/${sha(keep)}`);
    assert.equal(await pulled.text(), keep.toString());
    assert.equal((await fetch(`${base}/v2/g/img/blobs/${sha(young)}`, { method: 'DELETE' })).status, 202);
  });

  test('a repository whose manifests cannot be listed: gc deletes nothing and says why; a delete there is a 500, not a 404', async () => {
    const config = Buffer.from('{"rootfs":{"type":"layers","diff_ids":["y"]}}');
    const layer = Buffer.from('layer of a repository gc cannot read');
    for (const b of [config, layer]) await pushBlob('h/img', b);
    const m = manifest(config, [layer]);
    assert.equal((await putManifest('h/img', 'v1', m)).status, 201);
    const blobPath = (d: string) => join(reg.root, 'blobs', 'sha256', d.slice(7));
    const old = new Date(Date.now() - 2 * 3600 * 1000);
    for (const b of [config, layer, m]) utimesSync(blobPath(sha(b)), old, old);
    // the repository's manifest links become unreadable: a file where their directory was
    const links = join(reg.root, 'repos', 'h', 'img', '_manifests');
    renameSync(links, `${links}.saved`);
    writeFileSync(links, 'not a directory');
    try {
      const before = snapshot(reg.root);
      const gc = await run(join(REPO, 'bin/berth'), ['registry', 'gc', '--root', reg.root, '--grace', '3600']).then(
        () => ({ code: 0, stderr: '' }),
        (e: { code: number; stderr: string }) => e,
      );
      assert.notEqual(gc.code, 0, 'gc stops');
      assert.match(gc.stderr, /manifests cannot be listed .*nothing was deleted/);
      assert.deepEqual(snapshot(reg.root), before, 'nothing deleted: the layers of the unreadable manifests stay');
      const del = await fetch(`${base}/v2/h/img/manifests/${sha(m)}`, { method: 'DELETE' });
      assert.equal(del.status, 500, 'a storage failure is not "manifest unknown"');
      assert.equal(await errCode(del), 'UNKNOWN');
    } finally {
      rmSync(links);
      renameSync(`${links}.saved`, links);
    }
    assert.equal((await fetch(`${base}/v2/h/img/manifests/v1`)).status, 200);
  });
  test('GET/HEAD of a manifest: an unparseable reference is 404 MANIFEST_UNKNOWN, an unknown repository 404 NAME_UNKNOWN', async () => {
    // OCI distribution spec (conformance "pull": a GET of an invalid reference is a 404), and the
    // spec's NAME_UNKNOWN "repository name not known to registry" for a repository it does not hold
    const config = Buffer.from('{"rootfs":{"type":"layers","diff_ids":[]}}');
    await pushBlob('f/known', config);
    assert.equal((await putManifest('f/known', 'v1', manifest(config, []))).status, 201);
    const before = snapshot(reg.root);
    for (const ref of ['sha256:abc', 'a:b', 'sha256:' + 'A'.repeat(64), 'md5:' + '0'.repeat(32), '-x', 'bad:tag:x']) {
      const g = await fetch(`${base}/v2/f/known/manifests/${encodeURIComponent(ref)}`);
      assert.equal(g.status, 404, `GET ${ref}`);
      assert.equal(await errCode(g), 'MANIFEST_UNKNOWN', `GET ${ref}`);
      const h = await fetch(`${base}/v2/f/known/manifests/${encodeURIComponent(ref)}`, { method: 'HEAD' });
      assert.equal(h.status, 404, `HEAD ${ref}`);
    }
    for (const ref of ['v1', sha('x'), 'sha256:abc']) {
      const g = await fetch(`${base}/v2/f/never/manifests/${ref}`);
      assert.equal(g.status, 404, `GET unknown repo ${ref}`);
      const body = (await g.json()) as { errors: Array<{ code: string; message: string }> };
      assert.equal(body.errors[0]!.code, 'NAME_UNKNOWN');
      assert.match(body.errors[0]!.message, /repository name not known to registry/);
      assert.equal((await fetch(`${base}/v2/f/never/manifests/${ref}`, { method: 'HEAD' })).status, 404);
    }
    // a known repository, an unknown tag or digest: still MANIFEST_UNKNOWN
    assert.equal(await errCode(await fetch(`${base}/v2/f/known/manifests/v2`)), 'MANIFEST_UNKNOWN');
    assert.equal(await errCode(await fetch(`${base}/v2/f/known/manifests/${sha('nothing')}`)), 'MANIFEST_UNKNOWN');
    // a PUT by a malformed reference stays the client's error (400)
    const put = await putManifest('f/known', 'bad:tag:x', manifest(config, []));
    assert.equal(put.status, 400);
    assert.deepEqual(snapshot(reg.root), before, 'nothing written');
  });
});

describe('registry token auth: a cross-repository mount', () => {
  let reg: Registry;
  let base: string;
  const basic = (u: string, p: string) => `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}`;
  const token = async (auth: string | null, scopes: string[]) => {
    const q = new URLSearchParams({ service: 'berth-registry' });
    for (const sc of scopes) q.append('scope', sc);
    const r = await fetch(`${base}/token?${q}`, { headers: auth ? { Authorization: auth } : {} });
    assert.equal(r.status, 200);
    return `Bearer ${((await r.json()) as { token: string }).token}`;
  };
  const challengeOf = (r: Response) => r.headers.get('www-authenticate') ?? '';
  before(async () => {
    reg = await startBerthRegistry((dir) => [
      '--htpasswd',
      htpasswd(dir, { alice: 'pw-a', eve: 'pw-e' }),
      '--auth',
      'token',
      '--acl',
      writeAcl(dir),
    ]);
    base = `http://${reg.addr}`;
  });
  after(async () => {
    await reg?.stop();
  });
  function writeAcl(dir: string): string {
    const f = join(dir, 'acl.json');
    writeFileSync(
      f,
      JSON.stringify({
        rules: [
          { user: 'alice', repos: ['**'], actions: ['pull', 'push'] },
          { user: 'eve', repos: ['eve/**'], actions: ['pull', 'push'] },
        ],
      }),
    );
    return f;
  }

  test('the challenge names pull on the source; with that token the mount is a 201, without the right it is an upload', async () => {
    const alice = basic('alice', 'pw-a');
    const blob = Buffer.from('a layer to mount');
    // alice pushes the blob to src/img
    const push = await token(alice, ['repository:src/img:pull,push']);
    const up = await fetch(`${base}/v2/src/img/blobs/uploads/?digest=${sha(blob)}`, {
      method: 'POST',
      body: bi(blob),
      headers: { Authorization: push, 'Content-Type': 'application/octet-stream' },
    });
    assert.equal(up.status, 201);
    const mountPath = `/v2/dst/img/blobs/uploads/?mount=${sha(blob)}&from=src/img`;
    // no token: the challenge asks for both scopes at once (as Docker's distribution does)
    const anon = await fetch(`${base}${mountPath}`, { method: 'POST' });
    assert.equal(anon.status, 401);
    assert.match(challengeOf(anon), /scope="repository:dst\/img:pull,push repository:src\/img:pull"/);
    // a token for the destination only: challenged again (insufficient_scope) with the source's pull
    const dstOnly = await token(alice, ['repository:dst/img:pull,push']);
    const again = await fetch(`${base}${mountPath}`, { method: 'POST', headers: { Authorization: dstOnly } });
    assert.equal(again.status, 401, 'before this fix: 202, the mount silently became an upload');
    assert.match(challengeOf(again), /repository:src\/img:pull/);
    assert.match(challengeOf(again), /error="insufficient_scope"/);
    // the token the challenge names: the blob is mounted, not uploaded
    const both = await token(alice, ['repository:dst/img:pull,push', 'repository:src/img:pull']);
    const mounted = await fetch(`${base}${mountPath}`, { method: 'POST', headers: { Authorization: both } });
    assert.equal(mounted.status, 201);
    assert.equal(mounted.headers.get('location'), `/v2/dst/img/blobs/${sha(blob)}`);
    const head = await fetch(`${base}/v2/dst/img/blobs/${sha(blob)}`, {
      method: 'HEAD',
      headers: { Authorization: both },
    });
    assert.equal(head.status, 200);
    // eve may not pull src/img: no challenge loop, the mount is an ordinary upload (the spec's 202)
    const eve = await token(basic('eve', 'pw-e'), ['repository:eve/img:pull,push', 'repository:src/img:pull']);
    const upload = await fetch(`${base}/v2/eve/img/blobs/uploads/?mount=${sha(blob)}&from=src/img`, {
      method: 'POST',
      headers: { Authorization: eve },
    });
    assert.equal(upload.status, 202);
    assert.equal(
      (await fetch(`${base}/v2/eve/img/blobs/${sha(blob)}`, { method: 'HEAD', headers: { Authorization: eve } }))
        .status,
      404,
    );
  });

  test('a token without the scope is refused with error="insufficient_scope" (dockerd then says "pull access denied")', async () => {
    const anonToken = await token(null, ['repository:private/img:pull']);
    const r = await fetch(`${base}/v2/private/img/manifests/latest`, { headers: { Authorization: anonToken } });
    assert.equal(r.status, 401);
    assert.match(challengeOf(r), /error="insufficient_scope"/);
    assert.equal(((await r.json()) as { errors: Array<{ code: string }> }).errors[0]!.code, 'UNAUTHORIZED');
  });
});
