/**
 * Networks and endpoints, the facade the engine uses: network records (records.ts), addresses
 * (ipam.ts, allocator.ts), published ports (ports.ts), name service (dns.ts), and the drivers that
 * make it real on the host — the built-in `bridge` (bridge.ts) and plugins — all behind one
 * NetworkDriver interface (../plugins/interfaces.ts). The host side is derived from the state in
 * SQLite and rebuilt by `init()` at daemon start.
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Db } from '../metadata/db.js';
import type { NetworkCreateRequest } from '../spec/network-api.js';
import { systemClock, type Clock } from '../base/clock.js';
import {
  conflict,
  errorMessage,
  failedPrecondition,
  invalidArgument,
  notFound,
  permissionDenied,
} from '../base/errors.js';
import type { ClusterStore } from '../cluster/store.js';
import { log } from '../base/log.js';
import type { EndpointInfo, NetworkDriver, NetworkSpec } from '../plugins/interfaces.js';
import { AddressAllocator, v4Config, v6Config } from './allocator.js';
import { BridgeDriver } from './bridge.js';
import { OverlayDriver } from './overlay.js';
import { OverlayCatalog } from './overlay-catalog.js';
import { NameService } from './dns.js';
import { checkIpam, checkName, DEFAULT_NAME, localRecord, overlayRecord, PREDEFINED } from './create.js';
import { resolveName, type ContainerNames } from './names.js';
import { systemNetHost, type NetHost } from './host.js';
import { contains, ipToInt, macOf, parseCidr } from './ipam.js';
import { isV6, parseCidr6 } from './ipam6.js';
import { bindAddress, hostPortRange, pickHostPort, PortTable } from './ports.js';
import {
  findIn,
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
export { parseLinkText, type ContainerNames } from './names.js';

/** The body of `POST /networks/create`, as spec/ parsed it: what the manager takes. */
export type NetworkCreate = NetworkCreateRequest;

const specOf = (n: NetworkRecord): NetworkSpec => {
  const c = v4Config(n)!;
  const c6 = n.EnableIPv6 ? v6Config(n) : undefined;
  return {
    id: n.Id,
    name: n.Name,
    pool: c.Subnet,
    gateway: `${c.Gateway}/${parseCidr(c.Subnet).prefix}`,
    ...(c6 ? { pool6: c6.Subnet, gateway6: `${c6.Gateway}/${parseCidr6(c6.Subnet).prefix}` } : {}),
    options: n.Options,
    internal: n.Internal,
    isDefault: n.isDefault,
  };
};

