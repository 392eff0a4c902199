/** `update`: a running container's resources and restart policy. */
import { parseArgs, str } from '../args.js';
import { parseBytes } from '../format.js';
import { type Ctx } from '../context.js';
import { each, need, type Json } from './verb-util.js';

export async function update(ctx: Ctx, argv: string[]): Promise<void> {
  const p = parseArgs(argv, {
    memory: { type: 'string', short: 'm' },
    cpus: { type: 'string' },
    'cpu-shares': { type: 'string', short: 'c' },
    'pids-limit': { type: 'string' },
    restart: { type: 'string' },
    'memory-swap': { type: 'string' },
    'cpuset-cpus': { type: 'string' },
  });
  need(p.args, 1, 'CONTAINER [CONTAINER...]');
  const body: Json = {};
  if (str(p, 'memory')) body['Memory'] = parseBytes(str(p, 'memory')!);
  if (str(p, 'memory-swap'))
    body['MemorySwap'] = str(p, 'memory-swap') === '-1' ? -1 : parseBytes(str(p, 'memory-swap')!);
  if (str(p, 'cpus')) body['NanoCpus'] = Math.round(Number(str(p, 'cpus')) * 1e9);
  if (str(p, 'cpu-shares')) body['CpuShares'] = Number(str(p, 'cpu-shares'));
  if (str(p, 'cpuset-cpus')) body['CpusetCpus'] = str(p, 'cpuset-cpus');
  if (str(p, 'pids-limit')) body['PidsLimit'] = Number(str(p, 'pids-limit'));
  if (str(p, 'restart')) {
    const [Name = '', max] = str(p, 'restart')!.split(':');
    body['RestartPolicy'] = { Name, MaximumRetryCount: max ? Number(max) : 0 };
  }
  await each(ctx, p.args, async (n) => {
    await ctx.client.json('POST', `/containers/${encodeURIComponent(n)}/update`, body);
  });
}
