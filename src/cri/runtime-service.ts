/**
 * The CRI's RuntimeService handlers (pod sandboxes, containers, streaming URLs, stats, events,
 * metrics, status): each parses, calls the engine's verbs through cri/'s sandboxes and containers,
 * and renders. Every RPC answers: a real answer, or UNIMPLEMENTED with the reason.
 */
import { status, type UntypedServiceImplementation } from '@grpc/grpc-js';
import { failedPrecondition, invalidArgument } from '../base/errors.js';
import { log } from '../base/log.js';
import type { Verbs } from '../engine/verbs.js';
import type { EngineEvent } from '../engine/k8s.js';
import type { StreamServer } from './stream/server.js';
import { GrpcStatusError, asStream, streaming, unary, unimplemented, type Filter } from './grpc.js';
import type { Sandboxes } from './sandboxes.js';
import type { Containers } from './containers.js';
import { metricDescriptors, podMetrics } from './metrics.js';
import { SANDBOX_ID, isContainer, isSandbox } from './meta.js';
import type { ContainerConfig, LinuxContainerResources, PodSandboxConfig, StrMap } from './types.js';

export const CRI_API_VERSION = 'v1';
export const RUNTIME_NAME = 'berth';
export const RUNTIME_VERSION = '0.1.0';
/** CheckpointContainer's deadline when the request gives none (timeout 0) */
const CHECKPOINT_DEFAULT_TIMEOUT_S = 240;

/** The streaming server as the CRI handlers need it (src/cri/stream/server.ts's StreamServer). */
export type StreamUrls = Pick<StreamServer, 'urlForExec' | 'urlForAttach' | 'urlForPortForward'>;

/** What the handlers work with (server.ts's CriService). */
export interface RuntimeDeps {
  readonly verbs: Verbs;
  readonly sandboxes: Sandboxes;
  readonly containers: Containers;
  /** the streaming server (set once it listens); Exec, Attach and PortForward are UNIMPLEMENTED without it */
  readonly stream: StreamUrls | null;
  /** kubelet's UpdateRuntimeConfig: kept and shown in Status (verbose) */
  podCidr: string;
}

type PodFilter = Filter<{ id: string; state: { state: string } | null; label_selector: StrMap }>;
type CtrFilter = Filter<{
  id: string;
  state: { state: string } | null;
  pod_sandbox_id: string;
  label_selector: StrMap;
}>;
type CtrStatsFilter = Filter<{ id: string; pod_sandbox_id: string; label_selector: StrMap }>;
type PodStatsFilter = Filter<{ id: string; label_selector: StrMap }>;

