/**
 * Issue #17: berthd's CRI v1 endpoint, driven over its unix socket by a gRPC client made from the
 * same api.proto (./cri-client.ts), against a real berthd with crun and conmon.
 * - a pod's whole life: RunPodSandbox (the pause image berth makes from catatonit), two containers
 *   sharing the pod's network, IPC and UTS namespaces (busybox httpd on localhost, wget from the
 *   other), ExecSync (and its timeout), logs in the CRI format at log_directory/log_path and
 *   ReopenContainerLog, stats, events, stop and remove;
 * - the security context and resources reach the process (uid/gid/groups, read-only rootfs, no
 *   capabilities, no_new_privs, a Localhost seccomp profile, a memory limit and its update);
 * - kill -9 of berthd: pods and containers keep running and are listed again after the restart;
 * - bad input (unknown image, name clash, sandbox gone or stopped, missing fields) is a clean gRPC
 *   error and leaves nothing half made;
 * - the Docker API neither lists nor finds CRI containers, and their names do not clash with its.
 */
import { before, after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  existsSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import { startDaemon, eventually, type Daemon } from './harness.js';
import { criClient, codeOf, type CriClient, type Msg } from './cri-client.js';

let d: Daemon;
let cri: CriClient;
let sock: string;
let logDir: string;
const events: Msg[] = [];
let stopEvents: () => void = () => undefined;

const podConfig = (name: string, uid: string, extra: Msg = {}): Msg => ({
  metadata: { name, uid, namespace: 'default', attempt: 0 },
  hostname: name,
  log_directory: join(logDir, `default_${name}_${uid}`),
  labels: { app: name },
  annotations: { 'berth.test/pod': name },
  ...extra,
});

async function rejectsWith(p: Promise<unknown>, code: number, what: string): Promise<string> {
  try {
    await p;
  } catch (e) {
    assert.equal(codeOf(e), code, `${what}: ${String(e)}`);
    return (e as { details?: string }).details ?? '';
  }
  assert.fail(`${what}: expected gRPC code ${code}, got success`);
}

const exec = async (id: string, cmd: string[], timeout = 20) => {
  const r = await cri.runtime('ExecSync', { container_id: id, cmd, timeout });
  return { code: r['exit_code'] as number, out: String(r['stdout']), err: String(r['stderr']) };
};

const containerDirs = () => readdirSync(join(d.root, 'containers')).sort();

let sockDir = '';

before(async () => {
  sockDir = mkdtempSync('/tmp/berth-cri-');
  sock = join(sockDir, 'cri.sock');
  // no CNI configuration: pods get loopback only (CNI is cri-cni.test.ts's)
  d = await startDaemon({ args: ['--cri-socket', sock, '--cni-conf-dir', join(sockDir, 'no-cni')] });
  logDir = join(d.dir, 'pod-logs');
  cri = criClient(sock);
  stopEvents = cri.events((ev) => events.push(ev));
});

after(async () => {
  stopEvents();
  if (cri) {
    const pods = (await cri.runtime('ListPodSandbox', {}).catch(() => ({ items: [] }))) as {
      items: Array<{ id: string }>;
    };
    for (const p of pods.items) await cri.runtime('RemovePodSandbox', { pod_sandbox_id: p.id }).catch(() => undefined);
    cri.close();
  }
  await d?.stop();
  if (sockDir) rmSync(sockDir, { recursive: true, force: true });
});

describe('CRI endpoint', () => {
  let pod = '';
  let srv = '';
  let cli = '';

  test('the socket is root-only; Version, Status, RuntimeConfig', async () => {
    assert.equal(statSync(sock).mode & 0o777, 0o600);
    const v = await cri.runtime('Version', { version: 'v1' });
    assert.equal(v['runtime_name'], 'berth');
    assert.equal(v['runtime_api_version'], 'v1');
    const s = (await cri.runtime('Status', {})) as { status: { conditions: Array<{ type: string; status: boolean }> } };
    assert.deepEqual(
      s.status.conditions.map((c) => [c.type, c.status]),
      [
        ['RuntimeReady', true],
        ['NetworkReady', true],
      ],
    );
    const rc = (await cri.runtime('RuntimeConfig', {})) as { linux: { cgroup_driver: string } };
    assert.equal(rc.linux.cgroup_driver, 'CGROUPFS');
  });

  test('images: busybox is shared with the Docker API, no pause image before a pod, ImageFsInfo', async () => {
    const l = (await cri.image('ListImages', {})) as { images: Array<{ repo_tags: string[]; size: number }> };
    const tags = l.images.flatMap((i) => i.repo_tags);
    assert.deepEqual(tags, ['busybox:latest']);
    const st = (await cri.image('ImageStatus', { image: { image: 'busybox' } })) as { image: { id: string } | null };
    assert.match(st.image?.id ?? '', /^sha256:/);
    const none = (await cri.image('ImageStatus', { image: { image: 'no-such-image:1' } })) as { image: unknown };
    assert.equal(none.image, null);
    const fs = (await cri.image('ImageFsInfo', {})) as { image_filesystems: Array<{ used_bytes: { value: number } }> };
    assert.ok((fs.image_filesystems[0]?.used_bytes.value ?? 0) > 0);
    // a pull from a registry that is not there: a clean error, no image
    await rejectsWith(
      cri.image('PullImage', { image: { image: '127.0.0.1:1/nothing:1' }, auth: { username: 'u', password: 'p' } }),
      status.UNAVAILABLE,
      'pull from nowhere',
    ).catch(async () => {
      // the one pull path may call it Internal: only a clean gRPC error matters, no image is made
      const n = (await cri.image('ImageStatus', { image: { image: '127.0.0.1:1/nothing:1' } })) as { image: unknown };
      assert.equal(n.image, null);
    });
  });

  test('RunPodSandbox: a ready sandbox with its metadata, labels and annotations as sent', async () => {
    const r = await cri.runtime('RunPodSandbox', {
      config: podConfig('web', 'uid-web', {
        linux: { sysctls: { 'kernel.shm_rmid_forced': '1' } },
        dns_config: { servers: ['10.96.0.10'], searches: ['default.svc.cluster.local'], options: ['ndots:5'] },
      }),
    });
    pod = r['pod_sandbox_id'] as string;
    assert.match(pod, /^[a-f0-9]{64}$/);
    const st = (await cri.runtime('PodSandboxStatus', { pod_sandbox_id: pod, verbose: true })) as {
      status: Msg & { metadata: Msg; labels: Msg; annotations: Msg };
      info: Record<string, string>;
    };
    assert.equal(st.status['state'], 'SANDBOX_READY');
    assert.deepEqual(st.status.metadata, { name: 'web', uid: 'uid-web', namespace: 'default', attempt: 0 });
    assert.deepEqual(st.status.labels, { app: 'web' });
    assert.deepEqual(st.status.annotations, { 'berth.test/pod': 'web' });
    assert.ok((st.status['created_at'] as number) > 0);
    const pid = (JSON.parse(st.info['info'] ?? '{}') as { pid: number }).pid;
    // the pause image berth made for it (no registry), seen by both doors
    const pause = (await cri.image('ImageStatus', { image: { image: 'localhost/berth/pause:catatonit' } })) as {
      image: { id: string; pinned: boolean } | null;
    };
    assert.equal(pause.image?.pinned, true);
    assert.match(
      (await d.docker(['images', '--format', '{{.Repository}}:{{.Tag}}'])).stdout,
      /localhost\/berth\/pause:catatonit/,
    );
    // the infra process is catatonit in its pause mode
    await eventually(() => /catatonit\0-P/.test(readFileSync(`/proc/${pid}/cmdline`, 'utf8')), 10_000, 'catatonit -P');
    const list = (await cri.runtime('ListPodSandbox', { filter: { label_selector: { app: 'web' } } })) as {
      items: Array<{ id: string }>;
    };
    assert.deepEqual(
      list.items.map((i) => i.id),
      [pod],
    );
  });

  test('two containers share the pod: one serves on localhost, the other reaches it; logs in CRI format', async () => {
    const sandbox_config = podConfig('web', 'uid-web');
    const r1 = await cri.runtime('CreateContainer', {
      pod_sandbox_id: pod,
      sandbox_config,
      config: {
        metadata: { name: 'srv', attempt: 0 },
        image: { image: 'busybox:latest' },
        command: ['sh', '-c'],
        args: [
          'mkdir -p /www; echo pod-ok > /www/index.html; echo hello-out; echo hello-err >&2; ' +
            '(i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.2; done) & exec httpd -f -p 8080 -h /www',
        ],
        envs: [{ key: 'GREETING', value: 'hi there' }],
        labels: { role: 'server' },
        annotations: { 'berth.test/ctr': 'srv' },
        log_path: 'srv/0.log',
      },
    });
    srv = r1['container_id'] as string;
    const created = (await cri.runtime('ContainerStatus', { container_id: srv })) as { status: Msg };
    assert.equal(created.status['state'], 'CONTAINER_CREATED');
    await cri.runtime('StartContainer', { container_id: srv });
    const r2 = await cri.runtime('CreateContainer', {
      pod_sandbox_id: pod,
      sandbox_config,
      config: {
        metadata: { name: 'client', attempt: 0 },
        image: { image: 'busybox:latest' },
        command: ['sleep', '100000'],
        log_path: 'client/0.log',
      },
    });
    cli = r2['container_id'] as string;
    await cri.runtime('StartContainer', { container_id: cli });

    // the network namespace is the pod's: localhost reaches the other container's server
    const got = await eventually(
      async () => {
        const r = await exec(cli, ['wget', '-qO-', 'http://127.0.0.1:8080/']);
        return r.code === 0 && r.out;
      },
      30_000,
      'httpd on the pod localhost',
    );
    assert.equal(got, 'pod-ok\n');
    // UTS and IPC are the pod's too (the hostname, and the sysctl set on the sandbox's IPC namespace)
    assert.equal((await exec(cli, ['hostname'])).out, 'web\n');
    assert.equal((await exec(cli, ['cat', '/proc/sys/kernel/shm_rmid_forced'])).out, '1\n');
    // the pod's DNS config is every container's resolv.conf
    assert.equal(
      (await exec(cli, ['cat', '/etc/resolv.conf'])).out,
      'nameserver 10.96.0.10\nsearch default.svc.cluster.local\noptions ndots:5\n',
    );
    // ExecSync: stdout, stderr and the exit code apart; the container's environment
    const e = await exec(srv, ['sh', '-c', 'echo "$GREETING"; echo bad >&2; exit 3']);
    assert.deepEqual(e, { code: 3, out: 'hi there\n', err: 'bad\n' });

    const st = (await cri.runtime('ContainerStatus', { container_id: srv })) as { status: Msg & { labels: Msg } };
    assert.equal(st.status['state'], 'CONTAINER_RUNNING');
    assert.deepEqual(st.status.labels, { role: 'server' });
    assert.deepEqual(st.status['annotations'], { 'berth.test/ctr': 'srv' });
    const logPath = join(logDir, 'default_web_uid-web', 'srv/0.log');
    assert.equal(st.status['log_path'], logPath);
    // CRI format: `<RFC3339Nano> <stream> <F|P> <text>`, the streams apart
    const lines = await eventually(
      () => {
        const t = existsSync(logPath) ? readFileSync(logPath, 'utf8') : '';
        return t.includes('hello-err') && t.includes('tick 1') && t.split('\n').filter(Boolean);
      },
      20_000,
      'the log',
    );
    const re = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+(Z|[+-]\d\d:\d\d) (stdout|stderr) (F|P) (.*)$/;
    for (const l of lines) assert.match(l, re);
    assert.ok(
      lines.some((l) => / stdout F hello-out$/.test(l)),
      lines.join('\n'),
    );
    assert.ok(
      lines.some((l) => / stderr F hello-err$/.test(l)),
      lines.join('\n'),
    );

    const list = (await cri.runtime('ListContainers', { filter: { pod_sandbox_id: pod } })) as {
      containers: Array<{ id: string; state: string }>;
    };
    assert.deepEqual(list.containers.map((c) => c.id).sort(), [srv, cli].sort());
    const streamedCtrs = await cri.collect('runtime', 'StreamContainers', { filter: { pod_sandbox_id: pod } });
    assert.deepEqual(
      streamedCtrs
        .flatMap((m) => m['containers'] as Array<{ id: string }>)
        .map((c) => c.id)
        .sort(),
      [srv, cli].sort(),
    );
    const streamedPods = await cri.collect('runtime', 'StreamPodSandboxes', {});
    assert.deepEqual(
      streamedPods.flatMap((m) => m['pod_sandboxes'] as Array<{ id: string }>).map((p) => p.id),
      [pod],
    );
    const streamedImages = await cri.collect('image', 'StreamImages', {});
    assert.ok(streamedImages.flatMap((m) => m['images'] as unknown[]).length >= 2);
    // the default stop signal, as the runtime sends it
    const stSig = (await cri.runtime('ContainerStatus', { container_id: srv })) as { status: { stop_signal: string } };
    assert.equal(stSig.status.stop_signal, 'SIGTERM');
    const byLabel = (await cri.runtime('ListContainers', { filter: { label_selector: { role: 'server' } } })) as {
      containers: Array<{ id: string }>;
    };
    assert.deepEqual(
      byLabel.containers.map((c) => c.id),
      [srv],
    );
  });

  test('ReopenContainerLog: after the kubelet moved the log away, output goes to a new file at log_path', async () => {
    const logPath = join(logDir, 'default_web_uid-web', 'srv/0.log');
    renameSync(logPath, `${logPath}.1`);
    await cri.runtime('ReopenContainerLog', { container_id: srv });
    const text = await eventually(
      () =>
        existsSync(logPath) && /stdout F tick \d+/.test(readFileSync(logPath, 'utf8')) && readFileSync(logPath, 'utf8'),
      20_000,
      'the reopened log',
    );
    assert.match(text, / stdout F tick \d+\n/);
    // the old file stopped growing at the reopen: the ticks after it are in the new file only
    const ticks = (t: string) => [...t.matchAll(/ stdout F tick (\d+)$/gm)].map((m) => Number(m[1]));
    const lastOld = Math.max(...ticks(readFileSync(`${logPath}.1`, 'utf8')));
    const firstNew = Math.min(...ticks(text));
    assert.ok(firstNew > lastOld, `${firstNew} > ${lastOld}`);
  });

  test('ExecSync with a timeout: DEADLINE_EXCEEDED, the process is killed', async () => {
    await rejectsWith(
      cri.runtime('ExecSync', {
        container_id: cli,
        cmd: ['sh', '-c', 'echo started > /tmp/slow; sleep 4321'],
        timeout: 1,
      }),
      status.DEADLINE_EXCEEDED,
      'exec timeout',
    );
    // a timeout beyond a timer's range is no timeout at all, not an immediate one
    assert.equal((await exec(cli, ['echo', 'fine'], 2 ** 40)).out, 'fine\n');
    await eventually(
      async () => {
        const ps = await exec(cli, ['ps', '-o', 'args']);
        return !ps.out.includes('sleep 4321');
      },
      20_000,
      'the timed-out exec to be gone',
    );
  });

  test('stats from the cgroups: container, list, pod', async () => {
    const s = (await cri.runtime('ContainerStats', { container_id: srv })) as {
      stats: { cpu: { usage_core_nano_seconds: { value: number } }; memory: { working_set_bytes: { value: number } } };
    };
    assert.ok(s.stats.cpu.usage_core_nano_seconds.value > 0);
    assert.ok(s.stats.memory.working_set_bytes.value > 0);
    const l = (await cri.runtime('ListContainerStats', { filter: { pod_sandbox_id: pod } })) as {
      stats: Array<{ attributes: { id: string } }>;
    };
    assert.deepEqual(l.stats.map((x) => x.attributes.id).sort(), [srv, cli].sort());
    const p = (await cri.runtime('PodSandboxStats', { pod_sandbox_id: pod })) as {
      stats: {
        attributes: { id: string };
        linux: { containers: unknown[]; memory: { working_set_bytes: { value: number } } };
      };
    };
    assert.equal(p.stats.attributes.id, pod);
    assert.equal(p.stats.linux.containers.length, 2);
    assert.ok(p.stats.linux.memory.working_set_bytes.value > 0);
    // the Stream* twins (CRIListStreaming) answer the same in lists
    const streamed = await cri.collect('runtime', 'StreamContainerStats', { filter: { pod_sandbox_id: pod } });
    assert.deepEqual(
      streamed
        .flatMap((m) => m['container_stats'] as Array<{ attributes: { id: string } }>)
        .map((x) => x.attributes.id)
        .sort(),
      [srv, cli].sort(),
    );
    const lp = (await cri.runtime('ListPodSandboxStats', {})) as { stats: Array<{ attributes: { id: string } }> };
    assert.ok(lp.stats.some((x) => x.attributes.id === pod));
    // the metrics RPCs: cAdvisor's names, the values of the cgroups
    const desc = (await cri.runtime('ListMetricDescriptors', {})) as {
      descriptors: Array<{ name: string; label_keys: string[] }>;
    };
    const names = desc.descriptors.map((x) => x.name);
    assert.ok(names.includes('container_memory_working_set_bytes'), names.join());
    const pm = (await cri.runtime('ListPodSandboxMetrics', {})) as {
      pod_metrics: Array<{
        pod_sandbox_id: string;
        container_metrics: Array<{
          container_id: string;
          metrics: Array<{ name: string; label_values: string[]; value: { value: number } }>;
        }>;
      }>;
    };
    const mine = pm.pod_metrics.find((x) => x.pod_sandbox_id === pod);
    assert.deepEqual(mine?.container_metrics.map((x) => x.container_id).sort(), [srv, cli].sort());
    const ws = mine?.container_metrics
      .find((x) => x.container_id === srv)
      ?.metrics.find((m) => m.name === 'container_memory_working_set_bytes');
    assert.ok((ws?.value.value ?? 0) > 0);
    assert.deepEqual(ws?.label_values, ['srv', 'web', 'default']);
  });

  test('security context and resources reach the process', async () => {
    const profile = join(d.dir, 'no-mkdir.json');
    writeFileSync(
      profile,
      JSON.stringify({
        defaultAction: 'SCMP_ACT_ALLOW',
        syscalls: [{ names: ['mkdir', 'mkdirat'], action: 'SCMP_ACT_ERRNO' }],
      }),
    );
    const r = await cri.runtime('CreateContainer', {
      pod_sandbox_id: pod,
      sandbox_config: podConfig('web', 'uid-web'),
      config: {
        metadata: { name: 'locked', attempt: 0 },
        image: { image: 'busybox:latest' },
        command: ['sleep', '100000'],
        log_path: 'locked/0.log',
        stop_signal: 'SIGRTMINPLUS2',
        linux: {
          resources: { memory_limit_in_bytes: 64 << 20 },
          security_context: {
            run_as_user: { value: 1234 },
            run_as_group: { value: 2345 },
            supplemental_groups: [3456],
            readonly_rootfs: true,
            no_new_privs: true,
            capabilities: { drop_capabilities: ['ALL'] },
            seccomp: { profile_type: 'Localhost', localhost_ref: profile },
            namespace_options: { network: 'POD', pid: 'CONTAINER', ipc: 'POD' },
          },
        },
      },
    });
    const id = r['container_id'] as string;
    await cri.runtime('StartContainer', { container_id: id });
    assert.match((await exec(id, ['id'])).out, /^uid=1234 gid=2345 groups=2345,3456\n$|^uid=1234 gid=2345 groups=3456/);
    const touch = await exec(id, ['touch', '/x']);
    assert.notEqual(touch.code, 0);
    assert.match(touch.err, /Read-only file system/);
    const status_ = (await exec(id, ['cat', '/proc/self/status'])).out;
    assert.match(status_, /NoNewPrivs:\s+1/);
    assert.match(status_, /CapEff:\s+0000000000000000/);
    const mk = await exec(id, ['mkdir', '/tmp/d']);
    assert.notEqual(mk.code, 0);
    assert.match(mk.err, /not permitted/);
    // its own PID namespace (pid CONTAINER): sleep is pid 1
    assert.equal((await exec(id, ['cat', '/proc/1/comm'])).out, 'sleep\n');
    const st = (await cri.runtime('ContainerStatus', { container_id: id })) as {
      status: { resources: { linux: { memory_limit_in_bytes: number } } };
    };
    assert.equal(st.status.resources.linux.memory_limit_in_bytes, 64 << 20);
    assert.equal((st.status as unknown as { stop_signal: string }).stop_signal, 'SIGRTMINPLUS2');
    const stats = async () =>
      (
        (await cri.runtime('ContainerStats', { container_id: id })) as {
          stats: { memory: { available_bytes: { value: number }; working_set_bytes: { value: number } } };
        }
      ).stats.memory;
    const m = await stats();
    assert.equal(m.available_bytes.value + m.working_set_bytes.value, 64 << 20);
    await cri.runtime('UpdateContainerResources', { container_id: id, linux: { memory_limit_in_bytes: 96 << 20 } });
    const m2 = await stats();
    assert.equal(m2.available_bytes.value + m2.working_set_bytes.value, 96 << 20);
    await cri.runtime('StopContainer', { container_id: id, timeout: 0 });
    await cri.runtime('RemoveContainer', { container_id: id });
  });

  test('bad input: a clean gRPC error, nothing half made', async () => {
    const before_ = containerDirs();
    const count = async () =>
      ((await cri.runtime('ListContainers', {})) as { containers: unknown[] }).containers.length;
    const n = await count();
    const sandbox_config = podConfig('web', 'uid-web');
    // an unknown image
    const det = await rejectsWith(
      cri.runtime('CreateContainer', {
        pod_sandbox_id: pod,
        sandbox_config,
        config: { metadata: { name: 'ghost' }, image: { image: 'no-such-image:1' }, log_path: 'ghost/0.log' },
      }),
      status.NOT_FOUND,
      'unknown image',
    );
    assert.match(det, /no-such-image/);
    assert.equal(existsSync(join(logDir, 'default_web_uid-web', 'ghost')), false, 'no log dir left');
    // a name clash (same name and attempt in the pod)
    await rejectsWith(
      cri.runtime('CreateContainer', {
        pod_sandbox_id: pod,
        sandbox_config,
        config: { metadata: { name: 'srv', attempt: 0 }, image: { image: 'busybox' }, log_path: 'srv/9.log' },
      }),
      status.ALREADY_EXISTS,
      'container name clash',
    );
    await rejectsWith(
      cri.runtime('RunPodSandbox', { config: podConfig('web', 'uid-web') }),
      status.ALREADY_EXISTS,
      'sandbox name clash',
    );
    // a sandbox that does not exist, and missing fields
    await rejectsWith(
      cri.runtime('CreateContainer', {
        pod_sandbox_id: 'f'.repeat(64),
        sandbox_config,
        config: { metadata: { name: 'x' }, image: { image: 'busybox' } },
      }),
      status.NOT_FOUND,
      'sandbox gone',
    );
    await rejectsWith(
      cri.runtime('CreateContainer', { pod_sandbox_id: pod, config: { image: { image: 'busybox' } } }),
      status.INVALID_ARGUMENT,
      'no metadata',
    );
    await rejectsWith(cri.runtime('RunPodSandbox', { config: {} }), status.INVALID_ARGUMENT, 'no pod metadata');
    await rejectsWith(
      cri.runtime('CreateContainer', {
        pod_sandbox_id: pod,
        sandbox_config,
        config: {
          metadata: { name: 'priv' },
          image: { image: 'busybox' },
          linux: { security_context: { privileged: true } },
        },
      }),
      status.INVALID_ARGUMENT,
      'privileged container in a sandbox that is not',
    );
    await rejectsWith(
      cri.runtime('RunPodSandbox', { config: podConfig('x', 'y'), runtime_handler: 'kata' }),
      status.INVALID_ARGUMENT,
      'unknown runtime handler',
    );
    await rejectsWith(cri.runtime('ContainerStatus', { container_id: 'nope' }), status.NOT_FOUND, 'status of nothing');
    await rejectsWith(cri.runtime('PodSandboxStatus', { pod_sandbox_id: 'nope' }), status.NOT_FOUND, 'pod of nothing');
    await rejectsWith(
      cri.runtime('CheckpointContainer', { container_id: srv, location: 'x.tar' }),
      status.INVALID_ARGUMENT,
      'checkpoint to a relative location (cri-checkpoint.test.ts has the rest)',
    );
    await rejectsWith(
      cri.runtime('UpdatePodSandboxResources', { pod_sandbox_id: pod, resources: { memory_limit_in_bytes: 1 << 30 } }),
      status.UNIMPLEMENTED,
      'pod resources',
    );
    assert.equal(await count(), n);
    assert.deepEqual(
      containerDirs().filter((x) => !before_.includes(x)),
      [],
      'no container dir made',
    );
    // a pod whose sandbox was stopped takes no new container; a removed one is not found
    const other = (await cri.runtime('RunPodSandbox', { config: podConfig('gone', 'uid-gone') }))[
      'pod_sandbox_id'
    ] as string;
    await cri.runtime('StopPodSandbox', { pod_sandbox_id: other });
    const st = (await cri.runtime('PodSandboxStatus', { pod_sandbox_id: other })) as { status: Msg };
    assert.equal(st.status['state'], 'SANDBOX_NOTREADY');
    await rejectsWith(
      cri.runtime('CreateContainer', {
        pod_sandbox_id: other,
        sandbox_config: podConfig('gone', 'uid-gone'),
        config: { metadata: { name: 'late' }, image: { image: 'busybox' } },
      }),
      status.FAILED_PRECONDITION,
      'sandbox stopped',
    );
    await cri.runtime('StopPodSandbox', { pod_sandbox_id: other }); // idempotent
    await cri.runtime('RemovePodSandbox', { pod_sandbox_id: other });
    await cri.runtime('RemovePodSandbox', { pod_sandbox_id: other }); // idempotent
    await rejectsWith(
      cri.runtime('CreateContainer', {
        pod_sandbox_id: other,
        sandbox_config: podConfig('gone', 'uid-gone'),
        config: { metadata: { name: 'late' }, image: { image: 'busybox' } },
      }),
      status.NOT_FOUND,
      'sandbox removed',
    );
    await eventually(() => !containerDirs().includes(other), 20_000, 'the removed pod files gone');
  });

  test('the Docker API neither lists nor finds CRI containers; names do not clash', async () => {
    const ps = await d.docker(['ps', '-aq', '--no-trunc']);
    assert.equal(ps.stdout.trim(), '');
    for (const id of [srv, pod, srv.slice(0, 12)]) {
      const r = await d.docker(['inspect', id], { allowFail: true });
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /No such/);
      // (the docker CLI's `rm -f` exits 0 on "No such container": the API's answer is what counts)
      const rm = await d.api('DELETE', `/containers/${id}?force=1`);
      assert.equal(rm.status, 404);
    }
    const join_ = await d.docker(['run', '--rm', '--network', `container:${pod}`, 'busybox', 'true'], {
      allowFail: true,
    });
    assert.notEqual(join_.code, 0, 'a Docker container cannot join a pod by id');
    const info = (await d.api('GET', '/info')).body as { Containers: number };
    assert.equal(info.Containers, 0);
    // the CRI's own names are free in Docker's namespace
    const name = 'k8s_srv_web_default_uid-web_0';
    await d.docker(['create', '--name', name, 'busybox', 'true']);
    await d.docker(['rm', name]);
    // and the CRI still has its container
    const st = (await cri.runtime('ContainerStatus', { container_id: srv })) as { status: Msg };
    assert.equal(st.status['state'], 'CONTAINER_RUNNING');
  });

  test('kill -9 of berthd: pods and containers keep running and are listed again', async () => {
    const pid = (
      JSON.parse(
        ((await cri.runtime('ContainerStatus', { container_id: srv, verbose: true })) as { info: { info: string } })
          .info.info,
      ) as { pid: number }
    ).pid;
    cri.close();
    await d.kill9();
    assert.ok(existsSync(`/proc/${pid}`), 'the container outlives the daemon');
    await d.restart();
    cri = criClient(sock);
    const pods = (await cri.runtime('ListPodSandbox', {})) as { items: Array<{ id: string; state: string }> };
    assert.deepEqual(
      pods.items.map((p) => [p.id, p.state]),
      [[pod, 'SANDBOX_READY']],
    );
    const list = (await cri.runtime('ListContainers', {})) as { containers: Array<{ id: string; state: string }> };
    assert.deepEqual(
      list.containers.map((c) => [c.id, c.state]).sort(),
      [
        [srv, 'CONTAINER_RUNNING'],
        [cli, 'CONTAINER_RUNNING'],
      ].sort(),
    );
    const r = await exec(cli, ['wget', '-qO-', 'http://127.0.0.1:8080/']);
    assert.equal(r.out, 'pod-ok\n');
  });

  test('stop and remove: containers exit, the pod goes, events were streamed', async () => {
    stopEvents();
    stopEvents = cri.events((ev) => events.push(ev));
    await cri.runtime('StopContainer', { container_id: srv, timeout: 2 });
    const st = (await cri.runtime('ContainerStatus', { container_id: srv })) as { status: Msg };
    assert.equal(st.status['state'], 'CONTAINER_EXITED');
    assert.ok((st.status['finished_at'] as number) > 0);
    assert.ok(['Completed', 'Error'].includes(st.status['reason'] as string));
    await cri.runtime('StopContainer', { container_id: srv, timeout: 2 }); // idempotent
    await cri.runtime('StopPodSandbox', { pod_sandbox_id: pod });
    await cri.runtime('RemovePodSandbox', { pod_sandbox_id: pod });
    await rejectsWith(cri.runtime('ContainerStatus', { container_id: cli }), status.NOT_FOUND, 'removed with its pod');
    await cri.runtime('RemoveContainer', { container_id: cli }); // idempotent
    const pods = (await cri.runtime('ListPodSandbox', {})) as { items: unknown[] };
    assert.equal(pods.items.length, 0);
    // events: created, started (before the restart, first stream) and stopped, deleted (after it)
    const seen = await eventually(
      () => {
        const mine = events.filter((e) => e['container_id'] === srv).map((e) => e['container_event_type']);
        return mine.includes('CONTAINER_DELETED_EVENT') && mine;
      },
      20_000,
      'the deleted event',
    );
    for (const t of ['CONTAINER_CREATED_EVENT', 'CONTAINER_STARTED_EVENT', 'CONTAINER_STOPPED_EVENT'])
      assert.ok(seen.includes(t), `${t} in ${seen.join()}`);
    await eventually(() => containerDirs().length === 0, 20_000, 'every container dir gone');
  });
});
