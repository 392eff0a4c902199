/**
 * Engine API wire types for container creation (POST /containers/create), parsed from `unknown`.
 * The parsed objects keep every field the client sent (inspect echoes them back), typed for the
 * fields berth acts on. Field names are Docker's.
 */
import { invalidArgument } from '../base/errors.js';
import {
  asObject,
  isObject,
  optBool,
  optNumber,
  optString,
  optStringArray,
  optStringMap,
  type JsonObject,
} from '../base/json.js';
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

const RESTART_NAMES = ['', 'no', 'always', 'unless-stopped', 'on-failure'] as const;

export function parseRestartPolicy(v: unknown): RestartPolicy | undefined {
  if (v === undefined || v === null) return undefined;
  const o = asObject(v, 'HostConfig.RestartPolicy');
  const name = optString(o, 'Name', 'RestartPolicy') ?? '';
  if (!(RESTART_NAMES as readonly string[]).includes(name))
    throw invalidArgument(`invalid restart policy: unknown policy '${name}'`);
  const max = optNumber(o, 'MaximumRetryCount', 'RestartPolicy') ?? 0;
  if (max < 0 || !Number.isInteger(max)) throw invalidArgument('invalid restart policy: maximum retry count must be a non-negative integer');
  if (max > 0 && name !== 'on-failure')
    throw invalidArgument(`invalid restart policy: maximum retry count can only be used with 'on-failure'`);
  return { Name: name as RestartPolicy['Name'], MaximumRetryCount: max };
}

function parseUlimits(v: unknown): Ulimit[] | undefined {
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v)) throw invalidArgument('HostConfig.Ulimits: expected an array');
  return v.map((u, i) => {
    const o = asObject(u, `HostConfig.Ulimits[${i}]`);
    const Name = optString(o, 'Name', 'Ulimit');
    const Soft = optNumber(o, 'Soft', 'Ulimit');
    const Hard = optNumber(o, 'Hard', 'Ulimit');
    if (!Name || Soft === undefined || Hard === undefined) throw invalidArgument(`invalid ulimit at index ${i}`);
    if (Soft > Hard) throw invalidArgument(`invalid ulimit ${Name}: soft limit ${Soft} is above hard limit ${Hard}`);
    return { Name, Soft, Hard };
  });
}

const NS_PER_MS = 1_000_000;

/** Docker's checks on a Healthcheck at create (daemon/container.go's translateHealthcheck errors). */
function validateHealthcheck(h: HealthConfig | undefined): void {
  if (!h) return;
  if (h.Test !== undefined && h.Test !== null && (!Array.isArray(h.Test) || h.Test.some((t) => typeof t !== 'string')))
    throw invalidArgument('Healthcheck.Test: expected an array of strings');
  const test = h.Test ?? [];
  if (test.length && !['NONE', 'CMD', 'CMD-SHELL'].includes(test[0]!)) throw invalidArgument(`unknown healthcheck type: ${test[0]}`);
  if ((test[0] === 'CMD' || test[0] === 'CMD-SHELL') && test.length < 2) throw invalidArgument('Healthcheck.Test: no command given');
  for (const k of ['Interval', 'Timeout', 'StartPeriod', 'StartInterval'] as const) {
    const v = h[k];
    if (v === undefined || v === null) continue;
    if (typeof v !== 'number' || !Number.isFinite(v)) throw invalidArgument(`Healthcheck.${k}: expected a number of nanoseconds`);
    if (v !== 0 && v < NS_PER_MS) throw invalidArgument(`${k} in Healthcheck cannot be less than 1ms`);
  }
  if (h.Retries !== undefined && h.Retries !== null && (typeof h.Retries !== 'number' || h.Retries < 0)) throw invalidArgument('Retries in Healthcheck cannot be negative');
}