export function runtimeHandlers(svc: RuntimeDeps): UntypedServiceImplementation {
  const k8s = svc.verbs.k8s;
  const sb = svc.sandboxes;
  const ct = svc.containers;
  const listPods = async (r: PodFilter) => ({ items: sb.list(r.filter) });
  const listContainers = async (r: CtrFilter) => ({ containers: ct.list(r.filter).map((x) => ct.item(x)) });
  const listContainerStats = async (r: CtrStatsFilter) => {
    const f = r.filter;
    const list = ct
      .list(f ? { id: f.id, pod_sandbox_id: f.pod_sandbox_id, label_selector: f.label_selector, state: null } : null)
      .filter((x) => x.c.status === 'running' || x.c.status === 'paused');
    return { stats: await Promise.all(list.map((x) => ct.stats(x))) };
  };
  const listPodStats = async (r: PodStatsFilter) => {
    const f = r.filter;
    const ids = sb
      .list(f ? { id: f.id, state: { state: 'SANDBOX_READY' }, label_selector: f.label_selector } : null)
      .map((i) => (i as { id: string }).id);
    return { stats: await Promise.all(ids.map((id) => podStats(svc, id))) };
  };
  const streamOrRefuse = (what: string): StreamUrls => {
    if (!svc.stream) throw unimplemented(what, 'the streaming server is not running in this berthd');
    return svc.stream;
  };
  return {
    Version: unary<{ version: string }>('Version', async () => ({
      version: '0.1.0',
      runtime_name: RUNTIME_NAME,
      runtime_version: RUNTIME_VERSION,
      runtime_api_version: CRI_API_VERSION,
    })),
    RunPodSandbox: unary<{ config: PodSandboxConfig | null; runtime_handler: string }>('RunPodSandbox', async (r) => ({
      pod_sandbox_id: await sb.run(r.config, r.runtime_handler),
    })),
    StopPodSandbox: unary<{ pod_sandbox_id: string }>('StopPodSandbox', async (r) => {
      await sb.stop(r.pod_sandbox_id);
      return {};
    }),
    RemovePodSandbox: unary<{ pod_sandbox_id: string }>('RemovePodSandbox', async (r) => {
      if (!r.pod_sandbox_id) throw invalidArgument('pod_sandbox_id is required');
      await sb.remove(r.pod_sandbox_id);
      return {};
    }),
    PodSandboxStatus: unary<{ pod_sandbox_id: string; verbose: boolean }>('PodSandboxStatus', async (r) =>
      sb.status(sb.get(r.pod_sandbox_id), r.verbose),
    ),
    ListPodSandbox: unary<PodFilter>('ListPodSandbox', listPods),
    StreamPodSandboxes: asStream<PodFilter>('StreamPodSandboxes', listPods, 'items', 'pod_sandboxes'),
    CreateContainer: unary<{
      pod_sandbox_id: string;
      config: ContainerConfig | null;
      sandbox_config: PodSandboxConfig | null;
    }>('CreateContainer', async (r) => ({
      container_id: await ct.create(r.pod_sandbox_id, r.config, r.sandbox_config),
    })),
    StartContainer: unary<{ container_id: string }>('StartContainer', async (r) => {
      const x = ct.get(r.container_id);
      const s = sb.get(x.c.labels[SANDBOX_ID] ?? '');
      if (!sb.ready(s)) throw failedPrecondition(`pod sandbox ${s.c.id} of the container is not ready`);
      await k8s.start(x.c.id);
      return {};
    }),
    StopContainer: unary<{ container_id: string; timeout: number }>('StopContainer', async (r) => {
      await k8s.stop(ct.get(r.container_id).c.id, seconds(r.timeout));
      return {};
    }),
    RemoveContainer: unary<{ container_id: string }>('RemoveContainer', async (r) => {
      if (!r.container_id) throw invalidArgument('container_id is required');
      const c = k8s.find(r.container_id);
      if (c && isSandbox(c)) throw invalidArgument(`${r.container_id} is a pod sandbox, not a container`);
      await k8s.remove(r.container_id);
      return {};
    }),
    ListContainers: unary<CtrFilter>('ListContainers', listContainers),
    StreamContainers: asStream<CtrFilter>('StreamContainers', listContainers, 'containers', 'containers'),
    ContainerStatus: unary<{ container_id: string; verbose: boolean }>('ContainerStatus', async (r) =>
      ct.status(ct.get(r.container_id), r.verbose),
    ),
    UpdateContainerResources: unary<{ container_id: string; linux: LinuxContainerResources | null }>(
      'UpdateContainerResources',
      async (r) => {
        const x = ct.get(r.container_id);
        const l = r.linux;
        if (!l) return {};
        if (l.hugepage_limits.some((h) => h.limit > 0))
          throw unimplemented('hugepage limits', 'berth updates the named and unified cgroup limits only');
        await k8s.update(x.c.id, {
          ...(l.memory_limit_in_bytes ? { Memory: l.memory_limit_in_bytes } : {}),
          ...(l.cpu_shares ? { CpuShares: l.cpu_shares } : {}),
          ...(l.cpu_quota ? { CpuQuota: l.cpu_quota } : {}),
          ...(l.cpu_period ? { CpuPeriod: l.cpu_period } : {}),
          ...(l.cpuset_cpus ? { CpusetCpus: l.cpuset_cpus } : {}),
          ...(l.cpuset_mems ? { CpusetMems: l.cpuset_mems } : {}),
          ...(Object.keys(l.unified).length ? { Unified: { ...l.unified } } : {}),
        });
        return {};
      },
    ),
    ReopenContainerLog: unary<{ container_id: string }>('ReopenContainerLog', async (r) => {
      const x = ct.get(r.container_id);
      if (!x.meta.logPath) throw failedPrecondition(`container ${x.c.id} has no log_path`);
      await k8s.reopenLog(x.c.id);
      return {};
    }),
    ExecSync: unary<{ container_id: string; cmd: string[]; timeout: number }>('ExecSync', async (r) => {
      const x = ct.get(r.container_id);
      const res = await k8s.execSync(x.c.id, r.cmd, seconds(r.timeout) * 1000);
      if (res.timedOut)
        throw new GrpcStatusError(
          status.DEADLINE_EXCEEDED,
          `command ${JSON.stringify(r.cmd)} timed out after ${r.timeout}s (it was killed)`,
        );
      return { stdout: res.stdout, stderr: res.stderr, exit_code: res.exitCode };
    }),
    Exec: unary<{
      container_id: string;
      cmd: string[];
      tty: boolean;
      stdin: boolean;
      stdout: boolean;
      stderr: boolean;
    }>('Exec', async (r) => {
      const x = ct.get(r.container_id);
      checkStreams(r);
      if (!r.cmd.length) throw invalidArgument('cmd is required');
      if (x.c.status !== 'running') throw failedPrecondition(`container ${x.c.id} is not running`);
      const s = streamOrRefuse('Exec');
      return { url: s.urlForExec({ ...r, containerId: x.c.id }) };
    }),
    Attach: unary<{ container_id: string; tty: boolean; stdin: boolean; stdout: boolean; stderr: boolean }>(
      'Attach',
      async (r) => {
        const x = ct.get(r.container_id);
        checkStreams(r);
        if (x.c.status !== 'running') throw failedPrecondition(`container ${x.c.id} is not running`);
        const s = streamOrRefuse('Attach');
        return { url: s.urlForAttach({ ...r, containerId: x.c.id }) };
      },
    ),
    PortForward: unary<{ pod_sandbox_id: string; port: number[] }>('PortForward', async (r) => {
      const p = sb.get(r.pod_sandbox_id);
      if (!sb.ready(p)) throw failedPrecondition(`pod sandbox ${p.c.id} is not ready`);
      for (const port of r.port)
        if (!Number.isInteger(port) || port < 1 || port > 65535) throw invalidArgument(`invalid port ${port}`);
      const s = streamOrRefuse('PortForward');
      return { url: s.urlForPortForward({ podSandboxId: p.c.id, ports: r.port }) };
    }),
    ContainerStats: unary<{ container_id: string }>('ContainerStats', async (r) => ({
      stats: await ct.stats(ct.get(r.container_id)),
    })),
    ListContainerStats: unary<CtrStatsFilter>('ListContainerStats', listContainerStats),
    StreamContainerStats: asStream<CtrStatsFilter>(
      'StreamContainerStats',
      listContainerStats,
      'stats',
      'container_stats',
    ),
    PodSandboxStats: unary<{ pod_sandbox_id: string }>('PodSandboxStats', async (r) => ({
      stats: await podStats(svc, r.pod_sandbox_id),
    })),
    ListPodSandboxStats: unary<PodStatsFilter>('ListPodSandboxStats', listPodStats),
    StreamPodSandboxStats: asStream<PodStatsFilter>(
      'StreamPodSandboxStats',
      listPodStats,
      'stats',
      'pod_sandbox_stats',
    ),
    UpdateRuntimeConfig: unary<{ runtime_config: { network_config: { pod_cidr: string } | null } | null }>(
      'UpdateRuntimeConfig',
      async (r) => {
        svc.podCidr = r.runtime_config?.network_config?.pod_cidr ?? '';
        return {};
      },
    ),
    Status: unary<{ verbose: boolean }>('Status', async (r) => {
      const net = await k8s.network.status();
      return {
        status: {
          conditions: [
            { type: 'RuntimeReady', status: true, reason: '', message: '' },
            { type: 'NetworkReady', status: net.ready, reason: net.reason, message: net.message },
          ],
        },
        info: r.verbose
          ? {
              config: JSON.stringify({
                network: k8s.network.name,
                podCidr: svc.podCidr,
                runtimes: ['crun', 'runc'],
              }),
            }
          : {},
        runtime_handlers: ['', 'crun', 'runc'].map((name) => ({
          name,
          features: { recursive_read_only_mounts: false, user_namespaces: false },
        })),
        features: { supplemental_groups_policy: false },
      };
    }),
    CheckpointContainer: unary<{ container_id: string; location: string; timeout: number }>(
      'CheckpointContainer',
      async (r) => {
        const { c } = ct.get(r.container_id);
        if (r.timeout < 0) throw invalidArgument('timeout: seconds, not negative');
        // kubelet's default when it sends none; CRIU and the export have their own deadlines too
        const seconds = r.timeout || CHECKPOINT_DEFAULT_TIMEOUT_S;
        const deadline = new AbortController();
        const timer = setTimeout(() => deadline.abort(), seconds * 1000);
        try {
          await svc.verbs.checkpoints.toFile(c.id, r.location, deadline.signal);
        } catch (e) {
          if (deadline.signal.aborted)
            throw new GrpcStatusError(
              status.DEADLINE_EXCEEDED,
              `checkpoint of ${c.id} did not finish in ${seconds}s: nothing was written, the container runs on`,
            );
          throw e;
        } finally {
          clearTimeout(timer);
        }
        return {};
      },
    ),
    GetContainerEvents: streaming<object>('GetContainerEvents', (_r, write, signal) => events(svc, write, signal)),
    ListMetricDescriptors: unary<object>('ListMetricDescriptors', async () => metricDescriptors()),
    ListPodSandboxMetrics: unary<object>('ListPodSandboxMetrics', () => podMetrics(k8s, sb, ct)),
    StreamPodSandboxMetrics: asStream<object>(
      'StreamPodSandboxMetrics',
      () => podMetrics(k8s, sb, ct),
      'pod_metrics',
      'pod_sandbox_metrics',
    ),
    RuntimeConfig: unary<object>('RuntimeConfig', async () => ({ linux: { cgroup_driver: 'CGROUPFS' } })),
    UpdatePodSandboxResources: unary<{ pod_sandbox_id: string }>('UpdatePodSandboxResources', async (r) => {
      sb.get(r.pod_sandbox_id);
      throw unimplemented(
        'UpdatePodSandboxResources',
        "berth places the pod's cgroups under the kubelet's cgroup_parent but does not write that parent's " +
          'limits (with the cgroupfs driver the kubelet sets the pod cgroup itself); per-container limits: ' +
          'UpdateContainerResources',
      );
    }),
  };
}

