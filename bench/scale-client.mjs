#!/usr/bin/env node
// The API client of bench/scale.sh: persistent HTTP connections over a daemon's unix socket, no
// CLI process per container. Works against berthd, dockerd and podman's Docker-compatible service.
//
//   node scale-client.mjs SOCK start N CLIENTS [PREFIX]  create+start N idle busybox containers
//                                                       (`sleep 1d`, --network none), CLIENTS at a time;
//                                                       prints JSON {started, failed, seconds, rate, firstError,
//                                                       stoppedFor, per1000: [seconds for each 1,000]}; stops
//                                                       when MemAvailable < MIN_AVAILABLE_MB (2048)
//                                                       or free pids < MIN_FREE_PIDS (2000)
//                                                       or after MAX_START_MINUTES (unset: no limit)
//   node scale-client.mjs SOCK remove CLIENTS [PREFIX]   force-removes every container (named PREFIX* when given)
//   node scale-client.mjs SOCK time RUNS METHOD PATH     median/min/max ms of RUNS requests on one connection
//   node scale-client.mjs SOCK count                     {running, all} from GET /containers/json?all=1
//   node scale-client.mjs SOCK wait-listed N TIMEOUT_S   polls until N running are listed: {ping_ms, listed_ms}
//                                                       measured from the call (start it right after the restart)
//   node scale-client.mjs SOCK events                    ms until a started container's `start` event arrives
//   node scale-client.mjs SOCK attach REF LINE           attach, write LINE, wait for `got LINE`: {ok, ms}
//   node scale-client.mjs SOCK ids                       every container's id, one a line
//   node scale-client.mjs - pss REGEX                    monitors (cmdline matching REGEX) + children: PSS/RSS
//   node scale-client.mjs - leftovers IDS ROOT [PARENT]  cgroups/processes/dirs/netns/mounts left of IDS
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';

const [sock, cmd, ...rest] = process.argv.slice(2);
if (!sock || !cmd) {
  process.stderr.write('usage: scale-client.mjs SOCK start|remove|time|count|wait-listed|events ...\n');
  process.exit(2);
}
const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
// podman 4.3's defaults fail on this host (no CAP_SYS_RESOURCE above nofile 20000): SCALE_ULIMITS=1 sets them
const ULIMITS = process.env.SCALE_ULIMITS
  ? {
      Ulimits: [
        { Name: 'nofile', Soft: 1024, Hard: 1024 },
        { Name: 'nproc', Soft: 1024, Hard: 1024 },
      ],
    }
  : {};

