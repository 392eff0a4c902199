/**
 * BuildKit's API as dockerd serves it (issue #16): `POST /session` (a client's session, served by
 * ../buildkit/session.ts) and `POST /build?version=2` (the `dockerfile.v0` frontend run by berth's
 * own builder; progress as BuildKit Status messages; secrets fetched through the session). The
 * engine emits the `tag` events of the build's names, as for the legacy builder.
 */
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { Readable, type Duplex } from 'node:stream';
import type { Clock } from '../base/clock.js';
import { alreadyExists, errorMessage, invalidArgument, notImplemented } from '../base/errors.js';
import type { Builder, BuildRequest } from '../builder/builder.js';
import { SessionManager, type Session, type SessionHeaders } from '../buildkit/session.js';
import { registryHosts, secretIds, withSecrets } from '../buildkit/secrets.js';
import { parseReference } from '../image/reference.js';
import { registryHostOf } from '../spec/distribution.js';
import { sessionContext } from '../buildkit/filesync.js';
import { sessionSshAgents } from '../buildkit/sshforward.js';
import { exportToClient, type ExportType } from '../buildkit/export.js';
import { Trace } from '../buildkit/trace.js';
import { ProgressBoard, serveControl, type SolveRequest, type UsageRecord } from '../buildkit/control.js';
import { FILE_SEND, timestamp } from '../buildkit/protos.js';
import { GrpcError } from '../buildkit/grpc-client.js';
import { GRPC_SERVER } from '../buildkit/grpc-server.js';
import type { Credentials, ImageRecord } from './images.js';
import type { Engine } from './engine.js';

export type { SessionHeaders };

/** A BuildKit build: the legacy request without secrets (they come through the session). */
export type BuildKitRequest = Omit<BuildRequest, 'secrets'> & {
  /** `session`: the id of the client's `POST /session`, '' for none */
  session: string;
  /** `remote=client-session`: the context and Dockerfile come through the session, not the body */
  contextFromSession: boolean;
  /** the `local`/`tar` exporters: the image's root filesystem sent to the client through its session */
  exports?: ExportType[];
};

/** How long a build waits for its session to open (BuildKit's session manager waits as well). */
const SESSION_WAIT_MS = 5_000;

export class BuildKitVerbs {
  private readonly sessions = new SessionManager();
  private readonly board = new ProgressBoard();

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
    const exports = req.exports ?? [];
    if (exports.length && !session)
      throw invalidArgument(`exporter ${exports[0]} needs a session: the files go to the client through it`);
    if (exports.length && session && !session.supports(FILE_SEND.path))
      throw invalidArgument('method /moby.filesync.v1.FileSend/diffcopy not supported by the client');
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
      const { session: _s, contextFromSession: _c, exports: _x, ...rest } = req;
      const img = await this.builder.buildFromTar(
        context,
        {
          ...rest,
          dockerfile,
          secrets,
          credentials,
          signal: abort.signal,
          ...(session ? { ssh: sessionSshAgents(session) } : {}),
        },
        t.output(),
      );
      for (const type of exports) {
        // BuildKit's vertex names for these exporters
        const v = t.vertex(type === 'tar' ? 'sending tarball' : 'exporting to client directory');
        try {
          await this.builder.withRootfs(img, (dir) => exportToClient(session!, type, dir, abort.signal));
        } catch (e) {
          v.done(errorMessage(e));
          throw e;
        }
        v.done();
      }
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

  /**
   * Serves moby.buildkit.v1.Control on the upgraded `POST /grpc` connection until it ends (the
   * client is the gRPC client; dockerd serves the same there for buildx).
   */
  control(conn: Duplex): Promise<void> {
    return serveControl(conn, {
      listWorkers: () => [
        {
          ID: 'moby', // dockerd 20.10's one worker (its Labels are empty; BuildKit's own are these)
          Labels: {
            'org.mobyproject.buildkit.worker.executor': 'oci',
            'org.mobyproject.buildkit.worker.snapshotter': 'overlayfs',
            'org.mobyproject.buildkit.worker.hostname': hostname(),
            'org.mobyproject.buildkit.worker.network': 'host',
          },
          platforms: [{ Architecture: 'amd64', OS: 'linux' }],
          GCPolicy: [],
          BuildkitVersion: { package: 'berth', version: '', revision: '' },
        },
      ],
      solve: (req, signal) => this.solve(req, signal),
      status: (ref, send, signal) => this.board.follow(ref, send, signal),
      diskUsage: async () => this.cacheRecords(),
      prune: async (req, send) => {
        if (req.filter.length) throw notImplemented('prune filters are not supported');
        const before = this.cacheRecords();
        // keepDuration: a Go time.Duration (nanoseconds); keepBytes is not honoured (no sizes per entry)
        const keep = req.keepDuration > 0 ? new Date(this.clock.now() - req.keepDuration / 1e6) : undefined;
        await this.builder.prune(keep);
        const left = new Set(this.cacheRecords().map((r) => r.ID));
        for (const r of before) if (!left.has(r.ID)) send(r);
      },
    });
  }

