/** `berth create` and `berth run`: Docker's flags mapped to POST /containers/create as the docker CLI does. */
import { readFileSync } from 'node:fs';
import { parseArgs, str, bool, list, UsageError, type FlagSpec, type Parsed } from '../args.js';
import { parseBytes } from '../format.js';
import { goDurationNs } from '../../base/duration.js';
import { ApiError, Demux } from '../../client/client.js';
import { pumpStreams } from '../io.js';
import { ExitError, q, type Ctx } from '../context.js';
import { write } from '../stdio.js';
import { trustedReference, trustOn } from '../trust-loader.js';

export const CREATE_FLAGS: FlagSpec = {
  detach: { type: 'bool', short: 'd' },
  rm: { type: 'bool' },
  interactive: { type: 'bool', short: 'i' },
  tty: { type: 'bool', short: 't' },
  env: { type: 'list', short: 'e' },
  'env-file': { type: 'list' },
  workdir: { type: 'string', short: 'w' },
  user: { type: 'string', short: 'u' },
  name: { type: 'string' },
  entrypoint: { type: 'string' },
  hostname: { type: 'string', short: 'h' },
  label: { type: 'list', short: 'l' },
  init: { type: 'bool' },
  publish: { type: 'list', short: 'p' },
  volume: { type: 'list', short: 'v' },
  network: { type: 'string' },
  restart: { type: 'string' },
  memory: { type: 'string', short: 'm' },
  cpus: { type: 'string' },
  'cpu-shares': { type: 'string', short: 'c' },
  'pids-limit': { type: 'string' },
  ulimit: { type: 'list' },
  'cap-add': { type: 'list' },
  'cap-drop': { type: 'list' },
  privileged: { type: 'bool' },
  'read-only': { type: 'bool' },
  'security-opt': { type: 'list' },
  'detach-keys': { type: 'string' },
  runtime: { type: 'string' },
  'stop-signal': { type: 'string' },
  'stop-timeout': { type: 'string' },
  expose: { type: 'list' },
  'memory-swap': { type: 'string' },
  'memory-reservation': { type: 'string' },
  'cpuset-cpus': { type: 'string' },
  'shm-size': { type: 'string' },
  sysctl: { type: 'list' },
  attach: { type: 'list', short: 'a' },
  quiet: { type: 'bool', short: 'q' },
  platform: { type: 'string' },
  pull: { type: 'string' },
  'publish-all': { type: 'bool', short: 'P' },
  'network-alias': { type: 'list' },
  ip: { type: 'string' },
  'add-host': { type: 'list' },
  dns: { type: 'list' },
  'dns-search': { type: 'list' },
  'dns-option': { type: 'list' },
  'mac-address': { type: 'string' },
  mount: { type: 'list' },
  tmpfs: { type: 'list' },
  'volumes-from': { type: 'list' },
  'health-cmd': { type: 'string' },
  'health-interval': { type: 'string' },
  'health-timeout': { type: 'string' },
  'health-retries': { type: 'string' },
  'health-start-period': { type: 'string' },
  'health-start-interval': { type: 'string' },
  'no-healthcheck': { type: 'bool' },
  device: { type: 'list' },
  'group-add': { type: 'list' },
  pid: { type: 'string' },
  ipc: { type: 'string' },
  uts: { type: 'string' },
  cgroupns: { type: 'string' },
  'oom-kill-disable': { type: 'bool' },
  'oom-score-adj': { type: 'string' },
  'log-driver': { type: 'string' },
  'log-opt': { type: 'list' },
  link: { type: 'list' },
  'memory-swappiness': { type: 'string' },
  'cpuset-mems': { type: 'string' },
  'cpu-period': { type: 'string' },
  'cpu-quota': { type: 'string' },
  'blkio-weight': { type: 'string' },
  'device-read-bps': { type: 'list' },
  'device-write-bps': { type: 'list' },
  'device-read-iops': { type: 'list' },
  'device-write-iops': { type: 'list' },
  'storage-opt': { type: 'list' },
};

