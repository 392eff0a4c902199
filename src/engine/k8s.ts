/**
 * The CRI's verbs (cri/ is their front door): containers of the `k8s.io` namespace, kept apart
 * from the Docker API's as containerd keeps its `k8s.io` namespace (record.ts `namespace`): the
 * Docker verbs neither list nor find them, and names are unique within each namespace. Images are
 * shared. A container is made by the same all-or-nothing create as Docker's, from a Docker create
 * body the front door composes, and runs under the same lifecycle, restart-free, live-restored.
 */
import { existsSync, promises as fsp } from 'node:fs';
import { dirname, join } from 'node:path';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { Duplex, PassThrough } from 'node:stream';
import { failedPrecondition, internal, invalidArgument, isBerthError } from '../base/errors.js';
import type { ContainerId } from '../base/ids.js';
import type { AttachSession, CgroupStats, ExecHandle, Resources } from '../runtime/types.js';
import type { CniPodRequest } from '../network/cni-pod.js';
import type { ContainerRecord } from './record.js';
import type { Engine } from './engine.js';
import type { EngineEvent } from './events.js';
import { execIn } from './exec-in.js';
import { actorOf } from './actor.js';
import { NAMESPACE_LABEL } from './system.js';
import { resourcesOf } from './config.js';
import { checkUnified } from '../runtime/spec.js';
import { LogParser, type LogLine } from './logs.js';
import { netnsAdd } from '../network/host.js';
import { PodNamespaces, POD_NETNS_DIR, POD_NETNS_PREFIX, type PinnedNs } from './pod-ns.js';

export type { AttachSession, ExecHandle, EngineEvent };

const NS = 'k8s.io' as const;

/** A CRI container as the front door sees it (no services, no handles). */
export interface K8sContainer {
  id: ContainerId;
  name: string;
  /** ISO times; ZERO_TIME when not yet */
  created: string;
  startedAt: string;
  finishedAt: string;
  status: ContainerRecord['state']['status'];
  pid: number;
  exitCode: number;
  oomKilled: boolean;
  error: string;
  image: string;
  imageId: string;
  labels: Record<string, string>;
  logPath: string;
  /** the resources it runs with (Docker HostConfig's names) */
  resources: {
    memory: number;
    cpuShares: number;
    cpuQuota: number;
    cpuPeriod: number;
    cpusetCpus: string;
    cpusetMems: string;
    memorySwap: number;
  };
  user: string;
  hostname: string;
  /** the signal a stop sends first (Docker's StopSignal, the image's or the container's; '' for SIGTERM) */
  stopSignal: string;
  /** the pod namespaces it joins at start (made for its pod before it: engine/pod-ns.ts), '' for its own */
  netnsPath: string;
  ipcnsPath: string;
}

export interface K8sStats {
  cgroup: CgroupStats | null;
  /** bytes of the writable layer */
  writableBytes: number;
  snapshotsDir: string;
}

/**
 * How a pod sandbox gets its network (its namespace is the infra process's). The default gives
 * loopback only; CNI (src/network/cni.ts) slots in through berthd.
 */
export interface PodNetwork {
  readonly name: string;
  setUp(pod: PodNetRequest): Promise<{ ip: string; additionalIps: string[] }>;
  tearDown(pod: PodNetRequest): Promise<void>;
  status(): Promise<{ ready: boolean; reason: string; message: string }>;
}

/** What the pod network is asked for a sandbox (the CNI runner's request: network/cni.ts). */
export type PodNetRequest = CniPodRequest;

/** crun gives a container with `--network none` its own namespace with lo up: that is all this network does. */
export const loopbackOnly: PodNetwork = {
  name: 'loopback',
  setUp: async () => ({ ip: '', additionalIps: [] }),
  tearDown: async () => undefined,
  status: async () => ({ ready: true, reason: '', message: 'loopback only (no CNI configured)' }),
};

/** Largest ExecSync output kept per stream (the CRI's 16 MiB, CVE-2022-1708). */
export const EXEC_SYNC_CAP = 16 << 20;

export const PAUSE_IMAGE = 'localhost/berth/pause:catatonit';
const CATATONIT = '/usr/bin/catatonit';

export class K8sVerbs {
  network: PodNetwork = loopbackOnly;
  readonly podNs: PodNamespaces;

