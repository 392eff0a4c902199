/**
 * spec/cni.ts: CNI configuration lists, results, errors and port mappings parsed from untrusted text
 * (containernetworking/cni SPEC.md 0.3.0-1.0.0, CONVENTIONS.md). No root: the runner's real runs are
 * test/integration/cni.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseCacheRecord, parseConfList, parseErrorBody, parsePortMappings, parseResult } from '../../src/spec/cni.js';
import { isBerthError } from '../../src/base/errors.js';

const invalid = (re: RegExp) => (e: unknown) => isBerthError(e, 'InvalidArgument') && re.test((e as Error).message);

test('a conflist keeps its plugins as written, their capabilities and disableCheck', () => {
  const l = parseConfList(
    JSON.stringify({
      cniVersion: '0.4.0',
      name: 'pods',
      disableCheck: true,
      plugins: [
        { type: 'bridge', bridge: 'b0', extra: { kept: 1 } },
        { type: 'portmap', capabilities: { portMappings: true, bandwidth: false } },
      ],
    }),
    'f.conflist',
  );
  assert.equal(l.name, 'pods');
  assert.equal(l.cniVersion, '0.4.0');
  assert.equal(l.disableCheck, true);
  assert.deepEqual(
    l.plugins.map((p) => p.type),
    ['bridge', 'portmap'],
  );
  assert.deepEqual(l.plugins[0]!.raw['extra'], { kept: 1 });
  assert.deepEqual([...l.plugins[1]!.capabilities], ['portMappings']);
});

test('a single .conf becomes a list of one (libcni ConfListFromConf)', () => {
  const l = parseConfList(JSON.stringify({ cniVersion: '1.0.0', name: 'one', type: 'ptp', ipMasq: true }), 'x.conf');
  assert.equal(l.plugins.length, 1);
  assert.equal(l.plugins[0]!.type, 'ptp');
  assert.deepEqual(l.raw['plugins'], [{ cniVersion: '1.0.0', name: 'one', type: 'ptp', ipMasq: true }]);
});

test('bad conflists are refused naming the file and the field', () => {
  const cases: Array<[string, RegExp]> = [
    ['{"name": ', /f: not JSON/],
    ['[]', /f: expected a JSON object/],
    [JSON.stringify({ cniVersion: '1.0.0', plugins: [{ type: 'bridge' }] }), /name null is not a network name/],
    [JSON.stringify({ cniVersion: '1.0.0', name: '-x', plugins: [{ type: 'bridge' }] }), /not a network name/],
    [JSON.stringify({ name: 'n', plugins: [{ type: 'bridge' }] }), /cniVersion is missing/],
    [JSON.stringify({ cniVersion: '0.2.0', name: 'n', type: 'bridge' }), /cniVersion 0\.2\.0 is not supported/],
    [JSON.stringify({ cniVersion: '1.0.0', name: 'n', plugins: [] }), /plugins: expected a non-empty list/],
    [JSON.stringify({ cniVersion: '1.0.0', name: 'n', plugins: [{}] }), /plugins\[0\]: type is missing/],
    [JSON.stringify({ cniVersion: '1.0.0', name: 'n', plugins: [{ type: '../sh' }] }), /is not a plugin name/],
    [JSON.stringify({ cniVersion: '1.0.0', name: 'n', plugins: [{ type: '/bin/sh' }] }), /is not a plugin name/],
    [
      JSON.stringify({ cniVersion: '1.0.0', name: 'n', plugins: [{ type: 'portmap', capabilities: { p: 'yes' } }] }),
      /capabilities\.p: expected a boolean/,
    ],
    [JSON.stringify({ cniVersion: '1.0.0', name: 'n' }), /type is missing/],
  ];
  for (const [text, re] of cases) assert.throws(() => parseConfList(text, 'f'), invalid(re), text);
});

test("a plugin's result: interfaces, ips, routes, dns; raw kept for prevResult", () => {
  const raw = {
    cniVersion: '1.0.0',
    interfaces: [
      { name: 'cni0', mac: 'aa:bb:cc:dd:ee:ff' },
      { name: 'eth0', sandbox: '/run/netns/x' },
    ],
    ips: [{ address: '10.86.0.5/16', gateway: '10.86.0.1', interface: 1 }, { address: 'fd00::5/64' }],
    routes: [{ dst: '0.0.0.0/0' }],
    dns: { nameservers: ['10.86.0.1'], search: ['svc'] },
    extra: 'kept',
  };
  const r = parseResult(raw, 'bridge');
  assert.deepEqual(r.ips, [{ address: '10.86.0.5/16', gateway: '10.86.0.1', interface: 1 }, { address: 'fd00::5/64' }]);
  assert.deepEqual(r.interfaces[1], { name: 'eth0', sandbox: '/run/netns/x' });
  assert.deepEqual(r.routes, [{ dst: '0.0.0.0/0' }]);
  assert.deepEqual(r.dns, { nameservers: ['10.86.0.1'], search: ['svc'] });
  assert.equal(r.raw, raw);
  for (const bad of [
    { ips: [{ address: '10.0.0.1' }] },
    { ips: [{ address: '10.0.0.300/24' }] },
    { ips: [{ address: '10.0.0.1/33' }] },
    { ips: [{ address: '10.0.0.1/24', gateway: 'gw' }] },
    { ips: [{ address: '10.0.0.1/24', interface: -1 }] },
    { interfaces: [{ mac: 'x' }] },
    { routes: [{ dst: 'default' }] },
    { ips: 'x' },
  ])
    assert.throws(() => parseResult(bad, 'p'), invalid(/^p/), JSON.stringify(bad));
});

test("a plugin's error body, or undefined when the output is not one", () => {
  assert.deepEqual(parseErrorBody('{"cniVersion":"1.0.0","code":7,"msg":"bad","details":"why"}'), {
    code: 7,
    msg: 'bad',
    details: 'why',
  });
  assert.deepEqual(parseErrorBody('{"code":11,"msg":"later","details":""}'), { code: 11, msg: 'later' });
  assert.equal(parseErrorBody('panic: oops'), undefined);
  assert.equal(parseErrorBody('{"msg":"no code"}'), undefined);
});

test('port mappings: checked, tcp by default, hostPort 0 left out (containerd)', () => {
  assert.deepEqual(
    parsePortMappings(
      [
        { hostPort: 8080, containerPort: 80 },
        { hostPort: 0, containerPort: 81, protocol: 'tcp' },
        { hostPort: 53, containerPort: 53, protocol: 'udp', hostIP: '127.0.0.1' },
      ],
      'pm',
    ),
    [
      { hostPort: 8080, containerPort: 80, protocol: 'tcp' },
      { hostPort: 53, containerPort: 53, protocol: 'udp', hostIP: '127.0.0.1' },
    ],
  );
  for (const bad of [
    [{ hostPort: 65536, containerPort: 80 }],
    [{ hostPort: 80, containerPort: 0 }],
    [{ hostPort: 1.5, containerPort: 80 }],
    [{ hostPort: 80, containerPort: 80, protocol: 'icmp' }],
    [{ hostPort: 80, containerPort: 80, hostIP: 'localhost' }],
    ['x'],
    { hostPort: 1 },
  ])
    assert.throws(() => parsePortMappings(bad, 'pm'), invalid(/^pm/), JSON.stringify(bad));
});

test('a cache record round-trips and a foreign file is refused', () => {
  const rec = {
    kind: 'berthCniCacheV1',
    containerId: 'c1',
    ifName: 'eth0',
    netnsPath: '/run/netns/x',
    network: { cniVersion: '1.0.0', name: 'n', plugins: [{ type: 'bridge' }] },
    cniArgs: [['IgnoreUnknown', '1']],
    portMappings: [{ hostPort: 1, containerPort: 2, protocol: 'tcp' }],
    result: null,
  };
  assert.deepEqual(parseCacheRecord(JSON.stringify(rec), 'f'), rec);
  assert.throws(
    () => parseCacheRecord(JSON.stringify({ ...rec, kind: 'cniCacheV1' }), 'f'),
    invalid(/not a berth CNI/),
  );
  assert.throws(() => parseCacheRecord(JSON.stringify({ ...rec, cniArgs: [['a']] }), 'f'), invalid(/cniArgs/));
  assert.throws(() => parseCacheRecord('{', 'f'), invalid(/not JSON/));
});
