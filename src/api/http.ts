/**
 * The Engine API's HTTP plumbing: a route table, `/vX.YY` version prefixes, JSON bodies, Docker's
 * error bodies, and connection hijacking (`Upgrade: tcp`) for attach and exec.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { posix } from 'node:path';
import type { Duplex } from 'node:stream';
import { PassThrough, type Readable } from 'node:stream';
import { invalidArgument, notFound } from '../base/errors.js';
import { log } from '../base/log.js';
import { API_VERSION, VERSION_PREFIX, gates, versionRefusal } from '../spec/api-version.js';
import { errorResponse } from './errors.js';
import { drainOf, socketIo, type IoStream } from './stream.js';

export { API_VERSION, MIN_API_VERSION, versionAtLeast } from '../spec/api-version.js';
const MAX_BODY = 32 * 1024 * 1024;

export interface Ctx {
  req: IncomingMessage;
  params: string[];
  query: URLSearchParams;
  /** Negotiated API version of this request. */
  version: string;
  /** Raw request body stream (for tar uploads). */
  bodyStream: Readable;
  json(): Promise<unknown>;
  send(status: number, body?: unknown, headers?: Record<string, string>): void;
  /** A streaming response: headers now, chunks later. */
  stream(status: number, contentType: string, headers?: Record<string, string>): IoStream;
  /**
   * Takes over the connection (101 on upgrade requests, 200 streaming otherwise); `protocol` is
   * the 101's `Upgrade` (`tcp` for attach and exec, `h2c` for BuildKit's session).
   */
  hijack(contentType: string, protocol?: string): IoStream;
  /** Response already started (for error handling). */
  readonly started: boolean;
  signal: AbortSignal;
}

export type Handler = (ctx: Ctx) => Promise<void> | void;

/** A boolean query parameter as dockerd reads one: present and not `0`, `false` or empty. */
/** A boolean query parameter, read as dockerd's httputils.BoolValue does (docker-py sends `False`/`True`). */
export function flag(ctx: Ctx, k: string): boolean {
  const v = ctx.query.get(k)?.trim().toLowerCase();
  return v !== undefined && !['', '0', 'no', 'false', 'none'].includes(v);
}

interface Route {
  method: string;
  re: RegExp;
  handler: Handler;
}

/** A path segment's %-escapes decoded; a malformed one is the client's error (400, as Go's URL parser), not a 500. */
function decodeParam(p: string): string {
  try {
    return decodeURIComponent(p);
  } catch (e) {
    throw invalidArgument(`invalid URL escape in ${JSON.stringify(p)}`, e);
  }
}

/**
 * What a matched request waits for before its handler runs (undefined: nothing). berthd's is
 * live restore's (./restore.ts): the API answers while containers are still being restored.
 */
export type RequestGate = (method: string, path: string) => Promise<void> | undefined;

export class Router {
  private readonly routes: Route[] = [];
  gate: RequestGate | undefined;
  /**
   * While the daemon still puts its routes on (berthd opens its socket first, with `/_ping` only):
   * a request no route matches waits for it, then is matched again (404 only after).
   */
  opening: Promise<void> | undefined;

  /** `path` uses `{name}` for one segment and `{name*}` for the rest (image names with slashes). */
  on(method: string, path: string, handler: Handler): this {
    const re = new RegExp('^' + path.replace(/\{[a-z]+\*\}/gi, '(.+)').replace(/\{[a-z]+\}/gi, '([^/]+)') + '$');
    this.routes.push({ method, re, handler });
    return this;
  }

  match(method: string, path: string): { handler: Handler; params: string[] } | undefined {
    for (const r of this.routes) {
      // as dockerd's router: HEAD only where a HEAD route is declared (/_ping, archive); HEAD /version is 404
      if (r.method !== method) continue;
      const m = r.re.exec(path);
      if (m) return { handler: r.handler, params: m.slice(1).map(decodeParam) };
    }
    return undefined;
  }
}

/**
 * `/v{version}/rest` -> the version and the rest. A prefix of digits and dots is a version, as in
 * dockerd's router (`/v1.41.0` and `/v01.41` are 1.41); anything else is a path (`/vabc/x` is 404).
 * Whether the version is served is checked after the route matched: dockerd answers an unknown
 * path 404 whatever its version (`/v1.99/foo` -> 404 page not found, `/v1.99/_ping` -> 400).
 */
function splitVersion(pathname: string): { version: string; path: string; explicit: boolean } {
  const m = VERSION_PREFIX.exec(pathname);
  if (!m) return { version: API_VERSION, path: pathname, explicit: false };
  return { version: m[1]!, path: m[2] ?? '', explicit: true };
}

/**
 * The request target as a URL. Parsed as a path (`//v1.41/_ping` is the path `//v1.41/_ping`, not
 * a host named v1.41) or in absolute form; one that does not parse is flagged (a 400), never thrown
 * here, where nothing would answer the request.
 */