  constructor(private readonly e: Engine) {
    this.podNs = new PodNamespaces(join(e.runRoot, 'pods'));
  }

  private rec(id: string): ContainerRecord {
    return this.e.store.get(id, NS);
  }

  list(): K8sContainer[] {
    return this.e.store.inNamespace(NS).map((r) => this.view(r));
  }

  get(id: string): K8sContainer {
    return this.view(this.rec(id));
  }

  find(id: string): K8sContainer | undefined {
    const r = this.e.store.find(id, NS);
    return r && this.view(r);
  }

  private view(r: ContainerRecord): K8sContainer {
    const hc = r.hostConfig;
    return {
      id: r.id,
      name: r.name,
      created: r.created,
      startedAt: r.state.startedAt,
      finishedAt: r.state.finishedAt,
      status: r.state.status,
      pid: r.state.pid,
      exitCode: r.state.exitCode,
      oomKilled: r.state.oomKilled,
      error: r.state.error,
      image: r.config.Image ?? '',
      imageId: r.imageId,
      labels: { ...(r.config.Labels ?? {}) },
      logPath: this.e.logPathOf(r.id),
      resources: {
        memory: hc.Memory ?? 0,
        cpuShares: hc.CpuShares ?? 0,
        cpuQuota: hc.CpuQuota ?? 0,
        cpuPeriod: hc.CpuPeriod ?? 0,
        cpusetCpus: hc.CpusetCpus ?? '',
        cpusetMems: hc.CpusetMems ?? '',
        memorySwap: hc.MemorySwap ?? 0,
      },
      user: r.config.User ?? '',
      hostname: r.config.Hostname ?? '',
      stopSignal: r.config.StopSignal ?? '',
      netnsPath: r.netnsPath ?? '',
      ipcnsPath: r.ipcnsPath ?? '',
    };
  }

  /**
   * Creates a container in the k8s.io namespace from a Docker create body (all-or-nothing, as
   * Docker's). `logPath`: conmon's k8s-file log (its directory is made; the CRI's log_path). `ns`:
   * the pod's namespaces it joins at start, by path (made before: makePodNetns, pinPodNamespaces).
   */
  async create(
    body: Record<string, unknown>,
    name: string,
    logPath: string | undefined,
    ns: { netnsPath?: string; ipcnsPath?: string } = {},
  ): Promise<ContainerId> {
    const config = body as { Labels?: Record<string, string> };
    config.Labels = { ...(config.Labels ?? {}), [NAMESPACE_LABEL]: NS };
    let madeDir: string | undefined;
    if (logPath) {
      if (!logPath.startsWith('/')) throw invalidArgument(`log path ${logPath} is not absolute`);
      madeDir = (await fsp.mkdir(dirname(logPath), { recursive: true })) ?? undefined;
    }
    try {
      const into = {
        namespace: NS,
        ...(logPath ? { logPath } : {}),
        ...(ns.netnsPath ? { netnsPath: ns.netnsPath } : {}),
        ...(ns.ipcnsPath ? { ipcnsPath: ns.ipcnsPath } : {}),
      };
      const { id } = await this.e.create(body, name, undefined, into);
      return id;
    } catch (err) {
      if (madeDir) await fsp.rm(madeDir, { recursive: true, force: true }).catch(() => undefined);
      throw err;
    }
  }

  async start(id: string): Promise<void> {
    const rec = this.rec(id);
    if (rec.state.status === 'running') return;
    if (rec.state.status !== 'created')
      throw failedPrecondition(`container ${id} is ${rec.state.status}: only a created container can be started`);
    await this.e.lifecycle.start(rec);
  }

  /** Idempotent: a container that does not run is left as it is. timeoutSec 0 kills at once. */
  async stop(id: string, timeoutSec: number): Promise<void> {
    const rec = this.e.store.find(id, NS);
    if (!rec) return;
    await this.e.lifecycle.stop(rec, timeoutSec);
  }

