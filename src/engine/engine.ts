/**
 * The engine: the containers' state table and lifecycle, and the only place that wires the
 * services together (images, snapshots, runtime). It never knows HTTP. Front doors never hold
 * it: they are given `Verbs` (./verbs.ts), one method per operation.
 */
import { RestoreGate } from './restore-gate.js';
import { join } from 'node:path';
import { constants as osc } from 'node:os';
import { conflict, invalidArgument, errorMessage } from '../base/errors.js';
import { systemClock, type Clock } from '../base/clock.js';
import type { ContainerId } from '../base/ids.js';
import { removeTree } from '../base/janitor.js';
import { log } from '../base/log.js';
import { isMountPoint, isMountRoot } from '../base/syscalls.js';
import type { Db } from '../metadata/db.js';
import type { ImageRecord, ImageStore } from '../image/types.js';
import type { Snapshotter, Mounter, Mount } from '../snapshot/types.js';
import type { Runtime, RuntimeName } from '../runtime/types.js';
import type { ClientOptions } from '../distribution/client.js';
import type { PullGate } from '../distribution/pull.js';

const { EINVAL, ENOENT } = osc.errno;
import { ContainerStore } from './store.js';
import { EventBus } from './events.js';
import { can, refusal, hasTask, isActive, type Operation } from './state.js';
import { netnsNameOf, type ContainerRecord } from './record.js';
import { Waiters } from './waiters.js';
import { HealthMonitor } from './health.js';
import { Lifecycle, type ContainerHost } from './lifecycle.js';
import type { NetworkManager } from '../network/manager.js';
import type { VolumeManager } from '../volume/manager.js';
import { rootMountsOf } from './mounts.js';
import { createContainer, type CreateInto } from './container-create.js';
import { netnsDel } from '../network/host.js';
import { writePrivateSync } from '../base/fs.js';
import { RootedFs } from '../archive/rooted.js';
import { probeIn } from './exec-in.js';
import { actorOf } from './actor.js';

export type { Mounter };

export interface EngineOptions {
  root: string;
  runRoot: string;
  db: Db;
  images: ImageStore;
  snapshots: Snapshotter;
  runtime: Runtime;
  mounter: Mounter;
  defaultRuntime: RuntimeName;
  /** how to reach registries: insecure (HTTP) ones, Docker Hub mirrors */
  registries?: ClientOptions;
  networks: NetworkManager;
  volumes: VolumeManager;
  /** the trust policy's enforcement (berthd --trust-policy), null without one */
  trust?: ImageTrust | null;
  /** time for records, timers, back-off (tests: a ManualClock); systemClock by default */
  clock?: Clock;
  /**
   * A running container's rootfs is mounted in a mount namespace of its conmon's, not the host's
   * (issue #19, ../snapshot/README.md "The host's mount table"). Default: env BERTH_ROOTFS_MOUNTNS=1.
   */
  rootfsMountns?: boolean;
}

/** Content trust as the engine sees it: pulls pinned to signed digests, images checked before use. */
export interface ImageTrust extends PullGate {
  check(image: ImageRecord, ref: string): Promise<void>;
}

export class Engine {
  // The services: for engine/'s own modules (lifecycle, health, reconcile, checkpoint and the
  // verbs take the Engine); no front door reaches them (test/unit/api-verbs.test.ts).
  readonly store: ContainerStore;
  readonly clock: Clock;
  readonly events: EventBus;
  readonly waiters = new Waiters();
  readonly lifecycle: Lifecycle;
  readonly health: HealthMonitor;
  readonly images: ImageStore;
  readonly snapshots: Snapshotter;
  readonly runtime: Runtime;
  readonly mounter: Mounter;
  readonly root: string;
  readonly runRoot: string;
  readonly defaultRuntime: RuntimeName;
  readonly registries: ClientOptions;
  readonly networks: NetworkManager;
  readonly volumes: VolumeManager;
  readonly trust: ImageTrust | null;
  /** closed while live restore runs: what requests wait on (./restore-gate.ts) */
  readonly restoreGate = new RestoreGate();
  private readonly mounted = new Set<string>();
  /** EngineOptions.rootfsMountns */
  readonly rootfsMountns: boolean;
  /** Containers whose removal is under way: the exit handler must not auto-remove them too. */
  private readonly removing = new Set<string>();
  private readonly creatingNames = new Set<string>();
  /** File removals of removed containers still under way (see removeStopped). */
  private readonly cleanups = new Set<Promise<void>>();
  /** post-copy checkpoints whose page server still serves the memory (container id -> until done) */
  private readonly pageServers = new Map<
    string,
    { checkpoint: string; done: Promise<void>; cancel: () => Promise<void> }
  >();

