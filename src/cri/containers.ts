/**
 * The CRI's containers: a ContainerConfig composed into a Docker create body (the engine's one
 * create, all-or-nothing) in the k8s.io namespace, joined to its sandbox's namespaces; their
 * status, list and stats in the CRI's terms.
 */
import { readFile } from 'node:fs/promises';
import { isAbsolute, join } from 'node:path';
import { alreadyExists, invalidArgument, isBerthError, notFound } from '../base/errors.js';
import type { K8sContainer, K8sStats, K8sVerbs } from '../engine/k8s.js';
import { unimplemented } from './grpc.js';
import { rssBytes, workingSetBytes } from './memory.js';
import {
  CONTAINER,
  KIND,
  SANDBOX_ID,
  containerMeta,
  dnsOf,
  isContainer,
  namePart,
  nanos,
  selects,
  type ContainerMeta,
} from './meta.js';
import type { Sandbox, Sandboxes } from './sandboxes.js';
import type {
  ContainerConfig,
  LinuxContainerResources,
  LinuxContainerSecurityContext,
  StrMap,
  PodSandboxConfig,
} from './types.js';

export interface Ctr {
  c: K8sContainer;
  meta: ContainerMeta;
}

const PROPAGATION: Record<string, string> = {
  PROPAGATION_PRIVATE: 'rprivate',
  PROPAGATION_HOST_TO_CONTAINER: 'rslave',
  PROPAGATION_BIDIRECTIONAL: 'rshared',
};

export function stateOf(c: K8sContainer): string {
  switch (c.status) {
    case 'created':
      return 'CONTAINER_CREATED';
    case 'running':
    case 'paused':
    case 'restarting':
      return 'CONTAINER_RUNNING';
    case 'exited':
    case 'dead':
      return 'CONTAINER_EXITED';
    default:
      return 'CONTAINER_UNKNOWN';
  }
}

export class Containers {
  /** the last CPU sample of each container: usage_nano_cores is the rate between two */
  private readonly cpuSamples = new Map<string, { at: number; total: number }>();

  constructor(
    private readonly k8s: K8sVerbs,
    private readonly sandboxes: Sandboxes,
  ) {}

  all(): Ctr[] {
    const out: Ctr[] = [];
    for (const c of this.k8s.list()) {
      const meta = isContainer(c) ? containerMeta(c) : null;
      if (meta) out.push({ c, meta });
    }
    return out;
  }

  get(id: string): Ctr {
    if (!id) throw invalidArgument('container_id is required');
    const c = this.k8s.find(id);
    const meta = c && isContainer(c) ? containerMeta(c) : null;
    if (!c || !meta) throw notFound(`container ${id} not found`);
    return { c, meta };
  }

  async create(podId: string, config: ContainerConfig | null, sandboxConfig: PodSandboxConfig | null): Promise<string> {
    if (!config?.metadata?.name) throw invalidArgument('config.metadata.name is required');
    if (!config.image?.image) throw invalidArgument('config.image.image is required');
    const s = this.sandboxes.readyOne(podId);
    // the CRI's rule (containerd's too): a privileged container only in a sandbox that said it would hold one
    if (config.linux?.security_context?.privileged && !s.meta.privileged)
      throw invalidArgument(`pod sandbox ${s.c.id} is not privileged: no privileged container may run in it`);
    const md = s.meta.metadata;
    const name = [
      'k8s',
      namePart('metadata.name', config.metadata.name),
      md.name,
      md.namespace,
      md.uid,
      String(config.metadata.attempt),
    ].join('_');
    const logDir = s.meta.logDirectory || sandboxConfig?.log_directory || '';
    if (config.log_path && (isAbsolute(config.log_path) || config.log_path.split('/').includes('..')))
      throw invalidArgument(`log_path ${JSON.stringify(config.log_path)} must be relative to the log directory`);
    const logPath = logDir && config.log_path ? join(logDir, config.log_path) : '';
    const meta: ContainerMeta = {
      metadata: { name: config.metadata.name, attempt: config.metadata.attempt },
      labels: config.labels,
      annotations: config.annotations,
      image: {
        image: config.image.image,
        annotations: config.image.annotations,
        user_specified_image: config.image.user_specified_image,
      },
      logPath,
      mounts: config.mounts.map((m) => ({
        container_path: m.container_path,
        host_path: m.host_path,
        readonly: m.readonly,
        propagation: m.propagation,
      })),
    };
    const body = await this.bodyOf(s, config, meta);
    // a pinned sandbox's namespaces, joined by path (an infra's are joined through its process)
    const pinned = this.sandboxes.pinned(s);
    const ns = {
      ...(pinned && s.meta.namespaces.network !== 'NODE' ? { netnsPath: s.c.netnsPath } : {}),
      ...(pinned && s.c.ipcnsPath && s.meta.namespaces.ipc !== 'NODE' ? { ipcnsPath: s.c.ipcnsPath } : {}),
    };
    try {
      return await this.k8s.create(body, name, logPath || undefined, ns);
    } catch (e) {
      if (isBerthError(e, 'Conflict')) throw alreadyExists(`container name ${name} is taken: ${e.message}`);
      if (isBerthError(e, 'NotFound') && /image/i.test(e.message))
        throw notFound(`image ${JSON.stringify(config.image.image)} not found: ${e.message}`);
      throw e;
    }
  }

