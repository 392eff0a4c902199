/** `berth cp`: files between the host and a container, as tar over /containers/{id}/archive. */
import { spawn } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { parseArgs, UsageError } from '../args.js';
import { q, type Ctx } from '../context.js';

function split(arg: string): { container: string; path: string } | null {
  const m = /^([^:/][^:]*):(.*)$/.exec(arg);
  return m ? { container: m[1]!, path: m[2]! || '/' } : null;
}

function tar(args: string[], stdio: 'in' | 'out'): ReturnType<typeof spawn> {
  return spawn('tar', args, { stdio: stdio === 'in' ? ['pipe', 'inherit', 'inherit'] : ['ignore', 'pipe', 'inherit'] });
}

export async function cp(ctx: Ctx, argv: string[]): Promise<void> {
  const p = parseArgs(argv, {
    archive: { type: 'bool', short: 'a' },
    'follow-link': { type: 'bool', short: 'L' },
    quiet: { type: 'bool', short: 'q' },
  });
  const [src, dst] = p.args;
  if (!src || !dst) throw new UsageError('requires exactly 2 arguments: SRC_PATH DEST_PATH');
  const from = split(src);
  const to = split(dst);
  if (from && to) throw new UsageError('copying between containers is not supported');
  if (from) {
    // container -> host: extract the tar; rename the top entry when the destination is a new name.
    const res = await ctx.client.stream(
      'GET',
      `/containers/${encodeURIComponent(from.container)}/archive${q({ path: from.path })}`,
    );
    const target = resolve(dst);
    const st = await fsp.stat(target).catch(() => null);
    const intoDir = st?.isDirectory() ?? false;
    const name = basename(from.path.replace(/\/\.?$/, '')) || '.';
    const args = ['-x', '-f', '-', '-C', intoDir ? target : dirname(target), '--no-same-owner'];
    if (!intoDir) args.push(`--transform=s|^${name.replace(/[|.]/g, '\\$&')}|${basename(target)}|`);
    const t = tar(args, 'in');
    res.pipe(t.stdin!);
    await new Promise<void>((ok, ko) => t.on('close', (c) => (c === 0 ? ok() : ko(new Error(`tar exited ${c}`)))));
    return;
  }
  if (!to) throw new UsageError('must specify at least one container source');
  // host -> container: a tar of the source named as it should land.
  const source = resolve(src);
  const st = await fsp.stat(source).catch(() => null);
  if (!st) throw new Error(`lstat ${source}: no such file or directory`);
  let destDir = to.path;
  let entry = basename(source);
  const head = await ctx.client
    .stream('HEAD', `/containers/${encodeURIComponent(to.container)}/archive${q({ path: to.path })}`)
    .then(
      (r) => (r.resume(), r.headers['x-docker-container-path-stat']),
      () => undefined,
    );
  const destStat =
    typeof head === 'string' ? (JSON.parse(Buffer.from(head, 'base64').toString()) as { mode: number }) : null;
  const destIsDir = destStat ? (destStat.mode & (2 ** 31)) !== 0 || destStat.mode >= 2 ** 31 : false;
  if (!destIsDir) {
    destDir = dirname(to.path);
    entry = basename(to.path);
  }
  const t = tar(
    [
      '-c',
      '-f',
      '-',
      '-C',
      dirname(source),
      `--transform=s|^${basename(source).replace(/[|.]/g, '\\$&')}|${entry}|`,
      basename(source),
    ],
    'out',
  );
  const res = await ctx.client.stream(
    'PUT',
    `/containers/${encodeURIComponent(to.container)}/archive${q({ path: destDir })}`,
    { raw: t.stdout!, headers: { 'Content-Type': 'application/x-tar' } },
  );
  res.resume();
}
