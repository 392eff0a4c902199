/** What the container verbs (and images, networks, system) share: argument counts, per-name loops, filters. */
import { UsageError } from '../args.js';
import { ExitError, daemonError, type Ctx } from '../context.js';

export type Json = Record<string, unknown>;
export const need = (args: string[], n: number, usage: string) => {
  if (args.length < n) throw new UsageError(`requires at least ${n} argument${n > 1 ? 's' : ''}: ${usage}`);
};

/** Runs `fn` for each name like docker does: print the name on success, errors to stderr, exit 1 if any failed. */
export async function each(ctx: Ctx, names: string[], fn: (n: string) => Promise<void>, echo = true): Promise<void> {
  let failed = false;
  for (const n of names) {
    try {
      await fn(n);
      if (echo) ctx.out(`${n}\n`);
    } catch (e) {
      ctx.err(`${daemonError(e)}\n`);
      failed = true;
    }
  }
  if (failed) throw new ExitError(1);
}

export function filtersParam(fs: string[]): string | undefined {
  if (!fs.length) return undefined;
  const out: Record<string, string[]> = {};
  for (const f of fs) {
    const i = f.indexOf('=');
    if (i < 0) throw new UsageError(`bad format of filter (expected name=value): ${f}`);
    (out[f.slice(0, i)] ??= []).push(f.slice(i + 1));
  }
  return JSON.stringify(out);
}
