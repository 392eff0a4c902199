/**
 * The rooted file layer's pure rules and its walk on real (temporary) trees: archive names are
 * cleaned or refused, a walk never leaves the root whatever the symlinks say, mounts are routed,
 * and a tar entry holds exactly the bytes its header announced.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, rmSync, symlinkSync, writeFileSync, readFileSync, truncateSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { PassThrough } from 'node:stream';
import * as tar from 'tar-stream';
import { entryParts, checkHeader } from '../../src/archive/cp-in.js';
import { RootedFs, splitPath, removeTree, readFileInRoot } from '../../src/archive/rooted.js';
import { O_DIRECTORY, O_PATH, openat2 } from '../../src/base/syscalls.js';
import { closeSync, existsSync } from 'node:fs';
import { packInto, addEntry } from '../../src/archive/entry.js';
import { packPath, resolveInRoot } from '../../src/archive/container-fs.js';

test('entryParts: names are cleaned like dockerd, climbing above the destination is refused', () => {
  assert.deepEqual(entryParts('a/b/c'), ['a', 'b', 'c']);
  assert.deepEqual(entryParts('/etc/passwd'), ['etc', 'passwd'], 'a leading slash is dropped');
  assert.deepEqual(entryParts('./a//b/./'), ['a', 'b']);
  assert.deepEqual(entryParts('a/../b'), ['b']);
  assert.deepEqual(entryParts('.'), []);
  for (const bad of ['..', '../x', 'a/../../x', '/../x', 'a/b/../../../c'])
    assert.throws(() => entryParts(bad), /escapes the destination/, bad);
  assert.throws(() => entryParts('x'.repeat(256)), /longer than 255/);
  assert.throws(() => entryParts('a/'.repeat(2049)), /longer than 4096/);
  assert.throws(() => entryParts('a\0b'), /NUL/);
});

test('checkHeader: devices and unknown types are refused, links must name something', () => {
  const h = (o: Partial<tar.Header>) => ({ name: 'x', ...o }) as tar.Header;
  for (const type of ['file', 'directory', 'fifo', 'contiguous-file'] as const) checkHeader(h({ type }));
  checkHeader(h({ type: 'symlink', linkname: '/anywhere/at/all' }));
  checkHeader(h({ type: 'link', linkname: 'a/b' }));
  assert.throws(() => checkHeader(h({ type: 'character-device', devmajor: 1, devminor: 1 })), /device node/);
  assert.throws(() => checkHeader(h({ type: 'block-device', devmajor: 8 })), /device node/);
  assert.throws(() => checkHeader(h({ type: 'link', linkname: '../../etc/shadow' })), /escapes/);
  assert.throws(() => checkHeader(h({ type: 'link', linkname: '.' })), /destination directory itself/);
  assert.throws(() => checkHeader(h({ type: 'symlink', linkname: '' })), /no target/);
  assert.throws(() => checkHeader(h({ type: 'symlink', linkname: 'x'.repeat(5000) })), /too long/);
});

test('splitPath keeps .. for the walk and drops the rest of the noise', () => {
  assert.deepEqual(splitPath('//a/./b/../c/'), ['a', 'b', '..', 'c']);
});

test('RootedFs.resolve: symlinks and .. stay inside the root; mounts are routed; the last link is kept unless followed', async () => {
  const base = mkdtempSync(join(tmpdir(), 'rooted-'));
  try {
    const root = join(base, 'root');
    const vol = join(base, 'vol');
    const outside = join(base, 'outside');
    mkdirSync(join(root, 'etc'), { recursive: true });
    mkdirSync(vol);
    mkdirSync(outside);
    writeFileSync(join(outside, 'secret'), 'host');
    writeFileSync(join(root, 'etc', 'secret'), 'root');
    writeFileSync(join(vol, 'v'), 'volume');
    symlinkSync(outside, join(root, 'abs')); // absolute: means <root><outside>
    symlinkSync('../../../../..', join(root, 'etc', 'up'));
    symlinkSync('/data', join(root, 'to-data'));
    symlinkSync('loop', join(root, 'loop'));
    const fs = RootedFs.open(root, [{ destination: '/data', source: vol, readOnly: true }]);
    try {
      const read = (p: string) => {
        let r;
        try {
          r = fs.resolve(p, { followLast: true });
        } catch (e) {
          if ((e as { code?: string }).code === 'ENOENT') return null;
          throw e;
        }
        try {
          return r.fd < 0 ? null : readFileSync(`/proc/self/fd/${r.fd}`, 'utf8');
        } finally {
          r.close();
        }
      };
      assert.equal(read('/abs/secret'), null, 'an absolute symlink is taken inside the root');
      assert.equal(read('/etc/up/etc/secret'), 'root', '.. stops at the root');
      assert.equal(read('/../../etc/secret'), 'root');
      assert.equal(read('/data/v'), 'volume', 'a path in a mount reaches the mount');
      assert.equal(read('/to-data/v'), 'volume', 'a symlink into a mount reaches the mount');
      assert.equal(read('/data/../etc/secret'), 'root', '.. out of a mount goes back to its parent in the container');
      const ro = fs.resolve('/data/new', {});
      assert.equal(ro.readOnly, true);
      assert.equal(ro.fd, -1, 'a missing last component is reported, not an error');
      ro.close();
      const link = fs.resolve('/to-data', { followLast: false });
      assert.ok(link.st?.isSymbolicLink());
      assert.equal(link.path, '/to-data');
      link.close();
      const mountRoot = fs.resolve('/data', {});
      assert.equal(mountRoot.isMountRoot, true);
      mountRoot.close();
      assert.throws(() => fs.resolve('/loop/x'), /ELOOP/);
      assert.throws(() => fs.resolve('/etc/secret/x'), /ENOTDIR/);
      assert.throws(() => fs.resolve('/nope/x'), /ENOENT/);
      assert.throws(() => fs.resolve('/etc\0/secret'), /EINVAL/);
      const made = fs.resolve('/new/dirs/here', { mkdirs: true });
      assert.ok(made.st?.isDirectory());
      made.close();
    } finally {
      fs.close();
    }
    assert.equal(readFileSync(join(outside, 'secret'), 'utf8'), 'host');
    assert.equal((await readFileInRoot(root, '/etc/up/etc/secret')).toString(), 'root');
    // the string form: a dangling absolute link is expanded in the root, never left in the path for the kernel to follow
    const viaLink = await resolveInRoot(root, '/abs/secret');
    assert.equal(viaLink, join(root, outside, 'secret'));
    assert.throws(() => readFileSync(viaLink), /ENOENT/);
    assert.equal(await resolveInRoot(root, '/etc/up/nope/x'), join(root, 'nope/x'));
    assert.equal(await resolveInRoot(root, '/to-data', false), join(root, 'to-data'));
    await assert.rejects(resolveInRoot(root, '/loop/x'), /too many levels/);
    await assert.rejects(readFileInRoot(root, '/abs/secret'), /ENOENT/);
    // a destination through a symlink is where the runtime mounts it: the symlink's target
    mkdirSync(join(root, 'run'));
    mkdirSync(join(root, 'var'));
    symlinkSync('/run', join(root, 'var', 'run'));
    const fs2 = RootedFs.open(root, [{ destination: '/var/run', source: vol, readOnly: false }]);
    try {
      const r = fs2.resolve('/run/v', { followLast: true });
      assert.equal(readFileSync(`/proc/self/fd/${r.fd}`, 'utf8'), 'volume');
      r.close();
    } finally {
      fs2.close();
    }
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
});

async function tarEntries(
  produce: (out: PassThrough) => Promise<void>,
): Promise<Array<{ name: string; size: number; body: Buffer }>> {
  const out = new PassThrough();
  const ex = tar.extract();
  const got: Array<{ name: string; size: number; body: Buffer }> = [];
  const done = new Promise<void>((resolve, reject) => {
    ex.on('entry', (h, s, next) => {
      const parts: Buffer[] = [];
      s.on('data', (c: unknown) => void parts.push(c as Buffer));
      s.on('end', () => {
        got.push({ name: h.name, size: h.size ?? 0, body: Buffer.concat(parts) });
        next();
      });
    });
    ex.on('finish', () => resolve());
    ex.on('error', reject);
  });
  out.pipe(ex as unknown as NodeJS.WritableStream);
  await produce(out);
  await done;
  return got;
}

test('a file shorter or longer than its header: the entry is padded or cut to the header size', async () => {
  const base = mkdtempSync(join(tmpdir(), 'pack-'));
  try {
    const f = join(base, 'f');
    writeFileSync(f, 'abc');
    const got = await tarEntries(async (out) => {
      const { pack, done } = packInto(out);
      await addEntry(pack, { name: 'short', type: 'file', size: 10 }, f);
      await addEntry(pack, { name: 'long', type: 'file', size: 2 }, f);
      pack.finalize();
      await done;
    });
    assert.deepEqual(
      got.map((e) => [e.name, e.size, e.body.toString('latin1')]),
      [
        ['short', 10, 'abc\0\0\0\0\0\0\0'],
        ['long', 2, 'ab'],
      ],
    );
    // and through the rooted walk, with the file truncated after it was stat'ed
    const root = join(base, 'root');
    mkdirSync(root);
    writeFileSync(join(root, 'g'), 'x'.repeat(100_000));
    const fs = RootedFs.open(root);
    try {
      const viaWalk = await tarEntries(async (out) => {
        const p = packPath(fs, '/g', out);
        truncateSync(join(root, 'g'), 10);
        await p;
      });
      assert.equal(viaWalk.length, 1);
      assert.equal(viaWalk[0]!.body.length, viaWalk[0]!.size);
    } finally {
      fs.close();
    }
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
});

test('removeTree removes through fds and never follows a symlink out', async () => {
  const base = mkdtempSync(join(tmpdir(), 'rm-'));
  try {
    const outside = join(base, 'outside');
    mkdirSync(join(outside, 'keep'), { recursive: true });
    writeFileSync(join(outside, 'keep', 'file'), 'keep');
    mkdirSync(join(base, 'root', 'victim', 'deep'), { recursive: true });
    symlinkSync(outside, join(base, 'root', 'victim', 'deep', 'link'));
    symlinkSync(join(outside, 'keep'), join(base, 'root', 'victim', 'dirlink'));
    writeFileSync(join(base, 'root', 'victim', 'f'), 'x');
    const fd = openat2(-100, join(base, 'root'), O_PATH | O_DIRECTORY, 0);
    try {
      await removeTree(fd, 'victim');
      await removeTree(fd, 'absent');
    } finally {
      closeSync(fd);
    }
    assert.ok(!existsSync(join(base, 'root', 'victim')));
    assert.equal(readFileSync(join(outside, 'keep', 'file'), 'utf8'), 'keep');
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
});
