/**
 * Engine API request bodies (container create/update/commit, network create/connect/disconnect,
 * volume create, exec create/start), parsed from `unknown` at the edge: first decoded as dockerd's
 * Go decoder decodes them into moby's types (`go-json.ts` with the types of `engine-schema.ts`:
 * wrong JSON types refused with Go's message, keys in any case, `null` as unset, unknown keys
 * dropped), then checked with dockerd's create-time rules that need no host (ranges, formats,
 * conflicts; the host-dependent ones are engine/config.ts's `checkResources`). A parsed body holds
 * only fields of the types dockerd declares, so `inspect` echoes what the docker CLI can read.
 */
import { isIP } from 'node:net';
import { invalidArgument } from '../base/errors.js';
import type { JsonObject } from '../base/json.js';
import { decodeGo, go } from './go-json.js';
import * as schema from './engine-schema.js';
import type { HealthConfig } from './image.js';

export interface ContainerConfig {
  Hostname?: string;
  Domainname?: string;
  User?: string;
  AttachStdin?: boolean;
  AttachStdout?: boolean;
  AttachStderr?: boolean;
  ExposedPorts?: Record<string, Record<string, never>>;
  Tty?: boolean;
  OpenStdin?: boolean;
  StdinOnce?: boolean;
  Env?: string[];
  Cmd?: string[] | null;
  Healthcheck?: HealthConfig;
  Image?: string;
  Volumes?: Record<string, Record<string, never>>;
  WorkingDir?: string;
  Entrypoint?: string[] | null;
  Labels?: Record<string, string>;
  StopSignal?: string;
  StopTimeout?: number;
  [k: string]: unknown;
}

export interface ThrottleDevice {
  Path: string;
  Rate: number;
}

export interface Ulimit {
  Name: string;
  Soft: number;
  Hard: number;
}

export interface RestartPolicy {
  Name: '' | 'no' | 'always' | 'unless-stopped' | 'on-failure';
  MaximumRetryCount: number;
}

export interface PortBinding {
  HostIp: string;
  HostPort: string;
}

export interface HostConfig {
  Binds?: string[] | null;
  NetworkMode?: string;
  PortBindings?: Record<string, PortBinding[] | null>;
  RestartPolicy?: RestartPolicy;
  AutoRemove?: boolean;
  CapAdd?: string[] | null;
  CapDrop?: string[] | null;
  Privileged?: boolean;
  ReadonlyRootfs?: boolean;
  SecurityOpt?: string[] | null;
  Init?: boolean | null;
  Runtime?: string;
  Memory?: number;
  MemorySwap?: number;
  MemoryReservation?: number;
  NanoCpus?: number;
  CpuShares?: number;
  CpuPeriod?: number;
  CpuQuota?: number;
  CpusetCpus?: string;
  PidsLimit?: number | null;
  Ulimits?: Ulimit[] | null;
  LogConfig?: { Type: string; Config: Record<string, string> };
  ShmSize?: number;
  Sysctls?: Record<string, string>;
  PublishAllPorts?: boolean;
  ExtraHosts?: string[] | null;
  Dns?: string[] | null;
  DnsSearch?: string[] | null;
  DnsOptions?: string[] | null;
  PidMode?: string;
  IpcMode?: string;
  UTSMode?: string;
  CgroupnsMode?: string;
  GroupAdd?: string[] | null;
  Links?: string[] | null;
  MemorySwappiness?: number | null;
  CpusetMems?: string;
  BlkioWeight?: number;
  BlkioDeviceReadBps?: ThrottleDevice[] | null;
  BlkioDeviceWriteBps?: ThrottleDevice[] | null;
  BlkioDeviceReadIOps?: ThrottleDevice[] | null;
  BlkioDeviceWriteIOps?: ThrottleDevice[] | null;
  StorageOpt?: Record<string, string> | null;
  CpuRealtimeRuntime?: number;
  CpuRealtimePeriod?: number;
  Devices?: Array<{ PathOnHost: string; PathInContainer?: string; CgroupPermissions?: string }> | null;
  OomKillDisable?: boolean | null;
  OomScoreAdj?: number;
  [k: string]: unknown;
}

