/**
 * The start path, from the status table's yes to a running process: the network namespace berth
 * makes, the rootfs, the spec, the wiring, the runtime's create (or restore), waiting attachers,
 * the runtime's start. Nothing of a failed start stays (namespace, endpoints, runtime state).
 * Also the check create makes of a spec (`validateSpec`) and what the lifecycle needs (its deps).
 */
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { conflict, errorMessage, isBerthError, wrap } from '../base/errors.js';
import { log } from '../base/log.js';
import type { Clock } from '../base/clock.js';
import type { AttachSession, CheckpointRuntime, RuntimeName, StatsRuntime, TaskRuntime } from '../runtime/types.js';
import type { HostConfig } from '../spec/engine-api.js';
import { buildSpec } from '../runtime/spec.js';
import { resolveUser, type ResolvedUser } from '../runtime/user.js';
import type { SpecArg, SpecInput } from '../runtime/types.js';
import type { Mount } from '../snapshot/types.js';
import { exitCodeOfStartFailure } from '../runtime/errors.js';
import type { NetworkManager } from '../network/manager.js';
import { netnsAdd, netnsDel } from '../network/host.js';
import type { VolumeManager } from '../volume/manager.js';
import { ZERO_TIME, type ContainerRecord } from './record.js';
import type { ContainerStore } from './store.js';
import type { EventBus } from './events.js';
import type { Waiters } from './waiters.js';
import type { HealthMonitor } from './health.js';
import { specInputOf } from './spec-input.js';
import { attachableOf, writeNetFiles } from './net.js';
import { linkEnv, linkHosts, resolveLinks } from './links.js';

/** A start that restores a checkpoint: its CRIU images, and the addresses (network id -> IPv4) to keep. */
export interface Restore {
  imagePath: string;
  workPath: string;
  tcpEstablished: boolean;
  addresses: Record<string, string>;
  /** post-copy: the page server the memory pages come from */
  pageServer?: string;
}

/** A container's files and wiring, as the engine keeps them (paths, rootfs mount, networking). */
export interface ContainerHost {
  containerDir(id: string): string;
  logPathOf(id: string): string;
  /** Mounts the rootfs if it is not; its path. */
  ensureMounted(rec: ContainerRecord): Promise<string>;
  /** The rootfs mounts to make in conmon's own mount namespace, or null: mounted on the host (Engine.stageRootfs). */
  stageRootfs(rec: ContainerRecord): Promise<{ mounts: Mount[]; target: string } | null>;
  /** The network namespace berth makes for the container, or null. */
  namedNetns(rec: ContainerRecord): string | null;
  unwire(rec: ContainerRecord, processGone?: boolean): Promise<void>;
  /** Containers that mount volume `name`. */
  volumeUsers(name: string): string[];
  isRemoving(id: string): boolean;
  /** Forced removal (`--rm`, auto-remove after an exit). */
  remove(id: string, opts: { force: boolean; volumes?: boolean }): Promise<void>;
}

/** Named network namespaces (`/run/netns/<name>`): `ip netns` on the host unless a test says otherwise. */
export interface NetnsOps {
  exists(name: string): boolean;
  add(name: string): Promise<void>;
  /** Never fails (a namespace already gone is fine). */
  del(name: string): Promise<void>;
}

export const hostNetns: NetnsOps = {
  exists: (name) => existsSync(`/run/netns/${name}`),
  add: netnsAdd,
  del: netnsDel,
};

/** What the lifecycle needs; the engine fills it (engine.ts). */
export interface LifecycleDeps {
  clock: Clock;
  store: Pick<ContainerStore, 'find' | 'get' | 'save'>;
  /** the task role, and post-copy's lazy-pages daemon for a restore */
  runtime: TaskRuntime & Pick<CheckpointRuntime, 'lazyPages'> & Pick<StatsRuntime, 'oomKills'>;
  events: Pick<EventBus, 'emit'>;
  waiters: Pick<Waiters, 'exited'>;
  health: Pick<HealthMonitor, 'start' | 'stop'>;
  networks: NetworkManager;
  volumes: Pick<VolumeManager, 'mountFor' | 'unmountFor'>;
  defaultRuntime: RuntimeName;
  containers: ContainerHost;
  /** default: the host's (`hostNetns`) */
  netns?: NetnsOps;
}

