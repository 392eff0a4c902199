/** The verbs that move containers between states: start, stop, restart, kill, pause, unpause, wait, rename. */
import { parseArgs, str, bool, type FlagSpec } from '../args.js';
import { pumpStreams } from '../io.js';
import { ExitError, q, type Ctx } from '../context.js';
import { each, need } from './verb-util.js';

const simple =
  (flags: FlagSpec, path: (n: string, p: ReturnType<typeof parseArgs>) => string) =>
  async (ctx: Ctx, argv: string[]) => {
    const p = parseArgs(argv, flags);
    need(p.args, 1, `CONTAINER [CONTAINER...]`);
    await each(ctx, p.args, async (n) => {
      await ctx.client.json('POST', path(n, p));
    });
  };

export const stop = simple(
  { time: { type: 'string', short: 't' }, signal: { type: 'string', short: 's' } },
  (n, p) => `/containers/${encodeURIComponent(n)}/stop${q({ t: str(p, 'time'), signal: str(p, 'signal') })}`,
);
export const restart = simple(
  { time: { type: 'string', short: 't' }, signal: { type: 'string', short: 's' } },
  (n, p) => `/containers/${encodeURIComponent(n)}/restart${q({ t: str(p, 'time'), signal: str(p, 'signal') })}`,
);
export const kill = simple(
  { signal: { type: 'string', short: 's' } },
  (n, p) => `/containers/${encodeURIComponent(n)}/kill${q({ signal: str(p, 'signal') })}`,
);
export const pause = simple({}, (n) => `/containers/${encodeURIComponent(n)}/pause`);
export const unpause = simple({}, (n) => `/containers/${encodeURIComponent(n)}/unpause`);

export async function start(ctx: Ctx, argv: string[]): Promise<void> {
  const p = parseArgs(argv, {
    attach: { type: 'bool', short: 'a' },
    interactive: { type: 'bool', short: 'i' },
    'detach-keys': { type: 'string' },
    checkpoint: { type: 'string' },
    'checkpoint-dir': { type: 'string' },
  });
  need(p.args, 1, 'CONTAINER [CONTAINER...]');
  if (!bool(p, 'attach') && !bool(p, 'interactive')) {
    return each(ctx, p.args, async (n) => {
      const params = q({ checkpoint: str(p, 'checkpoint'), 'checkpoint-dir': str(p, 'checkpoint-dir') });
      await ctx.client.json('POST', `/containers/${encodeURIComponent(n)}/start${params}`);
    });
  }
  const id = p.args[0]!;
  const info = await ctx.client.json<{ Id: string; Config: { Tty: boolean } }>(
    'GET',
    `/containers/${encodeURIComponent(id)}/json`,
  );
  const stdin = bool(p, 'interactive');
  const keys = str(p, 'detach-keys');
  const sock = await ctx.client.hijack(
    `/containers/${info.Id}/attach${q({ stream: 1, stdin: stdin ? 1 : 0, stdout: 1, stderr: 1, detachKeys: keys })}`,
  );
  const waitRes = await ctx.client.stream('POST', `/containers/${info.Id}/wait?condition=next-exit`);
  const pumped = pumpStreams(ctx.client, sock, {
    tty: info.Config.Tty,
    stdin,
    resizePath: `/containers/${info.Id}/resize`,
  });
  await ctx.client.json('POST', `/containers/${info.Id}/start`);
  await pumped;
  let t = '';
  for await (const c of waitRes) t += String(c);
  const code = (JSON.parse(t || '{"StatusCode":0}') as { StatusCode: number }).StatusCode;
  if (code !== 0) throw new ExitError(code);
}

export async function wait(ctx: Ctx, argv: string[]): Promise<void> {
  const p = parseArgs(argv, {});
  need(p.args, 1, 'CONTAINER [CONTAINER...]');
  await each(
    ctx,
    p.args,
    async (n) => {
      const r = await ctx.client.json<{ StatusCode: number }>('POST', `/containers/${encodeURIComponent(n)}/wait`);
      ctx.out(`${r.StatusCode}\n`);
    },
    false,
  );
}

export async function rename(ctx: Ctx, argv: string[]): Promise<void> {
  const p = parseArgs(argv, {});
  need(p.args, 2, 'CONTAINER NEW_NAME');
  await ctx.client.json('POST', `/containers/${encodeURIComponent(p.args[0]!)}/rename${q({ name: p.args[1] })}`);
}

/** `inspect` of containers or images (`--type`), with `-f` templates. */
