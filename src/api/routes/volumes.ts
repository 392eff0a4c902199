/** Volume routes: list, inspect, create, remove, prune. */
import type { VolumeRecord, VolumeVerbs } from '../../engine/volumes.js';
import { invalidArgument } from '../../base/errors.js';
import { flag, type Router } from '../http.js';
import { parseFilters } from '../filters.js';
import { gates } from '../../spec/api-version.js';

/** A volume create body is a few names and maps. */
const MAX_VOLUME_BODY = 1024 * 1024;

export const volumeView = (v: VolumeRecord) => ({
  Name: v.Name,
  Driver: v.Driver,
  Mountpoint: v.Mountpoint,
  // dockerd's RFC 3339 to the second ("2026-12-02T06:22:08Z"), and null maps for ones never sent
  CreatedAt: v.CreatedAt.replace(/\.\d+Z$/, 'Z'),
  Labels: v.noLabels ? null : v.Labels,
  Options: v.noOptions ? null : v.Options,
  Scope: v.Scope,
});

export function volumeRoutes(r: Router, vols: VolumeVerbs): void {
  r.on('GET', '/volumes', (ctx) =>
    ctx.send(200, { Volumes: vols.list(parseFilters(ctx.query.get('filters'))).map(volumeView), Warnings: null }),
  );

  r.on('GET', '/volumes/{name}', (ctx) => ctx.send(200, volumeView(vols.inspect(ctx.params[0]!))));

  r.on('POST', '/volumes/create', async (ctx) => {
    // dockerd decodes the body strictly: none at all (no bytes, whatever the framing) is 400
    // "got EOF while reading request body", and nothing is created
    const chunks: Buffer[] = [];
    let n = 0;
    for await (const c of ctx.bodyStream) {
      const b = Buffer.isBuffer(c) ? c : Buffer.from(String(c));
      n += b.length;
      if (n > MAX_VOLUME_BODY) throw invalidArgument('request body too large');
      chunks.push(b);
    }
    if (n === 0) throw invalidArgument('got EOF while reading request body');
    ctx.send(201, volumeView(await vols.create(JSON.parse(Buffer.concat(chunks).toString('utf8')))));
  });

  r.on('DELETE', '/volumes/{name}', async (ctx) => {
    await vols.remove(ctx.params[0]!, flag(ctx, 'force'));
    ctx.send(204);
  });

  r.on('POST', '/volumes/prune', async (ctx) => {
    const filters = parseFilters(ctx.query.get('filters'));
    // before API 1.42 a prune removes every unused volume, named ones too (dockerd 23+ keeps that
    // for old clients), and `all` is no filter there (dockerd 20.10: 400 "Invalid filter 'all'");
    // from 1.42 only anonymous ones unless `all=true`
    const modern = gates(ctx.version).volumePruneAnonymousOnly;
    for (const k of Object.keys(filters))
      if (!['label', 'label!', ...(modern ? ['all'] : [])].includes(k)) throw invalidArgument(`Invalid filter '${k}'`);
    if (!modern) filters['all'] = ['true'];
    const { deleted, space } = await vols.prune(filters);
    ctx.send(200, { VolumesDeleted: deleted, SpaceReclaimed: space });
  });
}
