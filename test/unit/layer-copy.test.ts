/**
 * applyLayer of a plain layer tar file takes the copy_file_range path (archive/tar-reader.ts
 * TarFile): file bodies of every size (empty, inside the 64 KiB read-ahead, across it, across
 * the 8 MiB copy step) land byte for byte with their modes, the entries after a big body are
 * still read at the right offsets, and a body cut short is `truncated`, as from a stream. The
 * gzip form of the same layer (the stream path) gives the same tree.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { gzipSync } from 'node:zlib';
import { applyLayer } from '../../src/archive/layer.js';

function header(name: string, flag: string, size: number, mode: number): Buffer {
  const h = Buffer.alloc(512);
  const put = (s: string, off: number, len: number) => Buffer.from(s, 'latin1').copy(h, off, 0, len);
  const oct = (n: number, off: number, len: number) => put(n.toString(8).padStart(len - 1, '0') + '\0', off, len);
  put(name, 0, 100);
  oct(mode, 100, 8);
  oct(0, 108, 8);
  oct(0, 116, 8);
  oct(size, 124, 12);
  oct(0, 136, 12);
  h.write(flag, 156, 'latin1');
  put('ustar\0', 257, 6);
  put('00', 263, 2);
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const c of h) sum += c;
  put(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8);
  return h;
}
const pad = (n: number) => Buffer.alloc((512 - (n % 512)) % 512);

const files: Array<[string, Buffer, number]> = [
  ['d/empty', Buffer.alloc(0), 0o600],
  ['d/small', randomBytes(100), 0o644],
  ['d/across-read-ahead', randomBytes(70_000), 0o640],
  ['big', randomBytes(9 * 1024 * 1024 + 123), 0o755],
  ['after-big', randomBytes(3000), 0o604],
];

function layer(): Buffer {
  const parts = [header('d/', '5', 0, 0o755)];
  for (const [name, data, mode] of files) parts.push(header(name, '0', data.length, mode), data, pad(data.length));
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

function check(dir: string): void {
  for (const [name, data, mode] of files) {
    assert.ok(readFileSync(join(dir, name)).equals(data), `${name}: same bytes`);
    assert.equal(statSync(join(dir, name)).mode & 0o7777, mode, `${name}: mode`);
  }
}

test('applyLayer from a plain tar file: every body lands whole, in place, with its mode', async () => {
  const w = mkdtempSync(join(tmpdir(), 'berth-layer-copy-'));
  try {
    const tar = layer();
    writeFileSync(join(w, 'layer.tar'), tar);
    mkdirSync(join(w, 'plain'));
    await applyLayer(join(w, 'layer.tar'), join(w, 'plain'));
    check(join(w, 'plain'));
    // the stream path (gzip) gives the same tree
    writeFileSync(join(w, 'layer.tar.gz'), gzipSync(tar));
    mkdirSync(join(w, 'gz'));
    await applyLayer(join(w, 'layer.tar.gz'), join(w, 'gz'));
    check(join(w, 'gz'));
  } finally {
    rmSync(w, { recursive: true, force: true });
  }
});

test('applyLayer from a plain tar file: a body cut short is a truncated archive, not a short file', async () => {
  const w = mkdtempSync(join(tmpdir(), 'berth-layer-copy-'));
  try {
    const big = files[3]![1];
    // the header says 9 MiB, the file ends 2 MiB into the body (inside a copy step)
    const cut = Buffer.concat([header('big', '0', big.length, 0o644), big.subarray(0, 2 * 1024 * 1024)]);
    writeFileSync(join(w, 'cut.tar'), cut);
    mkdirSync(join(w, 'out'));
    await assert.rejects(applyLayer(join(w, 'cut.tar'), join(w, 'out')), /invalid layer: truncated tar archive/);
  } finally {
    rmSync(w, { recursive: true, force: true });
  }
});
