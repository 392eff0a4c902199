/**
 * `berth registry serve`: an OCI Distribution v1.1 registry over node:http (TLS when given a
 * certificate). Every endpoint of the spec (end-1 .. end-13) plus upload cancel, `_catalog`, and
 * the token endpoint of the Docker token flow. Errors are the spec's JSON
 * `{"errors":[{"code","message","detail"}]}` with its codes; a failed write stores nothing.
 */
import { createServer as createHttp, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttps } from 'node:https';
import { readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { log } from '../base/log.js';
import { errorMessage } from '../base/errors.js';
import {
  artifactTypeOf, INDEX_TYPES, isDigestLike, isRepoName, isSha256, isTag, MAX_MANIFEST_BYTES, MT, parseManifest, RegistryError,
} from '../spec/distribution.js';
import { TRUST_TAG, trustFiles } from '../spec/trust.js';
import { Authorizer, type Action, type AuthOptions } from './auth.js';
import { RegistryStorage } from './storage.js';

export interface ServeOptions extends AuthOptions {
  root: string;
  /** host:port */
  addr: string;
  tlsCert?: string;
  tlsKey?: string;
  /** server-managed timestamping of trust data (timestamp.ts), when the registry holds a timestamp key */
  timestamper?: TrustTimestamper;
}

/** The registry's part in trust: it may hold the timestamp role's key (see ../trust/README.md). */
export interface TrustTimestamper {
  key(): { keyid: string; public: object };
  /** after a push of `_trust`: a fresh timestamp over the pushed snapshot, if the root names this key */
  refresh(repo: string, storage: RegistryStorage): Promise<void>;
  start(storage: RegistryStorage): void;
  stop(): void;
}

type Handler = (c: Ctx) => Promise<void>;
interface Ctx {
  req: IncomingMessage;
  res: ServerResponse;
  name: string;
  ref: string;
  query: URLSearchParams;
  base: string;
}

const COMMON = { 'Docker-Distribution-API-Version': 'registry/2.0' };

function send(res: ServerResponse, status: number, headers: Record<string, string | number> = {}, body?: string | Buffer, head = false): void {
  const h: Record<string, string | number> = { ...COMMON, ...headers };
  if (body !== undefined) h['Content-Length'] ??= Buffer.byteLength(body);
  else h['Content-Length'] ??= 0;
  res.writeHead(status, h);
  res.end(head ? undefined : body);
}

function sendJson(res: ServerResponse, status: number, v: unknown, headers: Record<string, string | number> = {}): void {
  send(res, status, { 'Content-Type': 'application/json', ...headers }, JSON.stringify(v));
}

/**
 * Reads a bounded body. Too large is refused, but the rest is still read and dropped (resetting
 * the connection mid-send would lose the error response on the client's side).
 */
async function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const tooLarge = () => new RegistryError(413, 'SIZE_INVALID', `manifest larger than ${limit} bytes`);
  if (Number(req.headers['content-length'] ?? 0) > limit) throw tooLarge(); // the caller drains it
  const parts: Buffer[] = [];
  let n = 0;
  for await (const c of req) {
    n += (c as Buffer).length;
    if (n <= limit) parts.push(c as Buffer);
  }
  if (n > limit) throw tooLarge();
  return Buffer.concat(parts);
}

/** Reads `n` and `last` for tags/list and _catalog, and pages `all` (sorted). */
function paginate(all: string[], q: URLSearchParams, path: string): { page: string[]; link?: string } {
  const nRaw = q.get('n');
  const last = q.get('last');
  let list = last ? all.filter((t) => t > last) : all;
  if (nRaw === null || nRaw === '') return { page: list };
  const n = Number(nRaw);
  if (!Number.isInteger(n) || n < 0) throw new RegistryError(400, 'UNSUPPORTED', `invalid n: ${nRaw}`);
  const more = list.length > n;
  list = list.slice(0, n);
  return { page: list, ...(more && list.length ? { link: `<${path}?n=${n}&last=${encodeURIComponent(list[list.length - 1]!)}>; rel="next"` } : {}) };
}

export class RegistryServer {
  readonly storage: RegistryStorage;
  readonly auth: Authorizer;
  private server: Server | null = null;

