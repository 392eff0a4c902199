/**
 * Which conmon berthd runs (runtime/host.ts `findConmon`): scripts/conmon.sh's build in berth's
 * own dir when it answers `--version`, else the system's. Real files in a temporary directory.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findConmon } from '../../src/runtime/host.js';

const dirs: string[] = [];
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

function ownDir(script?: string): string {
  const d = mkdtempSync(join(tmpdir(), 'berth-host-'));
  dirs.push(d);
  if (script !== undefined) writeFileSync(join(d, 'conmon'), `#!/bin/sh\n${script}\n`, { mode: 0o755 });
  return d;
}

test('the own build is preferred when it answers --version', async () => {
  const d = ownDir('echo "conmon version 9.8.7"; echo "commit: unknown"');
  assert.deepEqual(await findConmon(d), { path: join(d, 'conmon'), version: '9.8.7' });
});

test('a broken own build falls back to the system conmon', async () => {
  const d = ownDir('exit 1');
  const c = await findConmon(d);
  assert.notEqual(c?.path, join(d, 'conmon'));
  assert.deepEqual(c, await findConmon(ownDir()));
});

test('without an own build the system conmon is used', async () => {
  const c = await findConmon(ownDir());
  // this host has Debian's conmon (HOST.md)
  assert.ok(c && c.path.endsWith('/conmon') && !c.path.startsWith('/usr/local/lib/berth'), JSON.stringify(c));
  assert.match(c.version, /^\d+\.\d+/);
});
