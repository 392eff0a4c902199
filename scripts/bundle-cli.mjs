// Bundles the berth CLI into one minified file: Node loads one small module instead of ~20
// (start-up is the cost that matters for a CLI; see src/cli/README.md).
import { build } from 'esbuild';
await build({
  entryPoints: ['src/cmd/berth.ts'],
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  minify: true,
  outfile: 'dist/berth.cjs',
  logLevel: 'warning',
});
