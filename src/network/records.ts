/**
 * Network state in SQLite: the records (`networks`), a container's endpoints while it runs
 * (`endpoints`); the address allocations (`ip_allocations`, allocator.ts) and the published ports
 * (`port_bindings`, ports.ts) are tables of the same schema. The host side is derived from these.
 */
import type { Db } from '../metadata/db.js';
import { migrate } from '../metadata/db.js';
import { invalidArgument, notFound } from '../base/errors.js';

// (one migration: its text is the schema berth.db files were made with)
const MIGRATIONS = [
  [
    'CREATE TABLE networks (id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, doc TEXT NOT NULL);',
    '   CREATE TABLE ip_allocations (network_id TEXT NOT NULL, ip TEXT NOT NULL, owner TEXT NOT NULL, ' +
      'PRIMARY KEY (network_id, ip));',
    '   CREATE TABLE endpoints (container_id TEXT NOT NULL, network_id TEXT NOT NULL, doc TEXT NOT NULL, ' +
      'PRIMARY KEY (container_id, network_id));',
    '   CREATE TABLE port_bindings (proto TEXT NOT NULL, host_ip TEXT NOT NULL, host_port INTEGER NOT NULL, ' +
      'container_id TEXT NOT NULL, doc TEXT NOT NULL, PRIMARY KEY (proto, host_ip, host_port))',
  ].join('\n'),
];

/** One subnet of a network (IPv4 first; an IPv6 one after it). */
export interface IpamConfig {
  Subnet: string;
  Gateway: string;
  IPRange?: string;
  /** addresses the IPAM must not hand out (dockerd's `--aux-address`) */
  AuxiliaryAddresses?: Record<string, string>;
  /** the subnet was asked for and the gateway not (dockerd then shows no Gateway) */
  gatewayChosen?: boolean;
}

export interface NetworkRecord {
  Id: string;
  Name: string;
  Driver: string;
  /** `global`: an overlay network, kept in the cluster store and seen by every joined host */
  Scope: 'local' | 'global';
  Created: string;
  Internal: boolean;
  Attachable: boolean;
  EnableIPv6: boolean;
  Labels: Record<string, string>;
  Options: Record<string, string>;
  /** `Options` as given, null when none were (as dockerd shows it) */
  IPAM: { Driver: string; Options: Record<string, string> | null; Config: IpamConfig[] };
  /** the host device its driver made (a bridge's name; '' for plugin networks) */
  bridge: string;
  /** the default `bridge` network: no name service, Docker's behaviour */
  isDefault: boolean;
  /** `host` and `none` (drivers `host`, `null`): dockerd's pre-defined networks, no subnet, no endpoints */
  predefined?: boolean;
  /** an overlay network's hosts with endpoints on it (dockerd's `Peers`), computed when read */
  peers?: Array<{ Name: string; IP: string }>;
}

