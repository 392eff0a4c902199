/** Docker's JSON shapes of a container: GET /containers/{id}/json and the /containers/json list entries. */
import { posix } from 'node:path';
import type { ContainerFacts } from '../../engine/container-ops.js';
import type { ContainerRecord } from '../../engine/record.js';

function humanDuration(ms: number): string {
  const s = Math.floor(ms / 1000);
  if (s < 1) return 'Less than a second';
  if (s === 1) return '1 second';
  if (s < 60) return `${s} seconds`;
  const m = Math.floor(s / 60);
  if (m < 60) return m === 1 ? 'About a minute' : `${m} minutes`;
  const h = Math.floor(m / 60);
  if (h < 48) return h === 1 ? 'About an hour' : `${h} hours`;
  const d = Math.floor(h / 24);
  return d < 14 ? `${d} days` : `${Math.floor(d / 7)} weeks`;
}

/** The `Status` column of `docker ps`. */
export function statusText(c: ContainerRecord, now: number): string {
  const st = c.state;
  switch (st.status) {
    case 'running': {
      const health = st.health ? ` (${st.health.Status === 'starting' ? 'health: starting' : st.health.Status})` : '';
      return `Up ${humanDuration(now - Date.parse(st.startedAt))}${health}`;
    }
    case 'paused':
      return `Up ${humanDuration(now - Date.parse(st.startedAt))} (Paused)`;
    case 'restarting':
      return `Restarting (${st.exitCode}) ${humanDuration(now - Date.parse(st.finishedAt))} ago`;
    case 'exited':
      return `Exited (${st.exitCode}) ${humanDuration(now - Date.parse(st.finishedAt))} ago`;
    case 'created':
      return 'Created';
    case 'removing':
      return 'Removal In Progress';
    case 'dead':
      return 'Dead';
  }
}

/** NetworkSettings.Ports: every exposed or published port, with its host bindings while running. */
function ports(f: ContainerFacts): Record<string, Array<{ HostIp: string; HostPort: string }> | null> {
  const out: Record<string, Array<{ HostIp: string; HostPort: string }> | null> = {};
  for (const p of Object.keys(f.rec.config.ExposedPorts ?? {})) out[p] = null;
  for (const b of f.ports)
    (out[`${b.containerPort}/${b.proto}`] ??= []).push({ HostIp: b.hostIp, HostPort: String(b.hostPort) });
  return out;
}

/** NetworkSettings.Networks: the networks the container joins, with addresses while it runs. */
function networks(f: ContainerFacts): Record<string, unknown> {
  const c = f.rec;
  const mode = c.hostConfig.NetworkMode ?? 'default';
  const blank = {
    IPAMConfig: null,
    Links: null,
    Aliases: null,
    MacAddress: '',
    NetworkID: '',
    EndpointID: '',
    Gateway: '',
    IPAddress: '',
    IPPrefixLen: 0,
    IPv6Gateway: '',
    GlobalIPv6Address: '',
    GlobalIPv6PrefixLen: 0,
    DriverOpts: null,
    DNSNames: null,
  };
  if (!c.networks?.length) return mode.startsWith('container:') ? {} : { [mode === 'default' ? 'none' : mode]: blank };
  const out: Record<string, unknown> = {};
  for (const { net: n, req, endpoint: e } of f.networks) {
    out[n.Name] = {
      ...blank,
      IPAMConfig:
        req.ipv4 || req.ipv6 || req.linkLocalIPs
          ? {
              ...(req.ipv4 ? { IPv4Address: req.ipv4 } : {}),
              ...(req.ipv6 ? { IPv6Address: req.ipv6 } : {}),
              ...(req.linkLocalIPs ? { LinkLocalIPs: req.linkLocalIPs } : {}),
            }
          : null,
      Links: req.links ?? null,
      Aliases: req.aliases.length ? req.aliases : null,
      DriverOpts: req.driverOpts ?? null,
      MacAddress: req.mac ?? '',
      NetworkID: n.Id,
      ...(e
        ? {
            EndpointID: e.endpointId,
            Gateway: e.gateway,
            IPAddress: e.ip,
            IPPrefixLen: e.prefix,
            MacAddress: e.mac,
            ...(e.ip6 ? { IPv6Gateway: e.gateway6, GlobalIPv6Address: e.ip6, GlobalIPv6PrefixLen: e.prefix6 } : {}),
            DNSNames: n.isDefault ? null : [c.name, ...e.names.slice(1), c.id.slice(0, 12)], // its current name
          }
        : {}),
    };
  }
  return out;
}

