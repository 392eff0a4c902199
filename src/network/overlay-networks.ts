/**
 * An overlay network's record in the cluster store (overlay-catalog.ts has the layout): created
 * and removed cluster-wide by transactions guarded by the `catalog` key.
 */
import { conflict } from '../base/errors.js';
import type { ClusterStore } from '../cluster/store.js';
import { VNI_OPTION } from './overlay.js';
import { parseJson, pickVni, type EndpointDoc } from './overlay-docs.js';
import type { IpamConfig, NetworkRecord } from './records.js';

/**
 * Writes overlay network `rec` to the store. `plan(taken)` answers its IPv4 pool given every
 * subnet the cluster's networks hold; the VNI is the lowest free one (or the one asked in
 * Options). One transaction, guarded by the `catalog` key: two hosts creating at once cannot
 * both take a name, a VNI or a subnet. Answers the record as written.
 */
export async function createInStore(
  s: ClusterStore,
  rec: NetworkRecord,
  plan: (taken: Array<{ name: string; subnet: string }>) => IpamConfig,
): Promise<NetworkRecord> {
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
    if (res.succeeded) return out;
    // another host changed the catalog meanwhile: read again
  }
  throw conflict(`network ${rec.Name}: the cluster's catalog kept changing; try again`);
}

/** Removes the network's record from the store: refused while it has endpoints on any host. */
export async function removeFromStore(s: ClusterStore, n: NetworkRecord): Promise<void> {
  const guard = (await s.list('catalog')).entries[0]?.modRevision ?? 0;
  const use = (await s.list(`netuse/${n.Id}`)).entries[0]?.modRevision ?? 0;
  const eps = (await s.list(`endpoints/${n.Id}/`)).entries;
  if (eps.length) {
    const on = [...new Set(eps.map((e) => parseJson<EndpointDoc>(e.value)?.Vtep ?? '?'))].join(', ');
    throw conflict(`error while removing network: network ${n.Name} id ${n.Id} has active endpoints (on hosts ${on})`);
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
}