export interface Endpoint {
  containerId: string;
  networkId: string;
  /** the container's name and the aliases it is known by on this network */
  names: string[];
  ip: string;
  prefix: number;
  gateway: string;
  /** its IPv6 address, prefix and gateway, on a network with `EnableIPv6` and an IPv6 subnet */
  ip6?: string;
  prefix6?: number;
  gateway6?: string;
  /** EndpointSettings.Links of this endpoint (`name:alias`), resolved for this container only */
  links?: string[];
  /** IPAMConfig.LinkLocalIPs, added to its interface */
  linkLocal?: string[];
  /** EndpointSettings.DriverOpts, given to its driver */
  driverOpts?: Record<string, string>;
  mac: string;
  /** the host interface its driver made for it (a bridge port), '' when none */
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

/** What a container asks of one network (from --network, --ip, --network-alias, connect). */
export interface EndpointRequest {
  aliases: string[];
  ipv4?: string;
  ipv6?: string;
  mac?: string;
  /** EndpointSettings.Links (`name:alias`): names only this container resolves, on this network */
  links?: string[];
  driverOpts?: Record<string, string>;
  /** IPAMConfig.LinkLocalIPs: extra addresses on its interface */
  linkLocalIPs?: string[];
}

/** A port a container publishes: `80/tcp` -> a host binding ('' host port: any free one). */
export interface PortRequest {
  proto: 'tcp' | 'udp';
  containerPort: number;
  hostIp: string;
  hostPort: string;
}

/** The engine's view of a container for wiring it. */
export interface Attachable {
  id: string;
  name: string;
  /** network id -> request, in attach order */
  networks: Array<[string, EndpointRequest]>;
  ports: PortRequest[];
  /**
   * A restore: its overlay endpoints are claimed but not announced to the other hosts until
   * `NetworkManager.announce` (after the process and its sockets are back), so no peer sends a
   * restored TCP connection's packets to a namespace that has no socket for them yet (a RST).
   */
  holdPeers?: boolean;
}

const docs = <T>(rows: unknown): T[] => (rows as Array<{ doc: string }>).map((r) => JSON.parse(r.doc) as T);

/** A network of `all` by full id, then name, then unique id prefix. */
export function findIn(all: readonly NetworkRecord[], ref: string): NetworkRecord | undefined {
  const exact = all.find((n) => n.Id === ref) ?? all.find((n) => n.Name === ref);
  if (exact) return exact;
  const byPrefix = /^[0-9a-f]+$/.test(ref) ? all.filter((n) => n.Id.startsWith(ref)) : [];
  if (byPrefix.length > 1) {
    throw invalidArgument(`network ${ref} is ambiguous (${byPrefix.length} matches found based on ID prefix)`);
  }
  return byPrefix[0];
}

/** The `networks` and `endpoints` tables. The constructor brings the schema up to date. */
export class NetworkStore {
  constructor(readonly db: Db) {
    migrate(db, 'network', MIGRATIONS);
  }

  list(): NetworkRecord[] {
    return docs<NetworkRecord>(this.db.prepare('SELECT doc FROM networks ORDER BY name').all());
  }

  /** By full id, then name, then unique id prefix. */
  find(ref: string): NetworkRecord | undefined {
    return findIn(this.list(), ref);
  }

  get(ref: string): NetworkRecord {
    const n = this.find(ref);
    if (!n) throw notFound(`network ${ref} not found`);
    return n;
  }

  insert(n: NetworkRecord): void {
    this.db.prepare('INSERT INTO networks (id, name, doc) VALUES (?, ?, ?)').run(n.Id, n.Name, JSON.stringify(n));
  }

  /** Drops the record and its address allocations, in one transaction. */
  delete(id: string): void {
    this.db.transaction(() => {
      this.db.prepare('DELETE FROM networks WHERE id = ?').run(id);
      this.db.prepare('DELETE FROM ip_allocations WHERE network_id = ?').run(id);
    })();
  }

  endpoints(filter: { containerId?: string; networkId?: string } = {}): Endpoint[] {
    if (filter.containerId) {
      return docs(this.db.prepare('SELECT doc FROM endpoints WHERE container_id = ?').all(filter.containerId));
    }
    if (filter.networkId)
      return docs(this.db.prepare('SELECT doc FROM endpoints WHERE network_id = ?').all(filter.networkId));
    return docs(this.db.prepare('SELECT doc FROM endpoints').all());
  }

  /** A new endpoint (one per container and network: a second one is refused by the key). */
  insertEndpoint(ep: Endpoint): void {
    this.db
      .prepare('INSERT INTO endpoints (container_id, network_id, doc) VALUES (?, ?, ?)')
      .run(ep.containerId, ep.networkId, JSON.stringify(ep));
  }

  /** The same endpoint again, with what its driver answered. */
  updateEndpoint(ep: Endpoint): void {
    this.db
      .prepare('UPDATE endpoints SET doc = ? WHERE container_id = ? AND network_id = ?')
      .run(JSON.stringify(ep), ep.containerId, ep.networkId);
  }

  /** Drops a container's endpoints on `networkIds` and the addresses they held, in one transaction. */
  deleteEndpoints(containerId: string, networkIds: readonly string[]): void {
    this.db.transaction(() => {
      for (const id of networkIds) {
        this.db.prepare('DELETE FROM endpoints WHERE container_id = ? AND network_id = ?').run(containerId, id);
        this.db.prepare('DELETE FROM ip_allocations WHERE network_id = ? AND owner = ?').run(id, containerId);
      }
    })();
  }
}
