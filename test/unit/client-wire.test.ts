/**
 * The CLI's two wires to the daemon (src/client/wire.ts), each against a real unix-socket server:
 * the same bytes and events in the same order, errors as node:net names them, nothing after close().
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { createServer, type Socket } from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { tmpdir } from 'node:os';
import { dial, wireKind, type WireKind } from '../../src/client/wire.js';

const WIRES: WireKind[] = ['pipe', 'net'];

async function server(onConn: (sock: Socket) => void): Promise<{ path: string; close(): void }> {
  const dir = mkdtempSync(join(tmpdir(), 'berth-wire-'));
  const path = join(dir, 's.sock');
  const srv = createServer((sock) => {
    sock.on('error', () => undefined);
    onConn(sock);
  });
  await new Promise<void>((r) => srv.listen(path, r));
  return { path, close: () => (srv.close(), rmSync(dir, { recursive: true, force: true })) };
}

/** Everything the wire reports, until end or error. */
function collect(path: string, kind: WireKind, send: Buffer[]) {
  const events: string[] = [];
  const data: Buffer[] = [];
  let w: ReturnType<typeof dial> | undefined;
  const done = new Promise<void>((resolve) => {
    w = dial(
      path,
      {
        data: (b) => {
          events.push('data');
          data.push(b);
        },
        end: () => {
          events.push('end');
          resolve();
        },
        error: (e) => {
          events.push(`error ${e.code} ${e.syscall}`);
          resolve();
        },
      },
      kind,
    );
    for (const b of send) w.write(b); // before the connect completes: queued, in order
  });
  return { done, data, events, wire: () => w! };
}

test('on this Node the CLI takes the libuv pipe, unless told not to', () => {
  // A new Node whose bindings have another shape falls back to net: this test says so loudly,
  // as the CLI's start-up figure would quietly lose ~5 ms (cli/README.md "Start-up").
  assert.equal(wireKind(), 'pipe');
  const dir = mkdtempSync(join(tmpdir(), 'berth-wire-kind-'));
  try {
    const script = join(dir, 'kind.mjs');
    const wire = resolve(import.meta.dirname, '../../src/client/wire.js');
    writeFileSync(script, `import { wireKind } from ${JSON.stringify(wire)};\nprocess.stdout.write(wireKind());\n`);
    const run = (env: Record<string, string>, args: string[] = []) =>
      execFileSync(process.execPath, [...args, script], { env: { ...process.env, ...env } }).toString();
    assert.equal(run({}), 'pipe');
    assert.equal(run({ BERTH_CLI_WIRE: 'net' }), 'net');
    // Node warns about process.binding under --pending-deprecation: then the CLI does not touch it
    assert.equal(run({}, ['--pending-deprecation']), 'net');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

for (const kind of WIRES) {
  test(`${kind}: a MiB each way, in order, then end`, async () => {
    const up = Buffer.alloc(1 << 20);
    for (let i = 0; i < up.length; i++) up[i] = (i * 7) & 0xff;
    const s = await server((sock) => {
      const got: Buffer[] = [];
      let n = 0;
      sock.on('data', (b: Buffer) => {
        got.push(b);
        n += b.length;
        if (n === up.length + 5) {
          // echo it all back, then close our side
          sock.end(Buffer.concat(got));
        }
      });
    });
    try {
      const c = collect(s.path, kind, [Buffer.from('hello'), up]);
      await c.done;
      assert.equal(c.events.at(-1), 'end');
      assert.ok(c.events.slice(0, -1).every((e) => e === 'data'));
      assert.ok(Buffer.concat(c.data).equals(Buffer.concat([Buffer.from('hello'), up])));
    } finally {
      s.close();
    }
  });

  test(`${kind}: no socket is ENOENT, a socket nobody listens on is ECONNREFUSED (connect)`, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'berth-wire-'));
    try {
      const none = collect(join(dir, 'none.sock'), kind, [Buffer.from('x')]);
      await none.done;
      assert.deepEqual(none.events, ['error ENOENT connect']);
      // a socket file left behind by a dead daemon (killed: nothing unlinked it)
      const stale = join(dir, 'stale.sock');
      const dead = spawnSync(process.execPath, [
        '-e',
        `require('net').createServer().listen(${JSON.stringify(stale)}, () => process.kill(process.pid, 'SIGKILL'))`,
      ]);
      assert.equal(dead.signal, 'SIGKILL');
      const refused = collect(stale, kind, []);
      await refused.done;
      assert.deepEqual(refused.events, ['error ECONNREFUSED connect']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test(`${kind}: after close() nothing more is reported, and close() may come twice`, async () => {
    let peer: Socket | undefined;
    const s = await server((sock) => {
      peer = sock;
      sock.write('first');
    });
    try {
      const events: string[] = [];
      const first = new Promise<void>((resolve) => {
        const w = dial(
          s.path,
          {
            data: () => {
              events.push('data');
              w.close();
              w.close();
              resolve();
            },
            end: () => events.push('end'),
            error: () => events.push('error'),
          },
          kind,
        );
      });
      await first;
      await new Promise((r) => setTimeout(r, 20));
      peer?.end('more'); // the peer writes and closes after the close: nobody hears it
      await new Promise((r) => setTimeout(r, 50));
      assert.deepEqual(events, ['data']);
    } finally {
      s.close();
    }
  });
}
