/**
 * The CRI streaming server (src/cri/stream) over real loopback sockets, driven by a client that
 * behaves as client-go's (spdy-client.ts), against a backend that runs real local processes and
 * connects to a real TCP echo server (cri-stream-backend.ts).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { createServer, connect, type Server, type Socket } from 'node:net';
import type { Readable } from 'node:stream';
import { ManualClock, systemClock } from '../../src/base/clock.js';
import { isBerthError } from '../../src/base/errors.js';
import { StreamServer } from '../../src/cri/stream/server.js';
import { LocalBackend } from './cri-stream-backend.js';
import { dialWs } from './ws-client.js';
import {
  dialPortForward,
  dialSpdy,
  openCommand,
  openForward,
  readAll,
  runCommandClient,
  type Forward,
} from './spdy-client.js';

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** Reads from `r` until `pred` holds on what came so far (or the stream ends); leaves `r` paused, not destroyed. */
function readUntil(r: Readable, pred: (s: string) => boolean): Promise<string> {
  return new Promise((resolve) => {
    let acc = '';
    const finish = () => {
      r.off('data', onData);
      r.off('end', finish);
      r.off('close', finish);
      r.pause();
      resolve(acc);
    };
    const onData = (c: Buffer) => {
      acc += c.toString('utf8');
      if (pred(acc)) finish();
    };
    r.on('data', onData);
    r.once('end', finish);
    r.once('close', finish);
  });
}

/** A raw HTTP request on a fresh socket; status code and body of the answer. */
async function rawRequest(url: string, head: string[]): Promise<{ status: number; text: string }> {
  const u = new URL(url);
  const s = connect({ host: u.hostname, port: Number(u.port) });
  s.write(`${head.join('\r\n')}\r\n\r\n`);
  const text = (await readAll(s)).toString('latin1');
  return { status: Number(text.split(' ')[1]), text };
}

