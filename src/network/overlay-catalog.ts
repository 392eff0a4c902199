/**
 * Overlay networks' state in the cluster store (../cluster/), shared by every joined berthd:
 *
 *   catalog                      guard: every network create/remove changes it in the same transaction
 *   networks/<id>                the NetworkRecord (Scope `global`, the VNI in its Options)
 *   endpoints/<id>/<ip>          an endpoint (EndpointDoc), under its host's lease: the address key
 *   netuse/<id>                  touched by every endpoint claim (a remove that raced a claim fails)
 *   hosts/<host id>              a joined host (cluster/store.ts), under its lease
 *
 * An address is handed out by a transaction that creates `endpoints/<id>/<ip>` only if it does
 * not exist (and the network does): two hosts racing for one address, one wins, the other takes
 * the next (overlay-endpoints.ts; the networks' transactions are overlay-networks.ts, the records'
 * checks overlay-docs.ts). This file keeps the copy and the host in line with it. Every host watches the keys and keeps a copy; from it the VXLAN devices learn the
 * remote endpoints (overlay.ts `setPeers`), the name servers answer names of remote containers,
 * and `network inspect` shows the peers. The networks are also cached in `<root>/cluster-networks.json`:
 * a daemon that starts while etcd is down brings its overlay networks up from there (running
 * containers keep their network), and new overlay operations fail with Unavailable until etcd answers.
 */
import { readFileSync } from 'node:fs';
import { writeFileAtomicSync } from '../base/fs.js';
import { errorMessage } from '../base/errors.js';
import { log } from '../base/log.js';
import type { ClusterStore, Entry, HostDoc } from '../cluster/store.js';
import { devicesOf, type OverlayDriver, type Peer } from './overlay.js';
import { parseCidr } from './ipam.js';
import type { Endpoint, IpamConfig, NetworkRecord } from './records.js';
import { parseJson, specOfOverlay, wellFormed, type EndpointDoc, type PeerInfo } from './overlay-docs.js';
import { OverlayEndpoints } from './overlay-endpoints.js';
import { createInStore, removeFromStore } from './overlay-networks.js';

export {
  pickOverlaySubnet,
  pickVni,
  specOfOverlay,
  wellFormed,
  type EndpointDoc,
  type PeerInfo,
} from './overlay-docs.js';

export class OverlayCatalog {
  private readonly networks = new Map<string, NetworkRecord>();
  /** by key (`endpoints/<net>/<ip>`) */
  private readonly eps = new Map<string, EndpointDoc>();
  private readonly hosts = new Map<string, HostDoc>();
  /** the revision the copy was read at: older watch events are ignored */
  private revision = 0;
  /** the endpoint keys: claims, announcements, releases, re-registration */
  private readonly endpoints: OverlayEndpoints;
  private reconciling: Promise<void> = Promise.resolve();
  private pending = false;
  private connected = false;
  private closed = false;

  /**
   * `local()`: this host's endpoints (SQLite), to re-register them; `cacheFile`: where the
   * networks are cached for a start without etcd.
   */
  constructor(
    readonly store: ClusterStore,
    readonly driver: OverlayDriver,
    private readonly cacheFile: string,
    private readonly local: () => Endpoint[],
  ) {
    this.endpoints = new OverlayEndpoints(store, this.eps, (id) => this.networks.has(id), local);
  }

  /** The overlay networks as last read (with the hosts that have endpoints on each, `peers`). */
  records(): NetworkRecord[] {
    return [...this.networks.values()].map((n) => ({ ...n, peers: this.peers(n.Id) }));
  }

  private peers(id: string): PeerInfo[] {
    const out = new Map<string, PeerInfo>();
    for (const [key, d] of this.eps)
      if (key.startsWith(`endpoints/${id}/`))
        out.set(d.Host, { Name: this.hosts.get(d.Host)?.Name ?? d.Host.slice(0, 12), IP: d.Vtep });
    return [...out.values()].sort((a, b) => a.IP.localeCompare(b.IP));
  }

