/**
 * `berth system prune [-a] [--volumes] [-f]`: what `docker system prune` does, through the same
 * endpoints: stopped containers, unused networks, (unused volumes,) dangling (or all unused)
 * images and the build cache. The image and build-cache prunes also collect the blobs and layers
 * nothing references (a crashed pull's, a failed build's); the total is the bytes that left the disk.
 */
import { parseArgs, bool } from '../args.js';
import { humanSize } from '../format.js';
import { q, type Ctx } from '../context.js';
import { filtersParam } from './containers.js';

export async function systemPrune(ctx: Ctx, argv: string[]): Promise<void> {
  const p = parseArgs(argv, {
    all: { type: 'bool', short: 'a' },
    force: { type: 'bool', short: 'f' },
    volumes: { type: 'bool' },
  });
  let total = 0;
  type Pruned<K extends string> = Record<K, string[] | null> & { SpaceReclaimed: number };
  const c = await ctx.client.json<Pruned<'ContainersDeleted'>>('POST', '/containers/prune');
  if (c.ContainersDeleted?.length) ctx.out(`Deleted Containers:\n${c.ContainersDeleted.join('\n')}\n\n`);
  total += c.SpaceReclaimed;
  const n = await ctx.client.json<{ NetworksDeleted: string[] | null }>('POST', '/networks/prune');
  if (n.NetworksDeleted?.length) ctx.out(`Deleted Networks:\n${n.NetworksDeleted.join('\n')}\n\n`);
  if (bool(p, 'volumes')) {
    const v = await ctx.client.json<Pruned<'VolumesDeleted'>>('POST', '/volumes/prune');
    if (v.VolumesDeleted?.length) ctx.out(`Deleted Volumes:\n${v.VolumesDeleted.join('\n')}\n\n`);
    total += v.SpaceReclaimed;
  }
  const filters = bool(p, 'all') ? ['dangling=false'] : [];
  type Deleted = Array<{ Untagged?: string; Deleted?: string }> | null;
  const path = `/images/prune${q({ filters: filtersParam(filters) })}`;
  const i = await ctx.client.json<{ ImagesDeleted: Deleted; SpaceReclaimed: number }>('POST', path);
  if (i.ImagesDeleted?.length) {
    const lines = i.ImagesDeleted.map((e) => (e.Untagged ? `untagged: ${e.Untagged}` : `deleted: ${e.Deleted}`));
    ctx.out(`Deleted Images:\n${lines.join('\n')}\n\n`);
  }
  total += i.SpaceReclaimed;
  const b = await ctx.client.json<Pruned<'CachesDeleted'>>('POST', '/build/prune');
  if (b.CachesDeleted?.length) ctx.out(`Deleted build cache objects:\n${b.CachesDeleted.join('\n')}\n\n`);
  total += b.SpaceReclaimed;
  ctx.out(`Total reclaimed space: ${humanSize(total)}\n`);
}
