// Bundles the berth CLI into one minified file: Node loads one small module instead of ~20
// (start-up is the cost that matters for a CLI; see src/cli/README.md). The trust commands are a
// second bundle, loaded only when trust is used (src/cli/trust-loader.ts). tuf-js's default HTTP
// fetcher (make-fetch-happen, ~75 ms to load) is replaced by a stub: berth injects its own fetcher
// (src/trust/verify.ts), so that code is never reached.
import { build } from 'esbuild';
const common = { bundle: true, platform: 'node', target: 'node20', format: 'cjs', minify: true, logLevel: 'warning' };
await build({ ...common, entryPoints: ['src/cmd/berth.ts'], outfile: 'dist/berth.cjs' });
await build({
  ...common,
  entryPoints: ['src/cli/commands/trust.ts'],
  outfile: 'dist/trust.cjs',
  plugins: [
    {
      name: 'no-default-fetcher',
      setup(b) {
        b.onResolve({ filter: /^make-fetch-happen$/ }, () => ({ path: 'make-fetch-happen', namespace: 'stub' }));
        b.onLoad({ filter: /.*/, namespace: 'stub' }, () => ({ contents: 'module.exports = () => { throw new Error("berth: tuf-js default fetcher is not bundled"); };' }));
      },
    },
  ],
});
