/**
 * The CLI's bundles as the build leaves them (scripts/bundle-cli.mjs; src/cli/README.md "Start-up"):
 * bin/berth runs a verb's own bundle (dist/cli/<part>.cjs, named by dist/cli/routes.json) with its
 * code cache, and must still work, through the whole CLI (dist/berth.cjs) or without a cache, when
 * a part, routes.json or a cache is missing, stale or damaged. Each case runs bin/berth from a copy
 * of bin/ and dist/ against a stand-in daemon on a unix socket that answers every request with `[]`.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createServer, type Server } from 'node:net';
import { cpSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { tmpdir } from 'node:os';

const REPO = resolve(import.meta.dirname, '../../..');
const PS_HEADER = 'CONTAINER ID   IMAGE   COMMAND   CREATED   STATUS   PORTS   NAMES\n';

let dir: string;
let server: Server;
let requests: string[];

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'berth-bundles-'));
  requests = [];
  server = createServer((c) => {
    c.on('data', (d: Buffer) => {
      requests.push(d.toString('latin1').split('\r\n')[0]!);
      c.write('HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n[]');
    });
    c.on('error', () => undefined);
  });
  await new Promise<void>((r) => server.listen(join(dir, 's.sock'), r));
});
after(() => {
  server.close();
  rmSync(dir, { recursive: true, force: true });
});

/** A copy of bin/berth and the CLI's bundles (not dist/src: the bundles need none of it). */
function install(name: string): string {
  const root = join(dir, name);
  cpSync(join(REPO, 'bin', 'berth'), join(root, 'bin', 'berth'));
  for (const f of readdirSync(join(REPO, 'dist'))) {
    if (/^(berth|trust)\.cjs/.test(f)) cpSync(join(REPO, 'dist', f), join(root, 'dist', f));
  }
  cpSync(join(REPO, 'dist', 'cli'), join(root, 'dist', 'cli'), { recursive: true });
  return root;
}

function berth(
  root: string,
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; out: string; err: string }> {
  return new Promise((done) => {
    execFile(
      process.execPath,
      [join(root, 'bin', 'berth'), ...args],
      { env: { ...process.env, BERTH_HOST: `unix://${join(dir, 's.sock')}`, ...env } },
      (e, out, err) => done({ code: e ? Number(e.code) : 0, out, err }),
    );
  });
}

const cacheOf = (root: string, bundle: string): string | undefined =>
  readdirSync(join(root, 'dist', ...bundle.split('/').slice(0, -1))).find(
    (f) => f.startsWith(`${bundle.split('/').pop()!}.`) && f.endsWith('.cache'),
  );

test('the build made a part per src/cli/parts module, each with its code cache, and routes for their verbs', () => {
  const routes = JSON.parse(readFileSync(join(REPO, 'dist', 'cli', 'routes.json'), 'utf8')) as Record<string, string>;
  const parts = readdirSync(join(REPO, 'src', 'cli', 'parts')).map((f) => f.replace(/\.ts$/, ''));
  assert.deepEqual([...new Set(Object.values(routes))].sort(), [...parts].sort());
  assert.equal(routes['ps'], 'ps');
  assert.equal(routes['container ls'], 'ps');
  assert.equal(routes['run'], 'run');
  for (const part of parts) {
    const text = readFileSync(join(REPO, 'dist', 'cli', `${part}.cjs`), 'utf8');
    const id = /^\/\/berth-build:([0-9a-f]+)\n/.exec(text)?.[1];
    assert.ok(id, `${part}.cjs names its build`);
    assert.ok(existsSync(join(REPO, 'dist', 'cli', `${part}.cjs.${id}.cache`)), `${part}.cjs has its code cache`);
  }
});

