/** What the engine asks of a container's OCI config; runtime/spec.ts turns it into config.json. */
export interface SpecInput {
  id: string;
  /** Absolute path of the mounted rootfs (the runtime does not mount it). */
  rootfs: string;
  readonlyRootfs: boolean;
  args: string[];
  env: string[];
  cwd: string;
  user: { uid: number; gid: number; additionalGids: number[] };
  terminal: boolean;
  hostname: string;
  /** 'none' = new empty netns, 'host' = the host's, otherwise a path to a netns to join. */
  network: 'none' | 'host' | { path: string };
  privileged: boolean;
  capAdd: string[];
  capDrop: string[];
  /** 'default' = Docker's default profile, 'unconfined', or a profile JSON text. */
  seccomp: 'default' | 'unconfined' | { profile: string };
  noNewPrivileges: boolean;
  /** AppArmor profile name, or undefined. Requires host support (else the engine refuses). */
  apparmorProfile?: string;
  /** SELinux process label, or undefined. */
  selinuxLabel?: string;
  resources: Resources;
  /** Docker ulimits; names without the RLIMIT_ prefix ('nofile'). */
  ulimits: Array<{ name: string; soft: number; hard: number }>;
  /** Extra mounts in addition to the standard /proc, /dev, /sys ... set. */
  mounts: Array<{ destination: string; type: string; source: string; options: string[] }>;
  /** Run a tiny init as pid 1 (`--init`): the args are then prefixed with it. */
  init: boolean;
  /** cgroup path relative to each hierarchy's root, e.g. `/berth/<id>`. */
  cgroupsPath: string;
  /** Docker's StopSignal is not part of the spec; listed here for completeness of the input. */
  shmSize?: number;
  sysctls?: Record<string, string>;
  /** `--pid`, `--ipc`: the host's namespace, or a path to another container's to join; absent: a new one */
  pidNs?: 'host' | { path: string };
  ipcNs?: 'host' | { path: string };
  /** `--uts host`: the host's UTS namespace (no hostname set) */
  utsHost?: boolean;
  /** the paths masked and made read-only (absent: Docker's defaults; ignored when privileged) */
  maskedPaths?: string[];
  readonlyPaths?: string[];
  /** `--cgroupns private` on a cgroup v1 host (v2 hosts get one anyway) */
  cgroupNs?: boolean;
  /** `--device`: host device nodes made in the container's /dev and allowed by its device cgroup */
  devices?: Array<{
    path: string;
    type: 'c' | 'b';
    major: number;
    minor: number;
    fileMode: number;
    uid: number;
    gid: number;
    access: string;
  }>;
  oomKillDisable?: boolean;
  oomScoreAdj?: number;
}

export interface Resources {
  memory?: number; // bytes, limit
  memorySwap?: number; // bytes, -1 unlimited
  memoryReservation?: number;
  cpuShares?: number;
  cpuQuota?: number; // microseconds per period
  cpuPeriod?: number;
  cpusetCpus?: string;
  pidsLimit?: number; // <=0 unlimited
  blkioWeight?: number;
  memorySwappiness?: number; // 0-100
  cpusetMems?: string;
  /** `--device-{read,write}-{bps,iops}`: per block device limits */
  throttle?: Partial<
    Record<'readBps' | 'writeBps' | 'readIops' | 'writeIops', Array<{ major: number; minor: number; rate: number }>>
  >;
  /** cgroup v2 interface files and the values to write (`memory.high`: `1073741824`): OCI `linux.resources.unified` */
  unified?: Record<string, string>;
}

export type RuntimeName = 'crun' | 'runc';

export interface CreateOptions {
  id: string;
  /** Directory holding config.json (written by the runtime from `spec`). */
  bundleDir: string;
  runtime: RuntimeName;
  tty: boolean;
  /** Keep stdin open for attach (`-i`). */
  openStdin: boolean;
  /** Close the container's stdin when the first attached client detaches (`--stdin-once`). */
  stdinOnce: boolean;
  /** k8s-file log path (conmon writes `<RFC3339Nano> stdout|stderr F|P <line>`). */
  logPath: string;
  /**
   * The rootfs mounts to make at `target` in a mount namespace of conmon's own (conmon.ts
   * `Staged`) instead of the host's; absent: the caller mounted the rootfs on the host.
   */
  stage?: { mounts: Array<{ type: string; source: string; options: string[] }>; target: string };
}

