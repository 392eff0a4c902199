/**
 * Issue #16 (Fidelity), containers on the configuration and filesystem side, each case checked
 * against what a private dockerd 20.10.24 (Debian's, cgroup v1 host, busybox loaded) answered on
 * the same machine: the archive endpoints through volumes, binds and the container's /etc files;
 * `docker diff`; inspect's HostConfig defaults and Mounts; Domainname and the default sysctls;
 * create's validation (words and codes); volume create and prune. The test runs against berthd only.
 */
import { before, after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startDaemon, type Daemon } from './harness.js';

interface Raw {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

describe('fidelity: container configuration and files', () => {
  let d: Daemon;
  let tmp: string;
  before(async () => {
    d = await startDaemon();
    tmp = mkdtempSync('/var/tmp/berth-fcc-');
  });
  after(async () => {
    await d?.stop();
    rmSync(tmp, { recursive: true, force: true });
  });

  /** One request; `body` null sends none at all (chunked framing, zero bytes). */
  const raw = (
    method: string,
    path: string,
    body: Buffer | string | null = null,
    headers: Record<string, string> = {},
  ) =>
    new Promise<Raw>((res, rej) => {
      const req = http.request({ socketPath: d.sock, path, method, headers }, (r) => {
        const chunks: Buffer[] = [];
        r.on('data', (c: Buffer) => chunks.push(c));
        r.on('end', () => res({ status: r.statusCode ?? 0, headers: r.headers, body: Buffer.concat(chunks) }));
      });
      req.on('error', rej);
      req.end(body ?? undefined);
    });
  const message = (r: Raw) => (JSON.parse(r.body.toString()) as { message: string }).message;
  /** `tar -tv`-like listing of a tar: "name type" per entry. */
  const listTar = (tar: Buffer) => {
    const f = join(tmp, `l${Math.random()}.tar`);
    writeFileSync(f, tar);
    return execFileSync('tar', ['-tf', f], { encoding: 'utf8' }).split('\n').filter(Boolean);
  };
  const fileOfTar = (tar: Buffer) => {
    const f = join(tmp, `x${Math.random()}.tar`);
    writeFileSync(f, tar);
    return execFileSync('tar', ['-xOf', f], { encoding: 'utf8' });
  };
  const tarOf = (name: string, content: string) => {
    const dir = mkdtempSync(join(tmp, 'in-'));
    writeFileSync(join(dir, name), content);
    return execFileSync('tar', ['-C', dir, '-cf', '-', name]);
  };
  const get = (ctr: string, path: string) =>
    raw('GET', `/v1.41/containers/${ctr}/archive?path=${encodeURIComponent(path)}`);
  const put = (ctr: string, path: string, tar: Buffer) =>
    raw('PUT', `/v1.41/containers/${ctr}/archive?path=${encodeURIComponent(path)}`, tar, {
      'Content-Type': 'application/x-tar',
    });
  const inspect = async (ctr: string) =>
    JSON.parse((await d.docker(['inspect', ctr])).stdout)[0] as Record<string, Record<string, unknown>>;

  test('archive: volumes and binds through their mounts, the real /etc files, even before a start', async () => {
    const bind = mkdtempSync(join(tmp, 'bind-'));
    writeFileSync(join(bind, 'bf'), 'bindfile\n');
    await d.docker(['create', '--name', 'ar', '-v', `${bind}:/b`, '-v', 'arvol:/v', 'busybox']);
    // never started: dockerd 20.10 answers its empty placeholders here (resolv.conf, hosts: 0 bytes);
    // berth writes the files at create, and serves them
    assert.match(fileOfTar((await get('ar', '/etc/resolv.conf')).body), /\S/);
    assert.match(fileOfTar((await get('ar', '/etc/hosts')).body), /^127\.0\.0\.1\tlocalhost$/m);
    const hn = (await inspect('ar'))['Config']!['Hostname'] as string;
    assert.equal(fileOfTar((await get('ar', '/etc/hostname')).body), `${hn}\n`);
    // a bind read, a volume written and read back (dockerd: bindfile / hi)
    assert.equal(fileOfTar((await get('ar', '/b/bf')).body), 'bindfile\n');
    assert.equal((await put('ar', '/v', tarOf('in', 'hi\n'))).status, 200);
    assert.equal(fileOfTar((await get('ar', '/v/in')).body), 'hi\n');
    const vol = JSON.parse((await d.docker(['volume', 'inspect', 'arvol'])).stdout)[0] as { Mountpoint: string };
    assert.equal(readFileSync(join(vol.Mountpoint, 'in'), 'utf8'), 'hi\n'); // in the volume, not the rootfs under it
    assert.equal(fileOfTar((await get('ar', '/v/../b/bf')).body), 'bindfile\n');
    // entry names as dockerd's: `/v/.` -> "./", "./in"; `/v/` and `/v` -> "v/", "v/in"
    assert.deepEqual(listTar((await get('ar', '/v/.')).body), ['./', './in']);
    assert.deepEqual(listTar((await get('ar', '/v/')).body), ['v/', 'v/in']);
    assert.deepEqual(listTar((await get('ar', '/v')).body), ['v/', 'v/in']);
    // paths as dockerd reads them: cleaned lexically, a trailing / or /. follows a last symlink
    // and needs a directory (dockerd: 500 "lstat <host path>/etc/passwd/.: not a directory")
    await d.docker([
      'run',
      '--name',
      'arl',
      '-v',
      'arvol:/v',
      'busybox',
      'sh',
      '-c',
      'ln -s /v /lv; ln -s /etc/passwd /lf',
    ]);
    const stat = async (p: string) => {
      const r = await raw('HEAD', `/v1.41/containers/arl/archive?path=${encodeURIComponent(p)}`);
      const h = r.headers['x-docker-container-path-stat'];
      return [r.status, h ? (JSON.parse(Buffer.from(String(h), 'base64').toString()) as { name: string }).name : ''];
    };
    // dockerd: [200,"/"], [200,"lv"] (the link), [200,"lv"] (the dir), [200,"."], [200,"."], [500], [500]
    assert.deepEqual(await stat('/nope/..'), [200, '/']);
    assert.deepEqual(await stat('/lv'), [200, 'lv']);
    assert.deepEqual(await stat('/lv/'), [200, 'lv']);
    assert.deepEqual(await stat('/lv/.'), [200, '.']);
    assert.deepEqual(await stat('/etc/../v/.'), [200, '.']);
    assert.deepEqual(await stat('/lf/'), [400, '']);
    assert.deepEqual(await stat('/etc/passwd/.'), [400, '']);
    assert.deepEqual(listTar((await get('arl', '/lv/')).body), ['lv/', 'lv/in']);
    assert.deepEqual(listTar((await get('arl', '/lv')).body), ['lv']);
    assert.equal(message(await get('arl', '/etc/passwd/.')), 'lstat /etc/passwd/.: not a directory');
    await d.docker(['rm', 'arl']);
    // running: the same files, the hosts file is the one the container reads
    await d.docker(['start', 'ar']);
    await d.docker(['run', '-d', '--name', 'ar2', '--network', 'none', 'busybox', 'sleep', '300']);
    const inCtr = (await d.docker(['exec', 'ar2', 'cat', '/etc/hosts'])).stdout;
    assert.equal(fileOfTar((await get('ar2', '/etc/hosts')).body), inCtr);
    assert.deepEqual(
      listTar((await get('ar2', '/etc')).body).filter((n) => /hosts$|hostname$|resolv\.conf$/.test(n)),
      ['etc/hostname', 'etc/hosts', 'etc/resolv.conf'],
    );
    await d.docker(['rm', '-f', 'ar', 'ar2']);
  });

  test("archive: PUT refusals in dockerd's order and words, and nothing written", async () => {
    const bind = mkdtempSync(join(tmp, 'robind-'));
    writeFileSync(join(bind, 'bf'), 'x');
    await d.docker(['create', '--name', 'ro1', '-v', 'rovol:/ro:ro', '-v', `${bind}:/b:ro`, '--read-only', 'busybox']);
    await d.docker(['create', '--name', 'ro2', '-v', 'rovol:/ro:ro', '-v', `${bind}:/b:ro`, 'busybox']);
    const t = tarOf('f', 'x');
    // dockerd: {"message":"mounted volume is marked read-only"} (HTTP 500 there; a 409 here)
    for (const [ctr, path, want, status] of [
      ['ro1', '/ro', 'mounted volume is marked read-only', 409],
      ['ro1', '/b', 'mounted volume is marked read-only', 409],
      ['ro1', '/etc', 'container rootfs is marked read-only', 409],
      ['ro1', '/ro/../etc', 'container rootfs is marked read-only', 409],
      ['ro1', '/nope', 'Could not find the file /nope in container ro1', 404],
      ['ro2', '/ro', 'mounted volume is marked read-only', 409],
      ['ro2', '/b/bf', 'extraction point is not a directory', 400],
      ['ro2', '/nope', 'Could not find the file /nope in container ro2', 404],
    ] as const) {
      const r = await put(ctr, path, t);
      assert.equal(r.status, status, `${ctr} ${path}`);
      assert.equal(message(r), want);
    }
    assert.deepEqual(execFileSync('ls', [bind], { encoding: 'utf8' }), 'bf\n');
    assert.equal((await put('ro2', '/etc', t)).status, 200); // dockerd: 200
    // dockerd: 404 {"message":"Could not find the file /nope in container ro1"}; 400 for no path at all
    assert.equal(message(await get('ro1', '/nope')), 'Could not find the file /nope in container ro1');
    const none = await raw('GET', '/v1.41/containers/ro1/archive');
    assert.equal(none.status, 400);
    assert.equal(message(none), 'bad parameter: pathcannot be empty');
    // dockerd's events: archive-path for a GET, extract-to-dir for a PUT done, none for a HEAD or a refusal
    await new Promise((r) => setTimeout(r, 1050 - (Date.now() % 1000))); // past a second's edge: earlier events out
    const since = Math.floor(Date.now() / 1000);
    await raw('HEAD', '/v1.41/containers/ro2/archive?path=/etc');
    await get('ro2', '/etc/passwd');
    await put('ro2', '/tmp', tarOf('g', 'x'));
    await put('ro2', '/ro', tarOf('g', 'x'));
    const ev = await d.api('GET', `/v1.41/events?since=${since}&until=${Math.floor(Date.now() / 1000) + 1}`);
    const actions = ev.text
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { Type: string; Action: string; Actor: { Attributes: Record<string, string> } })
      .filter((e) => e.Type === 'container' && e.Actor.Attributes['name'] === 'ro2')
      .map((e) => e.Action);
    assert.deepEqual(actions, ['archive-path', 'extract-to-dir']);
    await d.docker(['rm', '-f', 'ro1', 'ro2']);
  });

  test('diff: only what changed, a directory only for a change of its own or below it (dockerd)', async () => {
    await d.docker([
      'run',
      '--name',
      'df',
      '--network',
      'none',
      'busybox',
      'sh',
      '-c',
      'echo a > /tmp/new; mkdir -p /usr/local/x; echo b >> /etc/passwd; rm /bin/ls; touch /root; mkdir /newdir; ' +
        'ln -s x /newlink; rm -r /home; chmod 700 /var; cat /etc/group > /dev/null; touch -c /etc/group',
    ]);
    const changes = (await d.api('GET', '/containers/df/changes')).body as Array<{ Path: string; Kind: number }>;
    // dockerd 20.10 (overlay2, naive diff), sorted: /root (touched: mtime only) is not reported
    const want = [
      ['/bin', 0],
      ['/bin/ls', 2],
      ['/etc', 0],
      ['/etc/group', 0],
      ['/etc/passwd', 0],
      ['/home', 2],
      ['/newdir', 1],
      ['/newlink', 1],
      ['/tmp', 0],
      ['/tmp/new', 1],
      ['/usr', 0],
      ['/usr/local', 1],
      ['/usr/local/x', 1],
      ['/var', 0],
    ];
    assert.deepEqual(
      changes.map((c) => [c.Path, c.Kind]),
      want,
    );
    // a parent comes before its entries
    for (const [i, c] of changes.entries())
      for (const p of changes.slice(i + 1)) assert.ok(!c.Path.startsWith(`${p.Path}/`), `${p.Path} after ${c.Path}`);
    await d.docker(['rm', 'df']);
    // a directory removed and made again (overlay: opaque) hides what was below it, at any depth
    await d.docker([
      'run',
      '--name',
      'dfo',
      '--network',
      'none',
      'busybox',
      'sh',
      '-c',
      'rm -rf /var /usr; mkdir /var; mkdir /var/new /var/www; mkdir -p /usr/sbin',
    ]);
    const opaque = ((await d.api('GET', '/containers/dfo/changes')).body as Array<{ Path: string; Kind: number }>).map(
      (c) => `${'CAD'[c.Kind]} ${c.Path}`,
    );
    const sbin = (await d.docker(['run', '--rm', 'busybox', 'ls', '/usr/sbin'])).stdout.split('\n').filter(Boolean);
    // dockerd 20.10, sorted: C /usr, D /usr/bin, C /usr/sbin, D /usr/sbin/<each>, C /var, A /var/new
    // (/var/www made again the same: not reported)
    assert.deepEqual(
      opaque.sort(),
      ['A /var/new', 'C /usr', 'C /usr/sbin', 'C /var', 'D /usr/bin', ...sbin.map((n) => `D /usr/sbin/${n}`)].sort(),
    );
    assert.ok(sbin.length > 5);
    await d.docker(['rm', 'dfo']);
    // a container that changed nothing: dockerd answers null
    await d.docker(['run', '--name', 'df0', '--network', 'none', 'busybox', 'true']);
    assert.equal((await d.api('GET', '/containers/df0/changes')).text.trim(), 'null');
    await d.docker(['rm', 'df0']);
  });

  test("inspect: dockerd's HostConfig defaults, no tmpfs in Mounts", async () => {
    await d.docker([
      'create',
      '--name',
      'in1',
      '--tmpfs',
      '/run/',
      '--mount',
      'type=tmpfs,target=/mt',
      '-v',
      'invol:/v',
      '-e',
      'A=1',
      'busybox',
    ]);
    await d.docker(['create', '--name', 'in2', '--privileged', 'busybox']);
    await d.docker(['create', '--name', 'in3', '--security-opt', 'systempaths=unconfined', 'busybox']);
    const c1 = await inspect('in1');
    const hc = c1['HostConfig']!;
    // dockerd 20.10: the ten default masked paths (berth masks the powercap tree too, as dockerd 25+)
    for (const p of [
      '/proc/asound',
      '/proc/acpi',
      '/proc/kcore',
      '/proc/keys',
      '/proc/latency_stats',
      '/proc/timer_list',
      '/proc/timer_stats',
      '/proc/sched_debug',
      '/proc/scsi',
      '/sys/firmware',
    ])
      assert.ok((hc['MaskedPaths'] as string[]).includes(p), p);
    assert.deepEqual(hc['ReadonlyPaths'], ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger']);
    assert.equal(hc['IpcMode'], 'private');
    assert.equal(hc['ShmSize'], 67108864);
    assert.equal(hc['PidsLimit'], null);
    assert.equal(hc['MemorySwappiness'], null);
    assert.ok(['host', 'private'].includes(hc['CgroupnsMode'] as string));
    assert.equal('Init' in hc, false); // omitempty in dockerd
    assert.deepEqual(hc['Tmpfs'], { '/run/': '' });
    // dockerd lists the volume and the --mount tmpfs, not the --tmpfs one
    assert.deepEqual(
      (c1['Mounts'] as unknown as Array<{ Type: string; Destination: string }>)
        .map((m) => [m.Type, m.Destination])
        .sort(),
      [
        ['tmpfs', '/mt'],
        ['volume', '/v'],
      ],
    );
    // the client's env first, then the image's (dockerd: ["A=1", "PATH=..."])
    assert.deepEqual(c1['Config']!['Env'], [
      'A=1',
      'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    ]);
    assert.equal(c1['Config']!['Volumes'], null);
    assert.equal(c1['Config']!['OnBuild'], null);
    // privileged: null lists (dockerd)
    const hc2 = (await inspect('in2'))['HostConfig']!;
    assert.equal(hc2['MaskedPaths'], null);
    assert.equal(hc2['ReadonlyPaths'], null);
    // systempaths=unconfined (the CLI sends [] for both): kept, and the container really sees /proc/kcore
    const hc3 = (await inspect('in3'))['HostConfig']!;
    assert.deepEqual([hc3['MaskedPaths'], hc3['ReadonlyPaths']], [[], []]);
    await d.docker(['rm', 'in1', 'in2', 'in3']);
    const masked = await d.docker(['run', '--rm', '--network', 'none', 'busybox', 'sh', '-c', 'test -s /proc/kcore'], {
      allowFail: true,
    });
    assert.notEqual(masked.code, 0);
    const open = await d.docker([
      'run',
      '--rm',
      '--network',
      'none',
      '--security-opt',
      'systempaths=unconfined',
      'busybox',
      'sh',
      '-c',
      'ls /sys/firmware | wc -l',
    ]);
    assert.notEqual(open.stdout.trim(), '0');
    // the API's explicit lists (dockerd kept them: [] and ["/proc/x"])
    const r = await d.api('POST', '/v1.41/containers/create?name=in4', {
      Image: 'busybox',
      HostConfig: { PidsLimit: 5, MaskedPaths: [], ReadonlyPaths: ['/proc/x'], IpcMode: 'shareable' },
    });
    assert.equal(r.status, 201);
    const hc4 = (await inspect('in4'))['HostConfig']!;
    assert.deepEqual(
      [hc4['PidsLimit'], hc4['MaskedPaths'], hc4['ReadonlyPaths'], hc4['IpcMode']],
      [5, [], ['/proc/x'], 'shareable'],
    );
    await d.docker(['rm', 'in4']);
    // a field Docker's HostConfig lacks (the CRI's cgroup v2 `Unified`) is ignored, as dockerd
    // ignores what it does not know: created, started, and no such field in inspect (this host is v1)
    const u = await d.api('POST', '/v1.41/containers/create?name=in5', {
      Image: 'busybox',
      HostConfig: { unified: { 'memory.high': '1000000' } },
    });
    assert.equal(u.status, 201, u.text);
    assert.equal((await d.api('POST', '/containers/in5/update', { Unified: { 'memory.high': '1' } })).status, 200);
    assert.equal((await d.api('POST', '/containers/in5/start')).status, 204);
    assert.equal('Unified' in (await inspect('in5'))['HostConfig']!, false);
    await d.docker(['rm', '-f', 'in5']);
  });

  test("list: Mounts as inspect's, and dockerd's filters volume, network, is-task, publish, expose", async () => {
    const bind = mkdtempSync(join(tmp, 'lsbind-'));
    await d.docker(['create', '--name', 'ls1', '--tmpfs', '/run', '-v', `${bind}:/b`, '-v', 'lsvol:/v', 'busybox']);
    await d.docker(['run', '-d', '--name', 'ls2', '-p', '127.0.0.1::80', '--expose', '90', 'busybox', 'sleep', '300']);
    await d.docker(['create', '--name', 'ls3', '--network', 'none', '--expose', '90', 'busybox']);
    const names = async (filters: unknown) => {
      const r = await d.api(
        'GET',
        `/v1.41/containers/json?all=1&filters=${encodeURIComponent(JSON.stringify(filters))}`,
      );
      assert.equal(r.status, 200, r.text);
      return (r.body as Array<{ Names: string[] }>).map((c) => c.Names[0]).sort();
    };
    const all = (await d.api('GET', '/v1.41/containers/json?all=1')).body as Array<{
      Names: string[];
      Mounts: unknown;
    }>;
    // dockerd lists the volume and the bind (not the tmpfs), as inspect does
    assert.deepEqual(all.find((c) => c.Names[0] === '/ls1')!.Mounts, (await inspect('ls1'))['Mounts']);
    // dockerd: volume by name, by destination, a bind by its source; a tmpfs destination matches nothing
    assert.deepEqual(await names({ volume: ['lsvol'] }), ['/ls1']);
    assert.deepEqual(await names({ volume: ['/v'] }), ['/ls1']);
    assert.deepEqual(await names({ volume: [bind] }), ['/ls1']);
    assert.deepEqual(await names({ volume: ['/run'] }), []);
    assert.deepEqual(await names({ network: ['none'] }), ['/ls3']);
    assert.deepEqual(await names({ 'is-task': ['true'] }), []);
    assert.deepEqual(await names({ 'is-task': ['false'] }), ['/ls1', '/ls2', '/ls3']);
    // NetworkSettings.Ports (a wired container's): ls3 exposes 90 but has no network
    assert.deepEqual(await names({ publish: ['80'] }), ['/ls2']);
    assert.deepEqual(await names({ expose: ['85-95/tcp'] }), ['/ls2']);
    assert.deepEqual(await names({ publish: ['90'] }), []);
    for (const [filters, msg] of [
      [{ bogus: ['x'] }, "Invalid filter 'bogus'"],
      [{ status: ['bogus'] }, "Invalid filter 'status=bogus'"],
      [{ publish: ['x'] }, 'error while looking up for publish x: strconv.ParseUint: parsing "x": invalid syntax'],
      [{ publish: ['a:1'] }, "filter for 'publish' should not contain ':': a:1"],
    ] as const) {
      const r = await d.api(
        'GET',
        `/v1.41/containers/json?all=1&filters=${encodeURIComponent(JSON.stringify(filters))}`,
      );
      assert.equal(r.status, 400);
      assert.equal((r.body as { message: string }).message, msg);
    }
    await d.docker(['rm', '-f', 'ls1', 'ls2', 'ls3']);
  });

  test("Domainname and dockerd's default sysctls are applied, only in the container's own namespaces", async () => {
    const script =
      'cat /proc/sys/kernel/domainname /proc/sys/net/ipv4/ping_group_range /proc/sys/net/ipv4/ip_unprivileged_port_start';
    // dockerd: example.com / 0\t2147483647 / 0
    for (const runtime of ['crun', 'runc']) {
      const own = await d.docker([
        'run',
        '--rm',
        '--runtime',
        runtime,
        '--network',
        'none',
        '--domainname',
        'example.com',
        'busybox',
        'sh',
        '-c',
        script,
      ]);
      assert.equal(own.stdout, 'example.com\n0\t2147483647\n0\n', runtime);
    }
    // without --domainname: "(none)"; the container's own --sysctl wins over the default
    const plain = await d.docker([
      'run',
      '--rm',
      '--network',
      'none',
      '--sysctl',
      'net.ipv4.ping_group_range=1 1',
      'busybox',
      'sh',
      '-c',
      script,
    ]);
    assert.equal(plain.stdout, '(none)\n1\t1\n0\n');
    // --network host: the host's values, untouched (dockerd: 1\t0 / 1024 on this host)
    const hostVals = ['ping_group_range', 'ip_unprivileged_port_start'].map((f) =>
      readFileSync(`/proc/sys/net/ipv4/${f}`, 'utf8'),
    );
    const host = await d.docker([
      'run',
      '--rm',
      '--network',
      'host',
      'busybox',
      'sh',
      '-c',
      'cat /proc/sys/net/ipv4/ping_group_range /proc/sys/net/ipv4/ip_unprivileged_port_start',
    ]);
    assert.equal(host.stdout, hostVals.join(''));
    assert.deepEqual(
      ['ping_group_range', 'ip_unprivileged_port_start'].map((f) => readFileSync(`/proc/sys/net/ipv4/${f}`, 'utf8')),
      hostVals,
    );
  });

  test("create validation: dockerd's words and status codes, and nothing made", async () => {
    const before = (await d.docker(['ps', '-aq'])).stdout;
    const volsBefore = (await d.docker(['volume', 'ls', '-q'])).stdout;
    const cases: Array<[string, unknown, number, string]> = [
      ['', { Image: 'busybox', Env: ['=x'] }, 400, 'invalid environment variable: =x'],
      ['', { Image: 'busybox', Env: [''] }, 400, 'invalid environment variable: '],
      [
        '',
        { Image: 'busybox', HostConfig: { Tmpfs: { '/': '' } } },
        400,
        "invalid specification: destination can't be '/'",
      ],
      [
        '',
        { Image: 'busybox', HostConfig: { Tmpfs: { rel: '' } } },
        400,
        "invalid mount path: 'rel' mount path must be absolute",
      ],
      [
        '',
        { Image: 'busybox', HostConfig: { Mounts: [{ Type: 'tmpfs', Target: '/' }] } },
        400,
        `invalid mount config for type "tmpfs": invalid specification: destination can't be '/'`,
      ],
      [
        '',
        { Image: 'busybox', HostConfig: { Mounts: [{ Type: 'volume', Target: '/' }] } },
        400,
        `invalid mount config for type "volume": invalid specification: destination can't be '/'`,
      ],
      [
        '',
        { Image: 'busybox', HostConfig: { Mounts: [{ Type: 'bind', Source: '/tmp', Target: '/' }] } },
        400,
        `invalid mount config for type "bind": invalid specification: destination can't be '/'`,
      ],
      // dockerd: the same words with HTTP 500; the client's input, so a 400 here
      [
        '',
        { Image: 'busybox', HostConfig: { Binds: ['/tmp:/'] } },
        400,
        `invalid volume specification: '/tmp:/': invalid mount config for type "bind": invalid specification: destination can't be '/'`,
      ],
      [
        '',
        { Image: 'busybox', HostConfig: { Binds: ['newvol:/'] } },
        400,
        `invalid volume specification: 'newvol:/': invalid mount config for type "volume": invalid specification: destination can't be '/'`,
      ],
      ['', { Image: 'busybox', HostConfig: { VolumesFrom: ['nope'] } }, 400, 'No such container: nope'],
      ['', { Image: 'busybox', HostConfig: { VolumesFrom: ['nope:bogus'] } }, 400, 'invalid mode: bogus'],
      [
        '',
        { Image: 'busybox', HostConfig: { Mounts: [{ Type: 'bogus', Target: '/x' }] } },
        400,
        'invalid mount config for type "bogus": mount type unknown',
      ],
      [
        '',
        { Image: 'busybox', HostConfig: { Mounts: [{ Type: 'tmpfs', Source: 'x', Target: '/x' }] } },
        400,
        'invalid mount config for type "tmpfs": field Source must not be specified',
      ],
      [
        '',
        {
          Image: 'busybox',
          HostConfig: {
            Mounts: [{ Type: 'bind', Source: '/tmp', Target: '/x', BindOptions: { Propagation: 'bogus' } }],
          },
        },
        400,
        'invalid mount config for type "bind": invalid propagation mode: bogus',
      ],
      [
        '',
        { Image: 'busybox', HostConfig: { Binds: ['/tmp:rel'] } },
        400, // dockerd: 500
        `invalid volume specification: '/tmp:rel': invalid mount config for type "bind": invalid mount path: 'rel' mount path must be absolute`,
      ],
      ['bogus', { Image: 'busybox' }, 400, '"bogus": unknown operating system or architecture: invalid argument'],
      [
        'linux/a.b',
        { Image: 'busybox' },
        400,
        '"a.b" is an invalid component of "linux/a.b": platform specifier component must match "^[A-Za-z0-9_-]+$": invalid argument',
      ],
      ['a/b/c/d', { Image: 'busybox' }, 400, '"a/b/c/d": cannot parse platform specifier: invalid argument'],
      [
        'linux/arm64',
        { Image: 'busybox' },
        404,
        'image with reference busybox was found but does not match the specified platform: wanted linux/arm64, actual: linux/amd64',
      ],
      [
        'linux/aarch64',
        { Image: 'busybox' },
        404,
        'image with reference busybox was found but does not match the specified platform: wanted linux/arm64, actual: linux/amd64',
      ],
      [
        'windows',
        { Image: 'busybox' },
        404,
        'image with reference busybox was found but does not match the specified platform: wanted windows/amd64, actual: linux/amd64',
      ],
    ];
    for (const [platform, body, status, msg] of cases) {
      const r = await d.api('POST', `/v1.41/containers/create?platform=${encodeURIComponent(platform)}`, body);
      assert.equal(r.status, status, JSON.stringify([platform, body]));
      assert.equal((r.body as { message: string }).message, msg);
    }
    assert.equal((await d.docker(['ps', '-aq'])).stdout, before);
    assert.equal((await d.docker(['volume', 'ls', '-q'])).stdout, volsBefore);
    // Binds ["/data"]: an anonymous volume there (dockerd: Mounts [volume /data RW Mode "z"])
    const anon = await d.api('POST', '/v1.41/containers/create', {
      Image: 'busybox',
      HostConfig: { Binds: ['/data'] },
    });
    assert.equal(anon.status, 201, anon.text);
    const anonId = (anon.body as { Id: string }).Id;
    const am = (await inspect(anonId))['Mounts'] as unknown as Array<Record<string, unknown>>;
    assert.deepEqual(
      am.map((m) => [m['Type'], m['Destination'], m['RW'], m['Mode']]),
      [['volume', '/data', true, 'z']],
    );
    await d.docker(['rm', '-v', anonId]);
    // accepted as dockerd accepts them (normalized): x86_64, Linux/AMD64, linux/amd64/v2, linux
    for (const p of ['x86_64', 'Linux/AMD64', 'linux/amd64/v2', 'linux', 'amd64']) {
      const r = await d.api('POST', `/v1.41/containers/create?platform=${encodeURIComponent(p)}`, { Image: 'busybox' });
      assert.equal(r.status, 201, p);
      await d.docker(['rm', (r.body as { Id: string }).Id]);
    }
  });

  test('volumes: create needs a body; unset maps are null; prune before API 1.42 removes named ones too', async () => {
    const count = async () => (await d.docker(['volume', 'ls', '-q'])).stdout.split('\n').filter(Boolean).length;
    const n0 = await count();
    // dockerd: 400 {"message":"got EOF while reading request body"}, whatever the framing
    for (const h of [{}, { 'Content-Length': '0' }, { 'Content-Type': 'application/json' }]) {
      const r = await raw('POST', '/v1.41/volumes/create', null, h);
      assert.equal(r.status, 400);
      assert.equal(message(r), 'got EOF while reading request body');
    }
    assert.equal(await count(), n0);
    // dockerd: {"CreatedAt":"...Z","Driver":"local","Labels":null,...,"Options":null,"Scope":"local"}
    const v1 = await d.api('POST', '/v1.41/volumes/create', { Name: 'fv1' });
    assert.equal(v1.status, 201);
    const b1 = v1.body as Record<string, unknown>;
    assert.equal(b1['Labels'], null);
    assert.equal(b1['Options'], null);
    assert.match(b1['CreatedAt'] as string, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    // sent empty: {} kept (dockerd)
    const v2 = await d.api('POST', '/v1.41/volumes/create', { Name: 'fv2', Labels: {}, DriverOpts: {} });
    assert.deepEqual(
      [(v2.body as Record<string, unknown>)['Labels'], (v2.body as Record<string, unknown>)['Options']],
      [{}, {}],
    );
    assert.equal(((await d.api('GET', '/v1.41/volumes/fv1')).body as Record<string, unknown>)['Labels'], null);
    const anonymous = await d.api('POST', '/v1.41/volumes/create', {});
    assert.equal(anonymous.status, 201);
    await d.api('POST', '/v1.41/volumes/create', { Name: 'fv-used' });
    await d.docker(['create', '--name', 'vu', '-v', 'fv-used:/x', 'busybox']);
    // API 1.45: only anonymous volumes unless all=true
    const p45 = (await d.api('POST', '/v1.45/volumes/prune')).body as { VolumesDeleted: string[] | null };
    assert.ok(!(p45.VolumesDeleted ?? []).includes('fv1'));
    // API 1.41 (dockerd 20.10): every unused volume, named ones too; a used one stays
    const p41 = (await d.api('POST', '/v1.41/volumes/prune')).body as { VolumesDeleted: string[] };
    assert.ok(p41.VolumesDeleted.includes('fv1') && p41.VolumesDeleted.includes('fv2'), JSON.stringify(p41));
    assert.ok(!p41.VolumesDeleted.includes('fv-used'));
    assert.equal((await d.api('GET', '/v1.41/volumes/fv-used')).status, 200);
    // dockerd 20.10: `all` is no filter before 1.42, nor is anything but label/label!
    for (const [v, f] of [
      ['1.41', 'all'],
      ['1.45', 'bogus'],
    ]) {
      const r = await d.api(
        'POST',
        `/v${v}/volumes/prune?filters=${encodeURIComponent(JSON.stringify({ [f!]: ['true'] }))}`,
      );
      assert.equal(r.status, 400);
      assert.equal((r.body as { message: string }).message, `Invalid filter '${f}'`);
    }
    assert.equal(((await d.api('GET', '/v1.41/volumes')).body as { Warnings: unknown }).Warnings, null);
    // dockerd: the driver is looked up first (404), then the name
    const drv = await d.api('POST', '/v1.41/volumes/create', { Name: 'xy', Driver: 'nope' });
    assert.equal(drv.status, 404);
    assert.equal(
      (drv.body as { message: string }).message,
      'create xy: error looking up volume plugin nope: plugin "nope" not found',
    );
    const short = await d.api('POST', '/v1.41/volumes/create', { Name: 'x' });
    assert.equal(short.status, 400);
    assert.equal(
      (short.body as { message: string }).message,
      'create x: volume name is too short, names should be at least two alphanumeric characters',
    );
    await d.docker(['rm', 'vu']);
  });
});
