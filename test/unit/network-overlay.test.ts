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
