/**
 * The Engine API's request bodies as Go types (moby's api/types, API v1.45), for `decodeGo`:
 * field names, Go types and Go type names exactly as dockerd declares them, so that a body is
 * accepted, refused and echoed back by `inspect` as dockerd would.
 */
import { embed, go, type GoType } from './go-json.js';

const S = go.string;
const B = go.bool;
const strings = go.slice(S);
const stringMap = go.map(S);

const healthConfig = go.struct('container.HealthConfig', {
  Test: strings,
  Interval: go.duration,
  Timeout: go.duration,
  StartPeriod: go.duration,
  StartInterval: go.duration,
  Retries: go.int,
});

/** container.Config: the top level of a create body (embedded in CreateRequest). */
export const configFields: Record<string, GoType> = {
  Hostname: S,
  Domainname: S,
  User: S,
  AttachStdin: B,
  AttachStdout: B,
  AttachStderr: B,
  ExposedPorts: go.map(go.struct('struct {}', {}), 'nat.PortSet'),
  Tty: B,
  OpenStdin: B,
  StdinOnce: B,
  Env: strings,
  Cmd: go.strslice,
  Healthcheck: go.ptr(healthConfig),
  ArgsEscaped: B,
  Image: S,
  Volumes: go.map(go.struct('struct {}', {})),
  WorkingDir: S,
  Entrypoint: go.strslice,
  NetworkDisabled: B,
  MacAddress: S,
  OnBuild: strings,
  Labels: stringMap,
  StopSignal: S,
  StopTimeout: go.ptr(go.int),
  Shell: go.strslice,
};

const throttleDevice = go.ptr(go.record('blkiodev.ThrottleDevice', { Path: S, Rate: go.uint64 }));
const throttleList = go.slice(throttleDevice, '[]*blkiodev.ThrottleDevice');

/** container.Resources: embedded in HostConfig and in UpdateConfig. */
export const resourcesFields: Record<string, GoType> = {
  CpuShares: go.int64,
  Memory: go.int64,
  NanoCpus: go.int64,
  CgroupParent: S,
  BlkioWeight: go.uint16,
  BlkioWeightDevice: go.slice(
    go.ptr(go.record('blkiodev.WeightDevice', { Path: S, Weight: go.uint16 })),
    '[]*blkiodev.WeightDevice',
  ),
  BlkioDeviceReadBps: throttleList,
  BlkioDeviceWriteBps: throttleList,
  BlkioDeviceReadIOps: throttleList,
  BlkioDeviceWriteIOps: throttleList,
  CpuPeriod: go.int64,
  CpuQuota: go.int64,
  CpuRealtimePeriod: go.int64,
  CpuRealtimeRuntime: go.int64,
  CpusetCpus: S,
  CpusetMems: S,
  Devices: go.slice(
    go.record('container.DeviceMapping', { PathOnHost: S, PathInContainer: S, CgroupPermissions: S }),
    '[]container.DeviceMapping',
  ),
  DeviceCgroupRules: strings,
  DeviceRequests: go.slice(
    go.struct('container.DeviceRequest', {
      Driver: S,
      Count: go.int,
      DeviceIDs: strings,
      Capabilities: go.slice(strings),
      Options: stringMap,
    }),
    '[]container.DeviceRequest',
  ),
  KernelMemory: go.int64,
  KernelMemoryTCP: go.int64,
  MemoryReservation: go.int64,
  MemorySwap: go.int64,
  MemorySwappiness: go.ptr(go.int64),
  OomKillDisable: go.ptr(B),
  PidsLimit: go.ptr(go.int64),
  Ulimits: go.slice(go.ptr(go.record('units.Ulimit', { Name: S, Hard: go.int64, Soft: go.int64 })), '[]*units.Ulimit'),
  CpuCount: go.int64,
  CpuPercent: go.int64,
  IOMaximumIOps: go.uint64,
  IOMaximumBandwidth: go.uint64,
};

const restartPolicy = go.struct('container.RestartPolicy', {
  Name: go.named('container.RestartPolicyMode'),
  MaximumRetryCount: go.int,
});

