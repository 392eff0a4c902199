// A CRI v1 client for bench/cri.sh: pod start latency through runtimes' CRI sockets, side by side.
//   node bench/cri-client.mjs OUT.json RUNS WARMUP LABEL=unix:///path.sock [LABEL=unix:///path.sock ...]
// Each run, for each runtime in turn (the order alternates from run to run, so that neither always
// goes first under the machine's load): RunPodSandbox (the pod's network through CNI) +
// CreateContainer (busybox `sleep 3600`) + StartContainer, timed as one (the figure) and step by
// step; the container must be running and the pod must have an IP; then StopContainer,
// RemoveContainer, StopPodSandbox, RemovePodSandbox, timed apart (not in the figure). A runtime
// that fails is reported with its error and the others go on. Writes medians and every sample to
// OUT.json. The .proto is berth's src/cri/proto/api.proto (runtime.v1, the published wire
// contract), so the same bytes go to every runtime. IMAGE (default busybox:latest) is the
// container's image; pod logs go under LOG_ROOT/<label>/<pod uid>.
import { randomUUID } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import grpc from '@grpc/grpc-js';
import protoLoader from '@grpc/proto-loader';

const [out, runsArg, warmupArg, ...targetArgs] = process.argv.slice(2);
if (!out || !targetArgs.length) throw new Error('usage: cri-client.mjs OUT.json RUNS WARMUP LABEL=unix:///path.sock...');
const RUNS = Number(runsArg ?? 20);
const WARMUP = Number(warmupArg ?? 2);
const IMAGE = process.env.IMAGE ?? 'busybox:latest';
const LOG_ROOT = process.env.LOG_ROOT ?? join(dirname(out), 'pod-logs');
/** every call gets a deadline: a runtime that hangs fails its side of the bench instead of stalling it */
const DEADLINE_MS = Number(process.env.CRI_DEADLINE_MS ?? 60_000);

const proto = fileURLToPath(new URL('../src/cri/proto/api.proto', import.meta.url));
const def = protoLoader.loadSync(proto, { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true });
const v1 = grpc.loadPackageDefinition(def).runtime.v1;

const call = (svc, method, req) =>
  new Promise((resolve, reject) =>
    svc[method](req, { deadline: Date.now() + DEADLINE_MS }, (err, res) =>
      err ? reject(new Error(`${method}: ${err.details || err.message} (gRPC ${err.code})`)) : resolve(res),
    ),
  );
const now = () => Number(process.hrtime.bigint()) / 1e6;
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

const targets = targetArgs.map((a) => {
  const i = a.indexOf('=');
  const [label, endpoint] = [a.slice(0, i), a.slice(i + 1)];
  return {
    label,
    endpoint,
    runtime: new v1.RuntimeService(endpoint, grpc.credentials.createInsecure()),
    images: new v1.ImageService(endpoint, grpc.credentials.createInsecure()),
    rows: [],
    name: '',
    error: null,
  };
});

