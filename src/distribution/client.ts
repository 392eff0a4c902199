/**
 * The engine's registry client: OCI distribution over fetch (Node's undici), with the auth
 * handshakes Docker's registries use. A 401 names its scheme in WWW-Authenticate: Basic gets the
 * credentials; Bearer sends us to the realm for a token (with the credentials, or anonymously)
 * for the scope asked, and the request is retried with it. Tokens are cached per scope.
 */
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { Readable } from 'node:stream';
import { invalidArgument, unavailable, BerthError } from '../base/errors.js';
import { isObject } from '../base/json.js';
import { isRegistryErrorCode, registryHostOf, type RegistryErrorCode } from '../spec/distribution.js';

export interface Credentials {
  username: string;
  password: string;
}

export interface Endpoint {
  /** host[:port] as written in the reference (`docker.io` for Docker Hub) */
  host: string;
  /** repository path on that registry, e.g. `library/busybox` */
  repo: string;
  /** base URL, e.g. `http://127.0.0.1:5000` */
  base: string;
}

export interface ClientOptions {
  /** registries spoken to over plain HTTP (besides loopback, which always is, as dockerd does) */
  insecure?: string[];
  /** mirrors for Docker Hub, tried in order before it */
  mirrors?: string[];
}

const LOOPBACK = /^(localhost|127(?:\.\d+){3}|\[::1\])(?::\d+)?$/;

/** Splits a normalized reference name (`host:5000/a/b`, `busybox`) into registry host and path. */
export function endpointOf(name: string, o: ClientOptions = {}): Endpoint {
  const named = registryHostOf(name);
  const host = named ?? 'docker.io';
  let repo = named ? name.slice(named.length + 1) : name;
  if (host === 'docker.io' && !repo.includes('/')) repo = `library/${repo}`;
  const insecure = LOOPBACK.test(host) || (o.insecure ?? []).includes(host);
  const base =
    host === 'docker.io'
      ? (o.mirrors?.[0] ?? 'https://registry-1.docker.io')
      : `${insecure ? 'http' : 'https'}://${host}`;
  return { host, repo, base };
}

/** Parses `Bearer realm="...",service="...",scope="..."` (or Basic). */
export function parseChallenge(h: string): { scheme: string; params: Record<string, string> } {
  const sp = h.indexOf(' ');
  const scheme = (sp < 0 ? h : h.slice(0, sp)).toLowerCase();
  const params: Record<string, string> = {};
  const re = /(\w+)=(?:"([^"]*)"|([^,\s]*))/g;
  for (let m = re.exec(h.slice(sp + 1)); m; m = re.exec(h.slice(sp + 1)))
    params[m[1]!.toLowerCase()] = m[2] ?? m[3] ?? '';
  return { scheme, params };
}

/**
 * A registry's refusal as the client saw it: the HTTP status, and the spec's error code when the
 * registry named one (the first of its `{"errors": [...]}`, or `DENIED` for a Bearer challenge
 * saying `error="insufficient_scope"`, as Docker's client reads it). Only this client maps a
 * registry's status to an error category.
 */
export class RegistryHttpError extends BerthError {
  constructor(
    readonly status: number,
    message: string,
    readonly registryCode?: RegistryErrorCode,
  ) {
    // a DENIED (also a 401 saying insufficient_scope) is a 403, as dockerd answers it
    super(
      status === 401 && registryCode !== 'DENIED'
        ? 'Unauthorized'
        : status === 403 || registryCode === 'DENIED'
          ? 'PermissionDenied'
          : status === 404
            ? 'NotFound'
            : 'Unavailable',
      message,
    );
  }
}

/**
 * The first error of a registry's `{"errors": [...]}` body as Docker prints it (`code: message`,
 * the code lower-cased with spaces), and its code when it is one of the spec's; else the body or
 * the status.
 */
export async function registryErrorOf(res: Response): Promise<{ text: string; code?: RegistryErrorCode }> {
  const text = await res.text().catch(() => '');
  try {
    const v: unknown = JSON.parse(text);
    if (isObject(v) && Array.isArray(v['errors']) && isObject(v['errors'][0])) {
      const e = v['errors'][0];
      const code = String(e['code'] ?? '');
      const words = code.toLowerCase().replace(/_/g, ' ');
      return {
        text: `${words}: ${String(e['message'] ?? '')}`.replace(/^: /, ''),
        ...(isRegistryErrorCode(code) ? { code } : {}),
      };
    }
  } catch {
    /* not JSON */
  }
  return { text: text.trim() || `${res.status} ${res.statusText}` };
}

