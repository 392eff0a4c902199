/** A container's filesystem: `docker cp` (GET/HEAD/PUT /containers/{id}/archive) and `docker export`. */
import { conflict, invalidArgument } from '../../base/errors.js';
import { flag, type Router, type Ctx } from '../http.js';
import type { Engine } from '../../engine/engine.js';
import { join } from 'node:path';
import type { Writable } from 'node:stream';
import { statPath, packPath, extractInto, packDir } from '../../archive/container-fs.js';
import type { RootedFs } from '../../archive/rooted.js';
import type { ContainerRecord } from '../../engine/record.js';
import { responseSink } from '../stream.js';

const pathParam = (ctx: Ctx): string => {
  const p = ctx.query.get('path');
  if (!p) throw invalidArgument('path is required');
  return p;
};

function statHeader(st: Awaited<ReturnType<typeof statPath>>): string {
  return Buffer.from(JSON.stringify(st)).toString('base64');
}

/**
 * Streams `produce` as a tar response, ending it when done. A client that goes away stops the
 * producer (its writes fail); a producer that fails cuts the response (the router destroys it).
 */
async function tarResponse(ctx: Ctx, headers: Record<string, string>, produce: (out: Writable) => Promise<void>): Promise<void> {
  const io = ctx.stream(200, 'application/x-tar', headers);
  const sink = responseSink(io); // as fast as the client reads it, never buffered whole
  try {
    await produce(sink);
  } catch (e) {
    if (io.closed) return; // the client left: nothing to answer, nothing went wrong here
    throw e;
  }
  io.end();
}

/** Runs `f` on the container's files as it sees them (one view per request, closed after). */
async function withView<T>(engine: Engine, c: ContainerRecord, f: (fs: RootedFs) => Promise<T>): Promise<T> {
  const fs = await engine.rootedView(c);
  try {
    return await f(fs);
  } finally {
    fs.close();
  }
}

export function containerFsRoutes(r: Router, engine: Engine): void {
  r.on('HEAD', '/containers/{id}/archive', async (ctx) => {
    const c = engine.get(ctx.params[0]!);
    const st = await withView(engine, c, async (fs) => statPath(fs, pathParam(ctx)));
    ctx.send(200, undefined, { 'X-Docker-Container-Path-Stat': statHeader(st), 'Content-Type': 'application/x-tar' });
  });

  r.on('GET', '/containers/{id}/archive', async (ctx) => {
    const c = engine.get(ctx.params[0]!);
    const path = pathParam(ctx);
    await withView(engine, c, async (fs) => {
      const st = statPath(fs, path);
      await tarResponse(ctx, { 'X-Docker-Container-Path-Stat': statHeader(st) }, (out) => packPath(fs, path, out));
    });
  });

  r.on('PUT', '/containers/{id}/archive', async (ctx) => {
    const c = engine.get(ctx.params[0]!);
    if (c.hostConfig.ReadonlyRootfs) throw conflict('container rootfs is marked read-only');
    const noOverwrite = flag(ctx, 'noOverwriteDirNonDir');
    const path = pathParam(ctx);
    await withView(engine, c, (fs) => extractInto(fs, path, ctx.bodyStream, { noOverwriteDirNonDir: noOverwrite, spoolDir: join(engine.root, 'tmp') }));
    ctx.send(200);
  });

  r.on('GET', '/containers/{id}/export', async (ctx) => {
    const c = engine.get(ctx.params[0]!);
    await withView(engine, c, (fs) => tarResponse(ctx, {}, (out) => packDir(fs.root, out)));
    engine.events.emit('container', 'export', c.id, { image: c.config.Image ?? '', name: c.name });
  });
}
