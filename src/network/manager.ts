/**
 * Networks and endpoints: the default bridge and user-defined bridge networks, a container's
 * endpoints while it runs (veth pair, address, MAC, aliases), published ports, name service.
 * State is in SQLite (`networks`, `ip_allocations`, `endpoints`, `port_bindings`); the host side
 * (bridges, veths, the nftables table) is derived from it and rebuilt by `init()` at daemon start.
 */
import { randomBytes } from 'node:crypto';
import type { Db } from '../metadata/db.js';
import { migrate } from '../metadata/db.js';
import { conflict, errorMessage, invalidArgument, notFound } from '../base/errors.js';
import { log } from '../base/log.js';
import { IFNAME_RE, cidrText, contains, freeAddress, hostRoutes, intToIp, ipToInt, macOf, parseCidr, pickSubnet, type Cidr } from './ipam.js';
import { allowLocalnet, deleteTable, enableForwarding, ipBatch, ipQuiet, links, plugIntoBridge, portFree, replaceTable } from './host.js';
import { tableBody } from './nft.js';
import { NetworkDns } from './dns.js';
import { existsSync } from 'node:fs';
import type { NetworkDriver } from '../plugins/drivers.js';

const MIGRATIONS = [
  `CREATE TABLE networks (id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, doc TEXT NOT NULL);
   CREATE TABLE ip_allocations (network_id TEXT NOT NULL, ip TEXT NOT NULL, owner TEXT NOT NULL, PRIMARY KEY (network_id, ip));
   CREATE TABLE endpoints (container_id TEXT NOT NULL, network_id TEXT NOT NULL, doc TEXT NOT NULL, PRIMARY KEY (container_id, network_id));
   CREATE TABLE port_bindings (proto TEXT NOT NULL, host_ip TEXT NOT NULL, host_port INTEGER NOT NULL, container_id TEXT NOT NULL, doc TEXT NOT NULL, PRIMARY KEY (proto, host_ip, host_port))`,
];

export interface NetworkRecord {
  Id: string;
  Name: string;
  Driver: string;
  Scope: 'local';
  Created: string;
  Internal: boolean;
  Attachable: boolean;
  EnableIPv6: boolean;
  Labels: Record<string, string>;
  Options: Record<string, string>;
  IPAM: { Driver: string; Options: Record<string, string>; Config: Array<{ Subnet: string; Gateway: string; IPRange?: string }> };
  /** the bridge device */
  bridge: string;
  /** the default `bridge` network: no name service, Docker's behaviour */
  isDefault: boolean;
}

export interface Endpoint {
  containerId: string;
  networkId: string;
  /** the container's name and the aliases it is known by on this network */
  names: string[];
  ip: string;
  prefix: number;
  gateway: string;
  mac: string;
  hostVeth: string;
  ifname: string;
  endpointId: string;
  /** the container's init when wired (endpoints of plugin networks are alive while it is) */
  pid?: number;
  /** the named namespace it was wired into, if berth made one */
  netns?: string;
}

export interface PortBinding {
  proto: 'tcp' | 'udp';
  hostIp: string;
  hostPort: number;
  containerPort: number;
  containerId: string;
  containerIp: string;
}

/** A container's network namespace: its init's (while it runs) or a named one berth made (/run/netns/<name>). */
export type Netns = { pid: number } | { name: string };
/** The namespace as `ip -n` takes it (a name under /run/netns; a relative path reaches /proc). */
const nsArg = (ns: Netns) => ('pid' in ns ? `../../proc/${ns.pid}/ns/net` : ns.name);
/** As `ip link set ... netns` takes it. */
const nsRef = (ns: Netns) => ('pid' in ns ? String(ns.pid) : ns.name);
export const nsPath = (ns: Netns) => ('pid' in ns ? `/proc/${ns.pid}/ns/net` : `/run/netns/${ns.name}`);

/** What a container asks of one network (from --network, --ip, --network-alias, connect). */
export interface EndpointRequest {
  aliases: string[];
  ipv4?: string;
  mac?: string;
}