async function errorText(res: Response): Promise<string> {
  return (await registryErrorOf(res)).text;
}

/** A 401/403 as a RegistryHttpError; an insufficient scope is DENIED (Docker's client reads it so). */
async function refusal(res: Response): Promise<RegistryHttpError> {
  const { scheme, params } = parseChallenge(res.headers.get('www-authenticate') ?? '');
  const e = await registryErrorOf(res);
  if (scheme === 'bearer' && params['error'] === 'insufficient_scope')
    return new RegistryHttpError(
      res.status,
      `denied: ${params['error_description'] || 'requested access to the resource is denied'}`,
      'DENIED',
    );
  return new RegistryHttpError(res.status, e.text, e.code);
}

export class RegistrySession {
  private authHeader: string | null = null;

  constructor(
    readonly ep: Endpoint,
    private readonly creds: Credentials | null,
    /** the scope tokens are asked for, e.g. `repository:a/b:pull,push` */
    private readonly scope: string,
  ) {}

  url(path: string): string {
    return path.startsWith('http') ? path : `${this.ep.base}${path}`;
  }

  /** A request with the auth handshake: a 401 is answered once (credentials or a token) and the request sent again. */
  async fetch(
    method: string,
    path: string,
    init: { headers?: Record<string, string>; body?: Buffer; length?: number } = {},
  ): Promise<Response> {
    const url = this.url(path);
    const go = (): Promise<Response> => {
      const headers: Record<string, string> = { ...(init.headers ?? {}) };
      if (this.authHeader) headers['Authorization'] = this.authHeader;
      if (init.length !== undefined) headers['Content-Length'] = String(init.length);
      return fetch(url, {
        method,
        headers,
        redirect: 'follow',
        ...(init.body !== undefined ? { body: init.body } : {}),
      } as RequestInit).catch((e: unknown) => {
        const cause = (e as { cause?: { message?: string; code?: string } }).cause;
        throw unavailable(
          `Get "${url}": ${cause?.code ?? ''} ${cause?.message ?? (e as Error).message}`.replace(/\s+/g, ' '),
        );
      });
    };
    let res = await go();
    if (res.status === 401 && !this.triedAuth) {
      await this.answer(res);
      res = await go();
    }
    if (res.status === 401 || res.status === 403) throw await refusal(res);
    return res;
  }

  private triedAuth = false;

  /**
   * A PUT of a stream (a blob upload) through node:http, which keeps backpressure: fetch with a
   * web stream body buffers the whole blob in memory on Node 20. The session must be authorized
   * already (a stream cannot be sent twice). Resolves with the status and the response text.
   */
  putStream(
    path: string,
    body: Readable,
    length: number,
    contentType = 'application/octet-stream',
  ): Promise<{ status: number; text: string }> {
    const url = new URL(this.url(path));
    return new Promise((resolve, reject) => {
      const headers: Record<string, string | number> = { 'Content-Type': contentType, 'Content-Length': length };
      if (this.authHeader) headers['Authorization'] = this.authHeader;
      const req = (url.protocol === 'https:' ? httpsRequest : httpRequest)(url, { method: 'PUT', headers }, (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
        res.on('error', reject);
      });
      req.on('error', (e) => reject(unavailable(`Put "${url}": ${e.message}`)));
      body.on('error', (e) => req.destroy(e));
      body.pipe(req);
    });
  }

