/**
 * Issue #17, pod networking through CNI (src/network/cni.ts) with Debian's real plugins from
 * /usr/lib/cni: ADD into network namespaces this test makes, the gateway and the other pod reached,
 * a hostPort through portmap from the host's 127.0.0.1 to a listener in a pod, DEL removing the
 * veth, the address and portmap's and bridge's iptables rules (twice, with the netns gone, after
 * the conf changed), bad configurations refused with nothing of the pod left, and a hanging plugin
 * killed at its deadline. The conf dir, the bridge (`cnit<hex>`), the subnet (10.123.<n>.0/24) and
 * host-local's data dir are this test's own; traffic stays between the host and these namespaces.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { randomBytes } from 'node:crypto';
import { connect } from 'node:net';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { Cni, defaultConflist, writeDefaultConflist, DEFAULT_CONFLIST_FILE } from '../../src/network/cni.js';
import { CniPodNetwork } from '../../src/network/cni-pod.js';
import { isBerthError } from '../../src/base/errors.js';
import { eventually, freeSubnet, sh, shOk } from './harness.js';
import { freePort } from './registry-harness.js';

/** The reply of a TCP server at host:port (the pod's listener answers and closes). */
const tcpReply = (host: string, port: number) =>
  new Promise<string>((resolve, reject) => {
    const s = connect({ host, port, timeout: 3000 });
    let b = '';
    s.on('data', (d: Buffer) => (b += d.toString()));
    s.on('end', () => resolve(b));
    s.on('timeout', () => s.destroy(new Error('timeout')));
    s.on('error', reject);
  });

/** Lines of the host's nat table that portmap or bridge wrote for a container id. */
const natRulesOf = (id: string) =>
  sh('iptables-save', ['-t', 'nat'])
    .split('\n')
    .filter((l) => l.includes(`id: \\"${id}\\"`)); // iptables-save escapes the comment's quotes

/**
 * Removes the nat rules and chains bridge wrote for a container id. Needed where Debian's bridge 1.1.1
 * cannot do it itself: its DEL finds the pod's addresses on the pod's interface, so with the netns
 * gone it releases the address but leaves its masquerade chain (berth's CRI side DELs before it
 * removes a pod's netns, as containerd does).
 */
function dropNatRulesOf(id: string): void {
  const lines = natRulesOf(id);
  const chains = new Set<string>();
  for (const l of lines) {
    const m = /^-A (\S+) (.*)$/.exec(l);
    if (!m) continue;
    if (m[1] === 'POSTROUTING') {
      shOk('sh', ['-c', `iptables -t nat -D POSTROUTING ${m[2]}`]);
      const j = / -j (CNI-\S+)/.exec(l);
      if (j) chains.add(j[1]!);
    } else chains.add(m[1]!);
  }
  for (const c of chains) if (c !== 'CNI-HOSTPORT-DNAT') shOk('iptables', ['-t', 'nat', '-F', c]);
  for (const c of chains) if (c !== 'CNI-HOSTPORT-DNAT') shOk('iptables', ['-t', 'nat', '-X', c]);
}

