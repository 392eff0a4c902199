/** `berth network ...` and `berth volume ...`: Docker's verbs over /networks and /volumes. */
import { UsageError, bool, list, parseArgs, str } from '../args.js';
import { formatList, renderTemplate, table } from '../format.js';
import { q, type Ctx } from '../context.js';
import { filtersParam } from './verb-util.js';

type Json = Record<string, unknown>;

const kv = (items: string[]) =>
  Object.fromEntries(
    items.map((l) => [
      l.slice(0, l.indexOf('=') < 0 ? l.length : l.indexOf('=')),
      l.includes('=') ? l.slice(l.indexOf('=') + 1) : '',
    ]),
  );

/** inspect: JSON array, or --format per object. */
async function inspectEach(ctx: Ctx, argv: string[], path: (n: string) => string): Promise<void> {
  const p = parseArgs(argv, { format: { type: 'string', short: 'f' } });
  if (!p.args.length) throw new UsageError('requires at least 1 argument');
  const out: Json[] = [];
  for (const n of p.args) out.push(await ctx.client.json<Json>('GET', path(encodeURIComponent(n))));
  const f = str(p, 'format');
  ctx.out(f ? out.map((o) => `${renderTemplate(f, o)}\n`).join('') : `${JSON.stringify(out, null, 4)}\n`);
}

export const network = {
  async create(ctx: Ctx, argv: string[]): Promise<void> {
    const p = parseArgs(argv, {
      driver: { type: 'string', short: 'd' },
      subnet: { type: 'string' },
      gateway: { type: 'string' },
      'ip-range': { type: 'string' },
      internal: { type: 'bool' },
      attachable: { type: 'bool' },
      label: { type: 'list' },
      opt: { type: 'list', short: 'o' },
    });
    if (p.args.length !== 1) throw new UsageError('requires exactly 1 argument: NETWORK');
    const ipam =
      str(p, 'subnet') || str(p, 'gateway') || str(p, 'ip-range')
        ? [{ Subnet: str(p, 'subnet'), Gateway: str(p, 'gateway'), IPRange: str(p, 'ip-range') }]
        : [];
    const r = await ctx.client.json<{ Id: string }>('POST', '/networks/create', {
      Name: p.args[0],
      Driver: str(p, 'driver') ?? 'bridge',
      Internal: bool(p, 'internal'),
      Attachable: bool(p, 'attachable'),
      Labels: kv(list(p, 'label')),
      Options: kv(list(p, 'opt')),
      IPAM: { Driver: 'default', Config: ipam },
    });
    ctx.out(`${r.Id}\n`);
  },
  async ls(ctx: Ctx, argv: string[]): Promise<void> {
    const p = parseArgs(argv, {
      quiet: { type: 'bool', short: 'q' },
      filter: { type: 'list', short: 'f' },
      format: { type: 'string' },
      'no-trunc': { type: 'bool' },
    });
    const nets = await ctx.client.json<Json[]>('GET', `/networks${q({ filters: filtersParam(list(p, 'filter')) })}`);
    const id = (n: Json) => (bool(p, 'no-trunc') ? String(n['Id']) : String(n['Id']).slice(0, 12));
    if (bool(p, 'quiet')) return ctx.out(nets.map((n) => `${id(n)}\n`).join(''));
    const f = str(p, 'format');
    if (f)
      return ctx.out(
        formatList(
          f,
          nets.map((n) => ({ ...n, ID: id(n) })),
        ),
      );
    ctx.out(
      table([
        ['NETWORK ID', 'NAME', 'DRIVER', 'SCOPE'],
        ...nets.map((n) => [id(n), String(n['Name']), String(n['Driver']), String(n['Scope'])]),
      ]),
    );
  },
  inspect: (ctx: Ctx, argv: string[]) => inspectEach(ctx, argv, (n) => `/networks/${n}`),
  async rm(ctx: Ctx, argv: string[]): Promise<void> {
    if (!argv.length) throw new UsageError('requires at least 1 argument: NETWORK [NETWORK...]');
    for (const n of argv) {
      await ctx.client.json('DELETE', `/networks/${encodeURIComponent(n)}`);
      ctx.out(`${n}\n`);
    }
  },
  async prune(ctx: Ctx, argv: string[]): Promise<void> {
    const p = parseArgs(argv, { force: { type: 'bool', short: 'f' }, filter: { type: 'list' } });
    const r = await ctx.client.json<{ NetworksDeleted: string[] | null }>(
      'POST',
      `/networks/prune${q({ filters: filtersParam(list(p, 'filter')) })}`,
    );
    if (r.NetworksDeleted?.length) ctx.out(`Deleted Networks:\n${r.NetworksDeleted.join('\n')}\n`);
  },
  async connect(ctx: Ctx, argv: string[]): Promise<void> {
    const p = parseArgs(argv, { alias: { type: 'list' }, ip: { type: 'string' } });
    if (p.args.length !== 2) throw new UsageError('requires exactly 2 arguments: NETWORK CONTAINER');
    await ctx.client.json('POST', `/networks/${encodeURIComponent(p.args[0]!)}/connect`, {
      Container: p.args[1],
      EndpointConfig: {
        Aliases: list(p, 'alias'),
        ...(str(p, 'ip') ? { IPAMConfig: { IPv4Address: str(p, 'ip') } } : {}),
      },
    });
  },
  async disconnect(ctx: Ctx, argv: string[]): Promise<void> {
    const p = parseArgs(argv, { force: { type: 'bool', short: 'f' } });
    if (p.args.length !== 2) throw new UsageError('requires exactly 2 arguments: NETWORK CONTAINER');
    await ctx.client.json('POST', `/networks/${encodeURIComponent(p.args[0]!)}/disconnect`, {
      Container: p.args[1],
      Force: bool(p, 'force'),
    });
  },
};

