/**
 * Issue #16 (Fidelity), the API-wide and system items: swarm and plugin endpoints, unknown routes
 * and API versions (down to 1.12, with the old versions' semantics), JSON `null` in query
 * parameters, any-case body keys, and `GET /events` since/until. Every expectation is what a
 * private dockerd 20.10.24 (/usr/sbin/dockerd, not in a swarm, no plugins) answered on this
 * machine; its answer is quoted next to each check. berth's answer differs only where the
 * comment says so.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { startDaemon, type Daemon } from './harness.js';

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
  json: unknown;
}

const NOT_MANAGER =
  'This node is not a swarm manager. Use "docker swarm init" or "docker swarm join" to connect this node to swarm and try again.';

describe('fidelity: system, swarm, plugins, versions', () => {
  let d: Daemon;
  const tmp = mkdtempSync('/var/tmp/berth-fidelity-system-');

  /** One raw request: any method, path, body bytes and headers; `until` ends a streaming read early. */
  const req = (
    method: string,
    path: string,
    body?: string | Buffer,
    headers: Record<string, string> = body !== undefined ? { 'Content-Type': 'application/json' } : {},
    o: { untilText?: RegExp; timeoutMs?: number } = {},
  ): Promise<Answer> =>
    new Promise((res, rej) => {
      const r = http.request({ socketPath: d.sock, path, method, headers }, (resp) => {
        let text = '';
        const done = () => {
          let json: unknown;
          try {
            json = text ? JSON.parse(text) : undefined;
          } catch {
            json = undefined;
          }
          res({ status: resp.statusCode ?? 0, headers: resp.headers, text, json });
        };
        const timer = o.timeoutMs
          ? setTimeout(() => {
              resp.destroy();
              done();
            }, o.timeoutMs)
          : null;
        resp.on('data', (c: Buffer) => {
          text += c.toString();
          if (o.untilText?.test(text)) {
            if (timer) clearTimeout(timer);
            resp.destroy();
            done();
          }
        });
        resp.on('end', () => {
          if (timer) clearTimeout(timer);
          done();
        });
      });
      r.on('error', rej);
      r.end(body);
    });
  const msg = (a: Answer) => (a.json as { message?: string } | undefined)?.message;

  before(async () => {
    d = await startDaemon();
  });
  after(async () => {
    await d?.stop();
    rmSync(tmp, { recursive: true, force: true });
  });

  test('swarm endpoints answer as a dockerd outside a swarm (503, its words)', async () => {
    // dockerd: each of these -> 503 {"message":"This node is not a swarm manager. Use \"docker swarm init\" ..."}
    const managerCalls: Array<[string, string, string?]> = [
      ['GET', '/v1.41/swarm'],
      ['GET', '/v1.41/swarm/unlockkey'],
      ['POST', '/v1.41/swarm/unlock', '{}'],
      ['POST', '/v1.41/swarm/update?version=1', '{}'],
      ['GET', '/v1.41/nodes'],
      ['GET', '/v1.41/nodes/abc'],
      ['DELETE', '/v1.41/nodes/abc'],
      ['POST', '/v1.41/nodes/abc/update?version=1', '{}'],
      ['GET', '/v1.41/services'],
      ['GET', '/v1.41/services?filters=%7B%22foo%22%3A%5B%22x%22%5D%7D'],
      ['POST', '/v1.41/services/create', '{}'],
      ['GET', '/v1.41/services/abc'],
      ['DELETE', '/v1.41/services/abc'],
      ['POST', '/v1.41/services/abc/update?version=1', '{}'],
      ['GET', '/v1.41/services/abc/logs?stdout=1'],
      ['GET', '/v1.41/tasks'],
      ['GET', '/v1.41/tasks/abc'],
      ['GET', '/v1.41/tasks/abc/logs?stderr=1&follow=1'],
      ['GET', '/v1.41/secrets'],
      ['POST', '/v1.41/secrets/create', '{}'],
      ['GET', '/v1.41/secrets/abc'],
      ['DELETE', '/v1.41/secrets/abc'],
      ['POST', '/v1.41/secrets/abc/update?version=1', '{}'],
      ['GET', '/v1.41/configs'],
      ['POST', '/v1.41/configs/create', '{}'],
      ['GET', '/v1.41/configs/abc'],
      ['DELETE', '/v1.41/configs/abc'],
      ['POST', '/v1.41/configs/abc/update?version=1', '{}'],
      ['GET', '/swarm'],
    ];
    for (const [m, p, b] of managerCalls) {
      const a = await req(m, p, b);
      assert.equal(a.status, 503, `${m} ${p}: ${a.text}`);
      assert.deepEqual(a.json, { message: NOT_MANAGER }, `${m} ${p}`);
    }
    // dockerd: POST /swarm/leave (and ?force=1) -> 503 {"message":"This node is not part of a swarm"}
    for (const p of ['/v1.41/swarm/leave', '/v1.41/swarm/leave?force=1', '/v1.24/swarm/leave?force=true']) {
      const a = await req('POST', p);
      assert.equal(a.status, 503);
      assert.deepEqual(a.json, { message: 'This node is not part of a swarm' });
    }
    // dockerd reads ?version= before it looks for the swarm:
    //   /swarm/update {} -> 400 "invalid swarm version '': strconv.ParseUint: parsing \"\": invalid syntax"
    //   ?version=abc -> "invalid swarm version 'abc': ..."; /secrets/x/update -> 400 "invalid secret version"
    const versions: Array<[string, string]> = [
      ['/v1.41/swarm/update', `invalid swarm version '': strconv.ParseUint: parsing "": invalid syntax`],
      [
        '/v1.41/swarm/update?version=abc',
        `invalid swarm version 'abc': strconv.ParseUint: parsing "abc": invalid syntax`,
      ],
      ['/v1.41/services/abc/update', `invalid service version '': strconv.ParseUint: parsing "": invalid syntax`],
      ['/v1.41/nodes/abc/update', `invalid node version '': strconv.ParseUint: parsing "": invalid syntax`],
      ['/v1.41/secrets/x/update?version=abc', 'invalid secret version'],
      ['/v1.41/configs/x/update', 'invalid config version'],
    ];
    for (const [p, want] of versions) {
      const a = await req('POST', p, '{}');
      assert.equal(a.status, 400, p);
      assert.equal(msg(a), want, p);
    }
    // dockerd: a malformed body is a 400 before anything else (`invalid character 'x' ...`)
    for (const p of ['/v1.41/services/create', '/v1.41/swarm/init', '/v1.41/swarm/join', '/v1.41/secrets/create'])
      assert.equal((await req('POST', p, 'xx')).status, 400, p);
    // dockerd: service/task logs without a stream -> "Bad parameters: you must choose at least one stream"
    // (its status is 500; berth's 400, since it is the request's fault)
    const noStream = await req('GET', '/v1.41/services/abc/logs');
    assert.equal(noStream.status, 400);
    assert.equal(msg(noStream), 'Bad parameters: you must choose at least one stream');
    // init and join: berth never joins a swarm; it says why (503, as dockerd's "already part of a swarm")
    for (const p of ['/v1.41/swarm/init', '/v1.41/swarm/join']) {
      const a = await req('POST', p, JSON.stringify({ ListenAddr: '0.0.0.0:2377', RemoteAddrs: ['127.0.0.1:1'] }));
      assert.equal(a.status, 503, p);
      assert.match(msg(a) ?? '', /does not run Docker Swarm.*Kubernetes.*CRI/);
    }
    // and the docker CLI shows it
    const cli = await d.docker(['swarm', 'init'], { allowFail: true });
    assert.notEqual(cli.code, 0);
    assert.match(cli.stderr, /Kubernetes/);
    const leave = await d.docker(['swarm', 'leave', '--force'], { allowFail: true });
    assert.match(leave.stderr, /This node is not part of a swarm/);
    // info still says inactive; no cluster store: dockerd 20.10's empty ClusterStore/ClusterAdvertise
    const info = (await req('GET', '/v1.41/info')).json as {
      Swarm: { LocalNodeState: string };
      ClusterStore: string;
      ClusterAdvertise: string;
    };
    assert.equal(info.Swarm.LocalNodeState, 'inactive');
    assert.equal(info.ClusterStore, '');
    assert.equal(info.ClusterAdvertise, '');
  });

  test('plugins: none installed, none installable, dockerd words', async () => {
    // dockerd: GET /plugins -> 200 []; filters capability/enabled accepted
    assert.deepEqual((await req('GET', '/v1.41/plugins')).json, []);
    const f = (o: unknown) => `/v1.41/plugins?filters=${encodeURIComponent(JSON.stringify(o))}`;
    assert.deepEqual((await req('GET', f({ capability: ['volumedriver'] }))).json, []);
    assert.deepEqual((await req('GET', f({ enabled: ['true'] }))).json, []);
    assert.deepEqual((await req('GET', '/v1.41/plugins?filters=null')).json, []);
    // dockerd: {"foo":["x"]} -> 400 "Invalid filter 'foo'"; {"enabled":["x"]} -> 400 "Invalid filter 'enabled=[x]'"
    let a = await req('GET', f({ foo: ['x'] }));
    assert.equal(a.status, 400);
    assert.equal(msg(a), "Invalid filter 'foo'");
    a = await req('GET', f({ enabled: ['x'] }));
    assert.equal(a.status, 400);
    assert.equal(msg(a), "Invalid filter 'enabled=[x]'");
    // dockerd: 404 {"message":"plugin \"x\" not found"} for inspect, remove, disable, set, push, enable?timeout=0
    const missing: Array<[string, string, string?]> = [
      ['GET', '/v1.41/plugins/x/json'],
      ['GET', '/v1.41/plugins/vieux/sshfs:latest/json'],
      ['DELETE', '/v1.41/plugins/x'],
      ['POST', '/v1.41/plugins/x/disable'],
      ['POST', '/v1.41/plugins/x/enable?timeout=0'],
      ['POST', '/v1.41/plugins/x/set', '[]'],
      ['POST', '/v1.41/plugins/x/push'],
    ];
    for (const [m, p, b] of missing) {
      a = await req(m, p, b);
      assert.equal(a.status, 404, `${m} ${p}`);
      const name = p.replace('/v1.41/plugins/', '').replace(/\/(json|disable|enable|set|push)(\?.*)?$/, '');
      assert.equal(msg(a), `plugin "${name}" not found`, `${m} ${p}`);
    }
    // dockerd: upgrade?remote=y -> 404 plugin "x:latest" not found (the name parsed as a reference)
    a = await req('POST', '/v1.41/plugins/x/upgrade?remote=y', '[]');
    assert.equal(a.status, 404);
    assert.equal(msg(a), 'plugin "x:latest" not found');
    // dockerd: enable without timeout -> 500 `strconv.Atoi: parsing "": invalid syntax` (berth: 400)
    a = await req('POST', '/v1.41/plugins/x/enable');
    assert.equal(a.status, 400);
    assert.equal(msg(a), 'strconv.Atoi: parsing "": invalid syntax');
    // dockerd: create without a name -> "failed to parse reference : invalid reference format" (its 500, here 400)
    a = await req('POST', '/v1.41/plugins/create');
    assert.equal(a.status, 400);
    assert.equal(msg(a), 'failed to parse reference : invalid reference format');
    // berth installs no plugin: create/pull fail clearly (501), nothing half-made
    a = await req('POST', '/v1.41/plugins/create?name=myplugin', Buffer.alloc(1024), {
      'Content-Type': 'application/x-tar',
    });
    assert.equal(a.status, 501);
    assert.match(msg(a) ?? '', /plugin create is not supported: berth runs no managed plugins/);
    a = await req('POST', '/v1.41/plugins/pull?remote=vieux/sshfs', '[]');
    assert.equal(a.status, 501);
    assert.deepEqual((await req('GET', '/v1.41/plugins')).json, []);
    // the docker CLI: `plugin ls` is empty, `plugin inspect` says not found
    assert.equal((await d.docker(['plugin', 'ls', '-q'])).stdout.trim(), '');
    const ins = await d.docker(['plugin', 'inspect', 'x'], { allowFail: true });
    assert.match(ins.stderr, /plugin "x" not found/);
  });

  test('unknown routes and API versions as dockerd 20.10 answers them', async () => {
    // dockerd: unknown paths -> 404 {"message":"page not found"}, whatever the version prefix
    for (const p of [
      '/foo',
      '/v1.41/foo',
      '/v1.41/containers/json/x',
      '/v1.41/',
      '/v1.41',
      '/vabc/version',
      '/v1.99/foo',
    ]) {
      const a = await req('GET', p);
      assert.equal(a.status, 404, p);
      assert.deepEqual(a.json, { message: 'page not found' }, p);
    }
    // dockerd: a known path with another method -> 404 page not found (GET /containers/create, POST /containers/json,
    // PUT /_ping, HEAD /version)
    for (const [m, p] of [
      ['GET', '/v1.41/containers/create'],
      ['POST', '/v1.41/containers/json'],
      ['PUT', '/v1.41/_ping'],
      ['HEAD', '/v1.41/version'],
    ] as const)
      assert.equal((await req(m, p)).status, 404, `${m} ${p}`);
    // dockerd: HEAD /_ping -> 200; OPTIONS anything -> 200 empty (its CORS preflight route)
    assert.equal((await req('HEAD', '/v1.41/_ping')).status, 200);
    const opt = await req('OPTIONS', '/v1.41/foo');
    assert.equal(opt.status, 200);
    assert.equal(opt.text, '');
    // dockerd: too new -> 400 JSON (berth's maximum is 1.45)
    let a = await req('GET', '/v1.99/_ping');
    assert.equal(a.status, 400);
    assert.deepEqual(a.json, { message: 'client version 1.99 is too new. Maximum supported API version is 1.45' });
    a = await req('GET', '/v2.0/version');
    assert.equal(msg(a), 'client version 2.0 is too new. Maximum supported API version is 1.45');
    // dockerd: too old -> 400 text/plain (versions below 1.24 get text errors), minimum 1.12
    a = await req('GET', '/v1.11/version');
    assert.equal(a.status, 400);
    assert.match(String(a.headers['content-type']), /^text\/plain/);
    assert.equal(
      a.text,
      'client version 1.11 is too old. Minimum supported API version is 1.12, please upgrade your client to a newer version\n',
    );
    a = await req('GET', '/v1/version');
    assert.match(a.text, /^client version 1 is too old/);
    // dockerd: 1.12 and the forms of 1.41 it reads (/v1.41.0, /v01.41, /v1.041) are served
    for (const p of ['/v1.12/version', '/v1.23/_ping', '/v1.41.0/version', '/v01.41/version', '/v1.041/version'])
      assert.equal((await req('GET', p)).status, 200, p);
    const ver = (await req('GET', '/version')).json as { MinAPIVersion: string; ApiVersion: string };
    assert.equal(ver.MinAPIVersion, '1.12');
    // dockerd: /v1.23/containers/nope/json -> 404 text/plain "No such container: nope\n";
    // /v1.24 -> 404 {"message":"No such container: nope"}
    a = await req('GET', '/v1.23/containers/nope/json');
    assert.equal(a.status, 404);
    assert.match(String(a.headers['content-type']), /^text\/plain/);
    assert.equal(a.text, 'No such container: nope\n');
    a = await req('GET', '/v1.24/containers/nope/json');
    assert.deepEqual(a.json, { message: 'No such container: nope' });
    a = await req('GET', '/v1.11/foo');
    assert.equal(a.status, 404);
    assert.equal(a.text, 'page not found\n');
    // dockerd: a path with `//` -> 301 to the cleaned path, query kept
    // (//v1.41/_ping -> Location: /v1.41/_ping; /v1.41/containers//json?all=1 -> /v1.41/containers/json?all=1)
    a = await req('GET', '//v1.41/_ping');
    assert.equal(a.status, 301);
    assert.equal(a.headers['location'], '/v1.41/_ping');
    a = await req('GET', '/v1.41/containers//json?all=1');
    assert.equal(a.status, 301);
    assert.equal(a.headers['location'], '/v1.41/containers/json?all=1');
    // the docker CLI pinned to an old API still works
    const old = await d.docker(['version', '--format', '{{.Server.MinAPIVersion}}'], {
      env: { ...d.env, DOCKER_API_VERSION: '1.24' },
    });
    assert.equal(old.stdout.trim(), '1.12');
  });

  test('API < 1.24: HostConfig in the start body; from 1.24 a start body is refused', async () => {
    const hostDir = join(tmp, 'bind');
    execFileSync('mkdir', ['-p', hostDir]);
    writeFileSync(join(hostDir, 'f'), 'from-the-host\n');
    const create = async (name: string, cmd: string[]) => {
      const a = await req(
        'POST',
        `/v1.23/containers/create?name=${name}`,
        JSON.stringify({ Image: 'busybox', Cmd: cmd }),
      );
      assert.equal(a.status, 201, a.text);
    };
    await create('legacy1', ['cat', '/hostt/f']);
    // dockerd 1.23: a bad HostConfig is refused (its 500 "json: cannot unmarshal string into Go struct field
    // ContainerConfigWrapper.Memory of type int64"; berth 400 with the field's path) and nothing changes
    let a = await req(
      'POST',
      '/v1.23/containers/legacy1/start',
      JSON.stringify({ Binds: [`${hostDir}:/hostt`], Memory: 'x' }),
    );
    assert.equal(a.status, 400);
    assert.match(a.text, /cannot unmarshal string into Go struct field .*Memory of type int64/);
    assert.equal(
      (await d.docker(['inspect', '-f', '{{.State.Status}} {{.HostConfig.Binds}}', 'legacy1'])).stdout.trim(),
      'created []',
    );
    // dockerd 1.23: {"Binds": [...], "Memory": 10000000} at the top level -> 204, inspect shows them
    a = await req(
      'POST',
      '/v1.23/containers/legacy1/start',
      JSON.stringify({ binds: [`${hostDir}:/hostt`], Memory: 10000000 }),
    );
    assert.equal(a.status, 204, a.text);
    assert.equal((await d.docker(['wait', 'legacy1'])).stdout.trim(), '0');
    assert.equal((await d.docker(['logs', 'legacy1'])).stdout, 'from-the-host\n');
    assert.equal(
      (await d.docker(['inspect', '-f', '{{.HostConfig.Binds}} {{.HostConfig.Memory}}', 'legacy1'])).stdout.trim(),
      `[${hostDir}:/hostt] 10000000`,
    );
    // the nested form {"HostConfig": {...}} too
    await create('legacy2', ['sh', '-c', 'cat /hostt/f; sleep 60']);
    a = await req(
      'POST',
      '/v1.23/containers/legacy2/start',
      JSON.stringify({ HostConfig: { Binds: [`${hostDir}:/hostt:ro`] } }),
    );
    assert.equal(a.status, 204, a.text);
    // dockerd 1.23: a running container -> 304 and its HostConfig is not touched
    a = await req(
      'POST',
      '/v1.23/containers/legacy2/start',
      JSON.stringify({ Binds: ['/tmp:/other'], Privileged: true }),
    );
    assert.equal(a.status, 304);
    assert.equal(
      (await d.docker(['inspect', '-f', '{{.HostConfig.Binds}} {{.HostConfig.Privileged}}', 'legacy2'])).stdout.trim(),
      `[${hostDir}:/hostt:ro] false`,
    );
    // dockerd: Content-Type other than JSON -> 400 "Content-Type specified (text/plain) must be 'application/json'"
    await create('legacy3', ['true']);
    a = await req('POST', '/v1.23/containers/legacy3/start', '{"Privileged":true}', { 'Content-Type': 'text/plain' });
    assert.equal(a.status, 400);
    assert.equal(a.text, "Content-Type specified (text/plain) must be 'application/json'\n");
    // dockerd 1.41: a body over 7 bytes -> 400 "starting container with non-empty request body was deprecated since
    // API v1.22 and removed in v1.24"; `{}` is fine (204)
    a = await req('POST', '/v1.41/containers/legacy3/start', '{"Privileged":true}');
    assert.equal(a.status, 400);
    assert.equal(
      msg(a),
      'starting container with non-empty request body was deprecated since API v1.22 and removed in v1.24',
    );
    assert.equal((await d.docker(['inspect', '-f', '{{.State.Status}}', 'legacy3'])).stdout.trim(), 'created');
    a = await req('POST', '/v1.41/containers/legacy3/start', '{}');
    assert.equal(a.status, 204);
    // dockerd: a body with no HostConfig field (Go leaves the inline HostConfig nil) changes nothing
    a = await req(
      'POST',
      '/v1.41/containers/create?name=legacy4',
      JSON.stringify({ Image: 'busybox', Cmd: ['cat', '/hostt/f'], HostConfig: { Binds: [`${hostDir}:/hostt`] } }),
    );
    assert.equal(a.status, 201, a.text);
    a = await req('POST', '/v1.23/containers/legacy4/start', JSON.stringify({ NotAField: true, Image: 'x' }));
    assert.equal(a.status, 204, a.text);
    assert.equal((await d.docker(['wait', 'legacy4'])).stdout.trim(), '0');
    assert.equal(
      (await d.docker(['inspect', '-f', '{{.HostConfig.Binds}}', 'legacy4'])).stdout.trim(),
      `[${hostDir}:/hostt]`,
    );
    await d.docker(['rm', '-f', 'legacy1', 'legacy2', 'legacy3', 'legacy4']);
  });

  test('API < 1.24: POST /containers/{id}/copy; from 1.24 an empty 404', async () => {
    await d.docker(['create', '--name', 'copier', 'busybox', 'true']);
    // dockerd 1.23: {"Resource":"/f"} -> 200 application/x-tar holding the file
    const a = await req('POST', '/v1.23/containers/copier/copy', JSON.stringify({ Resource: '/etc/hostname' }));
    assert.equal(a.status, 200);
    assert.equal(a.headers['content-type'], 'application/x-tar');
    assert.ok(a.text.includes('hostname'), 'the tar names the file');
    // any key case, as dockerd's decoder
    assert.equal(
      (await req('POST', '/v1.23/containers/copier/copy', JSON.stringify({ resource: '/etc/hostname' }))).status,
      200,
    );
    // dockerd 1.23: {} -> 400 "Path cannot be empty"; no such container -> 404 "No such container: nope" (text)
    let b = await req('POST', '/v1.23/containers/copier/copy', '{}');
    assert.equal(b.status, 400);
    assert.equal(b.text, 'Path cannot be empty\n');
    b = await req('POST', '/v1.23/containers/nope/copy', JSON.stringify({ Resource: '/f' }));
    assert.equal(b.status, 404);
    assert.equal(b.text, 'No such container: nope\n');
    // dockerd 1.24+: 404 with an empty body
    b = await req('POST', '/v1.24/containers/copier/copy', JSON.stringify({ Resource: '/etc/hostname' }));
    assert.equal(b.status, 404);
    assert.equal(b.text, '');
    await d.docker(['rm', 'copier']);
  });

  test('version gates of create and volume prune', async () => {
    // dockerd 20.10: /v1.24 create with HostConfig.AutoRemove=true -> inspect AutoRemove false; /v1.25 -> true
    for (const [v, want] of [
      ['1.24', 'false'],
      ['1.25', 'true'],
    ] as const) {
      const a = await req(
        'POST',
        `/v${v}/containers/create?name=ar${v.replace('.', '')}`,
        JSON.stringify({ Image: 'busybox', HostConfig: { autoremove: true } }),
      );
      assert.equal(a.status, 201, a.text);
      assert.equal(
        (await d.docker(['inspect', '-f', '{{.HostConfig.AutoRemove}}', `ar${v.replace('.', '')}`])).stdout.trim(),
        want,
      );
    }
    await d.docker(['rm', 'ar124', 'ar125']);
    // dockerd 20.10 (API 1.41): volume prune removes unused named volumes too ({"VolumesDeleted":["named1"]});
    // from 1.42 only anonymous ones unless all=true
    await d.docker(['volume', 'create', 'named1']);
    let a = await req('POST', '/v1.45/volumes/prune');
    assert.deepEqual((a.json as { VolumesDeleted: string[] }).VolumesDeleted, []);
    a = await req('POST', '/v1.41/volumes/prune');
    assert.deepEqual((a.json as { VolumesDeleted: string[] }).VolumesDeleted, ['named1']);
  });

  test('JSON null in query parameters is unset (the Go SDK sends it)', async () => {
    // dockerd: filters=null -> no filter (200)
    for (const p of [
      '/v1.41/containers/json?all=1&filters=null',
      '/v1.41/images/json?filters=null',
      '/v1.41/networks?filters=null',
      '/v1.41/volumes?filters=null',
    ])
      assert.equal((await req('GET', p)).status, 200, p);
    // a filter whose value is null is no value
    assert.equal((await req('GET', '/v1.41/containers/json?filters=%7B%22label%22%3Anull%7D')).status, 200);
    // dockerd: /build?buildargs=null&labels=null&cachefrom=null builds
    const ctxDir = join(tmp, 'ctx');
    execFileSync('mkdir', ['-p', ctxDir]);
    writeFileSync(join(ctxDir, 'Dockerfile'), 'FROM busybox\nLABEL fidelity=yes\n');
    const tar = execFileSync('tar', ['-C', ctxDir, '-cf', '-', 'Dockerfile']);
    const a = await req('POST', '/v1.41/build?t=nullargs:1&buildargs=null&labels=null&cachefrom=null', tar, {
      'Content-Type': 'application/x-tar',
    });
    assert.equal(a.status, 200, a.text);
    assert.doesNotMatch(a.text, /errorDetail/);
    assert.equal((await d.docker(['inspect', '-f', '{{.Config.Labels.fidelity}}', 'nullargs:1'])).stdout.trim(), 'yes');
    await d.docker(['rmi', 'nullargs:1']);
  });

  test('body keys in any case, as dockerd decodes them', async () => {
    // /auth: lower-case (the CLI's `username`), upper-case and mixed keys all reach the registry check
    // (dockerd's types.AuthConfig decode); before, only lower-case keys were seen ("username and password are required")
    const a = await req(
      'POST',
      '/v1.41/auth',
      JSON.stringify({ USERNAME: 'u', Password: 'p', ServerAddress: '127.0.0.1:1' }),
    );
    assert.notEqual(msg(a), 'username and password are required', a.text);
    assert.ok(a.status >= 400);
    // a wrong type is Go's error
    const bad = await req('POST', '/v1.41/auth', JSON.stringify({ username: 5 }));
    assert.equal(bad.status, 400);
    assert.match(msg(bad) ?? '', /cannot unmarshal number into Go struct field AuthConfig.username of type string/);
    // checkpoint create: `checkpointid` is CheckpointID (the container is not running: a state error, not
    // "CheckpointID is required")
    await d.docker(['create', '--name', 'ckpt', 'busybox', 'true']);
    const c = await req('POST', '/v1.41/containers/ckpt/checkpoints', JSON.stringify({ checkpointid: 'c1' }));
    assert.notEqual(msg(c), 'CheckpointID is required', c.text);
    assert.ok(c.status >= 400);
    await d.docker(['rm', 'ckpt']);
    // create: dockerd's ContainerConfigWrapper reads HostConfig fields at the top level too
    // ({"Image":"busybox","Binds":["/tmp:/x"],"Memory":10000000} -> inspect "[/tmp:/x] 10000000"; `binds` as well),
    // and a nested HostConfig wins over them ({"Dns":[...],"HostConfig":{"Binds":[...]}} -> Dns unset)
    let cr = await req(
      'POST',
      '/v1.41/containers/create?name=inline1',
      JSON.stringify({ Image: 'busybox', binds: [`${tmp}:/x`], Memory: 10000000 }),
    );
    assert.equal(cr.status, 201, cr.text);
    assert.equal(
      (await d.docker(['inspect', '-f', '{{.HostConfig.Binds}} {{.HostConfig.Memory}}', 'inline1'])).stdout.trim(),
      `[${tmp}:/x] 10000000`,
    );
    cr = await req(
      'POST',
      '/v1.41/containers/create?name=inline2',
      JSON.stringify({ Image: 'busybox', Dns: ['1.1.1.1'], Memory: 10000000, HostConfig: { Binds: [`${tmp}:/x`] } }),
    );
    assert.equal(cr.status, 201, cr.text);
    assert.match(
      (
        await d.docker(['inspect', '-f', '{{.HostConfig.Binds}} {{.HostConfig.Dns}} {{.HostConfig.Memory}}', 'inline2'])
      ).stdout.trim(),
      new RegExp(`^\\[${tmp}:/x\\] (\\[\\]|<no value>) 10000000$`),
    );
    await d.docker(['rm', 'inline1', 'inline2']);
  });

  test('GET /events: since replays then streams; until ends it; dockerd formats and errors', async () => {
    const t0 = Date.now() / 1000 - 1;
    await d.docker(['create', '--name', 'ev1', 'busybox', 'true']);
    await d.docker(['rm', 'ev1']);
    const now = () => Math.floor(Date.now() / 1000);
    // since without until: the past events come at once, and the stream stays open for new ones
    const f = encodeURIComponent(JSON.stringify({ container: ['ev1'] }));
    let a = await req(
      'GET',
      `/v1.41/events?since=${t0.toFixed(3)}&filters=${f}`,
      undefined,
      {},
      {
        untilText: /"destroy"/,
        timeoutMs: 10_000,
      },
    );
    assert.equal(a.status, 200);
    const actions = a.text
      .split('\n')
      .filter(Boolean)
      .map((l) => (JSON.parse(l) as { Action: string }).Action);
    assert.deepEqual(actions, ['create', 'destroy']);
    // since=T.5 (seconds.fraction) is read as dockerd reads it
    a = await req(
      'GET',
      `/v1.41/events?since=${Math.floor(t0)}.5&until=${now() + 1}&filters=${f}`,
      undefined,
      {},
      { timeoutMs: 10_000 },
    );
    assert.match(a.text, /"create"/);
    // until in the past (alone or with since): the replay, then the stream ends
    const started = Date.now();
    a = await req('GET', `/v1.41/events?until=${now()}&filters=${f}`, undefined, {}, { timeoutMs: 10_000 });
    assert.ok(Date.now() - started < 5000, 'the stream ended by itself');
    assert.match(a.text, /"destroy"/);
    // the stream goes on live after the replay
    const live = req(
      'GET',
      `/v1.41/events?since=${t0.toFixed(0)}&filters=${encodeURIComponent(JSON.stringify({ container: ['ev2'] }))}`,
      undefined,
      {},
      {
        untilText: /"create"/,
        timeoutMs: 15_000,
      },
    );
    await new Promise((r) => setTimeout(r, 300));
    await d.docker(['create', '--name', 'ev2', 'busybox', 'true']);
    assert.match((await live).text, /"create"/);
    await d.docker(['rm', 'ev2']);
    // dockerd: since after until -> 400 "`since` time (S) cannot be after `until` time (U)"
    a = await req('GET', `/v1.41/events?since=${now() + 100}&until=${now()}`);
    assert.equal(a.status, 400);
    assert.match(msg(a) ?? '', /^`since` time \(\d+\) cannot be after `until` time \(\d+\)$/);
    // dockerd's API takes only seconds[.fraction] (the CLI converts RFC 3339 and durations):
    // since=10m -> `strconv.ParseInt: parsing "10m": invalid syntax` (dockerd's status is 500; berth's 400)
    for (const [q, part] of [
      ['since=10m', '10m'],
      ['since=2026-12-02T06:00:00Z', '2026-12-02T06:00:00Z'],
      ['until=1.abc', 'abc'],
    ]) {
      a = await req('GET', `/v1.41/events?${q}`);
      assert.equal(a.status, 400, q);
      assert.equal(msg(a), `strconv.ParseInt: parsing "${part}": invalid syntax`, q);
    }
    // the docker CLI's own forms (it converts them to whole seconds: `--until 0s` is now, truncated, so the
    // events must be a second old) replay too
    await new Promise((r) => setTimeout(r, 1100));
    const cli = await d.docker([
      'events',
      '--since',
      '1m',
      '--until',
      '0s',
      '--filter',
      'container=ev2',
      '--format',
      '{{.Action}}',
    ]);
    assert.deepEqual(cli.stdout.trim().split('\n'), ['create', 'destroy']);
  });
});
