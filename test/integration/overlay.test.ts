/**
 * Issue #18: overlay networks across hosts, state in etcd. A cluster on one machine: an underlay
 * network namespace with a bridge and etcd (Debian's /usr/bin/etcd, its own data dir, on the
 * underlay's address), and three berthds, each in its own network namespace joined to the
 * underlay by a veth (192.168.x.1-3, x chosen per run), each with its own root and socket,
 * `--cluster-store etcd://… --cluster-advertise 192.168.x.N --cluster-ttl 3s`. Traffic stays in
 * the namespaces the test makes; everything (daemons, etcd, namespaces, links, dirs) is removed after.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { eventually, REPO, startDaemon, type Daemon } from './harness.js';

const sh = (cmd: string, args: string[]) => execFileSync(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] }).toString();
const shQuiet = (cmd: string, args: string[]) => {
  try {
    sh(cmd, args);
  } catch {
    /* gone already */
  }
};

/** A busybox HTTP request from inside a container (busybox wget is broken in this static build; nc is not). */
const fetchIn = (target: string, port = 80) =>
  `printf 'GET /hostname HTTP/1.0\\r\\n\\r\\n' | nc -w 3 ${target} ${port} | tail -n 1`;

const tag = randomBytes(2).toString('hex');
const NS = `ot${tag}`; // ot<tag>u (underlay), ot<tag>1..3 (hosts)
const NET = `192.168.${200 + (parseInt(tag, 16) % 50)}`;
const ETCD = `${NET}.254`;

/**
 * A one-connection server on the underlay that says `outside`: `timeout` ends it in 60 s at the
 * latest, and forwards the test's kill to it (a shell in between would leave nc behind).
 */
function listenOnce(port: number): ChildProcess {
  const p = spawn('ip', ['netns', 'exec', `${NS}u`, 'timeout', '60', 'busybox', 'nc', '-l', '-p', String(port)], {
    stdio: ['pipe', 'ignore', 'ignore'],
  });
  p.stdin.on('error', () => undefined);
  p.stdin.end('outside\n');
  return p;
}

class Etcd {
  proc: ChildProcess | null = null;
  readonly dir = mkdtempSync('/var/tmp/berth-etcd-');
  private logText = '';

