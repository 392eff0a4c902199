/**
 * Checkpoints: `checkpoint create|ls|rm|clone`, `restore --import`, `migrate`. A checkpoint
 * archive (`--export`) carries the container's config, its filesystem changes and CRIU's images;
 * any berthd that has (or can pull) the image can import it. `migrate` is checkpoint + export on
 * this daemon, import + restore on the other, then removal here — and on any failure the
 * container is restored here from the same checkpoint, so it is never gone from both.
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Client, readText, socketFromHost, type Response } from '../../client/client.js';
import { UsageError, bool, parseArgs, str } from '../args.js';
import { ExitError, q, type Ctx } from '../context.js';
import { table } from '../format.js';

const enc = encodeURIComponent;

async function exportStream(
  client: Client,
  ctr: string,
  name: string,
  o: { dir?: string; compress?: boolean; withParent?: boolean; withVolumes?: boolean } = {},
): Promise<Response> {
  const { dir, compress = true, withParent = true, withVolumes = false } = o;
  return client.stream(
    'GET',
    `/containers/${enc(ctr)}/checkpoints/${enc(name)}/export${q({ dir, compress: compress ? undefined : 0, parent: withParent ? undefined : 0, volumes: withVolumes })}`,
  );
}

/**
 * `hostAccess`: the archive may ask for host access (privileges, host paths): migrate and clone,
 * whose archives come from the caller's own daemon, or `--allow-host-access`.
 */
async function importArchive(
  client: Client,
  body: NodeJS.ReadableStream,
  o: { name?: string; start: boolean; stage?: string; hostAccess: boolean },
): Promise<{ Id: string; Name: string }> {
  const res = await client.stream(
    'POST',
    `/checkpoints/import${q({ name: o.name, start: o.start, stage: o.stage, allowHostAccess: o.hostAccess || undefined })}`,
    { raw: body, headers: { 'Content-Type': 'application/gzip' } },
  );
  return JSON.parse(await readText(res)) as { Id: string; Name: string };
}

export const checkpoint = {
  async create(ctx: Ctx, argv: string[]): Promise<void> {
    const p = parseArgs(argv, {
      'leave-running': { type: 'bool' },
      'tcp-established': { type: 'bool' },
      'checkpoint-dir': { type: 'string' },
      export: { type: 'string' },
      'with-volumes': { type: 'bool' },
    });
    if (p.args.length !== 2) throw new UsageError('requires exactly 2 arguments: CONTAINER CHECKPOINT');
    const [ctr, name] = p.args as [string, string];
    await ctx.client.json('POST', `/containers/${enc(ctr)}/checkpoints`, {
      CheckpointID: name,
      CheckpointDir: str(p, 'checkpoint-dir') ?? '',
      Exit: !bool(p, 'leave-running'),
      TcpEstablished: bool(p, 'tcp-established'),
    });
    const file = str(p, 'export');
    if (bool(p, 'with-volumes') && !file) throw new UsageError('--with-volumes goes with --export');
    if (file)
      await pipeline(
        await exportStream(ctx.client, ctr, name, {
          ...(str(p, 'checkpoint-dir') ? { dir: str(p, 'checkpoint-dir')! } : {}),
          withVolumes: bool(p, 'with-volumes'),
        }),
        createWriteStream(file),
      );
    ctx.out(`${name}\n`);
  },
  async ls(ctx: Ctx, argv: string[]): Promise<void> {
    const p = parseArgs(argv, { 'checkpoint-dir': { type: 'string' } });
    if (p.args.length !== 1) throw new UsageError('requires exactly 1 argument: CONTAINER');
    const list = await ctx.client.json<Array<{ Name: string }>>(
      'GET',
      `/containers/${enc(p.args[0]!)}/checkpoints${q({ dir: str(p, 'checkpoint-dir') })}`,
    );
    ctx.out(table([['CHECKPOINT NAME'], ...list.map((c) => [c.Name])]));
  },
  async rm(ctx: Ctx, argv: string[]): Promise<void> {
    const p = parseArgs(argv, { 'checkpoint-dir': { type: 'string' } });
    if (p.args.length !== 2) throw new UsageError('requires exactly 2 arguments: CONTAINER CHECKPOINT');
    await ctx.client.json(
      'DELETE',
      `/containers/${enc(p.args[0]!)}/checkpoints/${enc(p.args[1]!)}${q({ dir: str(p, 'checkpoint-dir') })}`,
    );
  },
  /** One checkpoint restored as N new containers (`<prefix>1`..`<prefix>N`), each going on independently. */
  async clone(ctx: Ctx, argv: string[]): Promise<void> {
    const p = parseArgs(argv, { count: { type: 'string', short: 'n' }, prefix: { type: 'string' } });
    if (p.args.length !== 2) throw new UsageError('requires exactly 2 arguments: CONTAINER CHECKPOINT');
    const count = Number(str(p, 'count') ?? '1');
    if (!Number.isInteger(count) || count < 1 || count > 1000) throw new UsageError('--count must be 1 to 1000');
    const [ctr, name] = p.args as [string, string];
    const prefix = str(p, 'prefix') ?? `${ctr}-clone-`;
    const archive = await readAll(await exportStream(ctx.client, ctr, name, { compress: false }));
    for (let i = 1; i <= count; i++) {
      const r = await importArchive(ctx.client, bufferStream(archive), {
        name: `${prefix}${i}`,
        start: true,
        hostAccess: true,
      });
      ctx.out(`${r.Name}\n`);
    }
  },
};

