/** `export`: a container's filesystem as a tar stream. */
import { createWriteStream } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { parseArgs, str } from '../args.js';
import { type Ctx } from '../context.js';
import { need } from './verb-util.js';

export async function exportCmd(ctx: Ctx, argv: string[]): Promise<void> {
  const p = parseArgs(argv, { output: { type: 'string', short: 'o' } });
  need(p.args, 1, 'CONTAINER');
  const res = await ctx.client.stream('GET', `/containers/${encodeURIComponent(p.args[0]!)}/export`);
  await pipeline(res, str(p, 'output') ? createWriteStream(str(p, 'output')!) : process.stdout);
}
