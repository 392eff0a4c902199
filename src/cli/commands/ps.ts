/** `ps`: the container list, as a table or a --format template. */
import { parseArgs, str, bool, list, type FlagSpec } from '../args.js';
import { table, formatList, ago, humanSize } from '../format.js';
import { q, type Ctx } from '../context.js';
import { filtersParam, type Json } from './verb-util.js';

const PS: FlagSpec = {
  all: { type: 'bool', short: 'a' },
  quiet: { type: 'bool', short: 'q' },
  filter: { type: 'list', short: 'f' },
  format: { type: 'string' },
  'no-trunc': { type: 'bool' },
  last: { type: 'string', short: 'n' },
  latest: { type: 'bool', short: 'l' },
  size: { type: 'bool', short: 's' },
};

export async function ps(ctx: Ctx, argv: string[]): Promise<void> {
  const p = parseArgs(argv, PS);
  const limit = bool(p, 'latest') ? 1 : str(p, 'last') ? Number(str(p, 'last')) : undefined;
  const filters = filtersParam(list(p, 'filter'));
  const params = q({ all: bool(p, 'all') || limit !== undefined, limit, filters, size: bool(p, 'size') });
  const list_ = await ctx.client.json<Json[]>('GET', `/containers/json${params}`);
  const trunc = !bool(p, 'no-trunc');
  if (bool(p, 'quiet'))
    return ctx.out(list_.map((c) => `${trunc ? String(c['Id']).slice(0, 12) : String(c['Id'])}\n`).join(''));
  const rows = list_.map((c) => {
    const cmd = String(c['Command']);
    return {
      ID: trunc ? String(c['Id']).slice(0, 12) : c['Id'],
      Image: c['Image'],
      Command: `"${trunc && cmd.length > 20 ? `${cmd.slice(0, 19)}…` : cmd}"`,
      CreatedAt: new Date(Number(c['Created']) * 1000).toISOString(),
      RunningFor: ago(Number(c['Created'])),
      Ports: '',
      State: c['State'],
      Status: c['Status'],
      Size: c['SizeRw'] !== undefined ? humanSize(Number(c['SizeRw'])) : '',
      Names: (c['Names'] as string[]).map((n) => n.replace(/^\//, '')).join(','),
      Labels: Object.entries((c['Labels'] as Record<string, string>) ?? {})
        .map(([k, v]) => `${k}=${v}`)
        .join(','),
      Mounts: '',
      Networks: '',
    };
  });
  const format = str(p, 'format');
  if (format) return ctx.out(formatList(format, rows));
  ctx.out(
    table([
      ['CONTAINER ID', 'IMAGE', 'COMMAND', 'CREATED', 'STATUS', 'PORTS', 'NAMES'],
      ...rows.map((r) => [r.ID, r.Image, r.Command, r.RunningFor, r.Status, r.Ports, r.Names].map(String)),
    ]),
  );
}
