/** Issue #2 acceptance 4: each kind of bad input gets a clear error and leaves nothing half-made. */
import { before, after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { eventually, startDaemon, type Daemon } from './harness.js';

describe('bad input', () => {
  let d: Daemon;
  const containerDirs = () => readdirSync(join(d.root, 'containers')).filter((n) => /^[a-f0-9]{64}$/.test(n));
  const mountsUnder = () =>
    readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .map((l) => l.split(' ')[4] ?? '')
      .filter((m) => m.startsWith(d.root));
  before(async () => {
    d = await startDaemon();
  });
  after(async () => {
    await d?.stop();
  });

  const refused = async (args: string[], message: RegExp) => {
    const dirs = containerDirs().length;
    const mounts = mountsUnder().length;
    const r = await d.docker(args, { allowFail: true });
    assert.notEqual(r.code, 0, `${args.join(' ')} must fail`);
    assert.match(r.stderr, message);
    assert.equal(containerDirs().length, dirs, 'no container files left behind');
    assert.equal(mountsUnder().length, mounts, 'no mounts left behind');
    return r;
  };

  test('unknown image: 404 and nothing created', async () => {
    await refused(['run', '--rm', 'nosuchimage:1.0', 'true'], /No such image: nosuchimage:1.0|Unable to find image/);
    const api = await d.api('POST', '/containers/create', { Image: 'nosuchimage:1.0' });
    assert.equal(api.status, 404);
    assert.match((api.body as { message: string }).message, /No such image: nosuchimage:1.0/);
    assert.equal((await d.docker(['ps', '-aq'])).stdout.trim(), '');
  });

  test('bad flag values: 400 with a clear message, nothing created', async () => {
    await refused(['run', '--ulimit', 'nofile=999999999:999999999', 'busybox', 'true'], /nofile.*(hard limit|above)/i);
    await refused(['run', '--cap-add', 'NOT_A_CAP', 'busybox', 'true'], /NOT_A_CAP/);
    await refused(['run', '--security-opt', 'apparmor=myprofile', 'busybox', 'true'], /AppArmor is not enabled/);
    await refused(['run', '--security-opt', 'label=type:foo_t', 'busybox', 'true'], /SELinux is not enabled/);
    await refused(
      ['run', '--rm', '--restart', 'always', 'busybox', 'true'],
      /AutoRemove.*restart policy|conflicting options/i,
    );
    await refused(['run', '--name', 'bad name!', 'busybox', 'true'], /Invalid container name/);
    await refused(['run', '-m', '1k', 'busybox', 'true'], /Minimum memory limit/);
    const api = await d.api('POST', '/containers/create', {
      Image: 'busybox',
      HostConfig: { Ulimits: [{ Name: 'nofile', Soft: 10, Hard: 5 }] },
    });
    assert.equal(api.status, 400);
    const apiBad = await d.api('POST', '/containers/create', {
      Image: 'busybox',
      Cmd: 'not-an-array-but-ok',
      HostConfig: { Memory: 'lots' },
    });
    assert.equal(apiBad.status, 400);
    assert.match((apiBad.body as { message: string }).message, /HostConfig.Memory/);
    assert.equal((await d.docker(['ps', '-aq'])).stdout.trim(), '');
  });

  test('name clash: 409, the first container is untouched', async () => {
    await d.docker(['create', '--name', 'taken', 'busybox', 'true']);
    const dirs = containerDirs().length;
    const r = await d.docker(['create', '--name', 'taken', 'busybox', 'true'], { allowFail: true });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /Conflict. The container name "\/taken" is already in use/);
    assert.equal(containerDirs().length, dirs);
    await d.docker(['rm', 'taken']);
  });

  test('removing a running container: 409 and it keeps running', async () => {
    await d.docker(['run', '-d', '--name', 'busy', 'busybox', 'sleep', '1000']);
    const r = await d.docker(['rm', 'busy'], { allowFail: true });
    assert.match(r.stderr, /cannot remove container "\/busy": container is running/);
    const st = JSON.parse((await d.docker(['inspect', 'busy'])).stdout)[0].State.Status;
    assert.equal(st, 'running');
    const api = await d.api('DELETE', '/containers/busy');
    assert.equal(api.status, 409);
    await d.docker(['rm', '-f', 'busy']);
  });

  test('unknown container and exec into a stopped one', async () => {
    const r = await d.docker(['stop', 'ghost'], { allowFail: true });
    assert.match(r.stderr, /No such container: ghost/);
    assert.equal((await d.api('GET', '/containers/ghost/json')).status, 404);
    await d.docker(['create', '--name', 'idle', 'busybox', 'true']);
    const ex = await d.docker(['exec', 'idle', 'true'], { allowFail: true });
    assert.match(ex.stderr, /is not running/);
    await d.docker(['rm', 'idle']);
  });

  test('a command that does not exist: clear error, exit 127, container not left running', async () => {
    const r = await d.docker(['run', '--name', 'nocmd', 'busybox', '/no/such/cmd'], { allowFail: true });
    assert.equal(r.code, 127);
    assert.match(r.stderr, /no such file or directory|not found/i);
    const st = JSON.parse((await d.docker(['inspect', 'nocmd'])).stdout)[0].State;
    assert.notEqual(st.Status, 'running');
    await d.docker(['rm', 'nocmd']);
  });

  test('--rm with a command that does not exist: exit 127 and the container is removed (no hang)', async () => {
    // a removal's files go in the background (engine.ts removeStopped): the earlier tests' too
    const earlier = new Set(containerDirs());
    const r = await d.docker(['run', '--rm', 'busybox', 'nosuchcmd'], { allowFail: true });
    assert.equal(r.code, 127);
    assert.match(r.stderr, /executable file not found/);
    await eventually(
      () => containerDirs().every((n) => earlier.has(n)),
      10_000,
      'the failed --rm container is removed',
    );
    assert.equal((await d.docker(['ps', '-aq'])).stdout.trim(), '');
  });

  /** Processes whose command line names `id` (its conmon, the runtime it runs). */
  const processesOf = (id: string) =>
    readdirSync('/proc')
      .filter((p) => /^\d+$/.test(p))
      .filter((p) => {
        try {
          return readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(id);
        } catch {
          return false;
        }
      });
  /** A start failed after conmon was spawned: no conmon and no run-dir state of `id` stays. */
  const nothingOfStartLeft = async (id: string) => {
    await eventually(() => processesOf(id).length === 0, 10_000, 'no conmon of the container left');
    const run = join(d.dir, 'run', 'runtime');
    assert.equal(existsSync(join(run, 'c', id)), false, 'no c/<id> left');
    assert.equal(existsSync(join(run, 'exits', id)), false, 'no exit file');
  };

  test('a start that fails after its conmon was started ends that conmon and leaves no run-dir state', async () => {
    // conmon starts at the beginning of a start and waits on its start pipe while the spec is
    // written (runtime/task.ts createTask): a failure there must end it and clean up
    const id = (await d.docker(['create', 'busybox', 'true'])).stdout.trim();
    const config = join(d.root, 'containers', id, 'config.json');
    rmSync(config, { force: true });
    mkdirSync(config); // the spec cannot be written
    const r = await d.docker(['start', id], { allowFail: true });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /EISDIR/);
    await nothingOfStartLeft(id);
    const st = JSON.parse((await d.docker(['inspect', id])).stdout)[0].State;
    assert.equal(st.Status, 'created');
    rmdirSync(config);
    await d.docker(['start', id]);
    assert.equal((await d.docker(['wait', id])).stdout.trim(), '0');
    await d.docker(['rm', id]);
  });

  test("a start refused for an unknown user: dockerd's error kept (exit code 128), no die, conmon ended", async () => {
    // the user is read from the rootfs while conmon starts (engine/start.ts): its refusal comes
    // after conmon was spawned. dockerd 20.10 answers 500 "unable to find user nosuch: no matching
    // entries in passwd file", keeps State.Error and ExitCode 128, Status "created", no `die` event.
    const since = Math.floor(Date.now() / 1000) - 1;
    const id = (await d.docker(['create', '-u', 'nosuch', '--network', 'none', 'busybox', 'true'])).stdout.trim();
    const r = await d.api('POST', `/containers/${id}/start`);
    assert.equal(r.status, 500);
    assert.equal(
      (r.body as { message: string }).message,
      'unable to find user nosuch: no matching entries in passwd file',
    );
    await nothingOfStartLeft(id);
    const st = JSON.parse((await d.docker(['inspect', id])).stdout)[0].State;
    assert.equal(st.Status, 'created');
    assert.equal(st.ExitCode, 128);
    assert.equal(st.Error, 'unable to find user nosuch: no matching entries in passwd file');
    const until = Math.floor(Date.now() / 1000) + 1;
    const events = await d.docker([
      'events',
      `--since=${since}`,
      `--until=${until}`,
      `--filter=container=${id}`,
      '--format={{.Action}}',
    ]);
    assert.deepEqual(events.stdout.trim().split('\n'), ['create']);
    await d.docker(['rm', id]);
  });

  test('API version negotiation: too new is refused, older works', async () => {
    const tooNew = await d.api('GET', '/v9.99/version');
    assert.equal(tooNew.status, 400);
    assert.match((tooNew.body as { message: string }).message, /too new/);
    assert.equal((await d.api('GET', '/v1.41/version')).status, 200);
  });
});
