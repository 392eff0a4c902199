/** ContainerRecord -> runtime SpecInput (what config.json is generated from). */
import { existsSync, statSync } from 'node:fs';
import { devNumbers } from '../base/fs.js';
import { join, isAbsolute } from 'node:path';
import { invalidArgument, notImplemented } from '../base/errors.js';
import type { SpecInput } from '../runtime/types.js';
import { DEFAULT_PATH } from '../runtime/spec.js';
import type { HostConfig } from '../spec/engine-api.js';
import type { ContainerRecord } from './record.js';
import { mergeEnv, parseSecurityOpts, resourcesOf, systemPathsOf } from './config.js';
import { specMounts } from './mounts.js';

export interface SpecContext {
  rootfs: string;
  containerDir: string;
  user: { uid: number; gid: number; additionalGids: number[] };
  host: { apparmor: boolean; selinux: boolean };
  /** the network namespace to join (`--network container:<id>`) */
  netns?: string | undefined;
  /** environment the engine adds under the container's own (legacy links' variables) */
  extraEnv?: string[];
  /** the PID and IPC namespaces to join (`--pid container:<id>`, `--ipc container:<id>`) */
  pidns?: string | undefined;
  ipcns?: string | undefined;
  /** volume name -> host path, for the container's volume mounts */
  volumeSources?: Map<string, string>;
  /** Extra environment the engine adds (PATH default, HOSTNAME, TERM). */
}

/** `-v /host:/ctr[:ro|rw|z|Z|rprivate|...]` for absolute host paths. Named volumes are issue #5's. */
/**
 * HostConfig.CgroupParent, checked (dockerd honours it; so does berth, with the cgroupfs driver):
 * a path of plain segments (letters, digits, `_.@:+=-`), relative or absolute, no `.` or `..`
 * segment, at most 1024 characters. Returns it clean (one leading `/`, no trailing or doubled `/`),
 * or '' for none.
 */
export function checkCgroupParent(parent: unknown): string {
  if (parent === undefined || parent === null || parent === '') return '';
  if (typeof parent !== 'string') throw invalidArgument('HostConfig.CgroupParent: a string');
  const segments = parent.split('/').filter(Boolean);
  if (
    parent.length > 1024 ||
    !segments.length ||
    segments.some((x) => x === '.' || x === '..' || !/^[A-Za-z0-9_.@:+=-]+$/.test(x))
  )
    throw invalidArgument(
      `invalid cgroup parent ${JSON.stringify(parent)}: a path of names (letters, digits, _.@:+=-), no '.' or '..'`,
    );
  return `/${segments.join('/')}`;
}

/** The container's cgroup path in every hierarchy: `<CgroupParent>/<id>`, or berth's own `/berth/<id>`. */
export function cgroupPathOf(parent: unknown, id: string): string {
  return `${checkCgroupParent(parent) || '/berth'}/${id}`;
}

/**
 * cgroupPathOf for a record: create checked its CgroupParent, but a record from before berth
 * honoured CgroupParent (accepted unchecked, ignored) keeps berth's default rather than failing.
 */
export function cgroupPathOrDefault(hc: HostConfig, id: string): string {
  try {
    return cgroupPathOf(hc.CgroupParent, id);
  } catch {
    return `/berth/${id}`;
  }
}

export function bindMounts(binds: readonly string[]): SpecInput['mounts'] {
  return binds.map((b) => {
    const parts = b.split(':');
    const [src, dst, opts = ''] = parts;
    if (!src || !dst || parts.length > 3) throw invalidArgument(`invalid volume specification: '${b}'`);
    if (!isAbsolute(dst)) throw invalidArgument(`invalid volume specification: '${b}': mount path must be absolute`);
    if (!isAbsolute(src))
      throw notImplemented(`named volumes are not supported yet: '${b}' (use an absolute host path)`);
    const options = ['rbind'];
    for (const o of opts.split(',').filter(Boolean)) {
      if (o === 'ro' || o === 'rw') options.push(o);
      else if (['private', 'rprivate', 'shared', 'rshared', 'slave', 'rslave'].includes(o)) options.push(o);
      else if (o === 'z' || o === 'Z' || o === 'nocopy') continue;
      else throw invalidArgument(`invalid mode: ${o}`);
    }
    if (!options.includes('ro') && !options.includes('rw')) options.push('rw');
    if (!options.some((o) => o.endsWith('private') || o.endsWith('shared') || o.endsWith('slave')))
      options.push('rprivate');
    return { destination: dst, type: 'bind', source: src, options };
  });
}

