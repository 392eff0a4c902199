/**
 * The routes and request bodies of API versions below 1.24 (gates in spec/api-version.ts):
 * `POST /containers/{id}/copy`, and the HostConfig a start body carried.
 */
import { invalidArgument } from '../../base/errors.js';
import type { Verbs } from '../../engine/verbs.js';
import { gates, START_BODY_REMOVED } from '../../spec/api-version.js';
import type { Ctx, Router } from '../http.js';
import { responseSink, type IoStream } from '../stream.js';

/** dockerd's httputils.CheckForJSON: no Content-Type, or application/json (parameters allowed). */
function checkForJson(ctx: Ctx): void {
  const ct = ctx.req.headers['content-type'];
  if (ct === undefined || ct === '') return;
  if (ct.split(';')[0]!.trim().toLowerCase() !== 'application/json')
    throw invalidArgument(`Content-Type specified (${ct}) must be 'application/json'`);
}

/**
 * The body of `POST /containers/{id}/start`, as dockerd reads it: one longer than 7 bytes (or of
 * unknown length) is refused from API 1.24 on (400, dockerd's words) and is the HostConfig to
 * apply before 1.24; undefined when there is none (an empty body, `{}`, `null`).
 */
export async function startBody(ctx: Ctx): Promise<unknown> {
  const len = ctx.req.headers['content-length'];
  const chunked = len === undefined && /chunked/i.test(ctx.req.headers['transfer-encoding'] ?? '');
  if (!chunked && !(Number(len) > 7)) return undefined;
  if (!gates(ctx.version).hostConfigOnStart) throw invalidArgument(START_BODY_REMOVED);
  checkForJson(ctx);
  return ctx.json();
}

export function legacyRoutes(r: Router, v: Verbs): void {
  r.on('POST', '/containers/{id}/copy', async (ctx) => {
    // dockerd 20.10 from API 1.24 on: 404 with an empty body
    if (!gates(ctx.version).containerCopy) return ctx.send(404);
    checkForJson(ctx);
    const body = await ctx.json();
    const res = body !== null && typeof body === 'object' ? (body as Record<string, unknown>) : {};
    const key = Object.keys(res).find((k) => k.toLowerCase() === 'resource');
    const resource = key !== undefined && typeof res[key] === 'string' ? (res[key] as string) : '';
    let io: IoStream | null = null;
    await v.legacy.copy(ctx.params[0]!, resource, () => responseSink((io = ctx.stream(200, 'application/x-tar'))));
    (io as IoStream | null)?.end();
  });
}
