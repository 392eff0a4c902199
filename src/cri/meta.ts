/**
 * What the CRI keeps about its sandboxes and containers, in the engine's own container records
 * (labels under `io.berth.cri.`): the kubelet's metadata, labels and annotations as sent (never
 * altered), the log paths (the pod network's state is engine/pods.ts's). The record is written
 * through before a verb returns, so a killed berthd finds all of it again.
 */
import { invalidArgument } from '../base/errors.js';
import type { K8sContainer } from '../engine/k8s.js';
import type { StrMap, NamespaceOption, PodSandboxMetadata, PortMapping } from './types.js';

export const KIND = 'io.berth.cri.kind';
export const SANDBOX = 'io.berth.cri.sandbox';
export const SANDBOX_ID = 'io.berth.cri.sandbox-id';
export const CONTAINER = 'io.berth.cri.container';

export interface SandboxMeta {
  metadata: PodSandboxMetadata;
  labels: StrMap;
  annotations: StrMap;
  logDirectory: string;
  hostname: string;
  runtimeHandler: string;
  portMappings: PortMapping[];
  namespaces: Pick<NamespaceOption, 'network' | 'pid' | 'ipc'>;
  /** the sandbox may hold privileged containers (LinuxSandboxSecurityContext.privileged) */
  privileged?: boolean;
  /** the pod's DNS (absent in sandboxes of an older berth): every container's resolv.conf */
  dns?: { servers: string[]; searches: string[]; options: string[] };
  /** LinuxPodSandboxConfig.cgroup_parent (cgroupfs): the infra's and every container's cgroups go under it */
  cgroupParent?: string;
}

/** The pod's DNS as Docker's HostConfig fields (each container of the pod gets them). */
export function dnsOf(meta: SandboxMeta): Record<string, string[]> {
  const d = meta.dns;
  if (!d) return {};
  return {
    ...(d.servers.length ? { Dns: d.servers } : {}),
    ...(d.searches.length ? { DnsSearch: d.searches } : {}),
    ...(d.options.length ? { DnsOptions: d.options } : {}),
  };
}

export interface ContainerMeta {
  metadata: { name: string; attempt: number };
  labels: StrMap;
  annotations: StrMap;
  image: { image: string; annotations: StrMap; user_specified_image: string };
  /** absolute, empty when the sandbox has no log_directory */
  logPath: string;
  mounts: Array<{ container_path: string; host_path: string; readonly: boolean; propagation: string }>;
}

function parse<T>(c: K8sContainer, key: string): T | null {
  const v = c.labels[key];
  if (!v) return null;
  try {
    return JSON.parse(v) as T;
  } catch {
    return null;
  }
}

export const isSandbox = (c: K8sContainer): boolean => c.labels[KIND] === 'sandbox';
export const isContainer = (c: K8sContainer): boolean => c.labels[KIND] === 'container';
export const sandboxMeta = (c: K8sContainer): SandboxMeta | null => parse<SandboxMeta>(c, SANDBOX);
export const containerMeta = (c: K8sContainer): ContainerMeta | null => parse<ContainerMeta>(c, CONTAINER);

/** Engine times (ISO, Go's zero time when unset) as the CRI's nanoseconds since the epoch (0 when unset). */
export function nanos(iso: string): number {
  const ms = Date.parse(iso);
  return Number.isFinite(ms) && ms > 0 ? ms * 1e6 : 0;
}

/** A name part the engine accepts ([a-zA-Z0-9_.-]); the kubelet's names are DNS labels, so this refuses only junk. */
export function namePart(what: string, v: string): string {
  if (!v) throw invalidArgument(`${what} is required`);
  if (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(v))
    throw invalidArgument(`${what} ${JSON.stringify(v)} is not a valid name`);
  return v;
}

/** All of `selector` in `labels`. */
export const selects = (selector: StrMap | null | undefined, labels: StrMap): boolean =>
  Object.entries(selector ?? {}).every(([k, v]) => labels[k] === v);
