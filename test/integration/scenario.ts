/**
 * Issue #2's acceptance scenario, run by a client CLI (the real `docker`, or `berth`) against a
 * private berthd. Each step asserts what a user would see.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { writeFileSync, readFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { eventually, REPO, type Daemon } from './harness.js';

type Cli = Daemon['docker'];

export function scenario(name: 'docker' | 'berth', daemon: () => Daemon): void {
  const cli: Cli = (args, opts) => (name === 'docker' ? daemon().docker(args, opts) : daemon().berth(args, opts));
  const bin = () => (name === 'docker' ? 'docker' : join(REPO, 'bin', 'berth'));

  test(`${name}: run --rm echo`, async () => {
    const r = await cli(['run', '--rm', 'busybox', 'echo', 'hello']);
    assert.equal(r.stdout, 'hello\n');
    const ps = await cli(['ps', '-aq']);
    assert.equal(ps.stdout.trim(), '', 'the --rm container is gone');
    if (name !== 'berth') return;
    // berth: a run that only prints goes over the light wire (src/client/wire.ts) and writes with
    // cli/stdio.ts: stdout and stderr apart, and no stream module loaded
    const list = join(daemon().dir, 'modules.txt');
    const preload = join(daemon().dir, 'modules.cjs');
    writeFileSync(
      preload,
      `process.on('exit', () => require('fs').writeFileSync(${JSON.stringify(list)}, process.moduleLoadList.join('\\n')));\n`,
    );
    const light = await cli(['run', '--rm', 'busybox', 'sh', '-c', 'echo out; echo err >&2; exit 4'], {
      allowFail: true,
      env: { NODE_OPTIONS: `--require ${preload}` },
    });
    assert.deepEqual(light, { code: 4, stdout: 'out\n', stderr: 'err\n' });
    const loaded = readFileSync(list, 'utf8').split('\n');
    for (const m of ['NativeModule net', 'NativeModule stream'])
      assert.ok(!loaded.includes(m), `berth run loaded ${m}`);
  });

  test(`${name}: run exit code and stdin`, async () => {
    const r = await cli(['run', '--rm', 'busybox', 'sh', '-c', 'exit 3'], { allowFail: true });
    assert.equal(r.code, 3);
    const cat = await cli(['run', '--rm', '-i', 'busybox', 'cat'], { input: 'piped through\n' });
    assert.equal(cat.stdout, 'piped through\n');
  });

  test(`${name}: detached httpd, exec, top, stats, logs`, async () => {
    const id = (
      await cli(['run', '-d', '--name', 'web', 'busybox', 'httpd', '-f', '-p', '8080', '-h', '/etc'])
    ).stdout.trim();
    assert.match(id, /^[a-f0-9]{64}$/);
    const ps = await cli(['ps']);
    assert.match(ps.stdout, /web/);
    const ex = await cli(['exec', 'web', 'cat', '/etc/hostname']);
    assert.equal(ex.stdout.trim(), id.slice(0, 12));
    const served = await eventually(
      async () => {
        const r = await cli(['exec', 'web', 'wget', '-qO-', 'http://127.0.0.1:8080/hostname'], { allowFail: true });
        return r.code === 0 ? r.stdout : undefined;
      },
      10_000,
      'httpd to answer',
    );
    assert.equal(served.trim(), id.slice(0, 12));
    const code = await cli(['exec', 'web', 'sh', '-c', 'exit 4'], { allowFail: true });
    assert.equal(code.code, 4);
    const env = await cli([
      'exec',
      '-e',
      'FOO=bar',
      '-u',
      'app',
      '-w',
      '/tmp',
      'web',
      'sh',
      '-c',
      'echo $FOO $(id -u) $(pwd)',
    ]);
    assert.equal(env.stdout.trim(), 'bar 1000 /tmp');
    const top = await cli(['top', 'web']);
    assert.match(top.stdout, /httpd/);
    const stats = await cli(['stats', '--no-stream', 'web']);
    assert.match(stats.stdout, /web/);
    assert.match(stats.stdout, /MiB|KiB|B \//);
  });

  test(`${name}: logs keep stdout and stderr apart; -f follows to the end`, async () => {
    await cli(['run', '-d', '--name', 'talker', 'busybox', 'sh', '-c', 'echo out1; echo err1 >&2; sleep 1; echo out2']);
    const f = await cli(['logs', '-f', 'talker']);
    assert.equal(f.stdout, 'out1\nout2\n');
    assert.equal(f.stderr, 'err1\n');
    const tail = await cli(['logs', '--tail', '1', 'talker']);
    assert.equal(tail.stdout, 'out2\n');
    const ts = await cli(['logs', '--timestamps', 'talker']);
    assert.match(ts.stdout, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z out1$/m);
  });

  test(`${name}: stop, start, restart, pause, unpause, rm`, async () => {
    await cli(['run', '-d', '--name', 'life', 'busybox', 'sleep', '1000']);
    const state = async () =>
      JSON.parse((await cli(['inspect', 'life'])).stdout)[0].State as { Status: string; ExitCode: number; Pid: number };
    assert.equal((await state()).Status, 'running');
    await cli(['pause', 'life']);
    assert.equal((await state()).Status, 'paused');
    await cli(['unpause', 'life']);
    assert.equal((await state()).Status, 'running');
    await cli(['stop', '-t', '1', 'life']);
    const stopped = await state();
    assert.equal(stopped.Status, 'exited');
    assert.equal(stopped.ExitCode, 137, 'sleep ignores SIGTERM as pid 1, so it was killed after 1 s');
    await cli(['start', 'life']);
    const pid1 = (await state()).Pid;
    assert.equal((await state()).Status, 'running');
    await cli(['restart', '-t', '0', 'life']);
    const after = await state();
    assert.equal(after.Status, 'running');
    assert.notEqual(after.Pid, pid1);
    const refused = await cli(['rm', 'life'], { allowFail: true });
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /container is running: stop the container before removing or force remove/);
    await cli(['rm', '-f', 'life']);
    const gone = await cli(['inspect', 'life'], { allowFail: true });
    assert.match(gone.stderr, /No such (object|container): life/);
  });

  test(`${name}: ps -a, inspect, images`, async () => {
    const ps = await cli(['ps', '-a', '--format', '{{.Names}} {{.Status}}']);
    assert.match(ps.stdout, /talker Exited \(0\)/);
    const images = await cli(['images']);
    assert.match(images.stdout, /busybox\s+latest/);
    const ins = JSON.parse((await cli(['image', 'inspect', 'busybox'])).stdout)[0];
    assert.deepEqual(ins.Config.Cmd, ['sh']);
  });

  test(`${name}: commit and cp`, async () => {
    await cli(['run', '--name', 'maker', 'busybox', 'sh', '-c', 'echo made > /made.txt; rm /bin/vi']);
    const diff = await cli(['diff', 'maker']);
    assert.match(diff.stdout, /A \/made.txt/);
    assert.match(diff.stdout, /D \/bin\/vi/);
    const tmp = join(daemon().dir, 'cp');
    mkdirSync(tmp, { recursive: true });
    await cli(['cp', 'maker:/made.txt', join(tmp, 'out.txt')]);
    assert.equal(readFileSync(join(tmp, 'out.txt'), 'utf8'), 'made\n');
    writeFileSync(join(tmp, 'in.txt'), 'copied in\n');
    await cli(['cp', join(tmp, 'in.txt'), 'maker:/in.txt']);
    await cli([
      'commit',
      '-c',
      'CMD ["cat", "/made.txt", "/in.txt"]',
      '-c',
      'ENV MARK=1',
      'maker',
      `committed-${name}:v1`,
    ]);
    const r = await cli(['run', '--rm', `committed-${name}:v1`]);
    assert.equal(r.stdout, 'made\ncopied in\n');
    const vi = await cli(['run', '--rm', `committed-${name}:v1`, 'ls', '/bin/vi'], { allowFail: true });
    assert.notEqual(vi.code, 0, 'the deletion was committed as a whiteout');
    const env = await cli(['run', '--rm', `committed-${name}:v1`, 'sh', '-c', 'echo $MARK']);
    assert.equal(env.stdout, '1\n');
  });

  test(`${name}: save | load keeps the image`, async () => {
    const id = (await cli(['image', 'inspect', '-f', '{{.Id}}', `committed-${name}:v1`])).stdout.trim();
    const tar = join(daemon().dir, 'saved.tar');
    await cli(['save', '-o', tar, `committed-${name}:v1`]);
    await cli(['rmi', `committed-${name}:v1`]);
    const load = await cli(['load', '-i', tar]);
    assert.match(load.stdout, new RegExp(`Loaded image: committed-${name}:v1`));
    const again = (await cli(['image', 'inspect', '-f', '{{.Id}}', `committed-${name}:v1`])).stdout.trim();
    assert.equal(again, id);
    execFileSync('tar', ['tf', tar], { stdio: 'pipe' }); // a valid tar
  });

  test(`${name}: events --since`, async () => {
    const since = Math.floor(Date.now() / 1000) - 1;
    await cli(['run', '--rm', '--name', 'evt', 'busybox', 'true']);
    await sleep(100);
    const until = Math.floor(Date.now() / 1000) + 1;
    const ev = await cli([
      'events',
      '--since',
      String(since),
      '--until',
      String(until),
      '--filter',
      'container=evt',
      '--format',
      '{{.Action}}',
    ]);
    const actions = ev.stdout.split('\n').filter(Boolean);
    for (const a of ['create', 'start', 'die', 'destroy'])
      assert.ok(actions.includes(a), `event ${a} in ${actions.join(',')}`);
  });

  test(`${name}: run -it with a pty`, async () => {
    const session = `berth-${name}-${process.pid}`;
    const cmd = `${bin()} run -it --rm --name tty-${name} busybox sh`;
    const env = Object.entries(daemon().env)
      .filter(([k]) => ['DOCKER_HOST', 'BERTH_HOST', 'DOCKER_CONFIG', 'PATH'].includes(k))
      .map(([k, v]) => `${k}=${v}`);
    execFileSync('tmux', [
      'new-session',
      '-d',
      '-s',
      session,
      '-x',
      '120',
      '-y',
      '30',
      'env',
      ...env,
      ...cmd.split(' '),
    ]);
    try {
      await sleep(1500);
      execFileSync('tmux', ['send-keys', '-t', session, 'echo $((6*7)) && tty', 'Enter']);
      const screen = await eventually(
        () => {
          const s = execFileSync('tmux', ['capture-pane', '-p', '-t', session]).toString();
          return s.includes('42') && s.includes('/dev/pts') ? s : undefined;
        },
        10_000,
        'the shell to answer',
      );
      assert.match(screen, /\/dev\/pts\/0/);
      execFileSync('tmux', ['send-keys', '-t', session, 'exit', 'Enter']);
      await eventually(
        async () => (await cli(['ps', '-aq', '--filter', `name=tty-${name}`])).stdout.trim() === '',
        10_000,
        'the container to go',
      );
    } finally {
      try {
        execFileSync('tmux', ['kill-session', '-t', session], { stdio: 'ignore' });
      } catch {
        /* gone */
      }
    }
  });
}