/** The engine's view of a container for wiring it. */
export interface Attachable {
  id: string;
  name: string;
  /** network id -> request, in attach order */
  networks: Array<[string, EndpointRequest]>;
  /** `80/tcp` -> host bindings ('' host port: any free one) */
  ports: Array<{ proto: 'tcp' | 'udp'; containerPort: number; hostIp: string; hostPort: string }>;
}

const DEFAULT_NAME = 'bridge';
const NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;
const EPHEMERAL = { lo: 49153, hi: 60999 };

export class NetworkManager {
  private readonly dns = new Map<string, NetworkDns>();
  /** remote network drivers (plugins), by name; set by the daemon */
  drivers: (name: string) => Promise<NetworkDriver> = async (name) => {
    throw notFound(`plugin "${name}" not found`);
  };
  /** `berth:<daemon id>`: the alias of every link this daemon made */
  private readonly mark: string;
  private readonly table: string;
  /** the nftables rewrite under way (see apply) */
  private applying: Promise<void> = Promise.resolve();

  constructor(
    private readonly db: Db,
    daemonId: string,
  ) {
    migrate(db, 'network', MIGRATIONS);
    const short = daemonId.replace(/-/g, '').slice(0, 8);
    this.mark = `berth:${short}`;
    this.table = `berth_${short}`;
  }

  // --- records ---------------------------------------------------------------------------

  list(): NetworkRecord[] {
    return (this.db.prepare('SELECT doc FROM networks ORDER BY name').all() as Array<{ doc: string }>).map((r) => JSON.parse(r.doc) as NetworkRecord);
  }

  find(ref: string): NetworkRecord | undefined {
    const all = this.list();
    const exact = all.find((n) => n.Id === ref) ?? all.find((n) => n.Name === ref);
    if (exact) return exact;
    const byPrefix = /^[0-9a-f]+$/.test(ref) ? all.filter((n) => n.Id.startsWith(ref)) : [];
    if (byPrefix.length > 1) throw invalidArgument(`network ${ref} is ambiguous (${byPrefix.length} matches found based on ID prefix)`);
    return byPrefix[0];
  }

  get(ref: string): NetworkRecord {
    const n = this.find(ref);
    if (!n) throw notFound(`network ${ref} not found`);
    return n;
  }

  endpoints(filter: { containerId?: string; networkId?: string } = {}): Endpoint[] {
    const rows = (filter.containerId
      ? this.db.prepare('SELECT doc FROM endpoints WHERE container_id = ?').all(filter.containerId)
      : filter.networkId
        ? this.db.prepare('SELECT doc FROM endpoints WHERE network_id = ?').all(filter.networkId)
        : this.db.prepare('SELECT doc FROM endpoints').all()) as Array<{ doc: string }>;
    return rows.map((r) => JSON.parse(r.doc) as Endpoint);
  }

  ports(containerId?: string): PortBinding[] {
    const rows = (containerId ? this.db.prepare('SELECT doc FROM port_bindings WHERE container_id = ?').all(containerId) : this.db.prepare('SELECT doc FROM port_bindings').all()) as Array<{ doc: string }>;
    return rows.map((r) => JSON.parse(r.doc) as PortBinding);
  }

  private subnetsInUse(except?: string): Cidr[] {
    return this.list().filter((n) => n.Id !== except).flatMap((n) => n.IPAM.Config.map((c) => parseCidr(c.Subnet)));
  }