interface PendingAttach {
  stdin: boolean;
  resolve: (s: AttachSession) => void;
  reject: (e: unknown) => void;
}

/**
 * Attachers of a container that is not running yet: they get their session after the runtime
 * created it and before its process runs (no output lost), or the start's error.
 */
export class AttachBroker {
  private readonly pending = new Map<string, PendingAttach[]>();

  constructor(private readonly runtime: Pick<TaskRuntime, 'attach'>) {}

  /**
   * Attach to the container's stdio. A running container is attached now; a created or exited one
   * on its next start, after the runtime created it and before its process runs (no output lost).
   */
  attach(rec: ContainerRecord, opts: { stdin: boolean }): { session: Promise<AttachSession>; cancel: () => void } {
    if (rec.state.status === 'running' || rec.state.status === 'paused') {
      return { session: this.runtime.attach(rec.id, opts), cancel: () => undefined };
    }
    let entry: PendingAttach | undefined;
    const session = new Promise<AttachSession>((resolve, reject) => {
      entry = { stdin: opts.stdin, resolve, reject };
      const list = this.pending.get(rec.id) ?? [];
      list.push(entry);
      this.pending.set(rec.id, list);
    });
    const cancel = () => {
      const list = this.pending.get(rec.id);
      if (list && entry)
        this.pending.set(
          rec.id,
          list.filter((p) => p !== entry),
        );
    };
    return { session, cancel };
  }

  /** The start failed: its waiting attachers get its error. */
  fail(id: string, e: unknown): void {
    for (const p of this.pending.get(id) ?? []) p.reject(e);
    this.pending.delete(id);
  }

  /** The runtime created the container: every waiting attacher gets its session now. */
  async connect(id: string): Promise<void> {
    const pending = this.pending.get(id) ?? [];
    this.pending.delete(id);
    await Promise.all(
      pending.map(async (p) => {
        try {
          p.resolve(await this.runtime.attach(id, { stdin: p.stdin }));
        } catch (e) {
          p.reject(e);
        }
      }),
    );
  }
}

/** Builds the OCI spec with placeholder rootfs/user to reject bad caps, ulimits, resources at create time. */
export function validateSpec(d: Pick<LifecycleDeps, 'defaultRuntime' | 'runtime'>, hostConfig: HostConfig): void {
  const probe = {
    id: 'probe',
    name: 'probe',
    created: '',
    imageId: '',
    config: { Hostname: 'probe' },
    hostConfig,
    path: 'true',
    args: [],
    runtime: d.defaultRuntime,
    state: {
      status: 'created' as const,
      pid: 0,
      conmonPid: 0,
      exitCode: 0,
      error: '',
      oomKilled: false,
      startedAt: '',
      finishedAt: '',
    },
    restartCount: 0,
    manuallyStopped: false,
    execIds: [],
    mounts: [],
  } as unknown as ContainerRecord;
  const host = d.runtime.host();
  buildSpec(
    specInputOf(probe, { rootfs: '/', containerDir: '/', user: { uid: 0, gid: 0, additionalGids: [] }, host }),
    host,
  );
}

export async function startTask(
  d: LifecycleDeps,
  attach: AttachBroker,
  rec: ContainerRecord,
  restore?: Restore,
): Promise<{ pid: number; conmonPid: number }> {
  const t0 = performance.now();
  // post-copy: CRIU's lazy-pages daemon (which fetches the pages from the page server for this
  // restore) starts at once, while the rootfs and the network are made ready: downtime saved
  const lazy = restore?.pageServer
    ? d.runtime.lazyPages({
        imagePath: restore.imagePath,
        workPath: restore.workPath,
        pageServer: restore.pageServer,
      })
    : null;
  lazy?.catch(() => undefined);
  const stopLazy = () =>
    lazy?.then(
      (l) => l.cancel(),
      () => undefined,
    );
  try {
    return await startPrepared(d, attach, rec, restore, t0, lazy);
  } catch (e) {
    await stopLazy();
    throw e;
  }
}

