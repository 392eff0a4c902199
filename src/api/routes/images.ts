/** Image routes: list, inspect, history, tag, remove, prune, pull and import (/images/create), push, load, save (get), commit. */
import { errorMessage, invalidArgument } from '../../base/errors.js';
import { flag, versionAtLeast, type Router, type Ctx } from '../http.js';
import { refGlob, type ImageRecord, type ImageVerbs } from '../../engine/images.js';
import { parseFilters } from '../filters.js';
import { progress, registryAuth, streamed } from '../progress.js';
import { responseSink, type IoStream } from '../stream.js';

const unix = (t: string) => Math.floor(Date.parse(t) / 1000) || 0;
function listView(images: ImageVerbs, i: ImageRecord, version: string) {
  // dockerd 20.10: "Labels":null and "RepoDigests":null when there are none; VirtualSize until API 1.43
  return {
    Id: i.id,
    ParentId: i.parent,
    RepoTags: i.repoTags,
    RepoDigests: i.repoDigests.length ? i.repoDigests : null,
    Created: unix(i.created),
    Size: i.size,
    SharedSize: -1,
    ...(versionAtLeast(version, '1.44') ? {} : { VirtualSize: i.size }),
    Labels: i.config.config?.Labels ?? null,
    Containers: images.containersOf(i.id),
  };
}

/**
 * A container config as dockerd shows it in an image (Go's container.Config: every field, in its
 * order; the `omitempty` ones only when set).
 */
function containerConfigView(c: Record<string, unknown> | undefined): Record<string, unknown> {
  const v = c ?? {};
  const opt = (k: string) =>
    v[k] !== undefined && v[k] !== null && v[k] !== '' && v[k] !== false ? { [k]: v[k] } : {};
  return {
    Hostname: v['Hostname'] ?? '',
    Domainname: v['Domainname'] ?? '',
    User: v['User'] ?? '',
    AttachStdin: v['AttachStdin'] ?? false,
    AttachStdout: v['AttachStdout'] ?? false,
    AttachStderr: v['AttachStderr'] ?? false,
    ...opt('ExposedPorts'),
    Tty: v['Tty'] ?? false,
    OpenStdin: v['OpenStdin'] ?? false,
    StdinOnce: v['StdinOnce'] ?? false,
    Env: v['Env'] ?? null,
    Cmd: v['Cmd'] ?? null,
    ...opt('Healthcheck'),
    ...opt('ArgsEscaped'),
    Image: v['Image'] ?? '',
    Volumes: v['Volumes'] ?? null,
    WorkingDir: v['WorkingDir'] ?? '',
    Entrypoint: v['Entrypoint'] ?? null,
    ...opt('NetworkDisabled'),
    ...opt('MacAddress'),
    OnBuild: v['OnBuild'] ?? null,
    Labels: v['Labels'] ?? null,
    ...opt('StopSignal'),
    ...opt('StopTimeout'),
    ...opt('Shell'),
  };
}

function inspectView(i: ImageRecord, layersDir: string, version: string) {
  const cfg = i.config;
  const cc = cfg['container_config'];
  // dockerd 20.10 (API 1.41): Container and ContainerConfig (until 1.44), VirtualSize (until 1.43)
  const old = !versionAtLeast(version, '1.45');
  return {
    Id: i.id,
    RepoTags: i.repoTags,
    RepoDigests: i.repoDigests,
    Parent: i.parent,
    Comment: cfg.history?.at(-1)?.comment ?? '',
    Created: i.created,
    ...(old
      ? {
          Container: typeof cfg['container'] === 'string' ? cfg['container'] : '',
          ContainerConfig: containerConfigView(
            cc && typeof cc === 'object' && !Array.isArray(cc) ? (cc as Record<string, unknown>) : undefined,
          ),
        }
      : {}),
    DockerVersion: typeof cfg['docker_version'] === 'string' ? cfg['docker_version'] : '',
    Author: cfg.author ?? '',
    Config: containerConfigView(cfg.config),
    Architecture: cfg.architecture,
    Os: cfg.os,
    ...(cfg.variant ? { Variant: cfg.variant } : {}),
    Size: i.size,
    ...(versionAtLeast(version, '1.44') ? {} : { VirtualSize: i.size }),
    GraphDriver: { Name: 'overlay', Data: { Dir: layersDir } },
    RootFS: { Type: 'layers', Layers: cfg.rootfs.diff_ids },
    Metadata: { LastTagTime: '0001-01-01T00:00:00Z' },
  };
}