  /** POST /networks/create. Validates everything before any host change; the bridge is up when it returns. */
  async create(o: { Name: string; Driver?: string; Internal?: boolean; Attachable?: boolean; Labels?: Record<string, string>; Options?: Record<string, string>; IPAM?: { Config?: Array<{ Subnet?: string; Gateway?: string; IPRange?: string }> }; CheckDuplicate?: boolean }, isDefault = false): Promise<NetworkRecord> {
    if (!o.Name || !NAME_RE.test(o.Name)) throw invalidArgument(`invalid network name "${o.Name ?? ''}": only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed`);
    if (this.find(o.Name)?.Name === o.Name) throw conflict(`network with name ${o.Name} already exists`);
    const driver = o.Driver || 'bridge';
    const remote = driver === 'bridge' ? null : await this.drivers(driver); // NotFound for an unknown plugin
    if (['host', 'none', 'default'].includes(o.Name) || (o.Name === DEFAULT_NAME && !isDefault)) throw conflict(`network with name ${o.Name} already exists`);
    const cfgs = o.IPAM?.Config ?? [];
    if (cfgs.length > 1) throw invalidArgument('only one IPv4 subnet per network is supported');
    const want = cfgs[0] ?? {};
    const taken = [...this.subnetsInUse(), ...hostRoutes()];
    let subnet: Cidr;
    if (want.Subnet) {
      subnet = parseCidr(want.Subnet);
      if (subnet.prefix > 30) throw invalidArgument(`invalid subnet ${want.Subnet}: too small for a network`);
      const clash = this.list().find((n) => n.IPAM.Config.some((c) => { const s = parseCidr(c.Subnet); return contains(s, subnet.base) || contains(subnet, s.base); }));
      if (clash) throw conflict(`invalid pool request: Pool overlaps with other one on this address space (${clash.Name} uses ${clash.IPAM.Config[0]!.Subnet})`);
    } else subnet = pickSubnet(taken);
    const gateway = want.Gateway ? ipToInt(want.Gateway) : subnet.base + 1;
    if (!contains(subnet, gateway)) throw invalidArgument(`invalid gateway ${want.Gateway}: not in subnet ${cidrText(subnet)}`);
    if (want.IPRange) {
      const r = parseCidr(want.IPRange);
      if (!contains(subnet, r.base) || r.prefix < subnet.prefix) throw invalidArgument(`invalid ip-range ${want.IPRange}: not inside subnet ${cidrText(subnet)}`);
    }
    const id = randomBytes(32).toString('hex');
    const rec: NetworkRecord = {
      Id: id,
      Name: o.Name,
      Driver: driver,
      Scope: 'local',
      Created: new Date().toISOString(),
      Internal: !!o.Internal,
      Attachable: !!o.Attachable,
      EnableIPv6: false,
      Labels: o.Labels ?? {},
      Options: o.Options ?? {},
      IPAM: { Driver: 'default', Options: {}, Config: [{ Subnet: cidrText(subnet), Gateway: intToIp(gateway), ...(want.IPRange ? { IPRange: want.IPRange } : {}) }] },
      bridge: remote ? '' : (o.Options?.['com.docker.network.bridge.name'] || (isDefault ? `bb-${this.mark.slice(6)}` : `br-${id.slice(0, 12)}`)),
      isDefault,
    };
    if (typeof rec.bridge === 'string' && rec.bridge.length > 15) throw invalidArgument(`bridge name ${rec.bridge} is longer than 15 characters`);
    // the name goes into ip and nft scripts and a /proc/sys path: an interface name and nothing else
    if (!remote && (typeof rec.bridge !== 'string' || !IFNAME_RE.test(rec.bridge))) throw invalidArgument(`invalid bridge name ${JSON.stringify(rec.bridge)} (com.docker.network.bridge.name): up to 15 of [a-zA-Z0-9_.-], starting with a letter or digit`);
    if (remote) {
      await remote.createNetwork(id, cidrText(subnet), `${intToIp(gateway)}/${subnet.prefix}`, rec.Options);
      this.db.prepare('INSERT INTO networks (id, name, doc) VALUES (?, ?, ?)').run(id, rec.Name, JSON.stringify(rec));
      return rec;
    }
    this.db.prepare('INSERT INTO networks (id, name, doc) VALUES (?, ?, ?)').run(id, rec.Name, JSON.stringify(rec));
    try {
      await this.bridgeUp(rec);
      await this.apply();
    } catch (e) {
      this.db.prepare('DELETE FROM networks WHERE id = ?').run(id);
      await ipQuiet([`link del ${rec.bridge}`]);
      throw e;
    }
    return rec;
  }

  private async bridgeUp(n: NetworkRecord): Promise<void> {
    const c = n.IPAM.Config[0]!;
    const prefix = parseCidr(c.Subnet).prefix;
    const existing = (await links()).find((l) => l.ifname === n.bridge);
    if (existing && existing.ifalias !== this.mark) throw conflict(`a network device named ${n.bridge} exists and is not berth's`);
    if (!existing) await ipBatch([`link add ${n.bridge} type bridge`, `link set dev ${n.bridge} alias ${this.mark}`]);
    await ipQuiet([`addr add ${c.Gateway}/${prefix} dev ${n.bridge}`]);
    await ipBatch([`link set ${n.bridge} up`]);
    allowLocalnet(n.bridge);
    if (!n.isDefault) await this.startDns(n);
  }

