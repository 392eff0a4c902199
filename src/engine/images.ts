/**
 * Image verbs: what a front door may do with images (list, inspect, history, pull, push, tag,
 * remove, prune, import, load, save, commit). Each verb owns its checks and emits its events.
 * The pull path is one: `pullImage` serves `/images/create`, the builder's FROM and a
 * checkpoint import's images alike.
 */
import { Readable, Transform, type Writable } from 'node:stream';
import { errorMessage, internal, invalidArgument, isBerthError, notFound } from '../base/errors.js';
import { log } from '../base/log.js';
import { isTag } from '../spec/distribution.js';
import { goDurationNs } from '../base/duration.js';
import type { Digest } from '../base/digest.js';
import { listTags, parsePlatform, pull } from '../distribution/pull.js';
import { push } from '../distribution/push.js';
import { inspectDistribution, type DistributionInspect } from '../distribution/inspect.js';
import { searchIndex, type SearchResult } from '../distribution/search.js';
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

export type { Credentials, DistributionInspect, ImageRecord, Progress, RemoveResult, SearchResult };

/**
 * dockerd's filter checks (20.10): a filter it does not know is `Invalid filter 'foo'`, a
 * `dangling` that is not a boolean `Invalid filter 'dangling=[foo]'` (400).
 */
function checkFilters(f: Filters, known: readonly string[], dangling: (v: string) => boolean): void {
  for (const k of Object.keys(f)) if (!known.includes(k)) throw invalidArgument(`Invalid filter '${k}'`);
  const d = f['dangling'];
  if (d && !d.some(dangling)) throw invalidArgument(`Invalid filter 'dangling=[${d.join(' ')}]'`);
}
const GO_BOOL = ['1', 't', 'T', 'TRUE', 'true', 'True', '0', 'f', 'F', 'FALSE', 'false', 'False'];

/**
 * A prune's `until` as dockerd reads it (timetypes.GetTimestamp): a Go duration before now, a
 * Unix time (`1700000000[.5]`), or an RFC 3339 date or time. Epoch ms.
 */
export function untilOf(v: string, nowMs: number): number {
  const ns = goDurationNs(v.replace(/^-/, ''));
  if (ns !== null) return v.startsWith('-') ? nowMs + ns / 1e6 : nowMs - ns / 1e6;
  if (/^\d+(\.\d+)?$/.test(v)) return Number(v) * 1000;
  if (/^\d{4}-\d\d-\d\d([T ]\d\d:\d\d(:\d\d(\.\d+)?)?)?(Z|[+-]\d\d:?\d\d)?$/.test(v)) {
    const t = Date.parse(v.replace(' ', 'T'));
    if (!Number.isNaN(t)) return t;
  }
  throw invalidArgument(`failed to parse value as time or duration: ${JSON.stringify(v)}`);
}

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

