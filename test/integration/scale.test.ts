/**
 * Issue #19 part 1: the restart path at scale stays correct. A few hundred idle containers (plus
 * witnesses that log and read stdin, and one whose process dies while the daemon is down), a
 * kill -9 of berthd and a restart: the API answers while live restore runs, and no answer shows a
 * state restore has yet to correct (the dead one is never listed or inspected as running); all
 * come back running as the same processes, listable, attachable with their logs intact; then all
 * are removed and nothing is left (dirs, mounts, cgroups, conmon processes). No timed assertions.
 */
import { before, after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { startDaemon, eventually, type Daemon } from './harness.js';

const COUNT = Number(process.env['BERTH_SCALE_COUNT'] ?? 300);
const CLIENTS = 4;

interface Listed {
  Id: string;
  Names: string[];
  State: string;
}
interface Inspected {
  Id: string;
  State: { Status: string; Running: boolean; Pid: number; ExitCode: number };
}

/** `fn` over `items`, `limit` at a time. */
async function inParallel<T>(items: T[], limit: number, fn: (t: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < items.length; i = next++) await fn(items[i]!);
  };
  await Promise.all(Array.from({ length: limit }, worker));
}

/** The cgroup dirs of container `id` in every hierarchy (v1) or v2's. */
const cgroupDirs = (id: string): string[] =>
  existsSync('/sys/fs/cgroup/memory')
    ? readdirSync('/sys/fs/cgroup', { withFileTypes: true })
        .filter((e) => e.isDirectory())
        .map((e) => `/sys/fs/cgroup/${e.name}/berth/${id}`)
    : [`/sys/fs/cgroup/berth/${id}`];

/** conmon processes whose command line names `dir` (the daemon's exec-root). */
function conmonsUnder(dir: string): number {
  let n = 0;
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      const cmd = readFileSync(`/proc/${p}/cmdline`, 'utf8');
      if (cmd.split('\0')[0]!.endsWith('conmon') && cmd.includes(dir)) n++;
    } catch {
      /* gone */
    }
  }
  return n;
}

