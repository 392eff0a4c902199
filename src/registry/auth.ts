/**
 * Who may do what in the registry. Users come from an htpasswd file (bcrypt, as `htpasswd -B`
 * writes). A repository is public (anonymous pull) when it matches a `public` pattern, else
 * private. Authenticated users get what the ACL grants (default: pull and push everywhere, and
 * delete when deletes are enabled). With no htpasswd file the registry is open to everyone.
 *
 * Two ways to present credentials, as Docker's clients expect:
 * - basic: every request carries `Authorization: Basic`; a refusal says
 *   `WWW-Authenticate: Basic realm=...`.
 * - token: a refusal says `WWW-Authenticate: Bearer realm=<this registry>/token,service=...,scope=...`;
 *   the client fetches a token there (with basic credentials, or anonymously) and retries with
 *   `Authorization: Bearer`. Tokens are JWTs signed HS256 with the registry's key, listing the
 *   granted actions per repository, valid for 5 minutes.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { IncomingMessage } from 'node:http';
import { systemClock, unixSeconds, type Clock } from '../base/clock.js';
import { isObject } from '../base/json.js';
import { fault } from './errors.js';

const require = createRequire(import.meta.url);
const bcrypt = require('bcryptjs') as { compareSync(pw: string, hash: string): boolean };

export type Action = 'pull' | 'push' | 'delete';
export interface AclRule {
  /** a user name, or `*` for any authenticated user */
  user: string;
  /** repository patterns (`*` matches within a path component, `**` across components) */
  repos: string[];
  actions: Action[];
}

export interface AuthOptions {
  htpasswd?: string;
  public?: string[];
  acl?: AclRule[];
  mode?: 'basic' | 'token';
  deleteEnabled?: boolean;
  /** HS256 key for tokens (random per start when absent) */
  tokenKey?: Buffer;
  service?: string;
}

const TOKEN_TTL_S = 300;

function glob(pattern: string): RegExp {
  const re = pattern
    .replace(/[.+?^${}()|[\]\\]/g, '\\$&')
    .replace(/\*\*/g, '\u0000')
    .replace(/\*/g, '[^/]*')
    .replace(/\u0000/g, '.*');
  return new RegExp(`^${re}$`);
}

const b64url = (b: Buffer | string) => Buffer.from(b).toString('base64url');

export function parseHtpasswd(text: string): Map<string, string> {
  const users = new Map<string, string>();
  for (const line of text.split('\n')) {
    const t = line.trim();
    if (!t || t.startsWith('#')) continue;
    const i = t.indexOf(':');
    if (i <= 0) continue;
    const hash = t.slice(i + 1);
    if (!/^\$2[aby]\$/.test(hash))
      throw new Error(`htpasswd: user ${t.slice(0, i)} has no bcrypt hash (create the file with htpasswd -B)`);
    users.set(t.slice(0, i), hash);
  }
  return users;
}

const VERIFIED_TTL_MS = 60_000;
const VERIFIED_MAX = 1024;

export class Authorizer {
  private readonly cacheKey = randomBytes(32);
  private readonly verifiedCache = new Map<string, number>();
  readonly mode: 'basic' | 'token';
  readonly service: string;
  private readonly users: Map<string, string> | null;
  private readonly publicRes: RegExp[];
  private readonly acl: Array<{ user: string; repos: RegExp[]; actions: Action[] }> | null;
  private readonly key: Buffer;
  private readonly deleteEnabled: boolean;

  constructor(
    o: AuthOptions,
    /** dates tokens and the verified-password cache */
    private readonly clock: Clock = systemClock,
  ) {
    this.users = o.htpasswd ? parseHtpasswd(readFileSync(o.htpasswd, 'utf8')) : null;
    this.publicRes = (o.public ?? []).map(glob);
    this.acl = o.acl ? o.acl.map((r) => ({ user: r.user, repos: r.repos.map(glob), actions: r.actions })) : null;
    this.mode = o.mode ?? 'basic';
    this.key = o.tokenKey ?? randomBytes(32);
    this.service = o.service ?? 'berth-registry';
    this.deleteEnabled = o.deleteEnabled ?? false;
  }

  get open(): boolean {
    return this.users === null;
  }

  isPublic(repo: string): boolean {
    return this.publicRes.some((r) => r.test(repo));
  }

