#!/usr/bin/env bash
# Side-by-side benchmarks of berthd against dockerd (Debian's docker.io), podman and crun alone,
# in one run on this machine. Medians and ratios go to bench/results/<UTC time>.{json,md}.
#   bash bench/run.sh                       # all figures
#   RUNS=10 N_IDLE=20 N_RSS=50 bash bench/run.sh   # a quick pass
# See bench/README.md for what each figure measures and how to read it.
# Every engine gets a private root and socket under $WORK; nothing is left running afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
bench_init '' docker.io podman hyperfine
RUNS=${RUNS:-30}
N_IDLE=${N_IDLE:-100}
N_RSS=${N_RSS:-1000}
WORK=${WORK:-/var/tmp/berth-bench}

PODMAN="podman --root $WORK/podman-root --runroot $WORK/podman-run --cgroup-manager cgroupfs --events-backend file"
cleanup() {
  set +e
  [ -n "${BERTH_PID:-}" ] && { DOCKER_HOST=$BH docker rm -f $(DOCKER_HOST=$BH docker ps -aq) >/dev/null 2>&1; kill $BERTH_PID; }
  [ -n "${DOCKERD_PID:-}" ] && { DOCKER_HOST=$DH docker rm -f $(DOCKER_HOST=$DH docker ps -aq) >/dev/null 2>&1; kill $DOCKERD_PID; wait $DOCKERD_PID; }
  $PODMAN rm -af >/dev/null 2>&1
  release_work "$WORK"
}
trap cleanup EXIT
cleanup 2>/dev/null || true
rm -rf "$WORK"; mkdir -p "$WORK"
sync # dirty pages of an earlier run (the registry bench writes GBs) would be flushed during this one

# --- engines -------------------------------------------------------------------------------
start_engines berthbench
DOCKER_HOST=$BH docker load -i $FIXTURE >/dev/null
DOCKER_HOST=$DH docker load -i $FIXTURE >/dev/null
$PODMAN load -i $FIXTURE >/dev/null 2>&1 || true
PODMAN_OK=0; $PODMAN run --rm --network none --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 busybox true >/dev/null 2>&1 && PODMAN_OK=1

# crun alone: a bundle of the same rootfs (the fixture's only layer), crun's default spec
mkdir -p $WORK/bundle/rootfs
layer=$(tar -xOf $FIXTURE ./manifest.json | jq -r '.[0].Layers[0]')
tar -xOf $FIXTURE "./$layer" | tar -x -C $WORK/bundle/rootfs
(cd $WORK/bundle && crun spec && jq '.process.args=["true"] | .process.terminal=false' config.json > c.json && mv c.json config.json)

# --- 1. run --rm busybox true ----------------------------------------------------------------
# -N: no intermediate shell, so each figure is the command alone (env sets the variables)
cmds=(
  -n "docker→berthd (none)" "env DOCKER_HOST=$BH docker run --rm --network none busybox true"
  -n "berth→berthd" "env BERTH_HOST=$BH bin/berth run --rm busybox true"
  -n "docker→dockerd (none)" "env DOCKER_HOST=$DH docker run --rm --network none busybox true"
  -n "crun alone" "crun --root $WORK/crun-state run -b $WORK/bundle benchcrun"
)
[ $PODMAN_OK = 1 ] && cmds+=(-n "podman (none)" "$PODMAN run --rm --network none --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 busybox true")
hyperfine -N --warmup 3 --runs $RUNS --export-json $WORK/run.json "${cmds[@]}" | sed -n '/Summary/,$p'

# --- 2. CLI start-up: berth ps vs docker ps, same daemon --------------------------------------
hyperfine -N --warmup 3 --runs $RUNS --export-json $WORK/ps.json \
  -n "berth ps" "env BERTH_HOST=$BH bin/berth ps" -n "docker ps" "env DOCKER_HOST=$BH docker ps" \
  -n "node -e 0 (Node's floor)" "env -u NODE_EXTRA_CA_CERTS node -e 0" | sed -n '/Summary/,$p'

# --- 3. N idle containers: start rate and memory ---------------------------------------------
pss_of() { # total PSS in kB of processes whose cmdline matches $1
  local t=0; for p in $(pgrep -f "$1"); do v=$(awk '/^Pss:/{print $2}' /proc/$p/smaps_rollup 2>/dev/null || echo 0); t=$((t+${v:-0})); done; echo $t; }
