/** Network logic without the host: IPv4 math and pools, the DNS message codec. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  cidrText,
  contains,
  freeAddress,
  intToIp,
  ipToInt,
  macOf,
  overlaps,
  parseCidr,
  pickSubnet,
} from '../../src/network/ipam.js';
import { answer, parseQuery } from '../../src/network/dns.js';
import { bigToIp6, cidr6Text, freeAddress6, ip6ToBig, parseCidr6, planPool6 } from '../../src/network/ipam6.js';
import { table6Body, tableBody } from '../../src/network/nft.js';

test('CIDRs: parse, normalize, contain, overlap; bad input refused', () => {
  assert.equal(cidrText(parseCidr('10.1.2.3/24')), '10.1.2.0/24');
  assert.ok(contains(parseCidr('172.18.0.0/16'), ipToInt('172.18.255.254')));
  assert.ok(!contains(parseCidr('172.18.0.0/16'), ipToInt('172.19.0.1')));
  assert.ok(overlaps(parseCidr('10.0.0.0/8'), parseCidr('10.5.0.0/16')));
  assert.ok(!overlaps(parseCidr('10.0.0.0/16'), parseCidr('10.1.0.0/16')));
  assert.throws(() => parseCidr('10.0.0.0/33'), /invalid CIDR/);
  assert.throws(() => ipToInt('300.1.1.1'), /invalid IPv4/);
  assert.equal(intToIp(ipToInt('192.168.1.42')), '192.168.1.42');
});

test('pools: the first default subnet no other network or route uses', () => {
  assert.equal(cidrText(pickSubnet([])), '172.17.0.0/16');
  assert.equal(cidrText(pickSubnet([parseCidr('172.17.0.0/16'), parseCidr('172.18.5.0/24')])), '172.19.0.0/16');
  const all = Array.from({ length: 15 }, (_, i) => parseCidr(`172.${17 + i}.0.0/16`));
  assert.equal(cidrText(pickSubnet(all)), '192.168.0.0/20');
});

test('addresses: lowest free, never the network, broadcast or a used one; inside --ip-range', () => {
  const s = parseCidr('10.9.0.0/29'); // .0 network, .7 broadcast
  const used = new Set([ipToInt('10.9.0.1'), ipToInt('10.9.0.2')]);
  assert.equal(intToIp(freeAddress(s, s, used)!), '10.9.0.3');
  const full = new Set([1, 2, 3, 4, 5, 6].map((n) => ipToInt(`10.9.0.${n}`)));
  assert.equal(freeAddress(s, s, full), null);
  assert.equal(intToIp(freeAddress(parseCidr('10.9.0.0/24'), parseCidr('10.9.0.128/25'), new Set())!), '10.9.0.128');
  assert.equal(macOf(ipToInt('172.17.0.2')), '02:42:ac:11:00:02');
});

test('DNS: a query is parsed and answered with A records; other types get none; NXDOMAIN', () => {
  const q = Buffer.concat([
    Buffer.from([0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0]),
    Buffer.from([3, ...Buffer.from('web'), 0]),
    Buffer.from([0x00, 0x01, 0x00, 0x01]),
  ]);
  const p = parseQuery(q)!;
  assert.equal(p.name, 'web');
  assert.equal(p.type, 1);
  const a = answer(p, ['172.18.0.2', '172.18.0.3']);
  assert.equal(a.readUInt16BE(0), 0x1234);
  assert.equal(a.readUInt16BE(2) & 0x8000, 0x8000, 'a response');
  assert.equal(a.readUInt16BE(2) & 0xf, 0, 'NOERROR');
  assert.equal(a.readUInt16BE(6), 2, 'two answers');
  assert.deepEqual([...a.subarray(a.length - 4)], [172, 18, 0, 3]);
  const nx = answer(p, [], 3);
  assert.equal(nx.readUInt16BE(2) & 0xf, 3);
  assert.equal(nx.readUInt16BE(6), 0);
  assert.equal(answer({ ...p, type: 28 }, ['172.18.0.2']).readUInt16BE(6), 0, 'no AAAA records');
  assert.equal(parseQuery(Buffer.from([1, 2, 3])), null);
  assert.equal(parseQuery(Buffer.from(a)), null, 'a response is not a query');
});

test('the nftables table: a DNAT per published port, masquerade out of non-internal networks, no traffic between networks', () => {
  const net = (name: string, bridge: string, subnet: string, internal = false) => ({
    Id: name,
    Name: name,
    Driver: 'bridge',
    Scope: 'local' as const,
    Created: '',
    Internal: internal,
    Attachable: false,
    EnableIPv6: false,
    Labels: {},
    Options: {},
    IPAM: { Driver: 'default', Options: {}, Config: [{ Subnet: subnet, Gateway: '' }] },
    bridge,
    isDefault: false,
  });
  const body = tableBody(
    [net('a', 'br-a', '10.1.0.0/16'), net('b', 'br-b', '10.2.0.0/16', true)],
    [
      {
        proto: 'tcp',
        hostIp: '127.0.0.1',
        hostPort: 8080,
        containerPort: 80,
        containerId: 'c',
        containerIp: '10.1.0.2',
      },
      { proto: 'udp', hostIp: '0.0.0.0', hostPort: 5353, containerPort: 53, containerId: 'c', containerIp: '10.1.0.2' },
    ],
  );
  assert.match(body, /ip daddr 127\.0\.0\.1 tcp dport 8080 dnat to 10\.1\.0\.2:80/);
  assert.match(body, /^ {4}udp dport 5353 dnat to 10\.1\.0\.2:53$/m, 'a port on all addresses has no daddr match');
  assert.match(body, /ip saddr 10\.1\.0\.0\/16 oifname != "br-a" masquerade/);
  assert.match(
    body,
    /ip saddr 10\.1\.0\.0\/16 oifname != "br-a" tcp flags & syn == 0 return\n.*masquerade/,
    'a connection picked up mid-stream (restored) keeps its address',
  );
  assert.doesNotMatch(
    body,
    /ip saddr 10\.2\.0\.0\/16 oifname != "br-b" masquerade/,
    'an internal network has no way out',
  );
  assert.match(body, /iifname "br-b" oifname != "br-b" drop/);
  assert.match(body, /iifname "br-a" oifname \{ "br-b" \} drop/);
});

test('IPv6 math: RFC 5952 text, CIDRs, pools, the lowest free address; AAAA answers', () => {
  assert.equal(bigToIp6(ip6ToBig('FD00:0:0:0:0:0:0:1')), 'fd00::1');
  assert.equal(bigToIp6(ip6ToBig('2001:db8:0:0:1:0:0:1')), '2001:db8::1:0:0:1');
  assert.equal(bigToIp6(ip6ToBig('::ffff:10.0.0.1')), '::ffff:a00:1');
  assert.equal(bigToIp6(ip6ToBig('1:2:3:4:5:6:7:8')), '1:2:3:4:5:6:7:8');
  assert.equal(bigToIp6(0n), '::');
  assert.throws(() => ip6ToBig('fd00::1::2'), /invalid IPv6 address/);
  assert.throws(() => parseCidr6('fd00::/129'), /invalid CIDR/);
  assert.equal(cidr6Text(parseCidr6('fd00:1::5/64')), 'fd00:1::/64');
  const p = planPool6({ Subnet: 'fd00:1::/64' }, []);
  assert.deepEqual(p, { Subnet: 'fd00:1::/64', Gateway: 'fd00:1::1' });
  assert.throws(
    () => planPool6({ Subnet: 'fd00:1::/64', Gateway: 'fd00:2::1' }, []),
    /failed to allocate gateway \(fd00:2::1\): Requested address is out of range/,
  );
  assert.throws(() => planPool6({ Subnet: 'fd00:1::/80' }, [{ name: 'x', subnet: 'fd00:1::/64' }]), /overlaps/);
  const s = parseCidr6('fd00:1::/64');
  const used = new Set([ip6ToBig('fd00:1::1'), ip6ToBig('fd00:1::2')]);
  assert.equal(bigToIp6(freeAddress6(s, s, used)!), 'fd00:1::3');
  assert.equal(bigToIp6(freeAddress6(s, parseCidr6('fd00:1::100/120'), used)!), 'fd00:1::100');
  assert.equal(freeAddress6(parseCidr6('fd00::/127'), parseCidr6('fd00::/127'), new Set([ip6ToBig('fd00::1')])), null);
  // an AAAA question gets AAAA records (an A question the A ones)
  const q = parseQuery(
    Buffer.concat([
      Buffer.from([0, 7, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0]),
      Buffer.from([3, ...Buffer.from('Web'), 0]),
      Buffer.from([0x00, 0x1c, 0x00, 0x01]),
    ]),
  )!;
  assert.equal(q.name, 'web', 'names are compared in lower case');
  const a = answer(q, ['10.0.0.2'], 0, 600, ['fd00::2']);
  assert.equal(a.readUInt16BE(6), 1);
  assert.equal(a.subarray(a.length - 16).toString('hex'), 'fd000000000000000000000000000002');
  assert.equal(answer({ ...q, type: 1 }, ['10.0.0.2'], 0, 600, ['fd00::2']).readUInt16BE(6), 1);
});

test('the ip6 table: IPv6 stays inside its network (no forwarding in or out of an IPv6 bridge); bad names left out', () => {
  const body = table6Body(['br-a', 'br-b', 'x" drop; flush ruleset']);
  assert.match(body, /type filter hook forward priority filter; policy accept;/);
  assert.match(body, /^ {4}iifname "br-a" oifname != "br-a" drop$/m);
  assert.match(body, /^ {4}oifname "br-b" iifname != "br-b" drop$/m);
  assert.doesNotMatch(body, /flush/);
});