  constructor(private readonly o: ServeOptions) {
    this.storage = new RegistryStorage(o.root);
    this.auth = new Authorizer(o);
  }

  async listen(): Promise<{ host: string; port: number }> {
    await this.storage.init();
    this.o.timestamper?.start(this.storage);
    const handler = (req: IncomingMessage, res: ServerResponse) => void this.dispatch(req, res);
    this.server = this.o.tlsCert && this.o.tlsKey ? createHttps({ cert: readFileSync(this.o.tlsCert), key: readFileSync(this.o.tlsKey) }, handler) : createHttp(handler);
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
    try {
      if (path === '/token' && req.method === 'GET') return this.token(req, res, query);
      if (path === '/v2/' || path === '/v2') {
        this.auth.check(req, null, [], base);
        return sendJson(res, 200, {});
      }
      if (path === '/v2/_catalog' && req.method === 'GET') return await this.catalog(req, res, query, base);
      if (path === '/trust/v1/_timestamp-key' && req.method === 'GET') {
        if (!this.o.timestamper) throw new RegistryError(404, 'UNSUPPORTED', 'this registry does not sign timestamps');
        return sendJson(res, 200, this.o.timestamper.key());
      }
      const route = this.route(req.method ?? 'GET', path);
      if (!route) throw new RegistryError(404, 'UNSUPPORTED', `no route for ${req.method} ${path}`);
      const [name, ref, handler, need] = route;
      if (!isRepoName(name)) throw new RegistryError(400, 'NAME_INVALID', `invalid repository name: ${name}`);
      this.auth.check(req, name, need, base);
      await handler({ req, res, name, ref, query, base });
    } catch (e) {
      this.fail(res, e, req);
    }
  }

  private fail(res: ServerResponse, e: unknown, req: IncomingMessage): void {
    req.resume(); // drain an unread body so the connection can be reused
    if (res.headersSent) return void res.destroy();
    if (e instanceof RegistryError) {
      const headers: Record<string, string> = {};
      const challenge = (e.detail as { challenge?: string } | undefined)?.challenge;
      if (challenge) headers['WWW-Authenticate'] = challenge;
      const detail = challenge ? undefined : e.detail;
      const body = { errors: [{ code: e.code, message: e.message, ...(detail !== undefined ? { detail } : {}) }] };
      if (req.method === 'HEAD') return send(res, e.status, { 'Content-Type': 'application/json', ...headers });
      return sendJson(res, e.status, body, headers);
    }
    log.error('registry request failed', { method: req.method, url: req.url, err: errorMessage(e) });
    sendJson(res, 500, { errors: [{ code: 'UNKNOWN', message: errorMessage(e) }] });
  }

  /** The repository-scoped endpoints: method, path (the name may contain slashes), handler, access needed. */
  private readonly table: ReadonlyArray<[string, RegExp, Handler, Action[]]> = [
    ['GET', /^\/v2\/(.+)\/tags\/list$/, (c) => this.tagsList(c), ['pull']],
    ['GET', /^\/v2\/(.+)\/manifests\/([^/]+)$/, (c) => this.getManifest(c, false), ['pull']],
    ['HEAD', /^\/v2\/(.+)\/manifests\/([^/]+)$/, (c) => this.getManifest(c, true), ['pull']],
    ['PUT', /^\/v2\/(.+)\/manifests\/([^/]+)$/, (c) => this.putManifest(c), ['pull', 'push']],
    ['DELETE', /^\/v2\/(.+)\/manifests\/([^/]+)$/, (c) => this.deleteManifest(c), ['delete']],
    ['POST', /^\/v2\/(.+)\/blobs\/uploads\/?()$/, (c) => this.startUpload(c), ['pull', 'push']],
    ['PATCH', /^\/v2\/(.+)\/blobs\/uploads\/([^/]+)$/, (c) => this.patchUpload(c), ['pull', 'push']],
    ['PUT', /^\/v2\/(.+)\/blobs\/uploads\/([^/]+)$/, (c) => this.putUpload(c), ['pull', 'push']],
    ['GET', /^\/v2\/(.+)\/blobs\/uploads\/([^/]+)$/, (c) => this.uploadStatus(c), ['pull', 'push']],
    ['DELETE', /^\/v2\/(.+)\/blobs\/uploads\/([^/]+)$/, (c) => this.cancelUpload(c), ['pull', 'push']],
    ['GET', /^\/v2\/(.+)\/blobs\/([^/]+)$/, (c) => this.getBlob(c, false), ['pull']],
    ['HEAD', /^\/v2\/(.+)\/blobs\/([^/]+)$/, (c) => this.getBlob(c, true), ['pull']],
    ['DELETE', /^\/v2\/(.+)\/blobs\/([^/]+)$/, (c) => this.deleteBlob(c), ['delete']],
    ['GET', /^\/v2\/(.+)\/referrers\/([^/]+)$/, (c) => this.referrers(c), ['pull']],
    ['GET', /^\/trust\/v1\/(.+)\/metadata\/([^/]+)$/, (c) => this.trustFile(c), ['pull']],
  ];

