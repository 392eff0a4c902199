// Bundles the berth CLI into minified files: Node loads one small module instead of ~20
// (start-up is the cost that matters for a CLI; see src/cli/README.md "Start-up"):
// - dist/berth.cjs, the whole CLI (src/cmd/berth.ts);
// - dist/cli/<part>.cjs, one per src/cli/parts/<part>.ts: the verbs `ps`, `run`, ... alone, so that
//   `berth ps` reads, deserializes and runs ~10 KB instead of ~130 KB. dist/cli/routes.json maps each
//   of their verbs to its part; bin/berth reads it and runs the part (else the whole CLI);
// - dist/trust.cjs, the trust commands, loaded only when trust is used (src/cli/trust-loader.ts).
//   tuf-js's default HTTP fetcher (make-fetch-happen, ~75 ms to load) is replaced by a stub: berth
//   injects its own fetcher (src/trust/verify.ts), so that code is never reached.
//
// Two more start-up cuts:
// - Node built-ins that only some commands use (crypto, child_process, readline, zlib, url, util, http)
//   are loaded on first use: each import of one becomes an object whose properties require the
//   real module when read, so `berth ps` never loads them (~3 ms of CPU for crypto alone).
// - V8's code cache of each CLI bundle (<bundle>.<id>.cache, where the bundle's first line is
//   `//berth-build:<id>`, a hash of its text), made here by running bin/berth on a few commands
//   per bundle against a stand-in daemon, so that bin/berth compiles almost nothing. Written next
//   to the bundle on every build, so that it always belongs to it (V8 also refuses a cache whose
//   flags differ, and then bin/berth compiles as usual).
import { build } from 'esbuild';
import { createRequire } from 'node:module';
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join, resolve as resolvePath } from 'node:path';

const require = createRequire(import.meta.url);
const LAZY = [
  'node:crypto',
  'node:child_process',
  'node:readline',
  'node:zlib',
  'node:url',
  'node:util',
  'node:http',
  'node:https',
  'node:module',
  // client/wire.ts speaks to the daemon without them: only streams and upgrades load them
  'node:net',
  'node:stream',
  'node:stream/promises',
  // bundled, but evaluated on first use: `berth build` and `cp` pack tars, `ps` never does
  'tar-stream',
];
/**
 * The names `importer` imports from `spec` (`import { a, b as c } from 'spec'`), sorted and joined
 * with commas, or `*` when it takes the whole module (or the import is not one that can be read
 * here): the shim gets a getter for those names only.
 */
