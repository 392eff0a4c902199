/**
 * BuildKit builds (issue #16): dockerode 5's `buildImage(..., { version: '2' })`, unchanged, against
 * a real berthd: `POST /session` (h2c upgrade; dockerode serves moby.filesync.v1.Auth on it) then
 * `POST /build?version=2&session=<id>` with the context as the body. Progress comes back as
 * dockerd's BuildKit stream: `{"id":"moby.buildkit.trace","aux":"<base64 StatusResponse>"}` lines
 * and `{"id":"moby.image.id","aux":{"ID":"sha256:..."}}` (dockerd 20.10's builder-next writes
 * exactly these two kinds, no "Successfully built" line). Secrets come through a session that
 * serves moby.buildkit.secrets.v1.Secrets (as the docker CLI's does), opened here with dockerode's
 * own modem and grpc-js.
 */
import { before, after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createHash, randomUUID } from 'node:crypto';
import http from 'node:http';
import { execFileSync } from 'node:child_process';
import type { Duplex } from 'node:stream';
import Docker from 'dockerode';
import * as grpc from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { REPO, startDaemon, type Daemon } from './harness.js';
import { startDistribution } from './registry-harness.js';
import { decodeStatus, type StatusResponse } from '../../src/buildkit/protos.js';
import { logTextOf, openSessionServer, postBuild, readLines, statusesOf, type Line } from './buildkit-session.js';
import { fsutilSend, type SenderPacket } from './fsutil-sender.js';

/** Reads a build's JSON stream to its end: the raw lines and the decoded BuildKit statuses. */
async function collect(stream: NodeJS.ReadableStream): Promise<{ lines: Line[]; statuses: StatusResponse[] }> {
  const lines = await readLines(stream);
  return { lines, statuses: statusesOf(lines) };
}

const imageIdOf = (lines: Line[]) => {
  const l = lines.find((x) => x.id === 'moby.image.id');
  return (l?.aux as { ID?: string } | undefined)?.ID;
};
const vertexNames = (ss: StatusResponse[]) => [...new Set(ss.flatMap((s) => s.vertexes.map((v) => v.name)))];
const logText = logTextOf;

function contextDir(files: Record<string, string>): string {
  const dir = mkdtempSync('/var/tmp/berth-bk-ctx-');
  for (const [k, v] of Object.entries(files)) writeFileSync(join(dir, k), v);
  return dir;
}