  private route(method: string, path: string): [string, string, Handler, Action[]] | null {
    let pathMatched = false;
    for (const [m, re, h, need] of this.table) {
      const x = re.exec(path);
      if (!x) continue;
      pathMatched = true;
      if (m !== method) continue;
      let ref: string;
      try {
        ref = decodeURIComponent(x[2] ?? '');
      } catch {
        throw new RegistryError(400, 'NAME_INVALID', `malformed reference in ${path}`);
      }
      return [x[1]!, ref, h, need];
    }
    if (pathMatched) throw new RegistryError(405, 'UNSUPPORTED', `${method} is not allowed on ${path}`);
    return null;
  }

  // --- auth token endpoint ---------------------------------------------------------------

  private token(req: IncomingMessage, res: ServerResponse, q: URLSearchParams): void {
    if (this.auth.mode !== 'token') throw new RegistryError(404, 'UNSUPPORTED', 'this registry does not issue tokens');
    const user = this.auth.basicUser(req.headers.authorization); // wrong credentials: 401
    const token = this.auth.issueToken(user, q.getAll('scope').flatMap((s) => s.split(' ')).filter(Boolean));
    sendJson(res, 200, { token, access_token: token, expires_in: 300, issued_at: new Date().toISOString() });
  }

  // --- content discovery -----------------------------------------------------------------

  private async catalog(req: IncomingMessage, res: ServerResponse, q: URLSearchParams, base: string): Promise<void> {
    const user = this.auth.check(req, null, [], base);
    const visible = (await this.storage.repositories()).filter((r) => this.auth.granted(user, r).includes('pull'));
    const { page, link } = paginate(visible, q, '/v2/_catalog');
    sendJson(res, 200, { repositories: page }, link ? { Link: link } : {});
  }

  private async tagsList(c: Ctx): Promise<void> {
    if (!this.storage.repoExists(c.name)) throw new RegistryError(404, 'NAME_UNKNOWN', `repository name not known to registry: ${c.name}`);
    const { page, link } = paginate(await this.storage.tags(c.name), c.query, `/v2/${c.name}/tags/list`);
    sendJson(c.res, 200, { name: c.name, tags: page }, link ? { Link: link } : {});
  }

  /**
   * A repository's trust data as a plain TUF repository (`/trust/v1/<name>/metadata/<file>`), for
   * TUF clients that fetch files by URL (tuf-js's Updater, python-tuf): the files of the `_trust`
   * artifact. The registry vouches for nothing here; the files are signed.
   */
  private async trustFile(c: Ctx): Promise<void> {
    const digest = await this.storage.tag(c.name, TRUST_TAG);
    const files = digest ? trustFiles(JSON.parse(readFileSync(this.storage.blobPath(digest), 'utf8'))) : null;
    const f = files?.get(c.ref);
    if (!f || this.storage.blobSize(f.digest) === null) throw new RegistryError(404, 'NAME_UNKNOWN', `no trust metadata ${c.ref} for ${c.name}`);
    send(c.res, 200, { 'Content-Type': 'application/json', 'Content-Length': f.size }, readFileSync(this.storage.blobPath(f.digest)));
  }