function request(method, path, body, timeoutMs = 120_000) {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const req = http.request(
      {
        socketPath: sock,
        agent,
        method,
        path,
        headers: data ? { 'content-type': 'application/json', 'content-length': data.length } : {},
        timeout: timeoutMs,
      },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString() }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${method} ${path}: timed out`)));
    req.on('error', reject);
    req.end(data);
  });
}

async function json(method, path, body) {
  const r = await request(method, path, body);
  if (r.status >= 300) throw new Error(`${method} ${path}: ${r.status} ${r.text.trim()}`);
  return r.text ? JSON.parse(r.text) : null;
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor(s.length / 2)] : NaN;
};
const round = (x) => Math.round(x * 10) / 10;

async function start(n, clients, prefix) {
  const t0 = performance.now();
  let next = 0;
  let started = 0;
  let failed = 0;
  let firstError = '';
  let stoppedFor = '';
  const marks = [];
  // the host first: below MIN_AVAILABLE_MB (2048) of MemAvailable the starts stop, before the OOM killer
  const floorKb = Number(process.env.MIN_AVAILABLE_MB ?? 2048) * 1024;
  const availableKb = () =>
    Number(/MemAvailable:\s+(\d+)/.exec(fs.readFileSync('/proc/meminfo', 'utf8'))?.[1] ?? Infinity);
  // and below MIN_FREE_PIDS (2000) free pids (pid_max minus the host's tasks): an engine whose
  // monitor is many threads (containerd-shim: ~12) would otherwise take the host's last pids
  const pidFloor = Number(process.env.MIN_FREE_PIDS ?? 2000);
  const pidMax = Number(fs.readFileSync('/proc/sys/kernel/pid_max', 'utf8'));
  const freePids = () => pidMax - Number(fs.readFileSync('/proc/loadavg', 'utf8').split(' ')[3].split('/')[1]);
  // and after MAX_START_MINUTES (none by default): an engine whose rate fell far enough is
  // reported where it was when the time ran out
  const deadline = process.env.MAX_START_MINUTES ? t0 + Number(process.env.MAX_START_MINUTES) * 60_000 : Infinity;
  const worker = async () => {
    for (let i = next++; i < n; i = next++) {
      if (i % 20 === 0 && (availableKb() < floorKb || freePids() < pidFloor || performance.now() > deadline)) {
        stoppedFor ||=
          availableKb() < floorKb
            ? `MemAvailable below ${floorKb / 1024} MB after ${started} starts`
            : freePids() < pidFloor
              ? `fewer than ${pidFloor} free pids (pid_max ${pidMax}) after ${started} starts`
              : `the bench's time limit (MAX_START_MINUTES=${process.env.MAX_START_MINUTES}) after ${started} starts`;
        next = n;
        break;
      }
      try {
        const c = await json('POST', `/v1.41/containers/create?name=${prefix}${i}`, {
          Image: 'busybox',
          Cmd: ['sleep', '1d'],
          HostConfig: { NetworkMode: 'none', ...ULIMITS },
        });
        await json('POST', `/v1.41/containers/${c.Id}/start`);
        started++;
        if (started % 1000 === 0) marks.push(round((performance.now() - t0) / 1000));
      } catch (e) {
        failed++;
        if (!firstError) firstError = String(e.message ?? e).slice(0, 300);
        // a host limit reached: stop early rather than hammer it
        if (failed >= 20 && failed > started / 10) next = n;
      }
    }
  };
  await Promise.all(Array.from({ length: clients }, worker));
  const seconds = (performance.now() - t0) / 1000;
  return {
    started,
    failed,
    seconds: round(seconds),
    rate: round(started / seconds),
    firstError,
    stoppedFor,
    per1000: marks,
  };
}

async function remove(clients, prefix) {
  const t0 = performance.now();
  const list = await json('GET', '/v1.41/containers/json?all=1');
  const ids = list.filter((c) => !prefix || (c.Names ?? []).some((n) => n.startsWith(`/${prefix}`))).map((c) => c.Id);
  let next = 0;
  let removed = 0;
  let failed = 0;
  let firstError = '';
  const worker = async () => {
    for (let i = next++; i < ids.length; i = next++) {
      try {
        await json('DELETE', `/v1.41/containers/${ids[i]}?force=1`);
        removed++;
      } catch (e) {
        failed++;
        if (!firstError) firstError = String(e.message ?? e).slice(0, 300);
      }
    }
  };
  await Promise.all(Array.from({ length: clients }, worker));
  return { removed, failed, seconds: round((performance.now() - t0) / 1000), firstError };
}

async function time(runs, method, path) {
  const xs = [];
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    const r = await request(method, path);
    if (r.status >= 300) throw new Error(`${method} ${path}: ${r.status} ${r.text.slice(0, 200)}`);
    xs.push(performance.now() - t);
  }
  return { median_ms: round(median(xs)), min_ms: round(Math.min(...xs)), max_ms: round(Math.max(...xs)), runs };
}

async function count() {
  const list = await json('GET', '/v1.41/containers/json?all=1');
  return { all: list.length, running: list.filter((c) => c.State === 'running').length };
}

