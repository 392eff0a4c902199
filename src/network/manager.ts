/**
 * Networks and endpoints, the facade the engine uses: network records (records.ts), addresses
 * (ipam.ts, allocator.ts), published ports (ports.ts), name service (dns.ts), and the drivers that
 * make it real on the host — the built-in `bridge` (bridge.ts) and plugins — all behind one
 * NetworkDriver interface (../plugins/interfaces.ts). The host side is derived from the state in
 * SQLite and rebuilt by `init()` at daemon start.
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import type { Db } from '../metadata/db.js';
import { systemClock, type Clock } from '../base/clock.js';
import { conflict, errorMessage, invalidArgument, notFound } from '../base/errors.js';
import { log } from '../base/log.js';
import type { EndpointInfo, NetworkDriver, NetworkSpec } from '../plugins/interfaces.js';
import { AddressAllocator } from './allocator.js';
import { BridgeDriver } from './bridge.js';
import { NameService } from './dns.js';
import { systemNetHost, type NetHost } from './host.js';
import { hostRoutes, ipToInt, macOf, parseCidr, planPool, type PoolRequest } from './ipam.js';
import { bindAddress, hostPortRange, pickHostPort, PortTable } from './ports.js';
import {
  NetworkStore,
  type Attachable,
  type Endpoint,
  type EndpointRequest,
  type NetworkRecord,
  type PortBinding,
} from './records.js';
import { interfaceLines, nsArgOf, nsPath, nsRefOf, type Netns } from './sandbox.js';

export type { Attachable, Endpoint, EndpointRequest, NetworkRecord, PortBinding, PortRequest } from './records.js';
export { nsPath, type Netns } from './sandbox.js';

/** The body of `POST /networks/create`, as the manager takes it. */
export interface NetworkCreate {
  Name: string;
  Driver?: string;
  Internal?: boolean;
  Attachable?: boolean;
  Labels?: Record<string, string>;
  Options?: Record<string, string>;
  IPAM?: { Config?: PoolRequest[] };
  CheckDuplicate?: boolean;
}

const DEFAULT_NAME = 'bridge';
const NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

const specOf = (n: NetworkRecord): NetworkSpec => {
  const c = n.IPAM.Config[0]!;
  return {
    id: n.Id,
    name: n.Name,
    pool: c.Subnet,
    gateway: `${c.Gateway}/${parseCidr(c.Subnet).prefix}`,
    options: n.Options,
    internal: n.Internal,
    isDefault: n.isDefault,
  };
};

const infoOf = (e: Endpoint): EndpointInfo => ({
  networkId: e.networkId,
  endpointId: e.endpointId,
  address: `${e.ip}/${e.prefix}`,
  mac: e.mac,
  hostIfname: e.hostVeth,
});

export class NetworkManager {
  /** remote network drivers (plugins), by name; set by the daemon */
  drivers: (name: string) => Promise<NetworkDriver> = async (name) => {
    throw notFound(`plugin "${name}" not found`);
  };
  private readonly store: NetworkStore;
  private readonly addresses: AddressAllocator;
  private readonly bindings: PortTable;
  private readonly names: NameService;
  private readonly bridge: BridgeDriver;

  constructor(
    db: Db,
    daemonId: string,
    private readonly clock: Clock = systemClock,
    private readonly host: NetHost = systemNetHost,
  ) {
    this.store = new NetworkStore(db);
    this.addresses = new AddressAllocator(db);
    this.bindings = new PortTable(db);
    this.names = new NameService((networkId, name) => this.resolve(networkId, name), clock);
    this.bridge = new BridgeDriver(
      daemonId.replace(/-/g, '').slice(0, 8),
      this.names,
      () => this.bindings.list(),
      host,
    );
  }

  /** The driver of networks of driver `name`: the built-in bridge, or a plugin (NotFound when there is none). */
  private driver(name: string): Promise<NetworkDriver> {
    return name === 'bridge' ? Promise.resolve(this.bridge) : this.drivers(name);
  }

  // --- records ---------------------------------------------------------------------------

  list(): NetworkRecord[] {
    return this.store.list();
  }

  find(ref: string): NetworkRecord | undefined {
    return this.store.find(ref);
  }

  get(ref: string): NetworkRecord {
    return this.store.get(ref);
  }

  endpoints(filter: { containerId?: string; networkId?: string } = {}): Endpoint[] {
    return this.store.endpoints(filter);
  }

  ports(containerId?: string): PortBinding[] {
    return this.bindings.list(containerId);
  }

