/** Docker's JSON progress streams (pull, push, build) and the registry credentials clients send. */
import { errorMessage, invalidArgument } from '../base/errors.js';
import { isObject } from '../base/json.js';
import type { Credentials } from '../engine/images.js';
import type { Ctx } from './http.js';

/** Docker's JSON progress stream (newline-delimited messages); the response starts with the first message. */
export function progress(ctx: Ctx) {
  let io: ReturnType<Ctx['stream']> | null = null;
  const out = () => (io ??= ctx.stream(200, 'application/json'));
  return {
    msg: (m: Record<string, unknown>) => out().write(Buffer.from(JSON.stringify(m) + '\r\n')),
    end: () => out().end(),
    get started() {
      return io !== null;
    },
  };
}

/**
 * Runs a pull or push: errors before the first progress message are HTTP errors (the docker CLI
 * prints them as "Error response from daemon"); later ones end the stream with Docker's
 * errorDetail message.
 */
export async function streamed(ctx: Ctx, work: (p: ReturnType<typeof progress>) => Promise<void>): Promise<void> {
  const p = progress(ctx);
  try {
    await work(p);
  } catch (e) {
    if (!p.started) throw e;
    const message = errorMessage(e);
    p.msg({ errorDetail: { message }, error: message });
  }
  p.end();
}

/** X-Registry-Auth: base64(url) JSON {username, password} or {auth: base64(user:pass)}. */
export function registryAuth(ctx: Ctx): Credentials | null {
  const h = ctx.req.headers['x-registry-auth'];
  if (typeof h !== 'string' || !h) return null;
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(h.replace(/-/g, '+').replace(/_/g, '/'), 'base64').toString('utf8'));
  } catch {
    throw invalidArgument('invalid X-Registry-Auth header');
  }
  if (!isObject(v)) return null;
  if (typeof v['username'] === 'string' && v['username'] && typeof v['password'] === 'string')
    return { username: v['username'], password: v['password'] };
  if (typeof v['auth'] === 'string' && v['auth']) {
    const up = Buffer.from(v['auth'], 'base64').toString('utf8');
    const i = up.indexOf(':');
    if (i > 0) return { username: up.slice(0, i), password: up.slice(i + 1) };
  }
  return null;
}