const mount = go.struct('mount.Mount', {
  Type: go.named('mount.Type'),
  Source: S,
  Target: S,
  ReadOnly: B,
  Consistency: go.named('mount.Consistency'),
  BindOptions: go.ptr(
    go.struct('mount.BindOptions', {
      Propagation: go.named('mount.Propagation'),
      NonRecursive: B,
      CreateMountpoint: B,
      ReadOnlyNonRecursive: B,
      ReadOnlyForceRecursive: B,
    }),
  ),
  VolumeOptions: go.ptr(
    go.struct('mount.VolumeOptions', {
      NoCopy: B,
      Labels: stringMap,
      Subpath: S,
      DriverConfig: go.ptr(go.struct('mount.Driver', { Name: S, Options: stringMap })),
    }),
  ),
  TmpfsOptions: go.ptr(
    go.struct('mount.TmpfsOptions', { SizeBytes: go.int64, Mode: go.fileMode, Options: go.slice(strings) }),
  ),
  ClusterOptions: go.ptr(go.struct('mount.ClusterOptions', {})),
});

/** container.HostConfig. */
export const hostConfigFields: Record<string, GoType> = embed(
  {
    Binds: strings,
    ContainerIDFile: S,
    LogConfig: go.struct('container.LogConfig', { Type: S, Config: stringMap }),
    NetworkMode: go.named('container.NetworkMode'),
    PortBindings: go.map(
      go.slice(go.record('nat.PortBinding', { HostIp: S, HostPort: S }), '[]nat.PortBinding'),
      'nat.PortMap',
    ),
    RestartPolicy: restartPolicy,
    AutoRemove: B,
    VolumeDriver: S,
    VolumesFrom: strings,
    ConsoleSize: go.array(go.uint, 2, '[2]uint'),
    Annotations: stringMap,
    CapAdd: go.strslice,
    CapDrop: go.strslice,
    CgroupnsMode: go.named('container.CgroupnsMode'),
    Dns: strings,
    DnsOptions: strings,
    DnsSearch: strings,
    ExtraHosts: strings,
    GroupAdd: strings,
    IpcMode: go.named('container.IpcMode'),
    Cgroup: go.named('container.CgroupSpec'),
    Links: strings,
    OomScoreAdj: go.int,
    PidMode: go.named('container.PidMode'),
    Privileged: B,
    PublishAllPorts: B,
    ReadonlyRootfs: B,
    SecurityOpt: strings,
    StorageOpt: stringMap,
    Tmpfs: stringMap,
    UTSMode: go.named('container.UTSMode'),
    UsernsMode: go.named('container.UsernsMode'),
    ShmSize: go.int64,
    Sysctls: stringMap,
    Runtime: S,
    Isolation: go.named('container.Isolation'),
  },
  resourcesFields,
  { Mounts: go.slice(mount, '[]mount.Mount'), MaskedPaths: strings, ReadonlyPaths: strings, Init: go.ptr(B) },
);

const endpointSettings = go.struct('network.EndpointSettings', {
  IPAMConfig: go.ptr(
    go.struct('network.EndpointIPAMConfig', { IPv4Address: S, IPv6Address: S, LinkLocalIPs: strings }),
  ),
  Links: strings,
  Aliases: strings,
  MacAddress: S,
  DriverOpts: stringMap,
  NetworkID: S,
  EndpointID: S,
  Gateway: S,
  IPAddress: S,
  IPPrefixLen: go.int,
  IPv6Gateway: S,
  GlobalIPv6Address: S,
  GlobalIPv6PrefixLen: go.int,
  DNSNames: strings,
});
export const endpointSettingsType: GoType = go.ptr(endpointSettings);

/**
 * POST /containers/create: what dockerd's decoder reads it into, runconfig's ContainerConfigWrapper:
 * container.Config embedded, `HostConfig` and `NetworkingConfig`, and (deprecated, still read) the
 * HostConfig's fields inline at the top level (no name is in both Config and HostConfig). Errors name it
 * `CreateRequest`, as API 1.45 (dockerd 20.10 says `ContainerConfigWrapper`).
 */