async function waitListed(n, timeoutS) {
  const t0 = performance.now();
  const end = t0 + timeoutS * 1000;
  let ping = null;
  let listed = null;
  let last = 0;
  while (performance.now() < end) {
    try {
      if (ping === null) {
        const r = await request('GET', '/_ping', undefined, 2000);
        if (r.status === 200) ping = performance.now() - t0;
        else throw new Error('not yet');
      }
      const list = await json('GET', '/v1.41/containers/json');
      last = list.length;
      if (last >= n) {
        listed = performance.now() - t0;
        break;
      }
    } catch {
      agent.destroy();
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  return { ping_ms: ping === null ? null : round(ping), listed_ms: listed === null ? null : round(listed), last };
}

/** The time from a start to its `start` event on a streaming GET /events. */
async function events() {
  const c = await json('POST', '/v1.41/containers/create', {
    Image: 'busybox',
    Cmd: ['true'],
    HostConfig: { NetworkMode: 'none', ...ULIMITS },
  });
  const t0 = { v: 0 };
  const got = new Promise((resolve, reject) => {
    const req = http.request(
      {
        socketPath: sock,
        method: 'GET',
        path: `/v1.41/events?filters=${encodeURIComponent(JSON.stringify({ container: [c.Id] }))}`,
      },
      (res) => {
        let buf = '';
        res.on('data', (d) => {
          buf += d.toString();
          if (buf.includes('"start"')) {
            resolve(performance.now() - t0.v);
            req.destroy();
          }
        });
      },
    );
    req.on('error', (e) => (e.code === 'ECONNRESET' ? undefined : reject(e)));
    req.end();
    setTimeout(() => reject(new Error('no start event in 60 s')), 60_000).unref();
  });
  await new Promise((r) => setTimeout(r, 200)); // the subscription is in place
  t0.v = performance.now();
  await json('POST', `/v1.41/containers/${c.Id}/start`);
  const ms = await got;
  const since = Math.floor(Date.now() / 1000) - 3600;
  const hist = await time(3, 'GET', `/v1.41/events?since=${since}&until=${Math.floor(Date.now() / 1000)}`);
  await json('DELETE', `/v1.41/containers/${c.Id}?force=1`);
  return { start_event_ms: round(ms), history_hour_ms: hist.median_ms };
}

/** Processes whose command line matches `re` (the monitors), with their children: count and PSS/RSS sums (kB). */
function pss(re) {
  const procs = [];
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      procs.push({ pid: Number(d), ppid, cmd: fs.readFileSync(`/proc/${d}/cmdline`, 'utf8').replace(/\0/g, ' ') });
    } catch {
      /* gone */
    }
  }
  const rx = new RegExp(re);
  const monitors = new Set(procs.filter((p) => rx.test(p.cmd) && !/scale-client/.test(p.cmd)).map((p) => p.pid));
  const children = procs.filter((p) => monitors.has(p.ppid) && !monitors.has(p.pid)).map((p) => p.pid);
  const sum = (pids) => {
    let pssKb = 0;
    let rssKb = 0;
    for (const pid of pids) {
      try {
        const t = fs.readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
        pssKb += Number(/^Pss:\s+(\d+)/m.exec(t)?.[1] ?? 0);
        rssKb += Number(/^Rss:\s+(\d+)/m.exec(t)?.[1] ?? 0);
      } catch {
        /* gone */
      }
    }
    return { pssKb, rssKb };
  };
  const m = sum(monitors);
  const c = sum(children);
  return {
    monitors: monitors.size,
    children: children.length,
    monitor_pss_kb: m.pssKb,
    monitor_rss_kb: m.rssKb,
    child_pss_kb: c.pssKb,
    child_rss_kb: c.rssKb,
  };
}

/**
 * What is left of the containers whose ids are in `idsFile` (one a line): cgroups under
 * `/sys/fs/cgroup/<h>/<parent>/<id>` (every hierarchy, or v2's), processes naming the id, dirs
 * under `root/containers`, berth's named netns, and mounts under `root`.
 */
