/**
 * Issue #15, item 1: api/ is a thin front door. It gets the engine's verbs (engine/verbs.ts) and
 * never the Engine with its services: no import of engine.ts or of the modules that are the
 * engine's inside, and no reach into a service through a property.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

const SRC = resolve(import.meta.dirname, '../../../src');

function sources(dir: string, out: string[] = []): string[] {
  for (const e of readdirSync(dir)) {
    const p = join(dir, e);
    if (statSync(p).isDirectory()) sources(p, out);
    else if (p.endsWith('.ts')) out.push(p);
  }
  return out;
}

/** The engine's inside: the Engine (its services are fields) and what only the verbs may drive. */
const INSIDE = [
  'engine.ts',
  'lifecycle.ts',
  'store.ts',
  'events.ts',
  'waiters.ts',
  'health.ts',
  'reconcile.ts',
  'checkpoint.ts',
  'container-create.ts',
];

test("api/ imports no module of the engine's inside (it is given engine/verbs.ts)", () => {
  const bad: string[] = [];
  for (const file of sources(join(SRC, 'api'))) {
    for (const m of readFileSync(file, 'utf8').matchAll(
      /^\s*(?:import|export)\s+(?:type\s+)?(?:[^'";]*?\s+from\s+)?['"](\.[^'"]+)['"]/gm,
    )) {
      const target = relative(SRC, resolve(dirname(file), m[1]!)).replace(/\.js$/, '.ts');
      if (target.startsWith('engine/') && INSIDE.includes(target.slice('engine/'.length)))
        bad.push(`${relative(SRC, file)} -> ${target}`);
    }
  }
  assert.deepEqual(bad, []);
});

test('api/ reaches into no engine service', () => {
  const bad: string[] = [];
  for (const file of sources(join(SRC, 'api'))) {
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(
      /\bengine\.(runtime|store|snapshots|images|networks|volumes|events|mounter|lifecycle|waiters|health|registries|trust)\b/g,
    ))
      bad.push(`${relative(SRC, file)}: ${m[0]}`);
  }
  assert.deepEqual(bad, []);
});
