/**
 * Network verbs: list, inspect, create, remove, connect, disconnect, prune. Connecting a running
 * container wires its endpoint and rewrites its hosts files here, not in a front door; every
 * change is an event. NetworkManager (../network/) does the wiring.
 */
import { createHash } from 'node:crypto';
import { conflict, invalidArgument, notFound } from '../base/errors.js';
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

/** dockerd's answer to a filter it does not know. */
function checkKeys(f: Filters, known: readonly string[]): void {
  for (const k of Object.keys(f)) if (!known.includes(k)) throw invalidArgument(`Invalid filter '${k}'`);
}

/** `until`: a Unix time (seconds, fractions allowed), an RFC 3339 time, or a Go duration before `now`; in ms. */
function untilOf(v: string, now: number): number {
  if (/^\d+(\.\d+)?$/.test(v)) return Number(v) * 1000;
  const units: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1e3, m: 60e3, h: 3600e3 };
  const parts = [...v.matchAll(/(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g)];
  if (parts.length && parts.map((p) => p[0]).join('') === v)
    return now - parts.reduce((t, p) => t + Number(p[1]) * units[p[2]!]!, 0);
  const t = Date.parse(v);
  if (!Number.isNaN(t) && /^\d{4}-\d{2}-\d{2}/.test(v)) return t;
  throw invalidArgument(`failed to parse value as time or duration: "${v}"`);
}

export class NetworkVerbs {
  constructor(private readonly e: Engine) {}

  /** Containers (any state) that name the network. */
  private users(id: string): number {
    return this.e.store.all().filter((c) => c.networks?.some(([nid]) => nid === id)).length;
  }

  /** `docker network ls` with dockerd's filters (name, id, driver, type, dangling, label, scope), and its errors. */
  list(f: Filters): NetworkRecord[] {
    checkKeys(f, ['dangling', 'driver', 'id', 'label', 'name', 'scope', 'type']);
    for (const v of f['type'] ?? [])
      if (v !== 'builtin' && v !== 'custom') throw invalidArgument(`invalid filter: 'type'='${v}'`);
    for (const v of f['dangling'] ?? [])
      if (!['true', '1', 'false', '0'].includes(v))
        throw invalidArgument(`invalid value for filter 'dangling', must be "true" (or "1"), or "false" (or "0")`);
    let list = this.e.networks.list();
    const one = (k: string, pred: (n: NetworkRecord, v: string) => boolean) => {
      const vs = f[k];
      if (vs?.length) list = list.filter((n) => vs.some((v) => pred(n, v)));
    };
    one('name', (n, v) => n.Name.includes(v));
    one('id', (n, v) => n.Id.startsWith(v));
    one('driver', (n, v) => n.Driver === v);
    one('scope', (n, v) => n.Scope === v);
    const builtin = (n: NetworkRecord) => n.isDefault || !!n.predefined;
    one('type', (n, v) => (v === 'builtin') === builtin(n));
    one('dangling', (n, v) => (v === 'true' || v === '1') === (!builtin(n) && this.users(n.Id) === 0));
    if (f['label']?.length) list = list.filter((n) => labelsMatch(f['label'], n.Labels));
    return list;
  }

  /** `scope`: dockerd's query parameter (a local network is not found in another scope). */
  inspect(ref: string, scope = ''): NetworkFacts {
    const net = this.e.networks.get(ref);
    if (scope && scope !== net.Scope) throw notFound(`network ${ref} not found`);
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
    checkKeys(f, ['until', 'label', 'label!']);
    const until = f['until']?.length ? untilOf(f['until'].at(-1)!, this.e.clock.now()) : Infinity;
    const deleted: string[] = [];
    for (const n of this.e.networks.list()) {
      if (Date.parse(n.Created) >= until) continue;
      if (f['label!']?.length && f['label!'].some((l) => labelsMatch([l], n.Labels))) continue;
      if (n.isDefault || n.predefined || this.users(n.Id) || this.e.networks.endpoints({ networkId: n.Id }).length)
        continue;
      if (f['label']?.length && !labelsMatch(f['label'], n.Labels)) continue;
      try {
        await this.e.networks.remove(n.Id);
      } catch (e) {
        // an overlay network in use on another host (or etcd away) stays; other hosts' state is not ours to prune
        if (n.Scope === 'global') continue;
        throw e;
      }
      this.e.events.emit('network', 'destroy', n.Id, { name: n.Name, type: n.Driver });
      deleted.push(n.Name);
    }
    return deleted;
  }
}