  constructor(o: EngineOptions) {
    this.root = o.root;
    this.runRoot = o.runRoot;
    this.images = o.images;
    this.snapshots = o.snapshots;
    this.runtime = o.runtime;
    this.mounter = o.mounter;
    this.defaultRuntime = o.defaultRuntime;
    this.registries = o.registries ?? {};
    this.networks = o.networks;
    this.volumes = o.volumes;
    this.trust = o.trust ?? null;
    this.rootfsMountns = o.rootfsMountns ?? process.env['BERTH_ROOTFS_MOUNTNS'] === '1';
    this.store = new ContainerStore(o.db);
    const clock = (this.clock = o.clock ?? systemClock);
    this.events = new EventBus(clock);
    const { store, events, waiters } = this;
    const execHost = { runtime: o.runtime, rootfsView: (rec: ContainerRecord) => this.rootfsView(rec) };
    this.health = new HealthMonitor({ clock, store, events, exec: (rec, argv) => probeIn(execHost, rec, argv) });
    const containers: ContainerHost = {
      containerDir: (id) => this.containerDir(id),
      logPathOf: (id) => this.logPathOf(id),
      ensureMounted: (rec) => this.ensureMounted(rec),
      stageRootfs: (rec) => this.stageRootfs(rec),
      namedNetns: (rec) => this.namedNetns(rec),
      unwire: (rec, gone) => this.unwire(rec, gone),
      volumeUsers: (name) => this.volumeUsers(name),
      isRemoving: (id) => this.isRemoving(id),
      remove: (id, opts) => this.remove(id, opts),
    };
    this.lifecycle = new Lifecycle({
      clock,
      store,
      events,
      waiters,
      health: this.health,
      runtime: o.runtime,
      networks: o.networks,
      volumes: o.volumes,
      defaultRuntime: o.defaultRuntime,
      containers,
    });
  }

  // plain concatenation, not path.join (a list asks these of every container: join's normalising
  // was 3 ms of a 2,000-container list); ids are hex from the records, nothing to normalise
  containerDir(id: string): string {
    return `${this.containersRoot}/${id}`;
  }
  rootfsOf(id: string): string {
    return `${this.containersRoot}/${id}/rootfs`;
  }
  /** conmon's k8s-file log: the CRI's log_path for its containers, else the container dir's ctr.log. */
  logPathOf(id: string): string {
    return this.store.find(id)?.logPath ?? `${this.containersRoot}/${id}/ctr.log`;
  }
  private get containersRoot(): string {
    return (this.containersRootPath ??= join(this.root, 'containers'));
  }
  private containersRootPath: string | undefined;

  /** A container of the Docker API's namespace (the Docker verbs' lookup: CRI containers are not there). */
  get(ref: string): ContainerRecord {
    return this.store.get(ref, '');
  }

  find(ref: string): ContainerRecord | undefined {
    return this.store.find(ref, '');
  }

  /** Throws Conflict with Docker's wording when `op` is illegal in the container's status. */
  check(rec: ContainerRecord, op: Operation): void {
    if (!can(rec.state.status, op)) throw conflict(refusal(rec.state.status, op, rec.name, rec.id));
  }

  isImageUsed = (imageId: string): boolean => this.store.all().some((c) => c.imageId === imageId);