test('berth ps runs its own part; without it, or without routes.json, the whole CLI answers the same', async () => {
  const root = install('routes');
  const own = await berth(root, ['ps']);
  assert.deepEqual(own, { code: 0, out: PS_HEADER, err: '' });
  assert.equal(requests.at(-1), 'GET /v1.45/containers/json HTTP/1.1');
  rmSync(join(root, 'dist', 'cli', 'ps.cjs'));
  assert.deepEqual(await berth(root, ['-H', `unix://${join(dir, 's.sock')}`, 'container', 'ls']), own);
  rmSync(join(root, 'dist', 'cli', 'routes.json'));
  assert.deepEqual(await berth(root, ['ps']), own);
  // what only the whole CLI has still works: a verb without a part, the help, an unknown verb
  assert.match((await berth(root, ['network', 'ls'])).out, /^NETWORK ID/);
  assert.match((await berth(root, ['--help'])).out, /^Usage: {2}berth/);
  const unknown = await berth(root, ['nosuch']);
  assert.equal(unknown.code, 1);
  assert.match(unknown.err, /'nosuch' is not a berth command/);
});

test('a damaged, missing or stale code cache is not used: the bundle compiles as usual', async () => {
  const root = install('caches');
  const cache = cacheOf(root, 'cli/ps.cjs');
  assert.ok(cache);
  const at = join(root, 'dist', 'cli', cache);
  writeFileSync(at, Buffer.alloc(4096, 0x5a)); // damaged: V8 refuses it
  assert.deepEqual(await berth(root, ['ps']), { code: 0, out: PS_HEADER, err: '' });
  rmSync(at); // missing
  assert.deepEqual(await berth(root, ['ps']), { code: 0, out: PS_HEADER, err: '' });
  // a rebuilt bundle (another id) does not find the old cache; BERTH_CODE_CACHE=write makes its own
  const bundle = join(root, 'dist', 'cli', 'ps.cjs');
  const text = readFileSync(bundle, 'utf8');
  writeFileSync(bundle, text.replace(/^\/\/berth-build:[0-9a-f]+/, '//berth-build:0123456789abcdef'));
  assert.deepEqual(await berth(root, ['ps'], { BERTH_CODE_CACHE: 'write' }), { code: 0, out: PS_HEADER, err: '' });
  assert.ok(existsSync(`${bundle}.0123456789abcdef.cache`));
  assert.deepEqual(await berth(root, ['ps']), { code: 0, out: PS_HEADER, err: '' });
  // a bundle without a build id (built by hand) runs without a cache
  writeFileSync(bundle, text.slice(text.indexOf('\n') + 1));
  assert.deepEqual(await berth(root, ['ps']), { code: 0, out: PS_HEADER, err: '' });
});

test('berth ps loads neither node:net nor node:stream (client/wire.ts, cli/stdio.ts); a closed stdout ends it quietly', async () => {
  const root = install('light');
  const list = join(dir, 'modules.txt');
  const preload = join(dir, 'modules.cjs');
  writeFileSync(
    preload,
    `process.on('exit', () => require('fs').writeFileSync(${JSON.stringify(list)}, process.moduleLoadList.join('\\n')));\n`,
  );
  for (const args of [['ps'], ['ps', '--no-such-flag']]) {
    const r = await berth(root, args, { NODE_OPTIONS: `--require ${preload}` });
    assert.equal(r.code, args.length === 1 ? 0 : 125, r.err);
    const loaded = readFileSync(list, 'utf8').split('\n');
    for (const m of ['NativeModule net', 'NativeModule stream', 'NativeModule tty'])
      assert.ok(!loaded.includes(m), `berth ${args.join(' ')} loaded ${m}`);
  }
  // the reader of stdout is gone before berth writes: no stack trace, exit 0 (as `logs | head`)
  const piped = await new Promise<{ code: number; err: string }>((done) =>
    execFile(
      'bash',
      [
        '-c',
        `set -o pipefail; ${JSON.stringify(process.execPath)} ${JSON.stringify(join(root, 'bin', 'berth'))} ps | true`,
      ],
      { env: { ...process.env, BERTH_HOST: `unix://${join(dir, 's.sock')}` } },
      (e, _out, err) => done({ code: e ? Number(e.code) : 0, err }),
    ),
  );
  assert.deepEqual(piped, { code: 0, err: '' });
});