/** `--device-read-bps /dev/sda:1mb` (a size) or `--device-read-iops /dev/sda:100` (a count). */
function throttleSpec(text: string, iops: boolean): { Path: string; Rate: number } {
  const i = text.lastIndexOf(':');
  if (i <= 0) throw new UsageError(`invalid device rate: ${text} (DEVICE:RATE)`);
  const rate = text.slice(i + 1);
  if (iops && !/^\d+$/.test(rate))
    throw new UsageError(`invalid rate for device: ${text}: a number of operations per second`);
  return { Path: text.slice(0, i), Rate: iops ? Number(rate) : parseBytes(rate) };
}

/** `--device /dev/x[:/dev/y][:rwm]` -> a HostConfig.Devices entry (the docker CLI's parsing). */
function deviceSpec(text: string): Record<string, string> {
  const parts = text.split(':');
  const perms = parts.length > 1 && /^[rwm]{1,3}$/.test(parts.at(-1)!) ? parts.pop()! : 'rwm';
  if (parts.length > 2 || !parts[0]) throw new UsageError(`invalid device specification: ${text}`);
  return { PathOnHost: parts[0], PathInContainer: parts[1] ?? parts[0], CgroupPermissions: perms };
}

/** `--health-*` and `--no-healthcheck` -> Config.Healthcheck, as the docker CLI builds it (unset fields come from the image). */
function healthcheckOf(p: Parsed): Record<string, unknown> | undefined {
  const dur = (flag: string) => {
    const v = str(p, flag);
    if (v === undefined) return undefined;
    const ns = goDurationNs(v);
    if (ns === null || ns < 0)
      throw new UsageError(`invalid argument "${v}" for "--${flag}" flag: time: invalid duration "${v}"`);
    return ns;
  };
  const h: Record<string, unknown> = {};
  const cmd = str(p, 'health-cmd');
  if (cmd) h['Test'] = ['CMD-SHELL', cmd];
  for (const [flag, key] of [
    ['health-interval', 'Interval'],
    ['health-timeout', 'Timeout'],
    ['health-start-period', 'StartPeriod'],
    ['health-start-interval', 'StartInterval'],
  ] as const) {
    const v = dur(flag);
    if (v !== undefined) h[key] = v;
  }
  const retries = str(p, 'health-retries');
  if (retries !== undefined) {
    if (!/^\d+$/.test(retries)) throw new UsageError(`invalid argument "${retries}" for "--health-retries" flag`);
    h['Retries'] = Number(retries);
  }
  if (bool(p, 'no-healthcheck')) {
    if (Object.keys(h).length) throw new UsageError('--no-healthcheck conflicts with --health-* options');
    return { Test: ['NONE'] };
  }
  return Object.keys(h).length ? h : undefined;
}

/**
 * `--mount type=volume,source=x,target=/y,readonly,volume-nocopy,tmpfs-size=...` -> a
 * HostConfig.Mounts entry (the docker CLI's CSV form).
 */
function mountSpec(text: string): Record<string, unknown> {
  const kv = new Map<string, string>();
  for (const part of text.split(',')) {
    const i = part.indexOf('=');
    kv.set((i < 0 ? part : part.slice(0, i)).trim().toLowerCase(), i < 0 ? 'true' : part.slice(i + 1));
  }
  const get = (...keys: string[]) => keys.map((k) => kv.get(k)).find((v) => v !== undefined);
  const type = get('type') ?? 'volume';
  const target = get('target', 'destination', 'dst');
  if (!target) throw new UsageError(`invalid mount: no target in ${text}`);
  const m: Record<string, unknown> = {
    Type: type,
    Target: target,
    ReadOnly: ['true', '1'].includes(get('readonly', 'ro') ?? 'false'),
  };
  const source = get('source', 'src');
  if (source) m['Source'] = source;
  if (type === 'bind' && get('bind-propagation')) m['BindOptions'] = { Propagation: get('bind-propagation') };
  if (type === 'volume') {
    const vo: Record<string, unknown> = {};
    if (get('volume-nocopy') === 'true') vo['NoCopy'] = true;
    if (get('volume-driver')) vo['DriverConfig'] = { Name: get('volume-driver') };
    m['VolumeOptions'] = vo;
  }
  if (type === 'tmpfs') {
    const to: Record<string, unknown> = {};
    if (get('tmpfs-size')) to['SizeBytes'] = parseBytes(get('tmpfs-size')!);
    if (get('tmpfs-mode')) to['Mode'] = parseInt(get('tmpfs-mode')!, 8);
    m['TmpfsOptions'] = to;
  }
  return m;
}

