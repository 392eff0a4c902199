/**
 * Issues #6 and #13: checkpoint and restore with CRIU, under the default runtime (scripts/crun.sh's
 * crun, built with CRIU) and under runc, with the berth CLI and the docker CLI; export on one
 * daemon and import on another; clones; live migration between two daemons (separate roots and
 * sockets) with rollback when it fails; with --tcp-established between daemons in their own
 * network namespaces (hosts), a client's connection surviving the move. Then CRIU under a
 * deadline: a CRIU made to hang (a wrapper given as --criu) never leaves an application frozen.
 * Nothing is skipped: a host whose CRIU probe fails fails these tests (the CI machine must checkpoint).
 */
import { before, after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { execFile, spawn, spawnSync } from 'node:child_process';
import { promisify } from 'node:util';
import net from 'node:net';
import { join } from 'node:path';
import { startDaemon, eventually, type Daemon } from './harness.js';

const run = promisify(execFile);

/** A shell loop counting in memory (its variable), printing each number. */
/**
 * The counter's last number in /tmp/n. The shell truncates the file before it writes the next
 * number, so a read can land in between and see it empty: read again (each exec takes a while).
 */
async function counterOf(d: Daemon, ctr: string): Promise<number> {
  for (let i = 0; ; i++) {
    const text = (await d.docker(['exec', ctr, 'cat', '/tmp/n'])).stdout.trim();
    if (text || i >= 20) return Number(text);
  }
}

const COUNTER = ['busybox', 'sh', '-c', 'i=0; while true; do i=$((i+1)); echo $i; echo $i > /tmp/n; sleep 0.1; done'];

interface CheckpointInfo {
  CheckpointProbe: string;
  CheckpointRuntimes: string[];
  CheckpointReason: string;
}

/** `info` once the daemon's CRIU probe has answered. */
async function probed(d: Daemon): Promise<CheckpointInfo> {
  return eventually(
    async () => {
      const info = (await d.api('GET', '/info')).body as CheckpointInfo;
      return info.CheckpointProbe === 'pending' ? undefined : info;
    },
    60_000,
    'the CRIU probe',
  );
}

describe('checkpoint, restore, clone, migrate', () => {
  let a: Daemon;
  let b: Daemon;
  before(async () => {
    a = await startDaemon();
    b = await startDaemon();
    const info = await probed(a);
    assert.equal(info.CheckpointProbe, 'ok', `CRIU cannot checkpoint on this host: ${info.CheckpointReason}`);
    assert.deepEqual(
      [...info.CheckpointRuntimes].sort(),
      ['crun', 'runc'],
      'both runtimes checkpoint (scripts/crun.sh builds crun with CRIU)',
    );
  });
  after(async () => {
    await a?.stop();
    await b?.stop();
  });
  const numbers = async (d: Daemon, ctr: string) =>
    (await d.docker(['logs', ctr])).stdout.split('\n').filter(Boolean).map(Number);
  const current = (d: Daemon, ctr: string) => counterOf(d, ctr);

  test('a counter checkpointed and restored continues from its last number (berth CLI)', async () => {
    await a.berth(['run', '-d', '--runtime', 'runc', '--name', 'count1', ...COUNTER]);
    await eventually(async () => (await numbers(a, 'count1')).length >= 5, 5000, 'counting');
    await a.berth(['checkpoint', 'create', 'count1', 'c1']);
    assert.equal((await a.docker(['inspect', '-f', '{{.State.Running}}', 'count1'])).stdout.trim(), 'false');
    const last = Math.max(...(await numbers(a, 'count1')));
    assert.match((await a.berth(['checkpoint', 'ls', 'count1'])).stdout, /^c1$/m);
    await a.berth(['start', '--checkpoint', 'c1', 'count1']);
    await eventually(async () => (await numbers(a, 'count1')).length >= last + 3, 5000, 'counting again');
    const after = (await numbers(a, 'count1')).slice(last);
    assert.equal(after[0], last + 1, `it went on from ${last}, not from 1: ${after.slice(0, 5).join(' ')}`);
    await a.berth(['checkpoint', 'rm', 'count1', 'c1']);
    assert.doesNotMatch((await a.berth(['checkpoint', 'ls', 'count1'])).stdout, /c1/);
    await a.docker(['rm', '-f', 'count1']);
  });

  test('a plain `docker run -d` container (the default runtime) checkpointed and restored with the docker CLI; create / ls / rm, --leave-running', async () => {
    await a.docker(['run', '-d', '--name', 'count2', ...COUNTER]);
    assert.equal(
      (await a.docker(['inspect', '-f', '{{.HostConfig.Runtime}}', 'count2'])).stdout.trim(),
      'crun',
      'the default runtime',
    );
    await eventually(async () => (await numbers(a, 'count2')).length >= 3, 5000, 'counting');
    await a.docker(['checkpoint', 'create', 'count2', 'snap']);
    assert.match((await a.docker(['checkpoint', 'ls', 'count2'])).stdout, /snap/);
    const last = Math.max(...(await numbers(a, 'count2')));
    await a.docker(['start', '--checkpoint', 'snap', 'count2']);
    await eventually(async () => (await current(a, 'count2')) > last, 5000, 'counting again');
    assert.equal((await numbers(a, 'count2')).slice(last)[0], last + 1);
    await a.docker(['checkpoint', 'create', '--leave-running', 'count2', 'snap2']);
    assert.equal(
      (await a.docker(['inspect', '-f', '{{.State.Running}}', 'count2'])).stdout.trim(),
      'true',
      '--leave-running',
    );
    await a.docker(['checkpoint', 'rm', 'count2', 'snap']);
    // pre-dumps (migration's pre-copy) need soft-dirty tracking; without it a clear refusal, nothing made
    const info = (await a.api('GET', '/info')).body as { CheckpointPreCopy: boolean; CheckpointPreCopyReason: string };
    const pre = await a.api('POST', '/containers/count2/checkpoints', { CheckpointID: 'pre1', PreDump: true });
    if (info.CheckpointPreCopy) assert.equal(pre.status, 201);
    else {
      assert.equal(pre.status, 400);
      assert.match(pre.text, /pre-dump is not possible here: .*CONFIG_MEM_SOFT_DIRTY/);
      assert.doesNotMatch((await a.docker(['checkpoint', 'ls', 'count2'])).stdout, /pre1/);
    }
    await a.docker(['rm', '-f', 'count2']);
  });

  test("--network none under both runtimes: checkpointed and restored, loopback up (crun: CRIU carries crun's own namespace)", async () => {
    for (const rt of ['crun', 'runc']) {
      const name = `none-${rt}`;
      await a.docker(['run', '-d', '--runtime', rt, '--network', 'none', '--name', name, ...COUNTER]);
      await eventually(async () => (await current(a, name).catch(() => 0)) > 2, 5000, `${name} counting`);
      await a.docker(['checkpoint', 'create', name, 'n1']);
      const last = await current(a, name).catch(() => 0);
      await a.docker(['start', '--checkpoint', 'n1', name]);
      await eventually(async () => (await current(a, name)) > last, 5000, `${name} counting again`);
      assert.match(
        (await a.docker(['exec', name, 'ip', '-o', 'link'])).stdout,
        /^1: lo: <LOOPBACK,UP,LOWER_UP>/m,
        `${name}: lo up after the restore`,
      );
      assert.doesNotMatch(
        (await a.docker(['exec', name, 'ip', '-o', 'link'])).stdout,
        /^2:/m,
        `${name}: nothing but lo`,
      );
      await a.docker(['rm', '-f', name]);
    }
  });

  test('--tcp-established: a connection opened before the checkpoint gets answers after the restore', async () => {
    await a.docker([
      'run',
      '-d',
      '--runtime',
      'runc',
      '--name',
      'echo',
      'busybox',
      'nc',
      '-l',
      '-p',
      '9000',
      '-e',
      'cat',
    ]);
    const ip = (await a.docker(['inspect', '-f', '{{.NetworkSettings.IPAddress}}', 'echo'])).stdout.trim();
    const s = await eventually(
      () =>
        new Promise<net.Socket | undefined>((resolve) => {
          const c = net.connect(9000, ip, () => resolve(c));
          c.on('error', () => resolve(undefined));
        }),
      5000,
      'the echo server',
    );
    let got = '';
    s.on('data', (d: Buffer) => (got += d.toString()));
    s.write('before\n');
    await eventually(() => got === 'before\n', 5000, 'an echo before');
    await a.berth(['checkpoint', 'create', '--tcp-established', 'echo', 'k1']);
    await a.berth(['start', '--checkpoint', 'k1', 'echo']);
    assert.equal(
      (await a.docker(['inspect', '-f', '{{.NetworkSettings.IPAddress}}', 'echo'])).stdout.trim(),
      ip,
      'the same address',
    );
    s.write('after\n');
    await eventually(() => got === 'before\nafter\n', 10_000, 'an echo after, on the same connection');
    s.destroy();
    await a.docker(['rm', '-f', 'echo']);
  });

  test('export on one daemon, import on another: the counter goes on there; clone x3 goes on three times', async () => {
    await a.berth(['run', '-d', '--runtime', 'runc', '--name', 'count3', ...COUNTER]);
    await eventually(async () => (await numbers(a, 'count3')).length >= 5, 5000, 'counting');
    const file = join(a.dir, 'count3.tar.gz');
    await a.berth(['checkpoint', 'create', '--export', file, 'count3', 'moving']);
    const last = Math.max(...(await numbers(a, 'count3')));
    await b.berth(['restore', '--import', file, '--name', 'moved']);
    await eventually(async () => (await numbers(b, 'moved')).length >= 3, 5000, 'counting on the other daemon');
    assert.equal((await numbers(b, 'moved'))[0], last + 1, 'it continues from the checkpoint, not from 1');
    // clones: one checkpoint, three containers, each going on by itself
    const names = (await a.berth(['checkpoint', 'clone', '-n', '3', '--prefix', 'twin', 'count3', 'moving'])).stdout
      .split('\n')
      .filter(Boolean);
    assert.deepEqual(names, ['twin1', 'twin2', 'twin3']);
    for (const n of names) {
      await eventually(async () => (await numbers(a, n)).length >= 2, 5000, `${n} counting`);
      assert.equal((await numbers(a, n))[0], last + 1, `${n} starts where the checkpoint was`);
    }
    await a.docker(['stop', '-t', '0', 'twin1']);
    const frozen = await current(a, 'twin2');
    await eventually(
      async () => (await current(a, 'twin2')) > frozen + 2,
      5000,
      'twin2 goes on while twin1 is stopped',
    );
    const ips = await Promise.all(
      ['twin2', 'twin3'].map(async (n) =>
        (await a.docker(['inspect', '-f', '{{.NetworkSettings.IPAddress}}', n])).stdout.trim(),
      ),
    );
    assert.notEqual(ips[0], ips[1], 'each clone has its own address');
    await a.docker(['rm', '-f', 'count3', ...names]);
    await b.docker(['rm', '-f', 'moved']);
  });

  test('--with-volumes: named and anonymous volumes travel with the export; an existing volume of that name is not overwritten', async () => {
    await a.docker(['volume', 'create', 'ledger']);
    await a.berth([
      'run',
      '-d',
      '--runtime',
      'runc',
      '--name',
      'vol1',
      '-v',
      'ledger:/ledger',
      '-v',
      '/scratch',
      'busybox',
      'sh',
      '-c',
      'echo kept > /ledger/a; echo anon > /scratch/b; i=0; while true; do i=$((i+1)); echo $i > /tmp/n; sleep 0.1; done',
    ]);
    await eventually(async () => (await current(a, 'vol1').catch(() => 0)) > 2, 5000, 'running');
    const file = join(a.dir, 'vol1.tar.gz');
    await a.berth(['checkpoint', 'create', '--leave-running', '--with-volumes', '--export', file, 'vol1', 'v']);
    await b.berth(['restore', '--import', file, '--name', 'vol1']);
    assert.equal((await b.docker(['exec', 'vol1', 'cat', '/ledger/a', '/scratch/b'])).stdout, 'kept\nanon\n');
    assert.equal((await b.docker(['volume', 'inspect', '-f', '{{.Name}}', 'ledger'])).stdout.trim(), 'ledger');
    // importing again where `ledger` exists: refused, nothing made, the volume untouched
    await b.docker(['exec', 'vol1', 'sh', '-c', 'echo changed > /ledger/a']);
    const volumesBefore = (await b.docker(['volume', 'ls', '-q'])).stdout;
    const again = await b.berth(['restore', '--import', file, '--name', 'vol2'], { allowFail: true });
    assert.notEqual(again.code, 0);
    assert.match(again.stderr, /volume ledger already exists on this host/);
    assert.equal((await b.docker(['ps', '-aq', '--filter', 'name=vol2'])).stdout.trim(), '');
    assert.equal((await b.docker(['volume', 'ls', '-q'])).stdout, volumesBefore);
    assert.equal((await b.docker(['exec', 'vol1', 'cat', '/ledger/a'])).stdout, 'changed\n');
    // without --with-volumes the archive carries no volume data (and imports next to an existing volume)
    await a.berth(['checkpoint', 'create', '--leave-running', '--export', join(a.dir, 'novol.tar.gz'), 'vol1', 'nv']);
    await b.berth(['restore', '--import', join(a.dir, 'novol.tar.gz'), '--name', 'vol3']);
    assert.equal(
      (await b.docker(['exec', 'vol3', 'cat', '/ledger/a'])).stdout,
      'changed\n',
      'it uses the volume of that name here',
    );
    await a.docker(['rm', '-f', '-v', 'vol1']);
    await b.docker(['rm', '-f', '-v', 'vol1', 'vol3']);
    await a.docker(['volume', 'rm', 'ledger']);
    await b.docker(['volume', 'rm', 'ledger']);
  });

  test('live migration: served before and after, state intact, source gone', async () => {
    await a.docker(['network', 'create', 'mig']);
    await b.docker(['network', 'create', 'mig']);
    // a server keeping state in memory: httpd serves /www/n, a loop rewrites it from its variable (default runtime)
    await a.docker([
      'run',
      '-d',
      '--name',
      'svc',
      '--network',
      'mig',
      'busybox',
      'sh',
      '-c',
      'mkdir -p /www; httpd -p 8080 -h /www; i=0; while true; do i=$((i+1)); echo $i > /www/n; echo $i > /tmp/n; sleep 0.1; done',
    ]);
    const ask = (d: Daemon) =>
      d
        .docker([
          'run',
          '--rm',
          '--network',
          'mig',
          'busybox',
          'sh',
          '-c',
          "printf 'GET /n HTTP/1.0\\r\\n\\r\\n' | nc -w 3 svc 8080 | tail -n 1",
        ])
        .then((r) => Number(r.stdout.trim()));
    await eventually(async () => (await ask(a)) > 3, 5000, 'served before');
    const r = await a.berth(['migrate', 'svc', '--to', b.host]);
    assert.match(r.stdout, /svc now runs on .*frozen for \d+ ms/);
    const before = await current(b, 'svc');
    assert.ok(before > 3, `the counter went on from its state (${before})`);
    await eventually(async () => (await ask(b)) >= before, 10_000, 'served after, from the same state');
    assert.equal((await a.docker(['ps', '-aq', '--filter', 'name=svc'])).stdout.trim(), '', 'the source is gone');
    await b.docker(['rm', '-f', 'svc']);
  });

  test('live migration with --tcp-established between hosts in their own network namespaces: a connection opened before the move gets answers after it', async () => {
    const tag = `bm${process.pid % 100000}`;
    const ns = { a: `${tag}a`, b: `${tag}b`, c: `${tag}c` };
    const sh = (cmd: string) => run('sh', ['-c', cmd]);
    const teardown = () => sh(`for n in ${ns.a} ${ns.b} ${ns.c}; do ip netns del $n 2>/dev/null; done; true`);
    await teardown(); // leftovers of an earlier run
    // host A and host B, each reachable from client C over its own link; C routes the containers' subnet to A
    await sh(
      [
        `ip netns add ${ns.a}`,
        `ip netns add ${ns.b}`,
        `ip netns add ${ns.c}`,
        `ip link add ${tag}ca netns ${ns.c} type veth peer name ${tag}ac netns ${ns.a}`,
        `ip link add ${tag}cb netns ${ns.c} type veth peer name ${tag}bc netns ${ns.b}`,
        `ip -n ${ns.c} addr add 10.250.1.2/24 dev ${tag}ca`,
        `ip -n ${ns.a} addr add 10.250.1.1/24 dev ${tag}ac`,
        `ip -n ${ns.c} addr add 10.250.2.2/24 dev ${tag}cb`,
        `ip -n ${ns.b} addr add 10.250.2.1/24 dev ${tag}bc`,
        ...[ns.a, ns.b, ns.c].map((n) => `ip -n ${n} link set lo up`),
        `ip -n ${ns.c} link set ${tag}ca up`,
        `ip -n ${ns.c} link set ${tag}cb up`,
        `ip -n ${ns.a} link set ${tag}ac up`,
        `ip -n ${ns.b} link set ${tag}bc up`,
        `ip -n ${ns.c} route add 10.77.0.0/24 via 10.250.1.1`,
        `ip -n ${ns.b} route add 10.250.1.0/24 via 10.250.2.2`,
        `ip netns exec ${ns.c} sysctl -qw net.ipv4.conf.all.rp_filter=0`,
      ].join(' && '),
    );
    let ha: Daemon | undefined;
    let hb: Daemon | undefined;
    let client: ReturnType<typeof spawn> | undefined;
    try {
      ha = await startDaemon({ netns: ns.a });
      hb = await startDaemon({ netns: ns.b });
      for (const h of [ha, hb]) await h.docker(['network', 'create', '--subnet', '10.77.0.0/24', 'mig']);
      await ha.docker([
        'run',
        '-d',
        '--runtime',
        'runc',
        '--name',
        'echo',
        '--network',
        'mig',
        'busybox',
        'sh',
        '-c',
        'while true; do nc -l -p 9000 -e cat; done',
      ]);
      const ip = (
        await ha.docker(['inspect', '-f', '{{.NetworkSettings.Networks.mig.IPAddress}}', 'echo'])
      ).stdout.trim();
      // the client, on host C: one TCP connection, a line sent per stdin line, what comes back printed
      client = spawn(
        'ip',
        [
          'netns',
          'exec',
          ns.c,
          process.execPath,
          '-e',
          `const s=require('net').connect(9000,'${ip}');s.on('data',d=>process.stdout.write(d));s.on('error',e=>{console.error(e.message);process.exit(2)});s.on('close',()=>process.exit(3));process.stdin.on('data',d=>s.write(d));`,
        ],
        { stdio: ['pipe', 'pipe', 'pipe'] },
      );
      let got = '';
      client.stdout!.on('data', (d: Buffer) => (got += d.toString()));
      const say = async (line: string) => {
        client!.stdin!.write(`${line}\n`);
        await eventually(() => got.includes(line), 15_000, `answer to ${line} (client: ${got})`);
      };
      await eventually(
        async () => {
          client!.stdin!.write('hello\n');
          await new Promise((r) => setTimeout(r, 200));
          return got.includes('hello');
        },
        10_000,
        'the echo server answers',
      );
      const moved = await ha.berth(['migrate', 'echo', '--to', hb.host, '--tcp-established']);
      assert.match(moved.stdout, /echo now runs on/);
      assert.equal(
        (await hb.docker(['inspect', '-f', '{{.NetworkSettings.Networks.mig.IPAddress}}', 'echo'])).stdout.trim(),
        ip,
        'the address moved with it',
      );
      await sh(`ip -n ${ns.c} route replace 10.77.0.0/24 via 10.250.2.1`); // the network follows the address
      await say('after-the-move');
      assert.equal(client.exitCode, null, 'the connection is still open');
    } finally {
      client?.kill();
      await ha?.stop();
      await hb?.stop();
      await teardown();
    }
  });

  test('post-copy migration (lazy pages): the container resumes on the target before its memory has moved; state intact; the source goes once every page is over', async () => {
    const info = (await a.api('GET', '/info')).body as {
      CheckpointPostCopy?: boolean;
      CheckpointPostCopyReason?: string;
    };
    assert.ok(info.CheckpointPostCopy, `post-copy works here: ${info.CheckpointPostCopyReason ?? ''}`);
    // memory worth moving (64 MB in a shell variable) and a counter kept in memory
    await a.berth([
      'run',
      '-d',
      '--runtime',
      'runc',
      '--name',
      'lazy',
      'busybox',
      'sh',
      '-c',
      'big=$(head -c 67108864 /dev/zero | tr "\\0" x); i=0; while true; do i=$((i+1)); echo $i > /tmp/n; echo ${#big} > /tmp/len; sleep 0.1; done',
    ]);
    await eventually(async () => (await current(a, 'lazy').catch(() => 0)) > 3, 30_000, 'counting with 64 MB held');
    const r = await a.berth(['migrate', 'lazy', '--to', b.host, '--post-copy']);
    assert.match(r.stdout, /lazy now runs on .*frozen for \d+ ms/);
    const at = await current(b, 'lazy');
    assert.ok(at > 3, `the counter went on from its state (${at})`);
    await eventually(async () => (await current(b, 'lazy')) > at + 2, 10_000, 'counting on the target');
    // (the loop rewrites /tmp/len: read until a whole write is seen)
    await eventually(
      async () => (await b.docker(['exec', 'lazy', 'cat', '/tmp/len'])).stdout.trim() === '67108864',
      5000,
      'the 64 MB came over',
    );
    assert.equal((await a.docker(['ps', '-aq', '--filter', 'name=lazy'])).stdout.trim(), '', 'the source is gone');
    await b.docker(['rm', '-f', 'lazy']);
  });

  test('a crafted archive: names that are paths and host access it asks for are refused, nothing made; --allow-host-access takes it', async () => {
    await a.docker(['run', '-d', '--name', 'src', ...COUNTER]);
    await eventually(async () => (await current(a, 'src').catch(() => 0)) > 2, 5000, 'counting');
    const file = join(a.dir, 'src.tar.gz');
    await a.berth(['checkpoint', 'create', '--leave-running', '--export', file, 'src', 'orig']);
    const work = mkdtempSync(join(a.dir, 'craft-'));
    await run('tar', ['-xzf', file, '-C', work]);
    const doc = JSON.parse(readFileSync(join(work, 'berth-export.json'), 'utf8')) as {
      checkpoint: string;
      hostConfig: Record<string, unknown>;
      meta: Record<string, unknown>;
    };
    const craft = async (name: string, change: (d: typeof doc) => void) => {
      const d = structuredClone(doc);
      change(d);
      writeFileSync(join(work, 'berth-export.json'), JSON.stringify(d));
      const out = join(a.dir, `${name}.tar.gz`);
      await run('tar', ['-czf', out, '-C', work, 'berth-export.json', 'rootfs-diff.tar', 'checkpoint']);
      return out;
    };
    const canary = join(a.dir, 'canary');
    const before = (await b.docker(['ps', '-aq'])).stdout;
    const cases: Array<[string, (d: typeof doc) => void, RegExp]> = [
      ['dotdot', (d) => (d.checkpoint = '../../../../canary'), /invalid checkpoint name/],
      ['abs', (d) => (d.checkpoint = canary), /invalid checkpoint name/],
      ['parent', (d) => (d.meta['parent'] = '../../x'), /invalid parent checkpoint name/],
      ['privileged', (d) => (d.hostConfig['Privileged'] = true), /asks for access to the host \(--privileged\)/],
      ['bind', (d) => (d.hostConfig['Binds'] = ['/:/host']), /bind mount \//],
      ['pidhost', (d) => (d.hostConfig['PidMode'] = 'host'), /PidMode=host/],
      [
        'devices',
        (d) =>
          (d.hostConfig['Devices'] = [
            { PathOnHost: '/dev/sda', PathInContainer: '/dev/sda', CgroupPermissions: 'rwm' },
          ]),
        /devices/,
      ],
    ];
    for (const [name, change, want] of cases) {
      const r = await b.berth(['restore', '--import', await craft(name, change), '--name', `crafted-${name}`], {
        allowFail: true,
      });
      assert.notEqual(r.code, 0, name);
      assert.match(r.stderr, want, name);
      assert.equal((await b.docker(['ps', '-aq'])).stdout, before, `${name}: nothing made`);
    }
    assert.ok(!existsSync(canary), 'nothing written outside');
    // the importer who trusts the archive says so
    const ok = await b.berth([
      'restore',
      '--import',
      await craft('trusted', (d) => (d.hostConfig['CapAdd'] = ['NET_ADMIN'])),
      '--name',
      'trusted',
      '--allow-host-access',
    ]);
    assert.match(ok.stdout, /trusted/);
    await eventually(async () => (await current(b, 'trusted')) > 0, 5000, 'restored');
    await b.docker(['rm', '-f', 'trusted']);
    await a.docker(['rm', '-f', 'src']);
  });

  test('failures: a broken archive, a missing image, a refusing or absent target: clear errors, the source still there', async () => {
    const broken = join(a.dir, 'broken.tar.gz');
    writeFileSync(broken, 'not a checkpoint');
    const containersBefore = (await b.docker(['ps', '-aq'])).stdout;
    const bad = await b.berth(['restore', '--import', broken], { allowFail: true });
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /not a checkpoint archive/);
    assert.equal((await b.docker(['ps', '-aq'])).stdout, containersBefore, 'nothing created');
    // a target without the image (and no registry to pull it from): an image committed on a only
    await a.docker(['run', '--name', 'mk', 'busybox', 'touch', '/only-here']);
    await a.docker(['commit', 'mk', 'local-only:1']);
    await a.docker(['rm', 'mk']);
    await a.docker([
      'run',
      '-d',
      '--runtime',
      'runc',
      '--name',
      'stay',
      'local-only:1',
      'sh',
      '-c',
      'i=0; while true; do i=$((i+1)); echo $i > /tmp/n; sleep 0.1; done',
    ]);
    await eventually(async () => (await current(a, 'stay')) > 2, 5000, 'counting');
    const noImage = await a.berth(['migrate', 'stay', '--to', b.host], { allowFail: true });
    assert.notEqual(noImage.code, 0);
    assert.match(noImage.stderr, /migrate failed, stay goes on here: .*image/);
    const n1 = await current(a, 'stay');
    await eventually(async () => (await current(a, 'stay')) > n1, 5000, 'still counting on the source');
    // pre-copy asked for by name: refused up front where the kernel has no soft-dirty tracking (this one: CONFIG_MEM_SOFT_DIRTY is off)
    const infoPre = (await a.api('GET', '/info')).body as { CheckpointPreCopy?: boolean };
    const pc = await a.berth(['migrate', 'stay', '--to', b.host, '--pre-copy'], { allowFail: true });
    assert.notEqual(pc.code, 0);
    assert.match(
      pc.stderr,
      infoPre.CheckpointPreCopy
        ? /migrate failed, stay goes on here: .*image/
        : /migrate: pre-copy is not possible here: .*CONFIG_MEM_SOFT_DIRTY/,
    );
    assert.equal((await a.docker(['inspect', '-f', '{{.State.Running}}', 'stay'])).stdout.trim(), 'true');
    // post-copy: the source is only stopped while its page server waits; a failed import lets it go on
    const info = (await a.api('GET', '/info')).body as { CheckpointPostCopy?: boolean };
    if (info.CheckpointPostCopy) {
      const lazy = await a.berth(['migrate', 'stay', '--to', b.host, '--post-copy'], { allowFail: true });
      assert.notEqual(lazy.code, 0);
      assert.match(lazy.stderr, /migrate failed, stay goes on here: .*image/);
      const n2 = await current(a, 'stay');
      assert.ok(n2 >= n1, `from its state, not from 1 (${n2})`);
      await eventually(
        async () => (await current(a, 'stay')) > n2,
        5000,
        'still counting on the source after a failed post-copy',
      );
    }
    // a target that refuses (the name is taken there)
    await b.docker(['create', '--name', 'stay', 'busybox', 'true']);
    await b.docker(['tag', 'busybox', 'local-only:1']);
    const taken = await a.berth(['migrate', 'stay', '--to', b.host], { allowFail: true });
    assert.match(taken.stderr, /migrate failed, stay goes on here: .*already in use/);
    assert.equal((await a.docker(['inspect', '-f', '{{.State.Running}}', 'stay'])).stdout.trim(), 'true');
    // a target that is not there
    const gone = await a.berth(['migrate', 'stay', '--to', `unix://${join(a.dir, 'nobody.sock')}`], {
      allowFail: true,
    });
    assert.match(gone.stderr, /the target daemon does not answer/);
    assert.equal((await a.docker(['inspect', '-f', '{{.State.Running}}', 'stay'])).stdout.trim(), 'true');
    await a.docker(['rm', '-f', 'stay']);
    await b.docker(['rm', '-f', 'stay']);
  });

  test('a checkpoint whose berth.json is corrupt says so (409), not "does not exist" (404); nothing changes; it can still be removed', async () => {
    await a.docker(['create', '--name', 'corrupt', 'busybox', 'true']);
    const dir = mkdtempSync(join(a.dir, 'cps-'));
    mkdirSync(join(dir, 'bad'));
    const q = (k: string) => `${k}=${encodeURIComponent(dir)}`;
    const start = (name: string) =>
      a.api('POST', `/containers/corrupt/start?checkpoint=${name}&${q('checkpoint-dir')}`);
    // cut short (not JSON), and JSON that is not a checkpoint's description: both corrupt
    for (const text of ['{"created": "2026-', '[1, 2]', '{"addresses": {}, "tcpEstablished": "yes"}']) {
      writeFileSync(join(dir, 'bad', 'berth.json'), text);
      const r = await start('bad');
      assert.equal(r.status, 409, `${text}: ${r.text}`);
      assert.match(
        (r.body as { message: string }).message,
        /checkpoint bad of container corrupt is corrupt \(.*berth\.json: .*\): remove it/,
      );
    }
    const none = await start('none');
    assert.equal(none.status, 404, none.text);
    assert.match((none.body as { message: string }).message, /checkpoint none does not exist for container corrupt/);
    assert.equal(
      (await a.docker(['inspect', '-f', '{{.State.Status}}', 'corrupt'])).stdout.trim(),
      'created',
      'nothing changed',
    );
    // listed (it is there), and removable: how a corrupt checkpoint is cleaned up
    assert.deepEqual((await a.api('GET', `/containers/corrupt/checkpoints?${q('dir')}`)).body, [{ Name: 'bad' }]);
    assert.equal((await a.api('DELETE', `/containers/corrupt/checkpoints/bad?${q('dir')}`)).status, 204);
    assert.equal(existsSync(join(dir, 'bad')), false);
    await a.docker(['rm', 'corrupt']);
    rmSync(dir, { recursive: true, force: true });
  });
});

/**
 * A CRIU that hangs, as CRIU 4.1.1 did on kernel 6.18.44: a wrapper given to berthd as --criu
 * (runc runs it by that path; crun's libcriu finds it first in PATH). With `seize` in its dir
 * (holding the container's freezer state file and its init's pid) it freezes the container as
 * CRIU does first and then never answers: the application stays frozen until berthd gives it
 * back. (Stopping the real CRIU at that moment races with CRIU infecting the tasks, after which
 * killing CRIU kills them; a loaded machine loses that race.) With `hang` it never answers at
 * all; with neither it is the real CRIU.
 */
function hangingCriu(dir: string): string {
  const file = join(dir, 'criu');
  writeFileSync(
    file,
    `#!/bin/bash
d=${dir}
if [ -e $d/hang ]; then exec -a "$d/criu-hang" sleep 1000; fi
if [ -e $d/seize ]; then
  # what CRIU does first, then hangs: the application frozen until someone gives it back
  { read -r state; read -r target; } < $d/seize
  echo FROZEN > $state
  while read -r now < $state && [ "$now" != FROZEN ]; do read -r -t 0.01 <> <(:) || true; done
  echo "$now $target" > $d/seized
  exec -a "$d/criu-hang" sleep 1000
fi
exec /usr/local/sbin/criu "$@"
`,
  );
  chmodSync(file, 0o755);
  return file;
}

/** What the wrapper watches: the freezer state file of a container's cgroup (v1, as on this project's machines) and its init. */
function freezerState(pid: string): string {
  const path = /^\d+:freezer:(.*)$/m.exec(readFileSync(`/proc/${pid}/cgroup`, 'utf8'))?.[1];
  assert.ok(path, 'a v1 freezer cgroup');
  return `/sys/fs/cgroup/freezer${path}/freezer.state\n${pid}\n`;
}

describe('CRIU under a deadline: never a hang, never a frozen application', () => {
  let d: Daemon;
  let dir: string;
  before(async () => {
    dir = mkdtempSync('/var/tmp/berth-criu-');
    d = await startDaemon({ args: ['--criu', hangingCriu(dir), '--checkpoint-timeout', '4s'] });
    assert.equal((await probed(d)).CheckpointProbe, 'ok', 'the wrapper is the real CRIU until told otherwise');
  });
  after(async () => {
    await d?.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  const current = (ctr: string) => counterOf(d, ctr);
  const goesOn = async (ctr: string, what: string) => {
    assert.equal(
      (await d.docker(['inspect', '-f', '{{.State.Status}} {{.State.Paused}}', ctr])).stdout.trim(),
      'running false',
      `${what}: running, not paused`,
    );
    const n = await current(ctr);
    await eventually(async () => (await current(ctr)) > n + 2, 5000, `${what}: the application goes on`);
  };

  for (const runtime of ['crun', 'runc']) {
    test(`${runtime}: a dump stuck with the container frozen ends at the deadline; the container goes on; no checkpoint is listed; the next checkpoint works`, async () => {
      const name = `stuck-${runtime}`;
      await d.docker(['run', '-d', '--runtime', runtime, '--name', name, ...COUNTER]);
      await eventually(async () => (await current(name).catch(() => 0)) > 2, 5000, 'counting');
      const state = freezerState((await d.docker(['inspect', '-f', '{{.State.Pid}}', name])).stdout.trim());
      writeFileSync(join(dir, 'seize'), state);
      rmSync(join(dir, 'seized'), { force: true });
      const t0 = Date.now();
      const r = await d
        .docker(['checkpoint', 'create', name, 'cp1'], { allowFail: true, timeoutMs: 30_000 })
        .finally(() => rmSync(join(dir, 'seize')));
      assert.notEqual(r.code, 0);
      assert.ok(Date.now() - t0 < 15_000, `answered at the deadline, not later (${Date.now() - t0} ms)`);
      assert.match(
        r.stderr,
        /checkpoint \(dump\) did not finish in 4 s: CRIU was ended and the container goes on; CRIU's log: \S+dump\.log/,
      );
      assert.ok(existsSync(join(dir, 'seized')), 'the container was frozen while CRIU hung');
      await goesOn(name, 'after the stuck dump');
      assert.equal(
        (await d.docker(['checkpoint', 'ls', name])).stdout.trim().split('\n').length,
        1,
        'no half-written checkpoint is listed (the header only)',
      );
      noCriuLeft(dir);
      // the same with --leave-running, then a real checkpoint and restore still work
      writeFileSync(join(dir, 'seize'), state);
      const lr = await d
        .docker(['checkpoint', 'create', '--leave-running', name, 'cp2'], { allowFail: true, timeoutMs: 30_000 })
        .finally(() => rmSync(join(dir, 'seize')));
      assert.notEqual(lr.code, 0);
      await goesOn(name, 'after a stuck --leave-running dump');
      await d.docker(['checkpoint', 'create', name, 'cp3']);
      const last = await eventually(
        async () => (await d.docker(['logs', name])).stdout.split('\n').filter(Boolean).map(Number).pop(),
        5000,
        'logs',
      );
      await d.docker(['start', '--checkpoint', 'cp3', name]);
      await eventually(async () => (await current(name)) > last + 1, 5000, 'counting from the checkpoint');
      await d.docker(['rm', '-f', name]);
    });
  }

  test('a client that goes away ends CRIU at once; the container goes on', async () => {
    await d.docker(['run', '-d', '--name', 'walkaway', ...COUNTER]);
    await eventually(async () => (await current('walkaway').catch(() => 0)) > 2, 5000, 'counting');
    writeFileSync(
      join(dir, 'seize'),
      freezerState((await d.docker(['inspect', '-f', '{{.State.Pid}}', 'walkaway'])).stdout.trim()),
    );
    rmSync(join(dir, 'seized'), { force: true });
    const req = http.request({
      socketPath: d.sock,
      method: 'POST',
      path: '/containers/walkaway/checkpoints',
      headers: { 'Content-Type': 'application/json' },
    });
    req.on('error', () => undefined);
    req.end(JSON.stringify({ CheckpointID: 'gone' }));
    try {
      await eventually(() => existsSync(join(dir, 'seized')), 10_000, 'CRIU froze the container');
    } finally {
      req.destroy(); // the client goes away, well before the 4 s deadline
      rmSync(join(dir, 'seize'));
    }
    const t0 = Date.now();
    await eventually(
      async () =>
        (await d.docker(['inspect', '-f', '{{.State.Paused}}', 'walkaway'])).stdout.trim() === 'false' &&
        (await current('walkaway')) > 0,
      5000,
      'given back',
    );
    await goesOn('walkaway', 'after the client went away');
    assert.ok(Date.now() - t0 < 4000, 'before the deadline');
    noCriuLeft(dir);
    await d.docker(['rm', '-f', 'walkaway']);
  });

  test('a restore that never answers ends at the deadline: the container stays as it was (exited, its checkpoint kept) and restores later', async () => {
    await d.docker(['run', '-d', '--name', 'later', ...COUNTER]);
    await eventually(async () => (await current('later').catch(() => 0)) > 2, 5000, 'counting');
    await d.docker(['checkpoint', 'create', 'later', 'c']);
    writeFileSync(join(dir, 'hang'), '');
    const r = await d
      .docker(['start', '--checkpoint', 'c', 'later'], { allowFail: true, timeoutMs: 30_000 })
      .finally(() => rmSync(join(dir, 'hang')));
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /restore did not finish in 4 s: CRIU was ended/);
    assert.equal((await d.docker(['inspect', '-f', '{{.State.Status}}', 'later'])).stdout.trim(), 'exited');
    assert.match((await d.docker(['checkpoint', 'ls', 'later'])).stdout, /^c$/m);
    noCriuLeft(dir);
    await d.docker(['start', '--checkpoint', 'c', 'later']);
    await goesOn('later', 'restored');
    await d.docker(['rm', '-f', 'later']);
  });

  test('a host whose CRIU hangs is found out by the probe: info says why, and a checkpoint is refused at once', async () => {
    const bad = mkdtempSync('/var/tmp/berth-criu-');
    writeFileSync(join(bad, 'hang'), '');
    const h = await startDaemon({ args: ['--criu', hangingCriu(bad), '--checkpoint-timeout', '2s'] });
    try {
      const info = await probed(h);
      assert.equal(info.CheckpointProbe, 'failed');
      assert.deepEqual(info.CheckpointRuntimes, []);
      assert.match(
        info.CheckpointReason,
        /cannot checkpoint on this kernel .*criu (--version|check) did not finish in 2 s/,
      );
      await h.docker(['run', '-d', '--name', 'x', 'busybox', 'sleep', '60']);
      const t0 = Date.now();
      const r = await h.docker(['checkpoint', 'create', 'x', 'c'], { allowFail: true });
      assert.ok(Date.now() - t0 < 2000, 'refused at once');
      assert.match(
        r.stderr,
        /checkpoint\/restore is not possible on this host: CRIU.* cannot checkpoint on this kernel/,
      );
      assert.equal((await h.docker(['inspect', '-f', '{{.State.Running}}', 'x'])).stdout.trim(), 'true');
      await h.docker(['rm', '-f', 'x']);
    } finally {
      await h.stop();
      rmSync(bad, { recursive: true, force: true });
    }
  });
});

function spawnSyncOut(cmd: string, args: string[]): string {
  return spawnSync(cmd, args, { encoding: 'utf8' }).stdout ?? '';
}

/** Nothing of the wrapper is left: no process naming its dir. */
function noCriuLeft(dir: string): void {
  assert.equal(spawnSyncOut('pgrep', ['-f', `bash ${dir}/criu|${dir}/criu-hang`]).trim(), '', 'no wrapper is left');
}