describe(`${COUNT} containers across a kill -9 of berthd`, () => {
  let d: Daemon;
  const ids: string[] = [];
  before(async () => {
    d = await startDaemon();
  });
  after(async () => {
    await d?.stop();
  });

  test('all come back running, listable, attachable with logs intact; a dead one is never shown running', async () => {
    const names = Array.from({ length: COUNT }, (_, i) => `idle${i}`);
    await inParallel(names, CLIENTS, async (name) => {
      const c = await d.api('POST', `/containers/create?name=${name}`, {
        Image: 'busybox',
        Cmd: ['sleep', '1d'],
        HostConfig: { NetworkMode: 'none' },
      });
      assert.equal(c.status, 201, c.text);
      const id = (c.body as { Id: string }).Id;
      const s = await d.api('POST', `/containers/${id}/start`);
      assert.equal(s.status, 204, s.text);
      ids.push(id);
    });
    for (const w of ['w1', 'w2'])
      await d.docker([
        'run',
        '-d',
        '-i',
        '--network',
        'none',
        '--name',
        w,
        'busybox',
        'sh',
        '-c',
        'echo before restart; while read l; do echo got $l; done',
      ]);
    await d.docker(['run', '-d', '--network', 'none', '--name', 'doomed', 'busybox', 'sleep', '1d']);
    const listed = (await d.api('GET', '/containers/json')).body as Listed[];
    assert.equal(listed.length, COUNT + 3, 'all running before the restart');
    // the daemon holds no descriptor per running container (it kept conmon's sync pipe: 1,028 at 1,000)
    const fds = readdirSync(`/proc/${d.proc.pid}/fd`).length;
    assert.ok(fds < COUNT / 2, `berthd holds ${fds} descriptors with ${COUNT} containers running`);
    const pids = new Map<string, number>();
    for (const id of ids.filter((_, i) => i % 10 === 0))
      pids.set(id, ((await d.api('GET', `/containers/${id}/json`)).body as Inspected).State.Pid);
    const doomedPid = ((await d.api('GET', '/containers/doomed/json')).body as Inspected).State.Pid;

    await d.kill9();
    // a process that dies while the daemon is away: conmon records its exit, then ends
    process.kill(doomedPid, 'SIGKILL');
    await eventually(() => !existsSync(`/proc/${doomedPid}`), 10_000, 'the doomed process to die');
    await d.restart(); // returns once /_ping answers: live restore may still be running

    // the first answers, while restore may still run, are right: the dead one is not running
    const [doomed, list] = await Promise.all([
      d.api('GET', '/containers/doomed/json'),
      d.api('GET', '/containers/json?all=1'),
    ]);
    const st = (doomed.body as Inspected).State;
    assert.equal(st.Status, 'exited', 'a container that died while the daemon was down is not shown running');
    assert.equal(st.ExitCode, 137);
    const all = list.body as Listed[];
    assert.equal(all.length, COUNT + 3);
    assert.equal(all.find((c) => c.Names.includes('/doomed'))?.State, 'exited', 'nor listed running');
    assert.equal(all.filter((c) => c.State === 'running').length, COUNT + 2, 'every other one runs');

    // the same processes, not restarted ones
    for (const [id, pid] of pids) {
      const s = ((await d.api('GET', `/containers/${id}/json`)).body as Inspected).State;
      assert.equal(s.Status, 'running');
      assert.equal(s.Pid, pid, `${id} is the same process`);
    }
    // the docker CLI lists them all
    const ps = (await d.docker(['ps', '-q', '--no-trunc'])).stdout.split('\n').filter(Boolean);
    assert.equal(ps.length, COUNT + 2);
    for (const id of ids) assert.ok(ps.includes(id), `${id} listed`);

    // attachable, logs intact: what was logged before the restart, what is echoed after
    for (const w of ['w1', 'w2']) {
      const att = spawn('docker', ['attach', w], { env: d.env, stdio: ['pipe', 'pipe', 'pipe'] });
      let out = '';
      att.stdout.on('data', (b: Buffer) => (out += b.toString()));
      att.stdin.write(`after-${w}\n`);
      await eventually(() => out.includes(`got after-${w}`), 20_000, `${w} to echo across the restart`);
      att.kill('SIGKILL');
      const logs = (await d.docker(['logs', w])).stdout;
      assert.match(logs, /^before restart\n/, 'logs from before the restart intact');
      assert.ok(logs.includes(`got after-${w}\n`), 'and what came after');
    }
    // an idle one's logs are readable (empty) and it can be stopped as usual
    assert.equal((await d.docker(['logs', 'idle7'])).stdout, '');
  });

  test('all are removed with nothing left behind', async () => {
    const every = ((await d.api('GET', '/containers/json?all=1')).body as Listed[]).map((c) => c.Id);
    assert.ok(every.length >= COUNT);
    await inParallel(every, CLIENTS, async (id) => {
      const r = await d.api('DELETE', `/containers/${id}?force=1`);
      assert.equal(r.status, 204, r.text);
    });
    assert.deepEqual((await d.api('GET', '/containers/json?all=1')).body, []);
    // files go in the background after the removal answered
    await eventually(() => readdirSync(join(d.root, 'containers')).length === 0, 120_000, 'every container dir to go');
    // (the daemon's own pinned runtime binaries under its exec-root stay mounted while it runs)
    await eventually(
      () => !readFileSync('/proc/self/mountinfo', 'utf8').includes(`${d.root}/`),
      60_000,
      "no container's mount left under the daemon's root",
    );
    await eventually(() => every.every((id) => cgroupDirs(id).every((c) => !existsSync(c))), 60_000, 'no cgroup left');
    await eventually(() => conmonsUnder(join(d.dir, 'run')) === 0, 60_000, 'no conmon left');
    for (const id of every) assert.ok(!existsSync(`/run/netns/berth-${id.slice(0, 16)}`), 'no netns left');
  });
});
