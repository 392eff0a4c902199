/**
 * `berth registry serve`: an OCI Distribution v1.1 registry over node:http (TLS when given a
 * certificate). This file listens and routes; each resource has its file under routes/ (base,
 * blobs, uploads, manifests, tags, catalog, referrers, token, trust), and http.ts maps every
 * failure to the spec's JSON errors `{"errors":[{"code","message","detail"}]}`. A failed write
 * stores nothing.
 */
import { createServer as createHttp, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttps } from 'node:https';
import { readFileSync } from 'node:fs';
import { systemClock, type Clock } from '../base/clock.js';
import { isRepoName } from '../spec/distribution.js';
import { Authorizer, type Action, type AuthOptions } from './auth.js';
import { fault } from './errors.js';
import { fail, type Ctx } from './http.js';
import { RegistryStorage } from './storage.js';
import { versionCheck } from './routes/base.js';
import { deleteBlob, getBlob } from './routes/blobs.js';
import { catalog } from './routes/catalog.js';
import type { RouteDeps, TrustTimestamper } from './routes/deps.js';
import { deleteManifest, getManifest, putManifest } from './routes/manifests.js';
import { referrers } from './routes/referrers.js';
import { tagsList } from './routes/tags.js';
import { token } from './routes/token.js';
import { timestampKey, trustFile } from './routes/trust.js';
import { cancelUpload, patchUpload, putUpload, startUpload, uploadStatus } from './routes/uploads.js';

export type { TrustTimestamper } from './routes/deps.js';

export interface ServeOptions extends AuthOptions {
  root: string;
  /** host:port */
  addr: string;
  tlsCert?: string;
  tlsKey?: string;
  /** server-managed timestamping of trust data (../trust/timestamper.ts), when the registry holds a timestamp key */
  timestamper?: TrustTimestamper;
  /** dates tokens, blob use (gc's grace period); the system clock by default */
  clock?: Clock;
}

type Handler = (d: RouteDeps, c: Ctx) => Promise<void>;

/** The repository-scoped endpoints: method, path (the name may contain slashes), handler, access needed. */
const TABLE: ReadonlyArray<[string, RegExp, Handler, Action[]]> = [
  ['GET', /^\/v2\/(.+)\/tags\/list$/, tagsList, ['pull']],
  ['GET', /^\/v2\/(.+)\/manifests\/([^/]+)$/, (d, c) => getManifest(d, c, false), ['pull']],
  ['HEAD', /^\/v2\/(.+)\/manifests\/([^/]+)$/, (d, c) => getManifest(d, c, true), ['pull']],
  ['PUT', /^\/v2\/(.+)\/manifests\/([^/]+)$/, putManifest, ['pull', 'push']],
  ['DELETE', /^\/v2\/(.+)\/manifests\/([^/]+)$/, deleteManifest, ['delete']],
  ['POST', /^\/v2\/(.+)\/blobs\/uploads\/?()$/, startUpload, ['pull', 'push']],
  ['PATCH', /^\/v2\/(.+)\/blobs\/uploads\/([^/]+)$/, patchUpload, ['pull', 'push']],
  ['PUT', /^\/v2\/(.+)\/blobs\/uploads\/([^/]+)$/, putUpload, ['pull', 'push']],
  ['GET', /^\/v2\/(.+)\/blobs\/uploads\/([^/]+)$/, uploadStatus, ['pull', 'push']],
  ['DELETE', /^\/v2\/(.+)\/blobs\/uploads\/([^/]+)$/, cancelUpload, ['pull', 'push']],
  ['GET', /^\/v2\/(.+)\/blobs\/([^/]+)$/, (d, c) => getBlob(d, c, false), ['pull']],
  ['HEAD', /^\/v2\/(.+)\/blobs\/([^/]+)$/, (d, c) => getBlob(d, c, true), ['pull']],
  ['DELETE', /^\/v2\/(.+)\/blobs\/([^/]+)$/, deleteBlob, ['delete']],
  ['GET', /^\/v2\/(.+)\/referrers\/([^/]+)$/, referrers, ['pull']],
  ['GET', /^\/trust\/v1\/(.+)\/metadata\/([^/]+)$/, trustFile, ['pull']],
];