export function specInputOf(rec: ContainerRecord, ctx: SpecContext): SpecInput {
  const hc: HostConfig = rec.hostConfig;
  const cfg = rec.config;
  const sec = parseSecurityOpts(hc.SecurityOpt ?? [], ctx.host);
  const env = ctx.extraEnv?.length ? mergeEnv(ctx.extraEnv, cfg.Env ?? []) : [...(cfg.Env ?? [])];
  if (!env.some((e) => e.startsWith('PATH='))) env.unshift(DEFAULT_PATH);
  if (!env.some((e) => e.startsWith('HOSTNAME='))) env.push(`HOSTNAME=${cfg.Hostname}`);
  if (cfg.Tty && !env.some((e) => e.startsWith('TERM='))) env.push('TERM=xterm');
  const hostNet = hc.NetworkMode === 'host';
  const etc = (f: string, dst: string) => ({
    destination: dst,
    type: 'bind',
    source: join(ctx.containerDir, f),
    options: ['rbind', 'rprivate', hc.ReadonlyRootfs ? 'ro' : 'rw'],
  });
  const input: SpecInput = {
    id: rec.id,
    rootfs: ctx.rootfs,
    readonlyRootfs: hc.ReadonlyRootfs ?? false,
    args: [rec.path, ...rec.args],
    env,
    cwd: cfg.WorkingDir || '/',
    user: ctx.user,
    terminal: cfg.Tty ?? false,
    hostname: cfg.Hostname || rec.id.slice(0, 12),
    network: hostNet ? 'host' : ctx.netns ? { path: ctx.netns } : 'none',
    privileged: hc.Privileged ?? false,
    capAdd: hc.CapAdd ?? [],
    capDrop: hc.CapDrop ?? [],
    seccomp: sec.seccomp,
    noNewPrivileges: sec.noNewPrivileges,
    resources: resourcesOf(hc),
    ulimits: (hc.Ulimits ?? []).map((u) => ({ name: u.Name, soft: u.Soft, hard: u.Hard })),
    mounts: [
      etc('hostname', '/etc/hostname'),
      etc('hosts', '/etc/hosts'),
      etc('resolv.conf', '/etc/resolv.conf'),
      ...(rec.mounts ? specMounts(rec.mounts, ctx.volumeSources ?? new Map()) : bindMounts(hc.Binds ?? [])),
    ],
    init: hc.Init ?? false,
    cgroupsPath: cgroupPathOrDefault(hc, rec.id),
  };
  if (sec.apparmorProfile !== undefined) input.apparmorProfile = sec.apparmorProfile;
  if (sec.selinuxLabel !== undefined) input.selinuxLabel = sec.selinuxLabel;
  if (hc.ShmSize) input.shmSize = hc.ShmSize;
  // `--domainname` through the kernel.domainname sysctl, as dockerd (setLinuxDomainname): runc
  // before 1.2 ignores the spec's domainname field; the sysctl is the UTS namespace's own
  const domain = cfg.Domainname && hc.UTSMode !== 'host' ? { 'kernel.domainname': cfg.Domainname } : {};
  const sysctls = { ...defaultSysctls(hc), ...domain, ...(hc.Sysctls ?? {}) };
  if (Object.keys(sysctls).length) input.sysctls = sysctls;
  const paths = systemPathsOf(hc);
  input.maskedPaths = paths.masked;
  input.readonlyPaths = paths.readonly;
  const pid = hc.PidMode === 'host' ? 'host' : ctx.pidns ? { path: ctx.pidns } : undefined;
  if (pid) input.pidNs = pid;
  const ipc = hc.IpcMode === 'host' ? 'host' : ctx.ipcns ? { path: ctx.ipcns } : undefined;
  if (ipc) input.ipcNs = ipc;
  if (hc.UTSMode === 'host') input.utsHost = true;
  if (hc.CgroupnsMode === 'private') input.cgroupNs = true;
  if (hc.Devices?.length) input.devices = hc.Devices.map(deviceOf);
  if (hc.OomKillDisable) input.oomKillDisable = true;
  if (hc.OomScoreAdj) input.oomScoreAdj = hc.OomScoreAdj;
  return input;
}

/**
 * dockerd's sysctls for a container with a network namespace of its own (daemon/oci_linux.go):
 * unprivileged ICMP echo sockets and binding ports below 1024 without CAP_NET_BIND_SERVICE, each
 * only where the kernel has the sysctl. Not for `--network host` (they would change the host's
 * network settings) nor `container:<id>` (they are the other container's namespace's, and that one
 * may be the host's). The container's own Sysctls win.
 */
function defaultSysctls(hc: HostConfig): Record<string, string> {
  const mode = hc.NetworkMode ?? '';
  if (mode === 'host' || mode.startsWith('container:')) return {};
  return { ...netSysctls() };
}

/**
 * The default sysctls this kernel has, looked up once: a lookup under /proc/sys/net costs more the
 * more network namespaces the host has (1.2 ms each with ~3,000 containers' namespaces here, four
 * per container's create and start: 7.7 s of a 1,000-container start run went there).
 */
let kernelNetSysctls: Readonly<Record<string, string>> | undefined;
function netSysctls(): Readonly<Record<string, string>> {
  if (kernelNetSysctls) return kernelNetSysctls;
  const out: Record<string, string> = {};
  if (existsSync('/proc/sys/net/ipv4/ping_group_range')) out['net.ipv4.ping_group_range'] = '0 2147483647';
  if (existsSync('/proc/sys/net/ipv4/ip_unprivileged_port_start')) out['net.ipv4.ip_unprivileged_port_start'] = '0';
  return (kernelNetSysctls = out);
}

/** `--device /dev/x[:/dev/y[:rwm]]`: the host node's type, numbers, mode and owner. */
function deviceOf(d: {
  PathOnHost: string;
  PathInContainer?: string;
  CgroupPermissions?: string;
}): NonNullable<SpecInput['devices']>[number] {
  let st;
  try {
    st = statSync(d.PathOnHost);
  } catch {
    throw invalidArgument(
      `error gathering device information while adding custom device "${d.PathOnHost}": no such file or directory`,
    );
  }
  if (!st.isCharacterDevice() && !st.isBlockDevice())
    throw invalidArgument(
      `error gathering device information while adding custom device "${d.PathOnHost}": not a device node`,
    );
  const { major, minor } = devNumbers(st.rdev);
  return {
    path: d.PathInContainer || d.PathOnHost,
    type: st.isCharacterDevice() ? 'c' : 'b',
    major,
    minor,
    fileMode: st.mode & 0o7777,
    uid: st.uid,
    gid: st.gid,
    access: d.CgroupPermissions || 'rwm',
  };
}
