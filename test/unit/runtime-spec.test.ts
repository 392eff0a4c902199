import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, writeFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import {
  buildSpec,
  capabilities,
  cgroupBinds,
  capsOfMask,
  DEFAULT_CAPS,
  ALL_CAPS,
  MASKED_PATHS,
} from '../../src/runtime/spec.js';
import { defaultProfile, convertProfile } from '../../src/runtime/seccomp.js';
import { parseLimits } from '../../src/runtime/host.js';
import { resolveUser } from '../../src/runtime/user.js';
import { isCommandNotFound, runtimeError } from '../../src/runtime/conmon.js';
import type { HostInfo, SpecInput } from '../../src/runtime/types.js';
import { resourcesOf as criResources } from '../../src/cri/containers.js';
import { resourcesOf, unifiedOf } from '../../src/engine/config.js';
import type { HostConfig } from '../../src/spec/engine-api.js';
import { isBerthError } from '../../src/base/errors.js';

const host: HostInfo = {
  cgroupVersion: 1,
  cgroupDriver: 'cgroupfs',
  cgroupRepair: '',
  tuning: [],
  runtimes: { crun: { path: '/usr/bin/crun', version: '1.8.1' } },
  defaultRuntime: 'crun',
  conmon: { path: '/usr/bin/conmon', version: '2.1.6' },
  seccomp: true,
  blkioWeight: true,
  apparmor: false,
  selinux: false,
  capabilities: ALL_CAPS,
  rlimits: { nofile: { soft: 1024, hard: 20000 }, nproc: { soft: 100, hard: 200 } },
  init: '/usr/bin/tini-static',
  kernelVersion: '6',
  memTotal: 1,
  ncpu: 2,
  warnings: [],
  checkpoint: {
    criu: '',
    criuPath: '',
    runtimes: [],
    capable: [],
    probe: 'failed',
    reason: '',
    preCopy: false,
    preCopyReason: '',
    postCopy: false,
    postCopyReason: '',
  },
};
const input = (o: Partial<SpecInput> = {}): SpecInput => ({
  id: 'x',
  rootfs: '/r',
  readonlyRootfs: false,
  args: ['sh'],
  env: [],
  cwd: '/',
  user: { uid: 0, gid: 0, additionalGids: [] },
  terminal: false,
  hostname: 'h',
  network: 'none',
  privileged: false,
  capAdd: [],
  capDrop: [],
  seccomp: 'default',
  noNewPrivileges: false,
  resources: {},
  ulimits: [],
  mounts: [],
  init: false,
  cgroupsPath: '/berth/x',
  ...o,
});
type Spec = {
  process: { capabilities: { bounding: string[] }; rlimits?: unknown[]; args: string[] };
  linux: { maskedPaths?: string[]; seccomp?: unknown; namespaces: Array<{ type: string }> };
  root: { readonly: boolean };
};
const spec = (o: Partial<SpecInput> = {}) => buildSpec(input(o), host) as unknown as Spec;

test("Docker's default capabilities, masked paths, seccomp, own network namespace", () => {
  const s = spec();
  assert.deepEqual(s.process.capabilities.bounding, DEFAULT_CAPS);
  assert.deepEqual(s.linux.maskedPaths, MASKED_PATHS);
  assert.ok(s.linux.seccomp);
  assert.ok(s.linux.namespaces.some((n) => n.type === 'network'));
  assert.equal(s.process.rlimits, undefined, "no rlimits: the container inherits the daemon's own");
  assert.ok(!spec({ network: 'host' }).linux.namespaces.some((n) => n.type === 'network'));
});

