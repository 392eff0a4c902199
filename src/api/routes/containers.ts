/** Container lifecycle routes: list, create, inspect, start/stop/kill/restart/pause, remove, wait, rename, update, prune, checkpoints. */
import { invalidArgument, notFound } from '../../base/errors.js';
import { flag, type Router, type Ctx } from '../http.js';
import type { Verbs } from '../../engine/verbs.js';
import { parseFilters } from '../filters.js';
import { inspectView, listView } from './container-view.js';
import { isObject } from '../../base/json.js';
import { responseSink, type IoStream } from '../stream.js';
import { createBody, startBody } from './legacy.js';
import { parseCheckpointCreate } from '../../spec/system-api.js';

function optInt(ctx: Ctx, k: string): number | undefined {
  const v = ctx.query.get(k);
  if (v === null || v === '') return undefined;
  // dockerd reads these with strconv.Atoi: an integer in decimal, nothing else
  if (!/^[+-]?\d{1,9}$/.test(v)) throw invalidArgument(`invalid value for ${k}: ${v}`);
  return Number(v);
}

export function containerRoutes(r: Router, v: Verbs): void {
  const ctrs = v.containers;
  const cps = v.checkpoints;

  r.on('GET', '/containers/json', async (ctx) => {
    const filters = parseFilters(ctx.query.get('filters'));
    const list = await ctrs.list({
      all: flag(ctx, 'all'),
      filters,
      limit: optInt(ctx, 'limit'),
      size: flag(ctx, 'size'),
    });
    ctx.send(
      200,
      list.map((c) => listView(c)),
    );
  });

  r.on('POST', '/containers/create', async (ctx) => {
    const body = await createBody(ctx); // with the older API versions' rules (routes/legacy.ts)
    if (isObject(body)) {
      const hk = Object.keys(body).find((k) => k.toLowerCase() === 'hostconfig');
      if (hk !== undefined) dropCriOnly(body[hk]);
    }
    const { id, warnings } = await ctrs.create(
      body,
      ctx.query.get('name') ?? undefined,
      ctx.query.get('platform') ?? undefined,
    );
    ctx.send(201, { Id: id, Warnings: warnings });
  });

  r.on('GET', '/containers/{id}/json', async (ctx) => {
    // `inspect --size`: the writable layer, and it with the image under it
    ctx.send(200, inspectView(await ctrs.inspect(ctx.params[0]!, flag(ctx, 'size'))));
  });

  r.on('POST', '/containers/{id}/start', async (ctx) => {
    const body = await startBody(ctx); // a HostConfig before API 1.24, refused after (routes/legacy.ts)
    const started =
      body === undefined || body === null
        ? await ctrs.start(ctx.params[0]!, ctx.query.get('checkpoint'), ctx.query.get('checkpoint-dir'))
        : await v.legacy.startWithHostConfig(ctx.params[0]!, body);
    ctx.send(started ? 204 : 304);
  });

  r.on('POST', '/containers/{id}/checkpoints', async (ctx) => {
    const body = parseCheckpointCreate(await ctx.json()) as Record<string, unknown>; // any key case, as dockerd
    if (!isObject(body) || typeof body['CheckpointID'] !== 'string' || !body['CheckpointID'])
      throw invalidArgument('CheckpointID is required');
    const res = await cps.create(ctx.params[0]!, {
      name: body['CheckpointID'],
      dir: typeof body['CheckpointDir'] === 'string' ? body['CheckpointDir'] : null,
      exit: body['Exit'] !== false,
      tcpEstablished: body['TcpEstablished'] === true || flag(ctx, 'tcp-established'),
      preDump: body['PreDump'] === true,
      ...(typeof body['ParentCheckpoint'] === 'string' && body['ParentCheckpoint']
        ? { parent: body['ParentCheckpoint'] }
        : {}),
      // berth's extension: post-copy, pages served from this address (ADDRESS, or "" for loopback)
      ...(typeof body['PageServer'] === 'string' ? { lazy: body['PageServer'] } : {}),
      signal: ctx.signal, // a client that goes away ends CRIU, and the container goes on
    });
    if (res.pageServer) ctx.send(201, { PageServer: res.pageServer });
    else ctx.send(201);
  });

  r.on('GET', '/containers/{id}/checkpoints', async (ctx) =>
    ctx.send(200, await cps.list(ctx.params[0]!, ctx.query.get('dir'))),
  );

  r.on('GET', '/containers/{id}/checkpoints/{name}/export', async (ctx) => {
    const compress = ctx.query.get('compress') !== '0';
    let io: IoStream | null = null;
    // as fast as the target reads it
    const open = () => responseSink((io = ctx.stream(200, compress ? 'application/gzip' : 'application/x-tar')));
    try {
      await cps.export(
        ctx.params[0]!,
        ctx.params[1]!,
        {
          dir: ctx.query.get('dir'),
          compress,
          withParent: ctx.query.get('parent') !== '0',
          withVolumes: flag(ctx, 'volumes'),
        },
        open,
      );
    } finally {
      (io as IoStream | null)?.end();
    }
  });

  r.on('POST', '/checkpoints/stage', async (ctx) => ctx.send(201, { Stage: await cps.stage(ctx.bodyStream) }));

  r.on('POST', '/checkpoints/import', async (ctx) => {
    const name = ctx.query.get('name') || undefined;
    const stage = ctx.query.get('stage') || undefined;
    const res = await cps.import(ctx.bodyStream, {
      ...(name ? { name } : {}),
      ...(stage ? { stage } : {}),
      start: flag(ctx, 'start'),
      hostAccess: flag(ctx, 'allowHostAccess'),
    });
    ctx.send(201, { Id: res.id, Name: res.name });
  });

  r.on('DELETE', '/containers/{id}/checkpoints/{name}', async (ctx) => {
    await cps.remove(ctx.params[0]!, ctx.params[1]!, ctx.query.get('dir'));
    ctx.send(204);
  });

  r.on('POST', '/containers/{id}/stop', async (ctx) => {
    const stopped = await ctrs.stop(ctx.params[0]!, optInt(ctx, 't'), ctx.query.get('signal') ?? undefined);
    ctx.send(stopped ? 204 : 304);
  });

  r.on('POST', '/containers/{id}/restart', async (ctx) => {
    await ctrs.restart(ctx.params[0]!, optInt(ctx, 't'), ctx.query.get('signal') ?? undefined);
    ctx.send(204);
  });

  r.on('POST', '/containers/{id}/kill', async (ctx) => {
    await ctrs.kill(ctx.params[0]!, ctx.query.get('signal') ?? undefined);
    ctx.send(204);
  });

  r.on('POST', '/containers/{id}/pause', async (ctx) => {
    await ctrs.pause(ctx.params[0]!);
    ctx.send(204);
  });

  r.on('POST', '/containers/{id}/unpause', async (ctx) => {
    await ctrs.unpause(ctx.params[0]!);
    ctx.send(204);
  });

  r.on('DELETE', '/containers/{id}', async (ctx) => {
    if (flag(ctx, 'link')) {
      await ctrs.removeLink(ctx.params[0]!);
      ctx.send(204);
      return;
    }
    await ctrs.remove(ctx.params[0]!, { force: flag(ctx, 'force'), volumes: flag(ctx, 'v') });
    ctx.send(204);
  });

  // a link's name, `/<parent>/<alias>` (the docker CLI sends `rm --link lu/db` unescaped); no
  // container's name has a slash
  r.on('DELETE', '/containers/{parent}/{alias}', async (ctx) => {
    const ref = `${ctx.params[0]!}/${ctx.params[1]!}`;
    if (!flag(ctx, 'link')) throw notFound(`No such container: ${ref}`);
    await ctrs.removeLink(ref);
    ctx.send(204);
  });

  r.on('POST', '/containers/{id}/rename', async (ctx) => {
    await ctrs.rename(ctx.params[0]!, ctx.query.get('name') ?? '');
    ctx.send(204);
  });

  r.on('POST', '/containers/{id}/wait', async (ctx) => {
    let io: IoStream | null = null;
    // Headers go out at once: the docker CLI waits for them before starting the container.
    const { code, error } = await ctrs.wait(
      ctx.params[0]!,
      ctx.query.get('condition'),
      () => (io = ctx.stream(200, 'application/json')),
    );
    // dockerd 20.10 always sends Error (null when there is none), first: {"Error":null,"StatusCode":0}
    const body = { Error: error ? { Message: error } : null, StatusCode: code };
    const out = io as IoStream | null;
    out?.write(Buffer.from(JSON.stringify(body) + '\n'));
    out?.end();
  });

  r.on('POST', '/containers/{id}/update', async (ctx) => {
    ctx.send(200, { Warnings: await ctrs.update(ctx.params[0]!, async () => dropCriOnly(await ctx.json())) });
  });

  r.on('POST', '/containers/prune', async (ctx) => {
    const { deleted, reclaimed } = await ctrs.prune(parseFilters(ctx.query.get('filters')));
    ctx.send(200, { ContainersDeleted: deleted.length ? deleted : null, SpaceReclaimed: reclaimed });
  });
}

/**
 * `Unified` (cgroup v2 key/values) is a field of the CRI's LinuxContainerResources that the engine
 * takes in its HostConfig; Docker's HostConfig has none, and dockerd ignores a field it does not
 * know, so the Docker API drops it (any key case, as bodies are decoded) before the engine sees it.
 */
function dropCriOnly(hc: unknown): unknown {
  if (isObject(hc)) for (const k of Object.keys(hc)) if (k.toLowerCase() === 'unified') delete hc[k];
  return hc;
}
