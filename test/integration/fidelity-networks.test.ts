/**
 * Issue #16 (Fidelity), networks: berth's answers compared field by field with what a private
 * dockerd 20.10 answered on this machine (2026-12-02; `--bridge=none --iptables=false`, its
 * answers are quoted in the comments; CI runs these tests against berthd only). Traffic stays
 * on the bridges and in the containers' namespaces these tests make.
 */
import { before, after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startDaemon, type Daemon } from './harness.js';

type Net = {
  Name: string;
  Id: string;
  Driver: string;
  Scope: string;
  EnableIPv6: boolean;
  IPAM: { Driver: string; Options: Record<string, string> | null; Config: Array<Record<string, unknown>> };
  Containers: Record<string, { Name: string; IPv4Address: string; IPv6Address: string; MacAddress: string }>;
  Options: Record<string, string>;
  Labels: Record<string, string>;
  Internal: boolean;
  Attachable: boolean;
  Ingress: boolean;
  ConfigFrom: { Network: string };
  ConfigOnly: boolean;
  Created: string;
};
type EndpointView = {
  IPAMConfig: Record<string, unknown> | null;
  Links: string[] | null;
  Aliases: string[] | null;
  DriverOpts: Record<string, string> | null;
  MacAddress: string;
  IPAddress: string;
  IPv6Gateway: string;
  GlobalIPv6Address: string;
  GlobalIPv6PrefixLen: number;
};

// subnets unlikely to be anyone else's on this machine
const SUB4 = '10.163.57.0/24';
const SUB6 = 'fd00:b37:16::/64';

