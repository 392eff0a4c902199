/**
 * Issue #17: berthd's CRI flags. `--cri=false` serves no CRI socket (and `berth pods` says so
 * cleanly); a relative `--cri-socket` is refused before anything is made.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO, startDaemon } from './harness.js';

test('--cri=false: no CRI socket; berth pods fails with a clear message', async () => {
  const dir = mkdtempSync('/tmp/berth-criflags-');
  const sock = join(dir, 'cri.sock');
  const d = await startDaemon({ args: ['--cri-socket', sock, '--cri=false'], loadFixture: false });
  try {
    assert.equal(existsSync(sock), false);
    const r = await d.berth(['pods', '--cri-socket', sock], { allowFail: true, timeoutMs: 60_000 });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^berth: .*(No such file|ENOENT|connect|UNAVAILABLE)/i);
  } finally {
    await d.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a relative --cri-socket is a usage error (exit 2), nothing made', () => {
  const root = mkdtempSync('/tmp/berth-criflags-root-');
  rmSync(root, { recursive: true });
  const r = spawnSync(join(REPO, 'bin/berthd'), ['--root', root, '--cri-socket', 'rel/cri.sock'], {
    encoding: 'utf8',
    timeout: 30_000,
  });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /--cri-socket rel\/cri\.sock: an absolute path/);
  assert.equal(existsSync(root), false);
});

test("the default CRI socket is the exec-root's cri.sock, 0600 (never another daemon's)", async () => {
  const d = await startDaemon({ loadFixture: false });
  try {
    const sock = join(d.dir, 'run', 'cri.sock');
    assert.ok(existsSync(sock), sock);
    assert.equal(statSync(sock).mode & 0o777, 0o600);
    const r = await d.berth(['pods', '--cri-socket', sock]);
    assert.match(r.stdout, /^POD ID\s+CREATED\s+STATE/);
  } finally {
    await d.stop();
  }
});

test('a streaming address that cannot be bound: berthd and its CRI run on, saying why; a CRI socket that cannot be made: the Docker API runs on', async () => {
  // 192.0.2.0/24 is TEST-NET-1: no interface here has 192.0.2.254, so the bind fails (EADDRNOTAVAIL)
  const d = await startDaemon({ loadFixture: false, args: ['--cri-stream-address', '192.0.2.254'] });
  try {
    assert.match(d.logs(), /CRI streaming server not started: Exec, Attach and PortForward are off/);
    const r = await d.berth(['pods', '--cri-socket', join(d.dir, 'run', 'cri.sock')]);
    assert.match(r.stdout, /^POD ID\s+CREATED\s+STATE/);
    assert.equal((await d.api('GET', '/_ping')).status, 200);
  } finally {
    await d.stop();
  }
  // the socket's directory is a file: the endpoint cannot listen, the daemon answers the Docker API all the same
  const blocker = join(mkdtempSync('/var/tmp/berth-cri-flag-'), 'file');
  writeFileSync(blocker, '');
  const d2 = await startDaemon({ loadFixture: false, args: ['--cri-socket', join(blocker, 'cri.sock')] });
  try {
    assert.match(d2.logs(), /CRI endpoint not started/);
    assert.equal((await d2.api('GET', '/_ping')).status, 200);
  } finally {
    await d2.stop();
    rmSync(join(blocker, '..'), { recursive: true, force: true });
  }
});