export const volume = {
  async create(ctx: Ctx, argv: string[]): Promise<void> {
    const p = parseArgs(argv, {
      driver: { type: 'string', short: 'd' },
      opt: { type: 'list', short: 'o' },
      label: { type: 'list' },
      name: { type: 'string' },
    });
    const name = str(p, 'name') ?? p.args[0] ?? '';
    const v = await ctx.client.json<Json>('POST', '/volumes/create', {
      Name: name,
      Driver: str(p, 'driver') ?? 'local',
      DriverOpts: kv(list(p, 'opt')),
      Labels: kv(list(p, 'label')),
    });
    ctx.out(`${String(v['Name'])}\n`);
  },
  async ls(ctx: Ctx, argv: string[]): Promise<void> {
    const p = parseArgs(argv, {
      quiet: { type: 'bool', short: 'q' },
      filter: { type: 'list', short: 'f' },
      format: { type: 'string' },
    });
    const r = await ctx.client.json<{ Volumes: Json[] }>(
      'GET',
      `/volumes${q({ filters: filtersParam(list(p, 'filter')) })}`,
    );
    if (bool(p, 'quiet')) return ctx.out(r.Volumes.map((v) => `${String(v['Name'])}\n`).join(''));
    const f = str(p, 'format');
    if (f) return ctx.out(formatList(f, r.Volumes));
    ctx.out(table([['DRIVER', 'VOLUME NAME'], ...r.Volumes.map((v) => [String(v['Driver']), String(v['Name'])])]));
  },
  inspect: (ctx: Ctx, argv: string[]) => inspectEach(ctx, argv, (n) => `/volumes/${n}`),
  async rm(ctx: Ctx, argv: string[]): Promise<void> {
    const p = parseArgs(argv, { force: { type: 'bool', short: 'f' } });
    if (!p.args.length) throw new UsageError('requires at least 1 argument: VOLUME [VOLUME...]');
    for (const n of p.args) {
      await ctx.client.json('DELETE', `/volumes/${encodeURIComponent(n)}${q({ force: bool(p, 'force') })}`);
      ctx.out(`${n}\n`);
    }
  },
  async prune(ctx: Ctx, argv: string[]): Promise<void> {
    const p = parseArgs(argv, {
      force: { type: 'bool', short: 'f' },
      all: { type: 'bool', short: 'a' },
      filter: { type: 'list' },
    });
    const filters = [...list(p, 'filter'), ...(bool(p, 'all') ? ['all=true'] : [])];
    const r = await ctx.client.json<{ VolumesDeleted: string[] | null; SpaceReclaimed: number }>(
      'POST',
      `/volumes/prune${q({ filters: filtersParam(filters) })}`,
    );
    if (r.VolumesDeleted?.length) ctx.out(`Deleted Volumes:\n${r.VolumesDeleted.join('\n')}\n\n`);
    ctx.out(`Total reclaimed space: ${r.SpaceReclaimed}B\n`);
  },
};
