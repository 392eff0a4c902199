/**
 * SpecInput -> OCI runtime config.json, with Docker's defaults (moby daemon/oci_linux.go,
 * oci/defaults.go): namespaces, standard mounts, default capabilities, masked and read-only paths,
 * device cgroup rules, seccomp. Pure: validation errors are InvalidArgument (a host feature
 * missing, Unavailable), raised at create time.
 */
import { invalidArgument, unavailable } from '../base/errors.js';
import type { HostInfo, Resources, RuntimeName, SpecInput } from './types.js';
import { convertProfile, defaultProfile, type OciSeccomp } from './seccomp.js';

/** The PATH a container gets when its image sets none (Docker's). */
export const DEFAULT_PATH = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export const ALL_CAPS = [
  'CAP_CHOWN',
  'CAP_DAC_OVERRIDE',
  'CAP_DAC_READ_SEARCH',
  'CAP_FOWNER',
  'CAP_FSETID',
  'CAP_KILL',
  'CAP_SETGID',
  'CAP_SETUID',
  'CAP_SETPCAP',
  'CAP_LINUX_IMMUTABLE',
  'CAP_NET_BIND_SERVICE',
  'CAP_NET_BROADCAST',
  'CAP_NET_ADMIN',
  'CAP_NET_RAW',
  'CAP_IPC_LOCK',
  'CAP_IPC_OWNER',
  'CAP_SYS_MODULE',
  'CAP_SYS_RAWIO',
  'CAP_SYS_CHROOT',
  'CAP_SYS_PTRACE',
  'CAP_SYS_PACCT',
  'CAP_SYS_ADMIN',
  'CAP_SYS_BOOT',
  'CAP_SYS_NICE',
  'CAP_SYS_RESOURCE',
  'CAP_SYS_TIME',
  'CAP_SYS_TTY_CONFIG',
  'CAP_MKNOD',
  'CAP_LEASE',
  'CAP_AUDIT_WRITE',
  'CAP_AUDIT_CONTROL',
  'CAP_SETFCAP',
  'CAP_MAC_OVERRIDE',
  'CAP_MAC_ADMIN',
  'CAP_SYSLOG',
  'CAP_WAKE_ALARM',
  'CAP_BLOCK_SUSPEND',
  'CAP_AUDIT_READ',
  'CAP_PERFMON',
  'CAP_BPF',
  'CAP_CHECKPOINT_RESTORE',
];

/** Docker's default capability set (moby oci/caps/defaults.go). */
export const DEFAULT_CAPS = [
  'CAP_CHOWN',
  'CAP_DAC_OVERRIDE',
  'CAP_FSETID',
  'CAP_FOWNER',
  'CAP_MKNOD',
  'CAP_NET_RAW',
  'CAP_SETGID',
  'CAP_SETUID',
  'CAP_SETFCAP',
  'CAP_SETPCAP',
  'CAP_NET_BIND_SERVICE',
  'CAP_SYS_CHROOT',
  'CAP_KILL',
  'CAP_AUDIT_WRITE',
];

export const MASKED_PATHS = [
  '/proc/asound',
  '/proc/acpi',
  '/proc/kcore',
  '/proc/keys',
  '/proc/latency_stats',
  '/proc/timer_list',
  '/proc/timer_stats',
  '/proc/sched_debug',
  '/proc/scsi',
  '/sys/firmware',
  '/sys/devices/virtual/powercap',
];
export const READONLY_PATHS = ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'];

const RLIMITS = new Set([
  'as',
  'core',
  'cpu',
  'data',
  'fsize',
  'locks',
  'memlock',
  'msgqueue',
  'nice',
  'nofile',
  'nproc',
  'rss',
  'rtprio',
  'rttime',
  'sigpending',
  'stack',
]);

function normCap(c: string): string {
  const up = c.trim().toUpperCase();
  if (up === 'ALL') return 'ALL';
  const name = up.startsWith('CAP_') ? up : `CAP_${up}`;
  if (!ALL_CAPS.includes(name)) throw invalidArgument(`unknown capability: "${c}"`);
  return name;
}

/** The capabilities whose bits are set in a /proc/<pid>/status Cap* mask (hex). */
export function capsOfMask(hex: string): string[] {
  const mask = BigInt(`0x${hex}`);
  return ALL_CAPS.filter((_, bit) => (mask >> BigInt(bit)) & 1n);
}

/**
 * Docker's capability arithmetic: ALL in add starts from all; ALL in drop starts from none.
 * "All" means all the daemon can grant: its own bounding set (`available`) — a sandboxed host may
 * lack some, and asking the kernel for one it lacks fails the container's start with EPERM.
 */
