/**
 * SSH agent forwarding through a BuildKit session (issue #16): `RUN --mount=type=ssh` against a
 * real berthd. The session (dockerode's modem + grpc-js on the hijacked `/session` socket, as the
 * other BuildKit tests) serves moby.sshforward.v1.SSH the way the docker CLI's `--ssh default`
 * does: CheckAgent{ID}, and ForwardAgent relaying each stream to a REAL ssh-agent (openssh's
 * `ssh-agent -D`, a fresh ed25519 key added with `ssh-add`). Inside the RUN a real agent client
 * speaks to $SSH_AUTH_SOCK: the host's `ssh-add -L` copied into the context with its shared
 * libraries and loader (busybox has no ssh client, and its `nc` has no `-U`).
 */
import { before, after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import net from 'node:net';
import Docker from 'dockerode';
import * as grpc from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { REPO, startDaemon, type Daemon } from './harness.js';
import { logTextOf, openSessionServer, postBuild, readLines, statusesOf, type Line } from './buildkit-session.js';

const PROTO_DIR = join(REPO, 'src/buildkit/proto');

const logText = (lines: Line[]) => logTextOf(statusesOf(lines));

/** `ssh-add` with the shared libraries `ldd` names and the loader, into `dir` (run as `<dir>/ld.so --library-path <dir> <dir>/ssh-add`). */
function copySshAdd(dir: string): void {
  mkdirSync(dir);
  copyFileSync('/usr/bin/ssh-add', join(dir, 'ssh-add'));
  for (const line of execFileSync('ldd', ['/usr/bin/ssh-add']).toString().split('\n')) {
    const m = /(\/\S+)\s+\(0x/.exec(line);
    if (m) copyFileSync(m[1]!, join(dir, basename(m[1]!)));
  }
  copyFileSync('/lib64/ld-linux-x86-64.so.2', join(dir, 'ld.so'));
}

interface SshSession {
  id: string;
  checked: string[];
  /** per ForwardAgent stream: its buildkit.ssh.id and the bytes the RUN sent */
  streams: Array<{ sshId: string; sent: Buffer[] }>;
  /** what the builder's socket directory looked like while a RUN was connected */
  seen: Array<{ dirMode: number; sockMode: number; uid: number; gid: number; isSocket: boolean }>;
  close(): void;
}

describe('RUN --mount=type=ssh through a BuildKit session', () => {
  let d: Daemon;
  let docker: Docker;
  let agent: ChildProcess;
  let tmp: string;
  let agentSock: string;
  let pubKey: string;
  const closers: Array<() => void> = [];
  before(async () => {
    d = await startDaemon();
    docker = new Docker({ socketPath: d.sock });
    tmp = mkdtempSync('/var/tmp/berth-bk-ssh-');
    execFileSync('ssh-keygen', [
      '-q',
      '-t',
      'ed25519',
      '-N',
      '',
      '-C',
      'berth-ssh-forward-test',
      '-f',
      join(tmp, 'key'),
    ]);
    pubKey = readFileSync(join(tmp, 'key.pub'), 'utf8').trim();
    agentSock = join(tmp, 'agent.sock');
    agent = spawn('ssh-agent', ['-D', '-a', agentSock], { stdio: 'ignore' });
    for (let i = 0; i < 100 && !existsSync(agentSock); i++) await new Promise((r) => setTimeout(r, 50));
    execFileSync('ssh-add', ['-q', join(tmp, 'key')], { env: { ...process.env, SSH_AUTH_SOCK: agentSock } });
  });
  after(async () => {
    for (const c of closers) c();
    if (agent?.pid) process.kill(agent.pid, 'SIGTERM');
    rmSync(tmp, { recursive: true, force: true });
    await d?.stop();
  });

  /** The RUN steps' scratch space of this daemon: where the agent sockets are made. */
  const scratch = () => join(d.dir, 'run', 'builder');
  const sshDirs = () => (existsSync(scratch()) ? readdirSync(scratch()).filter((n) => n.startsWith('ssh-')) : []);

  /**
   * A session as the docker CLI opens one with `--ssh default` (agents: the ids it forwards), or
   * without `--ssh` (agents null: no SSH service at all, not listed in its methods).
   */
  async function openSession(agents: string[] | null): Promise<SshSession> {
    const id = randomUUID();
    const out: SshSession = { id, checked: [], streams: [], seen: [], close: () => undefined };
    const methods = agents ? ['/moby.sshforward.v1.SSH/CheckAgent', '/moby.sshforward.v1.SSH/ForwardAgent'] : [];
    const { server, close } = await openSessionServer(docker, {
      id,
      name: 'berth-ssh-test',
      methods: ['/grpc.health.v1.Health/Check', ...methods],
    });
    if (agents) {
      const pkg = grpc.loadPackageDefinition(
        loadSync('sshforward.proto', { includeDirs: [PROTO_DIR], keepCase: true, longs: Number, enums: String }),
      ) as unknown as { moby: { sshforward: { v1: { SSH: { service: grpc.ServiceDefinition } } } } };
      server.addService(pkg.moby.sshforward.v1.SSH.service, {
        // the docker CLI's agent provider: NotFound "unset ssh forward key <id>" for an id it lacks
        CheckAgent: (call: grpc.ServerUnaryCall<{ ID: string }, object>, cb: grpc.sendUnaryData<object>) => {
          out.checked.push(call.request.ID);
          if (agents.includes(call.request.ID || 'default')) cb(null, {});
          else cb({ code: grpc.status.NOT_FOUND, message: `unset ssh forward key ${call.request.ID}` });
        },
        ForwardAgent: (call: grpc.ServerDuplexStream<{ data: Buffer }, { data: Buffer }>) => {
          const rec = { sshId: String(call.metadata.get('buildkit.ssh.id')[0] ?? ''), sent: [] as Buffer[] };
          out.streams.push(rec);
          // the RUN is connected now: its socket exists in the builder's scratch space
          for (const n of sshDirs()) {
            const dir = statSync(join(scratch(), n));
            const sock = statSync(join(scratch(), n, 'agent.sock'));
            out.seen.push({
              dirMode: dir.mode & 0o7777,
              sockMode: sock.mode & 0o7777,
              uid: sock.uid,
              gid: sock.gid,
              isSocket: sock.isSocket(),
            });
          }
          const a = net.connect(agentSock);
          a.on('error', () => call.end());
          a.on('data', (b: Buffer) => call.write({ data: b }));
          a.on('end', () => call.end());
          call.on('data', (m: { data: Buffer }) => {
            rec.sent.push(Buffer.from(m.data));
            a.write(m.data);
          });
          call.on('end', () => a.end());
          call.on('error', () => a.destroy());
        },
      });
    }
    out.close = close;
    closers.push(out.close);
    return out;
  }

  /** `POST /build?version=2&session=<id>` with the context tar as the body (dockerode's modem). */
  const build = async (ctx: string, session: string, t: string) =>
    readLines(await postBuild(docker, ctx, { session, t }));

  async function runOut(image: string, cmd: string[]): Promise<string> {
    return (await d.docker(['run', '--rm', image, ...cmd])).stdout;
  }

  test("a RUN's ssh-add lists the client's agent keys through the forwarded socket", async () => {
    const ctx = mkdtempSync('/var/tmp/berth-bk-ssh-ctx-');
    closers.push(() => rmSync(ctx, { recursive: true, force: true }));
    copySshAdd(join(ctx, 'sshbin'));
    const sshAdd = '/sshbin/ld.so --library-path /sshbin /sshbin/ssh-add';
    writeFileSync(
      join(ctx, 'Dockerfile'),
      [
        'FROM busybox',
        'COPY sshbin /sshbin',
        // the default mount: id default, target /run/buildkit/ssh_agent.0, SSH_AUTH_SOCK set to it
        `RUN --mount=type=ssh ${sshAdd} -L > /keys && echo "$SSH_AUTH_SOCK" > /sockenv && ` +
          'stat -c "%a %u %F" "$SSH_AUTH_SOCK" > /sockstat',
        // a target and an id of the mount's own, with a mode: SSH_AUTH_SOCK is that target
        `RUN --mount=type=ssh,id=default,target=/tmp/agent,mode=0644,required=true ${sshAdd} -l > /fingerprints && ` +
          'echo "$SSH_AUTH_SOCK" > /sockenv2 && stat -c "%a" /tmp/agent > /sockstat2',
        // an agent the client does not forward, not required: the mount is skipped, the RUN runs
        'RUN --mount=type=ssh,id=other,target=/other-agent sh -c "test -e /other-agent || echo skipped > /optional"',
        '',
      ].join('\n'),
    );
    const s = await openSession(['default']);
    const lines = await build(ctx, s.id, 'bk-ssh:1');
    const err = lines.find((l) => l.error);
    assert.equal(err, undefined, `${err?.error}\n${logText(lines)}`);
    // the key the real agent holds came back through the RUN's socket
    assert.equal((await runOut('bk-ssh:1', ['cat', '/keys'])).trim(), pubKey);
    assert.match(await runOut('bk-ssh:1', ['cat', '/fingerprints']), /SHA256:\S+ berth-ssh-forward-test \(ED25519\)/);
    assert.equal((await runOut('bk-ssh:1', ['cat', '/sockenv'])).trim(), '/run/buildkit/ssh_agent.0');
    assert.equal((await runOut('bk-ssh:1', ['cat', '/sockstat'])).trim(), '600 0 socket');
    assert.equal((await runOut('bk-ssh:1', ['cat', '/sockenv2'])).trim(), '/tmp/agent');
    assert.equal((await runOut('bk-ssh:1', ['cat', '/sockstat2'])).trim(), '644');
    assert.equal((await runOut('bk-ssh:1', ['cat', '/optional'])).trim(), 'skipped');
    // CheckAgent asked for each mount's id; ForwardAgent streams carried the id as metadata
    assert.deepEqual(s.checked, ['default', 'default', 'other']);
    assert.ok(s.streams.length >= 2, `${s.streams.length} ForwardAgent streams`);
    assert.ok(s.streams.every((x) => x.sshId === 'default'));
    // ssh-add's first request: SSH2_AGENTC_REQUEST_IDENTITIES (length 1, type 11)
    assert.deepEqual([...Buffer.concat(s.streams[0]!.sent).subarray(0, 5)], [0, 0, 0, 1, 11]);
    // while connected: the socket in a private 0700 directory, root's, mode as the mount said
    assert.ok(s.seen.length >= 2);
    assert.deepEqual(s.seen[0], { dirMode: 0o700, sockMode: 0o600, uid: 0, gid: 0, isSocket: true });
    assert.equal(s.seen[1]!.sockMode, 0o644);
    // and after the build: no socket, no directory, no mount point left in the image
    assert.deepEqual(sshDirs(), []);
    const ls = await runOut('bk-ssh:1', ['sh', '-c', 'ls -A /run/buildkit 2>/dev/null; ls /tmp; echo end']);
    assert.equal(ls.trim(), 'end');
  });

  test('a required agent the client does not forward fails the build cleanly; the daemon goes on', async () => {
    const ctx = mkdtempSync('/var/tmp/berth-bk-ssh-ctx-');
    closers.push(() => rmSync(ctx, { recursive: true, force: true }));
    writeFileSync(join(ctx, 'Dockerfile'), 'FROM busybox\nRUN --mount=type=ssh,required=true echo never > /x\n');
    // no SSH service in the session at all (the docker CLI without --ssh): BuildKit's words
    const none = await openSession(null);
    const lines = await build(ctx, none.id, 'bk-ssh:none');
    // (the step's line in front, as for berth's other step errors on this stream)
    assert.match(lines.at(-1)?.error ?? '', /(^|: )no SSH key "default" forwarded from the client$/);
    await assert.rejects(docker.getImage('bk-ssh:none').inspect(), /no such image/i);
    // a session forwarding other ids: the client's own answer
    writeFileSync(join(ctx, 'Dockerfile'), 'FROM busybox\nRUN --mount=type=ssh,id=deploy,required echo never > /x\n');
    const other = await openSession(['default']);
    const lines2 = await build(ctx, other.id, 'bk-ssh:other');
    assert.match(lines2.at(-1)?.error ?? '', /unset ssh forward key deploy/);
    assert.deepEqual(other.checked, ['deploy']);
    assert.equal(other.streams.length, 0);
    await assert.rejects(docker.getImage('bk-ssh:other').inspect(), /no such image/i);
    // a bad mode is refused before anything runs
    writeFileSync(join(ctx, 'Dockerfile'), 'FROM busybox\nRUN --mount=type=ssh,mode=999 true\n');
    const lines3 = await build(ctx, other.id, 'bk-ssh:mode');
    assert.match(lines3.at(-1)?.error ?? '', /invalid mode for --mount=type=ssh: 999/);
    assert.deepEqual(sshDirs(), []);
    assert.equal((await d.docker(['ps', '-aq'])).stdout.trim(), '');
    assert.equal((await d.docker(['version', '--format', '{{.Server.Os}}'])).stdout.trim(), 'linux');
  });
});
