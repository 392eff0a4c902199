/**
 * BuildKit's side of the Engine API (issue #16): `POST /session` (an h2c upgrade; the daemon then
 * calls the services the client serves on that connection) and `POST /build?version=2`, whose
 * progress is dockerd's: `{"id":"moby.buildkit.trace","aux":"<base64 StatusResponse>"}` lines,
 * then `{"id":"moby.image.id","aux":{"ID":"sha256:..."}}`, or a final `errorDetail`.
 * The legacy builder's `/build` stays in ./build.ts, which hands version=2 requests here.
 */
import { Duplex, type Readable } from 'node:stream';
import { errorMessage, invalidArgument } from '../../base/errors.js';
import { isObject } from '../../base/json.js';
import { registryCredentials } from '../../engine/build.js';
import type { BuildKitRequest, BuildKitVerbs, SessionHeaders } from '../../engine/buildkit.js';
import { flag, type Ctx, type Router } from '../http.js';
import type { IoStream } from '../stream.js';
import { progress } from '../progress.js';

const header = (ctx: Ctx, k: string): string => {
  const v = ctx.req.headers[k];
  return (Array.isArray(v) ? v[0] : v) ?? '';
};

/** Every value of a repeatable header (Node joins repeated custom headers with ", "). */
function headerList(ctx: Ctx, k: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < ctx.req.rawHeaders.length; i += 2)
    if (ctx.req.rawHeaders[i]!.toLowerCase() === k)
      out.push(...ctx.req.rawHeaders[i + 1]!.split(',').map((s) => s.trim()));
  return out.filter(Boolean);
}

/**
 * Skips a chunked request body (`<hex size>\r\n<data>\r\n` ... `0\r\n\r\n`) at the start of an
 * upgraded connection: Node's http client (dockerode's modem) sends `POST /session` chunked, and its
 * empty body's last chunk arrives after the upgrade, before the HTTP/2 frames.
 */
function skipChunkedBody(): (c: Buffer) => Buffer | null {
  let pending: Buffer | null = Buffer.alloc(0);
  return (c) => {
    if (pending === null) return c;
    let b = Buffer.concat([pending, c]);
    for (;;) {
      const eol = b.indexOf('\r\n');
      if (eol < 0) {
        if (b.length > 64) throw invalidArgument('bad chunked body before the session');
        pending = b;
        return null;
      }
      const size = parseInt(b.subarray(0, eol).toString('latin1').split(';')[0]!, 16);
      if (!Number.isFinite(size) || size < 0) throw invalidArgument('bad chunked body before the session');
      const need = eol + 2 + size + 2;
      if (b.length < need) {
        pending = b;
        return null;
      }
      b = b.subarray(need);
      if (size === 0) {
        pending = null;
        return b;
      }
    }
  };
}

/** The hijacked connection as one Duplex (what node:http2 runs on). */
function duplexOf(io: IoStream, chunked: boolean): Duplex {
  const input = io.input as Readable;
  const skip = chunked ? skipChunkedBody() : (c: Buffer) => c;
  const d = new Duplex({
    read: () => void input.resume(),
    write(chunk: Buffer, _enc, cb) {
      if (io.closed) return cb(new Error('the client closed the session connection'));
      io.write(chunk);
      cb();
    },
    final(cb) {
      io.end();
      cb();
    },
    destroy(err, cb) {
      io.end();
      cb(err);
    },
  });
  input.on('data', (raw: Buffer) => {
    let c: Buffer | null;
    try {
      c = skip(raw);
    } catch (e) {
      d.destroy(e instanceof Error ? e : new Error(String(e)));
      return;
    }
    if (c?.length && !d.push(c)) input.pause();
  });
  input.on('end', () => d.push(null));
  io.onClose(() => d.destroy());
  return d;
}

function jsonParam<T>(ctx: Ctx, k: string, check: (v: unknown) => v is T, fallback: T): T {
  const text = ctx.query.get(k);
  if (!text || text === 'null') return fallback; // the Go SDK sends `null` for unset maps
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw invalidArgument(`invalid ${k} parameter: not JSON`);
  }
  if (!check(v)) throw invalidArgument(`invalid ${k} parameter`);
  return v;
}
const isStringMap = (v: unknown): v is Record<string, string | null> =>
  isObject(v) && Object.values(v).every((x) => typeof x === 'string' || x === null);
const isStringArray = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === 'string');

function registryConfig(ctx: Ctx): BuildKitRequest['credentials'] {
  const h = header(ctx, 'x-registry-config');
  if (!h) return () => null;
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(h.replace(/-/g, '+').replace(/_/g, '/'), 'base64').toString('utf8'));
  } catch {
    throw invalidArgument('invalid X-Registry-Config header');
  }
  return isObject(v) ? registryCredentials(v) : () => null;
}

/**
 * `outputs` (JSON `[{"Type": ..., "Attrs": {...}}]`, keys in any case as Go decodes them): at most
 * one, as dockerd ("multiple outputs not supported"). `moby`/`image` (without push) or none: the
 * image store; `local`/`tar`: the files go to the client through its session (`dest` is the
 * client's business); `cacheonly`: build only.
 */
function buildOutput(ctx: Ctx): 'image' | 'local' | 'tar' | 'cacheonly' {
  const list = jsonParam(ctx, 'outputs', (v): v is unknown[] => Array.isArray(v), []);
  if (list.length > 1) throw invalidArgument('multiple outputs not supported');
  if (list.length === 0) return 'image';
  const o = list[0];
  if (!isObject(o)) throw invalidArgument('invalid outputs parameter');
  const field = (name: string): unknown => Object.entries(o).find(([k]) => k.toLowerCase() === name)?.[1];
  const type = field('type');
  const attrs = field('attrs') ?? {};
  if (typeof type !== 'string' || !isObject(attrs)) throw invalidArgument('invalid outputs parameter');
  switch (type) {
    case 'local':
    case 'tar':
    case 'cacheonly':
      return type;
    case 'moby':
    case 'image':
      if (/^(1|true)$/i.test(String(attrs['push'] ?? '')))
        throw invalidArgument('push=true is not supported: push the image after the build');
      return 'image';
    default:
      throw invalidArgument(
        `exporter ${type} is not supported: berth exports to its image store (moby, image) and to the client (local, tar)`,
      );
  }
}