/** Validates the fields of a container Config berth acts on; returns the object itself (unknowns kept). */
export function parseContainerConfig(v: unknown): ContainerConfig {
  const o = asObject(v ?? {}, 'Config');
  const what = 'Config';
  for (const k of ['Hostname', 'Domainname', 'User', 'Image', 'WorkingDir', 'StopSignal']) optString(o, k, what);
  for (const k of ['AttachStdin', 'AttachStdout', 'AttachStderr', 'Tty', 'OpenStdin', 'StdinOnce']) optBool(o, k, what);
  for (const k of ['Env', 'Cmd', 'Entrypoint']) {
    const arr = optStringArray(o, k, what);
    if (arr !== undefined) o[k] = arr;
  }
  optStringMap(o, 'Labels', what);
  optNumber(o, 'StopTimeout', what);
  if (o['Healthcheck'] !== undefined && o['Healthcheck'] !== null) validateHealthcheck(asObject(o['Healthcheck'], 'Config.Healthcheck') as HealthConfig);
  for (const k of ['ExposedPorts', 'Volumes']) if (o[k] !== undefined && o[k] !== null && !isObject(o[k])) throw invalidArgument(`${what}.${k}: expected an object`);
  return o as ContainerConfig;
}

export function parseHostConfig(v: unknown): HostConfig {
  const o: JsonObject = asObject(v ?? {}, 'HostConfig');
  const what = 'HostConfig';
  for (const k of ['NetworkMode', 'Runtime', 'CpusetCpus', 'PidMode', 'IpcMode', 'UTSMode', 'CgroupnsMode']) optString(o, k, what);
  const modes: Array<[string, string, readonly string[]]> = [['PidMode', 'PID', ['', 'host']], ['IpcMode', 'IPC', ['', 'private', 'shareable', 'host', 'none']], ['UTSMode', 'UTS', ['', 'host']], ['CgroupnsMode', 'cgroup namespace', ['', 'host', 'private']]];
  for (const [k, name, plain] of modes) {
    const m = (o[k] as string | undefined) ?? '';
    if (!plain.includes(m) && !(k === 'PidMode' || k === 'IpcMode' ? /^container:.+/.test(m) : false)) throw invalidArgument(`invalid ${name} mode: ${m}`);
  }
  optStringArray(o, 'GroupAdd', what);
  optStringArray(o, 'Links', what);
  if (o['Devices'] !== undefined && o['Devices'] !== null) {
    if (!Array.isArray(o['Devices'])) throw invalidArgument('HostConfig.Devices: expected an array');
    for (const d of o['Devices'] as unknown[]) {
      const dev = asObject(d, 'HostConfig.Devices[]');
      if (!optString(dev, 'PathOnHost', 'Device')) throw invalidArgument('HostConfig.Devices: PathOnHost is required');
      const perms = optString(dev, 'CgroupPermissions', 'Device');
      if (perms && !/^[rwm]{1,3}$/.test(perms)) throw invalidArgument(`invalid device cgroup permissions: ${perms}`);
    }
  }
  for (const k of ['AutoRemove', 'Privileged', 'ReadonlyRootfs']) optBool(o, k, what);
  if (o['OomKillDisable'] !== null) optBool(o, 'OomKillDisable', what);
  for (const k of ['Memory', 'MemorySwap', 'MemoryReservation', 'NanoCpus', 'CpuShares', 'CpuPeriod', 'CpuQuota', 'PidsLimit', 'ShmSize', 'OomScoreAdj'])
    optNumber(o, k, what);
  for (const k of ['Binds', 'CapAdd', 'CapDrop', 'SecurityOpt']) optStringArray(o, k, what);
  if (o['Init'] !== undefined && o['Init'] !== null) optBool(o, 'Init', what);
  const rp = parseRestartPolicy(o['RestartPolicy']);
  if (rp) o['RestartPolicy'] = rp;
  const ul = parseUlimits(o['Ulimits']);
  if (ul) o['Ulimits'] = ul;
  optStringMap(o, 'Sysctls', what);
  for (const k of ['ExtraHosts', 'Dns', 'DnsSearch', 'DnsOptions']) {
    const l = o[k];
    if (l !== undefined && l !== null && (!Array.isArray(l) || l.some((x) => typeof x !== 'string'))) throw invalidArgument(`HostConfig.${k}: expected an array of strings`);
  }
  if (o['PortBindings'] !== undefined && o['PortBindings'] !== null && !isObject(o['PortBindings']))
    throw invalidArgument('HostConfig.PortBindings: expected an object');
  const mem = o['Memory'];
  if (typeof mem === 'number' && mem !== 0 && mem < 6 * 1024 * 1024)
    throw invalidArgument('Minimum memory limit allowed is 6MB');
  for (const k of ['MemorySwappiness', 'BlkioWeight', 'CpuRealtimeRuntime', 'CpuRealtimePeriod']) if (o[k] !== null) optNumber(o, k, what);
  optString(o, 'CpusetMems', what);
  const swappiness = o['MemorySwappiness'];
  if (typeof swappiness === 'number' && swappiness !== -1 && (swappiness < 0 || swappiness > 100)) throw invalidArgument(`Invalid value: ${swappiness}, valid memory swappiness range is 0-100`);
  const weight = o['BlkioWeight'];
  if (typeof weight === 'number' && weight !== 0 && (weight < 10 || weight > 1000)) throw invalidArgument('Range of blkio weight is from 10 to 1000');
  for (const k of ['BlkioDeviceReadBps', 'BlkioDeviceWriteBps', 'BlkioDeviceReadIOps', 'BlkioDeviceWriteIOps']) {
    const l = o[k];
    if (l === undefined || l === null) continue;
    if (!Array.isArray(l)) throw invalidArgument(`HostConfig.${k}: expected an array`);
    for (const t of l as unknown[]) {
      const d = asObject(t, `HostConfig.${k}[]`);
      if (!optString(d, 'Path', k) || typeof d['Rate'] !== 'number' || d['Rate'] < 0) throw invalidArgument(`HostConfig.${k}: each entry needs a Path and a Rate`);
    }
  }
  // berth's snapshots are overlayfs on the host's filesystem: no per-container size quota
  if (isObject(o['StorageOpt']) && Object.keys(o['StorageOpt']).length) throw invalidArgument("--storage-opt is supported only for overlay over xfs with 'pquota' mount option");
  if (o['CpuRealtimeRuntime'] || o['CpuRealtimePeriod']) throw invalidArgument('real-time CPU scheduling (--cpu-rt-runtime, --cpu-rt-period) is not supported: berthd gives its cgroup no real-time budget');
  const oom = o['OomScoreAdj'];
  if (typeof oom === 'number' && (oom < -1000 || oom > 1000)) throw invalidArgument(`Invalid value ${oom}, range for oom score adj is [-1000, 1000]`);
  const nano = o['NanoCpus'];
  if (typeof nano === 'number' && nano < 0) throw invalidArgument('Range of CPUs is from 0.01 to the number of CPUs available');
  return o as HostConfig;
}