function requestUrl(target: string | undefined): { url: URL; bad: boolean } {
  const t = target ?? '/';
  try {
    return { url: new URL(t.startsWith('/') ? `http://berth${t}` : t), bad: false };
  } catch {
    return { url: new URL('http://berth/'), bad: true };
  }
}

async function readAll(s: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of s) {
    const b = typeof c === 'string' ? Buffer.from(c) : (c as Buffer);
    n += b.length;
    if (n > MAX_BODY) throw invalidArgument('request body too large');
    chunks.push(b);
  }
  return Buffer.concat(chunks);
}

/**
 * The one guard that keeps a failure inside a request from ending the daemon. Every request runs
 * in an AsyncLocalStorage scope; an error nothing handled (an 'error' event without a listener,
 * a rejected promise nobody awaited) that surfaces in that scope, at any depth of callbacks,
 * streams or child processes started for the request, ends that request: an error response if
 * nothing was sent yet, else a cut connection. An uncaught error outside every request is still
 * fatal (logged, exit 1), as Node's default.
 */
interface RequestScope {
  method: string;
  url: string;
  /** Ends the request with `e`; later calls (the request already ended) only log. */
  fail(e: unknown): void;
}
const requestScope = new AsyncLocalStorage<RequestScope>();
let guardInstalled = false;

function installRequestGuard(): void {
  if (guardInstalled) return;
  guardInstalled = true;
  const onStray = (kind: string) => (e: unknown) => {
    const scope = requestScope.getStore();
    if (!scope) {
      log.error(`${kind} outside any request`, { err: e instanceof Error ? (e.stack ?? e.message) : String(e) });
      process.exit(1);
    }
    log.error(`${kind} in a request: the request ends, the daemon goes on`, {
      method: scope.method,
      url: scope.url,
      err: e instanceof Error ? e.message : String(e),
    });
    scope.fail(e);
  };
  process.on('uncaughtException', onStray('uncaught exception'));
  process.on('unhandledRejection', onStray('unhandled rejection'));
}

const COMMON_HEADERS = {
  'Api-Version': API_VERSION,
  'Docker-Experimental': 'true',
  Ostype: 'linux',
  Server: `Docker/berth (linux)`,
};

