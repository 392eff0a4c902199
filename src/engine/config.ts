/**
 * Functions from (client config, image config) to what a container runs with; pure but for a
 * stat of the block devices `--device-{read,write}-*` name. Rules follow dockerd's
 * daemon/create.go and container merge semantics.
 */
import { readFileSync, statSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { invalidArgument } from '../base/errors.js';
import { devNumbers } from '../base/fs.js';
import type { HealthConfig, ImageRuntimeConfig } from '../spec/image.js';
import { CONTROL, validateResources, type ContainerConfig, type HostConfig } from '../spec/engine-api.js';
import type { HostInfo, Resources } from '../runtime/types.js';
import { checkUnified, MASKED_PATHS, READONLY_PATHS } from '../runtime/spec.js';

function envKey(e: string): string {
  const i = e.indexOf('=');
  return i < 0 ? e : e.slice(0, i);
}

/** Image env first, client env overrides by key (order kept), as docker does. */
export function mergeEnv(image: readonly string[], client: readonly string[]): string[] {
  const out = [...image];
  for (const e of client) {
    const k = envKey(e);
    const at = out.findIndex((x) => envKey(x) === k);
    if (at >= 0) out[at] = e;
    else out.push(e);
  }
  return out;
}

/**
 * A container's Env as dockerd merges it (runconfig.Merge): the client's entries in its order,
 * then the image's whose names it does not set (dockerd 20.10: ["A=1", "PATH=..."]).
 */
export function clientEnvFirst(image: readonly string[], client: readonly string[]): string[] {
  if (!client.length) return [...image];
  const keys = new Set(client.map(envKey));
  return [...client, ...image.filter((e) => !keys.has(envKey(e)))];
}

/** The config inspect shows: the client's config completed from the image's. */
export function mergeConfig(
  client: ContainerConfig,
  image: ImageRuntimeConfig | undefined,
  imageRef: string,
): ContainerConfig {
  const img = image ?? {};
  const out: ContainerConfig = { ...client, Image: imageRef };
  out.Env = clientEnvFirst(img.Env ?? [], client.Env ?? []);
  // `--entrypoint ''` arrives as [""]: a reset of the image's entrypoint, like []
  if (client.Entrypoint?.length === 1 && client.Entrypoint[0] === '') client = { ...client, Entrypoint: [] };
  const clientEntrypoint = client.Entrypoint && client.Entrypoint.length > 0 ? client.Entrypoint : undefined;
  const clientCmd = client.Cmd && client.Cmd.length > 0 ? client.Cmd : undefined;
  if (clientEntrypoint) {
    // A new entrypoint drops the image's Cmd (docker run --entrypoint resets CMD).
    out.Entrypoint = clientEntrypoint;
    out.Cmd = clientCmd ?? null;
  } else {
    out.Entrypoint =
      client.Entrypoint && client.Entrypoint.length === 0 && Array.isArray(client.Entrypoint)
        ? null
        : (img.Entrypoint ?? null);
    out.Cmd = clientCmd ?? img.Cmd ?? null;
  }
  out.WorkingDir = client.WorkingDir || img.WorkingDir || '';
  out.User = client.User ?? img.User ?? '';
  out.Labels = { ...(img.Labels ?? {}), ...(client.Labels ?? {}) };
  if (img.ExposedPorts || client.ExposedPorts)
    out.ExposedPorts = { ...(img.ExposedPorts ?? {}), ...(client.ExposedPorts ?? {}) };
  // none at all rather than {} (inspect shows dockerd's null then)
  const volumes = { ...(img.Volumes ?? {}), ...(client.Volumes ?? {}) };
  if (Object.keys(volumes).length) out.Volumes = volumes;
  else delete out.Volumes;
  if (!client.StopSignal && img.StopSignal) out.StopSignal = img.StopSignal;
  const health = mergeHealthcheck(client.Healthcheck, img.Healthcheck);
  if (health) out.Healthcheck = health;
  out.Tty = client.Tty ?? false;
  out.OpenStdin = client.OpenStdin ?? false;
  out.StdinOnce = client.StdinOnce ?? false;
  out.AttachStdin = client.AttachStdin ?? false;
  out.AttachStdout = client.AttachStdout ?? false;
  out.AttachStderr = client.AttachStderr ?? false;
  out.Hostname = client.Hostname ?? '';
  out.Domainname = client.Domainname ?? '';
  return out;
}

/** The container's Healthcheck over the image's, field by field (dockerd's merge in daemon/commit.go). */
export function mergeHealthcheck(
  client: HealthConfig | undefined,
  image: HealthConfig | undefined,
): HealthConfig | undefined {
  if (!client) return image;
  if (!image) return client;
  const out: HealthConfig = { ...client };
  if (!client.Test?.length && image.Test) out.Test = image.Test;
  for (const k of ['Interval', 'Timeout', 'StartPeriod', 'StartInterval', 'Retries'] as const)
    if (!client[k] && image[k] !== undefined) out[k] = image[k];
  return out;
}

/** Path and Args as inspect reports them. */
export function commandOf(cfg: ContainerConfig): { path: string; args: string[] } {
  const argv = [...(cfg.Entrypoint ?? []), ...(cfg.Cmd ?? [])];
  const path = argv[0];
  if (path === undefined || path === '') throw invalidArgument('No command specified');
  return { path, args: argv.slice(1) };
}

const SIGNALS: Record<string, number> = {
  HUP: 1,
  INT: 2,
  QUIT: 3,
  ILL: 4,
  TRAP: 5,
  ABRT: 6,
  IOT: 6,
  BUS: 7,
  FPE: 8,
  KILL: 9,
  USR1: 10,
  SEGV: 11,
  USR2: 12,
  PIPE: 13,
  ALRM: 14,
  TERM: 15,
  STKFLT: 16,
  CHLD: 17,
  CONT: 18,
  STOP: 19,
  TSTP: 20,
  TTIN: 21,
  TTOU: 22,
  URG: 23,
  XCPU: 24,
  XFSZ: 25,
  VTALRM: 26,
  PROF: 27,
  WINCH: 28,
  IO: 29,
  POLL: 29,
  PWR: 30,
  SYS: 31,
};

/** `SIGTERM`, `TERM`, `term`, `15`, `SIGRTMIN+3` -> signal number; InvalidArgument otherwise. */
export function parseSignal(s: string): number {
  const t = s.trim().toUpperCase();
  if (/^\d+$/.test(t)) {
    const n = Number(t);
    if (n >= 1 && n <= 64) return n;
  } else {
    const name = t.startsWith('SIG') ? t.slice(3) : t;
    const rt = /^RTMIN(?:\+(\d+))?$/.exec(name);
    if (rt && 34 + Number(rt[1] ?? 0) <= 64) return 34 + Number(rt[1] ?? 0);
    const rtmax = /^RTMAX(?:-(\d+))?$/.exec(name);
    if (rtmax && 64 - Number(rtmax[1] ?? 0) >= 34) return 64 - Number(rtmax[1] ?? 0);
    const n = SIGNALS[name];
    if (n !== undefined) return n;
  }
  throw invalidArgument(`Invalid signal: ${s}`);
}

/** A cpuset list (`0-2,4`) as the set of numbers it names; undefined when it is not one. */
function cpuset(list: string): Set<number> | undefined {
  const out = new Set<number>();
  for (const part of list.split(',')) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part.trim());
    if (!m) return undefined;
    const lo = Number(m[1]);
    const hi = Number(m[2] ?? m[1]);
    if (hi < lo || hi - lo > 4096) return undefined;
    for (let i = lo; i <= hi; i++) out.add(i);
  }
  return out;
}

