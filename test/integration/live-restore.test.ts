/** Issue #2 acceptance 3: live restore across `kill -9` of berthd, and restart policies. */
import { before, after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { startDaemon, eventually, type Daemon } from './harness.js';

/** A container process's monitor: conmon, its parent (a subreaper). */
const monitorOf = (pid: number): number =>
  Number(/^PPid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]);
const gone = (pid: number): boolean => !existsSync(`/proc/${pid}`);

const inspect = async (d: Daemon, name: string) =>
  JSON.parse((await d.docker(['inspect', name])).stdout)[0] as {
    State: { Status: string; ExitCode: number; Pid: number; Running: boolean };
    RestartCount: number;
  };

describe('live restore', () => {
  let d: Daemon;
  before(async () => {
    d = await startDaemon();
  });
  after(async () => {
    await d?.stop();
  });

  test('containers outlive a kill -9 of the daemon, stay attachable, keep logs; exits meanwhile are recorded', async () => {
    await d.docker(['run', '-d', '-i', '--name', 'echoer', 'busybox', 'cat']);
    await d.docker([
      'run',
      '-d',
      '--name',
      'survivor',
      'busybox',
      'sh',
      '-c',
      'i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done',
    ]);
    const pidBefore = (await inspect(d, 'survivor')).State.Pid;
    await eventually(
      async () => (await d.docker(['logs', 'survivor'])).stdout.includes('tick 1\n'),
      10_000,
      'two ticks logged',
    );
    await d.kill9();
    await d.restart();
    const s = await inspect(d, 'survivor');
    assert.equal(s.State.Status, 'running');
    assert.equal(s.State.Pid, pidBefore, 'the same process, not a restarted one');
    const logs = await d.docker(['logs', 'survivor']);
    assert.match(logs.stdout, /^tick 0\ntick 1\n/, 'logs from before the daemon died are intact');
    // attachable after the restart: exec and attach both work
    const ex = await d.docker(['exec', 'survivor', 'echo', 'still here']);
    assert.equal(ex.stdout, 'still here\n');
    const att = spawn('docker', ['attach', 'echoer'], { env: d.env, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    att.stdout.on('data', (b: Buffer) => (out += b.toString()));
    att.stdin.write('across the restart\n');
    await eventually(() => out.includes('across the restart'), 10_000, 'attach to echo stdin back');
    att.kill('SIGKILL');
    const before = (await d.docker(['logs', 'survivor'])).stdout.split('\n').length;
    await eventually(
      async () => (await d.docker(['logs', 'survivor'])).stdout.split('\n').length > before + 2,
      5000,
      'more ticks',
    );
  });

  test('an exit that happens while the daemon is down is recorded with its code', async () => {
    await d.docker(['run', '-d', '--name', 'shortlived', 'busybox', 'sh', '-c', 'sleep 1; exit 7']);
    const conmon = monitorOf((await inspect(d, 'shortlived')).State.Pid);
    await d.kill9();
    // conmon writes the exit code, then exits: once it is gone, the exit happened with the daemon down
    await eventually(() => gone(conmon), 10_000, 'the container to exit');
    await d.restart();
    const s = await inspect(d, 'shortlived');
    assert.equal(s.State.Status, 'exited');
    assert.equal(s.State.ExitCode, 7);
  });

  test("a removed container's files go after the removal answered, and a crash before that is finished at the next start", async () => {
    const filesOf = (id: string) => {
      const mounted = readFileSync('/proc/self/mountinfo', 'utf8').includes(`/containers/${id}/rootfs `);
      return [
        existsSync(join(d.root, 'containers', id)),
        existsSync(join(d.root, 'snapshots', 'active', id)),
        mounted,
        existsSync(join(d.dir, 'run', 'runtime', 'crun', id)),
      ];
    };
    const cidfile = join(d.dir, 'rm.cid');
    await d.docker(['run', '--rm', '--cidfile', cidfile, '--name', 'gone', 'busybox', 'true']);
    const id = readFileSync(cidfile, 'utf8').trim();
    assert.equal(
      (await d.docker(['ps', '-aq', '--no-trunc', '--filter', 'name=gone'])).stdout.trim(),
      '',
      'removed for clients when run --rm returns',
    );
    await d.docker(['run', '-d', '--name', 'gone', 'busybox', 'true']); // its name is free at once
    await eventually(() => filesOf(id).every((f) => !f), 10_000, "the removed container's files to go");
    // a daemon that dies between the removal and its files: the next start removes them
    const other = (await d.docker(['run', '-d', 'busybox', 'sleep', '60'])).stdout.trim();
    // a container that can be checkpointed has a network namespace berth named for it: it must go too
    const netns = `/run/netns/berth-${other.slice(0, 16)}`;
    const hadNetns = existsSync(netns);
    await d.kill9();
    const db = new Database(join(d.root, 'berth.db'));
    db.prepare('DELETE FROM containers WHERE id = ?').run(other);
    db.close();
    assert.ok(
      filesOf(other).some((f) => f),
      'files left by the crash',
    );
    // and an empty cgroup a runtime left behind
    const cgroup = existsSync('/sys/fs/cgroup/pids')
      ? `/sys/fs/cgroup/pids/berth/${'e'.repeat(64)}`
      : `/sys/fs/cgroup/berth/${'e'.repeat(64)}`;
    mkdirSync(cgroup, { recursive: true });
    await d.restart();
    // both go in the background once live restore is done (the API answers before: issue #19)
    await eventually(() => filesOf(other).every((f) => !f), 30_000, 'the orphan to be finished at start');
    if (hadNetns) await eventually(() => !existsSync(netns), 30_000, "the orphan's network namespace to go");
    await eventually(() => !existsSync(cgroup), 30_000, 'the empty container cgroup to be removed after start');
    await d.docker(['rm', '-f', 'gone']);
  });

  test('on-failure:3 restarts a failing container three times', async () => {
    await d.docker([
      'run',
      '-d',
      '--name',
      'flaky',
      '--restart',
      'on-failure:3',
      'busybox',
      'sh',
      '-c',
      'echo run; exit 1',
    ]);
    const s = await eventually(
      async () => {
        const i = await inspect(d, 'flaky');
        return i.State.Status === 'exited' && i.RestartCount === 3 ? i : undefined;
      },
      20_000,
      'three restarts',
    );
    assert.equal(s.State.ExitCode, 1);
    // `exited`, not `restarting`: the policy decided at the exit that there is no fourth restart (no
    // timer is left to wait out; test/unit/engine-restart.test.ts checks that on a manual clock)
    assert.equal((await inspect(d, 'flaky')).RestartCount, 3, 'no fourth restart');
    const logs = await d.docker(['logs', 'flaky']);
    assert.equal(logs.stdout.split('\n').filter((l) => l === 'run').length, 4, 'ran once plus three restarts');
  });

  test('always restarts after exit 0; stop ends it; unless-stopped stays stopped across a daemon restart', async () => {
    await d.docker(['run', '-d', '--name', 'always', '--restart', 'always', 'busybox', 'sh', '-c', 'sleep 0.3']);
    await eventually(async () => (await inspect(d, 'always')).RestartCount >= 2, 15_000, 'always to restart');
    await d.docker(['stop', '-t', '1', 'always']);
    // a stop cancels a pending restart and marks the container stopped by hand: it is `exited`, not
    // `restarting`, when the stop returns (no timer to wait out: test/unit/engine-restart.test.ts)
    const s = await inspect(d, 'always');
    assert.equal(s.State.Status, 'exited');
    // the last exit was recorded (`die`) and no start came after it
    const filters = encodeURIComponent(JSON.stringify({ container: ['always'] }));
    const ev = await d.api('GET', `/events?since=0&until=${(Date.now() / 1000).toFixed(3)}&filters=${filters}`);
    const actions = ev.text
      .split('\n')
      .filter(Boolean)
      .map((l) => (JSON.parse(l) as { Action: string }).Action);
    assert.equal(
      actions.slice(actions.lastIndexOf('die')).includes('start'),
      false,
      `no start after the last exit: ${actions.join(' ')}`,
    );
    // one start per restart, none after the stop; a restart is counted when it is decided (dockerd's
    // RestartCount++ at the exit), so a stop during the back-off leaves one counted and never run
    const starts = actions.filter((a) => a === 'start').length;
    assert.ok(
      starts === s.RestartCount + 1 || starts === s.RestartCount,
      `one start per restart, none after the stop: ${starts} starts, RestartCount ${s.RestartCount}`,
    );

    await d.docker(['run', '-d', '--name', 'us', '--restart', 'unless-stopped', 'busybox', 'sleep', '1000']);
    await d.docker(['run', '-d', '--name', 'al', '--restart', 'always', 'busybox', 'sleep', '1000']);
    await d.docker(['stop', '-t', '0', 'us']);
    // kill `al`'s process behind the daemon's back while the daemon is down: it must come back.
    const alPid = (await inspect(d, 'al')).State.Pid;
    const alMonitor = monitorOf(alPid);
    await d.kill9();
    process.kill(alPid, 'SIGKILL');
    await eventually(() => gone(alMonitor), 10_000, "al's exit to be recorded");
    await d.restart();
    await eventually(
      async () => (await inspect(d, 'al')).State.Status === 'running',
      10_000,
      'always container to come back',
    );
    assert.equal((await inspect(d, 'us')).State.Status, 'exited');
  });
});
