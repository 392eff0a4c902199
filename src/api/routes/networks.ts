/** Network routes: list, inspect, create, remove, connect, disconnect, prune. */
import { conflict, invalidArgument } from '../../base/errors.js';
import type { Engine } from '../../engine/engine.js';
import { attachableOf, writeNetFiles } from '../../engine/net.js';
import type { NetworkRecord } from '../../network/manager.js';
import { parseNetworkConnect, parseNetworkCreate, parseNetworkDisconnect } from '../../spec/network-api.js';
import type { Router } from '../http.js';
import { labelsMatch, parseFilters } from '../filters.js';

export function networkView(engine: Engine, n: NetworkRecord, withContainers = true) {
  const containers: Record<string, unknown> = {};
  if (withContainers) {
    for (const e of engine.networks.endpoints({ networkId: n.Id })) {
      const rec = engine.store.find(e.containerId);
      containers[e.containerId] = { Name: rec?.name ?? '', EndpointID: e.endpointId, MacAddress: e.mac, IPv4Address: `${e.ip}/${e.prefix}`, IPv6Address: '' };
    }
  }
  return {
    Name: n.Name, Id: n.Id, Created: n.Created, Scope: n.Scope, Driver: n.Driver, EnableIPv6: n.EnableIPv6,
    IPAM: n.IPAM, Internal: n.Internal, Attachable: n.Attachable, Ingress: false, ConfigFrom: { Network: '' }, ConfigOnly: false,
    Containers: containers, // like dockerd: a user network's Options are the ones it was created with (compose compares them
    // to its file's and would recreate the network); the default bridge shows its bridge's name
    Options: n.isDefault ? { 'com.docker.network.bridge.name': n.bridge, ...n.Options } : n.Options, Labels: n.Labels,
  };
}

export function networkRoutes(r: Router, engine: Engine): void {
  const nets = engine.networks;
  /** Containers (any state) that name the network. */
  const users = (id: string) => engine.store.all().filter((c) => c.networks?.some(([nid]) => nid === id));

  r.on('GET', '/networks', (ctx) => {
    const f = parseFilters(ctx.query.get('filters'));
    let list = nets.list();
    const one = (k: string, pred: (n: NetworkRecord, v: string) => boolean) => {
      const vs = f[k];
      if (vs?.length) list = list.filter((n) => vs.some((v) => pred(n, v)));
    };
    one('name', (n, v) => n.Name.includes(v));
    one('id', (n, v) => n.Id.startsWith(v));
    one('driver', (n, v) => n.Driver === v);
    one('type', (n, v) => (v === 'builtin') === n.isDefault);
    one('dangling', (n, v) => (v === 'true' || v === '1') === (!n.isDefault && users(n.Id).length === 0));
    if (f['label']?.length) list = list.filter((n) => labelsMatch(f['label'], n.Labels));
    ctx.send(200, list.map((n) => networkView(engine, n, false)));
  });

  r.on('GET', '/networks/{id}', (ctx) => ctx.send(200, networkView(engine, nets.get(ctx.params[0]!))));

  r.on('POST', '/networks/create', async (ctx) => {
    const n = await nets.create(parseNetworkCreate(await ctx.json()));
    engine.events.emit('network', 'create', n.Id, { name: n.Name, type: n.Driver });
    ctx.send(201, { Id: n.Id, Warning: '' });
  });

  r.on('DELETE', '/networks/{id}', async (ctx) => {
    const n = nets.get(ctx.params[0]!);
    await nets.remove(n.Id);
    engine.events.emit('network', 'destroy', n.Id, { name: n.Name, type: n.Driver });
    ctx.send(204);
  });

  r.on('POST', '/networks/{id}/connect', async (ctx) => {
    const n = nets.get(ctx.params[0]!);
    const body = parseNetworkConnect(await ctx.json());
    const rec = engine.get(body.Container);
    const mode = rec.hostConfig.NetworkMode ?? '';
    if (mode === 'host' || mode === 'none' || mode.startsWith('container:')) throw invalidArgument(`container sharing network namespace with another container or host cannot be connected to any other network`);
    if (rec.networks?.some(([id]) => id === n.Id)) throw conflict(`endpoint with name ${rec.name} already exists in network ${n.Name}`);
    const s = body.EndpointConfig;
    const req = { aliases: [...(s.Aliases ?? [])], ...(s.IPAMConfig?.IPv4Address ? { ipv4: s.IPAMConfig.IPv4Address } : {}) };
    if (n.isDefault && (req.aliases.length || req.ipv4)) throw invalidArgument('network-scoped aliases and addresses are supported only on user defined networks');
    if (rec.state.status === 'running' && rec.state.pid) {
      const named = engine.namedNetns(rec);
      await nets.connectRunning(n, attachableOf(rec), req, named ? { name: named } : { pid: rec.state.pid });
      await writeNetFiles(nets, { ...rec, networks: [...(rec.networks ?? []), [n.Id, req]] }, engine.containerDir(rec.id));
    }
    rec.networks = [...(rec.networks ?? []), [n.Id, req]];
    engine.store.save(rec);
    engine.events.emit('network', 'connect', n.Id, { container: rec.id, name: n.Name, type: n.Driver });
    ctx.send(200);
  });

  r.on('POST', '/networks/{id}/disconnect', async (ctx) => {
    const n = nets.get(ctx.params[0]!);
    const body = parseNetworkDisconnect(await ctx.json());
    const rec = engine.get(body.Container);
    if (!rec.networks?.some(([id]) => id === n.Id)) throw invalidArgument(`container ${rec.name} is not connected to network ${n.Name}`);
    await nets.detach(rec.id, n.Id);
    rec.networks = rec.networks.filter(([id]) => id !== n.Id);
    engine.store.save(rec);
    if (rec.state.status === 'running') await writeNetFiles(nets, rec, engine.containerDir(rec.id));
    engine.events.emit('network', 'disconnect', n.Id, { container: rec.id, name: n.Name, type: n.Driver });
    ctx.send(200);
  });

  r.on('POST', '/networks/prune', async (ctx) => {
    const f = parseFilters(ctx.query.get('filters'));
    const deleted: string[] = [];
    for (const n of nets.list()) {
      if (n.isDefault || users(n.Id).length || nets.endpoints({ networkId: n.Id }).length) continue;
      if (f['label']?.length && !labelsMatch(f['label'], n.Labels)) continue;
      await nets.remove(n.Id);
      engine.events.emit('network', 'destroy', n.Id, { name: n.Name, type: n.Driver });
      deleted.push(n.Name);
    }
    ctx.send(200, { NetworksDeleted: deleted });
  });
}
