/** A container's filesystem: `docker cp` (GET/HEAD/PUT /containers/{id}/archive) and `docker export`. */
import { conflict, invalidArgument } from '../../base/errors.js';
import { flag, type Router, type Ctx } from '../http.js';
import type { Engine } from '../../engine/engine.js';
import { statPath, packPath, extractInto, packDir } from '../../archive/container-fs.js';

const pathParam = (ctx: Ctx): string => {
  const p = ctx.query.get('path');
  if (!p) throw invalidArgument('path is required');
  return p;
};

function statHeader(st: Awaited<ReturnType<typeof statPath>>): string {
  return Buffer.from(JSON.stringify(st)).toString('base64');
}

/** Streams `produce` as a tar response, ending it when done. */
async function tarResponse(ctx: Ctx, headers: Record<string, string>, produce: (out: import('node:stream').Writable) => Promise<void>): Promise<void> {
  const io = ctx.stream(200, 'application/x-tar', headers);
  const { Writable } = await import('node:stream');
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      io.write(chunk);
      cb();
    },
  });
  await produce(sink);
  io.end();
}

export function containerFsRoutes(r: Router, engine: Engine): void {
  r.on('HEAD', '/containers/{id}/archive', async (ctx) => {
    const c = engine.get(ctx.params[0]!);
    const root = await engine.ensureMounted(c);
    const st = await statPath(root, pathParam(ctx));
    ctx.send(200, undefined, { 'X-Docker-Container-Path-Stat': statHeader(st), 'Content-Type': 'application/x-tar' });
  });

  r.on('GET', '/containers/{id}/archive', async (ctx) => {
    const c = engine.get(ctx.params[0]!);
    const root = await engine.ensureMounted(c);
    const path = pathParam(ctx);
    const st = await statPath(root, path);
    await tarResponse(ctx, { 'X-Docker-Container-Path-Stat': statHeader(st) }, (out) => packPath(root, path, out));
  });

  r.on('PUT', '/containers/{id}/archive', async (ctx) => {
    const c = engine.get(ctx.params[0]!);
    if (c.hostConfig.ReadonlyRootfs) throw conflict('container rootfs is marked read-only');
    const root = await engine.ensureMounted(c);
    const noOverwrite = flag(ctx, 'noOverwriteDirNonDir');
    await extractInto(root, pathParam(ctx), ctx.bodyStream, { noOverwriteDirNonDir: noOverwrite });
    ctx.send(200);
  });

  r.on('GET', '/containers/{id}/export', async (ctx) => {
    const c = engine.get(ctx.params[0]!);
    const root = await engine.ensureMounted(c);
    await tarResponse(ctx, {}, (out) => packDir(root, out));
    engine.events.emit('container', 'export', c.id, { image: c.config.Image ?? '', name: c.name });
  });
}