function envFromFiles(files: string[]): string[] {
  return files.flatMap((f) =>
    readFileSync(f, 'utf8')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith('#'))
      .map((l) => (l.includes('=') ? l : `${l}=${process.env[l] ?? ''}`)),
  );
}

function portBindings(specs: string[]): {
  bindings: Record<string, Array<{ HostIp: string; HostPort: string }>>;
  exposed: Record<string, object>;
} {
  const bindings: Record<string, Array<{ HostIp: string; HostPort: string }>> = {};
  const exposed: Record<string, object> = {};
  for (const s of specs) {
    const [addr, proto = 'tcp'] = s.split('/');
    const parts = (addr ?? '').split(':');
    const ctr = parts.pop() ?? '';
    const hostPort = parts.pop() ?? '';
    const hostIp = parts.join(':');
    if (!/^\d+(-\d+)?$/.test(ctr)) throw new UsageError(`invalid containerPort: ${ctr}`);
    const key = `${ctr}/${proto}`;
    exposed[key] = {};
    (bindings[key] ??= []).push({ HostIp: hostIp, HostPort: hostPort });
  }
  return { bindings, exposed };
}

function restartPolicy(s: string | undefined): { Name: string; MaximumRetryCount: number } | undefined {
  if (!s) return undefined;
  const [name = '', max] = s.split(':');
  if (!['no', 'always', 'unless-stopped', 'on-failure'].includes(name))
    throw new UsageError(`invalid restart policy format: ${s}`);
  return { Name: name, MaximumRetryCount: max ? Number(max) : 0 };
}

function ulimits(specs: string[]) {
  return specs.map((u) => {
    const m = /^([a-z]+)=(-?\d+)(?::(-?\d+))?$/.exec(u);
    if (!m) throw new UsageError(`invalid ulimit argument: ${u}`);
    return { Name: m[1]!, Soft: Number(m[2]), Hard: Number(m[3] ?? m[2]) };
  });
}

function securityOpts(opts: string[]): string[] {
  return opts.map((o) => {
    const m = /^seccomp[=:](.+)$/.exec(o);
    if (!m || m[1] === 'unconfined' || m[1]!.trimStart().startsWith('{')) return o;
    return `seccomp=${readFileSync(m[1]!, 'utf8')}`; // the docker CLI sends the profile's content
  });
}

