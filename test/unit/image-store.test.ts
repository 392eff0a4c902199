import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, symlinkSync, existsSync, readdirSync, rmSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { Readable, PassThrough } from 'node:stream';
import * as tar from 'tar-stream';
import { parseReference, normalizeTagged, idPrefix } from '../../src/image/reference.js';
import { chainIds } from '../../src/image/store.js';
import { ContentStore } from '../../src/content/store.js';
import { resolveInRoot, extractInto, statPath } from '../../src/archive/container-fs.js';
import { RootedFs } from '../../src/archive/rooted.js';
import { sha256 } from '../../src/base/digest.js';

test('references normalize like Docker', () => {
  assert.equal(normalizeTagged('busybox'), 'busybox:latest');
  assert.equal(normalizeTagged('docker.io/library/busybox:1.36'), 'busybox:1.36');
  assert.equal(normalizeTagged('localhost:5000/team/app'), 'localhost:5000/team/app:latest');
  assert.deepEqual(parseReference(`a/b@sha256:${'0'.repeat(64)}`), { name: 'a/b', digest: `sha256:${'0'.repeat(64)}` });
  assert.throws(() => parseReference('UPPER'), /must be lowercase/);
  assert.throws(() => parseReference('bad name'), /invalid reference format/);
  assert.throws(() => parseReference('a::b'), /invalid reference format/);
  assert.equal(idPrefix('sha256:abc'), 'abc');
  assert.equal(idPrefix('busybox'), null);
});

test('chain ids follow the image spec', () => {
  const a = `sha256:${'a'.repeat(64)}`;
  const b = `sha256:${'b'.repeat(64)}`;
  assert.deepEqual(chainIds([a, b]), [a, sha256(`${a} ${b}`)]);
});

test('content: a blob lands only when its digest matches; nothing is left of a failed write', async () => {
  const root = mkdtempSync(join(tmpdir(), 'content-'));
  try {
    const cs = new ContentStore(root);
    await cs.init();
    const good = await cs.write(Readable.from([Buffer.from('hello')]), { digest: sha256('hello') });
    assert.equal(good.size, 5);
    assert.ok(cs.has(good.digest));
    await assert.rejects(
      cs.write(Readable.from([Buffer.from('tampered')]), { digest: sha256('hello2') }),
      /digest mismatch/,
    );
    assert.ok(!cs.has(sha256('tampered')));
    assert.deepEqual(readdirSync(join(root, 'content', 'ingest')), []);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

async function tarOf(
  entries: Array<{ name: string; body?: string; type?: 'file' | 'symlink'; linkname?: string }>,
): Promise<Readable> {
  const pack = tar.pack();
  for (const e of entries)
    pack.entry({ name: e.name, type: e.type ?? 'file', linkname: e.linkname ?? '', mode: 0o644 }, e.body ?? '');
  pack.finalize();
  const out = new PassThrough();
  (pack as unknown as NodeJS.ReadableStream).pipe(out);
  return out;
}

test('cp: paths and archive entries never leave the container root', async () => {
  const base = mkdtempSync(join(tmpdir(), 'cp-'));
  const root = join(base, 'root');
  const spoolDir = join(base, 'spool');
  const fs = () => RootedFs.open(root);
  try {
    mkdirSync(join(root, 'etc'), { recursive: true });
    symlinkSync('/../../..', join(root, 'escape'));
    symlinkSync('../../..', join(root, 'etc', 'up'));
    assert.equal(await resolveInRoot(root, '/escape/etc'), join(root, 'etc'));
    assert.equal(await resolveInRoot(root, '/etc/up/x'), join(root, 'x'));
    assert.equal(await resolveInRoot(root, '../../etc'), join(root, 'etc'));
    const f = fs();
    try {
      await extractInto(f, '/escape', await tarOf([{ name: 'ok.txt', body: 'fine' }]), { spoolDir });
      assert.equal(readFileSync(join(root, 'ok.txt'), 'utf8'), 'fine');
      await assert.rejects(
        extractInto(f, '/', await tarOf([{ name: '../outside.txt', body: 'bad' }]), { spoolDir }),
        /escapes the destination/,
      );
      assert.ok(!existsSync(join(base, 'outside.txt')));
      await extractInto(f, '/etc', await tarOf([{ name: 'up/through-link.txt', body: 'x' }]), { spoolDir });
      assert.ok(existsSync(join(root, 'through-link.txt')), 'a symlink in the path resolves inside the root');
      assert.ok(!existsSync(join(base, 'through-link.txt')));
      const st = statPath(f, '/etc');
      assert.ok(st.mode >= 2 ** 31, 'directories carry Go ModeDir');
      assert.throws(() => statPath(f, '/nope'), /Could not find the file \/nope in container/);
    } finally {
      f.close();
    }
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
});