  /**
   * Idempotent: a container already gone is no error. `podNs`: it is a pod's sandbox, and the pod
   * namespaces made for it (makePodNetns, pinPodNamespaces) go with it; a pod's container only
   * joins them and leaves them be.
   */
  async remove(id: string, podNs = false): Promise<void> {
    const rec = this.e.store.find(id, NS);
    if (!rec) return;
    try {
      await this.e.remove(rec.id, { force: true });
    } catch (err) {
      if (isBerthError(err) && err.code === 'NotFound') return;
      throw err;
    }
    if (podNs && rec.netnsPath) await this.dropPodNamespaces(rec.netnsPath, rec.ipcnsPath);
  }

  /**
   * The paths of a new pod's namespaces: `/run/netns/berth-cri-<hex>` for its network (where CNI
   * plugins and `ip netns` look) and, with `ipc`, a file under the exec root for its IPC namespace.
   */
  newPodNamespaces(ipc: boolean): PinnedNs {
    return this.podNs.pathsOf(`${POD_NETNS_PREFIX}${randomBytes(8).toString('hex')}`, ipc);
  }

  /**
   * A named network namespace for a pod with an infra process, made before that process exists, so
   * that CNI's ADD and the runtime's start go on at once.
   */
  async makePodNetns(path: string): Promise<void> {
    const name = path.slice(`${POD_NETNS_DIR}/`.length);
    if (!path.startsWith(`${POD_NETNS_DIR}/${POD_NETNS_PREFIX}`) || name.includes('/'))
      throw invalidArgument(`${path} is not a pod network namespace path`);
    // lo comes up by CNI's loopback plugin, which every ADD runs (a pod netns is made only with CNI)
    await netnsAdd(name, false);
  }

  /** A pod's network (lo up) and IPC namespaces with no process in them, pinned at `p`'s paths. */
  pinPodNamespaces(p: PinnedNs): Promise<void> {
    return this.podNs.pin(p);
  }

  /** Removes namespaces makePodNetns or pinPodNamespaces made (and only such ones); idempotent. */
  async dropPodNamespaces(net: string, ipc?: string): Promise<void> {
    await this.podNs.unpin({ net, ...(ipc ? { ipc } : {}) });
  }

  /**
   * Runs `cmd` in the running container until it exits or `timeoutMs` (0: no limit) passes; then
   * the process and its descendants are killed. The output is conmon's log of the exec (the
   * streams apart, nothing lost at the end), each stream cut at EXEC_SYNC_CAP.
   */
  async execSync(
    id: string,
    cmd: string[],
    timeoutMs: number,
  ): Promise<{ stdout: Buffer; stderr: Buffer; exitCode: number; timedOut: boolean }> {
    const handle = await this.exec(id, cmd, false, false, true);
    let timer: NodeJS.Timeout | undefined;
    const code = await (
      timeoutMs > 0
        ? Promise.race([
            handle.wait(),
            new Promise<null>((resolve) => (timer = setTimeout(() => resolve(null), timeoutMs))),
          ])
        : handle.wait()
    ).finally(() => clearTimeout(timer));
    if (code === null) {
      await killTree(handle.pid);
      // conmon reports the killed process's end; bounded all the same
      await Promise.race([handle.wait().catch(() => -1), new Promise((r) => setTimeout(r, 10_000).unref())]);
      return { stdout: Buffer.alloc(0), stderr: Buffer.alloc(0), exitCode: -1, timedOut: true };
    }
    const out = { stdout: [] as Buffer[], stderr: [] as Buffer[] };
    const size = { stdout: 0, stderr: 0 };
    const keep = (l: LogLine) => {
      const b = Buffer.from(l.text);
      const room = EXEC_SYNC_CAP - size[l.stream];
      if (room <= 0) return;
      out[l.stream].push(b.length > room ? b.subarray(0, room) : b);
      size[l.stream] += Math.min(room, b.length);
    };
    const parser = new LogParser();
    const fh = await fsp.open(handle.logPath).catch(() => null);
    if (fh) {
      try {
        // at most twice the caps read: what is beyond would be dropped anyway
        const buf = Buffer.alloc(64 * 1024);
        for (let read = 0; read < 4 * EXEC_SYNC_CAP;) {
          const { bytesRead } = await fh.read(buf, 0, buf.length, null);
          if (bytesRead === 0) break;
          read += bytesRead;
          parser.push(buf.subarray(0, bytesRead), keep);
        }
      } finally {
        await fh.close();
      }
    }
    parser.push(Buffer.alloc(0), keep);
    parser.flush(keep);
    return { stdout: Buffer.concat(out.stdout), stderr: Buffer.concat(out.stderr), exitCode: code, timedOut: false };
  }

