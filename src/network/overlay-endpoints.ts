/**
 * An overlay endpoint's address key in the cluster store (overlay-catalog.ts has the layout):
 * claimed by a transaction (the lowest free address, or the one asked), announced after a restore,
 * released, and put back under a new lease by `reRegister`. Every change is mirrored in the
 * catalog's copy (`eps`), which the name servers and the VXLAN devices read.
 */
import { randomBytes } from 'node:crypto';
import { conflict, errorMessage, notFound } from '../base/errors.js';
import { log } from '../base/log.js';
import type { ClusterStore } from '../cluster/store.js';
import { contains, freeAddress, intToIp, ipToInt, parseCidr } from './ipam.js';
import { parseJson, type EndpointDoc } from './overlay-docs.js';
import type { Endpoint, NetworkRecord } from './records.js';

const CLAIM_TRIES = 32;

export class OverlayEndpoints {
  /** endpoint keys being claimed now (a re-registration must not take them for stale ones) */
  private readonly claiming = new Set<string>();

  /**
   * `eps`: the catalog's copy of the endpoint keys (by `endpoints/<net>/<ip>`); `known`: whether a
   * network is in the catalog; `local`: this host's endpoints (SQLite).
   */
  constructor(
    private readonly store: ClusterStore,
    private readonly eps: Map<string, EndpointDoc>,
    private readonly known: (networkId: string) => boolean,
    private readonly local: () => Endpoint[],
  ) {}

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
  announce(eps: readonly Endpoint[]): Promise<void> {
    return this.rewriteOwn(eps, 'announce an endpoint', 'overlay: endpoint not announced', (d) => {
      if (!d.Pending) return null;
      const { Pending: _, ...doc } = d;
      return doc;
    });
  }

  /**
   * A container of this host was renamed: its endpoints' documents name it by `newName` instead
   * of `oldName`, so the other hosts' name servers answer the new name (and no longer the old).
   * Best effort, as `release`: with etcd away it is logged, and the name stays old elsewhere.
   */
  rename(eps: readonly Endpoint[], oldName: string, newName: string): Promise<void> {
    return this.rewriteOwn(eps, 'rename an endpoint', 'overlay: a rename not published to the other hosts', (d) => ({
      ...d,
      Names: [newName, ...d.Names.filter((n) => n !== oldName && n !== newName)],
    }));
  }

  /**
   * Rewrites this host's own documents of `eps` by `change` (null leaves one as it is), each by a
   * compare-and-swap on its revision, under the host's lease. A document another host or container
   * holds now is left alone; a failure is logged with `failed` and the others go on.
   */
  private async rewriteOwn(
    eps: readonly Endpoint[],
    what: string,
    failed: string,
    change: (d: EndpointDoc) => EndpointDoc | null,
  ): Promise<void> {
    const s = this.store;
    for (const e of eps) {
      const key = `endpoints/${e.networkId}/${e.ip}`;
      try {
        const cur = (await s.list(key)).entries.find((x) => x.key === `/berth/v1/${key}`);
        const d = cur && parseJson<EndpointDoc>(cur.value);
        if (!cur || !d || d.ContainerId !== e.containerId || d.Host !== s.hostId) continue;
        const doc = change(d);
        if (!doc) continue;
        const res = await s.call(what, () =>
          s.client
            .if(`/berth/v1/${key}`, 'Mod', '==', cur.modRevision)
            .then(s.client.put(`/berth/v1/${key}`).value(JSON.stringify(doc)).lease(s.leaseId()))
            .commit(),
        );
        if (res.succeeded) this.eps.set(key, doc);
      } catch (err) {
        log.warn(failed, { key, err: errorMessage(err) });
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
  async reRegister(): Promise<void> {
    const s = this.store;
    const lease = s.leaseId();
    const mine = new Map<string, Endpoint>();
    for (const e of this.local()) if (this.known(e.networkId)) mine.set(`endpoints/${e.networkId}/${e.ip}`, e);
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
}
