// The daemons' own cost through the Engine API, driven by ONE persistent HTTP client per
// daemon over its unix socket (keep-alive; no CLI process in the loop). Run by bench/api-cost.sh.
//   node bench/api-cost.mjs side <runs> <state> crun:<bundle>... <sock>[@<cgroup>]...  interleaved rounds
//       with CPU: a crun's from this process's reaped children (/proc/self/stat), a daemon's from the
//       cgroup given after its socket (cpuacct.usage, or cpu.stat on cgroup v2): the daemon and every
//       process it starts that stays in its cgroup (conmon, `crun create`, containerd, shims)
//   node bench/api-cost.mjs cycle  <sock> <runs>            create+start+wait+remove `busybox true`
//   node bench/api-cost.mjs crun   <bundle> <state> <runs>   `crun run` of the same rootfs (the floor)
//   node bench/api-cost.mjs detach <sock> <n> <clients>     n detached `sleep` starts from c clients
//   node bench/api-cost.mjs build  <sock> <ctx.tar> <runs>  POST /build of a cached context
//   node bench/api-cost.mjs rmall  <sock>                   remove every container
// Prints one JSON line: {"ms": [per-run milliseconds...]} or {"s": wall seconds, "n": n}.
import http from 'node:http';
import fs from 'node:fs';
import { spawnSync } from 'node:child_process';

const [mode, ...args] = process.argv.slice(2);
// the crun berthd runs (scripts/crun.sh's, else Debian's): the floor is the same binary
const CRUN = process.env.CRUN || (fs.existsSync('/usr/local/lib/berth/crun') ? '/usr/local/lib/berth/crun' : 'crun');

function client(sock, maxSockets = 1) {
  const agent = new http.Agent({ keepAlive: true, maxSockets });
  return (method, path, body, headers = {}) =>
    new Promise((resolve, reject) => {
      const data = body === undefined ? undefined : Buffer.isBuffer(body) ? body : Buffer.from(JSON.stringify(body));
      const h = { ...headers };
      if (data) {
        h['Content-Length'] = data.length;
        h['Content-Type'] ??= 'application/json';
      }
      const req = http.request({ socketPath: sock, agent, method, path: `/v1.41${path}`, headers: h }, (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString();
          if (res.statusCode >= 300) reject(new Error(`${method} ${path}: ${res.statusCode} ${text}`));
          else resolve(text);
        });
      });
      req.on('error', reject);
      req.end(data);
    });
}

const now = () => Number(process.hrtime.bigint()) / 1e6;

async function cycle(call, cmd) {
  const { Id } = JSON.parse(
    await call('POST', '/containers/create', { Image: 'busybox', Cmd: cmd, HostConfig: { NetworkMode: 'none' } }),
  );
  await call('POST', `/containers/${Id}/start`);
  const w = JSON.parse(await call('POST', `/containers/${Id}/wait`));
  if (w.StatusCode !== 0) throw new Error(`exit ${w.StatusCode}`);
  await call('DELETE', `/containers/${Id}`);
}

/** CPU milliseconds so far: this process's reaped children, or a cgroup's usage. */
function cpuMs(cg) {
  if (!cg) {
    const f = fs.readFileSync('/proc/self/stat', 'utf8').split(') ')[1].split(' ');
    return (Number(f[13]) + Number(f[14])) * 10; // cutime + cstime (fields 16, 17), in 10 ms ticks
  }
  if (fs.existsSync(`${cg}/cpuacct.usage`)) return Number(fs.readFileSync(`${cg}/cpuacct.usage`, 'utf8')) / 1e6;
  return Number(/usage_usec (\d+)/.exec(fs.readFileSync(`${cg}/cpu.stat`, 'utf8'))[1]) / 1e3;
}