function onlineSet(file: string, fallback: string): { text: string; set: Set<number> } {
  let text = fallback;
  try {
    text = readFileSync(file, 'utf8').trim() || fallback;
  } catch {
    // no sysfs entry: the fallback
  }
  return { text, set: cpuset(text) ?? new Set([0]) };
}

/**
 * dockerd's resource checks at create and update (daemon/daemon_unix.go
 * verifyPlatformContainerResources): the host-free ones of spec/, then those that need this host's
 * CPUs, memory nodes and cgroup features. Refuses what the kernel would refuse at start; returns
 * dockerd's warnings for what it discards. `update` relaxes the rule that a swap limit needs a
 * memory limit (the container may have one already).
 */
export function checkResources(
  hc: HostConfig,
  host: Pick<HostInfo, 'blkioWeight' | 'cgroupVersion'>,
  update = false,
): string[] {
  validateResources(hc, update);
  const unified = unifiedOf(hc['Unified']);
  if (unified) checkUnified({ unified }, host.cgroupVersion);
  const warnings: string[] = [];
  const ncpu = availableParallelism();
  const nano = hc.NanoCpus ?? 0;
  if (nano < 0 || nano > ncpu * 1e9)
    throw invalidArgument(`Range of CPUs is from 0.01 to ${ncpu}.00, as there are only ${ncpu} CPUs available`);
  for (const [k, file, what, noun] of [
    ['CpusetCpus', '/sys/devices/system/cpu/online', 'cpus', 'CPUs'],
    ['CpusetMems', '/sys/devices/system/node/online', 'mems', 'memory nodes'],
  ] as const) {
    const want = hc[k];
    if (!want) continue;
    const set = cpuset(want);
    if (!set) throw invalidArgument(`Invalid value ${want} for cpuset ${what}`);
    const online = onlineSet(file, k === 'CpusetCpus' ? `0-${ncpu - 1}` : '0');
    if ([...set].some((c) => !online.set.has(c)))
      throw invalidArgument(`Requested ${noun} are not available - requested ${want}, available: ${online.text}`);
  }
  if (hc.BlkioWeight && !host.blkioWeight)
    warnings.push('Your kernel does not support Block I/O weight or the cgroup is not mounted. Weight discarded.');
  return warnings;
}

