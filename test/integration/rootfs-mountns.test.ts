/**
 * Issue #19: with `--rootfs-mountns` a running container's rootfs is mounted in its conmon's own
 * mount namespace, not the host's: the host's table does not grow with running containers, and
 * everything that reads the rootfs (cp both ways, export, exec's user, diff, commit) goes through
 * /proc/<conmon pid>/root. A stopped container's cp mounts on the host until its next start; a
 * restart gets a fresh namespace; containers keep theirs across a daemon kill -9.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { eventually, startDaemon, type Daemon } from './harness.js';
import { tarOf } from './tar-fixture.js';

/** The lines of the host's mount table under `dir` (berthd's test dir). */
const hostMountsUnder = (dir: string) =>
  readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter((l) => l.split(' ')[4]?.startsWith(dir)).length;

/** The staging namespace's copy of /run/netns is detached once the create returned (when the host has one). */
async function netnsCopyDetached(d: Daemon, id: string): Promise<void> {
  if (!readFileSync('/proc/self/mountinfo', 'utf8').includes(' /run/netns ')) return;
  const conmonPid = readFileSync(join(d.dir, 'run', 'runtime', 'c', id, 'conmon.pid'), 'utf8').trim();
  await eventually(
    () => !readFileSync(`/proc/${conmonPid}/mountinfo`, 'utf8').includes(' /run/netns '),
    5_000,
    "conmon's /run/netns copy to be detached",
  );
}

describe('rootfs in conmon mount namespace', () => {
  let d: Daemon;
  before(async () => {
    d = await startDaemon({ args: ['--rootfs-mountns'] });
  });
  after(async () => {
    await d?.stop();
  });

  test('running containers leave the host mount table alone; their files are reached through conmon', async () => {
    const base = hostMountsUnder(d.dir);
    const ids: string[] = [];
    for (let i = 0; i < 3; i++)
      ids.push((await d.docker(['run', '-d', '--network', 'none', 'busybox', 'sleep', '1d'])).stdout.trim());
    assert.equal(hostMountsUnder(d.dir), base, 'no rootfs mount on the host');
    const id = ids[0]!;
    await netnsCopyDetached(d, id);
    const mountsIn = (await d.docker(['exec', id, 'cat', '/proc/self/mountinfo'])).stdout.split('\n').length;
    assert.ok(mountsIn < 60, `the container's table is small (${mountsIn} lines)`);

    assert.equal((await d.docker(['exec', '-u', 'nobody', id, 'id', '-u'])).stdout.trim(), '65534');
    await d.docker(['cp', '-', `${id}:/tmp`], { input: tarOf('hello.txt', Buffer.from('hello\n')).toString('latin1') });
    assert.equal((await d.docker(['exec', id, 'cat', '/tmp/hello.txt'])).stdout, 'hello\n');
    assert.match((await d.docker(['cp', `${id}:/etc/passwd`, '-'])).stdout, /nobody/);
    assert.match((await d.docker(['export', id])).stdout, /bin\/busybox/);
    assert.match((await d.docker(['diff', id])).stdout, /A \/tmp\/hello.txt/);
    await d.docker(['commit', id, 'mountns:1']);
    assert.equal(
      (await d.docker(['run', '--rm', '--network', 'none', 'mountns:1', 'cat', '/tmp/hello.txt'])).stdout,
      'hello\n',
    );
    // a symlink out of the rootfs stays inside it (RESOLVE_IN_ROOT under /proc/<pid>/root/...)
    await d.docker(['exec', id, 'ln', '-s', '/', '/tmp/up']);
    const r = await d.docker(['cp', `${id}:/tmp/up/../../../../etc/hostname`, '-'], { allowFail: true });
    assert.ok(!r.stdout.includes(readFileSync('/etc/hostname', 'utf8').trim()) || r.code !== 0);
    assert.equal(hostMountsUnder(d.dir), base);
  });

  test('stopped: cp mounts on the host until the next start; restart and kill -9 keep the files', async () => {
    const id = (await d.docker(['run', '-d', '--network', 'none', 'busybox', 'sleep', '1d'])).stdout.trim();
    const base = hostMountsUnder(d.dir);
    await d.docker(['exec', id, 'sh', '-c', 'echo kept > /kept']);
    await d.docker(['stop', '-t', '1', id]);
    assert.match((await d.docker(['cp', `${id}:/kept`, '-'])).stdout, /kept/);
    assert.equal(hostMountsUnder(d.dir), base + 1, "a stopped container's cp mounts on the host");
    await d.docker(['start', id]);
    assert.equal(hostMountsUnder(d.dir), base, 'its start took the mount off the host');
    assert.equal((await d.docker(['exec', id, 'cat', '/kept'])).stdout, 'kept\n');
    await d.docker(['restart', '-t', '1', id]);
    assert.equal((await d.docker(['exec', id, 'cat', '/kept'])).stdout, 'kept\n');

    await d.kill9();
    await d.restart();
    assert.equal((await d.docker(['inspect', '-f', '{{.State.Running}}', id])).stdout.trim(), 'true');
    assert.match((await d.docker(['cp', `${id}:/kept`, '-'])).stdout, /kept/);
    assert.equal((await d.docker(['exec', '-u', 'nobody', id, 'id', '-u'])).stdout.trim(), '65534');
    assert.equal(hostMountsUnder(d.dir), base);
    await d.docker(['rm', '-f', id]);
  });

  test('read-only rootfs, tmpfs, volumes and binds; a bad user fails the start alone', async () => {
    const ro = await d.docker(
      [
        'run',
        '--rm',
        '--network',
        'none',
        '--read-only',
        '--tmpfs',
        '/t',
        'busybox',
        'sh',
        '-c',
        'touch /t/x && ls /t; touch /y',
      ],
      { allowFail: true },
    );
    assert.match(ro.stdout, /^x$/m);
    assert.match(ro.stderr + ro.stdout, /Read-only file system/);
    await d.docker(['volume', 'create', 'mnsvol']);
    const v = await d.docker([
      'run', '--rm', '--network', 'none', '-v', 'mnsvol:/data', '-v', `${d.dir}:/host:ro`, 'busybox',
      'sh', '-c', 'echo v > /data/f && cat /data/f && ls /host >/dev/null && echo bound',
    ]); // prettier-ignore
    assert.equal(v.stdout, 'v\nbound\n');
    // a volume filled from the image at create (the only host mount a create makes here)
    const filled = await d.docker([
      'run',
      '--rm',
      '--network',
      'none',
      '-v',
      'mnsetc:/etc',
      'busybox',
      'cat',
      '/etc/passwd',
    ]);
    assert.match(filled.stdout, /root/);
    const bad = await d.docker(['run', '--network', 'none', '--name', 'baduser', '-u', 'nosuch', 'busybox', 'true'], {
      allowFail: true,
    });
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /unable to find user nosuch/);
    await d.docker(['rm', '-f', 'baduser'], { allowFail: true });
    await d.docker(['volume', 'rm', 'mnsvol', 'mnsetc'], { allowFail: true });
  });
});