  private async referrers(c: Ctx): Promise<void> {
    if (!isSha256(c.ref)) throw new RegistryError(400, 'DIGEST_INVALID', `invalid digest: ${c.ref}`);
    const type = c.query.get('artifactType');
    let list = await this.storage.referrers(c.name, c.ref);
    if (type) list = list.filter((d) => d['artifactType'] === type);
    const body = JSON.stringify({ schemaVersion: 2, mediaType: MT.ociIndex, manifests: list });
    send(c.res, 200, { 'Content-Type': MT.ociIndex, ...(type ? { 'OCI-Filters-Applied': 'artifactType' } : {}) }, body);
  }

  // --- manifests ---------------------------------------------------------------------------

  private async resolveRef(name: string, ref: string): Promise<string> {
    if (isTag(ref) && !ref.includes(':')) {
      const d = await this.storage.tag(name, ref);
      if (!d) throw new RegistryError(404, 'MANIFEST_UNKNOWN', `manifest unknown: ${name}:${ref}`);
      return d;
    }
    if (!isDigestLike(ref)) throw new RegistryError(400, 'MANIFEST_INVALID', `invalid reference: ${ref}`);
    return ref;
  }

  private async getManifest(c: Ctx, head: boolean): Promise<void> {
    const digest = await this.resolveRef(c.name, c.ref);
    const type = await this.storage.manifestType(c.name, digest);
    const size = type === null ? null : this.storage.blobSize(digest);
    if (type === null || size === null) throw new RegistryError(404, 'MANIFEST_UNKNOWN', `manifest unknown: ${c.name}@${digest}`);
    const body = readFileSync(this.storage.blobPath(digest));
    send(c.res, 200, { 'Content-Type': type, 'Docker-Content-Digest': digest, ETag: `"${digest}"`, 'Content-Length': size }, body, head);
  }

  private async putManifest(c: Ctx): Promise<void> {
    const byDigest = !isTag(c.ref) || c.ref.includes(':');
    if (byDigest && !isDigestLike(c.ref)) throw new RegistryError(400, 'MANIFEST_INVALID', `invalid reference: ${c.ref}`);
    const bytes = await readBody(c.req, MAX_MANIFEST_BYTES);
    const m = parseManifest(bytes, c.req.headers['content-type']);
    const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
    if (byDigest && c.ref !== digest) throw new RegistryError(400, 'DIGEST_INVALID', `manifest digest ${digest} does not match ${c.ref}`);
    // every blob and child manifest it names must already be in this repository
    const missing: string[] = [];
    if (INDEX_TYPES.includes(m.mediaType)) {
      for (const d of m.manifests ?? []) if ((await this.storage.manifestType(c.name, d.digest)) === null) missing.push(d.digest);
    } else {
      for (const d of [m.config!, ...(m.layers ?? [])]) {
        if (d.mediaType === MT.dockerForeignLayer || (d as { urls?: unknown }).urls) continue; // non-distributable
        const size = this.storage.blobInRepo(c.name, d.digest);
        this.storage.touchBlob(d.digest);
        if (size === null) missing.push(d.digest);
        else if (size !== d.size) throw new RegistryError(400, 'MANIFEST_INVALID', `blob ${d.digest} is ${size} bytes, the manifest says ${d.size}`);
      }
    }
    if (missing.length) throw new RegistryError(400, 'MANIFEST_BLOB_UNKNOWN', `blob unknown to registry: ${missing[0]}`, { digests: missing });
    // Everything is checked above; the writes go from the least to the most visible, so a push
    // that fails part way leaves no tag and no manifest link (only an unlinked blob, which gc takes):
    // blob, then its referrers entry, then the repository's manifest link, then the tag.
    await this.storage.putBlobBytes(bytes);
    const headers: Record<string, string> = { Location: `/v2/${c.name}/manifests/${digest}`, 'Docker-Content-Digest': digest };
    if (m.subject) {
      const at = artifactTypeOf(m);
      await this.storage.addReferrer(c.name, m.subject.digest, digest, { mediaType: m.mediaType, digest, size: bytes.length, ...(at ? { artifactType: at } : {}), ...(m.annotations ? { annotations: m.annotations } : {}) });
      headers['OCI-Subject'] = m.subject.digest;
    }
    await this.storage.putManifest(c.name, digest, m.mediaType);
    // a gc that swept between the check above and this write: the manifest must not stay
    const gone = INDEX_TYPES.includes(m.mediaType) ? [] : [m.config!, ...(m.layers ?? [])].filter((d) => d.mediaType !== MT.dockerForeignLayer && !(d as { urls?: unknown }).urls && this.storage.blobInRepo(c.name, d.digest) === null);
    if (gone.length) {
      await this.storage.deleteManifest(c.name, digest);
      throw new RegistryError(400, 'MANIFEST_BLOB_UNKNOWN', `blob unknown to registry: ${gone[0]!.digest}`, { digests: gone.map((d) => d.digest) });
    }
    if (!byDigest) await this.storage.setTag(c.name, c.ref, digest);
    // trust data pushed: a fresh timestamp over it, when this registry keeps the key (a failure
    // leaves the push as it is: clients then see the old timestamp, and refuse what it does not cover)
    if (c.ref === TRUST_TAG) await this.o.timestamper?.refresh(c.name, this.storage).catch((e: unknown) => log.warn('timestamping failed', { repo: c.name, err: errorMessage(e) }));
    send(c.res, 201, headers);
  }