const infoOf = (e: Endpoint): EndpointInfo => ({
  networkId: e.networkId,
  endpointId: e.endpointId,
  address: `${e.ip}/${e.prefix}`,
  ...(e.ip6 ? { address6: `${e.ip6}/${e.prefix6 ?? 64}` } : {}),
  ...(e.linkLocal?.length ? { extraAddresses: e.linkLocal } : {}),
  ...(e.driverOpts ? { options: e.driverOpts } : {}),
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
  /** overlay networks, when the daemon joined a cluster store (`useCluster`) */
  private overlay: OverlayCatalog | null = null;
  /** the engine's containers, for the name server; set by the daemon */
  containers: ContainerNames = { of: () => undefined, idOf: () => undefined };

  constructor(
    db: Db,
    daemonId: string,
    private readonly clock: Clock = systemClock,
    private readonly host: NetHost = systemNetHost,
  ) {
    this.store = new NetworkStore(db);
    this.addresses = new AddressAllocator(db);
    this.bindings = new PortTable(db);
    this.names = new NameService((networkId, name, client) => this.resolve(networkId, name, client), clock);
    this.bridge = new BridgeDriver(
      daemonId.replace(/-/g, '').slice(0, 8),
      this.names,
      () => this.bindings.list(),
      host,
    );
  }

  /**
   * Joins the cluster store (`--cluster-store`): overlay networks become available, kept in it.
   * Before `init()`. `root`: the daemon's root, where the overlay networks are cached.
   */
  useCluster(store: ClusterStore, root: string): void {
    const driver = new OverlayDriver(this.bridge, store.advertise, this.host);
    this.overlay = new OverlayCatalog(store, driver, join(root, 'cluster-networks.json'), () => this.store.endpoints());
  }

  /** The overlay networks' state; FailedPrecondition when the daemon has no cluster store. */
  private cluster(): OverlayCatalog {
    if (!this.overlay)
      throw failedPrecondition(
        'overlay networks need a cluster store: start berthd with --cluster-store etcd://HOST:PORT --cluster-advertise ADDR',
      );
    return this.overlay;
  }

  /** The driver of networks of driver `name`: the built-in bridge or overlay, or a plugin (NotFound when there is none). */
  private driver(name: string): Promise<NetworkDriver> {
    if (name === 'overlay') return Promise.resolve(this.cluster().driver);
    return name === 'bridge' ? Promise.resolve(this.bridge) : this.drivers(name);
  }

  // --- records ---------------------------------------------------------------------------

  /** The local networks (SQLite) and the cluster's overlay networks, by name. */
  list(): NetworkRecord[] {
    const local = this.store.list();
    if (!this.overlay) return local;
    return [...local, ...this.overlay.records()].sort((a, b) => (a.Name < b.Name ? -1 : a.Name > b.Name ? 1 : 0));
  }

  find(ref: string): NetworkRecord | undefined {
    return this.overlay ? findIn(this.list(), ref) : this.store.find(ref);
  }

  get(ref: string): NetworkRecord {
    const n = this.find(ref);
    if (!n) throw notFound(`network ${ref} not found`);
    return n;
  }

  endpoints(filter: { containerId?: string; networkId?: string } = {}): Endpoint[] {
    return this.store.endpoints(filter);
  }

  ports(containerId?: string): PortBinding[] {
    return this.bindings.list(containerId);
  }

  /** POST /networks/create. Validates everything before any host change (./create.ts); the network is up when it returns. */
  async create(o: NetworkCreate, isDefault = false): Promise<NetworkRecord> {
    const driverName = checkName(o, (name) => this.find(name)?.Name === name);
    const driver = await this.driver(driverName); // NotFound for an unknown plugin
    const cfgs = checkIpam(o, isDefault, driverName);
    if (driverName === 'overlay') {
      const cluster = this.cluster();
      const local = this.store
        .list()
        .flatMap((n) => n.IPAM.Config.filter((c) => !isV6(c.Subnet)).map((c) => ({ name: n.Name, subnet: c.Subnet })));
      const { rec, plan } = overlayRecord(o, cfgs.v4[0] ?? {}, local, this.clock);
      return cluster.create(rec, plan);
    }
    const subnets = (want6: boolean) =>
      this.list().flatMap((n) =>
        n.IPAM.Config.filter((c) => isV6(c.Subnet) === want6).map((c) => ({ name: n.Name, subnet: c.Subnet })),
      );
    const rec = localRecord(o, isDefault, driverName, cfgs, subnets, this.clock);
    rec.bridge = (await driver.createNetwork(specOf(rec))).device;
    try {
      this.store.insert(rec);
    } catch (e) {
      await driver.deleteNetwork(rec.Id).catch(() => undefined);
      throw e;
    }
    return rec;
  }

  /** Addresses of `qname` for the container at `client` on `networkId`, as dockerd's embedded server answers (./names.ts). */
  resolve(networkId: string, qname: string, client: string): { v4: string[]; v6: string[] } {
    return resolveName(
      {
        endpoints: this.overlay ? [...this.endpoints(), ...this.overlay.remoteEndpoints()] : this.endpoints(),
        find: (id) => this.find(id),
        containers: this.containers,
      },
      networkId,
      qname,
      client,
    );
  }

  async remove(ref: string): Promise<void> {
    const n = this.get(ref);
    if (n.isDefault || n.predefined) throw permissionDenied(`${n.Name} is a pre-defined network and cannot be removed`);
    const eps = this.endpoints({ networkId: n.Id });
    if (eps.length) throw conflict(`error while removing network: network ${n.Name} id ${n.Id} has active endpoints`);
    if (n.Driver === 'overlay' && n.Scope === 'global') return this.cluster().remove(n);
    this.store.delete(n.Id);
    await (await this.driver(n.Driver)).deleteNetwork(n.Id);
  }

  // --- endpoints -------------------------------------------------------------------------

  /** Whether `ip` is in network `networkId`'s subnet and free (a restore keeps its old address only then). */
  addressFree(networkId: string, ip: string): boolean {
    const n = this.find(networkId);
    if (n?.Scope === 'global') {
      // the watched copy may not have seen the source host release it yet (a migration): the claim,
      // a transaction in etcd, decides (Conflict if another host holds it)
      const c = v4Config(n);
      return !!c && contains(parseCidr(c.Subnet), ipToInt(ip)) && ip !== c.Gateway;
    }
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
    if (n.predefined) throw invalidArgument(`network ${n.Name} has no endpoints`);
    const overlay = n.Scope === 'global' ? this.cluster() : null;
    const names = n.isDefault ? [] : [c.name, ...req.aliases];
    const endpointId = randomBytes(32).toString('hex');
    const hostname = this.containers.of(c.id)?.hostname;
    const ip = overlay
      ? await overlay.claim(n, req.ipv4, (a) => ({
          Ip: a,
          Mac: req.mac ?? macOf(ipToInt(a)),
          ContainerId: c.id,
          EndpointId: endpointId,
          Names: hostname && !names.includes(hostname) ? [...names, hostname] : names,
          Host: overlay.store.hostId,
          Vtep: overlay.store.advertise,
          ...(c.holdPeers ? { Pending: true } : {}),
        }))
      : this.addresses.allocate(n, c.id, req.ipv4);
    const c0 = v4Config(n)!;
    const c6 = n.EnableIPv6 ? v6Config(n) : undefined;
    const ip6 = c6 ? this.addresses.allocate6(n, c.id, req.ipv6) : undefined;
    const ep: Endpoint = {
      containerId: c.id,
      networkId: n.Id,
      names,
      ip,
      prefix: parseCidr(c0.Subnet).prefix,
      gateway: c0.Gateway,
      ...(c6 && ip6 ? { ip6, prefix6: parseCidr6(c6.Subnet).prefix, gateway6: c6.Gateway } : {}),
      ...(req.links?.length ? { links: req.links } : {}),
      ...(req.linkLocalIPs?.length ? { linkLocal: req.linkLocalIPs } : {}),
      ...(req.driverOpts ? { driverOpts: req.driverOpts } : {}),
      mac: req.mac ?? macOf(ipToInt(ip)),
      hostVeth: '',
      ifname,
      endpointId,
    };
    if ('name' in ns) ep.netns = ns.name;
    else ep.pid = ns.pid; // without a host interface, an endpoint is alive while the container's init is
    try {
      this.store.insertEndpoint(ep);
    } catch (e) {
      if (overlay) await overlay.release(ep);
      throw e;
    }
    const driver = await this.driver(n.Driver);
    ep.hostVeth = (await driver.createEndpoint(infoOf(ep))).hostIfname;
    if (ep.hostVeth) this.store.updateEndpoint(ep);
    const key = nsPath(ns);
    const route6 = route && ep.gateway6 ? ep.gateway6 : null;
    const j = await driver.join(infoOf(ep), { key, ifname, route: route ? ep.gateway : null, route6 });
    if (j.kind === 'move') {
      const gw = (j.gateway || ep.gateway).replace(/\/\d+$/, '');
      await this.host.ipBatch([`link set ${j.srcName} netns ${nsRefOf(key)}`]);
      const lines = interfaceLines(ifname, `${ip}/${ep.prefix}`, ep.mac, route && gw ? gw : null, {
        ...(infoOf(ep).address6 ? { address6: infoOf(ep).address6!, route6 } : {}),
        extra: ep.linkLocal ?? [],
      });
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
      if (n.Scope === 'global') await this.overlay?.release(e);
    }
    this.store.deleteEndpoints(
      containerId,
      eps.map((e) => e.networkId),
    );
    if (!networkId && this.bindings.release(containerId)) await this.apply();
  }

  /** After a restore (`Attachable.holdPeers`): the container's overlay endpoints are announced to the other hosts. */
  async announce(containerId: string): Promise<void> {
    if (!this.overlay) return;
    const eps = this.endpoints({ containerId }).filter((e) => this.find(e.networkId)?.Scope === 'global');
    if (eps.length) await this.overlay.announce(eps);
  }

  /**
   * After `docker rename`: the other hosts of its overlay networks learn the new name (this host's
   * name servers read the current name from the engine already). The endpoints' `names` keep the
   * name they were made with, as on bridge networks.
   */
  async renamed(containerId: string, oldName: string, newName: string): Promise<void> {
    if (!this.overlay) return;
    const eps = this.endpoints({ containerId }).filter((e) => this.find(e.networkId)?.Scope === 'global');
    if (eps.length) await this.overlay.rename(eps, oldName, newName);
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
    // the cached overlay networks up before the endpoints are checked and the reconciliation keeps their devices
    await this.overlay?.init();
    if (!this.list().some((n) => n.isDefault)) await this.create({ Name: DEFAULT_NAME }, true);
    for (const [name, driver] of PREDEFINED) {
      if (this.list().some((n) => n.predefined && n.Driver === driver)) continue;
      this.store.insert({
        Id: randomBytes(32).toString('hex'),
        Name: name,
        Driver: driver,
        Scope: 'local',
        Created: new Date(this.clock.now()).toISOString(),
        Internal: false,
        Attachable: false,
        EnableIPv6: false,
        Labels: {},
        Options: {},
        IPAM: { Driver: 'default', Options: null, Config: [] },
        bridge: '',
        isDefault: false,
        predefined: true,
      });
    }
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
    await this.bridge.reconcile([
      ...this.endpoints()
        .map((e) => e.hostVeth)
        .filter((v) => v),
      ...(this.overlay?.devices() ?? []),
    ]);
  }

  /** Stops the name servers. */
  close(): void {
    this.overlay?.close();
    this.names.close();
  }

  /** Removes everything of this daemon from the host (tests, uninstall): table, bridges, veths. */
  async teardown(): Promise<void> {
    this.close();
    await this.bridge.teardown();
  }
}
