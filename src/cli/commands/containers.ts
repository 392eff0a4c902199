/** Container verbs that map one-to-one onto Engine API calls. */
import { createWriteStream } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { parseArgs, str, bool, list, UsageError, type FlagSpec } from '../args.js';
import { table, formatList, renderTemplate, ago, humanSize, binarySize, parseBytes } from '../format.js';
import { Demux } from '../../client/client.js';
import { pumpStreams } from '../io.js';
import { ExitError, daemonError, q, type Ctx } from '../context.js';

type Json = Record<string, unknown>;
const need = (args: string[], n: number, usage: string) => {
  if (args.length < n) throw new UsageError(`requires at least ${n} argument${n > 1 ? 's' : ''}: ${usage}`);
};

/** Runs `fn` for each name like docker does: print the name on success, errors to stderr, exit 1 if any failed. */
async function each(ctx: Ctx, names: string[], fn: (n: string) => Promise<void>, echo = true): Promise<void> {
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

function filtersParam(fs: string[]): string | undefined {
  if (!fs.length) return undefined;
  const out: Record<string, string[]> = {};
  for (const f of fs) {
    const i = f.indexOf('=');
    if (i < 0) throw new UsageError(`bad format of filter (expected name=value): ${f}`);
    (out[f.slice(0, i)] ??= []).push(f.slice(i + 1));
  }
  return JSON.stringify(out);
}
export { filtersParam };

const PS: FlagSpec = { all: { type: 'bool', short: 'a' }, quiet: { type: 'bool', short: 'q' }, filter: { type: 'list', short: 'f' }, format: { type: 'string' }, 'no-trunc': { type: 'bool' }, last: { type: 'string', short: 'n' }, latest: { type: 'bool', short: 'l' }, size: { type: 'bool', short: 's' } };

export async function ps(ctx: Ctx, argv: string[]): Promise<void> {
  const p = parseArgs(argv, PS);
  const limit = bool(p, 'latest') ? 1 : str(p, 'last') ? Number(str(p, 'last')) : undefined;
  const list_ = await ctx.client.json<Json[]>('GET', `/containers/json${q({ all: bool(p, 'all') || limit !== undefined, limit, filters: filtersParam(list(p, 'filter')), size: bool(p, 'size') })}`);
  const trunc = !bool(p, 'no-trunc');
  if (bool(p, 'quiet')) return ctx.out(list_.map((c) => `${trunc ? String(c['Id']).slice(0, 12) : String(c['Id'])}\n`).join(''));
  const rows = list_.map((c) => {
    const cmd = String(c['Command']);
    return {
      ID: trunc ? String(c['Id']).slice(0, 12) : c['Id'],
      Image: c['Image'],
      Command: `"${trunc && cmd.length > 20 ? `${cmd.slice(0, 19)}…` : cmd}"`,
      CreatedAt: new Date(Number(c['Created']) * 1000).toISOString(),
      RunningFor: ago(Number(c['Created'])),
      Ports: '',
      State: c['State'],
      Status: c['Status'],
      Size: c['SizeRw'] !== undefined ? humanSize(Number(c['SizeRw'])) : '',
      Names: (c['Names'] as string[]).map((n) => n.replace(/^\//, '')).join(','),
      Labels: Object.entries((c['Labels'] as Record<string, string>) ?? {}).map(([k, v]) => `${k}=${v}`).join(','),
      Mounts: '',
      Networks: '',
    };
  });
  const format = str(p, 'format');
  if (format) return ctx.out(formatList(format, rows));
  ctx.out(table([['CONTAINER ID', 'IMAGE', 'COMMAND', 'CREATED', 'STATUS', 'PORTS', 'NAMES'], ...rows.map((r) => [r.ID, r.Image, r.Command, r.RunningFor, r.Status, r.Ports, r.Names].map(String))]));
}

const simple = (flags: FlagSpec, path: (n: string, p: ReturnType<typeof parseArgs>) => string) => async (ctx: Ctx, argv: string[]) => {
  const p = parseArgs(argv, flags);
  need(p.args, 1, `CONTAINER [CONTAINER...]`);
  await each(ctx, p.args, async (n) => {
    await ctx.client.json('POST', path(n, p));
  });
};

export const stop = simple({ time: { type: 'string', short: 't' }, signal: { type: 'string', short: 's' } }, (n, p) => `/containers/${encodeURIComponent(n)}/stop${q({ t: str(p, 'time'), signal: str(p, 'signal') })}`);
export const restart = simple({ time: { type: 'string', short: 't' }, signal: { type: 'string', short: 's' } }, (n, p) => `/containers/${encodeURIComponent(n)}/restart${q({ t: str(p, 'time'), signal: str(p, 'signal') })}`);
export const kill = simple({ signal: { type: 'string', short: 's' } }, (n, p) => `/containers/${encodeURIComponent(n)}/kill${q({ signal: str(p, 'signal') })}`);
export const pause = simple({}, (n) => `/containers/${encodeURIComponent(n)}/pause`);
export const unpause = simple({}, (n) => `/containers/${encodeURIComponent(n)}/unpause`);

export async function start(ctx: Ctx, argv: string[]): Promise<void> {
  const p = parseArgs(argv, { attach: { type: 'bool', short: 'a' }, interactive: { type: 'bool', short: 'i' }, 'detach-keys': { type: 'string' }, checkpoint: { type: 'string' }, 'checkpoint-dir': { type: 'string' } });
  need(p.args, 1, 'CONTAINER [CONTAINER...]');
  if (!bool(p, 'attach') && !bool(p, 'interactive')) {
    return each(ctx, p.args, async (n) => {
      await ctx.client.json('POST', `/containers/${encodeURIComponent(n)}/start${q({ checkpoint: str(p, 'checkpoint'), 'checkpoint-dir': str(p, 'checkpoint-dir') })}`);
    });
  }
  const id = p.args[0]!;
  const info = await ctx.client.json<{ Id: string; Config: { Tty: boolean } }>('GET', `/containers/${encodeURIComponent(id)}/json`);
  const stdin = bool(p, 'interactive');
  const sock = await ctx.client.hijack(`/containers/${info.Id}/attach${q({ stream: 1, stdin: stdin ? 1 : 0, stdout: 1, stderr: 1, detachKeys: str(p, 'detach-keys') })}`);
  const waitRes = await ctx.client.stream('POST', `/containers/${info.Id}/wait?condition=next-exit`);
  const pumped = pumpStreams(ctx.client, sock, { tty: info.Config.Tty, stdin, resizePath: `/containers/${info.Id}/resize` });
  await ctx.client.json('POST', `/containers/${info.Id}/start`);
  await pumped;
  let t = '';
  for await (const c of waitRes) t += String(c);
  const code = (JSON.parse(t || '{"StatusCode":0}') as { StatusCode: number }).StatusCode;
  if (code !== 0) throw new ExitError(code);
}

export async function rm(ctx: Ctx, argv: string[]): Promise<void> {
  const p = parseArgs(argv, { force: { type: 'bool', short: 'f' }, volumes: { type: 'bool', short: 'v' }, link: { type: 'bool', short: 'l' } });
  need(p.args, 1, 'CONTAINER [CONTAINER...]');
  await each(ctx, p.args, async (n) => {
    await ctx.client.json('DELETE', `/containers/${encodeURIComponent(n)}${q({ force: bool(p, 'force'), v: bool(p, 'volumes') })}`);
  });
}

export async function wait(ctx: Ctx, argv: string[]): Promise<void> {
  const p = parseArgs(argv, {});
  need(p.args, 1, 'CONTAINER [CONTAINER...]');
  await each(ctx, p.args, async (n) => {
    const r = await ctx.client.json<{ StatusCode: number }>('POST', `/containers/${encodeURIComponent(n)}/wait`);
    ctx.out(`${r.StatusCode}\n`);
  }, false);
}

export async function rename(ctx: Ctx, argv: string[]): Promise<void> {
  const p = parseArgs(argv, {});
  need(p.args, 2, 'CONTAINER NEW_NAME');
  await ctx.client.json('POST', `/containers/${encodeURIComponent(p.args[0]!)}/rename${q({ name: p.args[1] })}`);
}

/** `inspect` of containers or images (`--type`), with `-f` templates. */
export async function inspect(ctx: Ctx, argv: string[], forced?: 'container' | 'image'): Promise<void> {
  const p = parseArgs(argv, { format: { type: 'string', short: 'f' }, type: { type: 'string' }, size: { type: 'bool', short: 's' } });
  need(p.args, 1, 'NAME|ID [NAME|ID...]');
  const type = forced ?? str(p, 'type');
  const found: unknown[] = [];
  let failed = false;
  for (const n of p.args) {
    const paths = type === 'image' ? [`/images/${n}/json`] : type === 'container' ? [`/containers/${encodeURIComponent(n)}/json`] : [`/containers/${encodeURIComponent(n)}/json`, `/images/${n}/json`];
    let got: unknown;
    for (const path of paths) {
      got = await ctx.client.json('GET', path).catch(() => undefined);
      if (got) break;
    }
    if (got) found.push(got);
    else {
      failed = true;
      ctx.err(`Error: No such ${type ?? 'object'}: ${n}\n`);
    }
  }
  const format = str(p, 'format');
  if (format) ctx.out(found.map((f) => renderTemplate(format, f) + '\n').join(''));
  else ctx.out(JSON.stringify(found, null, 4) + '\n');
  if (failed) throw new ExitError(1);
}

export async function logs(ctx: Ctx, argv: string[]): Promise<void> {
  const p = parseArgs(argv, { follow: { type: 'bool', short: 'f' }, tail: { type: 'string', short: 'n' }, since: { type: 'string' }, until: { type: 'string' }, timestamps: { type: 'bool', short: 't' }, details: { type: 'bool' } });
  need(p.args, 1, 'CONTAINER');
  const id = p.args[0]!;
  const info = await ctx.client.json<{ Config: { Tty: boolean } }>('GET', `/containers/${encodeURIComponent(id)}/json`);
  const t = (v: string | undefined) => (v && !/^\d+(\.\d+)?$/.test(v) ? String(Date.parse(v) / 1000 || relSeconds(v)) : v);
  const res = await ctx.client.stream('GET', `/containers/${encodeURIComponent(id)}/logs${q({ stdout: 1, stderr: 1, follow: bool(p, 'follow'), tail: str(p, 'tail'), since: t(str(p, 'since')), until: t(str(p, 'until')), timestamps: bool(p, 'timestamps') })}`);
  const demux = new Demux((s, b) => (s === 2 ? process.stderr : process.stdout).write(b));
  for await (const c of res) (info.Config.Tty ? process.stdout.write(c as Buffer) : demux.push(c as Buffer));
}

/** `10m`, `2h`, `30s` ago -> unix seconds. */
function relSeconds(v: string): number {
  const m = /^(\d+)([smh])$/.exec(v);
  if (!m) throw new UsageError(`invalid time: ${v}`);
  return Math.floor(Date.now() / 1000) - Number(m[1]) * { s: 1, m: 60, h: 3600 }[m[2] as 's'];
}

export async function attach(ctx: Ctx, argv: string[]): Promise<void> {
  const p = parseArgs(argv, { 'no-stdin': { type: 'bool' }, 'detach-keys': { type: 'string' }, 'sig-proxy': { type: 'bool' } });
  need(p.args, 1, 'CONTAINER');
  const info = await ctx.client.json<{ Id: string; Config: { Tty: boolean; OpenStdin: boolean } }>('GET', `/containers/${encodeURIComponent(p.args[0]!)}/json`);
  const stdin = info.Config.OpenStdin && !bool(p, 'no-stdin');
  const sock = await ctx.client.hijack(`/containers/${info.Id}/attach${q({ stream: 1, stdin: stdin ? 1 : 0, stdout: 1, stderr: 1, detachKeys: str(p, 'detach-keys') })}`);
  await pumpStreams(ctx.client, sock, { tty: info.Config.Tty, stdin, resizePath: `/containers/${info.Id}/resize` });
}

export async function top(ctx: Ctx, argv: string[]): Promise<void> {
  const p = parseArgs(argv, {}, false);
  need(p.args, 1, 'CONTAINER [ps OPTIONS]');
  const [id, ...psArgs] = p.args;
  const r = await ctx.client.json<{ Titles: string[]; Processes: string[][] }>('GET', `/containers/${encodeURIComponent(id!)}/top${q({ ps_args: psArgs.join(' ') || undefined })}`);
  ctx.out(table([r.Titles, ...r.Processes]));
}

export async function diff(ctx: Ctx, argv: string[]): Promise<void> {
  const p = parseArgs(argv, {});
  need(p.args, 1, 'CONTAINER');
  const r = await ctx.client.json<Array<{ Path: string; Kind: number }> | null>('GET', `/containers/${encodeURIComponent(p.args[0]!)}/changes`);
  ctx.out((r ?? []).map((c) => `${'CAD'[c.Kind]} ${c.Path}\n`).join(''));
}

export async function port(ctx: Ctx, argv: string[]): Promise<void> {
  const p = parseArgs(argv, {});
  need(p.args, 1, 'CONTAINER [PRIVATE_PORT[/PROTO]]');
  const info = await ctx.client.json<{ NetworkSettings: { Ports: Record<string, Array<{ HostIp: string; HostPort: string }> | null> } }>('GET', `/containers/${encodeURIComponent(p.args[0]!)}/json`);
  for (const [k, v] of Object.entries(info.NetworkSettings.Ports ?? {})) {
    if (p.args[1] && k !== p.args[1] && k !== `${p.args[1]}/tcp`) continue;
    for (const b of v ?? []) ctx.out(`${p.args[1] ? '' : `${k} -> `}${b.HostIp || '0.0.0.0'}:${b.HostPort}\n`);
  }
}

export async function exportCmd(ctx: Ctx, argv: string[]): Promise<void> {
  const p = parseArgs(argv, { output: { type: 'string', short: 'o' } });
  need(p.args, 1, 'CONTAINER');
  const res = await ctx.client.stream('GET', `/containers/${encodeURIComponent(p.args[0]!)}/export`);
  await pipeline(res, str(p, 'output') ? createWriteStream(str(p, 'output')!) : process.stdout);
}

export async function update(ctx: Ctx, argv: string[]): Promise<void> {
  const p = parseArgs(argv, { memory: { type: 'string', short: 'm' }, cpus: { type: 'string' }, 'cpu-shares': { type: 'string', short: 'c' }, 'pids-limit': { type: 'string' }, restart: { type: 'string' }, 'memory-swap': { type: 'string' }, 'cpuset-cpus': { type: 'string' } });
  need(p.args, 1, 'CONTAINER [CONTAINER...]');
  const body: Json = {};
  if (str(p, 'memory')) body['Memory'] = parseBytes(str(p, 'memory')!);
  if (str(p, 'memory-swap')) body['MemorySwap'] = str(p, 'memory-swap') === '-1' ? -1 : parseBytes(str(p, 'memory-swap')!);
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

export async function prune(ctx: Ctx, argv: string[]): Promise<void> {
  const p = parseArgs(argv, { force: { type: 'bool', short: 'f' }, filter: { type: 'list' } });
  const r = await ctx.client.json<{ ContainersDeleted: string[] | null; SpaceReclaimed: number }>('POST', `/containers/prune${q({ filters: filtersParam(list(p, 'filter')) })}`);
  if (r.ContainersDeleted?.length) ctx.out(`Deleted Containers:\n${r.ContainersDeleted.join('\n')}\n\n`);
  ctx.out(`Total reclaimed space: ${humanSize(r.SpaceReclaimed)}\n`);
}

export async function stats(ctx: Ctx, argv: string[]): Promise<void> {
  const p = parseArgs(argv, { 'no-stream': { type: 'bool' }, all: { type: 'bool', short: 'a' }, format: { type: 'string' }, 'no-trunc': { type: 'bool' } });
  const names = p.args.length ? p.args : (await ctx.client.json<Json[]>('GET', `/containers/json${q({ all: bool(p, 'all') })}`)).map((c) => String(c['Id']));
  const row = (s: Json) => {
    const cpu = s['cpu_stats'] as { cpu_usage: { total_usage: number }; system_cpu_usage: number; online_cpus: number };
    const pre = s['precpu_stats'] as typeof cpu;
    const sysDelta = cpu.system_cpu_usage - pre.system_cpu_usage;
    const cpuPct = sysDelta > 0 ? ((cpu.cpu_usage.total_usage - pre.cpu_usage.total_usage) / sysDelta) * (cpu.online_cpus || 1) * 100 : 0;
    const mem = s['memory_stats'] as { usage?: number; limit?: number; stats?: Record<string, number> };
    const used = (mem.usage ?? 0) - (mem.stats?.['total_inactive_file'] ?? mem.stats?.['inactive_file'] ?? 0);
    const pids = s['pids_stats'] as { current?: number };
    return {
      ID: String(s['id']).slice(0, 12), Container: String(s['id']).slice(0, 12), Name: String(s['name']).replace(/^\//, ''),
      CPUPerc: `${cpuPct.toFixed(2)}%`, MemUsage: `${binarySize(Math.max(0, used))} / ${binarySize(mem.limit ?? 0)}`,
      MemPerc: `${mem.limit ? ((used / mem.limit) * 100).toFixed(2) : '0.00'}%`, NetIO: '0B / 0B', BlockIO: '0B / 0B', PIDs: String(pids.current ?? 0),
    };
  };
  const render = (rows: Array<ReturnType<typeof row>>) => {
    const format = str(p, 'format');
    if (format) return formatList(format, rows);
    return table([['CONTAINER ID', 'NAME', 'CPU %', 'MEM USAGE / LIMIT', 'MEM %', 'NET I/O', 'BLOCK I/O', 'PIDS'], ...rows.map((r) => [r.ID, r.Name, r.CPUPerc, r.MemUsage, r.MemPerc, r.NetIO, r.BlockIO, r.PIDs])]);
  };
  const once = async () => Promise.all(names.map(async (n) => row(await ctx.client.json<Json>('GET', `/containers/${encodeURIComponent(n)}/stats?stream=0`))));
  if (bool(p, 'no-stream')) return ctx.out(render(await once()));
  for (;;) {
    const rows = await once();
    ctx.out(`\x1b[2J\x1b[H${render(rows)}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}
