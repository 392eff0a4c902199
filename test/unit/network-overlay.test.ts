/**
 * The pure parts of overlay networks (issue 18): the cluster store's flags, the default overlay
 * subnet and VNI, the options the overlay driver reads, the host devices' names. No etcd, no root
 * (test/integration/overlay.test.ts runs the real thing).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isBerthError } from '../../src/base/errors.js';
import { parseAdvertise, parseStoreUrl } from '../../src/cluster/store.js';
import { parseCidr } from '../../src/network/ipam.js';
import { pickOverlaySubnet, pickVni, wellFormed } from '../../src/network/overlay-catalog.js';
import type { NetworkRecord } from '../../src/network/records.js';
import { devicesOf, mtuOf, VNI_OPTION, vniOf } from '../../src/network/overlay.js';
import { IFNAME_RE } from '../../src/network/ipam.js';
import { FastPath, nodeOf } from '../../src/network/overlay-fastpath.js';

const invalid = (e: unknown) => isBerthError(e, 'InvalidArgument');

test('--cluster-store is etcd://HOST:PORT; --cluster-advertise an IPv4 address', () => {
  assert.equal(parseStoreUrl('etcd://127.0.0.1:2379'), 'http://127.0.0.1:2379');
  assert.equal(parseStoreUrl('etcd://etcd.example:2379'), 'http://etcd.example:2379');
  for (const bad of [
    'http://127.0.0.1:2379',
    'etcd://127.0.0.1',
    'etcd://h:0',
    'etcd://h:70000',
    'etcd://a b:1',
    'consul://h:8500',
  ])
    assert.throws(() => parseStoreUrl(bad), invalid, bad);
  assert.equal(parseAdvertise('192.168.1.2'), '192.168.1.2');
  assert.equal(parseAdvertise('192.168.1.2:2376'), '192.168.1.2'); // dockerd took ADDR:PORT
  for (const bad of ['eth0', '300.1.1.1', '192.168.1', '', '1.2.3.4; rm -rf /'])
    assert.throws(() => parseAdvertise(bad), invalid, bad);
});

test('the default overlay subnet: the first 10.x.y.0/24 free of the others; the lowest VNI from 4097', () => {
  assert.equal(pickOverlaySubnet([]), '10.0.0.0/24');
  assert.equal(pickOverlaySubnet([parseCidr('10.0.0.0/24'), parseCidr('10.0.1.0/24')]), '10.0.2.0/24');
  assert.equal(pickOverlaySubnet([parseCidr('10.0.0.0/16')]), '10.1.0.0/24');
  assert.equal(pickOverlaySubnet([parseCidr('10.0.0.0/8')]), null);
  assert.equal(pickVni(new Set()), 4097);
  assert.equal(pickVni(new Set([4097, 4098, 4100])), 4099);
});

test('the options the overlay driver reads: a VNI of 1..2^24-1, an MTU of 576..9000 (1450 by default)', () => {
  assert.equal(vniOf({ [VNI_OPTION]: '4097' }), 4097);
  for (const bad of ['0', '16777216', 'x', '1.5', '']) assert.throws(() => vniOf({ [VNI_OPTION]: bad }), invalid, bad);
  assert.equal(mtuOf({}), 1450);
  assert.equal(mtuOf({}, 9000), 8950, "the underlay's MTU less VXLAN's 50 bytes");
  assert.equal(mtuOf({ 'com.docker.network.driver.mtu': '1400' }, 9000), 1400);
  assert.equal(mtuOf({ 'com.docker.network.driver.mtu': '1400' }), 1400);
  for (const bad of ['100', '9001', 'x']) assert.throws(() => mtuOf({ 'com.docker.network.driver.mtu': bad }), invalid);
});

test('host devices are named from the network id only (never from a request), and are interface names', () => {
  const id = 'f'.repeat(64);
  assert.deepEqual(devicesOf(id), { bridge: 'ov-ffffffffffff', vxlan: 'vx-ffffffffffff' });
  assert.ok(IFNAME_RE.test(devicesOf(id).bridge) && IFNAME_RE.test(devicesOf(id).vxlan));
});

test('a network record from the cluster store is brought up only if its id, subnet and gateway are what they say', () => {
  const id = 'a'.repeat(64);
  const rec = (o: Partial<NetworkRecord> = {}, subnet = '10.0.0.0/24', gateway = '10.0.0.1'): NetworkRecord => ({
    Id: id,
    Name: 'ov',
    Driver: 'overlay',
    Scope: 'global',
    Created: '',
    Internal: false,
    Attachable: false,
    EnableIPv6: false,
    Labels: {},
    Options: {},
    IPAM: { Driver: 'default', Options: null, Config: [{ Subnet: subnet, Gateway: gateway }] },
    bridge: '',
    isDefault: false,
    ...o,
  });
  assert.ok(wellFormed(rec(), id));
  assert.ok(!wellFormed(rec(), 'b'.repeat(64)), 'the key names another network');
  assert.ok(!wellFormed(rec({ Id: 'x y' }), 'x y'), 'an id that would leave a device name');
  assert.ok(!wellFormed(rec({}, '10.0.0.0/24\nlink del eth0'), id));
  assert.ok(!wellFormed(rec({}, '10.0.0.0/24', '10.0.1.1'), id), 'a gateway outside the subnet');
  assert.ok(!wellFormed(rec({ IPAM: { Driver: 'default', Options: null, Config: [] } }), id));
});

test("the fast path's tc lines: a filter per endpoint keyed by its address, local ones added, remote ones exact", async () => {
  const ran: string[][] = [];
  const gone = new Set<string>(['vbgone']);
  const fp = new FastPath(
    (name) => !gone.has(name),
    async (lines) => void ran.push(lines),
  );
  const id = 'a'.repeat(64);
  assert.deepEqual(
    fp.sync(id, [], [{ ip: '10.0.0.3', mac: '02:42:0a:00:00:03' }]),
    [],
    'a network that is not up: nothing',
  );
  await fp.up(id, 'vx-aaaaaaaaaaaa', 'ov-aaaaaaaaaaaa', 4097);
  assert.deepEqual(ran.splice(0), [
    ['qdisc del dev vx-aaaaaaaaaaaa clsact', 'filter del block 4097'],
    ['qdisc add dev vx-aaaaaaaaaaaa clsact', 'qdisc replace dev ov-aaaaaaaaaaaa ingress_block 4097 clsact'],
  ]);
  await fp.join(id, { ip: '10.0.0.2', mac: '02:42:0a:00:00:02', veth: 'vb0123456789' });
  assert.deepEqual(ran.splice(0), [
    [
      'qdisc replace dev vb0123456789 ingress_block 4097 clsact',
      'filter replace dev vx-aaaaaaaaaaaa ingress handle 800::2 protocol ip prio 10 u32 match ether dst 02:42:0a:00:00:02 action mirred egress redirect dev vb0123456789',
    ],
  ]);
  const lines = fp.sync(
    id,
    [
      { ip: '10.0.0.2', mac: '02:42:0a:00:00:02', veth: 'vb0123456789' }, // known: nothing
      { ip: '10.0.0.9', mac: '02:42:0a:00:00:09', veth: 'vbgone' }, // its veth went: not put back
    ],
    [
      { ip: '10.0.0.3', mac: '02:42:0a:00:00:03' },
      { ip: '10.0.16.3', mac: '02:42:0a:00:10:03' }, // the same node id as 10.0.0.3: over the bridge
      { ip: '10.0.0.4', mac: 'bad' },
    ],
  );
  assert.deepEqual(lines, [
    'filter replace block 4097 handle 800::3 protocol ip prio 10 u32 match ether dst 02:42:0a:00:00:03 action mirred egress redirect dev vx-aaaaaaaaaaaa',
  ]);
  assert.deepEqual(fp.sync(id, [], [{ ip: '10.0.0.3', mac: '02:42:0a:00:00:03' }]), [], 'no change: no line');
  assert.deepEqual(fp.sync(id, [], []), ['filter del block 4097 protocol ip prio 10 handle 800::3 u32']);
  await fp.leave(id, '10.0.0.2', '02:42:0a:00:00:02');
  assert.deepEqual(ran.splice(0), [['filter del dev vx-aaaaaaaaaaaa ingress protocol ip prio 10 handle 800::2 u32']]);
  await fp.leave(id, '10.0.0.2', '02:42:0a:00:00:02');
  assert.deepEqual(ran, [], 'a second leave: nothing');
  assert.equal(nodeOf('10.0.0.0'), 0);
  assert.equal(nodeOf('x'), 0);
});