  /** What `user` (null: anonymous) may do to `repo`. */
  granted(user: string | null, repo: string): Action[] {
    const all: Action[] = this.deleteEnabled ? ['pull', 'push', 'delete'] : ['pull', 'push'];
    if (this.open) return all;
    if (user === null) return this.isPublic(repo) ? ['pull'] : [];
    const out = new Set<Action>(this.isPublic(repo) ? ['pull'] : []);
    if (!this.acl) all.forEach((a) => out.add(a));
    else
      for (const r of this.acl)
        if ((r.user === '*' || r.user === user) && r.repos.some((re) => re.test(repo)))
          r.actions.forEach((a) => out.add(a));
    if (!this.deleteEnabled) out.delete('delete');
    return [...out];
  }

  /** Checks basic credentials; null when absent, throws UNAUTHORIZED when wrong. */
  basicUser(header: string | undefined): string | null {
    if (!header?.startsWith('Basic ')) return null;
    const decoded = Buffer.from(header.slice(6), 'base64').toString('utf8');
    if (decoded === ':' || decoded === '') return null; // clients without credentials answer a Basic challenge with empty ones
    const i = decoded.indexOf(':');
    const user = decoded.slice(0, i);
    const hash = this.users?.get(user);
    if (i < 0 || !hash || !this.verified(user, decoded.slice(i + 1), hash))
      throw fault('UNAUTHORIZED', 'authentication required: invalid username or password');
    return user;
  }

  /**
   * bcrypt is slow on purpose (~50-100 ms a check), and basic clients send credentials on every
   * request: a success is remembered for VERIFIED_TTL_MS, keyed by an HMAC (a per-process random
   * key) of user, password and the user's hash, so the cache holds no password, a changed hash
   * misses, and a wrong password always pays bcrypt. Bounded: the oldest entries go first.
   */
  private verified(user: string, password: string, hash: string): boolean {
    const key = createHmac('sha256', this.cacheKey).update(`${user}\0${password}\0${hash}`).digest('base64');
    const now = this.clock.now();
    const until = this.verifiedCache.get(key);
    if (until !== undefined && until > now) return true;
    this.verifiedCache.delete(key);
    if (!bcrypt.compareSync(password, hash.replace(/^\$2y\$/, '$2a$'))) return false;
    if (this.verifiedCache.size >= VERIFIED_MAX) this.verifiedCache.delete(this.verifiedCache.keys().next().value!);
    this.verifiedCache.set(key, now + VERIFIED_TTL_MS);
    return true;
  }

  // --- tokens ----------------------------------------------------------------------------

  issueToken(user: string | null, scopes: string[]): string {
    const access: Array<{ type: string; name: string; actions: Action[] }> = [];
    for (const scope of scopes) {
      const m = /^repository:([^:]+):(.+)$/.exec(scope);
      if (!m) continue;
      const want = m[2]!
        .split(',')
        .map((a) => (a === '*' ? ['pull', 'push', 'delete'] : [a]))
        .flat();
      const have = this.granted(user, m[1]!);
      access.push({ type: 'repository', name: m[1]!, actions: have.filter((a) => want.includes(a)) });
    }
    const now = unixSeconds(this.clock);
    const head = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
    const body = b64url(
      JSON.stringify({
        iss: this.service,
        sub: user ?? '',
        aud: this.service,
        iat: now,
        nbf: now - 5,
        exp: now + TOKEN_TTL_S,
        jti: randomBytes(8).toString('hex'),
        access,
      }),
    );
    const sig = b64url(createHmac('sha256', this.key).update(`${head}.${body}`).digest());
    return `${head}.${body}.${sig}`;
  }

