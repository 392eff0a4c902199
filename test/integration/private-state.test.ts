/**
 * Issue 14, class 2 (the CVE-2021-41091 class): a non-root host user reaches nothing of the daemon's
 * state: no file under the root or the exec-root can be stat'ed, read or executed by them (a setuid
 * binary made inside a container cannot be run by its host path; berth.db cannot be read), on a
 * fresh root and on one whose modes were loosened before the daemon restarted.
 */
import { before, after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import { chmodSync, statSync, writeFileSync, promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { startDaemon, eventually, type Daemon } from './harness.js';

const run = promisify(execFile);
const USER = `berthpriv${process.pid % 100000}`;

/** Every path strictly inside `dirs` (not crossing into mounts: the rootfs mounts are checked by explicit paths). */
async function allPaths(dirs: string[]): Promise<string[]> {
  const { stdout } = await run('find', [...dirs, '-xdev', '-mindepth', '1'], { maxBuffer: 64 * 1024 * 1024 });
  return stdout.split('\n').filter(Boolean);
}

/**
 * Runs as the unprivileged user: prints `REACH <path>` for each path it can stat (or lstat), `READ`
 * for each it can read, `EXEC` for each it can execute (`<path> true` exiting 0: busybox's applet).
 */
async function probeAs(uid: number, gid: number, paths: string[], listFile: string): Promise<string[]> {
  writeFileSync(listFile, `${paths.join('\n')}\n`);
  chmodSync(listFile, 0o644); // the user reads it, whatever the umask the tests run under
  const script = `while IFS= read -r p; do
  if [ -e "$p" ] || [ -L "$p" ]; then echo "REACH $p"; fi
  if [ -f "$p" ] && head -c1 "$p" >/dev/null 2>&1; then echo "READ $p"; fi
  case "$p" in *suid) if "$p" true 2>/dev/null; then echo "EXEC $p"; fi;; esac
done < "$1"`;
  const { stdout } = await run(
    'setpriv',
    [`--reuid=${uid}`, `--regid=${gid}`, '--clear-groups', '--', '/bin/sh', '-c', script, 'sh', listFile],
    { maxBuffer: 64 * 1024 * 1024 },
  );
  return stdout.split('\n').filter(Boolean);
}

describe('private daemon state (non-root host user)', () => {
  let d: Daemon;
  let uid = 0;
  let gid = 0;
  let ctr = '';
  let execRoot = '';
  let listFile = '';
  const mode = (p: string) => statSync(p).mode & 0o7777;

  before(async () => {
    await run('userdel', [USER]).catch(() => undefined);
    await run('useradd', ['-M', '-N', '-r', '-s', '/usr/sbin/nologin', USER]);
    // the user goes even if the run is cut short (a cancelled suite skips after())
    process.once('exit', () => {
      try {
        execFileSync('userdel', [USER], { stdio: 'ignore' });
      } catch {
        /* gone */
      }
    });
    uid = Number((await run('id', ['-u', USER])).stdout.trim());
    gid = Number((await run('id', ['-g', USER])).stdout.trim());
    d = await startDaemon();
    execRoot = join(d.dir, 'run');
    chmodSync(d.dir, 0o755); // the harness's temp dir is 0700: only berth's own modes may protect its state here
    listFile = join('/tmp', `berth-private-${process.pid}.list`);
  });
  after(async () => {
    await d?.stop();
    await run('userdel', [USER]).catch(() => undefined);
    await fsp.rm(listFile, { force: true });
  });

  /** What the user reaches: every path berth has under its root and exec-root, and the setuid copies by their host paths. */
  async function reached(): Promise<string[]> {
    const paths = [
      ...(await allPaths([d.root, execRoot])),
      join(d.root, 'containers', ctr, 'rootfs', 'suid'),
      join(d.root, 'snapshots', 'active', ctr, 'fs', 'suid'),
      join(d.root, 'volumes', 'privvol', '_data', 'suid'),
    ];
    assert.ok(paths.length > 100, `walked ${paths.length} paths`);
    // the probe is real: as root (the same walk, no uid change) every path is reachable
    const asRoot = await probeAs(0, 0, paths.slice(0, 50), listFile);
    assert.ok(asRoot.filter((l) => l.startsWith('REACH ')).length >= 45, 'root reaches the files (the probe works)');
    return probeAs(uid, gid, paths, listFile);
  }

  test('fresh root: modes as dockerd, nothing reachable by another user, containers still run', async () => {
    await d.docker(['volume', 'create', 'privvol']);
    ctr = (
      await d.docker([
        'run',
        '-d',
        '--name',
        'suidmaker',
        '-e',
        'SECRET=hunter2',
        '-v',
        'privvol:/data',
        'busybox',
        'sh',
        '-c',
        'cp /bin/busybox /suid && chmod 4755 /suid && cp /bin/busybox /data/suid && chmod 4755 /data/suid && touch /ready && exec sleep 1000',
      ])
    ).stdout.trim();
    await eventually(
      async () => (await d.docker(['exec', 'suidmaker', 'ls', '/ready'], { allowFail: true })).code === 0,
      10_000,
      'the setuid copies',
    );
    await d.docker(['exec', '-d', 'suidmaker', 'sleep', '60']); // an exec's process.json under the exec-root
    assert.equal(mode(d.root), 0o710);
    assert.equal(mode(execRoot), 0o710);
    assert.equal(mode(join(d.root, 'containers')), 0o710);
    assert.equal(mode(join(d.root, 'snapshots')), 0o710);
    for (const f of ['berth.db', 'berth.db-wal', 'berth.db-shm', `containers/${ctr}/config.json`])
      assert.equal(mode(join(d.root, f)), 0o600, f);
    for (const f of ['snapshots/active', 'snapshots/layers', 'volumes', `containers/${ctr}`])
      assert.equal(mode(join(d.root, f)), 0o700, f);
    assert.equal(
      mode(join(d.root, 'containers', ctr, 'ctr.log')) & 0o077,
      0,
      'the log is for root only (conmon makes it 0600)',
    );
    const got = await reached();
    assert.deepEqual(got, [], 'the user reached nothing');
    // containers still work, also as a non-root user inside them and through volumes
    const r = await d.docker([
      'run',
      '--rm',
      '--user',
      '1000:1000',
      '-v',
      'privvol:/data',
      'busybox',
      'sh',
      '-c',
      'ls / >/dev/null && cat /etc/hostname >/dev/null && ls /data/suid && echo ok',
    ]);
    assert.match(r.stdout, /ok\n$/);
  });

  test('a root loosened while the daemon was down is closed again at start', async () => {
    await d.kill9();
    // loosen what berth made: its directories 0755, its files 0644 (not the container's own files)
    const { stdout } = await run(
      'find',
      [
        d.root,
        execRoot,
        '-xdev',
        '(',
        '-path',
        '*/snapshots/layers/*/fs',
        '-o',
        '-path',
        '*/snapshots/active/*/fs',
        '-o',
        '-path',
        '*/snapshots/active/*/work',
        '-o',
        '-path',
        '*/volumes/*/_data',
        ')',
        '-prune',
        '-o',
        '-print',
      ],
      { maxBuffer: 64 * 1024 * 1024 },
    );
    let loosened = 0;
    for (const p of stdout.split('\n').filter(Boolean)) {
      const st = await fsp.lstat(p);
      const want = st.isDirectory() ? 0o755 : st.isFile() ? 0o644 : 0;
      if (!want) continue;
      // read-only: the pinned runtime binary's bind mount
      if (
        await fsp.chmod(p, want).then(
          () => true,
          (e: NodeJS.ErrnoException) => {
            if (e.code !== 'EROFS') throw e;
            return false;
          },
        )
      )
        loosened++;
    }
    assert.ok(loosened > 20);
    assert.ok(
      (await probeAs(uid, gid, [join(d.root, 'berth.db')], listFile)).includes(`READ ${join(d.root, 'berth.db')}`),
      'loosened: the user could read berth.db',
    );
    await d.restart();
    assert.equal(mode(d.root), 0o710);
    assert.equal(mode(execRoot), 0o710);
    assert.equal(mode(join(d.root, 'berth.db')), 0o600);
    assert.deepEqual(await reached(), [], 'the user reached nothing after the restart');
    assert.equal((await d.docker(['inspect', '-f', '{{.State.Status}}', 'suidmaker'])).stdout.trim(), 'running');
    // a container made by the loosened install gets its bundle closed when it starts again
    await d.docker(['restart', '-t', '0', 'suidmaker']);
    assert.equal(mode(join(d.root, 'containers', ctr, 'config.json')), 0o600);
  });
});
