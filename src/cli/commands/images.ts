/** Image verbs: images, rmi, tag, history, import, load, save, commit, image prune. */
import { createReadStream, createWriteStream } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { parseArgs, str, bool, list, splitTag, UsageError } from '../args.js';
import { table, formatList, ago, humanSize } from '../format.js';
import { readText } from '../../client/client.js';
import { ExitError, daemonError, q, type Ctx } from '../context.js';
import { filtersParam } from './verb-util.js';

type Json = Record<string, unknown>;
const shortImageId = (id: string, trunc: boolean) => (trunc ? id.replace(/^sha256:/, '').slice(0, 12) : id);

export async function images(ctx: Ctx, argv: string[]): Promise<void> {
  const p = parseArgs(argv, {
    all: { type: 'bool', short: 'a' },
    quiet: { type: 'bool', short: 'q' },
    filter: { type: 'list', short: 'f' },
    format: { type: 'string' },
    digests: { type: 'bool' },
    'no-trunc': { type: 'bool' },
  });
  const filters = list(p, 'filter');
  if (p.args[0]) filters.push(`reference=${p.args[0]}`);
  const imgs = await ctx.client.json<Json[]>(
    'GET',
    `/images/json${q({ all: bool(p, 'all'), filters: filtersParam(filters) })}`,
  );
  const trunc = !bool(p, 'no-trunc');
  const rows = imgs.flatMap((i) => {
    const tags = (i['RepoTags'] as string[] | null)?.length ? (i['RepoTags'] as string[]) : ['<none>:<none>'];
    return tags.map((t) => {
      const c = t.lastIndexOf(':');
      return {
        ID: shortImageId(String(i['Id']), trunc),
        Repository: t.slice(0, c),
        Tag: t.slice(c + 1),
        Digest: ((i['RepoDigests'] as string[] | null) ?? [])[0]?.split('@')[1] ?? '<none>',
        CreatedSince: ago(Number(i['Created'])),
        CreatedAt: new Date(Number(i['Created']) * 1000).toISOString(),
        Size: humanSize(Number(i['Size'])),
      };
    });
  });
  if (bool(p, 'quiet')) return ctx.out([...new Set(rows.map((r) => r.ID))].map((x) => `${x}\n`).join(''));
  const format = str(p, 'format');
  if (format) return ctx.out(formatList(format, rows));
  const head = ['REPOSITORY', 'TAG', ...(bool(p, 'digests') ? ['DIGEST'] : []), 'IMAGE ID', 'CREATED', 'SIZE'];
  ctx.out(
    table([
      head,
      ...rows.map((r) => [
        r.Repository,
        r.Tag,
        ...(bool(p, 'digests') ? [r.Digest] : []),
        r.ID,
        r.CreatedSince,
        r.Size,
      ]),
    ]),
  );
}

export async function rmi(ctx: Ctx, argv: string[]): Promise<void> {
  const p = parseArgs(argv, { force: { type: 'bool', short: 'f' }, 'no-prune': { type: 'bool' } });
  if (!p.args.length) throw new UsageError('requires at least 1 argument: IMAGE [IMAGE...]');
  let failed = false;
  for (const n of p.args) {
    try {
      const r = await ctx.client.json<Array<{ Untagged?: string; Deleted?: string }>>(
        'DELETE',
        `/images/${n}${q({ force: bool(p, 'force'), noprune: bool(p, 'no-prune') })}`,
      );
      for (const e of r) ctx.out(e.Untagged ? `Untagged: ${e.Untagged}\n` : `Deleted: ${e.Deleted}\n`);
    } catch (e) {
      ctx.err(`${daemonError(e)}\n`);
      failed = true;
    }
  }
  if (failed) throw new ExitError(1);
}

export async function tag(ctx: Ctx, argv: string[]): Promise<void> {
  const p = parseArgs(argv, {});
  const [src, target] = p.args;
  if (!src || !target) throw new UsageError('requires exactly 2 arguments: SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]');
  const t = splitTag(target);
  await ctx.client.json('POST', `/images/${src}/tag${q({ repo: t.name, tag: t.tag })}`);
}

export async function history(ctx: Ctx, argv: string[]): Promise<void> {
  const p = parseArgs(argv, {
    'no-trunc': { type: 'bool' },
    quiet: { type: 'bool', short: 'q' },
    format: { type: 'string' },
    human: { type: 'bool', short: 'H' },
  });
  if (!p.args[0]) throw new UsageError('requires exactly 1 argument: IMAGE');
  const h = await ctx.client.json<Json[]>('GET', `/images/${p.args[0]}/history`);
  const trunc = !bool(p, 'no-trunc');
  const rows = h.map((e) => ({
    ID: e['Id'] === '<missing>' ? '<missing>' : shortImageId(String(e['Id']), trunc),
    CreatedSince: ago(Number(e['Created'])),
    CreatedBy:
      trunc && String(e['CreatedBy']).length > 45 ? `${String(e['CreatedBy']).slice(0, 44)}…` : String(e['CreatedBy']),
    Size: humanSize(Number(e['Size'])),
    Comment: String(e['Comment'] ?? ''),
  }));
  if (bool(p, 'quiet')) return ctx.out(rows.map((r) => `${r.ID}\n`).join(''));
  const format = str(p, 'format');
  if (format) return ctx.out(formatList(format, rows));
  ctx.out(
    table([
      ['IMAGE', 'CREATED', 'CREATED BY', 'SIZE', 'COMMENT'],
      ...rows.map((r) => [r.ID, r.CreatedSince, r.CreatedBy, r.Size, r.Comment]),
    ]),
  );
}