export interface CreateBody {
  config: ContainerConfig;
  hostConfig: HostConfig;
  endpoints: Record<string, EndpointSettings>;
}

type Obj = Record<string, unknown>;
const NS_PER_MS = 1_000_000;
/** linuxMinMemory in dockerd */
export const MIN_MEMORY = 6 * 1024 * 1024;
/** the kernel's largest CFS quota, in µs (kernel/sched/core.c: max_cfs_runtime = 2^44 - 1 µs) */
export const MAX_CFS_QUOTA = 2 ** 44 - 1;
/** the kernel's PID_MAX_LIMIT on 64-bit: the largest pids.max */
export const PIDS_MAX = 4 * 1024 * 1024;

/** Control characters (NUL above all) in a string that reaches the kernel or a file the container reads. */
export const CONTROL = /[\u0000-\u001f\u007f]/;

/**
 * dockerd's container.ValidateRestartPolicy (api/types/container/hostconfig.go), with its words.
 * Returns the policy with `''` kept (create turns it into `no`; update ignores it).
 */
export function parseRestartPolicy(v: unknown): RestartPolicy | undefined {
  if (v === undefined || v === null) return undefined;
  const o = v as { Name?: string; MaximumRetryCount?: number };
  const name = o.Name ?? '';
  const max = o.MaximumRetryCount ?? 0;
  switch (name) {
    case 'always':
    case 'unless-stopped':
    case 'no':
      if (max !== 0)
        throw invalidArgument(
          `invalid restart policy: maximum retry count can only be used with 'on-failure'${max < 0 ? ' and cannot be negative' : ''}`,
        );
      break;
    case 'on-failure':
      if (max < 0) throw invalidArgument('invalid restart policy: maximum retry count cannot be negative');
      break;
    case '':
      break;
    default:
      throw invalidArgument(
        `invalid restart policy: unknown policy '${name}'; use one of 'no', 'always', 'on-failure', or 'unless-stopped'`,
      );
  }
  return { Name: name as RestartPolicy['Name'], MaximumRetryCount: max };
}

/** Docker's checks on a Healthcheck at create (daemon/container.go's validateHealthCheck). */
function validateHealthcheck(h: HealthConfig | undefined): void {
  if (!h) return;
  const test = h.Test ?? [];
  if (test.length && !['NONE', 'CMD', 'CMD-SHELL'].includes(test[0]!))
    throw invalidArgument(`unknown healthcheck type: ${test[0]}`);
  if ((test[0] === 'CMD' || test[0] === 'CMD-SHELL') && test.length < 2)
    throw invalidArgument('Healthcheck.Test: no command given');
  for (const k of ['Interval', 'Timeout', 'StartPeriod', 'StartInterval'] as const) {
    const v = h[k] ?? 0;
    if (v !== 0 && v < NS_PER_MS) throw invalidArgument(`${k} in Healthcheck cannot be less than 1ms`);
  }
  if ((h.Retries ?? 0) < 0) throw invalidArgument('Retries in Healthcheck cannot be negative');
}

/** `80`, `80/tcp`: the keys of ExposedPorts and PortBindings (one port each: clients expand ranges). */
function checkPortKey(key: string): void {
  const m = /^(\d{1,5})(?:\/(tcp|udp|sctp))?$/.exec(key);
  if (!m || Number(m[1]) < 1 || Number(m[1]) > 65535) throw invalidArgument(`invalid port specification: "${key}"`);
}

export function checkStrings(what: string, list: readonly string[] | null | undefined): void {
  for (const s of list ?? [])
    if (s.includes('\0')) throw invalidArgument(`invalid ${what}: ${JSON.stringify(s)} contains a NUL byte`);
}