  private async startDns(n: NetworkRecord): Promise<void> {
    if (this.dns.has(n.Id)) return;
    const d = new NetworkDns(n.IPAM.Config[0]!.Gateway, (name) => this.resolve(n.Id, name));
    try {
      await d.start();
      this.dns.set(n.Id, d);
    } catch (e) {
      log.warn('name service not available on network', { network: n.Name, err: errorMessage(e) });
    }
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
    this.dns.get(n.Id)?.close();
    this.dns.delete(n.Id);
    this.db.transaction(() => {
      this.db.prepare('DELETE FROM networks WHERE id = ?').run(n.Id);
      this.db.prepare('DELETE FROM ip_allocations WHERE network_id = ?').run(n.Id);
    })();
    if (n.Driver !== 'bridge') await (await this.drivers(n.Driver)).deleteNetwork(n.Id);
    else {
      await ipQuiet([`link del ${n.bridge}`]);
      await this.apply();
    }
  }

  // --- endpoints -------------------------------------------------------------------------

  /** Whether `ip` is in network `networkId`'s subnet and free (a restore keeps its old address only then). */
  addressFree(networkId: string, ip: string): boolean {
    const n = this.find(networkId);
    if (!n || !contains(parseCidr(n.IPAM.Config[0]!.Subnet), ipToInt(ip)) || ipToInt(ip) === ipToInt(n.IPAM.Config[0]!.Gateway)) return false;
    return !this.db.prepare('SELECT 1 FROM ip_allocations WHERE network_id = ? AND ip = ?').get(networkId, ip);
  }

  private allocate(n: NetworkRecord, owner: string, requested?: string): string {
    const c = n.IPAM.Config[0]!;
    const subnet = parseCidr(c.Subnet);
    const used = new Set<number>((this.db.prepare('SELECT ip FROM ip_allocations WHERE network_id = ?').all(n.Id) as Array<{ ip: string }>).map((r) => ipToInt(r.ip)));
    used.add(ipToInt(c.Gateway));
    let ip: number | null;
    if (requested) {
      ip = ipToInt(requested);
      if (!contains(subnet, ip)) throw invalidArgument(`invalid address ${requested}: not in network ${n.Name}'s subnet ${c.Subnet}`);
      if (used.has(ip)) throw conflict(`Address already in use: ${requested} on network ${n.Name}`);
    } else {
      ip = freeAddress(subnet, c.IPRange ? parseCidr(c.IPRange) : subnet, used);
      if (ip === null) throw conflict(`no available IPv4 addresses on network ${n.Name}`);
    }
    this.db.prepare('INSERT INTO ip_allocations (network_id, ip, owner) VALUES (?, ?, ?)').run(n.Id, intToIp(ip), owner);
    return intToIp(ip);
  }

