/**
 * The network manager drives every network driver through the same interface
 * (plugins/interfaces.ts): a recording driver in place of a plugin, a real SQLite file, a
 * ManualClock. Endpoints whose driver configures the sandbox itself need no host: no root here.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ManualClock } from '../../src/base/clock.js';
import { isBerthError } from '../../src/base/errors.js';
import { openDb } from '../../src/metadata/db.js';
import { NetworkManager } from '../../src/network/manager.js';
import type { NetworkDriver } from '../../src/plugins/interfaces.js';

function recording(fail: { create?: boolean; join?: boolean } = {}) {
  const calls: string[] = [];
  const driver: NetworkDriver = {
    async createNetwork(n) {
      calls.push(`CreateNetwork ${n.name} ${n.pool} ${n.gateway}`);
      if (fail.create) throw new Error('plugin refused');
      return { device: '' };
    },
    async deleteNetwork(id) {
      calls.push(`DeleteNetwork ${id.slice(0, 6)}`);
    },
    async createEndpoint(ep) {
      calls.push(`CreateEndpoint ${ep.address} ${ep.mac}${ep.options ? ` ${JSON.stringify(ep.options)}` : ''}`);
      return { hostIfname: '' };
    },
    async join(ep, sb) {
      calls.push(`Join ${sb.key} ${sb.ifname} route=${sb.route}`);
      if (fail.join) throw new Error('join refused');
      return { kind: 'configured' };
    },
    async leave(ep) {
      calls.push(`Leave ${ep.address}`);
    },
    async deleteEndpoint(ep, gone) {
      calls.push(`DeleteEndpoint ${ep.address} gone=${gone}`);
    },
  };
  return { calls, driver };
}

function manager(d: NetworkDriver, clock = new ManualClock(Date.UTC(2026, 1, 3, 4, 5, 6))) {
  const dir = mkdtempSync(join(tmpdir(), 'berth-net-'));
  const db = openDb(join(dir, 'berth.db'));
  const m = new NetworkManager(db, '0123abcd-0000-0000-0000-000000000000', clock);
  m.drivers = async (name) => {
    if (name !== 'rec') throw new Error(`no plugin ${name}`);
    return d;
  };
  return { m, done: () => (db.close(), rmSync(dir, { recursive: true, force: true })) };
}

const c1 = { id: 'c1'.padEnd(64, '0'), name: 'web', ports: [] };

test('a plugin network: CreateNetwork with the pool berth chose, Created from the clock, DeleteNetwork', async () => {
  const { calls, driver } = recording();
  const { m, done } = manager(driver);
  try {
    const n = await m.create({ Name: 'p1', Driver: 'rec', IPAM: { Config: [{ Subnet: '10.77.0.0/24' }] } });
    assert.equal(n.Created, '2026-02-03T04:05:06.000Z');
    assert.equal(n.bridge, '');
    assert.deepEqual(calls, ['CreateNetwork p1 10.77.0.0/24 10.77.0.1/24']);
    assert.equal(m.get('p1').Id, n.Id);
    await m.remove('p1');
    assert.equal(m.find('p1'), undefined);
    assert.equal(calls[1], `DeleteNetwork ${n.Id.slice(0, 6)}`);
  } finally {
    done();
  }
});

test('a CreateNetwork that fails leaves no record; an unknown driver is refused before it', async () => {
  const { calls, driver } = recording({ create: true });
  const { m, done } = manager(driver);
  try {
    await assert.rejects(m.create({ Name: 'p1', Driver: 'rec' }), /plugin refused/);
    assert.deepEqual(m.list(), []);
    await assert.rejects(m.create({ Name: 'p2', Driver: 'nope' }), /no plugin nope/);
    assert.equal(calls.length, 1);
  } finally {
    done();
  }
});

test('attach: CreateEndpoint, Join per network, eth<N>, route via the first; detach: Leave, DeleteEndpoint', async () => {
  const { calls, driver } = recording();
  const { m, done } = manager(driver);
  try {
    const a = await m.create({ Name: 'a', Driver: 'rec', IPAM: { Config: [{ Subnet: '10.77.0.0/24' }] } });
    const b = await m.create({ Name: 'b', Driver: 'rec', IPAM: { Config: [{ Subnet: '10.78.0.0/24' }] } });
    calls.length = 0;
    await m.attach(
      {
        ...c1,
        networks: [
          [a.Id, { aliases: ['w'] }],
          [b.Id, { aliases: [], ipv4: '10.78.0.9', driverOpts: { 'com.example.vlan': '7' } }],
        ],
      },
      { name: 'ns1' },
    );
    assert.deepEqual(calls, [
      'CreateEndpoint 10.77.0.2/24 02:42:0a:4d:00:02',
      'Join /run/netns/ns1 eth0 route=10.77.0.1',
      // EndpointSettings.DriverOpts reach the driver's CreateEndpoint (dockerd passes them as its Options)
      'CreateEndpoint 10.78.0.9/24 02:42:0a:4e:00:09 {"com.example.vlan":"7"}',
      'Join /run/netns/ns1 eth1 route=null',
    ]);
    const eps = m.endpoints({ containerId: c1.id }).sort((x, y) => x.ifname.localeCompare(y.ifname));
    assert.deepEqual(
      eps.map((e) => [e.ifname, e.ip, e.names]),
      [
        ['eth0', '10.77.0.2', ['web', 'w']],
        ['eth1', '10.78.0.9', ['web']],
      ],
    );
    assert.equal(m.addressFree(b.Id, '10.78.0.9'), false);
    await assert.rejects(m.remove('a'), (e: unknown) => isBerthError(e, 'Conflict'));
    calls.length = 0;
    await m.detach(c1.id, undefined, true);
    for (const ip of ['10.77.0.2/24', '10.78.0.9/24']) {
      assert.deepEqual(
        calls.filter((l) => l.includes(ip)),
        [`Leave ${ip}`, `DeleteEndpoint ${ip} gone=true`],
      );
    }
    assert.equal(calls.length, 4);
    assert.deepEqual(m.endpoints(), []);
    assert.equal(m.addressFree(b.Id, '10.78.0.9'), true, 'the address is released');
  } finally {
    done();
  }
});

test('attach is all or nothing: a failed Join undoes the endpoints made and releases the addresses', async () => {
  const { calls, driver } = recording({ join: true });
  const { m, done } = manager(driver);
  try {
    const a = await m.create({ Name: 'a', Driver: 'rec', IPAM: { Config: [{ Subnet: '10.77.0.0/24' }] } });
    calls.length = 0;
    await assert.rejects(m.attach({ ...c1, networks: [[a.Id, { aliases: [] }]] }, { pid: 4242 }), /join refused/);
    assert.deepEqual(calls, [
      'CreateEndpoint 10.77.0.2/24 02:42:0a:4d:00:02',
      'Join /proc/4242/ns/net eth0 route=10.77.0.1',
      'Leave 10.77.0.2/24',
      'DeleteEndpoint 10.77.0.2/24 gone=false',
    ]);
    assert.deepEqual(m.endpoints(), []);
    assert.equal(m.addressFree(a.Id, '10.77.0.2'), true);
    await assert.rejects(
      m.attach({ ...c1, networks: [[a.Id, { aliases: [], ipv4: '10.99.0.1' }]] }, { pid: 1 }),
      /not in network a's subnet/,
    );
    assert.deepEqual(m.endpoints(), []);
  } finally {
    done();
  }
});