/** Version, then Status until RuntimeReady and NetworkReady (the CNI conf is loaded), then the image. */
async function prepare(t) {
  const version = await call(t.runtime, 'Version', { version: 'v1' });
  t.name = `${version.runtime_name} ${version.runtime_version}`;
  for (let i = 0; ; i++) {
    const status = await call(t.runtime, 'Status', { verbose: false });
    const conds = Object.fromEntries((status.status?.conditions ?? []).map((c) => [c.type, c]));
    if (conds.RuntimeReady?.status && conds.NetworkReady?.status) break;
    if (i >= 100) throw new Error(`not ready: ${JSON.stringify(status.status?.conditions)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  const img = await call(t.images, 'ImageStatus', { image: { image: IMAGE }, verbose: false });
  if (!img.image) throw new Error(`${IMAGE} is not in the runtime's image store`);
}

async function podOnce(t, i) {
  const { runtime } = t;
  const uid = randomUUID();
  const logDir = join(LOG_ROOT, t.label, uid);
  mkdirSync(logDir, { recursive: true });
  const podConfig = {
    metadata: { name: `bench-${i}`, uid, namespace: 'berth-bench', attempt: 0 },
    hostname: `bench-${i}`,
    log_directory: logDir,
    labels: { bench: 'cri' },
    linux: { security_context: { namespace_options: { network: 'POD', pid: 'CONTAINER', ipc: 'POD' } } },
  };
  const t0 = now();
  const { pod_sandbox_id: pod } = await call(runtime, 'RunPodSandbox', { config: podConfig, runtime_handler: '' });
  const t1 = now();
  const { container_id: ctr } = await call(runtime, 'CreateContainer', {
    pod_sandbox_id: pod,
    config: {
      metadata: { name: 'sleeper', attempt: 0 },
      image: { image: IMAGE },
      command: ['sleep', '3600'],
      log_path: 'sleeper.log',
      linux: {},
    },
    sandbox_config: podConfig,
  });
  const t2 = now();
  await call(runtime, 'StartContainer', { container_id: ctr });
  const t3 = now();
  const st = await call(runtime, 'ContainerStatus', { container_id: ctr, verbose: false });
  if (st.status?.state !== 'CONTAINER_RUNNING') throw new Error(`container ${ctr} is ${st.status?.state}, not running`);
  const ps = await call(runtime, 'PodSandboxStatus', { pod_sandbox_id: pod, verbose: false });
  const ip = ps.status?.network?.ip ?? '';
  if (!ip) throw new Error(`pod ${pod} has no IP: its network did not come up through CNI`);
  const t4 = now();
  await call(runtime, 'StopContainer', { container_id: ctr, timeout: 0 });
  await call(runtime, 'RemoveContainer', { container_id: ctr });
  await call(runtime, 'StopPodSandbox', { pod_sandbox_id: pod });
  await call(runtime, 'RemovePodSandbox', { pod_sandbox_id: pod });
  const t5 = now();
  return { total: t3 - t0, runPodSandbox: t1 - t0, createContainer: t2 - t1, startContainer: t3 - t2, teardown: t5 - t4, ip };
}

for (const t of targets) await prepare(t).catch((e) => (t.error = e.message));
for (let i = 0; i < WARMUP + RUNS; i++) {
  const order = i % 2 ? [...targets].reverse() : targets;
  for (const t of order) {
    if (t.error) continue;
    try {
      const row = await podOnce(t, i);
      if (i >= WARMUP) t.rows.push(row);
    } catch (e) {
      t.error = `run ${i}: ${e.message}`;
      // what this run left: every pod of the bench (RemovePodSandbox removes its containers)
      const left = await call(t.runtime, 'ListPodSandbox', { filter: { label_selector: { bench: 'cri' } } }).catch(() => null);
      for (const p of left?.items ?? []) {
        await call(t.runtime, 'StopPodSandbox', { pod_sandbox_id: p.id }).catch(() => undefined);
        await call(t.runtime, 'RemovePodSandbox', { pod_sandbox_id: p.id }).catch(() => undefined);
      }
    }
  }
}

const result = { runs: RUNS, warmup: WARMUP, image: IMAGE, targets: {} };
for (const t of targets) {
  const left = t.error ? null : await call(t.runtime, 'ListPodSandbox', { filter: { label_selector: { bench: 'cri' } } });
  result.targets[t.label] = t.error
    ? { endpoint: t.endpoint, runtime: t.name, error: t.error }
    : {
        endpoint: t.endpoint,
        runtime: t.name,
        medianMs: Object.fromEntries(
          ['total', 'runPodSandbox', 'createContainer', 'startContainer', 'teardown'].map((k) => [
            k,
            median(t.rows.map((r) => r[k])),
          ]),
        ),
        minTotalMs: Math.min(...t.rows.map((r) => r.total)),
        maxTotalMs: Math.max(...t.rows.map((r) => r.total)),
        podsLeft: left.items.length,
        samples: t.rows,
      };
  const r = result.targets[t.label];
  const f = (x) => x.toFixed(1);
  console.log(
    r.error
      ? `${t.label}: FAILED: ${r.error}`
      : `${t.label} (${r.runtime}): pod start median ${f(r.medianMs.total)} ms (RunPodSandbox ${f(r.medianMs.runPodSandbox)}, ` +
          `CreateContainer ${f(r.medianMs.createContainer)}, StartContainer ${f(r.medianMs.startContainer)}), ` +
          `teardown ${f(r.medianMs.teardown)} ms, ${RUNS} runs`,
  );
  t.runtime.close();
  t.images.close();
}
writeFileSync(out, JSON.stringify(result, null, 2));
process.exitCode = Object.values(result.targets).every((r) => r.error) ? 1 : 0;