/**
 * crun applies the container's rlimits before it sets the container up, and needs ~30 open files
 * for that (more with more mounts): a lower `nofile` would be stored and then fail every start
 * with "Too many open files". runc applies them last, so it takes any.
 */
export const CRUN_MIN_NOFILE = 64;
export function checkUlimitsFor(hc: HostConfig, runtime: string): void {
  const nofile = (hc.Ulimits ?? []).find((u) => u.Name === 'nofile');
  if (runtime === 'crun' && nofile && nofile.Soft < CRUN_MIN_NOFILE)
    throw invalidArgument(
      `ulimit nofile=${nofile.Soft}:${nofile.Hard} is too low for the crun runtime to set the container up (it needs ${CRUN_MIN_NOFILE} open files; runc takes less)`,
    );
}

/** dockerd's default `--shm-size` (config.DefaultShmSize). */
export const DEFAULT_SHM_SIZE = 64 * 1024 * 1024;

/**
 * The HostConfig fields dockerd fills in at create (daemon/create.go, adaptContainerSettings), so
 * inspect shows what the container runs with. What dockerd 20.10 answered for a bare create:
 * IpcMode "private", ShmSize 67108864, CgroupnsMode "host" on cgroup v1 ("private" on v2),
 * PidsLimit null for 0 and -1, MemorySwappiness null for -1, and MaskedPaths/ReadonlyPaths its
 * defaults unless the client sent a list (`[]` is kept: `--security-opt systempaths=unconfined`)
 * or the container is privileged (then null).
 */
export function fillHostDefaults(hc: HostConfig, cgroupVersion: 1 | 2): void {
  if (!hc.IpcMode) hc.IpcMode = 'private';
  if (!hc.ShmSize) hc.ShmSize = DEFAULT_SHM_SIZE;
  if (!hc.CgroupnsMode) hc.CgroupnsMode = cgroupVersion === 2 ? 'private' : 'host';
  if (typeof hc.PidsLimit === 'number' && hc.PidsLimit <= 0) hc.PidsLimit = null;
  if (hc.MemorySwappiness === -1) hc.MemorySwappiness = null;
  for (const [k, def] of [
    ['MaskedPaths', MASKED_PATHS],
    ['ReadonlyPaths', READONLY_PATHS],
  ] as const) {
    const v = hc[k];
    if (v !== undefined && v !== null) {
      if (!Array.isArray(v) || !v.every((p) => typeof p === 'string'))
        throw invalidArgument(`HostConfig.${k}: expected an array of strings`);
    } else hc[k] = hc.Privileged ? null : [...def];
  }
}