  /** The endpoints on other hosts, as the name server reads endpoints. */
  remoteEndpoints(): Endpoint[] {
    const out: Endpoint[] = [];
    for (const [key, d] of this.eps) {
      if (d.Host === this.store.hostId) continue;
      const netId = key.split('/')[1]!;
      const n = this.networks.get(netId);
      if (!n) continue;
      const c = n.IPAM.Config[0]!;
      out.push({
        containerId: d.ContainerId,
        networkId: netId,
        names: d.Names,
        ip: d.Ip,
        prefix: parseCidr(c.Subnet).prefix,
        gateway: c.Gateway,
        mac: d.Mac,
        hostVeth: '',
        ifname: '',
        endpointId: d.EndpointId,
      });
    }
    return out;
  }

  /** The VXLAN devices to keep at daemon start. */
  devices(): string[] {
    return this.driver.devices();
  }

  // --- start ---------------------------------------------------------------------------------

  /**
   * At daemon start: the cached networks up again (before the bridge driver's reconciliation, so
   * their devices stay), then membership and the watch start in the background.
   */
  async init(): Promise<void> {
    const cached = parseJson<NetworkRecord[]>(this.readCache()) ?? [];
    for (const n of Array.isArray(cached) ? cached.filter((x) => wellFormed(x, x?.Id)) : []) {
      this.networks.set(n.Id, n);
      await this.driver
        .restoreNetwork({ ...specOfOverlay(n), device: devicesOf(n.Id).bridge })
        .catch((e: unknown) => log.warn('overlay network not restored', { network: n.Name, err: errorMessage(e) }));
    }
    this.store.onLease.push(() => this.endpoints.reRegister());
    this.store.start();
    void this.connect();
  }

  private readCache(): string {
    try {
      return readFileSync(this.cacheFile, 'utf8');
    } catch {
      return '[]';
    }
  }