/** dockerd's create-time checks of a container Config (daemon/container.go verifyContainerSettings). */
function validateConfig(c: ContainerConfig): ContainerConfig {
  if (c.WorkingDir && !c.WorkingDir.startsWith('/'))
    throw invalidArgument(`the working directory '${c.WorkingDir}' is invalid, it needs to be an absolute path`);
  for (const e of c.Env ?? [])
    if (e.startsWith('=') || e === '') throw invalidArgument(`invalid environment variable: ${e}`);
  // execve's limits (MAX_ARG_STRLEN, and a total well inside ARG_MAX): past them the start fails with E2BIG
  const argv = [...(c.Env ?? []), ...(c.Cmd ?? []), ...(c.Entrypoint ?? [])];
  if (
    argv.some((a) => Buffer.byteLength(a) >= 131072) ||
    argv.reduce((n, a) => n + Buffer.byteLength(a) + 1, 0) > 1024 * 1024
  )
    throw invalidArgument(
      'argument list too long: a command or environment string is at most 128 KB, all of them at most 1 MB',
    );
  checkStrings('environment variable', c.Env);
  checkStrings('command', c.Cmd);
  checkStrings('entrypoint', c.Entrypoint);
  for (const k of ['User', 'WorkingDir', 'Image', 'StopSignal'] as const)
    checkStrings(k, c[k] === undefined ? [] : [c[k]]);
  for (const k of ['Hostname', 'Domainname'] as const) {
    const h = c[k];
    if (h !== undefined && (h.length > 255 || CONTROL.test(h) || /[\s/]/.test(h)))
      throw invalidArgument(`invalid ${k.toLowerCase()} format: ${JSON.stringify(h)}`);
  }
  if (c.Hostname && c.Hostname.length > 64)
    throw invalidArgument(`invalid hostname format: ${c.Hostname} is longer than 64 characters`);
  validateHealthcheck(c.Healthcheck);
  for (const key of Object.keys(c.ExposedPorts ?? {})) checkPortKey(key);
  for (const dst of Object.keys(c.Volumes ?? {})) {
    if (!dst.startsWith('/') || dst.includes('\0'))
      throw invalidArgument(
        `invalid mount config for type "volume": invalid mount path: '${dst}' mount path must be absolute`,
      );
  }
  return c;
}

/** A decoded container Config (POST /commit's body; the top level of a create body). */
export function parseContainerConfig(v: unknown): ContainerConfig {
  return validateConfig(decodeGo(go.struct('container.Config', schema.configFields), v ?? {}) as ContainerConfig);
}

/**
 * dockerd's create- and update-time checks of resources that need no host facts
 * (daemon/daemon_unix.go verifyPlatformContainerResources, oci_linux.go getCPUResources), plus the
 * kernel's own bounds where dockerd would store a value the kernel refuses at start.
 */
