/**
 * `berth registry gc`: mark and sweep. Marks every manifest each repository holds and every blob
 * those manifests (and the manifests of indexes) name; sweeps unmarked blobs older than the grace
 * period, with their repository links. The grace period is what makes it safe next to pushes: a
 * client uploads layers first and the manifest naming them last, so a blob younger than the grace
 * period may be about to be referenced and is kept. A referenced blob is never deleted.
 */
import { promises as fsp, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseManifest } from '../spec/distribution.js';
import type { RegistryStorage } from './storage.js';

export interface GcResult {
  marked: number;
  deleted: string[];
  keptYoung: number;
  bytesFreed: number;
}

export async function collectGarbage(storage: RegistryStorage, opts: { graceSeconds: number; dryRun?: boolean }): Promise<GcResult> {
  const marked = new Set<string>();
  for (const { digest } of await storage.allManifests()) {
    marked.add(digest);
    let m;
    try {
      m = parseManifest(readFileSync(storage.blobPath(digest)));
    } catch {
      continue; // an unreadable manifest still keeps itself
    }
    for (const d of [m.config, ...(m.layers ?? []), ...(m.manifests ?? []), m.subject]) if (d) marked.add(d.digest);
  }
  const dir = join(storage.root, 'blobs', 'sha256');
  const cutoff = Date.now() - opts.graceSeconds * 1000;
  const result: GcResult = { marked: marked.size, deleted: [], keptYoung: 0, bytesFreed: 0 };
  const repos = await storage.repositoriesWithBlobs();
  for (const hex of await fsp.readdir(dir)) {
    if (!/^[a-f0-9]{64}$/.test(hex)) continue;
    const digest = `sha256:${hex}`;
    if (marked.has(digest)) continue;
    const st = await fsp.stat(join(dir, hex)).catch(() => null);
    if (!st) continue;
    if (st.mtimeMs > cutoff) {
      result.keptYoung++;
      continue;
    }
    result.deleted.push(digest);
    result.bytesFreed += st.size;
    if (opts.dryRun) continue;
    await fsp.rm(join(dir, hex), { force: true });
    for (const repo of repos) await storage.unlinkBlob(repo, digest);
  }
  return result;
}