/**
 * The paths the runtime masks and makes read-only: none when privileged, else the container's
 * (its HostConfig's, as filled at create; dockerd's defaults for a record made before that).
 */
export function systemPathsOf(hc: HostConfig): { masked: string[]; readonly: string[] } {
  if (hc.Privileged) return { masked: [], readonly: [] };
  const list = (v: unknown, def: readonly string[]) =>
    Array.isArray(v) ? v.filter((p): p is string => typeof p === 'string') : [...def];
  return { masked: list(hc['MaskedPaths'], MASKED_PATHS), readonly: list(hc['ReadonlyPaths'], READONLY_PATHS) };
}

/** HostConfig resource fields -> runtime resources. */
export function resourcesOf(hc: HostConfig): Resources {
  const r: Resources = {};
  if (hc.Memory) r.memory = hc.Memory;
  if (hc.MemorySwap) r.memorySwap = hc.MemorySwap;
  if (hc.MemoryReservation) r.memoryReservation = hc.MemoryReservation;
  // the kernel's range of cpu.shares (MIN_SHARES..MAX_SHARES), clamped here as the kernel clamps on
  // cgroup v1, so that the weight derived from it on cgroup v2 is in range too
  if (hc.CpuShares) r.cpuShares = Math.min(Math.max(hc.CpuShares, 2), 262_144);
  if (hc.NanoCpus) {
    if (hc.CpuQuota || hc.CpuPeriod)
      throw invalidArgument('Conflicting options: Nano CPUs and CPU Period cannot both be set');
    r.cpuPeriod = 100_000;
    r.cpuQuota = Math.round((hc.NanoCpus * 100_000) / 1e9);
  } else {
    if (hc.CpuQuota) r.cpuQuota = hc.CpuQuota;
    if (hc.CpuPeriod) r.cpuPeriod = hc.CpuPeriod;
  }
  if (hc.CpusetCpus) r.cpusetCpus = hc.CpusetCpus;
  if (hc.PidsLimit !== undefined && hc.PidsLimit !== null && hc.PidsLimit !== 0) r.pidsLimit = hc.PidsLimit;
  if (typeof hc.MemorySwappiness === 'number' && hc.MemorySwappiness >= 0) r.memorySwappiness = hc.MemorySwappiness;
  if (hc.CpusetMems) r.cpusetMems = hc.CpusetMems;
  if (hc.BlkioWeight) r.blkioWeight = hc.BlkioWeight;
  const unified = unifiedOf(hc['Unified']);
  if (unified) r.unified = unified;
  const throttles = {
    readBps: hc.BlkioDeviceReadBps,
    writeBps: hc.BlkioDeviceWriteBps,
    readIops: hc.BlkioDeviceReadIOps,
    writeIops: hc.BlkioDeviceWriteIOps,
  };
  for (const [k, list] of Object.entries(throttles) as Array<
    [keyof NonNullable<Resources['throttle']>, HostConfig['BlkioDeviceReadBps']]
  >) {
    if (!list?.length) continue;
    r.throttle = { ...r.throttle, [k]: list.map((t) => ({ ...blockDevice(t.Path), rate: t.Rate })) };
  }
  return r;
}

/**
 * `HostConfig.Unified` (berth's, not Docker's: the CRI's LinuxContainerResources.unified lands
 * here): cgroup v2 interface file names and the values to write there. A name is a controller's
 * file (`memory.high`, `hugetlb.2MB.max`, `memory.oom.group`): no slash, no `..`, and not a
 * `cgroup.*` core file (cgroup.procs, cgroup.freeze, subtree_control belong to the runtime); a
 * value is one line. The kernel judges the values themselves when the runtime writes them.
 */
export function unifiedOf(v: unknown): Record<string, string> | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'object' || Array.isArray(v)) throw invalidArgument('Unified must be an object of strings');
  const out: Record<string, string> = {};
  for (const [k, val] of Object.entries(v)) {
    if (!/^[a-z][a-z0-9_]*(\.[A-Za-z0-9_]+)+$/.test(k) || k.startsWith('cgroup.'))
      throw invalidArgument(`unified resource ${JSON.stringify(k)} is not a cgroup v2 controller file name`);
    if (typeof val !== 'string' || CONTROL.test(val.replace(/\n$/, '')))
      throw invalidArgument(`unified resource ${k}: the value must be a one-line string`);
    out[k] = val;
  }
  return Object.keys(out).length ? out : undefined;
}

