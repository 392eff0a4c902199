/**
 * Issue #5, volumes and plugins: named volumes outlive their containers and the daemon, binds
 * (read-only refused), anonymous volumes from an image's VOLUME filled from the image and removed
 * by `rm -v`/`--rm`, `--volumes-from`, tmpfs; a remote volume driver and a remote network driver,
 * each a small plugin server made by the test, used through the docker CLI.
 */
import { before, after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { startDaemon, eventually, type Daemon } from './harness.js';
import { execFileSync } from 'node:child_process';
import { networkPlugin, volumePlugin, type TestPlugin } from './test-plugins.js';

describe('volumes and plugins', () => {
  let d: Daemon;
  let pluginDir: string;
  const plugins: TestPlugin[] = [];
  before(async () => {
    pluginDir = mkdtempSync('/var/tmp/berth-plugins-');
    d = await startDaemon({ args: ['--plugin-dir', pluginDir] });
  });
  after(async () => {
    await d?.stop();
    for (const p of plugins) await p.close();
    rmSync(pluginDir, { recursive: true, force: true });
  });
  const run = async (...args: string[]) => (await d.docker(['run', '--rm', ...args])).stdout;

  test('a named volume written by one container is read by the next, and survives the daemon being killed', async () => {
    await d.docker(['volume', 'create', '--label', 'app=x', 'data']);
    await run('-v', 'data:/data', 'busybox', 'sh', '-c', 'echo kept > /data/file');
    assert.equal(await run('-v', 'data:/data', 'busybox', 'cat', '/data/file'), 'kept\n');
    const ins = JSON.parse((await d.docker(['volume', 'inspect', 'data'])).stdout)[0];
    assert.equal(ins.Driver, 'local');
    assert.deepEqual(ins.Labels, { app: 'x' });
    assert.equal(readFileSync(join(ins.Mountpoint, 'file'), 'utf8'), 'kept\n');
    await d.kill9();
    await d.restart();
    assert.equal(await run('--mount', 'type=volume,source=data,target=/mnt', 'busybox', 'cat', '/mnt/file'), 'kept\n');
    const c = (await d.docker(['create', '-v', 'data:/data', 'busybox', 'true'])).stdout.trim();
    const busy = await d.docker(['volume', 'rm', 'data'], { allowFail: true });
    assert.match(busy.stderr, /volume is in use/);
    await d.docker(['rm', c]);
    await d.docker(['volume', 'rm', 'data']);
    assert.doesNotMatch((await d.docker(['volume', 'ls', '-q'])).stdout, /^data$/m);
  });

  test('the local driver with type/device/o mounts that filesystem while the volume is used', async () => {
    await d.docker([
      'volume',
      'create',
      '-o',
      'type=tmpfs',
      '-o',
      'device=tmpfs',
      '-o',
      'o=size=2m,mode=0750',
      'tmpvol',
    ]);
    const out = await run('-v', 'tmpvol:/m', 'busybox', 'sh', '-c', 'df -k /m | tail -1; stat -c %a /m; echo x > /m/f');
    assert.match(out, /^tmpfs\s+2048\s.*\n750\n$/s);
    const mp = JSON.parse((await d.docker(['volume', 'inspect', 'tmpvol'])).stdout)[0].Mountpoint as string;
    assert.ok(!readFileSync('/proc/self/mountinfo', 'utf8').includes(` ${mp} `), 'unmounted when no container uses it');
    await d.docker(['volume', 'rm', 'tmpvol']);
  });

  test('after a reboot-like stop of everything (daemon, containers, mounts) volume data is there and containers start again', async () => {
    await d.docker(['volume', 'create', 'durable']);
    const c = (
      await d.docker([
        'run',
        '-d',
        '--name',
        'holder',
        '-v',
        'durable:/d',
        'busybox',
        'sh',
        '-c',
        'echo before > /d/f; sleep 300',
      ])
    ).stdout.trim();
    await eventually(async () => (await d.docker(['exec', c, 'cat', '/d/f'])).stdout === 'before\n', 5000, 'written');
    const pid = Number((await d.docker(['inspect', '-f', '{{.State.Pid}}', c])).stdout);
    await d.kill9();
    try {
      execFileSync('pkill', ['-9', '-f', `conmon.*${d.dir}`]); // the monitors and the container go: a host going down
    } catch {
      /* none left */
    }
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* died with its monitor */
    }
    for (const m of readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .map((l) => l.split(' ')[4] ?? '')
      .filter((m) => m.startsWith(`${d.dir}/`))
      .sort()
      .reverse())
      execFileSync('umount', ['-l', m]);
    await d.restart();
    await eventually(
      async () => (await d.docker(['inspect', '-f', '{{.State.Status}}', c])).stdout.trim() === 'exited',
      10_000,
      'recorded as exited',
    );
    await d.docker(['start', c]);
    assert.equal((await d.docker(['exec', c, 'cat', '/d/f'])).stdout, 'before\n');
    await d.docker(['rm', '-f', c]);
  });

  test('bind mounts: read-only cannot be written, rw can; a missing --mount source is refused and leaves nothing', async () => {
    const host = mkdtempSync(join(d.dir, 'bind-'));
    writeFileSync(join(host, 'in.txt'), 'from the host\n');
    const ro = await d.docker(
      ['run', '--rm', '-v', `${host}:/h:ro`, 'busybox', 'sh', '-c', 'cat /h/in.txt; echo x > /h/new'],
      { allowFail: true },
    );
    assert.equal(ro.stdout, 'from the host\n');
    assert.match(ro.stderr, /Read-only file system/);
    assert.ok(!existsSync(join(host, 'new')));
    await run('--mount', `type=bind,source=${host},target=/h`, 'busybox', 'sh', '-c', 'echo written > /h/out.txt');
    assert.equal(readFileSync(join(host, 'out.txt'), 'utf8'), 'written\n');
    await run('--mount', `type=bind,source=${host},target=/h,readonly`, 'busybox', 'true');
    const before = (await d.docker(['ps', '-aq'])).stdout;
    const vols = (await d.docker(['volume', 'ls', '-q'])).stdout;
    const bad = await d.docker(
      ['run', '--rm', '--mount', 'type=bind,source=/no/such/dir,target=/x', 'busybox', 'true'],
      { allowFail: true },
    );
    assert.match(bad.stderr, /bind source path does not exist: \/no\/such\/dir/);
    const dup = await d.docker(['run', '--rm', '-v', 'a1:/x', '-v', 'a2:/x', 'busybox', 'true'], { allowFail: true });
    assert.match(dup.stderr, /Duplicate mount point: \/x/);
    assert.equal((await d.docker(['ps', '-aq'])).stdout, before, 'no container left');
    assert.equal((await d.docker(['volume', 'ls', '-q'])).stdout, vols, 'no volume left');
  });

  test("an image's VOLUME gets an anonymous volume filled from the image; rm -v and --rm remove it; a new named volume is filled too", async () => {
    const ctx = mkdtempSync(join(d.dir, 'volimg-'));
    writeFileSync(
      join(ctx, 'Dockerfile'),
      'FROM busybox\nRUN mkdir -p /data && echo seeded > /data/seed && chown -R app /data\nVOLUME /data\n',
    );
    await d.docker(['build', '-q', '-t', 'volimg', ctx]);
    const c = (await d.docker(['run', '-d', 'volimg', 'sleep', '60'])).stdout.trim();
    const mounts = JSON.parse((await d.docker(['inspect', '-f', '{{json .Mounts}}', c])).stdout) as Array<{
      Type: string;
      Name: string;
      Destination: string;
    }>;
    assert.equal(mounts.length, 1);
    assert.equal(mounts[0]!.Type, 'volume');
    assert.equal(mounts[0]!.Destination, '/data');
    assert.match(mounts[0]!.Name, /^[0-9a-f]{64}$/);
    assert.equal((await d.docker(['exec', c, 'sh', '-c', 'cat /data/seed; stat -c %U /data'])).stdout, 'seeded\napp\n');
    await d.docker(['rm', '-f', '-v', c]);
    assert.doesNotMatch(
      (await d.docker(['volume', 'ls', '-q'])).stdout,
      new RegExp(mounts[0]!.Name),
      'rm -v removed it',
    );
    const before = (await d.docker(['volume', 'ls', '-q'])).stdout;
    await run('volimg', 'true');
    assert.equal((await d.docker(['volume', 'ls', '-q'])).stdout, before, '--rm removed its anonymous volume');
    assert.equal(
      await run('-v', 'seeded:/data', 'volimg', 'cat', '/data/seed'),
      'seeded\n',
      'a new named volume is filled from the image',
    );
    // prune: anonymous only, unless --all
    const kept = (await d.docker(['create', 'volimg', 'true'])).stdout.trim();
    const anon = (
      JSON.parse((await d.docker(['inspect', '-f', '{{json .Mounts}}', kept])).stdout) as Array<{ Name: string }>
    )[0]!.Name;
    await d.docker(['rm', kept]);
    const pruned = (await d.docker(['volume', 'prune', '-f'])).stdout;
    assert.match(pruned, new RegExp(anon));
    assert.doesNotMatch(pruned, /seeded/);
    assert.match((await d.docker(['volume', 'prune', '-f', '--all'])).stdout, /seeded/);
  });

  test('--volumes-from and tmpfs mounts', async () => {
    const src = (
      await d.docker(['run', '-d', '-v', 'shared:/shared', '-v', '/anon', 'busybox', 'sleep', '60'])
    ).stdout.trim();
    await run('--volumes-from', src, 'busybox', 'sh', '-c', 'echo a > /shared/a; echo b > /anon/b');
    assert.equal((await d.docker(['exec', src, 'cat', '/shared/a', '/anon/b'])).stdout, 'a\nb\n');
    const ro = await d.docker(['run', '--rm', '--volumes-from', `${src}:ro`, 'busybox', 'touch', '/shared/x'], {
      allowFail: true,
    });
    assert.match(ro.stderr, /Read-only file system/);
    assert.match(
      await run(
        '--tmpfs',
        '/scratch:size=2m,mode=1777',
        'busybox',
        'sh',
        '-c',
        'df -k /scratch | tail -1; stat -c %a /scratch',
      ),
      /tmpfs\s+2048\s.*\n1777\n$/,
    );
    assert.match(
      await run('--mount', 'type=tmpfs,target=/t,tmpfs-size=1048576', 'busybox', 'df', '-k', '/t'),
      /tmpfs\s+1024\s/,
    );
    await d.docker(['rm', '-f', '-v', src]);
  });

  test('berth CLI: network and volume verbs, and run with --network-alias, --ip, -p, --mount, --tmpfs', async () => {
    const b = (args: string[]) => d.berth(args).then((r) => r.stdout);
    await b(['network', 'create', '--subnet', '10.234.0.0/24', 'bnet']);
    assert.match(await b(['network', 'ls']), /bnet\s+bridge\s+local/);
    await b(['volume', 'create', 'bvol']);
    assert.match(await b(['volume', 'ls', '-q']), /^bvol$/m);
    await b([
      'run',
      '-d',
      '--name',
      'bsrv',
      '--network',
      'bnet',
      '--network-alias',
      'svc',
      '--ip',
      '10.234.0.50',
      '-p',
      '127.0.0.1::8080',
      '--mount',
      'type=volume,source=bvol,target=/v',
      'busybox',
      'sh',
      '-c',
      'echo hi > /v/x; httpd -f -p 8080 -h /v',
    ]);
    assert.equal(
      (await b(['inspect', '-f', '{{.NetworkSettings.Networks.bnet.IPAddress}}', 'bsrv'])).trim(),
      '10.234.0.50',
    );
    const out = await b([
      'run',
      '--rm',
      '--network',
      'bnet',
      '--tmpfs',
      '/t:size=1m',
      'busybox',
      'sh',
      '-c',
      'nslookup svc | grep -c 10.234.0.50; df -k /t | tail -1',
    ]);
    assert.match(out, /^1\n.*tmpfs\s+1024/s);
    assert.match(await b(['port', 'bsrv']), /^8080\/tcp -> 127\.0\.0\.1:\d+$/m);
    await b(['rm', '-f', 'bsrv']);
    assert.match(await b(['network', 'rm', 'bnet']), /bnet/);
    assert.match(await b(['volume', 'rm', 'bvol']), /bvol/);
  });

  test('a volume plugin provides a volume: docker volume create -d', async () => {
    const base = join(d.dir, 'plugin-volumes');
    const p = await volumePlugin(pluginDir, base);
    plugins.push(p);
    await d.docker(['volume', 'create', '-d', p.name, 'pvol']);
    assert.ok(existsSync(join(base, 'pvol')), 'the plugin created it');
    await run('-v', 'pvol:/v', 'busybox', 'sh', '-c', 'echo via plugin > /v/f');
    assert.equal(readFileSync(join(base, 'pvol', 'f'), 'utf8'), 'via plugin\n');
    assert.equal(await run('-v', 'pvol:/v', 'busybox', 'cat', '/v/f'), 'via plugin\n');
    const methods = p.calls.map((c) => c.method);
    assert.ok(
      methods.includes('Plugin.Activate') &&
        methods.includes('VolumeDriver.Create') &&
        methods.includes('VolumeDriver.Mount') &&
        methods.includes('VolumeDriver.Unmount'),
      methods.join(' '),
    );
    assert.equal((await d.docker(['volume', 'inspect', '-f', '{{.Driver}}', 'pvol'])).stdout.trim(), p.name);
    await d.docker(['volume', 'rm', 'pvol']);
    assert.ok(!existsSync(join(base, 'pvol')), 'the plugin removed it');
    // discovery through a .spec file (a URL) and a .json file ({"Addr": ...}) naming the same socket
    writeFileSync(join(pluginDir, 'specvol.spec'), `unix://${join(pluginDir, `${p.name}.sock`)}\n`);
    writeFileSync(
      join(pluginDir, 'jsonvol.json'),
      JSON.stringify({ Name: 'jsonvol', Addr: `unix://${join(pluginDir, `${p.name}.sock`)}` }),
    );
    for (const drv of ['specvol', 'jsonvol']) {
      await d.docker(['volume', 'create', '-d', drv, `v-${drv}`]);
      assert.ok(existsSync(join(base, `v-${drv}`)), `${drv}: the plugin behind the ${drv.slice(0, 4)} file made it`);
      await d.docker(['volume', 'rm', `v-${drv}`]);
    }
    const missing = await d.docker(['volume', 'create', '-d', 'no-such-plugin', 'xy'], { allowFail: true });
    assert.match(missing.stderr, /plugin "no-such-plugin" not found/);
  });

  test('a network plugin provides a network: docker network create -d', async () => {
    const p = await networkPlugin(pluginDir);
    plugins.push(p);
    await d.docker(['network', 'create', '-d', p.name, '--subnet', '10.233.0.0/24', 'pnet']);
    const nid = (await d.docker(['network', 'inspect', '-f', '{{.Id}}', 'pnet'])).stdout.trim();
    assert.ok(p.bridges.has(nid), 'the plugin made its network');
    const a = (
      await d.docker(['run', '-d', '--network', 'pnet', 'busybox', 'httpd', '-f', '-p', '8080', '-h', '/etc'])
    ).stdout.trim();
    const ip = (await d.docker(['inspect', '-f', '{{.NetworkSettings.Networks.pnet.IPAddress}}', a])).stdout.trim();
    assert.match(ip, /^10\.233\.0\.\d+$/);
    const got = await run(
      '--network',
      'pnet',
      'busybox',
      'sh',
      '-c',
      `ip -4 addr show eth0; printf 'GET /hostname HTTP/1.0\\r\\n\\r\\n' | nc -w 3 ${ip} 8080 | tail -n 1`,
    );
    assert.match(got, /inet 10\.233\.0\.\d+\/24/);
    assert.match(got, new RegExp(`${a.slice(0, 12)}\\s*$`), 'one container reaches the other over the plugin network');
    const methods = p.calls.map((c) => c.method);
    for (const m of [
      'NetworkDriver.CreateNetwork',
      'NetworkDriver.CreateEndpoint',
      'NetworkDriver.Join',
      'NetworkDriver.Leave',
      'NetworkDriver.DeleteEndpoint',
    ])
      assert.ok(methods.includes(m), m);
    await d.docker(['rm', '-f', a]);
    await d.docker(['network', 'rm', 'pnet']);
    assert.ok(!p.bridges.has(nid), 'the plugin removed its network');
  });
});
