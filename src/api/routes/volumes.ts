/** Volume routes: list, inspect, create, remove, prune. */
import type { VolumeRecord, VolumeVerbs } from '../../engine/volumes.js';
import { flag, type Router } from '../http.js';
import { parseFilters } from '../filters.js';
import { gates } from '../../spec/api-version.js';

const view = (v: VolumeRecord) => ({
  Name: v.Name,
  Driver: v.Driver,
  Mountpoint: v.Mountpoint,
  CreatedAt: v.CreatedAt,
  Labels: v.Labels,
  Options: v.Options,
  Scope: v.Scope,
});

export function volumeRoutes(r: Router, vols: VolumeVerbs): void {
  r.on('GET', '/volumes', (ctx) =>
    ctx.send(200, { Volumes: vols.list(parseFilters(ctx.query.get('filters'))).map(view), Warnings: [] }),
  );

  r.on('GET', '/volumes/{name}', (ctx) => ctx.send(200, view(vols.inspect(ctx.params[0]!))));

  r.on('POST', '/volumes/create', async (ctx) => ctx.send(201, view(await vols.create(await ctx.json()))));

  r.on('DELETE', '/volumes/{name}', async (ctx) => {
    await vols.remove(ctx.params[0]!, flag(ctx, 'force'));
    ctx.send(204);
  });

  r.on('POST', '/volumes/prune', async (ctx) => {
    const f = parseFilters(ctx.query.get('filters'));
    if (!gates(ctx.version).volumePruneAnonymousOnly) f['all'] = ['true']; // before 1.42: every unused volume
    const { deleted, space } = await vols.prune(f);
    ctx.send(200, { VolumesDeleted: deleted, SpaceReclaimed: space });
  });
}
