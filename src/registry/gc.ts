/**
 * `berth registry gc`: mark and sweep. Marks every manifest each repository holds and every blob
 * those manifests (and the manifests of indexes) name; sweeps unmarked blobs older than the grace
 * period, with their repository links. The grace period is what makes it safe next to pushes: a
 * client uploads layers first and the manifest naming them last, so a blob younger than the grace
 * period may be about to be referenced and is kept. A referenced blob is never deleted.
 */
import { promises as fsp, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { BerthError, errorMessage, isBerthError } from '../base/errors.js';
import { log } from '../base/log.js';
import { parseManifest } from '../spec/distribution.js';
import type { RegistryStorage } from './storage.js';

export interface GcResult {
  marked: number;
  deleted: string[];
  keptYoung: number;
  bytesFreed: number;
}

/**
 * Every blob the repositories' manifests name (and the manifests). A manifest that cannot be read,
 * or a repository whose manifests cannot be listed, stops gc with a log line: its blobs are unknown.
 */
async function mark(storage: RegistryStorage): Promise<Set<string>> {
  const marked = new Set<string>();
  const stop = (what: string, e: unknown) => {
    const msg = `gc: ${what} (${errorMessage(e)}); nothing was deleted: the blobs it names are unknown`;
    log.error('registry gc stopped', { err: msg });
    return new BerthError(isBerthError(e) ? e.code : 'Internal', msg, { cause: e });
  };
  let all: Array<{ repo: string; digest: string }>;
  try {
    all = await storage.allManifests();
  } catch (e) {
    throw stop('the manifests cannot be listed', e);
  }
  for (const { repo, digest } of all) {
    marked.add(digest);
    let m;
    try {
      m = parseManifest(readFileSync(storage.blobPath(digest)));
    } catch (e) {
      throw stop(`manifest ${digest} of ${repo} cannot be read`, e);
    }
    for (const d of [m.config, ...(m.layers ?? []), ...(m.manifests ?? []), m.subject]) if (d) marked.add(d.digest);
  }
  return marked;
}

/**
 * Sweeps in two steps so that a push running meanwhile loses nothing: unmarked blobs older than
 * the grace period are first moved aside (a rename: a HEAD now says 404 and the client uploads
 * again; a manifest naming one is refused by the server's post-write check), then marked again;
 * a blob a new manifest names, or that was touched (used) since, is moved back; the rest is deleted.
 */
export async function collectGarbage(
  storage: RegistryStorage,
  opts: { graceSeconds: number; dryRun?: boolean },
): Promise<GcResult> {
  const marked = await mark(storage);
  const dir = join(storage.root, 'blobs', 'sha256');
  const cutoff = storage.clock.now() - opts.graceSeconds * 1000;
  const result: GcResult = { marked: marked.size, deleted: [], keptYoung: 0, bytesFreed: 0 };
  const candidates: Array<{ hex: string; size: number }> = [];
  for (const hex of await fsp.readdir(dir)) {
    if (!/^[a-f0-9]{64}$/.test(hex)) continue;
    if (marked.has(`sha256:${hex}`)) continue;
    const st = await fsp.stat(join(dir, hex)).catch((e: unknown) => {
      // gone meanwhile: nothing to sweep; unreadable: kept, and said
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT')
        log.warn('registry gc keeps a blob it cannot stat', { hex, err: errorMessage(e) });
      return null;
    });
    if (!st) continue;
    if (st.mtimeMs > cutoff) {
      result.keptYoung++;
      continue;
    }
    candidates.push({ hex, size: st.size });
  }
  if (opts.dryRun) {
    for (const c of candidates) {
      result.deleted.push(`sha256:${c.hex}`);
      result.bytesFreed += c.size;
    }
    return result;
  }
  const aside = (hex: string) => join(dir, `${hex}.gc-${process.pid}`);
  const moved: typeof candidates = [];
  for (const c of candidates)
    if (
      await fsp.rename(join(dir, c.hex), aside(c.hex)).then(
        () => true,
        () => false,
      )
    )
      moved.push(c);
  let again: Set<string>;
  try {
    again = await mark(storage);
  } catch (e) {
    for (const c of moved) await fsp.rename(aside(c.hex), join(dir, c.hex)).catch(() => undefined);
    throw e;
  }
  const repos = await storage.repositoriesWithBlobs();
  for (const c of moved) {
    const st = await fsp.stat(aside(c.hex)).catch(() => null);
    if (again.has(`sha256:${c.hex}`) || !st || st.mtimeMs > cutoff) {
      await fsp.rename(aside(c.hex), join(dir, c.hex)).catch(() => undefined);
      result.keptYoung++;
      continue;
    }
    result.deleted.push(`sha256:${c.hex}`);
    result.bytesFreed += c.size;
    await fsp.rm(aside(c.hex), { force: true });
    for (const repo of repos) await storage.unlinkBlob(repo, `sha256:${c.hex}`);
  }
  return result;
}
