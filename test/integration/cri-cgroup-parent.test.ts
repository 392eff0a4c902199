/**
 * Issue #17: the kubelet's LinuxPodSandboxConfig.cgroup_parent (cgroupfs driver) and Docker's
 * HostConfig.CgroupParent (`docker run --cgroup-parent`, which dockerd honours) against a real
 * berthd with crun: the container's (and the pod's infra's) /proc/<pid>/cgroup shows its cgroup
 * under the parent in every hierarchy the host has (cgroup v1 controllers, and the v2 line when
 * the host is v2); stats still come from there. A parent with `..` or odd characters is a clean
 * 400 / INVALID_ARGUMENT and makes nothing. The parent cgroups the tests make are removed.
 */
import { before, after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, rmdirSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import { startDaemon, type Daemon } from './harness.js';
import { criClient, codeOf, type CriClient } from './cri-client.js';

let d: Daemon;
let cri: CriClient;
let dir = '';
const tag = randomBytes(4).toString('hex');
/** the top of every parent this file makes (removed, with what is under it, in `after`) */
const tops = [`berth-cgp-${tag}`, `kubepods-${tag}`];

/** The cgroup paths of a process, one per hierarchy line of /proc/<pid>/cgroup (controllers -> path). */
function cgroupLines(text: string): Array<{ ctl: string; path: string }> {
  return text
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const [, ctl = '', ...rest] = l.split(':');
      return { ctl, path: rest.join(':') };
    });
}

/** Every hierarchy that matters puts the process under `parent/<id>`: memory, pids, cpu (v1) or the v2 line. */
function assertUnder(text: string, parent: string, id: string, what: string): void {
  const lines = cgroupLines(text);
  const want = `${parent}/${id}`;
  const v1 = lines.filter((l) => /(^|,)(memory|pids|cpu)(,|$)/.test(l.ctl));
  if (v1.length) {
    for (const l of v1) assert.equal(l.path, want, `${what}: ${l.ctl} under the parent:\n${text}`);
  } else {
    const v2 = lines.find((l) => l.ctl === '');
    assert.equal(v2?.path, want, `${what}: the v2 cgroup under the parent:\n${text}`);
  }
}

/** Removes `top` and everything under it in every hierarchy (children first; they are empty once their containers are gone). */
function removeTree(top: string): void {
  const roots = readdirSync('/sys/fs/cgroup').map((h) => join('/sys/fs/cgroup', h));
  const rm = (p: string) => {
    if (!existsSync(p)) return;
    for (const e of readdirSync(p, { withFileTypes: true })) if (e.isDirectory()) rm(join(p, e.name));
    try {
      rmdirSync(p);
    } catch {
      // still in use: reported by the assertion below
    }
  };
  for (const r of [...roots, '/sys/fs/cgroup']) rm(join(r, top));
}

before(async () => {
  dir = mkdtempSync('/var/tmp/berth-cgp-');
  const sock = join(dir, 'cri.sock');
  d = await startDaemon({ args: ['--cri-socket', sock, '--cni-conf-dir', join(dir, 'no-cni')] });
  cri = criClient(sock);
});

after(async () => {
  if (cri) {
    const pods = (await cri.runtime('ListPodSandbox', {}).catch(() => ({ items: [] }))) as {
      items: Array<{ id: string }>;
    };
    for (const p of pods.items) await cri.runtime('RemovePodSandbox', { pod_sandbox_id: p.id }).catch(() => undefined);
    cri.close();
  }
  await d?.stop();
  for (const t of tops) removeTree(t);
  if (dir) rmSync(dir, { recursive: true, force: true });
  const left = readdirSync('/sys/fs/cgroup').flatMap((h) =>
    tops.filter((t) => existsSync(join('/sys/fs/cgroup', h, t))).map((t) => `${h}/${t}`),
  );
  assert.deepEqual(left, [], 'the parent cgroups the tests made are gone');
});

