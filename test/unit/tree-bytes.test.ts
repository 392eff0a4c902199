/**
 * duBytes (base/tree-bytes.ts), what `system df` and `ps --size` report as a writable layer's
 * size: the same figure as `du -sb` on real (temporary) trees, never following a symlink out.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { linkSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { duBytes } from '../../src/base/tree-bytes.js';

const du = (p: string): number => Number(execFileSync('du', ['-sb', p]).toString().split('\t')[0]);

test('duBytes: what du -sb prints (directories, symlinks, hard links once), 0 when gone', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tree-bytes-'));
  try {
    const t = join(dir, 'fs');
    mkdirSync(join(t, 'a', 'b', 'c'), { recursive: true });
    writeFileSync(join(t, 'a', 'f'), 'hello\n');
    linkSync(join(t, 'a', 'f'), join(t, 'a', 'b', 'hard'));
    writeFileSync(join(t, 'a', 'b', 'c', 'big'), Buffer.alloc(77_777));
    symlinkSync('/etc', join(t, 'a', 'to-etc')); // its own size, not /etc's
    symlinkSync('..', join(t, 'a', 'b', 'up'));
    for (let i = 0; i < 2000; i++) writeFileSync(join(t, 'a', `n${i}`), String(i)); // more than one getdents
    assert.equal(duBytes(t), du(t));
    assert.equal(duBytes(join(t, 'a', 'b')), du(join(t, 'a', 'b')));
    assert.equal(duBytes(join(t, 'a', 'to-etc')), 0, 'a symlink given as the tree is not followed');
    assert.equal(duBytes(join(t, 'a', 'f')), 0, 'not a directory');
    assert.equal(duBytes(join(dir, 'gone')), 0);
    // a tree past the bound is left to the caller (a container's millions of files would hold the event loop)
    assert.equal(duBytes(t, 1000), undefined);
    assert.equal(duBytes(t, 4096), du(t));
    // dockerd's directory.Size (SizeRw, a volume's size): the files' bytes, a hard link once, no directory's own
    const files = 6 + 77_777 + '/etc'.length + '..'.length + [...Array(2000).keys()].join('').length;
    assert.equal(duBytes(t, Infinity, false), files);
    const empty = join(dir, 'empty');
    mkdirSync(join(empty, 'etc'), { recursive: true });
    writeFileSync(join(empty, 'etc', 'hostname'), ''); // what a container that wrote nothing has
    assert.equal(duBytes(empty, Infinity, false), 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
