/** Volume routes: list, inspect, create, remove, prune. */
import { parseVolumeCreate } from '../../spec/volume-api.js';
import type { Engine } from '../../engine/engine.js';
import type { VolumeRecord } from '../../volume/manager.js';
import { flag, type Router } from '../http.js';
import { labelsMatch, parseFilters } from '../filters.js';

const view = (v: VolumeRecord) => ({ Name: v.Name, Driver: v.Driver, Mountpoint: v.Mountpoint, CreatedAt: v.CreatedAt, Labels: v.Labels, Options: v.Options, Scope: v.Scope });
export function volumeRoutes(r: Router, engine: Engine): void {
  const vols = engine.volumes;

  r.on('GET', '/volumes', (ctx) => {
    const f = parseFilters(ctx.query.get('filters'));
    let list = vols.list();
    if (f['name']?.length) list = list.filter((v) => f['name']!.some((n) => v.Name.includes(n)));
    if (f['driver']?.length) list = list.filter((v) => f['driver']!.includes(v.Driver));
    if (f['dangling']?.length) list = list.filter((v) => (f['dangling']![0] === 'true' || f['dangling']![0] === '1') === (engine.volumeUsers(v.Name).length === 0));
    if (f['label']?.length) list = list.filter((v) => labelsMatch(f['label'], v.Labels));
    ctx.send(200, { Volumes: list.map(view), Warnings: [] });
  });

  r.on('GET', '/volumes/{name}', (ctx) => ctx.send(200, view(vols.get(ctx.params[0]!))));

  r.on('POST', '/volumes/create', async (ctx) => {
    const v = await vols.create(parseVolumeCreate(await ctx.json()));
    engine.events.emit('volume', 'create', v.Name, { driver: v.Driver });
    ctx.send(201, view(v));
  });

  r.on('DELETE', '/volumes/{name}', async (ctx) => {
    const name = ctx.params[0]!;
    await vols.remove(name, engine.volumeUsers(name), flag(ctx, 'force'));
    engine.events.emit('volume', 'destroy', name, {});
    ctx.send(204);
  });

  r.on('POST', '/volumes/prune', async (ctx) => {
    const f = parseFilters(ctx.query.get('filters'));
    const all = f['all']?.[0] === 'true' || f['all']?.[0] === '1';
    const deleted: string[] = [];
    let space = 0;
    for (const v of vols.list()) {
      if (engine.volumeUsers(v.Name).length) continue;
      if (!all && !v.anonymous) continue; // API >= 1.42: only anonymous volumes unless all=true
      if (f['label']?.length && !labelsMatch(f['label'], v.Labels)) continue;
      space += await duBytes(v.Mountpoint);
      await vols.remove(v.Name, []);
      engine.events.emit('volume', 'destroy', v.Name, {});
      deleted.push(v.Name);
    }
    ctx.send(200, { VolumesDeleted: deleted, SpaceReclaimed: space });
  });
}

async function duBytes(path: string): Promise<number> {
  if (!path) return 0;
  const { execFile } = await import('node:child_process');
  return new Promise((resolve) => execFile('du', ['-sb', path], (err, out) => resolve(err ? 0 : Number(out.split('\t')[0]) || 0)));
}
