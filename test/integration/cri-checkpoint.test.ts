/**
 * Issue #17: the CRI's CheckpointContainer (KEP 2008, forensic container checkpointing) against a
 * real berthd with crun (scripts/crun.sh's, built with CRIU) and CRIU: a running pod container (a
 * counter loop) is checkpointed to the request's `location`; the archive is berth's export format
 * (berth-export.json, rootfs-diff.tar, checkpoint/), 0600, and the container keeps running and
 * counting. Bad locations (relative, '..', no such directory, a file or a symlink already there),
 * an unknown or stopped container and a deadline that passes (a CRIU that hangs, given as --criu)
 * are clean gRPC errors that leave nothing: no file, no temporary file, no checkpoint kept in the
 * container's directory, and the container still runs. Skipped, with the reason, when `info`
 * says this host cannot checkpoint with the default runtime.
 */
import { before, after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  chmodSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import { startDaemon, eventually, type Daemon } from './harness.js';
import { criClient, codeOf, type CriClient } from './cri-client.js';

/** A CRIU that never answers while `hang` exists in its directory; otherwise the real one. */
function hangingCriu(dir: string): string {
  const file = join(dir, 'criu');
  writeFileSync(
    file,
    `#!/bin/bash
if [ -e ${dir}/hang ]; then exec -a "${dir}/criu-hang" sleep 1000; fi
exec /usr/local/sbin/criu "$@"
`,
  );
  chmodSync(file, 0o755);
  return file;
}

interface CheckpointInfo {
  CheckpointProbe: string;
  CheckpointRuntimes: string[];
  CheckpointReason: string;
  DefaultRuntime: string;
}

let d: Daemon;
let cri: CriClient;
let dir = '';
let out = '';
let skip: string | false = false;
let pod = '';
let ctr = '';

async function rejectsWith(p: Promise<unknown>, code: number, what: string): Promise<string> {
  try {
    await p;
  } catch (e) {
    assert.equal(codeOf(e), code, `${what}: ${String(e)}`);
    return (e as { details?: string }).details ?? '';
  }
  assert.fail(`${what}: expected gRPC code ${code}, got success`);
}

/** The counter's last number (the shell truncates /tmp/n before it writes: read again when empty). */
async function counter(id: string): Promise<number> {
  for (let i = 0; ; i++) {
    const r = await cri.runtime('ExecSync', { container_id: id, cmd: ['cat', '/tmp/n'], timeout: 20 });
    const text = String(r['stdout']).trim();
    if (text || i >= 20) return Number(text);
  }
}

/** The container is running and its counter goes on. */
async function goesOn(id: string, what: string): Promise<void> {
  const st = (await cri.runtime('ContainerStatus', { container_id: id })) as { status: { state: string } };
  assert.equal(st.status.state, 'CONTAINER_RUNNING', `${what}: running`);
  const n = await counter(id);
  await eventually(async () => (await counter(id)) > n + 2, 30_000, `${what}: the counter goes on`);
}

/** Nothing left behind: `out` holds exactly `want`, and the container keeps no checkpoint. */
function nothingLeft(want: string[], what: string): void {
  assert.deepEqual(readdirSync(out).sort(), want.sort(), `${what}: no file or temporary file left`);
  const kept = join(d.root, 'containers', ctr, 'checkpoints');
  assert.deepEqual(existsSync(kept) ? readdirSync(kept) : [], [], `${what}: no checkpoint kept in the container's dir`);
}

before(async () => {
  dir = mkdtempSync('/var/tmp/berth-cri-cp-');
  out = join(dir, 'out');
  mkdirSync(out);
  const sock = join(dir, 'cri.sock');
  d = await startDaemon({
    args: ['--cri-socket', sock, '--cni-conf-dir', join(dir, 'no-cni'), '--criu', hangingCriu(dir)],
  });
  cri = criClient(sock);
  const info = await eventually(
    async () => {
      const i = (await d.api('GET', '/info')).body as CheckpointInfo;
      return i.CheckpointProbe === 'pending' ? undefined : i;
    },
    60_000,
    'the CRIU probe',
  );
  if (info.CheckpointProbe !== 'ok') skip = `CRIU cannot checkpoint here: ${info.CheckpointReason}`;
  else if (!info.CheckpointRuntimes.includes(info.DefaultRuntime))
    skip = `the default runtime ${info.DefaultRuntime} cannot checkpoint (scripts/crun.sh builds crun with CRIU)`;
});

after(async () => {
  if (cri) {
    if (pod) await cri.runtime('RemovePodSandbox', { pod_sandbox_id: pod }).catch(() => undefined);
    cri.close();
  }
  await d?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('CRI CheckpointContainer', () => {
  test('a running counter is checkpointed to location; the archive is berth export format; it runs on', async (t) => {
    if (skip) return t.skip(skip);
    const sandbox_config = {
      metadata: { name: 'cp', uid: 'uid-cp', namespace: 'default', attempt: 0 },
      hostname: 'cp',
      log_directory: join(dir, 'logs'),
    };
    pod = (await cri.runtime('RunPodSandbox', { config: sandbox_config }))['pod_sandbox_id'] as string;
    ctr = (
      await cri.runtime('CreateContainer', {
        pod_sandbox_id: pod,
        sandbox_config,
        config: {
          metadata: { name: 'counter', attempt: 0 },
          image: { image: 'busybox:latest' },
          command: ['sh', '-c', 'i=0; while true; do i=$((i+1)); echo $i > /tmp/n; sleep 0.1; done'],
          log_path: 'counter.log',
        },
      })
    )['container_id'] as string;
    await cri.runtime('StartContainer', { container_id: ctr });
    await eventually(async () => (await counter(ctr).catch(() => 0)) > 2, 30_000, 'counting');

    const location = join(out, 'checkpoint-cp.tar');
    await cri.runtime('CheckpointContainer', { container_id: ctr, location, timeout: 120 }, 180_000);
    const st = lstatSync(location);
    assert.ok(st.isFile() && st.size > 0, 'a non-empty archive');
    assert.equal(st.mode & 0o777, 0o600, 'the archive is 0600');
    const entries = execFileSync('tar', ['-tzf', location], { encoding: 'utf8' }).split('\n');
    for (const want of ['berth-export.json', 'rootfs-diff.tar'])
      assert.ok(entries.includes(want), `${want} in the archive: ${entries.slice(0, 10).join(' ')}`);
    assert.ok(
      entries.some((e) => /^checkpoint\/.+\.img$/.test(e)),
      'CRIU images in the archive',
    );
    const doc = JSON.parse(execFileSync('tar', ['-xzOf', location, 'berth-export.json'], { encoding: 'utf8' })) as {
      version: number;
    };
    assert.equal(doc.version, 1);
    nothingLeft(['checkpoint-cp.tar'], 'after a checkpoint');
    // berth's import refuses it cleanly: the archive's HostConfig names the pod's infra (container:<id>),
    // which the Docker API's namespace does not have (restoring a pod container is not done: README)
    const imp = await d.berth(['restore', '--import', location, '--name', 'restored'], { allowFail: true });
    assert.notEqual(imp.code, 0);
    assert.match(imp.stderr, /No such container/);
    assert.equal((await d.docker(['ps', '-aq'])).stdout.trim(), '', 'the refused import made nothing');
    await goesOn(ctr, 'after the checkpoint');
    // a second checkpoint to another location works too (nothing of the first is in the way)
    await cri.runtime('CheckpointContainer', { container_id: ctr, location: join(out, 'second.tar') }, 180_000);
    assert.ok(lstatSync(join(out, 'second.tar')).size > 0);
    rmSync(join(out, 'second.tar'));
    rmSync(location);
  });

  test('bad locations are INVALID_ARGUMENT or ALREADY_EXISTS and leave nothing; the container runs on', async (t) => {
    if (skip) return t.skip(skip);
    assert.ok(ctr, 'the first test made the container');
    const victim = join(dir, 'victim');
    writeFileSync(victim, 'untouched');
    writeFileSync(join(out, 'taken.tar'), 'mine');
    symlinkSync(victim, join(out, 'link.tar'));
    const cases: Array<[string, number]> = [
      ['', status.INVALID_ARGUMENT],
      ['relative.tar', status.INVALID_ARGUMENT],
      [`${out}/../out/dots.tar`, status.INVALID_ARGUMENT],
      [`${out}//double.tar`, status.INVALID_ARGUMENT],
      [`${out}/`, status.INVALID_ARGUMENT],
      [join(out, 'no-such-dir', 'x.tar'), status.INVALID_ARGUMENT],
      [join(victim, 'x.tar'), status.INVALID_ARGUMENT],
      [join(out, 'taken.tar'), status.ALREADY_EXISTS],
      [join(out, 'link.tar'), status.ALREADY_EXISTS],
    ];
    for (const [location, code] of cases) {
      const why = await rejectsWith(
        cri.runtime('CheckpointContainer', { container_id: ctr, location, timeout: 60 }),
        code,
        `location ${JSON.stringify(location)}`,
      );
      assert.match(why, /location/, `the error names the location: ${why}`);
    }
    assert.equal(readFileSync(victim, 'utf8'), 'untouched', 'the symlink was not followed');
    assert.equal(readFileSync(join(out, 'taken.tar'), 'utf8'), 'mine', 'the file there is not replaced');
    assert.ok(lstatSync(join(out, 'link.tar')).isSymbolicLink());
    nothingLeft(['taken.tar', 'link.tar'], 'after bad locations');
    rmSync(join(out, 'taken.tar'));
    rmSync(join(out, 'link.tar'));
    await goesOn(ctr, 'after bad locations');
  });

  test('an unknown container is NOT_FOUND; a missing id is INVALID_ARGUMENT; nothing is written', async (t) => {
    if (skip) return t.skip(skip);
    await rejectsWith(
      cri.runtime('CheckpointContainer', { container_id: 'f'.repeat(64), location: join(out, 'x.tar') }),
      status.NOT_FOUND,
      'unknown container',
    );
    await rejectsWith(
      cri.runtime('CheckpointContainer', { container_id: '', location: join(out, 'x.tar') }),
      status.INVALID_ARGUMENT,
      'no container id',
    );
    assert.deepEqual(readdirSync(out), []);
  });

  test('a deadline that passes (CRIU hangs) is DEADLINE_EXCEEDED; nothing is left; the container runs on', async (t) => {
    if (skip) return t.skip(skip);
    writeFileSync(join(dir, 'hang'), '');
    let why = '';
    try {
      why = await rejectsWith(
        cri.runtime('CheckpointContainer', { container_id: ctr, location: join(out, 'late.tar'), timeout: 3 }, 120_000),
        status.DEADLINE_EXCEEDED,
        'a hanging CRIU',
      );
    } finally {
      rmSync(join(dir, 'hang'));
    }
    assert.match(why, /did not finish in 3s/);
    nothingLeft([], 'after the deadline');
    await goesOn(ctr, 'after the deadline');
    // no CRIU left behind
    const left = execFileSync('ps', ['-eo', 'args'], { encoding: 'utf8' })
      .split('\n')
      .filter((l) => l.includes(`${dir}/criu-hang`));
    assert.deepEqual(left, [], 'the hanging CRIU was ended');
    // and the next checkpoint works
    await cri.runtime('CheckpointContainer', { container_id: ctr, location: join(out, 'after.tar') }, 180_000);
    assert.ok(lstatSync(join(out, 'after.tar')).size > 0);
    rmSync(join(out, 'after.tar'));
  });

  test('a stopped container cannot be checkpointed (FAILED_PRECONDITION); nothing is written', async (t) => {
    if (skip) return t.skip(skip);
    await cri.runtime('StopContainer', { container_id: ctr, timeout: 1 });
    await rejectsWith(
      cri.runtime('CheckpointContainer', { container_id: ctr, location: join(out, 'stopped.tar') }),
      status.FAILED_PRECONDITION,
      'a stopped container',
    );
    nothingLeft([], 'after a stopped container');
  });
});
