/** Resource usage of a container's cgroup, read from cgroup v1 controllers or the v2 tree. */
import {
  promises as fsp,
  mkdirSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  rmdirSync,
  statfsSync,
  symlinkSync,
} from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { type Clock, systemClock } from '../base/clock.js';
import { errorMessage } from '../base/errors.js';
import { log } from '../base/log.js';
import {
  isMountPoint,
  MNT_DETACH,
  MS_NODEV,
  MS_NOEXEC,
  MS_NOSUID,
  MS_RDONLY,
  MS_REMOUNT,
  mount,
  umount,
} from '../base/syscalls.js';
import type { BlkioEntry, BlkioField, CgroupStats, HostInfo } from './types.js';
import { pollUntil } from './poll.js';

/** Where the cgroup filesystems are mounted; every reader takes another root (a fixture tree in the unit tests). */
export const CGROUP_ROOT = '/sys/fs/cgroup';

async function read(p: string): Promise<string> {
  try {
    return (await fsp.readFile(p, 'utf8')).trim();
  } catch {
    return '';
  }
}
const num = (s: string) => (s === '' || s === 'max' ? 0 : Number(s) || 0);
function kv(text: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const l of text.split('\n')) {
    const [k, v] = l.split(/\s+/);
    if (k && v !== undefined) out[k] = Number(v) || 0;
  }
  return out;
}

/** Host CPU time in ns from /proc/stat (Docker's system_cpu_usage). */
async function systemCpuNs(): Promise<number> {
  const first = (await read('/proc/stat')).split('\n')[0] ?? '';
  const jiffies = first
    .split(/\s+/)
    .slice(1, 8)
    .reduce((n, v) => n + (Number(v) || 0), 0);
  return jiffies * 1e7; // USER_HZ = 100
}

/** `8:0 Read 4096` lines (v1 blkio files; the closing `Total N` line has no device and is left out). */
function blkioLines(text: string): BlkioEntry[] {
  const out: BlkioEntry[] = [];
  for (const l of text.split('\n')) {
    const [dev, op, v] = l.trim().split(/\s+/);
    const m = /^(\d+):(\d+)$/.exec(dev ?? '');
    if (!m || op === undefined) continue;
    // blkio.time_recursive and sectors_recursive have no op: `8:0 1234`
    out.push(
      v === undefined
        ? { major: Number(m[1]), minor: Number(m[2]), op: '', value: Number(op) || 0 }
        : { major: Number(m[1]), minor: Number(m[2]), op, value: Number(v) || 0 },
    );
  }
  return out;
}

const BLKIO_V1: Array<[BlkioField, string]> = [
  ['sectors_recursive', 'blkio.sectors_recursive'],
  ['io_service_bytes_recursive', 'blkio.io_service_bytes_recursive'],
  ['io_serviced_recursive', 'blkio.io_serviced_recursive'],
  ['io_queue_recursive', 'blkio.io_queued_recursive'],
  ['io_service_time_recursive', 'blkio.io_service_time_recursive'],
  ['io_wait_time_recursive', 'blkio.io_wait_time_recursive'],
  ['io_merged_recursive', 'blkio.io_merged_recursive'],
  ['io_time_recursive', 'blkio.time_recursive'],
];