export function validateResources(r: Partial<HostConfig> & JsonObject, update = false): void {
  const n = (k: string) => (typeof r[k] === 'number' ? (r[k] as number) : 0);
  const mem = n('Memory');
  const swap = n('MemorySwap');
  const reservation = n('MemoryReservation');
  if (mem !== 0 && mem < MIN_MEMORY) throw invalidArgument('Minimum memory limit allowed is 6MB');
  if (swap < -1)
    throw invalidArgument(
      `Invalid value ${swap} for memory swap: use -1 for unlimited swap, or a limit at least as large as the memory limit`,
    );
  if (mem > 0 && swap > 0 && swap < mem)
    throw invalidArgument('Minimum memoryswap limit should be larger than memory limit, see usage');
  if (mem === 0 && swap > 0 && !update)
    throw invalidArgument('You should always set the Memory limit when using Memoryswap limit, see usage');
  const swappiness = r['MemorySwappiness'];
  if (typeof swappiness === 'number' && swappiness !== -1 && (swappiness < 0 || swappiness > 100))
    throw invalidArgument(`Invalid value: ${swappiness}, valid memory swappiness range is 0-100`);
  if (reservation !== 0 && reservation < MIN_MEMORY) throw invalidArgument('Minimum memory reservation allowed is 6MB');
  if (mem > 0 && reservation > 0 && mem < reservation)
    throw invalidArgument('Minimum memory limit can not be less than memory reservation limit, see usage');
  const kmem = n('KernelMemory');
  if (kmem !== 0 && kmem < MIN_MEMORY) throw invalidArgument('Minimum kernel memory limit allowed is 6MB');
  if (n('CpuShares') < 0) throw invalidArgument('shares: invalid argument');
  const nano = n('NanoCpus');
  const period = n('CpuPeriod');
  const quota = n('CpuQuota');
  if (nano > 0 && period > 0) throw invalidArgument('Conflicting options: Nano CPUs and CPU Period cannot both be set');
  if (nano > 0 && quota > 0) throw invalidArgument('Conflicting options: Nano CPUs and CPU Quota cannot both be set');
  if (period !== 0 && (period < 1000 || period > 1_000_000))
    throw invalidArgument('CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)');
  if (quota > 0 && quota < 1000) throw invalidArgument('CPU cfs quota can not be less than 1ms (i.e. 1000)');
  if (quota > MAX_CFS_QUOTA)
    throw invalidArgument(`CPU cfs quota can not be larger than ${MAX_CFS_QUOTA} (the kernel's limit)`);
  // pids.max takes at most PID_MAX_LIMIT (4194304): a larger limit would fail at start
  if (n('PidsLimit') > PIDS_MAX)
    throw invalidArgument(
      `PIDs limit ${n('PidsLimit')} is larger than the kernel's maximum (${PIDS_MAX}); use 0 or -1 for unlimited`,
    );
  const weight = n('BlkioWeight');
  if (weight > 0 && (weight < 10 || weight > 1000)) throw invalidArgument('Range of blkio weight is from 10 to 1000');
  for (const d of (r['BlkioWeightDevice'] as Array<{ Path?: string; Weight?: number }> | undefined) ?? []) {
    if (!d.Path) throw invalidArgument('HostConfig.BlkioWeightDevice: each entry needs a Path');
    if ((d.Weight ?? 0) !== 0 && ((d.Weight ?? 0) < 10 || (d.Weight ?? 0) > 1000))
      throw invalidArgument(`invalid weight for device: ${d.Path}: Range of blkio weight is from 10 to 1000`);
  }
  for (const k of ['BlkioDeviceReadBps', 'BlkioDeviceWriteBps', 'BlkioDeviceReadIOps', 'BlkioDeviceWriteIOps']) {
    for (const d of (r[k] as Array<{ Path?: string }> | undefined) ?? [])
      if (!d.Path || d.Path.includes('\0'))
        throw invalidArgument(`HostConfig.${k}: each entry needs the Path of a block device`);
  }
  if (n('IOMaximumBandwidth') !== 0 || n('IOMaximumIOps') !== 0)
    throw invalidArgument('Invalid QoS settings: linux does not support Maximum IO Bandwidth or Maximum IO IOps');
  if (n('CpuCount') !== 0) throw invalidArgument('invalid QoS settings: linux does not support CPU count');
  if (n('CpuRealtimeRuntime') || n('CpuRealtimePeriod'))
    throw invalidArgument(
      'real-time CPU scheduling (--cpu-rt-runtime, --cpu-rt-period) is not supported: berthd gives its cgroup no real-time budget',
    );
  for (const d of (r['Devices'] as Array<{ PathOnHost?: string; CgroupPermissions?: string }> | undefined) ?? []) {
    if (!d.PathOnHost) throw invalidArgument('HostConfig.Devices: PathOnHost is required');
    if (d.CgroupPermissions && !/^[rwm]{1,3}$/.test(d.CgroupPermissions))
      throw invalidArgument(`invalid device cgroup permissions: ${d.CgroupPermissions}`);
  }
  for (const rule of (r['DeviceCgroupRules'] as string[] | undefined) ?? []) {
    if (!/^[acb] (\d+|\*):(\d+|\*) [rwm]{1,3}$/.test(rule))
      throw invalidArgument(`invalid device cgroup rule format: '${rule}'`);
  }
  const requests = (r['DeviceRequests'] as Array<{ Driver?: string; Capabilities?: string[][] }> | undefined) ?? [];
  if (requests.length)
    throw invalidArgument(
      `could not select device driver "${requests[0]!.Driver ?? ''}" with capabilities: ${JSON.stringify(requests[0]!.Capabilities ?? [])}`,
    );
  const ulimits = (r['Ulimits'] as Array<{ Name?: string; Soft?: number; Hard?: number }> | undefined) ?? [];
  ulimits.forEach((u, i) => {
    if (!u.Name) throw invalidArgument(`invalid ulimit at index ${i}: a Name is required`);
    if ((u.Soft ?? 0) > (u.Hard ?? 0))
      throw invalidArgument(`invalid ulimit ${u.Name}: soft limit ${u.Soft ?? 0} is above hard limit ${u.Hard ?? 0}`);
  });
  if (typeof r['CpusetCpus'] === 'string' && r['CpusetCpus'] && !/^\d+(-\d+)?(,\d+(-\d+)?)*$/.test(r['CpusetCpus']))
    throw invalidArgument(`Invalid value ${r['CpusetCpus']} for cpuset cpus`);
  if (typeof r['CpusetMems'] === 'string' && r['CpusetMems'] && !/^\d+(-\d+)?(,\d+(-\d+)?)*$/.test(r['CpusetMems']))
    throw invalidArgument(`Invalid value ${r['CpusetMems']} for cpuset mems`);
}

