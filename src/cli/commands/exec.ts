/** `berth exec`: create an exec instance, start it hijacked, then report its exit code. */
import { parseArgs, str, bool, list, UsageError } from '../args.js';
import { pumpStreams } from '../io.js';
import { ExitError, type Ctx } from '../context.js';

export async function exec(ctx: Ctx, argv: string[]): Promise<void> {
  const p = parseArgs(
    argv,
    {
      interactive: { type: 'bool', short: 'i' },
      tty: { type: 'bool', short: 't' },
      env: { type: 'list', short: 'e' },
      user: { type: 'string', short: 'u' },
      workdir: { type: 'string', short: 'w' },
      detach: { type: 'bool', short: 'd' },
      privileged: { type: 'bool' },
      'detach-keys': { type: 'string' },
    },
    false,
  );
  const [container, ...cmd] = p.args;
  if (!container || cmd.length === 0) throw new UsageError('requires at least 2 arguments: CONTAINER COMMAND [ARG...]');
  const detach = bool(p, 'detach');
  const tty = bool(p, 'tty');
  const stdin = bool(p, 'interactive') && !detach;
  const body: Record<string, unknown> = {
    Cmd: cmd,
    Env: list(p, 'env'),
    Tty: tty,
    AttachStdin: stdin,
    AttachStdout: !detach,
    AttachStderr: !detach,
    Privileged: bool(p, 'privileged'),
  };
  if (str(p, 'user')) body['User'] = str(p, 'user');
  if (str(p, 'workdir')) body['WorkingDir'] = str(p, 'workdir');
  if (str(p, 'detach-keys')) body['DetachKeys'] = str(p, 'detach-keys');
  const { Id } = await ctx.client.json<{ Id: string }>(
    'POST',
    `/containers/${encodeURIComponent(container)}/exec`,
    body,
  );
  if (detach) {
    await ctx.client.json('POST', `/exec/${Id}/start`, { Detach: true, Tty: tty });
    return;
  }
  const sock = await ctx.client.hijack(`/exec/${Id}/start`, { Detach: false, Tty: tty });
  await pumpStreams(ctx.client, sock, { tty, stdin, resizePath: `/exec/${Id}/resize` });
  const r = await ctx.client.json<{ ExitCode: number | null }>('GET', `/exec/${Id}/json`);
  if (r.ExitCode) throw new ExitError(r.ExitCode);
}
