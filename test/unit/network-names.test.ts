/** Issue 14 (class 9): names from records and requests never become script text (ip -batch, nft -f, /proc/sys paths). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { IFNAME_RE } from '../../src/network/ipam.js';
import { tableBody } from '../../src/network/nft.js';
import { ipBatch } from '../../src/network/host.js';

const BAD = [
  'x\nlink del lo',
  'a"b',
  'a b',
  '../../x',
  '.',
  '..',
  'a/b',
  'br-0123456789abc',
  '',
  'a;b',
  'a\tb',
  '-x',
  'a}b',
  'é',
];
const GOOD = ['br0', 'berth-net', 'b.1', 'A_b-9', 'br-0123456789ab'];

test('interface names: only [a-zA-Z0-9_.-], up to 15, starting with a letter or digit', () => {
  for (const n of BAD) assert.equal(IFNAME_RE.test(n), false, JSON.stringify(n));
  for (const n of GOOD) assert.equal(IFNAME_RE.test(n), true, n);
});

test('the nftables table leaves out a record whose names or addresses could leave their string', () => {
  const net = (name: string, bridge: string, subnet: string) => ({
    Id: name,
    Name: name,
    Driver: 'bridge',
    Scope: 'local' as const,
    Created: '',
    Internal: false,
    Attachable: false,
    EnableIPv6: false,
    Labels: {},
    Options: {},
    IPAM: { Driver: 'default', Options: {}, Config: [{ Subnet: subnet, Gateway: '' }] },
    bridge,
    isDefault: false,
  });
  const body = tableBody(
    [
      net('ok', 'br-ok', '10.1.0.0/16'),
      ...BAD.map((b, i) => net(`bad${i}`, b, `10.${i + 2}.0.0/16`)),
      net('badsubnet', 'br-s', '10.99.0.0/16"; flush ruleset; "'),
    ],
    [
      {
        proto: 'tcp',
        hostIp: '127.0.0.1',
        hostPort: 8080,
        containerPort: 80,
        containerId: 'c',
        containerIp: '10.1.0.2',
      },
      {
        proto: 'tcp',
        hostIp: '127.0.0.1\n}\ntable ip x {',
        hostPort: 81,
        containerPort: 80,
        containerId: 'c',
        containerIp: '10.1.0.2',
      },
      { proto: 'tcp', hostIp: '0.0.0.0', hostPort: 1e9, containerPort: 80, containerId: 'c', containerIp: '10.1.0.2' },
    ],
  );
  assert.match(body, /oifname != "br-ok" masquerade/);
  for (const b of BAD) if (b) assert.ok(!body.includes(`"${b}"`), `bridge ${JSON.stringify(b)} left out`);
  assert.ok(!body.includes('br-s') && !body.includes('flush'), 'a bad subnet is left out');
  assert.equal(body.match(/dnat to/g)?.length, 1, 'only the valid port binding');
  assert.ok(!body.includes('table ip x'));
});

test('ip -batch refuses a line that is not one command of plain words, before running ip', async () => {
  for (const line of ['link add x\nlink del lo type bridge', 'link set "a" up', 'link set a;b up', 'link set $(id) up'])
    await assert.rejects(ipBatch([line]), /unexpected characters/, JSON.stringify(line));
});
