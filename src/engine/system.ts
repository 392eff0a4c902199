/**
 * System verbs: the host's facts for `version`/`info`, the event stream, disk usage (`system df`)
 * and `docker login`'s check against a registry (nothing is stored).
 */
import { existsSync } from 'node:fs';
import { checkLogin } from '../distribution/client.js';
import { duBytes } from '../base/tree-bytes.js';
import type { HostInfo } from '../runtime/types.js';
import type { ImageRecord } from '../image/types.js';
import type { EngineEvent } from './events.js';
import type { ContainerRecord } from './record.js';
import type { Credentials } from './images.js';
import type { Engine } from './engine.js';
import { PluginVerbs, SwarmVerbs } from './swarm.js';
import { duProcess, type VolumeRecord } from './volumes.js';

/** Entries a volume may have to be walked in the daemon's thread; a larger one goes to `du`. */
const VOLUME_WALK_MAX = 4096;

export type { EngineEvent, HostInfo };
export { parseEventTime } from './events.js';

/** The CRI's containers carry this label (./k8s.ts); their events are not the Docker API's. */
export const NAMESPACE_LABEL = 'io.berth.namespace';
const isDockers = (ev: EngineEvent): boolean => ev.Actor.Attributes[NAMESPACE_LABEL] !== 'k8s.io';

/** What `info` reports beyond the host's facts: each container's status, the images, the event listeners. */
export interface SystemInfo {
  host: HostInfo;
  /** the engine's clock (SystemTime) */
  now: number;
  containers: ContainerRecord['state']['status'][];
  images: number;
  eventListeners: number;
  root: string;
}

export class SystemVerbs {
  /** Swarm endpoints: answered as a dockerd outside a swarm (./swarm.ts). */
  readonly swarm = new SwarmVerbs();
  /** Managed plugins: none installed, none installable (./swarm.ts). */
  readonly plugins = new PluginVerbs();

  constructor(private readonly e: Engine) {}

  /**
   * Resolves once live restore is done with container `ref` (restoring it first when its turn has
   * not come), or with every container (`ref` null): a request that waits on this never sees a
   * state restore has yet to correct. An unknown or ambiguous `ref` resolves at once (the verb
   * that follows refuses it).
   */
  restored(ref: string | null): Promise<void> {
    if (ref === null) return this.e.restoreGate.done();
    let id: string | undefined;
    try {
      id = this.e.store.find(ref)?.id;
    } catch {
      id = undefined;
    }
    return id ? this.e.restoreGate.one(id) : Promise.resolve();
  }

  /** The host's facts (`version`): runtimes, conmon, cgroups, checkpoint support. */
  host(): HostInfo {
    return this.e.runtime.host();
  }

  info(): SystemInfo {
    return {
      host: this.e.runtime.host(),
      now: this.e.clock.now(),
      containers: this.e.store.inNamespace('').map((c) => c.state.status),
      images: this.e.images.list().length,
      eventListeners: this.e.events.listenerCount,
      root: this.e.root,
    };
  }

  /** `docker login`: the credentials are checked against the registry's auth (Unauthorized when refused). */
  login(server: string, creds: Credentials): Promise<void> {
    return checkLogin(server, creds, this.e.registries);
  }

  /** Kept events with timeNano in [sinceNs, untilNs] (`--since`, `--until`); null bounds are open. */
  eventHistory(sinceNs: bigint | null, untilNs: bigint | null): EngineEvent[] {
    return this.e.events
      .history(sinceNs === null ? -Infinity : Number(sinceNs), untilNs === null ? Infinity : Number(untilNs))
      .filter(isDockers);
  }

  /** The engine's clock, in epoch nanoseconds (whether an `until` is past). */
  nowNs(): bigint {
    return BigInt(this.e.clock.now()) * 1_000_000n;
  }

  /** Live events; the result unsubscribes. */
  subscribe(l: (e: EngineEvent) => void): () => void {
    return this.e.events.subscribe((ev) => isDockers(ev) && l(ev));
  }

  /** `system df`: images, the layers' bytes, and each container with its writable layer's bytes. */
  async diskUsage(): Promise<{
    layersSize: number;
    images: Array<ImageRecord & { containers: number }>;
    containers: Array<{ rec: ContainerRecord; sizeRw: number; imageSize: number }>;
    volumes: Array<{ volume: VolumeRecord; size: number; refCount: number }>;
  }> {
    const images = this.e.images.list();
    const all = this.e.store.inNamespace('');
    // walked in the daemon, no process per layer (snapshot/README.md `usages`)
    const rw = await this.e.snapshots.usages(all.map((c) => c.id));
    const imageSize = new Map<string, number>(images.map((i) => [i.id, i.size]));
    const users = new Map<string, number>();
    for (const c of all) users.set(c.imageId, (users.get(c.imageId) ?? 0) + 1);
    return {
      layersSize: this.e.images.diskUsage().layersSize,
      images: images.map((i) => ({ ...i, containers: users.get(i.id) ?? 0 })),
      containers: all.map((rec) => ({ rec, sizeRw: rw.get(rec.id) ?? 0, imageSize: imageSize.get(rec.imageId) ?? 0 })),
      volumes: await this.volumeUsage(),
    };
  }

  /**
   * dockerd's `system df` volumes: the local driver's, each with its files' bytes (directories'
   * own sizes left out, as dockerd's directory.Size) and how many containers mount it. The
   * containers' mounts are read once (not once per volume); a volume past VOLUME_WALK_MAX entries
   * is measured by `du -sb` in its own process; -1 when it cannot be read (dockerd's too).
   */
  private async volumeUsage(): Promise<Array<{ volume: VolumeRecord; size: number; refCount: number }>> {
    const refs = new Map<string, number>();
    for (const c of this.e.store.all())
      for (const m of c.mounts ?? []) if (m.Type === 'volume' && m.Name) refs.set(m.Name, (refs.get(m.Name) ?? 0) + 1);
    const out: Array<{ volume: VolumeRecord; size: number; refCount: number }> = [];
    for (const volume of this.e.volumes.list()) {
      if (volume.Driver !== 'local') continue;
      const size = existsSync(volume.Mountpoint)
        ? (duBytes(volume.Mountpoint, VOLUME_WALK_MAX, false) ?? (await duProcess(volume.Mountpoint)))
        : -1;
      out.push({ volume, size, refCount: refs.get(volume.Name) ?? 0 });
      await new Promise((r) => setImmediate(r)); // a volume at a time: the event loop in between
    }
    return out;
  }
}