describe('CRI streaming server', () => {
  const backend = new LocalBackend();
  const server = new StreamServer({ backend, address: '127.0.0.1', port: 0, clock: systemClock });
  let echo: Server;
  let echoPort = 0;
  let closedPort = 0;
  const echoSockets = new Set<Socket>();

  before(async () => {
    await server.start();
    echo = createServer((s) => {
      echoSockets.add(s);
      s.on('close', () => echoSockets.delete(s));
      s.on('error', () => {});
      s.pipe(s);
    });
    await new Promise<void>((r) => echo.listen(0, '127.0.0.1', () => r()));
    echoPort = (echo.address() as { port: number }).port;
    // A port nobody listens on: bind, note it, close.
    const tmp = createServer();
    await new Promise<void>((r) => tmp.listen(0, '127.0.0.1', () => r()));
    closedPort = (tmp.address() as { port: number }).port;
    await new Promise<void>((r) => tmp.close(() => r()));
  });

  after(async () => {
    await server.close();
    backend.killAll();
    for (const s of echoSockets) s.destroy();
    await new Promise<void>((r) => echo.close(() => r()));
  });

  const execUrl = (cmd: string[], o: { tty?: boolean; stdin?: boolean; stderr?: boolean; containerId?: string } = {}) =>
    server.urlForExec({
      containerId: o.containerId ?? 'c1',
      cmd,
      tty: o.tty ?? false,
      stdin: o.stdin ?? false,
      stdout: true,
      stderr: o.stderr ?? !o.tty,
    });

  test('exec: stdout, stderr and a non-zero exit code as v4 reports it', async () => {
    const url = execUrl(['sh', '-c', 'echo out; echo err >&2; exit 3']);
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/exec\/[A-Za-z0-9_-]{20,}$/);
    const r = await runCommandClient(url, { stdout: true, stderr: true });
    assert.equal(r.protocol, 'v4.channel.k8s.io');
    assert.equal(r.stdout.toString(), 'out\n');
    assert.equal(r.stderr.toString(), 'err\n');
    assert.equal(r.exitCode, 3);
    assert.deepEqual(JSON.parse(r.errorText), {
      metadata: {},
      status: 'Failure',
      message:
        'command terminated with non-zero exit code: ' +
        'error executing command [sh -c echo out; echo err >&2; exit 3], exit code 3',
      reason: 'NonZeroExitCode',
      details: { causes: [{ reason: 'ExitCode', message: '3' }] },
    });
  });

  test('exec: exit 0 is a Success status', async () => {
    const r = await runCommandClient(execUrl(['true']), { stdout: true, stderr: true });
    assert.equal(r.exitCode, 0);
    assert.deepEqual(JSON.parse(r.errorText), { metadata: {}, status: 'Success' });
  });

  for (const flow of [undefined, { window: 16384 }]) {
    const style = flow ? 'a strict flow-controlled peer' : "spdystream's (no flow control)";
    test(`exec: 300 KiB of stdin reach the process and its EOF ends it, from ${style}`, async () => {
      const input = randomBytes(300 * 1024);
      const r = await runCommandClient(execUrl(['sh', '-c', 'sha256sum | cut -d" " -f1'], { stdin: true }), {
        stdout: true,
        stderr: true,
        input,
        ...(flow ? { client: { flowControl: flow } } : {}),
      });
      assert.equal(r.stdout.toString().trim(), sha(input));
      assert.equal(r.exitCode, 0);
      assert.equal(r.conn.violations, 0);
    });
  }

  test('a peer without flow control cannot make the server buffer: a lagging stdin stops the socket', async () => {
    let open!: () => void;
    backend.gate = new Promise((r) => (open = r));
    const url = execUrl(['sh', '-c', 'sha256sum | cut -d" " -f1'], { stdin: true, containerId: 'gated' });
    const s = await openCommand(url, { stdin: true, stdout: true, stderr: true });
    const input = randomBytes(32 * 1024 * 1024);
    s.stdin!.write(input);
    s.conn.ping(41); // behind 32 MiB: answered only once the server reads that far
    const stdin = backend.lastIo!.stdin!;
    // Wait (on the event loop, not a clock) until the server has filled the stream to its limit.
    let most = 0;
    for (let i = 0; i < 100_000 && most < 256 * 1024; i++) {
      most = Math.max(most, stdin.readableLength);
      await new Promise((r) => setImmediate(r));
    }
    for (let i = 0; i < 1000; i++) {
      most = Math.max(most, stdin.readableLength);
      await new Promise((r) => setImmediate(r));
    }
    assert.ok(most >= 256 * 1024, `the stream filled up (${most})`);
    assert.ok(most < 1024 * 1024, `the server stopped reading at ${most} bytes, not 32 MiB`);
    assert.equal(s.conn.pings.includes(41), false, 'the PING behind the flood is not read yet');
    open();
    s.stdin!.end();
    const out = await readAll(s.stdout!);
    assert.equal(out.toString().trim(), sha(input));
    assert.ok(s.conn.pings.includes(41), 'read on after the stream drained');
    backend.gate = undefined;
    s.conn.close();
  });

  test('exec: 2 MiB of stdout to a strict flow-controlled peer never overruns its window', async () => {
    const r = await runCommandClient(execUrl(['sh', '-c', 'head -c 2097152 /dev/zero']), {
      stdout: true,
      stderr: true,
      client: { flowControl: { window: 8192 } },
    });
    assert.equal(r.stdout.length, 2097152);
    assert.equal(r.exitCode, 0);
    assert.equal(r.conn.violations, 0, 'the server sent past the window the client announced');
  });

  test('exec with a tty: output through a pty, resize events reach it, stderr is not a stream', async () => {
    const url = execUrl(['sh', '-c', 'while read x; do stty size; done'], { tty: true, stdin: true });
    const s = await openCommand(url, { stdin: true, stdout: true, stderr: true, tty: true });
    assert.ok(s.resize, 'v4 with a tty has a resize stream');
    assert.equal(s.stderr, undefined);
    s.resize.write(JSON.stringify({ Width: 123, Height: 45 }) + '\n');
    // Ask for the size until the pty reports the new one (each answer is awaited: no timing).
    let seen = '';
    for (let i = 0; i < 50 && !seen.includes('45 123'); i++) {
      s.stdin!.write('\n');
      seen += await readUntil(s.stdout!, (t) => /\d+ \d+\r?\n/.test(t));
    }
    assert.match(seen, /45 123/);
    const rec = await backend.call(backend.calls.length);
    assert.deepEqual(rec.resizes[0], { width: 123, height: 45 });
    // The loop never ends by itself: the client leaves, the backend's signal kills it.
    s.conn.socket.destroy();
    assert.equal(await rec.outcome, 'aborted');
  });

  test('attach: stdin in, stdout out, Success when the process exits', async () => {
    backend.startContainer('web', 'while read l; do echo "got $l"; done; echo bye');
    const url = server.urlForAttach({ containerId: 'web', tty: false, stdin: true, stdout: true, stderr: true });
    const s = await openCommand(url, { stdin: true, stdout: true, stderr: true });
    s.stdin!.write('hello\n');
    const first = await readUntil(s.stdout!, (t) => t.includes('got hello\n'));
    assert.equal(first, 'got hello\n');
    s.stdin!.end();
    const rest = await readAll(s.stdout!);
    assert.equal(rest.toString(), 'bye\n');
    assert.deepEqual(JSON.parse(await s.errorText), { metadata: {}, status: 'Success' });
  });

  test('attach to a container that is not there: InternalError status on the error stream', async () => {
    const url = server.urlForAttach({ containerId: 'nope', tty: false, stdin: false, stdout: true, stderr: true });
    const r = await runCommandClient(url, { stdout: true, stderr: true });
    const st = JSON.parse(r.errorText) as { reason: string; code: number; message: string };
    assert.equal(st.reason, 'InternalError');
    assert.equal(st.code, 500);
    assert.match(st.message, /error attaching to container: no such container: nope/);
  });

  test('exec: a backend failure is reported on the error stream', async () => {
    const r = await runCommandClient(execUrl(['true'], { containerId: 'missing' }), { stdout: true, stderr: true });
    assert.equal(r.exitCode, null);
    assert.equal(r.status?.reason, 'InternalError');
    assert.equal(
      r.status?.message,
      'Internal error occurred: error executing command in container: no such container: missing',
    );
  });

  for (const flow of [undefined, { window: 16384 }]) {
    const style = flow ? 'a strict flow-controlled peer' : "spdystream's (no flow control)";
    test(`port-forward: 2 MiB both ways through an echo server, two at once on one connection, ${style}`, async () => {
      const url = server.urlForPortForward({ podSandboxId: 'pod1', ports: [echoPort] });
      const conn = await dialPortForward(url, flow ? { flowControl: flow } : {});
      const one = async (f: Forward) => {
        const data = randomBytes(2 * 1024 * 1024);
        const back = readAll(f.data);
        f.data.end(data);
        const got = await back;
        assert.equal(got.length, data.length);
        assert.equal(sha(got), sha(data));
        assert.equal(await f.error, '');
      };
      const [a, b] = [await openForward(conn, echoPort, 0), await openForward(conn, echoPort, 1)];
      await Promise.all([one(a), one(b)]);
      assert.equal(conn.violations, 0, 'the server sent past the window the client announced');
      if (flow) assert.ok(conn.windowUpdates > 0, 'the server gave window back');
      conn.close();
      await conn.done;
    });
  }

  test('port-forward: a refused port and a port outside the request are errors on the error stream', async () => {
    const url = server.urlForPortForward({ podSandboxId: 'pod1', ports: [closedPort, echoPort] });
    const conn = await dialPortForward(url);
    const refused = await openForward(conn, closedPort, 0);
    assert.match(await refused.error, /^error forwarding port \d+ to pod pod1, uid : connect ECONNREFUSED/);
    assert.equal((await readAll(refused.data)).length, 0);
    const outside = await openForward(conn, 1, 1);
    assert.match(await outside.error, /port 1 is not among the ports of this port-forward request/);
    // The connection still forwards.
    const ok = await openForward(conn, echoPort, 2);
    const back = readAll(ok.data);
    ok.data.end('ping');
    assert.equal((await back).toString(), 'ping');
    conn.close();
  });

  test('port-forward: streams without a valid port or type are reset', async () => {
    const conn = await dialPortForward(server.urlForPortForward({ podSandboxId: 'pod1', ports: [] }));
    await assert.rejects(conn.createStream({ streamtype: 'data', port: '0', requestid: '0' }), /reset with status 3/);
    await assert.rejects(conn.createStream({ streamtype: 'data', port: 'x', requestid: '1' }), /reset/);
    await assert.rejects(conn.createStream({ streamtype: 'bogus', port: '80', requestid: '2' }), /reset/);
    const unidirectional = conn.createStream({ streamtype: 'data', port: '80', requestid: '3' }, false, 0x02);
    await assert.rejects(unidirectional, /reset with status 3/);
    conn.close();
  });

  test('port-forward: a client without requestID is paired by stream id, as kubelet does for old clients', async () => {
    const conn = await dialPortForward(server.urlForPortForward({ podSandboxId: 'pod1', ports: [] }));
    const error = await conn.createStream({ streamtype: 'error', port: String(echoPort) });
    error.end();
    const errText = readAll(error);
    const data = await conn.createStream({ streamtype: 'data', port: String(echoPort) });
    const back = readAll(data);
    data.end('old client');
    assert.equal((await back).toString(), 'old client');
    assert.equal((await errText).length, 0);
    conn.close();
  });

  test('SPDY: at most 256 streams at once on a connection, the next is refused', async () => {
    const conn = await dialPortForward(server.urlForPortForward({ podSandboxId: 'pod1', ports: [] }));
    // Error streams waiting for their data stream stay open.
    for (let i = 0; i < 256; i++) await conn.createStream({ streamtype: 'error', port: '80', requestid: String(i) });
    await assert.rejects(
      conn.createStream({ streamtype: 'error', port: '80', requestid: 'one-too-many' }),
      /reset with status 3/,
    );
    conn.socket.destroy();
  });

  test('tokens: unknown 404, used once only, wrong path 404, non-upgrade request 400', async () => {
    const url = execUrl(['true']);
    const base = new URL(url);
    const bogus = `${base.origin}/exec/AAAAAAAAAAAAAAAAAAAAAA`;
    const r404 = await dialSpdy(bogus, ['v4.channel.k8s.io']);
    assert.equal(r404.status, 404);
    const first = await runCommandClient(url, { stdout: true, stderr: true });
    assert.equal(first.exitCode, 0);
    const again = await dialSpdy(url, ['v4.channel.k8s.io']);
    assert.equal(again.status, 404, 'a used token is gone');
    // An exec token on the attach path is no attach token (and is used up).
    const cross = execUrl(['true']).replace('/exec/', '/attach/');
    assert.equal((await dialSpdy(cross, ['v4.channel.k8s.io'])).status, 404);
    const plain = execUrl(['true']);
    const p = new URL(plain);
    const res = await rawRequest(plain, [`GET ${p.pathname} HTTP/1.1`, `Host: ${p.host}`, 'Connection: close']);
    assert.equal(res.status, 400);
    assert.match(res.text, /missing upgrade headers/);
  });

  test('tokens expire after a minute', async () => {
    const clock = new ManualClock();
    const s = new StreamServer({ backend, address: '127.0.0.1', port: 0, clock });
    await s.start();
    try {
      const fresh = s.urlForExec({
        containerId: 'c',
        cmd: ['true'],
        tty: false,
        stdin: false,
        stdout: true,
        stderr: false,
      });
      const stale = s.urlForExec({
        containerId: 'c',
        cmd: ['true'],
        tty: false,
        stdin: false,
        stdout: true,
        stderr: false,
      });
      clock.advance(30_000);
      const r = await runCommandClient(fresh, { stdout: true });
      assert.equal(r.exitCode, 0);
      clock.advance(31_000);
      assert.equal((await dialSpdy(stale, ['v4.channel.k8s.io'])).status, 404);
    } finally {
      await s.close();
    }
  });

  test('start() on a port in use is a Conflict; urlFor* before start() a FailedPrecondition', async () => {
    const port = Number(new URL(execUrl(['true'])).port);
    const clash = new StreamServer({ backend, address: '127.0.0.1', port, clock: systemClock });
    await assert.rejects(clash.start(), (e: unknown) => isBerthError(e, 'Conflict'));
    assert.throws(
      () => clash.urlForPortForward({ podSandboxId: 'p', ports: [] }),
      (e: unknown) => isBerthError(e, 'FailedPrecondition'),
    );
    await clash.close();
  });

  test('urlFor*: requests kubelet refuses are InvalidArgument', () => {
    const bad = [
      () => server.urlForExec({ containerId: 'c', cmd: ['sh'], tty: true, stdin: true, stdout: true, stderr: true }),
      () =>
        server.urlForExec({ containerId: 'c', cmd: ['sh'], tty: false, stdin: false, stdout: false, stderr: false }),
      () => server.urlForExec({ containerId: 'c', cmd: [], tty: false, stdin: false, stdout: true, stderr: false }),
      () => server.urlForAttach({ containerId: '', tty: false, stdin: false, stdout: true, stderr: false }),
      () => server.urlForPortForward({ podSandboxId: 'p', ports: [70000] }),
    ];
    for (const f of bad) assert.throws(f, (e: unknown) => isBerthError(e, 'InvalidArgument'));
  });

  test('negotiation: the client picks; none in common 403; none at all 400; v3 and v1 errors are text', async () => {
    const r403 = await dialSpdy(execUrl(['true']), ['v9.channel.k8s.io']);
    assert.equal(r403.status, 403);
    assert.deepEqual(r403.headers['x-accepted-stream-protocol-versions'], [
      'v4.channel.k8s.io',
      'v3.channel.k8s.io',
      'v2.channel.k8s.io',
      'channel.k8s.io',
    ]);
    const r400 = await dialSpdy(execUrl(['true']), []);
    assert.equal(r400.status, 400);
    const v3 = await runCommandClient(execUrl(['sh', '-c', 'exit 2']), {
      stdout: true,
      stderr: true,
      protocols: ['v3.channel.k8s.io', 'v4.channel.k8s.io'],
    });
    assert.equal(v3.protocol, 'v3.channel.k8s.io');
    assert.match(v3.errorText, /^command terminated with non-zero exit code: .*exit code 2$/);
    const v1 = await runCommandClient(execUrl(['sh', '-c', 'echo hi']), {
      stdout: true,
      stderr: true,
      protocols: ['channel.k8s.io'],
    });
    assert.equal(v1.protocol, 'channel.k8s.io');
    assert.equal(v1.stdout.toString(), 'hi\n');
    assert.equal(v1.errorText, '');
  });

  test('a client going away mid-exec aborts the backend and kills the process', async () => {
    const n = backend.calls.length + 1;
    const s = await openCommand(execUrl(['sh', '-c', 'echo started; exec sleep 1000']), { stdout: true, stderr: true });
    await readUntil(s.stdout!, (t) => t.includes('started'));
    const rec = await backend.call(n);
    s.conn.socket.destroy();
    assert.equal(await rec.outcome, 'aborted');
  });

  test('malformed frames end only their own connection', async () => {
    const garbage: [string, Buffer][] = [
      ['SPDY version 2', Buffer.from([0x80, 0x02, 0x00, 0x01, 0x00, 0x00, 0x00, 0x0a, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0])],
      ['PING of 3 bytes', Buffer.from([0x80, 0x03, 0x00, 0x06, 0x00, 0x00, 0x00, 0x03, 1, 2, 3])],
      [
        'SYN_STREAM with a block that is not zlib',
        Buffer.from([0x80, 0x03, 0x00, 0x01, 0, 0, 0, 14, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4]),
      ],
      ['a 16 MiB frame header', Buffer.from([0x00, 0x00, 0x00, 0x01, 0x00, 0xff, 0xff, 0xff])],
      ['DATA on stream 0', Buffer.from([0, 0, 0, 0, 0, 0, 0, 1, 9])],
      ['SETTINGS count beyond its length', Buffer.from([0x80, 0x03, 0x00, 0x04, 0, 0, 0, 4, 0, 0, 1, 0])],
    ];
    for (const [what, bytes] of garbage) {
      const n = backend.calls.length;
      const r = await dialSpdy(execUrl(['sh', '-c', 'exec sleep 1000']), ['v4.channel.k8s.io']);
      assert.equal(r.status, 101, what);
      r.conn!.socket.write(bytes);
      await r.conn!.done;
      assert.equal(r.conn!.goAway?.status, 1, `${what}: GOAWAY PROTOCOL_ERROR`);
      assert.equal(backend.calls.length, n, `${what}: nothing ran`);
    }
    // The server still serves.
    const ok = await runCommandClient(execUrl(['sh', '-c', 'echo fine']), { stdout: true, stderr: true });
    assert.equal(ok.stdout.toString(), 'fine\n');
  });

  test('websocket v5: stdin, its close message, stdout, stderr and the exit status by channel', async () => {
    const url = execUrl(['sh', '-c', 'cat; echo done >&2; exit 5'], { stdin: true });
    const r = await dialWs(url, ['v5.channel.k8s.io', 'v4.channel.k8s.io']);
    assert.equal(r.status, 101);
    const ws = r.ws!;
    assert.equal(ws.protocol, 'v5.channel.k8s.io');
    ws.send(0, 'hello ');
    ws.send(0, 'world');
    ws.frame(2, Buffer.from([255, 0])); // v5: stdin is done
    const { channels, closeCode, first } = await ws.collect();
    assert.deepEqual(first?.data, Buffer.from([1]), "kubelet's empty message on stdout first");
    assert.equal(channels.get(1)?.toString(), 'hello world');
    assert.equal(channels.get(2)?.toString(), 'done\n');
    const st = JSON.parse(channels.get(3)!.toString()) as {
      reason: string;
      details: { causes: { message: string }[] };
    };
    assert.equal(st.reason, 'NonZeroExitCode');
    assert.equal(st.details.causes[0]!.message, '5');
    assert.equal(closeCode, 1000);
  });

  test('websocket v4: a fragmented stdin message, a ping, Success; no subprotocol is channel.k8s.io', async () => {
    const url = execUrl(['sh', '-c', 'head -c 11'], { stdin: true });
    const r = await dialWs(url, ['v4.channel.k8s.io']);
    const ws = r.ws!;
    ws.frame(2, Buffer.from([0, 0x61, 0x62, 0x63]), { fin: false });
    ws.frame(9, Buffer.from('p'));
    ws.frame(0, Buffer.from('defghijk'));
    const { channels } = await ws.collect();
    assert.equal(channels.get(1)?.toString(), 'abcdefghijk');
    assert.deepEqual(JSON.parse(channels.get(3)!.toString()), { metadata: {}, status: 'Success' });
    assert.ok(
      ws.messages.some((m) => m.opcode === 10 && m.data.toString() === 'p'),
      'pong',
    );

    const v1 = await dialWs(execUrl(['sh', '-c', 'exit 4']), []);
    assert.equal(v1.ws!.protocol, undefined);
    const out = await v1.ws!.collect();
    assert.match(out.channels.get(3)!.toString(), /^command terminated with non-zero exit code/);
  });

  test('websocket v5 with a tty: resize messages on channel 4 reach the pty', async () => {
    const n = backend.calls.length + 1;
    const url = execUrl(['sh', '-c', 'while read x; do stty size; done'], { tty: true, stdin: true });
    const ws = (await dialWs(url, ['v5.channel.k8s.io'])).ws!;
    ws.send(4, JSON.stringify({ Width: 99, Height: 33 }));
    for (let i = 0; i < 50 && !ws.channel(1).toString().includes('33 99'); i++) {
      const before = ws.channel(1).length;
      ws.send(0, '\n');
      await ws.until(() => /\d+ \d+\r?\n/.test(ws.channel(1).subarray(before).toString()));
    }
    assert.match(ws.channel(1).toString(), /33 99/);
    assert.deepEqual((await backend.call(n)).resizes[0], { width: 99, height: 33 });
    ws.socket.destroy();
    assert.equal(await (await backend.call(n)).outcome, 'aborted');
  });

  test('websocket v4.base64: text messages, the channel as a digit, the data in base64', async () => {
    const url = execUrl(['sh', '-c', 'head -c 5; exit 2'], { stdin: true });
    const r = await dialWs(url, ['v4.base64.channel.k8s.io']);
    const ws = r.ws!;
    assert.equal(ws.protocol, 'v4.base64.channel.k8s.io');
    ws.frame(1, Buffer.from('0' + Buffer.from('hello').toString('base64')));
    await ws.collect();
    const text = ws.messages.filter((m) => m.opcode === 1).map((m) => m.data.toString('latin1'));
    assert.equal(text[0], '1', "kubelet's empty stdout message first");
    const on = (ch: string) =>
      Buffer.concat(text.filter((t) => t[0] === ch).map((t) => Buffer.from(t.slice(1), 'base64'))).toString();
    assert.equal(on('1'), 'hello');
    assert.equal(
      (JSON.parse(on('3')) as { details: { causes: { message: string }[] } }).details.causes[0]!.message,
      '2',
    );
    assert.equal(ws.messages.filter((m) => m.opcode === 2).length, 0, 'no binary message');
  });

  test('websocket: an unmasked client frame closes that connection (1002), an unknown subprotocol 400', async () => {
    const n = backend.calls.length + 1;
    const r = await dialWs(execUrl(['sh', '-c', 'exec sleep 1000'], { stdin: true }), ['v5.channel.k8s.io']);
    r.ws!.frame(2, Buffer.from([0, 1, 2]), { mask: false });
    const { closeCode } = await r.ws!.collect();
    assert.equal(closeCode, 1002);
    assert.equal(await (await backend.call(n)).outcome, 'aborted');
    const refused = await dialWs(execUrl(['true']), ['v9.channel.k8s.io']);
    assert.equal(refused.status, 400);
    const ok = await dialWs(execUrl(['echo', 'still']), ['v5.channel.k8s.io']);
    assert.equal((await ok.ws!.collect()).channels.get(1)?.toString(), 'still\n');
  });

  test('websocket port-forward: the port first on each channel, 200 KiB both ways, a refused port', async () => {
    const url = server.urlForPortForward({ podSandboxId: 'pod1', ports: [echoPort, closedPort] });
    const n = backend.calls.length + 1;
    const r = await dialWs(url, ['v4.channel.k8s.io']);
    assert.equal(r.status, 101);
    const ws = r.ws!;
    const le = (p: number) => Buffer.from([p & 0xff, p >> 8]);
    const payload = randomBytes(200 * 1024);
    for (let off = 0; off < payload.length; off += 32 * 1024) ws.send(0, payload.subarray(off, off + 32 * 1024));
    await ws.until(() => ws.channel(0).length >= 2 + payload.length && ws.channel(3).length > 2);
    assert.deepEqual(ws.channel(0).subarray(0, 2), le(echoPort));
    assert.equal(sha(ws.channel(0).subarray(2)), sha(payload));
    assert.deepEqual(ws.channel(1), le(echoPort), 'no error for the echo port');
    assert.deepEqual(ws.channel(2), le(closedPort));
    assert.deepEqual(ws.channel(3).subarray(0, 2), le(closedPort));
    assert.match(
      ws.channel(3).subarray(2).toString(),
      /^error forwarding port \d+ to pod pod1, uid : connect ECONNREFUSED/,
    );
    ws.frame(8, Buffer.from([0x03, 0xe8]));
    await ws.done;
    assert.equal(await (await backend.call(n)).outcome, 'aborted', 'the echo forwarding ends with the client');
  });

  test("an idle SPDY connection is closed after kubelet's 4 hours, an active one is not", async () => {
    const clock = new ManualClock();
    const s2 = new StreamServer({ backend, address: '127.0.0.1', port: 0, clock });
    await s2.start();
    try {
      const idle = await dialPortForward(s2.urlForPortForward({ podSandboxId: 'p', ports: [] }));
      const busy = await dialPortForward(s2.urlForPortForward({ podSandboxId: 'p', ports: [] }));
      clock.advance(3 * 60 * 60 * 1000);
      // Activity on one of them: a PING, answered (awaited, not timed).
      busy.ping(1);
      while (!busy.pings.includes(1)) await new Promise((res) => setImmediate(res));
      clock.advance(60 * 60 * 1000);
      await idle.done;
      assert.equal(busy.closed, false);
      const f = await openForward(busy, echoPort, 0);
      const back = readAll(f.data);
      f.data.end('alive');
      assert.equal((await back).toString(), 'alive');
      busy.close();
    } finally {
      await s2.close();
    }
  });

  test('stream creation timeouts (30 s): exec closes the connection, port-forward answers on the error stream', async () => {
    const clock = new ManualClock();
    const s2 = new StreamServer({ backend, address: '127.0.0.1', port: 0, clock });
    await s2.start();
    try {
      const n = backend.calls.length;
      const url = s2.urlForExec({
        containerId: 'c',
        cmd: ['true'],
        tty: false,
        stdin: false,
        stdout: true,
        stderr: true,
      });
      const r = await dialSpdy(url, ['v4.channel.k8s.io']);
      await r.conn!.createStream({ streamtype: 'error' }); // stdout and stderr never come
      clock.advance(29_000);
      assert.equal(r.conn!.closed, false);
      clock.advance(1_000);
      await r.conn!.done;
      assert.equal(backend.calls.length, n, 'nothing ran');

      const pf = await dialPortForward(s2.urlForPortForward({ podSandboxId: 'p', ports: [] }));
      const lonely = await pf.createStream({ streamtype: 'error', port: '80', requestid: '9' });
      lonely.end();
      const text = readAll(lonely);
      clock.advance(30_000);
      assert.equal((await text).toString(), '(request=9) timed out waiting for streams');
      pf.close();
    } finally {
      await s2.close();
    }
  });

  test('an idle websocket exec is closed after 4 hours and its process killed', async () => {
    const clock = new ManualClock();
    const s2 = new StreamServer({ backend, address: '127.0.0.1', port: 0, clock });
    await s2.start();
    try {
      const n = backend.calls.length + 1;
      const url = s2.urlForExec({
        containerId: 'c',
        cmd: ['sh', '-c', 'exec sleep 100000'],
        tty: false,
        stdin: true,
        stdout: true,
        stderr: false,
      });
      const ws = (await dialWs(url, ['v5.channel.k8s.io'])).ws!;
      await backend.call(n);
      clock.advance(4 * 60 * 60 * 1000);
      await ws.done;
      assert.equal(await (await backend.call(n)).outcome, 'aborted');
    } finally {
      await s2.close();
    }
  });

  test('PING is answered', async () => {
    const r = await dialSpdy(execUrl(['true']), ['v4.channel.k8s.io']);
    const conn = r.conn!;
    conn.ping(7);
    while (!conn.pings.includes(7)) await new Promise((res) => setImmediate(res));
    conn.socket.destroy();
  });

  test('close() ends open sessions and their backends', async () => {
    const s2 = new StreamServer({ backend, address: '127.0.0.1', port: 0, clock: systemClock });
    await s2.start();
    const n = backend.calls.length + 1;
    const url = s2.urlForExec({
      containerId: 'c',
      cmd: ['sh', '-c', 'echo up; exec sleep 1000'],
      tty: false,
      stdin: false,
      stdout: true,
      stderr: false,
    });
    const s = await openCommand(url, { stdout: true });
    await readUntil(s.stdout!, (t) => t.includes('up'));
    await s2.close();
    assert.equal(await (await backend.call(n)).outcome, 'aborted');
    await s.conn.done;
  });
});
