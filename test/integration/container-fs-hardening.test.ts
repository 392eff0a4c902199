/**
 * Issue 14, classes 1, 4 (cp/export half) and 5: a container's files are reached only inside its
 * root. A host canary directory (absolute host path, named from inside the container by symlinks
 * and archive entries) must stay exactly as it was, and its secret must never come back.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { spawn } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  statSync,
  writeFileSync,
  linkSync,
  symlinkSync,
} from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { randomBytes } from 'node:crypto';
import * as tar from 'tar-stream';
import { REPO, startDaemon, type Daemon } from './harness.js';

let d: Daemon;
let canary: string;
let secret: string;

interface Entry {
  name: string;
  type?: 'file' | 'directory' | 'symlink' | 'link' | 'character-device' | 'block-device' | 'fifo';
  body?: string;
  linkname?: string;
  devmajor?: number;
  devminor?: number;
}

async function tarOf(entries: Entry[]): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  const done = new Promise<void>((resolve) => {
    (pack as unknown as NodeJS.ReadableStream).on('data', (c: Buffer) => void chunks.push(c));
    (pack as unknown as NodeJS.ReadableStream).on('end', () => resolve());
  });
  for (const e of entries) {
    const type = e.type ?? 'file';
    await new Promise<void>((resolve, reject) =>
      pack.entry(
        {
          name: e.name,
          type,
          mode: type === 'directory' ? 0o755 : 0o644,
          ...(e.linkname !== undefined ? { linkname: e.linkname } : {}),
          ...(e.devmajor !== undefined ? { devmajor: e.devmajor, devminor: e.devminor ?? 0 } : {}),
        },
        type === 'file' ? (e.body ?? '') : '',
        (err) => (err ? reject(err) : resolve()),
      ),
    );
  }
  pack.finalize();
  await done;
  return Buffer.concat(chunks);
}

function request(
  method: string,
  path: string,
  body?: Buffer,
): Promise<{ status: number; body: Buffer; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { socketPath: d.sock, path, method, headers: body ? { 'Content-Type': 'application/x-tar' } : {} },
      (r) => {
        const chunks: Buffer[] = [];
        r.on('data', (c: Buffer) => chunks.push(c));
        r.on('end', () => resolve({ status: r.statusCode ?? 0, body: Buffer.concat(chunks), headers: r.headers }));
        r.on('error', reject); // a cut stream
        r.on('aborted', () => resolve({ status: -1, body: Buffer.concat(chunks), headers: r.headers }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

const put = (ctr: string, path: string, body: Buffer) =>
  request('PUT', `/containers/${ctr}/archive?path=${encodeURIComponent(path)}`, body);
const get = (ctr: string, path: string) =>
  request('GET', `/containers/${ctr}/archive?path=${encodeURIComponent(path)}`);

/** The canary must be exactly as made: one file, its content, one link. */
function assertCanaryUntouched(what: string): void {
  assert.deepEqual(readdirSync(canary).sort(), ['secret.txt'], `${what}: nothing was written into the host canary dir`);
  assert.equal(readFileSync(join(canary, 'secret.txt'), 'utf8'), secret, `${what}: the canary's content is unchanged`);
  assert.equal(statSync(join(canary, 'secret.txt')).nlink, 1, `${what}: no hard link to the canary was made`);
}

async function exec(ctr: string, script: string): Promise<string> {
  return (await d.docker(['exec', ctr, 'sh', '-c', script])).stdout;
}

/** The names and bodies of a tar. */
async function entriesOf(
  buf: Buffer,
): Promise<Array<{ name: string; type: string; size: number; body: Buffer; linkname: string }>> {
  const ex = tar.extract();
  const out: Array<{ name: string; type: string; size: number; body: Buffer; linkname: string }> = [];
  const done = new Promise<void>((resolve, reject) => {
    ex.on('entry', (h, s, next) => {
      const parts: Buffer[] = [];
      s.on('data', (c: unknown) => void parts.push(c as Buffer));
      s.on('end', () => {
        out.push({
          name: h.name,
          type: h.type ?? 'file',
          size: h.size ?? 0,
          body: Buffer.concat(parts),
          linkname: h.linkname ?? '',
        });
        next();
      });
    });
    ex.on('finish', () => resolve());
    ex.on('error', reject);
  });
  ex.end(buf);
  await done;
  return out;
}