/**
 * The BuildKit verbs, loaded on the first BuildKit request (engine/verbs.ts): a load that fails is
 * an HTTP error, before any stream or upgrade.
 */
export type BuildKitLoader = () => Promise<BuildKitVerbs>;

/** `POST /build?version=2`: called by ./build.ts's `/build` route. */
export async function buildKitBuild(ctx: Ctx, kits: BuildKitLoader): Promise<void> {
  const kit = await kits();
  const remote = ctx.query.get('remote') ?? '';
  if (remote && remote !== 'client-session')
    throw invalidArgument(
      'remote build contexts are not supported: send the context as the request body or through the session',
    );
  const network = ctx.query.get('networkmode') || 'default';
  if (!['default', 'host', 'none', 'bridge'].includes(network))
    throw invalidArgument(`network mode ${network} is not supported for builds (default, host, none)`);
  const platform = ctx.query.get('platform') || 'linux/amd64';
  if (!/^linux(\/amd64)?$/.test(platform))
    throw invalidArgument(`platform ${platform} is not supported: this host builds linux/amd64`);
  const output = buildOutput(ctx);
  const req: BuildKitRequest = {
    dockerfile: ctx.query.get('dockerfile') || 'Dockerfile',
    tags: ctx.query.getAll('t').filter(Boolean),
    buildArgs: Object.fromEntries(
      Object.entries(jsonParam(ctx, 'buildargs', isStringMap, {})).filter((e): e is [string, string] => e[1] !== null),
    ),
    target: ctx.query.get('target') ?? '',
    noCache: flag(ctx, 'nocache'),
    pull: flag(ctx, 'pull'),
    labels: Object.fromEntries(Object.entries(jsonParam(ctx, 'labels', isStringMap, {})).map(([k, v]) => [k, v ?? ''])),
    cacheFrom: jsonParam(ctx, 'cachefrom', isStringArray, []),
    platform: 'linux/amd64',
    network: network === 'bridge' ? 'default' : (network as BuildKitRequest['network']),
    credentials: registryConfig(ctx),
    signal: ctx.signal,
    session: ctx.query.get('session') ?? '',
    contextFromSession: remote === 'client-session',
    exports: output === 'local' || output === 'tar' ? [output] : [],
  };
  // the image exporter tags; the local and tar exporters only send files (no image name, no tags)
  if (output !== 'image') req.tags = [];
  const p = progress(ctx);
  try {
    const img = await kit.build(ctx.bodyStream, req, (status) =>
      p.msg({ id: 'moby.buildkit.trace', aux: status.toString('base64') }),
    );
    // dockerd sends the image id only when the exporter answered one (the image exporter)
    if (output === 'image') p.msg({ id: 'moby.image.id', aux: { ID: img.id } });
  } catch (e) {
    ctx.bodyStream.resume();
    if (!p.started) throw e; // nothing sent yet: an HTTP error (a bad session id, ...)
    const message = errorMessage(e);
    if (!ctx.signal.aborted) p.msg({ errorDetail: { message }, error: message });
  }
  p.end();
}

/** The `Upgrade: h2c` checks of `/session` and `/grpc` (4xx before the connection is taken over). */
function checkH2cUpgrade(ctx: Ctx, what: string): void {
  const upgrade = header(ctx, 'upgrade').toLowerCase();
  const connection = header(ctx, 'connection').toLowerCase();
  // dockerd (buildkit session/manager.go): "no upgrade proto in request", "protocol tcp not supported"
  if (!upgrade) throw invalidArgument('no upgrade proto in request');
  if (upgrade !== 'h2c') throw invalidArgument(`protocol ${upgrade} not supported`);
  if (!connection.split(',').some((c) => c.trim() === 'upgrade'))
    throw invalidArgument(`${what} requires an upgrade to h2c (Connection: Upgrade, Upgrade: h2c)`);
}

export function buildKitRoutes(r: Router, kits: BuildKitLoader): void {
  // BuildKit's control API (moby.buildkit.v1.Control: Solve, Status, ListWorkers, DiskUsage, Prune),
  // served over an h2c upgrade, the client speaking first; what buildx talks to dockerd
  r.on('POST', '/grpc', async (ctx) => {
    checkH2cUpgrade(ctx, 'grpc');
    const kit = await kits();
    const io = ctx.hijack('application/vnd.docker.raw-stream', 'h2c');
    await kit.control(duplexOf(io, /chunked/i.test(header(ctx, 'transfer-encoding'))));
  });
  r.on('POST', '/session', async (ctx) => {
    checkH2cUpgrade(ctx, 'session');
    const h: SessionHeaders = {
      id: header(ctx, 'x-docker-expose-session-uuid'),
      name: header(ctx, 'x-docker-expose-session-name'),
      sharedKey: header(ctx, 'x-docker-expose-session-sharedkey'),
      methods: headerList(ctx, 'x-docker-expose-session-grpc-method'),
    };
    const kit = await kits();
    kit.checkSession(h);
    const io = ctx.hijack('application/vnd.docker.raw-stream', 'h2c');
    await kit.session(h, duplexOf(io, /chunked/i.test(header(ctx, 'transfer-encoding'))));
  });
}
