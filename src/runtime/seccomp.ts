/**
 * Seccomp filters for containers.
 *
 * The default: the syscalls Docker's default profile refuses to a container with Docker's default
 * capabilities (docs.docker.com "Seccomp security profiles for Docker", "Significant syscalls
 * blocked by the default profile") get EPERM; a capability that Docker's profile keys on
 * (`includes.caps`) lifts its syscalls, as in Docker. clone3 gets ENOSYS so libcs fall back to
 * clone, as Docker does. This is the same effective policy expressed as a denylist, which is far
 * smaller than Docker's ~370-entry allowlist; `seccomp=<profile.json>` accepts Docker's format.
 */
import { invalidArgument } from '../base/errors.js';
import { asObject, isObject } from '../base/json.js';

export interface OciSeccomp {
  defaultAction: string;
  defaultErrnoRet?: number;
  architectures: string[];
  syscalls: Array<{ names: string[]; action: string; errnoRet?: number; args?: unknown[] }>;
}

const EPERM = 1;
const ENOSYS = 38;
const ARCHES = ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32'];

/** Blocked unless the container holds the capability (Docker's `includes.caps`). */
const BY_CAP: Record<string, string[]> = {
  CAP_SYS_ADMIN: [
    'bpf',
    'clone',
    'fanotify_init',
    'lookup_dcookie',
    'mount',
    'name_to_handle_at',
    'perf_event_open',
    'quotactl',
    'setdomainname',
    'sethostname',
    'setns',
    'syslog',
    'umount',
    'umount2',
    'unshare',
    'fsconfig',
    'fsmount',
    'fsopen',
    'fspick',
    'open_tree',
    'move_mount',
    'pivot_root',
    'mount_setattr',
  ],
  CAP_SYS_BOOT: ['reboot'],
  CAP_SYS_CHROOT: [],
  CAP_SYS_MODULE: ['delete_module', 'init_module', 'finit_module'],
  CAP_SYS_PACCT: ['acct'],
  CAP_SYS_PTRACE: ['kcmp', 'pidfd_getfd', 'process_madvise', 'process_vm_readv', 'process_vm_writev', 'ptrace'],
  CAP_SYS_RAWIO: ['iopl', 'ioperm'],
  CAP_SYS_TIME: [
    'settimeofday',
    'stime',
    'clock_settime',
    'clock_settime64',
    'adjtimex',
    'clock_adjtime',
    'clock_adjtime64',
  ],
  CAP_SYS_TTY_CONFIG: ['vhangup'],
  CAP_SYS_NICE: ['get_mempolicy', 'mbind', 'set_mempolicy', 'set_mempolicy_home_node'],
  CAP_SYSLOG: ['syslog'],
  CAP_BPF: ['bpf'],
  CAP_PERFMON: ['perf_event_open'],
};

/** Blocked whatever the capabilities (obsolete or kernel-global syscalls). */
const ALWAYS = [
  'add_key',
  'create_module',
  'get_kernel_syms',
  'kexec_file_load',
  'kexec_load',
  'keyctl',
  'nfsservctl',
  'open_by_handle_at',
  'query_module',
  'request_key',
  'swapon',
  'swapoff',
  'sysfs',
  '_sysctl',
  'uselib',
  'userfaultfd',
  'ustat',
  'vm86',
  'vm86old',
  'move_pages',
];

export function defaultProfile(caps: readonly string[]): OciSeccomp {
  const have = new Set(caps);
  const allowed = new Set<string>();
  for (const [cap, names] of Object.entries(BY_CAP)) if (have.has(cap)) for (const n of names) allowed.add(n);
  const denied = new Set<string>(ALWAYS);
  for (const names of Object.values(BY_CAP)) for (const n of names) if (!allowed.has(n)) denied.add(n);
  // clone itself is needed by every program; Docker filters its namespace flags instead, which the
  // missing CAP_SYS_ADMIN already refuses in the kernel.
  denied.delete('clone');
  return {
    defaultAction: 'SCMP_ACT_ALLOW',
    architectures: ARCHES,
    syscalls: [
      { names: [...denied].sort(), action: 'SCMP_ACT_ERRNO', errnoRet: EPERM },
      { names: ['clone3'], action: 'SCMP_ACT_ERRNO', errnoRet: have.has('CAP_SYS_ADMIN') ? EPERM : ENOSYS },
    ].filter((r) => !(r.names[0] === 'clone3' && have.has('CAP_SYS_ADMIN'))),
  };
}

/** A profile in Docker's JSON format (as `--security-opt seccomp=<file>` sends it) -> OCI. */
export function convertProfile(text: string, caps: readonly string[]): OciSeccomp {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw invalidArgument(`decoding seccomp profile failed: ${e instanceof Error ? e.message : String(e)}`);
  }
  const o = asObject(v, 'seccomp profile');
  const defaultAction = o['defaultAction'];
  if (typeof defaultAction !== 'string' || !defaultAction.startsWith('SCMP_ACT_'))
    throw invalidArgument('seccomp profile: defaultAction is required');
  const have = new Set(caps);
  const arches = new Set<string>();
  if (Array.isArray(o['architectures'])) for (const a of o['architectures']) if (typeof a === 'string') arches.add(a);
  if (Array.isArray(o['archMap'])) {
    for (const m of o['archMap']) {
      if (!isObject(m) || m['architecture'] !== 'SCMP_ARCH_X86_64') continue;
      arches.add('SCMP_ARCH_X86_64');
      if (Array.isArray(m['subArchitectures']))
        for (const s of m['subArchitectures']) if (typeof s === 'string') arches.add(s);
    }
  }
  const syscalls: OciSeccomp['syscalls'] = [];
  for (const s of Array.isArray(o['syscalls']) ? o['syscalls'] : []) {
    const r = asObject(s, 'seccomp rule');
    const capsOf = (k: string) =>
      isObject(r[k]) && Array.isArray((r[k] as Record<string, unknown>)['caps'])
        ? ((r[k] as Record<string, unknown>)['caps'] as unknown[]).map(String)
        : [];
    if (!capsOf('includes').every((c) => have.has(c))) continue;
    const ex = capsOf('excludes');
    if (ex.length && ex.some((c) => have.has(c))) continue;
    const names = Array.isArray(r['names']) ? r['names'].map(String) : typeof r['name'] === 'string' ? [r['name']] : [];
    if (!names.length || typeof r['action'] !== 'string')
      throw invalidArgument('seccomp profile: every rule needs names and an action');
    const rule: OciSeccomp['syscalls'][number] = { names, action: r['action'] };
    if (typeof r['errnoRet'] === 'number') rule.errnoRet = r['errnoRet'];
    if (Array.isArray(r['args']) && r['args'].length) rule.args = r['args'];
    syscalls.push(rule);
  }
  const out: OciSeccomp = { defaultAction, architectures: arches.size ? [...arches] : ARCHES, syscalls };
  if (typeof o['defaultErrnoRet'] === 'number') out.defaultErrnoRet = o['defaultErrnoRet'];
  return out;
}