  /** POST /networks/create. Validates everything before any host change; the network is up when it returns. */
  async create(o: NetworkCreate, isDefault = false): Promise<NetworkRecord> {
    if (!o.Name || !NAME_RE.test(o.Name)) {
      throw invalidArgument(`invalid network name "${o.Name ?? ''}": only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed`);
    }
    if (this.find(o.Name)?.Name === o.Name) throw conflict(`network with name ${o.Name} already exists`);
    const driverName = o.Driver || 'bridge';
    const driver = await this.driver(driverName); // NotFound for an unknown plugin
    if (['host', 'none', 'default'].includes(o.Name) || (o.Name === DEFAULT_NAME && !isDefault)) {
      throw conflict(`network with name ${o.Name} already exists`);
    }
    const cfgs = o.IPAM?.Config ?? [];
    if (cfgs.length > 1) throw invalidArgument('only one IPv4 subnet per network is supported');
    const others = this.list().flatMap((n) => n.IPAM.Config.map((c) => ({ name: n.Name, subnet: c.Subnet })));
    const pool = planPool(cfgs[0] ?? {}, others, hostRoutes());
    const rec: NetworkRecord = {
      Id: randomBytes(32).toString('hex'),
      Name: o.Name,
      Driver: driverName,
      Scope: 'local',
      Created: new Date(this.clock.now()).toISOString(),
      Internal: !!o.Internal,
      Attachable: !!o.Attachable,
      EnableIPv6: false,
      Labels: o.Labels ?? {},
      Options: o.Options ?? {},
      IPAM: { Driver: 'default', Options: {}, Config: [pool] },
      bridge: '',
      isDefault,
    };
    rec.bridge = (await driver.createNetwork(specOf(rec))).device;
    try {
      this.store.insert(rec);
    } catch (e) {
      await driver.deleteNetwork(rec.Id).catch(() => undefined);
      throw e;
    }
    return rec;
  }

  /** Addresses of `name` (container name, alias, short or full id) on network `networkId`. */
  private resolve(networkId: string, name: string): string[] {
    return this.endpoints({ networkId })
      .filter((e) => e.names.includes(name) || (name.length >= 12 && e.containerId.startsWith(name)))
      .map((e) => e.ip);
  }

  async remove(ref: string): Promise<void> {
    const n = this.get(ref);
    if (n.isDefault) throw conflict(`${n.Name} is a pre-defined network and cannot be removed`);
    const eps = this.endpoints({ networkId: n.Id });
    if (eps.length) throw conflict(`error while removing network: network ${n.Name} id ${n.Id} has active endpoints`);
    this.store.delete(n.Id);
    await (await this.driver(n.Driver)).deleteNetwork(n.Id);
  }

  // --- endpoints -------------------------------------------------------------------------

  /** Whether `ip` is in network `networkId`'s subnet and free (a restore keeps its old address only then). */
  addressFree(networkId: string, ip: string): boolean {
    const n = this.find(networkId);
    return !!n && this.addresses.free(n, ip);
  }

  /**
   * Wires a created (not yet started) container in namespace `ns`: per network an endpoint with
   * its address, the default route through the first non-internal network, then published ports.
   * All or nothing: on an error everything made for it is undone.
   */
  async attach(c: Attachable, ns: Netns): Promise<void> {
    try {
      let routed = false;
      for (const [i, [networkId, req]] of c.networks.entries()) {
        const n = this.get(networkId);
        await this.addEndpoint(n, c, req, ns, `eth${i}`, !routed && !n.Internal);
        if (!n.Internal) routed = true;
      }
      if (c.ports.length) await this.publish(c);
    } catch (e) {
      await this.detach(c.id);
      throw e;
    }
  }

  /**
   * One endpoint, the same for every driver: an address (written before any wiring), the record,
   * then the driver's CreateEndpoint and Join; a plugin's interface is then moved into the
   * container, named, and given the address, MAC and route.
   */
  private async addEndpoint(
    n: NetworkRecord,
    c: Attachable,
    req: EndpointRequest,
    ns: Netns,
    ifname: string,
    route: boolean,
  ): Promise<Endpoint> {
    const ip = this.addresses.allocate(n, c.id, req.ipv4);
    const c0 = n.IPAM.Config[0]!;
    const ep: Endpoint = {
      containerId: c.id,
      networkId: n.Id,
      names: n.isDefault ? [] : [c.name, ...req.aliases],
      ip,
      prefix: parseCidr(c0.Subnet).prefix,
      gateway: c0.Gateway,
      mac: req.mac ?? macOf(ipToInt(ip)),
      hostVeth: '',
      ifname,
      endpointId: randomBytes(32).toString('hex'),
    };
    if ('name' in ns) ep.netns = ns.name;
    else ep.pid = ns.pid; // without a host interface, an endpoint is alive while the container's init is
    this.store.insertEndpoint(ep);
    const driver = await this.driver(n.Driver);
    ep.hostVeth = (await driver.createEndpoint(infoOf(ep))).hostIfname;
    if (ep.hostVeth) this.store.updateEndpoint(ep);
    const key = nsPath(ns);
    const j = await driver.join(infoOf(ep), { key, ifname, route: route ? ep.gateway : null });
    if (j.kind === 'move') {
      const gw = (j.gateway || ep.gateway).replace(/\/\d+$/, '');
      await this.host.ipBatch([`link set ${j.srcName} netns ${nsRefOf(key)}`]);
      const lines = interfaceLines(ifname, `${ip}/${ep.prefix}`, ep.mac, route && gw ? gw : null);
      await this.host.ipBatch([`link set ${j.srcName} name ${ifname}`, ...lines], nsArgOf(key));
    }
    return ep;
  }