describe('networks as dockerd answers them', () => {
  let d: Daemon;
  const links = () =>
    (JSON.parse(execFileSync('ip', ['-j', 'link', 'show']).toString()) as Array<{ ifname: string }>).map(
      (l) => l.ifname,
    );
  const net = async (ref: string) => {
    const r = await d.api('GET', `/networks/${encodeURIComponent(ref)}`);
    assert.equal(r.status, 200, r.text);
    return r.body as Net;
  };
  const endpointOf = async (container: string, network: string) => {
    const r = await d.api('GET', `/containers/${container}/json`);
    return (r.body as { NetworkSettings: { Networks: Record<string, EndpointView> } }).NetworkSettings.Networks[
      network
    ]!;
  };
  /** busybox nslookup's answers (addresses after the server's), [] when the name is unknown */
  const lookup = async (container: string, name: string, type = 'a') => {
    const r = await d.docker(['exec', container, 'nslookup', `-type=${type}`, name], { allowFail: true });
    return r.stdout
      .split(/Name:\s/)
      .slice(1)
      .flatMap((s) => [...s.matchAll(/Address:\s+(\S+)/g)].map((m) => m[1]!));
  };

  before(async () => {
    d = await startDaemon();
  });
  after(async () => {
    await d?.stop();
  });

  test('host and none are listed and inspected with dockerd fields, and cannot be removed or made', async () => {
    const list = (await d.api('GET', '/networks')).body as Net[];
    assert.deepEqual(list.map((n) => n.Name).sort(), ['bridge', 'host', 'none']);
    for (const [name, driver] of [
      ['host', 'host'],
      ['none', 'null'],
    ] as const) {
      // dockerd: {"Name":"host","Id":"276c…","Created":"…","Scope":"local","Driver":"host","EnableIPv6":false,
      //   "IPAM":{"Driver":"default","Options":null,"Config":[]},"Internal":false,"Attachable":false,"Ingress":false,
      //   "ConfigFrom":{"Network":""},"ConfigOnly":false,"Containers":{},"Options":{},"Labels":{}}
      const n = await net(name);
      const { Id, Created, ...rest } = n;
      assert.match(Id, /^[0-9a-f]{64}$/);
      assert.ok(!Number.isNaN(Date.parse(Created)));
      assert.deepEqual(rest, {
        Name: name,
        Scope: 'local',
        Driver: driver,
        EnableIPv6: false,
        IPAM: { Driver: 'default', Options: null, Config: [] },
        Internal: false,
        Attachable: false,
        Ingress: false,
        ConfigFrom: { Network: '' },
        ConfigOnly: false,
        Containers: {},
        Options: {},
        Labels: {},
      });
      assert.deepEqual(
        Object.keys(n),
        Object.keys(list.find((x) => x.Name === name)!),
        'list and inspect have the same fields',
      );
      // dockerd: 403 {"message":"host is a pre-defined network and cannot be removed"}
      const del = await d.api('DELETE', `/networks/${name}`);
      assert.equal(del.status, 403, del.text);
      assert.equal((del.body as { message: string }).message, `${name} is a pre-defined network and cannot be removed`);
      // dockerd: 403 {"message":"operation is not permitted on predefined host network "}
      const mk = await d.api('POST', '/networks/create', { Name: name });
      assert.equal(mk.status, 403, mk.text);
      assert.equal(
        (mk.body as { message: string }).message,
        `operation is not permitted on predefined ${name} network `,
      );
      // by id prefix too
      assert.equal((await net(Id.slice(0, 12))).Name, name);
    }
    const del = await d.api('DELETE', '/networks/bridge');
    assert.equal(del.status, 403, del.text);
    assert.match(del.text, /bridge is a pre-defined network and cannot be removed/);
    // the CLI's view: `docker network ls` and the builtin filter
    const ls = (await d.docker(['network', 'ls', '--format', '{{.Name}} {{.Driver}} {{.Scope}}'])).stdout;
    assert.match(ls, /^host host local$/m);
    assert.match(ls, /^none null local$/m);
    const builtin = (await d.docker(['network', 'ls', '-q', '--filter', 'type=builtin', '--format', '{{.Name}}']))
      .stdout;
    assert.deepEqual(builtin.trim().split('\n').sort(), ['bridge', 'host', 'none']);
    // connecting a container to them: dockerd's 400s
    await d.docker(['create', '--name', 'plain', 'busybox', 'true']);
    const ch = await d.api('POST', '/networks/host/connect', { Container: 'plain' });
    assert.equal(ch.status, 400);
    assert.match(ch.text, /container cannot be disconnected from host network or connected to host network/);
    const cn = await d.api('POST', '/networks/none/connect', { Container: 'plain' });
    assert.equal(cn.status, 400);
    assert.match(cn.text, /one of the networks in private \(none\) mode/);
    // `--network host` still runs in the host's namespace; prune leaves the pre-defined ones
    const hostLinks = (await d.docker(['run', '--rm', '--network', 'host', 'busybox', 'ip', 'link'])).stdout;
    assert.match(hostLinks, /\blo\b/);
    // dockerd's inspect lists the running `--network host`/`none` containers, without addresses:
    // {"<id>":{"Name":"h1","EndpointID":"6a74…","MacAddress":"","IPv4Address":"","IPv6Address":""}}
    const h1 = (
      await d.docker(['run', '-d', '--name', 'h1', '--network', 'host', 'busybox', 'sleep', '60'])
    ).stdout.trim();
    const n1 = (
      await d.docker(['run', '-d', '--name', 'n1', '--network', 'none', 'busybox', 'sleep', '60'])
    ).stdout.trim();
    for (const [name, id, cname] of [
      ['host', h1, 'h1'],
      ['none', n1, 'n1'],
    ] as const) {
      const cs = (await net(name)).Containers as unknown as Record<string, Record<string, string>>;
      assert.deepEqual(Object.keys(cs), [id]);
      const { EndpointID, ...rest } = cs[id]!;
      assert.match(EndpointID!, /^[0-9a-f]{64}$/);
      assert.deepEqual(rest, { Name: cname, MacAddress: '', IPv4Address: '', IPv6Address: '' });
    }
    // dockerd: 200 for none, 400 for host
    assert.equal((await d.api('POST', '/networks/none/disconnect', { Container: 'n1' })).status, 200);
    const dh = await d.api('POST', '/networks/host/disconnect', { Container: 'h1' });
    assert.equal(dh.status, 400);
    assert.match(dh.text, /container cannot be disconnected from host network or connected to host network/);
    await d.docker(['rm', '-f', 'h1', 'n1']);
    assert.deepEqual((await net('host')).Containers, {});
    const pruned = (await d.api('POST', '/networks/prune')).body as { NetworksDeleted: string[] | null };
    assert.ok(!(pruned.NetworksDeleted ?? []).some((n) => ['host', 'none', 'bridge'].includes(n)));
    // the ids stay across a restart (they are records, made once)
    const before = (await net('host')).Id;
    await d.restart();
    assert.equal((await net('host')).Id, before);
    assert.equal(((await d.api('GET', '/networks')).body as Net[]).length, 3);
    await d.docker(['rm', 'plain']);
  });

  test('names dockerd accepts (spaces, dots, capitals, a leading blank) are accepted; the bridge is named from the id', async () => {
    // dockerd 20.10 answered 201 to all of these, and 500 "invalid name:    " to a blank name
    const ids: string[] = [];
    for (const name of ['my net', ' lead', 'Cap.Net-1', 'x'.repeat(80)]) {
      const r = await d.api('POST', '/networks/create', { Name: name });
      assert.equal(r.status, 201, `${JSON.stringify(name)}: ${r.text}`);
      const id = (r.body as { Id: string }).Id;
      ids.push(id);
      assert.equal((await net(name)).Id, id);
      assert.ok(links().includes(`br-${id.slice(0, 12)}`), 'the bridge is br-<id[:12]>');
    }
    const { status, text } = await d.api('POST', '/networks/create', { Name: 'my net' });
    assert.equal(status, 409, text);
    assert.match(text, /network with name my net already exists/);
    // a container runs on a network whose name has a space, and is named by it in inspect
    await d.docker(['run', '-d', '--name', 'spaced', '--network', 'my net', 'busybox', 'sleep', '60']);
    const ep = await endpointOf('spaced', 'my net');
    assert.match(ep.IPAddress, /^\d+\.\d+\.\d+\.\d+$/);
    await d.docker(['rm', '-f', 'spaced']);
    const before = ((await d.api('GET', '/networks')).body as Net[]).length;
    for (const bad of ['', '   ', 'new\nline', 'tab\there']) {
      const r = await d.api('POST', '/networks/create', { Name: bad });
      assert.equal(r.status, 400, `${JSON.stringify(bad)}: ${r.text}`);
    }
    assert.equal(((await d.api('GET', '/networks')).body as Net[]).length, before, 'nothing stored');
    for (const id of ids) assert.equal((await d.api('DELETE', `/networks/${id}`)).status, 204);
    for (const id of ids) assert.ok(!links().includes(`br-${id.slice(0, 12)}`));
  });

  test('IPAM Options read null when unset and as given otherwise; AuxiliaryAddresses are kept and never handed out', async () => {
    await d.api('POST', '/networks/create', { Name: 'plainnet' });
    // dockerd: "IPAM":{"Driver":"default","Options":null,"Config":[{"Subnet":"192.168.96.0/20","Gateway":"192.168.96.1"}]}
    const plain = await net('plainnet');
    assert.equal(plain.IPAM.Options, null);
    assert.equal(plain.IPAM.Driver, 'default');
    assert.deepEqual(Object.keys(plain.IPAM.Config[0]!).sort(), ['Gateway', 'Subnet']);
    const r = await d.api('POST', '/networks/create', {
      Name: 'auxnet',
      IPAM: {
        Options: { a: 'b' },
        Config: [{ Subnet: SUB4, Gateway: '10.163.57.1', AuxiliaryAddresses: { router: '10.163.57.2' } }],
      },
    });
    assert.equal(r.status, 201, r.text);
    // dockerd: "Options":{"a":"b"}, "Config":[{…,"AuxiliaryAddresses":{"r":"10.99.0.2"}}]
    const aux = await net('auxnet');
    assert.deepEqual(aux.IPAM.Options, { a: 'b' });
    assert.deepEqual(aux.IPAM.Config, [
      { Subnet: SUB4, Gateway: '10.163.57.1', AuxiliaryAddresses: { router: '10.163.57.2' } },
    ]);
    // dockerd's key order with an ip-range: Subnet, IPRange, Gateway, AuxiliaryAddresses
    const ranged = await d.api('POST', '/networks/create', {
      Name: 'ranged',
      IPAM: {
        Config: [
          {
            AuxiliaryAddresses: { x: '10.163.60.2' },
            Gateway: '10.163.60.1',
            IPRange: '10.163.60.128/25',
            Subnet: '10.163.60.0/24',
          },
        ],
      },
    });
    assert.equal(ranged.status, 201, ranged.text);
    assert.deepEqual(Object.keys((await net('ranged')).IPAM.Config[0]!), [
      'Subnet',
      'IPRange',
      'Gateway',
      'AuxiliaryAddresses',
    ]);
    await d.docker(['network', 'rm', 'ranged']);
    await d.docker(['run', '-d', '--name', 'auxc', '--network', 'auxnet', 'busybox', 'sleep', '60']);
    assert.equal((await endpointOf('auxc', 'auxnet')).IPAddress, '10.163.57.3', 'the auxiliary address is skipped');
    const outside = await d.api('POST', '/networks/create', {
      Name: 'badaux',
      IPAM: { Config: [{ Subnet: '10.163.58.0/24', AuxiliaryAddresses: { r: '10.1.1.1' } }] },
    });
    // dockerd: 403 "auxiliary address: (a:10.1.1.1) must belong to the master pool: 10.163.72.0/24"
    assert.equal(outside.status, 403, outside.text);
    assert.equal(
      (outside.body as { message: string }).message,
      'auxiliary address: (r:10.1.1.1) must belong to the master pool: 10.163.58.0/24',
    );
    assert.equal((await d.api('GET', '/networks/badaux')).status, 404, 'nothing stored');
    // dockerd: 403 "bridge driver doesn't support multiple subnets"
    const two = await d.api('POST', '/networks/create', {
      Name: 'two',
      IPAM: { Config: [{ Subnet: '10.163.70.0/24' }, { Subnet: '10.163.71.0/24' }] },
    });
    assert.equal(two.status, 403, two.text);
    assert.match(two.text, /bridge driver doesn't support multiple subnets/);
    // dockerd (500): "failed to allocate gateway (10.1.1.1): Requested address is out of range"
    const gw = await d.api('POST', '/networks/create', {
      Name: 'gw',
      IPAM: { Config: [{ Subnet: '10.163.73.0/24', Gateway: '10.1.1.1' }] },
    });
    assert.equal(gw.status, 400, gw.text);
    assert.match(gw.text, /failed to allocate gateway \(10\.1\.1\.1\): Requested address is out of range/);
    // filters as dockerd checks them
    const bad = async (path: string, status: number, msg: string) => {
      const r = await d.api(path.includes('prune') ? 'POST' : 'GET', path);
      assert.equal(r.status, status, `${path}: ${r.text}`);
      assert.equal((r.body as { message: string }).message, msg);
    };
    const q = (o: unknown) => encodeURIComponent(JSON.stringify(o));
    await bad(`/networks?filters=${q({ foo: ['x'] })}`, 400, "Invalid filter 'foo'");
    await bad(`/networks?filters=${q({ type: ['x'] })}`, 400, "invalid filter: 'type'='x'"); // dockerd: 500
    await bad(
      `/networks?filters=${q({ dangling: ['x'] })}`,
      400,
      'invalid value for filter \'dangling\', must be "true" (or "1"), or "false" (or "0")',
    );
    await bad(`/networks/prune?filters=${q({ foo: ['x'] })}`, 400, "Invalid filter 'foo'");
    await bad(
      `/networks/prune?filters=${q({ until: ['bogus'] })}`,
      400,
      'failed to parse value as time or duration: "bogus"',
    );
    const names = async (f: unknown) =>
      ((await d.api('GET', `/networks?filters=${q(f)}`)).body as Net[]).map((n) => n.Name).sort();
    assert.deepEqual(await names({ scope: ['swarm'] }), []);
    assert.deepEqual(await names({ driver: ['null'] }), ['none']);
    assert.ok((await names({ scope: ['local'] })).includes('host'));
    // inspect in another scope: dockerd 404 "network none not found"
    assert.equal((await d.api('GET', '/networks/none?scope=swarm')).status, 404);
    // prune: until spares the newer ones, label! the matching ones; nothing pruned reads null (dockerd)
    await d.api('POST', '/networks/create', { Name: 'keepme', Labels: { keep: '1' } });
    assert.deepEqual((await d.api('POST', `/networks/prune?filters=${q({ until: ['10m'] })}`)).body, {
      NetworksDeleted: null,
    });
    assert.deepEqual((await d.api('POST', `/networks/prune?filters=${q({ 'label!': ['keep=1'] })}`)).body, {
      NetworksDeleted: ['plainnet'],
    });
    await d.docker(['network', 'rm', 'keepme']);
    await d.docker(['rm', '-f', 'auxc']);
    await d.docker(['network', 'rm', 'auxnet']);
  });

  test('IPv6: EnableIPv6 with an IPv6 subnet gives endpoints IPv6 addresses, shown as dockerd shows them, and they work', async () => {
    // dockerd: no default IPv6 pool: 404 "could not find an available, non-overlapping IPv6 address pool among
    // the defaults to assign to the network"
    const nopool = await d.api('POST', '/networks/create', { Name: 'v6nopool', EnableIPv6: true });
    assert.equal(nopool.status, 404, nopool.text);
    assert.match(nopool.text, /could not find an available, non-overlapping IPv6 address pool/);
    const r = await d.api('POST', '/networks/create', {
      Name: 'v6',
      EnableIPv6: true,
      IPAM: { Config: [{ Subnet: SUB4 }, { Subnet: SUB6 }] },
    });
    assert.equal(r.status, 201, r.text);
    const n = await net('v6');
    assert.equal(n.EnableIPv6, true);
    // dockerd: "Config":[{"Subnet":"172.30.0.0/16"},{"Subnet":"fd00:dead:beef::/64"}]: no Gateway when not asked
    assert.deepEqual(n.IPAM.Config, [{ Subnet: SUB4 }, { Subnet: SUB6 }]);
    await d.docker(['run', '-d', '--name', 'six1', '--network', 'v6', 'busybox', 'sleep', '120']);
    await d.docker(['create', '--name', 'six2', 'busybox', 'sleep', '120']);
    const c = await d.api('POST', '/networks/v6/connect', {
      Container: 'six2',
      EndpointConfig: { IPAMConfig: { IPv4Address: '10.163.57.55', IPv6Address: 'fd00:b37:16::55' } },
    });
    assert.equal(c.status, 200, c.text);
    await d.docker(['start', 'six2']);
    // dockerd's container inspect: "IPv6Gateway":"fd00:dead:beef::1","GlobalIPv6Address":"fd00:dead:beef::2",
    // "GlobalIPv6PrefixLen":64; network inspect "IPv6Address":"fd00:dead:beef::2/64"
    const e1 = await endpointOf('six1', 'v6');
    assert.equal(e1.GlobalIPv6Address, 'fd00:b37:16::2');
    assert.equal(e1.GlobalIPv6PrefixLen, 64);
    assert.equal(e1.IPv6Gateway, 'fd00:b37:16::1');
    const e2 = await endpointOf('six2', 'v6');
    assert.equal(e2.GlobalIPv6Address, 'fd00:b37:16::55');
    assert.deepEqual(e2.IPAMConfig, { IPv4Address: '10.163.57.55', IPv6Address: 'fd00:b37:16::55' });
    const inNet = Object.values((await net('v6')).Containers)
      .map((x) => `${x.Name} ${x.IPv6Address}`)
      .sort();
    assert.deepEqual(inNet, ['six1 fd00:b37:16::2/64', 'six2 fd00:b37:16::55/64']);
    // really there: the address on the interface, the default route, a ping over the bridge, /etc/hosts, AAAA
    const addr = (await d.docker(['exec', 'six1', 'ip', '-6', 'addr', 'show', 'eth0'])).stdout;
    assert.match(addr, /inet6 fd00:b37:16::2\/64/);
    assert.match((await d.docker(['exec', 'six1', 'ip', '-6', 'route'])).stdout, /default via fd00:b37:16::1/);
    const ping = await d.docker(['exec', 'six1', 'ping', '-c', '1', '-W', '3', 'fd00:b37:16::55'], { allowFail: true });
    assert.equal(ping.code, 0, ping.stdout + ping.stderr);
    assert.match((await d.docker(['exec', 'six2', 'cat', '/etc/hosts'])).stdout, /^fd00:b37:16::55\t/m);
    assert.deepEqual(await lookup('six2', 'six1', 'aaaa'), ['fd00:b37:16::2']);
    assert.deepEqual(await lookup('six2', 'six1', 'a'), ['10.163.57.2']);
    // IPv6 stays inside its network (berth has no IPv6 NAT; this host forwards IPv6): the daemon's ip6 table
    const mark = readFileSync(join(d.root, 'engine-id'), 'utf8').trim().replace(/-/g, '').slice(0, 8);
    assert.match(execFileSync('nft', ['list', 'table', 'ip6', `berth_${mark}`]).toString(), /oifname != "br-/);
    await d.api('POST', '/networks/create', {
      Name: 'v6b',
      EnableIPv6: true,
      IPAM: { Config: [{ Subnet: '10.163.61.0/24' }, { Subnet: 'fd00:b37:18::/64' }] },
    });
    await d.docker(['run', '-d', '--name', 'sixb', '--network', 'v6b', 'busybox', 'sleep', '60']);
    const across = await d.docker(['exec', 'six1', 'ping', '-c', '2', '-w', '5', 'fd00:b37:18::2'], {
      allowFail: true,
    });
    assert.notEqual(across.code, 0, 'no IPv6 traffic between two networks');
    await d.docker(['rm', '-f', 'sixb']);
    await d.docker(['network', 'rm', 'v6b']);
    // a static IPv6 address outside the subnet: refused, nothing changed; a taken one: refused at start
    await d.docker(['create', '--name', 'six3', 'busybox', 'sleep', '120']);
    const bad = await d.api('POST', '/networks/v6/connect', {
      Container: 'six3',
      EndpointConfig: { IPAMConfig: { IPv6Address: 'fd00:999::1' } },
    });
    assert.equal(bad.status, 400, bad.text);
    assert.equal(await endpointOf('six3', 'v6'), undefined);
    const taken = await d.api('POST', '/networks/v6/connect', {
      Container: 'six3',
      EndpointConfig: { IPAMConfig: { IPv6Address: 'fd00:b37:16::55' } },
    });
    assert.equal(taken.status, 200, taken.text);
    const st = await d.docker(['start', 'six3'], { allowFail: true });
    assert.notEqual(st.code, 0);
    assert.match(st.stderr, /Address already in use: fd00:b37:16::55/);
    assert.equal(Object.keys((await net('v6')).Containers).length, 2, 'no endpoint left behind');
    // an IPv6 subnet without EnableIPv6 (dockerd keeps it and gives no IPv6 addresses)
    const off = await d.api('POST', '/networks/create', {
      Name: 'v6off',
      IPAM: { Config: [{ Subnet: '10.163.59.0/24' }, { Subnet: 'fd00:b37:17::/64' }] },
    });
    assert.equal(off.status, 201, off.text);
    assert.equal((await net('v6off')).EnableIPv6, false);
    await d.docker(['run', '-d', '--name', 'sixoff', '--network', 'v6off', 'busybox', 'sleep', '60']);
    assert.equal((await endpointOf('sixoff', 'v6off')).GlobalIPv6Address, '');
    await d.docker(['rm', '-f', 'six1', 'six2', 'six3', 'sixoff']);
    await d.docker(['network', 'rm', 'v6', 'v6off']);
    const gone = await d.docker(['network', 'ls', '-q'], {});
    assert.ok(gone.code === 0);
    assert.throws(
      () => execFileSync('nft', ['list', 'table', 'ip6', `berth_${mark}`], { stdio: 'pipe' }),
      'the ip6 table goes with the last IPv6 network',
    );
  });

  test('the name server: any case, hostnames, name.network, link aliases, and a rename at once', async () => {
    await d.docker(['network', 'create', 'dnsnet']);
    await d.docker([
      'run',
      '-d',
      '--name',
      'c1',
      '--hostname',
      'myhost',
      '--network',
      'dnsnet',
      'busybox',
      'sleep',
      '120',
    ]);
    await d.docker([
      'run',
      '-d',
      '--name',
      'c2',
      '--network',
      'dnsnet',
      '--network-alias',
      'al',
      'busybox',
      'sleep',
      '120',
    ]);
    await d.docker(['run', '-d', '--name', 'c3', '--network', 'dnsnet', '--link', 'c1:lk', 'busybox', 'sleep', '120']);
    const ip1 = (await endpointOf('c1', 'dnsnet')).IPAddress;
    const ip2 = (await endpointOf('c2', 'dnsnet')).IPAddress;
    // what dockerd's embedded server answered for the same names (c1 -> c2, C2, c2.v6, al; c3 -> lk, lk.v6, myhost)
    assert.deepEqual(await lookup('c1', 'C2'), [ip2], 'capitals');
    assert.deepEqual(await lookup('c1', 'c2.dnsnet'), [ip2], 'name.network');
    assert.deepEqual(await lookup('c1', 'AL'), [ip2], 'an alias in capitals');
    assert.deepEqual(await lookup('c1', 'myhost'), [ip1], 'its own hostname');
    assert.deepEqual(await lookup('c3', 'MyHost'), [ip1], "another container's hostname");
    assert.deepEqual(await lookup('c3', 'myhost.dnsnet'), [ip1]);
    assert.deepEqual(await lookup('c3', 'lk'), [ip1], 'a link alias');
    assert.deepEqual(await lookup('c3', 'lk.dnsnet'), [ip1]);
    assert.deepEqual(await lookup('c2', 'lk'), [], 'a link alias is only for the linking container');
    assert.deepEqual(await lookup('c1', 'nosuch'), []);
    // a rename shows at once (dockerd: `docker rename c1 renamed`, then `renamed` resolves)
    await d.docker(['rename', 'c1', 'renamed']);
    assert.deepEqual(await lookup('c2', 'renamed'), [ip1]);
    assert.deepEqual(await lookup('c2', 'c1'), [], 'the old name is gone');
    const names = ((await endpointOf('renamed', 'dnsnet')) as unknown as { DNSNames: string[] }).DNSNames;
    assert.equal(names[0], 'renamed', 'inspect shows the current name in DNSNames');
    // EndpointSettings.Links on connect: the alias resolves for that container on that network
    await d.docker(['network', 'create', 'dnsnet2']);
    const c = await d.api('POST', '/networks/dnsnet2/connect', {
      Container: 'c3',
      EndpointConfig: { Links: ['c2:viaconnect'] },
    });
    assert.equal(c.status, 200, c.text);
    await d.api('POST', '/networks/dnsnet2/connect', { Container: 'c2' });
    assert.deepEqual(await lookup('c3', 'viaconnect'), [(await endpointOf('c2', 'dnsnet2')).IPAddress]);
    await d.docker(['rm', '-f', 'renamed', 'c2', 'c3']);
    await d.docker(['network', 'rm', 'dnsnet', 'dnsnet2']);
  });

  test('connect keeps Links, DriverOpts, LinkLocalIPs and MacAddress, shows them back, and applies the MAC and addresses', async () => {
    await d.docker(['network', 'create', 'fieldnet']);
    await d.docker(['run', '-d', '--name', 'target', '--network', 'fieldnet', 'busybox', 'sleep', '120']);
    await d.docker(['run', '-d', '--name', 'f1', 'busybox', 'sleep', '120']);
    // the body dockerd was sent; its inspect echoed IPAMConfig (LinkLocalIPs), Links, Aliases, DriverOpts
    const body = {
      Container: 'f1',
      EndpointConfig: {
        Aliases: ['al'],
        Links: ['target:lnk'],
        DriverOpts: { k: 'v' },
        MacAddress: '02:42:ac:11:00:99',
        IPAMConfig: { LinkLocalIPs: ['169.254.7.7'] },
      },
    };
    const r = await d.api('POST', '/networks/fieldnet/connect', body);
    assert.equal(r.status, 200, r.text);
    const ep = await endpointOf('f1', 'fieldnet');
    assert.deepEqual(ep.IPAMConfig, { LinkLocalIPs: ['169.254.7.7'] });
    assert.deepEqual(ep.Links, ['target:lnk']);
    assert.deepEqual(ep.DriverOpts, { k: 'v' });
    assert.deepEqual(ep.Aliases, ['al']);
    // dockerd 20.10 ignored the MAC on connect; API 1.44+ applies it, and so does berth
    assert.equal(ep.MacAddress, '02:42:ac:11:00:99');
    const link = (await d.docker(['exec', 'f1', 'ip', 'addr', 'show', 'eth1'])).stdout;
    assert.match(link, /link\/ether 02:42:ac:11:00:99/);
    assert.match(link, /inet 169\.254\.7\.7\//);
    assert.deepEqual(await lookup('f1', 'lnk'), [(await endpointOf('target', 'fieldnet')).IPAddress]);
    // bad values: 400, nothing connected
    for (const bad of [
      { IPAMConfig: { LinkLocalIPs: ['not-an-ip'] } },
      { IPAMConfig: { LinkLocalIPs: ['0.0.0.0'] } },
      { IPAMConfig: { LinkLocalIPs: ['ff02::1'] } },
      { Links: ['a:b:c'] },
      { DriverOpts: { k: 'v\n' } },
      { MacAddress: 'zz:zz' },
    ]) {
      await d.docker(['create', '--name', 'f2', 'busybox', 'true']);
      const b = await d.api('POST', '/networks/fieldnet/connect', { Container: 'f2', EndpointConfig: bad });
      assert.equal(b.status, 400, `${JSON.stringify(bad)}: ${b.text}`);
      assert.equal(await endpointOf('f2', 'fieldnet'), undefined);
      await d.docker(['rm', 'f2']);
    }
    await d.docker(['rm', '-f', 'f1', 'target']);
    await d.docker(['network', 'rm', 'fieldnet']);
  });

  test('IPv6 where the kernel has it off (a namespace with disable_ipv6=1): EnableIPv6 is a clear 400, nothing made', async () => {
    const ns = `fnet6off${process.pid}`;
    execFileSync('ip', ['netns', 'add', ns]);
    let off: Daemon | undefined;
    try {
      execFileSync('ip', ['netns', 'exec', ns, 'sysctl', '-qw', 'net.ipv6.conf.all.disable_ipv6=1']);
      off = await startDaemon({ netns: ns });
      const r = await off.api('POST', '/networks/create', {
        Name: 'six',
        EnableIPv6: true,
        IPAM: { Config: [{ Subnet: 'fd00:b37:20::/64' }] },
      });
      assert.equal(r.status, 400, r.text);
      assert.match(r.text, /IPv6 is disabled on this host/);
      assert.equal((await off.api('GET', '/networks/six')).status, 404, 'nothing stored');
      const v4 = await off.api('POST', '/networks/create', { Name: 'four' });
      assert.equal(v4.status, 201, 'IPv4 networks still work');
    } finally {
      await off?.stop();
      execFileSync('ip', ['netns', 'del', ns]);
    }
  });
});
