/**
 * Issue #17: a CRI pod with CNI networking. berthd is given a conf dir holding a test conflist
 * (Debian's bridge + host-local + portmap from /usr/lib/cni; a bridge `cnic<hex>` and a subnet
 * 10.124.<n>.0/24 of the test's own) and runs a pod through its CRI socket: the sandbox gets an
 * address (PodSandboxStatus), a server in the pod answers on it from the host and on its hostPort
 * from the host's 127.0.0.1 (portmap), and StopPodSandbox gives the address back and removes the
 * hostPort. Then `berth pods` / `berth pod inspect` show the pod.
 */
import { before, after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { startDaemon, eventually, httpGet, freeSubnet, sh, shOk, type Daemon } from './harness.js';
import { freePort } from './registry-harness.js';
import { criClient, type CriClient, type Msg } from './cri-client.js';

const get = httpGet;

/** The host's nat rules portmap and bridge wrote for a sandbox id (their comments name it). */
const natRulesOf = (id: string) =>
  sh('iptables-save', ['-t', 'nat'])
    .split('\n')
    .filter((l) => l.includes(id));

describe('CRI pod with CNI networking', () => {
  const tag = randomBytes(3).toString('hex');
  const dir = mkdtempSync('/tmp/berth-cricni-');
  const confDir = join(dir, 'net.d');
  const ipamDir = join(dir, 'ipam');
  const bridge = `cnic${tag}`;
  const prefix = freeSubnet(124);
  const netName = `berth-cri-test-${tag}`;
  const sock = join(dir, 'cri.sock');
  const binDir = join(dir, 'bin');
  const hangPid = join(dir, 'hang.pid');
  let conflistText = '';
  let d: Daemon;
  let cri: CriClient;
  let pod = '';
  let hostPort = 0;
  let podNetns = '';

  before(async () => {
    mkdirSync(confDir, { recursive: true });
    conflistText = JSON.stringify({
      cniVersion: '1.0.0',
      name: netName,
      plugins: [
        {
          type: 'bridge',
          bridge,
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
        { type: 'portmap', capabilities: { portMappings: true } },
      ],
    });
    writeFileSync(join(confDir, '10-test.conflist'), conflistText);
    // a plugin whose ADD hangs (for a daemon killed in the middle of a pod's network set-up): it tells its pid
    mkdirSync(binDir);
    writeFileSync(
      join(binDir, 'hang'),
      `#!/bin/sh\nif [ "$CNI_COMMAND" = ADD ]; then echo $$ > ${hangPid}; exec sleep 120; fi\nexit 0\n`,
      { mode: 0o755 },
    );
    d = await startDaemon({
      args: ['--cri-socket', sock, '--cni-conf-dir', confDir, '--cni-bin-dir', binDir, '--cni-bin-dir', '/usr/lib/cni'],
    });
    cri = criClient(sock);
  });

  after(async () => {
    if (existsSync(hangPid))
      try {
        process.kill(Number(readFileSync(hangPid, 'utf8')), 'SIGKILL');
      } catch {
        /* gone */
      }
    if (cri) {
      if (pod) await cri.runtime('RemovePodSandbox', { pod_sandbox_id: pod }).catch(() => undefined);
      cri.close();
    }
    await d?.stop();
    shOk('ip', ['link', 'del', bridge]);
    rmSync(dir, { recursive: true, force: true });
  });

  test('Status: NetworkReady with the conflist', async () => {
    const s = (await cri.runtime('Status', {})) as { status: { conditions: Array<{ type: string; status: boolean }> } };
    assert.deepEqual(s.status.conditions.find((c) => c.type === 'NetworkReady')?.status, true);
  });

  test('the pod gets an address of the network; its server answers there and on its hostPort', async () => {
    hostPort = await freePort();
    const config: Msg = {
      metadata: { name: 'netpod', uid: `uid-${tag}`, namespace: 'default', attempt: 0 },
      hostname: 'netpod',
      log_directory: join(dir, 'logs'),
      port_mappings: [{ protocol: 'TCP', container_port: 8080, host_port: hostPort, host_ip: '127.0.0.1' }],
    };
    pod = (await cri.runtime('RunPodSandbox', { config }))['pod_sandbox_id'] as string;
    const st = (await cri.runtime('PodSandboxStatus', { pod_sandbox_id: pod })) as {
      status: { network: { ip: string } };
    };
    const ip = st.status.network.ip;
    assert.ok(ip.startsWith(`${prefix}.`), ip);
    // with CNI the pod's namespace is one berth made before the infra process (CNI's ADD runs while it starts)
    const verbose = (await cri.runtime('PodSandboxStatus', { pod_sandbox_id: pod, verbose: true })) as {
      info: { info: string };
    };
    podNetns = (JSON.parse(verbose.info.info) as { netns: string }).netns;
    assert.match(podNetns, /^\/run\/netns\/berth-cri-[a-f0-9]{16}$/);
    assert.ok(existsSync(podNetns));
    assert.ok(readdirSync(join(ipamDir, netName)).includes(ip), 'host-local holds the address');
    const c = await cri.runtime('CreateContainer', {
      pod_sandbox_id: pod,
      sandbox_config: config,
      config: {
        metadata: { name: 'web' },
        image: { image: 'busybox' },
        command: [
          'sh',
          '-c',
          'mkdir -p /www; echo hello from the pod > /www/index.html; exec httpd -f -p 8080 -h /www',
        ],
        log_path: 'web/0.log',
      },
    });
    await cri.runtime('StartContainer', { container_id: c['container_id'] });
    assert.equal(await eventually(() => get(ip, 8080), 20_000, 'the pod address'), 'hello from the pod\n');
    assert.equal(await eventually(() => get('127.0.0.1', hostPort), 20_000, 'the hostPort'), 'hello from the pod\n');
    assert.ok(natRulesOf(pod).length > 0, 'portmap and bridge wrote rules for the sandbox');

    // berth pods / berth pod inspect: what Kubernetes runs, from the CRI endpoint
    const env = { BERTH_CRI_SOCKET: sock };
    const pods = await d.berth(['pods'], { env });
    const row = pods.stdout.split('\n').find((l) => l.startsWith(pod.slice(0, 13)));
    assert.ok(row, pods.stdout);
    assert.match(row, /Ready\s+netpod\s+default\s+0\s+1\/1\s+/);
    assert.ok(row.trimEnd().endsWith(ip), row);
    const q = await d.berth(['pods', '-q'], { env });
    assert.equal(q.stdout, `${pod}\n`);
    const insp = JSON.parse((await d.berth(['pod', 'inspect', pod.slice(0, 12)], { env })).stdout) as Array<{
      id: string;
      network: { ip: string };
      containers: Array<{ metadata: { name: string }; state: string }>;
      info: { info: { pid: number } };
    }>;
    assert.equal(insp[0]?.id, pod);
    assert.equal(insp[0]?.network.ip, ip);
    assert.deepEqual(
      insp[0]?.containers.map((x) => [x.metadata.name, x.state]),
      [['web', 'CONTAINER_RUNNING']],
    );
    assert.ok((insp[0]?.info.info.pid ?? 0) > 0);
    const bad = await d.berth(['pod', 'inspect', 'nope'], { env, allowFail: true });
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /pod sandbox nope not found/);
  });

  test('StopPodSandbox gives the address back and removes the hostPort; Remove leaves nothing', async () => {
    const ip = (
      (await cri.runtime('PodSandboxStatus', { pod_sandbox_id: pod })) as { status: { network: { ip: string } } }
    ).status.network.ip;
    await cri.runtime('StopPodSandbox', { pod_sandbox_id: pod });
    const ipam = join(ipamDir, netName);
    assert.ok(!existsSync(join(ipam, ip)), 'the address is released');
    await assert.rejects(get('127.0.0.1', hostPort));
    assert.deepEqual(natRulesOf(pod), []);
    const st = (await cri.runtime('PodSandboxStatus', { pod_sandbox_id: pod })) as {
      status: { state: string; network: { ip: string } };
    };
    assert.equal(st.status.state, 'SANDBOX_NOTREADY');
    assert.equal(st.status.network.ip, '');
    await cri.runtime('RemovePodSandbox', { pod_sandbox_id: pod });
    pod = '';
    assert.ok(!existsSync(podNetns), 'the pod network namespace is gone');
    await eventually(() => readdirSync(join(d.root, 'containers')).length === 0, 20_000, 'the pod files gone');
  });

  test('kill -9 of berthd during a pod network set-up: NOTREADY after the restart, then it goes', async () => {
    const conf = JSON.parse(conflistText) as { plugins: unknown[] };
    writeFileSync(join(confDir, '10-test.conflist'), JSON.stringify({ ...conf, plugins: [{ type: 'hang' }] }));
    const config: Msg = {
      metadata: { name: 'halfpod', uid: `uid-half-${tag}`, namespace: 'default', attempt: 0 },
      hostname: 'halfpod',
      log_directory: join(dir, 'logs'),
    };
    const running = cri.runtime('RunPodSandbox', { config }).catch((e: unknown) => e);
    const pid = await eventually(
      () => existsSync(hangPid) && Number(readFileSync(hangPid, 'utf8')),
      30_000,
      'the plugin',
    );
    cri.close();
    await d.kill9();
    await running;
    process.kill(pid, 'SIGKILL');
    writeFileSync(join(confDir, '10-test.conflist'), conflistText);
    await d.restart();
    cri = criClient(sock);
    const pods = (await cri.runtime('ListPodSandbox', {})) as {
      items: Array<{ id: string; state: string; metadata: { name: string } }>;
    };
    const half = pods.items.find((p) => p.metadata.name === 'halfpod');
    assert.equal(half?.state, 'SANDBOX_NOTREADY');
    await assert.rejects(
      cri.runtime('CreateContainer', {
        pod_sandbox_id: half.id,
        sandbox_config: config,
        config: { metadata: { name: 'x' }, image: { image: 'busybox' } },
      }),
      /not ready/,
    );
    await cri.runtime('StopPodSandbox', { pod_sandbox_id: half.id });
    await cri.runtime('RemovePodSandbox', { pod_sandbox_id: half.id });
    assert.equal(((await cri.runtime('ListPodSandbox', {})) as { items: unknown[] }).items.length, 0);
  });
});
