/** Remote volume and network drivers: the plugin protocol's calls behind the managers' interfaces. */
import type { VolumeDriver } from '../volume/manager.js';
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

/** What the network manager asks of a remote network driver. */
export interface NetworkDriver {
  createNetwork(id: string, pool: string, gateway: string, options: Record<string, string>): Promise<void>;
  deleteNetwork(id: string): Promise<void>;
  /** Creates and joins an endpoint; returns the host interface to move into the container and its name prefix. */
  join(networkId: string, endpointId: string, address: string, mac: string, sandboxKey: string): Promise<{ srcName: string; dstPrefix: string; gateway: string }>;
  leave(networkId: string, endpointId: string): Promise<void>;
}

export function remoteNetworkDriver(c: PluginClient): NetworkDriver {
  return {
    createNetwork: async (id, pool, gateway, options) =>
      void (await c.call('NetworkDriver.CreateNetwork', { NetworkID: id, Options: { 'com.docker.network.generic': options }, IPv4Data: [{ AddressSpace: 'LocalDefault', Pool: pool, Gateway: gateway }], IPv6Data: [] })),
    deleteNetwork: async (id) => void (await c.call('NetworkDriver.DeleteNetwork', { NetworkID: id })),
    join: async (networkId, endpointId, address, mac, sandboxKey) => {
      await c.call('NetworkDriver.CreateEndpoint', { NetworkID: networkId, EndpointID: endpointId, Interface: { Address: address, AddressIPv6: '', MacAddress: mac }, Options: {} });
      const r = await c.call<{ InterfaceName?: { SrcName?: string; DstPrefix?: string }; Gateway?: string }>('NetworkDriver.Join', { NetworkID: networkId, EndpointID: endpointId, SandboxKey: sandboxKey, Options: {} });
      if (!r.InterfaceName?.SrcName) throw new Error(`plugin ${c.name}: NetworkDriver.Join returned no interface`);
      return { srcName: r.InterfaceName.SrcName, dstPrefix: r.InterfaceName.DstPrefix || 'eth', gateway: r.Gateway ?? '' };
    },
    leave: async (networkId, endpointId) => {
      await c.call('NetworkDriver.Leave', { NetworkID: networkId, EndpointID: endpointId });
      await c.call('NetworkDriver.DeleteEndpoint', { NetworkID: networkId, EndpointID: endpointId });
    },
  };
}