before(async () => {
  d = await startDaemon();
  canary = join(d.dir, 'canary');
  mkdirSync(canary);
  secret = `HOST-SECRET-${randomBytes(8).toString('hex')}`;
  writeFileSync(join(canary, 'secret.txt'), secret);
});

after(async () => {
  await d?.stop();
});

test('adversarial cp-in corpus: each archive is refused with a 4xx or lands inside the root', async () => {
  await d.docker(['run', '-d', '--name', 'corpus', 'busybox', 'sleep', '3600']);
  await exec(
    'corpus',
    `mkdir -p /t /t/ro; ln -s ${canary} /t/hostdir; ln -s ${d.dir}/nowhere /t/nowhere; ln -s ${canary}/secret.txt /t/hostfile; ln -s / /t/slash`,
  );
  const rel = canary.replace(/^\//, '');
  const ups = '../'.repeat(12);
  const cases: Array<{
    what: string;
    dest?: string;
    tar: () => Promise<Buffer>;
    expect: 'refused' | 'ok';
    check?: () => Promise<void>;
  }> = [
    { what: '.. entry', tar: () => tarOf([{ name: '../escape.txt', body: 'x' }]), expect: 'refused' },
    {
      what: 'deep .. to the host canary',
      tar: () => tarOf([{ name: `${ups}${rel}/pwned`, body: 'x' }]),
      expect: 'refused',
    },
    { what: 'a/../../ climbing', tar: () => tarOf([{ name: 'a/../../b', body: 'x' }]), expect: 'refused' },
    {
      what: 'absolute name (taken below the destination)',
      tar: () => tarOf([{ name: `/${rel}/abs.txt`, body: 'abs' }]),
      expect: 'ok',
      check: async () => assert.equal(await exec('corpus', `cat /t/${rel}/abs.txt`), 'abs'),
    },
    {
      what: 'symlink to the host canary, then a file through it',
      tar: () =>
        tarOf([
          { name: 'l1', type: 'symlink', linkname: canary },
          { name: 'l1/pwned', body: 'in' },
        ]),
      expect: 'ok',
      check: async () =>
        assert.equal(
          await exec('corpus', `cat ${canary}/pwned`),
          'in',
          'the file went to the container path of the same name',
        ),
    },
    {
      what: 'relative symlink climbing out, then a file through it',
      tar: () =>
        tarOf([
          { name: 'l2', type: 'symlink', linkname: `${ups}${rel}` },
          { name: 'l2/pwned2', body: 'in' },
        ]),
      expect: 'ok',
    },
    {
      what: 'symlink, dir through it, file below',
      tar: () =>
        tarOf([
          { name: 'l3', type: 'symlink', linkname: '/' },
          { name: `l3/${rel}/`, type: 'directory' },
          { name: `l3/${rel}/pwned3`, body: 'x' },
        ]),
      expect: 'ok',
    },
    {
      what: 'a file through a planted symlink to the host dir (container-made)',
      tar: () => tarOf([{ name: 'hostdir/pwned4', body: 'x' }]),
      expect: 'ok',
    },
    {
      what: 'replace a symlink to a host file (no write through)',
      tar: () => tarOf([{ name: 'hostfile', body: 'replaced' }]),
      expect: 'ok',
      check: async () =>
        assert.equal(
          await exec('corpus', 'cat /t/hostfile; test -L /t/hostfile && echo LINK || echo FILE'),
          'replacedFILE\n',
        ),
    },
    {
      what: 'destination is a symlink to a host dir the container lacks',
      dest: '/t/nowhere',
      tar: () => tarOf([{ name: 'x', body: 'x' }]),
      expect: 'refused',
    },
    {
      what: 'destination is a symlink to the host canary dir',
      dest: '/t/hostdir',
      tar: () => tarOf([{ name: 'x', body: 'x' }]),
      expect: 'ok',
      check: async () =>
        assert.equal(
          await exec('corpus', `cat ${canary}/x`),
          'x',
          "it is the container's directory of that name (earlier cases made it)",
        ),
    },
    {
      what: 'destination through /t/slash',
      dest: '/t/slash/t',
      tar: () => tarOf([{ name: 'via-slash', body: 'v' }]),
      expect: 'ok',
      check: async () => assert.equal(await exec('corpus', 'cat /t/via-slash'), 'v'),
    },
    {
      what: 'hard link out of the root (..)',
      tar: () => tarOf([{ name: 'h1', type: 'link', linkname: `${ups}${rel}/secret.txt` }]),
      expect: 'refused',
    },
    {
      what: 'hard link to the host canary by absolute path',
      tar: () => tarOf([{ name: 'h2', type: 'link', linkname: `${canary}/secret.txt` }]),
      expect: 'refused',
    },
    {
      what: 'hard link through a symlink to the host dir',
      tar: () => tarOf([{ name: 'h3', type: 'link', linkname: 'hostdir/secret.txt' }]),
      expect: 'refused',
    },
    {
      what: 'hard link to a directory',
      tar: () =>
        tarOf([
          { name: 'dd/', type: 'directory' },
          { name: 'h4', type: 'link', linkname: 'dd' },
        ]),
      expect: 'refused',
    },
    {
      what: 'character device',
      tar: () => tarOf([{ name: 'mem', type: 'character-device', devmajor: 1, devminor: 1 }]),
      expect: 'refused',
    },
    {
      what: 'block device',
      tar: () => tarOf([{ name: 'sda', type: 'block-device', devmajor: 8, devminor: 0 }]),
      expect: 'refused',
    },
    {
      what: 'fifo',
      tar: () => tarOf([{ name: 'pipe', type: 'fifo' }]),
      expect: 'ok',
      check: async () => assert.equal(await exec('corpus', 'test -p /t/pipe && echo fifo'), 'fifo\n'),
    },
    {
      what: 'name longer than PATH_MAX',
      tar: () => tarOf([{ name: 'a/'.repeat(2100) + 'f', body: 'x' }]),
      expect: 'refused',
    },
    {
      what: 'component longer than NAME_MAX',
      tar: () => tarOf([{ name: 'n'.repeat(300), body: 'x' }]),
      expect: 'refused',
    },
    {
      what: 'deep but legal path',
      tar: () => tarOf([{ name: 'd/'.repeat(200) + 'deep.txt', body: 'deep' }]),
      expect: 'ok',
    },
    {
      what: 'symlink loop then a file below it',
      tar: () =>
        tarOf([
          { name: 'loop', type: 'symlink', linkname: 'loop' },
          { name: 'loop/x', body: 'x' },
        ]),
      expect: 'refused',
    },
    {
      what: 'good entries then a bad one: nothing is written',
      tar: () =>
        tarOf([
          { name: 'before-bad.txt', body: 'x' },
          { name: '../bad', body: 'x' },
        ]),
      expect: 'refused',
      check: async () => assert.equal(await exec('corpus', 'test -e /t/before-bad.txt && echo yes || echo no'), 'no\n'),
    },
    {
      what: 'gzip archive with ..',
      tar: async () => gzipSync(await tarOf([{ name: '../gz', body: 'x' }])),
      expect: 'refused',
    },
    { what: 'not a tar', tar: async () => randomBytes(2048), expect: 'refused' },
    {
      what: 'truncated tar',
      tar: async () => (await tarOf([{ name: 'big', body: 'y'.repeat(5000) }])).subarray(0, 1500),
      expect: 'refused',
    },
    {
      what: '5000 entries',
      tar: () => tarOf(Array.from({ length: 5000 }, (_, i) => ({ name: `many/f${i}`, body: String(i) }))),
      expect: 'ok',
      check: async () => assert.equal((await exec('corpus', 'ls /t/many | wc -l')).trim(), '5000'),
    },
  ];
  let refused = 0;
  let handled = 0;
  for (const c of cases) {
    const r = await put('corpus', c.dest ?? '/t', await c.tar());
    if (c.expect === 'refused') {
      assert.ok(
        r.status >= 400 && r.status < 500,
        `${c.what}: refused with a 4xx (got ${r.status} ${r.body.toString()})`,
      );
      refused++;
    } else {
      assert.equal(r.status, 200, `${c.what}: accepted (got ${r.status} ${r.body.toString()})`);
      handled++;
    }
    await c.check?.();
    assertCanaryUntouched(c.what);
  }
  // reading through the planted links gives the container's files, never the host's
  for (const p of [
    '/t/hostfile',
    '/t/hostdir/secret.txt',
    `/t/slash/${rel}/secret.txt`,
    `/t/hostdir/../../${rel}/secret.txt`,
  ]) {
    const r = await get('corpus', p);
    assert.ok(!r.body.includes(secret), `GET ${p} never returns the host's secret`);
    assert.ok(r.status === 404 || r.status === 200, `GET ${p}: ${r.status}`);
  }
  console.log(
    `# corpus: ${cases.length} archives tried, ${refused} refused with 4xx, ${handled} handled inside the root`,
  );
  const ping = await request('GET', '/_ping');
  assert.equal(ping.status, 200, 'the daemon is up');
});

test('cp race: a container swapping a path component with a symlink never gets berthd out of its root', async () => {
  // /w/d is a directory, then (for a moment) a symlink to the host canary dir, in a loop
  await d.docker([
    'run',
    '-d',
    '--name',
    'racer',
    'busybox',
    'sh',
    '-c',
    `mkdir -p /w/d; echo container > /w/d/secret.txt; ` +
      `while :; do mv -T /w/d /w/real; ln -s ${canary} /w/d; rm /w/d; mv -T /w/real /w/d; done`,
  ]);
  const rounds = Number(process.env['BERTH_RACE_ROUNDS'] ?? 150);
  const fds = () => readdirSync(`/proc/${d.proc.pid}/fd`).length;
  const fdsBefore = fds();
  let ok = 0;
  let failed = 0;
  const body = await tarOf([{ name: 'pwned.txt', body: 'from cp' }]);
  const one = async (i: number) => {
    const [w, r] = await Promise.all([
      put('racer', i % 2 ? '/w/d' : '/w/d/', body),
      get('racer', i % 3 ? '/w/d/secret.txt' : '/w/d/'),
    ]);
    assert.ok(!r.body.includes(secret), `round ${i}: the host's secret was read`);
    for (const s of [w.status, r.status]) {
      assert.ok(s < 500, `round ${i}: no 5xx (got ${s})`);
      if (s === 200) ok++;
      else failed++;
    }
  };
  for (let i = 0; i < rounds; i += 3) await Promise.all([one(i), one(i + 1), one(i + 2)]);
  assertCanaryUntouched('race');
  assert.ok(fds() - fdsBefore < 16, `berthd holds no fds from the ${rounds * 2} requests (${fdsBefore} -> ${fds()})`);
  // the docker CLI too, a few times each way
  const tmp = join(d.dir, 'race-cli');
  mkdirSync(tmp);
  writeFileSync(join(tmp, 'pwned-cli.txt'), 'cli');
  for (let i = 0; i < 10; i++) {
    await d.docker(['cp', join(tmp, 'pwned-cli.txt'), 'racer:/w/d/'], { allowFail: true });
    await d.docker(['cp', 'racer:/w/d/secret.txt', join(tmp, `out-${i}.txt`)], { allowFail: true });
    if (existsSync(join(tmp, `out-${i}.txt`)))
      assert.ok(!readFileSync(join(tmp, `out-${i}.txt`), 'utf8').includes(secret));
  }
  assertCanaryUntouched('race (docker cp)');
  console.log(
    `# race: ${rounds} rounds of PUT+GET, ${ok} succeeded, ${failed} answered 4xx while the path was a symlink; canary untouched`,
  );
  await d.docker(['rm', '-f', 'racer']);
});

test('cp race with renameat2(RENAME_EXCHANGE) in a tight loop (the CVE-2018-15664 probe)', async () => {
  // The container's /x/e is a directory and /x/f a symlink to the host canary; a process swaps the
  // two names atomically as fast as it can, on the very overlay the container runs on.
  await d.docker([
    'run',
    '-d',
    '--name',
    'exchanger',
    'busybox',
    'sh',
    '-c',
    `mkdir -p /x/e; echo container > /x/e/secret.txt; ln -s ${canary} /x/f; exec sleep 3600`,
  ]);
  await d.docker(['exec', 'exchanger', 'sh', '-c', 'while ! test -L /x/f; do sleep 0.05; done']);
  const id = (await d.docker(['inspect', '-f', '{{.Id}}', 'exchanger'])).stdout.trim();
  // the host's mount of the rootfs; with --rootfs-mountns there is none: the container's own view of the same overlay
  const onHost = join(d.root, 'containers', id, 'rootfs', 'x');
  const pid = (await d.docker(['inspect', '-f', '{{.State.Pid}}', 'exchanger'])).stdout.trim();
  const x = existsSync(onHost) ? onHost : `/proc/${pid}/root/x`;
  const script = `const k = require(${JSON.stringify(join(REPO, 'node_modules', 'koffi'))});
const rn = k.load('libc.so.6').func('int renameat2(int, const char *, int, const char *, unsigned int)');
const a = ${JSON.stringify(join(x, 'e'))}, b = ${JSON.stringify(join(x, 'f'))};
let n = 0; const end = Date.now() + 120000;
for (;;) { for (let i = 0; i < 1000; i++) { if (rn(-100, a, -100, b, 2) !== 0) process.exit(3); n++; } if (Date.now() > end) break; }`;
  const swapper = spawn(process.execPath, ['-e', script], { stdio: 'ignore' });
  const rounds = Number(process.env['BERTH_RACE_ROUNDS'] ?? 150);
  let ok = 0;
  try {
    const body = await tarOf([
      { name: 'pwned.txt', body: 'from cp' },
      { name: 'sub/pwned2.txt', body: 'from cp' },
    ]);
    for (let i = 0; i < rounds; i++) {
      const [w, r, s] = await Promise.all([
        put('exchanger', '/x/e', body),
        get('exchanger', '/x/e/secret.txt'),
        get('exchanger', '/x/e/'),
      ]);
      for (const res of [w, r, s]) {
        assert.ok(res.status < 500, `round ${i}: no 5xx (got ${res.status} ${res.body.subarray(0, 200).toString()})`);
        assert.ok(!res.body.includes(secret), `round ${i}: the host's secret was read`);
        if (res.status === 200) ok++;
      }
      if (i % 10 === 0) {
        // the other readers of a running container's tree, under the same race
        const [head, changes, exp] = await Promise.all([
          request('HEAD', `/containers/exchanger/archive?path=${encodeURIComponent('/x/e/secret.txt')}`),
          request('GET', '/containers/exchanger/changes'),
          request('GET', '/containers/exchanger/export'),
        ]);
        assert.ok(
          head.status < 500 && changes.status === 200 && exp.status === 200,
          `round ${i}: ${head.status} ${changes.status} ${exp.status}`,
        );
        assert.ok(!exp.body.includes(secret), `round ${i}: export carried the host's secret`);
      }
      assertCanaryUntouched(`exchange round ${i}`);
    }
  } finally {
    swapper.kill('SIGKILL');
  }
  assert.equal(swapper.exitCode ?? 0, 0, 'the swapper ran the whole time');
  console.log(
    `# exchange race: ${rounds} rounds of PUT + 2 GET while renameat2 swapped /x/e and /x/f, ${ok} answered 200; canary untouched`,
  );
  await d.docker(['rm', '-f', 'exchanger']);
});

test('hard links in docker cp, both ways', async () => {
  await d.docker([
    'run',
    '-d',
    '--name',
    'links',
    'busybox',
    'sh',
    '-c',
    'mkdir /h; echo linked > /h/a; ln /h/a /h/b; mkdir /h/sub; ln /h/a /h/sub/c; exec sleep 3600',
  ]);
  await d.docker(['exec', 'links', 'sh', '-c', 'while ! test -e /h/sub/c; do sleep 0.05; done']);
  const tmp = join(d.dir, 'links');
  mkdirSync(tmp);
  // out: the archive carries a link entry, the CLI makes a link
  await d.docker(['cp', 'links:/h', join(tmp, 'out')]);
  const ino = (p: string) => statSync(join(tmp, 'out', p)).ino;
  assert.equal(readFileSync(join(tmp, 'out', 'b'), 'utf8'), 'linked\n');
  assert.equal(ino('a'), ino('b'));
  assert.equal(ino('a'), ino('sub/c'));
  const raw = await entriesOf((await get('links', '/h')).body);
  assert.ok(
    raw.some((e) => e.type === 'link'),
    'GET archive holds hard link entries',
  );
  // in: a host dir with links
  mkdirSync(join(tmp, 'in'));
  writeFileSync(join(tmp, 'in', 'x'), 'host linked\n');
  linkSync(join(tmp, 'in', 'x'), join(tmp, 'in', 'y'));
  await d.docker(['cp', join(tmp, 'in'), 'links:/copied']);
  const inodes = (await exec('links', 'stat -c %i /copied/x /copied/y')).trim().split('\n');
  assert.equal(inodes.length, 2);
  assert.equal(inodes[0], inodes[1], 'copied in as one inode');
  assert.equal(await exec('links', 'cat /copied/y'), 'host linked\n');
  // in, by the API: a link to a file the container already has, and a link made before its target is refused cleanly
  const r1 = await put('links', '/h', await tarOf([{ name: 'd', type: 'link', linkname: 'a' }]));
  assert.equal(r1.status, 200, r1.body.toString());
  assert.equal((await exec('links', 'stat -c %h /h/a')).trim(), '4');
  const r2 = await put(
    'links',
    '/h',
    await tarOf([
      { name: 'e', type: 'link', linkname: 'not-yet' },
      { name: 'not-yet', body: 'late' },
    ]),
  );
  assert.equal(r2.status, 400, 'a link to a missing file is a 400');
  // a link across mounts (rootfs -> volume) is a 400, not a 500
  await d.docker([
    'run',
    '-d',
    '--name',
    'linkvol',
    '-v',
    'linkvol:/vol',
    'busybox',
    'sh',
    '-c',
    'echo f > /f; exec sleep 3600',
  ]);
  const r3 = await put('linkvol', '/', await tarOf([{ name: 'vol/x', type: 'link', linkname: 'f' }]));
  assert.equal(r3.status, 400, `across mounts: ${r3.status} ${r3.body.toString()}`);
  assertCanaryUntouched('hard links');
});

test('cp reaches volumes and binds as the container sees them; read-only mounts refuse writes', async () => {
  const bind = join(d.dir, 'bind');
  mkdirSync(bind);
  writeFileSync(join(bind, 'b.txt'), 'bound');
  await d.docker([
    'create',
    '--name',
    'vols',
    '-v',
    'cpvol:/data',
    '-v',
    `${bind}:/bnd:ro`,
    'busybox',
    'sleep',
    '3600',
  ]);
  const tmp = join(d.dir, 'vols');
  mkdirSync(tmp);
  writeFileSync(join(tmp, 'v.txt'), 'into the volume');
  await d.docker(['cp', join(tmp, 'v.txt'), 'vols:/data/v.txt']); // a created (never started) container
  const seen = await d.docker(['run', '--rm', '-v', 'cpvol:/data', 'busybox', 'cat', '/data/v.txt']);
  assert.equal(seen.stdout, 'into the volume');
  await d.docker(['cp', 'vols:/bnd/b.txt', join(tmp, 'b.txt')]);
  assert.equal(readFileSync(join(tmp, 'b.txt'), 'utf8'), 'bound');
  const ro = await put('vols', '/bnd', await tarOf([{ name: 'no.txt', body: 'x' }]));
  assert.ok(ro.status >= 400 && ro.status < 500, `read-only bind: ${ro.status}`);
  assert.ok(!existsSync(join(bind, 'no.txt')));
  // the volume and the bind sit on the same host filesystem: still no link from one into the other
  const cross = await put('vols', '/', await tarOf([{ name: 'data/evil', type: 'link', linkname: 'bnd/b.txt' }]));
  assert.equal(
    cross.status,
    400,
    `a hard link from a volume to a read-only bind: ${cross.status} ${cross.body.toString()}`,
  );
  assert.equal(statSync(join(bind, 'b.txt')).nlink, 1);
  await d.docker(['start', 'vols']);
  const hosts = await d.docker(['cp', 'vols:/etc/hosts', '-']);
  assert.match(hosts.stdout, /localhost/, "/etc/hosts is the container's hosts file");
  // a directory holding mounts: the walk goes into each (the hosts file, the volume)
  await d.docker(['cp', 'vols:/etc', join(tmp, 'etc')]);
  assert.match(readFileSync(join(tmp, 'etc', 'hosts'), 'utf8'), /localhost/);
  const whole = await entriesOf((await get('vols', '/')).body);
  assert.ok(
    whole.some((e) => e.name === 'data/v.txt' || e.name.endsWith('/data/v.txt')),
    'GET / goes into the volume',
  );
  assert.ok(
    whole.some((e) => e.name.endsWith('bnd/b.txt')),
    'and into the bind',
  );
});

test('a file that grows and shrinks during cp and export: the daemon stays up, the tar holds what its headers say', async () => {
  await d.docker([
    'run',
    '-d',
    '--name',
    'grower',
    'busybox',
    'sh',
    '-c',
    'while :; do dd if=/dev/zero of=/g bs=65536 count=64 2>/dev/null; dd if=/dev/zero bs=65536 count=64 >> /g 2>/dev/null; : > /g; done',
  ]);
  await d.docker(['exec', 'grower', 'sh', '-c', 'while ! test -e /g; do sleep 0.05; done']);
  let tars = 0;
  let cut = 0;
  for (let i = 0; i < 30; i++) {
    const r = await get('grower', '/g');
    if (r.status !== 200) {
      cut++;
      continue;
    }
    const entries = await entriesOf(r.body);
    assert.equal(entries.length, 1);
    assert.equal(entries[0]!.body.length, entries[0]!.size, 'the body is exactly the header size');
    tars++;
  }
  for (let i = 0; i < 4; i++) {
    const r = await request('GET', '/containers/grower/export');
    assert.equal(r.status, 200);
    const entries = await entriesOf(r.body);
    const g = entries.find((e) => e.name === 'g');
    assert.ok(g, 'export holds /g');
    assert.equal(g.body.length, g.size);
    tars++;
  }
  // clients that go away in the middle of an export and of a cp
  for (const path of ['/containers/grower/export', '/containers/grower/archive?path=%2F']) {
    await new Promise<void>((resolve, reject) => {
      const req = http.request({ socketPath: d.sock, path, method: 'GET' }, (r) => {
        r.once('data', () => {
          req.destroy();
          resolve();
        });
        r.on('error', () => undefined);
      });
      req.on('error', (e) => ((e as { code?: string }).code === 'ECONNRESET' ? undefined : reject(e)));
      req.end();
    });
  }
  const ping = await request('GET', '/_ping');
  assert.equal(ping.status, 200, 'the daemon is up');
  const after = await d.docker(['exec', 'grower', 'echo', 'alive']);
  assert.equal(after.stdout, 'alive\n');
  const tmp = join(d.dir, 'grow');
  mkdirSync(tmp);
  await d.docker(['cp', 'grower:/etc/passwd', join(tmp, 'passwd')]);
  assert.match(readFileSync(join(tmp, 'passwd'), 'utf8'), /root/, 'the next request works');
  console.log(`# growing file: ${tars} complete tars, ${cut} cut`);
  await d.docker(['rm', '-f', 'grower']);
});

test('diff, commit and export of a container with a swapped-in symlink stay in the root', async () => {
  await d.docker([
    'run',
    '--name',
    'swapped',
    'busybox',
    'sh',
    '-c',
    `mkdir -p /s; ln -s ${canary} /s/link; ln -s / /s/root; echo mine > /s/file`,
  ]);
  const diff = await d.docker(['diff', 'swapped']);
  assert.match(diff.stdout, /A \/s\/link/);
  assert.ok(!diff.stdout.includes('secret.txt'), 'diff does not walk through a symlink');
  await d.docker(['commit', 'swapped', 'swapped:v1']);
  const exported = await request('GET', '/containers/swapped/export');
  const entries = await entriesOf(exported.body);
  assert.ok(entries.some((e) => e.name === 's/link' && e.type === 'symlink' && e.linkname === canary));
  assert.ok(!entries.some((e) => e.body.includes(secret)), "export holds no host file's content");
  const ls = await d.docker(['run', '--rm', 'swapped:v1', 'sh', '-c', 'readlink /s/link; cat /s/file']);
  assert.equal(ls.stdout, `${canary}\nmine\n`);
  assertCanaryUntouched('diff/commit/export');
});

test('build: a RUN that swaps its mount point for a host symlink, and COPY through an image symlink, stay in the build', async () => {
  // the host side: an empty dir and an empty file, what the mount point clean-up would remove
  const host = join(d.dir, 'build-canary');
  mkdirSync(join(host, 'x'), { recursive: true });
  writeFileSync(join(host, 'y'), '');
  const ctx = join(d.dir, 'build-ctx');
  mkdirSync(ctx);
  writeFileSync(join(ctx, 'f.txt'), 'f');
  writeFileSync(
    join(ctx, 'Dockerfile'),
    [
      'FROM busybox',
      `RUN --mount=type=cache,target=/m/x mv /m /m2 && ln -s ${host} /m`,
      `RUN --mount=type=cache,target=/n/y mv /n /n2 && ln -s ${host} /n`,
      `RUN ln -s ${canary} /c`,
      'COPY f.txt /c/sub/f.txt',
      '',
    ].join('\n'),
  );
  const r = await d.docker(['build', '-q', '-t', 'mount-swap', ctx], { allowFail: true });
  assert.ok(existsSync(join(host, 'x')), 'the host directory named through the symlink is still there');
  assert.ok(existsSync(join(host, 'y')), 'the host file named through the symlink is still there');
  assertCanaryUntouched('build');
  if (r.code === 0) {
    const out = await d.docker(['run', '--rm', 'mount-swap', 'sh', '-c', `readlink /m; cat ${canary}/sub/f.txt`]);
    assert.equal(out.stdout, `${host}\nf`);
  }
});

test('build: symlinks in the context and in a stage are followed inside their own root only', async () => {
  const ctx = join(d.dir, 'ctxlink');
  mkdirSync(ctx);
  symlinkSync(canary, join(ctx, 'hostdir'));
  symlinkSync(join(canary, 'secret.txt'), join(ctx, 'hostfile'));
  for (const [src, what] of [
    ['hostdir/secret.txt', 'through a dir link'],
    ['hostfile', 'a file link'],
    ['hostdir/', 'a dir link'],
  ] as const) {
    writeFileSync(join(ctx, 'Dockerfile'), `FROM busybox\nCOPY ${src} /got\n`);
    const r = await d.docker(['build', '-q', '-t', 'ctxlink', ctx], { allowFail: true });
    if (r.code === 0) {
      const out = await d.docker(['run', '--rm', 'ctxlink', 'sh', '-c', 'cat /got /got/* 2>/dev/null; true']);
      assert.ok(!out.stdout.includes(secret), `COPY ${src} (${what}) copied the host's secret`);
    }
  }
  writeFileSync(
    join(ctx, 'Dockerfile'),
    `FROM busybox AS s\nRUN ln -s ${canary} /l\nFROM busybox\nCOPY --from=s /l/secret.txt /got\n`,
  );
  const r = await d.docker(['build', '-q', '-t', 'stagelink', ctx], { allowFail: true });
  assert.notEqual(r.code, 0, 'COPY --from through a link to a host path finds nothing');
  assertCanaryUntouched('build context links');
});

test('volume copy-up reads the image inside its root: symlinks in the image never point it at the host', async () => {
  const ctx = join(d.dir, 'copyup-ctx');
  mkdirSync(ctx);
  writeFileSync(
    join(ctx, 'Dockerfile'),
    [
      'FROM busybox',
      `RUN mkdir -p /d ${canary} && echo hi > /d/f && echo image > ${canary}/inside && ln -s ${canary} /d/link && ln -s ${canary} /v`,
      'VOLUME /d',
      'VOLUME /v',
      '',
    ].join('\n'),
  );
  await d.docker(['build', '-q', '-t', 'copyup', ctx]);
  const out = await d.docker([
    'run',
    '--rm',
    '-v',
    'cu-d:/d',
    '-v',
    'cu-v:/v',
    'copyup',
    'sh',
    '-c',
    'cat /d/f; readlink /d/link; ls -A /v',
  ]);
  assert.equal(
    out.stdout,
    `hi\n${canary}\ninside\n`,
    "the volumes got the image's dirs (links as links; /v's link followed inside the image)",
  );
  const vols = join(d.root, 'volumes');
  assert.ok(
    !existsSync(join(vols, 'cu-v', '_data', 'secret.txt')),
    "the host canary's files were not copied into the volume",
  );
  assertCanaryUntouched('copy-up');
});