export async function cgroupStats(version: 1 | 2, path: string, root = CGROUP_ROOT): Promise<CgroupStats> {
  const sys = await systemCpuNs();
  const ncpu = cpus().length;
  if (version === 2) {
    const dir = `${root}${path}`;
    const cpu = kv(await read(`${dir}/cpu.stat`));
    const io = (await read(`${dir}/io.stat`)).split('\n');
    const ioSum = (key: string) =>
      io.reduce(
        (n, l) => n + Number(/\b\w+=(\d+)/.exec(l.split(' ').find((f) => f.startsWith(`${key}=`)) ?? '')?.[1] ?? 0),
        0,
      );
    return {
      cpuTotalNs: (cpu['usage_usec'] ?? 0) * 1000,
      cpuUserNs: (cpu['user_usec'] ?? 0) * 1000,
      cpuSystemNs: (cpu['system_usec'] ?? 0) * 1000,
      perCpuNs: [],
      systemCpuNs: sys,
      onlineCpus: ncpu,
      memUsage: num(await read(`${dir}/memory.current`)),
      memLimit: num(await read(`${dir}/memory.max`)) || totalmem(),
      memStats: kv(await read(`${dir}/memory.stat`)),
      pids: num(await read(`${dir}/pids.current`)),
      pidsLimit: num(await read(`${dir}/pids.max`)),
      blkioRead: ioSum('rbytes'),
      blkioWrite: ioSum('wbytes'),
      memMaxUsage: 0,
      memFailcnt: 0,
      throttling: {
        periods: cpu['nr_periods'] ?? 0,
        throttledPeriods: cpu['nr_throttled'] ?? 0,
        throttledTimeNs: (cpu['throttled_usec'] ?? 0) * 1000,
      },
      blkio: {
        io_service_bytes_recursive: io.flatMap((l) => {
          const m = /^(\d+):(\d+)\s/.exec(l);
          if (!m) return [];
          const f = (k: string) => Number(new RegExp(`\\b${k}=(\\d+)`).exec(l)?.[1] ?? 0);
          const dev = { major: Number(m[1]), minor: Number(m[2]) };
          return [
            { ...dev, op: 'read', value: f('rbytes') },
            { ...dev, op: 'write', value: f('wbytes') },
          ];
        }),
        io_serviced_recursive: null,
        io_queue_recursive: null,
        io_service_time_recursive: null,
        io_wait_time_recursive: null,
        io_merged_recursive: null,
        io_time_recursive: null,
        sectors_recursive: null,
      },
    };
  }
  const at = (ctrl: string, file: string) => read(`${root}/${ctrl}${path}/${file}`);
  const stat = kv(await at('cpuacct', 'cpuacct.stat'));
  const blk = (await at('blkio', 'blkio.throttle.io_service_bytes')).split('\n');
  const blkSum = (op: string) =>
    blk.filter((l) => l.split(' ')[1] === op).reduce((n, l) => n + Number(l.split(' ')[2] ?? 0), 0);
  const limit = num(await at('memory', 'memory.limit_in_bytes'));
  // in dockerd's key order
  const blkio: Record<BlkioField, BlkioEntry[]> = {
    io_service_bytes_recursive: [],
    io_serviced_recursive: [],
    io_queue_recursive: [],
    io_service_time_recursive: [],
    io_wait_time_recursive: [],
    io_merged_recursive: [],
    io_time_recursive: [],
    sectors_recursive: [],
  };
  // CFQ's files where the kernel has them, then the throttle layer's (dockerd's containerd does the same)
  if ((await at('blkio', 'blkio.io_serviced_recursive')) !== '')
    for (const [k, file] of BLKIO_V1) blkio[k] = blkioLines(await at('blkio', file));
  blkio.io_service_bytes_recursive.push(...blkioLines(await at('blkio', 'blkio.throttle.io_service_bytes')));
  blkio.io_serviced_recursive.push(...blkioLines(await at('blkio', 'blkio.throttle.io_serviced')));
  const cpuStat = kv(await at('cpu', 'cpu.stat'));
  return {
    cpuTotalNs: num(await at('cpuacct', 'cpuacct.usage')),
    cpuUserNs: (stat['user'] ?? 0) * 1e7,
    cpuSystemNs: (stat['system'] ?? 0) * 1e7,
    perCpuNs: (await at('cpuacct', 'cpuacct.usage_percpu')).split(/\s+/).filter(Boolean).map(Number),
    systemCpuNs: sys,
    onlineCpus: ncpu,
    memUsage: num(await at('memory', 'memory.usage_in_bytes')),
    memLimit: limit === 0 || limit > totalmem() ? totalmem() : limit, // unlimited: the host's memory, as Docker shows
    memStats: kv(await at('memory', 'memory.stat')),
    pids: num(await at('pids', 'pids.current')),
    pidsLimit: num(await at('pids', 'pids.max')),
    blkioRead: blkSum('Read'),
    blkioWrite: blkSum('Write'),
    memMaxUsage: num(await at('memory', 'memory.max_usage_in_bytes')),
    memFailcnt: num(await at('memory', 'memory.failcnt')),
    throttling: {
      periods: cpuStat['nr_periods'] ?? 0,
      throttledPeriods: cpuStat['nr_throttled'] ?? 0,
      throttledTimeNs: cpuStat['throttled_time'] ?? 0,
    },
    blkio,
  };
}

/** The OOM killer's count in a cgroup: v2 `memory.events`, v1 `memory.oom_control` (`oom_kill N`, Linux 4.13+). */
/**
 * The OOM kills in a cgroup. Read synchronously: a few bytes of the kernel's memory (no disk), on
 * the path of every exit before `wait` answers, where `fsp.readFile` was five pool round trips.
 */
export function cgroupOomKills(version: 1 | 2, path: string, root = CGROUP_ROOT): Promise<number> {
  const file = version === 2 ? `${root}${path}/memory.events` : `${root}/memory${path}/memory.oom_control`;
  let text = '';
  try {
    text = readFileSync(file, 'utf8').trim();
  } catch {
    /* no such cgroup (gone, or no memory controller): no kills known */
  }
  return Promise.resolve(kv(text)['oom_kill'] ?? 0);
}