describe('cgroup parent', () => {
  test('docker run --cgroup-parent (absolute and relative): the container is under it; stats work', async () => {
    for (const [given, parent] of [
      [`/berth-cgp-${tag}/abs`, `/berth-cgp-${tag}/abs`],
      [`berth-cgp-${tag}/rel/`, `/berth-cgp-${tag}/rel`],
    ] as const) {
      const id = (await d.docker(['run', '-d', '--cgroup-parent', given, 'busybox', 'sleep', '1000'])).stdout.trim();
      const text = (await d.docker(['exec', id, 'cat', '/proc/self/cgroup'])).stdout;
      assertUnder(text, parent, id, `--cgroup-parent ${given}`);
      const inspect = (await d.api('GET', `/containers/${id}/json`)).body as { HostConfig: { CgroupParent: string } };
      assert.equal(inspect.HostConfig.CgroupParent, parent, 'inspect shows the parent (clean)');
      const st = (await d.api('GET', `/containers/${id}/stats?stream=false`)).body as {
        memory_stats: { usage?: number };
        pids_stats: { current?: number };
      };
      assert.ok((st.memory_stats.usage ?? 0) > 0, `memory usage from the container's cgroup: ${JSON.stringify(st)}`);
      assert.ok((st.pids_stats.current ?? 0) >= 1, 'pids from the container cgroup');
      await d.docker(['rm', '-f', id]);
    }
  });

  test('bad --cgroup-parent values are 400 and make nothing', async () => {
    const before_ = (await d.docker(['ps', '-aq'])).stdout;
    for (const bad of ['../escape', `/berth-cgp-${tag}/../x`, `/berth-cgp-${tag}/./x`, 'a b', 'x\ny']) {
      const r = await d.api('POST', '/containers/create', {
        Image: 'busybox',
        Cmd: ['true'],
        HostConfig: { CgroupParent: bad },
      });
      assert.equal(r.status, 400, `${JSON.stringify(bad)}: ${r.text}`);
      assert.match(r.text, /invalid cgroup parent/);
    }
    assert.equal((await d.docker(['ps', '-aq'])).stdout, before_, 'no container made');
  });

  test("CRI cgroup_parent: the pod's infra and containers are under it; stats work", async () => {
    const parent = `/kubepods-${tag}/besteffort/poduid-cgp`;
    const config = {
      metadata: { name: 'cgp', uid: 'uid-cgp', namespace: 'default', attempt: 0 },
      hostname: 'cgp',
      log_directory: join(dir, 'logs'),
      linux: { cgroup_parent: parent },
    };
    const pod = (await cri.runtime('RunPodSandbox', { config }))['pod_sandbox_id'] as string;
    const st = (await cri.runtime('PodSandboxStatus', { pod_sandbox_id: pod, verbose: true })) as {
      info: Record<string, string>;
    };
    const pid = (JSON.parse(st.info['info'] ?? '{}') as { pid: number }).pid;
    assertUnder(readFileSync(`/proc/${pid}/cgroup`, 'utf8'), parent, pod, 'the infra');
    const ctr = (
      await cri.runtime('CreateContainer', {
        pod_sandbox_id: pod,
        sandbox_config: config,
        config: { metadata: { name: 'c', attempt: 0 }, image: { image: 'busybox' }, command: ['sleep', '1000'] },
      })
    )['container_id'] as string;
    await cri.runtime('StartContainer', { container_id: ctr });
    const r = await cri.runtime('ExecSync', { container_id: ctr, cmd: ['cat', '/proc/self/cgroup'], timeout: 20 });
    assertUnder(String(r['stdout']), parent, ctr, 'the container');
    const stats = (await cri.runtime('ContainerStats', { container_id: ctr })) as {
      stats: { memory: { working_set_bytes: { value: number } | null } | null };
    };
    assert.ok((stats.stats.memory?.working_set_bytes?.value ?? 0) > 0, 'memory from the cgroup under the parent');
    await cri.runtime('StopPodSandbox', { pod_sandbox_id: pod });
    await cri.runtime('RemovePodSandbox', { pod_sandbox_id: pod });
  });

  test('a bad cgroup_parent is INVALID_ARGUMENT and makes no sandbox', async () => {
    const config = {
      metadata: { name: 'bad', uid: 'uid-bad', namespace: 'default', attempt: 0 },
      linux: { cgroup_parent: '/kubepods/../../etc' },
    };
    try {
      await cri.runtime('RunPodSandbox', { config });
      assert.fail('expected INVALID_ARGUMENT');
    } catch (e) {
      assert.equal(codeOf(e), status.INVALID_ARGUMENT, String(e));
    }
    const pods = (await cri.runtime('ListPodSandbox', {})) as { items: unknown[] };
    assert.equal(pods.items.length, 0, 'no sandbox made');
  });
});
