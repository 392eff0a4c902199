/** Container lifecycle routes: list, create, inspect, start/stop/kill/restart/pause, remove, wait, rename, update, prune. */
import { invalidArgument } from '../../base/errors.js';
import { flag, type Router, type Ctx } from '../http.js';
import type { Engine } from '../../engine/engine.js';
import type { ContainerRecord } from '../../engine/record.js';
import { parseWaitCondition } from '../../engine/waiters.js';
import { parseUpdateBody } from '../../spec/engine-api.js';
import { checkResources, resourcesOf } from '../../engine/config.js';
import { parseFilters, labelsMatch, type Filters } from '../filters.js';
import { inspectView, listView } from './container-view.js';
import { createCheckpoint, exportCheckpoint, importCheckpoint, listCheckpoints, removeCheckpoint, restoreOf, stageCheckpoint } from '../../engine/checkpoint.js';
import { pull } from '../../distribution/pull.js';
import { isObject } from '../../base/json.js';
import { responseSink } from '../stream.js';

function optInt(ctx: Ctx, k: string): number | undefined {
  const v = ctx.query.get(k);
  if (v === null || v === '') return undefined;
  // dockerd reads these with strconv.Atoi: an integer in decimal, nothing else
  if (!/^[+-]?\d{1,9}$/.test(v)) throw invalidArgument(`invalid value for ${k}: ${v}`);
  return Number(v);
}

