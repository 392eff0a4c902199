/** Remote volume and network drivers: the plugin protocol's calls behind the managers' interfaces. */
import type { NetworkDriver, VolumeDriver } from './interfaces.js';
import type { PluginClient } from './registry.js';

export function remoteVolumeDriver(c: PluginClient): VolumeDriver {
  return {
    create: async (name, opts) => void (await c.call('VolumeDriver.Create', { Name: name, Opts: opts })),
    remove: async (name) => void (await c.call('VolumeDriver.Remove', { Name: name })),
    mount: async (name, id) => {
      const r = await c.call<{ Mountpoint?: string }>('VolumeDriver.Mount', { Name: name, ID: id });
      if (!r.Mountpoint) throw new Error(`plugin ${c.name}: VolumeDriver.Mount returned no Mountpoint`);
      return r.Mountpoint;
    },
    unmount: async (name, id) => void (await c.call('VolumeDriver.Unmount', { Name: name, ID: id })),
  };
}

interface JoinAnswer {
  InterfaceName?: { SrcName?: string; DstPrefix?: string };
  Gateway?: string;
}

/**
 * A network plugin: every method is one call of the protocol. It makes no host device for a
 * network or an endpoint; Join answers the interface berth moves into the container.
 */
export function remoteNetworkDriver(c: PluginClient): NetworkDriver {
  return {
    createNetwork: async (n) => {
      await c.call('NetworkDriver.CreateNetwork', {
        NetworkID: n.id,
        Options: { 'com.docker.network.generic': n.options },
        IPv4Data: [{ AddressSpace: 'LocalDefault', Pool: n.pool, Gateway: n.gateway }],
        IPv6Data: [],
      });
      return { device: '' };
    },
    deleteNetwork: async (id) => void (await c.call('NetworkDriver.DeleteNetwork', { NetworkID: id })),
    createEndpoint: async (ep) => {
      await c.call('NetworkDriver.CreateEndpoint', {
        NetworkID: ep.networkId,
        EndpointID: ep.endpointId,
        Interface: { Address: ep.address, AddressIPv6: ep.address6 ?? '', MacAddress: ep.mac },
        Options: ep.options ?? {}, // EndpointSettings.DriverOpts, as dockerd passes them
      });
      return { hostIfname: '' };
    },
    join: async (ep, sandbox) => {
      const r = await c.call<JoinAnswer>('NetworkDriver.Join', {
        NetworkID: ep.networkId,
        EndpointID: ep.endpointId,
        SandboxKey: sandbox.key,
        Options: {},
      });
      if (!r.InterfaceName?.SrcName) throw new Error(`plugin ${c.name}: NetworkDriver.Join returned no interface`);
      return {
        kind: 'move',
        srcName: r.InterfaceName.SrcName,
        dstPrefix: r.InterfaceName.DstPrefix || 'eth',
        gateway: r.Gateway ?? '',
      };
    },
    leave: async (ep) =>
      void (await c.call('NetworkDriver.Leave', { NetworkID: ep.networkId, EndpointID: ep.endpointId })),
    deleteEndpoint: async (ep) =>
      void (await c.call('NetworkDriver.DeleteEndpoint', { NetworkID: ep.networkId, EndpointID: ep.endpointId })),
  };
}