  /** A process in the running container with its defaults (environment, user, working dir). */
  async exec(id: string, cmd: string[], tty: boolean, stdin: boolean, detach = false): Promise<ExecHandle> {
    const rec = this.rec(id);
    if (rec.state.status !== 'running') throw failedPrecondition(`container ${id} is not running`);
    if (cmd.length === 0) throw invalidArgument('cmd is empty');
    return execIn({ runtime: this.e.runtime, rootfsView: (r) => this.e.rootfsView(r) }, rec, {
      args: cmd,
      env: [],
      cwd: '',
      user: '',
      tty,
      openStdin: stdin,
      privileged: false,
      detach,
    });
  }

  /** The container's main process's stdio (conmon's attach socket). */
  async attach(id: string, stdin: boolean): Promise<AttachSession> {
    const rec = this.rec(id);
    if (rec.state.status !== 'running') throw failedPrecondition(`container ${id} is not running`);
    return this.e.runtime.attach(rec.id, { stdin });
  }

  resize(id: string, h: number, w: number): Promise<void> {
    return this.e.runtime.resize(this.rec(id).id, h, w);
  }

  /** Asks conmon to reopen the log at its path; FailedPrecondition when the container does not run. */
  async reopenLog(id: string): Promise<void> {
    const rec = this.rec(id);
    if (rec.state.status !== 'running' || !(await this.e.runtime.reopenLog(rec.id)))
      throw failedPrecondition(`container ${id} is not running`);
  }

  async stats(id: string): Promise<K8sStats> {
    const rec = this.rec(id);
    const running = rec.state.status === 'running' || rec.state.status === 'paused';
    const cgroup = running ? await this.e.runtime.stats(rec.id).catch(() => null) : null;
    return {
      cgroup,
      writableBytes: await this.e.snapshots.usage(rec.id).catch(() => 0),
      snapshotsDir: join(this.e.root, 'snapshots'),
    };
  }

  /** Changes the cgroup limits of a container (running: at once; in the record for its next start). */
  async update(
    id: string,
    set: Partial<Record<'Memory' | 'CpuShares' | 'CpuQuota' | 'CpuPeriod', number>> & {
      CpusetCpus?: string;
      CpusetMems?: string;
      /** cgroup v2 files (OCI linux.resources.unified); replaces the container's set */
      Unified?: Record<string, string>;
    },
  ): Promise<void> {
    const rec = this.rec(id);
    const merged = { ...rec.hostConfig, ...set };
    const resources: Resources = resourcesOf(merged);
    checkUnified(resources, this.e.runtime.host().cgroupVersion); // also when stopped: its next start would fail
    if (rec.state.status === 'running' || rec.state.status === 'paused') await this.e.runtime.update(rec.id, resources);
    rec.hostConfig = merged;
    this.e.store.save(rec);
    this.e.events.emit('container', 'update', rec.id, actorOf(rec));
  }

  /** The network namespace of a running container's process (the sandbox's: /proc/<pid>/ns/net). */
  netnsOf(id: string): string {
    const rec = this.rec(id);
    if (rec.netnsPath && existsSync(rec.netnsPath)) return rec.netnsPath;
    if (rec.state.status !== 'running' || !rec.state.pid) throw failedPrecondition(`container ${id} is not running`);
    return `/proc/${rec.state.pid}/ns/net`;
  }

  /** Keeps a JSON document in the container's record (what the front door must find again after a restart). */
  setNote(id: string, key: string, value: string): void {
    const rec = this.rec(id);
    rec.config.Labels = { ...(rec.config.Labels ?? {}), [key]: value };
    this.e.store.save(rec);
  }

  /**
   * A pinned sandbox's state changes as events (it has no process whose start or end would make
   * them): `start` once its namespaces and network are ready, `die` when it is stopped.
   */
  announce(id: string, action: 'start' | 'die'): void {
    const rec = this.rec(id);
    this.e.events.emit('container', action, rec.id, actorOf(rec));
  }