  /**
   * POST /containers/create. All-or-nothing: on any error nothing of the container remains (./container-create.ts).
   * `into`: the CRI's namespace and log path (absent: the Docker API's).
   */
  create(
    body: unknown,
    name: string | undefined,
    platform?: string,
    into?: CreateInto,
  ): Promise<{ id: ContainerId; warnings: string[] }> {
    const held = { creatingNames: this.creatingNames, mounted: this.mounted };
    return createContainer(this, held, body, name, platform, into);
  }

  /**
   * Replaces a created (never started) container's writable layer by the layer tar at `tarPath`
   * (an imported checkpoint's filesystem changes): unmounted, unpacked with whiteouts in
   * overlayfs's form, mounted again.
   */
  async replaceUpper(id: string, tarPath: string): Promise<void> {
    const rec = this.get(id);
    const target = this.rootfsOf(id);
    if (isMountPoint(target)) await this.mounter.unmount(target);
    this.mounted.delete(id);
    await this.snapshots.applyDiff(id, tarPath);
    if (!this.rootfsMountns) await this.ensureMounted(rec); // else its start mounts it
  }

  /**
   * The bundle's config.json (the runtime writes it at each start) carries the container's
   * environment: it exists 0600 before the runtime writes into it, which keeps the mode.
   * Also closes the file of a container made by an older berth.
   */
  privateBundle(id: string): void {
    writePrivateSync(join(this.containerDir(id), 'config.json'));
  }

  /** Makes sure the container's rootfs is mounted (after a host reboot it is not). */
  async ensureMounted(rec: ContainerRecord): Promise<string> {
    const target = this.rootfsOf(rec.id);
    if (!this.mounted.has(rec.id)) {
      const mounts = await this.snapshots.prepare(rec.id, this.images.get(rec.imageId).topChainId);
      if (!isMountPoint(target)) await this.mounter.mountAll(mounts, target);
      this.mounted.add(rec.id);
    }
    return target;
  }

  /**
   * With `rootfsMountns`: the rootfs mounts a start makes in conmon's own mount namespace
   * (runtime CreateOptions.stage), the host's mount of a stopped container's cp/export undone
   * first (one overlay mount of an upper dir at a time). Null: the rootfs is mounted on the host.
   */
  async stageRootfs(rec: ContainerRecord): Promise<{ mounts: Mount[]; target: string } | null> {
    if (!this.rootfsMountns) return null;
    const target = this.rootfsOf(rec.id);
    const mounts = await this.snapshots.prepare(rec.id, this.images.get(rec.imageId).topChainId);
    if (!mounts.every((m) => m.type === 'overlay')) return null;
    if (isMountPoint(target)) await this.mounter.unmount(target);
    this.mounted.delete(rec.id);
    return { mounts, target };
  }

  /**
   * Where berthd reads the container's rootfs: a running container's staged mount through its
   * conmon (`/proc/<conmon pid>/root<rootfs>`, that namespace's view; the kernel's walk stays in
   * it), else the host's mount (made if needed: a stopped container's cp/export).
   */
  async rootfsView(rec: ContainerRecord): Promise<string> {
    const target = this.rootfsOf(rec.id);
    const conmon = rec.state.conmonPid;
    if (hasTask(rec.state.status) && conmon > 0 && !this.mounted.has(rec.id) && !isMountPoint(target)) {
      const inNs = `/proc/${conmon}/root${target}`;
      if (isMountRoot(inNs) === true) return inNs;
    }
    return this.ensureMounted(rec);
  }

  /**
   * The container's files as it sees them (rootfs, volumes, binds, its hosts files), for `docker cp`
   * and export: every lookup made by the kernel inside them (archive/rooted.ts). The caller closes it.
   */
  async rootedView(rec: ContainerRecord): Promise<RootedFs> {
    const root = await this.rootfsView(rec);
    return RootedFs.open(
      root,
      rootMountsOf(
        rec.mounts,
        this.containerDir(rec.id),
        (n) => this.volumes.dataDir(n),
        rec.hostConfig.ReadonlyRootfs === true,
      ),
    );
  }