  /**
   * Wires a created (not yet started) container whose init is `pid`: per network a veth pair, the
   * address, the default route through the first non-internal network, then published ports.
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

  private async addEndpoint(n: NetworkRecord, c: Attachable, req: EndpointRequest, ns: Netns, ifname: string, route: boolean): Promise<Endpoint> {
    const ip = this.allocate(n, c.id, req.ipv4);
    const c0 = n.IPAM.Config[0]!;
    const prefix = parseCidr(c0.Subnet).prefix;
    const ep: Endpoint = {
      containerId: c.id, networkId: n.Id, names: n.isDefault ? [] : [c.name, ...req.aliases], ip, prefix, gateway: c0.Gateway,
      mac: req.mac ?? macOf(ipToInt(ip)), hostVeth: `vb${randomBytes(5).toString('hex')}`, ifname, endpointId: randomBytes(32).toString('hex'),
    };
    if ('name' in ns) ep.netns = ns.name;
    if (n.Driver !== 'bridge') return this.addRemoteEndpoint(n, ep, ns, route);
    this.db.prepare('INSERT INTO endpoints (container_id, network_id, doc) VALUES (?, ?, ?)').run(c.id, n.Id, JSON.stringify(ep));
    // one process, inside the container's namespace: the pair is made there and its host end sent out
    await ipBatch([
      `link add ${ifname} type veth peer name ${ep.hostVeth} netns ${process.pid}`,
      `link set dev ${ifname} address ${ep.mac}`,
      `addr add ${ip}/${prefix} dev ${ifname}`,
      `link set ${ifname} up`,
      ...(route ? [`route add default via ${ep.gateway}`] : []),
    ], nsArg(ns));
    plugIntoBridge(ep.hostVeth, n.bridge, this.mark); // the host end: syscalls, no process
    return ep;
  }

  /**
   * A plugin network's endpoint: the driver makes an interface on the host (CreateEndpoint, Join);
   * berth moves it into the container, names it, gives it the address and the route.
   */
  private async addRemoteEndpoint(n: NetworkRecord, ep: Endpoint, ns: Netns, route: boolean): Promise<Endpoint> {
    const driver = await this.drivers(n.Driver);
    if ('pid' in ns) ep.pid = ns.pid;
    ep.hostVeth = '';
    this.db.prepare('INSERT INTO endpoints (container_id, network_id, doc) VALUES (?, ?, ?)').run(ep.containerId, n.Id, JSON.stringify(ep));
    const j = await driver.join(n.Id, ep.endpointId, `${ep.ip}/${ep.prefix}`, ep.mac, nsPath(ns));
    const gw = j.gateway || ep.gateway;
    await ipBatch([`link set ${j.srcName} netns ${nsRef(ns)}`]);
    await ipBatch([
      `link set ${j.srcName} name ${ep.ifname}`,
      `link set dev ${ep.ifname} address ${ep.mac}`,
      `addr add ${ep.ip}/${ep.prefix} dev ${ep.ifname}`,
      `link set ${ep.ifname} up`,
      ...(route && gw ? [`route add default via ${gw.replace(/\/\d+$/, '')}`] : []),
    ], nsArg(ns));
    return ep;
  }

  /**
   * Undoes a container's wiring (idempotent): veths, addresses, port bindings. When its process
   * is gone the kernel removes the veth pairs with its namespace: nothing to run then.
   */
  async detach(containerId: string, networkId?: string, processGone = false): Promise<void> {
    const eps = this.endpoints({ containerId }).filter((e) => !networkId || e.networkId === networkId);
    const live = processGone ? [] : eps.filter((e) => e.hostVeth && existsSync(`/sys/class/net/${e.hostVeth}`));
    if (live.length) await ipQuiet(live.map((e) => `link del ${e.hostVeth}`));
    for (const e of eps) {
      const n = this.find(e.networkId);
      if (n && n.Driver !== 'bridge') await (await this.drivers(n.Driver)).leave(n.Id, e.endpointId).catch((err: unknown) => log.warn('network plugin leave failed', { network: n.Name, err: errorMessage(err) }));
    }
    this.db.transaction(() => {
      for (const e of eps) {
        this.db.prepare('DELETE FROM endpoints WHERE container_id = ? AND network_id = ?').run(containerId, e.networkId);
        this.db.prepare('DELETE FROM ip_allocations WHERE network_id = ? AND owner = ?').run(e.networkId, containerId);
      }
    })();
    if (!networkId) {
      const hadPorts = this.db.prepare('DELETE FROM port_bindings WHERE container_id = ?').run(containerId).changes > 0;
      if (hadPorts) await this.apply();
    }
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
    const eps = this.endpoints({ containerId: c.id });
    const ep = eps.find((e) => !this.get(e.networkId).Internal);
    if (!ep) throw invalidArgument('ports can only be published from a network that is not internal');
    for (const p of c.ports) {
      const hostIp = p.hostIp === '' || p.hostIp === '0.0.0.0' ? '0.0.0.0' : p.hostIp;
      if (hostIp !== '0.0.0.0') ipToInt(hostIp);
      const [lo, hi] = p.hostPort ? p.hostPort.split('-').map(Number) as [number, number?] : [EPHEMERAL.lo, EPHEMERAL.hi];
      const last = hi ?? lo;
      let bound: number | null = null;
      let lastErr = '';
      for (let port = lo; port <= last && bound === null; port++) {
        const taken = this.db.prepare("SELECT 1 FROM port_bindings WHERE proto = ? AND host_port = ? AND (host_ip = ? OR host_ip = '0.0.0.0' OR ? = '0.0.0.0')").get(p.proto, port, hostIp, hostIp);
        if (taken) {
          lastErr = 'port is already allocated';
          continue;
        }
        const free = await portFree(p.proto, hostIp, port);
        if (!free) {
          lastErr = 'address already in use';
          continue;
        }
        bound = port;
      }
      if (bound === null) throw conflict(`driver failed programming external connectivity on endpoint ${c.name}: Bind for ${hostIp}:${p.hostPort || 'any'} failed: ${lastErr || 'no free port'}`);
      const b: PortBinding = { proto: p.proto, hostIp, hostPort: bound, containerPort: p.containerPort, containerId: c.id, containerIp: ep.ip };
      this.db.prepare('INSERT INTO port_bindings (proto, host_ip, host_port, container_id, doc) VALUES (?, ?, ?, ?, ?)').run(b.proto, b.hostIp, b.hostPort, b.containerId, JSON.stringify(b));
    }
    await this.apply();
  }

