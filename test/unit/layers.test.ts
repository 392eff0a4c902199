/**
 * The layer rules of ../shared/DESIGN.md, checked on the source (issue #15, item 4): a folder of
 * src/ imports only folders below it, and the front doors (cli, client, api, cri) only the engine
 * (api, cri), the client (cli) and spec/ and base/. What breaks the rules today is listed below,
 * file by file, to be paid off; a new upward import anywhere else fails this test. And no cycle of
 * imports between files, type-only ones included (`madge --circular` counts them too): a type cycle
 * is a design cycle even when the compiler erases it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

const SRC = resolve(import.meta.dirname, '../../../src');

/** From the top: a folder may import the folders after it. trust/ and plugins/ are placed where their users are. */
const ORDER = [
  'cmd',
  'cli',
  'client',
  'api',
  'cri',
  'engine',
  // BuildKit's session transport, Status encoding and secrets: used by the engine's BuildKit verb, uses builder's parser
  'buildkit',
  'builder',
  'checkpoint',
  'network',
  'volume',
  'plugins',
  // the cluster store (etcd: leases, watches, transactions): below network/ (the overlay driver's state)
  // and checkpoint/ (migration), knowing nothing of either; it imports base/ only
  'cluster',
  'runtime',
  'image',
  'trust',
  'distribution',
  'registry',
  'metadata',
  'snapshot',
  'archive',
  'content',
  'spec',
  'base',
];
/**
 * Front doors: only these below them. The cli has two library layers besides the client, each for a
 * reason: `archive` because `berth build` packs the build context on the client, as docker's CLI
 * does, with the one tar implementation (DESIGN.md: one tar implementation, one set of containment
 * rules); `trust` because the CLI is the TUF publisher and a content-trust consumer, and signing
 * keys must never reach a daemon (trust/README.md: the CLI speaks to registries itself for trust).
 * Neither holds engine state; the rest of the CLI speaks only the Engine API. See cli/README.md.
 */
const FRONT: Record<string, string[]> = {
  cli: ['client', 'spec', 'base', 'archive', 'trust'],
  client: ['spec', 'base'],
  api: ['engine', 'spec', 'base'],
  cri: ['engine', 'spec', 'base'],
};

/** Imports that break the rules today (file -> folder), to be removed, never added to. */
const KNOWN: string[] = [];

interface Edge {
  from: string;
  to: string;
}

function sources(dir: string, out: string[] = []): string[] {
  for (const e of readdirSync(dir)) {
    const p = join(dir, e);
    if (statSync(p).isDirectory()) sources(p, out);
    else if (p.endsWith('.ts')) out.push(p);
  }
  return out;
}

function edges(): Edge[] {
  const out: Edge[] = [];
  for (const file of sources(SRC)) {
    const text = readFileSync(file, 'utf8');
    const add = (spec: string) => {
      const target = resolve(dirname(file), spec).replace(/\.js$/, '.ts');
      out.push({ from: relative(SRC, file), to: relative(SRC, target) });
    };
    for (const m of text.matchAll(/^\s*(?:import|export)\s+(?:type\s+)?(?:[^'";]*?\s+from\s+)?['"](\.[^'"]+)['"]/gm))
      add(m[1]!);
    // `import('./x.js')`: a dynamic import, or a type written inline; either way the file depends on it
    for (const m of text.matchAll(/\bimport\(\s*['"](\.[^'"]+)['"]\s*\)/g)) add(m[1]!);
  }
  return out;
}

const folder = (p: string) => p.split('/')[0]!;

function allowed(from: string, to: string): boolean {
  if (from === to) return true;
  const front = FRONT[from];
  if (front) return front.includes(to);
  const a = ORDER.indexOf(from);
  const b = ORDER.indexOf(to);
  return a >= 0 && b > a;
}

test('every folder of src/ has a place in the layer order', () => {
  const folders = readdirSync(SRC).filter((f) => statSync(join(SRC, f)).isDirectory());
  assert.deepEqual(
    folders.filter((f) => !ORDER.includes(f)),
    [],
  );
});

test('imports point down only (a new upward import fails; the known ones are listed to be paid off)', () => {
  const found = new Set<string>();
  for (const e of edges()) if (!allowed(folder(e.from), folder(e.to))) found.add(`${e.from} -> ${folder(e.to)}`);
  const fresh = [...found].filter((v) => !KNOWN.includes(v)).sort();
  assert.deepEqual(fresh, [], `upward imports against DESIGN.md's layers:\n${fresh.join('\n')}`);
  // a known one that is gone comes off the list, so it cannot come back unnoticed
  const paid = KNOWN.filter((k) => !found.has(k));
  assert.deepEqual(paid, [], 'paid off: remove from KNOWN');
});

test('no import cycle between files of src/, type-only imports included', () => {
  const graph = new Map<string, string[]>();
  for (const e of edges()) graph.set(e.from, [...(graph.get(e.from) ?? []), e.to]);
  // Tarjan's strongly connected components
  let index = 0;
  const idx = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const on = new Set<string>();
  const cycles: string[][] = [];
  const visit = (v: string) => {
    idx.set(v, index);
    low.set(v, index++);
    stack.push(v);
    on.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!idx.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (on.has(w)) low.set(v, Math.min(low.get(v)!, idx.get(w)!));
    }
    if (low.get(v) === idx.get(v)) {
      const scc: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        on.delete(w);
        scc.push(w);
      } while (w !== v);
      if (scc.length > 1) cycles.push(scc.sort());
    }
  };
  for (const v of graph.keys()) if (!idx.has(v)) visit(v);
  assert.deepEqual(cycles, [], `import cycles:\n${cycles.map((c) => c.join(' <-> ')).join('\n')}`);
});
