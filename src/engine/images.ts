/**
 * Image verbs: what a front door may do with images (list, inspect, history, pull, push, tag,
 * remove, prune, import, load, save, commit). Each verb owns its checks and emits its events.
 * The pull path is one: `pullImage` serves `/images/create`, the builder's FROM and a
 * checkpoint import's images alike.
 */
import type { Readable, Writable } from 'node:stream';
import { errorMessage, invalidArgument } from '../base/errors.js';
import { log } from '../base/log.js';
import type { Digest } from '../base/digest.js';
import { listTags, pull } from '../distribution/pull.js';
import { push } from '../distribution/push.js';
import type { Credentials } from '../distribution/client.js';
import type { Progress } from '../distribution/transfer.js';
import type { ImageRecord, RemoveResult } from '../image/types.js';
import { parseReference } from '../image/reference.js';
import type { ImageRuntimeConfig } from '../spec/image.js';
import { parseContainerConfig, type ContainerConfig } from '../spec/engine-api.js';
import { applyChanges } from './changes.js';
import { labelsMatch, type Filters } from './filters.js';
import { can } from './state.js';
import { actorOf } from './actor.js';
import type { Engine } from './engine.js';

export type { Credentials, ImageRecord, Progress, RemoveResult };

export const labelsOf = (i: ImageRecord): Record<string, string> => i.config.config?.Labels ?? {};

/** The `reference` filter: a glob on `name[:tag]`. */
export function refGlob(pattern: string): RegExp {
  const withTag = pattern.lastIndexOf(':') > pattern.lastIndexOf('/') ? pattern : `${pattern}:*`; // host:port/name has no tag
  return new RegExp(
    '^' +
      withTag
        .replace(/[.+^${}()|[\]\\]/g, '\\$&')
        .replace(/\*/g, '[^/]*')
        .replace(/\?/g, '.') +
      '$',
  );
}

/**
 * The one pull: distribution's, with the engine's registries and trust gate, and the `pull` event.
 * Front doors, the builder and checkpoint import all pull through it.
 */
export async function pullImage(
  engine: Engine,
  ref: string,
  o: { creds: Credentials | null; platform?: string; progress?: Progress },
): Promise<ImageRecord> {
  const img = await pull(engine.images, ref, {
    creds: o.creds,
    ...(o.platform ? { platform: o.platform } : {}),
    client: engine.registries,
    trust: engine.trust,
    progress: o.progress ?? (() => undefined),
  });
  engine.events.emit('image', 'pull', img.id, { name: ref });
  return img;
}

/** The builder's pull (FROM, COPY --from): the one pull, its progress reduced to lines. */
export function buildPull(engine: Engine) {
  return (ref: string, platform: string | undefined, creds: Credentials | null, say: (line: string) => void) =>
    pullImage(engine, ref, {
      creds,
      ...(platform ? { platform } : {}),
      progress: (m) => {
        if (m.status && !m.progressDetail?.total) say(m.id ? `${m.id}: ${m.status}` : m.status);
      },
    });
}

export interface CommitRequest {
  container: string;
  /** reads the request body: a ContainerConfig over the container's (parsed here, after the container's checks) */
  config: () => Promise<unknown>;
  changes: string[];
  repo: string | null;
  tag: string | null;
  author: string | null;
  comment: string | null;
  pause: boolean;
}

export class ImageVerbs {
  constructor(private readonly e: Engine) {}

  /**
   * `docker images` with dockerd's filters (dangling, reference globs, label, before, since),
   * newest first.
   */
  list(f: Filters): ImageRecord[] {
    let list = this.e.images.list();
    if (f['dangling']?.includes('true')) list = list.filter((i) => i.repoTags.length === 0);
    if (f['dangling']?.includes('false')) list = list.filter((i) => i.repoTags.length > 0);
    if (f['reference'])
      list = list.filter((i) => i.repoTags.some((t) => f['reference']!.some((p) => refGlob(p).test(t))));
    if (f['label']) list = list.filter((i) => labelsMatch(f['label'], labelsOf(i)));
    if (f['before']) {
      const b = this.e.images.get(f['before'][0]!);
      list = list.filter((i) => Date.parse(i.created) < Date.parse(b.created));
    }
    if (f['since']) {
      const s = this.e.images.get(f['since'][0]!);
      list = list.filter((i) => Date.parse(i.created) > Date.parse(s.created));
    }
    return list.sort((a, b) => Date.parse(b.created) - Date.parse(a.created));
  }