/** The numbers of the block device at `path` (`--device-read-bps /dev/sda:1mb`). */
function blockDevice(path: string): { major: number; minor: number } {
  let st;
  try {
    st = statSync(path);
  } catch {
    throw invalidArgument(`no such block device: ${path}`);
  }
  if (!st.isBlockDevice()) throw invalidArgument(`${path} is not a block device`);
  return devNumbers(st.rdev);
}

export interface SecurityOptions {
  noNewPrivileges: boolean;
  seccomp: 'default' | 'unconfined' | { profile: string };
  apparmorProfile?: string;
  selinuxLabel?: string;
}

/**
 * Parses `--security-opt` values. `seccomp=<file>` arrives from the docker CLI already read into
 * the profile's JSON text (the CLI reads the file), so a value starting with `{` is a profile.
 */
export function parseSecurityOpts(
  opts: readonly string[],
  host: { apparmor: boolean; selinux: boolean },
): SecurityOptions {
  const out: SecurityOptions = { noNewPrivileges: false, seccomp: 'default' };
  for (const raw of opts) {
    if (raw === 'no-new-privileges' || raw === 'no-new-privileges=true' || raw === 'no-new-privileges:true') {
      out.noNewPrivileges = true;
      continue;
    }
    if (raw === 'no-new-privileges=false' || raw === 'no-new-privileges:false') continue;
    const sep = raw.search(/[=:]/);
    if (sep < 0) throw invalidArgument(`Invalid --security-opt: ${JSON.stringify(raw)}`);
    const key = raw.slice(0, sep);
    const value = raw.slice(sep + 1);
    switch (key) {
      case 'seccomp':
        if (value === 'unconfined') out.seccomp = 'unconfined';
        else if (value === 'builtin' || value === '') out.seccomp = 'default';
        else if (value.trimStart().startsWith('{')) out.seccomp = { profile: value };
        else
          throw invalidArgument(
            `opening seccomp profile (${value}) failed: the profile must be sent as JSON text (the docker CLI reads the file)`,
          );
        break;
      case 'apparmor':
        if (!host.apparmor && value !== 'unconfined')
          throw invalidArgument(`AppArmor is not enabled on this host: cannot apply profile "${value}"`);
        if (value !== 'unconfined') out.apparmorProfile = value;
        break;
      case 'label':
        if (value === 'disable') break;
        if (!host.selinux) throw invalidArgument(`SELinux is not enabled on this host: cannot apply label "${value}"`);
        out.selinuxLabel = value;
        break;
      default:
        throw invalidArgument(`Invalid --security-opt: ${JSON.stringify(raw)}`);
    }
  }
  return out;
}

/**
 * HostConfig.LogConfig: berth keeps every container's output in its own log (conmon's k8s-file,
 * read back by `logs` like dockerd's json-file), so the drivers whose logs `docker logs` reads
 * are accepted and shown as asked, json-file by default (clients such as docker-py read logs
 * only from drivers they know); their rotation options are kept but not applied. Other drivers
 * (syslog, fluentd, ...) are refused.
 */
export function logConfigOf(v: unknown): { Type: string; Config: Record<string, string> } {
  const o = (v && typeof v === 'object' ? v : {}) as { Type?: unknown; Config?: unknown };
  const type = typeof o.Type === 'string' && o.Type ? o.Type : 'json-file';
  // `none` (f-ctr-run): nothing kept, `logs` refuses as dockerd's (container-stdio.ts), conmon writes to /dev/null
  if (!['json-file', 'local', 'k8s-file', 'none'].includes(type))
    throw invalidArgument(
      `logging driver ${type} is not supported: berth keeps logs with json-file, local or k8s-file`,
    );
  const config = o.Config && typeof o.Config === 'object' ? (o.Config as Record<string, string>) : {};
  return { Type: type, Config: config };
}
