/**
 * Issue #3 acceptance 1-3: clients nobody here wrote against berth's registry, and the engine's
 * pull/push against berth's registry and Debian's docker-registry (distribution 2.8).
 */
import { before, after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { FIXTURE, cleanupDir, startDaemon, type Daemon } from './harness.js';
import { htpasswd, startBerthRegistry, startDistribution, type Registry } from './registry-harness.js';

const run = promisify(execFile);
const skopeo = (args: string[]) =>
  run('skopeo', ['--insecure-policy', ...args], { maxBuffer: 16 << 20 }).then(
    (r) => ({ code: 0, out: r.stdout + r.stderr }),
    (e: { code?: number; stdout?: string; stderr?: string }) => ({
      code: e.code ?? 1,
      out: `${e.stdout ?? ''}${e.stderr ?? ''}`,
    }),
  );
const sameTree = (a: string, b: string) => {
  const files = readdirSync(a).sort();
  assert.deepEqual(readdirSync(b).sort(), files);
  for (const f of files) assert.ok(readFileSync(join(a, f)).equals(readFileSync(join(b, f))), `${f} is byte-identical`);
};

describe('registry: skopeo against berth registry (basic auth, private and public repositories)', () => {
  let reg: Registry;
  let tmp: string;
  before(async () => {
    reg = await startBerthRegistry((dir) => ['--htpasswd', htpasswd(dir, { alice: 'secret' }), '--public', 'pub/**']);
    tmp = mkdtempSync('/var/tmp/berth-test-skopeo-');
  });
  after(async () => {
    await reg?.stop();
    await cleanupDir(tmp);
  });

  test('push with credentials; wrong password and anonymous pushes are refused', async () => {
    const dest = `docker://${reg.addr}/priv/bb:1`;
    const ok = await skopeo([
      'copy',
      '--dest-tls-verify=false',
      '--dest-creds',
      'alice:secret',
      `docker-archive:${FIXTURE}`,
      dest,
    ]);
    assert.equal(ok.code, 0, ok.out);
    const wrong = await skopeo([
      'copy',
      '--dest-tls-verify=false',
      '--dest-creds',
      'alice:nope',
      `docker-archive:${FIXTURE}`,
      `docker://${reg.addr}/priv/bb:2`,
    ]);
    assert.notEqual(wrong.code, 0);
    assert.match(wrong.out, /unauthorized|authentication required|401/i);
    const anon = await skopeo([
      'copy',
      '--dest-tls-verify=false',
      `docker-archive:${FIXTURE}`,
      `docker://${reg.addr}/pub/bb:anon`,
    ]);
    assert.notEqual(anon.code, 0, 'anonymous clients may not push, even to a public repository');
    const tags = await fetch(`http://${reg.addr}/v2/priv/bb/tags/list`, {
      headers: { Authorization: `Basic ${Buffer.from('alice:secret').toString('base64')}` },
    });
    assert.deepEqual(
      ((await tags.json()) as { tags: string[] }).tags,
      ['1'],
      'nothing of the refused pushes is visible',
    );
  });

  test('copied back out byte-identical: privately with credentials, publicly anonymously', async () => {
    const a = join(tmp, 'a');
    const b = join(tmp, 'b');
    assert.equal(
      (
        await skopeo([
          'copy',
          '--src-tls-verify=false',
          '--src-creds',
          'alice:secret',
          `docker://${reg.addr}/priv/bb:1`,
          `dir:${a}`,
        ])
      ).code,
      0,
    );
    const anonPriv = await skopeo([
      'copy',
      '--src-tls-verify=false',
      `docker://${reg.addr}/priv/bb:1`,
      `dir:${join(tmp, 'x')}`,
    ]);
    assert.notEqual(anonPriv.code, 0, 'a private repository is not readable anonymously');
    assert.equal(
      (
        await skopeo([
          'copy',
          '--dest-tls-verify=false',
          '--dest-creds',
          'alice:secret',
          `dir:${a}`,
          `docker://${reg.addr}/pub/bb:1`,
        ])
      ).code,
      0,
    );
    const pulled = await skopeo(['copy', '--src-tls-verify=false', `docker://${reg.addr}/pub/bb:1`, `dir:${b}`]);
    assert.equal(pulled.code, 0, pulled.out);
    sameTree(a, b);
  });
});

describe('registry: TLS when given a certificate', () => {
  test('skopeo pushes and pulls over HTTPS, verifying the certificate', async () => {
    const dir = mkdtempSync('/var/tmp/berth-test-tls-');
    const certs = join(dir, 'certs');
    await run('mkdir', ['-p', certs]);
    await run('openssl', [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-days',
      '1',
      '-subj',
      '/CN=127.0.0.1',
      '-addext',
      'subjectAltName=IP:127.0.0.1',
      '-keyout',
      join(dir, 'key.pem'),
      '-out',
      join(certs, 'ca.crt'),
    ]);
    const reg = await startBerthRegistry(() => [
      '--tls-cert',
      join(certs, 'ca.crt'),
      '--tls-key',
      join(dir, 'key.pem'),
    ]);
    try {
      const push = await skopeo([
        'copy',
        '--dest-cert-dir',
        certs,
        `docker-archive:${FIXTURE}`,
        `docker://${reg.addr}/tls/bb:1`,
      ]);
      assert.equal(push.code, 0, push.out);
      const pull = await skopeo([
        'copy',
        '--src-cert-dir',
        certs,
        `docker://${reg.addr}/tls/bb:1`,
        `dir:${join(dir, 'out')}`,
      ]);
      assert.equal(pull.code, 0, pull.out);
      const unverified = await skopeo(['inspect', `docker://${reg.addr}/tls/bb:1`]);
      assert.notEqual(unverified.code, 0, 'an unknown certificate authority is refused by the client');
      assert.equal(
        await fetch(`http://${reg.addr}/v2/`).then(
          (r) => r.status,
          () => 0,
        ),
        0,
        'no plain HTTP answer',
      );
    } finally {
      await reg.stop();
      await cleanupDir(dir);
    }
  });
});

describe('registry: the docker CLI against berthd, pushing to and pulling from registries', () => {
  let d: Daemon;
  let berthReg: Registry;
  let dist: Registry;
  before(async () => {
    d = await startDaemon();
    berthReg = await startBerthRegistry((dir) => ['--htpasswd', htpasswd(dir, { bob: 'pw-bob' }), '--auth', 'token']);
    dist = await startDistribution({ carol: 'pw-carol' });
  });
  after(async () => {
    await d?.stop();
    await berthReg?.stop();
    await dist?.stop();
  });

  test('berth registry (token auth): login, push, rmi, pull, run', async () => {
    const bad = await d.docker(['login', '-u', 'bob', '--password-stdin', berthReg.addr], {
      input: 'wrong\n',
      allowFail: true,
    });
    assert.notEqual(bad.code, 0, 'a wrong password is refused');
    assert.match(bad.stderr, /unauthorized|invalid username or password/i);
    assert.match(
      (await d.docker(['login', '-u', 'bob', '--password-stdin', berthReg.addr], { input: 'pw-bob\n' })).stdout,
      /Login Succeeded/,
    );
    const ref = `${berthReg.addr}/team/app:v1`;
    await d.docker(['tag', 'busybox', ref]);
    const pushed = await d.docker(['push', ref]);
    assert.match(pushed.stdout, /v1: digest: sha256:[a-f0-9]{64}/);
    await d.docker(['rmi', ref]);
    await d.docker(['rmi', 'busybox']); // the layers stay only if pull brings them back
    const pulled = await d.docker(['pull', ref]);
    assert.match(pulled.stdout, /Status: (Downloaded newer image|Image is up to date)/);
    assert.equal(
      (await d.docker(['run', '--rm', ref, 'echo', 'from berth registry'])).stdout.trim(),
      'from berth registry',
    );
    const digests = JSON.parse((await d.docker(['image', 'inspect', ref])).stdout)[0].RepoDigests as string[];
    assert.ok(digests.some((x) => x.startsWith(`${berthReg.addr}/team/app@sha256:`)));
    await d.docker(['logout', berthReg.addr]);
    const anon = await d.docker(['pull', ref], { allowFail: true, timeoutMs: 20_000 });
    assert.equal(anon.code, 1, 'after logout the private repository is refused (no login prompt)');
    assert.match(anon.stderr, /pull access denied/);
  });

  test('the berth CLI: login (wrong password refused), push, pull, logout; credentials in a docker-compatible config.json', async () => {
    const bad = await d.berth(['login', '-u', 'bob', '--password-stdin', berthReg.addr], {
      input: 'nope\n',
      allowFail: true,
    });
    assert.notEqual(bad.code, 0);
    assert.match(
      (await d.berth(['login', '-u', 'bob', '--password-stdin', berthReg.addr], { input: 'pw-bob\n' })).stdout,
      /Login Succeeded/,
    );
    const cfg = JSON.parse(readFileSync(join(d.env['DOCKER_CONFIG']!, 'config.json'), 'utf8')) as {
      auths: Record<string, { auth: string }>;
    };
    assert.equal(Buffer.from(cfg.auths[berthReg.addr]!.auth, 'base64').toString(), 'bob:pw-bob');
    const ref = `${berthReg.addr}/team/cli:v1`;
    await d.berth(['tag', `${berthReg.addr}/team/app:v1`, ref]);
    assert.match((await d.berth(['push', ref])).stdout, /v1: digest: sha256:/);
    await d.berth(['rmi', ref]);
    assert.match((await d.berth(['pull', ref])).stdout, /Status: /);
    // the docker CLI reads the same credentials
    assert.equal((await d.docker(['pull', ref])).code, 0);
    assert.match((await d.berth(['logout', berthReg.addr])).stdout, /Removing login credentials/);
    assert.notEqual((await d.berth(['pull', ref], { allowFail: true })).code, 0);
  });

  test("Debian's docker-registry (distribution 2.8, htpasswd): login, push, rmi, pull, run; berth pull too", async () => {
    const bad = await d.docker(['login', '-u', 'carol', '--password-stdin', dist.addr], {
      input: 'wrong\n',
      allowFail: true,
    });
    assert.notEqual(bad.code, 0, 'distribution refuses a wrong password, and berthd says so');
    assert.match(
      (await d.docker(['login', '-u', 'carol', '--password-stdin', dist.addr], { input: 'pw-carol\n' })).stdout,
      /Login Succeeded/,
    );
    const ref = `${dist.addr}/lib/bb:dist`;
    await d.docker(['tag', `${berthReg.addr}/team/app:v1`, ref]);
    await d.docker(['push', ref]);
    await d.docker(['rmi', ref]);
    await d.docker(['pull', ref]);
    assert.equal(
      (await d.docker(['run', '--rm', ref, 'echo', 'from distribution'])).stdout.trim(),
      'from distribution',
    );
    await d.docker(['rmi', ref]);
    await d.berth(['pull', ref]);
    assert.equal((await d.berth(['run', '--rm', ref, 'echo', 'berth pulled'])).stdout.trim(), 'berth pulled');
    const missing = await d.docker(['pull', `${dist.addr}/lib/bb:nope`], { allowFail: true });
    assert.notEqual(missing.code, 0);
    assert.match(missing.stderr, /not found|manifest unknown/);
  });
});

describe(
  "registry: Docker's own daemon pulls from berth registry",
  { skip: !existsSync('/usr/sbin/dockerd') && !existsSync('/usr/bin/dockerd') },
  () => {
    test('dockerd pulls and runs an image pushed by berthd', async () => {
      const d = await startDaemon();
      const reg = await startBerthRegistry();
      const dir = mkdtempSync('/var/tmp/berth-test-dockerd-');
      const sock = join(dir, 'docker.sock');
      const dockerd = (await import('node:child_process')).spawn(
        'dockerd',
        [
          '--data-root',
          join(dir, 'data'),
          '--exec-root',
          join(dir, 'exec'),
          '-H',
          `unix://${sock}`,
          '--pidfile',
          join(dir, 'pid'),
          '--bridge=none',
          '--iptables=false',
          '--ip6tables=false',
          '--containerd-namespace',
          `berthtest${process.pid}`,
        ],
        { stdio: 'ignore' },
      );
      try {
        const ref = `${reg.addr}/pub/hello:1`;
        await d.docker(['tag', 'busybox', ref]);
        await d.docker(['push', ref]);
        const env = { ...process.env, DOCKER_HOST: `unix://${sock}`, DOCKER_CONFIG: join(dir, 'cfg') };
        for (let i = 0; i < 100 && !existsSync(sock); i++) await new Promise((r) => setTimeout(r, 100));
        const docker = (args: string[]) => run('docker', args, { env });
        await docker(['pull', ref]);
        const out = await docker(['run', '--rm', '--network', 'none', ref, 'echo', 'dockerd ran it']);
        assert.equal(out.stdout.trim(), 'dockerd ran it');
      } finally {
        dockerd.kill('SIGTERM');
        await new Promise((r) => dockerd.once('exit', r));
        await run('pkill', ['-f', `containerd.*${dir}`]).catch(() => undefined);
        await cleanupDir(dir);
        await reg.stop();
        await d.stop();
      }
    });
  },
);