  private async deleteManifest(c: Ctx): Promise<void> {
    if (!this.o.deleteEnabled) throw new RegistryError(405, 'UNSUPPORTED', 'deletes are disabled on this registry');
    if (isTag(c.ref) && !c.ref.includes(':')) {
      if (!(await this.storage.deleteTag(c.name, c.ref))) throw new RegistryError(404, 'MANIFEST_UNKNOWN', `manifest unknown: ${c.name}:${c.ref}`);
      return send(c.res, 202);
    }
    if (!isSha256(c.ref)) throw new RegistryError(400, 'DIGEST_INVALID', `invalid digest: ${c.ref}`);
    if (!(await this.storage.deleteManifest(c.name, c.ref))) throw new RegistryError(404, 'MANIFEST_UNKNOWN', `manifest unknown: ${c.name}@${c.ref}`);
    send(c.res, 202);
  }

  // --- blobs ---------------------------------------------------------------------------------

  private async getBlob(c: Ctx, head: boolean): Promise<void> {
    if (!isDigestLike(c.ref)) throw new RegistryError(400, 'DIGEST_INVALID', `invalid digest: ${c.ref}`);
    const size = this.storage.blobInRepo(c.name, c.ref);
    if (size === null) throw new RegistryError(404, 'BLOB_UNKNOWN', `blob unknown to registry: ${c.ref}`);
    this.storage.touchBlob(c.ref); // a client that finds a blob may now push a manifest naming it (gc's grace period)
    const headers: Record<string, string | number> = { 'Content-Type': 'application/octet-stream', 'Docker-Content-Digest': c.ref, 'Accept-Ranges': 'bytes', ETag: `"${c.ref}"` };
    const range = /^bytes=(\d*)-(\d*)$/.exec(c.req.headers.range ?? '');
    if (c.req.headers.range && !range) throw new RegistryError(416, 'BLOB_UNKNOWN', `invalid range ${c.req.headers.range}`);
    let start = 0;
    let end = size - 1;
    if (range) {
      if (range[1] === '' && range[2] !== '') start = Math.max(0, size - Number(range[2]));
      else {
        start = Number(range[1]);
        if (range[2] !== '') end = Math.min(Number(range[2]), size - 1);
      }
      if (start > end || start >= size) {
        c.res.writeHead(416, { ...COMMON, 'Content-Range': `bytes */${size}`, 'Content-Length': 0 });
        return void c.res.end();
      }
      headers['Content-Range'] = `bytes ${start}-${end}/${size}`;
    }
    headers['Content-Length'] = end - start + 1;
    c.res.writeHead(range ? 206 : 200, { ...COMMON, ...headers });
    if (head || size === 0) return void c.res.end();
    const stream = this.storage.readBlob(c.ref, { start, end });
    stream.on('error', () => c.res.destroy());
    stream.pipe(c.res);
  }

