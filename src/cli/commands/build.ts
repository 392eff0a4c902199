/**
 * `berth build`: the context directory (minus what .dockerignore excludes; the Dockerfile and
 * .dockerignore always go) is sent as a tar to POST /build. The display shows every step with
 * its stage, whether it came from the cache and how long it took, the commands' output indented
 * under it; `--progress=plain` prints dockerd's builder text instead. `--output` exports the
 * image's filesystem (type=local into a directory, type=tar into a file or stdout) through the
 * standard API (create, export, remove) and keeps no image unless tags were given.
 */
import { createWriteStream, lstatSync, promises as fsp, readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { spawn } from 'node:child_process';
import { PassThrough, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { randomBytes } from 'node:crypto';
import * as tar from 'tar-stream';
import { addEntry, headerOf, type Headers } from '../../archive/entry.js';
import { IgnoreMatcher } from '../../spec/dockerignore.js';
import { UsageError, bool, list, parseArgs, str } from '../args.js';
import { jsonMessages } from '../io.js';
import { ExitError, q, type Ctx } from '../context.js';

type Json = Record<string, unknown>;

/**
 * Streams a tar of `dir` without the paths .dockerignore excludes, plus `extra` files. The walk is
 * synchronous and small files go in as buffers: a CLI has nothing else to do meanwhile, and the
 * daemon gets the context in one go instead of an await per file.
 */
function contextTar(
  dir: string,
  ignore: IgnoreMatcher,
  keep: Set<string>,
  extra: Array<{ name: string; data: Buffer }>,
): Readable {
  const pack = tar.pack();
  const out = new PassThrough();
  (pack as unknown as NodeJS.ReadableStream).pipe(out);
  const links = new Map<string, string>();
  const put = (h: Headers, data: Buffer) =>
    new Promise<void>((res, rej) => pack.entry(h, data, (err) => (err ? rej(err) : res())));
  const entries: Array<{ h: Headers; abs: string }> = [];
  const walk = (abs: string, rel: string): void => {
    for (const n of readdirSync(abs).sort()) {
      const childAbs = join(abs, n);
      const childRel = rel ? `${rel}/${n}` : n;
      const st = lstatSync(childAbs);
      const skip = !keep.has(childRel) && ignore.ignores(childRel);
      if (!skip) {
        const h = headerOf({ name: childRel, abs: childAbs, st }, links);
        if (h?.type === 'symlink') h.linkname = readlinkSync(childAbs);
        if (h) entries.push({ h, abs: childAbs });
      }
      if (st.isDirectory() && (!skip || ignore.hasExclusions)) walk(childAbs, childRel);
    }
  };
  void (async () => {
    walk(dir, '');
    for (const { h, abs } of entries) {
      if (h.type === 'file' && (h.size ?? 0) > 0 && (h.size ?? 0) < 1 << 20) await put(h, readFileSync(abs));
      else await addEntry(pack, h, abs);
    }
    for (const e of extra) await put({ name: e.name, size: e.data.length, mode: 0o644 }, e.data);
    pack.finalize();
  })().catch((e: unknown) => out.destroy(e as Error));
  return out;
}

/** `--secret id=x,src=path` / `id=x,env=VAR` -> the header the daemon reads (never part of the context). */
function secretsHeader(specs: string[]): Record<string, string> {
  if (!specs.length) return {};
  const out: Record<string, string> = {};
  for (const s of specs) {
    const kv = Object.fromEntries(
      s
        .split(',')
        .map((p) => [
          p.slice(0, p.indexOf('=') < 0 ? p.length : p.indexOf('=')),
          p.includes('=') ? p.slice(p.indexOf('=') + 1) : '',
        ]),
    );
    const id = kv['id'];
    const src = kv['src'] ?? kv['source'];
    const env = kv['env'];
    if (!id) throw new UsageError(`invalid secret ${s}: id= is required`);
    let data: Buffer;
    if (src) {
      try {
        data = readFileSync(src);
      } catch {
        throw new UsageError(`secret ${id}: cannot read ${src}`);
      }
    } else if (env ?? process.env[id] !== undefined) data = Buffer.from(process.env[env ?? id] ?? '');
    else throw new UsageError(`secret ${id}: src= or env= is required`);
    out[id] = data.toString('base64');
  }
  return { 'X-Berth-Build-Secrets': Buffer.from(JSON.stringify(out)).toString('base64') };
}

function parseOutput(spec: string | undefined): { type: 'local' | 'tar'; dest: string } | null {
  if (!spec) return null;
  if (!spec.includes('=')) return { type: spec === '-' ? 'tar' : 'local', dest: spec };
  const kv = Object.fromEntries(spec.split(',').map((p) => [p.slice(0, p.indexOf('=')), p.slice(p.indexOf('=') + 1)]));
  const type = kv['type'] ?? 'local';
  if (type !== 'local' && type !== 'tar') throw new UsageError(`unsupported output type ${type} (local, tar)`);
  const dest = kv['dest'] ?? (type === 'tar' ? '-' : '');
  if (!dest) throw new UsageError('--output type=local needs dest=<directory>');
  return { type, dest };
}

const secs = (ms: number) => `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)}s`;

export async function build(ctx: Ctx, argv: string[]): Promise<void> {
  const p = parseArgs(argv, {
    tag: { type: 'list', short: 't' },
    file: { type: 'string', short: 'f' },
    'build-arg': { type: 'list' },
    target: { type: 'string' },
    'no-cache': { type: 'bool' },
    pull: { type: 'bool' },
    label: { type: 'list' },
    quiet: { type: 'bool', short: 'q' },
    'cache-from': { type: 'list' },
    secret: { type: 'list' },
    output: { type: 'string', short: 'o' },
    network: { type: 'string' },
    platform: { type: 'string' },
    progress: { type: 'string' },
  });
  if (p.args.length !== 1) throw new UsageError('requires exactly 1 argument: PATH | -');
  const output = parseOutput(str(p, 'output'));
  const progress = str(p, 'progress') ?? 'auto';
  if (!['auto', 'plain', 'tty', 'quiet'].includes(progress))
    throw new UsageError(`invalid --progress ${progress} (auto, plain, tty, quiet)`);
  const quiet = bool(p, 'quiet') || progress === 'quiet';
  const buildArgs: Record<string, string> = {};
  for (const a of list(p, 'build-arg')) {
    const i = a.indexOf('=');
    if (i < 0) {
      if (process.env[a] !== undefined) buildArgs[a] = process.env[a]!; // `--build-arg NAME` takes it from the environment
    } else buildArgs[a.slice(0, i)] = a.slice(i + 1);
  }
  const labels = Object.fromEntries(
    list(p, 'label').map((l) => [
      l.slice(0, l.indexOf('=') < 0 ? l.length : l.indexOf('=')),
      l.includes('=') ? l.slice(l.indexOf('=') + 1) : '',
    ]),
  );
  let body: Readable;
  let dockerfile = str(p, 'file') ?? 'Dockerfile';
  if (p.args[0] === '-') {
    body = process.stdin;
  } else {
    const dir = resolve(p.args[0]!);
    const st = await fsp.stat(dir).catch(() => null);
    if (!st?.isDirectory()) throw new ExitError(1, `unable to prepare context: path "${p.args[0]}" not found`);
    const ignore = IgnoreMatcher.parse(await fsp.readFile(join(dir, '.dockerignore'), 'utf8').catch(() => ''));
    const extra: Array<{ name: string; data: Buffer }> = [];
    const dfAbs = str(p, 'file') === '-' ? null : resolve(str(p, 'file') ? str(p, 'file')! : join(dir, 'Dockerfile'));
    const rel = dfAbs ? relative(dir, dfAbs) : '';
    if (!dfAbs || rel.startsWith('..')) {
      // a Dockerfile outside the context (or on stdin) travels inside it under a private name
      const data = dfAbs
        ? await fsp.readFile(dfAbs).catch(() => {
            throw new ExitError(1, `unable to prepare context: ${dfAbs}: no such file`);
          })
        : await readAll(process.stdin);
      dockerfile = `.dockerfile.${randomBytes(6).toString('hex')}`;
      extra.push({ name: dockerfile, data });
    } else dockerfile = rel;
    body = contextTar(dir, ignore, new Set([dockerfile, '.dockerignore']), extra);
  }
  const params = q({
    dockerfile,
    target: str(p, 'target'),
    nocache: bool(p, 'no-cache') || undefined,
    pull: bool(p, 'pull') || undefined,
    q: quiet || undefined,
    networkmode: str(p, 'network'),
    platform: str(p, 'platform'),
    berthsteps: progress === 'plain' ? undefined : 1,
    buildargs: Object.keys(buildArgs).length ? JSON.stringify(buildArgs) : undefined,
    labels: Object.keys(labels).length ? JSON.stringify(labels) : undefined,
    cachefrom: list(p, 'cache-from').length ? JSON.stringify(list(p, 'cache-from')) : undefined,
  });
  const tags = list(p, 'tag')
    .map((t) => `&t=${encodeURIComponent(t)}`)
    .join('');
  const started = performance.now();
  const res = await ctx.client.stream('POST', `/build${params}${params ? tags : tags.replace(/^&/, '?')}`, {
    raw: body,
    headers: { 'Content-Type': 'application/x-tar', ...secretsHeader(list(p, 'secret')) },
  });
  const id = await render(
    res,
    quiet ? 'quiet' : progress === 'plain' ? 'plain' : 'steps',
    output ? process.stderr : process.stdout,
  );
  if (!id) throw new ExitError(1, 'the build ended without an image');
  if (quiet && !output) ctx.out(`${id}\n`);
  else if (!quiet && progress !== 'plain') {
    const say = (s: string) => (output ? process.stderr.write(s) : ctx.out(s));
    say(`Built ${id.replace(/^sha256:/, '').slice(0, 12)} in ${secs(performance.now() - started)}\n`);
    for (const t of list(p, 'tag')) say(`Tagged ${t}\n`);
  }
  if (output) await exportImage(ctx, id, output, list(p, 'tag').length === 0);
}

async function readAll(s: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of s) chunks.push(Buffer.from(c as Buffer));
  return Buffer.concat(chunks);
}

/** Shows the build stream; returns the image id. */
async function render(
  res: NodeJS.ReadableStream,
  mode: 'quiet' | 'plain' | 'steps',
  out: NodeJS.WritableStream,
): Promise<string | null> {
  let id: string | null = null;
  let error: string | null = null;
  let pending = '';
  const legacy = /^(Step \d+\/\d+ : | ---> |Successfully (built|tagged) |Removing intermediate container )/;
  for await (const m of jsonMessages(res)) {
    if (typeof m['error'] === 'string') {
      error = m['error'];
      break;
    }
    const aux = m['aux'] as Json | undefined;
    if (aux && typeof aux['ID'] === 'string') id = aux['ID'];
    // with q=1 the whole answer is the id as a stream line (dockerd sends no aux then)
    if (mode === 'quiet' && typeof m['stream'] === 'string' && /^sha256:[0-9a-f]{64}\n$/.test(m['stream']))
      id = m['stream'].trim();
    if (mode === 'quiet') continue;
    const detail = m['progressDetail'] as Json | undefined;
    if (typeof m['status'] === 'string' && !(detail && detail['total'])) {
      const line = `${typeof m['id'] === 'string' ? `${m['id']}: ` : ''}${m['status']}\n`; // a base image's pull
      out.write(mode === 'plain' ? line : `  | ${line}`);
    }
    if (typeof m['stream'] === 'string') {
      if (mode === 'plain') out.write(m['stream']);
      else {
        pending += m['stream'];
        const lines = pending.split('\n');
        pending = lines.pop()!;
        for (const l of lines) if (!legacy.test(l)) out.write(`  | ${l}\n`);
      }
    }
    const step = m['berthStep'] as
      { stage: string; index: number; total: number; text: string; cached: boolean; ms: number } | undefined;
    if (step && mode === 'steps')
      out.write(
        `#${step.index} [${step.stage} ${step.index}/${step.total}] ${step.text}  ${step.cached ? 'CACHED' : secs(step.ms)}\n`,
      );
  }
  if (pending && mode === 'steps' && !legacy.test(pending)) out.write(`  | ${pending}\n`);
  if (error) throw new ExitError(1, `ERROR: ${error}`);
  return id;
}

/** --output: the image's filesystem into a directory or a tar, through create + export. */
async function exportImage(
  ctx: Ctx,
  id: string,
  o: { type: 'local' | 'tar'; dest: string },
  removeImage: boolean,
): Promise<void> {
  const created = await ctx.client.json<{ Id: string }>('POST', '/containers/create', {
    Image: id,
    Cmd: ['true'],
    Entrypoint: null,
  });
  try {
    const tarStream = await ctx.client.stream('GET', `/containers/${created.Id}/export`);
    if (o.type === 'tar') {
      await pipeline(tarStream, o.dest === '-' ? process.stdout : createWriteStream(o.dest));
    } else {
      await fsp.mkdir(o.dest, { recursive: true });
      const t = spawn('tar', ['-x', '-f', '-', '-C', o.dest, '--no-same-owner'], {
        stdio: ['pipe', 'inherit', 'inherit'],
      });
      const closed = new Promise<number>((r) => t.on('close', (c) => r(c ?? 1)));
      await pipeline(tarStream, t.stdin);
      if ((await closed) !== 0) throw new ExitError(1, `--output: cannot write into ${o.dest}`);
    }
  } finally {
    await ctx.client.json('DELETE', `/containers/${created.Id}?force=1`);
    if (removeImage) await ctx.client.json('DELETE', `/images/${id}?noprune=0`).catch(() => undefined);
  }
}

/** `berth builder prune`: drops the build cache and the layers only it kept. */
export async function builderPrune(ctx: Ctx, argv: string[]): Promise<void> {
  parseArgs(argv, { force: { type: 'bool', short: 'f' }, all: { type: 'bool', short: 'a' } });
  const r = await ctx.client.json<{ CachesDeleted: string[] | null; SpaceReclaimed: number }>('POST', '/build/prune');
  for (const c of r.CachesDeleted ?? []) ctx.out(`Deleted ${c}\n`);
  ctx.out(`Total reclaimed space: ${(r.SpaceReclaimed / 1e6).toFixed(2)}MB\n`);
}
