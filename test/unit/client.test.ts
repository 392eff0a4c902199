/**
 * The CLI's own HTTP/1.1 client against a raw server on a unix socket that answers in awkward
 * fragments: chunked bodies split mid-size-line and mid-CRLF, Content-Length, HEAD, errors,
 * a 101 upgrade with bytes right behind the head, chunked request bodies.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { PassThrough, Readable } from 'node:stream';
import { ApiError, Client, readText } from '../../src/client/client.js';
import type { WireKind } from '../../src/client/wire.js';

/** json(), pending() and upgradeForOutput() go over either wire (src/client/wire.ts): each is tested on both. */
const WIRES: WireKind[] = ['pipe', 'net'];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A server whose handler gets the raw request text (head + body read so far) and the socket. */
async function serve(
  handler: (req: string, sock: Socket) => void | Promise<void>,
  wire?: WireKind,
): Promise<{ client: Client; close: () => void }> {
  const dir = mkdtempSync(join(tmpdir(), 'berth-client-'));
  const path = join(dir, 's.sock');
  const server: Server = createServer((sock) => {
    let req = '';
    let handled = false;
    sock.on('data', (c: Buffer) => {
      req += c.toString('latin1');
      const complete =
        req.includes('\r\n\r\n') && (!/Transfer-Encoding: chunked/i.test(req) || req.endsWith('0\r\n\r\n'));
      if (complete && !handled) {
        handled = true;
        void handler(req, sock);
      }
    });
    sock.on('error', () => undefined);
  });
  await new Promise<void>((r) => server.listen(path, r));
  return {
    client: new Client(path, wire),
    close: () => (server.close(), rmSync(dir, { recursive: true, force: true })),
  };
}

/** Writes the pieces with a pause between them, so the client sees each as its own read. */
async function dribble(sock: Socket, pieces: string[]): Promise<void> {
  for (const p of pieces) {
    sock.write(p);
    await sleep(5);
  }
}

test('chunked responses split anywhere are decoded; the connection is closed after the last chunk', async () => {
  const s = await serve((_req, sock) =>
    dribble(sock, [
      'HTTP/1.1 200 OK\r\nTransfer-Enc',
      'oding: chunked\r\n\r\n5\r',
      '\nhel',
      'lo\r\n',
      '1',
      '0\r\n',
      ' 0123456789abcd',
      'e\r\n0\r\n\r\n',
    ]),
  );
  try {
    const res = await s.client.stream('GET', '/x');
    assert.equal(res.statusCode, 200);
    assert.equal(await readText(res), 'hello 0123456789abcde');
  } finally {
    s.close();
  }
});

test('readText: a character split across chunks is decoded whole', async () => {
  const stream = new PassThrough();
  const text = readText(stream);
  const bytes = Buffer.from('µs — ok');
  stream.write(bytes.subarray(0, 1)); // the first byte of µ alone
  stream.write(bytes.subarray(1, 5)); // the rest of µ, "s " and the first byte of the dash
  stream.end(bytes.subarray(5));
  assert.equal(await text, 'µs — ok');
});

for (const wire of WIRES)
  test(`Content-Length bodies, JSON, HEAD (headers only) and lower-cased headers (${wire})`, async () => {
    const s = await serve((req, sock) => {
      if (req.startsWith('HEAD'))
        return void sock.end('HTTP/1.1 200 OK\r\nX-Docker-Container-Path-Stat: abc\r\nContent-Length: 99\r\n\r\n');
      const body = '{"Id":"1234"}';
      void dribble(sock, [`HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n\r\n{"Id"`, ':"1234"}']);
    }, wire);
    try {
      assert.deepEqual(await s.client.json('GET', '/containers/x/json'), { Id: '1234' });
      const head = await s.client.stream('HEAD', '/containers/x/archive');
      assert.equal(head.headers['x-docker-container-path-stat'], 'abc');
      assert.equal(await readText(head), '');
    } finally {
      s.close();
    }
  });

for (const wire of WIRES)
  test(`errors carry the daemon's status and message; a dead socket says the daemon is not running (${wire})`, async () => {
    const s = await serve((_req, sock) => {
      const body = '{"message":"No such container: nope"}';
      sock.end(
        `HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`,
      );
    }, wire);
    try {
      await assert.rejects(
        s.client.json('GET', '/containers/nope/json'),
        (e: unknown) => e instanceof ApiError && e.status === 404 && e.message === 'No such container: nope',
      );
    } finally {
      s.close();
    }
    await assert.rejects(
      new Client('/nonexistent/berth.sock', wire).json('GET', '/version'),
      /Cannot connect to the berth daemon/,
    );
    // a daemon that closes without a word
    const mute = await serve((_req, sock) => void sock.end(), wire);
    try {
      await assert.rejects(mute.client.json('GET', '/version'), /closed the connection without answering/);
    } finally {
      mute.close();
    }
  });