async function podStats(svc: RuntimeDeps, id: string): Promise<object> {
  const s = svc.sandboxes.get(id);
  const attributes = {
    id: s.c.id,
    metadata: s.meta.metadata,
    labels: s.meta.labels,
    annotations: s.meta.annotations,
  };
  const containers = await Promise.all(
    svc.sandboxes
      .containersOf(s.c.id)
      .filter((c) => c.status === 'running')
      .map((c) => svc.containers.stats(svc.containers.get(c.id))),
  );
  const own = (await svc.containers.statsOf(s.c.id, attributes, await svc.verbs.k8s.stats(s.c.id))) as {
    cpu: {
      timestamp: number;
      usage_core_nano_seconds: { value: number };
      usage_nano_cores: { value: number };
    } | null;
    memory: { timestamp: number; working_set_bytes: { value: number }; usage_bytes: { value: number } } | null;
  };
  // the pod's usage: the infra process's and its containers' (each has a cgroup of its own)
  const sum = (pick: (x: typeof own) => number) =>
    [own, ...(containers as Array<typeof own>)].reduce((a, x) => a + pick(x), 0);
  const now = Date.now() * 1e6;
  return {
    attributes,
    linux: {
      cpu: {
        timestamp: now,
        usage_core_nano_seconds: { value: sum((x) => x.cpu?.usage_core_nano_seconds.value ?? 0) },
        usage_nano_cores: { value: sum((x) => x.cpu?.usage_nano_cores.value ?? 0) },
      },
      memory: {
        timestamp: now,
        working_set_bytes: { value: sum((x) => x.memory?.working_set_bytes.value ?? 0) },
        usage_bytes: { value: sum((x) => x.memory?.usage_bytes.value ?? 0) },
      },
      network: null,
      process: null,
      containers,
    },
    windows: null,
  };
}