/** The builder's pull (FROM, COPY --from): the one pull, its progress messages as they are. */
export function buildPull(engine: Engine) {
  return (ref: string, platform: string | undefined, creds: Credentials | null, progress: Progress) =>
    pullImage(engine, ref, { creds, ...(platform ? { platform } : {}), progress });
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
  list(f: Filters, all = false): ImageRecord[] {
    checkFilters(f, ['dangling', 'label', 'before', 'since', 'reference'], (v) => v === 'true' || v === 'false');
    let list = this.e.images.list();
    // like dockerd: an image without a name that is another's parent (a layer of a legacy load, of
    // a commit) shows only with `all`
    if (!all) {
      const parents = new Set(list.map((i) => i.parent).filter(Boolean));
      list = list.filter((i) => i.repoTags.length || i.repoDigests.length || !parents.has(i.id));
    }
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
    // dockerd: 400 "invalid tag format" for a tag that is neither a tag nor a digest
    if (tag && !/^sha256:[a-f0-9]{64}$/.test(tag) && !isTag(tag)) throw invalidArgument('invalid tag format');
    const hasTag = fromImage.includes('@') || fromImage.lastIndexOf(':') > fromImage.lastIndexOf('/');
    const refs = tag
      ? [tag.startsWith('sha256:') ? `${fromImage}@${tag}` : `${fromImage}:${tag}`]
      : hasTag
        ? [fromImage]
        : null;
    for (const ref of refs ?? [fromImage]) parseReference(ref);
    if (o.platform) parsePlatform(o.platform); // dockerd: 400 `"foo/bar/baz/qux": cannot parse platform specifier`
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

  /**
   * `GET /distribution/{name}/json`: the registry's descriptor of `ref` and the platforms it
   * serves, asked with the client's credentials (X-Registry-Auth); nothing is pulled.
   */
  inspectDistribution(ref: string, creds: Credentials | null): Promise<DistributionInspect> {
    return inspectDistribution(ref, { creds, client: this.e.registries });
  }

  /**
   * `GET /images/search`: the index's v1 search with dockerd's filters (`is-automated`,
   * `is-official`: true or false; `stars`: at least that many), checked before any request.
   */
  async search(term: string, limitText: string | null, f: Filters, creds: Credentials | null): Promise<SearchResult[]> {
    for (const k of Object.keys(f))
      if (!['is-automated', 'is-official', 'stars'].includes(k)) throw invalidArgument(`Invalid filter '${k}'`);
    const flag = (k: string): boolean | undefined => {
      const v = f[k];
      if (!v) return undefined;
      if (v.length === 1 && (v[0] === 'true' || v[0] === 'false')) return v[0] === 'true';
      throw invalidArgument(`Invalid filter '${k}=[${v.join(' ')}]'`);
    };
    const automated = flag('is-automated');
    const official = flag('is-official');
    let stars = 0;
    for (const v of f['stars'] ?? []) {
      if (!/^[+-]?\d+$/.test(v)) throw invalidArgument(`Invalid filter 'stars=${v}'`);
      stars = Math.max(stars, Number(v));
    }
    if (limitText !== null && limitText !== '' && !/^[+-]?\d+$/.test(limitText))
      throw invalidArgument(`strconv.Atoi: parsing ${JSON.stringify(limitText)}: invalid syntax`);
    const limit = limitText ? Number(limitText) : 25;
    const all = await searchIndex(term, limit, { creds, client: this.e.registries });
    return all.filter(
      (r) =>
        (automated === undefined || r.is_automated === automated) &&
        (official === undefined || r.is_official === official) &&
        r.star_count >= stars,
    );
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
    // dockerd's words (it answers them with a 500; a 400 here: the request is what is wrong)
    if (!repo) throw invalidArgument('invalid reference format');
    if (tag && !isTag(tag)) throw invalidArgument('invalid tag format');
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

  /**
   * `POST /images/prune` with dockerd's filters: `dangling` (a Go boolean; false prunes every
   * unused image), `label`, `label!`, `until`; any other is a 400.
   */
  prune(f: Filters): Promise<{ deleted: RemoveResult[]; spaceReclaimed: number }> {
    checkFilters(f, ['dangling', 'label', 'label!', 'until'], (v) => GO_BOOL.includes(v));
    const d = f['dangling']?.find((v) => GO_BOOL.includes(v));
    const all = d !== undefined && GO_BOOL.indexOf(d) >= 6;
    const until = f['until']?.length ? Math.min(...f['until'].map((v) => untilOf(v, this.e.clock.now()))) : undefined;
    const not = f['label!'] ?? [];
    return this.e.images.prune({
      all,
      isUsed: (id: Digest) => this.e.isImageUsed(id),
      labelFilter: (l) => labelsMatch(f['label'], l) && !not.some((x) => labelsMatch([x], l)),
      ...(until !== undefined ? { until } : {}),
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

  /**
   * `POST /images/create?fromSrc=<url>`: `docker import` of a rootfs tar dockerd downloads itself.
   * The URL is read as dockerd reads it (no scheme: `http://<src>`, its path dropped); http and
   * https only. Its answer must start within 30 s and the body may not pause for more than 60 s.
   * `started` is called once the download began (dockerd: "Downloading from <url>").
   */
  async importUrl(
    src: string,
    o: { repo: string; tag: string; changes: string[]; message: string | null; platform: string | null },
    started: (url: string) => void,
  ): Promise<ImageRecord> {
    let url: URL;
    try {
      url = /^[a-z][a-z0-9+.-]*:\/\//i.test(src) ? new URL(src) : new URL(`http://${src.split('/')[0]}`);
    } catch {
      throw invalidArgument(`invalid URL ${JSON.stringify(src)}`);
    }
    const shown = url.href.replace(/\/$/, url.pathname === '/' && !src.endsWith('/') ? '' : '/');
    if (url.protocol !== 'http:' && url.protocol !== 'https:')
      throw invalidArgument(`Get "${shown}": unsupported protocol scheme "${url.protocol.slice(0, -1)}"`);
    const abort = new AbortController();
    const headers = setTimeout(() => abort.abort(new Error('no answer within 30s')), 30_000);
    const res = await fetch(url, { signal: abort.signal })
      .catch((e: unknown) => {
        const cause = (e as { cause?: { message?: string } }).cause;
        throw internal(`Get "${shown}": ${cause?.message ?? errorMessage(e)}`);
      })
      .finally(() => clearTimeout(headers));
    if (res.status !== 200) {
      const body = (await res.text().catch(() => '')).slice(0, 1024);
      const msg = `failed to GET ${shown} with status ${res.status} ${res.statusText}: ${body}`; // dockerd's words
      throw res.status === 404 ? notFound(msg) : internal(msg);
    }
    started(shown);
    const web = Readable.fromWeb(res.body as unknown as import('node:stream/web').ReadableStream<Uint8Array>);
    const pause = () => abort.abort(new Error('the download paused for 60s'));
    let idle = setTimeout(pause, 60_000);
    // the body through a watchdog: each chunk restarts the 60 s (a stalled server cannot hold the import)
    const body = new Transform({
      transform(chunk: Buffer, _enc, done) {
        clearTimeout(idle);
        idle = setTimeout(pause, 60_000);
        done(null, chunk);
      },
    });
    web.on('error', (e) => body.destroy(e));
    try {
      return await this.importRootfs(web.pipe(body), o);
    } finally {
      clearTimeout(idle);
      web.destroy();
    }
  }

  async load(input: Readable): Promise<string[]> {
    const loaded = await this.e.images.load(input);
    for (const ref of loaded) this.e.events.emit('image', 'load', ref, { name: ref });
    return loaded;
  }

  /** `docker save` into `open()`, called once every name is known to be an image (NotFound before any byte). */
  async save(names: string[], open: () => Writable): Promise<void> {
    if (names.length === 0) throw invalidArgument('no image names given');
    for (const n of names) {
      // a name alone saves every tag of its repository (busybox:other without busybox:latest too)
      const repo = /^sha256:/.test(n) ? null : parseReference(n);
      const named = repo && !repo.tag && !repo.digest ? `${repo.name}:` : null;
      if (named && this.e.images.list().some((i) => i.repoTags.some((t) => t.startsWith(named)))) continue;
      try {
        this.e.images.get(n);
      } catch (e) {
        if (isBerthError(e, 'NotFound')) throw notFound(`No such image: ${n}`); // dockerd's words: the name as given
        throw e;
      }
    }
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