/** `berth restore --import FILE [--name N] [--no-start]`. */
export async function restore(ctx: Ctx, argv: string[]): Promise<void> {
  const p = parseArgs(argv, {
    import: { type: 'string' },
    name: { type: 'string' },
    'no-start': { type: 'bool' },
    'allow-host-access': { type: 'bool' },
  });
  const file = str(p, 'import');
  if (!file) throw new UsageError('--import FILE is required');
  const name = str(p, 'name');
  const r = await importArchive(ctx.client, createReadStream(file), {
    ...(name ? { name } : {}),
    start: !bool(p, 'no-start'),
    hostAccess: bool(p, 'allow-host-access'),
  });
  ctx.out(`${r.Name}\n`);
}

/** `berth migrate CONTAINER --to HOST`: moves a running container to another berthd. */
export async function migrate(ctx: Ctx, argv: string[]): Promise<void> {
  const p = parseArgs(argv, {
    to: { type: 'string' },
    'tcp-established': { type: 'bool' },
    name: { type: 'string' },
    'pre-copy': { type: 'bool' },
    'no-pre-copy': { type: 'bool' },
    'with-volumes': { type: 'bool' },
    'post-copy': { type: 'bool' },
    'page-server': { type: 'string' },
  });
  if (p.args.length !== 1 || !str(p, 'to')) throw new UsageError('usage: berth migrate CONTAINER --to HOST');
  const ctr = p.args[0]!;
  const target = new Client(socketFromHost(str(p, 'to')!));
  await target.json('GET', '/version').catch((e: unknown) => {
    throw new ExitError(1, `migrate: the target daemon does not answer: ${(e as Error).message}`);
  });
  const info = await ctx.client.json<{ Name: string }>('GET', `/containers/${enc(ctr)}/json`);
  const name = `migrate-${Date.now()}`;
  // pre-copy: memory is copied to the target while the container runs; the final dump then
  // holds only the pages written since, and only that is moved while it is frozen
  let stage: string | undefined;
  const pre = `${name}-pre`;
  const sourceInfo = await probedInfo(ctx.client);
  const postCopy = bool(p, 'post-copy');
  if (str(p, 'page-server') && !postCopy) throw new UsageError('--page-server goes with --post-copy');
  if (bool(p, 'pre-copy') && (postCopy || bool(p, 'no-pre-copy')))
    throw new UsageError('--pre-copy goes with neither --post-copy nor --no-pre-copy');
  // asked for by name, pre-copy that cannot happen here is an error (by default it is used when it can)
  if (bool(p, 'pre-copy') && !sourceInfo.CheckpointPreCopy)
    throw new ExitError(
      1,
      `migrate: pre-copy is not possible here: ${sourceInfo.CheckpointPreCopyReason ?? 'unknown'}`,
    );
  if (!postCopy && !bool(p, 'no-pre-copy') && sourceInfo.CheckpointPreCopy) {
    await ctx.client.json('POST', `/containers/${enc(ctr)}/checkpoints`, { CheckpointID: pre, PreDump: true });
    const staged = await target.stream('POST', '/checkpoints/stage', {
      raw: await exportStream(ctx.client, ctr, pre, { compress: false }),
      headers: { 'Content-Type': 'application/x-tar' },
    });
    stage = (JSON.parse(await readText(staged)) as { Stage: string }).Stage;
  }
  const t0 = performance.now();
  // post-copy: the dump leaves memory out and serves it from a page server; the target resumes at
  // once and fetches pages as they are touched (PageServer: the address the target reaches us on)
  await ctx.client.json('POST', `/containers/${enc(ctr)}/checkpoints`, {
    CheckpointID: name,
    Exit: true,
    TcpEstablished: bool(p, 'tcp-established'),
    ...(stage ? { ParentCheckpoint: pre } : {}),
    ...(postCopy ? { PageServer: str(p, 'page-server') ?? '' } : {}),
  });
  try {
    const r = await importArchive(
      target,
      await exportStream(ctx.client, ctr, name, {
        compress: false,
        withParent: !stage,
        withVolumes: bool(p, 'with-volumes'),
      }),
      {
        name: str(p, 'name') ?? info.Name.replace(/^\//, ''),
        start: true,
        hostAccess: true,
        ...(stage ? { stage } : {}),
      },
    );
    const downtime = performance.now() - t0;
    await ctx.client.json('DELETE', `/containers/${enc(ctr)}?force=1`); // post-copy: once every page has gone over
    ctx.out(`${r.Name} now runs on ${str(p, 'to')} (${r.Id.slice(0, 12)}); frozen for ${Math.round(downtime)} ms\n`);
  } catch (e) {
    // never gone from both: the container goes on here from the same checkpoint (post-copy: it is
    // only stopped while its page server waits; removing the checkpoint lets it go on)
    if (!postCopy)
      await ctx.client.json('POST', `/containers/${enc(ctr)}/start${q({ checkpoint: name })}`).catch(() => undefined);
    await ctx.client.json('DELETE', `/containers/${enc(ctr)}/checkpoints/${enc(name)}`).catch(() => undefined);
    throw new ExitError(1, `migrate failed, ${ctr} goes on here: ${(e as Error).message}`);
  }
}

/** `info` once the daemon's CRIU probe has answered (what pre-copy is possible depends on it). */
async function probedInfo(client: Client): Promise<{ CheckpointPreCopy?: boolean; CheckpointPreCopyReason?: string }> {
  for (let i = 0; ; i++) {
    const info = await client.json<{
      CheckpointProbe?: string;
      CheckpointPreCopy?: boolean;
      CheckpointPreCopyReason?: string;
    }>('GET', '/info');
    if (info.CheckpointProbe !== 'pending' || i >= 300) return info;
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function readAll(s: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of s) chunks.push(Buffer.from(c as Buffer));
  return Buffer.concat(chunks);
}

function bufferStream(b: Buffer): NodeJS.ReadableStream {
  return Readable.from([b]);
}