/**
 * `Mounts` of inspect and of the list: volumes, binds and HostConfig.Mounts' tmpfs mounts (dockerd
 * lists no `--tmpfs` one: those show in HostConfig.Tmpfs only). A record made before mounts were
 * recorded has its Binds only.
 */
function mountsView(f: ContainerFacts): Array<Record<string, unknown>> {
  const c = f.rec;
  if (!c.mounts)
    return (c.hostConfig.Binds ?? []).map((b) => {
      const [src = '', dst = '', mode = ''] = b.split(':');
      return {
        Type: 'bind',
        Source: src,
        Destination: dst,
        Mode: mode,
        RW: !mode.split(',').includes('ro'),
        Propagation: 'rprivate',
      };
    });
  // a `--tmpfs` (HostConfig.Tmpfs) is not listed, a `--mount type=tmpfs` is (dockerd 20.10)
  const tmpfs = c.hostConfig['Tmpfs'];
  const viaTmpfs = (dst: string) =>
    typeof tmpfs === 'object' && tmpfs !== null && Object.keys(tmpfs).some((k) => posix.normalize(k) === dst);
  return c.mounts
    .filter((m) => m.Type !== 'tmpfs' || !viaTmpfs(m.Destination))
    .map((m) =>
      m.Type === 'volume'
        ? {
            Type: 'volume',
            Name: m.Name,
            Source: f.volumePaths.get(m.Name ?? '') ?? '',
            Destination: m.Destination,
            Driver: m.Driver ?? 'local',
            Mode: m.Mode,
            RW: m.RW,
            Propagation: '',
          }
        : {
            Type: m.Type,
            Source: m.Source,
            Destination: m.Destination,
            Mode: m.Mode,
            RW: m.RW,
            Propagation: m.Propagation,
          },
    );
}