  /** The build cache's entries as BuildKit UsageRecords (berth keeps no sizes per entry: 0). */
  private cacheRecords(): UsageRecord[] {
    return this.builder.cache.entries().map((e) => ({
      ID: e.key.replace(/^sha256:/, '').slice(0, 25),
      Mutable: false,
      InUse: false,
      Size: 0,
      CreatedAt: timestamp(Date.parse(e.created)),
      LastUsedAt: timestamp(Date.parse(e.lastUsed)),
      UsageCount: 1,
      Description: 'berth build step ' + e.key,
      RecordType: 'regular',
      Shared: false,
      Parents: [],
    }));
  }

  /**
   * Control.Solve: the dockerfile.v0 frontend on a session's `context`/`dockerfile` dirs, the
   * image exporter (`image`/`moby`, its `name` attr the tags). Answers the ExporterResponse.
   */
  private async solve(r: SolveRequest, signal: AbortSignal): Promise<Record<string, string>> {
    if (r.Frontend !== 'dockerfile.v0')
      throw notImplemented(
        r.Frontend
          ? `frontend ${r.Frontend} is not supported: berth serves dockerfile.v0`
          : 'solving an LLB definition is not supported: berth serves the dockerfile.v0 frontend',
      );
    if (!r.Session) throw invalidArgument('Solve needs a session (the context comes through it)');
    const exporters = r.Exporters.length
      ? r.Exporters
      : r.Exporter
        ? [{ Type: r.Exporter, Attrs: r.ExporterAttrs }]
        : [];
    const tags: string[] = [];
    const toClient: ExportType[] = [];
    let toImage = exporters.length === 0; // no exporter: build only, the image id answered as before
    for (const x of exporters) {
      if (x.Type === 'local' || x.Type === 'tar') {
        toClient.push(x.Type);
        continue;
      }
      if (x.Type !== 'image' && x.Type !== 'moby')
        throw notImplemented(
          `exporter ${x.Type} is not supported: berth exports to its image store (image, moby) ` +
            'and to the client (local, tar)',
        );
      toImage = true;
      if (/^(1|true)$/i.test(x.Attrs['push'] ?? ''))
        throw notImplemented('push=true is not supported: push the image after the build');
      // a bad name fails the Solve before anything runs
      for (const n of (x.Attrs['name'] ?? '').split(',').map((t) => t.trim())) if (n) tags.push(parseReference(n) && n);
    }
    const a = r.FrontendAttrs;
    const platform = a['platform'] || 'linux/amd64';
    if (!/^linux(\/amd64)?$/.test(platform))
      throw invalidArgument(`platform ${platform} is not supported: this host builds linux/amd64`);
    const network = a['force-network-mode'] || 'default';
    if (!['default', 'host', 'none', 'sandbox'].includes(network))
      throw invalidArgument(`network mode ${network} is not supported for builds (default, host, none)`);
    const pick = (prefix: string) =>
      Object.fromEntries(
        Object.entries(a)
          .filter(([k]) => k.startsWith(prefix))
          .map(([k, v]) => [k.slice(prefix.length), v]),
      );
    const ref = r.Ref || randomUUID();
    if (this.board.has(ref)) throw alreadyExists(`a build with ref ${ref} is already running`);
    const progress = this.board.open(ref);
    try {
      const img = await this.build(
        Readable.from([]),
        {
          dockerfile: a['filename'] || 'Dockerfile',
          tags,
          buildArgs: pick('build-arg:'),
          target: a['target'] ?? '',
          noCache: 'no-cache' in a, // '' = every stage; berth cannot skip the cache of some stages only
          pull: a['image-resolve-mode'] === 'pull',
          labels: pick('label:'),
          cacheFrom: (a['cache-from'] ?? '').split(',').filter(Boolean),
          platform: 'linux/amd64',
          network: network === 'sandbox' ? 'default' : (network as BuildKitRequest['network']),
          credentials: () => null,
          signal,
          session: r.Session,
          contextFromSession: true,
          exports: toClient,
        },
        progress.publish,
      ).catch((e: unknown) => {
        if (signal.aborted) throw e;
        // dockerd 20.10: UNKNOWN "failed to solve with frontend dockerfile.v0: failed to read dockerfile:
        // no active session for X: context deadline exceeded"
        const msg = errorMessage(e);
        const where = /^no active session|^session directory/.test(msg) ? 'failed to read dockerfile: ' : '';
        throw new GrpcError(GRPC_SERVER.UNKNOWN, `failed to solve with frontend dockerfile.v0: ${where}${msg}`);
      });
      // the local and tar exporters answer nothing (BuildKit's)
      if (!toImage) return {};
      return {
        'containerimage.digest': img.id,
        'containerimage.config.digest': img.id,
        ...(tags.length ? { 'image.name': tags.join(',') } : {}),
      };
    } finally {
      progress.close();
    }
  }
}
