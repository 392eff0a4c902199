/**
 * What this host can do, detected once at daemon start (shown by `info`), and the repair of the
 * hybrid-cgroup trap: crun refuses a hybrid host whose cgroup2 hierarchy holds controllers
 * ("cgroups in hybrid mode not supported, drop all controllers from cgroupv2"). Moving hugetlb
 * to a v1 hierarchy of its own empties cgroup2, and crun works (HOST.md).
 *
 * One tuning, too: moving a task into a cgroup takes the kernel's cgroup_threadgroup_rwsem for
 * writing, which waits for an RCU grace period (~10 ms here) unless the cgroup2 mount carries
 * `favordynmods` (Linux >= 6.0). Every container start moves its init into ~12 cgroups, so the
 * daemon remounts cgroup2 with it (keeping the mount's other options) and says so in `info`.
 * The cost the kernel documents: slightly slower fork/exit, machine-wide.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { cpus, release, totalmem } from 'node:os';
import { readTextOrEmpty } from '../base/fs.js';
import { log } from '../base/log.js';
import { errorMessage } from '../base/errors.js';
import { mount, MS_REMOUNT } from '../base/syscalls.js';
import { capsOfMask } from './spec.js';
import type { HostInfo, RuntimeName } from './types.js';

const CG = '/sys/fs/cgroup';

function which(name: string, extra: string[] = []): string | null {
  for (const dir of [...(process.env['PATH'] ?? '/usr/bin:/bin').split(':'), '/usr/sbin', '/sbin', ...extra]) {
    const p = `${dir}/${name}`;
    if (existsSync(p)) return p;
  }
  return null;
}

/**
 * Runs a probe (`crun --version`, ...) off the event loop, with a deadline: berthd's socket answers
 * `/_ping` while they run (cmd/README.md "Start-up"). Its stdout, or null when it failed.
 */
function probe(bin: string, args: string[]): Promise<string | null> {
  return new Promise((resolve) => {
    execFile(bin, args, { encoding: 'utf8', timeout: 5_000, killSignal: 'SIGKILL' }, (err, out) =>
      resolve(err ? null : out),
    );
  });
}

async function versionOf(bin: string): Promise<string> {
  const out = (await probe(bin, ['--version'])) ?? '';
  return /(\d+\.\d+(?:\.\d+)?)/.exec(out)?.[1] ?? out.split('\n')[0] ?? '';
}

/** /proc/self/limits -> { nofile: {soft, hard}, ... } (unlimited as -1). */
export function parseLimits(text: string): Record<string, { soft: number; hard: number }> {
  const names: Record<string, string> = {
    'Max cpu time': 'cpu',
    'Max file size': 'fsize',
    'Max data size': 'data',
    'Max stack size': 'stack',
    'Max core file size': 'core',
    'Max resident set': 'rss',
    'Max processes': 'nproc',
    'Max open files': 'nofile',
    'Max locked memory': 'memlock',
    'Max address space': 'as',
    'Max file locks': 'locks',
    'Max pending signals': 'sigpending',
    'Max msgqueue size': 'msgqueue',
    'Max nice priority': 'nice',
    'Max realtime priority': 'rtprio',
    'Max realtime timeout': 'rttime',
  };
  const out: Record<string, { soft: number; hard: number }> = {};
  for (const line of text.split('\n').slice(1)) {
    const label = Object.keys(names).find((n) => line.startsWith(n));
    if (!label) continue;
    const [soft = '', hard = ''] = line.slice(label.length).trim().split(/\s+/);
    const num = (v: string) => (v === 'unlimited' ? -1 : Number(v));
    out[names[label]!] = { soft: num(soft), hard: num(hard) };
  }
  return out;
}

/**
 * The cgroup layout under `root`, read only: v2 (unified: `cgroup.controllers` at the root), or v1
 * with the controllers a hybrid host's cgroup2 mount at `unified/` holds (none: plain v1 or a
 * controller-less hybrid, as here).
 */
export function cgroupLayout(root = CG): { version: 1 | 2; hybridControllers: string[] } {
  if (existsSync(`${root}/cgroup.controllers`)) return { version: 2, hybridControllers: [] };
  return {
    version: 1,
    hybridControllers: readTextOrEmpty(`${root}/unified/cgroup.controllers`).split(/\s+/).filter(Boolean),
  };
}

