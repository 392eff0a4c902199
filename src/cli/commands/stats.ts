/** `stats`: live resource usage. */
import { parseArgs, str, bool } from '../args.js';
import { table, formatList, binarySize } from '../format.js';
import { q, type Ctx } from '../context.js';
import { type Json } from './verb-util.js';

export async function stats(ctx: Ctx, argv: string[]): Promise<void> {
  const p = parseArgs(argv, {
    'no-stream': { type: 'bool' },
    all: { type: 'bool', short: 'a' },
    format: { type: 'string' },
    'no-trunc': { type: 'bool' },
  });
  const names = p.args.length
    ? p.args
    : (await ctx.client.json<Json[]>('GET', `/containers/json${q({ all: bool(p, 'all') })}`)).map((c) =>
        String(c['Id']),
      );
  const row = (s: Json) => {
    const cpu = s['cpu_stats'] as { cpu_usage: { total_usage: number }; system_cpu_usage: number; online_cpus: number };
    const pre = s['precpu_stats'] as typeof cpu;
    const sysDelta = cpu.system_cpu_usage - pre.system_cpu_usage;
    const cpuPct =
      sysDelta > 0
        ? ((cpu.cpu_usage.total_usage - pre.cpu_usage.total_usage) / sysDelta) * (cpu.online_cpus || 1) * 100
        : 0;
    const mem = s['memory_stats'] as { usage?: number; limit?: number; stats?: Record<string, number> };
    const used = (mem.usage ?? 0) - (mem.stats?.['total_inactive_file'] ?? mem.stats?.['inactive_file'] ?? 0);
    const pids = s['pids_stats'] as { current?: number };
    return {
      ID: String(s['id']).slice(0, 12),
      Container: String(s['id']).slice(0, 12),
      Name: String(s['name']).replace(/^\//, ''),
      CPUPerc: `${cpuPct.toFixed(2)}%`,
      MemUsage: `${binarySize(Math.max(0, used))} / ${binarySize(mem.limit ?? 0)}`,
      MemPerc: `${mem.limit ? ((used / mem.limit) * 100).toFixed(2) : '0.00'}%`,
      NetIO: '0B / 0B',
      BlockIO: '0B / 0B',
      PIDs: String(pids.current ?? 0),
    };
  };
  const render = (rows: Array<ReturnType<typeof row>>) => {
    const format = str(p, 'format');
    if (format) return formatList(format, rows);
    return table([
      ['CONTAINER ID', 'NAME', 'CPU %', 'MEM USAGE / LIMIT', 'MEM %', 'NET I/O', 'BLOCK I/O', 'PIDS'],
      ...rows.map((r) => [r.ID, r.Name, r.CPUPerc, r.MemUsage, r.MemPerc, r.NetIO, r.BlockIO, r.PIDs]),
    ]);
  };
  const once = async () =>
    Promise.all(
      names.map(async (n) =>
        row(await ctx.client.json<Json>('GET', `/containers/${encodeURIComponent(n)}/stats?stream=0`)),
      ),
    );
  if (bool(p, 'no-stream')) return ctx.out(render(await once()));
  for (;;) {
    const rows = await once();
    ctx.out(`\x1b[2J\x1b[H${render(rows)}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}
