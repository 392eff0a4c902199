/**
 * What berthd loads at start (issue #19: /_ping within a second of a restart): the static imports
 * of cmd/berthd, followed through the compiled modules (type-only imports are gone there), must not
 * reach the builder, BuildKit, the CRI, trust or the cluster store's client, nor the npm packages
 * only they need (etcd3, gRPC, tuf-js). Those load on first use (base/lazy.ts, dynamic import()).
 * Read on the compiled output beside this test: no daemon, no timing.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, relative, resolve } from 'node:path';

const DIST_SRC = resolve(import.meta.dirname, '../../src');
/** `import ... from 'x'`, `import 'x'`, `export ... from 'x'` at the top of a module (not `import('x')`) */
const STATIC = /(?:^|\n)\s*(?:import|export)\s+(?:[^'"();]*?\sfrom\s+)?['"]([^'"]+)['"]/g;

/** The modules (paths relative to dist/src) and packages a module loads before it runs. */
function closure(entry: string): { modules: Map<string, string>; packages: Map<string, string> } {
  const modules = new Map<string, string>(); // module -> the module that imported it first
  const packages = new Map<string, string>();
  const queue: Array<[string, string]> = [[resolve(DIST_SRC, entry), '']];
  while (queue.length) {
    const [file, by] = queue.shift()!;
    const rel = relative(DIST_SRC, file);
    if (modules.has(rel)) continue;
    modules.set(rel, by);
    for (const m of readFileSync(file, 'utf8').matchAll(STATIC)) {
      const spec = m[1]!;
      if (spec.startsWith('.')) queue.push([resolve(dirname(file), spec), rel]);
      else if (!spec.startsWith('node:') && !packages.has(spec)) packages.set(spec, rel);
    }
  }
  return { modules, packages };
}

const chain = (modules: Map<string, string>, m: string): string => {
  const out = [m];
  for (let by = modules.get(m); by; by = modules.get(by)) out.unshift(by);
  return out.join(' > ');
};

test("berthd's start loads neither the builder, BuildKit, the CRI, trust nor the cluster store's client", () => {
  const { modules, packages } = closure('cmd/berthd.js');
  assert.ok(modules.has('engine/engine.js') && modules.has('api/http.js'), 'the closure is read');
  // what the builder keeps at every start (its cache's layers, a crash's leftovers) is start.ts and cache.ts
  const allowed = new Set(['builder/start.js', 'builder/cache.js', 'builder/types.js']);
  const lazy = [...modules.keys()].filter(
    (m) =>
      (/^(builder|buildkit|cri|trust)\//.test(m) && !allowed.has(m)) ||
      m === 'cluster/store.js' ||
      /^network\/cni(-pod)?\.js$/.test(m),
  );
  assert.deepEqual(
    lazy.map((m) => chain(modules, m)),
    [],
    'loaded at start, but meant to load on first use',
  );
  const heavy = [...packages.keys()].filter((p) => /^(etcd3|cockatiel|@grpc\/|tuf-js|@tufjs\/)/.test(p));
  assert.deepEqual(
    heavy.map((p) => `${chain(modules, packages.get(p)!)} > ${p}`),
    [],
    'packages loaded at start, but meant to load on first use',
  );
});