export interface EndpointSettings {
  Aliases?: string[] | null;
  IPAMConfig?: { IPv4Address?: string } | null;
  MacAddress?: string;
}

/** NetworkingConfig.EndpointsConfig: network name or id -> endpoint settings. */
export function parseEndpointsConfig(v: unknown): Record<string, EndpointSettings> {
  if (v === undefined || v === null) return {};
  const o = asObject(v, 'NetworkingConfig');
  const eps = o['EndpointsConfig'];
  if (eps === undefined || eps === null) return {};
  const out: Record<string, EndpointSettings> = {};
  for (const [k, e] of Object.entries(asObject(eps, 'NetworkingConfig.EndpointsConfig'))) out[k] = parseEndpointSettings(e, `NetworkingConfig.EndpointsConfig.${k}`);
  return out;
}

export function parseEndpointSettings(v: unknown, what: string): EndpointSettings {
  if (v === null || v === undefined) return {};
  const e = asObject(v, what);
  const aliases = e['Aliases'];
  if (aliases !== undefined && aliases !== null && (!Array.isArray(aliases) || aliases.some((a) => typeof a !== 'string'))) throw invalidArgument(`${what}.Aliases: expected an array of strings`);
  const ipam = e['IPAMConfig'];
  if (ipam !== undefined && ipam !== null && !isObject(ipam)) throw invalidArgument(`${what}.IPAMConfig: expected an object`);
  return e as EndpointSettings;
}

/** POST /containers/create body: Config fields at top level plus HostConfig and NetworkingConfig. */
export function parseCreateBody(v: unknown): CreateBody {
  const o = asObject(v ?? {}, 'body');
  const { HostConfig: hc, NetworkingConfig: nc, ...config } = o;
  return { config: parseContainerConfig(config), hostConfig: parseHostConfig(hc), endpoints: parseEndpointsConfig(nc) };
}