/**
 * A spec made once the staged rootfs is mounted: `view` is where the daemon reads it
 * (`/proc/<pid>/root<target>`), e.g. the container's /etc/passwd for the user's ids.
 */
export type SpecOfRootfs = (view: string) => Promise<SpecInput>;

/**
 * A container's spec as `create` takes it: made; still being made (the user's ids read from a
 * rootfs on the host while conmon starts); or made from a staged rootfs (`SpecOfRootfs`).
 */
export type SpecArg = SpecInput | Promise<SpecInput> | SpecOfRootfs;

export type RuntimeStatus = 'created' | 'running' | 'paused' | 'stopped';

/**
 * An attach session to a container or an exec process through conmon's attach socket.
 * Writing to `stdin` feeds the process; `output` emits ('stdout'|'stderr', Buffer) chunks
 * and 'end' when the process's output ends.
 */
export interface AttachSession {
  stdin: NodeJS.WritableStream | null;
  onOutput(cb: (stream: 'stdout' | 'stderr', chunk: Buffer) => void): void;
  onEnd(cb: () => void): void;
  /** Closes the container's stdin (EOF), leaving the session open for output. */
  closeStdin(): void;
  /** Detaches; the container goes on. */
  close(): void;
}

export interface ExecOptions {
  args: string[];
  env: string[];
  cwd: string;
  user: { uid: number; gid: number; additionalGids: number[] };
  tty: boolean;
  openStdin: boolean;
  privileged: boolean;
  /** No attach session: the process runs on its own (`exec -d`). */
  detach?: boolean;
  /** Extra capabilities beyond the container's. */
  capAdd?: string[];
}

export interface ExecHandle {
  pid: number;
  /** Attach session of the exec process (null when detached). */
  attach: AttachSession | null;
  /** conmon's k8s-file log of the exec's output (kept a second after it exits) */
  logPath: string;
  /** Resolves with the exit code when the process ends. */
  wait(): Promise<number>;
  resize(h: number, w: number): Promise<void>;
}

/** Container resource usage read from cgroups v1 or v2, in Docker's /stats shape. */
export interface CgroupStats {
  cpuTotalNs: number;
  cpuUserNs: number;
  cpuSystemNs: number;
  perCpuNs: number[];
  systemCpuNs: number;
  onlineCpus: number;
  memUsage: number;
  memLimit: number;
  memStats: Record<string, number>;
  pids: number;
  pidsLimit: number;
  blkioRead: number;
  blkioWrite: number;
  /** cgroup v1 only (0 on v2): memory.max_usage_in_bytes, memory.failcnt */
  memMaxUsage: number;
  memFailcnt: number;
  /** cpu.stat: CFS periods, throttled periods, throttled time (ns) */
  throttling: { periods: number; throttledPeriods: number; throttledTimeNs: number };
  /**
   * blkio_stats as dockerd 20.10 fills it: v1, every `blkio.*_recursive` file the kernel has
   * (CFQ) plus the throttle files, their lines as they are (`Read`, `Write`, `Sync`, `Async`,
   * `Discard`, `Total`); v2, io.stat's bytes as `read`/`write` in io_service_bytes_recursive
   * and null for the rest.
   */
  blkio: Record<BlkioField, BlkioEntry[] | null>;
}

export type BlkioField =
  | 'io_service_bytes_recursive'
  | 'io_serviced_recursive'
  | 'io_queue_recursive'
  | 'io_service_time_recursive'
  | 'io_wait_time_recursive'
  | 'io_merged_recursive'
  | 'io_time_recursive'
  | 'sectors_recursive';

export interface BlkioEntry {
  major: number;
  minor: number;
  op: string;
  value: number;
}

