/** A container's filesystem: `docker cp` (GET/HEAD/PUT /containers/{id}/archive) and `docker export`. */
import { flag, type Router, type Ctx } from '../http.js';
import type { Writable } from 'node:stream';
import type { PathStat } from '../../engine/container-files.js';
import type { Verbs } from '../../engine/verbs.js';
import { responseSink, type IoStream } from '../stream.js';

const pathParam = (ctx: Ctx): string => ctx.query.get('path') ?? '';

function statHeader(st: PathStat): string {
  return Buffer.from(JSON.stringify(st)).toString('base64');
}

/**
 * Runs `produce`, which opens a tar response through `open` (headers then) and writes it, ending
 * it when done. A client that goes away stops the producer (its writes fail); a producer that
 * fails cuts the response (the router destroys it).
 */
async function tarResponse(
  ctx: Ctx,
  produce: (open: (headers: Record<string, string>) => Writable) => Promise<void>,
): Promise<void> {
  let io: IoStream | null = null;
  // as fast as the client reads it
  const open = (headers: Record<string, string>) => responseSink((io = ctx.stream(200, 'application/x-tar', headers)));
  try {
    await produce(open);
  } catch (e) {
    if ((io as IoStream | null)?.closed) return; // the client left: nothing to answer, nothing went wrong here
    throw e;
  }
  (io as IoStream | null)?.end();
}

export function containerFsRoutes(r: Router, v: Verbs): void {
  const files = v.files;

  r.on('HEAD', '/containers/{id}/archive', async (ctx) => {
    const st = await files.stat(ctx.params[0]!, pathParam(ctx));
    ctx.send(200, undefined, { 'X-Docker-Container-Path-Stat': statHeader(st), 'Content-Type': 'application/x-tar' });
  });

  r.on('GET', '/containers/{id}/archive', async (ctx) => {
    await tarResponse(ctx, (open) =>
      files.read(ctx.params[0]!, pathParam(ctx), (st) => open({ 'X-Docker-Container-Path-Stat': statHeader(st) })),
    );
  });

  r.on('PUT', '/containers/{id}/archive', async (ctx) => {
    await files.write(ctx.params[0]!, pathParam(ctx), ctx.bodyStream, {
      noOverwriteDirNonDir: flag(ctx, 'noOverwriteDirNonDir'),
    });
    ctx.send(200);
  });

  r.on('GET', '/containers/{id}/export', async (ctx) => {
    await tarResponse(ctx, (open) => files.export(ctx.params[0]!, () => open({})));
  });
}