const NS_SYSCTLS = [
  'kernel.msgmax',
  'kernel.msgmnb',
  'kernel.msgmni',
  'kernel.sem',
  'kernel.shmall',
  'kernel.shmmax',
  'kernel.shmmni',
  'kernel.shm_rmid_forced',
];

const MODES: Array<[string, string, readonly string[], boolean]> = [
  ['PidMode', 'PID', ['', 'host'], true],
  ['IpcMode', 'IPC', ['', 'private', 'shareable', 'host', 'none'], true],
  ['UTSMode', 'UTS', ['', 'host'], false],
  ['CgroupnsMode', 'cgroup namespace', ['', 'host', 'private'], false],
];

/** dockerd's create-time checks of a HostConfig that need no host facts. */
function validateHostConfig(o: HostConfig): HostConfig {
  for (const [k, name, plain, shareable] of MODES) {
    const m = (o[k] as string | undefined) ?? '';
    if (!plain.includes(m) && !(shareable && /^container:.+/.test(m)))
      throw invalidArgument(`invalid ${name} mode: ${m}`);
  }
  const iso = (o['Isolation'] as string | undefined) ?? '';
  if (iso !== '' && iso !== 'default')
    throw invalidArgument(`Invalid isolation: "${iso}" - linux only supports 'default'`);
  const rp = parseRestartPolicy(o['RestartPolicy']);
  if (rp) o.RestartPolicy = rp;
  validateResources(o);
  if ((o.ShmSize ?? 0) < 0) throw invalidArgument('SHM size can not be less than 0');
  const oom = o.OomScoreAdj ?? 0;
  if (oom < -1000 || oom > 1000)
    throw invalidArgument(`Invalid value ${oom}, range for oom score adj is [-1000, 1000]`);
  // berth's snapshots are overlayfs on the host's filesystem: no per-container size quota
  if (o.StorageOpt && Object.keys(o.StorageOpt).length)
    throw invalidArgument("--storage-opt is supported only for overlay over xfs with 'pquota' mount option");
  for (const [key, list] of Object.entries(o.PortBindings ?? {})) {
    checkPortKey(key);
    for (const b of list ?? []) {
      const m = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(b.HostPort);
      if (
        b.HostPort &&
        (!m || Number(m[1]) > 65535 || Number(m[2] ?? m[1]) > 65535 || Number(m[2] ?? m[1]) < Number(m[1]))
      )
        throw invalidArgument(`invalid port specification: "${b.HostPort}"`);
      if (b.HostIp && isIP(b.HostIp) === 0) throw invalidArgument(`invalid IP address: ${b.HostIp}`);
    }
  }
  for (const h of o.ExtraHosts ?? []) {
    // `name:ip` split at the first colon, as dockerd does (`name:::1` is an IPv6 entry; `[::1]` too)
    const i = h.indexOf(':');
    const name = h.slice(0, i);
    const ip = h.slice(i + 1).replace(/^\[(.*)\]$/, '$1');
    if (i <= 0 || !name || /\s/.test(name) || CONTROL.test(name) || (ip !== 'host-gateway' && isIP(ip) === 0))
      throw invalidArgument(`invalid IP address in add-host: ${JSON.stringify(h)}`);
  }
  for (const s of o.Dns ?? []) if (isIP(s) === 0) throw invalidArgument(`${s} is not an ip address`);
  for (const k of ['DnsSearch', 'DnsOptions'] as const)
    for (const s of o[k] ?? [])
      if (!s || /\s/.test(s) || CONTROL.test(s))
        throw invalidArgument(
          `invalid ${k === 'DnsSearch' ? 'DNS search domain' : 'DNS option'}: ${JSON.stringify(s)}`,
        );
  for (const [dst] of Object.entries((o['Tmpfs'] as Record<string, string> | undefined) ?? {})) {
    if (!dst.startsWith('/') || dst.includes('\0'))
      throw invalidArgument(
        `invalid mount path: '${dst}' mount path must be absolute`, // dockerd's words for HostConfig.Tmpfs
      );
  }
  for (const k of ['Binds', 'VolumesFrom', 'Links', 'GroupAdd', 'SecurityOpt', 'CapAdd', 'CapDrop'] as const)
    checkStrings(`HostConfig.${k} entry`, o[k] as string[] | undefined);
  for (const [k, v] of Object.entries(o.Sysctls ?? {})) {
    // the namespaced sysctls (the docker CLI's opts.ValidateSysctl): others would change the host or fail at start
    const namespaced = NS_SYSCTLS.includes(k) || /^(fs\.mqueue|net)\.[A-Za-z0-9_.\-/]+$/.test(k);
    if (!namespaced || k.split(/[./]/).some((p) => p === '' || p === '..') || CONTROL.test(v))
      throw invalidArgument(`sysctl '${k}' is not allowed`);
    if (k.startsWith('net.') && o.NetworkMode === 'host')
      throw invalidArgument(`sysctl '${k}' is not allowed in host network mode`);
    if (k.startsWith('kernel.') && o.IpcMode === 'host')
      throw invalidArgument(`sysctl '${k}' is not allowed in host IPC mode`);
  }
  return o;
}

