/**
 * BuildKit sessions (moby/buildkit session/manager.go): a client opens `POST /session` with
 * `Upgrade: h2c` and the headers below, the daemon answers 101 and becomes the gRPC client of the
 * services the client exposes on that connection. A build names its session by id
 * (`/build?session=<id>`); the session lives as long as its connection.
 */
import type { Duplex } from 'node:stream';
import { alreadyExists, invalidArgument, unavailable } from '../base/errors.js';
import { CREDENTIALS, GET_SECRET } from './protos.js';
import { GRPC, GrpcConnection, GrpcError } from './grpc-client.js';

/** What the client sent with `POST /session` (X-Docker-Expose-Session-*). */
export interface SessionHeaders {
  /** X-Docker-Expose-Session-Uuid */
  id: string;
  /** X-Docker-Expose-Session-Name */
  name: string;
  /** X-Docker-Expose-Session-Sharedkey */
  sharedKey: string;
  /** X-Docker-Expose-Session-Grpc-Method (repeated): the methods the client serves; empty = not said */
  methods: string[];
}

const SESSION_ID = /^[A-Za-z0-9._:-]{1,128}$/;

export class Session {
  readonly grpc: GrpcConnection;
  private readonly methods: Set<string>;

  constructor(
    readonly headers: SessionHeaders,
    conn: Duplex,
  ) {
    this.grpc = new GrpcConnection(conn);
    this.methods = new Set(headers.methods.map((m) => m.toLowerCase()));
  }

  /**
   * Whether the client serves `path`. A client that listed no methods (dockerode exposes Auth
   * without saying so) is asked anyway, and an UNIMPLEMENTED answer counts as "no".
   */
  supports(path: string): boolean {
    return this.methods.size === 0 || this.methods.has(path.toLowerCase());
  }

  /** The secret `id` from the client, or null when it has none (NOT_FOUND, or no Secrets service). */
  async secret(id: string, signal: AbortSignal): Promise<Buffer | null> {
    if (!this.supports(GET_SECRET.path)) return null;
    try {
      const r = await this.grpc.unary(GET_SECRET, { ID: id, annotations: {} }, signal);
      return Buffer.from(r.data);
    } catch (e) {
      if (e instanceof GrpcError && (e.code === GRPC.NOT_FOUND || e.code === GRPC.UNIMPLEMENTED)) return null;
      throw unavailable(`secret ${id}: ${(e as Error).message}`, e);
    }
  }

  /** Registry credentials the client lends for `host`, or null. */
  async credentials(host: string, signal: AbortSignal): Promise<{ username: string; password: string } | null> {
    if (!this.supports(CREDENTIALS.path)) return null;
    try {
      const r = await this.grpc.unary(CREDENTIALS, { Host: host }, signal);
      return r.Username || r.Secret ? { username: r.Username, password: r.Secret } : null;
    } catch {
      return null;
    }
  }
}

/** The open sessions of this daemon, by id. */
export class SessionManager {
  private readonly sessions = new Map<string, Session>();
  private readonly waiters = new Map<string, Array<(s: Session) => void>>();

  /** Checks the headers before the connection is taken over (a bad request gets a 4xx, not a 101). */
  check(h: SessionHeaders): void {
    if (!SESSION_ID.test(h.id)) throw invalidArgument('invalid or missing X-Docker-Expose-Session-Uuid header');
    if (this.sessions.has(h.id)) throw alreadyExists(`session ${h.id} already exists`);
  }

  /** Serves the session on `conn` until the connection ends. */
  async serve(h: SessionHeaders, conn: Duplex): Promise<void> {
    this.check(h);
    const s = new Session(h, conn);
    this.sessions.set(h.id, s);
    for (const w of this.waiters.get(h.id) ?? []) w(s);
    this.waiters.delete(h.id);
    try {
      await s.grpc.closed;
    } finally {
      this.sessions.delete(h.id);
    }
  }

  /**
   * The session `id`, waiting up to `ms` for it to open (a client may start the build before its
   * session's upgrade has landed, as the docker CLI does).
   */
  async get(id: string, ms: number, signal: AbortSignal): Promise<Session> {
    const s = this.sessions.get(id);
    if (s) return s;
    return new Promise((resolve, reject) => {
      const list = this.waiters.get(id) ?? [];
      const done = (v: Session) => {
        clearTimeout(t);
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      };
      const drop = () => {
        const l = (this.waiters.get(id) ?? []).filter((w) => w !== done);
        if (l.length) this.waiters.set(id, l);
        else this.waiters.delete(id);
      };
      const onAbort = () => {
        clearTimeout(t);
        drop();
        reject(unavailable(`no active session for ${id}: the client went away`));
      };
      const t = setTimeout(() => {
        signal.removeEventListener('abort', onAbort);
        drop();
        reject(unavailable(`no active session for ${id}: context deadline exceeded`));
      }, ms);
      signal.addEventListener('abort', onAbort, { once: true });
      list.push(done);
      this.waiters.set(id, list);
    });
  }
}