  private async bodyOf(s: Sandbox, config: ContainerConfig, meta: ContainerMeta): Promise<Record<string, unknown>> {
    const infra = s.c.id;
    const sc = config.linux?.security_context ?? null;
    const nsOpt = sc?.namespace_options ?? null;
    const podNs = s.meta.namespaces;
    const pinned = this.sandboxes.pinned(s);
    const pid = nsOpt?.pid ?? 'CONTAINER';
    if (pinned && pid === 'POD')
      throw invalidArgument(
        `pod sandbox ${infra} has no shared PID namespace (it was made with namespace_options.pid ${podNs.pid})`,
      );
    const hc: Record<string, unknown> = {
      // pinned: its own namespaces' modes here, the pod's paths given to the create (create above)
      NetworkMode: podNs.network === 'NODE' ? 'host' : pinned ? 'none' : `container:${infra}`,
      IpcMode: podNs.ipc === 'NODE' ? 'host' : pinned ? 'private' : `container:${infra}`,
      ...pidMode(pid, nsOpt?.target_id ?? '', infra),
      ...(s.meta.cgroupParent ? { CgroupParent: s.meta.cgroupParent } : {}),
      ...(await securityOf(sc)),
      ...resourcesOf(config.linux?.resources ?? null),
      ...(s.meta.runtimeHandler ? { Runtime: s.meta.runtimeHandler } : {}),
      ...dnsOf(s.meta),
      LogConfig: { Type: 'k8s-file', Config: {} },
    };
    if (config.mounts.length) {
      hc['Mounts'] = config.mounts.map((m) => {
        if (m.image?.image) throw unimplemented('an image volume mount', 'berth mounts host paths only');
        if (m.uidMappings.length || m.gidMappings.length)
          throw unimplemented('id-mapped mounts', 'berth runs containers without user namespaces');
        if (!isAbsolute(m.host_path) || !isAbsolute(m.container_path))
          throw invalidArgument(`mount ${m.host_path}:${m.container_path}: both paths must be absolute`);
        return {
          Type: 'bind',
          Source: m.host_path,
          Target: m.container_path,
          ReadOnly: m.readonly,
          BindOptions: { Propagation: PROPAGATION[m.propagation] ?? 'rprivate' },
        };
      });
    }
    if (config.devices.length)
      hc['Devices'] = config.devices.map((d) => ({
        PathOnHost: d.host_path,
        PathInContainer: d.container_path,
        CgroupPermissions: d.permissions || 'rwm',
      }));
    if (config.CDI_devices.length) throw unimplemented('CDI devices', 'berth has no CDI registry');
    return {
      Image: config.image?.image,
      ...(config.command.length ? { Entrypoint: config.command } : {}),
      ...(config.args.length ? { Cmd: config.args } : {}),
      ...(config.working_dir ? { WorkingDir: config.working_dir } : {}),
      Env: config.envs.map((e) => `${e.key}=${e.value}`),
      Tty: config.tty,
      OpenStdin: config.stdin,
      StdinOnce: config.stdin_once,
      AttachStdin: config.stdin,
      ...userOf(sc),
      // the pod's hostname (an infra's is taken at start, as `--network container:` does)
      ...(pinned && s.c.hostname ? { Hostname: s.c.hostname } : {}),
      ...(config.stop_signal && config.stop_signal !== 'RUNTIME_DEFAULT'
        ? { StopSignal: signalName(config.stop_signal) }
        : {}),
      Labels: { [KIND]: 'container', [SANDBOX_ID]: s.c.id, [CONTAINER]: JSON.stringify(meta) },
      HostConfig: hc,
    };
  }

