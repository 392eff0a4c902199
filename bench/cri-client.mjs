// A CRI v1 client for bench/cri.sh: pod start latency through one runtime's CRI socket.
//   node bench/cri-client.mjs ENDPOINT OUT.json [RUNS] [WARMUP]
// ENDPOINT is unix:///path/to.sock. Each run: RunPodSandbox (CNI networking, the pod network
// namespace) + CreateContainer (busybox `sleep 3600`) + StartContainer, timed as one (the figure)
// and step by step; then StopContainer, RemoveContainer, StopPodSandbox, RemovePodSandbox, timed
// apart (not part of the figure). Writes medians and every sample to OUT.json. The .proto is berth's
// src/cri/proto/api.proto (runtime.v1, the published wire contract), so the same client drives
// berthd and containerd. IMAGE (default busybox:latest) is the container's image.
import { randomUUID } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import grpc from '@grpc/grpc-js';
import protoLoader from '@grpc/proto-loader';

const [endpoint, out, runsArg = '20', warmupArg = '2'] = process.argv.slice(2);
if (!endpoint || !out) throw new Error('usage: cri-client.mjs unix:///path.sock OUT.json [RUNS] [WARMUP]');
const RUNS = Number(runsArg);
const WARMUP = Number(warmupArg);
const IMAGE = process.env.IMAGE ?? 'busybox:latest';
const LOG_ROOT = process.env.LOG_ROOT ?? join(dirname(out), 'pod-logs');
/** every call gets a deadline: a runtime that hangs fails the bench instead of stalling it */
const DEADLINE_MS = Number(process.env.CRI_DEADLINE_MS ?? 60_000);

const proto = fileURLToPath(new URL('../src/cri/proto/api.proto', import.meta.url));
const def = protoLoader.loadSync(proto, { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true });
const v1 = grpc.loadPackageDefinition(def).runtime.v1;
const runtime = new v1.RuntimeService(endpoint, grpc.credentials.createInsecure());
const images = new v1.ImageService(endpoint, grpc.credentials.createInsecure());

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

const version = await call(runtime, 'Version', { version: 'v1' });
// wait until the runtime says it can run pods with networking (CNI conf loaded)
let status;
for (let i = 0; ; i++) {
  status = await call(runtime, 'Status', { verbose: false });
  const conds = Object.fromEntries((status.status?.conditions ?? []).map((c) => [c.type, c]));
  if (conds.RuntimeReady?.status && conds.NetworkReady?.status) break;
  if (i >= 100) throw new Error(`runtime not ready: ${JSON.stringify(status.status?.conditions)}`);
  await new Promise((r) => setTimeout(r, 200));
}
const img = await call(images, 'ImageStatus', { image: { image: IMAGE }, verbose: false });
if (!img.image) throw new Error(`${IMAGE} is not in the runtime's image store`);

const rows = [];
for (let i = 0; i < WARMUP + RUNS; i++) {
  const uid = randomUUID();
  const logDir = join(LOG_ROOT, uid);
  mkdirSync(logDir, { recursive: true });
  const podConfig = {
    metadata: { name: `bench-${i}`, uid, namespace: 'berth-bench', attempt: 0 },
    hostname: `bench-${i}`,
    log_directory: logDir,
    labels: { bench: 'cri' },
    linux: { cgroup_parent: '', security_context: { namespace_options: { network: 'POD', pid: 'CONTAINER', ipc: 'POD' } } },
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
  if (!ip) throw new Error(`pod ${pod} has no IP: CNI networking did not run`);
  const t4 = now();
  await call(runtime, 'StopContainer', { container_id: ctr, timeout: 0 });
  await call(runtime, 'RemoveContainer', { container_id: ctr });
  await call(runtime, 'StopPodSandbox', { pod_sandbox_id: pod });
  await call(runtime, 'RemovePodSandbox', { pod_sandbox_id: pod });
  const t5 = now();
  if (i >= WARMUP)
    rows.push({ total: t3 - t0, runPodSandbox: t1 - t0, createContainer: t2 - t1, startContainer: t3 - t2, teardown: t5 - t4, ip });
}
const left = await call(runtime, 'ListPodSandbox', { filter: { label_selector: { bench: 'cri' } } });
const result = {
  endpoint,
  runtime: `${version.runtime_name} ${version.runtime_version}`,
  runs: RUNS,
  warmup: WARMUP,
  medianMs: Object.fromEntries(
    ['total', 'runPodSandbox', 'createContainer', 'startContainer', 'teardown'].map((k) => [k, median(rows.map((r) => r[k]))]),
  ),
  minTotalMs: Math.min(...rows.map((r) => r.total)),
  maxTotalMs: Math.max(...rows.map((r) => r.total)),
  podsLeft: left.items.length,
  samples: rows,
};
writeFileSync(out, JSON.stringify(result, null, 2));
console.log(
  `${result.runtime}: pod start median ${result.medianMs.total.toFixed(1)} ms ` +
    `(RunPodSandbox ${result.medianMs.runPodSandbox.toFixed(1)}, CreateContainer ${result.medianMs.createContainer.toFixed(1)}, ` +
    `StartContainer ${result.medianMs.startContainer.toFixed(1)}), teardown ${result.medianMs.teardown.toFixed(1)} ms, ${RUNS} runs`,
);
runtime.close();
images.close();
