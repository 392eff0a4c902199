/**
 * The CRI front door's pure mappings (no daemon): CRI states and signals to and from berth's, the
 * kubelet's AuthConfig, resources and the refusals of what berth cannot do, the proto's services.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { resourcesOf, signalEnum, signalName, stateOf } from '../../src/cri/containers.js';
import { credsOf } from '../../src/cri/images.js';
import { namePart, nanos, selects } from '../../src/cri/meta.js';
import { loadCri } from '../../src/cri/proto.js';
import { GrpcStatusError } from '../../src/cri/grpc.js';
import type { K8sContainer } from '../../src/engine/k8s.js';
import type { LinuxContainerResources } from '../../src/cri/types.js';

test('container states: the engine status table folded into the CRI four', () => {
  const of = (status: K8sContainer['status']) => stateOf({ status } as K8sContainer);
  assert.equal(of('created'), 'CONTAINER_CREATED');
  for (const s of ['running', 'paused', 'restarting'] as const) assert.equal(of(s), 'CONTAINER_RUNNING');
  for (const s of ['exited', 'dead'] as const) assert.equal(of(s), 'CONTAINER_EXITED');
  assert.equal(of('removing'), 'CONTAINER_UNKNOWN');
});

test('stop signals: CRI enum names <-> the names berth parses, numbers too; unknown is RUNTIME_DEFAULT', () => {
  assert.equal(signalName('SIGTERM'), 'SIGTERM');
  assert.equal(signalName('SIGRTMINPLUS3'), 'SIGRTMIN+3');
  assert.equal(signalName('SIGRTMAXMINUS14'), 'SIGRTMAX-14');
  assert.equal(signalEnum('SIGTERM'), 'SIGTERM');
  assert.equal(signalEnum('term'), 'SIGTERM');
  assert.equal(signalEnum('15'), 'SIGTERM');
  assert.equal(signalEnum('10'), 'SIGUSR1');
  assert.equal(signalEnum('SIGRTMIN+3'), 'SIGRTMINPLUS3');
  assert.equal(signalEnum('SIGRTMAX-1'), 'SIGRTMAXMINUS1');
  assert.equal(signalEnum('34'), 'SIGRTMIN');
  assert.equal(signalEnum('64'), 'SIGRTMAX');
  assert.equal(signalEnum('SIGNOPE'), 'RUNTIME_DEFAULT');
  assert.equal(signalEnum('99'), 'RUNTIME_DEFAULT');
  for (const e of ['SIGINT', 'SIGRTMINPLUS15', 'SIGRTMAXMINUS2']) assert.equal(signalEnum(signalName(e)), e);
});

test('AuthConfig: username/password, base64 auth, tokens refused, junk refused', () => {
  const none = { username: '', password: '', auth: '', server_address: '', identity_token: '', registry_token: '' };
  assert.equal(credsOf(null), null);
  assert.equal(credsOf(none), null);
  assert.deepEqual(credsOf({ ...none, username: 'u', password: 'p:w' }), { username: 'u', password: 'p:w' });
  assert.deepEqual(credsOf({ ...none, auth: Buffer.from('me:se:cret').toString('base64') }), {
    username: 'me',
    password: 'se:cret',
  });
  assert.throws(() => credsOf({ ...none, auth: Buffer.from('nocolon').toString('base64') }), /username:password/);
  assert.throws(
    () => credsOf({ ...none, registry_token: 't' }),
    (e: unknown) => e instanceof GrpcStatusError,
  );
});

test('resources: the named limits and unified map to HostConfig; hugepages are refused, not ignored', () => {
  const r: LinuxContainerResources = {
    cpu_period: 100000,
    cpu_quota: 50000,
    cpu_shares: 512,
    memory_limit_in_bytes: 1 << 26,
    oom_score_adj: 100,
    cpuset_cpus: '0',
    cpuset_mems: '',
    hugepage_limits: [],
    unified: {},
    memory_swap_limit_in_bytes: 0,
  };
  assert.deepEqual(resourcesOf(r), {
    Memory: 1 << 26,
    CpuShares: 512,
    CpuQuota: 50000,
    CpuPeriod: 100000,
    CpusetCpus: '0',
    OomScoreAdj: 100,
  });
  assert.deepEqual(resourcesOf(null), {});
  assert.deepEqual(resourcesOf({ ...r, unified: { 'memory.high': '50331648' } })['Unified'], {
    'memory.high': '50331648',
  });
  assert.throws(() => resourcesOf({ ...r, hugepage_limits: [{ page_size: '2MB', limit: 1 }] }), /hugepage/);
});

test('names, times, selectors', () => {
  assert.equal(namePart('metadata.name', 'web-0.a_b'), 'web-0.a_b');
  assert.throws(() => namePart('metadata.name', ''), /required/);
  assert.throws(() => namePart('metadata.name', 'a/b'), /not a valid name/);
  assert.throws(() => namePart('metadata.name', '-x'), /not a valid name/);
  assert.equal(nanos('0001-01-01T00:00:00Z'), 0);
  assert.equal(nanos('2026-01-01T00:00:00.5Z'), Date.parse('2026-01-01T00:00:00.5Z') * 1e6);
  assert.equal(selects({ app: 'x' }, { app: 'x', tier: 'y' }), true);
  assert.equal(selects({ app: 'x', tier: 'z' }, { app: 'x', tier: 'y' }), false);
  assert.equal(selects(null, {}), true);
});

test('the proto: runtime.v1 RuntimeService and ImageService with every RPC upstream has', () => {
  const defs = loadCri();
  const rpcs = (s: object) => Object.keys(s).sort();
  assert.equal(rpcs(defs.RuntimeService).length, 35);
  assert.deepEqual(rpcs(defs.ImageService), [
    'ImageFsInfo',
    'ImageStatus',
    'ListImages',
    'PullImage',
    'RemoveImage',
    'StreamImages',
  ]);
  const v = defs.RuntimeService['Version'] as unknown as { path: string };
  assert.equal(v.path, '/runtime.v1.RuntimeService/Version');
  for (const m of ['GetContainerEvents', 'UpdatePodSandboxResources', 'StreamContainers', 'CheckpointContainer'])
    assert.ok(m in defs.RuntimeService, m);
});

test('the proto: field numbers of upstream runtime.v1 where forks and versions differ', async () => {
  const { loadSync } = await import('@grpc/proto-loader');
  const { protoDir } = await import('../../src/cri/proto.js');
  const def = loadSync('api.proto', { keepCase: true, includeDirs: [protoDir()] }) as unknown as Record<
    string,
    { type?: { field?: Array<{ name: string; number: number }>; value?: Array<{ name: string; number: number }> } }
  >;
  const num = (msg: string, field: string) =>
    (def[`runtime.v1.${msg}`]?.type?.field ?? def[`runtime.v1.${msg}`]?.type?.value ?? []).find((f) => f.name === field)
      ?.number;
  const expect: Array<[string, string, number]> = [
    ['ContainerStatus', 'stop_signal', 19],
    ['ContainerStatus', 'image_id', 17],
    ['ContainerStatus', 'user', 18],
    ['ContainerConfig', 'stop_signal', 18],
    ['ContainerConfig', 'CDI_devices', 17],
    ['Mount', 'uidMappings', 6],
    ['Mount', 'image_sub_path', 10],
    ['ImageSpec', 'user_specified_image', 18],
    ['ImageSpec', 'runtime_handler', 19],
    ['ImageSpec', 'image_ref', 20],
    ['Image', 'pinned', 8],
    ['Namespace', 'options', 2],
    ['LinuxSandboxSecurityContext', 'run_as_group', 8],
    ['LinuxSandboxSecurityContext', 'supplemental_groups_policy', 11],
    ['LinuxContainerSecurityContext', 'run_as_group', 12],
    ['LinuxContainerSecurityContext', 'supplemental_groups_policy', 17],
    ['LinuxContainerResources', 'memory_swap_limit_in_bytes', 10],
    ['ExecRequest', 'audit_request_id', 7],
    ['AttachRequest', 'audit_request_id', 6],
    ['PodSandboxStatusResponse', 'timestamp', 4],
    ['ContainerStats', 'io', 6],
    ['MemoryUsage', 'psi', 8],
    ['CpuUsage', 'psi', 4],
    ['LinuxPodSandboxStats', 'io', 6],
    ['RuntimeFeatures', 'user_namespaces_host_network', 2],
    ['UpdatePodSandboxResourcesRequest', 'resources', 3],
    ['StreamContainerStatsResponse', 'container_stats', 1],
    ['Signal', 'SIGRTMAX', 65],
    ['CgroupDriver', 'CGROUPFS', 1],
  ];
  for (const [msg, field, n] of expect) assert.equal(num(msg, field), n, `${msg}.${field}`);
  // what a fork added and upstream does not have
  assert.equal(num('Image', 'image_source'), undefined);
  assert.equal(num('ContainerStatus', 'image_source'), undefined);
});