export async function cgroupPids(version: 1 | 2, path: string, root = CGROUP_ROOT): Promise<number[]> {
  const file = version === 2 ? `${root}${path}/cgroup.procs` : `${root}/pids${path}/cgroup.procs`;
  return (await read(file)).split('\n').filter(Boolean).map(Number);
}

/**
 * Removes the empty cgroups under `parent` (`/berth`) in every hierarchy: what containers a crash or
 * a runtime that gave up on a busy cgroup left behind. A cgroup with processes (any daemon's
 * running container: they share the parent) cannot be removed, so only leftovers go. A runtime
 * creating a container makes its cgroup and moves the process in a moment later, and that cgroup
 * must not vanish in between: so a cgroup goes only if it was empty on a first walk and still is
 * `settleMs` later (its age cannot tell: a cgroup v1 directory's ctime is when the kernel last
 * brought its inode into memory, often the moment of the stat itself). Returns how many went.
 * `keep(name)` skips a cgroup without looking into it (the daemon's running containers).
 * Cost: a readdir per hierarchy, and a readdir per cgroup not kept, then an rmdir attempt per empty
 * one (10 hierarchies here), so berthd runs it in the background after live restore, a few at a
 * time, keeping its running containers; never before it answers.
 */
export async function pruneEmptyCgroups(
  version: 1 | 2,
  parent: string,
  keep: (name: string) => boolean = () => false,
  settleMs = 2000,
  root = CGROUP_ROOT,
): Promise<number> {
  const roots =
    version === 2
      ? [`${root}${parent}`]
      : (await fsp.readdir(root, { withFileTypes: true }).catch(() => []))
          .filter((e) => e.isDirectory())
          .map((c) => `${root}/${c.name}${parent}`);
  /** the cgroups under `dir` with no processes, children before their parent */
  const emptyBelow = async (dir: string, out: string[]): Promise<boolean> => {
    const kids = (await fsp.readdir(dir, { withFileTypes: true }).catch(() => [])).filter((e) => e.isDirectory());
    let empty = true;
    for (const k of kids) if (!(await emptyBelow(`${dir}/${k.name}`, out))) empty = false;
    if (!empty || (await read(`${dir}/cgroup.procs`)).trim() !== '') return false;
    out.push(dir);
    return true;
  };
  const candidates: string[][] = [];
  for (const root of roots) {
    const tops = (await fsp.readdir(root, { withFileTypes: true }).catch(() => [])).filter(
      (e) => e.isDirectory() && !keep(e.name),
    );
    // a few at a time: this runs beside the daemon's own work
    for (let i = 0; i < tops.length; i += 4)
      candidates.push(
        ...(await Promise.all(
          tops.slice(i, i + 4).map(async (e) => {
            const out: string[] = [];
            await emptyBelow(`${root}/${e.name}`, out);
            return out;
          }),
        )),
      );
  }
  if (!candidates.some((c) => c.length)) return 0;
  await new Promise((r) => setTimeout(r, settleMs).unref());
  let removed = 0;
  for (const dirs of candidates) {
    let all = dirs.length > 0;
    // an rmdir of a cgroup that gained a process since fails (EBUSY) and leaves it be
    for (const dir of dirs)
      if (
        !(await fsp.rmdir(dir).then(
          () => true,
          () => false,
        ))
      )
        all = false;
    if (all) removed++;
  }
  return removed;
}

/**
 * Empties and removes one container's cgroup, with any cgroups below it (crun's `.proxy-crun`
 * of a restore), in every hierarchy: what a runtime killed mid-way (a restore past its deadline)
 * leaves, which the next create of that container would trip over. Processes in them are killed
 * first; best effort, idempotent.
 */
