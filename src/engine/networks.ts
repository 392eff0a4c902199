/**
 * Network verbs: list, inspect, create, remove, connect, disconnect, prune. Connecting a running
 * container wires its endpoint and rewrites its hosts files here, not in a front door; every
 * change is an event. NetworkManager (../network/) does the wiring.
 */
import { createHash } from 'node:crypto';
import { conflict, invalidArgument } from '../base/errors.js';
import { parseNetworkConnect, parseNetworkCreate, parseNetworkDisconnect } from '../spec/network-api.js';
import type { Endpoint, NetworkRecord } from './container-facts.js';
import type { Filters } from './filters.js';
import { labelsMatch } from './filters.js';
import { attachableOf, checkRequest, requestOf, writeNetFiles } from './net.js';
import type { Engine } from './engine.js';

export type { Endpoint, NetworkRecord };

/** A network with the containers on it (name and endpoint), for inspect. */
export interface NetworkFacts {
  net: NetworkRecord;
  endpoints: Array<{ endpoint: Endpoint; name: string }>;
}

export class NetworkVerbs {
  constructor(private readonly e: Engine) {}

  /** Containers (any state) that name the network. */
  private users(id: string): number {
    return this.e.store.all().filter((c) => c.networks?.some(([nid]) => nid === id)).length;
  }

  /** `docker network ls` with dockerd's filters (name, id, driver, type, dangling, label). */
  list(f: Filters): NetworkRecord[] {
    let list = this.e.networks.list();
    const one = (k: string, pred: (n: NetworkRecord, v: string) => boolean) => {
      const vs = f[k];
      if (vs?.length) list = list.filter((n) => vs.some((v) => pred(n, v)));
    };
    one('name', (n, v) => n.Name.includes(v));
    one('id', (n, v) => n.Id.startsWith(v));
    one('driver', (n, v) => n.Driver === v);
    const builtin = (n: NetworkRecord) => n.isDefault || !!n.predefined;
    one('type', (n, v) => (v === 'builtin') === builtin(n));
    one('dangling', (n, v) => (v === 'true' || v === '1') === (!builtin(n) && this.users(n.Id) === 0));
    if (f['label']?.length) list = list.filter((n) => labelsMatch(f['label'], n.Labels));
    return list;
  }

  inspect(ref: string): NetworkFacts {
    const net = this.e.networks.get(ref);
    if (net.predefined) {
      // dockerd lists the running containers of `--network host`/`none` here, with no addresses
      const endpoints = this.e.store
        .all()
        .filter(
          (c) => c.hostConfig.NetworkMode === net.Name && (c.state.status === 'running' || c.state.status === 'paused'),
        )
        .map((c) => ({
          name: c.name,
          endpoint: {
            containerId: c.id,
            networkId: net.Id,
            names: [],
            ip: '',
            prefix: 0,
            gateway: '',
            mac: '',
            hostVeth: '',
            ifname: '',
            endpointId: createHash('sha256').update(`${net.Id}/${c.id}`).digest('hex'),
          },
        }));
      return { net, endpoints };
    }
    const endpoints = this.e.networks
      .endpoints({ networkId: net.Id })
      .map((endpoint) => ({ endpoint, name: this.e.store.find(endpoint.containerId)?.name ?? '' }));
    return { net, endpoints };
  }

  async create(body: unknown): Promise<NetworkRecord> {
    const n = await this.e.networks.create(parseNetworkCreate(body));
    this.e.events.emit('network', 'create', n.Id, { name: n.Name, type: n.Driver });
    return n;
  }

  async remove(ref: string): Promise<void> {
    const n = this.e.networks.get(ref);
    await this.e.networks.remove(n.Id);
    this.e.events.emit('network', 'destroy', n.Id, { name: n.Name, type: n.Driver });
  }

  /**
   * `docker network connect`: a running container is wired now (its hosts files rewritten), any
   * other at its next start; the record keeps the network either way. `body` reads the request
   * (after the network is found: a missing one is 404 whatever the body).
   */
  async connect(ref: string, body: () => Promise<unknown>): Promise<void> {
    const n = this.e.networks.get(ref);
    const req0 = parseNetworkConnect(await body());
    const rec = this.e.get(req0.Container);
    const mode = rec.hostConfig.NetworkMode ?? '';
    // dockerd's words (daemon/container_operations.go)
    if (n.predefined && n.Driver === 'host')
      throw invalidArgument('container cannot be disconnected from host network or connected to host network');
    if (n.predefined)
      throw invalidArgument(
        'container cannot be connected to multiple networks with one of the networks in private (none) mode',
      );
    if (mode === 'host' || mode === 'none' || mode.startsWith('container:'))
      throw invalidArgument(
        `container sharing network namespace with another container or host cannot be connected to any other network`,
      );
    if (rec.networks?.some(([id]) => id === n.Id))
      throw conflict(`endpoint with name ${rec.name} already exists in network ${n.Name}`);
    const req = requestOf(req0.EndpointConfig);
    checkRequest(n, req);
    if (rec.state.status === 'running' && rec.state.pid) {
      const named = this.e.namedNetns(rec);
      await this.e.networks.connectRunning(n, attachableOf(rec), req, named ? { name: named } : { pid: rec.state.pid });
      await writeNetFiles(
        this.e.networks,
        { ...rec, networks: [...(rec.networks ?? []), [n.Id, req]] },
        this.e.containerDir(rec.id),
      );
    }
    rec.networks = [...(rec.networks ?? []), [n.Id, req]];
    this.e.store.save(rec);
    this.e.events.emit('network', 'connect', n.Id, { container: rec.id, name: n.Name, type: n.Driver });
  }

  async disconnect(ref: string, body: () => Promise<unknown>): Promise<void> {
    const n = this.e.networks.get(ref);
    const req = parseNetworkDisconnect(await body());
    const rec = this.e.get(req.Container);
    if (n.predefined && n.Driver === 'host')
      throw invalidArgument('container cannot be disconnected from host network or connected to host network');
    if (n.predefined && rec.hostConfig.NetworkMode === n.Name) {
      // dockerd answers 200 for a `--network none` container (it has no endpoint to take away here)
      this.e.events.emit('network', 'disconnect', n.Id, { container: rec.id, name: n.Name, type: n.Driver });
      return;
    }
    if (!rec.networks?.some(([id]) => id === n.Id))
      throw invalidArgument(`container ${rec.name} is not connected to network ${n.Name}`);
    await this.e.networks.detach(rec.id, n.Id);
    rec.networks = rec.networks.filter(([id]) => id !== n.Id);
    this.e.store.save(rec);
    if (rec.state.status === 'running') await writeNetFiles(this.e.networks, rec, this.e.containerDir(rec.id));
    this.e.events.emit('network', 'disconnect', n.Id, { container: rec.id, name: n.Name, type: n.Driver });
  }

  /** Removes the user networks nothing names or uses (matching `label` filters); returns their names. */
  async prune(f: Filters): Promise<string[]> {
    const deleted: string[] = [];
    for (const n of this.e.networks.list()) {
      if (n.isDefault || n.predefined || this.users(n.Id) || this.e.networks.endpoints({ networkId: n.Id }).length)
        continue;
      if (f['label']?.length && !labelsMatch(f['label'], n.Labels)) continue;
      await this.e.networks.remove(n.Id);
      this.e.events.emit('network', 'destroy', n.Id, { name: n.Name, type: n.Driver });
      deleted.push(n.Name);
    }
    return deleted;
  }
}