  get(ref: string): ImageRecord {
    return this.e.images.get(ref);
  }

  /** How many containers (any state) use the image. */
  containersOf(id: string): number {
    return this.e.store.all().filter((c) => c.imageId === id).length;
  }

  /** Where the image's layers are kept (GraphDriver.Data.Dir). */
  get layersDir(): string {
    return `${this.e.root}/snapshots`;
  }

  /** The image and its history, newest layer first. */
  history(ref: string) {
    return { image: this.e.images.get(ref), entries: this.e.images.history(ref) };
  }

  diskUsage(): { layersSize: number } {
    return this.e.images.diskUsage();
  }

  /**
   * `POST /images/create?fromImage=&tag=`: pulls the image, or every tag of it when neither
   * names one (`--all-tags`), one after the other. The references are checked before any
   * registry is asked, before any progress: a malformed name is the client's error.
   */
  async pull(
    fromImage: string,
    tag: string,
    o: { creds: Credentials | null; platform: string; progress: Progress },
  ): Promise<void> {
    const hasTag = fromImage.includes('@') || fromImage.lastIndexOf(':') > fromImage.lastIndexOf('/');
    const refs = tag
      ? [tag.startsWith('sha256:') ? `${fromImage}@${tag}` : `${fromImage}:${tag}`]
      : hasTag
        ? [fromImage]
        : null;
    for (const ref of refs ?? [fromImage]) parseReference(ref);
    const all =
      refs ??
      (await listTags(fromImage, { creds: o.creds, client: this.e.registries })).map((t) => `${fromImage}:${t}`);
    for (const ref of all)
      await pullImage(this.e, ref, {
        creds: o.creds,
        ...(o.platform ? { platform: o.platform } : {}),
        progress: o.progress,
      });
  }

  /** Pushes `ref` (NotFound, before any progress, when there is no such image). */
  async push(
    ref: string,
    o: { creds: Credentials | null; progress: Progress; onDigest: (digest: string, size: number, tag: string) => void },
  ): Promise<void> {
    this.e.images.get(ref);
    await push(this.e.images, ref, {
      creds: o.creds,
      client: this.e.registries,
      progress: o.progress,
      onDigest: o.onDigest,
    });
    this.e.events.emit('image', 'push', ref, { name: ref });
  }

  tag(ref: string, repo: string | null, tag: string | null): void {
    if (!repo) throw invalidArgument('repository name must have at least one component');
    const target = tag ? `${repo}:${tag}` : repo;
    this.e.images.tag(ref, target);
    this.e.events.emit('image', 'tag', this.e.images.get(target).id, { name: target });
  }

  async remove(ref: string, o: { force: boolean; noPrune: boolean }): Promise<RemoveResult[]> {
    const res = await this.e.images.remove(ref, o, (id) => this.e.isImageUsed(id));
    for (const r of res) {
      if (r.Untagged) this.e.events.emit('image', 'untag', r.Untagged, { name: r.Untagged });
      if (r.Deleted) this.e.events.emit('image', 'delete', r.Deleted, {});
    }
    return res;
  }

  prune(o: {
    all: boolean;
    labelFilter: (labels: Record<string, string>) => boolean;
  }): Promise<{ deleted: RemoveResult[]; spaceReclaimed: number }> {
    return this.e.images.prune({
      all: o.all,
      isUsed: (id: Digest) => this.e.isImageUsed(id),
      labelFilter: o.labelFilter,
    });
  }

