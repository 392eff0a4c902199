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
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
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
    // The stand-in is a Proxy that reads the real module's export on each named access (what
    // esbuild's named and namespace imports compile to), so making it costs nothing per name; a
    // symbol (util.inspect's probes) loads nothing.
    b.onLoad({ filter: /.*/, namespace: 'lazy' }, (a) => {
      return {
        contents:
          `let c; const m = () => (c ??= require(${JSON.stringify(a.path)}));\n` +
          `module.exports = new Proxy({}, { get: (_, n) => (typeof n === 'string' ? m()[n] : undefined) });\n`,
        loader: 'js',
        resolveDir: process.cwd(),
      };
    });
  },
};
// esbuild hands an ESM importer a CommonJS module through its __toESM helper, which copies every
// property onto a new object (a getter each): ~100 per built-in, for each import site, at start-up,
// which was a third of what `berth ps` cost over Node's own start. The stand-ins above need no copy
// (no code reads `.default` or `__esModule` from them), so their `__toESM(init(), 1)` becomes `init()`.
// Each stand-in is found by its first statement (`var c,m=()=>c??=require("<module>")`).
function unwrapLazy(code) {
  const esc = (x) => x.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const names = [];
  for (const spec of LAZY) {
    const re = new RegExp(
      `([\\w$]+)=[\\w$]+\\(\\(?[\\w$]+(?:,[\\w$]+)?\\)?=>\\{var [\\w$]+,[\\w$]+=\\(\\)=>[\\w$]+\\?\\?=require\\(${esc(JSON.stringify(spec))}\\)`,
      'g',
    );
    const found = [...code.matchAll(re)].map((x) => x[1]);
    if (found.length > 1) throw new Error(`bundle-cli: ${spec}: ${found.length} stand-ins`);
    if (found.length === 1) names.push(found[0]);
  }
  let n = 0;
  for (const name of names) {
    code = code.replace(new RegExp(`(?<![\\w$])[\\w$]+\\(${esc(name)}\\(\\),1\\)`, 'g'), () => {
      n++;
      return `${name}()`;
    });
  }
  if (n === 0) throw new Error('bundle-cli: no __toESM of a lazy stand-in found (esbuild output changed?)');
  return code;
}
const common = { bundle: true, platform: 'node', target: 'node20', format: 'cjs', minify: true, logLevel: 'warning' };
{
  const out = await build({ ...common, entryPoints: ['src/cmd/berth.ts'], write: false, plugins: [lazyBuiltins] });
  writeFileSync('dist/berth.cjs', unwrapLazy(out.outputFiles[0].text));
}
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
