/** version, info, events, system df. */
import { parseArgs, str, list } from '../args.js';
import { renderTemplate, humanSize, table } from '../format.js';
import { q, type Ctx } from '../context.js';
import { filtersParam } from './verb-util.js';

type Json = Record<string, unknown>;

export async function version(ctx: Ctx, argv: string[]): Promise<void> {
  const p = parseArgs(argv, { format: { type: 'string', short: 'f' } });
  const client = {
    Version: '0.1.0',
    ApiVersion: '1.45',
    Os: 'linux',
    Arch: process.arch === 'x64' ? 'amd64' : process.arch,
    NodeVersion: process.versions.node,
  };
  let server: Json | null = null;
  let failure: unknown = null;
  try {
    server = await ctx.client.json<Json>('GET', '/version');
  } catch (e) {
    failure = e;
  }
  const format = str(p, 'format');
  if (format) ctx.out(renderTemplate(format, { Client: client, Server: server }) + '\n');
  else {
    ctx.out(
      `Client: berth\n Version:           ${client.Version}\n API version:       ${client.ApiVersion}\n Node version:      ${client.NodeVersion}\n OS/Arch:           ${client.Os}/${client.Arch}\n`,
    );
    if (server)
      ctx.out(
        `\nServer: berthd\n Version:           ${String(server['Version'])}\n API version:       ${String(server['ApiVersion'])} (minimum version ${String(server['MinAPIVersion'])})\n Kernel:            ${String(server['KernelVersion'])}\n OS/Arch:           ${String(server['Os'])}/${String(server['Arch'])}\n`,
      );
  }
  if (failure) throw failure;
}

export async function info(ctx: Ctx, argv: string[]): Promise<void> {
  const p = parseArgs(argv, { format: { type: 'string', short: 'f' } });
  const i = await ctx.client.json<Json>('GET', '/info');
  const format = str(p, 'format');
  if (format) return ctx.out(renderTemplate(format, i) + '\n');
  const lines = [
    `Containers: ${String(i['Containers'])}`,
    ` Running: ${String(i['ContainersRunning'])}`,
    ` Paused: ${String(i['ContainersPaused'])}`,
    ` Stopped: ${String(i['ContainersStopped'])}`,
    `Images: ${String(i['Images'])}`,
    `Server Version: ${String(i['ServerVersion'])}`,
    `Storage Driver: ${String(i['Driver'])}`,
    `Logging Driver: ${String(i['LoggingDriver'])}`,
    `Cgroup Driver: ${String(i['CgroupDriver'])}`,
    `Cgroup Version: ${String(i['CgroupVersion'])}`,
    `Cgroup Repair: ${String(i['CgroupRepair'] || 'none needed')}`,
    `Host Tuning: ${Array.isArray(i['HostTuning']) && i['HostTuning'].length ? i['HostTuning'].join('; ') : 'none'}`,
    `Runtimes: ${Object.keys((i['Runtimes'] as Json) ?? {}).join(' ')}`,
    `Default Runtime: ${String(i['DefaultRuntime'])}`,
    `Init Binary: ${String(i['InitBinary'])}`,
    `Security Options: ${((i['SecurityOptions'] as string[]) ?? []).join(' ') || 'none'}`,
    `Kernel Version: ${String(i['KernelVersion'])}`,
    `CPUs: ${String(i['NCPU'])}`,
    `Total Memory: ${humanSize(Number(i['MemTotal']))}`,
    `Name: ${String(i['Name'])}`,
    `ID: ${String(i['ID'])}`,
    `Docker Root Dir: ${String(i['DockerRootDir'])}`,
    `Live Restore Enabled: ${String(i['LiveRestoreEnabled'])}`,
  ];
  ctx.out(lines.join('\n') + '\n');
  for (const w of (i['Warnings'] as string[] | null) ?? []) ctx.err(`WARNING: ${w}\n`);
}

/** `--since`/`--until` as unix seconds, RFC 3339, or a duration like `10m`. */
function timeArg(v: string | undefined): string | undefined {
  if (!v) return undefined;
  if (/^\d+(\.\d+)?$/.test(v)) return v;
  const d = /^(\d+)([smh])$/.exec(v);
  if (d) return String(Math.floor(Date.now() / 1000) - Number(d[1]) * { s: 1, m: 60, h: 3600 }[d[2] as 's']);
  const t = Date.parse(v);
  if (Number.isNaN(t)) throw new Error(`invalid time: ${v}`);
  return String(t / 1000);
}

export async function events(ctx: Ctx, argv: string[]): Promise<void> {
  const p = parseArgs(argv, {
    since: { type: 'string' },
    until: { type: 'string' },
    filter: { type: 'list', short: 'f' },
    format: { type: 'string' },
  });
  const res = await ctx.client.stream(
    'GET',
    `/events${q({ since: timeArg(str(p, 'since')), until: timeArg(str(p, 'until')), filters: filtersParam(list(p, 'filter')) })}`,
  );
  let buf = '';
  const format = str(p, 'format');
  for await (const c of res) {
    buf += String(c);
    const lines = buf.split('\n');
    buf = lines.pop() ?? '';
    for (const l of lines.filter(Boolean)) {
      const e = JSON.parse(l) as Json & { Actor: { ID: string; Attributes: Record<string, string> } };
      if (format) ctx.out(renderTemplate(format, { ...e, ID: e.Actor.ID }) + '\n');
      else {
        const t = new Date(Number(e['timeNano']) / 1e6).toISOString();
        const attrs = Object.entries(e.Actor.Attributes)
          .map(([k, v]) => `${k}=${v}`)
          .join(', ');
        ctx.out(`${t} ${String(e['Type'])} ${String(e['Action'])} ${e.Actor.ID}${attrs ? ` (${attrs})` : ''}\n`);
      }
    }
  }
}

export async function df(ctx: Ctx, argv: string[]): Promise<void> {
  parseArgs(argv, { verbose: { type: 'bool', short: 'v' }, format: { type: 'string' } });
  const d = await ctx.client.json<{ LayersSize: number; Images: Json[]; Containers: Json[] }>('GET', '/system/df');
  const active = d.Images.filter((i) => Number(i['Containers']) > 0).length;
  const ctrSize = d.Containers.reduce((n, c) => n + Number(c['SizeRw'] ?? 0), 0);
  ctx.out(
    table([
      ['TYPE', 'TOTAL', 'ACTIVE', 'SIZE', 'RECLAIMABLE'],
      [
        'Images',
        String(d.Images.length),
        String(active),
        humanSize(d.LayersSize),
        humanSize(d.Images.filter((i) => Number(i['Containers']) === 0).reduce((n, i) => n + Number(i['Size']), 0)),
      ],
      [
        'Containers',
        String(d.Containers.length),
        String(d.Containers.filter((c) => c['State'] === 'running').length),
        humanSize(ctrSize),
        humanSize(
          d.Containers.filter((c) => c['State'] !== 'running').reduce((n, c) => n + Number(c['SizeRw'] ?? 0), 0),
        ),
      ],
      ['Local Volumes', '0', '0', '0B', '0B'],
      ['Build Cache', '0', '0', '0B', '0B'],
    ]),
  );
}
