/**
 * Swarm (`/swarm`, `/nodes`, `/services`, `/tasks`, `/secrets`, `/configs`) and managed plugins
 * (`/plugins`): berth is a dockerd outside a swarm with no plugin installed. Every route dockerd
 * 20.10 serves is here, so that none answers "page not found"; the answers are dockerd's
 * (engine/swarm.ts has the words).
 */
import { invalidArgument } from '../../base/errors.js';
import { flag, type Ctx, type Router } from '../http.js';
import type { SystemVerbs } from '../../engine/system.js';
import type { SwarmKind } from '../../engine/swarm.js';
import { parseFilters } from '../filters.js';

/** A JSON body is read (and a malformed one refused, 400) before dockerd looks for the swarm. */
async function body(ctx: Ctx): Promise<void> {
  await ctx.json();
}

export function swarmRoutes(r: Router, sys: SystemVerbs): void {
  const sw = sys.swarm;
  const manager = () => sw.manager();
  const update = (kind: SwarmKind) => async (ctx: Ctx) => {
    await body(ctx);
    sw.update(kind, ctx.query.get('version'));
  };
  const create = async (ctx: Ctx) => {
    await body(ctx);
    sw.manager();
  };

  r.on('GET', '/swarm', manager);
  r.on('POST', '/swarm/init', async (ctx) => {
    await body(ctx);
    sw.join();
  });
  r.on('POST', '/swarm/join', async (ctx) => {
    await body(ctx);
    sw.join();
  });
  r.on('POST', '/swarm/leave', () => sw.leave());
  r.on('POST', '/swarm/update', update('swarm'));
  r.on('GET', '/swarm/unlockkey', manager);
  r.on('POST', '/swarm/unlock', create);

  for (const [base, kind] of [
    ['/nodes', 'node'],
    ['/services', 'service'],
    ['/secrets', 'secret'],
    ['/configs', 'config'],
  ] as const) {
    r.on('GET', base, (ctx) => {
      parseFilters(ctx.query.get('filters'));
      manager();
    });
    if (kind !== 'node') r.on('POST', `${base}/create`, create);
    r.on('GET', `${base}/{id}`, manager);
    r.on('DELETE', `${base}/{id}`, manager);
    r.on('POST', `${base}/{id}/update`, update(kind));
  }
  r.on('GET', '/tasks', (ctx) => {
    parseFilters(ctx.query.get('filters'));
    manager();
  });
  r.on('GET', '/tasks/{id}', manager);
  for (const base of ['/services', '/tasks'])
    r.on('GET', `${base}/{id}/logs`, (ctx) => {
      // dockerd checks the streams before it looks for the swarm (its 500, here a 400)
      if (!flag(ctx, 'stdout') && !flag(ctx, 'stderr'))
        throw invalidArgument('Bad parameters: you must choose at least one stream');
      manager();
    });
}

export function pluginRoutes(r: Router, sys: SystemVerbs): void {
  const pl = sys.plugins;
  r.on('GET', '/plugins', (ctx) => ctx.send(200, pl.list(parseFilters(ctx.query.get('filters')))));
  r.on('GET', '/plugins/privileges', (ctx) => pl.install('privileges', ctx.query.get('remote')));
  r.on('POST', '/plugins/pull', (ctx) => pl.install('pull', ctx.query.get('remote')));
  r.on('POST', '/plugins/create', (ctx) => pl.install('create', ctx.query.get('name')));
  r.on('GET', '/plugins/{name*}/json', (ctx) => pl.find(ctx.params[0]!));
  r.on('DELETE', '/plugins/{name*}', (ctx) => pl.find(ctx.params[0]!));
  r.on('POST', '/plugins/{name*}/enable', (ctx) => pl.enable(ctx.params[0]!, ctx.query.get('timeout')));
  r.on('POST', '/plugins/{name*}/disable', (ctx) => pl.find(ctx.params[0]!));
  r.on('POST', '/plugins/{name*}/push', (ctx) => pl.find(ctx.params[0]!));
  r.on('POST', '/plugins/{name*}/set', async (ctx) => {
    await body(ctx);
    pl.find(ctx.params[0]!);
  });
  r.on('POST', '/plugins/{name*}/upgrade', (ctx) => pl.upgrade(ctx.params[0]!, ctx.query.get('remote')));
}
