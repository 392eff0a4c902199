/**
 * The pure parts of the bridge driver and the manager's planning: a network's pool (IPAM), a
 * published port's host address and port, the bridge's device name, the sandbox keys as `ip`
 * takes them. No host, no root.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isBerthError } from '../../src/base/errors.js';
import { parseCidr, planPool } from '../../src/network/ipam.js';
import { bindAddress, EPHEMERAL, hostPortRange, pickHostPort } from '../../src/network/ports.js';
import { bridgeName } from '../../src/network/bridge.js';
import { interfaceLines, nsArgOf, nsPath, nsRefOf } from '../../src/network/sandbox.js';

const code = (c: string) => (e: unknown) => isBerthError(e, c as 'InvalidArgument');

test('planPool: the first default pool free of other networks and host routes; gateway the first address', () => {
  assert.deepEqual(planPool({}, [], []), { Subnet: '172.17.0.0/16', Gateway: '172.17.0.1' });
  const others = [
    { name: 'bridge', subnet: '172.17.0.0/16' },
    { name: 'a', subnet: '172.18.0.0/16' },
  ];
  assert.deepEqual(planPool({}, others, [parseCidr('172.19.5.0/24')]), {
    Subnet: '172.20.0.0/16',
    Gateway: '172.20.0.1',
  });
});

test('planPool: a subnet asked for, with gateway and ip-range; overlaps and bad values refused', () => {
  assert.deepEqual(planPool({ Subnet: '10.9.0.0/24', Gateway: '10.9.0.254', IPRange: '10.9.0.128/25' }, [], []), {
    Subnet: '10.9.0.0/24',
    Gateway: '10.9.0.254',
    IPRange: '10.9.0.128/25',
  });
  // a route of the host's does not stop a subnet asked for (Docker's behaviour); another network does
  assert.equal(planPool({ Subnet: '10.9.0.0/24' }, [], [parseCidr('10.0.0.0/8')]).Subnet, '10.9.0.0/24');
  assert.throws(
    () => planPool({ Subnet: '10.9.0.0/16' }, [{ name: 'n1', subnet: '10.9.3.0/24' }], []),
    (e: unknown) =>
      code('Conflict')(e) &&
      /Pool overlaps with other one on this address space \(n1 uses 10\.9\.3\.0\/24\)/.test(String(e)),
  );
  assert.throws(() => planPool({ Subnet: '10.9.0.0/31' }, [], []), code('InvalidArgument'));
  assert.throws(
    () => planPool({ Subnet: '10.9.0.0/24', Gateway: '10.8.0.1' }, [], []),
    /failed to allocate gateway \(10\.8\.0\.1\)/,
  );
  assert.throws(() => planPool({ Subnet: '10.9.0.0/24', IPRange: '10.9.0.0/16' }, [], []), /invalid ip-range/);
  assert.throws(() => planPool({ Subnet: '10.9.0.0/24', IPRange: '10.10.0.0/25' }, [], []), /invalid ip-range/);
  assert.throws(() => planPool({ Subnet: 'ten/8' }, [], []), code('InvalidArgument'));
});

test('published ports: the address and range a request takes', () => {
  assert.equal(bindAddress(''), '0.0.0.0');
  assert.equal(bindAddress('0.0.0.0'), '0.0.0.0');
  assert.equal(bindAddress('127.0.0.1'), '127.0.0.1');
  assert.throws(() => bindAddress('localhost'), code('InvalidArgument'));
  assert.deepEqual(hostPortRange('8080'), [8080, 8080]);
  assert.deepEqual(hostPortRange('8000-8002'), [8000, 8002]);
  assert.deepEqual(hostPortRange(''), [EPHEMERAL.lo, EPHEMERAL.hi]);
});

test('pickHostPort: the first port neither berth nor the host holds; else why the last one failed', async () => {
  const tried: number[] = [];
  const free = async (p: number) => (tried.push(p), p !== 8001);
  assert.deepEqual(await pickHostPort([8000, 8003], (p) => p === 8000, free), { port: 8002 });
  assert.deepEqual(tried, [8001, 8002], 'a port berth holds is not bind-tested');
  assert.deepEqual(await pickHostPort([8080, 8080], () => true, free), { error: 'port is already allocated' });
  assert.deepEqual(await pickHostPort([8001, 8001], () => false, free), { error: 'address already in use' });
  assert.deepEqual(await pickHostPort([5, 4], () => false, free), { error: 'no free port' });
});

test('bridgeName: the option, else bb-<daemon> or br-<id>; anything not an interface name refused', () => {
  const id = 'abcdef0123456789'.repeat(4);
  assert.equal(bridgeName({ id, options: {}, isDefault: true }, '1234abcd'), 'bb-1234abcd');
  assert.equal(bridgeName({ id, options: {}, isDefault: false }, '1234abcd'), 'br-abcdef012345');
  assert.equal(
    bridgeName({ id, options: { 'com.docker.network.bridge.name': '' }, isDefault: false }, 'x'),
    'br-abcdef012345',
  );
  assert.equal(
    bridgeName({ id, options: { 'com.docker.network.bridge.name': 'mybr0' }, isDefault: false }, 'x'),
    'mybr0',
  );
  assert.throws(
    () =>
      bridgeName({ id, options: { 'com.docker.network.bridge.name': 'a-very-long-bridge' }, isDefault: false }, 'x'),
    /bridge name a-very-long-bridge is longer than 15 characters/,
  );
  for (const bad of ['br 0', 'br0\nlink del eth0', '../x', '-br']) {
    assert.throws(
      () => bridgeName({ id, options: { 'com.docker.network.bridge.name': bad }, isDefault: false }, 'x'),
      code('InvalidArgument'),
      bad,
    );
  }
});

test('sandbox keys as ip takes them; the interface commands', () => {
  assert.equal(nsPath({ pid: 42 }), '/proc/42/ns/net');
  assert.equal(nsPath({ name: 'berth-1' }), '/run/netns/berth-1');
  assert.equal(nsArgOf('/proc/42/ns/net'), '../../proc/42/ns/net');
  assert.equal(nsArgOf('/run/netns/berth-1'), 'berth-1');
  assert.equal(nsRefOf('/proc/42/ns/net'), '42');
  assert.equal(nsRefOf('/run/netns/berth-1'), 'berth-1');
  assert.throws(() => nsRefOf('/tmp/ns'), TypeError);
  assert.deepEqual(interfaceLines('eth1', '10.0.0.2/24', '02:42:0a:00:00:02', '10.0.0.1'), [
    'link set dev eth1 address 02:42:0a:00:00:02',
    'addr add 10.0.0.2/24 dev eth1',
    'link set eth1 up',
    'route add default via 10.0.0.1',
  ]);
  assert.equal(interfaceLines('eth1', '10.0.0.2/24', 'm', null).length, 3);
});
