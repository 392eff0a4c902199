/**
 * Issue #5, networks: user-defined bridges with name service, isolation between networks,
 * published ports from the host and from containers (hairpin), a taken port refused cleanly, the
 * network verbs, and no leak or double allocation after `kill -9` of berthd. Traffic stays on
 * loopback and on the bridges and namespaces these tests make.
 */
import { before, after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import http from 'node:http';
import dgram from 'node:dgram';
import { startDaemon, eventually, type Daemon } from './harness.js';
import { freePort } from './registry-harness.js';

const get = (url: string) =>
  new Promise<string>((resolve, reject) => {
    const req = http.get(url, { timeout: 3000 }, (res) => {
      let b = '';
      res.on('data', (c: Buffer) => (b += c.toString()));
      res.on('end', () => resolve(b));
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error('timeout')));
  });

/** A busybox HTTP request from inside a container (busybox wget is broken in this static build; nc is not). */
const fetchIn = (target: string, port = 8080) =>
  `printf 'GET /hostname HTTP/1.0\\r\\n\\r\\n' | nc -w 3 ${target} ${port} | tail -n 1`;

describe('networks', () => {
  let d: Daemon;
  const mark = () => `berth:${readFileSync(join(d.root, 'engine-id'), 'utf8').trim().replace(/-/g, '').slice(0, 8)}`;
  const ourLinks = () =>
    (JSON.parse(execFileSync('ip', ['-j', 'link', 'show']).toString()) as Array<{ ifname: string; ifalias?: string }>)
      .filter((l) => l.ifalias === mark())
      .map((l) => l.ifname)
      .sort();
  const table = () => execFileSync('nft', ['list', 'table', 'ip', mark().replace(':', '_')]).toString();
  before(async () => {
    d = await startDaemon();
  });
  after(async () => {
    await d?.stop();
  });

  test('containers on a user-defined network reach each other by name, alias and short id; other networks cannot', async () => {
    await d.docker(['network', 'create', 'app']);
    await d.docker(['network', 'create', '--subnet', '10.231.0.0/24', '--gateway', '10.231.0.254', 'other']);
    const srv = (
      await d.docker([
        'run',
        '-d',
        '--name',
        'srv',
        '--network',
        'app',
        '--network-alias',
        'web',
        '--hostname',
        'srvhost',
        'busybox',
        'httpd',
        '-f',
        '-p',
        '8080',
        '-h',
        '/etc',
      ])
    ).stdout.trim();
    for (const target of ['srv', 'web', srv.slice(0, 12)]) {
      const r = await d.docker(['run', '--rm', '--network', 'app', 'busybox', 'sh', '-c', fetchIn(target)]);
      assert.equal(r.stdout.trim(), 'srvhost', `reached by ${target}`);
    }
    const ip = (await d.docker(['inspect', '-f', '{{.NetworkSettings.Networks.app.IPAddress}}', 'srv'])).stdout.trim();
    assert.match(ip, /^\d+\.\d+\.\d+\.\d+$/);
    const lookup = await d.docker(
      ['run', '--rm', '--network', 'other', 'busybox', 'sh', '-c', `nslookup srv; ${fetchIn(ip)}; echo "rc=$?"`],
      { allowFail: true },
    );
    assert.doesNotMatch(lookup.stdout, /srvhost/, 'a container on another network cannot reach srv');
    assert.doesNotMatch(lookup.stdout, new RegExp(`Address: ${ip.replace(/\./g, '\\.')}`), 'nor resolve its name');
    const o = JSON.parse((await d.docker(['network', 'inspect', 'other'])).stdout)[0];
    assert.deepEqual(o.IPAM.Config, [{ Subnet: '10.231.0.0/24', Gateway: '10.231.0.254' }]);
    const inOther = (
      await d.docker([
        'run',
        '--rm',
        '--network',
        'other',
        '--ip',
        '10.231.0.77',
        'busybox',
        'sh',
        '-c',
        'ip -4 addr show eth0; ip route',
      ])
    ).stdout;
    assert.match(inOther, /inet 10\.231\.0\.77\/24/);
    assert.match(inOther, /default via 10\.231\.0\.254/);
    // the name goes away with the container
    await d.docker(['rm', '-f', 'srv']);
    const gone = await d.docker(['run', '--rm', '--network', 'app', 'busybox', 'nslookup', 'web'], { allowFail: true });
    assert.doesNotMatch(gone.stdout, /Address: \d+\.\d+\.\d+\.\d+\s*$/m);
  });

  test('the default bridge: an address, a route out, no names; --add-host, --dns, --mac-address, host and container: modes', async () => {
    const out = (
      await d.docker([
        'run',
        '--rm',
        '--add-host',
        'db.local:10.9.8.7',
        '--dns',
        '10.0.0.53',
        '--mac-address',
        '02:42:0a:00:00:99',
        'busybox',
        'sh',
        '-c',
        'ip -4 addr show eth0; ip link show eth0; ip route; cat /etc/hosts /etc/resolv.conf',
      ])
    ).stdout;
    // Docker's default pools: 172.17-31.0.0/16, then 192.168.x.0/20 (earlier runs' bridges may hold some)
    assert.match(out, /inet (172\.(1[7-9]|2\d|3[01])\.\d+\.\d+\/16|192\.168\.\d+\.\d+\/20)/);
    assert.match(out, /link\/ether 02:42:0a:00:00:99/);
    assert.match(out, /default via (172|192\.168)\./);
    assert.match(out, /10\.9\.8\.7\tdb\.local/);
    assert.match(out, /nameserver 10\.0\.0\.53/);
    const a = (await d.docker(['run', '-d', '--name', 'ns-owner', 'busybox', 'sleep', '60'])).stdout.trim();
    const ownerIp = (await d.docker(['inspect', '-f', '{{.NetworkSettings.IPAddress}}', a])).stdout.trim();
    const joined = (
      await d.docker(['run', '--rm', '--network', `container:${a}`, 'busybox', 'ip', '-4', 'addr', 'show', 'eth0'])
    ).stdout;
    assert.match(joined, new RegExp(`inet ${ownerIp.replace(/\./g, '\\.')}/`), 'container: mode shares the namespace');
    const ownerHost = (await d.docker(['inspect', '-f', '{{.Config.Hostname}}', a])).stdout.trim();
    assert.equal(
      (
        await d.docker([
          'run',
          '--rm',
          '--network',
          `container:${a}`,
          'busybox',
          'sh',
          '-c',
          'hostname; cat /etc/hostname',
        ])
      ).stdout,
      `${ownerHost}\n${ownerHost}\n`,
      'and its hostname, as dockerd gives',
    );
    const hostNet = (await d.docker(['run', '--rm', '--network', 'host', 'busybox', 'ip', 'link'])).stdout;
    assert.ok(
      ourLinks().some((l) => hostNet.includes(l)),
      'host mode sees the host links',
    );
    const none = (await d.docker(['run', '--rm', '--network', 'none', 'busybox', 'ip', 'link'])).stdout;
    assert.doesNotMatch(none, /eth0/);
    const bad = await d.docker(['run', '--rm', '--ip', '172.17.0.99', 'busybox', 'true'], { allowFail: true });
    assert.match(bad.stderr, /user specified IP address is supported on user defined networks only/);
    await d.docker(['rm', '-f', a]);
  });

  test('published ports: from the host (127.0.0.1 and -P), from a container (hairpin); a taken port is refused and leaves nothing', async () => {
    const port = await freePort();
    await d.docker([
      'run',
      '-d',
      '--name',
      'pub',
      '-p',
      `127.0.0.1:${port}:8080`,
      '--hostname',
      'pubhost',
      'busybox',
      'httpd',
      '-f',
      '-p',
      '8080',
      '-h',
      '/etc',
    ]);
    assert.equal(
      (
        await eventually(() => get(`http://127.0.0.1:${port}/hostname`).catch(() => undefined), 5000, 'published port')
      ).trim(),
      'pubhost',
    );
    assert.equal((await d.docker(['port', 'pub'])).stdout.trim(), `8080/tcp -> 127.0.0.1:${port}`);
    const hostIp = (await d.docker(['inspect', '-f', '{{.NetworkSettings.Gateway}}', 'pub'])).stdout.trim(); // an address of the host
    const any = await freePort();
    await d.docker([
      'run',
      '-d',
      '--name',
      'pub-any',
      '-p',
      `${any}:8080`,
      '--hostname',
      'anyhost',
      'busybox',
      'httpd',
      '-f',
      '-p',
      '8080',
      '-h',
      '/etc',
    ]);
    const hair = await d.docker(['run', '--rm', 'busybox', 'sh', '-c', fetchIn(hostIp, any)]);
    assert.equal(hair.stdout.trim(), 'anyhost', 'a container reaches a published port through the host address');
    assert.equal(
      (await get(`http://${hostIp}:${any}/hostname`)).trim(),
      'anyhost',
      'the host reaches it on its own (non-loopback) address',
    );
    // a range of ports
    const base = 42000 + Math.floor(Math.random() * 2000);
    const ranged = (
      await d.docker(['run', '-d', '-p', `127.0.0.1:${base}-${base + 1}:7000-7001`, 'busybox', 'sleep', '60'])
    ).stdout.trim();
    assert.equal(
      (await d.docker(['port', ranged])).stdout.trim().split('\n').sort().join('\n'),
      `7000/tcp -> 127.0.0.1:${base}\n7001/tcp -> 127.0.0.1:${base + 1}`,
    );
    await d.docker(['rm', '-f', ranged]);
    // udp: a datagram to the published port reaches the container's namespace (busybox has no
    // UDP server here: a Node listener is started inside the container's network namespace)
    const uport = await freePort();
    const u = (
      await d.docker(['run', '-d', '-p', `127.0.0.1:${uport}:9999/udp`, 'busybox', 'sleep', '60'])
    ).stdout.trim();
    const upid = (await d.docker(['inspect', '-f', '{{.State.Pid}}', u])).stdout.trim();
    const listener = spawn('nsenter', [
      `--net=/proc/${upid}/ns/net`,
      process.execPath,
      '-e',
      "const s=require('dgram').createSocket('udp4');s.on('message',(m)=>{process.stdout.write(m);process.exit(0)});s.bind(9999,()=>console.log('ready'))",
    ]);
    let heard = '';
    listener.stdout.on('data', (c: Buffer) => (heard += c.toString()));
    await eventually(() => heard.includes('ready'), 5000, 'the listener');
    const sock = dgram.createSocket('udp4');
    await new Promise<void>((r) => sock.send('over udp\n', uport, '127.0.0.1', () => r()));
    sock.close();
    await eventually(() => heard.includes('over udp'), 5000, 'the datagram arrived');
    listener.kill();
    await d.docker(['rm', '-f', u]);
    // -P publishes EXPOSEd ports on free host ports
    const exposed = (
      await d.docker([
        'run',
        '-d',
        '-P',
        '--expose',
        '8080',
        '--hostname',
        'exphost',
        'busybox',
        'httpd',
        '-f',
        '-p',
        '8080',
        '-h',
        '/etc',
      ])
    ).stdout.trim();
    const mapped = /:(\d+)$/.exec((await d.docker(['port', exposed, '8080'])).stdout.trim())?.[1];
    assert.ok(mapped, 'an ephemeral host port');
    assert.equal(
      (
        await eventually(() => get(`http://127.0.0.1:${mapped}/hostname`).catch(() => undefined), 5000, '-P port')
      ).trim(),
      'exphost',
    );
    // the same host port again: a clear error, the container not started, nothing wired for it
    const rulesBefore = table();
    const clash = await d.docker(
      ['run', '-d', '--name', 'pub2', '-p', `127.0.0.1:${port}:8080`, 'busybox', 'httpd', '-f', '-p', '8080'],
      { allowFail: true },
    );
    assert.notEqual(clash.code, 0);
    assert.match(clash.stderr, new RegExp(`Bind for 127\\.0\\.0\\.1:${port} failed: port is already allocated`));
    const st = JSON.parse((await d.docker(['inspect', 'pub2'])).stdout)[0];
    assert.equal(st.State.Running, false);
    assert.deepEqual(st.NetworkSettings.Networks.bridge.IPAddress, '', 'no address kept');
    assert.equal(table(), rulesBefore, 'no rule added');
    // a port some other process holds is refused too
    const busy = await freePort();
    const holder = http.createServer().listen(busy, '127.0.0.1');
    await new Promise((r) => holder.once('listening', r));
    const held = await d.docker(['run', '--rm', '-p', `127.0.0.1:${busy}:80`, 'busybox', 'true'], { allowFail: true });
    holder.close();
    assert.match(held.stderr, /address already in use/);
    await d.docker(['rm', '-f', 'pub', 'pub-any', 'pub2', exposed]);
    assert.doesNotMatch(table(), /dnat to/, 'rules go with their containers');
  });

  test("legacy --link: /etc/hosts, dockerd's variables, reachability; a missing or stopped target is refused", async () => {
    await d.docker(['run', '-d', '--name', 'linked', '-e', 'SECRET=x', '--expose', '5432', 'busybox', 'sleep', '60']);
    const ip = (await d.docker(['inspect', '-f', '{{.NetworkSettings.IPAddress}}', 'linked'])).stdout.trim();
    const id = (await d.docker(['inspect', '-f', '{{.Id}}', 'linked'])).stdout.trim();
    const out = (
      await d.docker([
        'run',
        '--rm',
        '--name',
        'linker',
        '--link',
        'linked:db',
        'busybox',
        'sh',
        '-c',
        'grep -w db /etc/hosts; ping -c1 -W2 db >/dev/null && echo reached; env | grep ^DB_ | sort',
      ])
    ).stdout;
    assert.equal(
      out,
      [
        `${ip}\tdb ${id.slice(0, 12)} linked`,
        'reached',
        'DB_ENV_SECRET=x',
        'DB_NAME=/linker/db',
        `DB_PORT=tcp://${ip}:5432`,
        `DB_PORT_5432_TCP=tcp://${ip}:5432`,
        `DB_PORT_5432_TCP_ADDR=${ip}`,
        'DB_PORT_5432_TCP_PORT=5432',
        'DB_PORT_5432_TCP_PROTO=tcp',
        '',
      ].join('\n'),
    );
    assert.equal(
      (await d.berth(['run', '--rm', '--link', 'linked', 'busybox', 'sh', '-c', 'echo $LINKED_NAME'])).stdout
        .trim()
        .split('/')
        .pop(),
      'linked',
    );
    const created = (
      await d.docker(['create', '--name', 'link-stored', '--link', 'linked:db', 'busybox', 'true'])
    ).stdout.trim();
    assert.deepEqual(JSON.parse((await d.docker(['inspect', created])).stdout)[0].HostConfig.Links, [
      '/linked:/link-stored/db',
    ]);
    await d.docker(['rm', created]);
    const missing = await d.docker(['run', '--rm', '--link', 'nobody:db', 'busybox', 'true'], { allowFail: true });
    assert.match(missing.stderr, /could not get container for nobody/);
    // over a user network a link is a name only (dockerd gives no variables there)
    await d.docker(['network', 'create', 'linknet']);
    await d.docker(['network', 'connect', 'linknet', 'linked']);
    const onUser = (
      await d.docker([
        'run',
        '--rm',
        '--network',
        'linknet',
        '--link',
        'linked:db',
        'busybox',
        'sh',
        '-c',
        'grep -cw db /etc/hosts; env | grep -c ^DB_ || true',
      ])
    ).stdout;
    assert.equal(onUser, '1\n0\n');
    await d.docker(['network', 'disconnect', 'linknet', 'linked']);
    await d.docker(['network', 'rm', 'linknet']);
    await d.docker(['stop', '-t', '0', 'linked']);
    const stopped = await d.docker(['run', '--name', 'late-linker', '--link', 'linked:db', 'busybox', 'true'], {
      allowFail: true,
    });
    assert.match(stopped.stderr, /Cannot link to a non running container: \/linked AS \/late-linker\/db/);
    await d.docker(['rm', '-f', 'linked', 'late-linker']);
  });

  test('network ls, inspect, connect, disconnect, rm, prune; --internal has no way out', async () => {
    await d.docker([
      'network',
      'create',
      '--label',
      'team=a',
      '--ip-range',
      '10.232.0.128/25',
      '--subnet',
      '10.232.0.0/24',
      'lab',
    ]);
    await d.docker(['network', 'create', '--internal', 'sealed']);
    const ls = (await d.docker(['network', 'ls', '--format', '{{.Name}}'])).stdout.split('\n');
    for (const n of ['bridge', 'lab', 'sealed']) assert.ok(ls.includes(n), n);
    assert.equal((await d.docker(['network', 'ls', '-q', '--filter', 'label=team=a'])).stdout.trim().length, 12);
    const c = (
      await d.docker(['run', '-d', '--name', 'multi', '--network', 'lab', 'busybox', 'sleep', '60'])
    ).stdout.trim();
    assert.match(
      (await d.docker(['inspect', '-f', '{{.NetworkSettings.Networks.lab.IPAddress}}', c])).stdout,
      /^10\.232\.0\.(12[89]|1[3-9]\d|2\d\d)\s*$/,
      'from --ip-range',
    );
    await d.docker(['network', 'connect', '--alias', 'm2', 'sealed', 'multi']);
    const ifs = (await d.docker(['exec', 'multi', 'ip', '-4', '-o', 'addr'])).stdout;
    assert.match(ifs, /eth1/);
    const ins = JSON.parse((await d.docker(['network', 'inspect', 'sealed'])).stdout)[0];
    assert.equal(Object.values(ins.Containers as Record<string, { Name: string }>)[0]!.Name, 'multi');
    const rm = await d.docker(['network', 'rm', 'sealed'], { allowFail: true });
    assert.match(rm.stderr, /has active endpoints/);
    await d.docker(['network', 'disconnect', 'sealed', 'multi']);
    assert.doesNotMatch((await d.docker(['exec', 'multi', 'ip', '-o', 'link'])).stdout, /eth1/);
    const inside = await d.docker(['run', '--rm', '--network', 'sealed', 'busybox', 'ip', 'route'], {
      allowFail: true,
    });
    assert.doesNotMatch(inside.stdout, /default/, 'an internal network has no default route');
    const dup = await d.docker(['network', 'create', 'bridge'], { allowFail: true });
    assert.notEqual(dup.code, 0);
    const overlap = await d.docker(['network', 'create', '--subnet', '10.232.0.0/16', 'overlapping'], {
      allowFail: true,
    });
    assert.match(overlap.stderr, /overlaps/);
    await d.docker(['rm', '-f', 'multi']);
    const pruned = (await d.docker(['network', 'prune', '-f'])).stdout;
    assert.match(pruned, /lab/);
    assert.match(pruned, /sealed/);
    assert.doesNotMatch((await d.docker(['network', 'ls'])).stdout, /\blab\b/);
  });

  test('after kill -9 of berthd and a restart nothing is leaked or allocated twice', async () => {
    await d.docker(['network', 'create', 'app2']);
    const keep = (
      await d.docker([
        'run',
        '-d',
        '--name',
        'keep',
        '--network',
        'app2',
        '-p',
        '127.0.0.1::8080',
        'busybox',
        'httpd',
        '-f',
        '-p',
        '8080',
        '-h',
        '/etc',
      ])
    ).stdout.trim();
    const doomed = (
      await d.docker(['run', '-d', '--name', 'doomed', '--network', 'app2', 'busybox', 'sleep', '300'])
    ).stdout.trim();
    const keepIp = (
      await d.docker(['inspect', '-f', '{{.NetworkSettings.Networks.app2.IPAddress}}', keep])
    ).stdout.trim();
    const doomedPid = Number((await d.docker(['inspect', '-f', '{{.State.Pid}}', doomed])).stdout.trim());
    await d.kill9();
    process.kill(doomedPid, 'SIGKILL'); // dies while the daemon is away
    await d.restart();
    // the kernel removes a dead namespace's veth pair shortly after; nothing else may be left
    await eventually(
      () => ourLinks().filter((l) => l.startsWith('vb')).length === 1,
      10_000,
      "only the running container's veth left",
    );
    const links = ourLinks();
    // `host` and `none` are listed too (as dockerd) and have no device
    const bridges = (await d.docker(['network', 'ls', '-q', '--filter', 'driver=bridge'])).stdout
      .split('\n')
      .filter(Boolean).length;
    assert.equal(links.filter((l) => !l.startsWith('vb')).length, bridges, 'one bridge per network');
    await eventually(
      async () => (await d.docker(['inspect', '-f', '{{.State.Status}}', doomed])).stdout.trim() === 'exited',
      10_000,
      'the dead container recorded as exited',
    );
    assert.match(
      table(),
      new RegExp(`dnat to ${keepIp.replace(/\./g, '\\.')}:8080`),
      'the running container keeps its published port',
    );
    const fresh = (
      await d.docker(['run', '--rm', '--network', 'app2', 'busybox', 'ip', '-4', '-o', 'addr', 'show', 'eth0'])
    ).stdout;
    assert.doesNotMatch(
      fresh,
      new RegExp(`inet ${keepIp.replace(/\./g, '\\.')}/`),
      "the running container's address is not handed out again",
    );
    const r = await d.docker(['run', '--rm', '--network', 'app2', 'busybox', 'sh', '-c', fetchIn('keep')]);
    assert.equal(r.stdout.trim(), keep.slice(0, 12), 'names still resolve after the restart');
    await d.docker(['rm', '-f', keep, doomed]);
    assert.deepEqual(
      ourLinks().filter((l) => l.startsWith('vb')),
      [],
      'no veth left',
    );
  });
});