  /** DELETE /containers/{id}. */
  /**
   * The named network namespace berth makes for a container that can be checkpointed (its runtime
   * can, it has its own network), or null.
   */
  namedNetns(rec: ContainerRecord): string | null {
    if (rec.netnsPath) return null; // it joins one made for it (a CRI pod's)
    const mode = rec.hostConfig.NetworkMode ?? '';
    if (mode === 'host' || mode.startsWith('container:')) return null;
    // `--network none` under crun: crun's own namespace (lo brought up by crun) is dumped and
    // restored by CRIU itself, and a start skips two `ip` runs (~8 ms of `docker run --rm`);
    // runc leaves lo down in a namespace of its own, so its containers keep berth's
    if (mode === 'none' && rec.runtime === 'crun') return null;
    return this.runtime.host().checkpoint.capable.includes(rec.runtime) ? netnsNameOf(rec.id) : null;
  }

  /**
   * Undoes a container's networking: its endpoints, addresses and ports, and the named namespace
   * berth made for it. `processGone`: its namespace went with its process (no veth to delete).
   */
  async unwire(rec: ContainerRecord, processGone = false): Promise<void> {
    // a namespace berth made outlives the process (it is bind-mounted): its veth goes explicitly,
    // at once, rather than whenever the kernel gets round to the deleted namespace
    const named = this.namedNetns(rec);
    await this.networks
      .detach(rec.id, undefined, processGone && !named)
      .catch((e: unknown) => log.warn('network detach failed', { id: rec.id, err: errorMessage(e) }));
    if (named) await netnsDel(named);
  }

  /** Whether container `id` (a full id) has a process under its monitor now (running, paused). */
  hasTask(id: string): boolean {
    const rec = this.store.byFullId(id);
    return rec !== undefined && hasTask(rec.state.status);
  }

  /** Containers (any state) that mount volume `name`. */
  volumeUsers(name: string): string[] {
    return this.store
      .all()
      .filter((c) => c.mounts?.some((m) => m.Type === 'volume' && m.Name === name))
      .map((c) => c.id);
  }

  /** Keeps a post-copy page server's lifetime: removing the container waits for it (up to 5 minutes). */
  servePages(id: string, checkpoint: string, served: { served: Promise<void>; cancel: () => Promise<void> }): void {
    const done = served.served.catch((e: unknown) => log.warn('page server failed', { id, err: errorMessage(e) }));
    const entry = { checkpoint, done, cancel: served.cancel };
    this.pageServers.set(id, entry);
    void done.then(() => this.pageServers.get(id) === entry && this.pageServers.delete(id));
  }

  /**
   * Ends a post-copy checkpoint's page server before anyone fetched from it: the stopped process
   * goes on (the migration's rollback). False when none serves that checkpoint.
   */
  async cancelPageServer(id: string, checkpoint: string): Promise<boolean> {
    const e = this.pageServers.get(id);
    if (!e || e.checkpoint !== checkpoint) return false;
    await e.cancel();
    this.pageServers.delete(id);
    return true;
  }

  async remove(ref: string, opts: { force: boolean; volumes?: boolean }): Promise<void> {
    const rec = this.store.get(ref);
    const serving = this.pageServers.get(rec.id);
    if (serving) await Promise.race([serving.done, new Promise((r) => setTimeout(r, 300_000).unref())]);
    if (rec.state.status === 'removing' || this.removing.has(rec.id))
      throw conflict(`removal of container ${rec.name} is already in progress`);
    if (isActive(rec.state.status) && !opts.force)
      throw conflict(refusal(rec.state.status, 'remove', rec.name, rec.id));
    this.removing.add(rec.id);
    try {
      await this.lifecycle.killAndWait(rec);
      this.lifecycle.cancelRestart(rec.id);
      await this.removeStopped(rec);
      if (opts.volumes) {
        // `rm -v` (and --rm): the container's anonymous volumes go with it, named ones stay
        for (const m of rec.mounts ?? [])
          if (m.anonymous && m.Name && this.volumeUsers(m.Name).length === 0)
            await this.volumes
              .remove(m.Name, [])
              .catch((e: unknown) => log.warn('volume removal failed', { name: m.Name, err: errorMessage(e) }));
      }
    } finally {
      this.removing.delete(rec.id);
    }
  }