function importedNames(importer, spec) {
  let text;
  try {
    text = readFileSync(importer, 'utf8');
  } catch {
    return '*';
  }
  const names = new Set();
  const esc = spec.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
  for (const m of text.matchAll(new RegExp(`import\\s+([^;]*?)\\s+from\\s+['"]${esc}['"]`, 'g'))) {
    const clause = m[1].trim();
    if (/^type\s/.test(clause)) continue;
    const braces = /^\{([^}]*)\}$/.exec(clause);
    if (!braces) return '*';
    for (const part of braces[1].split(',')) {
      const p = part.trim();
      if (!p || /^type\s/.test(p)) continue;
      names.add(p.split(/\s+as\s+/)[0].trim());
    }
  }
  // require('spec'), import('spec'), export ... from 'spec': the whole module
  if (new RegExp(`(?:require|import)\\(\\s*['"]${esc}['"]|export\\s[^;]*from\\s+['"]${esc}['"]`).test(text)) return '*';
  return names.size ? [...names].sort().join(',') : '*';
}
const lazyBuiltins = {
  name: 'lazy-builtins',
  setup(b) {
    const filter = new RegExp(`^(${LAZY.join('|')})$`);
    b.onResolve(
      { filter },
      (a) =>
        a.namespace !== 'lazy'
          ? { path: `${a.path}#${importedNames(a.importer, a.path)}`, namespace: 'lazy' }
          : a.path.startsWith('node:')
            ? { path: a.path, external: true }
            : undefined, // a package: bundled as usual, its module run by the getter's first require
    );
    b.onLoad({ filter: /.*/, namespace: 'lazy' }, (a) => {
      const [path, names] = a.path.split('#');
      const all = Object.keys(require(path)).filter((k) => k !== 'default');
      const keys = names === '*' ? all : names.split(',').filter((k) => all.includes(k));
      const lines = keys.map(
        (k) =>
          `Object.defineProperty(exports, ${JSON.stringify(k)}, { enumerable: true, get: () => m()[${JSON.stringify(k)}] });`,
      );
      return {
        contents: `let c; const m = () => (c ??= require(${JSON.stringify(path)}));\n${lines.join('\n')}\n`,
        loader: 'js',
        resolveDir: process.cwd(),
      };
    });
  },
};
const common = { bundle: true, platform: 'node', target: 'node20', format: 'cjs', minify: true, logLevel: 'warning' };
const cli = { ...common, plugins: [lazyBuiltins] };
/** Puts `//berth-build:<hash of the text>` first in a bundle: bin/berth names its code cache after it. */
const stamp = (file) => {
  const text = readFileSync(file, 'utf8');
  if (/[^\x00-\x7f]/.test(text))
    console.warn(`${file}: not ASCII, so V8 holds it as a two-byte string (slower to read)`);
  writeFileSync(file, `//berth-build:${createHash('sha256').update(text).digest('hex').slice(0, 16)}\n${text}`);
};
await build({ ...cli, entryPoints: ['src/cmd/berth.ts'], outfile: 'dist/berth.cjs' });
stamp('dist/berth.cjs');
rmSync('dist/cli', { recursive: true, force: true });
mkdirSync('dist/cli');
const parts = readdirSync('src/cli/parts')
  .filter((f) => f.endsWith('.ts'))
  .map((f) => f.slice(0, -3));
const routes = {};
for (const part of parts) {
  const from = `./src/cli/parts/${part}.ts`;
  await build({
    ...cli,
    stdin: {
      contents: `import { VERBS } from '${from}';\nimport { cliRun } from './src/cli/main.ts';\ncliRun(VERBS);\n`,
      resolveDir: '.',
      loader: 'ts',
      sourcefile: `cli-${part}.ts`,
    },
    outfile: `dist/cli/${part}.cjs`,
  });
  stamp(`dist/cli/${part}.cjs`);
  // the part's verbs, from its table run here
  const { outputFiles } = await build({
    ...cli,
    stdin: {
      contents: `import { VERBS } from '${from}';\nexport const verbs = Object.keys(VERBS);\n`,
      resolveDir: '.',
      loader: 'ts',
    },
    write: false,
  });
  const m = { exports: {} };
  new Function('module', 'exports', 'require', outputFiles[0].text)(m, m.exports, require);
  for (const verb of m.exports.verbs) {
    if (routes[verb]) throw new Error(`${verb}: in two parts (${routes[verb]}, ${part})`);
    routes[verb] = part;
  }
}
writeFileSync('dist/cli/routes.json', `${JSON.stringify(routes)}\n`);
await build({
  ...common,
  entryPoints: ['src/cli/commands/trust.ts'],
  outfile: 'dist/trust.cjs',
  plugins: [
    {
      name: 'no-default-fetcher',
      setup(b) {
        b.onResolve({ filter: /^make-fetch-happen$/ }, () => ({ path: 'make-fetch-happen', namespace: 'stub' }));
        b.onLoad({ filter: /.*/, namespace: 'stub' }, () => ({
          contents: 'module.exports = () => { throw new Error("berth: tuf-js default fetcher is not bundled"); };',
        }));
      },
    },
  ],
});