async function startPrepared(
  d: LifecycleDeps,
  attach: AttachBroker,
  rec: ContainerRecord,
  restore: Restore | undefined,
  t0: number,
  lazy: Promise<unknown> | null,
): Promise<{ pid: number; conmonPid: number }> {
  // a container that can be checkpointed gets a namespace berth makes (CRIU then leaves the
  // network to berth, and a restore goes into a namespace wired beforehand); made while the
  // rootfs is mounted (two `ip` runs that need not wait for it)
  const named = d.containers.namedNetns(rec);
  const ns = d.netns ?? hostNetns;
  const netnsMade = named ? (ns.exists(named) ? ns.del(named) : Promise.resolve()).then(() => ns.add(named)) : null;
  netnsMade?.catch(() => undefined);
  // nothing of a failed start stays: the namespace goes once its making has settled
  const undoNetns = async () => {
    if (named) await netnsMade!.catch(() => undefined).then(() => ns.del(named));
  };
  let rootfs: string;
  let stage: { mounts: Mount[]; target: string } | null;
  try {
    stage = await d.containers.stageRootfs(rec);
    rootfs = stage ? stage.target : await d.containers.ensureMounted(rec);
  } catch (e) {
    await undoNetns();
    throw e;
  }
  const tm = performance.now();
  const host = d.runtime.host();
  let spec: SpecArg;
  let links: ReturnType<typeof resolveLinks>;
  // a staged rootfs is read once mounted in conmon's namespace-to-be (the runtime calls `spec`
  // with its view); a failure there is the start's, as it is here before the runtime's create
  let specError: unknown = null;
  try {
    const userOf = (view: string) => resolveUser(view, rec.config.User ?? '', rec.hostConfig.GroupAdd ?? []);
    // the user's ids are read from the rootfs while the runtime starts conmon (runtime/task.ts)
    const user = stage ? null : userOf(rootfs);
    user?.catch(() => undefined); // awaited by the runtime's create, or dropped with an error below
    links = resolveLinks(d.networks, rec, (ref) => d.store.find(ref));
    // `--network container:<id>`: the other container's hostname too, as dockerd does
    const netOwner = rec.hostConfig.NetworkMode?.startsWith('container:')
      ? d.store.find(rec.hostConfig.NetworkMode.slice('container:'.length))
      : undefined;
    if (netOwner?.config.Hostname && rec.config.Hostname !== netOwner.config.Hostname) {
      rec.config = { ...rec.config, Hostname: netOwner.config.Hostname };
      await writeFile(join(d.containers.containerDir(rec.id), 'hostname'), `${netOwner.config.Hostname}\n`);
    }
    await netnsMade;
    const sources = new Map<string, string>();
    for (const m of rec.mounts ?? [])
      if (m.Type === 'volume' && m.Name) sources.set(m.Name, await d.volumes.mountFor(m.Name, rec.id));
    const specOf = (u: ResolvedUser) =>
      specInputOf(rec, {
        rootfs,
        containerDir: d.containers.containerDir(rec.id),
        user: u,
        host,
        volumeSources: sources,
        extraEnv: linkEnv(rec.name, links),
        netns:
          rec.netnsPath ??
          (named ? `/run/netns/${named}` : joinedNs(d, rec.hostConfig.NetworkMode, 'net', 'network namespace')),
        pidns: joinedNs(d, rec.hostConfig.PidMode, 'pid', 'PID namespace'),
        ipcns: rec.ipcnsPath ?? joinedNs(d, rec.hostConfig.IpcMode, 'ipc', 'IPC namespace'),
      });
    // refused before the runtime runs anything (the user unknown, a namespace to join gone):
    // answered with the refusal's own words (kept in the state below, as dockerd keeps them)
    const refused = (e: unknown) => {
      specError = e;
      throw e;
    };
    if (user) {
      spec = user.then(specOf).catch(refused);
      spec.catch(() => undefined);
    } else spec = (view: string) => userOf(view).then(specOf, refused);
    // a restore keeps the addresses the checkpointed process had, when they are free
    const wiring = restore
      ? {
          ...attachableOf(rec),
          holdPeers: true, // announced once the process is back (below): no peer sends to it before
          networks: (rec.networks ?? []).map(([id, req]): [string, typeof req] => [
            id,
            restore.addresses[id] && d.networks.addressFree(id, restore.addresses[id])
              ? { ...req, ipv4: restore.addresses[id] }
              : req,
          ]),
        }
      : attachableOf(rec);
    if (named && rec.networks?.length) await d.networks.attach(wiring, { name: named });
  } catch (e) {
    await undoNetns();
    throw e;
  }
  const ts = performance.now();
  // A container that ran before may have runtime state left (e.g. after a daemon crash).
  if (rec.state.startedAt !== ZERO_TIME) await d.runtime.delete(rec.id).catch(() => undefined);
  let created: { pid: number; conmonPid: number };
  try {
    // config.json is made 0600 before the runtime writes the environment into it (runtime/task.ts)
    if (lazy) await lazy;
    created = await d.runtime.create(
      {
        id: rec.id,
        bundleDir: d.containers.containerDir(rec.id),
        runtime: rec.runtime,
        tty: rec.config.Tty ?? false,
        openStdin: rec.config.OpenStdin ?? false,
        stdinOnce: rec.config.StdinOnce ?? false,
        // log driver `none`: no log kept (conmon's k8s-file writer goes to /dev/null)
        logPath: rec.hostConfig.LogConfig?.Type === 'none' ? '/dev/null' : d.containers.logPathOf(rec.id),
        ...(stage ? { stage } : {}),
      },
      spec,
      restore && {
        imagePath: restore.imagePath,
        workPath: restore.workPath,
        tcpEstablished: restore.tcpEstablished,
        ...(restore.pageServer ? { lazyPages: true } : {}),
      },
    );
  } catch (e) {
    if (named) await d.containers.unwire(rec); // wired before create: nothing of it stays
    // as dockerd 20.10's containerStart: the error and an exit code (128 unless the runtime's
    // words say why: 127, 126) are kept, the status stays; no `die` is told (no process ran)
    rec.state.error = errorMessage(e);
    rec.state.exitCode = specError !== null ? 128 : exitCodeOfStartFailure(e, 128);
    if (rec.state.status !== 'created') rec.state.status = 'exited';
    d.store.save(rec);
    attach.fail(rec.id, e);
    if (specError !== null) throw e; // refused before the runtime ran: the refusal's own words
    throw isBerthError(e) ? e : wrap(e, 'failed to create task for container');
  }
  if (rec.networks?.length && !named) {
    try {
      await d.networks.attach(attachableOf(rec), { pid: created.pid });
    } catch (e) {
      await d.runtime.delete(rec.id).catch(() => undefined);
      rec.state.error = errorMessage(e);
      rec.state.exitCode = 128;
      if (rec.state.status !== 'created') rec.state.status = 'exited';
      d.store.save(rec);
      attach.fail(rec.id, e);
      throw e;
    }
  }
  await writeNetFiles(d.networks, rec, d.containers.containerDir(rec.id), linkHosts(links));
  const t1 = performance.now();
  await attach.connect(rec.id);
  const t2 = performance.now();
  if (!restore)
    await d.runtime.start(rec.id); // a restored process runs already
  else await d.networks.announce(rec.id); // its sockets are back: other hosts may send to it now
  log.debug('started', {
    id: rec.id,
    mountMs: +(tm - t0).toFixed(1),
    specMs: +(ts - tm).toFixed(1),
    prepareAndCreateMs: +(t1 - t0).toFixed(1),
    attachMs: +(t2 - t1).toFixed(1),
    startMs: +(performance.now() - t2).toFixed(1),
  });
  return created;
}

/** `--network|--pid|--ipc container:<id>`: the other container's namespace (it must run). */
function joinedNs(
  d: LifecycleDeps,
  mode: string | undefined,
  ns: 'net' | 'pid' | 'ipc',
  what: string,
): string | undefined {
  if (!mode?.startsWith('container:')) return undefined;
  const other = d.store.get(mode.slice('container:'.length));
  if (other.state.status !== 'running' || !other.state.pid)
    throw conflict(`cannot join ${what} of a non running container: ${other.name}`);
  return `/proc/${other.state.pid}/ns/${ns}`;
}