export async function removeCgroup(
  version: 1 | 2,
  path: string,
  clock: Clock = systemClock,
  root = CGROUP_ROOT,
): Promise<void> {
  const tops =
    version === 2
      ? [`${root}${path}`]
      : (await fsp.readdir(root).catch(() => [] as string[])).map((c) => `${root}/${c}${path}`);
  const remove = async (dir: string): Promise<boolean> => {
    const kids = (await fsp.readdir(dir, { withFileTypes: true }).catch(() => [])).filter((e) => e.isDirectory());
    const done = await Promise.all(kids.map((k) => remove(`${dir}/${k.name}`)));
    for (const pid of (await read(`${dir}/cgroup.procs`)).split('\n').filter(Boolean).map(Number)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    if (done.includes(false)) return false;
    return fsp.rmdir(dir).then(
      () => true,
      (e: NodeJS.ErrnoException) => e.code === 'ENOENT',
    );
  };
  // killed processes take a moment to leave their cgroup: tried again until it is empty, for a second at most
  const emptied = async () => (await Promise.all(tops.map(remove))).every(Boolean);
  await pollUntil(emptied, { clock, deadlineMs: 1000, everyMs: 50 });
}

/**
 * Whether the processes of cgroup `path` are frozen (paused by `<runtime> pause`): v1's
 * freezer.state (FROZEN, or FREEZING on the way), v2's cgroup.freeze. Null when the cgroup is not
 * there. A file read: live restore asks it of every running container without spawning the runtime.
 */
export async function cgroupFrozen(version: 1 | 2, path: string, root = CGROUP_ROOT): Promise<boolean | null> {
  const file = version === 2 ? `${root}${path}/cgroup.freeze` : `${root}/freezer${path}/freezer.state`;
  try {
    const v = readFileSync(file, 'utf8').trim(); // synchronous: see conmonAlive (exits.ts)
    return version === 2 ? v === '1' : v !== 'THAWED';
  } catch {
    return null;
  }
}

/**
 * Removes an exited container's (empty) cgroup `path` in every hierarchy without the runtime.
 * False when one is busy (still has processes): the runtime's own delete handles that.
 */
export async function removeExitedCgroups(version: 1 | 2, path: string, root = CGROUP_ROOT): Promise<boolean> {
  const dirs = version === 2 ? [`${root}${path}`] : readdirSync(root).map((c) => `${root}/${c}${path}`);
  const removed = await Promise.all(
    dirs.map((dir) =>
      fsp.rmdir(dir).then(
        () => true,
        (e: NodeJS.ErrnoException) => e.code === 'ENOENT', // busy: let the runtime handle it
      ),
    ),
  );
  return !removed.includes(false);
}

const CGROUP_SUPER_MAGIC = 0x27e0eb;

/**
 * The one read-only tmpfs bound at every container's /sys/fs/cgroup on a cgroup v1 host, where a
 * runtime mounts a tmpfs per container: a superblock each, and every superblock alive makes every
 * later memory cgroup bigger (README "/sys/fs/cgroup"). It holds an empty directory for each v1
 * hierarchy mounted under `root` (each then bound from the container's own cgroup) and the
 * host's links between them (`cpu` -> `cpu,cpuacct` where they share one). Mounted at `source`
 * (a previous daemon's is detached first: its containers keep theirs). Undefined, with a
 * warning, when it cannot be made: the runtime then mounts its own.
 */
export function makeCgroupSkel(source: string, root = CGROUP_ROOT): HostInfo['cgroupSkel'] {
  const names: string[] = [];
  const links: Array<[string, string]> = [];
  try {
    for (const e of readdirSync(root, { withFileTypes: true }))
      if (e.isSymbolicLink()) links.push([e.name, readlinkSync(join(root, e.name))]);
      else if (e.isDirectory() && statfsSync(join(root, e.name)).type === CGROUP_SUPER_MAGIC) names.push(e.name);
  } catch {
    return undefined; // no cgroup v1 hierarchies to read
  }
  if (!names.length) return undefined;
  try {
    mkdirSync(source, { recursive: true, mode: 0o755 });
    if (isMountPoint(source)) umount(source, MNT_DETACH);
    mount('tmpfs', source, 'tmpfs', MS_NOSUID | MS_NODEV | MS_NOEXEC, 'size=4k,nr_inodes=64,mode=755');
    for (const n of names) mkdirSync(join(source, n), { mode: 0o755 });
    for (const [link, target] of links) if (names.includes(target)) symlinkSync(target, join(source, link));
    mount('', source, '', MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, '');
    return { source, root, names };
  } catch (e) {
    log.warn("the runtime mounts a tmpfs at each container's /sys/fs/cgroup: no shared one", {
      path: source,
      err: errorMessage(e),
    });
    try {
      if (isMountPoint(source)) umount(source, MNT_DETACH);
    } catch {
      /* left mounted: the next start detaches it */
    }
    return undefined;
  }
}

/**
 * Makes a container's cgroup directories (all of `dirs`, with their parents) before the runtime
 * runs: it binds them at /sys/fs/cgroup/<hierarchy> and checks a bind's source before it makes the
 * cgroup. The runtime then joins them as its own. Synchronous, as the create's other small steps.
 */
export function makeCgroupDirs(dirs: readonly string[]): void {
  for (const dir of dirs) mkdirSync(dir, { recursive: true });
}

/** Removes `makeCgroupDirs`' directories when the runtime never ran in them: those still there and empty. */
export function removeCgroupDirs(dirs: readonly string[]): void {
  for (const dir of dirs)
    try {
      rmdirSync(dir);
    } catch {
      /* gone (the runtime removed it), or busy: the runtime's delete removes it */
    }
}
