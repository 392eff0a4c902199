/** Image routes: list, inspect, history, tag, remove, prune, pull and import (/images/create), push, load, save (get), commit. */
import { invalidArgument, notImplemented } from '../../base/errors.js';
import { listTags, pull } from '../../distribution/pull.js';
import { push } from '../../distribution/push.js';
import { flag, type Router, type Ctx } from '../http.js';
import type { Engine } from '../../engine/engine.js';
import type { ImageRecord } from '../../image/types.js';
import type { ContainerConfig } from '../../spec/engine-api.js';
import { parseContainerConfig } from '../../spec/engine-api.js';
import { applyChanges } from '../../engine/changes.js';
import { parseReference } from '../../image/reference.js';
import { parseFilters, labelsMatch } from '../filters.js';
import { progress, registryAuth, streamed } from '../progress.js';
import { responseSink } from '../stream.js';

const unix = (t: string) => Math.floor(Date.parse(t) / 1000) || 0;
const labelsOf = (i: ImageRecord) => i.config.config?.Labels ?? {};

/** `reference` filter: a glob on `name[:tag]`. */
function refGlob(pattern: string): RegExp {
  const withTag = pattern.lastIndexOf(':') > pattern.lastIndexOf('/') ? pattern : `${pattern}:*`; // host:port/name has no tag
  return new RegExp('^' + withTag.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*').replace(/\?/g, '.') + '$');
}

function listView(engine: Engine, i: ImageRecord) {
  return {
    Id: i.id,
    ParentId: i.parent,
    RepoTags: i.repoTags,
    RepoDigests: i.repoDigests,
    Created: unix(i.created),
    Size: i.size,
    SharedSize: -1,
    VirtualSize: i.size,
    Labels: labelsOf(i),
    Containers: engine.store.all().filter((c) => c.imageId === i.id).length,
  };
}

function inspectView(i: ImageRecord, layersDir: string) {
  const cfg = i.config;
  return {
    Id: i.id,
    RepoTags: i.repoTags,
    RepoDigests: i.repoDigests,
    Parent: i.parent,
    Comment: cfg.history?.at(-1)?.comment ?? '',
    Created: i.created,
    DockerVersion: '',
    Author: cfg.author ?? '',
    Config: { Env: null, Cmd: null, Entrypoint: null, WorkingDir: '', Labels: null, User: '', ...(cfg.config ?? {}) },
    Architecture: cfg.architecture,
    Os: cfg.os,
    ...(cfg.variant ? { Variant: cfg.variant } : {}),
    Size: i.size,
    GraphDriver: { Name: 'overlay', Data: { Dir: layersDir } },
    RootFS: { Type: 'layers', Layers: cfg.rootfs.diff_ids },
    Metadata: { LastTagTime: '0001-01-01T00:00:00Z' },
  };
}

export function imageRoutes(r: Router, engine: Engine): void {
  const images = engine.images;

  r.on('GET', '/images/json', (ctx) => {
    const f = parseFilters(ctx.query.get('filters'));
    let list = images.list();
    if (f['dangling']?.includes('true')) list = list.filter((i) => i.repoTags.length === 0);
    if (f['dangling']?.includes('false')) list = list.filter((i) => i.repoTags.length > 0);
    if (f['reference']) list = list.filter((i) => i.repoTags.some((t) => f['reference']!.some((p) => refGlob(p).test(t))));
    if (f['label']) list = list.filter((i) => labelsMatch(f['label'], labelsOf(i)));
    if (f['before']) { const b = images.get(f['before'][0]!); list = list.filter((i) => Date.parse(i.created) < Date.parse(b.created)); }
    if (f['since']) { const s = images.get(f['since'][0]!); list = list.filter((i) => Date.parse(i.created) > Date.parse(s.created)); }
    const refs = f['reference']?.map(refGlob);
    const views = list.sort((a, b) => Date.parse(b.created) - Date.parse(a.created)).map((i) => listView(engine, i));
    // like dockerd: with a reference filter an image shows only the names that matched
    if (refs) {
      for (const v of views) {
        v.RepoTags = v.RepoTags.filter((t) => refs.some((re) => re.test(t)));
        const repos = new Set(v.RepoTags.map((t) => t.slice(0, t.lastIndexOf(':'))));
        v.RepoDigests = v.RepoDigests.filter((d) => repos.has(d.slice(0, d.indexOf('@'))));
      }
    }
    ctx.send(200, views);
  });

  r.on('POST', '/images/create', async (ctx) => {
    const fromSrc = ctx.query.get('fromSrc');
    const fromImage = ctx.query.get('fromImage');
    if (fromSrc === null && fromImage) {
      const tag = ctx.query.get('tag') ?? '';
      const creds = registryAuth(ctx);
      const platform = ctx.query.get('platform') ?? '';
      const hasTag = fromImage.includes('@') || fromImage.lastIndexOf(':') > fromImage.lastIndexOf('/');
      // no tag at all is `docker pull --all-tags`
      const refs = tag ? [tag.startsWith('sha256:') ? `${fromImage}@${tag}` : `${fromImage}:${tag}`] : hasTag ? [fromImage] : null;
      // a malformed name (`../../x`) is the client's error (400), found before any registry is asked
      for (const ref of refs ?? [fromImage]) parseReference(ref);
      await streamed(ctx, async (p) => {
        for (const ref of refs ?? (await listTags(fromImage, { creds, client: engine.registries })).map((t) => `${fromImage}:${t}`)) {
          const img = await pull(images, ref, { creds, ...(platform ? { platform } : {}), client: engine.registries, trust: engine.trust, progress: (m) => p.msg(m) });
          engine.events.emit('image', 'pull', img.id, { name: ref });
        }
      });
      return;
    }
    if (fromSrc === null) throw invalidArgument('fromImage or fromSrc is required');
    if (fromSrc !== '-') throw notImplemented('importing from a URL is not supported; pipe the file instead');
    const repo = ctx.query.get('repo') ?? '';
    const tag = ctx.query.get('tag') ?? '';
    const config = applyChanges({}, ctx.query.getAll('changes'));
    const opts: Parameters<typeof images.importRootfs>[1] = { config };
    if (repo) opts.ref = tag ? `${repo}:${tag}` : repo;
    const message = ctx.query.get('message');
    if (message) opts.message = message;
    const platform = ctx.query.get('platform');
    if (platform) opts.platform = platform;
    const img = await images.importRootfs(ctx.bodyStream, opts);
    engine.events.emit('image', 'import', img.id, opts.ref ? { name: opts.ref } : {});
    const p = progress(ctx);
    p.msg({ status: img.id });
    p.end();
  });

  r.on('POST', '/images/load', async (ctx) => {
    const loaded = await images.load(ctx.bodyStream);
    for (const ref of loaded) engine.events.emit('image', 'load', ref, { name: ref });
    const p = progress(ctx);
    for (const ref of loaded) p.msg({ stream: ref.startsWith('sha256:') ? `Loaded image ID: ${ref}\n` : `Loaded image: ${ref}\n` });
    p.end();
  });

  const save = async (ctx: Ctx, names: string[]) => {
    if (names.length === 0) throw invalidArgument('no image names given');
    for (const n of names) images.get(n); // 404 before any byte is sent
    const io = ctx.stream(200, 'application/x-tar');
    const sink = responseSink(io); // as fast as the client reads it
    await images.save(names, sink);
    io.end();
  };
  r.on('GET', '/images/get', (ctx) => save(ctx, ctx.query.getAll('names')));
  r.on('GET', '/images/{name*}/get', (ctx) => save(ctx, [ctx.params[0]!]));

  r.on('GET', '/images/{name*}/json', (ctx) => {
    const i = images.get(ctx.params[0]!);
    ctx.send(200, inspectView(i, `${engine.root}/snapshots`));
  });

  r.on('GET', '/images/{name*}/history', (ctx) => {
    const i = images.get(ctx.params[0]!);
    ctx.send(
      200,
      images.history(ctx.params[0]!).map((h) => ({
        Id: h.id,
        Created: unix(h.created ?? i.created),
        CreatedBy: h.created_by ?? '',
        Tags: h.id === i.id ? i.repoTags : null,
        Size: h.size,
        Comment: h.comment ?? '',
      })),
    );
  });

  r.on('POST', '/images/{name*}/push', async (ctx) => {
    const name = ctx.params[0]!;
    const tag = ctx.query.get('tag') ?? '';
    const ref = tag ? `${name}:${tag}` : name;
    const creds = registryAuth(ctx);
    images.get(ref); // 404 before the stream starts
    await streamed(ctx, async (p) => {
      await push(images, ref, {
        creds, client: engine.registries, progress: (m) => p.msg(m),
        onDigest: (digest, size, t) => p.msg({ progressDetail: {}, aux: { Tag: t, Digest: digest, Size: size } }),
      });
      engine.events.emit('image', 'push', ref, { name: ref });
    });
  });

  r.on('POST', '/images/{name*}/tag', (ctx) => {
    const repo = ctx.query.get('repo');
    if (!repo) throw invalidArgument('repository name must have at least one component');
    const tag = ctx.query.get('tag');
    const target = tag ? `${repo}:${tag}` : repo;
    images.tag(ctx.params[0]!, target);
    engine.events.emit('image', 'tag', images.get(target).id, { name: target });
    ctx.send(201);
  });

  r.on('DELETE', '/images/{name*}', async (ctx) => {
    const res = await images.remove(ctx.params[0]!, { force: flag(ctx, 'force'), noPrune: flag(ctx, 'noprune') }, (id) => engine.isImageUsed(id));
    for (const e of res) {
      if (e.Untagged) engine.events.emit('image', 'untag', e.Untagged, { name: e.Untagged });
      if (e.Deleted) engine.events.emit('image', 'delete', e.Deleted, {});
    }
    ctx.send(200, res);
  });

  r.on('POST', '/images/prune', async (ctx) => {
    const f = parseFilters(ctx.query.get('filters'));
    const all = f['dangling']?.includes('false') ?? false;
    const res = await images.prune({ all, isUsed: (id) => engine.isImageUsed(id), labelFilter: (l) => labelsMatch(f['label'], l) });
    ctx.send(200, { ImagesDeleted: res.deleted.length ? res.deleted : null, SpaceReclaimed: res.spaceReclaimed });
  });

  r.on('POST', '/commit', async (ctx) => {
    const c = engine.get(ctx.query.get('container') ?? '');
    engine.check(c, 'commit');
    const body = await ctx.json();
    const override: ContainerConfig = body && typeof body === 'object' && Object.keys(body).length ? parseContainerConfig(body) : {};
    const base = { ...c.config, ...override };
    const config = applyChanges(
      {
        Env: base.Env ?? [], Cmd: base.Cmd ?? null, Entrypoint: base.Entrypoint ?? null, WorkingDir: base.WorkingDir ?? '', User: base.User ?? '',
        Labels: base.Labels ?? {}, ...(base.ExposedPorts ? { ExposedPorts: base.ExposedPorts } : {}), ...(base.Volumes ? { Volumes: base.Volumes } : {}),
        ...(base.StopSignal ? { StopSignal: base.StopSignal } : {}), ...(base.Healthcheck ? { Healthcheck: base.Healthcheck } : {}),
      },
      ctx.query.getAll('changes').flatMap((x) => x.split('\n')),
    );
    const repo = ctx.query.get('repo');
    const tag = ctx.query.get('tag');
    const pause = ctx.query.get('pause') !== '0' && ctx.query.get('pause') !== 'false';
    const shouldPause = pause && c.state.status === 'running';
    if (shouldPause) await engine.runtime.pause(c.id);
    try {
      const opts: Parameters<typeof images.commit>[0] = { snapshotKey: c.id, parent: images.get(c.imageId), config, createdBy: [c.path, ...c.args].join(' ') };
      const author = ctx.query.get('author');
      const comment = ctx.query.get('comment');
      if (author) opts.author = author;
      if (comment) opts.comment = comment;
      if (repo) opts.ref = tag ? `${repo}:${tag}` : repo;
      const img = await images.commit(opts);
      engine.events.emit('container', 'commit', c.id, { comment: comment ?? '', imageID: img.id, imageRef: opts.ref ?? '', name: c.name });
      ctx.send(201, { Id: img.id });
    } finally {
      if (shouldPause) await engine.runtime.resume(c.id);
    }
  });
}
