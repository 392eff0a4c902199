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
 * the next. Every host watches the keys and keeps a copy; from it the VXLAN devices learn the
 * remote endpoints (overlay.ts `setPeers`), the name servers answer names of remote containers,
 * and `network inspect` shows the peers. The networks are also cached in `<root>/cluster-networks.json`:
 * a daemon that starts while etcd is down brings its overlay networks up from there (running
 * containers keep their network), and new overlay operations fail with Unavailable until etcd answers.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { writeFileAtomicSync } from '../base/fs.js';
import { conflict, errorMessage, notFound } from '../base/errors.js';
import { log } from '../base/log.js';
import type { ClusterStore, Entry, HostDoc } from '../cluster/store.js';
import { devicesOf, VNI_OPTION, type OverlayDriver, type Peer } from './overlay.js';
import { cidrText, intToIp, overlaps, parseCidr, type Cidr } from './ipam.js';
import type { Endpoint, IpamConfig, NetworkRecord } from './records.js';
import { freeAddress, ipToInt, contains } from './ipam.js';
import type { NetworkSpec } from '../plugins/interfaces.js';

/** An endpoint as the store keeps it. */
export interface EndpointDoc {
  Ip: string;
  Mac: string;
  ContainerId: string;
  EndpointId: string;
  /** its container's name, then its aliases and hostname */
  Names: string[];
  /** the host it runs on, and that host's advertise address */
  Host: string;
  Vtep: string;
  /** claimed by a restore not yet announced: the other hosts do not send to it yet */
  Pending?: boolean;
}

/** A peer as `network inspect` shows it (dockerd's `Peers`). */
export interface PeerInfo {
  Name: string;
  IP: string;
}

const FIRST_VNI = 4097; // dockerd's overlay driver starts above 4096
const CLAIM_TRIES = 32;

/** The first 10.x.y.0/24 (dockerd's default overlay pool, 10.0.0.0/8 in /24s) that overlaps none of `taken`. */
export function pickOverlaySubnet(taken: readonly Cidr[]): string | null {
  for (let base = ipToInt('10.0.0.0'); base < ipToInt('11.0.0.0'); base += 256) {
    const c: Cidr = { base, prefix: 24 };
    if (!taken.some((t) => overlaps(t, c))) return cidrText(c);
  }
  return null;
}

/** The lowest VNI from 4097 not in `used`. */
export function pickVni(used: ReadonlySet<number>): number {
  let v = FIRST_VNI;
  while (used.has(v)) v++;
  return v;
}

/**
 * Whether a record read from the cluster store (or the cache) can be brought up: its id names its
 * devices and its subnet and gateway go into `ip` and `nft` scripts, so they must be what they say.
 * Anyone who can write to etcd controls the cluster's networks, but never a script's text.
 */
export function wellFormed(n: NetworkRecord, id: string): boolean {
  try {
    const c = n.IPAM?.Config?.[0];
    if (n.Id !== id || !/^[0-9a-f]{64}$/.test(id) || !c || typeof n.Name !== 'string') return false;
    const subnet = parseCidr(c.Subnet);
    return contains(subnet, ipToInt(c.Gateway)) && typeof n.Options === 'object' && n.Options !== null;
  } catch {
    return false;
  }
}

export const specOfOverlay = (n: NetworkRecord): NetworkSpec => {
  const c = n.IPAM.Config[0]!;
  return {
    id: n.Id,
    name: n.Name,
    pool: c.Subnet,
    gateway: `${c.Gateway}/${parseCidr(c.Subnet).prefix}`,
    options: n.Options,
    internal: n.Internal,
    isDefault: false,
  };
};

const parseJson = <T>(s: string): T | undefined => {
  try {
    return JSON.parse(s) as T;
  } catch {
    return undefined;
  }
};