export function capabilities(
  add: readonly string[],
  drop: readonly string[],
  privileged: boolean,
  available: readonly string[] = ALL_CAPS,
): string[] {
  const a = add.map(normCap);
  const d = drop.map(normCap);
  if (privileged) return [...available];
  let caps = a.includes('ALL')
    ? [...available]
    : d.includes('ALL')
      ? []
      : DEFAULT_CAPS.filter((c) => available.includes(c));
  if (!d.includes('ALL')) caps = caps.filter((c) => !d.includes(c));
  for (const c of a) {
    if (c === 'ALL' || caps.includes(c)) continue;
    if (!available.includes(c))
      throw invalidArgument(`capability ${c} is not in berthd's own bounding set: it cannot be granted on this host`);
    caps.push(c);
  }
  return caps;
}

function rlimits(input: SpecInput, host: HostInfo): Array<{ type: string; soft: number; hard: number }> {
  return input.ulimits.map((u) => {
    const name = u.name.toLowerCase().replace(/^rlimit_/, '');
    if (!RLIMITS.has(name)) throw invalidArgument(`invalid ulimit type: ${u.name}`);
    if (u.soft > u.hard) throw invalidArgument(`ulimit ${name}: soft limit ${u.soft} is above hard limit ${u.hard}`);
    const own = host.rlimits[name];
    if (own && own.hard >= 0 && (u.hard > own.hard || u.hard < 0))
      throw invalidArgument(
        `ulimit ${name}: hard limit ${u.hard} is above the daemon's hard limit ${own.hard} (berthd lacks CAP_SYS_RESOURCE to raise it)`,
      );
    return { type: `RLIMIT_${name.toUpperCase()}`, soft: u.soft, hard: u.hard };
  });
}

function seccompOf(input: SpecInput, caps: string[], host: HostInfo): OciSeccomp | undefined {
  if (input.privileged || input.seccomp === 'unconfined' || !host.seccomp) return undefined;
  if (input.seccomp === 'default') return defaultProfile(caps);
  return convertProfile(input.seccomp.profile, caps);
}

/** The OCI `linux.resources` limits of `r` (memory, cpu, pids, blockIO): the spec's and `update`'s. */
export function resourcesJson(r: Resources, oomKillDisable = false): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (r.memory || r.memoryReservation || r.memorySwap || oomKillDisable || r.memorySwappiness !== undefined) {
    out['memory'] = {
      ...(r.memory ? { limit: r.memory } : {}),
      ...(r.memoryReservation ? { reservation: r.memoryReservation } : {}),
      ...(r.memorySwap ? { swap: r.memorySwap } : {}),
      ...(oomKillDisable ? { disableOOMKiller: true } : {}),
      ...(r.memorySwappiness !== undefined ? { swappiness: r.memorySwappiness } : {}),
    };
  }
  if (r.cpuShares || r.cpuQuota || r.cpuPeriod || r.cpusetCpus || r.cpusetMems) {
    out['cpu'] = {
      ...(r.cpuShares ? { shares: r.cpuShares } : {}),
      ...(r.cpuQuota ? { quota: r.cpuQuota } : {}),
      ...(r.cpuPeriod ? { period: r.cpuPeriod } : {}),
      ...(r.cpusetCpus ? { cpus: r.cpusetCpus } : {}),
      ...(r.cpusetMems ? { mems: r.cpusetMems } : {}),
    };
  }
  if (r.blkioWeight || r.throttle) {
    const t = r.throttle ?? {};
    out['blockIO'] = {
      ...(r.blkioWeight ? { weight: r.blkioWeight } : {}),
      ...(t.readBps ? { throttleReadBpsDevice: t.readBps } : {}),
      ...(t.writeBps ? { throttleWriteBpsDevice: t.writeBps } : {}),
      ...(t.readIops ? { throttleReadIOPSDevice: t.readIops } : {}),
      ...(t.writeIops ? { throttleWriteIOPSDevice: t.writeIops } : {}),
    };
  }
  if (r.pidsLimit) out['pids'] = { limit: r.pidsLimit };
  // the runtime writes these files in the container's cgroup after the named limits (they win)
  if (r.unified && Object.keys(r.unified).length) out['unified'] = { ...r.unified };
  return out;
}

/**
 * Refuses `unified` on a cgroup v1 host: its keys are cgroup v2 files, which v1 hierarchies do not
 * have (runtime-spec config-linux.md "Unified": the runtime must error when it cannot apply them).
 */