describe('BuildKit builds (dockerode version 2)', () => {
  let d: Daemon;
  let docker: Docker;
  const dirs: string[] = [];
  before(async () => {
    d = await startDaemon();
    docker = new Docker({ socketPath: d.sock });
  });
  after(async () => {
    for (const x of dirs) rmSync(x, { recursive: true, force: true });
    await d?.stop();
  });

  /** Runs `image` with `cmd` and returns its stdout. */
  async function runOut(image: string, cmd: string[]): Promise<string> {
    const c = await docker.createContainer({ Image: image, Cmd: cmd });
    await c.start();
    const r = (await c.wait()) as { StatusCode: number };
    const logs = (await c.logs({ stdout: true, stderr: true })) as unknown as Buffer;
    await c.remove();
    // multiplexed frames: strip the 8-byte headers
    let out = '';
    for (let i = 0; i + 8 <= logs.length;) {
      const n = logs.readUInt32BE(i + 4);
      out += logs.subarray(i + 8, i + 8 + n).toString();
      i += 8 + n;
    }
    assert.equal(r.StatusCode, 0, out);
    return out;
  }

  test('a version 2 build streams BuildKit status, tags the image, and the image runs', async () => {
    const ctx = contextDir({
      Dockerfile: [
        'FROM busybox',
        'ARG WHO=nobody',
        'COPY hello.txt /hello.txt',
        'RUN echo "run says hi to $WHO"',
        'CMD ["cat", "/hello.txt"]',
        '',
      ].join('\n'),
      'hello.txt': 'hello from the context\n',
    });
    dirs.push(ctx);
    const stream = await docker.buildImage(
      { context: ctx, src: ['Dockerfile', 'hello.txt'] },
      { version: '2', t: 'bk-basic:v1', buildargs: { WHO: 'buildkit' } },
    );
    const { lines, statuses } = await collect(stream);
    assert.equal(
      lines.find((l) => l.error),
      undefined,
      JSON.stringify(lines.filter((l) => l.error)),
    );
    // no legacy-builder lines on a BuildKit stream
    assert.ok(!lines.some((l) => typeof l.stream === 'string'), 'legacy stream lines on a BuildKit build');
    const id = imageIdOf(lines);
    assert.match(id ?? '', /^sha256:[0-9a-f]{64}$/);
    assert.ok(statuses.length > 0, 'no moby.buildkit.trace messages');
    const names = vertexNames(statuses);
    assert.ok(
      names.some((n) => /RUN echo "run says hi to \$WHO"/.test(n)),
      names.join('\n'),
    );
    assert.ok(names.includes('[internal] load build context'), names.join('\n'));
    // every vertex started also completed, without error
    const done = statuses.flatMap((s) => s.vertexes).filter((v) => v.completed);
    for (const n of names)
      assert.ok(
        done.some((v) => v.name === n && !v.error),
        `vertex not completed: ${n}`,
      );
    assert.match(logText(statuses), /run says hi to buildkit/);
    const img = await docker.getImage('bk-basic:v1').inspect();
    assert.equal(img.Id, id);
    assert.equal(await runOut('bk-basic:v1', []), 'hello from the context\n');

    // dockerode's helper decodes the stream as it would dockerd's
    const again = await docker.buildImage(
      { context: ctx, src: ['Dockerfile', 'hello.txt'] },
      { version: '2', t: 'bk-basic:v1', buildargs: { WHO: 'buildkit' } },
    );
    // dockerode 5's followProgress (BuildKit-aware; @types/dockerode 4 does not declare it)
    const follow = (docker as unknown as { followProgress: Docker['modem']['followProgress'] }).followProgress.bind(
      docker,
    );
    const events = await new Promise<Array<{ stream?: string }>>((res, rej) =>
      follow(again, (err: Error | null, out: Array<{ stream?: string }>) => (err ? rej(err) : res(out))),
    );
    const shown = events.map((e) => e.stream ?? '').join('');
    assert.match(shown, /CACHED: \[\d\/\d\] RUN echo/, shown);
    assert.match(shown, new RegExp(`Built image: ${id}`), shown);
  });

  test('target builds only the stages it needs', async () => {
    const ctx = contextDir({
      Dockerfile: [
        'FROM busybox AS base',
        'RUN echo base > /base',
        'FROM base AS tools',
        'RUN echo tools > /tools',
        'FROM base AS final',
        'RUN echo final-stage-ran > /final',
        'CMD ["cat", "/final"]',
        '',
      ].join('\n'),
    });
    dirs.push(ctx);
    const withTarget = await collect(
      await docker.buildImage(
        { context: ctx, src: ['Dockerfile'] },
        { version: '2', t: 'bk-target:tools', target: 'tools' },
      ),
    );
    assert.ok(imageIdOf(withTarget.lines), JSON.stringify(withTarget.lines.filter((l) => l.error)));
    const names = vertexNames(withTarget.statuses);
    assert.ok(
      names.some((n) => n.includes('echo tools')),
      names.join('\n'),
    );
    assert.ok(
      !names.some((n) => n.includes('final-stage-ran')),
      `the final stage ran for target tools:\n${names.join('\n')}`,
    );
    assert.equal(await runOut('bk-target:tools', ['cat', '/base', '/tools']), 'base\ntools\n');
    assert.notEqual(await runOut('bk-target:tools', ['sh', '-c', 'test -e /final && echo yes || echo no']), 'yes\n');

    const noTarget = await collect(
      await docker.buildImage({ context: ctx, src: ['Dockerfile'] }, { version: '2', t: 'bk-target:final' }),
    );
    assert.ok(imageIdOf(noTarget.lines));
    assert.equal(await runOut('bk-target:final', []), 'final-stage-ran\n');
    // the last stage does not need `tools`
    assert.ok(!vertexNames(noTarget.statuses).some((n) => n.includes('echo tools')));

    const bad = await collect(
      await docker.buildImage({ context: ctx, src: ['Dockerfile'] }, { version: '2', target: 'nope' }),
    );
    assert.match(bad.lines.at(-1)?.error ?? '', /failed to reach build target nope/);
    assert.equal(imageIdOf(bad.lines), undefined);
  });

  test("testcontainers' BuildKit option (withBuildkit, withTarget, build args) builds an image that runs", async () => {
    Object.assign(process.env, {
      DOCKER_HOST: d.host,
      TESTCONTAINERS_RYUK_DISABLED: 'true',
      TESTCONTAINERS_HOST_OVERRIDE: '127.0.0.1',
    });
    const ctx = contextDir({
      Dockerfile: [
        'FROM busybox AS app',
        'ARG GREETING=hi',
        'RUN echo "$GREETING from testcontainers" > /greeting',
        'CMD ["sh", "-c", "cat /greeting; echo ready; sleep 300"]',
        'FROM app AS extra',
        'RUN echo extra-stage-ran > /extra',
        '',
      ].join('\n'),
    });
    dirs.push(ctx);
    const { GenericContainer, Wait } = await import('testcontainers');
    const built = await GenericContainer.fromDockerfile(ctx)
      .withBuildkit()
      .withTarget('app')
      .withBuildArgs({ GREETING: 'hello' })
      .build('bk-tc:1', { deleteOnExit: false });
    const c = await built.withWaitStrategy(Wait.forLogMessage('ready')).start();
    try {
      assert.equal((await c.exec(['cat', '/greeting'])).output, 'hello from testcontainers\n');
      assert.notEqual((await c.exec(['test', '-e', '/extra'])).exitCode, 0);
    } finally {
      await c.stop();
    }
  });

  test("the build's registry credentials come from the session's Auth service (dockerode's authconfig)", async () => {
    const reg = await startDistribution({ bob: 'pw-bob-Secret1' });
    try {
      const auth = { username: 'bob', password: 'pw-bob-Secret1', serveraddress: reg.addr };
      const ref = `${reg.addr}/priv/bb:1`;
      await docker.getImage('busybox').tag({ repo: `${reg.addr}/priv/bb`, tag: '1' });
      const pushed = await docker.getImage(ref).push({ authconfig: auth });
      let text = '';
      for await (const c of pushed) text += c.toString();
      assert.match(text, /digest: sha256:/, text);
      await docker.getImage(ref).remove(); // untag: the build must pull it
      const ctx = contextDir({ Dockerfile: `FROM ${ref}\nRUN echo pulled-with-session-auth > /x\n` });
      dirs.push(ctx);
      // without credentials the pull is refused
      const denied = await collect(
        await docker.buildImage({ context: ctx, src: ['Dockerfile'] }, { version: '2', t: 'bk-auth:0' }),
      );
      assert.equal(imageIdOf(denied.lines), undefined);
      assert.ok(denied.lines.at(-1)?.error, JSON.stringify(denied.lines.at(-1)));
      // dockerode lends `authconfig` through the session (moby.filesync.v1.Auth/Credentials) only
      const ok = await collect(
        await docker.buildImage(
          { context: ctx, src: ['Dockerfile'] },
          { version: '2', t: 'bk-auth:1', authconfig: { username: 'bob', password: 'pw-bob-Secret1' } },
        ),
      );
      assert.ok(imageIdOf(ok.lines), JSON.stringify(ok.lines.filter((l) => l.error)));
      assert.equal(await runOut('bk-auth:1', ['cat', '/x']), 'pulled-with-session-auth\n');
    } finally {
      await reg.stop();
    }
  });

  /**
   * A session as the docker CLI opens one: `POST /session` upgraded to h2c, the methods it serves
   * listed in X-Docker-Expose-Session-Grpc-Method, a grpc-js server on the hijacked socket.
   */
  async function openSession(
    secrets: Record<string, string>,
    syncDirs: Record<string, string> = {},
  ): Promise<{ id: string; asked: string[]; synced: string[]; close(): void }> {
    const id = randomUUID();
    const asked: string[] = [];
    const synced: string[] = [];
    const { server, close } = await openSessionServer(docker, {
      id,
      name: 'berth-test',
      methods: [
        '/moby.buildkit.secrets.v1.Secrets/GetSecret',
        '/moby.filesync.v1.FileSync/DiffCopy',
        '/grpc.health.v1.Health/Check',
      ],
      statusCodes: { 101: true, 200: true },
    });
    const pkg = grpc.loadPackageDefinition(loadSync(join(REPO, 'src/buildkit/proto/session.proto'))) as unknown as {
      moby: { buildkit: { secrets: { v1: { Secrets: { service: grpc.ServiceDefinition } } } } };
    };
    server.addService(pkg.moby.buildkit.secrets.v1.Secrets.service, {
      GetSecret: (
        call: grpc.ServerUnaryCall<{ ID: string }, { data: Buffer }>,
        cb: grpc.sendUnaryData<{ data: Buffer }>,
      ) => {
        asked.push(call.request.ID);
        const v = secrets[call.request.ID];
        if (v === undefined) cb({ code: grpc.status.NOT_FOUND, message: `secret ${call.request.ID} not found` });
        else cb(null, { data: Buffer.from(v) });
      },
    });
    const fs = grpc.loadPackageDefinition(
      loadSync(join(REPO, 'src/buildkit/proto/filesync.proto'), {
        includeDirs: [join(REPO, 'src/buildkit/proto')],
        enums: String,
        longs: Number,
        keepCase: true,
      }),
    ) as unknown as { moby: { filesync: { v1: { FileSync: { service: grpc.ServiceDefinition } } } } };
    server.addService(fs.moby.filesync.v1.FileSync.service, {
      DiffCopy: (call: grpc.ServerDuplexStream<SenderPacket, SenderPacket>) => {
        const dir = String(call.metadata.get('dir-name')[0] ?? '');
        const include = call.metadata.get('include-patterns').map(String);
        synced.push(dir);
        fsutilSend(call, syncDirs[dir], include);
      },
    });
    return {
      id,
      asked,
      synced,
      close,
    };
  }

  /** `POST /build?version=2&session=<id>` with dockerode's modem, as buildImage sends it. */
  const buildWithSession = (
    ctx: string | null,
    files: string[],
    session: string,
    t: string,
    extra: Record<string, string> = {},
  ) => postBuild(docker, ctx, { session, t, ...extra }, files);

  test('RUN --mount=type=secret gets the secret from the client session, and it stays out of the image', async () => {
    const ctx = contextDir({
      Dockerfile: [
        'FROM busybox',
        // the value itself must not appear in the Dockerfile (RUN's text is the image's history)
        'RUN --mount=type=secret,id=token sha256sum /run/secrets/token | cut -c1-64 > /sum && echo secret-ok > /ok',
        'RUN --mount=type=secret,id=other,target=/etc/other,required=false \\',
        '  test ! -s /etc/other && echo none > /no-other',
        '',
      ].join('\n'),
    });
    dirs.push(ctx);
    const s = await openSession({ token: 's3cr3t-value' });
    try {
      const { lines } = await collect(await buildWithSession(ctx, ['Dockerfile'], s.id, 'bk-secret:1'));
      assert.ok(imageIdOf(lines), JSON.stringify(lines.filter((l) => l.error)));
      assert.deepEqual(s.asked.sort(), ['other', 'token']);
    } finally {
      s.close();
    }
    assert.equal(await runOut('bk-secret:1', ['cat', '/ok', '/no-other']), 'secret-ok\nnone\n');
    const sum = createHash('sha256').update('s3cr3t-value').digest('hex');
    assert.equal(await runOut('bk-secret:1', ['cat', '/sum']), `${sum}\n`);
    assert.equal(await runOut('bk-secret:1', ['sh', '-c', 'ls -A /run/secrets 2>/dev/null | wc -l']), '0\n');
    const saved = await d.docker(['save', 'bk-secret:1']);
    assert.ok(!saved.stdout.includes('s3cr3t-value'), 'the secret is in the saved image');

    // a required secret the session does not have fails the build, with the id in the message
    const ctx2 = contextDir({ Dockerfile: 'FROM busybox\nRUN --mount=type=secret,id=missing,required=true true\n' });
    dirs.push(ctx2);
    const s2 = await openSession({});
    try {
      const { lines } = await collect(await buildWithSession(ctx2, ['Dockerfile'], s2.id, 'bk-secret:2'));
      assert.match(lines.at(-1)?.error ?? '', /secret missing not found/);
    } finally {
      s2.close();
    }
    await assert.rejects(docker.getImage('bk-secret:2').inspect(), /no such image/i);
  });

  test('remote=client-session: context and Dockerfile come through the session (FileSync DiffCopy)', async () => {
    const ctx = contextDir({ 'run.sh': '#!/bin/sh\necho script-ran\n', 'secret.txt': 'keep me out\n' });
    dirs.push(ctx);
    chmodSync(join(ctx, 'run.sh'), 0o755);
    mkdirSync(join(ctx, 'sub'));
    writeFileSync(join(ctx, 'sub/file.txt'), 'x'.repeat(20_000) + '\nfrom the session\n');
    symlinkSync('sub/file.txt', join(ctx, 'link'));
    writeFileSync(join(ctx, '.dockerignore'), 'secret.txt\n');
    const dfDir = contextDir({
      'Custom.Dockerfile': [
        'FROM busybox',
        'COPY . /ctx/',
        'RUN ls -A /ctx > /listing && /ctx/run.sh > /ran',
        'CMD ["tail", "-n1", "/ctx/link"]',
        '',
      ].join('\n'),
    });
    dirs.push(dfDir);
    const s = await openSession({}, { context: ctx, dockerfile: dfDir });
    try {
      const { lines, statuses } = await collect(
        await buildWithSession(null, [], s.id, 'bk-session-ctx:1', {
          remote: 'client-session',
          dockerfile: 'Custom.Dockerfile',
        }),
      );
      assert.ok(imageIdOf(lines), JSON.stringify(lines.filter((l) => l.error)));
      // as BuildKit's frontend: the Dockerfile, the context's .dockerignore alone, then the context
      assert.deepEqual(s.synced, ['dockerfile', 'context', 'context']);
      assert.ok(vertexNames(statuses).includes('[internal] load build definition from Custom.Dockerfile'));
    } finally {
      s.close();
    }
    assert.equal(await runOut('bk-session-ctx:1', []), 'from the session\n');
    assert.equal(await runOut('bk-session-ctx:1', ['cat', '/ran']), 'script-ran\n');
    const listing = (await runOut('bk-session-ctx:1', ['cat', '/listing'])).split('\n').filter(Boolean);
    assert.ok(listing.includes('sub') && listing.includes('link') && listing.includes('run.sh'), listing.join(','));
    assert.ok(!listing.includes('secret.txt'), '.dockerignore not applied');
    assert.ok(!listing.some((n) => n.startsWith('.dockerfile.')), `the Dockerfile leaked into the context: ${listing}`);

    // without a session serving the directory, a clear error and no image
    const s2 = await openSession({}, {});
    try {
      const { lines } = await collect(
        await buildWithSession(null, [], s2.id, 'bk-session-ctx:2', { remote: 'client-session' }),
      );
      assert.match(lines.at(-1)?.error ?? '', /error from the client: no such directory/);
    } finally {
      s2.close();
    }
    await assert.rejects(docker.getImage('bk-session-ctx:2').inspect(), /no such image/i);
  });

  test('bad session requests are refused before any upgrade', async () => {
    const raw = (headers: Record<string, string>) =>
      new Promise<{ status: number; body: string }>((res, rej) => {
        const req = http.request({ socketPath: d.sock, path: '/v1.45/session', method: 'POST', headers }, (r) => {
          let body = '';
          r.on('data', (c: Buffer) => (body += c.toString()));
          r.on('end', () => res({ status: r.statusCode ?? 0, body }));
        });
        req.on('upgrade', (r, sock) => {
          sock.destroy();
          res({ status: r.statusCode ?? 0, body: '' });
        });
        req.on('error', rej);
        req.end();
      });
    // no upgrade at all (dockerd 20.10: 400 {"message":"no upgrade proto in request"})
    const plain = await raw({ 'X-Docker-Expose-Session-Uuid': randomUUID() });
    assert.equal(plain.status, 400);
    assert.match(plain.body, /no upgrade proto in request/);
    // an upgrade to another protocol
    const tcp = await raw({ Connection: 'Upgrade', Upgrade: 'tcp', 'X-Docker-Expose-Session-Uuid': randomUUID() });
    assert.equal(tcp.status, 400);
    assert.match(tcp.body, /protocol tcp not supported/);
    // Upgrade: h2c without Connection: Upgrade
    const half = await raw({ Upgrade: 'h2c', 'X-Docker-Expose-Session-Uuid': randomUUID() });
    assert.equal(half.status, 400);
    assert.match(half.body, /upgrade to h2c/);
    // no session id
    const noId = await raw({ Connection: 'Upgrade', Upgrade: 'h2c' });
    assert.equal(noId.status, 400);
    assert.match(noId.body, /Session-Uuid/);
    // an id already in use
    const s = await openSession({});
    try {
      const dup = await raw({ Connection: 'Upgrade', Upgrade: 'h2c', 'X-Docker-Expose-Session-Uuid': s.id });
      assert.equal(dup.status, 409);
      assert.match(dup.body, /already exists/);
    } finally {
      s.close();
    }
    // a session whose client speaks no HTTP/2 ends; the daemon goes on
    const junk = await new Promise<Duplex>((res, rej) => {
      const req = http.request({
        socketPath: d.sock,
        path: '/v1.45/session',
        method: 'POST',
        headers: { Connection: 'Upgrade', Upgrade: 'h2c', 'X-Docker-Expose-Session-Uuid': randomUUID() },
      });
      req.on('upgrade', (_r, sock) => res(sock));
      req.on('error', rej);
      req.end();
    });
    const closed = new Promise((r) => junk.once('close', r));
    junk.on('error', () => undefined);
    junk.resume(); // read to the daemon's GOAWAY and end
    junk.write(Buffer.alloc(4096, 0xff));
    await closed;
    assert.equal((await d.api('GET', '/_ping')).status, 200);
    // a build naming a session that never opens: a clear error after BuildKit's wait, nothing built
    const ctx = contextDir({ Dockerfile: 'FROM busybox\nRUN true\n' });
    dirs.push(ctx);
    await assert.rejects(buildWithSession(ctx, ['Dockerfile'], randomUUID(), 'bk-nosession:1'), /no active session/);
    await assert.rejects(docker.getImage('bk-nosession:1').inspect(), /no such image/i);
  });

  test('a client that goes away cancels the build: its RUN is killed and nothing is tagged', async () => {
    const ctx = contextDir({ Dockerfile: 'FROM busybox\nRUN echo started-long-step && sleep 300\n' });
    dirs.push(ctx);
    const abort = new AbortController();
    const stream = await docker.buildImage(
      { context: ctx, src: ['Dockerfile'] },
      { version: '2', t: 'bk-cancel:1', abortSignal: abort.signal },
    );
    // wait until the RUN step has started (its output arrived), then go away
    await new Promise<void>((res) => {
      let text = '';
      stream.on('data', (c: Buffer) => {
        for (const l of c.toString().split('\n'))
          if (l.includes('moby.buildkit.trace')) {
            try {
              text += logText([decodeStatus(Buffer.from(String((JSON.parse(l) as Line).aux), 'base64'))]);
            } catch {
              /* a partial line */
            }
          }
        if (text.includes('started-long-step')) res();
      });
    });
    stream.on('error', () => undefined);
    abort.abort();
    // the step's container goes away: no `sleep 300` left under the daemon's exec root
    const deadline = Date.now() + 30_000;
    let left = true;
    while (Date.now() < deadline) {
      const ps = await d.docker(['info'], { allowFail: true }); // the daemon still answers
      assert.equal(ps.code, 0);
      const procs = execFileSync('ps', ['-eo', 'args'], { maxBuffer: 256 * 1024 * 1024 }).toString();
      left = procs.split('\n').some((l) => l.trim() === 'sleep 300');
      if (!left) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    assert.ok(!left, 'the cancelled build step still runs');
    await assert.rejects(docker.getImage('bk-cancel:1').inspect(), /no such image/i);
  });
});
