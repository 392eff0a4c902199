/**
 * Layer downloads on worker threads (distribution/blob-fetch.ts): a gzip layer is gunzipped there
 * and lands uncompressed; a layer cut short, a gzip stream that is corrupt behind a correct blob
 * digest, a body past its descriptor's size, a layer whose content is not its diff id, and a
 * registry that stops sending are each refused, and leave no blob, no ingest file and no image.
 * Both transports: the plain-HTTP socket (Content-Length) and node:http (a redirect, a chunked body).
 * A 401 on the blob is answered once (Bearer token) and the download asked again.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { createHash } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { startDaemon, type Daemon } from './harness.js';
import { tarOf } from './tar-fixture.js';

const sha = (b: Buffer | string) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

type Handler = (req: http.IncomingMessage, res: http.ServerResponse) => void;

describe('layer downloads on worker threads', () => {
  let d: Daemon;
  let srv: http.Server;
  let addr = '';
  const routes = new Map<string, Handler>();
  /** blob paths that answer 401 with a Bearer challenge until the token comes */
  const needToken = new Set<string>();
  before(async () => {
    d = await startDaemon();
    srv = http.createServer((req, res) => {
      if (req.url?.startsWith('/token')) return void res.end('{"token":"t0k"}');
      if (needToken.has(req.url ?? '') && req.headers.authorization !== 'Bearer t0k') {
        res.statusCode = 401;
        res.setHeader('WWW-Authenticate', `Bearer realm="http://${addr}/token",service="t"`);
        return void res.end('{"errors":[{"code":"UNAUTHORIZED"}]}');
      }
      const h = req.url === '/v2/' ? (_: unknown, r: http.ServerResponse) => r.end('{}') : routes.get(req.url ?? '');
      if (!h) {
        res.statusCode = 404;
        return void res.end('{"errors":[{"code":"MANIFEST_UNKNOWN"}]}');
      }
      h(req, res);
    });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    addr = `127.0.0.1:${(srv.address() as { port: number }).port}`;
  });
  after(async () => {
    srv?.closeAllConnections();
    srv?.close();
    await d?.stop();
  });

  const blobs = () => readdirSync(join(d.root, 'content', 'blobs', 'sha256')).sort();
  const ingest = () => readdirSync(join(d.root, 'content', 'ingest'));
  const body =
    (b: Buffer, type = 'application/octet-stream'): Handler =>
    (_, res) => {
      res.setHeader('Content-Type', type);
      res.setHeader('Content-Length', b.length);
      res.end(b);
    };

  /** Serves image `repo:1` of one layer: `blob` as sent (its descriptor `desc`), `diffId` in the config. */
  function serve(
    repo: string,
    desc: { digest: string; size: number; mediaType?: string },
    diffId: string,
    blob: Handler,
  ) {
    const config = Buffer.from(
      JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [diffId] } }),
    );
    const manifest = JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha(config), size: config.length },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', ...desc }],
    });
    routes.set(`/v2/${repo}/manifests/1`, body(Buffer.from(manifest), 'application/vnd.oci.image.manifest.v1+json'));
    routes.set(`/v2/${repo}/blobs/${sha(config)}`, body(config));
    routes.set(`/v2/${repo}/blobs/${desc.digest}`, blob);
    return `${addr}/${repo}:1`;
  }

  async function refused(ref: string, msg: RegExp, what: string) {
    const before = blobs();
    const r = await d.docker(['pull', ref], { allowFail: true, timeoutMs: 60_000 });
    assert.notEqual(r.code, 0, `${what}: refused`);
    assert.match(r.stdout + r.stderr, msg, `${what}: ${r.stderr}`);
    assert.equal((await d.docker(['image', 'inspect', ref], { allowFail: true })).code, 1, `${what}: no image`);
    assert.deepEqual(blobs(), before, `${what}: no blob lands`);
    assert.deepEqual(ingest(), [], `${what}: no ingest file stays`);
  }

  test('a gzip layer is gunzipped on the worker and lands uncompressed, its file intact', async () => {
    const data = Buffer.alloc(3 << 20, 'abc');
    const tar = tarOf('big.txt', data);
    const gz = gzipSync(tar);
    const ref = serve('gz', { digest: sha(gz), size: gz.length }, sha(tar), body(gz));
    await d.docker(['pull', ref]);
    assert.ok(blobs().includes(sha(tar).slice(7)), 'the uncompressed layer is in content');
    assert.ok(!blobs().includes(sha(gz).slice(7)), 'the gzip blob is not');
    assert.deepEqual(ingest(), []);
    // the same layer sent chunked (no Content-Length), behind a redirect: node:http's path
    const tar2 = tarOf('big2.txt', data);
    const gz2 = gzipSync(tar2);
    const ref2 = serve('gzchunked', { digest: sha(gz2), size: gz2.length }, sha(tar2), (_, res) => {
      res.statusCode = 307;
      res.setHeader('Location', '/elsewhere/gz2');
      res.end();
    });
    routes.set('/elsewhere/gz2', (_, res) => {
      res.write(gz2.subarray(0, 1000));
      res.end(gz2.subarray(1000));
    });
    await d.docker(['pull', ref2]);
    assert.ok(blobs().includes(sha(tar2).slice(7)), 'the chunked, redirected layer landed');
    assert.deepEqual(ingest(), []);
  });

  test('cut short, corrupt gzip, too long, wrong diff id, a registry gone quiet: refused, nothing left', async () => {
    const tar = tarOf('f', Buffer.alloc(1 << 20, 'x'));
    const gz = gzipSync(tar);
    // the connection closes half-way through a body that announced its whole length
    const cut = serve('cut', { digest: sha(tar), size: tar.length }, sha(tar), (_, res) => {
      res.setHeader('Content-Length', tar.length);
      res.write(tar.subarray(0, tar.length >> 1), () => res.destroy());
    });
    await refused(cut, /closed|aborted|socket hang up|ECONNRESET|failed verification/i, 'cut short');
    // a correct blob digest over a gzip stream whose inside is broken
    const bad = Buffer.from(gz);
    bad.fill(0x55, 20, 200);
    const corrupt = serve('corrupt', { digest: sha(bad), size: bad.length }, sha(tar), body(bad));
    await refused(corrupt, /gzip|invalid/i, 'corrupt gzip');
    // more bytes than the descriptor says
    const long = serve('long', { digest: sha(tar), size: tar.length - 512 }, sha(tar), body(tar));
    await refused(long, /longer than its/, 'too long');
    // a gzip layer whose content is not the config's diff id
    const other = tarOf('g', Buffer.from('other'));
    const wrong = serve('wrong', { digest: sha(gz), size: gz.length }, sha(other), body(gz));
    await refused(wrong, /does not match the config's diff id/, 'wrong diff id');
    // a registry that sends the headers and half the body, then nothing
    const quiet = serve('quiet', { digest: sha(tar), size: tar.length }, sha(tar), (_, res) => {
      res.setHeader('Content-Length', tar.length);
      res.write(tar.subarray(0, 1000));
    });
    process.env['BERTH_PULL_IDLE_SECONDS'] = '2'; // the daemon's environment is the test's
    const d2 = await startDaemon({ loadFixture: false }).finally(() => delete process.env['BERTH_PULL_IDLE_SECONDS']);
    try {
      const r = await d2.docker(['pull', quiet], { allowFail: true, timeoutMs: 60_000 });
      assert.notEqual(r.code, 0, 'a stalled download fails');
      assert.match(r.stdout + r.stderr, /no data/, r.stderr);
      assert.deepEqual(readdirSync(join(d2.root, 'content', 'ingest')), [], 'no ingest file stays');
    } finally {
      await d2.stop();
    }
  });

  test('a blob behind a Bearer challenge (/v2/ open): the token is fetched once and the download asked again', async () => {
    for (const which of ['layer', 'config']) {
      const tar = tarOf('t', Buffer.from(which));
      const ref = serve(`tok${which}`, { digest: sha(tar), size: tar.length }, sha(tar), body(tar));
      const paths = [...routes.keys()].filter((k) => k.startsWith(`/v2/tok${which}/blobs/`));
      // the config is the first blob served for the repository, the layer the second
      needToken.add(which === 'layer' ? paths[1]! : paths[0]!);
      try {
        await d.docker(['pull', ref], { timeoutMs: 60_000 });
      } finally {
        needToken.clear();
      }
      assert.ok(blobs().includes(sha(tar).slice(7)), which);
    }
  });
});
