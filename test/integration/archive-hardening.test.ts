/**
 * Issue 14, classes 3, 4 (build), 7 and 9 (load, pull, registry): an adversarial corpus of layers,
 * image archives, build contexts and ADD archives through a real berthd (docker load, pull from
 * berth's registry, docker build), and hostile manifests against berth's registry.
 *
 * Every case is either refused (4xx / a clear error) or handled inside the layer's own root; after
 * each one a canary directory outside is unchanged, the daemon's shared unpack directory is still a
 * directory, the daemon answers, and the next request works. Counts are printed at the end.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import {
  lstatSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  statSync,
  writeFileSync,
  utimesSync,
  existsSync,
  rmSync,
  mkdirSync,
} from 'node:fs';
import { join } from 'node:path';
import http from 'node:http';
import { gunzipSync, gzipSync } from 'node:zlib';
import { startDaemon, REPO, type Daemon } from './harness.js';
import { startBerthRegistry, type Registry } from './registry-harness.js';
import { applyLayer } from '../../src/archive/layer.js';
import { getXattr } from '../../src/base/syscalls.js';

const sha = (b: Buffer | string) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

// --- a tar writer that writes whatever it is told (names, types, links, sizes) ------------------

interface E {
  name: string;
  type?: 'file' | 'dir' | 'symlink' | 'link' | 'char' | 'block' | 'fifo';
  data?: Buffer | string;
  link?: string;
  mode?: number;
  major?: number;
  minor?: number;
  pax?: Record<string, string | Buffer>;
}

const TYPEFLAG = { file: '0', link: '1', symlink: '2', char: '3', block: '4', dir: '5', fifo: '6' } as const;

function header(
  name: string,
  flag: string,
  size: number,
  o: { link?: string; mode?: number; major?: number; minor?: number },
): Buffer {
  const h = Buffer.alloc(512);
  const put = (s: string, off: number, len: number) => Buffer.from(s, 'latin1').copy(h, off, 0, len);
  const oct = (n: number, off: number, len: number) => put(n.toString(8).padStart(len - 1, '0') + '\0', off, len);
  put(name, 0, 100);
  oct(o.mode ?? (flag === '5' ? 0o755 : 0o644), 100, 8);
  oct(0, 108, 8);
  oct(0, 116, 8);
  oct(size, 124, 12);
  oct(0, 136, 12);
  h.write(flag, 156, 'latin1');
  put(o.link ?? '', 157, 100);
  put('ustar\0', 257, 6);
  put('00', 263, 2);
  oct(o.major ?? 0, 329, 8);
  oct(o.minor ?? 0, 337, 8);
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const c of h) sum += c;
  put(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8);
  return h;
}

const pad = (n: number) => Buffer.alloc((512 - (n % 512)) % 512);

function paxRecord(k: string, v: Buffer): Buffer {
  const body = Buffer.concat([Buffer.from(` ${k}=`), v, Buffer.from('\n')]);
  let len = body.length + 1;
  while (String(len).length + body.length !== len) len = String(len).length + body.length;
  return Buffer.concat([Buffer.from(String(len)), body]);
}

function tarOf(entries: E[], opts: { end?: boolean } = {}): Buffer {
  const out: Buffer[] = [];
  for (const e of entries) {
    const type = e.type ?? 'file';
    const data = Buffer.from(e.data ?? '');
    const pax: Record<string, string | Buffer> = { ...(e.pax ?? {}) };
    if (Buffer.byteLength(e.name) > 99) pax['path'] = e.name;
    if (e.link && Buffer.byteLength(e.link) > 99) pax['linkpath'] = e.link;
    if (Object.keys(pax).length) {
      const body = Buffer.concat(Object.entries(pax).map(([k, v]) => paxRecord(k, Buffer.from(v))));
      out.push(header('PaxHeader', 'x', body.length, {}), body, pad(body.length));
    }
    const size = type === 'file' ? data.length : 0;
    out.push(
      header(e.name.slice(0, 99), TYPEFLAG[type], size, {
        ...(e.link !== undefined ? { link: e.link.slice(0, 99) } : {}),
        ...(e.mode !== undefined ? { mode: e.mode } : {}),
        ...(e.major !== undefined ? { major: e.major } : {}),
        ...(e.minor !== undefined ? { minor: e.minor } : {}),
      }),
    );
    if (size) out.push(data, pad(size));
  }
  if (opts.end !== false) out.push(Buffer.alloc(1024));
  return Buffer.concat(out);
}

// --- daemon, registry, canary ------------------------------------------------------------------

const MAX_ENTRIES = 5000;
let d: Daemon;
let reg: Registry;
let canaryDir: string;
let work: string;
let busyboxLayer: Buffer;
const counts = { tried: 0, refused: 0, handledInside: 0 };
const byPath: Record<string, { tried: number; refused: number; inside: number }> = {};

function snapshotCanary(): string {
  const list = (dir: string): string[] =>
    readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
      e.isDirectory() ? [`${e.name}/`, ...list(join(dir, e.name)).map((x) => `${e.name}/${x}`)] : [e.name],
    );
  const st = statSync(join(canaryDir, 'canary'));
  return JSON.stringify({
    files: list(canaryDir).sort(),
    data: readFileSync(join(canaryDir, 'canary'), 'utf8'),
    mtime: st.mtimeMs,
    mode: st.mode,
    nlink: st.nlink,
    dirMode: statSync(canaryDir).mode,
  });
}
let canaryState = '';

function raw(
  method: string,
  path: string,
  body?: Buffer,
  headers: Record<string, string> = {},
): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { socketPath: d.sock, method, path, headers: { 'Content-Type': 'application/x-tar', ...headers } },
      (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** After every case: nothing outside changed, berthd is up and serves the next request. */
async function checkAfter(what: string): Promise<void> {
  assert.equal(snapshotCanary(), canaryState, `${what}: the canary outside is untouched`);
  assert.equal(d.proc.exitCode, null, `${what}: berthd is running`);
  const tmp = join(d.root, 'snapshots', 'tmp');
  if (existsSync(tmp)) assert.ok(statSync(tmp).isDirectory(), `${what}: the shared unpack dir is still a directory`);
  assert.ok(statSync(join(d.root, 'snapshots')).isDirectory());
  const ping = await raw('GET', '/_ping');
  assert.equal(ping.status, 200, `${what}: berthd answers`);
  const imgs = await raw('GET', '/images/json');
  assert.equal(imgs.status, 200, `${what}: the next request works`);
}

function tally(path: string, refused: boolean): void {
  counts.tried++;
  const p = (byPath[path] ??= { tried: 0, refused: 0, inside: 0 });
  p.tried++;
  if (refused) {
    counts.refused++;
    p.refused++;
  } else {
    counts.handledInside++;
    p.inside++;
  }
}

/** A docker-archive with one image of `layers` (raw layer tars) tagged `tag`. */
/** A layer's diff id: the digest of its uncompressed bytes (of the bytes as they are when they do not gunzip). */
function diffIdOf(l: Buffer): string {
  try {
    return sha(l[0] === 0x1f && l[1] === 0x8b ? gunzipSync(l) : l);
  } catch {
    return sha(l);
  }
}