test('masked directories under crun: one empty directory bound read-only over each, after every mount; none when privileged, nor under runc', () => {
  const withDir = { ...host, maskDir: { source: '/run/berth/runtime/masked', paths: ['/proc/acpi', '/sys/firmware'] } };
  type Mount = { destination: string; type: string; source: string; options: string[] };
  const s = buildSpec(input({ maskedPaths: ['/proc/acpi', '/proc/kcore'] }), withDir, 'crun') as unknown as Spec & {
    mounts: Mount[];
  };
  // a tmpfs per directory is a superblock per container (runtime/README "Masked directories")
  assert.deepEqual(s.linux.maskedPaths, ['/proc/kcore']);
  const last = s.mounts.at(-1)!;
  assert.deepEqual([last.destination, last.type, last.source], ['/proc/acpi', 'bind', '/run/berth/runtime/masked']);
  assert.ok(last.options.includes('ro') && last.options.includes('noexec'));
  assert.ok(!s.mounts.some((m) => m.destination === '/sys/firmware'), 'only the paths the container masks');
  const p = buildSpec(input({ privileged: true }), withDir, 'crun') as unknown as Spec & { mounts: Mount[] };
  assert.equal(p.linux.maskedPaths, undefined);
  assert.ok(!p.mounts.some((m) => m.source === '/run/berth/runtime/masked'));
  // runc refuses a mount inside /proc: it masks them itself
  const r = buildSpec(input({}), withDir, 'runc') as unknown as Spec & { mounts: Mount[] };
  assert.deepEqual(r.linux.maskedPaths, MASKED_PATHS);
  assert.ok(!r.mounts.some((m) => m.source === '/run/berth/runtime/masked'));
});

test("cgroup v1 under crun: the shared read-only skeleton at /sys/fs/cgroup, each hierarchy bound from the container's own cgroup; the runtime's own mount when privileged, with a cgroup namespace, a relative path, or under runc", () => {
  const withSkel = {
    ...host,
    cgroupSkel: { source: '/run/berth/runtime/cgroup', root: '/sys/fs/cgroup', names: ['memory', 'pids'] },
  };
  type Mount = { destination: string; type: string; source: string; options: string[] };
  const mountsOf = (o: Partial<SpecInput>, runtime: 'crun' | 'runc' = 'crun') =>
    (buildSpec(input(o), withSkel, runtime) as unknown as { mounts: Mount[] }).mounts.filter((m) =>
      m.destination.startsWith('/sys/fs/cgroup'),
    );
  // a tmpfs per container is a superblock per container (runtime/README "/sys/fs/cgroup")
  assert.deepEqual(
    mountsOf({}).map((m) => [m.destination, m.type, m.source]),
    [
      ['/sys/fs/cgroup', 'bind', '/run/berth/runtime/cgroup'],
      ['/sys/fs/cgroup/memory', 'bind', '/sys/fs/cgroup/memory/berth/x'],
      ['/sys/fs/cgroup/pids', 'bind', '/sys/fs/cgroup/pids/berth/x'],
    ],
  );
  assert.ok(mountsOf({}).every((m) => m.options.includes('ro') && m.options.includes('nosuid')));
  assert.deepEqual(
    cgroupBinds(input({ cgroupsPath: '/k8s/pod1/c' }), withSkel, 'crun').map((b) => b.dir),
    ['/sys/fs/cgroup/memory/k8s/pod1/c', '/sys/fs/cgroup/pids/k8s/pod1/c'],
  );
  const own = [['/sys/fs/cgroup', 'cgroup', 'cgroup']];
  for (const [o, rt] of [
    [{ privileged: true }, 'crun'],
    [{ cgroupNs: true }, 'crun'],
    [{ cgroupsPath: 'berth/x' }, 'crun'],
    [{}, 'runc'],
  ] as const) {
    assert.deepEqual(
      mountsOf(o, rt).map((m) => [m.destination, m.type, m.source]),
      own,
      JSON.stringify(o) + rt,
    );
    assert.deepEqual(cgroupBinds(input(o), withSkel, rt), []);
  }
  assert.deepEqual(
    (buildSpec(input({}), host, 'crun') as unknown as { mounts: Mount[] }).mounts
      .filter((m) => m.destination.startsWith('/sys/fs/cgroup'))
      .map((m) => [m.destination, m.type, m.source]),
    own,
    'no skeleton (cgroup v2, or it could not be made): the runtime mounts its own',
  );
});

