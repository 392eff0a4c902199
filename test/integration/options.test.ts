/** Issue #2: limits and security options take effect in the running container, checked from inside and from cgroups. */
import { before, after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, mkdtempSync, readlinkSync, rmdirSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { startDaemon, eventually, type Daemon } from './harness.js';

describe('limits and security options', () => {
  let d: Daemon;
  before(async () => {
    d = await startDaemon();
  });
  after(async () => {
    await d?.stop();
  });
  const run = async (args: string[], opts: { allowFail?: boolean } = {}) => d.docker(['run', '--rm', ...args], opts);
  const cg = (ctrl: string, id: string, file: string) =>
    readFileSync(`/sys/fs/cgroup/${ctrl}/berth/${id}/${file}`, 'utf8').trim();

  test('--memory, --cpus, --cpu-shares, --pids-limit land in the cgroup; update changes them live', async () => {
    const id = (
      await d.docker([
        'run',
        '-d',
        '--memory',
        '64m',
        '--cpus',
        '0.5',
        '--cpu-shares',
        '512',
        '--pids-limit',
        '20',
        'busybox',
        'sleep',
        '100',
      ])
    ).stdout.trim();
    assert.equal(cg('memory', id, 'memory.limit_in_bytes'), String(64 * 1024 * 1024));
    assert.equal(cg('cpu', id, 'cpu.cfs_quota_us'), '50000');
    assert.equal(cg('cpu', id, 'cpu.cfs_period_us'), '100000');
    assert.equal(cg('cpu', id, 'cpu.shares'), '512');
    assert.equal(cg('pids', id, 'pids.max'), '20');
    await d.docker(['update', '--memory', '128m', '--pids-limit', '30', id]);
    assert.equal(cg('memory', id, 'memory.limit_in_bytes'), String(128 * 1024 * 1024));
    assert.equal(cg('pids', id, 'pids.max'), '30');
    const ins = JSON.parse((await d.docker(['inspect', id])).stdout)[0].HostConfig;
    assert.equal(ins.Memory, 128 * 1024 * 1024);
    await d.docker(['rm', '-f', id]);
  });

  test("--ulimit sets limits; the default is the daemon's own", async () => {
    assert.equal((await run(['--ulimit', 'nofile=100:200', 'busybox', 'sh', '-c', 'ulimit -n'])).stdout.trim(), '100');
    const own = /Max open files\s+(\d+)/.exec(readFileSync('/proc/self/limits', 'utf8'))?.[1];
    assert.equal((await run(['busybox', 'sh', '-c', 'ulimit -n'])).stdout.trim(), own);
  });

  test('--read-only, --user, --cap-drop, --privileged, default seccomp and capabilities', async () => {
    const ro = await run(['--read-only', 'busybox', 'touch', '/x'], { allowFail: true });
    assert.notEqual(ro.code, 0);
    assert.match(ro.stderr, /Read-only file system/);
    assert.equal(
      (await run(['--read-only', 'busybox', 'sh', '-c', 'echo ok > /tmp/x 2>/dev/null || echo blocked'])).stdout.trim(),
      'blocked',
    );
    assert.equal((await run(['--user', 'app', 'busybox', 'id', '-u'])).stdout.trim(), '1000');
    assert.equal(
      (await run(['--user', '1234:5678', 'busybox', 'sh', '-c', 'echo $(id -u):$(id -g)'])).stdout.trim(),
      '1234:5678',
    );
    const chown = await run(['--cap-drop', 'CHOWN', 'busybox', 'chown', 'app', '/tmp'], { allowFail: true });
    assert.notEqual(chown.code, 0, 'chown without CAP_CHOWN fails');
    assert.equal((await run(['busybox', 'chown', 'app', '/tmp'])).code, 0);
    const mount = await run(['busybox', 'mount', '-t', 'tmpfs', 'none', '/tmp'], { allowFail: true });
    assert.notEqual(mount.code, 0, 'mount is refused by default');
    assert.equal(
      (await run(['--privileged', 'busybox', 'sh', '-c', 'mount -t tmpfs none /tmp && echo mounted'])).stdout.trim(),
      'mounted',
    );
    // --privileged grants every capability berthd itself holds (a sandbox may withhold some)
    const bounding = /^CapBnd:\s*(\S+)/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1];
    assert.equal(
      (await run(['--privileged', 'busybox', 'grep', 'CapEff', '/proc/self/status'])).stdout.trim().split(/\s+/)[1],
      bounding,
    );
    const caps = (await run(['busybox', 'grep', 'CapEff', '/proc/self/status'])).stdout.trim();
    assert.equal(caps.split(/\s+/)[1], '00000000a80425fb', "Docker's default capability set");
    assert.equal((await run(['busybox', 'grep', 'Seccomp:', '/proc/self/status'])).stdout.trim().split(/\s+/)[1], '2');
    assert.equal(
      (await run(['--security-opt', 'seccomp=unconfined', 'busybox', 'grep', 'Seccomp:', '/proc/self/status'])).stdout
        .trim()
        .split(/\s+/)[1],
      '0',
    );
    assert.equal(
      (await run(['--security-opt', 'no-new-privileges', 'busybox', 'grep', 'NoNewPrivs', '/proc/self/status'])).stdout
        .trim()
        .split(/\s+/)[1],
      '1',
    );
    const masked = await run(['busybox', 'cat', '/proc/kcore'], { allowFail: true });
    assert.equal(masked.stdout, '', '/proc/kcore is masked');
    // the masked directories: empty and read-only, and no tmpfs (a superblock each) made for them
    const dirs = await run(
      [
        'busybox',
        'sh',
        '-c',
        "ls -A /proc/acpi /sys/firmware; mkdir /proc/acpi/x || echo refused; grep -cE ' /(proc/acpi|sys/firmware) .* - tmpfs ' /proc/self/mountinfo",
      ],
      { allowFail: true },
    );
    assert.equal(dirs.stdout, '/proc/acpi:\n\n/sys/firmware:\nrefused\n0\n');
  });

  test("cgroup v1: /sys/fs/cgroup is the daemon's one read-only tmpfs, the container's own cgroup under it; a start that fails leaves no cgroup", async (t) => {
    if (!existsSync('/sys/fs/cgroup/memory/cgroup.procs')) return t.skip('not a cgroup v1 host');
    // the skeleton's device on the host: every container's /sys/fs/cgroup is that superblock, not
    // a tmpfs of its own (runtime/README "/sys/fs/cgroup")
    const skel = join(d.dir, 'run', 'runtime', 'cgroup');
    const dev = readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .map((l) => l.split(' '))
      .find((f) => f[4] === skel)?.[2];
    assert.ok(dev, 'the skeleton is mounted');
    const inside = await run([
      '-m',
      '64m',
      'busybox',
      'sh',
      '-c',
      "grep ' /sys/fs/cgroup ' /proc/self/mountinfo | cut -d' ' -f3,6; stat -f -c %T /sys/fs/cgroup; " +
        'cat /sys/fs/cgroup/memory/memory.limit_in_bytes; ls /sys/fs/cgroup/pids/cgroup.procs; ' +
        'touch /sys/fs/cgroup/x 2>/dev/null || echo refused; mkdir /sys/fs/cgroup/memory/y 2>/dev/null || echo refused',
    ]);
    assert.equal(
      inside.stdout,
      `${dev} ro,nosuid,nodev,noexec,relatime\ntmpfs\n67108864\n/sys/fs/cgroup/pids/cgroup.procs\nrefused\nrefused\n`,
    );
    // privileged: the runtime's own, writable, as Docker gives it
    const priv = await run(['--privileged', 'busybox', 'sh', '-c', "grep ' /sys/fs/cgroup ' /proc/self/mountinfo"]);
    assert.match(priv.stdout, / rw,.* - tmpfs /);
    assert.doesNotMatch(priv.stdout, new RegExp(` ${dev} `));
    // the runtime refuses the start before it joins the cgroup (a bind's source gone since the
    // create): no cgroup is left, though berth made its directories before the runtime ran
    const src = mkdtempSync(join(d.dir, 'gone-'));
    const id = (await d.docker(['create', '--mount', `type=bind,src=${src},dst=/x`, 'busybox', 'true'])).stdout.trim();
    rmdirSync(src);
    const r = await d.docker(['start', id], { allowFail: true });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /cannot stat/);
    for (const ctrl of ['memory', 'pids', 'cpu'])
      assert.ok(!existsSync(`/sys/fs/cgroup/${ctrl}/berth/${id}`), `no ${ctrl} cgroup left`);
    await d.docker(['rm', id]);
  });

  test('--init runs tini as pid 1; env, workdir, entrypoint, hostname, labels, env-file', async () => {
    assert.match((await run(['--init', 'busybox', 'cat', '/proc/1/cmdline'])).stdout, /docker-init/);
    const dir = mkdtempSync(join(d.dir, 'envf-'));
    writeFileSync(join(dir, 'env'), '# comment\nFROM_FILE=yes\n');
    const r = await run([
      '-e',
      'A=1',
      '--env-file',
      join(dir, 'env'),
      '-w',
      '/etc',
      '--hostname',
      'boxy',
      '--entrypoint',
      'sh',
      'busybox',
      '-c',
      'echo $A $FROM_FILE $(pwd) $(hostname)',
    ]);
    assert.equal(r.stdout.trim(), '1 yes /etc boxy');
    const id = (await d.docker(['create', '-l', 'team=core', 'busybox', 'true'])).stdout.trim();
    assert.match(
      (await d.docker(['ps', '-a', '--filter', 'label=team=core', '-q'])).stdout,
      new RegExp(id.slice(0, 12)),
    );
    await d.docker(['rm', id]);
  });

  test('kill -s, rename, export, history, import, image prune, system df', async () => {
    await d.docker([
      'run',
      '-d',
      '--name',
      'victim',
      'busybox',
      'sh',
      '-c',
      "trap 'exit 42' USR1; echo trapped; while true; do sleep 0.1; done",
    ]);
    // the signal goes once the shell has its trap (it says so), not after a guessed delay
    await eventually(
      async () => (await d.docker(['logs', 'victim'])).stdout.includes('trapped'),
      10_000,
      'the trap to be set',
    );
    await d.docker(['kill', '-s', 'USR1', 'victim']);
    assert.equal((await d.docker(['wait', 'victim'])).stdout.trim(), '42');
    await d.docker(['rename', 'victim', 'renamed']);
    const tar = join(d.dir, 'export.tar');
    await d.docker(['export', '-o', tar, 'renamed']);
    const imported = (await d.docker(['import', '-c', 'CMD ["echo","from-import"]', tar, 'imported:1'])).stdout.trim();
    assert.match(imported, /^sha256:[a-f0-9]{64}$/);
    assert.equal((await run(['imported:1'])).stdout.trim(), 'from-import');
    assert.match((await d.docker(['history', 'busybox'])).stdout, /busybox-static/);
    await d.docker(['rm', 'renamed']);
    await d.docker(['tag', 'imported:1', 'imported:2']);
    await d.docker(['rmi', 'imported:1']);
    await d.docker(['rmi', 'imported:2']);
    const pruned = await d.docker(['image', 'prune', '-f']);
    assert.match(pruned.stdout, /Total reclaimed space/);
    assert.match((await d.docker(['system', 'df'])).stdout, /Images\s+1/);
  });

  test('--device, --group-add, --pid/--ipc/--uts host and container:, --oom-score-adj, --oom-kill-disable, --cgroupns take effect', async () => {
    const dev = (
      await run([
        '--device',
        '/dev/null:/dev/mynull',
        'busybox',
        'sh',
        '-c',
        'ls -l /dev/mynull; echo x > /dev/mynull && echo wrote',
      ])
    ).stdout;
    assert.match(dev, /^crw-rw-rw- .* 1,\s+3 .*\/dev\/mynull\nwrote\n$/);
    if (existsSync('/dev/fuse')) {
      // a device outside Docker's default allow list: the device cgroup allows what was asked, no more
      await run(['--device', '/dev/fuse', 'busybox', 'sh', '-c', ': > /dev/fuse']);
      const ro = await run(['--device', '/dev/fuse:/dev/fuse:r', 'busybox', 'sh', '-c', ': > /dev/fuse'], {
        allowFail: true,
      });
      assert.notEqual(ro.code, 0);
      assert.match(ro.stderr, /Operation not permitted/);
    }
    assert.equal(
      (await run(['--group-add', '123', '--group-add', 'app', 'busybox', 'id', '-G'])).stdout,
      '0 123 1000\n',
      'numbers, and names from the image',
    );
    const ns = (kind: string) => readlinkSync(`/proc/self/ns/${kind}`);
    assert.equal((await run(['--pid', 'host', 'busybox', 'readlink', '/proc/self/ns/pid'])).stdout.trim(), ns('pid'));
    assert.equal((await run(['--ipc', 'host', 'busybox', 'readlink', '/proc/self/ns/ipc'])).stdout.trim(), ns('ipc'));
    assert.equal((await run(['--uts', 'host', 'busybox', 'hostname'])).stdout.trim(), hostname());
    assert.notEqual((await run(['busybox', 'readlink', '/proc/self/ns/pid'])).stdout.trim(), ns('pid'));
    const owner = (await d.docker(['run', '-d', 'busybox', 'sleep', '60'])).stdout.trim();
    const ownerNs = (
      await d.docker(['exec', owner, 'sh', '-c', 'readlink /proc/self/ns/pid; readlink /proc/self/ns/ipc'])
    ).stdout;
    assert.equal(
      (
        await run([
          '--pid',
          `container:${owner}`,
          '--ipc',
          `container:${owner}`,
          'busybox',
          'sh',
          '-c',
          'readlink /proc/self/ns/pid; readlink /proc/self/ns/ipc',
        ])
      ).stdout,
      ownerNs,
    );
    assert.match((await run(['--pid', `container:${owner}`, 'busybox', 'ps'])).stdout, /sleep 60/);
    await d.docker(['rm', '-f', owner]);
    assert.equal(
      (await run(['--oom-score-adj', '500', 'busybox', 'cat', '/proc/self/oom_score_adj'])).stdout.trim(),
      '500',
    );
    const oomId = (
      await d.docker(['run', '-d', '--oom-kill-disable', '--memory', '32m', 'busybox', 'sleep', '60'])
    ).stdout.trim();
    assert.match(cg('memory', oomId, 'memory.oom_control'), /oom_kill_disable 1/);
    await d.docker(['rm', '-f', oomId]);
    assert.match((await run(['--cgroupns', 'private', 'busybox', 'cat', '/proc/self/cgroup'])).stdout, /:memory:\/\n/);
  });

  test("a daemon started under umask 077 makes the modes of one started under 022 (dockerd's own umask)", async () => {
    const strict = await startDaemon({ umask: 0o077 });
    try {
      // the files berth writes into the rootfs and the device nodes the runtime makes
      const r = await strict.docker([
        'run',
        '--rm',
        '--user',
        '1000:1000',
        '--device',
        '/dev/zero:/dev/myzero',
        'busybox',
        'sh',
        '-c',
        'cat /etc/hosts /etc/hostname /etc/resolv.conf >/dev/null && ls -l /dev/myzero',
      ]);
      assert.match(r.stdout, /^crw-rw-rw- .* 1,\s+5 .*\/dev\/myzero\n$/);
    } finally {
      await strict.stop();
    }
  });

  test('bad namespace modes and devices are refused and make nothing', async () => {
    const before = (await d.docker(['ps', '-aq'])).stdout;
    const cases: Array<[string[], RegExp]> = [
      [['--device', '/etc/passwd'], /not a device node/],
      [['--device', '/dev/nope'], /error gathering device information .*no such file/],
      [['--pid', 'container:nope'], /No such container: nope/],
      [['--uts', 'host', '--hostname', 'x'], /conflicting options: hostname and the UTS mode/],
      [['--oom-score-adj', '5000'], /range for oom score adj is \[-1000, 1000\]/],
      [['--log-driver', 'syslog'], /logging driver syslog is not supported/],
      [['--storage-opt', 'size=1G'], /--storage-opt is supported only for overlay over xfs/],
      [['--cpu-rt-runtime', '1000'], /real-time CPU scheduling .* is not supported/],
      [['--blkio-weight', '5'], /Range of blkio weight is from 10 to 1000/],
      [['--device-read-bps', '/dev/null:1mb'], /\/dev\/null is not a block device/],
    ];
    for (const [flags, err] of cases) {
      const r = await d.docker(['run', '-d', ...flags, 'busybox', 'true'], { allowFail: true });
      assert.notEqual(r.code, 0, flags.join(' '));
      assert.match(r.stderr, err);
    }
    const api = await d.api('POST', '/containers/create', { Image: 'busybox', HostConfig: { IpcMode: 'sometimes' } });
    assert.equal(api.status, 400);
    assert.match(api.text, /invalid IPC mode: sometimes/);
    assert.equal((await d.docker(['ps', '-aq'])).stdout, before, 'no container made');
  });

  test("--entrypoint '' resets the image's entrypoint; --platform must match the image; inspect --size", async () => {
    assert.equal((await run(['--entrypoint', '', 'busybox', 'echo', 'no entrypoint'])).stdout, 'no entrypoint\n');
    assert.equal(
      (await d.berth(['run', '--rm', '--entrypoint', '', 'busybox', 'echo', 'no entrypoint'])).stdout,
      'no entrypoint\n',
    );
    await run(['--platform', 'linux/amd64', 'busybox', 'true']);
    // dockerd answers a 404 here (the CLI then pulls, which would leave the machine): asked through the API
    const other = await d.api('POST', '/containers/create?platform=linux%2Farm64', { Image: 'busybox' });
    assert.equal(other.status, 404);
    assert.match(other.text, /does not match the specified platform: wanted linux\/arm64, actual: linux\/amd64/);
    const id = (
      await d.docker(['run', '-d', 'busybox', 'sh', '-c', 'head -c 100000 /dev/zero > /f; sleep 60'])
    ).stdout.trim();
    await eventually(
      async () =>
        Number((await d.docker(['container', 'inspect', '--size', id, '-f', '{{.SizeRw}}'])).stdout) >= 100000,
      5000,
      'the written file counted',
    );
    const [rw, rootfs] = (
      await d.docker(['container', 'inspect', '--size', id, '-f', '{{.SizeRw}} {{.SizeRootFs}}'])
    ).stdout
      .trim()
      .split(' ')
      .map(Number);
    assert.ok(rootfs! > rw! + 1_000_000, 'the image under it is counted in SizeRootFs');
    // dockerd's directory.Size: the files' bytes only (the directories made and the empty bind
    // targets count nothing), so exactly the file written, and 0 for a container that wrote nothing
    assert.equal(rw, 100000);
    const fresh = (await d.docker(['create', 'busybox', 'true'])).stdout.trim();
    assert.equal((await d.docker(['container', 'inspect', '--size', fresh, '-f', '{{.SizeRw}}'])).stdout.trim(), '0');
    // /system/df: the container's SizeRootFs is the image's and the writable layer's; the local
    // volumes are listed with their files' bytes and how many containers mount them
    await d.docker(['volume', 'create', 'dfvol']);
    await d.docker(['run', '--rm', '-v', 'dfvol:/v', 'busybox', 'sh', '-c', 'head -c 12345 /dev/zero > /v/f']);
    const user = (await d.docker(['create', '-v', 'dfvol:/v', 'busybox', 'true'])).stdout.trim();
    const df = (await d.api('GET', '/system/df')).body as {
      Containers: Array<{ Id: string; SizeRw: number; SizeRootFs: number }>;
      Images: Array<{ Id: string; Size: number }>;
      Volumes: Array<{
        Name: string;
        Driver: string;
        Mountpoint: string;
        UsageData: { Size: number; RefCount: number };
      }>;
    };
    const c = df.Containers.find((x) => x.Id === id)!;
    const imageId = JSON.parse((await d.docker(['inspect', id])).stdout)[0].Image as string;
    const imageSize = df.Images.find((i) => i.Id === imageId)!.Size;
    assert.equal(c.SizeRw, 100000);
    assert.equal(c.SizeRootFs, imageSize + 100000);
    const v = df.Volumes.find((x) => x.Name === 'dfvol');
    assert.ok(v, 'the volume is listed');
    assert.equal(v.Driver, 'local');
    assert.deepEqual(v.UsageData, { Size: 12345, RefCount: 1 });
    await d.docker(['rm', '-f', id, fresh, user]);
    await d.docker(['volume', 'rm', 'dfvol']);
  });

  test('--memory-swappiness, --cpuset-mems, --device-{read,write}-{bps,iops} land in the cgroup; --blkio-weight applied or discarded with a warning', async () => {
    // the block device under the daemon's root, as `--device-read-bps` takes it
    const disk = readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .map((l) => l.split(' '))
      .find((f) => f[4] === '/')?.[2];
    const node = ['/dev/vda', '/dev/sda', '/dev/nvme0n1'].find((p) => existsSync(p));
    const throttle = node && disk ? ['--device-read-bps', `${node}:1mb`, '--device-write-iops', `${node}:100`] : [];
    const id = (
      await d.docker([
        'run',
        '-d',
        '--memory-swappiness',
        '10',
        '--cpuset-mems',
        '0',
        ...throttle,
        'busybox',
        'sleep',
        '60',
      ])
    ).stdout.trim();
    assert.equal(cg('memory', id, 'memory.swappiness'), '10');
    assert.equal(cg('cpuset', id, 'cpuset.mems'), '0');
    if (throttle.length) {
      assert.match(cg('blkio', id, 'blkio.throttle.read_bps_device'), /^\d+:\d+ 1048576$/);
      assert.match(cg('blkio', id, 'blkio.throttle.write_iops_device'), /^\d+:\d+ 100$/);
    }
    // `docker update` sends every field, the unset ones empty: what it does not set stays
    await d.docker(['update', '--pids-limit', '50', id]);
    assert.equal(cg('pids', id, 'pids.max'), '50');
    assert.equal(JSON.parse((await d.docker(['inspect', id])).stdout)[0].HostConfig.CpusetMems, '0');
    await d.docker(['rm', '-f', id]);
    const weighted = await d.docker(['run', '-d', '--blkio-weight', '300', 'busybox', 'sleep', '60']);
    const wid = weighted.stdout.trim();
    if (existsSync('/sys/fs/cgroup/blkio/berth/blkio.weight') || existsSync('/sys/fs/cgroup/blkio/blkio.weight'))
      assert.equal(cg('blkio', wid, 'blkio.weight'), '300');
    else {
      assert.match(
        weighted.stderr,
        /WARNING: Your kernel does not support Block I\/O weight or the cgroup is not mounted. Weight discarded./,
      );
      assert.equal(JSON.parse((await d.docker(['inspect', wid])).stdout)[0].State.Running, true, 'runs without it');
    }
    await d.docker(['rm', '-f', wid]);
  });
});
