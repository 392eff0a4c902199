/**
 * Container create: the request checked as dockerd checks it (image, platform, runtime, limits,
 * namespaces, links, networks, mounts), then made all-or-nothing: on any error nothing of the
 * container remains (no dir, no mount, no snapshot, no volume it made, no row).
 */
import { formatPlatform, parsePlatform, type Platform } from '../distribution/platform.js';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { hostname as hostHostname } from 'node:os';
import { checkCgroupParent } from './spec-input.js';
import { conflict, invalidArgument, notFound, wrap, isBerthError } from '../base/errors.js';
import { dateOf, type Clock } from '../base/clock.js';
import { newId, type ContainerId } from '../base/ids.js';
import type { Runtime, RuntimeName } from '../runtime/types.js';
import type { ImageRecord, ImageStore } from '../image/types.js';
import type { Mounter, Snapshotter } from '../snapshot/types.js';
import type { NetworkManager } from '../network/manager.js';
import type { VolumeManager } from '../volume/manager.js';
import { parseCreateBody, type HostConfig } from '../spec/engine-api.js';
import type { EventBus } from './events.js';
import { ContainerStore, nameInUse } from './store.js';
import { initialState, type ContainerRecord, type Namespace } from './record.js';
import {
  mergeConfig,
  commandOf,
  logConfigOf,
  parseSecurityOpts,
  checkResources,
  checkUlimitsFor,
  parseSignal,
  fillHostDefaults,
} from './config.js';
import { randomName } from './names.js';
import { planNetworks } from './net.js';
import { planLinks } from './links.js';
import { copyUp, makeBindSources, planMounts } from './mounts.js';
import { PRIVATE_DIR_MODE } from './private-state.js';
import { readTextOrEmpty } from '../base/fs.js';

type CreateBody = ReturnType<typeof parseCreateBody>;

/** What a create needs of the engine (the engine passes itself). */
export interface CreateDeps {
  readonly store: ContainerStore;
  readonly images: Pick<ImageStore, 'get'>;
  readonly trust: { check(image: ImageRecord, ref: string): Promise<void> } | null;
  readonly runtime: Pick<Runtime, 'host'>;
  readonly defaultRuntime: RuntimeName;
  readonly networks: NetworkManager;
  readonly volumes: VolumeManager;
  readonly lifecycle: { validateSpec(hostConfig: HostConfig): void };
  readonly mounter: Mounter;
  readonly snapshots: Pick<Snapshotter, 'prepare'>;
  readonly events: Pick<EventBus, 'emit'>;
  readonly clock: Clock;
  containerDir(id: string): string;
  rootfsOf(id: string): string;
  /** Engine.rootfsMountns: a running container's rootfs is mounted in its conmon's namespace */
  readonly rootfsMountns: boolean;
  privateBundle(id: string): void;
  discardFiles(id: string): Promise<void>;
}

/** Where a container goes: the CRI's namespace and its log_path (absent: the Docker API's, ctr.log). */
export interface CreateInto {
  namespace: Namespace;
  logPath?: string;
  /** a network namespace to join at start (the CRI's pod namespace; never from the Docker API) */
  netnsPath?: string;
  /** an IPC namespace to join at start (a CRI pod's pinned one; never from the Docker API) */
  ipcnsPath?: string;
}

/** The engine's own state a create holds: names being created, rootfs mounts made. */
export interface Held {
  creatingNames: Set<string>;
  mounted: Set<string>;
}