if (mode === 'side') {
  // interleaved rounds (each bundle's `crun run`, then each daemon in turn), so that every figure
  // sees the same load; items: `crun:<bundle>` or a daemon's socket path[@cgroup]
  const [runs, state, ...items] = args;
  const sockOf = (i) => i.split('@')[0];
  const cgOf = (i) => (i.startsWith('crun:') ? undefined : i.split('@')[1]);
  const calls = new Map(items.filter((i) => !i.startsWith('crun:')).map((i) => [i, client(sockOf(i))]));
  for (const call of calls.values()) for (let i = 0; i < 3; i++) await cycle(call, ['true']); // warm-up
  const out = Object.fromEntries(items.map((i) => [sockOf(i), []]));
  // CPU over all rounds (a daemon's removal goes on after its answer), plus a second to settle
  const counted = items.filter((i) => i.startsWith('crun:') || cgOf(i));
  const cpu0 = new Map(counted.map((i) => [i, cpuMs(cgOf(i))]));
  // a crun's CPU is this process's reaped children around its own runs (with two bundles, the
  // children's total over all rounds would count both for each)
  const crunCpu = new Map();
  // SETTLE_MS: a pause before each timed cycle, so that a daemon's work after its answer (dockerd's
  // teardown) does not fall on the next item's cycle. Off by default: on this VM a pause lets the
  // vCPUs idle, and berthd's cycle, which wakes threads and processes on the other CPU, then got
  // slower (1.52 -> 1.71 over crun run, 250 ms, results/20261203T051839Z-api-cost.md), crun's did not.
  const settle = Number(process.env.SETTLE_MS ?? 0);
  for (let i = 0; i < +runs; i++) {
    for (const item of items) {
      if (settle) await new Promise((r) => setTimeout(r, settle));
      const t = now();
      if (item.startsWith('crun:')) {
        const c0 = cpuMs();
        const r = spawnSync(CRUN, ['--root', state, 'run', '-b', item.slice(5), `apicost${i}`], { stdio: 'ignore' });
        if (r.status !== 0) throw new Error(`crun run ${item}: ${r.status}`);
        crunCpu.set(item, (crunCpu.get(item) ?? 0) + cpuMs() - c0);
      } else await cycle(calls.get(item), ['true']);
      out[sockOf(item)].push(now() - t);
    }
  }
  await new Promise((r) => setTimeout(r, 1000));
  const cpuPerRun = Object.fromEntries(
    counted.map((i) => [
      sockOf(i),
      +((i.startsWith('crun:') ? crunCpu.get(i) : cpuMs(cgOf(i)) - cpu0.get(i)) / +runs).toFixed(2),
    ]),
  );
  console.log(JSON.stringify({ ...out, cpu_ms_per_run: cpuPerRun }));
} else if (mode === 'cycle') {
  const [sock, runs] = args;
  const call = client(sock);
  for (let i = 0; i < 3; i++) await cycle(call, ['true']); // warm-up
  const ms = [];
  for (let i = 0; i < +runs; i++) {
    const t = now();
    await cycle(call, ['true']);
    ms.push(now() - t);
  }
  console.log(JSON.stringify({ ms }));
} else if (mode === 'crun') {
  const [bundle, state, runs] = args;
  const ms = [];
  for (let i = 0; i < +runs + 3; i++) {
    const t = now();
    const r = spawnSync(CRUN, ['--root', state, 'run', '-b', bundle, `apicost${i}`], { stdio: 'ignore' });
    if (r.status !== 0) throw new Error(`crun run: ${r.status}`);
    if (i >= 3) ms.push(now() - t);
  }
  console.log(JSON.stringify({ ms }));
} else if (mode === 'detach') {
  const [sock, n, clients] = args;
  const calls = Array.from({ length: +clients }, () => client(sock));
  let left = +n;
  const t = now();
  await Promise.all(
    calls.map(async (call) => {
      while (left > 0) {
        left--;
        const { Id } = JSON.parse(
          await call('POST', '/containers/create', {
            Image: 'busybox',
            Cmd: ['sleep', '3600'],
            HostConfig: { NetworkMode: 'none' },
          }),
        );
        await call('POST', `/containers/${Id}/start`);
      }
    }),
  );
  console.log(JSON.stringify({ s: (now() - t) / 1000, n: +n }));
} else if (mode === 'build') {
  const [sock, tar, runs] = args;
  const call = client(sock);
  const body = fs.readFileSync(tar);
  const q = '/build?q=1&networkmode=none&t=apicost:latest';
  const hdr = { 'Content-Type': 'application/x-tar' };
  const ids = new Set();
  const one = async () => {
    const out = await call('POST', q, body, hdr);
    if (out.includes('"error')) throw new Error(out);
    const m = /sha256:[0-9a-f]{64}/.exec(out);
    if (m) ids.add(m[0]);
  };
  await one();
  await one();
  const ms = [];
  for (let i = 0; i < +runs; i++) {
    const t = now();
    await one();
    ms.push(now() - t);
  }
  if (ids.size !== 1) throw new Error(`cached rebuilds gave ${ids.size} different ids`);
  console.log(JSON.stringify({ ms }));
} else if (mode === 'rmall') {
  const [sock] = args;
  const calls = Array.from({ length: 8 }, () => client(sock));
  const ids = JSON.parse(await calls[0]('GET', '/containers/json?all=1')).map((c) => c.Id);
  await Promise.all(
    calls.map(async (call, k) => {
      for (let i = k; i < ids.length; i += calls.length) await call('DELETE', `/containers/${ids[i]}?force=1`);
    }),
  );
  console.log(JSON.stringify({ removed: ids.length }));
} else {
  console.error('usage: see the head of bench/api-cost.mjs');
  process.exit(2);
}