function route(method: string, path: string): [string, string, Handler, Action[]] | null {
  let pathMatched = false;
  for (const [m, re, h, need] of TABLE) {
    const x = re.exec(path);
    if (!x) continue;
    pathMatched = true;
    if (m !== method) continue;
    let ref: string;
    try {
      ref = decodeURIComponent(x[2] ?? '');
    } catch {
      throw fault('NAME_INVALID', `malformed reference in ${path}`);
    }
    return [x[1]!, ref, h, need];
  }
  if (pathMatched) throw fault('METHOD_NOT_ALLOWED', `${method} is not allowed on ${path}`);
  return null;
}

export class RegistryServer {
  readonly storage: RegistryStorage;
  readonly auth: Authorizer;
  private readonly deps: RouteDeps;
  private server: Server | null = null;

  constructor(private readonly o: ServeOptions) {
    const clock = o.clock ?? systemClock;
    this.storage = new RegistryStorage(o.root, clock);
    this.auth = new Authorizer(o, clock);
    this.deps = {
      storage: this.storage,
      auth: this.auth,
      deleteEnabled: Boolean(o.deleteEnabled),
      timestamper: o.timestamper,
      clock,
    };
  }

  async listen(): Promise<{ host: string; port: number }> {
    await this.storage.init();
    this.o.timestamper?.start(this.storage);
    const handler = (req: IncomingMessage, res: ServerResponse) => void this.dispatch(req, res);
    const tls =
      this.o.tlsCert && this.o.tlsKey ? { cert: readFileSync(this.o.tlsCert), key: readFileSync(this.o.tlsKey) } : null;
    this.server = tls ? createHttps(tls, handler) : createHttp(handler);
    this.server.keepAliveTimeout = 30_000;
    const i = this.o.addr.lastIndexOf(':');
    const host = this.o.addr.slice(0, i) || '0.0.0.0';
    const port = Number(this.o.addr.slice(i + 1));
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(port, host, () => resolve());
    });
    const a = this.server.address();
    return { host, port: typeof a === 'object' && a ? a.port : port };
  }

  close(): Promise<void> {
    this.o.timestamper?.stop();
    return new Promise((r) => (this.server ? this.server.close(() => r()) : r()));
  }

  private base(req: IncomingMessage): string {
    const proto = this.o.tlsCert ? 'https' : 'http';
    return `${proto}://${req.headers.host ?? this.o.addr}`;
  }

  private async dispatch(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const raw = req.url ?? '/';
    const qi = raw.indexOf('?');
    const path = qi < 0 ? raw : raw.slice(0, qi);
    const query = new URLSearchParams(qi < 0 ? '' : raw.slice(qi + 1));
    const base = this.base(req);
    const d = this.deps;
    try {
      if (path === '/token' && req.method === 'GET') return token(d, req, res, query);
      if (path === '/v2/' || path === '/v2') return versionCheck(d, req, res, base);
      if (path === '/v2/_catalog' && req.method === 'GET') return await catalog(d, req, res, query, base);
      if (path === '/trust/v1/_timestamp-key' && req.method === 'GET') return timestampKey(d, res);
      const found = route(req.method ?? 'GET', path);
      if (!found) throw fault('NO_ROUTE', `no route for ${req.method} ${path}`);
      const [name, ref, handler, need] = found;
      if (!isRepoName(name)) throw fault('NAME_INVALID', `invalid repository name: ${name}`);
      const from = req.method === 'POST' && query.get('mount') ? query.get('from') : null;
      this.auth.check(req, name, need, base, from && isRepoName(from) ? from : undefined);
      await handler(d, { req, res, name, ref, query, base });
    } catch (e) {
      fail(res, e, req);
    }
  }
}
