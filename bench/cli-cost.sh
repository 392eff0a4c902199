#!/usr/bin/env bash
# The CLI's own cost (issue #19, part 3), side by side in one run against one berthd:
#   node -e 0 (Node's own start-up: the floor of any Node CLI), a minimal Node client making one
#   request to the daemon (net.connect + GET: the floor of any Node client), berth ps, docker ps,
#   berth run --rm busybox true, docker run --rm busybox true, and the same run through one API
#   client that is already running (bench/api-cost.mjs: what the daemon takes, so the rest is the CLI's)
# hyperfine -N (no shell), medians. Results: bench/results/<UTC time>-cli-cost.{json,md}.
#   bash bench/cli-cost.sh        RUNS=20 bash bench/cli-cost.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
bench_init cli-cost hyperfine linux-perf
RUNS=${RUNS:-40}
WORK=${WORK:-/var/tmp/berth-bench-cli}
trap stop_engines EXIT
rm -rf "$WORK"; mkdir -p "$WORK"
LOAD_BEFORE=$(uptime | sed 's/.*load average: //')

BH=unix://$WORK/berth.sock
bin/berthd --host $BH --root $WORK/berth-root --exec-root $WORK/berth-run >$WORK/berthd.log 2>&1 &
BERTH_PID=$!
for _ in $(seq 100); do [ -S $WORK/berth.sock ] && break; sleep 0.2; done
DOCKER_HOST=$BH docker load -i $FIXTURE >/dev/null

# the floor of any Node client of the daemon: Node's start-up, a unix socket, one request, the answer
printf '%s\n' "const s = require('net').connect('$WORK/berth.sock', () => s.write('GET /v1.41/containers/json HTTP/1.1\\r\\nHost: d\\r\\nConnection: close\\r\\n\\r\\n'));" \
  "s.resume();" "s.on('end', () => process.exit(0));" > $WORK/min.js
hyperfine -N --warmup 5 --runs $RUNS --export-json $WORK/cli.json \
  -n "node -e 0" "env -u NODE_EXTRA_CA_CERTS node -e 0" \
  -n "node: one request (minimal client)" "env -u NODE_EXTRA_CA_CERTS node $WORK/min.js" \
  -n "berth ps" "env BERTH_HOST=$BH bin/berth ps" \
  -n "docker ps" "env DOCKER_HOST=$BH docker ps" \
  -n "berth run --rm" "env BERTH_HOST=$BH bin/berth run --rm --network none busybox true" \
  -n "docker run --rm" "env DOCKER_HOST=$BH docker run --rm --network none busybox true" | sed -n '/Summary/,$p'
# the same run through an API client already running: the daemon's part of `run --rm`
node bench/api-cost.mjs cycle $WORK/berth.sock $RUNS > $WORK/api.json
# The scheduler's own count of each process's CPU time, exec to exit, all its threads (perf's
# task-clock, mean of RUNS). hyperfine's CPU is getrusage's user+sys, which also holds the
# process's teardown after its last instruction (its address space freed at exit), and is the
# mean of a few-ms-grained split: the two differ by 1-3 ms for these commands.
task_clock() { perf stat -x, -r "$RUNS" -e task-clock "$@" 2>&1 >/dev/null | awk -F, '$3 == "task-clock" {print $1}'; }
(
  export BERTH_HOST=$BH
  printf '{"node -e 0": %s,' "$(task_clock env -u NODE_EXTRA_CA_CERTS node -e 0)"
  printf '"berth ps": %s,' "$(task_clock bin/berth ps)"
  printf '"berth run --rm": %s}\n' "$(task_clock bin/berth run --rm --network none busybox true)"
) > $WORK/task-clock.json
LOAD_AFTER=$(uptime | sed 's/.*load average: //')

