import type { ContainerId } from '../base/ids.js';
import type { ContainerConfig, HostConfig } from '../spec/engine-api.js';
import type { RuntimeName } from '../runtime/types.js';
import type { Status } from './state.js';
import type { EndpointRequest } from '../network/manager.js';
import type { MountRecord } from './mounts.js';

/** health.ts runs the probes; their state lives in the record. */
export type HealthStatus = 'starting' | 'healthy' | 'unhealthy';

export interface HealthProbeResult {
  Start: string;
  End: string;
  ExitCode: number;
  Output: string;
}

/** State.Health as the Engine API shows it. */
export interface HealthState {
  Status: HealthStatus;
  FailingStreak: number;
  Log: HealthProbeResult[];
}

export interface ContainerState {
  status: Status;
  pid: number;
  conmonPid: number;
  exitCode: number;
  error: string;
  oomKilled: boolean;
  startedAt: string;
  finishedAt: string;
  /** State.Health, when the container has a health check (health.ts) */
  health?: HealthState;
}

/** Everything berth keeps about a container; serialisable as one JSON document (checkpoint/migrate need that). */
export interface ContainerRecord {
  id: ContainerId;
  /** Without the leading slash. */
  name: string;
  created: string;
  imageId: string;
  /** Config as inspect shows it: the client's config merged with the image's defaults. */
  config: ContainerConfig;
  hostConfig: HostConfig;
  path: string;
  args: string[];
  runtime: RuntimeName;
  state: ContainerState;
  restartCount: number;
  /** Set by an explicit stop; `unless-stopped` and daemon restarts honour it. */
  manuallyStopped: boolean;
  /** Exec ids that belong to this container (live ones). */
  execIds: string[];
  /** The networks it joins when it starts (network id, what it asks of it), in order: eth0, eth1, ... */
  networks?: Array<[string, EndpointRequest]>;
  /** Its mounts (volumes, binds, tmpfs), decided at create. Absent in records older than volumes: then Binds. */
  mounts?: MountRecord[];
  /**
   * The front door that made it: absent for the Docker API's, `k8s.io` for the CRI's (containerd's
   * namespaces). Each door finds and lists only its own; names are unique within a namespace.
   */
  namespace?: Namespace;
  /** Where conmon writes its k8s-file log, when not the container dir's ctr.log (CRI's log_path). */
  logPath?: string;
  /**
   * A network namespace made for it before it starts (a CRI pod's, under /run/netns, so that CNI's
   * ADD runs while the runtime starts the infra process): joined at start instead of a new one.
   */
  netnsPath?: string;
  /**
   * An IPC namespace pinned for it before it starts (a CRI pod's without an infra process, under
   * the exec root's pods/): joined at start instead of a new one.
   */
  ipcnsPath?: string;
}

/** '' is the Docker API's namespace, `k8s.io` the CRI's. */
export type Namespace = '' | 'k8s.io';

export const namespaceOf = (rec: ContainerRecord): Namespace => rec.namespace ?? '';

export const ZERO_TIME = '0001-01-01T00:00:00Z';

export function initialState(): ContainerState {
  return {
    status: 'created',
    pid: 0,
    conmonPid: 0,
    exitCode: 0,
    error: '',
    oomKilled: false,
    startedAt: ZERO_TIME,
    finishedAt: ZERO_TIME,
  };
}

/** The named network namespace berth makes for a container that can be checkpointed (engine.ts namedNetns). */
export const netnsNameOf = (id: string): string => `berth-${id.slice(0, 16)}`;