  // --- the nftables table ----------------------------------------------------------------

  /** Renders the daemon's whole table from the state and swaps it in atomically. */
  /**
   * Rewrites the nftables table from the records. One at a time, each reading the records when its
   * turn comes: two concurrent rewrites (parallel `docker rm -f` of publishing containers) could
   * otherwise land out of order, the older one restoring a removed container's DNAT rule.
   */
  apply(): Promise<void> {
    const next = this.applying.catch(() => undefined).then(() => replaceTable(this.table, tableBody(this.list().filter((n) => n.Driver === 'bridge'), this.ports())));
    this.applying = next;
    return next;
  }

  // --- start and stop of the daemon ----------------------------------------------------------

  /**
   * At daemon start: the default network exists; every network's bridge is up; endpoints whose
   * container is gone (its veth died with its namespace) are released; links with this daemon's
   * mark that no record names are deleted; the nftables table is rebuilt.
   */
  async init(): Promise<void> {
    enableForwarding();
    if (!this.list().some((n) => n.isDefault)) await this.create({ Name: DEFAULT_NAME }, true);
    const present = new Map((await links()).map((l) => [l.ifname, l]));
    for (const ep of this.endpoints()) {
      const alive = ep.hostVeth ? present.has(ep.hostVeth) : ep.netns ? existsSync(`/run/netns/${ep.netns}`) : !!ep.pid && existsSync(`/proc/${ep.pid}`);
      if (!alive) await this.detach(ep.containerId, ep.networkId, true);
    }
    const live = new Set(this.endpoints().map((e) => e.containerId));
    for (const b of this.ports()) if (!live.has(b.containerId)) this.db.prepare('DELETE FROM port_bindings WHERE container_id = ?').run(b.containerId);
    const known = new Set([...this.list().map((n) => n.bridge), ...this.endpoints().map((e) => e.hostVeth)]);
    const stale = [...present.values()].filter((l) => l.ifalias === this.mark && !known.has(l.ifname)).map((l) => `link del ${l.ifname}`);
    if (stale.length) {
      log.info('removing network devices left by an earlier run', { count: stale.length });
      await ipQuiet(stale);
    }
    for (const n of this.list()) {
      if (n.Driver !== 'bridge') continue;
      // a record an older berth stored with a name that is no interface name is left down (and out of the table)
      if (!IFNAME_RE.test(n.bridge)) log.warn('network left down: its bridge name is not a valid interface name', { network: n.Name, bridge: n.bridge });
      else await this.bridgeUp(n);
    }
    await this.apply();
  }

  /** Names a restarted container had are served again; used by `init` callers after reconcile. */
  close(): void {
    for (const d of this.dns.values()) d.close();
    this.dns.clear();
  }

  /** Removes everything of this daemon from the host (tests, uninstall): table, bridges, veths. */
  async teardown(): Promise<void> {
    this.close();
    await deleteTable(this.table);
    const mine = (await links()).filter((l) => l.ifalias === this.mark).map((l) => `link del ${l.ifname}`);
    await ipQuiet(mine);
  }
}