/** GetContainerEvents: the k8s.io containers' (and sandboxes') state changes until the client goes. */
function events(svc: RuntimeDeps, write: (m: object) => void, signal: AbortSignal): Promise<void> {
  const TYPES: Record<string, string> = {
    create: 'CONTAINER_CREATED_EVENT',
    start: 'CONTAINER_STARTED_EVENT',
    die: 'CONTAINER_STOPPED_EVENT',
    destroy: 'CONTAINER_DELETED_EVENT',
  };
  return new Promise<void>((resolve) => {
    const off = svc.verbs.k8s.subscribe((ev: EngineEvent) => {
      const type = TYPES[ev.Action];
      if (!type) return;
      try {
        write(eventOf(svc, ev, type));
      } catch (e) {
        log.debug('cri: event not sent', { err: String(e) });
      }
    });
    const end = () => {
      off();
      resolve();
    };
    if (signal.aborted) end();
    else signal.addEventListener('abort', end, { once: true });
  });
}

function eventOf(svc: RuntimeDeps, ev: EngineEvent, type: string): object {
  const id = ev.Actor.ID;
  const now = ev.timeNano;
  const c = svc.verbs.k8s.find(id);
  const podId = c && isSandbox(c) ? c.id : (c?.labels[SANDBOX_ID] ?? ev.Actor.Attributes[SANDBOX_ID] ?? '');
  const pod = podId ? svc.sandboxes.find(podId) : undefined;
  const statuses =
    c && isContainer(c) ? [(svc.containers.status(svc.containers.get(id), false) as { status: object }).status] : [];
  return {
    container_id: id,
    container_event_type: type,
    created_at: now,
    pod_sandbox_status: pod ? (svc.sandboxes.status(pod, false) as { status: object }).status : null,
    containers_statuses: statuses,
  };
}

/** A CRI timeout in seconds, within a timer's range (~24.8 days; a longer one would fire at once). */
const seconds = (t: number): number => Math.min(Math.max(0, Number.isFinite(t) ? t : 0), 2_147_483);

function checkStreams(r: { tty: boolean; stdin: boolean; stdout: boolean; stderr: boolean }): void {
  if (!r.stdin && !r.stdout && !r.stderr) throw invalidArgument('one of stdin, stdout and stderr must be set');
  if (r.tty && r.stderr) throw invalidArgument('tty and stderr cannot both be set (a terminal has one output)');
}