describe('CNI pod networking', () => {
  const tag = randomBytes(3).toString('hex');
  const dir = mkdtempSync(join(tmpdir(), 'berth-cni-'));
  const confDir = join(dir, 'net.d');
  const cacheDir = join(dir, 'cache');
  const ipamDir = join(dir, 'ipam');
  const bridge = `cnit${tag}`;
  const prefix = freeSubnet(123);
  const netName = `berth-test-${tag}`;
  const namespaces: string[] = [];
  const bridges = [bridge];
  const servers: ChildProcess[] = [];
  const ids = ['a', 'b', 'c', 'd', 'bad1', 'bad2', 'bad3', 'hang'].map((x) => `${tag}${x}`);
  const conflist = (plugins: unknown[], o: { name?: string; bridgeName?: string } = {}) =>
    JSON.stringify({
      cniVersion: '1.0.0',
      name: o.name ?? netName,
      plugins: [
        {
          type: 'bridge',
          bridge: o.bridgeName ?? bridge,
          isGateway: true,
          ipMasq: true,
          hairpinMode: true,
          ipam: {
            type: 'host-local',
            dataDir: ipamDir,
            ranges: [[{ subnet: `${prefix}.0/24`, gateway: `${prefix}.1` }]],
            routes: [{ dst: '0.0.0.0/0' }],
          },
        },
        ...plugins,
      ],
    });
  const goodConf = conflist([{ type: 'portmap', capabilities: { portMappings: true } }]);
  const netns = (suffix: string) => {
    const name = `cnit${tag}${suffix}`;
    sh('ip', ['netns', 'add', name]);
    namespaces.push(name);
    return { name, path: `/run/netns/${name}` };
  };
  /** Addresses host-local holds in our network (one file per address). */
  const allocated = (net = netName) =>
    existsSync(join(ipamDir, net)) ? readdirSync(join(ipamDir, net)).filter((f) => /^\d+\.\d+\.\d+\.\d+$/.test(f)) : [];
  const cache = (id: string) => join(cacheDir, 'results', `${id}-eth0.json`);
  const links = (ns: string) => sh('ip', ['-n', ns, '-br', 'link']);
  const bridgePorts = (br: string) =>
    shOk('ip', ['link', 'show', br]) ? sh('ip', ['-br', 'link', 'show', 'master', br]) : '';
  let cni: Cni;
  let a: { name: string; path: string };
  let b: { name: string; path: string };
  let ipA = '';
  let hostPort = 0;

  before(() => {
    execFileSync('mkdir', ['-p', confDir]);
    writeFileSync(join(confDir, '10-test.conflist'), goodConf);
    // a later file in lexical order is not loaded
    writeFileSync(join(confDir, '20-ignored.conflist'), '{not json');
    cni = new Cni({ confDir, binDirs: ['/usr/lib/cni'], cacheDir, timeoutMs: 60_000 });
  });

  after(async () => {
    for (const s of servers) s.kill('SIGKILL');
    for (const id of ids) await cni?.tearDown({ containerId: id, netnsPath: '' }).catch(() => undefined);
    for (const id of ids) dropNatRulesOf(id);
    for (const ns of namespaces) shOk('ip', ['netns', 'del', ns]);
    for (const br of bridges) shOk('ip', ['link', 'del', br]);
    rmSync(dir, { recursive: true, force: true });
  });

  test('status is ready with a valid conflist; ADD gives the pod an address and it reaches the gateway', async () => {
    await cni.status();
    a = netns('a');
    hostPort = await freePort();
    const r = await cni.setUp({
      containerId: ids[0]!,
      netnsPath: a.path,
      portMappings: [{ hostPort, containerPort: 8080, protocol: 'tcp', hostIP: '127.0.0.1' }],
      args: { K8S_POD_NAMESPACE: 'default', K8S_POD_NAME: 'pod-a' },
    });
    assert.equal(r.network, netName);
    assert.equal(r.ips.length, 1);
    assert.match(r.ips[0]!.address, new RegExp(`^${prefix.replace(/\./g, '\\.')}\\.\\d+/24$`));
    assert.equal(r.ips[0]!.gateway, `${prefix}.1`);
    assert.ok(r.interfaces.some((i) => i.name === 'eth0' && i.sandbox === a.path));
    ipA = r.ips[0]!.address.split('/')[0]!;
    assert.match(sh('ip', ['-n', a.name, '-4', 'addr', 'show', 'eth0']), new RegExp(`inet ${ipA}/24`));
    assert.match(links(a.name), /^lo\s+UNKNOWN/m, 'loopback is up');
    assert.deepEqual(allocated(), [ipA]);
    sh('ip', ['netns', 'exec', a.name, 'busybox', 'ping', '-c', '1', '-W', '5', `${prefix}.1`]);
    // the cache: root only
    assert.equal(statSync(cacheDir).mode & 0o777, 0o700);
    assert.equal(statSync(join(cacheDir, 'results')).mode & 0o777, 0o700);
    assert.equal(statSync(cache(ids[0]!)).mode & 0o777, 0o600);
    // a second ADD of the same attachment is refused and changes nothing
    await assert.rejects(cni.setUp({ containerId: ids[0]!, netnsPath: a.path }), (e) =>
      isBerthError(e, 'AlreadyExists'),
    );
    assert.deepEqual(allocated(), [ipA]);
  });

  test('two pods on the network reach each other', async () => {
    b = netns('b');
    const r = await cni.setUp({ containerId: ids[1]!, netnsPath: b.path });
    const ipB = r.ips[0]!.address.split('/')[0]!;
    assert.notEqual(ipB, ipA);
    sh('ip', ['netns', 'exec', b.name, 'busybox', 'ping', '-c', '1', '-W', '5', ipA]);
    sh('ip', ['netns', 'exec', a.name, 'busybox', 'ping', '-c', '1', '-W', '5', ipB]);
  });

  test("a hostPort (portmap) reaches a listener in the pod from the host's 127.0.0.1", async () => {
    const srv = spawn(
      'ip',
      [
        'netns',
        'exec',
        a.name,
        process.execPath,
        '-e',
        `require('net').createServer((s) => s.end('hello from pod a\\n')).listen(8080, () => console.log('listening'))`,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    servers.push(srv);
    await new Promise<void>((resolve, reject) => {
      srv.stdout!.on('data', (d: Buffer) => d.toString().includes('listening') && resolve());
      srv.on('exit', (c) => reject(new Error(`listener exited ${c}`)));
    });
    assert.equal(await eventually(() => tcpReply('127.0.0.1', hostPort), 10_000, 'the hostPort'), 'hello from pod a\n');
    // from the other pod straight to the pod's address too
    assert.match(sh('ip', ['netns', 'exec', b.name, 'busybox', 'nc', '-w', '3', ipA, '8080']), /hello from pod a/);
    assert.ok(
      natRulesOf(ids[0]!).some((l) => l.includes(`--dports ${hostPort}`)),
      'portmap wrote its DNAT',
    );
  });

  test('DEL removes the veth, the address, the cache and the iptables rules of portmap and bridge; a second DEL is fine', async () => {
    assert.ok(natRulesOf(ids[0]!).length > 0);
    await cni.tearDown({ containerId: ids[0]!, netnsPath: a.path });
    assert.doesNotMatch(links(a.name), /eth0/);
    assert.deepEqual(natRulesOf(ids[0]!), []);
    assert.equal(existsSync(cache(ids[0]!)), false);
    assert.equal(allocated().length, 1, "only pod b's address is left");
    await assert.rejects(tcpReply('127.0.0.1', hostPort));
    await cni.tearDown({ containerId: ids[0]!, netnsPath: a.path });
    await cni.tearDown({ containerId: ids[0]!, netnsPath: '' });
    // pod b's DEL with its namespace already gone: no error, the address is released; bridge 1.1.1
    // leaves its masquerade chain then (see dropNatRulesOf), and nothing else
    shOk('ip', ['netns', 'del', b.name]);
    await cni.tearDown({ containerId: ids[1]!, netnsPath: b.path });
    assert.deepEqual(allocated(), []);
    assert.ok(natRulesOf(ids[1]!).every((l) => /-j (CNI-\w+|ACCEPT|MASQUERADE)$/.test(l) && !l.includes('dnat')));
    dropNatRulesOf(ids[1]!);
    assert.deepEqual(natRulesOf(ids[1]!), []);
    await cni.tearDown({ containerId: ids[1]!, netnsPath: b.path });
    await eventually(() => bridgePorts(bridge).trim() === '', 30_000, 'the veths leave the bridge');
  });

  test('pods set up and torn down in parallel (as a kubelet starts them) get distinct addresses, all released after', async () => {
    const pods = ['p1', 'p2', 'p3', 'p4'].map((x) => ({ id: `${tag}${x}`, ns: netns(x) }));
    ids.push(...pods.map((p) => p.id));
    const got = await Promise.all(pods.map((p) => cni.setUp({ containerId: p.id, netnsPath: p.ns.path })));
    const addrs = got.map((r) => r.ips[0]!.address.split('/')[0]!);
    assert.equal(new Set(addrs).size, 4);
    assert.deepEqual(allocated().sort(), [...addrs].sort());
    // a DEL and an ADD of one pod at once run one after the other (else the ADD would find the record)
    const twice = await Promise.allSettled([
      cni.tearDown({ containerId: pods[0]!.id, netnsPath: pods[0]!.ns.path }),
      cni.setUp({ containerId: pods[0]!.id, netnsPath: pods[0]!.ns.path }),
    ]);
    assert.equal(twice[0].status, 'fulfilled');
    assert.equal(twice[1].status, 'fulfilled', 'calls for one pod run in order: DEL, then ADD again');
    await Promise.all(pods.map((p) => cni.tearDown({ containerId: p.id, netnsPath: p.ns.path })));
    assert.deepEqual(allocated(), []);
    for (const p of pods) assert.deepEqual(natRulesOf(p.id), []);
  });

  test('DEL runs with the configuration of the ADD even when the conf dir changed since', async () => {
    const c = netns('c');
    const r = await cni.setUp({
      containerId: ids[2]!,
      netnsPath: c.path,
      portMappings: [{ hostPort: await freePort(), containerPort: 80, protocol: 'tcp', hostIP: '127.0.0.1' }],
    });
    assert.deepEqual(allocated(), [r.ips[0]!.address.split('/')[0]]);
    // the conf now names another network (another data dir name, no portmap), then becomes invalid
    writeFileSync(join(confDir, '10-test.conflist'), conflist([], { name: `${netName}-other` }));
    writeFileSync(join(confDir, '10-test.conflist'), '{"cniVersion": "1.0.0"');
    await assert.rejects(cni.status(), (e) => isBerthError(e, 'FailedPrecondition'));
    await cni.tearDown({ containerId: ids[2]!, netnsPath: c.path });
    assert.deepEqual(allocated(), []);
    assert.deepEqual(natRulesOf(ids[2]!), []);
    assert.doesNotMatch(links(c.name), /eth0/);
    writeFileSync(join(confDir, '10-test.conflist'), goodConf);
    await cni.status();
  });

  test('bad configurations and bad parameters get a clear error and leave nothing of the pod', async () => {
    const d = netns('d');
    const nothingLeft = (id: string) => {
      assert.doesNotMatch(links(d.name), /eth0/);
      assert.deepEqual(allocated(), []);
      assert.deepEqual(natRulesOf(id), []);
      assert.equal(existsSync(cache(id)), false);
    };
    const withConf = async (text: string, expect: RegExp, code: string, id: string) => {
      writeFileSync(join(confDir, '10-test.conflist'), text);
      await assert.rejects(cni.setUp({ containerId: id, netnsPath: d.path }), (e) => {
        assert.ok(isBerthError(e, code as 'FailedPrecondition'), String(e));
        assert.match((e as Error).message, expect);
        return true;
      });
      nothingLeft(id);
    };
    // not JSON: names the file
    await withConf('{"cniVersion": "1.0.0", "name": ', /10-test\.conflist: not JSON/, 'FailedPrecondition', ids[4]!);
    await assert.rejects(cni.status(), /10-test\.conflist: not JSON/);
    // a spec version berth does not speak
    await withConf(
      JSON.stringify({ cniVersion: '0.2.0', name: 'old', type: 'bridge' }),
      /cniVersion 0\.2\.0 is not supported/,
      'FailedPrecondition',
      ids[4]!,
    );
    // a plugin type that is a path, and a plugin that is not installed: refused before anything runs
    await withConf(conflist([{ type: '../../bin/sh' }]), /is not a plugin name/, 'FailedPrecondition', ids[4]!);
    const otherBridge = `cnix${tag}`;
    bridges.push(otherBridge);
    await withConf(
      conflist([{ type: 'no-such-plugin' }], { bridgeName: otherBridge }),
      /plugin no-such-plugin not found in \/usr\/lib\/cni/,
      'FailedPrecondition',
      ids[4]!,
    );
    assert.equal(shOk('ip', ['link', 'show', otherBridge]), false, 'no plugin ran');
    // a plugin that fails after bridge's ADD: bridge is DEL'd again (address, veth, masquerade rules)
    await withConf(
      conflist([{ type: 'tuning', sysctl: { 'net.ipv4.conf.eth0.no_such_knob': '1' } }]),
      /CNI plugin tuning \(network berth-test-\w+, ADD of \w+\): .*no_such_knob/,
      'Internal',
      ids[5]!,
    );
    writeFileSync(join(confDir, '10-test.conflist'), goodConf);
    // bad parameters: nothing runs
    const bad: Array<Parameters<Cni['setUp']>[0]> = [
      { containerId: '../x', netnsPath: d.path },
      { containerId: ids[6]!, netnsPath: d.path, ifName: 'eth0/x' },
      { containerId: ids[6]!, netnsPath: d.path, ifName: 'a-very-long-interface-name' },
      { containerId: ids[6]!, netnsPath: d.path, args: { K8S_POD_NAME: 'x;IgnoreUnknown=0' } },
      {
        containerId: ids[6]!,
        netnsPath: d.path,
        portMappings: [{ hostPort: 70000, containerPort: 80, protocol: 'tcp' }],
      },
      {
        containerId: ids[6]!,
        netnsPath: d.path,
        portMappings: [{ hostPort: 8080, containerPort: 80, protocol: 'tcp', hostIP: 'localhost' }],
      },
      { containerId: ids[6]!, netnsPath: 'relative/ns' },
      { containerId: ids[6]!, netnsPath: join(dir, 'not-a-netns') },
    ];
    writeFileSync(join(dir, 'not-a-netns'), '');
    for (const p of bad) {
      await assert.rejects(cni.setUp(p), (e) => isBerthError(e, 'InvalidArgument'), JSON.stringify(p));
      nothingLeft(p.containerId);
    }
    assert.equal(bad.length, 8);
  });

  test('a plugin that hangs is killed with its children at the deadline, and the pod is left clean', async () => {
    const bin = join(dir, 'bin');
    const pids = join(dir, 'hang.pids');
    execFileSync('mkdir', ['-p', bin]);
    writeFileSync(join(bin, 'hang'), `#!/bin/sh\necho $$ >> ${pids}\nsleep 3600 &\necho $! >> ${pids}\nwait\n`);
    chmodSync(join(bin, 'hang'), 0o755);
    const hangConf = join(dir, 'hang.d');
    execFileSync('mkdir', ['-p', hangConf]);
    writeFileSync(join(hangConf, '10-hang.conflist'), conflist([{ type: 'hang' }]));
    const slow = new Cni({ confDir: hangConf, binDirs: [bin, '/usr/lib/cni'], cacheDir, timeoutMs: 2000 });
    const e = netns('e');
    await assert.rejects(slow.setUp({ containerId: ids[7]!, netnsPath: e.path }), (err) => {
      assert.ok(isBerthError(err, 'Unavailable'), String(err));
      assert.match((err as Error).message, /CNI plugin hang .*ADD of \w+\) did not finish in 2 s and was killed/);
      return true;
    });
    // ADD hung and was killed, then the undo's DEL hung and was killed: the script and its sleep each time
    const started = readFileSync(pids, 'utf8').trim().split('\n').map(Number);
    assert.equal(started.length, 4);
    const alive = (pid: number) => {
      try {
        return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
      } catch {
        return false;
      }
    };
    await eventually(() => started.every((p) => !alive(p)), 10_000, 'the plugin and its child to die');
    assert.doesNotMatch(links(e.name), /eth0/);
    assert.deepEqual(allocated(), []);
    assert.equal(existsSync(cache(ids[7]!)), false);
  });

  test('the protocol: environment, name and cniVersion of the list, prevResult chaining, runtimeConfig only where declared, DEL in reverse with the cached result', async () => {
    // recording plugins: each logs its environment and stdin; rec-first answers a result, rec-second
    // passes its prevResult on with a DNS server added, rec-fail answers a CNI error
    const bin = join(dir, 'rec-bin');
    const log = join(dir, 'rec.log');
    execFileSync('mkdir', ['-p', bin]);
    writeFileSync(
      join(bin, 'rec-first'),
      `#!/bin/sh
conf=$(cat)
jq -cn --arg cmd "$CNI_COMMAND" --arg me "$(basename "$0")" --arg args "$CNI_ARGS" --arg ifname "$CNI_IFNAME" \\
  --arg netns "$CNI_NETNS" --arg path "$CNI_PATH" --arg cid "$CNI_CONTAINERID" --argjson conf "$conf" \\
  '{$cmd,$me,$args,$ifname,$netns,$path,$cid,$conf}' >> ${log}
[ "$CNI_COMMAND" = ADD ] || exit 0
case "$(basename "$0")" in
rec-first) printf '{"cniVersion":"1.0.0","interfaces":[{"name":"%s","sandbox":"%s"}],"ips":[{"address":"10.99.0.7/24","gateway":"10.99.0.1","interface":0}]}' "$CNI_IFNAME" "$CNI_NETNS" ;;
rec-second) echo "$conf" | jq -c '.prevResult + {dns: {nameservers: ["10.99.0.1"]}}' ;;
rec-fail) echo '{"cniVersion":"1.0.0","code":7,"msg":"invalid config","details":"no field x"}'; exit 1 ;;
rec-dual) echo '{"cniVersion":"1.0.0","ips":[{"address":"fd00::8/64"},{"address":"10.99.0.8/24"},{"address":"10.99.1.8/24"}]}' ;;
esac
`,
    );
    chmodSync(join(bin, 'rec-first'), 0o755);
    for (const n of ['rec-second', 'rec-fail', 'rec-dual']) execFileSync('ln', ['-sf', 'rec-first', join(bin, n)]);
    const recConf = join(dir, 'rec.d');
    execFileSync('mkdir', ['-p', recConf]);
    const list = (plugins: unknown[]) =>
      writeFileSync(join(recConf, '10-rec.conflist'), JSON.stringify({ cniVersion: '1.0.0', name: 'recnet', plugins }));
    list([
      { type: 'rec-first', name: 'not-this', cniVersion: '0.3.1', capabilities: { portMappings: false } },
      { type: 'rec-second', capabilities: { portMappings: true }, custom: { kept: true } },
    ]);
    const rec = new Cni({ confDir: recConf, binDirs: [bin, '/usr/lib/cni'], cacheDir: join(dir, 'rec-cache') });
    type Entry = {
      cmd: string;
      me: string;
      args: string;
      ifname: string;
      netns: string;
      path: string;
      cid: string;
      conf: Record<string, unknown>;
    };
    const entries = (): Entry[] =>
      existsSync(log)
        ? readFileSync(log, 'utf8')
            .trim()
            .split('\n')
            .map((l) => JSON.parse(l) as Entry)
        : [];
    const f = netns('f');
    const pm = [{ hostPort: 18080, containerPort: 80, protocol: 'tcp' as const, hostIP: '127.0.0.1' }];
    const r = await rec.setUp({
      containerId: 'rec1',
      netnsPath: f.path,
      ifName: 'net1',
      portMappings: pm,
      args: { K8S_POD_NAME: 'p' },
    });
    assert.deepEqual(r.ips, [{ address: '10.99.0.7/24', gateway: '10.99.0.1', interface: 0 }]);
    assert.deepEqual(r.dns, { nameservers: ['10.99.0.1'] }, "the result is the last plugin's");
    const add = entries();
    assert.deepEqual(
      add.map((e) => `${e.cmd} ${e.me}`),
      ['ADD rec-first', 'ADD rec-second'],
    );
    for (const e of add) {
      assert.equal(e.conf['name'], 'recnet');
      assert.equal(e.conf['cniVersion'], '1.0.0');
      assert.equal(e.args, 'IgnoreUnknown=1;K8S_POD_NAME=p');
      assert.equal(e.ifname, 'net1');
      assert.equal(e.netns, f.path);
      assert.equal(e.cid, 'rec1');
      assert.equal(e.path, `${bin}:/usr/lib/cni`);
    }
    assert.equal(add[0]!.conf['prevResult'], undefined);
    assert.equal(add[0]!.conf['runtimeConfig'], undefined, 'rec-first does not declare portMappings');
    assert.deepEqual(add[1]!.conf['prevResult'], {
      cniVersion: '1.0.0',
      interfaces: [{ name: 'net1', sandbox: f.path }],
      ips: [{ address: '10.99.0.7/24', gateway: '10.99.0.1', interface: 0 }],
    });
    assert.deepEqual(add[1]!.conf['runtimeConfig'], { portMappings: pm });
    assert.deepEqual(add[1]!.conf['custom'], { kept: true });
    // the conf dir changes; DEL still runs the ADD's list, in reverse, with its result and arguments
    list([{ type: 'rec-fail' }]);
    rmSync(log);
    shOk('ip', ['netns', 'del', f.name]);
    await rec.tearDown({ containerId: 'rec1', netnsPath: f.path, ifName: 'net1' });
    const del = entries();
    assert.deepEqual(
      del.map((e) => `${e.cmd} ${e.me}`),
      ['DEL rec-second', 'DEL rec-first'],
    );
    for (const e of del) {
      assert.deepEqual(e.conf['prevResult'], {
        ...(add[1]!.conf['prevResult'] as object),
        dns: { nameservers: ['10.99.0.1'] },
      });
      assert.equal(e.args, 'IgnoreUnknown=1;K8S_POD_NAME=p');
      assert.equal(e.netns, '', 'a netns that is gone is passed empty');
    }
    assert.deepEqual(del[0]!.conf['runtimeConfig'], { portMappings: pm });
    // a CNI error body: its code, msg and details; every plugin of the list DEL'd, in reverse
    list([{ type: 'rec-first' }, { type: 'rec-fail' }, { type: 'rec-second' }]);
    rmSync(log);
    const g = netns('g');
    await assert.rejects(rec.setUp({ containerId: 'rec2', netnsPath: g.path }), (e) => {
      assert.ok(isBerthError(e, 'FailedPrecondition'), String(e));
      assert.equal(
        (e as Error).message,
        'CNI plugin rec-fail (network recnet, ADD of rec2): invalid config: no field x (CNI error 7)',
      );
      return true;
    });
    assert.deepEqual(
      entries().map((e) => `${e.cmd} ${e.me}`),
      ['ADD rec-first', 'ADD rec-fail', 'DEL rec-second', 'DEL rec-fail', 'DEL rec-first'],
    );
    assert.equal(existsSync(join(dir, 'rec-cache', 'results', 'rec2-eth0.json')), false);
    // DEL without a path: the ADD's namespace while it is the same one, never a namespace that
    // took its path since (a /proc/<pid>/ns/net path of a reused pid, here a netns made again)
    list([{ type: 'rec-first' }]);
    const h = netns('h');
    const i = netns('i');
    await rec.setUp({ containerId: 'rec3', netnsPath: h.path });
    await rec.setUp({ containerId: 'rec4', netnsPath: i.path });
    sh('ip', ['netns', 'del', i.name]);
    sh('ip', ['netns', 'add', i.name]);
    rmSync(log);
    await rec.tearDown({ containerId: 'rec3', netnsPath: '' });
    await rec.tearDown({ containerId: 'rec4', netnsPath: '' });
    assert.deepEqual(
      entries()
        .filter((e) => e.me === 'rec-first')
        .map((e) => `${e.cmd} ${e.cid} ${e.netns}`),
      [`DEL rec3 ${h.path}`, 'DEL rec4 '],
    );
    // the CRI side's view (engine PodNetwork): K8S_POD_* as CNI_ARGS, the pod IP, NetworkReady
    const podNet = new CniPodNetwork(rec);
    const j = netns('j');
    const req = {
      id: 'rec5',
      name: 'web',
      namespace: 'default',
      uid: 'u-1',
      netns: j.path,
      portMappings: [{ protocol: 'tcp' as const, containerPort: 80, hostPort: 0, hostIp: '' }],
    };
    rmSync(log);
    assert.deepEqual(await podNet.setUp(req), { ip: '10.99.0.7', additionalIps: [] });
    const [first] = entries();
    assert.equal(
      first!.args,
      'IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web;K8S_POD_INFRA_CONTAINER_ID=rec5;K8S_POD_UID=u-1',
    );
    assert.equal(first!.conf['runtimeConfig'], undefined, 'a mapping without a host port publishes nothing');
    await podNet.tearDown(req);
    assert.deepEqual(await podNet.status(), { ready: true, reason: '', message: '' });
    // a dual-stack result: the first IPv4 address is the pod IP (containerd's default), the rest in order
    list([{ type: 'rec-dual' }]);
    assert.deepEqual(await podNet.setUp({ ...req, id: 'rec6' }), {
      ip: '10.99.0.8',
      additionalIps: ['10.99.1.8', 'fd00::8'],
    });
    await podNet.tearDown({ ...req, id: 'rec6' });
    rmSync(join(recConf, '10-rec.conflist'));
    const st = await podNet.status();
    assert.equal(st.ready, false);
    assert.equal(st.reason, 'NetworkPluginNotReady');
    assert.match(st.message, /no CNI network config in .*rec\.d/);
  });

  test('writeDefaultConflist writes berth-cni0 with portmap once, and never over an existing file', async () => {
    const d = join(dir, 'default.d');
    const f = await writeDefaultConflist(d);
    assert.equal(f, join(d, DEFAULT_CONFLIST_FILE));
    const text = readFileSync(f, 'utf8');
    assert.deepEqual(JSON.parse(text), defaultConflist());
    assert.match(text, /"bridge": "berth-cni0"/);
    // podman's 87-podman-bridge.conflist on this host uses 10.88.0.0/16
    assert.doesNotMatch(text, /10\.88\./);
    writeFileSync(f, '{"edited": true}');
    await writeDefaultConflist(d);
    assert.equal(readFileSync(f, 'utf8'), '{"edited": true}');
    // it loads: status needs only the plugins, which Debian installs
    writeFileSync(f, text);
    await new Cni({ confDir: d, binDirs: ['/usr/lib/cni'], cacheDir }).status();
  });
});