// Without berth-stage (/usr/local/lib/berth/berth-stage absent): busybox's unshare + sh + mount,
// the same protocol. BERTH_STAGE_HELPER='' is how the daemon is told there is none.
describe('rootfs in conmon mount namespace, staged by busybox (no berth-stage)', () => {
  let d: Daemon;
  before(async () => {
    const saved = process.env['BERTH_STAGE_HELPER'];
    process.env['BERTH_STAGE_HELPER'] = '';
    try {
      d = await startDaemon({ args: ['--rootfs-mountns'] });
    } finally {
      if (saved === undefined) delete process.env['BERTH_STAGE_HELPER'];
      else process.env['BERTH_STAGE_HELPER'] = saved;
    }
  });
  after(async () => {
    await d?.stop();
  });

  test('a start, the user lookup, cp and a bad user as with the helper', async () => {
    const base = hostMountsUnder(d.dir);
    const id = (await d.docker(['run', '-d', '--network', 'none', 'busybox', 'sleep', '1d'])).stdout.trim();
    assert.equal(hostMountsUnder(d.dir), base, 'no rootfs mount on the host');
    assert.equal((await d.docker(['exec', '-u', 'nobody', id, 'id', '-u'])).stdout.trim(), '65534');
    assert.match((await d.docker(['cp', `${id}:/etc/passwd`, '-'])).stdout, /nobody/);
    await netnsCopyDetached(d, id);
    const bad = await d.docker(['run', '--rm', '--network', 'none', '-u', 'nosuch', 'busybox', 'true'], {
      allowFail: true,
    });
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /unable to find user nosuch/);
    await d.docker(['rm', '-f', id]);
  });
});
