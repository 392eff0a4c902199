/**
 * Issue #17: the two forms of a pod sandbox (engine/pods.ts), on a test CNI network (Debian's bridge
 * + host-local + portmap, a bridge and subnet of the test's own).
 * - pinned (what the kubelet asks for a pod without shareProcessNamespace: pid CONTAINER): no infra
 *   process; the pod's network and IPC namespaces are bind mounts (/run/netns/berth-cri-<hex>, the
 *   exec root's pods/<name>.ipc); its two containers share them (a server on localhost, SysV shared
 *   memory seen by both) and the pod's hostname; the pod has its CNI address; events, stats and
 *   metrics; a container asking for the pod's PID namespace is refused; kill -9 of berthd keeps it
 *   READY and usable; stop makes it NOTREADY, remove unpins everything.
 * - infra (pid POD, shareProcessNamespace): catatonit holds the namespaces and is pid 1 of the
 *   pod's container.
 */
import { before, after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { status } from '@grpc/grpc-js';
import { startDaemon, eventually, httpGet, freeSubnet, shOk, type Daemon } from './harness.js';
import { criClient, codeOf, type CriClient, type Msg } from './cri-client.js';

const get = httpGet;

const mounted = (path: string) => readFileSync('/proc/self/mountinfo', 'utf8').includes(` ${path} `);
const nsOf = (pid: number, ns: string) => readlinkSync(`/proc/${pid}/ns/${ns}`);
/** A namespace file's identity as /proc/<pid>/ns/<ns> names it: `<ns>:[<inode>]`. */
const nsFile = (path: string, ns: string) => `${ns}:[${statSync(path).ino}]`;

describe('CRI pod sandboxes: pinned namespaces and infra', () => {
  const tag = randomBytes(3).toString('hex');
  const dir = mkdtempSync('/tmp/berth-cripin-');
  const confDir = join(dir, 'net.d');
  const bridge = `cnip${tag}`;
  const prefix = freeSubnet(125);
  const sock = join(dir, 'cri.sock');
  let d: Daemon;
  let cri: CriClient;
  let pod = '';
  let infraPod = '';
  let srv = '';
  let cli = '';
  let ns: { netns: string; ipcns: string } = { netns: '', ipcns: '' };
  const events: Msg[] = [];
  let stopEvents: () => void = () => undefined;

  const config: Msg = {
    metadata: { name: 'pinpod', uid: `uid-${tag}`, namespace: 'default', attempt: 0 },
    hostname: 'pinpod',
    log_directory: join(dir, 'logs'),
    // what the kubelet sends for a pod without shareProcessNamespace
    linux: { security_context: { namespace_options: { network: 'POD', pid: 'CONTAINER', ipc: 'POD' } } },
  };
  const ctr = (name: string, script: string, extra: Msg = {}): Msg => ({
    pod_sandbox_id: pod,
    sandbox_config: config,
    config: {
      metadata: { name },
      image: { image: 'busybox' },
      command: ['sh', '-c', script],
      log_path: `${name}.log`,
      linux: { security_context: { namespace_options: { network: 'POD', pid: 'CONTAINER', ipc: 'POD' } } },
      ...extra,
    },
  });
  const exec = async (id: string, cmd: string[]) => {
    const r = await cri.runtime('ExecSync', { container_id: id, cmd, timeout: 20 });
    return { code: r['exit_code'] as number, out: String(r['stdout']) };
  };
  const pidOf = async (id: string) =>
    (
      JSON.parse(
        ((await cri.runtime('ContainerStatus', { container_id: id, verbose: true })) as { info: { info: string } }).info
          .info,
      ) as { pid: number }
    ).pid;
  const stateOf = async (id: string) =>
    ((await cri.runtime('PodSandboxStatus', { pod_sandbox_id: id })) as { status: { state: string } }).status.state;

  before(async () => {
    mkdirSync(confDir, { recursive: true });
    writeFileSync(
      join(confDir, '10-test.conflist'),
      JSON.stringify({
        cniVersion: '1.0.0',
        name: `berth-pin-test-${tag}`,
        plugins: [
          {
            type: 'bridge',
            bridge,
            isGateway: true,
            ipMasq: true,
            ipam: {
              type: 'host-local',
              dataDir: join(dir, 'ipam'),
              ranges: [[{ subnet: `${prefix}.0/24`, gateway: `${prefix}.1` }]],
              routes: [{ dst: '0.0.0.0/0' }],
            },
          },
          { type: 'portmap', capabilities: { portMappings: true } },
        ],
      }),
    );
    d = await startDaemon({ args: ['--cri-socket', sock, '--cni-conf-dir', confDir, '--cni-bin-dir', '/usr/lib/cni'] });
    cri = criClient(sock);
    stopEvents = cri.events((ev) => events.push(ev));
  });

  after(async () => {
    stopEvents();
    if (cri) {
      for (const p of [pod, infraPod])
        if (p) await cri.runtime('RemovePodSandbox', { pod_sandbox_id: p }).catch(() => undefined);
      cri.close();
    }
    await d?.stop();
    shOk('ip', ['link', 'del', bridge]);
    rmSync(dir, { recursive: true, force: true });
  });

  test('a pod without shareProcessNamespace: no infra process, its namespaces pinned, its CNI address', async () => {
    pod = (await cri.runtime('RunPodSandbox', { config }))['pod_sandbox_id'] as string;
    const st = (await cri.runtime('PodSandboxStatus', { pod_sandbox_id: pod, verbose: true })) as {
      status: { state: string; network: { ip: string } };
      info: { info: string };
    };
    assert.equal(st.status.state, 'SANDBOX_READY');
    assert.ok(st.status.network.ip.startsWith(`${prefix}.`), st.status.network.ip);
    const info = JSON.parse(st.info.info) as { pid: number; netns: string; ipcns: string; infra: string };
    assert.equal(info.pid, 0, 'no infra process');
    assert.match(info.infra, /^none/);
    ns = { netns: info.netns, ipcns: info.ipcns };
    assert.match(ns.netns, /^\/run\/netns\/berth-cri-[a-f0-9]{16}$/);
    assert.match(ns.ipcns, /\/pods\/berth-cri-[a-f0-9]{16}\.ipc$/);
    assert.ok(mounted(ns.netns) && mounted(ns.ipcns), 'both namespaces are bind mounts');
    // no conmon was started for the sandbox
    assert.ok(!shOk('pgrep', ['-f', `conmon .*-c ${pod}`]), 'no monitor for the sandbox');
    await eventually(
      () => events.some((e) => e['container_id'] === pod && e['container_event_type'] === 'CONTAINER_STARTED_EVENT'),
      10_000,
      'the sandbox started event',
    );
  });

  test('its containers share the pinned network and IPC namespaces and the pod hostname', async () => {
    srv = (
      await cri.runtime(
        'CreateContainer',
        ctr('srv', 'mkdir -p /www; echo pinned-ok > /www/index.html; exec httpd -f -p 8080 -h /www'),
      )
    )['container_id'] as string;
    await cri.runtime('StartContainer', { container_id: srv });
    cli = (await cri.runtime('CreateContainer', ctr('cli', 'exec sleep 3600')))['container_id'] as string;
    await cri.runtime('StartContainer', { container_id: cli });
    for (const id of [srv, cli]) {
      const pid = await pidOf(id);
      assert.equal(nsOf(pid, 'net'), nsFile(ns.netns, 'net'), `${id}: the pod's network namespace`);
      assert.equal(nsOf(pid, 'ipc'), nsFile(ns.ipcns, 'ipc'), `${id}: the pod's IPC namespace`);
    }
    assert.notEqual(nsOf(await pidOf(srv), 'pid'), nsOf(await pidOf(cli), 'pid'), 'PID namespaces of their own');
    const body = await eventually(
      async () => {
        const r = await exec(cli, ['wget', '-qO-', 'http://127.0.0.1:8080/']);
        return r.code === 0 && r.out;
      },
      15_000,
      'the server on the pod localhost',
    );
    assert.equal(body, 'pinned-ok\n');
    const st = (await cri.runtime('PodSandboxStatus', { pod_sandbox_id: pod })) as {
      status: { network: { ip: string } };
    };
    assert.equal(
      await eventually(() => get(st.status.network.ip, 8080).catch(() => ''), 15_000, 'from the host'),
      'pinned-ok\n',
    );
    assert.equal((await exec(cli, ['hostname'])).out, 'pinpod\n');
    // SysV shared memory made in one container is seen by the other (busybox has no ipcs: /proc)
    const shm = await exec(srv, ['cat', '/proc/sysvipc/shm']);
    assert.equal(shm.code, 0);
    assert.equal((await exec(cli, ['cat', '/proc/sysvipc/shm'])).out, shm.out);
  });

  test('stats and metrics of a pinned pod; a container asking for the pod PID namespace is refused', async () => {
    const s = (await cri.runtime('PodSandboxStats', { pod_sandbox_id: pod })) as {
      stats: { linux: { memory: { working_set_bytes: { value: number } } } };
    };
    assert.ok(s.stats.linux.memory.working_set_bytes.value > 0);
    const m = (await cri.runtime('ListPodSandboxMetrics', {})) as {
      pod_metrics: Array<{ pod_sandbox_id: string; container_metrics: unknown[] }>;
    };
    assert.equal(m.pod_metrics.find((p) => p.pod_sandbox_id === pod)?.container_metrics.length, 2);
    const bad = ctr('pidpod', 'sleep 1', {
      linux: { security_context: { namespace_options: { network: 'POD', pid: 'POD', ipc: 'POD' } } },
    });
    await assert.rejects(cri.runtime('CreateContainer', bad), (e) => codeOf(e) === status.INVALID_ARGUMENT);
    const list = (await cri.runtime('ListContainers', { filter: { pod_sandbox_id: pod } })) as {
      containers: unknown[];
    };
    assert.equal(list.containers.length, 2, 'nothing made');
  });

  test('kill -9 of berthd: the pinned pod stays READY, its containers run, a new one joins it', async () => {
    const pid = await pidOf(srv);
    stopEvents();
    cri.close();
    await d.kill9();
    assert.ok(existsSync(`/proc/${pid}`));
    await d.restart();
    cri = criClient(sock);
    stopEvents = cri.events((ev) => events.push(ev));
    assert.equal(await stateOf(pod), 'SANDBOX_READY');
    const third = (await cri.runtime('CreateContainer', ctr('third', 'exec sleep 3600')))['container_id'] as string;
    await cri.runtime('StartContainer', { container_id: third });
    assert.equal(nsOf(await pidOf(third), 'net'), nsFile(ns.netns, 'net'));
    assert.equal((await exec(third, ['wget', '-qO-', 'http://127.0.0.1:8080/'])).out, 'pinned-ok\n');
  });

  test('stop: NOTREADY, its containers exited, no new container; remove unpins everything', async () => {
    await cri.runtime('StopPodSandbox', { pod_sandbox_id: pod });
    assert.equal(await stateOf(pod), 'SANDBOX_NOTREADY');
    const list = (await cri.runtime('ListContainers', { filter: { pod_sandbox_id: pod } })) as {
      containers: Array<{ state: string }>;
    };
    assert.ok(list.containers.every((c) => c.state === 'CONTAINER_EXITED'));
    await assert.rejects(
      cri.runtime('CreateContainer', ctr('late', 'true')),
      (e) => codeOf(e) === status.FAILED_PRECONDITION,
    );
    await cri.runtime('StopPodSandbox', { pod_sandbox_id: pod }); // idempotent
    await cri.runtime('RemovePodSandbox', { pod_sandbox_id: pod });
    assert.ok(!existsSync(ns.netns) && !existsSync(ns.ipcns), 'the pins are gone');
    assert.ok(!mounted(ns.netns) && !mounted(ns.ipcns));
    await assert.rejects(
      cri.runtime('PodSandboxStatus', { pod_sandbox_id: pod }),
      (e) => codeOf(e) === status.NOT_FOUND,
    );
    await assert.rejects(
      cri.runtime('CreateContainer', ctr('gone', 'true')),
      (e) => codeOf(e) === status.NOT_FOUND,
      'a sandbox that is gone',
    );
    await cri.runtime('RemovePodSandbox', { pod_sandbox_id: pod }); // idempotent
    pod = '';
  });

  test('a pod sharing its PID namespace (shareProcessNamespace) gets an infra process: catatonit is pid 1', async () => {
    const cfg: Msg = {
      ...config,
      metadata: { name: 'infrapod', uid: `uid-i-${tag}`, namespace: 'default', attempt: 0 },
      hostname: 'infrapod',
      linux: { security_context: { namespace_options: { network: 'POD', pid: 'POD', ipc: 'POD' } } },
    };
    infraPod = (await cri.runtime('RunPodSandbox', { config: cfg }))['pod_sandbox_id'] as string;
    const st = (await cri.runtime('PodSandboxStatus', { pod_sandbox_id: infraPod, verbose: true })) as {
      status: { state: string; network: { ip: string } };
      info: { info: string };
    };
    assert.equal(st.status.state, 'SANDBOX_READY');
    assert.ok(st.status.network.ip.startsWith(`${prefix}.`));
    const infraPid = (JSON.parse(st.info.info) as { pid: number }).pid;
    assert.ok(infraPid > 0);
    assert.match(readFileSync(`/proc/${infraPid}/cmdline`, 'utf8'), /catatonit\0-P/);
    const c = (
      await cri.runtime('CreateContainer', {
        pod_sandbox_id: infraPod,
        sandbox_config: cfg,
        config: {
          metadata: { name: 'shared' },
          image: { image: 'busybox' },
          command: ['sleep', '3600'],
          linux: { security_context: { namespace_options: { network: 'POD', pid: 'POD', ipc: 'POD' } } },
        },
      })
    )['container_id'] as string;
    await cri.runtime('StartContainer', { container_id: c });
    const pid = await pidOf(c);
    assert.equal(nsOf(pid, 'pid'), nsOf(infraPid, 'pid'));
    assert.equal(nsOf(pid, 'net'), nsOf(infraPid, 'net'));
    assert.equal(nsOf(pid, 'ipc'), nsOf(infraPid, 'ipc'));
    const r = await cri.runtime('ExecSync', { container_id: c, cmd: ['cat', '/proc/1/cmdline'], timeout: 10 });
    assert.match(String(r['stdout']), /catatonit/);
    await cri.runtime('StopPodSandbox', { pod_sandbox_id: infraPod });
    await cri.runtime('RemovePodSandbox', { pod_sandbox_id: infraPod });
    assert.ok(
      !existsSync(`/proc/${infraPid}`) || !readFileSync(`/proc/${infraPid}/cmdline`, 'utf8').includes('catatonit'),
    );
    infraPod = '';
  });
});