export function checkUnified(r: Resources, cgroupVersion: 1 | 2): void {
  if (cgroupVersion === 1 && r.unified && Object.keys(r.unified).length)
    throw unavailable(
      `unified resources (${Object.keys(r.unified).join(', ')}) need a cgroup v2 host: this one is cgroup v1`,
    );
}

const BOUND = ['bind', 'ro', 'nosuid', 'nodev', 'noexec', 'rprivate'];

/**
 * The container's own cgroup in each v1 hierarchy (`dir`), bound read-only at
 * /sys/fs/cgroup/<name> over the shared skeleton (`host.cgroupSkel`), where the runtime would
 * mount a tmpfs of its own (README "/sys/fs/cgroup"). Only under crun, for a container that is
 * not privileged (Docker gives those a writable one), has no cgroup namespace (the runtime mounts
 * the hierarchies itself there) and an absolute cgroup path. Empty: the runtime's own mount. The
 * directories must exist before the runtime runs (`makeCgroupDirs`).
 */
export function cgroupBinds(
  input: SpecInput,
  host: HostInfo,
  runtime?: RuntimeName,
): Array<{ name: string; dir: string }> {
  const skel = host.cgroupSkel;
  if (!skel || runtime !== 'crun' || input.privileged || input.cgroupNs || !input.cgroupsPath.startsWith('/'))
    return [];
  return skel.names.map((name) => ({ name, dir: `${skel.root}/${name}${input.cgroupsPath}` }));
}

function cgroupMounts(input: SpecInput, host: HostInfo, runtime: RuntimeName | undefined, ro: string[]) {
  const binds = cgroupBinds(input, host, runtime);
  if (!binds.length)
    return [
      {
        destination: '/sys/fs/cgroup',
        type: 'cgroup',
        source: 'cgroup',
        options: ['nosuid', 'noexec', 'nodev', 'relatime', ...ro],
      },
    ];
  return [
    { destination: '/sys/fs/cgroup', type: 'bind', source: host.cgroupSkel!.source, options: BOUND },
    ...binds.map((b) => ({ destination: `/sys/fs/cgroup/${b.name}`, type: 'bind', source: b.dir, options: BOUND })),
  ];
}