node - "$WORK" "$OUT" "$RUNS" "$LOAD_BEFORE" "$LOAD_AFTER" <<'JS'
const fs = require('node:fs');
const [work, out, runs, loadBefore, loadAfter] = process.argv.slice(2);
const res = JSON.parse(fs.readFileSync(`${work}/cli.json`, 'utf8')).results;
const f = (r) => ({ median: +(r.median * 1000).toFixed(1), cpu: +((r.user + r.system) * 1000).toFixed(1) });
const m = Object.fromEntries(res.map((r) => [r.command, f(r)]));
const api = JSON.parse(fs.readFileSync(`${work}/api.json`, 'utf8')).ms.sort((a, b) => a - b);
const apiRun = +api[api.length >> 1].toFixed(1);
const tc = JSON.parse(fs.readFileSync(`${work}/task-clock.json`, 'utf8'));
const tcOver = (k) => +(tc[k] - tc['node -e 0']).toFixed(1);
const floor = m['node -e 0'];
const over = (k) => ({ median: +(m[k].median - floor.median).toFixed(1), cpu: +(m[k].cpu - floor.cpu).toFixed(1) });
const r = {
  when: new Date().toISOString(), runs: +runs, load_before: loadBefore, load_after: loadAfter,
  median_ms_and_cpu_ms: m, api_client_run_ms: apiRun,
  over_node_ms: { 'berth ps': over('berth ps'), 'berth run --rm': over('berth run --rm') },
  task_clock_ms: tc,
  task_clock_over_node_ms: { 'berth ps': tcOver('berth ps'), 'berth run --rm': tcOver('berth run --rm') },
  // the CLI's own share of run's wall time: over Node's start-up and the daemon's run through an API client
  berth_run_wall_over_node_and_api_run_ms: +(m['berth run --rm'].median - floor.median - apiRun).toFixed(1),
  berth_ps_over_minimal_client_ms: {
    median: +(m['berth ps'].median - m['node: one request (minimal client)'].median).toFixed(1),
    cpu: +(m['berth ps'].cpu - m['node: one request (minimal client)'].cpu).toFixed(1),
  },
};
fs.writeFileSync(`${out}.json`, JSON.stringify(r, null, 2) + '\n');
const rows = Object.entries(m).map(([k, v]) => `| ${k} | ${v.median} | ${v.cpu} |`).join('\n');
fs.writeFileSync(`${out}.md`, `# The CLI's own cost (${r.when}, hyperfine medians of ${runs})

Load average (1, 5, 15 min) before: ${loadBefore}; after: ${loadAfter}.

| command | median ms | CPU ms (user+sys, mean) |
|---|---|---|
${rows}
| (run through a running API client) | ${apiRun} | |

Over \`node -e 0\` (target ≤ 10 ms), wall median / CPU: \`berth ps\` **${r.over_node_ms['berth ps'].median} / ${r.over_node_ms['berth ps'].cpu} ms**;
\`berth run --rm\` **${r.over_node_ms['berth run --rm'].median} / ${r.over_node_ms['berth run --rm'].cpu} ms**, whose wall time holds the daemon's run
(${apiRun} ms through an API client already running, measured after, not interleaved): the CLI's own share of it, over
\`node -e 0\` and that run, **${r.berth_run_wall_over_node_and_api_run_ms} ms**. On a loaded machine the CPU column is the steadier one.
\`berth ps\` over a minimal Node client making the same request: **${r.berth_ps_over_minimal_client_ms.median} / ${r.berth_ps_over_minimal_client_ms.cpu} ms**.

CPU by the scheduler's count (perf's task-clock, exec to exit, mean of ${runs}): \`node -e 0\` ${tc['node -e 0'].toFixed(1)} ms,
\`berth ps\` ${tc['berth ps'].toFixed(1)} (**+${r.task_clock_over_node_ms['berth ps']}**), \`berth run --rm\` ${tc['berth run --rm'].toFixed(1)} (**+${r.task_clock_over_node_ms['berth run --rm']}**).
`);
JS
cat $OUT.md