export const createRequest: GoType = go.struct(
  'container.CreateRequest',
  embed(configFields, hostConfigFields, {
    HostConfig: go.ptr(go.struct('container.HostConfig', hostConfigFields)),
    NetworkingConfig: go.ptr(
      go.struct('network.NetworkingConfig', {
        EndpointsConfig: go.map(endpointSettingsType, 'map[string]*network.EndpointSettings'),
      }),
    ),
  }),
);

/** POST /containers/{id}/update: container.UpdateConfig. */
export const updateConfig: GoType = go.struct(
  'container.UpdateConfig',
  embed(resourcesFields, { RestartPolicy: restartPolicy }),
);

/** POST /networks/create: types.NetworkCreateRequest. */
export const networkCreateRequest: GoType = go.struct('types.NetworkCreateRequest', {
  Name: S,
  CheckDuplicate: B,
  Driver: S,
  Scope: S,
  EnableIPv6: go.ptr(B),
  IPAM: go.ptr(
    go.struct('network.IPAM', {
      Driver: S,
      Options: stringMap,
      Config: go.slice(
        go.struct('network.IPAMConfig', { Subnet: S, IPRange: S, Gateway: S, AuxiliaryAddresses: stringMap }),
        '[]network.IPAMConfig',
      ),
    }),
  ),
  Internal: B,
  Attachable: B,
  Ingress: B,
  ConfigOnly: B,
  ConfigFrom: go.ptr(go.struct('network.ConfigReference', { Network: S })),
  Options: stringMap,
  Labels: stringMap,
});

/** POST /networks/{id}/connect: types.NetworkConnect. */
export const networkConnect: GoType = go.struct('types.NetworkConnect', {
  Container: S,
  EndpointConfig: endpointSettingsType,
});
/** POST /networks/{id}/disconnect: types.NetworkDisconnect. */
export const networkDisconnect: GoType = go.struct('types.NetworkDisconnect', { Container: S, Force: B });

/** POST /volumes/create: volume.CreateOptions (a cluster volume's spec is Swarm's: accepted as an object, not kept). */
export const volumeCreateOptions: GoType = go.struct('volume.CreateOptions', {
  ClusterVolumeSpec: go.ptr(go.struct('volume.ClusterVolumeSpec', {})),
  Driver: S,
  DriverOpts: stringMap,
  Labels: stringMap,
  Name: S,
});

/** POST /containers/{id}/exec: types.ExecConfig. */
export const execConfig: GoType = go.struct('types.ExecConfig', {
  User: S,
  Privileged: B,
  Tty: B,
  ConsoleSize: go.ptr(go.array(go.uint, 2, '[2]uint')),
  AttachStdin: B,
  AttachStderr: B,
  AttachStdout: B,
  Detach: B,
  DetachKeys: S,
  Env: strings,
  WorkingDir: S,
  Cmd: strings,
});

/** POST /exec/{id}/start: types.ExecStartCheck. */
export const execStartCheck: GoType = go.struct('types.ExecStartCheck', {
  Detach: B,
  Tty: B,
  ConsoleSize: go.ptr(go.array(go.uint, 2, '[2]uint')),
});

/** POST /auth: types.AuthConfig (its JSON names are lower case: `username`, `serveraddress`). */
export const authConfig: GoType = go.struct('types.AuthConfig', {
  username: S,
  password: S,
  auth: S,
  email: S,
  serveraddress: S,
  identitytoken: S,
  registrytoken: S,
});

/**
 * POST /containers/{id}/checkpoints: types.CheckpointCreateOptions, with berth's own fields
 * (TcpEstablished, PreDump, ParentCheckpoint, PageServer) decoded the same way.
 */
export const checkpointCreateOptions: GoType = go.struct('types.CheckpointCreateOptions', {
  CheckpointID: S,
  CheckpointDir: S,
  Exit: go.ptr(B),
  TcpEstablished: B,
  PreDump: B,
  ParentCheckpoint: S,
  PageServer: go.ptr(S),
});