export interface EndpointSettings {
  Aliases?: string[] | null;
  IPAMConfig?: { IPv4Address?: string; IPv6Address?: string; LinkLocalIPs?: string[] | null } | null;
  MacAddress?: string;
  Links?: string[] | null;
  DriverOpts?: Record<string, string> | null;
}

export function validateEndpoint(e: EndpointSettings, what: string): EndpointSettings {
  const ip = e.IPAMConfig?.IPv4Address;
  if (ip && isIP(ip) !== 4) throw invalidArgument(`${what}: invalid IPv4 address: ${ip}`);
  const ip6 = e.IPAMConfig?.IPv6Address;
  if (ip6 && isIP(ip6) !== 6) throw invalidArgument(`${what}: invalid IPv6 address: ${ip6}`);
  for (const a of e.IPAMConfig?.LinkLocalIPs ?? [])
    if (!isIP(a)) throw invalidArgument(`${what}: invalid link-local IP address: ${a}`);
  for (const l of e.Links ?? [])
    if (!/^\/?[a-zA-Z0-9][a-zA-Z0-9_.-]*(:[a-zA-Z0-9][a-zA-Z0-9_.-]*)?$/.test(l))
      throw invalidArgument(`${what}: invalid link ${JSON.stringify(l)}`);
  for (const [k, v] of Object.entries(e.DriverOpts ?? {}))
    if (CONTROL.test(k) || CONTROL.test(v))
      throw invalidArgument(`${what}: invalid driver option ${JSON.stringify(k)}`);
  if (e.MacAddress && !/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/i.test(e.MacAddress))
    throw invalidArgument(`invalid MAC address: ${e.MacAddress}`);
  for (const a of e.Aliases ?? [])
    if (!a || /\s/.test(a) || CONTROL.test(a)) throw invalidArgument(`${what}: invalid alias ${JSON.stringify(a)}`);
  return e;
}

