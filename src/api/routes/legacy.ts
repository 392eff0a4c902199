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

/** The value under `key` matched as Go matches a field (any case), or undefined. */
function keyOf(o: Record<string, unknown>, key: string): string | undefined {
  return Object.hasOwn(o, key) ? key : Object.keys(o).find((k) => k.toLowerCase() === key.toLowerCase());
}

/**
 * A create body with the older versions' rules applied (dockerd's postContainersCreate): below 1.25
 * `HostConfig.AutoRemove` is ignored (the client removed the container itself).
 */
export async function createBody(ctx: Ctx): Promise<unknown> {
  const body = await ctx.json();
  const g = gates(ctx.version);
  if (!g.ignoreAutoRemove || body === null || typeof body !== 'object' || Array.isArray(body)) return body;
  const hk = keyOf(body as Record<string, unknown>, 'HostConfig');
  const hc = hk === undefined ? undefined : (body as Record<string, unknown>)[hk];
  if (hc === null || typeof hc !== 'object' || Array.isArray(hc)) return body;
  const ak = keyOf(hc as Record<string, unknown>, 'AutoRemove');
  if (ak !== undefined) (hc as Record<string, unknown>)[ak] = false;
  return body;
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