function leftovers(idsFile, root, parent) {
  const ids = fs.readFileSync(idsFile, 'utf8').split('\n').filter(Boolean);
  const hier = fs.readdirSync('/sys/fs/cgroup', { withFileTypes: true }).filter((e) => e.isDirectory());
  const v1 = fs.existsSync('/sys/fs/cgroup/memory');
  let cgroups = 0;
  for (const id of ids) {
    const dirs = v1 ? hier.map((h) => `/sys/fs/cgroup/${h.name}/${parent}/${id}`) : [`/sys/fs/cgroup/${parent}/${id}`];
    for (const d of dirs) if (fs.existsSync(d)) cgroups++;
  }
  const idSet = new Set(ids);
  let processes = 0;
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const words = fs.readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0');
      if (words.some((w) => idSet.has(w) || [...w.matchAll(/[0-9a-f]{64}/g)].some((m) => idSet.has(m[0])))) processes++;
    } catch {
      /* gone */
    }
  }
  let dirs = 0;
  try {
    for (const n of fs.readdirSync(`${root}/containers`)) if (idSet.has(n)) dirs++;
  } catch {
    /* none */
  }
  let netns = 0;
  try {
    const names = new Set(fs.readdirSync('/run/netns'));
    for (const id of ids) if (names.has(`berth-${id.slice(0, 16)}`)) netns++;
  } catch {
    /* none */
  }
  const mounts = fs
    .readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter((l) => (l.split(' ')[4] ?? '').startsWith(`${root}/`)).length;
  return { ids: ids.length, cgroups, processes, dirs, netns, mounts };
}

/**
 * Attaches to container `ref` (stdin, stdout, stderr; hijacked as the docker CLI does), writes
 * `line` and waits for `got <line>` to come back: {ok, ms}.
 */
function attach(ref, line) {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const s = net.connect(sock);
    let buf = Buffer.alloc(0);
    let headers = false;
    const done = (ok) => {
      clearTimeout(timer);
      s.destroy();
      resolve({ ok, ms: round(performance.now() - t0) });
    };
    const timer = setTimeout(() => done(false), 20_000);
    s.on('error', () => done(false));
    s.on('connect', () =>
      s.write(
        `POST /v1.41/containers/${ref}/attach?stream=1&stdin=1&stdout=1&stderr=1 HTTP/1.1\r\nHost: x\r\n` +
          'Connection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: 0\r\n\r\n',
      ),
    );
    s.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      if (!headers) {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        if (!/^HTTP\/1\.1 (101|200)/.test(buf.toString('latin1', 0, 12))) return done(false);
        headers = true;
        buf = buf.subarray(end + 4);
        s.write(`${line}\n`);
      }
      if (buf.toString('latin1').includes(`got ${line}`)) done(true);
    });
  });
}

let out;
switch (cmd) {
  case 'start':
    out = await start(Number(rest[0]), Number(rest[1] ?? 4), rest[2] ?? 'scale-');
    break;
  case 'remove':
    out = await remove(Number(rest[0] ?? 4), rest[1] ?? '');
    break;
  case 'time':
    out = await time(Number(rest[0]), rest[1], rest[2]);
    break;
  case 'count':
    out = await count();
    break;
  case 'wait-listed':
    out = await waitListed(Number(rest[0]), Number(rest[1] ?? 600));
    break;
  case 'ids': {
    const list = await json('GET', '/v1.41/containers/json?all=1');
    out = list.map((c) => c.Id).join('\n');
    process.stdout.write(out + '\n');
    agent.destroy();
    process.exit(0);
    break;
  }
  case 'attach':
    out = await attach(rest[0], rest[1]);
    break;
  case 'pss':
    out = pss(rest[0]);
    break;
  case 'leftovers':
    out = leftovers(rest[0], rest[1], rest[2] ?? 'berth');
    break;
  case 'events':
    out = await events();
    break;
  default:
    process.stderr.write(`unknown command ${cmd}\n`);
    process.exit(2);
}
process.stdout.write(JSON.stringify(out) + '\n');
agent.destroy();
process.exit(0);