/** Detects cgroups and repairs the hybrid trap. Returns [version, what was repaired, warning]. */
function cgroups(): { version: 1 | 2; repair: string; warning: string | null } {
  const layout = cgroupLayout();
  if (layout.version === 2) return { version: 2, repair: '', warning: null };
  const unified = `${CG}/unified/cgroup.controllers`;
  if (!layout.hybridControllers.length) return { version: 1, repair: '', warning: null };
  const moved: string[] = [];
  for (const ctrl of layout.hybridControllers) {
    try {
      // A controller can be mounted as v1 only while no cgroup2 cgroup uses it: true on these hosts.
      mkdirSync(`${CG}/${ctrl}`, { recursive: true });
      mount('cgroup', `${CG}/${ctrl}`, 'cgroup', 0, ctrl);
      moved.push(ctrl);
    } catch (e) {
      log.warn('cgroup repair failed', { ctrl, err: errorMessage(e) });
    }
  }
  const left = readTextOrEmpty(unified).trim(); // what the repair could not move
  if (left)
    return {
      version: 1,
      repair: '',
      warning: `hybrid cgroups with controllers in cgroup2 (${left}): crun cannot run here, using runc`,
    };
  return {
    version: 1,
    repair: `moved ${moved.join(', ')} from cgroup2 to v1 hierarchies (crun refuses hybrid cgroups otherwise)`,
    warning: null,
  };
}

/** The cgroup2 mount's path and super-block options, from /proc/self/mountinfo. */
function cgroup2Mount(): { path: string; options: string[] } | null {
  for (const line of readTextOrEmpty('/proc/self/mountinfo').split('\n')) {
    const [pre, post] = line.split(' - ');
    if (!pre || !post) continue;
    const [fstype, , superOpts = ''] = post.split(' ');
    if (fstype === 'cgroup2') return { path: pre.split(' ')[4] ?? '', options: superOpts.split(',') };
  }
  return null;
}

/** Turns on favordynmods on the cgroup2 mount; returns what was done ('' when nothing). */
function favorDynMods(): string {
  const m = cgroup2Mount();
  if (!m || m.options.includes('favordynmods'))
    return m ? 'cgroup2 mounted with favordynmods (fast cgroup migration)' : '';
  const keep = m.options.filter((o) => o !== 'rw' && o !== 'ro');
  try {
    mount('none', m.path, 'cgroup2', MS_REMOUNT, [...keep, 'favordynmods'].join(','));
    return `remounted ${m.path} with favordynmods (fast cgroup migration)`;
  } catch (e) {
    log.info('cgroup2 favordynmods not available', { err: errorMessage(e) });
    return '';
  }
}

/**
 * What checkpointing needs that can be seen without running CRIU: the CRIU binary (`criu`, or
 * scripts/criu.sh's in /usr/local/sbin before Debian's 3.17, which fails on this kernel) and the
 * runtimes built with CRIU (runc is; Debian 12's crun is not, scripts/crun.sh's is). Whether CRIU
 * really works on this kernel is the probe's to say (criu.ts); until it has, `probe` is pending.
 */
async function checkpointSupport(runtimes: HostInfo['runtimes'], criuFlag?: string): Promise<HostInfo['checkpoint']> {
  const criu = criuFlag ?? (existsSync('/usr/local/sbin/criu') ? '/usr/local/sbin/criu' : which('criu'));
  const noPre = { preCopy: false, preCopyReason: 'no CRIU', postCopy: false, postCopyReason: 'no CRIU' };
  if (!criu || !existsSync(criu))
    return {
      criu: '',
      criuPath: '',
      runtimes: [],
      capable: [],
      probe: 'failed',
      reason: 'CRIU is not installed (scripts/criu.sh installs it)',
      ...noPre,
    };
  const able: RuntimeName[] = [];
  if (runtimes.runc) able.push('runc');
  // a crun built without CRIU: "unknown command checkpoint"
  if (runtimes.crun && (await probe(runtimes.crun.path, ['checkpoint', '--help'])) !== null) able.push('crun');
  // post-copy (lazy pages) needs userfaultfd, whose sysctl exists when the kernel has it
  // (CONFIG_USERFAULTFD), and runc: crun has no --lazy-pages
  const uffd = existsSync('/proc/sys/vm/unprivileged_userfaultfd');
  const postCopy = uffd && able.includes('runc');
  return {
    criu: '',
    criuPath: criu,
    runtimes: [],
    capable: able,
    probe: 'pending', // the version comes with the probe (a CRIU may hang even there)
    reason: 'CRIU is being probed',
    preCopy: false,
    preCopyReason: 'CRIU is being probed',
    postCopy,
    postCopyReason: postCopy
      ? ''
      : uffd
        ? 'post-copy needs runc'
        : 'the kernel has no userfaultfd (CONFIG_USERFAULTFD), which CRIU lazy pages need',
  };
}