/** `runtime`: the one that will run it (crun gets the masked directories as binds; runc refuses mounts inside /proc). */
export function buildSpec(input: SpecInput, host: HostInfo, runtime?: RuntimeName): Record<string, unknown> {
  const caps = capabilities(input.capAdd, input.capDrop, input.privileged, host.capabilities);
  if (input.apparmorProfile && !host.apparmor)
    throw invalidArgument(`AppArmor is not enabled on this host: cannot apply profile "${input.apparmorProfile}"`);
  if (input.selinuxLabel && !host.selinux)
    throw invalidArgument(`SELinux is not enabled on this host: cannot apply label "${input.selinuxLabel}"`);
  const r = input.resources;
  checkUnified(r, host.cgroupVersion);
  if (r.memory !== undefined && r.memory > 0 && r.memory < 6 * 1024 * 1024)
    throw invalidArgument('Minimum memory limit allowed is 6MB');
  if (r.cpuQuota !== undefined && r.cpuQuota > 0 && r.cpuQuota < 1000)
    throw invalidArgument('CPU cfs quota can not be less than 1ms (i.e. 1000)');
  if (input.init && !host.init) throw invalidArgument('--init: no init binary (tini) is installed on this host');
  const namespaces: Array<{ type: string; path?: string }> = [{ type: 'mount' }];
  const joinOrNew = (type: string, ns: 'host' | { path: string } | undefined) => {
    if (ns === undefined) namespaces.push({ type });
    else if (ns !== 'host') namespaces.push({ type, path: ns.path });
  };
  joinOrNew('pid', input.pidNs);
  joinOrNew('ipc', input.ipcNs);
  if (!input.utsHost) namespaces.push({ type: 'uts' });
  if (input.network === 'none') namespaces.push({ type: 'network' });
  else if (input.network !== 'host') namespaces.push({ type: 'network', path: input.network.path });
  if (host.cgroupVersion === 2 || input.cgroupNs) namespaces.push({ type: 'cgroup' });
  const ro = input.privileged ? [] : ['ro'];
  const shm = input.shmSize ?? 64 * 1024 * 1024;
  const mounts: Array<{ destination: string; type: string; source: string; options: string[] }> = [
    { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
    {
      destination: '/dev',
      type: 'tmpfs',
      source: 'tmpfs',
      options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'],
    },
    {
      destination: '/dev/pts',
      type: 'devpts',
      source: 'devpts',
      options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'],
    },
    { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', ...ro] },
    ...cgroupMounts(input, host, runtime, ro),
    { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
    input.ipcNs === 'host'
      ? { destination: '/dev/shm', type: 'bind', source: '/dev/shm', options: ['rbind', 'rprivate'] }
      : {
          destination: '/dev/shm',
          type: 'tmpfs',
          source: 'shm',
          options: ['nosuid', 'noexec', 'nodev', 'mode=1777', `size=${shm}`],
        },
    ...input.mounts,
  ];
  let args = input.args;
  if (input.init && host.init) {
    mounts.push({
      destination: '/sbin/docker-init',
      type: 'bind',
      source: host.init,
      options: ['rbind', 'ro', 'rprivate'],
    });
    args = ['/sbin/docker-init', '--', ...args];
  }
  // masked directories: one empty directory bound read-only over each, last (as the runtime masks
  // after every mount), where the runtime would make a tmpfs (a superblock) per directory. crun
  // only: runc refuses a mount inside /proc
  const masked = input.maskedPaths ?? MASKED_PATHS;
  const maskDir = input.privileged || runtime !== 'crun' ? undefined : host.maskDir;
  const bound = maskDir ? masked.filter((p) => maskDir.paths.includes(p)) : [];
  if (maskDir)
    for (const destination of bound)
      mounts.push({
        destination,
        type: 'bind',
        source: maskDir.source,
        options: ['rbind', 'ro', 'nosuid', 'nodev', 'noexec', 'rprivate'],
      });
  const linuxResources: Record<string, unknown> = {
    devices: input.privileged
      ? [{ allow: true, access: 'rwm' }]
      : [
          { allow: false, access: 'rwm' },
          ...[
            [1, 3],
            [1, 5],
            [1, 7],
            [1, 8],
            [1, 9],
            [5, 0],
            [5, 1],
            [5, 2],
            [10, 200],
          ].map(([major, minor]) => ({ allow: true, type: 'c', major, minor, access: 'rwm' })),
          { allow: true, type: 'c', major: 136, access: 'rwm' },
          { allow: true, type: 'c', access: 'm' },
          { allow: true, type: 'b', access: 'm' },
          ...(input.devices ?? []).map((d) => ({
            allow: true,
            type: d.type,
            major: d.major,
            minor: d.minor,
            access: d.access,
          })),
        ],
  };
  Object.assign(linuxResources, resourcesJson(r, input.oomKillDisable ?? false));
  const seccomp = seccompOf(input, caps, host);
  const processSpec: Record<string, unknown> = {
    terminal: input.terminal,
    user: {
      uid: input.user.uid,
      gid: input.user.gid,
      ...(input.user.additionalGids.length ? { additionalGids: input.user.additionalGids } : {}),
    },
    args,
    env: input.env,
    cwd: input.cwd || '/',
    capabilities: { bounding: caps, effective: caps, permitted: caps },
    noNewPrivileges: input.noNewPrivileges,
    oomScoreAdj: input.oomScoreAdj ?? 0,
  };
  const limits = rlimits(input, host);
  if (limits.length) processSpec['rlimits'] = limits;
  if (input.apparmorProfile) processSpec['apparmorProfile'] = input.apparmorProfile;
  if (input.selinuxLabel) processSpec['selinuxLabel'] = input.selinuxLabel;
  const linux: Record<string, unknown> = {
    namespaces,
    resources: linuxResources,
    cgroupsPath: input.cgroupsPath,
    ...(input.devices?.length ? { devices: input.devices.map(({ access: _a, ...d }) => d) } : {}),
    ...(input.sysctls ? { sysctl: input.sysctls } : {}),
    ...(seccomp ? { seccomp } : {}),
    ...(input.privileged
      ? {}
      : {
          maskedPaths: masked.filter((p) => !bound.includes(p)),
          readonlyPaths: input.readonlyPaths ?? READONLY_PATHS,
        }),
  };
  return {
    ociVersion: '1.0.2',
    process: processSpec,
    root: { path: input.rootfs, readonly: input.readonlyRootfs },
    ...(input.utsHost ? {} : { hostname: input.hostname }),
    mounts,
    linux,
    // runc hands this file to CRIU at checkpoint and restore (its settings win over runc's)
    ...(host.checkpoint.configFile ? { annotations: { 'org.criu.config': host.checkpoint.configFile } } : {}),
  };
}
