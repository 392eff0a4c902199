/**
 * BuildKit's control API on `POST /grpc` (issue #16), against a real berthd: the client upgrades
 * the Engine API connection to h2c and is the gRPC client of moby.buildkit.v1.Control (as buildx is
 * of dockerd's). The client here speaks gRPC with node:http2 and the same .proto files (proto-loader
 * codecs): 5-byte framed messages, `content-type: application/grpc`, `grpc-status` trailers. The
 * context and Dockerfile come through a session the test opens on `/session` serving FileSync
 * DiffCopy (an fsutil sender), as buildx's `context`/`dockerfile` local dirs.
 *
 * dockerd 20.10 serves the same methods there (buildx's `docker buildx du`, `prune`, `build`); its
 * ListWorkers names one worker with org.mobyproject.buildkit.worker.executor / snapshotter labels
 * and platform linux/amd64.
 */
import { before, after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { connect, constants, type ClientHttp2Session } from 'node:http2';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import Docker from 'dockerode';
import * as grpc from '@grpc/grpc-js';
import { loadSync, type MethodDefinition } from '@grpc/proto-loader';
import { REPO, startDaemon, type Daemon } from './harness.js';
import { decodeStatus, type StatusResponse } from '../../src/buildkit/protos.js';
import { fsutilSend, type SenderPacket } from './fsutil-sender.js';

const PROTO_DIR = join(REPO, 'src/buildkit/proto');
const control = loadSync('control.proto', {
  includeDirs: [PROTO_DIR],
  keepCase: true,
  longs: Number,
  enums: String,
  defaults: true,
})['moby.buildkit.v1.Control'] as unknown as Record<string, MethodDefinition<object, object>>;

interface CallResult {
  status: number;
  message: string;
  messages: Buffer[];
  headers: Record<string, unknown>;
}

function frame(msg: Buffer): Buffer {
  const h = Buffer.alloc(5);
  h.writeUInt32BE(msg.length, 1);
  return Buffer.concat([h, msg]);
}

/** One gRPC call on the `/grpc` connection (unary or server-streaming); `onMessage` sees each message. */
function rpc(
  h2: ClientHttp2Session,
  path: string,
  req: Buffer,
  onMessage: (m: Buffer) => void = () => undefined,
  signal?: AbortSignal,
  extra: Record<string, string> = {},
): Promise<CallResult> {
  return new Promise((resolve, reject) => {
    const s = h2.request({
      [constants.HTTP2_HEADER_METHOD]: 'POST',
      [constants.HTTP2_HEADER_PATH]: path,
      [constants.HTTP2_HEADER_CONTENT_TYPE]: 'application/grpc',
      te: 'trailers',
      ...extra,
    });
    signal?.addEventListener('abort', () => s.close(constants.NGHTTP2_CANCEL), { once: true });
    const out: CallResult = { status: -1, message: '', messages: [], headers: {} };
    let buf = Buffer.alloc(0);
    const take = (h: Record<string, unknown>) => {
      if (h['grpc-status'] !== undefined) {
        out.status = Number(h['grpc-status']);
        out.message = decodeURIComponent(String(h['grpc-message'] ?? ''));
      }
    };
    s.on('response', (h) => {
      out.headers = h;
      take(h);
    });
    s.on('trailers', take);
    s.on('data', (c: Buffer) => {
      buf = Buffer.concat([buf, c]);
      while (buf.length >= 5 && buf.length >= 5 + buf.readUInt32BE(1)) {
        const m = buf.subarray(5, 5 + buf.readUInt32BE(1));
        buf = buf.subarray(5 + m.length);
        out.messages.push(m);
        onMessage(m);
      }
    });
    s.on('close', () => resolve(out));
    s.on('error', reject);
    s.end(frame(req));
  });
}

const enc = (method: string, req: object) => control[method]!.requestSerialize(req);
const dec = <T>(method: string, b: Buffer) => control[method]!.responseDeserialize(b) as T;

describe('BuildKit control API on POST /grpc', () => {
  let d: Daemon;
  let docker: Docker;
  const dirs: string[] = [];
  const closers: Array<() => void> = [];
  before(async () => {
    d = await startDaemon();
    docker = new Docker({ socketPath: d.sock });
  });
  after(async () => {
    for (const c of closers) c();
    for (const x of dirs) rmSync(x, { recursive: true, force: true });
    await d?.stop();
  });

  /** An h2c-upgraded Engine API connection (`POST path`, `Upgrade: h2c`). */
  function upgrade(path: string, headers: Record<string, string | string[]> = {}): Promise<Duplex> {
    return new Promise<Duplex>((res, rej) =>
      docker.modem.dial(
        { method: 'POST', path, hijack: true, headers: { Upgrade: 'h2c', ...headers }, statusCodes: { 101: true } },
        (err: unknown, s: unknown) => (err ? rej(err) : res(s as Duplex)),
      ),
    );
  }

  async function controlClient(): Promise<ClientHttp2Session> {
    const socket = await upgrade('/grpc');
    const h2 = connect('http://localhost', { createConnection: () => socket as never });
    h2.on('error', () => undefined);
    closers.push(() => h2.destroy());
    return h2;
  }

  /** A session serving FileSync with the `context` and `dockerfile` dirs, as buildx opens one. */
  async function openSession(
    syncDirs: Record<string, string>,
    ssh?: { forwarded: Buffer[]; ids: string[] },
    tarOut?: { chunks: Buffer[]; done: Promise<void>; end: () => void },
  ): Promise<{ id: string; synced: string[] }> {
    const id = randomUUID();
    const synced: string[] = [];
    const socket = await upgrade('/session', {
      'X-Docker-Expose-Session-Uuid': id,
      'X-Docker-Expose-Session-Name': 'berth-grpc-test',
      'X-Docker-Expose-Session-Sharedkey': 'k',
      'X-Docker-Expose-Session-Grpc-Method': [
        '/moby.filesync.v1.FileSync/DiffCopy',
        ...(ssh ? ['/moby.sshforward.v1.SSH/CheckAgent', '/moby.sshforward.v1.SSH/ForwardAgent'] : []),
        ...(tarOut ? ['/moby.filesync.v1.FileSend/DiffCopy'] : []),
      ],
    });
    const server = new grpc.Server();
    server.createConnectionInjector(grpc.ServerCredentials.createInsecure()).injectConnection(socket);
    const fs = grpc.loadPackageDefinition(
      loadSync('filesync.proto', { includeDirs: [PROTO_DIR], enums: String, longs: Number, keepCase: true }),
    ) as unknown as { moby: { filesync: { v1: { FileSync: { service: grpc.ServiceDefinition } } } } };
    server.addService(fs.moby.filesync.v1.FileSync.service, {
      DiffCopy: (call: grpc.ServerDuplexStream<SenderPacket, SenderPacket>) => {
        const dir = String(call.metadata.get('dir-name')[0] ?? '');
        synced.push(dir);
        fsutilSend(call, syncDirs[dir]);
      },
    });
    if (tarOut) {
      // FileSend as the tar exporter uses it: BytesMessage chunks (field 1, bytes), then a half-close
      const bytes = loadSync('sshforward.proto', { includeDirs: [PROTO_DIR], keepCase: true })[
        'moby.sshforward.v1.SSH'
      ] as unknown as Record<string, MethodDefinition<object, object>>;
      const raw = (b: Buffer) => b;
      server.addService(
        {
          DiffCopy: {
            path: '/moby.filesync.v1.FileSend/DiffCopy',
            requestStream: true,
            responseStream: true,
            requestSerialize: raw,
            requestDeserialize: raw,
            responseSerialize: raw,
            responseDeserialize: raw,
            originalName: 'DiffCopy',
          },
        } as unknown as grpc.ServiceDefinition,
        {
          DiffCopy: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
            call.on('data', (b: Buffer) =>
              tarOut.chunks.push(Buffer.from((bytes['ForwardAgent']!.requestDeserialize(b) as { data: Buffer }).data)),
            );
            call.on('end', () => {
              call.end();
              tarOut.end();
            });
          },
        },
      );
    }
    if (ssh) {
      const pkg = grpc.loadPackageDefinition(
        loadSync('sshforward.proto', { includeDirs: [PROTO_DIR], keepCase: true, longs: Number, enums: String }),
      ) as unknown as { moby: { sshforward: { v1: { SSH: { service: grpc.ServiceDefinition } } } } };
      server.addService(pkg.moby.sshforward.v1.SSH.service, {
        CheckAgent: (_call: grpc.ServerUnaryCall<{ ID: string }, object>, cb: grpc.sendUnaryData<object>) =>
          cb(null, {}),
        // an agent holding no keys: every request answered SSH2_AGENT_IDENTITIES_ANSWER with 0 keys
        ForwardAgent: (call: grpc.ServerDuplexStream<{ data: Buffer }, { data: Buffer }>) => {
          ssh.ids.push(String(call.metadata.get('buildkit.ssh.id')[0] ?? ''));
          call.on('data', (m: { data: Buffer }) => {
            ssh.forwarded.push(Buffer.from(m.data));
            call.write({ data: Buffer.from([0, 0, 0, 5, 12, 0, 0, 0, 0]) });
          });
          call.on('end', () => call.end());
        },
      });
    }
    closers.push(() => {
      server.forceShutdown();
      socket.destroy();
    });
    return { id, synced };
  }

  test('ListWorkers names one linux/amd64 worker with its executor and snapshotter labels', async () => {
    const h2 = await controlClient();
    const r = await rpc(h2, '/moby.buildkit.v1.Control/ListWorkers', enc('ListWorkers', { filter: [] }));
    assert.equal(r.status, 0, r.message);
    assert.equal(r.headers['content-type'], 'application/grpc');
    const w = dec<{
      record: Array<{
        ID: string;
        Labels: Record<string, string>;
        platforms: Array<{ OS: string; Architecture: string }>;
      }>;
    }>('ListWorkers', r.messages[0]!);
    assert.equal(w.record.length, 1);
    // dockerd 20.10: ID "moby", linux/amd64 and linux/386, no labels
    assert.equal(w.record[0]!.ID, 'moby');
    assert.deepEqual(
      w.record[0]!.platforms.map((p) => `${p.OS}/${p.Architecture}`),
      ['linux/amd64'],
    );
    assert.equal(w.record[0]!.Labels['org.mobyproject.buildkit.worker.snapshotter'], 'overlayfs');
    assert.ok(w.record[0]!.Labels['org.mobyproject.buildkit.worker.executor']);
  });

  test('Solve (dockerfile.v0, a target and a build-arg) with Status followed to the end; the image runs', async () => {
    const ctx = mkdtempSync('/var/tmp/berth-bkg-ctx-');
    dirs.push(ctx);
    writeFileSync(
      join(ctx, 'Dockerfile'),
      [
        'FROM busybox AS base',
        'ARG GREETING=unset',
        'COPY hello.txt /hello.txt',
        'COPY . /ctx/',
        'RUN echo "$GREETING $(cat /hello.txt)" > /out && echo built-step-log',
        'FROM base AS final',
        'RUN echo never > /final',
        '',
      ].join('\n'),
    );
    writeFileSync(join(ctx, 'hello.txt'), 'from-the-session\n');
    writeFileSync(join(ctx, 'ignored.txt'), 'keep me out\n');
    writeFileSync(join(ctx, '.dockerignore'), 'ignored.txt\n');
    const s = await openSession({ context: ctx, dockerfile: ctx });
    const h2 = await controlClient();
    const ref = randomUUID();
    const statuses: StatusResponse[] = [];
    // buildx calls Status and Solve at once; Status first here, so it has to wait for the Ref
    const status = rpc(h2, '/moby.buildkit.v1.Control/Status', enc('Status', { Ref: ref }), (m) =>
      statuses.push(decodeStatus(m)),
    );
    const tag = 'bkgrpc/solved:1';
    const r = await rpc(
      h2,
      '/moby.buildkit.v1.Control/Solve',
      enc('Solve', {
        Ref: ref,
        Session: s.id,
        Frontend: 'dockerfile.v0',
        FrontendAttrs: { filename: 'Dockerfile', target: 'base', 'build-arg:GREETING': 'hi', 'label:who': 'grpc' },
        Exporters: [{ Type: 'moby', Attrs: { name: tag } }],
      }),
    );
    assert.equal(r.status, 0, r.message);
    const resp = dec<{ ExporterResponse: Record<string, string> }>('Solve', r.messages[0]!).ExporterResponse;
    assert.match(resp['containerimage.digest'] ?? '', /^sha256:[0-9a-f]{64}$/);
    assert.equal(resp['image.name'], tag);
    const st = await status;
    assert.equal(st.status, 0, st.message);
    const names = [...new Set(statuses.flatMap((x) => x.vertexes.map((v) => v.name)))];
    assert.ok(
      names.some((n) => n.includes('RUN echo "$GREETING')),
      names.join('\n'),
    );
    assert.ok(!names.some((n) => n.includes('never')), 'the target stops before the final stage');
    assert.ok(
      statuses.flatMap((x) => x.logs).some((l) => Buffer.from(l.msg).toString().includes('built-step-log')),
      'the RUN output comes as a vertex log',
    );
    // every vertex that started completed
    const completed = new Set(statuses.flatMap((x) => x.vertexes.filter((v) => v.completed).map((v) => v.digest)));
    for (const x of statuses) for (const v of x.vertexes) assert.ok(completed.has(v.digest), v.name);
    // the Dockerfile, the context's .dockerignore alone, then the context
    assert.deepEqual(s.synced, ['dockerfile', 'context', 'context']);
    const run = await d.docker(['run', '--rm', tag, 'cat', '/out']);
    assert.equal(run.stdout.trim(), 'hi from-the-session');
    const listing = (await d.docker(['run', '--rm', tag, 'ls', '-A', '/ctx'])).stdout.split('\n').filter(Boolean);
    assert.ok(listing.includes('hello.txt') && listing.includes('Dockerfile'), listing.join(','));
    assert.ok(!listing.includes('ignored.txt'), `.dockerignore not applied: ${listing.join(',')}`);
    const insp = await d.docker(['image', 'inspect', '-f', '{{.Id}} {{index .Config.Labels "who"}}', tag]);
    assert.equal(insp.stdout.trim(), `${resp['containerimage.digest']} grpc`);
  });

  test('Solve with RUN --mount=type=ssh: the agent requests go through the session', async () => {
    const ctx = mkdtempSync('/var/tmp/berth-bkg-ctx-');
    dirs.push(ctx);
    // the host's ssh-add with its libraries and loader (busybox has no agent client)
    mkdirSync(join(ctx, 'sshbin'));
    copyFileSync('/usr/bin/ssh-add', join(ctx, 'sshbin/ssh-add'));
    for (const line of execFileSync('ldd', ['/usr/bin/ssh-add']).toString().split('\n')) {
      const m = /(\/\S+)\s+\(0x/.exec(line);
      if (m) copyFileSync(m[1]!, join(ctx, 'sshbin', basename(m[1]!)));
    }
    copyFileSync('/lib64/ld-linux-x86-64.so.2', join(ctx, 'sshbin/ld.so'));
    writeFileSync(
      join(ctx, 'Dockerfile'),
      'FROM busybox\nCOPY sshbin /sshbin\n' +
        'RUN --mount=type=ssh,id=work,required=true ' +
        '/sshbin/ld.so --library-path /sshbin /sshbin/ssh-add -L > /out 2>&1; echo rc=$? >> /out\n',
    );
    const ssh = { forwarded: [] as Buffer[], ids: [] as string[] };
    const s = await openSession({ context: ctx, dockerfile: ctx }, ssh);
    const h2 = await controlClient();
    const r = await rpc(
      h2,
      '/moby.buildkit.v1.Control/Solve',
      enc('Solve', {
        Ref: randomUUID(),
        Session: s.id,
        Frontend: 'dockerfile.v0',
        FrontendAttrs: { filename: 'Dockerfile' },
        Exporters: [{ Type: 'moby', Attrs: { name: 'bkgrpc/ssh:1' } }],
      }),
    );
    assert.equal(r.status, 0, r.message);
    assert.deepEqual(ssh.ids, ['work']);
    assert.deepEqual([...Buffer.concat(ssh.forwarded)], [0, 0, 0, 1, 11]); // REQUEST_IDENTITIES
    const out = (await d.docker(['run', '--rm', 'bkgrpc/ssh:1', 'cat', '/out'])).stdout;
    // ssh-add read the session's answer: an agent with no identities (exit 1)
    assert.equal(out, 'The agent has no identities.\nrc=1\n');
  });

  test('Solve with the tar exporter: the image root goes to the session, no image is answered', async () => {
    const ctx = mkdtempSync('/var/tmp/berth-bkg-ctx-');
    dirs.push(ctx);
    writeFileSync(join(ctx, 'Dockerfile'), 'FROM busybox\nRUN echo exported > /result.txt\n');
    let end!: () => void;
    const tarOut = { chunks: [] as Buffer[], done: new Promise<void>((r) => (end = r)), end: () => end() };
    const s = await openSession({ context: ctx, dockerfile: ctx }, undefined, tarOut);
    const h2 = await controlClient();
    const r = await rpc(
      h2,
      '/moby.buildkit.v1.Control/Solve',
      enc('Solve', {
        Ref: randomUUID(),
        Session: s.id,
        Frontend: 'dockerfile.v0',
        FrontendAttrs: { filename: 'Dockerfile' },
        // the deprecated single-exporter fields, as older buildx sends them
        Exporter: 'tar',
        ExporterAttrs: { dest: 'ignored-by-the-daemon' },
      }),
    );
    assert.equal(r.status, 0, r.message);
    await tarOut.done;
    // BuildKit's tar exporter answers no image
    assert.deepEqual(dec<{ ExporterResponse: Record<string, string> }>('Solve', r.messages[0]!).ExporterResponse, {});
    const tar = Buffer.concat(tarOut.chunks);
    const at = tar.indexOf('result.txt');
    assert.ok(at >= 0 && at < 512 * 10_000, 'result.txt is in the tar');
    assert.ok(tar.includes('exported\n'));
    assert.equal(tar.length % 512, 0);
  });

  test('DiskUsage lists the build cache, Prune streams what it removed and empties it', async () => {
    const h2 = await controlClient();
    const du = await rpc(h2, '/moby.buildkit.v1.Control/DiskUsage', enc('DiskUsage', { filter: [] }));
    assert.equal(du.status, 0, du.message);
    type Rec = { ID: string; RecordType: string; CreatedAt: { seconds: number } | null };
    const before = dec<{ record: Rec[] }>('DiskUsage', du.messages[0] ?? Buffer.alloc(0)).record;
    assert.ok(before.length > 0, 'the Solve above left build cache records');
    assert.ok(before.every((x) => x.ID && x.CreatedAt && x.CreatedAt.seconds > 0));
    // keepDuration 1h (nanoseconds): the entries were used just now, nothing goes
    const kept = await rpc(h2, '/moby.buildkit.v1.Control/Prune', enc('Prune', { keepDuration: 3600e9 }));
    assert.equal(kept.status, 0, kept.message);
    assert.equal(kept.messages.length, 0);
    const du1 = await rpc(h2, '/moby.buildkit.v1.Control/DiskUsage', enc('DiskUsage', { filter: [] }));
    assert.equal(dec<{ record: Rec[] }>('DiskUsage', du1.messages[0]!).record.length, before.length);
    const filtered = await rpc(h2, '/moby.buildkit.v1.Control/Prune', enc('Prune', { filter: ['type==regular'] }));
    assert.equal(filtered.status, 12);
    const pr = await rpc(h2, '/moby.buildkit.v1.Control/Prune', enc('Prune', { all: true }));
    assert.equal(pr.status, 0, pr.message);
    const gone = pr.messages.map((m) => dec<Rec>('Prune', m).ID);
    assert.deepEqual(gone.sort(), before.map((x) => x.ID).sort());
    const du2 = await rpc(h2, '/moby.buildkit.v1.Control/DiskUsage', enc('DiskUsage', { filter: [] }));
    assert.equal(du2.status, 0);
    assert.deepEqual(dec<{ record: Rec[] }>('DiskUsage', du2.messages[0] ?? Buffer.alloc(0)).record, []);
  });

  test('unknown methods: UNIMPLEMENTED; a Solve with an unknown session fails, the daemon goes on', async () => {
    const h2 = await controlClient();
    const info = await rpc(h2, '/moby.buildkit.v1.Control/Info', Buffer.alloc(0));
    // dockerd 20.10: 12 "unknown method Info for service moby.buildkit.v1.Control"
    assert.equal(info.status, 12);
    assert.match(info.message, /^unknown method Info for service moby\.buildkit\.v1\.Control/);
    const other = await rpc(h2, '/no.such.Service/Nothing', Buffer.alloc(0));
    // dockerd 20.10: 12 "unknown service no.such.Service"
    assert.equal(other.status, 12);
    assert.equal(other.message, 'unknown service no.such.Service');
    const llb = await rpc(h2, '/moby.buildkit.v1.Control/Solve', enc('Solve', { Ref: 'x', Session: 'y' }));
    assert.equal(llb.status, 12, 'an LLB Solve (no frontend) is not served');
    assert.match(llb.message, /dockerfile\.v0/);
    const t0 = Date.now();
    const bad = await rpc(
      h2,
      '/moby.buildkit.v1.Control/Solve',
      enc('Solve', { Ref: randomUUID(), Session: 'no-such-session', Frontend: 'dockerfile.v0', FrontendAttrs: {} }),
    );
    // dockerd 20.10: 2 "failed to solve with frontend dockerfile.v0: failed to read dockerfile:
    // no active session for no-such: context deadline exceeded"
    assert.equal(bad.status, 2, bad.message);
    assert.equal(
      bad.message,
      'failed to solve with frontend dockerfile.v0: failed to read dockerfile: ' +
        'no active session for no-such-session: context deadline exceeded',
    );
    assert.ok(Date.now() - t0 < 20_000);
    const exp = await rpc(
      h2,
      '/moby.buildkit.v1.Control/Solve',
      enc('Solve', { Session: 'z', Frontend: 'dockerfile.v0', Exporters: [{ Type: 'oci', Attrs: {} }] }),
    );
    assert.equal(exp.status, 12);
    assert.match(exp.message, /exporter oci/);
    // grpc-timeout: a Status for a Ref no Solve starts ends at its deadline
    const t1 = Date.now();
    const late = await rpc(
      h2,
      '/moby.buildkit.v1.Control/Status',
      enc('Status', { Ref: 'never-solved' }),
      () => undefined,
      undefined,
      { 'grpc-timeout': '1500m' },
    );
    assert.equal(late.status, 4, late.message); // DEADLINE_EXCEEDED
    assert.ok(Date.now() - t1 >= 1400 && Date.now() - t1 < 10_000, `${Date.now() - t1} ms`);
    // the same connection and the daemon still answer
    const w = await rpc(h2, '/moby.buildkit.v1.Control/ListWorkers', enc('ListWorkers', {}));
    assert.equal(w.status, 0);
    assert.equal((await d.docker(['version', '--format', '{{.Server.Os}}'])).stdout.trim(), 'linux');
  });

  test('bad requests on /grpc get gRPC errors and leave the daemon answering', async () => {
    const h2 = await controlClient();
    // a request body that is not a ListWorkersRequest: INTERNAL (grpc-go's unmarshalling error)
    const junk = await rpc(h2, '/moby.buildkit.v1.Control/ListWorkers', Buffer.from([0x0b]));
    assert.equal(junk.status, 13, junk.message);
    // not gRPC at all: HTTP 415, as grpc-go answers a wrong content-type
    const plain = await new Promise<number>((resolve) => {
      const s = h2.request({ ':method': 'POST', ':path': '/moby.buildkit.v1.Control/ListWorkers' });
      s.on('response', (h) => resolve(Number(h[':status'])));
      s.on('error', () => resolve(-1));
      s.end('hello');
    });
    assert.equal(plain, 415);
    // garbage instead of the HTTP/2 preface: the connection ends, the daemon does not
    const raw = await upgrade('/grpc');
    await new Promise<void>((resolve) => {
      raw.on('close', () => resolve());
      raw.on('error', () => undefined);
      raw.resume();
      raw.write('this is not http/2\r\n\r\n'.repeat(10));
    });
    const w = await rpc(h2, '/moby.buildkit.v1.Control/ListWorkers', enc('ListWorkers', {}));
    assert.equal(w.status, 0);
  });

  test('a @grpc/grpc-js client (connections upgraded on /grpc by a local proxy) gets the same answers', async () => {
    // grpc-js cannot start on a socket it did not dial: a unix-socket proxy upgrades each of its
    // connections on berthd's /grpc and then relays bytes, so grpc-js speaks HTTP/2 to berthd's server
    const sockPath = join(mkdtempSync('/tmp/berth-bkg-'), 'proxy.sock');
    dirs.push(join(sockPath, '..'));
    const proxy = net.createServer((c) => {
      c.pause();
      void upgrade('/grpc').then(
        (up) => {
          c.pipe(up).pipe(c);
          c.resume();
          c.on('close', () => up.destroy());
          up.on('close', () => c.destroy());
          c.on('error', () => undefined);
          up.on('error', () => undefined);
        },
        () => c.destroy(),
      );
    });
    await new Promise<void>((r) => proxy.listen(sockPath, r));
    closers.push(() => proxy.close());
    const Ctl = grpc.makeGenericClientConstructor({}, 'Control');
    const client = new Ctl(`unix://${sockPath}`, grpc.credentials.createInsecure());
    closers.push(() => client.close());
    const unary = <T>(method: string, req: object) =>
      new Promise<{ err: grpc.ServiceError | null; res: T | undefined }>((resolve) =>
        client.makeUnaryRequest(
          `/moby.buildkit.v1.Control/${method}`,
          (x: object) => enc(method, x),
          (b: Buffer) => dec<T>(method, b),
          req,
          (err: grpc.ServiceError | null, res?: T) => resolve({ err, res }),
        ),
      );
    const w = await unary<{ record: Array<{ ID: string }> }>('ListWorkers', {});
    assert.equal(w.err, null);
    assert.equal(w.res!.record[0]!.ID, 'moby');
    const du = await unary<{ record: unknown[] }>('DiskUsage', {});
    assert.equal(du.err, null);
    assert.ok(Array.isArray(du.res!.record));
    const info = await unary<object>('Info', {});
    assert.equal(info.err?.code, grpc.status.UNIMPLEMENTED);
    assert.match(info.err?.details ?? '', /^unknown method Info for service moby\.buildkit\.v1\.Control/);
    // a server stream through grpc-js: Prune of an empty cache ends OK with no records
    const records = await new Promise<unknown[]>((resolve, reject) => {
      const out: unknown[] = [];
      const call = client.makeServerStreamRequest(
        '/moby.buildkit.v1.Control/Prune',
        (x: object) => enc('Prune', x),
        (b: Buffer) => dec<object>('Prune', b),
        { all: true },
      );
      call.on('data', (r: unknown) => out.push(r));
      call.on('error', reject);
      call.on('status', (st: grpc.StatusObject) => (st.code === 0 ? resolve(out) : reject(new Error(st.details))));
    });
    assert.deepEqual(records, []);
  });

  test('/grpc without an h2c upgrade is a 400', async () => {
    const res = await new Promise<number>((resolve, reject) =>
      docker.modem.dial({ method: 'POST', path: '/grpc', statusCodes: { 400: true } }, (err: unknown) =>
        err ? reject(err) : resolve(400),
      ),
    );
    assert.equal(res, 400);
  });

  test('closing the Solve stream cancels the build', async () => {
    const ctx = mkdtempSync('/var/tmp/berth-bkg-ctx-');
    dirs.push(ctx);
    writeFileSync(join(ctx, 'Dockerfile'), 'FROM busybox\nRUN sleep 60 && echo done > /x\n');
    const s = await openSession({ context: ctx, dockerfile: ctx });
    const h2 = await controlClient();
    const ref = randomUUID();
    const statuses: StatusResponse[] = [];
    const status = rpc(h2, '/moby.buildkit.v1.Control/Status', enc('Status', { Ref: ref }), (m) =>
      statuses.push(decodeStatus(m)),
    );
    const ac = new AbortController();
    const solve = rpc(
      h2,
      '/moby.buildkit.v1.Control/Solve',
      enc('Solve', {
        Ref: ref,
        Session: s.id,
        Frontend: 'dockerfile.v0',
        Exporters: [{ Type: 'image', Attrs: { name: 'bkgrpc/cancelled:1' } }],
      }),
      () => undefined,
      ac.signal,
    );
    // wait for the RUN to start, then go away
    const t0 = Date.now();
    while (!statuses.some((x) => x.vertexes.some((v) => v.name.includes('sleep 60'))) && Date.now() - t0 < 60_000)
      await new Promise((r) => setTimeout(r, 100));
    ac.abort();
    await solve;
    const st = await status;
    assert.equal(st.status, 0);
    assert.ok(Date.now() - t0 < 45_000, 'the build stopped well before its 60 s sleep');
    const failed = statuses.flatMap((x) => x.vertexes).filter((v) => v.name.includes('sleep 60') && v.error);
    assert.ok(failed.length > 0, 'the running step ends with an error');
    const ps = await d.docker(['ps', '-aq']);
    assert.equal(ps.stdout.trim(), '');
    const img = await d.docker(['image', 'inspect', 'bkgrpc/cancelled:1'], { allowFail: true });
    assert.notEqual(img.code, 0, 'nothing tagged');
  });
});
