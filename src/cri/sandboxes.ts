/**
 * Pod sandboxes (a container record of the k8s.io namespace labelled `io.berth.cri.kind=sandbox`),
 * in one of two forms (engine/pods.ts):
 * - pinned, no process: the pod's network and IPC namespaces pinned by bind mounts, which the
 *   pod's containers join by path; each container has its own UTS namespace with the pod's
 *   hostname. For every pod that needs nothing more.
 * - infra: one infra process, `catatonit -P` from berth's own pause image, holds them, and the
 *   pod's containers join them as Docker's `container:<id>` modes do. When a process is needed:
 *   a PID namespace shared by the pod (shareProcessNamespace), or pod sysctls (the runtime applies
 *   and checks them in the infra's namespaces); with the host's network too (there is nothing to pin
 *   but IPC, and the infra holds the UTS namespace), and whenever the daemon is told to always use one.
 * Its network comes from the engine's PodNetwork (loopback only, or CNI).
 */
import { alreadyExists, failedPrecondition, invalidArgument, isBerthError, notFound } from '../base/errors.js';
import type { K8sContainer, K8sVerbs } from '../engine/k8s.js';
import type { PodNetSpec, PodVerbs } from '../engine/pods.js';
import { PAUSE_IMAGE } from '../engine/k8s.js';
import { unimplemented } from './grpc.js';
import {
  KIND,
  SANDBOX,
  SANDBOX_ID,
  dnsOf,
  isContainer,
  isSandbox,
  nanos,
  namePart,
  sandboxMeta,
  selects,
  type SandboxMeta,
} from './meta.js';
import type { StrMap, NamespaceOption, PodSandboxConfig } from './types.js';

export interface Sandbox {
  c: K8sContainer;
  meta: SandboxMeta;
}

const PROTOCOLS = { TCP: 'tcp', UDP: 'udp', SCTP: 'sctp' } as const;

export class Sandboxes {
  constructor(
    private readonly k8s: K8sVerbs,
    private readonly pods: PodVerbs,
    /** `always`: every pod gets an infra process (berthd --cri-pod-infra) */
    private readonly infra: 'needed' | 'always' = 'needed',
  ) {}

  /** A sandbox without an infra process (its namespaces pinned). */
  pinned(s: Sandbox): boolean {
    return this.pods.pinned(s.c);
  }

  all(): Sandbox[] {
    const out: Sandbox[] = [];
    for (const c of this.k8s.list()) {
      const meta = isSandbox(c) ? sandboxMeta(c) : null;
      if (meta) out.push({ c, meta });
    }
    return out;
  }

  /** By full id or a unique prefix (as crictl sends); NotFound otherwise. */
  get(id: string): Sandbox {
    if (!id) throw invalidArgument('pod_sandbox_id is required');
    const c = this.k8s.find(id);
    const meta = c && isSandbox(c) ? sandboxMeta(c) : null;
    if (!c || !meta) throw notFound(`pod sandbox ${id} not found`);
    return { c, meta };
  }

  find(id: string): Sandbox | undefined {
    try {
      return this.get(id);
    } catch (e) {
      if (isBerthError(e, 'NotFound')) return undefined;
      throw e;
    }
  }

  containersOf(id: string): K8sContainer[] {
    return this.k8s.list().filter((c) => isContainer(c) && c.labels[SANDBOX_ID] === id);
  }

  /** Its infra process runs and its network was set up (not half done by a daemon killed meanwhile). */
  ready(s: Sandbox): boolean {
    return this.pods.ready(s.c);
  }

  async run(config: PodSandboxConfig | null, runtimeHandler: string): Promise<string> {
    if (!config?.metadata) throw invalidArgument('config.metadata is required');
    if (runtimeHandler && runtimeHandler !== 'crun' && runtimeHandler !== 'runc')
      throw invalidArgument(`unknown runtime handler ${JSON.stringify(runtimeHandler)} (berth has "", crun, runc)`);
    const md = config.metadata;
    const name = [
      'k8s_POD',
      namePart('metadata.name', md.name),
      namePart('metadata.namespace', md.namespace),
      namePart('metadata.uid', md.uid),
      String(md.attempt),
    ].join('_');
    const sc = config.linux?.security_context ?? null;
    const ns: Pick<NamespaceOption, 'network' | 'pid' | 'ipc'> = {
      network: sc?.namespace_options?.network ?? 'POD',
      pid: sc?.namespace_options?.pid ?? 'POD',
      ipc: sc?.namespace_options?.ipc ?? 'POD',
    };
    if (sc?.namespace_options?.userns_options && sc.namespace_options.userns_options.mode !== 'NODE')
      throw unimplemented('a pod user namespace', 'berth runs containers without user namespaces');
    const hostNet = ns.network === 'NODE';
    if (!hostNet && config.port_mappings.some((p) => p.host_port > 0) && this.k8s.network.name === 'loopback')
      throw unimplemented('hostPort', 'it needs CNI networking (a conflist in the CNI conf dir), and berth has none');
    const meta: SandboxMeta = {
      metadata: { name: md.name, uid: md.uid, namespace: md.namespace, attempt: md.attempt },
      labels: config.labels,
      annotations: config.annotations,
      logDirectory: config.log_directory,
      hostname: config.hostname,
      runtimeHandler,
      portMappings: config.port_mappings,
      namespaces: ns,
      privileged: sc?.privileged ?? false,
      ...(config.linux?.cgroup_parent ? { cgroupParent: config.linux.cgroup_parent } : {}),
      dns: {
        servers: config.dns_config?.servers ?? [],
        searches: config.dns_config?.searches ?? [],
        options: config.dns_config?.options ?? [],
      },
    };
    const hostConfig: Record<string, unknown> = {
      NetworkMode: hostNet ? 'host' : 'none',
      IpcMode: ns.ipc === 'NODE' ? 'host' : 'private',
      ...(ns.pid === 'NODE' ? { PidMode: 'host' } : {}),
      ReadonlyRootfs: true,
      ...dnsOf(meta),
      ...(runtimeHandler ? { Runtime: runtimeHandler } : {}),
      ...(meta.cgroupParent ? { CgroupParent: meta.cgroupParent } : {}),
      ...(Object.keys(config.linux?.sysctls ?? {}).length ? { Sysctls: config.linux?.sysctls } : {}),
      // the infra process needs nothing: no capabilities
      CapDrop: ['ALL'],
      SecurityOpt: ['no-new-privileges'],
    };
    const body = {
      Image: PAUSE_IMAGE,
      ...(hostNet ? {} : { Hostname: config.hostname || md.name }),
      Labels: { [KIND]: 'sandbox', [SANDBOX]: JSON.stringify(meta) },
      HostConfig: hostConfig,
    };
    // no process needed: no PID namespace to share, no sysctls to apply, a network of its own
    const pinned =
      this.infra === 'needed' && !hostNet && ns.pid !== 'POD' && !Object.keys(config.linux?.sysctls ?? {}).length;
    try {
      return await this.pods.run({
        body,
        name,
        hostNet,
        net: this.netSpec(meta),
        ...(pinned ? { pinned: { ipc: ns.ipc !== 'NODE' } } : {}),
      });
    } catch (e) {
      // two sandboxes of one pod and attempt: the name is taken (the kubelet's retry of a half-seen one)
      if (isBerthError(e, 'Conflict')) throw alreadyExists(`pod sandbox name ${name} is taken: ${e.message}`);
      throw e;
    }
  }