export function createApiServer(router: Router): Server {
  const server = createServer({ requestTimeout: 0, headersTimeout: 60_000, keepAliveTimeout: 60_000 });

  const dispatch = async (
    req: IncomingMessage,
    res: ServerResponse | null,
    upgrade: { socket: Duplex; head: Buffer } | null,
    scope: RequestScope,
  ) => {
    const t0 = performance.now();
    const { url, bad: badUrl } = requestUrl(req.url);
    const abort = new AbortController();
    let started = false;
    let hijacked: IoStream | null = null;
    let bodyStream: Readable = req;
    if (upgrade) {
      // On an upgraded connection the request body (Content-Length bytes) comes first, then stdin.
      const pt = new PassThrough();
      const len = Number(req.headers['content-length'] ?? 0);
      let pending = upgrade.head;
      const bodyPt = new PassThrough();
      const feed = (chunk: Buffer) => {
        pending = Buffer.concat([pending, chunk]);
      };
      upgrade.socket.on('data', feed);
      const waitBody = async () => {
        while (pending.length < len) await new Promise((r) => upgrade.socket.once('data', r));
        upgrade.socket.off('data', feed);
        bodyPt.end(pending.subarray(0, len));
        const rest = pending.subarray(len);
        if (rest.length) pt.write(rest);
        upgrade.socket.pipe(pt);
      };
      bodyStream = bodyPt;
      const ready = waitBody();
      (upgrade as { ready?: Promise<void> }).ready = ready;
      (upgrade as { input?: PassThrough }).input = pt;
      upgrade.socket.on('close', () => abort.abort());
    } else {
      res!.on('close', () => abort.abort());
    }
    const ctx: Ctx = {
      req,
      params: [],
      query: url.searchParams,
      version: API_VERSION,
      bodyStream,
      signal: abort.signal,
      get started() {
        return started;
      },
      json: async () => {
        if (upgrade) await (upgrade as { ready?: Promise<void> }).ready;
        const buf = await readAll(bodyStream);
        if (buf.length === 0) return {};
        return JSON.parse(buf.toString('utf8')) as unknown;
      },
      send: (status, body, headers = {}) => {
        started = true;
        if (upgrade) {
          const payload = body === undefined ? '' : JSON.stringify(body);
          upgrade.socket.end(
            `HTTP/1.1 ${status} ${status < 300 ? 'OK' : 'Error'}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(payload)}\r\nConnection: close\r\n\r\n${payload}`,
          );
          return;
        }
        const r = res!;
        if (body === undefined || status === 204 || status === 304) {
          r.writeHead(status, { ...COMMON_HEADERS, ...headers });
          r.end();
        } else if (typeof body === 'string' || Buffer.isBuffer(body)) {
          r.writeHead(status, { ...COMMON_HEADERS, 'Content-Type': 'text/plain; charset=utf-8', ...headers });
          r.end(body);
        } else {
          // encoded once: a string would be scanned for its length and encoded again on the write
          // (a list of 10,000 containers: ~58 ms instead of ~81 per answer here)
          const payload = Buffer.from(JSON.stringify(body));
          r.writeHead(status, {
            ...COMMON_HEADERS,
            'Content-Type': 'application/json',
            'Content-Length': String(payload.length),
            ...headers,
          });
          r.end(payload);
        }
      },
      stream: (status, contentType, headers = {}) => {
        started = true;
        const r = res!;
        r.writeHead(status, { ...COMMON_HEADERS, 'Content-Type': contentType, ...headers });
        r.flushHeaders();
        let closed = false;
        const closers: Array<() => void> = [];
        r.on('close', () => {
          closed = true;
          for (const c of closers) c();
        });
        return {
          write: (b: Buffer) => {
            if (!closed) r.write(b);
          },
          end: () => {
            if (!closed) r.end();
          },
          input: null,
          onClose: (cb: () => void) => closers.push(cb),
          drain: () => (closed ? null : drainOf(r)),
          get closed() {
            return closed;
          },
        };
      },
      hijack: (contentType, protocol = 'tcp') => {
        started = true;
        if (!upgrade) return ctx.stream(200, contentType);
        if (hijacked) return hijacked;
        upgrade.socket.write(
          `HTTP/1.1 101 UPGRADED\r\nContent-Type: ${contentType}\r\nConnection: Upgrade\r\nUpgrade: ${protocol}\r\nApi-Version: ${API_VERSION}\r\n\r\n`,
        );
        const io = socketIo(upgrade.socket);
        hijacked = {
          ...io,
          write: io.write,
          end: io.end,
          onClose: io.onClose,
          drain: io.drain,
          get closed() {
            return io.closed;
          },
          input: (upgrade as { input?: PassThrough }).input ?? null,
        };
        return hijacked;
      },
    };
    let ended = false;
    const fail = (e: unknown, stray = false) => {
      if (ended) return;
      ended = true;
      if (stray) abort.abort(); // the handler may still be waiting on what failed
      const { status, body } = errorResponse(e);
      if (status >= 500) log.error('request failed', { method: req.method, url: req.url, err: body.message });
      // API < 1.24: Go's http.Error, the message and a newline as text/plain
      if (!started && !upgrade && gates(ctx.version).plainTextErrors)
        ctx.send(status, body.message + '\n', { 'X-Content-Type-Options': 'nosniff' });
      else if (!started) ctx.send(status, body);
      else if (upgrade) upgrade.socket.destroy();
      else res?.destroy();
    };
    scope.fail = (e) => fail(e, true);
    try {
      if (badUrl) throw invalidArgument(`invalid request URI ${JSON.stringify(req.url)}`);
      const clean = posix.normalize(url.pathname);
      if (clean !== url.pathname && !upgrade) {
        // as dockerd's router (gorilla/mux cleanPath): `//v1.41/_ping` -> 301 to `/v1.41/_ping`, the query kept
        ctx.send(301, undefined, { Location: clean + url.search });
        ended = true;
        return;
      }
      const { version, path, explicit } = splitVersion(url.pathname);
      ctx.version = version;
      if (req.method === 'OPTIONS') {
        // dockerd answers every OPTIONS (its CORS preflight route) with an empty 200
        ctx.send(200);
        ended = true;
        return;
      }
      let m = router.match(req.method ?? 'GET', path);
      if (!m && router.opening) {
        await router.opening;
        m = router.match(req.method ?? 'GET', path);
      }
      if (!m) throw notFound(`page not found`);
      const refusal = explicit ? versionRefusal(version) : null;
      if (refusal) throw invalidArgument(refusal);
      ctx.params = m.params;
      const gate = router.gate?.(req.method ?? 'GET', path);
      if (gate) await gate;
      if (upgrade) await (upgrade as { ready?: Promise<void> }).ready;
      await m.handler(ctx);
      ended = true;
    } catch (e) {
      fail(e);
    }
    log.debug('request', { method: req.method, path: url.pathname, ms: +(performance.now() - t0).toFixed(1) });
  };

  installRequestGuard();
  const scoped = (req: IncomingMessage, run: (scope: RequestScope) => Promise<void>) => {
    const scope: RequestScope = { method: req.method ?? '', url: req.url ?? '', fail: () => undefined };
    void requestScope.run(scope, () => run(scope));
  };
  server.on('request', (req, res) => scoped(req, (scope) => dispatch(req, res, null, scope)));
  server.on('upgrade', (req, socket, head) => scoped(req, (scope) => dispatch(req, null, { socket, head }, scope)));
  return server;
}
