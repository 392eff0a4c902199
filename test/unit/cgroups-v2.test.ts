/**
 * The cgroup readers (runtime/cgroups.ts) and what the CRI derives from them, on fixture trees laid
 * out as the kernel lays out cgroup v2 (one tree, `<path>/<controller>.<file>`) and cgroup v1 (a
 * hierarchy per controller, `<ctrl>/<path>/<file>`), with the files' real formats. This host is
 * cgroup v1 (the integration tests cover v1 for real); v2 is covered by these tests only.
 * Real files in a temporary directory: no fs mocks.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, writeFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  cgroupFrozen,
  cgroupOomKills,
  cgroupPids,
  cgroupStats,
  pruneEmptyCgroups,
  removeCgroup,
  removeExitedCgroups,
} from '../../src/runtime/cgroups.js';
import { cgroupLayout } from '../../src/runtime/host.js';
import { metricValues } from '../../src/cri/metrics.js';
import { Containers } from '../../src/cri/containers.js';
import type { K8sStats, K8sVerbs } from '../../src/engine/k8s.js';
import type { Sandboxes } from '../../src/cri/sandboxes.js';
import type { CgroupStats } from '../../src/runtime/types.js';

const MiB = 1024 * 1024;
const CTR = '/berth/c1';
let tmp = '';
let v2 = '';
let v1 = '';

function files(dir: string, content: Record<string, string>): void {
  mkdirSync(dir, { recursive: true });
  for (const [name, text] of Object.entries(content)) writeFileSync(join(dir, name), text);
}

before(() => {
  tmp = mkdtempSync(join(tmpdir(), 'berth-cgroups-'));
  // cgroup v2: what the kernel shows in a container's cgroup (Documentation/admin-guide/cgroup-v2.rst)
  v2 = join(tmp, 'v2');
  files(v2, { 'cgroup.controllers': 'cpuset cpu io memory hugetlb pids rdma misc\n', 'cgroup.procs': '1\n' });
  files(v2 + CTR, {
    'cgroup.controllers': 'cpu io memory pids\n',
    'cgroup.procs': '4242\n4243\n',
    'cgroup.freeze': '0\n',
    'cpu.stat':
      'usage_usec 1500000\nuser_usec 1000000\nsystem_usec 500000\n' +
      'nr_periods 10\nnr_throttled 2\nthrottled_usec 3000\nnr_bursts 0\nburst_usec 0\n',
    'memory.current': `${100 * MiB}\n`,
    'memory.max': `${256 * MiB}\n`,
    'memory.stat':
      `anon ${60 * MiB}\nfile ${40 * MiB}\nkernel_stack 65536\nshmem 0\n` +
      `active_anon ${55 * MiB}\ninactive_anon ${5 * MiB}\nactive_file ${10 * MiB}\ninactive_file ${30 * MiB}\n` +
      'pgfault 12345\npgmajfault 7\n',
    'memory.events': 'low 0\nhigh 0\nmax 5\noom 1\noom_kill 1\noom_group_kill 0\n',
    'pids.current': '2\n',
    'pids.max': '100\n',
    'io.stat':
      '8:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n' +
      '253:0 rbytes=100 wbytes=0 rios=1 wios=0 dbytes=0 dios=0\n',
  });
  // a second container without limits: memory.max and pids.max say `max`
  files(`${v2}/berth/c2`, {
    'memory.current': `${10 * MiB}\n`,
    'memory.max': 'max\n',
    'memory.stat': `anon ${MiB}\ninactive_file ${20 * MiB}\n`, // more inactive cache than usage: 0, not negative
    'pids.max': 'max\n',
    'cgroup.freeze': '1\n',
  });
  // cgroup v1 (hybrid, as on this host: cgroup2 at unified/ without controllers)
  v1 = join(tmp, 'v1');
  files(`${v1}/unified`, { 'cgroup.controllers': '' });
  files(`${v1}/cpuacct${CTR}`, {
    'cpuacct.usage': '1500000000\n',
    'cpuacct.stat': 'user 100\nsystem 50\n', // USER_HZ ticks
    'cpuacct.usage_percpu': '1000000000 500000000 \n',
  });
  files(`${v1}/cpu${CTR}`, { 'cpu.stat': 'nr_periods 10\nnr_throttled 2\nthrottled_time 3000000\n' });
  files(`${v1}/memory${CTR}`, {
    'memory.usage_in_bytes': `${100 * MiB}\n`,
    'memory.limit_in_bytes': `${256 * MiB}\n`,
    'memory.max_usage_in_bytes': `${120 * MiB}\n`,
    'memory.failcnt': '3\n',
    // the cgroup's own counters and the hierarchy's total_*: cAdvisor (and berth) take total_*
    'memory.stat':
      `cache ${40 * MiB}\nrss ${50 * MiB}\ninactive_file ${1 * MiB}\npgfault 1\npgmajfault 0\n` +
      `total_cache ${40 * MiB}\ntotal_rss ${60 * MiB}\ntotal_inactive_file ${30 * MiB}\n` +
      'total_pgfault 12345\ntotal_pgmajfault 7\n',
    'memory.oom_control': 'oom_kill_disable 0\nunder_oom 0\noom_kill 1\n',
  });
  files(`${v1}/pids${CTR}`, { 'pids.current': '2\n', 'pids.max': '100\n', 'cgroup.procs': '4242\n4243\n' });
  files(`${v1}/blkio${CTR}`, {
    'blkio.throttle.io_service_bytes':
      '8:0 Read 4096\n8:0 Write 8192\n8:0 Sync 0\n8:0 Async 12288\n8:0 Total 12288\n' +
      '253:0 Read 100\n253:0 Write 0\n253:0 Total 100\nTotal 12388\n',
    'blkio.throttle.io_serviced': '8:0 Read 1\n8:0 Write 2\nTotal 3\n',
  });
  files(`${v1}/freezer${CTR}`, { 'freezer.state': 'THAWED\n' });
  files(`${v1}/freezer/berth/c2`, { 'freezer.state': 'FROZEN\n' });
  files(`${v1}/freezer/berth/c3`, { 'freezer.state': 'FREEZING\n' });
});

after(() => rmSync(tmp, { recursive: true, force: true }));

test('layout: a v2 root has cgroup.controllers; a hybrid v1 root lists what its cgroup2 mount holds', () => {
  assert.deepEqual(cgroupLayout(v2), { version: 2, hybridControllers: [] });
  assert.deepEqual(cgroupLayout(v1), { version: 1, hybridControllers: [] });
  const trap = join(tmp, 'hybrid-trap');
  files(`${trap}/unified`, { 'cgroup.controllers': 'hugetlb\n' });
  assert.deepEqual(cgroupLayout(trap), { version: 1, hybridControllers: ['hugetlb'] });
});

test('v2 stats: cpu.stat µs as ns, memory.current/max/stat, pids, io.stat bytes per device', async () => {
  const s = await cgroupStats(2, CTR, v2);
  assert.equal(s.cpuTotalNs, 1_500_000_000);
  assert.equal(s.cpuUserNs, 1_000_000_000);
  assert.equal(s.cpuSystemNs, 500_000_000);
  assert.deepEqual(s.perCpuNs, []); // v2 has no per-CPU usage
  assert.deepEqual(s.throttling, { periods: 10, throttledPeriods: 2, throttledTimeNs: 3_000_000 });
  assert.equal(s.memUsage, 100 * MiB);
  assert.equal(s.memLimit, 256 * MiB);
  assert.equal(s.memStats['inactive_file'], 30 * MiB);
  assert.equal(s.memStats['anon'], 60 * MiB);
  assert.equal(s.memMaxUsage, 0); // v1 only
  assert.equal(s.memFailcnt, 0);
  assert.equal(s.pids, 2);
  assert.equal(s.pidsLimit, 100);
  assert.equal(s.blkioRead, 4196);
  assert.equal(s.blkioWrite, 8192);
  assert.deepEqual(s.blkio.io_service_bytes_recursive, [
    { major: 8, minor: 0, op: 'read', value: 4096 },
    { major: 8, minor: 0, op: 'write', value: 8192 },
    { major: 253, minor: 0, op: 'read', value: 100 },
    { major: 253, minor: 0, op: 'write', value: 0 },
  ]);
  assert.equal(s.blkio.io_serviced_recursive, null);
});

test('v2 stats without limits: `max` is no limit (the host memory, as Docker shows), missing files are 0', async () => {
  const s = await cgroupStats(2, '/berth/c2', v2);
  assert.equal(s.memUsage, 10 * MiB);
  assert.ok(s.memLimit > 0 && s.memLimit < 2 ** 60); // os.totalmem()
  assert.equal(s.pidsLimit, 0);
  assert.equal(s.cpuTotalNs, 0);
  assert.equal(s.blkioRead, 0);
  assert.deepEqual(s.blkio.io_service_bytes_recursive, []);
  const none = await cgroupStats(2, '/berth/none', v2);
  assert.equal(none.memUsage, 0);
  assert.equal(none.pids, 0);
});

test('v1 stats: the same numbers from the per-controller hierarchies', async () => {
  const s = await cgroupStats(1, CTR, v1);
  assert.equal(s.cpuTotalNs, 1_500_000_000);
  assert.equal(s.cpuUserNs, 1_000_000_000);
  assert.equal(s.cpuSystemNs, 500_000_000);
  assert.deepEqual(s.perCpuNs, [1_000_000_000, 500_000_000]);
  assert.deepEqual(s.throttling, { periods: 10, throttledPeriods: 2, throttledTimeNs: 3_000_000 });
  assert.equal(s.memUsage, 100 * MiB);
  assert.equal(s.memLimit, 256 * MiB);
  assert.equal(s.memMaxUsage, 120 * MiB);
  assert.equal(s.memFailcnt, 3);
  assert.equal(s.pids, 2);
  assert.equal(s.pidsLimit, 100);
  assert.equal(s.blkioRead, 4196);
  assert.equal(s.blkioWrite, 8192);
  // the throttle file's lines as they are, the device-less `Total` left out
  assert.equal(s.blkio.io_service_bytes_recursive?.length, 8);
  assert.deepEqual(s.blkio.io_serviced_recursive, [
    { major: 8, minor: 0, op: 'Read', value: 1 },
    { major: 8, minor: 0, op: 'Write', value: 2 },
  ]);
});

test('OOM kills: v2 memory.events oom_kill, v1 memory.oom_control oom_kill; 0 without the file', async () => {
  assert.equal(await cgroupOomKills(2, CTR, v2), 1);
  assert.equal(await cgroupOomKills(1, CTR, v1), 1);
  assert.equal(await cgroupOomKills(2, '/berth/c2', v2), 0);
  assert.equal(await cgroupOomKills(1, '/berth/none', v1), 0);
});

test('pids: cgroup.procs of the container (v2 tree, v1 pids hierarchy)', async () => {
  assert.deepEqual(await cgroupPids(2, CTR, v2), [4242, 4243]);
  assert.deepEqual(await cgroupPids(1, CTR, v1), [4242, 4243]);
  assert.deepEqual(await cgroupPids(2, '/berth/none', v2), []);
});

test('frozen: v2 cgroup.freeze 1/0, v1 freezer.state FROZEN/FREEZING/THAWED; null with no cgroup', async () => {
  assert.equal(await cgroupFrozen(2, CTR, v2), false);
  assert.equal(await cgroupFrozen(2, '/berth/c2', v2), true);
  assert.equal(await cgroupFrozen(2, '/berth/none', v2), null);
  assert.equal(await cgroupFrozen(1, CTR, v1), false);
  assert.equal(await cgroupFrozen(1, '/berth/c2', v1), true);
  assert.equal(await cgroupFrozen(1, '/berth/c3', v1), true);
  assert.equal(await cgroupFrozen(1, '/berth/none', v1), null);
});

const k8s = (cgroup: CgroupStats | null): K8sStats => ({ cgroup, writableBytes: 4096, snapshotsDir: '/x/snapshots' });

test('CRI ContainerStats and metrics: working set = usage − inactive file cache, on v2 and on v1 alike', async () => {
  const ct = new Containers({} as K8sVerbs, {} as Sandboxes);
  for (const [version, root] of [
    [2, v2],
    [1, v1],
  ] as const) {
    const g = await cgroupStats(version, CTR, root);
    const st = ct.statsOf(`c-v${version}`, {}, k8s(g)) as {
      cpu: { usage_core_nano_seconds: { value: number } };
      memory: Record<string, { value: number }>;
    };
    const at = `v${version}`;
    assert.equal(st.cpu.usage_core_nano_seconds.value, 1_500_000_000, at);
    assert.equal(st.memory['usage_bytes']?.value, 100 * MiB, at);
    assert.equal(st.memory['working_set_bytes']?.value, 70 * MiB, at);
    assert.equal(st.memory['available_bytes']?.value, 186 * MiB, at); // limit − working set
    assert.equal(st.memory['rss_bytes']?.value, 60 * MiB, at); // v2 anon, v1 total_rss
    assert.equal(st.memory['page_faults']?.value, 12345, at);
    assert.equal(st.memory['major_page_faults']?.value, 7, at);
    assert.deepEqual(
      metricValues(k8s(g)),
      {
        container_cpu_usage_seconds_total: 1,
        container_memory_usage_bytes: 100 * MiB,
        container_memory_working_set_bytes: 70 * MiB,
        container_memory_rss: 60 * MiB,
        container_spec_memory_limit_bytes: 256 * MiB,
        container_processes: 2,
        container_fs_usage_bytes: 4096,
      },
      at,
    );
  }
  // more inactive cache than usage: 0, as cAdvisor clamps
  const c2 = await cgroupStats(2, '/berth/c2', v2);
  assert.equal(metricValues(k8s(c2))['container_memory_working_set_bytes'], 0);
  // not running: no cgroup numbers at all
  const none = ct.statsOf('c-none', {}, k8s(null)) as { cpu: unknown; memory: unknown };
  assert.equal(none.cpu, null);
  assert.equal(none.memory, null);
  assert.deepEqual(metricValues(k8s(null)), { container_fs_usage_bytes: 4096 });
});

test('removal: empty cgroups go in the v2 tree and in every v1 hierarchy; busy and kept ones stay', async () => {
  const r2 = join(tmp, 'rm-v2');
  mkdirSync(`${r2}/berth/gone/.proxy-crun`, { recursive: true });
  mkdirSync(`${r2}/berth/kept`, { recursive: true });
  files(`${r2}/berth/busy`, { 'cgroup.procs': '' }); // a file the kernel would not have: rmdir fails, as EBUSY would
  files(`${r2}/berth/live`, { 'cgroup.procs': '999999\n' });
  // the settle timer is unref'd (it must not hold berthd up): this test holds the loop instead
  const hold = setInterval(() => {}, 1000);
  after(() => clearInterval(hold));
  assert.equal(await pruneEmptyCgroups(2, '/berth', (n) => n === 'kept', 0, r2), 1);
  assert.ok(!existsSync(`${r2}/berth/gone`));
  assert.ok(existsSync(`${r2}/berth/kept`));
  assert.ok(existsSync(`${r2}/berth/busy`));
  assert.ok(existsSync(`${r2}/berth/live`));

  const r1 = join(tmp, 'rm-v1');
  for (const h of ['memory', 'pids', 'freezer']) mkdirSync(`${r1}/${h}/berth/gone`, { recursive: true });
  await pruneEmptyCgroups(1, '/berth', () => false, 0, r1);
  for (const h of ['memory', 'pids', 'freezer']) assert.ok(!existsSync(`${r1}/${h}/berth/gone`), h);

  for (const h of ['memory', 'pids']) mkdirSync(`${r1}/${h}/berth/exited`, { recursive: true });
  assert.equal(await removeExitedCgroups(1, '/berth/exited', r1), true); // freezer has none: fine
  assert.ok(!existsSync(`${r1}/memory/berth/exited`));
  assert.equal(await removeExitedCgroups(2, '/berth/busy', r2), false);
  assert.equal(await removeExitedCgroups(2, '/berth/kept', r2), true);

  mkdirSync(`${r2}/berth/restored/.proxy-crun`, { recursive: true });
  await removeCgroup(2, '/berth/restored', undefined, r2);
  assert.ok(!existsSync(`${r2}/berth/restored`));
});