/** The create request body and the positional image/command from parsed flags. */
export function createBody(p: Parsed): { name: string | undefined; body: Record<string, unknown> } {
  const [image, ...cmd] = p.args;
  if (!image) throw new UsageError('requires at least 1 argument: IMAGE [COMMAND] [ARG...]');
  const ports = portBindings(list(p, 'publish'));
  for (const e of list(p, 'expose')) ports.exposed[e.includes('/') ? e : `${e}/tcp`] = {};
  const attach = list(p, 'attach');
  const detach = bool(p, 'detach');
  const interactive = bool(p, 'interactive');
  const hc: Record<string, unknown> = {
    // `-v /path` (no source) is an anonymous volume: Config.Volumes, as the docker CLI sends it
    Binds: list(p, 'volume').filter((v) => v.includes(':')),
    NetworkMode: str(p, 'network') ?? 'default',
    PortBindings: ports.bindings,
    RestartPolicy: restartPolicy(str(p, 'restart')) ?? { Name: 'no', MaximumRetryCount: 0 },
    AutoRemove: bool(p, 'rm'),
    CapAdd: list(p, 'cap-add'),
    CapDrop: list(p, 'cap-drop'),
    Privileged: bool(p, 'privileged'),
    ReadonlyRootfs: bool(p, 'read-only'),
    SecurityOpt: securityOpts(list(p, 'security-opt')),
    Ulimits: ulimits(list(p, 'ulimit')),
    Sysctls: Object.fromEntries(list(p, 'sysctl').map((s) => [s.split('=')[0], s.split('=').slice(1).join('=')])),
  };
  if (list(p, 'mount').length) hc['Mounts'] = list(p, 'mount').map(mountSpec);
  if (list(p, 'tmpfs').length)
    hc['Tmpfs'] = Object.fromEntries(list(p, 'tmpfs').map((t) => [t.split(':')[0], t.split(':').slice(1).join(':')]));
  if (list(p, 'volumes-from').length) hc['VolumesFrom'] = list(p, 'volumes-from');
  if (bool(p, 'publish-all')) hc['PublishAllPorts'] = true;
  if (list(p, 'add-host').length) hc['ExtraHosts'] = list(p, 'add-host').map((h) => h.replace('=', ':'));
  if (list(p, 'dns').length) hc['Dns'] = list(p, 'dns');
  if (list(p, 'dns-search').length) hc['DnsSearch'] = list(p, 'dns-search');
  if (list(p, 'dns-option').length) hc['DnsOptions'] = list(p, 'dns-option');
  if (bool(p, 'init')) hc['Init'] = true;
  if (list(p, 'device').length) hc['Devices'] = list(p, 'device').map(deviceSpec);
  if (list(p, 'group-add').length) hc['GroupAdd'] = list(p, 'group-add');
  if (list(p, 'link').length) hc['Links'] = list(p, 'link');
  for (const [flag, key] of [
    ['memory-swappiness', 'MemorySwappiness'],
    ['cpu-period', 'CpuPeriod'],
    ['cpu-quota', 'CpuQuota'],
    ['blkio-weight', 'BlkioWeight'],
  ] as const)
    if (str(p, flag) !== undefined) hc[key] = Number(str(p, flag));
  if (str(p, 'cpuset-mems')) hc['CpusetMems'] = str(p, 'cpuset-mems');
  for (const [flag, key, iops] of [
    ['device-read-bps', 'BlkioDeviceReadBps', false],
    ['device-write-bps', 'BlkioDeviceWriteBps', false],
    ['device-read-iops', 'BlkioDeviceReadIOps', true],
    ['device-write-iops', 'BlkioDeviceWriteIOps', true],
  ] as const)
    if (list(p, flag).length) hc[key] = list(p, flag).map((t) => throttleSpec(t, iops));
  if (list(p, 'storage-opt').length)
    hc['StorageOpt'] = Object.fromEntries(
      list(p, 'storage-opt').map((o) => [o.split('=')[0], o.split('=').slice(1).join('=')]),
    );
  for (const [flag, key] of [
    ['pid', 'PidMode'],
    ['ipc', 'IpcMode'],
    ['uts', 'UTSMode'],
    ['cgroupns', 'CgroupnsMode'],
  ] as const)
    if (str(p, flag)) hc[key] = str(p, flag);
  if (bool(p, 'oom-kill-disable')) hc['OomKillDisable'] = true;
  if (str(p, 'oom-score-adj')) hc['OomScoreAdj'] = Number(str(p, 'oom-score-adj'));
  if (str(p, 'log-driver') || list(p, 'log-opt').length)
    hc['LogConfig'] = {
      Type: str(p, 'log-driver') ?? '',
      Config: Object.fromEntries(list(p, 'log-opt').map((o) => [o.split('=')[0], o.split('=').slice(1).join('=')])),
    };
  if (str(p, 'runtime')) hc['Runtime'] = str(p, 'runtime');
  if (str(p, 'memory')) hc['Memory'] = parseBytes(str(p, 'memory')!);
  if (str(p, 'memory-swap'))
    hc['MemorySwap'] = str(p, 'memory-swap') === '-1' ? -1 : parseBytes(str(p, 'memory-swap')!);
  if (str(p, 'memory-reservation')) hc['MemoryReservation'] = parseBytes(str(p, 'memory-reservation')!);
  if (str(p, 'shm-size')) hc['ShmSize'] = parseBytes(str(p, 'shm-size')!);
  if (str(p, 'cpus')) {
    const n = Number(str(p, 'cpus'));
    if (!Number.isFinite(n) || n < 0) throw new UsageError(`invalid argument "${str(p, 'cpus')}" for "--cpus" flag`);
    hc['NanoCpus'] = Math.round(n * 1e9);
  }
  if (str(p, 'cpu-shares')) hc['CpuShares'] = Number(str(p, 'cpu-shares'));
  if (str(p, 'cpuset-cpus')) hc['CpusetCpus'] = str(p, 'cpuset-cpus');
  if (str(p, 'pids-limit')) hc['PidsLimit'] = Number(str(p, 'pids-limit'));
  const body: Record<string, unknown> = {
    Image: image,
    Cmd: cmd.length ? cmd : null,
    Env: [
      ...envFromFiles(list(p, 'env-file')),
      ...list(p, 'env').map((e) => (e.includes('=') ? e : `${e}=${process.env[e] ?? ''}`)),
    ],
    Labels: Object.fromEntries(list(p, 'label').map((l) => [l.split('=')[0], l.split('=').slice(1).join('=')])),
    Tty: bool(p, 'tty'),
    OpenStdin: interactive,
    StdinOnce: interactive && !detach,
    AttachStdin: interactive && !detach,
    AttachStdout: !detach && (attach.length === 0 || attach.includes('stdout')),
    AttachStderr: !detach && (attach.length === 0 || attach.includes('stderr')),
    ExposedPorts: ports.exposed,
    HostConfig: hc,
  };
  const anonymous = list(p, 'volume').filter((v) => !v.includes(':'));
  if (anonymous.length) body['Volumes'] = Object.fromEntries(anonymous.map((v) => [v, {}]));
  const net = str(p, 'network') ?? 'default';
  if (list(p, 'network-alias').length || str(p, 'ip') || str(p, 'mac-address')) {
    body['NetworkingConfig'] = {
      EndpointsConfig: {
        [net]: {
          Aliases: list(p, 'network-alias'),
          ...(str(p, 'ip') ? { IPAMConfig: { IPv4Address: str(p, 'ip') } } : {}),
          ...(str(p, 'mac-address') ? { MacAddress: str(p, 'mac-address') } : {}),
        },
      },
    };
  }
  if (str(p, 'entrypoint') !== undefined)
    body['Entrypoint'] = str(p, 'entrypoint') === '' ? [] : [str(p, 'entrypoint')];
  if (str(p, 'workdir')) body['WorkingDir'] = str(p, 'workdir');
  if (str(p, 'user')) body['User'] = str(p, 'user');
  if (str(p, 'hostname')) body['Hostname'] = str(p, 'hostname');
  if (str(p, 'stop-signal')) body['StopSignal'] = str(p, 'stop-signal');
  if (str(p, 'stop-timeout')) body['StopTimeout'] = Number(str(p, 'stop-timeout'));
  const health = healthcheckOf(p);
  if (health) body['Healthcheck'] = health;
  return { name: str(p, 'name'), body };
}