  /** Live events of k8s.io containers (create, start, die, destroy, ...); the result unsubscribes. */
  subscribe(l: (ev: EngineEvent) => void): () => void {
    return this.e.events.subscribe((ev) => {
      if (ev.Type === 'container' && ev.Actor.Attributes[NAMESPACE_LABEL] === NS) l(ev);
    });
  }

  /**
   * A TCP connection to 127.0.0.1:port inside a network namespace, as a duplex (the streaming
   * server's port-forward): the host's static busybox `nc` run there through nsenter. It ends when
   * either side closes or the signal aborts.
   */
  connectIn(netns: string, port: number, signal: AbortSignal): { stream: Duplex; done: Promise<number> } {
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw invalidArgument(`invalid port ${port}`);
    const p = spawn('nsenter', [`--net=${netns}`, '--', 'busybox', 'nc', '127.0.0.1', String(port)], {
      stdio: ['pipe', 'pipe', 'ignore'],
      signal,
    });
    p.on('error', () => undefined);
    const stream = Duplex.from({ writable: p.stdin, readable: p.stdout });
    const done = new Promise<number>((resolve) => p.on('close', (c) => resolve(c ?? -1)));
    return { stream, done };
  }

  /**
   * The pause image: made here, without a registry, from Debian's static catatonit (its `-P` is a
   * pause mode: it sleeps as pid 1 and reaps). Imported once through the image store's import path.
   */
  async ensurePauseImage(): Promise<string> {
    try {
      return this.e.images.get(PAUSE_IMAGE).id;
    } catch (err) {
      if (!isBerthError(err) || err.code !== 'NotFound') throw err;
    }
    const bin = await fsp.readFile(CATATONIT).catch(() => {
      throw internal(`${CATATONIT} is missing (Debian's catatonit package): no pause image for pod sandboxes`);
    });
    const layer = Buffer.concat([
      ...['dev/', 'proc/', 'sys/', 'etc/'].map((name) => ustar(name, 0o755, Buffer.alloc(0), '5')),
      ustar('catatonit', 0o755, bin, '0'),
      Buffer.alloc(1024),
    ]);
    const img = await this.e.images.importRootfs(new PassThrough().end(layer), {
      ref: PAUSE_IMAGE,
      message: 'berth pause image (catatonit -P)',
      config: { Entrypoint: ['/catatonit', '-P'], Cmd: null, Labels: { 'io.berth.pause': 'catatonit' } },
    });
    this.e.events.emit('image', 'import', img.id, { name: PAUSE_IMAGE });
    return img.id;
  }
}

/** SIGKILL to a process and every descendant of it (an exec's `sh -c` leaves its children otherwise). */
async function killTree(pid: number): Promise<void> {
  const children = new Map<number, number[]>();
  for (const e of await fsp.readdir('/proc').catch(() => [] as string[])) {
    if (!/^\d+$/.test(e)) continue;
    const stat = await fsp.readFile(`/proc/${e}/stat`, 'utf8').catch(() => '');
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    if (ppid) children.set(ppid, [...(children.get(ppid) ?? []), Number(e)]);
  }
  const all: number[] = [];
  const walk = (p: number) => {
    all.push(p);
    for (const c of children.get(p) ?? []) walk(c);
  };
  walk(pid);
  for (const p of all)
    try {
      process.kill(p, 'SIGKILL');
    } catch {
      /* gone meanwhile */
    }
}

/** One ustar entry (header and padded data), root-owned: enough for the pause image's layer. */
function ustar(name: string, mode: number, data: Buffer, type: '0' | '5'): Buffer {
  const h = Buffer.alloc(512);
  const put = (off: number, len: number, v: string) => h.write(v.slice(0, len), off, len, 'ascii');
  const oct = (off: number, len: number, n: number) => put(off, len, n.toString(8).padStart(len - 1, '0') + '\0');
  put(0, 100, name);
  oct(100, 8, mode);
  oct(108, 8, 0);
  oct(116, 8, 0);
  oct(124, 12, data.length);
  oct(136, 12, 0);
  h.fill(' ', 148, 156);
  put(156, 1, type);
  put(257, 6, 'ustar\0');
  put(263, 2, '00');
  let sum = 0;
  for (const b of h) sum += b;
  oct(148, 7, sum);
  h[155] = 0x20;
  const pad = Buffer.alloc((512 - (data.length % 512)) % 512);
  return Buffer.concat([h, data, pad]);
}
