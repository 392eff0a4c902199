/**
 * The bridge driver and the manager against a recording fake of the host (network/host.ts
 * NetHost): what `ip` and `nft` are asked to do for a network, an endpoint, published ports, the
 * undo of a failed step, and reconciliation at start. No root, no host change.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ManualClock } from '../../src/base/clock.js';
import { isBerthError } from '../../src/base/errors.js';
import { setLogLevel } from '../../src/base/log.js';
import { openDb } from '../../src/metadata/db.js';
import type { Link, NetHost } from '../../src/network/host.js';
import { NetworkManager, type EndpointRequest } from '../../src/network/manager.js';

setLogLevel('error');

const MARK = 'berth:0123abcd';
const TABLE = 'berth_0123abcd';

class FakeHost implements NetHost {
  readonly calls: string[] = [];
  readonly devices = new Map<string, Link>();
  busyPorts = new Set<number>();
  failTable = false;
  table = '';

  async ipBatch(lines: string[], ns?: string) {
    for (const l of lines) {
      this.calls.push(ns ? `ip -n ${ns} ${l}` : `ip ${l}`);
      const add = /^link add (\S+) type (bridge|veth peer name (\S+))/.exec(l);
      if (add && !ns) this.devices.set(add[1]!, { ifname: add[1]! });
      if (add?.[3]) this.devices.set(add[3], { ifname: add[3] });
      const alias = /^link set dev (\S+) alias (\S+)$/.exec(l);
      if (alias) this.devices.get(alias[1]!)!.ifalias = alias[2]!;
    }
  }
  async ipQuiet(lines: string[]) {
    for (const l of lines) {
      this.calls.push(`ip -force ${l}`);
      const del = /^link del (\S+)$/.exec(l);
      if (del) this.devices.delete(del[1]!);
    }
  }
  async links() {
    return [...this.devices.values()];
  }
  linkExists(name: string) {
    return this.devices.has(name);
  }
  plugIntoBridge(veth: string, bridge: string, mark: string) {
    this.calls.push(`plug ${veth} ${bridge} ${mark}`);
    this.devices.get(veth)!.ifalias = mark;
  }
  allowLocalnet(bridge: string) {
    this.calls.push(`localnet ${bridge}`);
  }
  enableForwarding() {
    this.calls.push('forwarding');
  }
  async replaceTable(name: string, body: string) {
    if (this.failTable) throw new Error('nft: table refused');
    this.calls.push(`nft ${name}`);
    this.table = body;
  }
  async deleteTable(name: string) {
    this.calls.push(`nft delete ${name}`);
  }
  async portFree(_proto: 'tcp' | 'udp', _ip: string, port: number) {
    return !this.busyPorts.has(port);
  }
}

function setup() {
  const dir = mkdtempSync(join(tmpdir(), 'berth-bridge-'));
  const db = openDb(join(dir, 'berth.db'));
  const host = new FakeHost();
  const id = '0123abcd-0000-0000-0000-000000000000';
  const clock = new ManualClock();
  const m = new NetworkManager(db, id, clock, host);
  return {
    m,
    host,
    again: () => new NetworkManager(db, id, clock, host),
    done: () => (m.close(), db.close(), rmSync(dir, { recursive: true, force: true })),
  };
}

const web = (n: string, ports: Array<{ hostIp: string; hostPort: string }> = []) => ({
  id: `c-${n}`.padEnd(64, '0'),
  name: n,
  networks: [] as Array<[string, EndpointRequest]>,
  ports: ports.map((p) => ({ proto: 'tcp' as const, containerPort: 80, ...p })),
});

test('a bridge network: its bridge made with the mark, gateway, up, the table; removed with it', async () => {
  const { m, host, done } = setup();
  try {
    const n = await m.create({ Name: 'n1', IPAM: { Config: [{ Subnet: '10.88.0.0/24' }] } });
    const br = `br-${n.Id.slice(0, 12)}`;
    assert.equal(n.bridge, br);
    assert.deepEqual(host.calls, [
      `ip link add ${br} type bridge`,
      `ip link set dev ${br} alias ${MARK}`,
      `ip -force addr add 10.88.0.1/24 dev ${br}`,
      `ip link set ${br} up`,
      `localnet ${br}`,
      `nft ${TABLE}`,
    ]);
    assert.match(host.table, new RegExp(`ip saddr 10\\.88\\.0\\.0/24 oifname != "${br}" masquerade`));
    host.calls.length = 0;
    await m.remove('n1');
    assert.deepEqual(host.calls, [`ip -force link del ${br}`, `nft ${TABLE}`]);
    assert.ok(!host.table.includes(br));
  } finally {
    done();
  }
});

test("a device of the bridge's name that is not berth's: Conflict, nothing run, nothing stored", async () => {
  const { m, host, done } = setup();
  try {
    host.devices.set('taken0', { ifname: 'taken0', ifalias: 'someone-else' });
    await assert.rejects(
      m.create({ Name: 'n1', Options: { 'com.docker.network.bridge.name': 'taken0' } }),
      (e: unknown) => isBerthError(e, 'Conflict') && /taken0 exists and is not berth's/.test(String(e)),
    );
    assert.deepEqual(host.calls, []);
    assert.ok(host.devices.has('taken0'));
    assert.deepEqual(m.list(), []);
  } finally {
    done();
  }
});

test('a create whose table cannot be written removes the bridge it made and stores nothing', async () => {
  const { m, host, done } = setup();
  try {
    host.failTable = true;
    await assert.rejects(m.create({ Name: 'n1' }), /table refused/);
    assert.deepEqual(m.list(), []);
    assert.deepEqual([...host.devices.keys()], []);
    assert.match(host.calls.at(-1)!, /^ip -force link del br-/);
    host.failTable = false;
    assert.equal((await m.create({ Name: 'n1' })).Name, 'n1', 'nothing was left to get in the way');
  } finally {
    done();
  }
});

test('attach: a veth made in the container, plugged into the bridge; ports picked and published', async () => {
  const { m, host, done } = setup();
  try {
    const n = await m.create({ Name: 'n1', IPAM: { Config: [{ Subnet: '10.88.0.0/24' }] } });
    host.calls.length = 0;
    host.busyPorts.add(8080);
    const a = web('a', [{ hostIp: '127.0.0.1', hostPort: '8080-8081' }]);
    a.networks.push([n.Id, { aliases: [] }]);
    await m.attach(a, { pid: 77 });
    const [ep] = m.endpoints({ containerId: a.id });
    assert.match(ep!.hostVeth, /^vb[0-9a-f]{10}$/);
    const ns = 'ip -n ../../proc/77/ns/net';
    assert.deepEqual(host.calls, [
      `${ns} link add eth0 type veth peer name ${ep!.hostVeth} netns ${process.pid}`,
      `${ns} link set dev eth0 address 02:42:0a:58:00:02`,
      `${ns} addr add 10.88.0.2/24 dev eth0`,
      `${ns} link set eth0 up`,
      `${ns} route add default via 10.88.0.1`,
      `plug ${ep!.hostVeth} br-${n.Id.slice(0, 12)} ${MARK}`,
      `nft ${TABLE}`,
    ]);
    assert.deepEqual(
      m.ports(a.id).map((p) => p.hostPort),
      [8081],
      'a port the host holds is skipped',
    );
    assert.match(host.table, /ip daddr 127\.0\.0\.1 tcp dport 8081 dnat to 10\.88\.0\.2:80/);

    // a second container asking for the same port: refused, its endpoint undone, nothing kept
    host.calls.length = 0;
    const b = web('b', [{ hostIp: '', hostPort: '8081' }]);
    b.networks.push([n.Id, { aliases: [] }]);
    await assert.rejects(m.attach(b, { pid: 78 }), /Bind for 0\.0\.0\.0:8081 failed: port is already allocated/);
    assert.deepEqual(m.endpoints({ containerId: b.id }), []);
    assert.ok(
      host.calls.some((c) => /^ip -force link del vb/.test(c)),
      'its veth is deleted',
    );
    assert.equal(m.addressFree(n.Id, '10.88.0.3'), true, 'its address is released');

    // the first one's process ends: nothing to delete on the host; its port goes from the table
    host.calls.length = 0;
    await m.detach(a.id, undefined, true);
    assert.deepEqual(host.calls, [`nft ${TABLE}`]);
    assert.doesNotMatch(host.table, /dnat to/);
    assert.deepEqual(m.endpoints(), []);
  } finally {
    done();
  }
});

test('init: the default network made, bridges up again, dead endpoints released, stale links deleted', async () => {
  const { m, host, again, done } = setup();
  try {
    const n = await m.create({ Name: 'n1', IPAM: { Config: [{ Subnet: '10.88.0.0/24' }] } });
    const a = web('a');
    a.networks.push([n.Id, { aliases: [] }]);
    await m.attach(a, { pid: 77 });
    const veth = m.endpoints()[0]!.hostVeth;
    m.close();
    // the daemon was down: the container died (its veth with it); a link of ours nobody names is left
    host.devices.delete(veth);
    host.devices.set('vbstale00000', { ifname: 'vbstale00000', ifalias: MARK });
    host.devices.set('eth9', { ifname: 'eth9', ifalias: 'not-ours' });
    host.calls.length = 0;
    const m2 = again();
    await m2.init();
    assert.equal(host.calls[0], 'forwarding');
    assert.ok(host.calls.includes(`ip link set br-${n.Id.slice(0, 12)} up`));
    assert.ok(host.calls.includes('ip link add bb-0123abcd type bridge'), 'the default network');
    assert.deepEqual(m2.endpoints(), []);
    assert.ok(host.calls.includes('ip -force link del vbstale00000'));
    assert.ok(host.devices.has('eth9'), "a link that is not berth's stays");
    assert.equal(host.calls.at(-1), `nft ${TABLE}`);
    assert.deepEqual(
      m2.list().map((x) => [x.Name, x.isDefault, x.Driver, !!x.predefined]),
      [
        ['bridge', true, 'bridge', false],
        // dockerd's other pre-defined networks, made once (no device: drivers `host` and `null`)
        ['host', false, 'host', true],
        ['n1', false, 'bridge', false],
        ['none', false, 'null', true],
      ],
    );
    m2.close();
  } finally {
    done();
  }
});

// --- issue 16 (Fidelity): what dockerd 20.10 answers (see test/integration/fidelity-networks.test.ts) ---

test('names as dockerd takes them (any non-blank name, no control characters); host and none are pre-defined', async () => {
  const { m, done } = setup();
  try {
    await m.init();
    for (const name of ['my net', ' lead', 'Cap.Net-1', 'a/b']) {
      const n = await m.create({ Name: name });
      assert.equal(n.bridge, `br-${n.Id.slice(0, 12)}`, 'the device is named from the id');
    }
    const code = async (p: Promise<unknown>) =>
      p.then(
        () => 'ok',
        (e: unknown) => (isBerthError(e) ? `${e.code}: ${e.message}` : String(e)),
      );
    assert.equal(await code(m.create({ Name: '   ' })), 'InvalidArgument: invalid name:    ');
    assert.match(await code(m.create({ Name: 'a\nb' })), /^InvalidArgument: .*control characters/);
    assert.equal(
      await code(m.create({ Name: 'host' })),
      'PermissionDenied: operation is not permitted on predefined host network ',
    );
    assert.equal(await code(m.remove('none')), 'PermissionDenied: none is a pre-defined network and cannot be removed');
    assert.equal(
      await code(m.remove('bridge')),
      'PermissionDenied: bridge is a pre-defined network and cannot be removed',
    );
    assert.match(await code(m.create({ Name: 'x', Driver: 'null' })), /^PermissionDenied: only one instance/);
    const host = m.get('host');
    assert.deepEqual([host.Driver, host.IPAM.Config, host.IPAM.Options], ['host', [], null]);
    assert.match(
      await code(m.attach({ ...web('h'), networks: [[host.Id, { aliases: [] }]] }, { pid: 90 })),
      /^InvalidArgument: network host has no endpoints/,
    );
  } finally {
    done();
  }
});

test('IPv6: a v6 subnet and gateway on the bridge, an address per endpoint (lowest free, auxiliary ones skipped), the route', async () => {
  const { m, host, done } = setup();
  try {
    const code = (p: Promise<unknown>) =>
      p.then(
        () => 'ok',
        (e: unknown) => (isBerthError(e) ? e.code : String(e)),
      );
    assert.equal(await code(m.create({ Name: 'nopool', EnableIPv6: true })), 'NotFound', 'no default IPv6 pool');
    const n = await m.create({
      Name: 'six',
      EnableIPv6: true,
      IPAM: {
        Options: { o: '1' },
        Config: [
          { Subnet: '10.77.0.0/24', AuxiliaryAddresses: { r: '10.77.0.2' } },
          { Subnet: 'fd00:77::/64', AuxiliaryAddresses: { r6: 'fd00:77::2' } },
        ],
      },
    });
    assert.deepEqual(n.IPAM.Options, { o: '1' });
    assert.deepEqual(
      n.IPAM.Config.map((c) => [c.Subnet, c.Gateway]),
      [
        ['10.77.0.0/24', '10.77.0.1'],
        ['fd00:77::/64', 'fd00:77::1'],
      ],
    );
    assert.ok(host.calls.includes(`ip -force addr add fd00:77::1/64 dev br-${n.Id.slice(0, 12)} nodad`));
    assert.equal(
      await code(m.create({ Name: 'clash', IPAM: { Config: [{ Subnet: 'fd00:77::/48' }] } })),
      'Conflict',
      'overlapping IPv6 subnets',
    );
    const a = web('a');
    a.networks.push([n.Id, { aliases: [] }]);
    host.calls.length = 0;
    await m.attach(a, { pid: 77 });
    const ep = m.endpoints({ containerId: a.id })[0]!;
    assert.deepEqual([ep.ip, ep.ip6, ep.prefix6, ep.gateway6], ['10.77.0.3', 'fd00:77::3', 64, 'fd00:77::1']);
    assert.ok(host.calls.includes('ip -n ../../proc/77/ns/net addr add fd00:77::3/64 dev eth0 nodad'));
    assert.ok(host.calls.includes('ip -n ../../proc/77/ns/net route add ::/0 via fd00:77::1 dev eth0'));
    const b = web('b');
    b.networks.push([n.Id, { aliases: [], ipv6: 'fd00:77::3' }]);
    assert.equal(await code(m.attach(b, { pid: 78 })), 'Conflict', 'a taken IPv6 address');
    assert.deepEqual(m.endpoints({ containerId: b.id }), [], 'nothing left of it');
    // without EnableIPv6 a v6 subnet is kept, and endpoints get no IPv6 address (dockerd)
    const off = await m.create({
      Name: 'off',
      IPAM: { Config: [{ Subnet: '10.78.0.0/24' }, { Subnet: 'fd00:78::/64' }] },
    });
    assert.equal(off.EnableIPv6, false);
    const c = web('c');
    c.networks.push([off.Id, { aliases: [] }]);
    await m.attach(c, { pid: 79 });
    assert.equal(m.endpoints({ containerId: c.id })[0]!.ip6, undefined);
  } finally {
    done();
  }
});

test('the name server resolves like dockerd: any case, hostnames, name.network, link aliases, current names', async () => {
  const { m, done } = setup();
  try {
    const n = await m.create({ Name: 'app', IPAM: { Config: [{ Subnet: '10.79.0.0/24' }] } });
    const other = await m.create({ Name: 'other', IPAM: { Config: [{ Subnet: '10.80.0.0/24' }] } });
    const names = new Map<
      string,
      { name: string; hostname: string; links: Array<{ target: string; alias: string }> }
    >();
    m.containers = {
      of: (id) => names.get(id),
      idOf: (ref) => [...names.entries()].find(([id, c]) => id === ref || c.name === ref)?.[0],
    };
    const join = async (c: ReturnType<typeof web>, hostname: string, nets: Array<[string, string[]]>, pid: number) => {
      for (const [id, aliases] of nets) c.networks.push([id, { aliases, links: id === other.Id ? ['a:vialink'] : [] }]);
      names.set(c.id, { name: c.name, hostname, links: [] });
      await m.attach(c, { pid });
    };
    const a = web('a');
    const b = web('b');
    const cc = web('c');
    await join(a, 'MyHost', [[n.Id, ['Web']]], 80);
    await join(b, 'bhost', [[n.Id, []]], 81);
    await join(
      cc,
      'chost',
      [
        [n.Id, []],
        [other.Id, []],
      ],
      82,
    );
    names.get(cc.id)!.links = [{ target: 'a', alias: 'lk' }];
    const ip = (c: { id: string }, net = n.Id) =>
      m.endpoints({ containerId: c.id }).find((e) => e.networkId === net)!.ip;
    const from = (c: { id: string }, q: string) => m.resolve(n.Id, q, ip(c)).v4;
    assert.deepEqual(from(b, 'A'), [ip(a)], 'capitals');
    assert.deepEqual(from(b, 'web'), [ip(a)], 'an alias given in capitals');
    assert.deepEqual(from(b, 'myhost'), [ip(a)], 'a hostname');
    assert.deepEqual(from(a, 'MYHOST'), [ip(a)], 'its own hostname');
    assert.deepEqual(from(b, 'a.app'), [ip(a)], 'name.network');
    assert.deepEqual(from(b, 'a.nosuchnet'), [], 'a network it is not on');
    assert.deepEqual(from(b, 'A.app'), [ip(a)], 'the name in any case');
    assert.deepEqual(from(b, 'a.APP'), [], "the network's name exactly (dockerd: C2.V6 is unknown)");
    assert.deepEqual(from(b, a.id.slice(0, 12)), [ip(a)], 'the short id');
    assert.deepEqual(from(cc, 'lk'), [ip(a)], 'its link alias');
    assert.deepEqual(from(b, 'lk'), [], "another container's link alias");
    assert.deepEqual(from(b, 'c.other'), [], 'b is not on other');
    assert.deepEqual(from(cc, 'c.other'), [ip(cc, other.Id)], 'c is, and asks for other');
    names.get(a.id)!.name = 'renamed';
    assert.deepEqual(from(b, 'renamed'), [ip(a)], 'a rename shows at once');
    assert.deepEqual(from(b, 'a'), []);
    await m.detach(a.id);
    assert.deepEqual(from(b, 'renamed'), [], 'gone with its endpoint');
  } finally {
    done();
  }
});