export function inspectView(f: ContainerFacts): Record<string, unknown> {
  const c = f.rec;
  const dir = f.dir;
  const st = c.state;
  const netMode = c.hostConfig.NetworkMode ?? 'default';
  return {
    Id: c.id,
    Created: c.created,
    Path: c.path,
    Args: c.args,
    State: {
      Status: st.status,
      Running: st.status === 'running' || st.status === 'paused' || st.status === 'restarting',
      Paused: st.status === 'paused',
      Restarting: st.status === 'restarting',
      OOMKilled: st.oomKilled,
      Dead: st.status === 'dead',
      Pid: st.pid,
      ExitCode: st.exitCode,
      Error: st.error,
      StartedAt: st.startedAt,
      FinishedAt: st.finishedAt,
      ...(st.health ? { Health: st.health } : {}),
    },
    Image: c.imageId,
    ResolvConfPath: `${dir}/resolv.conf`,
    HostnamePath: `${dir}/hostname`,
    HostsPath: `${dir}/hosts`,
    LogPath: f.logPath,
    Name: `/${c.name}`,
    RestartCount: c.restartCount,
    Driver: 'overlay',
    Platform: 'linux',
    MountLabel: '',
    ProcessLabel: '',
    AppArmorProfile: '',
    ExecIDs: c.execIds.length ? c.execIds : null,
    HostConfig: {
      Binds: null,
      ContainerIDFile: '',
      LogConfig: { Type: 'json-file', Config: {} },
      NetworkMode: netMode,
      PortBindings: {},
      RestartPolicy: { Name: 'no', MaximumRetryCount: 0 },
      AutoRemove: false,
      VolumeDriver: '',
      VolumesFrom: null,
      CapAdd: null,
      CapDrop: null,
      Dns: [],
      DnsOptions: [],
      DnsSearch: [],
      ExtraHosts: null,
      GroupAdd: null,
      IpcMode: 'private',
      Cgroup: '',
      Links: null,
      OomScoreAdj: 0,
      PidMode: '',
      Privileged: false,
      PublishAllPorts: false,
      ReadonlyRootfs: false,
      SecurityOpt: null,
      UTSMode: '',
      UsernsMode: '',
      ShmSize: 67108864,
      Runtime: c.runtime,
      Isolation: '',
      CpuShares: 0,
      Memory: 0,
      NanoCpus: 0,
      CgroupParent: '',
      BlkioWeight: 0,
      CpuPeriod: 0,
      CpuQuota: 0,
      CpusetCpus: '',
      CpusetMems: '',
      Devices: [],
      MemoryReservation: 0,
      MemorySwap: 0,
      PidsLimit: null,
      Ulimits: null,
      KernelMemory: 0,
      KernelMemoryTCP: 0,
      DeviceCgroupRules: null,
      DeviceRequests: null,
      MemorySwappiness: null,
      MaskedPaths: null,
      ReadonlyPaths: null,
      ...c.hostConfig,
      // omitted unless set, as dockerd (`Init *bool json:",omitempty"`)
      ...(typeof c.hostConfig.Init === 'boolean' ? { Init: c.hostConfig.Init } : { Init: undefined }),
    },
    GraphDriver: { Name: 'overlay', Data: { MergedDir: f.rootfs } },
    Mounts: mountsView(f),
    // dockerd's null for a container without volumes, and OnBuild (a container has none)
    Config: { ...c.config, Volumes: c.config.Volumes ?? null, OnBuild: null },
    NetworkSettings: (() => {
      const def = f.defaultEndpoint;
      return {
        Bridge: '',
        SandboxID: '',
        SandboxKey: c.state.pid ? `/proc/${c.state.pid}/ns/net` : '',
        HairpinMode: false,
        LinkLocalIPv6Address: '',
        LinkLocalIPv6PrefixLen: 0,
        Ports: ports(f),
        SecondaryIPAddresses: null,
        SecondaryIPv6Addresses: null,
        EndpointID: def?.endpointId ?? '',
        Gateway: def?.gateway ?? '',
        GlobalIPv6Address: '',
        GlobalIPv6PrefixLen: 0,
        IPAddress: def?.ip ?? '',
        IPPrefixLen: def?.prefix ?? 0,
        IPv6Gateway: '',
        MacAddress: def?.mac ?? '',
        Networks: networks(f),
      };
    })(),
    // `inspect --size`: the writable layer, and it with the image under it
    ...(f.size ? { SizeRw: f.size.rw, SizeRootFs: f.size.rootFs } : {}),
  };
}

export function listView(f: ContainerFacts): Record<string, unknown> {
  const c = f.rec;
  const v: Record<string, unknown> = {
    Id: c.id,
    Names: [`/${c.name}`],
    Image: c.config.Image,
    ImageID: c.imageId,
    Command: [c.path, ...c.args].map((a) => (/\s/.test(a) ? JSON.stringify(a) : a)).join(' '),
    Created: Math.floor(Date.parse(c.created) / 1000),
    Ports: f.ports.map((b) => ({ IP: b.hostIp, PrivatePort: b.containerPort, PublicPort: b.hostPort, Type: b.proto })),
    Labels: c.config.Labels ?? {},
    State: c.state.status,
    Status: statusText(c, f.now),
    HostConfig: { NetworkMode: c.hostConfig.NetworkMode ?? 'default' },
    NetworkSettings: { Networks: networks(f) },
    Mounts: mountsView(f),
  };
  if (f.size) {
    v['SizeRw'] = f.size.rw;
    v['SizeRootFs'] = f.size.rootFs;
  }
  return v;
}
