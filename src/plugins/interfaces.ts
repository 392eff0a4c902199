/**
 * The driver interfaces: what the volume manager (volume/) and the network manager (network/)
 * ask of a driver, whether it is built in (`local`, `bridge`) or a plugin (drivers.ts). They live
 * here, below both managers in DESIGN.md's layers, so the managers and the plugin adapters import
 * them downward. Shaped after Docker's plugin protocol (docs: "Docker network driver plugins",
 * "Docker volume plugins"): one method per call, the protocol's ids, and what berth knows besides.
 */

/** A volume driver (`VolumeDriver.Create|Remove|Mount|Unmount`). */
export interface VolumeDriver {
  create(name: string, opts: Record<string, string>): Promise<void>;
  remove(name: string): Promise<void>;
  /** Returns the host path of the volume's data while container `id` uses it. */
  mount(name: string, id: string): Promise<string>;
  unmount(name: string, id: string): Promise<void>;
}

/** A network as a driver is asked to make it (`NetworkDriver.CreateNetwork`). */
export interface NetworkSpec {
  id: string;
  /** the network's name, for messages */
  name: string;
  /** the subnet from berth's IPAM (the default IPAM driver), as a CIDR */
  pool: string;
  /** the gateway with the subnet's prefix: `172.18.0.1/16` */
  gateway: string;
  /** the IPv6 subnet and gateway (with prefix), on a network with `EnableIPv6` */
  pool6?: string;
  gateway6?: string;
  /** `-o` options as given */
  options: Record<string, string>;
  /** `--internal`: no traffic in or out of the network */
  internal: boolean;
  /** the daemon's default network (`bridge`) */
  isDefault: boolean;
}

/** A network made by an earlier run of the daemon, as its record says: brought back as it was. */
export interface NetworkRestore extends NetworkSpec {
  /** the host device `createNetwork` answered then ('' when none) */
  device: string;
}

/** An endpoint: one container's attachment to one network (`NetworkDriver.CreateEndpoint`). */
export interface EndpointSpec {
  networkId: string;
  endpointId: string;
  /** the address berth's IPAM gave it, with the subnet's prefix: `172.18.0.2/16` */
  address: string;
  /** its IPv6 address with the prefix, on a network with `EnableIPv6` */
  address6?: string;
  /** further addresses for its interface (EndpointSettings IPAMConfig.LinkLocalIPs) */
  extraAddresses?: string[];
  /** EndpointSettings.DriverOpts */
  options?: Record<string, string>;
  mac: string;
}

/** An endpoint the driver answered for: the host interface it makes for it ('' when none). */
export interface EndpointInfo extends EndpointSpec {
  hostIfname: string;
}

/** Where an endpoint joins (`NetworkDriver.Join`): the container's network namespace. */
export interface SandboxSpec {
  /** the namespace's path, the protocol's SandboxKey: `/proc/<pid>/ns/net` or `/run/netns/<name>` */
  key: string;
  /** the interface's name in the sandbox: `eth<N>` */
  ifname: string;
  /** the gateway the default route goes through, when this is the container's routed network */
  route: string | null;
  /** the IPv6 gateway of the default IPv6 route, when routed and the network has IPv6 */
  route6?: string | null;
}

/**
 * What `join` leaves to its caller. `move` (the plugin protocol's answer): a host interface that the
 * caller moves into the sandbox, names `ifname` and gives the address, MAC and route. `configured`:
 * the driver made the interface in the sandbox and configured it itself.
 */
export type JoinResult = { kind: 'move'; srcName: string; dstPrefix: string; gateway: string } | { kind: 'configured' };

/**
 * A network driver (`NetworkDriver.*`). Call order per network: createNetwork (or restoreNetwork
 * at daemon start), then per endpoint createEndpoint, join, ... leave, deleteEndpoint; deleteNetwork
 * once no endpoint is left. A failed createNetwork leaves nothing behind on the host.
 */
export interface NetworkDriver {
  /** Makes the network; answers its host device ('' when it makes none). */
  createNetwork(n: NetworkSpec): Promise<{ device: string }>;
  /** At daemon start, for a network from the records (a driver that keeps its own state has none). */
  restoreNetwork?(n: NetworkRestore): Promise<void>;
  deleteNetwork(id: string): Promise<void>;
  /** Answers the host interface it will make for the endpoint ('' when none). */
  createEndpoint(ep: EndpointSpec): Promise<{ hostIfname: string }>;
  join(ep: EndpointInfo, sandbox: SandboxSpec): Promise<JoinResult>;
  leave(ep: EndpointInfo): Promise<void>;
  /** `sandboxGone`: the container's namespace is gone, and with it what was in it. */
  deleteEndpoint(ep: EndpointInfo, sandboxGone: boolean): Promise<void>;
}
