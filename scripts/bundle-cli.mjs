// Bundles the berth CLI into one minified file: Node loads one small module instead of ~20
// (start-up is the cost that matters for a CLI; see src/cli/README.md). The trust commands are a
// second bundle, loaded only when trust is used (src/cli/trust-loader.ts). tuf-js's default HTTP
// fetcher (make-fetch-happen, ~75 ms to load) is replaced by a stub: berth injects its own fetcher
// (src/trust/verify.ts), so that code is never reached.
//
// Two more start-up cuts (src/cli/README.md "Start-up"):
// - Node built-ins that only some commands use (crypto, child_process, readline, zlib, url, util, http)
//   are loaded on first use: each import of one becomes an object whose properties require the
//   real module when read, so `berth ps` never loads them (~3 ms of CPU for crypto alone).
// - V8's code cache of the bundle (dist/berth.cjs.<size>-<mtime>.cache), made here by running the bundle on a few
//   commands against a stand-in daemon, so that bin/berth compiles almost nothing. Written next to
//   the bundle on every build, so that it always belongs to it (V8 also refuses a cache whose
//   source length or flags differ, and then bin/berth compiles as usual).
import { build } from 'esbuild';
import { createRequire } from 'node:module';
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

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
  // bundled, but evaluated on first use: `berth build` and `cp` pack tars, `ps` never does
  'tar-stream',
];
const lazyBuiltins = {
  name: 'lazy-builtins',
  setup(b) {
    const filter = new RegExp(`^(${LAZY.join('|')})$`);
    b.onResolve(
      { filter },
      (a) =>
        a.namespace !== 'lazy'
          ? { path: a.path, namespace: 'lazy' }
          : a.path.startsWith('node:')
            ? { path: a.path, external: true }
            : undefined, // a package: bundled as usual, its module run by the getter's first require
    );
    b.onLoad({ filter: /.*/, namespace: 'lazy' }, (a) => {
      const keys = Object.keys(require(a.path)).filter((k) => k !== 'default');
      const lines = keys.map(
        (k) =>
          `Object.defineProperty(exports, ${JSON.stringify(k)}, { enumerable: true, get: () => m()[${JSON.stringify(k)}] });`,
      );
      return {
        contents: `let c; const m = () => (c ??= require(${JSON.stringify(a.path)}));\n${lines.join('\n')}\n`,
        loader: 'js',
        resolveDir: process.cwd(),
      };
    });
  },
};
const common = { bundle: true, platform: 'node', target: 'node20', format: 'cjs', minify: true, logLevel: 'warning' };
await build({ ...common, entryPoints: ['src/cmd/berth.ts'], outfile: 'dist/berth.cjs', plugins: [lazyBuiltins] });
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

// The code cache (dist/berth.cjs.<size>-<mtime>.cache, bin/berth names it): older ones go first.
for (const f of readdirSync('dist')) if (/^berth\.cjs\..*cache$/.test(f)) rmSync(join('dist', f), { force: true });
// `ps` and `images` against a stand-in daemon answering `[]` (what an empty
// daemon says), and `version` (an error from it), so the functions they share are compiled.
const dir = mkdtempSync(join(tmpdir(), 'berth-cache-'));
const sock = join(dir, 's.sock');
const server = createServer((c) => {
  c.on('data', () => {
    c.write('HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\nApi-Version: 1.45\r\n\r\n[]');
  });
  c.on('error', () => undefined);
});
await new Promise((r) => server.listen(sock, r));
try {
  for (const args of [['ps'], ['images'], ['version']]) {
    const r = await new Promise((resolve) => {
      const p = spawn(process.execPath, ['bin/berth', ...args], {
        env: { ...process.env, BERTH_HOST: `unix://${sock}`, BERTH_CODE_CACHE: 'write' },
        stdio: 'ignore',
      });
      p.on('exit', resolve);
    });
    void r; // a command's exit code does not matter here: only that its code ran
  }
} finally {
  server.close();
  rmSync(dir, { recursive: true, force: true });
}