function imageArchive(tag: string, layers: Buffer[]): Buffer {
  const config = Buffer.from(
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      config: { Cmd: ['sh'] },
      rootfs: { type: 'layers', diff_ids: layers.map(diffIdOf) },
      history: layers.map(() => ({ created_by: 'test' })),
    }),
  );
  return tarOf([
    { name: 'config.json', data: config },
    ...layers.map((l, i) => ({ name: `l${i}/layer.tar`, data: l })),
    {
      name: 'manifest.json',
      data: JSON.stringify([
        { Config: 'config.json', RepoTags: [tag], Layers: layers.map((_, i) => `l${i}/layer.tar`) },
      ]),
    },
  ]);
}

type Expect = 'refused' | 'inside';

/** Loads an image archive through POST /images/load (what `docker load` sends). */
async function loadCase(name: string, archive: Buffer, expect: Expect, after?: () => Promise<void>): Promise<void> {
  const r = await raw('POST', '/images/load?quiet=1', archive);
  if (expect === 'refused') {
    // as dockerd: a load answers 200 and a refusal is the stream's errorDetail (issue #16)
    assert.equal(r.status, 200, `${name}: ${r.text}`);
    assert.match(r.text, /"errorDetail"/, `${name}: refused inside the stream (got ${r.text})`);
    assert.match(
      r.text,
      /invalid|not allowed|leaves|whiteout|truncated|not a regular file|entries|longer|not a tar|unsupported/i,
      `${name}: a clear message: ${r.text}`,
    );
  } else {
    assert.equal(r.status, 200, `${name}: loaded (${r.text})`);
    assert.doesNotMatch(r.text, /errorDetail/, `${name}: ${r.text}`);
  }
  await after?.();
  await checkAfter(name);
  tally('load', expect === 'refused');
}

const L = (entries: E[]) => tarOf(entries);
const C = () => canaryDir; // absolute path of the canary dir
const UP = '../../../../../../../../../../..';

/** Hostile single layers: [name, layer tar, expected]. Each goes on top of busybox's layer. */
function layerCorpus(): Array<[string, Buffer, Expect]> {
  return [
    ['entry with ..', L([{ name: `${UP}${C()}/pwned`, data: 'x' }]), 'refused'],
    ['entry ./../x', L([{ name: './../pwned', data: 'x' }]), 'refused'],
    ['absolute entry', L([{ name: `${C()}/pwned`, data: 'x' }]), 'inside'],
    [
      'symlink to an absolute dir, then a file through it',
      L([
        { name: 'a', type: 'symlink', link: C() },
        { name: 'a/pwned', data: 'x' },
      ]),
      'refused',
    ],
    [
      'symlink climbing with .., then a file through it',
      L([
        { name: 'a', type: 'symlink', link: `${UP}${C()}` },
        { name: 'a/pwned', data: 'x' },
      ]),
      'refused',
    ],
    [
      'symlink to /, then a nested dir+file through it',
      L([
        { name: 'r', type: 'symlink', link: '/' },
        { name: `r${C()}/pwned`, data: 'x' },
      ]),
      'inside',
    ],
    [
      'symlink inside, then a file through it',
      L([
        { name: 'real', type: 'dir' },
        { name: 'a', type: 'symlink', link: 'real' },
        { name: 'a/f', data: 'ok' },
      ]),
      'inside',
    ],
    [
      'symlink to the canary file, then a file of that name',
      L([
        { name: 'f', type: 'symlink', link: `${C()}/canary` },
        { name: 'f', data: 'overwritten' },
      ]),
      'inside',
    ],
    [
      'symlink to the canary file, then a hard link to it',
      L([
        { name: 'f', type: 'symlink', link: `${C()}/canary` },
        { name: 'h', type: 'link', link: 'f' },
      ]),
      'inside',
    ],
    ['hard link to an absolute host file', L([{ name: 'h', type: 'link', link: `${C()}/canary` }]), 'refused'],
    ['hard link climbing with ..', L([{ name: 'h', type: 'link', link: `${UP}${C()}/canary` }]), 'refused'],
    [
      'hard link through a planted symlink',
      L([
        { name: 's', type: 'symlink', link: C() },
        { name: 'h', type: 'link', link: 's/canary' },
      ]),
      'refused',
    ],
    ['hard link to a missing file', L([{ name: 'h', type: 'link', link: 'nope' }]), 'refused'],
    ['whiteout .wh..', L([{ name: '.wh..' }]), 'refused'],
    ['whiteout .wh...', L([{ name: '.wh...' }]), 'refused'],
    ['whiteout a/.wh...', L([{ name: 'a/', type: 'dir' }, { name: 'a/.wh...' }]), 'refused'],
    ['whiteout a/.wh..', L([{ name: 'a/.wh..' }]), 'refused'],
    ['empty whiteout .wh.', L([{ name: '.wh.' }]), 'refused'],
    ['whiteout of a whiteout .wh..wh.x', L([{ name: '.wh..wh.x' }]), 'refused'],
    ['whiteout used as a directory', L([{ name: '.wh.x/y', data: 'x' }]), 'refused'],
    ['whiteout as a directory entry', L([{ name: '.wh.x', type: 'dir' }]), 'refused'],
    ['opaque marker at the layer root', L([{ name: '.wh..wh..opq' }]), 'refused'],
    ['opaque marker under a regular file', L([{ name: 'f', data: 'x' }, { name: 'f/.wh..wh..opq' }]), 'refused'],
    [
      'opaque marker under a symlink out',
      L([{ name: 's', type: 'symlink', link: C() }, { name: 's/.wh..wh..opq' }]),
      'refused',
    ],
    [
      'whiteout through a symlink out',
      L([{ name: 's', type: 'symlink', link: C() }, { name: 's/.wh.canary' }]),
      'refused',
    ],
    [
      'good whiteout and opaque dir',
      L([
        { name: 'etc/', type: 'dir' },
        { name: 'etc/.wh.group' },
        { name: 'opq/', type: 'dir' },
        { name: 'opq/.wh..wh..opq' },
      ]),
      'inside',
    ],
    ['block device', L([{ name: 'sda', type: 'block', major: 8, minor: 0 }]), 'refused'],
    ['char device /dev/mem', L([{ name: 'mem', type: 'char', major: 1, minor: 1 }]), 'refused'],
    ['char device /dev/kmsg', L([{ name: 'kmsg', type: 'char', major: 1, minor: 11 }]), 'refused'],
    ['char device /dev/null (allowed)', L([{ name: 'dev/null2', type: 'char', major: 1, minor: 3 }]), 'inside'],
    ['fifo (allowed)', L([{ name: 'pipe', type: 'fifo' }]), 'inside'],
    ['path over 4096 bytes', L([{ name: `${'d/'.repeat(2100)}f`, data: 'x' }]), 'refused'],
    ['component over 255 bytes', L([{ name: 'x'.repeat(300), data: 'x' }]), 'refused'],
    ['NUL in a pax name', L([{ name: 'n', data: 'x', pax: { path: 'a\0b' } }]), 'refused'],
    [
      `more than ${MAX_ENTRIES} entries`,
      L(Array.from({ length: MAX_ENTRIES + 1 }, (_, i) => ({ name: `f${i}` }))),
      'refused',
    ],
    ['pax record of 2 MiB', L([{ name: 'f', data: 'x', pax: { comment: 'y'.repeat(2 << 20) } }]), 'refused'],
    [
      'truncated layer (cut inside a file)',
      L([{ name: 'big', data: Buffer.alloc(4096, 1) }]).subarray(0, 1500),
      'refused',
    ],
    [
      'truncated layer (cut inside a header)',
      L([
        { name: 'a', data: 'x' },
        { name: 'b', data: 'y' },
      ]).subarray(0, 1024 + 200),
      'refused',
    ],
    [
      'bad header checksum',
      (() => {
        const b = L([{ name: 'a', data: 'x' }]);
        b[0] = 0x41;
        return b;
      })(),
      'refused',
    ],
    ['xz bytes as a layer', Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00, ...Buffer.alloc(600)]), 'refused'],
    ['gzip of garbage as a layer', gzipSync(Buffer.alloc(2048, 7)), 'refused'],
    ['gzip cut short', gzipSync(L([{ name: 'a', data: randomBytes(100000) }])).subarray(0, 2000), 'refused'],
    ['gzip of a good layer (works)', gzipSync(L([{ name: 'gz', data: 'gz' }])), 'inside'],
    ['sparse (GNU) entry', L([{ name: 's', data: 'x', pax: { 'GNU.sparse.major': '1' } }]), 'refused'],
    [
      'trusted.overlay xattr from the archive (dropped)',
      L([{ name: 'd/', type: 'dir', pax: { 'SCHILY.xattr.trusted.overlay.redirect': '/etc' } }]),
      'inside',
    ],
    ['setuid file (kept, inside)', L([{ name: 'suid', data: 'x', mode: 0o4755 }]), 'inside'],
  ];
}

