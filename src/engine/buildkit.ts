/**
 * BuildKit's API as dockerd serves it (issue #16): `POST /session` (a client's session, served by
 * ../buildkit/session.ts) and `POST /build?version=2` (the `dockerfile.v0` frontend run by berth's
 * own builder; progress as BuildKit Status messages; secrets fetched through the session). The
 * engine emits the `tag` events of the build's names, as for the legacy builder.
 */
import type { Duplex, Readable } from 'node:stream';
import type { Clock } from '../base/clock.js';
import { errorMessage, invalidArgument } from '../base/errors.js';
import type { Builder, BuildRequest } from '../builder/builder.js';
import { SessionManager, type Session, type SessionHeaders } from '../buildkit/session.js';
import { registryHosts, secretIds, withSecrets } from '../buildkit/secrets.js';
import { parseReference } from '../image/reference.js';
import { registryHostOf } from '../spec/distribution.js';
import { sessionContext } from '../buildkit/filesync.js';
import { Trace } from '../buildkit/trace.js';
import type { Credentials, ImageRecord } from './images.js';
import type { Engine } from './engine.js';

export type { SessionHeaders };

/** A BuildKit build: the legacy request without secrets (they come through the session). */
export type BuildKitRequest = Omit<BuildRequest, 'secrets'> & {
  /** `session`: the id of the client's `POST /session`, '' for none */
  session: string;
  /** `remote=client-session`: the context and Dockerfile come through the session, not the body */
  contextFromSession: boolean;
};

/** How long a build waits for its session to open (BuildKit's session manager waits as well). */
const SESSION_WAIT_MS = 5_000;

export class BuildKitVerbs {
  private readonly sessions = new SessionManager();

  constructor(
    private readonly e: Engine,
    private readonly builder: Builder,
    private readonly clock: Clock,
  ) {}

  /** Refuses a bad `POST /session` before its connection is taken over (4xx instead of a 101). */
  checkSession(h: SessionHeaders): void {
    this.sessions.check(h);
  }

  /** Serves a session on its upgraded connection until the client closes it. */
  session(h: SessionHeaders, conn: Duplex): Promise<void> {
    return this.sessions.serve(h, conn);
  }

  /**
   * Builds the context tar `body` with berth's builder; `trace` gets each StatusResponse message
   * (protobuf bytes). A session that closes mid-build, or `req.signal`, cancels the build.
   */
  async build(body: Readable, req: BuildKitRequest, trace: (status: Buffer) => void): Promise<ImageRecord> {
    if (req.session && !/^[A-Za-z0-9._:-]{1,128}$/.test(req.session)) throw invalidArgument('invalid session id');
    const session: Session | null = req.session
      ? await this.sessions.get(req.session, SESSION_WAIT_MS, req.signal)
      : null;
    const abort = new AbortController();
    const stop = () => abort.abort(new Error('the client went away'));
    if (req.signal.aborted) stop();
    req.signal.addEventListener('abort', stop, { once: true });
    void session?.grpc.closed.then(stop);
    const t = new Trace(this.clock, trace);
    const secrets: Record<string, Buffer> = {};
    /** registry credentials the session's Auth service lent, by host (dockerode's `authconfig`) */
    const lent = new Map<string, Credentials>();
    const credentials = (ref: string): Credentials | null =>
      req.credentials(ref) ?? lent.get(registryHostOf(parseReference(ref).name) ?? 'registry-1.docker.io') ?? null;
    let tar = body;
    let dockerfile = req.dockerfile || 'Dockerfile';
    if (req.contextFromSession) {
      if (!session) throw invalidArgument('remote=client-session needs a session: open POST /session first');
      body.resume();
      const def = t.vertex(`[internal] load build definition from ${dockerfile}`);
      try {
        ({ tar, dockerfile } = await sessionContext(session, dockerfile, abort.signal));
      } catch (e) {
        def.done(errorMessage(e));
        throw e;
      }
      def.done();
    }
    const load = t.vertex('[internal] load build context');
    const context = withSecrets(tar, dockerfile, async (text) => {
      if (text !== null && session) {
        for (const id of secretIds(text, dockerfile)) {
          const data = await session.secret(id, abort.signal);
          if (data) secrets[id] = data;
        }
        for (const host of registryHosts(text, dockerfile)) {
          const c = await session.credentials(host, abort.signal);
          if (c) lent.set(host, c);
        }
      }
      load.done();
    });
    try {
      const { session: _s, contextFromSession: _c, ...rest } = req;
      const img = await this.builder.buildFromTar(
        context,
        { ...rest, dockerfile, secrets, credentials, signal: abort.signal },
        t.output(),
      );
      t.finish();
      for (const tag of req.tags) this.e.events.emit('image', 'tag', img.id, { name: tag });
      return img;
    } catch (e) {
      body.resume(); // drain what the client still sends
      t.fail(errorMessage(e));
      throw e;
    } finally {
      req.signal.removeEventListener('abort', stop);
      for (const k of Object.keys(secrets)) secrets[k]!.fill(0);
    }
  }
}