export class OverlayCatalog {
  private readonly networks = new Map<string, NetworkRecord>();
  /** by key (`endpoints/<net>/<ip>`) */
  private readonly eps = new Map<string, EndpointDoc>();
  private readonly hosts = new Map<string, HostDoc>();
  /** the revision the copy was read at: older watch events are ignored */
  private revision = 0;
  /** endpoint keys being claimed now (a re-registration must not take them for stale ones) */
  private readonly claiming = new Set<string>();
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
  ) {}

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
    this.store.onLease.push(() => this.reRegister());
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
              .then(() => this.reRegister())
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
      await this.driver.setPeers(id, peers).catch((e: unknown) => log.warn('overlay peers', { err: errorMessage(e) }));
    }
  }

  private upIds(): string[] {
    return this.driver.upIds();
  }

  /** Waits for the reconciliation under way (tests, create). */
  async settled(): Promise<void> {
    await this.reconciling;
  }

  // --- networks ------------------------------------------------------------------------------

  /**
   * Creates overlay network `rec` cluster-wide. `plan(taken)` answers its IPv4 pool given every
   * subnet the cluster's networks hold; the VNI is the lowest free one (or the one asked in
   * Options). One transaction, guarded by the `catalog` key: two hosts creating at once cannot
   * both take a name, a VNI or a subnet. The network is up on this host when it returns.
   */
  async create(
    rec: NetworkRecord,
    plan: (taken: Array<{ name: string; subnet: string }>) => IpamConfig,
  ): Promise<NetworkRecord> {
    const s = this.store;
    for (let attempt = 0; attempt < 16; attempt++) {
      const guard = await s.list('catalog');
      const seen = guard.entries[0]?.modRevision ?? 0;
      const all = (await s.list('networks/')).entries
        .map((e) => parseJson<NetworkRecord>(e.value))
        .filter((n): n is NetworkRecord => !!n);
      if (all.some((n) => n.Name === rec.Name)) throw conflict(`network with name ${rec.Name} already exists`);
      const usedVni = new Set(all.map((n) => Number(n.Options[VNI_OPTION])));
      const asked = rec.Options[VNI_OPTION];
      if (asked !== undefined && usedVni.has(Number(asked)))
        throw conflict(`VXLAN id ${asked} is used by another overlay network`);
      const pool = plan(all.map((n) => ({ name: n.Name, subnet: n.IPAM.Config[0]!.Subnet })));
      const out: NetworkRecord = {
        ...rec,
        Options: { ...rec.Options, [VNI_OPTION]: asked ?? String(pickVni(usedVni)) },
        IPAM: { ...rec.IPAM, Config: [pool] },
      };
      const key = `/berth/v1/networks/${out.Id}`;
      const res = await s.call('create network', () =>
        s.client
          .if('/berth/v1/catalog', 'Mod', '==', seen)
          .then(s.client.put('/berth/v1/catalog').value(out.Id), s.client.put(key).value(JSON.stringify(out)))
          .commit(),
      );
      if (!res.succeeded) continue; // another host changed the catalog meanwhile: read again
      this.networks.set(out.Id, out);
      await this.driver.createNetwork(specOfOverlay(out)).catch((e: unknown) => {
        log.warn('overlay network not up on this host', { network: out.Name, err: errorMessage(e) });
      });
      this.schedule();
      return out;
    }
    throw conflict(`network ${rec.Name}: the cluster's catalog kept changing; try again`);
  }

  /** Removes the network cluster-wide: refused while it has endpoints on any host. */
  async remove(n: NetworkRecord): Promise<void> {
    const s = this.store;
    const guard = (await s.list('catalog')).entries[0]?.modRevision ?? 0;
    const use = (await s.list(`netuse/${n.Id}`)).entries[0]?.modRevision ?? 0;
    const eps = (await s.list(`endpoints/${n.Id}/`)).entries;
    if (eps.length) {
      const on = [...new Set(eps.map((e) => parseJson<EndpointDoc>(e.value)?.Vtep ?? '?'))].join(', ');
      throw conflict(
        `error while removing network: network ${n.Name} id ${n.Id} has active endpoints (on hosts ${on})`,
      );
    }
    const res = await s.call('remove network', () =>
      s.client
        .if('/berth/v1/catalog', 'Mod', '==', guard)
        .and(`/berth/v1/netuse/${n.Id}`, 'Mod', '==', use)
        .then(
          s.client.put('/berth/v1/catalog').value(n.Id),
          s.client.delete().key(`/berth/v1/networks/${n.Id}`),
          s.client.delete().key(`/berth/v1/netuse/${n.Id}`),
        )
        .commit(),
    );
    if (!res.succeeded)
      throw conflict(`network ${n.Name} changed while being removed (a container joined it?); try again`);
    this.networks.delete(n.Id);
    await this.driver.deleteNetwork(n.Id);
    this.schedule();
  }

  // --- endpoints ------------------------------------------------------------------------------

  /**
   * An address on overlay network `n` for an endpoint: `requested` (Conflict when taken), else the
   * lowest free one. The address key is created in one transaction with the endpoint's document
   * (`doc(ip)`), under this host's lease, only if no one has it and the network still exists.
   */
  async claim(n: NetworkRecord, requested: string | undefined, doc: (ip: string) => EndpointDoc): Promise<string> {
    const s = this.store;
    const c = n.IPAM.Config[0]!;
    const subnet = parseCidr(c.Subnet);
    const lease = s.leaseId(); // Unavailable before the host joined
    const tried = new Set<number>();
    for (let attempt = 0; attempt < CLAIM_TRIES; attempt++) {
      const taken = (await s.list(`endpoints/${n.Id}/`)).entries.map((e) => e.key.split('/').pop()!);
      const used = new Set([...taken, c.Gateway, ...Object.values(c.AuxiliaryAddresses ?? {})].map(ipToInt));
      for (const t of tried) used.add(t);
      let ip: number | null;
      if (requested) {
        ip = ipToInt(requested);
        if (!contains(subnet, ip))
          throw conflict(`invalid address ${requested}: not in network ${n.Name}'s subnet ${c.Subnet}`);
        if (used.has(ip)) throw conflict(`Address already in use: ${requested} on network ${n.Name}`);
      } else {
        ip = freeAddress(subnet, c.IPRange ? parseCidr(c.IPRange) : subnet, used);
        if (ip === null) throw conflict(`no available IPv4 addresses on network ${n.Name}`);
      }
      const text = intToIp(ip);
      const key = `endpoints/${n.Id}/${text}`;
      this.claiming.add(key);
      try {
        const res = await s.call('claim an address', () =>
          s.client
            .if(`/berth/v1/${key}`, 'Create', '==', 0)
            .and(`/berth/v1/networks/${n.Id}`, 'Version', '>', 0)
            .then(
              s.client
                .put(`/berth/v1/${key}`)
                .value(JSON.stringify(doc(text)))
                .lease(lease),
              s.client.put(`/berth/v1/netuse/${n.Id}`).value(randomBytes(4).toString('hex')),
            )
            .else(s.client.get(`/berth/v1/networks/${n.Id}`))
            .commit(),
        );
        if (res.succeeded) {
          this.eps.set(key, doc(text));
          return text;
        }
        const gone = res.responses[0]?.response_range?.kvs.length === 0;
        if (gone) throw notFound(`network ${n.Name} not found`);
        if (requested) throw conflict(`Address already in use: ${requested} on network ${n.Name}`);
        tried.add(ip); // another host took it between our read and our write: the next one
      } finally {
        this.claiming.delete(key);
      }
    }
    throw conflict(`no address could be claimed on network ${n.Name} after ${CLAIM_TRIES} tries`);
  }

  /**
   * Announces endpoints claimed with `Pending` (a restore whose process is back): the other hosts
   * start sending to them. Best effort, as `release`: a failure is logged, and the next
   * re-registration announces them.
   */
  async announce(eps: readonly Endpoint[]): Promise<void> {
    const s = this.store;
    for (const e of eps) {
      const key = `endpoints/${e.networkId}/${e.ip}`;
      try {
        const cur = (await s.list(key)).entries.find((x) => x.key === `/berth/v1/${key}`);
        const d = cur && parseJson<EndpointDoc>(cur.value);
        if (!cur || !d || d.ContainerId !== e.containerId || d.Host !== s.hostId || !d.Pending) continue;
        const { Pending: _, ...doc } = d;
        await s.call('announce an endpoint', () =>
          s.client
            .if(`/berth/v1/${key}`, 'Mod', '==', cur.modRevision)
            .then(s.client.put(`/berth/v1/${key}`).value(JSON.stringify(doc)).lease(s.leaseId()))
            .commit(),
        );
        this.eps.set(key, doc);
      } catch (err) {
        log.warn('overlay: endpoint not announced', { key, err: errorMessage(err) });
      }
    }
  }

  /** Gives an endpoint's address back (best effort: with etcd away, the next re-registration drops it). */
  async release(e: Endpoint): Promise<void> {
    const key = `endpoints/${e.networkId}/${e.ip}`;
    this.eps.delete(key);
    const s = this.store;
    try {
      const cur = (await s.list(key)).entries.find((x) => x.key === `/berth/v1/${key}`);
      const d = cur && parseJson<EndpointDoc>(cur.value);
      if (!cur || !d || d.ContainerId !== e.containerId || d.Host !== s.hostId) return;
      await s.call('release an address', () =>
        s.client
          .if(`/berth/v1/${key}`, 'Mod', '==', cur.modRevision)
          .then(s.client.delete().key(`/berth/v1/${key}`))
          .commit(),
      );
    } catch (err) {
      log.warn('overlay: address not released in the cluster store (dropped at the next re-registration)', {
        key,
        err: errorMessage(err),
      });
    }
  }

  /**
   * After every lease grant (daemon start, or the lease expired while etcd was away): this host's
   * running endpoints are put back under the new lease with the same addresses (Conflict logged
   * when another host took one meanwhile), and keys of this host that no endpoint holds go.
   */
  private async reRegister(): Promise<void> {
    const s = this.store;
    const lease = s.leaseId();
    const mine = new Map<string, Endpoint>();
    for (const e of this.local()) if (this.networks.has(e.networkId)) mine.set(`endpoints/${e.networkId}/${e.ip}`, e);
    const { entries } = await s.list('endpoints/');
    const now = new Map(entries.map((x) => [x.key.slice('/berth/v1/'.length), x]));
    for (const [key, e] of mine) {
      const cur = now.get(key);
      const d = cur && parseJson<EndpointDoc>(cur.value);
      if (d && d.ContainerId !== e.containerId) {
        log.error('overlay: an address of a running container was taken by another host while this one was away', {
          key,
          container: e.containerId,
          holder: d.Host,
        });
        continue;
      }
      const doc: EndpointDoc = {
        Ip: e.ip,
        Mac: e.mac,
        ContainerId: e.containerId,
        EndpointId: e.endpointId,
        Names: e.names,
        Host: s.hostId,
        Vtep: s.advertise,
        ...(d ? { Names: d.Names } : {}),
      };
      const cmp = cur
        ? s.client.if(`/berth/v1/${key}`, 'Mod', '==', cur.modRevision)
        : s.client.if(`/berth/v1/${key}`, 'Create', '==', 0);
      await s.call('re-register', () =>
        cmp.then(s.client.put(`/berth/v1/${key}`).value(JSON.stringify(doc)).lease(lease)).commit(),
      );
    }
    for (const [key, x] of now) {
      const d = parseJson<EndpointDoc>(x.value);
      if (!d || d.Host !== s.hostId || mine.has(key) || this.claiming.has(key)) continue;
      await s.call('drop a stale endpoint', () =>
        s.client.if(x.key, 'Mod', '==', x.modRevision).then(s.client.delete().key(x.key)).commit(),
      );
    }
    // an endpoint released while this ran (its container stopped) may have been put back above
    const still = new Set(this.local().map((e) => `endpoints/${e.networkId}/${e.ip}`));
    for (const key of mine.keys()) {
      if (still.has(key)) continue;
      const cur = (await s.list(key)).entries.find((x) => x.key === `/berth/v1/${key}`);
      const d = cur && parseJson<EndpointDoc>(cur.value);
      if (cur && d?.Host === s.hostId)
        await s.call('drop a released endpoint', () =>
          s.client.if(cur.key, 'Mod', '==', cur.modRevision).then(s.client.delete().key(cur.key)).commit(),
        );
    }
    log.info('overlay endpoints registered', { count: mine.size });
  }

  close(): void {
    this.closed = true;
  }
}