  status(x: Ctr, verbose: boolean): object {
    const { c, meta } = x;
    const state = stateOf(c);
    const exited = state === 'CONTAINER_EXITED';
    const reason = !exited ? '' : c.oomKilled ? 'OOMKilled' : c.exitCode === 0 ? 'Completed' : 'Error';
    return {
      status: {
        id: c.id,
        metadata: meta.metadata,
        state,
        created_at: nanos(c.created),
        started_at: state === 'CONTAINER_CREATED' ? 0 : nanos(c.startedAt),
        finished_at: exited ? nanos(c.finishedAt) : 0,
        exit_code: exited ? c.exitCode : 0,
        image: meta.image,
        image_ref: c.imageId,
        image_id: c.imageId,
        stop_signal: signalEnum(c.stopSignal || 'SIGTERM'),
        reason,
        message: exited ? c.error : '',
        labels: meta.labels,
        annotations: meta.annotations,
        mounts: meta.mounts.map((m) => ({ ...m, selinux_relabel: false })),
        log_path: meta.logPath,
        resources: {
          linux: {
            cpu_period: c.resources.cpuPeriod,
            cpu_quota: c.resources.cpuQuota,
            cpu_shares: c.resources.cpuShares,
            memory_limit_in_bytes: c.resources.memory,
            cpuset_cpus: c.resources.cpusetCpus,
            cpuset_mems: c.resources.cpusetMems,
            memory_swap_limit_in_bytes: c.resources.memorySwap,
          },
        },
      },
      info: verbose
        ? { info: JSON.stringify({ pid: c.pid, sandboxID: c.labels[SANDBOX_ID], name: c.name, user: c.user }) }
        : {},
    };
  }

  item(x: Ctr): object {
    return {
      id: x.c.id,
      pod_sandbox_id: x.c.labels[SANDBOX_ID] ?? '',
      metadata: x.meta.metadata,
      image: x.meta.image,
      image_ref: x.c.imageId,
      image_id: x.c.imageId,
      state: stateOf(x.c),
      created_at: nanos(x.c.created),
      labels: x.meta.labels,
      annotations: x.meta.annotations,
    };
  }

  list(
    f: { id: string; state: { state: string } | null; pod_sandbox_id: string; label_selector: StrMap } | null,
  ): Ctr[] {
    return this.all()
      .filter((x) => !f?.id || x.c.id.startsWith(f.id))
      .filter((x) => !f?.state || stateOf(x.c) === f.state.state)
      .filter((x) => !f?.pod_sandbox_id || (x.c.labels[SANDBOX_ID] ?? '').startsWith(f.pod_sandbox_id))
      .filter((x) => selects(f?.label_selector, x.meta.labels));
  }

  async stats(x: Ctr): Promise<object> {
    return this.statsOf(
      x.c.id,
      { id: x.c.id, metadata: x.meta.metadata, labels: x.meta.labels, annotations: x.meta.annotations },
      await this.k8s.stats(x.c.id),
    );
  }

  /** The CRI's ContainerStats from the cgroup's numbers (null ones when the container does not run). */
  statsOf(id: string, attributes: object, st: K8sStats): object {
    const now = Date.now() * 1e6;
    const u = (value: number) => ({ value: Math.max(0, Math.round(value)) });
    const g = st.cgroup;
    let cpu: object | null = null;
    let memory: object | null = null;
    if (g) {
      const prev = this.cpuSamples.get(id);
      this.cpuSamples.set(id, { at: now, total: g.cpuTotalNs });
      const rate = prev && now > prev.at ? ((g.cpuTotalNs - prev.total) / (now - prev.at)) * 1e9 : 0;
      cpu = { timestamp: now, usage_core_nano_seconds: u(g.cpuTotalNs), usage_nano_cores: u(rate) };
      const m = g.memStats;
      const ws = workingSetBytes(g);
      const limited = g.memLimit > 0 && g.memLimit < 2 ** 60;
      memory = {
        timestamp: now,
        working_set_bytes: u(ws),
        available_bytes: u(limited ? g.memLimit - ws : 0),
        usage_bytes: u(g.memUsage),
        rss_bytes: u(rssBytes(g)),
        page_faults: u(m['total_pgfault'] ?? m['pgfault'] ?? 0),
        major_page_faults: u(m['total_pgmajfault'] ?? m['pgmajfault'] ?? 0),
      };
    } else this.cpuSamples.delete(id);
    return {
      attributes,
      cpu,
      memory,
      writable_layer: {
        timestamp: now,
        fs_id: { mountpoint: st.snapshotsDir },
        used_bytes: u(st.writableBytes),
        inodes_used: null,
      },
      swap: null,
    };
  }
}