test('cap-add / cap-drop, with and without CAP_, ALL, unknown refused', () => {
  assert.ok(capabilities(['sys_admin'], [], false).includes('CAP_SYS_ADMIN'));
  assert.ok(!capabilities([], ['CAP_CHOWN'], false).includes('CAP_CHOWN'));
  assert.deepEqual(capabilities([], ['ALL'], false), []);
  assert.deepEqual(capabilities(['NET_ADMIN'], ['ALL'], false), ['CAP_NET_ADMIN']);
  assert.deepEqual(
    capabilities(['ALL'], ['MKNOD'], false),
    ALL_CAPS.filter((c) => c !== 'CAP_MKNOD'),
  );
});

test('capabilities: "all" is the daemon\'s bounding set; one outside it is refused', () => {
  // CapBnd with bit 24 (CAP_SYS_RESOURCE) cleared, as in a sandbox that withholds it
  const bounding = capsOfMask('000001fffeffffff');
  assert.equal(bounding.length, ALL_CAPS.length - 1);
  assert.ok(!bounding.includes('CAP_SYS_RESOURCE'));
  assert.deepEqual(capabilities([], [], true, bounding), bounding);
  assert.deepEqual(capabilities(['ALL'], [], false, bounding), bounding);
  assert.throws(() => capabilities(['SYS_RESOURCE'], [], false, bounding), /not in berthd's own bounding set/);
  assert.deepEqual(capsOfMask('1'), ['CAP_CHOWN']);
  assert.throws(() => spec({ capAdd: ['NOT_A_CAP'] }), /unknown capability: "NOT_A_CAP"/);
});

test('privileged: all capabilities, no seccomp, no masked paths; read-only root', () => {
  const s = spec({ privileged: true, readonlyRootfs: true });
  assert.deepEqual(s.process.capabilities.bounding, ALL_CAPS);
  assert.equal(s.linux.seccomp, undefined);
  assert.equal(s.linux.maskedPaths, undefined);
  assert.equal(s.root.readonly, true);
  assert.equal(spec({ seccomp: 'unconfined' }).linux.seccomp, undefined);
});

test("ulimits: within the daemon's hard limit pass; above it is a clear error", () => {
  assert.deepEqual(spec({ ulimits: [{ name: 'nofile', soft: 10, hard: 20 }] }).process.rlimits, [
    { type: 'RLIMIT_NOFILE', soft: 10, hard: 20 },
  ]);
  assert.throws(
    () => spec({ ulimits: [{ name: 'nofile', soft: 10, hard: 999999 }] }),
    /hard limit 999999 is above the daemon's hard limit 20000/,
  );
  assert.throws(() => spec({ ulimits: [{ name: 'bogus', soft: 1, hard: 1 }] }), /invalid ulimit type/);
});

test('AppArmor / SELinux on a host without them: refused', () => {
  assert.throws(() => spec({ apparmorProfile: 'p' }), /AppArmor is not enabled/);
  assert.throws(() => spec({ selinuxLabel: 'l' }), /SELinux is not enabled/);
});

test('--init runs tini as pid 1 in front of the command', () => {
  assert.deepEqual(spec({ init: true }).process.args, ['/sbin/docker-init', '--', 'sh']);
});

test('seccomp: default refuses mount/ptrace unless the capability is added; Docker profiles convert', () => {
  const names = (p: ReturnType<typeof defaultProfile>) =>
    p.syscalls.flatMap((r) => (r.action === 'SCMP_ACT_ERRNO' ? r.names : []));
  assert.ok(names(defaultProfile(DEFAULT_CAPS)).includes('mount'));
  assert.ok(names(defaultProfile(DEFAULT_CAPS)).includes('ptrace'));
  assert.ok(!names(defaultProfile([...DEFAULT_CAPS, 'CAP_SYS_PTRACE'])).includes('ptrace'));
  assert.ok(!names(defaultProfile(DEFAULT_CAPS)).includes('clone'));
  const conv = convertProfile(
    JSON.stringify({
      defaultAction: 'SCMP_ACT_ERRNO',
      archMap: [{ architecture: 'SCMP_ARCH_X86_64', subArchitectures: ['SCMP_ARCH_X86'] }],
      syscalls: [
        { names: ['read'], action: 'SCMP_ACT_ALLOW' },
        { names: ['ptrace'], action: 'SCMP_ACT_ALLOW', includes: { caps: ['CAP_SYS_PTRACE'] } },
      ],
    }),
    DEFAULT_CAPS,
  );
  assert.deepEqual(conv.architectures, ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86']);
  assert.deepEqual(
    conv.syscalls.map((s) => s.names[0]),
    ['read'],
  );
  assert.throws(() => convertProfile('not json', []), /decoding seccomp profile failed/);
});

test('/proc/self/limits parsing', () => {
  const l = parseLimits(
    'Limit Soft Limit Hard Limit Units\nMax open files            1024                 20000                files\nMax core file size        0                    unlimited            bytes\n',
  );
  assert.deepEqual(l['nofile'], { soft: 1024, hard: 20000 });
  assert.deepEqual(l['core'], { soft: 0, hard: -1 });
});

test('users: names, uids, groups and supplementary groups from the rootfs; unknown names refused', async () => {
  const root = mkdtempSync(join(tmpdir(), 'user-'));
  try {
    mkdirSync(join(root, 'etc'));
    writeFileSync(join(root, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n');
    writeFileSync(join(root, 'etc/group'), 'root:x:0:\napp:x:1000:\nwheel:x:10:app\n');
    assert.deepEqual(await resolveUser(root, ''), { uid: 0, gid: 0, additionalGids: [], home: '/root' });
    assert.deepEqual(await resolveUser(root, 'app'), { uid: 1000, gid: 1000, additionalGids: [10], home: '/home/app' });
    assert.equal((await resolveUser(root, '1000:wheel')).gid, 10);
    assert.equal((await resolveUser(root, '4242')).uid, 4242);
    await assert.rejects(resolveUser(root, 'nobody'), /unable to find user nobody: no matching entries in passwd file/);
    await assert.rejects(resolveUser(root, 'app:nogroup'), /unable to find group nogroup/);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("resources: swappiness, cpuset mems, block I/O weight and throttles; namespaces shared or the host's; devices", () => {
  const built = buildSpec(
    input({
      resources: {
        memorySwappiness: 10,
        cpusetMems: '0',
        blkioWeight: 300,
        throttle: {
          readBps: [{ major: 254, minor: 0, rate: 1048576 }],
          writeIops: [{ major: 254, minor: 0, rate: 100 }],
        },
      },
      pidNs: 'host',
      ipcNs: { path: '/proc/42/ns/ipc' },
      utsHost: true,
      devices: [{ path: '/dev/fuse', type: 'c', major: 10, minor: 229, fileMode: 0o600, uid: 0, gid: 0, access: 'r' }],
    }),
    host,
  ) as unknown as {
    hostname?: string;
    linux: {
      namespaces: Array<{ type: string; path?: string }>;
      devices: unknown[];
      resources: { memory: unknown; cpu: unknown; blockIO: unknown; devices: unknown[] };
    };
  };
  assert.deepEqual(built.linux.resources.memory, { swappiness: 10 });
  assert.deepEqual(built.linux.resources.cpu, { mems: '0' });
  assert.deepEqual(built.linux.resources.blockIO, {
    weight: 300,
    throttleReadBpsDevice: [{ major: 254, minor: 0, rate: 1048576 }],
    throttleWriteIOPSDevice: [{ major: 254, minor: 0, rate: 100 }],
  });
  assert.deepEqual(built.linux.namespaces.map((n) => n.type).sort(), ['ipc', 'mount', 'network']);
  assert.equal(built.linux.namespaces.find((n) => n.type === 'ipc')?.path, '/proc/42/ns/ipc');
  assert.equal(built.hostname, undefined, 'no hostname in the host UTS namespace');
  assert.deepEqual(built.linux.devices, [
    { path: '/dev/fuse', type: 'c', major: 10, minor: 229, fileMode: 0o600, uid: 0, gid: 0 },
  ]);
  assert.deepEqual(built.linux.resources.devices.at(-1), {
    allow: true,
    type: 'c',
    major: 10,
    minor: 229,
    access: 'r',
  });
});

test("a command that is not found, in crun's and runc's words; other missing files are not that", () => {
  assert.ok(isCommandNotFound('executable file `nonexist` not found in $PATH: No such file or directory'));
  assert.ok(isCommandNotFound('exec: "nope": executable file not found in $PATH'));
  assert.ok(isCommandNotFound('exec: "/bin/bash": stat /bin/bash: no such file or directory'));
  assert.ok(!isCommandNotFound('opening file `blkio.weight` for writing: No such file or directory'));
  assert.doesNotMatch(
    runtimeError('opening file `blkio.weight` for writing: No such file or directory').message,
    /executable file not found/,
  );
});

test("the kubelet's LinuxContainerResources land where crun reads them: linux.resources memory/cpu/pids/unified", () => {
  const hc = criResources({
    cpu_period: 100_000,
    cpu_quota: 50_000,
    cpu_shares: 512,
    memory_limit_in_bytes: 64 << 20,
    oom_score_adj: 100,
    cpuset_cpus: '0-1',
    cpuset_mems: '0',
    hugepage_limits: [],
    unified: { 'memory.high': '50331648', 'memory.oom.group': '1', 'hugetlb.2MB.max': '0' },
    memory_swap_limit_in_bytes: 128 << 20,
  }) as HostConfig;
  // the pod's pids limit is the kubelet's pod cgroup (cgroup_parent); a Docker PidsLimit lands in linux.resources.pids
  const r = resourcesOf({ ...hc, PidsLimit: 100 });
  const v2 = { ...host, cgroupVersion: 2 as const };
  const built = buildSpec(input({ resources: r, oomScoreAdj: 100 }), v2) as unknown as {
    process: { oomScoreAdj: number };
    linux: { resources: Record<string, unknown> };
  };
  const res = built.linux.resources;
  assert.deepEqual(res['memory'], { limit: 64 << 20, swap: 128 << 20 });
  assert.deepEqual(res['cpu'], { shares: 512, quota: 50_000, period: 100_000, cpus: '0-1', mems: '0' });
  assert.deepEqual(res['pids'], { limit: 100 });
  assert.deepEqual(res['unified'], { 'memory.high': '50331648', 'memory.oom.group': '1', 'hugetlb.2MB.max': '0' });
  assert.equal(built.process.oomScoreAdj, 100);
  // cgroup v1 has none of these files: refused as a missing host feature, not dropped
  assert.throws(
    () => buildSpec(input({ resources: r }), host),
    (e: unknown) => isBerthError(e, 'Unavailable') && /cgroup v2/.test(e.message),
  );
  // without unified a v1 host builds the same named limits
  const { unified: _u, ...named } = r;
  const v1 = buildSpec(input({ resources: named }), host) as unknown as {
    linux: { resources: Record<string, unknown> };
  };
  assert.equal(v1.linux.resources['unified'], undefined);
  assert.deepEqual(v1.linux.resources['cpu'], res['cpu']);
});

test("unified keys are cgroup v2 controller files, values one line; cgroup.* core files are the runtime's", () => {
  assert.deepEqual(unifiedOf({ 'cpu.weight': '100', 'io.max': '8:0 rbps=1048576\n' }), {
    'cpu.weight': '100',
    'io.max': '8:0 rbps=1048576\n',
  });
  assert.equal(unifiedOf(undefined), undefined);
  assert.equal(unifiedOf({}), undefined);
  const bad = (v: unknown) =>
    assert.throws(
      () => unifiedOf(v),
      (e: unknown) => isBerthError(e, 'InvalidArgument'),
      JSON.stringify(v),
    );
  for (const k of [
    'memory',
    '../memory.max',
    'memory/../../x.max',
    'cgroup.procs',
    'cgroup.freeze',
    'Memory.max',
    'memory..max',
    '',
  ])
    bad({ [k]: '1' });
  bad({ 'memory.max': 1 });
  bad({ 'memory.max': '1\n2' });
  bad({ 'memory.max': '1\u0000' });
  bad(['memory.max']);
  bad('memory.max=1');
});