  /**
   * A GET whose body is a Node stream (blobs): node:http, not fetch, because turning fetch's web
   * stream into a Node stream costs most of the throughput. Answers a 401 like fetch() does and
   * follows redirects (registries may send blobs to storage elsewhere).
   */
  async getStream(path: string, redirects = 3): Promise<IncomingMessage> {
    const url = new URL(this.url(path));
    const res = await new Promise<IncomingMessage>((resolve, reject) => {
      const headers: Record<string, string> = {};
      if (this.authHeader && url.origin === new URL(this.ep.base).origin) headers['Authorization'] = this.authHeader;
      const req = (url.protocol === 'https:' ? httpsRequest : httpRequest)(url, { headers }, resolve);
      req.on('error', (e) => reject(unavailable(`Get "${url}": ${e.message}`)));
      req.end();
    });
    const status = res.statusCode ?? 0;
    if (status >= 300 && status < 400 && res.headers.location && redirects > 0) {
      res.resume();
      return this.getStream(new URL(res.headers.location, url).toString(), redirects - 1);
    }
    if (status === 401 && !this.triedAuth) {
      res.resume();
      await this.answerChallenge(String(res.headers['www-authenticate'] ?? ''));
      return this.getStream(path, redirects);
    }
    if (status === 401 || status === 403) {
      res.resume();
      throw new RegistryHttpError(status, `${status === 401 ? 'unauthorized' : 'denied'}: fetching ${url.pathname}`);
    }
    return res;
  }

  /** What a download elsewhere (a worker) needs to make the request itself: the URL, the origin the auth goes to, the auth. */
  requestOf(path: string): { url: string; origin: string; auth: string | null } {
    return { url: this.url(path), origin: new URL(this.ep.base).origin, auth: this.authHeader };
  }

  private basic(): string | null {
    return this.creds
      ? `Basic ${Buffer.from(`${this.creds.username}:${this.creds.password}`).toString('base64')}`
      : null;
  }

  presetBasic(): void {
    this.authHeader = this.basic() ?? this.authHeader;
  }

  /** Probes /v2/ so that a streamed upload starts authorized. */
  async authorize(): Promise<void> {
    if (this.triedAuth) return;
    const res = await fetch(this.url('/v2/')).catch((e: unknown) => {
      throw unavailable(
        `Get "${this.url('/v2/')}": ${(e as { cause?: { message?: string } }).cause?.message ?? (e as Error).message}`,
      );
    });
    if (res.status === 401) await this.answer(res);
    else await res.body?.cancel();
  }

  /** Answers a 401's challenge: sets the Authorization header for the retry. */
  private async answer(res: Response): Promise<void> {
    await res.body?.cancel();
    await this.answerChallenge(res.headers.get('www-authenticate') ?? '');
  }

  /**
   * Answers a 401's WWW-Authenticate challenge (of this request, not of /v2/, which a registry
   * may leave open while its blobs are not): once per session, later 401s are refusals.
   */
  async answerChallenge(challenge: string): Promise<void> {
    this.triedAuth = true;
    const { scheme, params } = parseChallenge(challenge);
    const basic = this.basic();
    if (scheme === 'basic') {
      if (!basic) throw new RegistryHttpError(401, 'unauthorized: authentication required');
      this.authHeader = basic;
      return;
    }
    if (scheme !== 'bearer' || !params['realm'])
      throw new RegistryHttpError(401, `unauthorized: unsupported auth challenge ${scheme}`);
    const q = new URLSearchParams();
    if (params['service']) q.set('service', params['service']);
    q.set('scope', this.scope);
    if (this.creds) q.set('account', this.creds.username);
    const tres = await fetch(`${params['realm']}?${q}`, { headers: basic ? { Authorization: basic } : {} }).catch(
      (e: unknown) => {
        throw unavailable(`token request to ${params['realm']} failed: ${(e as Error).message}`);
      },
    );
    if (!tres.ok) throw new RegistryHttpError(401, `unauthorized: ${await errorText(tres)}`);
    const body: unknown = await tres.json();
    const token = isObject(body) ? (body['token'] ?? body['access_token']) : undefined;
    if (typeof token !== 'string') throw invalidArgument('the token server answered without a token');
    this.authHeader = `Bearer ${token}`;
  }
}

/** Checks credentials against a registry (`docker login`): resolves when /v2/ accepts them. */
export async function checkLogin(server: string, creds: Credentials, o: ClientOptions = {}): Promise<void> {
  const host = server.replace(/^https?:\/\//, '').replace(/\/.*$/, '');
  const ep = endpointOf(`${host}/x`, o);
  const s = new RegistrySession(ep, creds, '');
  // credentials go with the first request: a registry that lets anonymous clients reach /v2/
  // would otherwise never look at them
  s.presetBasic();
  const res = await s.fetch('GET', '/v2/');
  await res.body?.cancel();
  if (!res.ok) throw new RegistryHttpError(res.status, `login to ${host} failed: ${res.status}`);
}
