/**
 * POST /build (the legacy builder's API, which the docker CLI uses without BuildKit) and
 * POST /build/prune. The body is the context tar; progress is Docker's JSON stream
 * (`{"stream": "Step 1/3 : ..."}`, `{"aux": {"ID": ...}}`, a final `errorDetail` on failure).
 * berth's CLI asks for `berthsteps=1` and also gets `{"berthStep": {...}}` per finished step.
 */
import { errorMessage, invalidArgument } from '../../base/errors.js';
import { isObject } from '../../base/json.js';
import { registryCredentials, type BuildRequest, type BuildVerbs } from '../../engine/build.js';
import type { BuildKitVerbs } from '../../engine/buildkit.js';
import type { Credentials } from '../../engine/images.js';
import { flag, type Ctx, type Router } from '../http.js';
import { progress } from '../progress.js';
import { buildKitBuild } from './buildkit.js';

function jsonParam<T>(ctx: Ctx, k: string, check: (v: unknown) => v is T, fallback: T): T {
  const text = ctx.query.get(k);
  if (!text) return fallback;
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw invalidArgument(`invalid ${k} parameter: not JSON`);
  }
  if (v === null) return fallback; // the Go SDK sends `buildargs=null`, `labels=null`, `cachefrom=null` for unset
  if (!check(v)) throw invalidArgument(`invalid ${k} parameter`);
  return v;
}

const isStringMap = (v: unknown): v is Record<string, string | null> =>
  isObject(v) && Object.values(v).every((x) => typeof x === 'string' || x === null);
const isStringArray = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === 'string');

/** X-Registry-Config: base64 JSON {registry: {username, password}} for the images a build pulls. */
function registryConfig(ctx: Ctx): (ref: string) => Credentials | null {
  const h = ctx.req.headers['x-registry-config'];
  if (typeof h !== 'string' || !h) return () => null;
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(h.replace(/-/g, '+').replace(/_/g, '/'), 'base64').toString('utf8'));
  } catch {
    throw invalidArgument('invalid X-Registry-Config header');
  }
  if (!isObject(v)) return () => null;
  return registryCredentials(v);
}

/** X-Berth-Build-Secrets: base64 JSON {id: base64 data} (berth build --secret). Never logged or stored. */
function secretsOf(ctx: Ctx): Record<string, Buffer> {
  const h = ctx.req.headers['x-berth-build-secrets'];
  if (typeof h !== 'string' || !h) return {};
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(h, 'base64').toString('utf8'));
  } catch {
    throw invalidArgument('invalid X-Berth-Build-Secrets header');
  }
  if (!isStringMap(v)) throw invalidArgument('invalid X-Berth-Build-Secrets header');
  return Object.fromEntries(Object.entries(v).map(([k, d]) => [k, Buffer.from(d ?? '', 'base64')]));
}

export function buildRoutes(r: Router, builder: BuildVerbs, kit?: BuildKitVerbs): void {
  r.on('POST', '/build', async (ctx) => {
    // BuildKit (dockerode's version '2', the docker CLI's client-session builds): ./buildkit.ts
    if (kit && ctx.query.get('version') === '2') return buildKitBuild(ctx, kit);
    if (ctx.query.get('remote'))
      throw invalidArgument('remote build contexts are not supported: send the context as the request body');
    const buildArgs = Object.fromEntries(
      Object.entries(jsonParam(ctx, 'buildargs', isStringMap, {})).filter((e): e is [string, string] => e[1] !== null),
    );
    const network = ctx.query.get('networkmode') || 'default';
    if (!['default', 'host', 'none', 'bridge'].includes(network))
      throw invalidArgument(`network mode ${network} is not supported for builds (default, host, none)`);
    const platform = ctx.query.get('platform') || 'linux/amd64';
    if (!/^linux(\/amd64)?$/.test(platform))
      throw invalidArgument(`platform ${platform} is not supported: this host builds linux/amd64`);
    const quiet = flag(ctx, 'q');
    const steps = flag(ctx, 'berthsteps');
    const req: BuildRequest = {
      dockerfile: ctx.query.get('dockerfile') || 'Dockerfile',
      tags: ctx.query.getAll('t').filter(Boolean),
      buildArgs,
      target: ctx.query.get('target') ?? '',
      noCache: flag(ctx, 'nocache'),
      pull: flag(ctx, 'pull'),
      labels: Object.fromEntries(
        Object.entries(jsonParam(ctx, 'labels', isStringMap, {})).map(([k, v]) => [k, v ?? '']),
      ),
      cacheFrom: jsonParam(ctx, 'cachefrom', isStringArray, []),
      secrets: secretsOf(ctx),
      platform: 'linux/amd64',
      network: network === 'bridge' ? 'default' : (network as BuildRequest['network']),
      credentials: registryConfig(ctx),
      signal: ctx.signal,
    };
    const p = progress(ctx);
    try {
      const img = await builder
        .build(ctx.bodyStream, req, {
          stream: (text) => quiet || p.msg({ stream: text }),
          step: (e) => steps && p.msg({ berthStep: { ...e, ms: Math.round(e.ms) } }),
        })
        .then(
          (i) => i,
          async (e: unknown) => {
            ctx.bodyStream.resume(); // drain what the client still sends
            throw e;
          },
        );
      p.msg({ aux: { ID: img.id } });
      if (quiet) p.msg({ stream: `${img.id}\n` }); // what the docker CLI prints for -q
    } catch (e) {
      const message = errorMessage(e);
      if (!ctx.signal.aborted) p.msg({ errorDetail: { message }, error: message });
    }
    p.end();
  });

  r.on('POST', '/build/prune', async (ctx) => {
    const { entries, freed } = await builder.prune();
    ctx.send(200, { CachesDeleted: entries > 0 ? [`${entries} build cache entries`] : [], SpaceReclaimed: freed });
  });

  r.on('POST', '/build/cancel', (ctx) => ctx.send(200));
}
