/** /_ping, /version, /info, /events, /system/df. */
import { release, hostname, arch } from 'node:os';
import type { Router } from '../http.js';
import { API_VERSION, MIN_API_VERSION } from '../http.js';
import type { EngineEvent, SystemVerbs } from '../../engine/system.js';
import { parseUnixTime } from '../../engine/logs.js';
import { parseFilters, type Filters } from '../filters.js';
import { invalidArgument } from '../../base/errors.js';
import { isObject } from '../../base/json.js';

export const BERTH_VERSION = '0.1.0';

const goArch = (): string => (({ x64: 'amd64', arm64: 'arm64' }) as Record<string, string>)[arch()] ?? arch();

export function systemRoutes(r: Router, sys: SystemVerbs, daemon: { id: string; startedAt: Date }): void {
  const ping = (ctx: Parameters<Parameters<Router['on']>[2]>[0]) =>
    ctx.send(200, 'OK', {
      'Cache-Control': 'no-cache, no-store, must-revalidate',
      Pragma: 'no-cache',
      'Builder-Version': '1',
      'Content-Type': 'text/plain; charset=utf-8',
    });
  r.on('GET', '/_ping', ping);
  r.on('HEAD', '/_ping', ping);

  // docker login: the daemon checks the credentials against the registry; nothing is stored here
  r.on('POST', '/auth', async (ctx) => {
    const body = await ctx.json();
    if (!isObject(body) || typeof body['username'] !== 'string' || typeof body['password'] !== 'string')
      throw invalidArgument('username and password are required');
    const server =
      typeof body['serveraddress'] === 'string' && body['serveraddress']
        ? body['serveraddress']
        : 'https://index.docker.io/v1/';
    await sys.login(server, { username: body['username'], password: body['password'] });
    ctx.send(200, { Status: 'Login Succeeded', IdentityToken: '' });
  });

  r.on('GET', '/version', (ctx) => {
    const host = sys.host();
    ctx.send(200, {
      Platform: { Name: 'berth' },
      Components: [
        {
          Name: 'Engine',
          Version: BERTH_VERSION,
          Details: {
            ApiVersion: API_VERSION,
            MinAPIVersion: MIN_API_VERSION,
            Os: 'linux',
            Arch: goArch(),
            KernelVersion: release(),
            Experimental: 'true',
          },
        },
        ...Object.entries(host.runtimes).map(([name, rt]) => ({
          Name: name,
          Version: rt?.version ?? '',
          Details: { path: rt?.path ?? '' },
        })),
        { Name: 'conmon', Version: host.conmon.version, Details: { path: host.conmon.path } },
      ],
      Version: BERTH_VERSION,
      ApiVersion: API_VERSION,
      MinAPIVersion: MIN_API_VERSION,
      GitCommit: 'berth',
      GoVersion: `node${process.versions.node}`,
      Os: 'linux',
      Arch: goArch(),
      KernelVersion: release(),
      BuildTime: daemon.startedAt.toISOString(),
      Experimental: true,
    });
  });

  r.on('GET', '/info', (ctx) => {
    const counts = sys.info();
    const host = counts.host;
    const all = counts.containers;
    const count = (s: string) => all.filter((st) => st === s).length;
    ctx.send(200, {
      ID: daemon.id,
      Containers: all.length,
      ContainersRunning: count('running') + count('restarting'),
      ContainersPaused: count('paused'),
      ContainersStopped: all.length - count('running') - count('paused') - count('restarting'),
      Images: counts.images,
      Driver: 'overlay',
      DriverStatus: [
        ['Backing Filesystem', 'extfs'],
        ['Supports d_type', 'true'],
      ],
      Plugins: { Volume: ['local'], Network: ['host', 'null'], Authorization: null, Log: ['k8s-file'] },
      MemoryLimit: true,
      SwapLimit: host.cgroupVersion === 1,
      CpuCfsPeriod: true,
      CpuCfsQuota: true,
      CPUShares: true,
      CPUSet: true,
      PidsLimit: true,
      IPv4Forwarding: true,
      BridgeNfIptables: false,
      BridgeNfIp6tables: false,
      Debug: false,
      NFd: 0,
      OomKillDisable: false,
      NGoroutines: 0,
      SystemTime: new Date(counts.now).toISOString(),
      LoggingDriver: 'k8s-file',
      CgroupDriver: host.cgroupDriver,
      CgroupVersion: String(host.cgroupVersion),
      NEventsListener: counts.eventListeners,
      KernelVersion: host.kernelVersion,
      OperatingSystem: 'berth',
      OSVersion: '',
      OSType: 'linux',
      Architecture: process.arch === 'x64' ? 'x86_64' : process.arch,
      IndexServerAddress: 'https://index.docker.io/v1/',
      RegistryConfig: { IndexConfigs: {}, InsecureRegistryCIDRs: [], Mirrors: [] },
      NCPU: host.ncpu,
      MemTotal: host.memTotal,
      GenericResources: null,
      DockerRootDir: counts.root,
      HttpProxy: '',
      HttpsProxy: '',
      NoProxy: '',
      Name: hostname(),
      Labels: [],
      ExperimentalBuild: true,
      ServerVersion: BERTH_VERSION,
      Runtimes: Object.fromEntries(Object.entries(host.runtimes).map(([n, rt]) => [n, { path: rt?.path ?? '' }])),
      DefaultRuntime: host.defaultRuntime,
      CheckpointRuntimes: host.checkpoint.runtimes,
      CheckpointReason: host.checkpoint.reason,
      CheckpointProbe: host.checkpoint.probe,
      CriuVersion: host.checkpoint.criu,
      CheckpointPreCopy: host.checkpoint.preCopy,
      CheckpointPreCopyReason: host.checkpoint.preCopyReason,
      CheckpointPostCopy: host.checkpoint.postCopy,
      CheckpointPostCopyReason: host.checkpoint.postCopyReason,
      Swarm: {
        NodeID: '',
        NodeAddr: '',
        LocalNodeState: 'inactive',
        ControlAvailable: false,
        Error: '',
        RemoteManagers: null,
      },
      LiveRestoreEnabled: true,
      Isolation: '',
      InitBinary: host.init ?? '',
      ContainerdCommit: { ID: '', Expected: '' },
      RuncCommit: { ID: host.runtimes[host.defaultRuntime]?.version ?? '', Expected: '' },
      InitCommit: { ID: '', Expected: '' },
      SecurityOptions: [
        ...(host.seccomp ? ['name=seccomp,profile=builtin'] : []),
        ...(host.apparmor ? ['name=apparmor'] : []),
        ...(host.selinux ? ['name=selinux'] : []),
      ],
      CgroupRepair: host.cgroupRepair,
      HostTuning: host.tuning,
      Warnings: host.warnings.length ? host.warnings : null,
    });
  });

  r.on('GET', '/events', (ctx) => {
    const filters = parseFilters(ctx.query.get('filters'));
    const since = ctx.query.get('since');
    const until = ctx.query.get('until');
    const sinceNs = Number(parseUnixTime(since));
    const untilNs = until ? Number(parseUnixTime(until)) : 0;
    const io = ctx.stream(200, 'application/json');
    const write = (e: EngineEvent) => {
      if (eventMatches(e, filters)) io.write(Buffer.from(JSON.stringify(e) + '\n'));
    };
    if (since) for (const e of sys.eventHistory(sinceNs, untilNs || Number.MAX_SAFE_INTEGER)) write(e);
    if (untilNs && untilNs <= Date.now() * 1e6) {
      io.end();
      return;
    }
    const unsubscribe = sys.subscribe((e) => {
      if (untilNs && e.timeNano > untilNs) {
        unsubscribe();
        io.end();
        return;
      }
      write(e);
    });
    if (untilNs)
      setTimeout(
        () => {
          unsubscribe();
          io.end();
        },
        Math.max(0, untilNs / 1e6 - Date.now()),
      ).unref();
    io.onClose(unsubscribe);
  });

  r.on('GET', '/system/df', async (ctx) => {
    const df = await sys.diskUsage();
    ctx.send(200, {
      LayersSize: df.layersSize,
      Images: df.images.map((i) => ({
        Id: i.id,
        ParentId: i.parent,
        RepoTags: i.repoTags,
        RepoDigests: i.repoDigests,
        Created: Math.floor(Date.parse(i.created) / 1000),
        Size: i.size,
        SharedSize: 0,
        VirtualSize: i.size,
        Labels: i.config.config?.Labels ?? {},
        Containers: i.containers,
      })),
      Containers: df.containers.map(({ rec: c, sizeRw, imageSize }) => ({
        Id: c.id,
        Names: [`/${c.name}`],
        Image: c.config.Image,
        ImageID: c.imageId,
        Command: [c.path, ...c.args].join(' '),
        Created: Math.floor(Date.parse(c.created) / 1000),
        State: c.state.status,
        Status: c.state.status,
        SizeRw: sizeRw,
        SizeRootFs: imageSize,
        Labels: c.config.Labels ?? {},
        Mounts: [],
      })),
      Volumes: [],
      BuildCache: [],
    });
  });
}

function eventMatches(e: EngineEvent, f: Filters): boolean {
  const want = (k: string, v: string | undefined) => !f[k] || (v !== undefined && f[k]!.includes(v));
  if (!want('type', e.Type)) return false;
  // dockerd: the whole action (`health_status: healthy`) or its verb (`health_status`, `exec_start`)
  if (f['event'] && !f['event'].includes(e.Action) && !f['event'].includes(e.Action.split(':')[0]!)) return false;
  if (
    f['container'] &&
    (e.Type !== 'container' ||
      !f['container'].some((c) => e.Actor.ID.startsWith(c) || e.Actor.Attributes['name'] === c))
  )
    return false;
  if (f['image'] && !f['image'].some((i) => e.Actor.Attributes['image'] === i || e.Actor.ID === i)) return false;
  if (
    f['label'] &&
    !f['label'].every((l) => {
      const [k, v] = l.split('=');
      return k !== undefined && (v === undefined ? k in e.Actor.Attributes : e.Actor.Attributes[k] === v);
    })
  )
    return false;
  return true;
}