rss_of() { awk '/VmRSS/{print $2}' /proc/$1/status; }
start_many() { # $1 = DOCKER_HOST, $2 = count, $3 = parallel clients; prints seconds
  local s=$(date +%s.%N)
  seq 1 $2 | xargs -P $3 -I{} env DOCKER_HOST=$1 docker run -d --network none busybox sleep 3600 >/dev/null
  echo "$(date +%s.%N) - $s" | bc
}
rm_all() { DOCKER_HOST=$1 docker ps -aq | xargs -r -n 50 env DOCKER_HOST=$1 docker rm -f >/dev/null; }
B_IDLE_T=$(start_many $BH $N_IDLE 1)
B_CONMON_PSS=$(pss_of "conmon.*$WORK/berth")
B_RSS=$(rss_of $BERTH_PID)
rm_all $BH
B_PAR_T=$(start_many $BH $N_IDLE 4)
rm_all $BH
D_IDLE_T=$(start_many $DH $N_IDLE 1)
D_SHIM_PSS=$(pss_of "containerd-shim")
D_RSS=$(( $(rss_of $DOCKERD_PID) ))
rm_all $DH
D_PAR_T=$(start_many $DH $N_IDLE 4)
rm_all $DH
# berthd's own memory with N_RSS containers running (default 1,000)
B_MANY_T=$(start_many $BH $N_RSS 4)
B_MANY_RSS=$(rss_of $BERTH_PID)
B_MANY_RUNNING=$(DOCKER_HOST=$BH docker ps -q | wc -l)
rm_all $BH

# --- results ---------------------------------------------------------------------------------
node - "$WORK" "$OUT" "$N_IDLE" "$B_IDLE_T" "$D_IDLE_T" "$B_CONMON_PSS" "$D_SHIM_PSS" "$B_RSS" "$D_RSS" "$B_PAR_T" "$D_PAR_T" "$N_RSS" "$B_MANY_RSS" "$B_MANY_RUNNING" "$B_MANY_T" <<'JS'
const fs = require('fs');
const [work, out, n, bT, dT, bPss, dPss, bRss, dRss, bPar, dPar, nRss, manyRss, manyRunning, manyT] = process.argv.slice(2);
const med = (f) => Object.fromEntries(JSON.parse(fs.readFileSync(`${work}/${f}`)).results.map((r) => [r.command, +(r.median * 1000).toFixed(1)]));
const run = med('run.json'), ps = med('ps.json');
const N = +n;
const res = {
  when: new Date().toISOString(), runs: +(process.env.RUNS || 30),
  run_rm_true_median_ms: run,
  ratio_berthd_vs_dockerd: +(run['docker→berthd (none)'] / run['docker→dockerd (none)']).toFixed(3),
  cli_ps_median_ms: ps, ratio_berth_ps_vs_docker_ps: +(ps['berth ps'] / ps['docker ps']).toFixed(3),
  idle: { containers: N,
    sequential_start_s: { berthd: +(+bT).toFixed(2), dockerd: +(+dT).toFixed(2), rate_ratio: +(+dT / +bT).toFixed(2) },
    four_clients_start_s: { berthd: +(+bPar).toFixed(2), dockerd: +(+dPar).toFixed(2), rate_ratio: +(+dPar / +bPar).toFixed(2) },
    berth_monitor_pss_mb_per_container: +(bPss / 1024 / N).toFixed(2), dockerd_shim_pss_mb_per_container: +(dPss / 1024 / N).toFixed(2),
    berthd_rss_mb: +(bRss / 1024).toFixed(1), dockerd_rss_mb: +(dRss / 1024).toFixed(1) },
  many: { containers_requested: +nRss, running: +manyRunning, start_s: +(+manyT).toFixed(1), berthd_rss_mb: +(manyRss / 1024).toFixed(1) },
};
fs.writeFileSync(`${out}.json`, JSON.stringify(res, null, 2) + '\n');
const rows = (o) => Object.entries(o).map(([k, v]) => `| ${k} | ${v} |`).join('\n');
fs.writeFileSync(`${out}.md`, `# bench ${res.when} (medians of ${res.runs} runs)

| run --rm busybox true | median ms |
|---|---|
${rows(run)}

docker→berthd / docker→dockerd: **${res.ratio_berthd_vs_dockerd}**

| CLI start-up, same daemon | median ms |
|---|---|
${rows(ps)}

berth ps / docker ps: **${res.ratio_berth_ps_vs_docker_ps}**

## ${N} idle containers (\`docker run -d busybox sleep 3600\`)

| | berthd | dockerd | dockerd time / berthd time |
|---|---|---|---|
| start, one client (s) | ${res.idle.sequential_start_s.berthd} | ${res.idle.sequential_start_s.dockerd} | ${res.idle.sequential_start_s.rate_ratio} |
| start, four clients (s) | ${res.idle.four_clients_start_s.berthd} | ${res.idle.four_clients_start_s.dockerd} | ${res.idle.four_clients_start_s.rate_ratio} |
| monitor PSS per container (MB): conmon vs containerd-shim | ${res.idle.berth_monitor_pss_mb_per_container} | ${res.idle.dockerd_shim_pss_mb_per_container} | |
| daemon RSS (MB) | ${res.idle.berthd_rss_mb} | ${res.idle.dockerd_rss_mb} | |

## berthd with ${res.many.running} running containers (asked for ${res.many.containers_requested})
started in ${res.many.start_s} s (four clients); berthd RSS **${res.many.berthd_rss_mb} MB**
`);
console.log(JSON.stringify(res, null, 2));
JS
echo "results: $OUT.json $OUT.md"