function pidMode(mode: string, target: string, infra: string): Record<string, string> {
  switch (mode) {
    case 'POD':
      return { PidMode: `container:${infra}` };
    case 'NODE':
      return { PidMode: 'host' };
    case 'TARGET':
      if (!target) throw invalidArgument('namespace_options.target_id is required with pid TARGET');
      return { PidMode: `container:${target}` };
    default:
      return {};
  }
}

/** The user as Docker's `User`: uid or name, with the group when one is given. */
function userOf(sc: LinuxContainerSecurityContext | null): Record<string, string> {
  if (!sc) return {};
  const group = sc.run_as_group ? `:${sc.run_as_group.value}` : '';
  if (sc.run_as_user && sc.run_as_username) throw invalidArgument('run_as_user and run_as_username cannot both be set');
  if (sc.run_as_user) {
    if (sc.run_as_user.value < 0) throw invalidArgument(`run_as_user ${sc.run_as_user.value} is negative`);
    return { User: `${sc.run_as_user.value}${group}` };
  }
  if (sc.run_as_username) return { User: `${sc.run_as_username}${group}` };
  if (group) throw invalidArgument('run_as_group needs run_as_user or run_as_username');
  return {};
}

async function securityOf(sc: LinuxContainerSecurityContext | null): Promise<Record<string, unknown>> {
  if (!sc) return {};
  const opts: string[] = [];
  const seccomp = sc.seccomp ?? profileOfPath(sc.seccomp_profile_path);
  if (!sc.privileged && seccomp) {
    if (seccomp.profile_type === 'Unconfined') opts.push('seccomp=unconfined');
    else if (seccomp.profile_type === 'Localhost') {
      if (!isAbsolute(seccomp.localhost_ref))
        throw invalidArgument(
          `seccomp localhost_ref ${JSON.stringify(seccomp.localhost_ref)} must be an absolute path`,
        );
      const text = await readFile(seccomp.localhost_ref, 'utf8').catch((e: unknown) => {
        throw invalidArgument(`seccomp profile ${seccomp.localhost_ref}: ${(e as Error).message}`);
      });
      opts.push(`seccomp=${text}`);
    }
  }
  if (sc.no_new_privs) opts.push('no-new-privileges');
  const caps = sc.capabilities;
  if (caps?.add_ambient_capabilities.length)
    throw unimplemented('ambient capabilities', 'berth sets the bounding, effective and permitted sets only');
  return {
    Privileged: sc.privileged,
    ReadonlyRootfs: sc.readonly_rootfs,
    ...(caps?.add_capabilities.length ? { CapAdd: caps.add_capabilities } : {}),
    ...(caps?.drop_capabilities.length ? { CapDrop: caps.drop_capabilities } : {}),
    ...(sc.supplemental_groups.length ? { GroupAdd: sc.supplemental_groups.map(String) } : {}),
    ...(opts.length ? { SecurityOpt: opts } : {}),
    ...(!sc.privileged && sc.masked_paths.length ? { MaskedPaths: sc.masked_paths } : {}),
    ...(!sc.privileged && sc.readonly_paths.length ? { ReadonlyPaths: sc.readonly_paths } : {}),
  };
}

/** The deprecated string form (`runtime/default`, `unconfined`, `localhost/<path>`). */
function profileOfPath(p: string): { profile_type: string; localhost_ref: string } | null {
  if (!p) return null;
  if (p === 'unconfined') return { profile_type: 'Unconfined', localhost_ref: '' };
  if (p.startsWith('localhost/')) return { profile_type: 'Localhost', localhost_ref: p.slice('localhost'.length) };
  return { profile_type: 'RuntimeDefault', localhost_ref: '' };
}