  private async deleteBlob(c: Ctx): Promise<void> {
    if (!this.o.deleteEnabled) throw new RegistryError(405, 'UNSUPPORTED', 'deletes are disabled on this registry');
    if (!isDigestLike(c.ref)) throw new RegistryError(400, 'DIGEST_INVALID', `invalid digest: ${c.ref}`);
    if (!(await this.storage.unlinkBlob(c.name, c.ref))) throw new RegistryError(404, 'BLOB_UNKNOWN', `blob unknown to registry: ${c.ref}`);
    send(c.res, 202, { 'Docker-Content-Digest': c.ref });
  }

  // --- uploads -------------------------------------------------------------------------------

  private uploadHeaders(name: string, uuid: string, size: number): Record<string, string> {
    return { Location: `/v2/${name}/blobs/uploads/${uuid}`, 'Docker-Upload-UUID': uuid, Range: `0-${Math.max(0, size - 1)}` };
  }

  private contentLength(req: IncomingMessage): number | undefined {
    const v = req.headers['content-length'];
    return v === undefined ? undefined : Number(v);
  }

  private async startUpload(c: Ctx): Promise<void> {
    const mount = c.query.get('mount');
    const from = c.query.get('from');
    if (mount && from) {
      // cross-repository mount: only from a repository the client may pull; else a normal upload
      if (isSha256(mount) && isRepoName(from) && this.storage.blobInRepo(from, mount) !== null && this.auth.allows(c.req, from, ['pull'])) {
        await this.storage.linkBlob(c.name, mount);
        c.req.resume();
        return send(c.res, 201, { Location: `/v2/${c.name}/blobs/${mount}`, 'Docker-Content-Digest': mount });
      }
    }
    const digest = c.query.get('digest');
    const u = await this.storage.startUpload(c.name);
    if (digest) {
      // monolithic: the whole blob in this request
      try {
        if (!isDigestLike(digest)) throw new RegistryError(400, 'DIGEST_INVALID', `invalid digest: ${digest}`);
        await this.storage.append(u, c.req, this.contentLength(c.req));
        await this.storage.finishUpload(u, digest);
      } catch (e) {
        await this.storage.cancelUpload(u.uuid);
        throw e;
      }
      return send(c.res, 201, { Location: `/v2/${c.name}/blobs/${digest}`, 'Docker-Content-Digest': digest });
    }
    c.req.resume();
    send(c.res, 202, this.uploadHeaders(c.name, u.uuid, 0));
  }

  private async patchUpload(c: Ctx): Promise<void> {
    const u = await this.storage.upload(c.name, c.ref);
    const cr = c.req.headers['content-range'];
    if (cr !== undefined) {
      const m = /^(?:bytes )?(\d+)-(\d+)(?:\/\d+|\/\*)?$/.exec(cr);
      if (!m || Number(m[1]) !== u.size) {
        c.req.resume();
        return send(c.res, 416, this.uploadHeaders(c.name, u.uuid, u.size), JSON.stringify({ errors: [{ code: 'BLOB_UPLOAD_INVALID', message: `chunk starts at ${m?.[1] ?? '?'}, the upload is at ${u.size}` }] }));
      }
    }
    const size = await this.storage.append(u, c.req, this.contentLength(c.req));
    send(c.res, 202, this.uploadHeaders(c.name, u.uuid, size));
  }

  private async putUpload(c: Ctx): Promise<void> {
    const u = await this.storage.upload(c.name, c.ref);
    const digest = c.query.get('digest');
    if (!digest || !isDigestLike(digest)) {
      c.req.resume();
      throw new RegistryError(400, 'DIGEST_INVALID', `a digest is required to finish an upload`);
    }
    const len = this.contentLength(c.req);
    if (len !== 0) await this.storage.append(u, c.req, len);
    else c.req.resume();
    await this.storage.finishUpload(u, digest);
    send(c.res, 201, { Location: `/v2/${c.name}/blobs/${digest}`, 'Docker-Content-Digest': digest });
  }

  private async uploadStatus(c: Ctx): Promise<void> {
    const u = await this.storage.upload(c.name, c.ref);
    send(c.res, 204, this.uploadHeaders(c.name, u.uuid, u.size));
  }

  private async cancelUpload(c: Ctx): Promise<void> {
    const u = await this.storage.upload(c.name, c.ref);
    await this.storage.cancelUpload(u.uuid);
    send(c.res, 204);
  }
}