/** A network's endpoint settings (`EndpointConfig` of network connect, an EndpointsConfig entry). */
export function parseEndpointSettings(v: unknown, what: string): EndpointSettings {
  if (v === null || v === undefined) return {};
  return validateEndpoint(decodeGo(schema.endpointSettingsType, v) as EndpointSettings, what);
}

/**
 * dockerd's ContainerConfigWrapper.getHostConfig: the nested `HostConfig` when there is one (with
 * Memory, MemorySwap, CpuShares, CpusetCpus and VolumeDriver taken from the top level where it
 * leaves them unset), else the HostConfig fields given at the top level (`{"Image": ..., "Binds": [...]}`).
 */
function hostConfigOfWrapper(nested: Obj | undefined, top: Obj): Obj | undefined {
  const inline = Object.fromEntries(Object.entries(top).filter(([k]) => Object.hasOwn(schema.hostConfigFields, k)));
  if (!nested) return Object.keys(inline).length ? inline : undefined;
  const merged: Obj = { ...nested };
  for (const k of ['Memory', 'MemorySwap', 'CpuShares', 'CpusetCpus', 'VolumeDriver'])
    if (inline[k] && !merged[k]) merged[k] = inline[k];
  return merged;
}

/** POST /containers/create body: Config fields at top level plus HostConfig and NetworkingConfig. */
export function parseCreateBody(v: unknown): CreateBody {
  const o = decodeGo(schema.createRequest, v ?? {}) as Obj;
  const { HostConfig: nested, NetworkingConfig: nc, ...rest } = o;
  const hc = hostConfigOfWrapper(nested as Obj | undefined, rest);
  const config = Object.fromEntries(Object.entries(rest).filter(([k]) => Object.hasOwn(schema.configFields, k)));
  const endpoints: Record<string, EndpointSettings> = {};
  const eps = (nc as { EndpointsConfig?: Record<string, EndpointSettings> } | undefined)?.EndpointsConfig ?? {};
  for (const [k, e] of Object.entries(eps)) endpoints[k] = validateEndpoint(e, `NetworkingConfig.EndpointsConfig.${k}`);
  return {
    config: validateConfig(config as ContainerConfig),
    hostConfig: validateHostConfig((hc ?? {}) as HostConfig),
    endpoints,
  };
}

/** POST /containers/{id}/update body: resources and a restart policy (`Name: ""` = unchanged). */
export function parseUpdateBody(v: unknown): { resources: Partial<HostConfig>; restartPolicy?: RestartPolicy } {
  const { RestartPolicy: rp, ...resources } = decodeGo(schema.updateConfig, v ?? {}) as Obj;
  validateResources(resources, true);
  const policy = parseRestartPolicy(rp);
  return {
    resources: resources as Partial<HostConfig>,
    ...(policy && policy.Name !== '' ? { restartPolicy: policy } : {}),
  };
}
