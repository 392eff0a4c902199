/**
 * POST /build (the legacy builder's API, which the docker CLI uses without BuildKit) and
 * POST /build/prune. The body is the context tar; progress is Docker's JSON stream
 * (`{"stream": "Step 1/3 : ..."}`, `{"aux": {"ID": ...}}`, a final `errorDetail` on failure).
 * berth's CLI asks for `berthsteps=1` and also gets `{"berthStep": {...}}` per finished step.
 */
import { BerthError, errorMessage, invalidArgument, isBerthError } from '../../base/errors.js';
import { isObject } from '../../base/json.js';
import {
  buildErrorDetail,
  extraHostsOf,
  registryCredentials,
  stepLimitsOf,
  type BuildRequest,
  type BuildVerbs,
} from '../../engine/build.js';
import type { Credentials } from '../../engine/images.js';
import { flag, type Ctx, type Router } from '../http.js';
import { progress } from '../progress.js';
import { buildKitBuild, type BuildKitLoader } from './buildkit.js';

/** dockerd's prefixes for a parameter that does not decode ("error reading build args: ...") */
const READING: Record<string, string> = { buildargs: 'error reading build args: ', labels: 'error reading labels: ' };

function jsonParam<T>(ctx: Ctx, k: string, check: (v: unknown) => v is T, fallback: T): T {
  const text = ctx.query.get(k);
  if (!text) return fallback;
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw invalidArgument(`${READING[k] ?? ''}invalid ${k} parameter: ${errorMessage(e)}`);
  }
  if (v === null) return fallback; // the Go SDK sends `buildargs=null`, `labels=null`, `cachefrom=null`
  if (!check(v)) throw invalidArgument(`${READING[k] ?? ''}invalid ${k} parameter: ${JSON.stringify(v).slice(0, 100)}`);
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

/** what q=1 holds back of a build's stream (dockerd holds it all) */
const QUIET_HOLD = 4 << 20;

export function buildRoutes(r: Router, builder: BuildVerbs, kit?: BuildKitLoader): void {
  r.on('POST', '/build', async (ctx) => {
    // BuildKit (dockerode's version '2', the docker CLI's client-session builds): ./buildkit.ts
    if (kit && ctx.query.get('version') === '2') return buildKitBuild(ctx, kit);
    if (ctx.query.get('remote'))
      throw invalidArgument('remote build contexts are not supported: send the context as the request body');
    const buildArgs = Object.fromEntries(
      Object.entries(jsonParam(ctx, 'buildargs', isStringMap, {})).filter((e): e is [string, string] => e[1] !== null),
    );
    // dockerd 20.10 without experimental: HTTP 400 "squash is only supported with experimental mode"
    if (flag(ctx, 'squash')) throw invalidArgument('squash is only supported with experimental mode');
    const network = ctx.query.get('networkmode') || 'default';
    const networkContainer = network.startsWith('container:') ? network.slice('container:'.length) : undefined;
    if (!['default', 'host', 'none', 'bridge'].includes(network) && !networkContainer)
      throw invalidArgument(
        `network mode ${network} is not supported for builds (default, host, none, container:<id>)`,
      );
    // dockerd on Linux: "" and "default" only (HTTP 400 `Unsupported isolation: "hyperv"`)
    const isolation = ctx.query.get('isolation') ?? '';
    if (!['', 'default'].includes(isolation.toLowerCase()))
      throw invalidArgument(`Unsupported isolation: ${JSON.stringify(isolation)}`);
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
      network: network === 'bridge' || networkContainer ? 'default' : (network as BuildRequest['network']),
      extraHosts: extraHostsOf(ctx.query.getAll('extrahosts').filter(Boolean)),
      remove: (ctx.query.get('rm') ?? '') === '' ? true : flag(ctx, 'rm'), // dockerd: rm defaults to true
      forceRemove: flag(ctx, 'forcerm'),
      limits: stepLimitsOf((k) => ctx.query.get(k)),
      credentials: registryConfig(ctx),
      signal: ctx.signal,
    };
    const p = progress(ctx);
    // q=1: dockerd keeps the stream to itself and sends it only when the build fails (held here,
    // up to QUIET_HOLD bytes; the rest is dropped)
    const held: Array<Record<string, unknown>> = [];
    let heldBytes = 0;
    let heldAny = false;
    const say = (m: Record<string, unknown>) => {
      if (!quiet) return p.msg(m);
      heldAny = true;
      const size = JSON.stringify(m).length;
      if (heldBytes + size > QUIET_HOLD) return;
      heldBytes += size;
      held.push(m);
    };
    try {
      const img = await builder
        .build(
          ctx.bodyStream,
          req,
          {
            stream: (text) => say({ stream: text }),
            step: (e) => steps && p.msg({ berthStep: { ...e, ms: Math.round(e.ms) } }),
            // dockerd: one aux ID per finished stage, before "Successfully built"; none with q=1
            aux: (id) => say({ aux: { ID: id } }),
            // dockerd: a base image's pull progress as /images/create streams it
            progress: (m) => say({ ...m }),
          },
          networkContainer === undefined ? {} : { networkContainer },
        )
        .then(
          (i) => i,
          async (e: unknown) => {
            ctx.bodyStream.resume(); // drain what the client still sends
            throw e;
          },
        );
      if (quiet) p.msg({ stream: `${img.id}\n` }); // dockerd's whole answer to q=1
    } catch (e) {
      const { message, code } = buildErrorDetail(e, steps);
      // as dockerd: what fails before the first step (parse, target, Dockerfile) is an HTTP error
      if (!p.started && !heldAny) throw isBerthError(e) ? new BerthError(e.code, message, { cause: e }) : e;
      for (const m of held) p.msg(m);
      if (!ctx.signal.aborted)
        p.msg({ errorDetail: { ...(code === undefined ? {} : { code }), message }, error: message });
    }
    p.end();
  });

  r.on('POST', '/build/prune', async (ctx) => {
    const { entries, freed } = await builder.prune();
    ctx.send(200, { CachesDeleted: entries > 0 ? [`${entries} build cache entries`] : [], SpaceReclaimed: freed });
  });

  r.on('POST', '/build/cancel', (ctx) => ctx.send(200));
}