  async start(): Promise<void> {
    this.logText = '';
    const p = spawn(
      'ip',
      [
        'netns',
        'exec',
        `${NS}u`,
        'etcd',
        '--data-dir',
        join(this.dir, 'data'),
        '--listen-client-urls',
        `http://${ETCD}:2379`,
        '--advertise-client-urls',
        `http://${ETCD}:2379`,
        '--listen-peer-urls',
        'http://127.0.0.1:2380',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    p.stdout.on('data', (b: Buffer) => (this.logText += b.toString()));
    p.stderr.on('data', (b: Buffer) => (this.logText += b.toString()));
    this.proc = p;
    await eventually(() => this.logText.includes('ready to serve client requests'), 30_000, 'etcd ready');
  }

  async stop(): Promise<void> {
    const p = this.proc;
    if (!p || p.exitCode !== null) return;
    const exited = new Promise((r) => p.once('exit', r));
    p.kill('SIGTERM');
    await exited;
    this.proc = null;
  }
}

function makeUnderlay(): void {
  sh('ip', ['netns', 'add', `${NS}u`]);
  sh('ip', ['-n', `${NS}u`, 'link', 'add', 'br0', 'type', 'bridge']);
  sh('ip', ['-n', `${NS}u`, 'addr', 'add', `${ETCD}/24`, 'dev', 'br0']);
  sh('ip', ['-n', `${NS}u`, 'link', 'set', 'br0', 'up']);
  sh('ip', ['-n', `${NS}u`, 'link', 'set', 'lo', 'up']);
  for (const i of [1, 2, 3]) {
    sh('ip', ['netns', 'add', `${NS}${i}`]);
    sh('ip', ['link', 'add', `${NS}v${i}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', `${NS}${i}`]);
    sh('ip', ['link', 'set', `${NS}v${i}`, 'netns', `${NS}u`]);
    sh('ip', ['-n', `${NS}u`, 'link', 'set', `${NS}v${i}`, 'master', 'br0', 'up']);
    sh('ip', ['-n', `${NS}${i}`, 'addr', 'add', `${NET}.${i}/24`, 'dev', 'eth0']);
    sh('ip', ['-n', `${NS}${i}`, 'link', 'set', 'eth0', 'up']);
    sh('ip', ['-n', `${NS}${i}`, 'link', 'set', 'lo', 'up']);
  }
}

function removeUnderlay(): void {
  for (const n of ['1', '2', '3', 'u']) shQuiet('ip', ['netns', 'del', `${NS}${n}`]);
}

/** The addresses network `id`'s VXLAN device on host `i` has neighbour entries for. */
function neighbours(i: number, id: string): string[] {
  let out = '';
  try {
    out = sh('ip', ['-n', `${NS}${i}`, '-j', 'neigh', 'show', 'dev', `vx-${id.slice(0, 12)}`]);
  } catch {
    return [];
  }
  return (JSON.parse(out || '[]') as Array<{ dst: string }>).map((n) => n.dst).sort();
}

describe('overlay networks across three hosts (etcd)', { concurrency: false }, () => {
  const etcd = new Etcd();
  const hosts: Daemon[] = [];
  const h = (i: number) => hosts[i - 1]!;
  const startHost = (i: number) =>
    startDaemon({
      netns: `${NS}${i}`,
      args: ['--cluster-store', `etcd://${ETCD}:2379`, '--cluster-advertise', `${NET}.${i}`, '--cluster-ttl', '3s'],
    });
  const inspect = async (d: Daemon, ref: string) =>
    (JSON.parse((await d.docker(['network', 'inspect', ref])).stdout) as Array<Record<string, unknown>>)[0]!;
  const ipOf = async (d: Daemon, c: string, net: string) =>
    (await d.docker(['inspect', '-f', `{{(index .NetworkSettings.Networks "${net}").IPAddress}}`, c])).stdout.trim();
  /** A busybox httpd named `name` on `net` serving /etc (its hostname file answers with its short id). */
  const serveHttp = (d: Daemon, name: string, net: string, ...opts: string[]) =>
    d.docker([
      'run',
      '-d',
      '--name',
      name,
      '--network',
      net,
      ...opts,
      'busybox',
      'httpd',
      '-f',
      '-p',
      '80',
      '-h',
      '/etc',
    ]);
  const runIn = async (d: Daemon, net: string, script: string) =>
    (await d.docker(['run', '--rm', '--network', net, 'busybox', 'sh', '-c', script], { allowFail: true })).stdout;

  before(async () => {
    removeUnderlay();
    makeUnderlay();
    await etcd.start();
    for (const i of [1, 2, 3]) hosts.push(await startHost(i));
  });

  after(async () => {
    for (const d of hosts) await d.stop().catch(() => undefined);
    await etcd.stop();
    removeUnderlay();
    rmSync(etcd.dir, { recursive: true, force: true });
  });

  test('created on one host, on every host; containers on different hosts talk by name and alias; inspect shows peers', async () => {
    // `docker info` shows the flags, as dockerd 20.10 did
    const info = (await h(2).api('GET', '/v1.41/info')).body as Record<string, unknown>;
    assert.equal(info['ClusterStore'], `etcd://${ETCD}:2379`);
    assert.equal(info['ClusterAdvertise'], `${NET}.2`);
    // bad input first: nothing is made
    const bad = await h(1).docker(
      ['network', 'create', '-d', 'overlay', '-o', 'com.docker.network.driver.overlay.vxlanid_list=x', 'bad'],
      {
        allowFail: true,
      },
    );
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /invalid VXLAN id x/);
    const id = (await h(1).docker(['network', 'create', '-d', 'overlay', '--attachable', 'ov'])).stdout.trim();
    for (const d of hosts)
      await eventually(
        async () => (await d.docker(['network', 'ls', '-q', '-f', 'name=ov'])).stdout.includes(id.slice(0, 12)),
        20_000,
        'network on every host',
      );
    const seen = await inspect(h(3), 'ov');
    assert.equal(seen['Driver'], 'overlay');
    assert.equal(seen['Scope'], 'global');
    assert.equal((seen['IPAM'] as { Config: Array<{ Subnet: string }> }).Config[0]!.Subnet, '10.0.0.0/24');
    assert.equal((seen['Options'] as Record<string, string>)['com.docker.network.driver.overlay.vxlanid_list'], '4097');
    assert.equal(
      (await h(2).docker(['network', 'create', '-d', 'overlay', 'ov'], { allowFail: true })).code,
      1,
      'a name is taken cluster-wide',
    );
    const clash = await h(3).docker(['network', 'create', '-d', 'overlay', '--subnet', '10.0.0.0/16', 'clash'], {
      allowFail: true,
    });
    assert.notEqual(clash.code, 0);
    assert.match(clash.stderr, /Pool overlaps with other one on this address space \(ov uses 10\.0\.0\.0\/24\)/);
    assert.ok(!(await h(1).docker(['network', 'ls', '--format', '{{.Name}}'])).stdout.split('\n').includes('clash'));
    // one kernel VXLAN device per host: VNI 4097, local = the advertise address, port 4789, no learning
    for (const i of [1, 2, 3]) {
      const dev = sh('ip', ['-n', `${NS}${i}`, '-d', 'link', 'show', `vx-${id.slice(0, 12)}`]);
      assert.match(dev, new RegExp(`vxlan id 4097 local ${NET}\\.${i} .*dstport 4789 nolearning proxy`));
    }
    await serveHttp(h(1), 'web1', 'ov', '--network-alias', 'www');
    const ip1 = await ipOf(h(1), 'web1', 'ov');
    await eventually(() => neighbours(2, id).includes(ip1), 20_000, 'host 2 told of web1');
    const got = await runIn(h(2), 'ov', `${fetchIn('web1')}; ${fetchIn('www')}; nslookup www | grep Address`);
    const short = (await h(1).docker(['inspect', '-f', '{{.Id}}', 'web1'])).stdout.trim().slice(0, 12);
    assert.equal(got.split('\n').filter((l) => l === short).length, 2, `by name and alias from host 2: ${got}`);
    assert.match(got, new RegExp(`Address: ${ip1.replace(/\./g, '\\.')}`));
    // a container on host 3 answers to host 1's by name too, and the neighbour table on host 1 follows
    await serveHttp(h(3), 'web3', 'ov');
    const short3 = (await h(3).docker(['inspect', '-f', '{{.Id}}', 'web3'])).stdout.trim().slice(0, 12);
    await eventually(
      async () => (await runIn(h(1), 'ov', fetchIn('web3'))).trim() === short3,
      30_000,
      'web3 from host 1',
    );
    // the fast path (overlay-fastpath.ts): host 1's VXLAN hands packets for web1 to its veth past the
    // bridge (and has carried some), host 2 sends to web1 past its bridge, through the block of VNI 4097
    const vx = `vx-${id.slice(0, 12)}`;
    const ingress = sh('ip', ['netns', 'exec', `${NS}1`, 'tc', '-s', 'filter', 'show', 'dev', vx, 'ingress']);
    assert.match(ingress, /Egress Redirect to device vb[0-9a-f]{10}/);
    assert.match(ingress, /Sent [1-9]\d* bytes/);
    const block = sh('ip', ['netns', 'exec', `${NS}2`, 'tc', 'filter', 'show', 'block', '4097']);
    assert.match(block, new RegExp(`Egress Redirect to device ${vx}`));
    // a rename on host 3 shows on host 1's name server: the new name answers, the old one no longer
    await h(3).docker(['rename', 'web3', 'web3b']);
    await eventually(
      async () =>
        (await runIn(h(1), 'ov', `${fetchIn('web3b')}; nslookup web3 >/dev/null 2>&1 || echo gone`)).trim() ===
        `${short3}\ngone`,
      20_000,
      'web3b from host 1, web3 gone',
    );
    await h(3).docker(['rename', 'web3b', 'web3']);
    await eventually(async () => (await runIn(h(1), 'ov', fetchIn('web3'))).trim() === short3, 20_000, 'web3 again');
    // network connect / disconnect of a running container: announced and withdrawn on the other hosts
    await h(2).docker(['run', '-d', '--name', 'late', 'busybox', 'sleep', '600']);
    await h(2).docker(['network', 'connect', '--alias', 'lateal', 'ov', 'late']);
    const lateIp = await ipOf(h(2), 'late', 'ov');
    await eventually(() => neighbours(1, id).includes(lateIp), 20_000, 'host 1 told of late');
    assert.match(await runIn(h(1), 'ov', 'nslookup lateal.ov | grep Address'), new RegExp(`Address: ${lateIp}$`, 'm'));
    await h(2).docker(['network', 'disconnect', 'ov', 'late']);
    await eventually(() => !neighbours(1, id).includes(lateIp), 20_000, 'host 1 forgot late');
    await h(2).docker(['rm', '-f', 'late']);
    const peers = (await inspect(h(2), 'ov'))['Peers'] as Array<{ IP: string }>;
    assert.deepEqual(
      peers.map((p) => p.IP),
      [`${NET}.1`, `${NET}.3`],
    );
  });

  test('outside access through NAT and -p on each host; two overlays are isolated; --internal stays inside', async () => {
    // outside: a server in the underlay namespace, reached through the host's NAT
    const srv = listenOnce(7777);
    try {
      const out = await eventually(
        async () => (await runIn(h(2), 'ov', `nc -w 2 ${ETCD} 7777`)).trim() || undefined,
        20_000,
        'outside',
      );
      assert.equal(out, 'outside');
    } finally {
      srv.kill();
    }
    await serveHttp(h(2), 'pub2', 'ov', '-p', '8080:80');
    const short = (await h(2).docker(['inspect', '-f', '{{.Id}}', 'pub2'])).stdout.trim().slice(0, 12);
    const fromUnderlay = () =>
      sh('ip', [
        'netns',
        'exec',
        `${NS}u`,
        'busybox',
        'sh',
        '-c',
        `printf 'GET /hostname HTTP/1.0\\r\\n\\r\\n' | busybox nc -w 3 ${NET}.2 8080 | tail -n 1`,
      ]).trim();
    assert.equal(await eventually(() => fromUnderlay() === short || undefined, 20_000, '-p from the underlay'), true);
    // a second overlay: its containers do not reach the first's, by address or by name
    const id2 = (
      await h(3).docker(['network', 'create', '-d', 'overlay', '--subnet', '10.77.0.0/24', 'ov2'])
    ).stdout.trim();
    await serveHttp(h(3), 'other3', 'ov2');
    const other = await ipOf(h(3), 'other3', 'ov2');
    await eventually(() => neighbours(1, id2).includes(other), 20_000, 'host 1 told of other3');
    const otherShort = (await h(3).docker(['inspect', '-f', '{{.Id}}', 'other3'])).stdout.trim().slice(0, 12);
    assert.equal((await runIn(h(1), 'ov2', fetchIn('other3'))).trim(), otherShort, 'ov2 works across hosts');
    const web1 = await ipOf(h(1), 'web1', 'ov');
    const cross = await runIn(h(1), 'ov2', `${fetchIn(web1)}; ${fetchIn('web1')}; echo done`);
    assert.equal(cross.trim(), 'done', `ov2 reached ov: ${cross}`);
    // --internal: across hosts inside, nothing out
    const idi = (await h(1).docker(['network', 'create', '-d', 'overlay', '--internal', 'ovin'])).stdout.trim();
    await serveHttp(h(1), 'in1', 'ovin');
    const in1 = await ipOf(h(1), 'in1', 'ovin');
    await eventually(() => neighbours(3, idi).includes(in1), 20_000, 'host 3 told of in1');
    const inShort = (await h(1).docker(['inspect', '-f', '{{.Id}}', 'in1'])).stdout.trim().slice(0, 12);
    const srv2 = listenOnce(7778);
    try {
      const inside = await runIn(h(3), 'ovin', `${fetchIn('in1')}; nc -w 2 ${ETCD} 7778; echo done`);
      assert.equal(inside.trim(), `${inShort}\ndone`, `internal: ${inside}`);
    } finally {
      srv2.kill();
    }
  });

  test('parallel starts on three hosts never hand out an address twice', async () => {
    await h(1).docker(['network', 'create', '-d', 'overlay', '--subnet', '10.88.0.0/27', 'race']);
    const per = 4;
    const names = [1, 2, 3].flatMap((i) => Array.from({ length: per }, (_, k) => ({ i, name: `r${i}-${k}` })));
    await Promise.all(
      names.map(({ i, name }) =>
        h(i).docker(['run', '-d', '--name', name, '--network', 'race', 'busybox', 'sleep', '600'], {
          timeoutMs: 180_000,
        }),
      ),
    );
    const ips = await Promise.all(names.map(({ i, name }) => ipOf(h(i), name, 'race')));
    assert.equal(new Set(ips).size, names.length, `duplicates: ${[...ips].sort().join(' ')}`);
    for (const ip of ips) assert.match(ip, /^10\.88\.0\.([2-9]|[12]\d|30)$/);
    // and every host sees every one of them in etcd's copy (its peers' neighbour entries)
    const id = (await inspect(h(2), 'race'))['Id'] as string;
    const remoteOf2 = names
      .filter((n) => n.i !== 2)
      .map((n) => ips[names.indexOf(n)]!)
      .sort();
    await eventually(
      () => JSON.stringify(neighbours(2, id)) === JSON.stringify(remoteOf2),
      20_000,
      'host 2 knows all',
    ).catch((e: unknown) => {
      const who = names.map((n, k) => `${n.name}=${ips[k]}`).join(' ');
      throw new Error(
        `${String(e)}: host 2 has ${neighbours(2, id).join(' ')}, wanted ${remoteOf2.join(' ')} (${who})`,
      );
    });
    // network rm: refused while any host has an endpoint; then gone everywhere, devices included
    const rm = await h(3).docker(['network', 'rm', 'race'], { allowFail: true });
    assert.notEqual(rm.code, 0);
    assert.match(rm.stderr, /has active endpoints/);
    for (const { i, name } of names) if (i !== 3) await h(i).docker(['rm', '-f', name]);
    const rm3 = await h(3).docker(['network', 'rm', 'race'], { allowFail: true });
    assert.notEqual(rm3.code, 0, 'host 3 still has endpoints');
    await h(3).docker(['rm', '-f', ...names.filter((n) => n.i === 3).map((n) => n.name)]);
    await eventually(
      async () => (await h(1).docker(['network', 'rm', 'race'], { allowFail: true })).code === 0,
      20_000,
      'rm',
    );
    for (const d of hosts)
      await eventually(
        async () => !(await d.docker(['network', 'ls', '--format', '{{.Name}}'])).stdout.split('\n').includes('race'),
        20_000,
        'gone everywhere',
      );
    for (const i of [1, 2, 3])
      await eventually(
        () => !sh('ip', ['-n', `${NS}${i}`, 'link', 'show']).includes(`vx-${id.slice(0, 12)}`),
        20_000,
        'device gone',
      );
  });

  test('kill -9 of a host: its endpoints go when its lease expires; restarted, it has the same addresses', async () => {
    const id = (await inspect(h(2), 'ov'))['Id'] as string;
    const ip1 = await ipOf(h(1), 'web1', 'ov');
    assert.ok(neighbours(2, id).includes(ip1));
    await h(1).kill9();
    await eventually(
      () => !neighbours(2, id).includes(ip1) && !neighbours(3, id).includes(ip1),
      60_000,
      'lease expiry',
    );
    const peers = (await inspect(h(2), 'ov'))['Peers'] as Array<{ IP: string }>;
    assert.ok(!peers.some((p) => p.IP === `${NET}.1`), JSON.stringify(peers));
    await h(1).restart();
    await eventually(() => neighbours(2, id).includes(ip1), 30_000, 're-registered');
    assert.equal(await ipOf(h(1), 'web1', 'ov'), ip1);
    const short = (await h(1).docker(['inspect', '-f', '{{.Id}}', 'web1'])).stdout.trim().slice(0, 12);
    assert.equal((await runIn(h(3), 'ov', fetchIn('web1'))).trim(), short);
  });

  test('etcd stopped and started: running traffic continues; new overlay operations fail with a clear error meanwhile', async () => {
    // a long-running exchange: a container on host 2 pings web1 (host 1) five times a second
    await h(2).docker(['run', '-d', '--name', 'pinger', '--network', 'ov', 'busybox', 'ping', '-i', '0.2', 'web1']);
    await eventually(async () => (await h(2).docker(['logs', 'pinger'])).stdout.includes('seq=1 '), 20_000, 'pinging');
    // a container that goes while etcd is away: its address key is dropped once etcd is back
    await h(2).docker(['run', '-d', '--name', 'gone', '--network', 'ov', 'busybox', 'sleep', '600']);
    const goneIp = await ipOf(h(2), 'gone', 'ov');
    const ovId = (await inspect(h(1), 'ov'))['Id'] as string;
    await eventually(() => neighbours(1, ovId).includes(goneIp), 20_000, 'host 1 told of gone');
    await etcd.stop();
    await h(2).docker(['rm', '-f', 'gone']);
    const create = await h(3).docker(['network', 'create', '-d', 'overlay', 'later'], { allowFail: true });
    assert.notEqual(create.code, 0);
    assert.match(create.stderr, /cluster store etcd:\/\/.* is unreachable/);
    const start = await h(3).docker(['run', '--rm', '--network', 'ov', 'busybox', 'true'], { allowFail: true });
    assert.notEqual(start.code, 0);
    assert.match(start.stderr, /unreachable/);
    // past the lease TTL with etcd away: names and traffic across hosts still work
    const short = (await h(1).docker(['inspect', '-f', '{{.Id}}', 'web1'])).stdout.trim().slice(0, 12);
    await new Promise((r) => setTimeout(r, 4000));
    assert.equal((await h(2).docker(['exec', 'pinger', 'sh', '-c', fetchIn('web1')])).stdout.trim(), short);
    // a berthd that starts while etcd is away: its overlay networks come back from its cache, its
    // running containers keep their devices and entries (nothing torn down), traffic by address goes on
    const web3 = await ipOf(h(3), 'web3', 'ov');
    const short3 = (await h(3).docker(['inspect', '-f', '{{.Id}}', 'web3'])).stdout.trim().slice(0, 12);
    const web1 = await ipOf(h(1), 'web1', 'ov');
    await h(3).kill9();
    await h(3).restart();
    assert.match((await h(3).docker(['network', 'ls', '--format', '{{.Name}} {{.Driver}}'])).stdout, /^ov overlay$/m);
    assert.equal((await h(1).docker(['exec', 'web1', 'sh', '-c', fetchIn(web3)])).stdout.trim(), short3);
    assert.equal((await h(3).docker(['exec', 'web3', 'sh', '-c', fetchIn(web1)])).stdout.trim(), short);
    await etcd.start();
    // etcd back: host 3 re-registered with its address, and names work from it again
    await eventually(
      async () => (await h(3).docker(['exec', 'web3', 'sh', '-c', fetchIn('web1')])).stdout.trim() === short,
      30_000,
      'names on host 3 after etcd is back',
    );
    assert.equal(await ipOf(h(3), 'web3', 'ov'), web3);
    await eventually(() => !neighbours(1, ovId).includes(goneIp), 30_000, 'the key of gone dropped');
    await eventually(
      async () => (await h(3).docker(['network', 'create', '-d', 'overlay', 'later'], { allowFail: true })).code === 0,
      60_000,
      'create after etcd is back',
    );
    await h(3).docker(['network', 'rm', 'later']);
    await h(2).docker(['exec', 'pinger', 'true']);
    await h(2).docker(['stop', '-t', '1', 'pinger']);
    // ping's own summary: every request had its answer, etcd away or not
    const logs = (await h(2).docker(['logs', 'pinger'])).stdout;
    const m = /(\d+) packets transmitted, (\d+) packets received/.exec(logs);
    const seqs = [...logs.matchAll(/seq=(\d+) /g)].map((x) => Number(x[1]));
    assert.ok(seqs.length > 10, logs.slice(-400));
    const missing = seqs.filter((s, k) => k > 0 && s !== seqs[k - 1]! + 1);
    assert.deepEqual(missing, [], `replies missing before seq ${missing.join(',')}; ${m?.[0] ?? ''}`);
    assert.equal(readFileSync(join(h(1).root, 'cluster-networks.json'), 'utf8').includes('"Name":"ov"'), true);
  });

  test('berth migrate keeps the address across hosts; with --tcp-established a client on a third host keeps its connection', async () => {
    const id = (await inspect(h(3), 'ov'))['Id'] as string;
    // an echo server on host 1 (runc: it checkpoints with CRIU), a client on host 3 counting over one connection
    await h(1).docker([
      'run',
      '-d',
      '--runtime',
      'runc',
      '--name',
      'echo',
      '--network',
      'ov',
      'busybox',
      'nc',
      '-l',
      '-p',
      '9000',
      '-e',
      'cat',
    ]);
    const ip = await ipOf(h(1), 'echo', 'ov');
    const mac = (
      await h(1).docker(['inspect', '-f', '{{.NetworkSettings.Networks.ov.MacAddress}}', 'echo'])
    ).stdout.trim();
    await eventually(() => neighbours(3, id).includes(ip), 20_000, 'host 3 told of echo');
    const loop = 'i=0; while true; do i=$((i+1)); echo $i; sleep 0.1; done | nc echo 9000 > /tmp/out';
    await h(3).docker(['run', '-d', '--name', 'client', '--network', 'ov', 'busybox', 'sh', '-c', loop]);
    const lines = async () =>
      (await h(3).docker(['exec', 'client', 'cat', '/tmp/out'])).stdout.split('\n').filter((l) => l);
    await eventually(async () => (await lines()).length >= 5, 20_000, 'echoes before the move');
    await h(1).berth(['migrate', 'echo', '--tcp-established', '--to', h(2).host], { timeoutMs: 180_000 });
    assert.equal(await ipOf(h(2), 'echo', 'ov'), ip, 'the same address on host 2');
    assert.equal((await h(1).docker(['ps', '-aq', '-f', 'name=^echo$'])).stdout.trim(), '');
    // host 3's VXLAN now sends that MAC to host 2
    const fdb = () => sh('ip', ['netns', 'exec', `${NS}3`, 'bridge', 'fdb', 'show', 'dev', `vx-${id.slice(0, 12)}`]);
    await eventually(() => fdb().includes(`${mac} dst ${NET}.2 self permanent`), 20_000, 'fdb follows');
    const after = (await lines()).length;
    await eventually(async () => (await lines()).length >= after + 10, 30_000, 'echoes after the move');
    const all = await lines();
    assert.deepEqual(
      all.map(Number),
      all.map((_, k) => k + 1),
      'one connection: every number once, in order',
    );
    await h(3).docker(['rm', '-f', 'client']);
    await h(2).docker(['rm', '-f', 'echo']);
  });

  test('without a cluster store: overlay networks are refused with the flags to give; bad cluster flags stop berthd', async () => {
    for (const args of [
      ['--cluster-store', 'consul://h:8500', '--cluster-advertise', '10.0.0.1'],
      ['--cluster-store', `etcd://${ETCD}:2379`],
      ['--cluster-store', `etcd://${ETCD}:2379`, '--cluster-advertise', 'eth0'],
      ['--cluster-store', `etcd://${ETCD}:2379`, '--cluster-advertise', `${NET}.1`, '--cluster-ttl', '0s'],
    ]) {
      const r = spawnSync(join(REPO, 'bin/berthd'), ['--root', '/nonexistent/berth-overlay-flags', ...args], {
        encoding: 'utf8',
        timeout: 30_000,
      });
      assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, /cluster/);
    }
    const plain = await startDaemon({ netns: `${NS}1`, loadFixture: false });
    try {
      const r = await plain.docker(['network', 'create', '-d', 'overlay', 'ov'], { allowFail: true });
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /overlay networks need a cluster store: start berthd with --cluster-store/);
      assert.doesNotMatch((await plain.docker(['network', 'ls'])).stdout, /overlay/);
    } finally {
      await plain.stop();
    }
  });
});