  isRemoving(id: string): boolean {
    return this.removing.has(id);
  }

  /**
   * A removal is done for clients once the record is gone: the name is free, `destroy` is sent and
   * `wait --condition removed` answers. The files (runtime state, the rootfs mount, the writable
   * layer, the container dir) go in the background, off the path of `docker run --rm`; the
   * container dir goes last, so a daemon that dies meanwhile finds it at start and finishes the job
   * (reconcile's orphans). The snapshot's record is dropped at once, so its image can go now.
   */
  private async removeStopped(rec: ContainerRecord): Promise<void> {
    rec.state.status = 'removing';
    this.health.stop(rec.id);
    await this.unwire(rec);
    this.snapshots.forget(rec.id);
    this.store.delete(rec);
    this.events.emit('container', 'destroy', rec.id, actorOf(rec));
    this.waiters.removed(rec.id, rec.state.exitCode);
    const cleanup = this.removeFiles(rec.id)
      .catch((e: unknown) => log.warn('removing container files failed', { id: rec.id, err: errorMessage(e) }))
      .finally(() => this.cleanups.delete(cleanup));
    this.cleanups.add(cleanup);
  }

  private async removeFiles(id: string): Promise<void> {
    const t0 = performance.now();
    await this.lifecycle.runtimeDeleted(id); // one deletion at a time: the exit's, then this one (a no-op then)
    await this.runtime
      .delete(id)
      .catch((e: unknown) => log.warn('runtime delete failed', { id, err: errorMessage(e) }));
    const t1 = performance.now();
    await this.discardFiles(id);
    log.debug('container files removed', {
      id,
      runtimeMs: +(t1 - t0).toFixed(1),
      filesMs: +(performance.now() - t1).toFixed(1),
    });
  }

  /** Resolves once the files of every container removed so far are gone (daemon shutdown waits for it). */
  async filesRemoved(): Promise<void> {
    while (this.cleanups.size) await Promise.all(this.cleanups);
  }

  /** Unmounts and deletes everything a container had on disk, the container dir last. Idempotent. */
  async discardFiles(id: string): Promise<void> {
    try {
      await this.mounter.unmount(this.rootfsOf(id));
    } catch (e) {
      // EINVAL: not a mount point (never mounted, or already unmounted); ENOENT: no directory
      const errno = (e as { errno?: number }).errno;
      if (errno !== EINVAL && errno !== ENOENT) log.warn('unmount failed', { id, err: errorMessage(e) });
    }
    this.mounted.delete(id);
    await this.snapshots
      .remove(id)
      .catch((e: unknown) => log.warn('snapshot remove failed', { id, err: errorMessage(e) }));
    // On the janitor's thread, never on the event loop: as an rmSync (issue #19) its unlinks held
    // the loop ~40 ms per container under load: hostname, hosts and resolv.conf were mount points
    // in the container's (dying) mount namespace, and the dir is on the root's disk.
    await removeTree(this.containerDir(id));
  }

  async rename(ref: string, newName: string): Promise<void> {
    const rec = this.store.get(ref, '');
    const clean = newName.replace(/^\//, '');
    if (!clean) throw invalidArgument('Neither old nor new names may be empty');
    if (clean === rec.name) throw invalidArgument(`Renaming a container with the same name as its current name`);
    const old = rec.name;
    this.store.rename(rec, clean);
    await this.networks.renamed(rec.id, old, clean); // overlay networks: the other hosts' name servers
    // dockerd's attributes: the labels and image too
    this.events.emit('container', 'rename', rec.id, actorOf(rec, { oldName: `/${old}` }));
  }
}
