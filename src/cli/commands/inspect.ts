/** What a container looks like: inspect, top, diff, port. */
import { parseArgs, str, bool } from '../args.js';
import { table, renderTemplate } from '../format.js';
import { ExitError, q, type Ctx } from '../context.js';
import { need } from './verb-util.js';

export async function inspect(ctx: Ctx, argv: string[], forced?: 'container' | 'image'): Promise<void> {
  const p = parseArgs(argv, {
    format: { type: 'string', short: 'f' },
    type: { type: 'string' },
    size: { type: 'bool', short: 's' },
  });
  need(p.args, 1, 'NAME|ID [NAME|ID...]');
  const type = forced ?? str(p, 'type');
  const found: unknown[] = [];
  let failed = false;
  for (const n of p.args) {
    const paths =
      type === 'image'
        ? [`/images/${n}/json`]
        : type === 'container'
          ? [`/containers/${encodeURIComponent(n)}/json`]
          : [`/containers/${encodeURIComponent(n)}/json`, `/images/${n}/json`];
    let got: unknown;
    for (const path of paths) {
      got = await ctx.client.json('GET', path).catch(() => undefined);
      if (got) break;
    }
    if (got) found.push(got);
    else {
      failed = true;
      ctx.err(`Error: No such ${type ?? 'object'}: ${n}\n`);
    }
  }
  const format = str(p, 'format');
  if (format) ctx.out(found.map((f) => renderTemplate(format, f) + '\n').join(''));
  else ctx.out(JSON.stringify(found, null, 4) + '\n');
  if (failed) throw new ExitError(1);
}

export async function top(ctx: Ctx, argv: string[]): Promise<void> {
  const p = parseArgs(argv, {}, false);
  need(p.args, 1, 'CONTAINER [ps OPTIONS]');
  const [id, ...psArgs] = p.args;
  const r = await ctx.client.json<{ Titles: string[]; Processes: string[][] }>(
    'GET',
    `/containers/${encodeURIComponent(id!)}/top${q({ ps_args: psArgs.join(' ') || undefined })}`,
  );
  ctx.out(table([r.Titles, ...r.Processes]));
}

export async function diff(ctx: Ctx, argv: string[]): Promise<void> {
  const p = parseArgs(argv, {});
  need(p.args, 1, 'CONTAINER');
  const r = await ctx.client.json<Array<{ Path: string; Kind: number }> | null>(
    'GET',
    `/containers/${encodeURIComponent(p.args[0]!)}/changes`,
  );
  ctx.out((r ?? []).map((c) => `${'CAD'[c.Kind]} ${c.Path}\n`).join(''));
}

export async function port(ctx: Ctx, argv: string[]): Promise<void> {
  const p = parseArgs(argv, {});
  need(p.args, 1, 'CONTAINER [PRIVATE_PORT[/PROTO]]');
  const info = await ctx.client.json<{
    NetworkSettings: { Ports: Record<string, Array<{ HostIp: string; HostPort: string }> | null> };
  }>('GET', `/containers/${encodeURIComponent(p.args[0]!)}/json`);
  for (const [k, v] of Object.entries(info.NetworkSettings.Ports ?? {})) {
    if (p.args[1] && k !== p.args[1] && k !== `${p.args[1]}/tcp`) continue;
    for (const b of v ?? []) ctx.out(`${p.args[1] ? '' : `${k} -> `}${b.HostIp || '0.0.0.0'}:${b.HostPort}\n`);
  }
}