/** What the host can do, detected at start and shown by `info`. */
export interface HostInfo {
  cgroupVersion: 1 | 2;
  cgroupDriver: 'cgroupfs';
  /** e.g. 'moved hugetlb from cgroup2 to a v1 hierarchy' or '' */
  cgroupRepair: string;
  /** Host settings the daemon adjusted for speed (shown by `info`). */
  tuning: string[];
  runtimes: Partial<Record<RuntimeName, { path: string; version: string }>>;
  defaultRuntime: RuntimeName;
  conmon: { path: string; version: string };
  seccomp: boolean;
  /** whether `--blkio-weight` can be applied (else dockerd's warning, and the weight is discarded) */
  blkioWeight: boolean;
  apparmor: boolean;
  selinux: boolean;
  /** The daemon's bounding set: what --privileged and --cap-add ALL grant. */
  capabilities: string[];
  /** The daemon's own rlimits: container defaults (soft, hard). */
  rlimits: Record<string, { soft: number; hard: number }>;
  init: string | null; // path of the --init binary
  /**
   * The masked directories that are directories on this kernel (of MASKED_PATHS), and the empty
   * directory berth binds read-only over them where runtimes mount a tmpfs each (README "Masked
   * directories": every superblock ever alive makes every later memory cgroup bigger). Unset: the
   * runtime masks them.
   */
  maskDir?: { source: string; paths: string[] } | undefined;
  /**
   * cgroup v1: the read-only tmpfs berth binds at a container's /sys/fs/cgroup (one for all, where
   * a runtime mounts a tmpfs per container), with an empty directory per v1 hierarchy mounted under
   * `root` (`names`, each then bound from the container's own cgroup) and the host's links between them (README
   * "/sys/fs/cgroup"). Unset: the runtime mounts its own.
   */
  cgroupSkel?: { source: string; root: string; names: string[] } | undefined;
  /**
   * CRIU: its version, the runtimes built with it (`capable`: their containers get a network
   * namespace berth makes, so a restore can go back into one) and, once the probe has dumped and
   * restored a process here, the runtimes that can checkpoint (`runtimes`; empty until then or
   * when it failed, with `reason`).
   */
  checkpoint: {
    criu: string;
    criuPath: string;
    runtimes: RuntimeName[];
    capable: RuntimeName[];
    probe: 'pending' | 'ok' | 'failed';
    reason: string;
    preCopy: boolean;
    preCopyReason: string;
    postCopy: boolean;
    postCopyReason: string;
    /** the CRIU configuration file berth gives runc's CRIU runs (set by the runtime at init) */
    configFile?: string;
  };
  kernelVersion: string;
  memTotal: number;
  ncpu: number;
  warnings: string[];
}

/** What the host's runtimes can do: every role reads it (`info`, limits checked at create). */
export interface HostProbe {
  host(): HostInfo;
}

/**
 * The task role: a container's one process under conmon, from create to delete, and its stdio.
 * The engine's lifecycle and live restore use it. Call order: create, then start (or none
 * after a restore: the process runs already), kill/pause/resume while it runs, delete once it
 * exited (idempotent).
 */
export interface TaskRuntime extends HostProbe {
  /**
   * Writes config.json from `spec`, starts conmon + `<runtime> create` (or `restore` from a
   * checkpoint), returns once the container's pid is known.
   */
  create(
    opts: CreateOptions,
    spec: SpecArg,
    restore?: { imagePath: string; workPath: string; tcpEstablished: boolean; lazyPages?: boolean },
  ): Promise<{ pid: number; conmonPid: number }>;
  start(id: string): Promise<void>;
  kill(id: string, signal: number, all?: boolean): Promise<void>;
  pause(id: string): Promise<void>;
  resume(id: string): Promise<void>;
  /** Removes the runtime's state and conmon's files. Idempotent. */
  delete(id: string): Promise<void>;
  state(id: string): Promise<{ status: RuntimeStatus; pid: number } | null>;
  /** Exit code conmon recorded, or null while it runs. */
  exitCode(id: string): Promise<{ code: number; at: Date } | null>;
  /** Calls `cb` once for every container exit conmon records from now on (exit files). */
  watchExits(cb: (id: string) => void): void;
  /** Whether the container's conmon still runs (after a daemon restart). */
  monitorAlive(id: string): Promise<boolean>;
  attach(id: string, opts: { stdin: boolean }): Promise<AttachSession>;
  resize(id: string, h: number, w: number): Promise<void>;
  /** Asks conmon to reopen the container's log file (it was moved away); false when no conmon runs for it. */
  reopenLog(id: string): Promise<boolean>;
  update(id: string, resources: Resources): Promise<void>;
}