// The code caches (<bundle>.<id>.cache, bin/berth names them): older ones go first (dist/cli was remade).
for (const f of readdirSync('dist')) if (/^berth\.cjs\..*cache$/.test(f)) rmSync(join('dist', f), { force: true });
// Commands per bundle against a stand-in daemon, so that each bundle's cache holds what its usual
// run compiles. It answers `[]` to everything (what an empty daemon says to a list) but `run`'s
// own requests, which it answers as a daemon does for a container that prints a line and exits 0
// (`standIn`): else the attach, its demuxing, the wait and the exit are compiled at every real run
// (~0.5 M of `berth run --rm`'s ~94 M instructions). Each command must be harmless: a usage error
// is fine (its parsing is compiled), nothing may touch this host.
const WARM = {
  berth: [['network', 'ls'], ['volume', 'ls'], ['logs'], ['exec'], ['--help']],
  ps: [['ps'], ['ps', '-a']],
  run: [
    ['run', '--rm', '--network', 'none', 'busybox', 'true'],
    ['create', 'busybox'],
  ],
  images: [['images']],
  inspect: [['inspect', 'x']],
  system: [['version'], ['info']],
  lifecycle: [
    ['rm', 'x'],
    ['start', 'x'],
  ],
};
for (const part of parts)
  if (!WARM[part]) throw new Error(`scripts/bundle-cli.mjs: no warm-up commands for part ${part}`);
const dir = mkdtempSync(join(tmpdir(), 'berth-cache-'));
const sock = join(dir, 's.sock');
const ID = 'b'.repeat(64);
/** The stand-in's answer to one request (its first line): a response, and whether the connection ends after it. */
function standIn(line) {
  const json = (status, body) => {
    const text = JSON.stringify(body);
    return `HTTP/1.1 ${status}\r\nContent-Type: application/json\r\nContent-Length: ${text.length}\r\nApi-Version: 1.45\r\n\r\n${text}`;
  };
  const [method = '', path = ''] = line.split(' ');
  if (method === 'POST' && /\/containers\/create\b/.test(path))
    return [json('201 Created', { Id: ID, Warnings: [] }), false];
  if (method === 'POST' && /\/attach\b/.test(path)) {
    // a 101, then one stdout frame of the multiplexed stream, then the end of the output
    const out = Buffer.from('hi\n');
    const head = Buffer.from([1, 0, 0, 0, 0, 0, 0, out.length]);
    const up =
      'HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.multiplexed-stream\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nApi-Version: 1.45\r\n\r\n';
    return [Buffer.concat([Buffer.from(up), head, out]), true];
  }
  if (method === 'POST' && /\/wait\b/.test(path)) return [json('200 OK', { StatusCode: 0, Error: null }), false];
  if (method === 'POST' && /\/start\b/.test(path))
    return ['HTTP/1.1 204 No Content\r\nApi-Version: 1.45\r\n\r\n', false];
  return [json('200 OK', []), false];
}
const server = createServer((c) => {
  c.on('data', (d) => {
    // each request of these commands arrives whole in one read, and has no body to skip but JSON
    for (const line of d
      .toString('latin1')
      .split('\r\n')
      .filter((l) => /^[A-Z]+ \/\S* HTTP\/1\.1$/.test(l))) {
      const [answer, end] = standIn(line);
      if (end) c.end(answer);
      else c.write(answer);
    }
  });
  c.on('error', () => undefined);
});
await new Promise((r) => server.listen(sock, r));
try {
  const env = { ...process.env, BERTH_HOST: `unix://${sock}`, BERTH_CODE_CACHE: 'write', DOCKER_CONFIG: dir };
  for (const k of ['BERTH_CONTENT_TRUST', 'DOCKER_CONTENT_TRUST', 'DOCKER_HOST']) delete env[k];
  for (const args of Object.values(WARM).flat()) {
    await new Promise((resolve) => {
      const p = spawn(process.execPath, [resolvePath('bin/berth'), ...args], {
        env,
        stdio: process.env.BERTH_BUNDLE_DEBUG ? 'inherit' : 'ignore',
        cwd: dir,
      });
      p.on('exit', resolve); // a command's exit code does not matter here: only that its code ran
    });
  }
} finally {
  server.close();
  rmSync(dir, { recursive: true, force: true });
}