/** POST /containers/create. All-or-nothing: on any error nothing of the container remains. */
export async function createContainer(
  e: CreateDeps,
  held: Held,
  body: unknown,
  name: string | undefined,
  platform?: string,
  into: CreateInto = { namespace: '' },
): Promise<{ id: ContainerId; warnings: string[] }> {
  const { config, hostConfig, endpoints } = parseCreateBody(body);
  const ns = into.namespace;
  if (platform && config.Image) checkPlatform(e, config.Image, platform);
  if (name !== undefined && name !== '') ContainerStore.validName(name.replace(/^\//, ''));
  const ctrName = name
    ? name.replace(/^\//, '')
    : randomName((n) => e.store.find(n, ns) !== undefined || held.creatingNames.has(`${ns}/${n}`));
  const clash = e.store.find(ctrName, ns);
  if (clash?.name === ctrName) throw conflict(nameInUse(ctrName, clash.id));
  const heldName = `${ns}/${ctrName}`;
  if (held.creatingNames.has(heldName))
    throw conflict(`Conflict. The container name "/${ctrName}" is already in use by a container being created.`);
  // Held until the record is stored: concurrent creates must not pick the same name.
  held.creatingNames.add(heldName);
  try {
    return await createNamed(e, held, config, hostConfig, endpoints, ctrName, into);
  } finally {
    held.creatingNames.delete(heldName);
  }
}

async function createNamed(
  e: CreateDeps,
  held: Held,
  config: CreateBody['config'],
  hostConfig: CreateBody['hostConfig'],
  endpoints: CreateBody['endpoints'],
  ctrName: string,
  into: CreateInto,
): Promise<{ id: ContainerId; warnings: string[] }> {
  const ns = into.namespace;
  const imageRef = config.Image;
  if (!imageRef) throw invalidArgument('Config.Image: an image is required');
  const image = e.images.get(imageRef);
  if (e.trust) await e.trust.check(image, imageRef);
  const merged = mergeConfig(config, image.config.config, imageRef);
  const { path, args } = commandOf(merged);
  const runtime = (hostConfig.Runtime || e.defaultRuntime) as RuntimeName;
  if (!e.runtime.host().runtimes[runtime])
    throw invalidArgument(`unknown or invalid runtime name: ${hostConfig.Runtime}`);
  hostConfig.Runtime = runtime;
  checkUlimitsFor(hostConfig, runtime);
  hostConfig.CgroupParent = checkCgroupParent(hostConfig.CgroupParent);
  const rp = hostConfig.RestartPolicy ?? { Name: 'no', MaximumRetryCount: 0 };
  hostConfig.RestartPolicy = rp.Name === '' ? { Name: 'no', MaximumRetryCount: 0 } : rp;
  hostConfig.LogConfig = logConfigOf(hostConfig.LogConfig);
  fillHostDefaults(hostConfig, e.runtime.host().cgroupVersion);
  // limits dockerd refuses at create, and those the kernel would refuse at start
  const warnings = checkResources(hostConfig, e.runtime.host());
  // as dockerd: discarded where the host cannot weigh block I/O, and the container runs without it
  if (hostConfig.BlkioWeight && !e.runtime.host().blkioWeight) hostConfig.BlkioWeight = 0;
  if (config.StopSignal) parseSignal(config.StopSignal);
  if (hostConfig.UTSMode === 'host' && config.Hostname)
    throw invalidArgument('conflicting options: hostname and the UTS mode');
  for (const mode of [hostConfig.PidMode, hostConfig.IpcMode]) {
    // the container to share with must exist (400, not 404: clients take a 404 from create for a missing image and pull)
    const ref = mode?.startsWith('container:') ? mode.slice('container:'.length) : undefined;
    if (ref && !e.store.find(ref, ns)) throw invalidArgument(`No such container: ${ref}`);
  }
  if (hostConfig.Links?.length) hostConfig.Links = planLinks(hostConfig.Links, ctrName, (ref) => e.store.find(ref, ns));
  if (hostConfig.AutoRemove && hostConfig.RestartPolicy.Name !== 'no')
    throw invalidArgument("can't create 'AutoRemove' container with restart policy");
  const networks = planNetworks(e.networks, hostConfig, endpoints, config, (ref) => e.store.find(ref, ns));
  const { mounts: volMounts, created: newVolumes } = await planMounts(
    e.volumes,
    hostConfig,
    merged,
    // dockerd: 400 "No such container: <ref>" (a 404 from create means a missing image to clients)
    (ref) => {
      const from = e.store.find(ref, ns);
      if (!from) throw invalidArgument(`No such container: ${ref}`);
      return from.mounts ?? [];
    },
  );
  parseSecurityOpts(hostConfig.SecurityOpt ?? [], e.runtime.host());
  e.lifecycle.validateSpec(hostConfig); // caps, ulimits, resources: fail at create, like dockerd
  const id = newId<ContainerId>();
  const rec: ContainerRecord = {
    id,
    name: ctrName,
    created: dateOf(e.clock).toISOString(),
    imageId: image.id,
    config: { ...merged, Hostname: merged.Hostname || id.slice(0, 12) },
    hostConfig,
    path,
    args,
    runtime,
    state: initialState(),
    restartCount: 0,
    manuallyStopped: false,
    execIds: [],
    networks,
    mounts: volMounts,
    ...(ns ? { namespace: ns } : {}),
    ...(into.logPath ? { logPath: into.logPath } : {}),
    ...(into.netnsPath ? { netnsPath: into.netnsPath } : {}),
    ...(into.ipcnsPath ? { ipcnsPath: into.ipcnsPath } : {}),
  };
  const dir = e.containerDir(id);
  try {
    // the dir, its files and the snapshot's dirs synchronously: a few small metadata calls, which
    // through the thread pool waited behind whatever it had queued (the last container's cgroups)
    mkdirSync(dir, { recursive: true, mode: PRIVATE_DIR_MODE });
    mkdirSync(join(dir, 'rootfs'));
    e.privateBundle(id);
    writeEtcFiles(e, rec);
    // with rootfsMountns the host mounts the rootfs only while new volumes are filled from it
    // (a start mounts it in conmon's namespace); else from now until removal
    const onHost = !e.rootfsMountns || volMounts.some((m) => m.Type === 'volume' && newVolumes.includes(m.Name!));
    const mountRootfs = async () => {
      const mounts = await e.snapshots.prepare(id, image.topChainId);
      if (!onHost) return;
      await e.mounter.mountAll(mounts, e.rootfsOf(id));
      held.mounted.add(id);
    };
    await mountRootfs();
    await makeBindSources(volMounts);
    await copyUp(e.volumes, volMounts, newVolumes, e.rootfsOf(id));
    if (onHost && e.rootfsMountns) {
      await e.mounter.unmount(e.rootfsOf(id));
      held.mounted.delete(id);
    }
    e.store.insert(rec);
  } catch (err) {
    await e.discardFiles(id);
    for (const v of newVolumes) await e.volumes.remove(v, [], true).catch(() => undefined);
    throw isBerthError(err) ? err : wrap(err, 'creating container');
  }
  // the labels too, as dockerd's (f-ctr-run)
  e.events.emit('container', 'create', id, { ...(rec.config.Labels ?? {}), image: imageRef, name: ctrName });
  return { id, warnings };
}

/**
 * `create --platform`: the local image must be for it (berth runs images as they are). A
 * mismatch is dockerd's 404 "image with reference ... was found but does not match the
 * specified platform: wanted linux/arm64, actual: linux/amd64" (clients then pull).
 */
function checkPlatform(e: CreateDeps, ref: string, platform: string): void {
  const want = parsePlatform(platform); // a malformed one: dockerd's 400, containerd's words
  const cfg = e.images.get(ref).config;
  const actual = [cfg.os, cfg.architecture, cfg.variant].filter(Boolean).join('/');
  let have: Platform | null = null;
  try {
    have = parsePlatform(actual); // the image's own, normalized the same way
  } catch {
    // an image without a usable platform matches none
  }
  // dockerd 20.10 compares the variant only when both name one (`linux/amd64/v2` runs an amd64 image)
  const variantsDiffer = Boolean(want.variant && have?.variant && want.variant !== have.variant);
  if (!have || have.os !== want.os || have.architecture !== want.architecture || variantsDiffer)
    throw notFound(
      `image with reference ${ref} was found but does not match the specified platform: ` +
        `wanted ${formatPlatform(want)}, actual: ${actual}`,
    );
}

/** /etc/hostname, /etc/hosts, /etc/resolv.conf the container gets bind-mounted. */
function writeEtcFiles(e: CreateDeps, rec: ContainerRecord): void {
  const dir = e.containerDir(rec.id);
  const hn = rec.config.Hostname || rec.id.slice(0, 12);
  const hostNet = rec.hostConfig.NetworkMode === 'host';
  writeFileSync(join(dir, 'hostname'), `${hostNet ? hostHostname() : hn}\n`);
  writeFileSync(
    join(dir, 'hosts'),
    hostNet
      ? readTextOrEmpty('/etc/hosts')
      : `127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n127.0.1.1\t${hn}\n`,
  );
  writeFileSync(
    join(dir, 'resolv.conf'),
    readTextOrEmpty('/etc/resolv.conf')
      .split('\n')
      .filter((l) => hostNet || !/^\s*nameserver\s+(127\.|::1)/.test(l))
      .join('\n'),
  );
}