export function resourcesOf(r: LinuxContainerResources | null): Record<string, unknown> {
  if (!r) return {};
  if (r.hugepage_limits.some((h) => h.limit > 0))
    throw unimplemented('hugepage limits', 'berth sets no hugetlb cgroup limits');
  return {
    ...(r.memory_limit_in_bytes ? { Memory: r.memory_limit_in_bytes } : {}),
    ...(r.memory_swap_limit_in_bytes ? { MemorySwap: r.memory_swap_limit_in_bytes } : {}),
    ...(r.cpu_shares ? { CpuShares: r.cpu_shares } : {}),
    ...(r.cpu_quota ? { CpuQuota: r.cpu_quota } : {}),
    ...(r.cpu_period ? { CpuPeriod: r.cpu_period } : {}),
    ...(r.cpuset_cpus ? { CpusetCpus: r.cpuset_cpus } : {}),
    ...(r.cpuset_mems ? { CpusetMems: r.cpuset_mems } : {}),
    ...(r.oom_score_adj ? { OomScoreAdj: r.oom_score_adj } : {}),
    // cgroup v2 files as they are: OCI linux.resources.unified (refused on a cgroup v1 host)
    ...(Object.keys(r.unified).length ? { Unified: { ...r.unified } } : {}),
  };
}

/** The CRI's Signal enum name as a signal name berth parses (SIGRTMINPLUS3 is SIGRTMIN+3). */
export function signalName(e: string): string {
  return e.replace(/^SIGRTMINPLUS(\d+)$/, 'SIGRTMIN+$1').replace(/^SIGRTMAXMINUS(\d+)$/, 'SIGRTMAX-$1');
}

const SIGNAL_ENUM = new RegExp(
  '^SIG(ABRT|ALRM|BUS|CHLD|CLD|CONT|FPE|HUP|ILL|INT|IO|IOT|KILL|PIPE|POLL|PROF|PWR|QUIT|SEGV|STKFLT|STOP|SYS|' +
    'TERM|TRAP|TSTP|TTIN|TTOU|URG|USR1|USR2|VTALRM|WINCH|XCPU|XFSZ|RTMIN|RTMAX|' +
    'RTMINPLUS([1-9]|1[0-5])|RTMAXMINUS([1-9]|1[0-4]))$',
);
// x86-64's numbers (Docker's StopSignal may be one)
const BY_NUMBER = [
  '',
  'HUP',
  'INT',
  'QUIT',
  'ILL',
  'TRAP',
  'ABRT',
  'BUS',
  'FPE',
  'KILL',
  'USR1',
  'SEGV',
  'USR2',
  'PIPE',
  'ALRM',
  'TERM',
  'STKFLT',
  'CHLD',
  'CONT',
  'STOP',
  'TSTP',
  'TTIN',
  'TTOU',
  'URG',
  'XCPU',
  'XFSZ',
  'VTALRM',
  'PROF',
  'WINCH',
  'IO',
  'PWR',
  'SYS',
];

/**
 * Docker's StopSignal (a name, with or without SIG, or a number) as the CRI's Signal enum;
 * RUNTIME_DEFAULT if none fits.
 */
export function signalEnum(s: string): string {
  const t = s.trim().toUpperCase();
  const n = /^\d+$/.test(t) ? Number(t) : NaN;
  const base = Number.isInteger(n)
    ? n >= 34 && n <= 64
      ? n - 34 <= 15
        ? `RTMIN+${n - 34}`
        : `RTMAX-${64 - n}`
      : (BY_NUMBER[n] ?? '')
    : t.replace(/^SIG/, '');
  const name = `SIG${base}`
    .replace(/^SIGRTMIN\+0$/, 'SIGRTMIN')
    .replace(/^SIGRTMAX-0$/, 'SIGRTMAX')
    .replace(/^SIGRTMIN\+(\d+)$/, 'SIGRTMINPLUS$1')
    .replace(/^SIGRTMAX-(\d+)$/, 'SIGRTMAXMINUS$1');
  return SIGNAL_ENUM.test(name) ? name : 'RUNTIME_DEFAULT';
}