  /**
   * Undoes a container's wiring (idempotent): its endpoints (the driver's Leave and DeleteEndpoint),
   * addresses, port bindings. `processGone`: its namespace went with its process, and the kernel
   * removed what was in it.
   */
  async detach(containerId: string, networkId?: string, processGone = false): Promise<void> {
    const eps = this.endpoints({ containerId }).filter((e) => !networkId || e.networkId === networkId);
    for (const e of eps) {
      const n = this.find(e.networkId);
      if (!n) continue;
      try {
        const d = await this.driver(n.Driver);
        await d.leave(infoOf(e));
        await d.deleteEndpoint(infoOf(e), processGone);
      } catch (err) {
        log.warn('network plugin leave failed', { network: n.Name, err: errorMessage(err) });
      }
    }
    this.store.deleteEndpoints(
      containerId,
      eps.map((e) => e.networkId),
    );
    if (!networkId && this.bindings.release(containerId)) await this.apply();
  }

  /** Connects a running container to one more network (`network connect`). */
  async connectRunning(n: NetworkRecord, c: Attachable, req: EndpointRequest, ns: Netns): Promise<void> {
    const used = new Set(this.endpoints({ containerId: c.id }).map((e) => e.ifname));
    let i = 0;
    while (used.has(`eth${i}`)) i++;
    try {
      await this.addEndpoint(n, c, req, ns, `eth${i}`, false);
    } catch (e) {
      await this.detach(c.id, n.Id);
      throw e;
    }
  }

  /** Host ports: chosen ('' = any free), checked free (ours and the host's), then the DNAT rules. */
  private async publish(c: Attachable): Promise<void> {
    const ep = this.endpoints({ containerId: c.id }).find((e) => !this.get(e.networkId).Internal);
    if (!ep) throw invalidArgument('ports can only be published from a network that is not internal');
    for (const p of c.ports) {
      const hostIp = bindAddress(p.hostIp);
      const got = await pickHostPort(
        hostPortRange(p.hostPort),
        (port) => this.bindings.taken(p.proto, hostIp, port),
        (port) => this.host.portFree(p.proto, hostIp, port),
      );
      if ('error' in got) {
        throw conflict(
          `driver failed programming external connectivity on endpoint ${c.name}: ` +
            `Bind for ${hostIp}:${p.hostPort || 'any'} failed: ${got.error}`,
        );
      }
      const b: PortBinding = {
        proto: p.proto,
        hostIp,
        hostPort: got.port,
        containerPort: p.containerPort,
        containerId: c.id,
        containerIp: ep.ip,
      };
      this.bindings.insert(b);
    }
    await this.apply();
  }

  /** Rewrites the daemon's nftables table (the bridge driver's) from the state. */
  apply(): Promise<void> {
    return this.bridge.apply();
  }

  // --- start and stop of the daemon ----------------------------------------------------------

  /**
   * At daemon start: every bridge network is up again and the default network exists; endpoints
   * whose container is gone (its veth died with its namespace) are released; links with this
   * daemon's mark that no record names are deleted; the nftables table is rebuilt. Plugins are
   * not called for their networks (they keep their own state, and may start later).
   */
  async init(): Promise<void> {
    this.bridge.start();
    for (const n of this.list()) {
      if (n.Driver === 'bridge') await this.bridge.restoreNetwork({ ...specOf(n), device: n.bridge });
    }
    if (!this.list().some((n) => n.isDefault)) await this.create({ Name: DEFAULT_NAME }, true);
    const present = new Set((await this.host.links()).map((l) => l.ifname));
    for (const ep of this.endpoints()) {
      const alive = ep.hostVeth
        ? present.has(ep.hostVeth)
        : ep.netns
          ? existsSync(`/run/netns/${ep.netns}`)
          : !!ep.pid && existsSync(`/proc/${ep.pid}`);
      if (!alive) await this.detach(ep.containerId, ep.networkId, true);
    }
    const live = new Set(this.endpoints().map((e) => e.containerId));
    for (const b of this.ports()) if (!live.has(b.containerId)) this.bindings.release(b.containerId);
    await this.bridge.reconcile(
      this.endpoints()
        .map((e) => e.hostVeth)
        .filter((v) => v),
    );
  }

  /** Stops the name servers. */
  close(): void {
    this.names.close();
  }

  /** Removes everything of this daemon from the host (tests, uninstall): table, bridges, veths. */
  async teardown(): Promise<void> {
    this.close();
    await this.bridge.teardown();
  }
}