test('hijack: 101 with stream bytes right behind the head; the socket stays paused until resumed', async () => {
  const s = await serve((req, sock) => {
    assert.match(req, /Upgrade: tcp/);
    if (req.includes('/containers/gone/')) {
      const body = '{"message":"No such container: gone"}';
      return void sock.end(`HTTP/1.1 404 Not Found\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
    }
    sock.write('HTTP/1.1 101 UPGRADED\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\nfirst');
    setTimeout(() => sock.end('-second'), 20);
  });
  try {
    const sock = await s.client.hijack('/containers/x/attach?stream=1');
    await sleep(50); // nothing may be lost while nobody listens
    let got = '';
    sock.on('data', (c: Buffer) => (got += c.toString()));
    sock.resume();
    await new Promise((r) => sock.on('end', r));
    assert.equal(got, 'first-second');
    // a refused upgrade: the daemon's status and message
    await assert.rejects(
      s.client.hijack('/containers/gone/attach'),
      (e: unknown) => e instanceof ApiError && e.status === 404 && e.message === 'No such container: gone',
    );
  } finally {
    s.close();
  }
});

test('request bodies from a stream go out chunked and arrive whole', async () => {
  let received = '';
  const s = await serve((req, sock) => {
    received = req;
    sock.end('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
  });
  try {
    const res = await s.client.stream('POST', '/images/load', {
      raw: Readable.from([Buffer.from('abc'), Buffer.from('defgh')]),
      headers: { 'Content-Type': 'application/x-tar' },
    });
    assert.equal(await readText(res), 'ok');
    assert.match(received, /Transfer-Encoding: chunked/);
    assert.ok(received.endsWith('\r\n\r\n3\r\nabc\r\n5\r\ndefgh\r\n0\r\n\r\n'));
  } finally {
    s.close();
  }
});

for (const wire of WIRES)
  test(`json() and pending() read the body off the socket: chunked and split, a multi-byte character across chunks, the head before the body (${wire})`, async () => {
    let release: () => void = () => undefined;
    const s = await serve(async (req, sock) => {
      if (req.startsWith('GET')) {
        // "é" is two bytes in UTF-8, split across two chunks
        for (const p of [
          'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n["\xc3\r\n',
          '3\r\n\xa9"]\r\n0\r\n\r\n',
        ]) {
          sock.write(Buffer.from(p, 'latin1'));
          await sleep(5);
        }
        return;
      }
      sock.write('HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n');
      await new Promise<void>((r) => (release = r));
      sock.end('{"StatusCode":3}');
    }, wire);
    try {
      assert.deepEqual(await s.client.json('GET', '/x'), ['é']);
      const wait = await s.client.pending('POST', '/containers/c/wait'); // resolves on the head alone
      let body: string | undefined;
      void wait.text.then((t) => (body = t));
      await sleep(50);
      assert.equal(body, undefined);
      release();
      assert.equal(await wait.text, '{"StatusCode":3}');
    } finally {
      s.close();
    }
  });

for (const wire of WIRES)
  test(`upgradeForOutput: the stream's bytes from right behind the 101 to the close; a refused upgrade is an error (${wire})`, async () => {
    const s = await serve((req, sock) => {
      if (req.includes('/containers/gone/')) {
        const body = '{"message":"No such container: gone"}';
        return void sock.end(`HTTP/1.1 404 Not Found\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
      }
      assert.match(req, /^POST \/v1\.45\/containers\/x\/attach\?stream=1 HTTP\/1\.1\r\n/);
      assert.match(req, /\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n/);
      // a large stream in pieces, the first right behind the head
      sock.write(`HTTP/1.1 101 UPGRADED\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n${'a'.repeat(100)}`);
      sock.write(Buffer.alloc(1 << 20, 'b'));
      setTimeout(() => sock.end('c'), 20);
    }, wire);
    try {
      const got: Buffer[] = [];
      const out = await s.client.upgradeForOutput('/containers/x/attach?stream=1', (b) => got.push(b));
      await out.ended;
      const all = Buffer.concat(got);
      assert.equal(all.length, 100 + (1 << 20) + 1);
      assert.equal(all.toString('latin1', 0, 100), 'a'.repeat(100));
      assert.equal(all.at(-2), 0x62);
      assert.equal(all.at(-1), 0x63);
      await assert.rejects(
        s.client.upgradeForOutput('/containers/gone/attach', () => assert.fail('no stream')),
        (e: unknown) => e instanceof ApiError && e.status === 404 && e.message === 'No such container: gone',
      );
    } finally {
      s.close();
    }
  });
