/** /_ping, /version, /info, /events, /system/df. */
import { release, hostname, arch } from 'node:os';
import type { Router } from '../http.js';
import { API_VERSION, MIN_API_VERSION } from '../http.js';
import { parseEventTime, type EngineEvent, type SystemVerbs } from '../../engine/system.js';
import { parseFilters, type Filters } from '../filters.js';
import { invalidArgument } from '../../base/errors.js';
import { parseAuthConfig } from '../../spec/system-api.js';
import { pluginRoutes, swarmRoutes } from './swarm.js';
import { volumeView } from './volumes.js';

export const BERTH_VERSION = '0.1.0';

const goArch = (): string => (({ x64: 'amd64', arm64: 'arm64' }) as Record<string, string>)[arch()] ?? arch();

/** `/_ping` (GET and HEAD): what berthd serves from the moment its socket opens (cmd/berthd.ts). */
export function pingRoutes(r: Router): void {
  const ping = (ctx: Parameters<Parameters<Router['on']>[2]>[0]) =>
    ctx.send(200, 'OK', {
      'Cache-Control': 'no-cache, no-store, must-revalidate',
      Pragma: 'no-cache',
      'Builder-Version': '1',
      'Content-Type': 'text/plain; charset=utf-8',
    });
  r.on('GET', '/_ping', ping);
  r.on('HEAD', '/_ping', ping);
}

export function systemRoutes(
  r: Router,
  sys: SystemVerbs,
  daemon: { id: string; startedAt: Date; clusterStore: string; clusterAdvertise: string },
): void {
  swarmRoutes(r, sys);
  pluginRoutes(r, sys);

  // docker login: the daemon checks the credentials against the registry; nothing is stored here
  r.on('POST', '/auth', async (ctx) => {
    const a = parseAuthConfig(await ctx.json()); // keys in any case, as dockerd's decoder
    await sys.login(a.serveraddress, { username: a.username, password: a.password });
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
      // --cluster-store / --cluster-advertise, as dockerd 20.10 showed them ('' when not set)
      ClusterStore: daemon.clusterStore,
      ClusterAdvertise: daemon.clusterAdvertise,
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

  /**
   * dockerd's getEvents: `since` and/or `until` replay the kept events in [since, until] (either
   * bound alone too), then the stream goes on live until `until`; an `until` already past ends it
   * after the replay. `since` after `until` is a 400 in dockerd's words.
   */
  r.on('GET', '/events', (ctx) => {
    const filters = parseFilters(ctx.query.get('filters'));
    const sinceRaw = ctx.query.get('since');
    const untilRaw = ctx.query.get('until');
    const sinceNs = parseEventTime(sinceRaw);
    const untilNs = parseEventTime(untilRaw);
    if (untilNs !== null && sinceNs !== null && untilNs < sinceNs)
      throw invalidArgument(`\`since\` time (${sinceRaw ?? ''}) cannot be after \`until\` time (${untilRaw ?? ''})`);
    const io = ctx.stream(200, 'application/json');
    const write = (e: EngineEvent) => {
      if (eventMatches(e, filters)) io.write(Buffer.from(JSON.stringify(e) + '\n'));
    };
    // subscribed before the replay is read, so that no event falls between the two
    const pending: EngineEvent[] = [];
    let live: ((e: EngineEvent) => void) | null = null;
    const unsubscribe = sys.subscribe((e) => (live ? live(e) : pending.push(e)));
    io.onClose(unsubscribe);
    const replayed = new Set<EngineEvent>();
    if (sinceNs !== null || untilNs !== null)
      for (const e of sys.eventHistory(sinceNs, untilNs)) {
        replayed.add(e);
        write(e);
      }
    const end = () => {
      unsubscribe();
      io.end();
    };
    if (untilNs !== null && untilNs <= sys.nowNs()) return end();
    live = (e) => {
      if (untilNs !== null && BigInt(e.timeNano) > untilNs) return end();
      write(e);
    };
    for (const e of pending) if (!replayed.has(e)) live(e);
    // a timer longer than 2^31-1 ms fires at once in Node: a far `until` is waited for in steps
    const wait = () => {
      if (io.closed) return;
      const ms = Number((untilNs! - sys.nowNs()) / 1_000_000n) + 1;
      if (ms <= 0) return end();
      setTimeout(wait, Math.min(ms, 2 ** 31 - 1)).unref();
    };
    if (untilNs !== null) wait();
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
        SizeRootFs: imageSize + sizeRw, // dockerd: the image's layers and the writable one
        Labels: c.config.Labels ?? {},
        Mounts: [],
      })),
      Volumes: df.volumes.map(({ volume, size, refCount }) => ({
        ...volumeView(volume),
        UsageData: { Size: size, RefCount: refCount },
      })),
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