export function imageRoutes(r: Router, images: ImageVerbs): void {
  r.on('GET', '/images/json', (ctx) => {
    const f = parseFilters(ctx.query.get('filters'));
    const refs = f['reference']?.map(refGlob);
    const views = images.list(f, flag(ctx, 'all')).map((i) => listView(images, i, ctx.version));
    // like dockerd: with a reference filter an image shows only the names that matched
    if (refs) {
      for (const v of views) {
        v.RepoTags = v.RepoTags.filter((t) => refs.some((re) => re.test(t)));
        const repos = new Set(v.RepoTags.map((t) => t.slice(0, t.lastIndexOf(':'))));
        const digests = (v.RepoDigests ?? []).filter((d) => repos.has(d.slice(0, d.indexOf('@'))));
        v.RepoDigests = digests.length ? digests : null;
      }
    }
    ctx.send(200, views);
  });

  r.on('POST', '/images/create', async (ctx) => {
    const fromSrc = ctx.query.get('fromSrc');
    const fromImage = ctx.query.get('fromImage');
    if (fromSrc === null && fromImage) {
      const creds = registryAuth(ctx);
      const platform = ctx.query.get('platform') ?? '';
      // a malformed name (`../../x`) is the client's error (400), found before any registry is asked
      await streamed(ctx, (p) =>
        images.pull(fromImage, ctx.query.get('tag') ?? '', { creds, platform, progress: (m) => p.msg(m) }),
      );
      return;
    }
    if (fromSrc === null) throw invalidArgument('fromImage or fromSrc is required');
    const o = {
      repo: ctx.query.get('repo') ?? '',
      tag: ctx.query.get('tag') ?? '',
      changes: ctx.query.getAll('changes'),
      message: ctx.query.get('message'),
      platform: ctx.query.get('platform'),
    };
    if (fromSrc !== '-') {
      // dockerd: {"status":"Downloading from <url>"}, then the id; a failed GET before it is an HTTP error
      await streamed(ctx, async (p) => {
        const img = await images.importUrl(fromSrc, o, (url) => p.msg({ status: `Downloading from ${url}` }));
        p.msg({ status: img.id });
      });
      return;
    }
    const img = await images.importRootfs(ctx.bodyStream, o);
    const p = progress(ctx);
    p.msg({ status: img.id });
    p.end();
  });

  r.on('POST', '/images/load', async (ctx) => {
    // dockerd answers 200 whatever happens and reports a failed load inside the stream, quiet or
    // not: {"errorDetail":{"message":"Error processing tar file(exit status 1): unexpected EOF"},"error":...}
    const p = progress(ctx);
    try {
      const loaded = await images.load(ctx.bodyStream);
      for (const ref of loaded)
        p.msg({ stream: ref.startsWith('sha256:') ? `Loaded image ID: ${ref}\n` : `Loaded image: ${ref}\n` });
    } catch (e) {
      ctx.bodyStream.resume(); // what the load did not read, so the connection can be reused
      const message = errorMessage(e);
      p.msg({ errorDetail: { message }, error: message });
    }
    p.end();
  });

  const save = async (ctx: Ctx, names: string[]) => {
    let io: IoStream | null = null;
    await images.save(names, () => responseSink((io = ctx.stream(200, 'application/x-tar')))); // as fast as the client reads it
    (io as IoStream | null)?.end();
  };
  r.on('GET', '/images/get', (ctx) => save(ctx, ctx.query.getAll('names')));
  r.on('GET', '/images/{name*}/get', (ctx) => save(ctx, [ctx.params[0]!]));

  r.on('GET', '/images/{name*}/json', (ctx) => {
    const i = images.get(ctx.params[0]!);
    ctx.send(200, inspectView(i, images.layersDir, ctx.version));
  });

  r.on('GET', '/images/{name*}/history', (ctx) => {
    const { image: i, entries } = images.history(ctx.params[0]!);
    ctx.send(
      200,
      entries.map((h) => ({
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
    await streamed(ctx, (p) =>
      images.push(ref, {
        creds,
        progress: (m) => p.msg(m),
        onDigest: (digest, size, t) => p.msg({ progressDetail: {}, aux: { Tag: t, Digest: digest, Size: size } }),
      }),
    );
  });

  // dockerd 20.10: the results as a list ([{"star_count":..,"is_official":..,"name":..,"is_automated":..,"description":..}])
  r.on('GET', '/images/search', async (ctx) => {
    const f = parseFilters(ctx.query.get('filters'));
    ctx.send(200, await images.search(ctx.query.get('term') ?? '', ctx.query.get('limit'), f, registryAuth(ctx)));
  });

  // dockerd 20.10: {"Descriptor":{"mediaType":...,"digest":...,"size":527},"Platforms":[{"architecture":"amd64","os":"linux"}]}
  r.on('GET', '/distribution/{name*}/json', async (ctx) => {
    const x = await images.inspectDistribution(ctx.params[0]!, registryAuth(ctx));
    ctx.send(200, { Descriptor: x.Descriptor, Platforms: x.Platforms.length ? x.Platforms : null });
  });

  r.on('POST', '/images/{name*}/tag', (ctx) => {
    images.tag(ctx.params[0]!, ctx.query.get('repo'), ctx.query.get('tag'));
    ctx.send(201);
  });

  r.on('DELETE', '/images/{name*}', async (ctx) => {
    ctx.send(200, await images.remove(ctx.params[0]!, { force: flag(ctx, 'force'), noPrune: flag(ctx, 'noprune') }));
  });

  r.on('POST', '/images/prune', async (ctx) => {
    const res = await images.prune(parseFilters(ctx.query.get('filters')));
    ctx.send(200, { ImagesDeleted: res.deleted.length ? res.deleted : null, SpaceReclaimed: res.spaceReclaimed });
  });

  r.on('POST', '/commit', async (ctx) => {
    const container = ctx.query.get('container') ?? '';
    const pause = ctx.query.get('pause') !== '0' && ctx.query.get('pause') !== 'false';
    const img = await images.commit({
      container,
      config: () => ctx.json(),
      changes: ctx.query.getAll('changes'),
      repo: ctx.query.get('repo'),
      tag: ctx.query.get('tag'),
      author: ctx.query.get('author'),
      comment: ctx.query.get('comment'),
      pause,
    });
    ctx.send(201, { Id: img.id });
  });
}