/** The exec role: more processes in a running container (API execs, health probes). */
export interface ExecRuntime {
  exec(id: string, opts: ExecOptions): Promise<ExecHandle>;
}

/** The stats role: what a running container uses, and its processes (`stats`, `top`). */
export interface StatsRuntime {
  stats(id: string): Promise<CgroupStats>;
  /** Processes of the container: pid list (host pids). */
  pids(id: string): Promise<number[]>;
  /** How many processes the kernel's OOM killer ended in the container's cgroup (0 when it is gone). */
  oomKills(id: string): Promise<number>;
}

/** The checkpoint role: CRIU through the runtime (dump, post-copy's two sides). */
export interface CheckpointRuntime extends HostProbe {
  /**
   * CRIU checkpoint of a running container (its runtime must be able to), under the daemon's
   * checkpoint deadline: past it, or when `signal` aborts, CRIU is ended and `initPid`'s
   * container goes on as before (Unavailable, naming the stage and CRIU's log in `workPath`).
   */
  checkpoint(
    id: string,
    o: {
      imagePath: string;
      workPath: string;
      leaveRunning: boolean;
      tcpEstablished: boolean;
      preDump?: boolean;
      parentPath?: string;
      initPid: number;
      signal?: AbortSignal;
    },
  ): Promise<void>;
  /**
   * Post-copy: a checkpoint without the memory pages, which a page server at `pageServer`
   * (ADDRESS:PORT) then serves to whoever restores it. Resolves once the dump is done and the
   * server listens; `served` settles when every page was fetched (CRIU ends the process then).
   * Until then the process is stopped, not gone: `cancel()` ends the page server and it goes on.
   */
  checkpointLazy(
    id: string,
    o: {
      imagePath: string;
      workPath: string;
      tcpEstablished: boolean;
      pageServer: string;
      initPid: number;
    },
  ): Promise<{ served: Promise<void>; cancel: () => Promise<void> }>;
  /**
   * The restoring side of post-copy: CRIU's lazy-pages daemon for a checkpoint in `imagePath`,
   * fetching pages from `pageServer` as the restored process faults on them (and the rest in the
   * background). Resolves once it is ready for a restore with `lazyPages`; `done` settles when all
   * pages arrived; `cancel()` ends it (a restore that did not happen).
   */
  lazyPages(o: {
    imagePath: string;
    workPath: string;
    pageServer: string;
  }): Promise<{ done: Promise<void>; cancel: () => void }>;
}

/** The build runner role: a build step's container, run to completion without conmon. */
export interface BuildRunner extends HostProbe {
  /**
   * `<runtime> run` in the foreground, its stdout/stderr to `onOutput`, stdin /dev/null.
   * Aborting kills it. Resolves with the exit code; the runtime's state is gone afterwards.
   */
  runToCompletion(
    o: {
      id: string;
      bundleDir: string;
      runtime: RuntimeName;
      signal?: AbortSignal;
      onOutput: (stream: 'stdout' | 'stderr', chunk: Buffer) => void;
    },
    spec: SpecInput,
  ): Promise<number>;
}

/**
 * The OCI runtime + conmon, every role in one (runtime/oci.ts): it only executes, it holds no
 * state of its own beyond what conmon and the runtime keep under the run directory (so a
 * restarted daemon can reconnect). Consumers take the role they use, not this.
 */
export interface Runtime extends TaskRuntime, ExecRuntime, StatsRuntime, CheckpointRuntime, BuildRunner {
  /**
   * Removes the empty cgroups containers left under berth's parent (a crash, a runtime that gave
   * up on a busy one), not those made since the runtime opened. Slow with thousands of containers
   * (a failing rmdir per cgroup and hierarchy): the daemon calls it in the background once live
   * restore is done. `keep(id)`: a container's cgroup not even looked at (a running one). Returns
   * how many went.
   */
  pruneCgroups(keep?: (id: string) => boolean): Promise<number>;
}