/**
 * Berth's own builds come before the system's: scripts/crun.sh installs a crun built with CRIU at
 * /usr/local/lib/berth/crun (Debian 12's is built without), scripts/conmon.sh a conmon that starts
 * in a third of the CPU of Debian's (static, no libsystemd) at /usr/local/lib/berth/conmon.
 */
const OWN_BUILDS = '/usr/local/lib/berth';

/**
 * conmon: the one in `ownBuilds` when it answers `--version`, else the system's (PATH, then
 * Podman's libexec dir). A broken build costs only its start-up speed, never the ability to run.
 */
export async function findConmon(ownBuilds = OWN_BUILDS): Promise<{ path: string; version: string } | null> {
  const own = `${ownBuilds}/conmon`;
  if (existsSync(own)) {
    const version = await versionOf(own);
    if (version) return { path: own, version };
    log.warn('conmon of scripts/conmon.sh does not answer --version: using the system conmon', { path: own });
  }
  const sys = which('conmon', ['/usr/libexec/podman']);
  return sys ? { path: sys, version: await versionOf(sys) } : null;
}

export async function detectHost(want?: RuntimeName, criu?: string, conmonFlag?: string): Promise<HostInfo> {
  const warnings: string[] = [];
  const cg = cgroups();
  if (cg.warning) warnings.push(cg.warning);
  const tuning = [favorDynMods()].filter(Boolean);
  const runtimes: HostInfo['runtimes'] = {};
  const found = (['crun', 'runc'] as const).map((name) => {
    const p = existsSync(`${OWN_BUILDS}/${name}`) ? `${OWN_BUILDS}/${name}` : which(name);
    return { name, p };
  });
  // the probes run at once: each is a process start (tens of ms on a loaded host)
  const [versions, conmon] = await Promise.all([
    Promise.all(found.map(({ p }) => (p ? versionOf(p) : ''))),
    conmonFlag ? versionOf(conmonFlag).then((version) => ({ path: conmonFlag, version })) : findConmon(),
  ]);
  found.forEach(({ name, p }, i) => {
    if (p) runtimes[name] = { path: p, version: versions[i] ?? '' };
  });
  let defaultRuntime: RuntimeName = want ?? (cg.warning ? 'runc' : 'crun');
  if (!runtimes[defaultRuntime]) {
    const other: RuntimeName = defaultRuntime === 'crun' ? 'runc' : 'crun';
    if (!runtimes[other]) throw new Error('no OCI runtime found: install crun or runc');
    warnings.push(`${defaultRuntime} not found, using ${other}`);
    defaultRuntime = other;
  }
  if (!conmon) throw new Error('conmon not found: install the conmon package');
  if (conmonFlag && !conmon.version) throw new Error(`--conmon ${conmonFlag}: it does not answer --version`);
  const apparmor = readTextOrEmpty('/sys/module/apparmor/parameters/enabled').trim() === 'Y';
  const selinux = existsSync('/sys/fs/selinux/enforce');
  const status = readTextOrEmpty('/proc/self/status');
  return {
    cgroupVersion: cg.version,
    cgroupDriver: 'cgroupfs',
    cgroupRepair: cg.repair,
    tuning,
    runtimes,
    defaultRuntime,
    conmon,
    seccomp: status.includes('Seccomp:'),
    // what the runtimes write for --blkio-weight: blkio.weight (v1, CFQ; BFQ's blkio.bfq.weight is not written) or the io controller (v2)
    blkioWeight:
      cg.version === 2
        ? readTextOrEmpty('/sys/fs/cgroup/cgroup.controllers').split(/\s+/).includes('io')
        : ['/sys/fs/cgroup/blkio/blkio.weight', '/sys/fs/cgroup/blkio/berth/blkio.weight'].some((f) => existsSync(f)),
    apparmor,
    selinux,
    capabilities: capsOfMask(/^CapBnd:\s*([0-9a-f]+)$/m.exec(status)?.[1] ?? '0'),
    rlimits: parseLimits(readTextOrEmpty('/proc/self/limits')),
    init: which('tini-static') ?? which('tini'),
    checkpoint: await checkpointSupport(runtimes, criu),
    kernelVersion: release(),
    memTotal: totalmem(),
    ncpu: cpus().length,
    warnings,
  };
}