  private netSpec(meta: SandboxMeta): PodNetSpec {
    return {
      name: meta.metadata.name,
      namespace: meta.metadata.namespace,
      uid: meta.metadata.uid,
      portMappings: meta.portMappings.map((p) => ({
        protocol: PROTOCOLS[p.protocol],
        containerPort: p.container_port,
        hostPort: p.host_port,
        hostIp: p.host_ip,
      })),
    };
  }

  /** Stops the pod's containers, its network, its infra process (engine/pods.ts). */
  async stop(id: string): Promise<void> {
    const s = this.get(id);
    await this.pods.stop(s.c, this.containersOf(s.c.id), this.podOf(s));
  }

  /** Idempotent: a sandbox already gone is no error. Its containers go with it. */
  async remove(id: string): Promise<void> {
    const s = this.find(id);
    if (!s) return;
    await this.pods.remove(s.c, this.containersOf(s.c.id), this.podOf(s));
  }

  private podOf(s: Sandbox): { hostNet: boolean; net: PodNetSpec } {
    return { hostNet: s.meta.namespaces.network === 'NODE', net: this.netSpec(s.meta) };
  }

  /** The sandbox must exist and be ready for a container to be made in it. */
  readyOne(id: string): Sandbox {
    const s = this.get(id);
    if (!this.ready(s)) throw failedPrecondition(`pod sandbox ${s.c.id} is not ready`);
    return s;
  }

  status(s: Sandbox, verbose: boolean): object {
    const net = this.pods.netState(s.c);
    let netns = '';
    try {
      netns = s.meta.namespaces.network === 'NODE' ? '' : this.k8s.netnsOf(s.c.id);
    } catch {
      /* not running, no namespace of its own */
    }
    const info: StrMap = verbose
      ? {
          info: JSON.stringify({
            pid: s.c.pid,
            netns,
            ...(this.pinned(s) ? { infra: 'none (namespaces pinned)', ipcns: s.c.ipcnsPath } : {}),
            image: PAUSE_IMAGE,
            network: this.k8s.network.name,
            runtimeHandler: s.meta.runtimeHandler,
            logDirectory: s.meta.logDirectory,
          }),
        }
      : {};
    return {
      status: {
        id: s.c.id,
        metadata: s.meta.metadata,
        state: this.ready(s) ? 'SANDBOX_READY' : 'SANDBOX_NOTREADY',
        created_at: nanos(s.c.created),
        network: { ip: net.down ? '' : net.ip, additional_ips: net.additionalIps.map((ip) => ({ ip })) },
        linux: { namespaces: { options: { ...s.meta.namespaces, target_id: '' } } },
        labels: s.meta.labels,
        annotations: s.meta.annotations,
        runtime_handler: s.meta.runtimeHandler,
      },
      info,
      containers_statuses: [],
      timestamp: Date.now() * 1e6,
    };
  }

  item(s: Sandbox): object {
    return {
      id: s.c.id,
      metadata: s.meta.metadata,
      state: this.ready(s) ? 'SANDBOX_READY' : 'SANDBOX_NOTREADY',
      created_at: nanos(s.c.created),
      labels: s.meta.labels,
      annotations: s.meta.annotations,
      runtime_handler: s.meta.runtimeHandler,
    };
  }

  list(filter: { id: string; state: { state: string } | null; label_selector: StrMap } | null): object[] {
    return this.all()
      .filter((s) => !filter?.id || s.c.id.startsWith(filter.id))
      .filter((s) => !filter?.state || (this.ready(s) ? 'SANDBOX_READY' : 'SANDBOX_NOTREADY') === filter.state.state)
      .filter((s) => selects(filter?.label_selector, s.meta.labels))
      .map((s) => this.item(s));
  }
}