async function progressLines(res: NodeJS.ReadableStream, each: (m: Json) => void): Promise<void> {
  const text = await readText(res);
  for (const line of text.split(/\r?\n/).filter(Boolean)) {
    const m = JSON.parse(line) as Json;
    if (typeof m['error'] === 'string') throw new Error(m['error']);
    each(m);
  }
}

export async function importCmd(ctx: Ctx, argv: string[]): Promise<void> {
  const p = parseArgs(argv, {
    change: { type: 'list', short: 'c' },
    message: { type: 'string', short: 'm' },
    platform: { type: 'string' },
  });
  const [file, ref] = p.args;
  if (!file) throw new UsageError('requires at least 1 argument: file|URL|- [REPOSITORY[:TAG]]');
  const target = ref ? splitTag(ref) : undefined;
  const params = new URLSearchParams({ fromSrc: '-' });
  if (target) params.set('repo', target.name);
  if (target?.tag) params.set('tag', target.tag);
  if (str(p, 'message')) params.set('message', str(p, 'message')!);
  if (str(p, 'platform')) params.set('platform', str(p, 'platform')!);
  for (const c of list(p, 'change')) params.append('changes', c);
  const res = await ctx.client.stream('POST', `/images/create?${params}`, {
    raw: file === '-' ? process.stdin : createReadStream(file),
    headers: { 'Content-Type': 'application/x-tar' },
  });
  await progressLines(res, (m) => typeof m['status'] === 'string' && ctx.out(`${m['status']}\n`));
}

export async function load(ctx: Ctx, argv: string[]): Promise<void> {
  const p = parseArgs(argv, { input: { type: 'string', short: 'i' }, quiet: { type: 'bool', short: 'q' } });
  const input = str(p, 'input') ? createReadStream(str(p, 'input')!) : process.stdin;
  const res = await ctx.client.stream('POST', `/images/load${q({ quiet: bool(p, 'quiet') })}`, {
    raw: input,
    headers: { 'Content-Type': 'application/x-tar' },
  });
  await progressLines(res, (m) => typeof m['stream'] === 'string' && ctx.out(m['stream']));
}

export async function save(ctx: Ctx, argv: string[]): Promise<void> {
  const p = parseArgs(argv, { output: { type: 'string', short: 'o' } });
  if (!p.args.length) throw new UsageError('requires at least 1 argument: IMAGE [IMAGE...]');
  if (!str(p, 'output') && process.stdout.isTTY)
    throw new UsageError('cowardly refusing to save to a terminal. Use the -o flag or redirect');
  const params = new URLSearchParams();
  for (const n of p.args) params.append('names', n);
  const res = await ctx.client.stream('GET', `/images/get?${params}`);
  await pipeline(res, str(p, 'output') ? createWriteStream(str(p, 'output')!) : process.stdout);
}

export async function commit(ctx: Ctx, argv: string[]): Promise<void> {
  const p = parseArgs(argv, {
    change: { type: 'list', short: 'c' },
    message: { type: 'string', short: 'm' },
    author: { type: 'string', short: 'a' },
    pause: { type: 'string', short: 'p' },
  });
  const [container, ref] = p.args;
  if (!container) throw new UsageError('requires at least 1 argument: CONTAINER [REPOSITORY[:TAG]]');
  const params = new URLSearchParams({ container });
  if (ref) {
    const target = splitTag(ref);
    params.set('repo', target.name);
    if (target.tag !== undefined) params.set('tag', target.tag);
  }
  if (str(p, 'message')) params.set('comment', str(p, 'message')!);
  if (str(p, 'author')) params.set('author', str(p, 'author')!);
  if (str(p, 'pause') === 'false') params.set('pause', '0');
  for (const c of list(p, 'change')) params.append('changes', c);
  const r = await ctx.client.json<{ Id: string }>('POST', `/commit?${params}`, {});
  ctx.out(`${r.Id}\n`);
}

export async function imagePrune(ctx: Ctx, argv: string[]): Promise<void> {
  const p = parseArgs(argv, {
    all: { type: 'bool', short: 'a' },
    force: { type: 'bool', short: 'f' },
    filter: { type: 'list' },
  });
  const filters = list(p, 'filter');
  if (bool(p, 'all')) filters.push('dangling=false');
  const r = await ctx.client.json<{
    ImagesDeleted: Array<{ Untagged?: string; Deleted?: string }> | null;
    SpaceReclaimed: number;
  }>('POST', `/images/prune${q({ filters: filtersParam(filters) })}`);
  if (r.ImagesDeleted?.length)
    ctx.out(
      `Deleted Images:\n${r.ImagesDeleted.map((e) => (e.Untagged ? `untagged: ${e.Untagged}` : `deleted: ${e.Deleted}`)).join('\n')}\n\n`,
    );
  ctx.out(`Total reclaimed space: ${humanSize(r.SpaceReclaimed)}\n`);
}