/** dockerd's `name` filter: a regular expression over the name with or without its slash (`^web$`, `^/web$`, `we`). */
function nameMatches(pattern: string, name: string): boolean {
  // dockerd's regexps (RE2) run in linear time; V8's backtrack. A pattern that could backtrack
  // exponentially needs a quantified group (`(a+)+`, `(a|a)*`, `((a))+`) or a back-reference: such
  // patterns (and long ones) are matched as plain text, so no filter can stall the daemon.
  if (pattern.length > 256 || /\)[*+?{]/.test(pattern) || /\\[1-9k]/.test(pattern)) return name.includes(pattern.replace(/^\//, ''));
  try {
    const re = new RegExp(pattern);
    return re.test(name) || re.test(`/${name}`);
  } catch {
    return name.includes(pattern.replace(/^\//, ''));
  }
}

function matches(engine: Engine, c: ContainerRecord, f: Filters): boolean {
  const any = (k: string, pred: (v: string) => boolean) => !f[k] || f[k]!.some(pred);
  return (
    any('status', (s) => s === c.state.status) &&
    any('name', (n) => nameMatches(n, c.name)) &&
    any('id', (i) => c.id.startsWith(i)) &&
    any('exited', (e) => c.state.status === 'exited' && String(c.state.exitCode) === e) &&
    any('health', (h) => (c.state.health && c.config.Healthcheck?.Test?.[0] !== 'NONE' ? c.state.health.Status : 'none') === h) &&
    any('ancestor', (a) => c.config.Image === a || c.imageId === a || c.imageId.replace('sha256:', '').startsWith(a) || safeImageId(engine, a) === c.imageId) &&
    any('before', (b) => { const o = engine.store.find(b); return !!o && Date.parse(c.created) < Date.parse(o.created); }) &&
    any('since', (s) => { const o = engine.store.find(s); return !!o && Date.parse(c.created) > Date.parse(o.created); }) &&
    labelsMatch(f['label'], c.config.Labels ?? {})
  );
}

function safeImageId(engine: Engine, ref: string): string | undefined {
  try {
    return engine.images.get(ref).id;
  } catch {
    return undefined;
  }
}

export function containerRoutes(r: Router, engine: Engine): void {
  const lc = engine.lifecycle;

  r.on('GET', '/containers/json', async (ctx) => {
    const f = parseFilters(ctx.query.get('filters'));
    for (const h of f['health'] ?? []) if (!['starting', 'healthy', 'unhealthy', 'none'].includes(h)) throw invalidArgument(`Unrecognised filter value for health: ${h}`);
    let list = engine.store.all().sort((a, b) => Date.parse(b.created) - Date.parse(a.created));
    if (!flag(ctx, 'all') && !f['status'] && !f['exited']) list = list.filter((c) => ['running', 'paused', 'restarting'].includes(c.state.status));
    list = list.filter((c) => matches(engine, c, f));
    const limit = optInt(ctx, 'limit');
    if (limit !== undefined && limit > 0) list = list.slice(0, limit);
    const withSize = flag(ctx, 'size');
    const sizes = withSize ? await Promise.all(list.map((c) => engine.snapshots.usage(c.id).catch(() => 0))) : [];
    ctx.send(200, list.map((c, i) => listView(engine, c, withSize, sizes[i] ?? 0)));
  });

  r.on('POST', '/containers/create', async (ctx) => {
    const body = await ctx.json();
    const { id, warnings } = await engine.create(body, ctx.query.get('name') ?? undefined, ctx.query.get('platform') ?? undefined);
    ctx.send(201, { Id: id, Warnings: warnings });
  });

  r.on('GET', '/containers/{id}/json', async (ctx) => {
    const c = engine.get(ctx.params[0]!);
    const view: Record<string, unknown> = inspectView(engine, c);
    if (flag(ctx, 'size')) {
      // `inspect --size`: the writable layer, and it with the image under it
      view['SizeRw'] = await engine.snapshots.usage(c.id).catch(() => 0);
      view['SizeRootFs'] = (view['SizeRw'] as number) + (engine.images.list().find((i) => i.id === c.imageId)?.size ?? 0);
    }
    ctx.send(200, view);
  });

  r.on('POST', '/containers/{id}/start', async (ctx) => {
    const rec = engine.get(ctx.params[0]!);
    const checkpoint = ctx.query.get('checkpoint');
    const restore = checkpoint ? await restoreOf(engine, rec, checkpoint, ctx.query.get('checkpoint-dir')) : undefined;
    if (engine.trust && rec.state.status !== 'running') await engine.trust.check(engine.images.get(rec.imageId), rec.config.Image ?? rec.imageId);
    const started = await lc.start(rec, restore);
    ctx.send(started ? 204 : 304);
  });

  r.on('POST', '/containers/{id}/checkpoints', async (ctx) => {
    const body = (await ctx.json()) ?? {};
    if (!isObject(body) || typeof body['CheckpointID'] !== 'string' || !body['CheckpointID']) throw invalidArgument('CheckpointID is required');
    const r = await createCheckpoint(engine, ctx.params[0]!, {
      name: body['CheckpointID'], dir: typeof body['CheckpointDir'] === 'string' ? body['CheckpointDir'] : null,
      exit: body['Exit'] !== false, tcpEstablished: body['TcpEstablished'] === true || flag(ctx, 'tcp-established'),
      preDump: body['PreDump'] === true, ...(typeof body['ParentCheckpoint'] === 'string' && body['ParentCheckpoint'] ? { parent: body['ParentCheckpoint'] } : {}),
      // berth's extension: post-copy, pages served from this address (ADDRESS, or "" for loopback)
      ...(typeof body['PageServer'] === 'string' ? { lazy: body['PageServer'] } : {}),
      signal: ctx.signal, // a client that goes away ends CRIU, and the container goes on
    });
    if (r.pageServer) ctx.send(201, { PageServer: r.pageServer });
    else ctx.send(201);
  });

  r.on('GET', '/containers/{id}/checkpoints', async (ctx) => ctx.send(200, await listCheckpoints(engine, ctx.params[0]!, ctx.query.get('dir'))));

  r.on('GET', '/containers/{id}/checkpoints/{name}/export', async (ctx) => {
    const rec = engine.get(ctx.params[0]!);
    await listCheckpoints(engine, rec.id, ctx.query.get('dir')); // NotFound before the stream starts
    const io = ctx.stream(200, ctx.query.get('compress') === '0' ? 'application/x-tar' : 'application/gzip');
    const out = responseSink(io); // as fast as the target reads it
    try {
      await exportCheckpoint(engine, rec.id, ctx.params[1]!, out, { dir: ctx.query.get('dir'), compress: ctx.query.get('compress') !== '0', withParent: ctx.query.get('parent') !== '0', withVolumes: flag(ctx, 'volumes') });
    } finally {
      io.end();
    }
  });

  r.on('POST', '/checkpoints/stage', async (ctx) => ctx.send(201, { Stage: await stageCheckpoint(engine, ctx.bodyStream) }));

  r.on('POST', '/checkpoints/import', async (ctx) => {
    const name = ctx.query.get('name') || undefined;
    const stage = ctx.query.get('stage') || undefined;
    const r2 = await importCheckpoint(engine, ctx.bodyStream, {
      ...(name ? { name } : {}),
      ...(stage ? { stage } : {}),
      start: flag(ctx, 'start'),
      hostAccess: flag(ctx, 'allowHostAccess'),
      pull: (ref) => pull(engine.images, ref, { creds: null, client: engine.registries, trust: engine.trust, progress: () => undefined }),
    });
    ctx.send(201, { Id: r2.id, Name: r2.name });
  });

  r.on('DELETE', '/containers/{id}/checkpoints/{name}', async (ctx) => {
    await removeCheckpoint(engine, ctx.params[0]!, ctx.params[1]!, ctx.query.get('dir'));
    ctx.send(204);
  });

  r.on('POST', '/containers/{id}/stop', async (ctx) => {
    const stopped = await lc.stop(engine.get(ctx.params[0]!), optInt(ctx, 't'), ctx.query.get('signal') ?? undefined);
    ctx.send(stopped ? 204 : 304);
  });

  r.on('POST', '/containers/{id}/restart', async (ctx) => {
    await lc.restart(engine.get(ctx.params[0]!), optInt(ctx, 't'), ctx.query.get('signal') ?? undefined);
    ctx.send(204);
  });

  r.on('POST', '/containers/{id}/kill', async (ctx) => {
    await lc.kill(engine.get(ctx.params[0]!), ctx.query.get('signal') ?? undefined);
    ctx.send(204);
  });

  r.on('POST', '/containers/{id}/pause', async (ctx) => {
    await lc.pause(engine.get(ctx.params[0]!));
    ctx.send(204);
  });

  r.on('POST', '/containers/{id}/unpause', async (ctx) => {
    await lc.unpause(engine.get(ctx.params[0]!));
    ctx.send(204);
  });

  r.on('DELETE', '/containers/{id}', async (ctx) => {
    await engine.remove(ctx.params[0]!, { force: flag(ctx, 'force'), volumes: flag(ctx, 'v') });
    ctx.send(204);
  });

  r.on('POST', '/containers/{id}/rename', async (ctx) => {
    await engine.rename(ctx.params[0]!, ctx.query.get('name') ?? '');
    ctx.send(204);
  });

  r.on('POST', '/containers/{id}/wait', async (ctx) => {
    const c = engine.get(ctx.params[0]!);
    const condition = parseWaitCondition(ctx.query.get('condition'));
    const active = ['running', 'paused', 'restarting'].includes(c.state.status);
    // Headers go out at once: the docker CLI waits for them before starting the container.
    const io = ctx.stream(200, 'application/json');
    const code = condition === 'not-running' && !active ? c.state.exitCode : await engine.waiters.add(c.id, condition);
    const after = engine.store.find(c.id);
    const body: Record<string, unknown> = { StatusCode: code };
    if (after?.state.error) body['Error'] = { Message: after.state.error };
    io.write(Buffer.from(JSON.stringify(body) + '\n'));
    io.end();
  });

  r.on('POST', '/containers/{id}/update', async (ctx) => {
    const c = engine.get(ctx.params[0]!);
    const { resources, restartPolicy } = parseUpdateBody(await ctx.json());
    if (restartPolicy && c.hostConfig.AutoRemove && restartPolicy.Name !== 'no') throw invalidArgument('Restart policy cannot be updated because AutoRemove is enabled for the container');
    // the docker CLI sends every field, unset ones as 0 or "": only the set ones change anything
    const set = Object.fromEntries(Object.entries(resources).filter(([, v]) => v !== undefined && v !== null && v !== 0 && v !== ''));
    if (c.hostConfig.NanoCpus && !set['NanoCpus'] && (set['CpuQuota'] || set['CpuPeriod'])) throw invalidArgument('Conflicting options: CPU Quota cannot be updated as NanoCPUs has already been set');
    if (set['NanoCpus'] && !set['CpuQuota'] && !set['CpuPeriod'] && (c.hostConfig.CpuQuota || c.hostConfig.CpuPeriod)) throw invalidArgument('Conflicting options: Nano CPUs cannot be updated as CPU Quota has already been set');
    const merged = { ...c.hostConfig, ...set, ...(restartPolicy ? { RestartPolicy: restartPolicy } : {}) };
    // the result is checked as a whole, like a create, before anything changes
    const warnings = checkResources(merged, engine.runtime.host(), true);
    if (set['BlkioWeight'] && !engine.runtime.host().blkioWeight) merged.BlkioWeight = c.hostConfig.BlkioWeight ?? 0;
    if (['running', 'paused'].includes(c.state.status)) await engine.runtime.update(c.id, resourcesOf(merged));
    c.hostConfig = merged;
    engine.store.save(c);
    engine.events.emit('container', 'update', c.id, { image: c.config.Image ?? '', name: c.name });
    ctx.send(200, { Warnings: warnings });
  });

  r.on('POST', '/containers/prune', async (ctx) => {
    const f = parseFilters(ctx.query.get('filters'));
    const deleted: string[] = [];
    let reclaimed = 0;
    for (const c of engine.store.all()) {
      if (!['exited', 'created', 'dead'].includes(c.state.status) || !labelsMatch(f['label'], c.config.Labels ?? {})) continue;
      reclaimed += await engine.snapshots.usage(c.id).catch(() => 0);
      await engine.remove(c.id, { force: false });
      deleted.push(c.id);
    }
    ctx.send(200, { ContainersDeleted: deleted.length ? deleted : null, SpaceReclaimed: reclaimed });
  });
}