  /** The access a bearer token grants, or throws UNAUTHORIZED. */
  verifyToken(token: string): { user: string | null; access: Map<string, Action[]> } {
    const [head, body, sig] = token.split('.');
    if (!head || !body || !sig) throw fault('UNAUTHORIZED', 'malformed token');
    const want = createHmac('sha256', this.key).update(`${head}.${body}`).digest();
    const got = Buffer.from(sig, 'base64url');
    if (got.length !== want.length || !timingSafeEqual(got, want))
      throw fault('UNAUTHORIZED', 'invalid token signature');
    const claims: unknown = JSON.parse(Buffer.from(body, 'base64url').toString('utf8'));
    const expired = !isObject(claims) || typeof claims['exp'] !== 'number' || claims['exp'] < this.clock.now() / 1000;
    if (expired || claims['aud'] !== this.service)
      throw fault('UNAUTHORIZED', 'token expired or not for this registry');
    const access = new Map<string, Action[]>();
    for (const a of Array.isArray(claims['access']) ? claims['access'] : [])
      if (isObject(a) && typeof a['name'] === 'string' && Array.isArray(a['actions']))
        access.set(a['name'], a['actions'] as Action[]);
    return { user: typeof claims['sub'] === 'string' && claims['sub'] ? claims['sub'] : null, access };
  }

  /** Whether the request's credentials allow `need` on `repo` (check() without the refusal). */
  allows(req: IncomingMessage, repo: string, need: Action[]): boolean {
    try {
      this.check(req, repo, need, '');
      return true;
    } catch {
      return false;
    }
  }

  /**
   * Authorizes one request for `need` on `repo` (repo null: the /v2/ base check). Returns the user;
   * throws UNAUTHORIZED (with the challenge to send) or DENIED.
   *
   * `mountFrom` is the source repository of a cross-repository mount (`POST
   * .../blobs/uploads/?mount=&from=`): the mount needs `pull` there too, so the token challenge
   * names both scopes (`repository:dst:pull,push repository:src:pull`, as Docker's distribution
   * does). A token without pull on the source is challenged again when its subject may pull it (a
   * client that fetches the token the challenge names then mounts); when the subject may not, the
   * request goes on and the mount becomes an ordinary upload (the spec's 202).
   */
  check(req: IncomingMessage, repo: string | null, need: Action[], baseUrl: string, mountFrom?: string): string | null {
    const header = req.headers.authorization;
    // a token that lacks the scope: RFC 6750's error="insufficient_scope", which Docker's clients
    // read as DENIED (dockerd then says "pull access denied ..., repository does not exist or may
    // require 'docker login'", a 404, as it does with Docker Hub)
    const challenge = (scope?: string, insufficient = false) =>
      this.mode === 'token'
        ? `Bearer realm="${baseUrl}/token",service="${this.service}"${scope ? `,scope="${scope}"` : ''}` +
          (insufficient ? ',error="insufficient_scope"' : '')
        : `Basic realm="${this.service}"`;
    const from = mountFrom && mountFrom !== repo ? mountFrom : undefined;
    const scope = repo ? `repository:${repo}:${need.join(',')}${from ? ` repository:${from}:pull` : ''}` : undefined;
    const unauthorized = (msg: string, insufficient = false) =>
      fault('UNAUTHORIZED', msg, { challenge: challenge(scope, insufficient) });
    if (this.mode === 'token' && !this.open) {
      if (!header?.startsWith('Bearer ')) throw unauthorized('authentication required');
      let t;
      try {
        t = this.verifyToken(header.slice(7));
      } catch (e) {
        throw unauthorized(e instanceof Error ? e.message : 'invalid token');
      }
      if (repo === null) return t.user;
      const has = t.access.get(repo) ?? [];
      if (!need.every((a) => has.includes(a)))
        throw t.user === null
          ? unauthorized('authentication required', true)
          : unauthorized(`insufficient scope: ${need.join(',')} on ${repo}`, true);
      if (from && !(t.access.get(from) ?? []).includes('pull') && this.granted(t.user, from).includes('pull'))
        throw unauthorized(`insufficient scope: pull on ${from} (the mount's source)`, true);
      return t.user;
    }
    let user: string | null;
    try {
      user = this.basicUser(header);
    } catch (e) {
      throw unauthorized(e instanceof Error ? e.message : 'invalid credentials');
    }
    if (repo === null) {
      // the base always challenges anonymous clients: clients learn from it whether to send
      // credentials (and those without any still pull public repositories)
      if (user === null && !this.open) throw unauthorized('authentication required');
      return user;
    }
    const has = this.granted(user, repo);
    if (need.every((a) => has.includes(a))) return user;
    if (user === null) throw unauthorized('authentication required');
    throw fault('DENIED', `requested access to the resource is denied: ${need.join(',')} on ${repo}`);
  }
}
