// Writes a docker-archive of a big image for the registry benchmark: N layers, each a tar of
// one file of random bytes (incompressible, so no engine or registry can win by compressing).
//   node bench/make-image.mjs OUT.tar LAYERS MIB_PER_LAYER NAME:TAG
// Also writes OUT.tar.layers/ with each layer tar as <sha256 hex> (for blob-level uploads).
import { createHash, randomFillSync } from 'node:crypto';
import { mkdirSync, openSync, writeSync, closeSync, writeFileSync, rmSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

const [out, nLayers = '8', mib = '128', ref = 'big:1'] = process.argv.slice(2);
if (!out) throw new Error('usage: make-image.mjs OUT.tar [LAYERS] [MIB] [NAME:TAG]');
const dir = `${out}.build`;
const layersDir = `${out}.layers`;
rmSync(dir, { recursive: true, force: true });
rmSync(layersDir, { recursive: true, force: true });
mkdirSync(dir, { recursive: true });
mkdirSync(layersDir, { recursive: true });

/** A tar holding one regular file `data/<name>` of `size` random bytes (ustar, written by hand). */
function writeLayer(path, name, size) {
  const fd = openSync(path, 'w');
  const hash = createHash('sha256');
  const put = (b) => {
    writeSync(fd, b);
    hash.update(b);
  };
  const header = Buffer.alloc(512);
  const field = (s, off, len) => header.write(s, off, len, 'ascii');
  const oct = (n, len) => n.toString(8).padStart(len - 1, '0') + '\0';
  field(`data/${name}`, 0, 100);
  field(oct(0o644, 8), 100, 8);
  field(oct(0, 8), 108, 8);
  field(oct(0, 8), 116, 8);
  field(oct(size, 12), 124, 12);
  field(oct(0, 12), 136, 12);
  field('        ', 148, 8);
  field('0', 156, 1);
  field('ustar\0', 257, 6);
  field('00', 263, 2);
  let sum = 0;
  for (const b of header) sum += b;
  field(oct(sum, 7), 148, 7);
  put(header);
  const chunk = Buffer.alloc(1 << 20);
  for (let left = size; left > 0; left -= chunk.length) put(randomFillSync(chunk).subarray(0, Math.min(left, chunk.length)));
  const pad = (512 - (size % 512)) % 512;
  put(Buffer.concat([Buffer.alloc(pad), Buffer.alloc(1024)]));
  closeSync(fd);
  return `sha256:${hash.digest('hex')}`;
}

const diffIds = [];
for (let i = 0; i < Number(nLayers); i++) {
  const tmp = join(dir, `layer${i}.tar`);
  const d = writeLayer(tmp, `blob${i}.bin`, Number(mib) * 1024 * 1024);
  diffIds.push(d);
  execFileSync('mv', [tmp, join(dir, `${d.slice(7)}.tar`)]);
}
const config = Buffer.from(JSON.stringify({
  architecture: 'amd64', os: 'linux', created: '2026-01-01T00:00:00Z',
  config: { Cmd: ['/bin/sh'], Env: ['PATH=/usr/bin:/bin'] },
  rootfs: { type: 'layers', diff_ids: diffIds },
  history: diffIds.map((_, i) => ({ created: '2026-01-01T00:00:00Z', created_by: `layer ${i}` })),
}));
const configName = `${createHash('sha256').update(config).digest('hex')}.json`;
writeFileSync(join(dir, configName), config);
writeFileSync(join(dir, 'manifest.json'), JSON.stringify([{ Config: configName, RepoTags: [ref], Layers: diffIds.map((d) => `${d.slice(7)}.tar`) }]));
execFileSync('tar', ['-cf', out, '-C', dir, '.']);
for (const d of diffIds) execFileSync('mv', [join(dir, `${d.slice(7)}.tar`), join(layersDir, d.slice(7))]);
rmSync(dir, { recursive: true, force: true });
process.stdout.write(`${JSON.stringify({ out, layers: diffIds.length, mib_per_layer: Number(mib), ref })}\n`);
