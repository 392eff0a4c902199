/** Network routes: list, inspect, create, remove, connect, disconnect, prune. */
import type { NetworkFacts, NetworkRecord, NetworkVerbs } from '../../engine/networks.js';
import type { Router } from '../http.js';
import { parseFilters } from '../filters.js';

export function networkView(n: NetworkRecord, eps: NetworkFacts['endpoints'] | null) {
  const containers: Record<string, unknown> = {};
  for (const { endpoint: e, name } of eps ?? []) {
    containers[e.containerId] = {
      Name: name,
      EndpointID: e.endpointId,
      MacAddress: e.mac,
      IPv4Address: e.ip ? `${e.ip}/${e.prefix}` : '',
      IPv6Address: e.ip6 ? `${e.ip6}/${e.prefix6 ?? 64}` : '',
    };
  }
  return {
    Name: n.Name,
    Id: n.Id,
    Created: n.Created,
    Scope: n.Scope,
    Driver: n.Driver,
    EnableIPv6: n.EnableIPv6,
    // dockerd: IPAM Options null when none were given; Config entries as given (AuxiliaryAddresses kept)
    IPAM: {
      Driver: n.IPAM.Driver,
      Options: n.IPAM.Options && Object.keys(n.IPAM.Options).length ? n.IPAM.Options : null,
      // dockerd's order; no Gateway when a subnet was asked for without one
      Config: n.IPAM.Config.map((c) => ({
        Subnet: c.Subnet,
        ...(c.IPRange ? { IPRange: c.IPRange } : {}),
        ...(c.gatewayChosen ? {} : { Gateway: c.Gateway }),
        ...(c.AuxiliaryAddresses ? { AuxiliaryAddresses: c.AuxiliaryAddresses } : {}),
      })),
    },
    Internal: n.Internal,
    Attachable: n.Attachable,
    Ingress: false,
    ConfigFrom: { Network: '' },
    ConfigOnly: false,
    Containers: containers, // like dockerd: a user network's Options are the ones it was created with (compose compares them
    // to its file's and would recreate the network); the default bridge shows its bridge's name
    Options: n.isDefault ? { 'com.docker.network.bridge.name': n.bridge, ...n.Options } : n.Options,
    Labels: n.Labels,
    // an overlay network's hosts with endpoints on it (dockerd showed `Peers` for networks of global scope)
    ...(n.Driver === 'overlay' && n.Scope === 'global' ? { Peers: n.peers ?? [] } : {}),
  };
}

export function networkRoutes(r: Router, nets: NetworkVerbs): void {
  r.on('GET', '/networks', (ctx) =>
    ctx.send(
      200,
      nets.list(parseFilters(ctx.query.get('filters'))).map((n) => networkView(n, null)),
    ),
  );

  r.on('GET', '/networks/{id}', (ctx) => {
    const { net, endpoints } = nets.inspect(ctx.params[0]!, ctx.query.get('scope') ?? '');
    ctx.send(200, networkView(net, endpoints));
  });

  r.on('POST', '/networks/create', async (ctx) => {
    const n = await nets.create(await ctx.json());
    ctx.send(201, { Id: n.Id, Warning: '' });
  });

  r.on('DELETE', '/networks/{id}', async (ctx) => {
    await nets.remove(ctx.params[0]!);
    ctx.send(204);
  });

  r.on('POST', '/networks/{id}/connect', async (ctx) => {
    await nets.connect(ctx.params[0]!, () => ctx.json());
    ctx.send(200);
  });

  r.on('POST', '/networks/{id}/disconnect', async (ctx) => {
    await nets.disconnect(ctx.params[0]!, () => ctx.json());
    ctx.send(200);
  });

  r.on('POST', '/networks/prune', async (ctx) => {
    const deleted = await nets.prune(parseFilters(ctx.query.get('filters')));
    ctx.send(200, { NetworksDeleted: deleted.length ? deleted : null }); // dockerd: null when none
  });
}