describe('archive hardening: hostile layers, image archives, build inputs, registry manifests', () => {
  before(async () => {
    process.env['BERTH_ARCHIVE_MAX_ENTRIES'] = String(MAX_ENTRIES); // berthd inherits it: the count limit without a huge test archive
    work = mkdtempSync('/var/tmp/berth-test-hard-');
    canaryDir = join(work, 'canary');
    mkdirSync(canaryDir);
    writeFileSync(join(canaryDir, 'canary'), 'canary\n');
    d = await startDaemon();
    reg = await startBerthRegistry();
    canaryState = snapshotCanary();
    const bb = JSON.parse((await d.docker(['image', 'inspect', 'busybox'])).stdout)[0] as {
      RootFS: { Layers: string[] };
    };
    busyboxLayer = readFileSync(join(d.root, 'content', 'blobs', 'sha256', bb.RootFS.Layers[0]!.slice(7)));
  });
  after(async () => {
    if (process.env['HARDENING_LOGS']) console.log(d.logs().slice(-6000));
    delete process.env['BERTH_ARCHIVE_MAX_ENTRIES'];
    await d?.stop();
    await reg?.stop();
    rmSync(work, { recursive: true, force: true });
    console.log(`# archive-hardening counts: ${JSON.stringify({ ...counts, byPath })}`);
  });

  test('docker load: hostile layers are refused (400) or land inside their layer; nothing outside changes', async () => {
    let i = 0;
    for (const [name, layer, expect] of layerCorpus()) {
      const tag = `hostile/layer:${i++}`;
      await loadCase(`load: ${name}`, imageArchive(tag, [busyboxLayer, layer]), expect);
      if (expect === 'refused')
        assert.equal((await raw('GET', `/images/${tag}/json`)).status, 404, `${name}: no image registered`);
    }
    // what landed inside is where the image sees it, and the image runs
    const absTag = `hostile/layer:${layerCorpus().findIndex(([n]) => n === 'absolute entry')}`;
    assert.equal((await d.docker(['run', '--rm', absTag, 'cat', `${canaryDir}/pwned`])).stdout, 'x');
    const viaTag = `hostile/layer:${layerCorpus().findIndex(([n]) => n.startsWith('symlink to /, then'))}`;
    assert.equal(
      (await d.docker(['run', '--rm', viaTag, 'cat', `${canaryDir}/pwned`])).stdout,
      'x',
      'r/<path> landed under the layer root, through the in-root symlink',
    );
    const wh = `hostile/layer:${layerCorpus().findIndex(([n]) => n === 'good whiteout and opaque dir')}`;
    const out = await d.docker(['run', '--rm', wh, 'sh', '-c', 'test -e /etc/group && echo present || echo gone']);
    assert.equal(out.stdout.trim(), 'gone', 'a valid whiteout hides the lower file');
    const ow = `hostile/layer:${layerCorpus().findIndex(([n]) => n.startsWith('symlink to the canary file, then a file'))}`;
    assert.equal((await d.docker(['run', '--rm', ow, 'cat', '/f'])).stdout, 'overwritten');
  });

  test('layer extractor: what a good layer keeps (binary xattrs, links, whiteouts, modes, times)', async () => {
    const dir = mkdtempSync(join(work, 'layer-'));
    const file = join(work, 'detail.tar');
    const bin = Buffer.from([0x01, 0x00, 0xff, 0xfe, 0x80, 0x0a]);
    writeFileSync(
      file,
      tarOf([
        { name: './', type: 'dir', mode: 0o755 },
        { name: 'bin/', type: 'dir', mode: 0o700 },
        {
          name: 'bin/tool',
          data: 'tool',
          mode: 0o4755,
          pax: { 'SCHILY.xattr.user.bin': bin, 'SCHILY.xattr.trusted.overlay.redirect': '/etc' },
        },
        { name: 'bin/s', type: 'symlink', link: '/etc/passwd' },
        { name: 'bin/hs', type: 'link', link: 'bin/s' },
        { name: `long/${'n'.repeat(150)}/${'m'.repeat(200)}`, data: 'long' },
        { name: 'etc/', type: 'dir' },
        { name: 'etc/.wh.shadow' },
        { name: 'var/', type: 'dir' },
        { name: 'var/.wh..wh..opq' },
        { name: 'var/keep', data: 'k' },
        { name: 'f', data: 'first' },
        { name: 'f', data: 'second' },
        { name: 'd', type: 'symlink', link: '/' },
        { name: 'd', type: 'dir' },
      ]),
    );
    await applyLayer(file, dir);
    const tool = statSync(join(dir, 'bin/tool'));
    assert.equal(tool.mode & 0o7777, 0o4755, 'set-uid kept (mode set after chown)');
    assert.equal(
      getXattr(join(dir, 'bin/tool'), 'trusted.overlay.redirect'),
      null,
      'overlayfs attributes from an archive are dropped',
    );
    const xattr = execFileSync('python3', [
      '-c',
      'import os,sys; sys.stdout.buffer.write(os.getxattr(sys.argv[1], "user.bin"))',
      join(dir, 'bin/tool'),
    ]);
    assert.equal(xattr.compare(bin), 0, `a binary xattr value survives byte for byte (${xattr.toString('hex')})`);
    assert.equal(statSync(join(dir, 'bin')).mode & 0o777, 0o700);
    const hs = readdirSync(join(dir, 'bin'));
    assert.deepEqual(hs.sort(), ['hs', 's', 'tool']);
    assert.equal(
      lstatSync(join(dir, 'bin/s')).ino,
      lstatSync(join(dir, 'bin/hs')).ino,
      'a hard link to a symlink is the symlink',
    );
    assert.ok(lstatSync(join(dir, 'bin/hs')).isSymbolicLink());
    assert.equal(readFileSync(join(dir, `long/${'n'.repeat(150)}/${'m'.repeat(200)}`), 'utf8'), 'long');
    const wh = statSync(join(dir, 'etc/shadow'));
    assert.ok(wh.isCharacterDevice() && wh.rdev === 0, 'a whiteout is a char device 0/0');
    assert.equal(getXattr(join(dir, 'var'), 'trusted.overlay.opaque'), 'y');
    assert.equal(readFileSync(join(dir, 'f'), 'utf8'), 'second', 'a later entry replaces an earlier one');
    assert.ok(statSync(join(dir, 'd')).isDirectory(), 'a directory entry replaces a symlink of that name');
    assert.equal(statSync(join(dir, 'etc')).mtimeMs, 0, 'directory times are set after their contents');
    assert.equal(snapshotCanary(), canaryState);
    rmSync(dir, { recursive: true, force: true });
  });

  test('docker import: hostile rootfs tars are refused like layers', async () => {
    const picks = [
      'whiteout .wh...',
      'symlink to an absolute dir, then a file through it',
      'hard link through a planted symlink',
      'block device',
      'truncated layer (cut inside a file)',
      'absolute entry',
    ];
    for (const [name, layer, expect] of layerCorpus().filter(([n]) => picks.includes(n))) {
      const r = await raw('POST', '/images/create?fromSrc=-&repo=hostile/import&tag=x', layer);
      if (expect === 'refused')
        assert.ok(
          r.status >= 400 && r.status < 500 && /invalid/.test(r.text),
          `import: ${name}: ${r.status} ${r.text}`,
        );
      else assert.equal(r.status, 200, `import: ${name}: ${r.text}`);
      await checkAfter(`import: ${name}`);
      tally('import', expect === 'refused');
    }
  });

  test('docker load: symlink-then-file across two layers stays inside', async () => {
    const l1 = L([
      { name: 'a', type: 'symlink', link: canaryDir },
      { name: 'b', type: 'symlink', link: `${UP}${canaryDir}` },
    ]);
    const l2 = L([{ name: 'a/pwned', data: 'x' }, { name: 'b/canary', data: 'overwrite' }, { name: 'a/.wh.canary' }]);
    await loadCase(
      'load: symlink in layer 1, files through it in layer 2',
      imageArchive('hostile/across:1', [busyboxLayer, l1, l2]),
      'inside',
    );
    const r = await d.docker(['run', '--rm', 'hostile/across:1', 'cat', '/b/canary']);
    assert.equal(r.stdout, 'overwrite', 'the upper layer made its own directory b, inside the image');
  });

  test('docker load: hostile archive structure (planted symlinks, .., devices, FIFOs, sizes)', async () => {
    const layer = L([{ name: 'ok', data: 'ok' }]);
    const config = Buffer.from(
      JSON.stringify({
        architecture: 'amd64',
        os: 'linux',
        config: {},
        rootfs: { type: 'layers', diff_ids: [sha(busyboxLayer), sha(layer)] },
      }),
    );
    const manifest = (o: object) => ({
      name: 'manifest.json',
      data: JSON.stringify([
        { Config: 'config.json', RepoTags: ['hostile/arch:1'], Layers: ['bb.tar', 'l.tar'], ...o },
      ]),
    });
    const base: E[] = [
      { name: 'config.json', data: config },
      { name: 'bb.tar', data: busyboxLayer },
    ];
    const cases: Array<[string, Buffer, Expect]> = [
      [
        'manifest.json is a symlink to a host file',
        tarOf([
          ...base,
          { name: 'l.tar', data: layer },
          { name: 'manifest.json', type: 'symlink', link: `${canaryDir}/canary` },
        ]),
        'refused',
      ],
      [
        'config is a symlink to /etc/passwd',
        tarOf([
          { name: 'config.json', type: 'symlink', link: '/etc/passwd' },
          { name: 'bb.tar', data: busyboxLayer },
          { name: 'l.tar', data: layer },
          manifest({}),
        ]),
        'refused',
      ],
      [
        'a layer is a symlink to /dev/zero',
        tarOf([...base, { name: 'l.tar', type: 'symlink', link: '/dev/zero' }, manifest({})]),
        'refused',
      ],
      [
        'a layer is a symlink climbing out',
        tarOf([...base, { name: 'l.tar', type: 'symlink', link: `${UP}${canaryDir}/canary` }, manifest({})]),
        'refused',
      ],
      ['a layer is a FIFO', tarOf([...base, { name: 'l.tar', type: 'fifo' }, manifest({})]), 'refused'],
      [
        'a layer is a char device',
        tarOf([...base, { name: 'l.tar', type: 'char', major: 1, minor: 5 }, manifest({})]),
        'refused',
      ],
      [
        'Config names ../',
        tarOf([...base, { name: 'l.tar', data: layer }, manifest({ Config: '../../../etc/passwd' })]),
        'refused',
      ],
      [
        'Layers names an absolute path',
        tarOf([...base, { name: 'l.tar', data: layer }, manifest({ Layers: ['bb.tar', `${canaryDir}/canary`] })]),
        'refused',
      ],
      [
        'entry ../ in the archive',
        tarOf([...base, { name: '../escape', data: 'x' }, { name: 'l.tar', data: layer }, manifest({})]),
        'refused',
      ],
      [
        'a planted dir symlink, then a file through it',
        tarOf([
          { name: 'd', type: 'symlink', link: canaryDir },
          { name: 'd/pwned', data: 'x' },
          ...base,
          { name: 'l.tar', data: layer },
          manifest({}),
        ]),
        'refused',
      ],
      [
        'a layer whose content is not its diff id',
        tarOf([...base, { name: 'l.tar', data: L([{ name: 'other', data: 'z' }]) }, manifest({})]),
        'refused',
      ],
      [
        'manifest.json over 8 MiB',
        tarOf([...base, { name: 'l.tar', data: layer }, { name: 'manifest.json', data: ' '.repeat(9 << 20) }]),
        'refused',
      ],
      [
        'truncated archive',
        tarOf([...base, { name: 'l.tar', data: layer }, manifest({})]).subarray(0, 4000),
        'refused',
      ],
      ['xz-compressed archive', Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00, ...Buffer.alloc(1000)]), 'refused'],
      [
        'layers shared by an in-archive symlink (docker save does this)',
        tarOf([
          ...base,
          { name: 'real.tar', data: layer },
          { name: 'l.tar', type: 'symlink', link: 'real.tar' },
          manifest({}),
        ]),
        'inside',
      ],
      [
        'gzip-compressed archive',
        gzipSync(tarOf([...base, { name: 'l.tar', data: layer }, manifest({ RepoTags: ['hostile/arch:gz'] })])),
        'inside',
      ],
    ];
    for (const [name, archive, expect] of cases) await loadCase(`load archive: ${name}`, archive, expect);
    assert.equal((await d.docker(['run', '--rm', 'hostile/arch:gz', 'cat', '/ok'])).stdout, 'ok');
  });

  test('pull from berth registry: hostile layers are a clear pull error, nothing outside changes, nothing registered', async () => {
    const base = `http://${reg.addr}`;
    const upload = async (repo: string, blob: Buffer) => {
      const r = await fetch(`${base}/v2/${repo}/blobs/uploads/?digest=${sha(blob)}`, {
        method: 'POST',
        body: blob as unknown as BodyInit,
        headers: { 'Content-Type': 'application/octet-stream' },
      });
      assert.equal(r.status, 201, await r.text());
    };
    const pushImage = async (repo: string, layers: Buffer[], diffIds?: string[]) => {
      const config = Buffer.from(
        JSON.stringify({
          architecture: 'amd64',
          os: 'linux',
          config: { Cmd: ['sh'] },
          rootfs: { type: 'layers', diff_ids: diffIds ?? layers.map((l) => sha(l)) },
        }),
      );
      for (const b of [config, ...layers]) await upload(repo, b);
      const m = {
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha(config), size: config.length },
        layers: layers.map((l) => ({
          mediaType: 'application/vnd.oci.image.layer.v1.tar',
          digest: sha(l),
          size: l.length,
        })),
      };
      const r = await fetch(`${base}/v2/${repo}/manifests/1`, {
        method: 'PUT',
        body: JSON.stringify(m),
        headers: { 'Content-Type': m.mediaType },
      });
      assert.equal(r.status, 201, await r.text());
    };
    const picks = [
      'entry with ..',
      'symlink to an absolute dir, then a file through it',
      'hard link to an absolute host file',
      'hard link through a planted symlink',
      'whiteout .wh..',
      'whiteout .wh...',
      'whiteout a/.wh...',
      'opaque marker at the layer root',
      'block device',
      'truncated layer (cut inside a file)',
      'absolute entry',
      'good whiteout and opaque dir',
    ];
    const corpus = layerCorpus().filter(([n]) => picks.includes(n));
    assert.equal(corpus.length, picks.length);
    let i = 0;
    for (const [name, layer, expect] of corpus) {
      const repo = `hostile/pull${i++}`;
      await pushImage(repo, [busyboxLayer, layer]);
      const r = await d.docker(['pull', `${reg.addr}/${repo}:1`], { allowFail: true });
      if (expect === 'refused') {
        assert.notEqual(r.code, 0, `pull: ${name}: refused`);
        assert.match(r.stdout + r.stderr, /invalid layer|truncated/, `pull: ${name}: a clear error: ${r.stderr}`);
        assert.equal(
          (await raw('GET', `/images/${reg.addr}/${repo}:1/json`)).status,
          404,
          `pull: ${name}: nothing registered`,
        );
      } else assert.equal(r.code, 0, `pull: ${name}: ${r.stderr}`);
      await checkAfter(`pull: ${name}`);
      tally('pull', expect === 'refused');
    }
    // a layer whose content is not the config's diff id: refused before it lands in content
    const blobsBefore = readdirSync(join(d.root, 'content', 'blobs', 'sha256')).sort();
    const wrong = L([{ name: 'w', data: 'w' }]);
    await pushImage('hostile/diffid', [wrong], [sha('something else')]);
    const r = await d.docker(['pull', `${reg.addr}/hostile/diffid:1`], { allowFail: true });
    assert.notEqual(r.code, 0);
    assert.match(r.stdout + r.stderr, /diff id|does not match|mismatch/);
    assert.deepEqual(
      readdirSync(join(d.root, 'content', 'blobs', 'sha256')).sort(),
      blobsBefore,
      'the layer did not land',
    );
    await checkAfter('pull: wrong diff id');
    tally('pull', true);
    // the next pull works
    await d.docker(['tag', 'busybox', `${reg.addr}/ok/bb:1`]);
    await d.docker(['push', `${reg.addr}/ok/bb:1`]);
    await d.docker(['rmi', `${reg.addr}/ok/bb:1`]);
    await d.docker(['pull', `${reg.addr}/ok/bb:1`]);
    assert.equal((await d.docker(['run', '--rm', `${reg.addr}/ok/bb:1`, 'echo', 'up'])).stdout.trim(), 'up');
  });

  test('pull from a hostile registry: oversized manifests and configs, digests of every algorithm verified', async () => {
    // a registry that lies, on loopback: each route answers what the case says
    type Handler = (res: http.ServerResponse) => void;
    const routes = new Map<string, Handler>();
    const srv = http.createServer((req, res) => {
      const h = req.url === '/v2/' ? (r: http.ServerResponse) => r.end('{}') : routes.get(req.url ?? '');
      if (!h) {
        res.statusCode = 404;
        res.end('{"errors":[{"code":"MANIFEST_UNKNOWN"}]}');
        return;
      }
      h(res);
    });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const addr = `127.0.0.1:${(srv.address() as { port: number }).port}`;
    const MT_M = 'application/vnd.oci.image.manifest.v1+json';
    const json =
      (body: Buffer | string, type = MT_M): Handler =>
      (res) => {
        res.setHeader('Content-Type', type);
        res.end(body);
      };
    /** An endless body: what a registry that wants to fill berthd's memory sends. */
    const endless: Handler = (res) => {
      res.setHeader('Content-Type', MT_M);
      const chunk = Buffer.alloc(1 << 20, 0x20);
      const pump = () => {
        while (res.write(chunk)) if (res.destroyed) return;
        if (!res.destroyed) res.once('drain', pump);
      };
      res.on('close', () => res.removeAllListeners('drain'));
      pump();
    };
    const layer = L([{ name: 'f', data: 'f' }]);
    const config = Buffer.from(
      JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [sha(layer)] } }),
    );
    const manifestWith = (cfg: object, layers: object[]) =>
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MT_M,
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...cfg },
        layers,
      });
    const goodLayerDesc = {
      mediaType: 'application/vnd.oci.image.layer.v1.tar',
      digest: sha(layer),
      size: layer.length,
    };
    routes.set(`/v2/x/blobs/${sha(layer)}`, json(layer, 'application/octet-stream'));
    routes.set(`/v2/x/blobs/${sha(config)}`, json(config, 'application/octet-stream'));
    const sha512 = (b: Buffer | string) => `sha512:${createHash('sha512').update(b).digest('hex')}`;
    const bigConfigDigest = sha('big config');
    routes.set(`/v2/x/blobs/${bigConfigDigest}`, endless);
    const good = manifestWith({ digest: sha(config), size: config.length }, [goodLayerDesc]);
    const cases: Array<[string, string, Handler | null, RegExp]> = [
      ['a manifest that never ends', 'endless', endless, /more than 4194304/],
      [
        'a manifest that declares 1 GiB',
        'declared',
        (res) => {
          res.setHeader('Content-Length', String(1 << 30));
          res.setHeader('Content-Type', MT_M);
          res.write('{');
        },
        /more than 4194304/,
      ],
      [
        'a config that never ends (descriptor says 100 bytes)',
        'cfgendless',
        json(manifestWith({ digest: bigConfigDigest, size: 100 }, [goodLayerDesc])),
        /longer than its 100 bytes/,
      ],
      [
        'a config of 100 MiB declared',
        'cfgbig',
        json(manifestWith({ digest: bigConfigDigest, size: 100 << 20 }, [goodLayerDesc])),
        /more than 8388608/,
      ],
      [
        'an index naming a sha512 manifest digest that the content does not match',
        'idx512',
        json(
          JSON.stringify({
            schemaVersion: 2,
            mediaType: 'application/vnd.oci.image.index.v1+json',
            manifests: [
              {
                mediaType: MT_M,
                digest: sha512('other'),
                size: good.length,
                platform: { os: 'linux', architecture: 'amd64' },
              },
            ],
          }),
          'application/vnd.oci.image.index.v1+json',
        ),
        /failed verification/,
      ],
      [
        'a layer descriptor in sha512 that does not match',
        'l512',
        json(
          manifestWith({ digest: sha(config), size: config.length }, [
            { ...goodLayerDesc, digest: sha512('not the layer') },
          ]),
        ),
        /failed verification/,
      ],
      [
        'a malformed digest in a descriptor',
        'baddigest',
        json(manifestWith({ digest: 'sha256:xyz', size: 3 }, [goodLayerDesc])),
        /invalid digest/,
      ],
    ];
    routes.set(`/v2/x/blobs/${sha512('not the layer')}`, json(layer, 'application/octet-stream'));
    routes.set(`/v2/x/manifests/${sha512('other')}`, json(good));
    try {
      for (const [name, ref, handler, msg] of cases) {
        if (handler) routes.set(`/v2/x/manifests/${ref}`, handler);
        const base = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${d.proc.pid}/status`, 'utf8'))![1]) * 1024;
        const r = await d.docker(['pull', `${addr}/x${ref.includes(':') ? '@' : ':'}${ref}`], {
          allowFail: true,
          timeoutMs: 60_000,
        });
        assert.notEqual(r.code, 0, `${name}: refused`);
        assert.match(r.stdout + r.stderr, msg, `${name}: ${r.stderr}`);
        const grew =
          Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${d.proc.pid}/status`, 'utf8'))![1]) * 1024 - base;
        assert.ok(grew < 64 << 20, `${name}: berthd grew ${grew >> 20} MiB`);
        await checkAfter(`hostile registry: ${name}`);
        tally('pull (hostile registry)', true);
      }
      // the same registry, honest: the pull works
      routes.set('/v2/x/manifests/good', json(good));
      await d.docker(['pull', `${addr}/x:good`]);
      tally('pull (hostile registry)', false);
    } finally {
      srv.closeAllConnections();
      srv.close();
    }
  });

  test('build: hostile ADD archives and contexts end the build with an error, never berthd', async () => {
    const good = L([
      { name: 'x/', type: 'dir' },
      { name: 'x/f', data: 'in' },
    ]);
    const xz = (b: Buffer) => execFileSync('xz', ['-c'], { input: b });
    const adds: Array<[string, string, Buffer, Expect]> = [
      ['truncated tar', 't.tar', good.subarray(0, 700), 'refused'],
      [
        'truncated tar (inside a header)',
        't.tar',
        tarOf([
          { name: 'a', data: 'x' },
          { name: 'b', data: 'y' },
        ]).subarray(0, 1024 + 100),
        'refused',
      ],
      [
        '.xz of garbage (not an archive: copied as a file, as dockerd does)',
        'g.xz',
        Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00, ...Buffer.alloc(300, 9)]),
        'inside',
      ],
      ['.xz cut short', 'c.tar.xz', xz(L([{ name: 'big', data: randomBytes(200000) }])).subarray(0, 3000), 'refused'],
      ['.xz of a tar (works)', 'ok.tar.xz', xz(good), 'inside'],
      [
        '.tar.xz.gz (not a tar once gunzipped: copied as a file, as dockerd does)',
        'a.tar.xz.gz',
        gzipSync(xz(good)),
        'inside',
      ],
      ['.gz of a text file (copied as a file)', 'notes.gz', gzipSync('just text, no tar\n'), 'inside'],
      [
        'gzip cut short',
        'c.tar.gz',
        gzipSync(L([{ name: 'big', data: randomBytes(200000) }])).subarray(0, 3000),
        'refused',
      ],
      [
        'bzip2 cut short before its first block ends (nothing decodes: copied as a file)',
        'c.tar.bz2',
        execFileSync('bzip2', ['-c'], { input: L([{ name: 'big', data: randomBytes(200000) }]) }).subarray(0, 3000),
        'inside',
      ],
      [
        'bzip2 cut inside the archive',
        'd.tar.bz2',
        (() => {
          const b = execFileSync('bzip2', ['-c'], {
            input: L([{ name: 'a', data: randomBytes(1_200_000) }]),
            maxBuffer: 16 << 20,
          });
          return b.subarray(0, b.length - 5000);
        })(),
        'refused',
      ],
      ['tar with ..', 'd.tar', L([{ name: `${UP}${canaryDir}/pwned`, data: 'x' }]), 'refused'],
      [
        'tar with a hard link out',
        'h.tar',
        L([{ name: 'h', type: 'link', link: `${UP}${canaryDir}/canary` }]),
        'refused',
      ],
      [
        'tar with symlink-then-file',
        's.tar',
        L([
          { name: 'a', type: 'symlink', link: canaryDir },
          { name: 'a/pwned', data: 'x' },
        ]),
        'refused',
      ],
      ['tar with a bad whiteout', 'w.tar', L([{ name: '.wh...' }]), 'refused'],
    ];
    const build = async (ctx: Buffer, tag: string) => raw('POST', `/build?t=${tag}&rm=1`, ctx);
    let i = 0;
    for (const [name, file, data, expect] of adds) {
      const ctx = tarOf([
        { name: 'Dockerfile', data: `FROM busybox\nADD ${file} /dst/\nRUN test -e /dst\n` },
        { name: file, data },
      ]);
      const tag = `hostile/add:${i++}`;
      const r = await build(ctx, tag);
      if (expect === 'refused') {
        assert.ok(
          r.status === 200 ? /errorDetail/.test(r.text) : r.status >= 400 && r.status < 500,
          `ADD ${name}: an error (${r.status} ${r.text.slice(-300)})`,
        );
        assert.equal((await raw('GET', `/images/${tag}/json`)).status, 404, `ADD ${name}: no image`);
      } else assert.doesNotMatch(r.text, /errorDetail/, `ADD ${name}: ${r.text.slice(-300)}`);
      await checkAfter(`ADD ${name}`);
      tally('build ADD', expect === 'refused');
    }
    assert.equal(
      (
        await d.docker([
          'run',
          '--rm',
          `hostile/add:${adds.findIndex(([n]) => n === '.xz of a tar (works)')}`,
          'cat',
          '/dst/x/f',
        ])
      ).stdout,
      'in',
    );
    const copied = await d.docker([
      'run',
      '--rm',
      `hostile/add:${adds.findIndex(([n]) => n.startsWith('.tar.xz.gz'))}`,
      'ls',
      '/dst',
    ]);
    assert.equal(copied.stdout.trim(), 'a.tar.xz.gz', 'a compressed non-tar is copied as it is');

    const contexts: Array<[string, Buffer, Expect]> = [
      [
        'context with ..',
        tarOf([
          { name: 'Dockerfile', data: 'FROM busybox\n' },
          { name: `${UP}${canaryDir}/pwned`, data: 'x' },
        ]),
        'refused',
      ],
      [
        'context with symlink-then-file',
        tarOf([
          { name: 'Dockerfile', data: 'FROM busybox\n' },
          { name: 'a', type: 'symlink', link: canaryDir },
          { name: 'a/pwned', data: 'x' },
        ]),
        'refused',
      ],
      [
        'context with a hard link out',
        tarOf([
          { name: 'Dockerfile', data: 'FROM busybox\n' },
          { name: 'h', type: 'link', link: `${canaryDir}/canary` },
        ]),
        'refused',
      ],
      [
        'context with a device',
        tarOf([
          { name: 'Dockerfile', data: 'FROM busybox\n' },
          { name: 'null', type: 'char', major: 1, minor: 3 },
        ]),
        'refused',
      ],
      [
        'context with a FIFO',
        tarOf([
          { name: 'Dockerfile', data: 'FROM busybox\n' },
          { name: 'p', type: 'fifo' },
        ]),
        'refused',
      ],
      [
        'context with an absolute name (lands inside)',
        tarOf([
          { name: 'Dockerfile', data: `FROM busybox\nCOPY ${canaryDir.slice(1)}/pwned /pwned\n` },
          { name: `${canaryDir}/pwned`, data: 'ctx' },
        ]),
        'inside',
      ],
      [
        'context COPY of a symlink to a host file',
        tarOf([
          { name: 'Dockerfile', data: 'FROM busybox\nCOPY s /s\n' },
          { name: 's', type: 'symlink', link: `${canaryDir}/canary` },
        ]),
        'refused',
      ],
      ['xz context', Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00, ...Buffer.alloc(600)]), 'refused'],
    ];
    for (const [name, ctx, expect] of contexts) {
      const tag = `hostile/ctx:${i++}`;
      const r = await build(ctx, tag);
      if (expect === 'refused') {
        assert.ok(
          r.status === 200 ? /errorDetail/.test(r.text) : r.status >= 400 && r.status < 500,
          `${name}: an error (${r.status} ${r.text.slice(-300)})`,
        );
        assert.ok(
          !r.text.includes('canary\\n') && !r.text.includes('canary\n'),
          `${name}: no host content in the answer`,
        );
      } else assert.doesNotMatch(r.text, /errorDetail/, `${name}: ${r.text.slice(-300)}`);
      await checkAfter(name);
      tally('build context', expect === 'refused');
    }
    // the next build works
    const ok = await build(
      tarOf([{ name: 'Dockerfile', data: 'FROM busybox\nRUN echo fine > /f\n' }]),
      'hostile/next:1',
    );
    assert.doesNotMatch(ok.text, /errorDetail/, ok.text);
    assert.equal((await d.docker(['run', '--rm', 'hostile/next:1', 'cat', '/f'])).stdout, 'fine\n');
    // every failure above was handled where it happened: none needed the daemon's last-resort request guard
    assert.doesNotMatch(d.logs(), /the request ends, the daemon goes on/);
  });

  test('save, logs, export and cp wait for a slow reader instead of buffering in berthd', async () => {
    const rss = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${d.proc.pid}/status`, 'utf8'))![1]) * 1024;
    /** GETs `path`, reads nothing for 3 s, notes berthd's memory growth, then reads everything. */
    const slowRead = (path: string) =>
      new Promise<{ grew: number; bytes: number }>((resolve, reject) => {
        const base = rss();
        const req = http.request({ socketPath: d.sock, path }, (res) => {
          res.pause();
          setTimeout(() => {
            const grew = rss() - base;
            let bytes = 0;
            res.on('data', (c: Buffer) => (bytes += c.length));
            res.on('end', () => resolve({ grew, bytes }));
            res.resume();
          }, 3000);
        });
        req.on('error', reject);
        req.end();
      });
    const BIG = 120 << 20;
    // an image with a 120 MiB layer (random: no compression anywhere makes it small)
    const layer = tarOf([{ name: 'big', data: randomBytes(BIG) }]);
    const load = await raw('POST', '/images/load?quiet=1', imageArchive('hostile/big:1', [layer]));
    assert.equal(load.status, 200, load.text);
    const saved = await slowRead('/images/hostile/big:1/get');
    assert.ok(saved.bytes > BIG, `the whole archive came (${saved.bytes})`);
    assert.ok(saved.grew < 48 << 20, `save: berthd grew ${saved.grew >> 20} MiB while the client did not read`);
    // a container that logs ~120 MiB
    await d.docker(
      [
        'run',
        '-d',
        '--name',
        'biglog',
        'busybox',
        'sh',
        '-c',
        `yes "$(head -c 4000 /dev/zero | tr '\\0' a)" | head -c ${BIG}`,
      ],
      { timeoutMs: 180_000 },
    );
    assert.equal((await d.docker(['wait', 'biglog'], { timeoutMs: 180_000 })).stdout.trim(), '0');
    const logs = await slowRead('/containers/biglog/logs?stdout=1');
    assert.ok(logs.bytes > BIG, `the whole log came (${logs.bytes})`);
    assert.ok(logs.grew < 48 << 20, `logs: berthd grew ${logs.grew >> 20} MiB while the client did not read`);
    await d.docker(['rm', 'biglog']);
    // export of a container holding the 120 MiB file, and cp of the file out of it
    await d.docker(['create', '--name', 'bigexp', 'hostile/big:1', 'true']);
    const exported = await slowRead('/containers/bigexp/export');
    assert.ok(exported.bytes > BIG, `the whole export came (${exported.bytes})`);
    assert.ok(exported.grew < 48 << 20, `export: berthd grew ${exported.grew >> 20} MiB while the client did not read`);
    const copied = await slowRead('/containers/bigexp/archive?path=/big');
    assert.ok(copied.bytes > BIG, `the whole copy came (${copied.bytes})`);
    assert.ok(copied.grew < 48 << 20, `cp: berthd grew ${copied.grew >> 20} MiB while the client did not read`);
    await d.docker(['rm', 'bigexp']);
    await d.docker(['rmi', 'hostile/big:1']);
  });

  test('registry: invalid digests in a manifest are refused and store nothing; a failed push leaves no tag', async () => {
    const base = `http://${reg.addr}`;
    const tree = () => {
      const walk = (dir: string): string[] =>
        readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
          e.isDirectory()
            ? walk(join(dir, e.name))
                .map((x) => `${e.name}/${x}`)
                .concat(`${e.name}/`)
            : [e.name],
        );
      return walk(reg.root)
        .filter((p) => !p.startsWith('uploads/'))
        .sort();
    };
    const config = Buffer.from(
      JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }),
    );
    const up = await fetch(`${base}/v2/r7/img/blobs/uploads/?digest=${sha(config)}`, {
      method: 'POST',
      body: config as unknown as BodyInit,
    });
    assert.equal(up.status, 201);
    const cfg = { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha(config), size: config.length };
    const good = { schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: cfg, layers: [] };
    const cases: Array<[string, object, string]> = [
      ['subject a:b', { ...good, subject: { mediaType: good.mediaType, digest: 'a:b', size: 1 } }, 'MANIFEST_INVALID'],
      [
        'subject with a path in it',
        { ...good, subject: { mediaType: good.mediaType, digest: 'sha256:../../../../tmp', size: 1 } },
        'MANIFEST_INVALID',
      ],
      [
        'subject sha256 with uppercase hex',
        { ...good, subject: { mediaType: good.mediaType, digest: `sha256:${'A'.repeat(64)}`, size: 1 } },
        'MANIFEST_INVALID',
      ],
      [
        'subject sha256 too short',
        { ...good, subject: { mediaType: good.mediaType, digest: `sha256:${'a'.repeat(63)}`, size: 1 } },
        'MANIFEST_INVALID',
      ],
      [
        'subject sha512 (valid, not stored here)',
        { ...good, subject: { mediaType: good.mediaType, digest: `sha512:${'a'.repeat(128)}`, size: 1 } },
        'DIGEST_INVALID',
      ],
      [
        'subject of an unknown algorithm',
        { ...good, subject: { mediaType: good.mediaType, digest: `md5:${'a'.repeat(32)}`, size: 1 } },
        'MANIFEST_INVALID',
      ],
      ['config digest a:b', { ...good, config: { ...cfg, digest: 'a:b' } }, 'MANIFEST_INVALID'],
      [
        'layer digest with =',
        { ...good, layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: 'sha256:abc=', size: 1 }] },
        'MANIFEST_INVALID',
      ],
      [
        'index child digest x:y',
        {
          schemaVersion: 2,
          mediaType: 'application/vnd.oci.image.index.v1+json',
          manifests: [{ mediaType: good.mediaType, digest: 'x:y', size: 2 }],
        },
        'MANIFEST_INVALID',
      ],
    ];
    for (const [name, m, code] of cases) {
      const before = tree();
      for (const ref of ['t1', sha(JSON.stringify(m))]) {
        const r = await fetch(`${base}/v2/r7/img/manifests/${ref}`, {
          method: 'PUT',
          body: JSON.stringify(m),
          headers: { 'Content-Type': (m as { mediaType: string }).mediaType },
        });
        const text = await r.text();
        assert.equal(r.status, 400, `${name}: 400 (${text})`);
        assert.match(text, new RegExp(code), `${name}: ${code}`);
      }
      assert.deepEqual(tree(), before, `${name}: nothing stored`);
      tally('registry manifest', true);
    }
    assert.equal((await fetch(`${base}/v2/r7/img/manifests/t1`)).status, 404, 'no tag was written');
    // digests in URLs
    for (const ref of ['a:b', `sha256:${'A'.repeat(64)}`, 'sha256:zz']) {
      for (const path of [`/v2/r7/img/blobs/${ref}`, `/v2/r7/img/referrers/${ref}`]) {
        const r = await fetch(`${base}${path}`);
        assert.ok(r.status === 400 || r.status === 404, `${path}: ${r.status}`);
        tally('registry url', true);
      }
    }
    // a valid referrer push after all that: stored, listed, tag written last
    const sub = await fetch(`${base}/v2/r7/img/manifests/base`, {
      method: 'PUT',
      body: JSON.stringify(good),
      headers: { 'Content-Type': good.mediaType },
    });
    assert.equal(sub.status, 201);
    const ref = {
      ...good,
      artifactType: 'application/x-test',
      subject: { mediaType: good.mediaType, digest: sha(JSON.stringify(good)), size: JSON.stringify(good).length },
    };
    const put = await fetch(`${base}/v2/r7/img/manifests/sig`, {
      method: 'PUT',
      body: JSON.stringify(ref),
      headers: { 'Content-Type': good.mediaType },
    });
    assert.equal(put.status, 201, await put.text());
    const list = (await (await fetch(`${base}/v2/r7/img/referrers/${sha(JSON.stringify(good))}`)).json()) as {
      manifests: Array<{ digest: string }>;
    };
    assert.deepEqual(
      list.manifests.map((x) => x.digest),
      [sha(JSON.stringify(ref))],
    );
  });

  test('registry basic auth: a verified password is not run through bcrypt again on every request', async () => {
    const authReg = await startBerthRegistry((dir) => {
      const file = join(dir, 'htpasswd-12');
      writeFileSync(file, execFileSync('htpasswd', ['-nbB', '-C', '12', 'alice', 'secret'], { encoding: 'utf8' }));
      return ['--htpasswd', file];
    });
    try {
      const get = async (pw: string) => {
        const t = performance.now();
        const r = await fetch(`http://${authReg.addr}/v2/`, {
          headers: { Authorization: `Basic ${Buffer.from(`alice:${pw}`).toString('base64')}` },
        });
        await r.text();
        return { status: r.status, ms: performance.now() - t };
      };
      const first = await get('secret');
      assert.equal(first.status, 200);
      const t = performance.now();
      for (let i = 0; i < 10; i++) assert.equal((await get('secret')).status, 200);
      const ten = performance.now() - t;
      assert.ok(
        ten < first.ms,
        `10 requests after the first took ${ten.toFixed(0)} ms, the first (bcrypt cost 12) ${first.ms.toFixed(0)} ms`,
      );
      // a wrong password is never answered from the cache
      assert.equal((await get('secreT')).status, 401);
      assert.equal((await get('')).status, 401);
      assert.equal((await get('secret\0')).status, 401);
      tally('registry auth', true);
    } finally {
      await authReg.stop();
    }
  });

  test('registry gc: a manifest it cannot read stops it (nothing deleted); a blob used again is kept', async () => {
    const base = `http://${reg.addr}`;
    const layer = L([{ name: 'gc', data: 'gc' }]);
    const config = Buffer.from(
      JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [sha(layer)] } }),
    );
    for (const b of [config, layer])
      assert.equal(
        (
          await fetch(`${base}/v2/gc/a/blobs/uploads/?digest=${sha(b)}`, {
            method: 'POST',
            body: b as unknown as BodyInit,
          })
        ).status,
        201,
      );
    const m = JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha(config), size: config.length },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha(layer), size: layer.length }],
    });
    assert.equal(
      (
        await fetch(`${base}/v2/gc/a/manifests/1`, {
          method: 'PUT',
          body: m,
          headers: { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' },
        })
      ).status,
      201,
    );
    const blob = (dg: string) => join(reg.root, 'blobs', 'sha256', dg.slice(7));
    const old = new Date(Date.now() - 10 * 86400_000);
    for (const dg of [sha(config), sha(layer), sha(m)]) utimesSync(blob(dg), old, old);
    const gc = (args: string[] = []) =>
      execFileSync(join(REPO, 'bin/berth'), ['registry', 'gc', '--root', reg.root, '--grace', '3600', ...args], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, NODE_EXTRA_CA_CERTS: '' },
      });
    // the manifest's bytes are damaged: gc cannot know what it names, and deletes nothing
    const good = readFileSync(blob(sha(m)));
    writeFileSync(blob(sha(m)), '{not json');
    utimesSync(blob(sha(m)), old, old);
    assert.throws(() => gc(), /cannot be read|nothing was deleted/);
    assert.ok(
      existsSync(blob(sha(layer))) && existsSync(blob(sha(config))),
      'the layers of an unreadable manifest stay',
    );
    writeFileSync(blob(sha(m)), good);
    tally('registry gc', true);
    // an unreferenced old blob that a client is told exists (HEAD) is kept by the grace period
    const orphan = Buffer.from('orphan layer');
    assert.equal(
      (
        await fetch(`${base}/v2/gc/a/blobs/uploads/?digest=${sha(orphan)}`, {
          method: 'POST',
          body: orphan as unknown as BodyInit,
        })
      ).status,
      201,
    );
    utimesSync(blob(sha(orphan)), old, old);
    assert.equal((await fetch(`${base}/v2/gc/a/blobs/${sha(orphan)}`, { method: 'HEAD' })).status, 200);
    gc();
    assert.ok(existsSync(blob(sha(orphan))), 'a blob just reported to a client survives gc');
    // once it is old again and nothing names it, it goes; named blobs stay
    utimesSync(blob(sha(orphan)), old, old);
    gc();
    assert.ok(!existsSync(blob(sha(orphan))), 'the old orphan is collected');
    assert.ok(existsSync(blob(sha(layer))), 'a named layer stays');
    assert.deepEqual(
      readdirSync(join(reg.root, 'blobs', 'sha256')).filter((n) => n.includes('.gc-')),
      [],
      'nothing left aside',
    );
    tally('registry gc', false);
  });
});