  /** Reads everything and starts the watch; retried every second until etcd answers. */
  private async connect(): Promise<void> {
    while (!this.closed && !this.connected) {
      try {
        const rev = await this.reload();
        await this.store.watch(
          '',
          rev,
          (kind, e) => this.onEvent(kind, e),
          // back after etcd was away: the copy read again, and this host's keys brought in line (a
          // release that failed meanwhile left a key of a container that is gone)
          () =>
            void this.reload()
              .then(() => this.endpoints.reRegister())
              .catch((err: unknown) => log.warn('overlay resync', { err: errorMessage(err) })),
        );
        this.connected = true;
      } catch (e) {
        log.debug('overlay: cluster store not reachable yet', { err: errorMessage(e) });
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
  }

  /** Replaces the copy by what etcd has now; answers the revision it was read at. */
  private async reload(): Promise<number> {
    const { entries, revision } = await this.store.list('');
    this.networks.clear();
    this.eps.clear();
    this.hosts.clear();
    this.revision = revision;
    for (const e of entries) this.apply('put', e);
    this.schedule();
    return revision;
  }

  private onEvent(kind: 'put' | 'delete', e: Entry): void {
    if (e.modRevision <= this.revision) return;
    this.apply(kind, e);
    this.schedule();
  }

  private apply(kind: 'put' | 'delete', e: Entry): void {
    const key = e.key.slice('/berth/v1/'.length);
    const [kindOf, id] = key.split('/');
    if (kindOf === 'networks' && id) {
      const n = kind === 'put' ? parseJson<NetworkRecord>(e.value) : undefined;
      if (n && !wellFormed(n, id)) {
        log.warn('overlay: a network record in the cluster store is not well formed; ignored', { key });
        this.networks.delete(id);
      } else if (n) this.networks.set(id, n);
      else this.networks.delete(id);
    } else if (kindOf === 'endpoints') {
      const d = kind === 'put' ? parseJson<EndpointDoc>(e.value) : undefined;
      if (d) this.eps.set(key, d);
      else this.eps.delete(key);
    } else if (kindOf === 'hosts' && id) {
      const h = kind === 'put' ? parseJson<HostDoc>(e.value) : undefined;
      if (h) this.hosts.set(id, h);
      else this.hosts.delete(id);
    }
  }

  /** Brings the host in line with the copy (coalesced: one run at a time, one more if asked meanwhile). */
  private schedule(): void {
    if (this.pending) return;
    this.pending = true;
    this.reconciling = this.reconciling
      .catch(() => undefined)
      .then(async () => {
        this.pending = false;
        await this.reconcile();
      })
      .catch((e: unknown) => log.warn('overlay reconcile', { err: errorMessage(e) }));
  }

  /** Networks up or down as the catalog says, the cache written, every VXLAN told its peers. */
  private async reconcile(): Promise<void> {
    for (const n of this.networks.values()) {
      if (this.driver.isUp(n.Id)) continue;
      await this.driver
        .createNetwork(specOfOverlay(n))
        .catch((e: unknown) =>
          log.warn('overlay network not up on this host', { network: n.Name, err: errorMessage(e) }),
        );
    }
    const local = this.local();
    for (const id of this.upIds()) {
      if (this.networks.has(id)) continue;
      if (local.some((e) => e.networkId === id)) continue; // removed elsewhere while ours run: kept
      await this.driver.deleteNetwork(id).catch(() => undefined);
    }
    writeFileAtomicSync(this.cacheFile, JSON.stringify([...this.networks.values()]));
    for (const id of this.networks.keys()) {
      const peers: Peer[] = [];
      for (const [key, d] of this.eps)
        if (key.startsWith(`endpoints/${id}/`) && d.Host !== this.store.hostId && !d.Pending)
          peers.push({ ip: d.Ip, mac: d.Mac, vtep: d.Vtep });
      const mine = local
        .filter((e) => e.networkId === id && e.hostVeth)
        .map((e) => ({ ip: e.ip, mac: e.mac, veth: e.hostVeth }));
      await this.driver
        .setPeers(id, peers, mine)
        .catch((e: unknown) => log.warn('overlay peers', { err: errorMessage(e) }));
    }
  }

  private upIds(): string[] {
    return this.driver.upIds();
  }

  /** Waits for the reconciliation under way (tests, create). */
  async settled(): Promise<void> {
    await this.reconciling;
  }

  // --- networks (overlay-networks.ts) --------------------------------------------------------

  /**
   * Creates overlay network `rec` cluster-wide (`createInStore`: the pool from `plan`, the VNI,
   * one guarded transaction). The network is up on this host when it returns.
   */
  async create(
    rec: NetworkRecord,
    plan: (taken: Array<{ name: string; subnet: string }>) => IpamConfig,
  ): Promise<NetworkRecord> {
    const out = await createInStore(this.store, rec, plan);
    this.networks.set(out.Id, out);
    await this.driver.createNetwork(specOfOverlay(out)).catch((e: unknown) => {
      log.warn('overlay network not up on this host', { network: out.Name, err: errorMessage(e) });
    });
    this.schedule();
    return out;
  }

  /** Removes the network cluster-wide: refused while it has endpoints on any host. */
  async remove(n: NetworkRecord): Promise<void> {
    await removeFromStore(this.store, n);
    this.networks.delete(n.Id);
    await this.driver.deleteNetwork(n.Id);
    this.schedule();
  }

  // --- endpoints (overlay-endpoints.ts) -------------------------------------------------------

  claim(n: NetworkRecord, requested: string | undefined, doc: (ip: string) => EndpointDoc): Promise<string> {
    return this.endpoints.claim(n, requested, doc);
  }

  announce(eps: readonly Endpoint[]): Promise<void> {
    return this.endpoints.announce(eps);
  }

  release(e: Endpoint): Promise<void> {
    return this.endpoints.release(e);
  }

  rename(eps: readonly Endpoint[], oldName: string, newName: string): Promise<void> {
    return this.endpoints.rename(eps, oldName, newName);
  }

  close(): void {
    this.closed = true;
  }
}
