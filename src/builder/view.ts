/**
 * A read-only view of a committed chain's filesystem (an image's rootfs or a step's state): a
 * directory when the snapshotter has one, else its mount on a fresh directory in the scratch
 * space, unmounted and removed when `fn` ends. Shared by the build (COPY/WORKDIR look-ups) and
 * the service (the BuildKit local/tar exporters read the final image through it).
 */
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import type { BuilderDeps } from './types.js';

export async function withChainView<T>(
  d: Pick<BuilderDeps, 'snapshots' | 'mounter' | 'scratch'>,
  chainId: string | null,
  fn: (dir: string) => Promise<T>,
): Promise<T> {
  const v = d.snapshots.view(chainId);
  if ('dir' in v) return fn(v.dir);
  const dir = join(d.scratch, `view-${randomBytes(8).toString('hex')}`);
  await fsp.mkdir(dir, { recursive: true });
  await d.mounter.mountAll([v.mount], dir);
  try {
    return await fn(dir);
  } finally {
    await d.mounter.unmount(dir).catch(() => undefined);
    await fsp.rmdir(dir).catch(() => undefined);
  }
}
