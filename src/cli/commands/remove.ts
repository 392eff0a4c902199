/** `rm` and `container prune`. */
import { parseArgs, bool, list } from '../args.js';
import { humanSize } from '../format.js';
import { q, type Ctx } from '../context.js';
import { filtersParam, each, need } from './verb-util.js';

export async function rm(ctx: Ctx, argv: string[]): Promise<void> {
  const p = parseArgs(argv, {
    force: { type: 'bool', short: 'f' },
    volumes: { type: 'bool', short: 'v' },
    link: { type: 'bool', short: 'l' },
  });
  need(p.args, 1, 'CONTAINER [CONTAINER...]');
  await each(ctx, p.args, async (n) => {
    await ctx.client.json(
      'DELETE',
      `/containers/${encodeURIComponent(n)}${q({ force: bool(p, 'force'), v: bool(p, 'volumes') })}`,
    );
  });
}

export async function prune(ctx: Ctx, argv: string[]): Promise<void> {
  const p = parseArgs(argv, { force: { type: 'bool', short: 'f' }, filter: { type: 'list' } });
  const r = await ctx.client.json<{ ContainersDeleted: string[] | null; SpaceReclaimed: number }>(
    'POST',
    `/containers/prune${q({ filters: filtersParam(list(p, 'filter')) })}`,
  );
  if (r.ContainersDeleted?.length) ctx.out(`Deleted Containers:\n${r.ContainersDeleted.join('\n')}\n\n`);
  ctx.out(`Total reclaimed space: ${humanSize(r.SpaceReclaimed)}\n`);
}
