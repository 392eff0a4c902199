/**
 * BuildKit's `local` and `tar` exporters (issue #16): `POST /build?version=2&outputs=[...]` against
 * a real berthd, the result sent to the client through its session's moby.filesync.v1.FileSend/
 * DiffCopy, as the docker CLI receives `--output type=local,dest=...` / `type=tar`. The session here
 * (dockerode's modem + grpc-js on the hijacked `/session` socket) serves FileSend:
 * - local: fsutil's RECEIVER side (fsutil receive.go): STATs until an empty one, a REQ per regular
 *   file that is not a hard link, DATA until an empty DATA, FIN when everything arrived, and the
 *   files written into a directory of the test, the way the CLI writes its `dest`;
 * - tar: the BytesMessage chunks concatenated and read back with tar-stream.
 * dockerd 20.10 with BuildKit answers these the same way: no `moby.image.id` line for a local or
 * tar output; two outputs: "multiple outputs not supported".
 */
import { before, after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { lstatSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { chmodSync, linkSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { createHash, randomUUID } from 'node:crypto';
import Docker from 'dockerode';
import * as grpc from '@grpc/grpc-js';
import { loadSync, type MethodDefinition } from '@grpc/proto-loader';
import { extract } from 'tar-stream';
import { REPO, startDaemon, type Daemon } from './harness.js';
import { openSessionServer, postBuild, readLines, statusesOf, type Line } from './buildkit-session.js';

const PROTO_DIR = join(REPO, 'src/buildkit/proto');
const defs = loadSync(['filesync.proto', 'sshforward.proto'], {
  includeDirs: [PROTO_DIR],
  keepCase: true,
  longs: Number,
  enums: String,
  defaults: true,
}) as unknown as Record<string, Record<string, MethodDefinition<object, object>>>;
const packetCodec = defs['moby.filesync.v1.FileSend']!['DiffCopy']!;
const bytesCodec = defs['moby.sshforward.v1.SSH']!['ForwardAgent']!;

interface Stat {
  path: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  modTime: number;
  linkname: string;
}
interface Packet {
  type: string;
  stat?: Stat | null;
  ID?: number;
  data?: Buffer;
}
const GO_DIR = 0x80000000;
const GO_SYMLINK = 0x08000000;
const GO_SETUID = 1 << 23;

/** The FileSend/DiffCopy method with raw bytes both ways: the test decodes as the exporter it asked for. */
const RAW_FILE_SEND = {
  DiffCopy: {
    path: '/moby.filesync.v1.FileSend/DiffCopy',
    requestStream: true,
    responseStream: true,
    requestSerialize: (b: Buffer) => b,
    requestDeserialize: (b: Buffer) => b,
    responseSerialize: (b: Buffer) => b,
    responseDeserialize: (b: Buffer) => b,
    originalName: 'DiffCopy',
  },
} as unknown as grpc.ServiceDefinition;

interface Received {
  stats: Stat[];
  /** the IDs the receiver asked for */
  requested: number[];
  tar: Buffer[];
  done: Promise<void>;
}

/**
 * fsutil's receiver (the docker CLI's `--output type=local,dest=<dest>`): the walk first, then the
 * contents of every regular file that is not a hard link, then FIN; the tree is written into `dest`.
 */
function receiveLocal(call: grpc.ServerDuplexStream<Buffer, Buffer>, dest: string, r: Received, done: () => void) {
  const send = (p: Packet) => call.write(packetCodec.responseSerialize(p));
  const data = new Map<number, Buffer[]>();
  let walking = true;
  let waiting = 0;
  call.on('data', (raw: Buffer) => {
    const p = packetCodec.requestDeserialize(raw) as Packet;
    if (walking) {
      assert.equal(p.type, 'PACKET_STAT');
      if (p.stat) {
        r.stats.push(p.stat);
        return;
      }
      walking = false;
      r.stats.forEach((s, id) => {
        if ((s.mode & (GO_DIR | GO_SYMLINK)) === 0 && !s.linkname) {
          data.set(id, []);
          r.requested.push(id);
          waiting++;
          send({ type: 'PACKET_REQ', ID: id });
        }
      });
      if (waiting === 0) send({ type: 'PACKET_FIN' });
    } else if (p.type === 'PACKET_DATA') {
      const id = p.ID ?? 0;
      if (p.data?.length) data.get(id)!.push(Buffer.from(p.data));
      else if (--waiting === 0) send({ type: 'PACKET_FIN' });
    } else if (p.type === 'PACKET_FIN') {
      mkdirSync(dest, { recursive: true });
      r.stats.forEach((s, id) => {
        const at = join(dest, s.path);
        if (s.mode & GO_DIR) mkdirSync(at, { mode: s.mode & 0o777 });
        else if (s.mode & GO_SYMLINK) symlinkSync(s.linkname, at);
        else if (s.linkname) linkSync(join(dest, s.linkname), at);
        else {
          writeFileSync(at, Buffer.concat(data.get(id)!));
          chmodSync(at, (s.mode & 0o777) | (s.mode & GO_SETUID ? 0o4000 : 0));
        }
      });
      call.end();
      done();
    }
  });
}

describe('BuildKit local and tar exporters (outputs=, FileSend through the session)', () => {
  let d: Daemon;
  let docker: Docker;
  let ctx: string;
  const closers: Array<() => void> = [];
  before(async () => {
    d = await startDaemon();
    docker = new Docker({ socketPath: d.sock });
    ctx = mkdtempSync('/var/tmp/berth-bk-export-');
    writeFileSync(
      join(ctx, 'Dockerfile'),
      [
        'FROM busybox',
        'RUN mkdir -p /out/sub && echo hello > /out/hello.txt && chmod 0640 /out/hello.txt && ' +
          'echo deep > /out/sub/deep.txt && chmod 0750 /out/sub && ln -s hello.txt /out/rel-link && ' +
          'ln -s /etc/shadow /out/abs-link && ln /out/hello.txt /out/zz-hard && ' +
          'head -c 100000 /dev/urandom > /out/big && sha256sum /out/big | cut -c1-64 > /out/big.sha && ' +
          'cp /bin/busybox /out/suid && chmod 4755 /out/suid',
        '',
      ].join('\n'),
    );
  });
  after(async () => {
    for (const c of closers) c();
    rmSync(ctx, { recursive: true, force: true });
    await d?.stop();
  });

  /**
   * A session serving FileSend (`serve`: 'local' into `dest`, 'tar', or 'none': FileSend neither
   * served nor listed); `listMethods: false` lists no methods at all (as dockerode's sessions).
   */
  async function openSession(
    serve: 'local' | 'tar' | 'none' | 'refuse',
    dest = '',
    listMethods = true,
  ): Promise<{ id: string; r: Received }> {
    const id = randomUUID();
    let finished!: () => void;
    const r: Received = { stats: [], requested: [], tar: [], done: new Promise<void>((res) => (finished = res)) };
    const methods = serve === 'none' ? [] : ['/moby.filesync.v1.FileSend/DiffCopy'];
    const { server, close } = await openSessionServer(docker, {
      id,
      name: 'berth-export-test',
      methods: listMethods ? ['/grpc.health.v1.Health/Check', ...methods] : null,
    });
    if (serve !== 'none')
      server.addService(RAW_FILE_SEND, {
        DiffCopy: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
          if (serve === 'local') receiveLocal(call, dest, r, finished);
          else if (serve === 'refuse') {
            // the docker CLI when its dest already exists as something it cannot write
            call.emit('error', { code: grpc.status.ALREADY_EXISTS, details: 'target already exists' });
            finished();
          } else {
            call.on('data', (raw: Buffer) =>
              r.tar.push(Buffer.from((bytesCodec.requestDeserialize(raw) as { data: Buffer }).data)),
            );
            call.on('end', () => {
              call.end();
              finished();
            });
          }
        },
      });
    closers.push(close);
    return { id, r };
  }

  /** `POST /build?version=2&session=<id>&outputs=<json>` with the context tar as the body. */
  const build = async (session: string, outputs: unknown, t = '') =>
    readLines(await postBuild(docker, ctx, { session, outputs: JSON.stringify(outputs), ...(t ? { t } : {}) }));
  const vertexes = (lines: Line[]) => statusesOf(lines).flatMap((s) => s.vertexes);

  test('type=local: the image root arrives through fsutil DiffCopy with contents, modes, symlinks, hard links', async () => {
    const dest = join(mkdtempSync('/var/tmp/berth-bk-dest-'), 'out');
    closers.push(() => rmSync(join(dest, '..'), { recursive: true, force: true }));
    const s = await openSession('local', dest);
    const lines = await build(s.id, [{ Type: 'local', Attrs: { dest } }], 'bk-export:ignored');
    const err = lines.find((l) => l.error);
    assert.equal(err, undefined, err?.error);
    await s.r.done;
    // dockerd: no moby.image.id for a local output, and no tag
    assert.ok(!lines.some((l) => l.id === 'moby.image.id'));
    await assert.rejects(docker.getImage('bk-export:ignored').inspect(), /no such image/i);
    const v = vertexes(lines).filter((x) => x.name === 'exporting to client directory');
    assert.ok(
      v.some((x) => x.completed && !x.error),
      'the export vertex completed',
    );
    // the files, as the image has them
    const out = join(dest, 'out');
    assert.equal(readFileSync(join(out, 'hello.txt'), 'utf8'), 'hello\n');
    assert.equal(lstatSync(join(out, 'hello.txt')).mode & 0o7777, 0o640);
    assert.equal(readFileSync(join(out, 'sub/deep.txt'), 'utf8'), 'deep\n');
    assert.equal(lstatSync(join(out, 'sub')).mode & 0o7777, 0o750);
    assert.equal(lstatSync(join(out, 'suid')).mode & 0o7777, 0o4755);
    const big = readFileSync(join(out, 'big'));
    assert.equal(big.length, 100_000);
    assert.equal(createHash('sha256').update(big).digest('hex'), readFileSync(join(out, 'big.sha'), 'utf8').trim());
    // symlinks are sent as symlinks (never followed on the host: /etc/shadow's content is not read)
    assert.equal(readlinkSync(join(out, 'rel-link')), 'hello.txt');
    assert.equal(readlinkSync(join(out, 'abs-link')), '/etc/shadow');
    const abs = s.r.stats.find((x) => x.path === 'out/abs-link')!;
    assert.equal(abs.mode & GO_SYMLINK, GO_SYMLINK);
    assert.equal(abs.size, 0);
    // a hard link: the second name points at the first, its data never asked for
    const [first, second] = ['out/hello.txt', 'out/zz-hard'].map((n) => s.r.stats.findIndex((x) => x.path === n));
    assert.equal(s.r.stats[second!]!.linkname, 'out/hello.txt');
    assert.ok(s.r.requested.includes(first!) && !s.r.requested.includes(second!));
    assert.equal(lstatSync(join(out, 'zz-hard')).ino, lstatSync(join(out, 'hello.txt')).ino);
    // the rest of the image came too, in Go's walk order (sorted, a directory before its contents)
    assert.ok(s.r.stats.some((x) => x.path === 'bin/busybox'));
    assert.ok(readFileSync(join(dest, 'etc/passwd'), 'utf8').startsWith('root:'));
    const paths = s.r.stats.map((x) => x.path);
    assert.equal(paths.indexOf('out') < paths.indexOf('out/abs-link'), true);
    assert.deepEqual(
      paths.filter((p) => !p.includes('/')),
      paths.filter((p) => !p.includes('/')).sort(),
    );
  });

  test('type=tar: the image root arrives as one tar stream (BytesMessage chunks)', async () => {
    const s = await openSession('tar');
    const lines = await build(s.id, [{ type: 'tar', attrs: { dest: 'out.tar' } }]);
    const err = lines.find((l) => l.error);
    assert.equal(err, undefined, err?.error);
    await s.r.done;
    assert.ok(!lines.some((l) => l.id === 'moby.image.id'));
    assert.ok(vertexes(lines).some((x) => x.name === 'sending tarball' && x.completed && !x.error));
    const entries = new Map<string, { type: string; mode: number; linkname: string | null; body: Buffer }>();
    await new Promise<void>((resolve, reject) => {
      const x = extract();
      x.on('entry', (h, stream, next) => {
        const chunks: Buffer[] = [];
        stream.on('data', (c: unknown) => chunks.push(c as Buffer));
        stream.on('end', () => {
          entries.set(h.name.replace(/\/$/, ''), {
            type: h.type ?? '',
            mode: h.mode ?? 0,
            linkname: h.linkname ?? null,
            body: Buffer.concat(chunks),
          });
          next();
        });
      });
      x.on('finish', resolve);
      x.on('error', reject);
      x.end(Buffer.concat(s.r.tar));
    });
    assert.equal(entries.get('out/hello.txt')?.body.toString(), 'hello\n');
    assert.equal(entries.get('out/hello.txt')?.mode, 0o640);
    assert.equal(entries.get('out/sub')?.type, 'directory');
    assert.equal(entries.get('out/sub')?.mode, 0o750);
    assert.equal(entries.get('out/abs-link')?.type, 'symlink');
    assert.equal(entries.get('out/abs-link')?.linkname, '/etc/shadow');
    assert.equal(entries.get('out/zz-hard')?.type, 'link');
    assert.equal(entries.get('out/zz-hard')?.linkname, 'out/hello.txt');
    const big = entries.get('out/big')!.body;
    assert.equal(createHash('sha256').update(big).digest('hex'), entries.get('out/big.sha')!.body.toString().trim());
    assert.ok(entries.has('bin/busybox') && entries.has('etc/passwd'));
  });

  test('a session without FileSend, a client that refuses, and bad outputs: clean errors, nothing left', async () => {
    // FileSend not among the session's methods: refused before anything is built (BuildKit's words)
    const none = await openSession('none');
    await assert.rejects(
      build(none.id, [{ Type: 'local', Attrs: { dest: '/x' } }]),
      /method \/moby\.filesync\.v1\.FileSend\/diffcopy not supported by the client/,
    );
    // a session that lists no methods (dockerode's) and serves no FileSend: the export fails in the stream
    const silent = await openSession('none', '', false);
    const lines = await build(silent.id, [{ Type: 'tar', Attrs: {} }]);
    assert.match(
      lines.at(-1)?.error ?? '',
      /sending tarball: method \/moby\.filesync\.v1\.FileSend\/diffcopy not supported by the client$/,
    );
    const failed = vertexes(lines).filter((x) => x.name === 'sending tarball');
    assert.ok(
      failed.some((x) => x.error),
      'the export vertex failed',
    );
    // the client refusing the transfer
    const refuse = await openSession('refuse');
    const lines2 = await build(refuse.id, [{ Type: 'local', Attrs: { dest: '/x' } }]);
    assert.match(
      lines2.at(-1)?.error ?? '',
      /exporting to client directory: the client's FileSend failed: target already exists/,
    );
    // the same refusal while the tar is being written: the packing stops, the view goes
    const refuseTar = await openSession('refuse');
    const lines3 = await build(refuseTar.id, [{ Type: 'tar', Attrs: {} }]);
    assert.match(lines3.at(-1)?.error ?? '', /sending tarball: the client's FileSend failed: target already exists/);
    // no session at all
    await assert.rejects(build('', [{ Type: 'local', Attrs: {} }]), /exporter local needs a session/);
    // outputs dockerd refuses or berth does not serve: 400s
    await assert.rejects(build(none.id, [{ Type: 'local' }, { Type: 'tar' }]), /multiple outputs not supported/);
    await assert.rejects(build(none.id, [{ Type: 'oci', Attrs: {} }]), /exporter oci is not supported/);
    await assert.rejects(build(none.id, { Type: 'local' }), /invalid outputs parameter/);
    // nothing left behind: no view mounts in the builder's scratch space, the daemon answers
    const mounts = readFileSync('/proc/self/mountinfo', 'utf8');
    assert.ok(!mounts.includes(join(d.dir, 'run', 'builder', 'view-')), 'a view mount was left');
    assert.equal((await d.docker(['version', '--format', '{{.Server.Os}}'])).stdout.trim(), 'linux');
  });
});