async function createContainer(ctx: Ctx, p: Parsed): Promise<string> {
  const { name, body } = createBody(p);
  // content trust: the container runs the signed digest of the tag, pulled if missing
  if (trustOn())
    body['Image'] = await trustedReference(ctx, String(body['Image']), { pull: true, progressToStderr: true });
  try {
    const res = await ctx.client.json<{ Id: string; Warnings?: string[] }>(
      'POST',
      `/containers/create${q({ name, platform: str(p, 'platform') })}`,
      body,
    );
    for (const w of res.Warnings ?? []) ctx.err(`WARNING: ${w}\n`);
    return res.Id;
  } catch (e) {
    if (e instanceof ApiError && e.status === 404 && /No such image/.test(e.message))
      ctx.err(`Unable to find image '${String(body['Image'])}' locally\n`);
    throw e;
  }
}

export async function create(ctx: Ctx, argv: string[]): Promise<void> {
  ctx.out(`${await createContainer(ctx, parseArgs(argv, CREATE_FLAGS, false))}\n`);
}

/** Exit code the docker CLI gives when start fails: 126 cannot run, 127 not found, 125 otherwise. */
function startFailureCode(msg: string): number {
  if (/executable file not found/i.test(msg)) return 127;
  if (/permission denied/i.test(msg)) return 126;
  return 125;
}