  /** `docker import` of a rootfs tar from the request body (`changes` are Dockerfile instructions). */
  async importRootfs(
    input: Readable,
    o: { repo: string; tag: string; changes: string[]; message: string | null; platform: string | null },
  ): Promise<ImageRecord> {
    const opts: { ref?: string; message?: string; config: ImageRuntimeConfig; platform?: string } = {
      config: applyChanges({}, o.changes),
    };
    if (o.repo) opts.ref = o.tag ? `${o.repo}:${o.tag}` : o.repo;
    if (o.message) opts.message = o.message;
    if (o.platform) opts.platform = o.platform;
    const img = await this.e.images.importRootfs(input, opts);
    this.e.events.emit('image', 'import', img.id, opts.ref ? { name: opts.ref } : {});
    return img;
  }

  async load(input: Readable): Promise<string[]> {
    const loaded = await this.e.images.load(input);
    for (const ref of loaded) this.e.events.emit('image', 'load', ref, { name: ref });
    return loaded;
  }

  /** `docker save` into `open()`, called once every name is known to be an image (NotFound before any byte). */
  async save(names: string[], open: () => Writable): Promise<void> {
    if (names.length === 0) throw invalidArgument('no image names given');
    for (const n of names) this.e.images.get(n);
    await this.e.images.save(names, open());
  }

  /**
   * `docker commit`: the container's writable layer becomes an image. A running container is
   * frozen meanwhile (unless `pause` is false) without its record changing (reconcile thaws one a
   * dead daemon left frozen).
   */
  async commit(r: CommitRequest): Promise<ImageRecord> {
    const c = this.e.get(r.container);
    this.e.check(c, 'commit');
    const body = await r.config();
    const override: ContainerConfig =
      body && typeof body === 'object' && Object.keys(body).length ? parseContainerConfig(body) : {};
    const base = { ...c.config, ...override };
    const config = applyChanges(
      {
        Env: base.Env ?? [],
        Cmd: base.Cmd ?? null,
        Entrypoint: base.Entrypoint ?? null,
        WorkingDir: base.WorkingDir ?? '',
        User: base.User ?? '',
        Labels: base.Labels ?? {},
        ...(base.ExposedPorts ? { ExposedPorts: base.ExposedPorts } : {}),
        ...(base.Volumes ? { Volumes: base.Volumes } : {}),
        ...(base.StopSignal ? { StopSignal: base.StopSignal } : {}),
        ...(base.Healthcheck ? { Healthcheck: base.Healthcheck } : {}),
      },
      r.changes.flatMap((x) => x.split('\n')),
    );
    // dockerd ignores a failed pause (a container that is just exiting commits unfrozen) and
    // emits pause/unpause for the freeze (20.10: pause, tag, commit, unpause)
    const attrs = actorOf(c);
    const freeze =
      r.pause &&
      can(c.state.status, 'pause') &&
      (await this.e.runtime.pause(c.id).then(
        () => true,
        (e: unknown) => (log.debug('commit: pause failed', { id: c.id, err: errorMessage(e) }), false),
      ));
    if (freeze) this.e.events.emit('container', 'pause', c.id, attrs);
    try {
      const ref = r.repo ? (r.tag ? `${r.repo}:${r.tag}` : r.repo) : undefined;
      const img = await this.e.images.commit({
        snapshotKey: c.id,
        parent: this.e.images.get(c.imageId),
        config,
        createdBy: [c.path, ...c.args].join(' '),
        ...(r.author ? { author: r.author } : {}),
        ...(r.comment ? { comment: r.comment } : {}),
        ...(ref ? { ref } : {}),
      });
      if (ref) this.e.events.emit('image', 'tag', img.id, { ...(config.Labels ?? {}), name: ref });
      this.e.events.emit(
        'container',
        'commit',
        c.id,
        actorOf(c, { comment: r.comment ?? '', imageID: img.id, imageRef: ref ?? '' }),
      );
      return img;
    } finally {
      if (freeze) {
        await this.e.runtime
          .resume(c.id)
          .catch((e: unknown) => log.debug('commit: resume failed', { id: c.id, err: errorMessage(e) }));
        this.e.events.emit('container', 'unpause', c.id, attrs);
      }
    }
  }
}
