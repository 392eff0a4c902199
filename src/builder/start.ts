/**
 * What berthd does for the builder at every start, without loading the builder's own modules (they
 * load on the first build, ../cmd/README.md "Start-up"): the step cache opened and its layers kept
 * from garbage collection, and what a build cut short by a crash left cleared.
 */
import { promises as fsp } from 'node:fs';
import { systemClock, type Clock } from '../base/clock.js';
import type { Db } from '../metadata/db.js';
import type { Mounter, Snapshotter } from '../snapshot/types.js';
import { BuildCache } from './cache.js';
import type { BuilderImages } from './types.js';

/** The step cache, its layer chains retained by the image store (a prune must not take them). */
export function openBuildCache(db: Db, images: Pick<BuilderImages, 'retain'>, clock: Clock = systemClock): BuildCache {
  const cache = new BuildCache(db, clock);
  images.retain(() => cache.chains());
  return cache;
}

/** Clears what a build cut short by a crash left: mounts and files in scratch, step snapshots. */
export async function clearScratch(d: {
  root: string;
  scratch: string;
  mounter: Mounter;
  snapshots: Pick<Snapshotter, 'activeKeys' | 'remove'>;
}): Promise<void> {
  await fsp.mkdir(d.root, { recursive: true });
  const mounts = (await fsp.readFile('/proc/self/mountinfo', 'utf8').catch(() => ''))
    .split('\n')
    .map((l) => l.split(' ')[4] ?? '')
    .filter((m) => m.startsWith(`${d.scratch}/`));
  for (const m of mounts.sort((a, b) => b.length - a.length)) await d.mounter.unmount(m).catch(() => undefined);
  await fsp.rm(d.scratch, { recursive: true, force: true });
  await fsp.mkdir(d.scratch, { recursive: true, mode: 0o700 });
  for (const key of d.snapshots.activeKeys('build-')) await d.snapshots.remove(key);
}
