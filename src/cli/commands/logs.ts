/** A container's output: logs and attach. */
import { parseArgs, str, bool, UsageError } from '../args.js';
import { ago } from '../format.js';
import { Demux } from '../../client/client.js';
import { pumpStreams } from '../io.js';
import { q, type Ctx } from '../context.js';
import { need } from './verb-util.js';

export async function logs(ctx: Ctx, argv: string[]): Promise<void> {
  const p = parseArgs(argv, {
    follow: { type: 'bool', short: 'f' },
    tail: { type: 'string', short: 'n' },
    since: { type: 'string' },
    until: { type: 'string' },
    timestamps: { type: 'bool', short: 't' },
    details: { type: 'bool' },
  });
  need(p.args, 1, 'CONTAINER');
  const id = p.args[0]!;
  const info = await ctx.client.json<{ Config: { Tty: boolean } }>('GET', `/containers/${encodeURIComponent(id)}/json`);
  const t = (v: string | undefined) =>
    v && !/^\d+(\.\d+)?$/.test(v) ? String(Date.parse(v) / 1000 || relSeconds(v)) : v;
  const params = q({
    stdout: 1,
    stderr: 1,
    follow: bool(p, 'follow'),
    tail: str(p, 'tail'),
    since: t(str(p, 'since')),
    until: t(str(p, 'until')),
    timestamps: bool(p, 'timestamps'),
  });
  const res = await ctx.client.stream('GET', `/containers/${encodeURIComponent(id)}/logs${params}`);
  const demux = new Demux((s, b) => (s === 2 ? process.stderr : process.stdout).write(b));
  for await (const c of res) info.Config.Tty ? process.stdout.write(c as Buffer) : demux.push(c as Buffer);
}

/** `10m`, `2h`, `30s` ago -> unix seconds. */
function relSeconds(v: string): number {
  const m = /^(\d+)([smh])$/.exec(v);
  if (!m) throw new UsageError(`invalid time: ${v}`);
  return Math.floor(Date.now() / 1000) - Number(m[1]) * { s: 1, m: 60, h: 3600 }[m[2] as 's'];
}

export async function attach(ctx: Ctx, argv: string[]): Promise<void> {
  const p = parseArgs(argv, {
    'no-stdin': { type: 'bool' },
    'detach-keys': { type: 'string' },
    'sig-proxy': { type: 'bool' },
  });
  need(p.args, 1, 'CONTAINER');
  const info = await ctx.client.json<{ Id: string; Config: { Tty: boolean; OpenStdin: boolean } }>(
    'GET',
    `/containers/${encodeURIComponent(p.args[0]!)}/json`,
  );
  const stdin = info.Config.OpenStdin && !bool(p, 'no-stdin');
  const keys = str(p, 'detach-keys');
  const sock = await ctx.client.hijack(
    `/containers/${info.Id}/attach${q({ stream: 1, stdin: stdin ? 1 : 0, stdout: 1, stderr: 1, detachKeys: keys })}`,
  );
  await pumpStreams(ctx.client, sock, { tty: info.Config.Tty, stdin, resizePath: `/containers/${info.Id}/resize` });
}