export async function run(ctx: Ctx, argv: string[]): Promise<void> {
  const p = parseArgs(argv, CREATE_FLAGS, false);
  const id = await createContainer(ctx, p);
  const detach = bool(p, 'detach');
  if (detach) {
    try {
      await ctx.client.json('POST', `/containers/${id}/start`);
    } catch (e) {
      throw new ExitError(
        startFailureCode(e instanceof Error ? e.message : ''),
        `Error response from daemon: ${e instanceof Error ? e.message : String(e)}`,
      );
    }
    ctx.out(`${id}\n`);
    return;
  }
  const tty = bool(p, 'tty');
  const stdin = bool(p, 'interactive');
  const attachPath = `/containers/${id}/attach${q({ stream: 1, stdin: stdin ? 1 : 0, stdout: 1, stderr: 1, detachKeys: str(p, 'detach-keys') })}`;
  // Output only (no stdin, no terminal): read on the light wire, written with the CLI's own writes,
  // so that `run` loads no stream (cli/README.md "Start-up"). Else a socket joined to the terminal.
  const attach = async (): Promise<{ ended: Promise<void>; close(): void }> => {
    if (!tty && !stdin) {
      const demux = new Demux((s, b) => write(s === 2 ? 'stderr' : 'stdout', b));
      return ctx.client.upgradeForOutput(attachPath, (b) => demux.push(b));
    }
    const sock = await ctx.client.hijack(attachPath);
    return {
      ended: pumpStreams(ctx.client, sock, { tty, stdin, resizePath: `/containers/${id}/resize` }),
      close: () => sock.destroy(),
    };
  };
  // the attach and the wait are both in place before the start; neither needs the other
  const [attached, waiting] = await Promise.allSettled([
    attach(),
    ctx.client.pending('POST', `/containers/${id}/wait${q({ condition: bool(p, 'rm') ? 'removed' : 'next-exit' })}`),
  ]);
  if (attached.status === 'rejected' || waiting.status === 'rejected') {
    if (attached.status === 'fulfilled') attached.value.close();
    if (waiting.status === 'fulfilled') waiting.value.close();
    throw attached.status === 'rejected' ? attached.reason : (waiting as PromiseRejectedResult).reason;
  }
  const output = attached.value;
  const waitRes = waiting.value;
  const waited = waitRes.text.then(
    (t) => {
      try {
        return (JSON.parse(t) as { StatusCode: number }).StatusCode;
      } catch {
        return 125;
      }
    },
    () => 125,
  );
  try {
    await ctx.client.json('POST', `/containers/${id}/start`);
  } catch (e) {
    output.close();
    waitRes.close();
    throw new ExitError(
      startFailureCode(e instanceof Error ? e.message : ''),
      `Error response from daemon: ${e instanceof Error ? e.message : String(e)}`,
    );
  }
  await output.ended;
  // Output ended: either the container exited (its code follows) or the user detached, which
  // takes stdin (the detach keys). Without stdin the exit code is always waited for: on a loaded
  // host the daemon may record the exit well after the output ends, and the container still
  // looked running then (the code was lost: `run --rm busybox sh -c 'exit 3'` exited 0).
  const early = stdin
    ? await Promise.race([waited, new Promise<null>((r) => setTimeout(() => r(null), 300))])
    : await waited;
  let code = early;
  if (code === null) {
    const st = await ctx.client
      .json<{ State: { Running: boolean } }>('GET', `/containers/${id}/json`)
      .catch(() => null);
    if (st?.State.Running) {
      waitRes.close();
      return;
    }
    code = await waited;
  }
  if (code !== 0) throw new ExitError(code);
}
