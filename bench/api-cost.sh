#!/usr/bin/env bash
# The daemons' own cost through the Engine API (issue #19, part 2), side by side in one run:
# one persistent HTTP client per daemon over its unix socket (bench/api-cost.mjs), no CLI process.
#   1. create+start+wait+remove of `busybox true`: berthd, dockerd, and `crun run` of the same
#      rootfs (the floor), in interleaved rounds so that all three see the same load
#   2. detached starts (`sleep`) from 8 concurrent clients: containers per second, each daemon
#   3. the cached 10-step rebuild through POST /build (the Dockerfile of bench/build.sh)
# Results: bench/results/<UTC time>-api-cost.{json,md}, with the machine's load (uptime) before and after.
#   bash bench/api-cost.sh
#   RUNS=20 N_DETACH=200 N_DETACH_DOCKERD=50 bash bench/api-cost.sh    # a quick pass
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
bench_init api-cost docker.io
RUNS=${RUNS:-50}
N_DETACH=${N_DETACH:-1000}
# dockerd's containerd-shims cost ~12 MB each and it starts ~2/s here: its rate is taken on fewer
N_DETACH_DOCKERD=${N_DETACH_DOCKERD:-100}
CLIENTS=${CLIENTS:-8}
WORK=${WORK:-/var/tmp/berth-bench-api}

cleanup() {
  set +e
  for cg in ${CGS:-}; do [ -d $cg ] && { cat $cg/cgroup.procs 2>/dev/null | while read -r p; do echo $p > $(dirname $cg)/cgroup.procs; done; rmdir $cg; }; done
  [ -S $WORK/berth.sock ] && node bench/api-cost.mjs rmall $WORK/berth.sock >/dev/null 2>&1
  [ -S $WORK/docker.sock ] && node bench/api-cost.mjs rmall $WORK/docker.sock >/dev/null 2>&1
  stop_engines
}
trap cleanup EXIT
rm -rf "$WORK"; mkdir -p "$WORK"
LOAD_BEFORE=$(uptime | sed 's/.*load average: //')

start_engines berthbenchapi
# each daemon in a CPU-accounting cgroup of its own: what it and the processes it starts use
# (berthd: conmon and `crun create`; dockerd: containerd and the shims); a container's own
# processes go to the container's cgroup. The steadier figure on a shared machine.
CGROOT=/sys/fs/cgroup/cpuacct; [ -f $CGROOT/cpuacct.usage ] || CGROOT=/sys/fs/cgroup
CGS="$CGROOT/apicost-berthd-$$ $CGROOT/apicost-dockerd-$$"
for cg in $CGS; do mkdir -p $cg; done
echo $BERTH_PID > $CGROOT/apicost-berthd-$$/cgroup.procs
for p in $DOCKERD_PID $(pgrep -P $DOCKERD_PID); do echo $p > $CGROOT/apicost-dockerd-$$/cgroup.procs; done
DOCKER_HOST=$BH docker load -i $FIXTURE >/dev/null
DOCKER_HOST=$DH docker load -i $FIXTURE >/dev/null
# crun alone: the fixture's rootfs, crun's default spec running `true`
mkdir -p $WORK/bundle/rootfs
layer=$(tar -xOf $FIXTURE ./manifest.json | jq -r '.[0].Layers[0]')
tar -xOf $FIXTURE "./$layer" | tar -x -C $WORK/bundle/rootfs
(cd $WORK/bundle && crun spec && jq '.process.args=["true"] | .process.terminal=false' config.json > c.json && mv c.json config.json)

# ... and berthd's own bundle: the config.json berthd writes for this container (its mounts,
# cgroup, sysctls, seccomp, masked paths), on a copy of the rootfs and of its /etc files: the
# floor for the same container, so that berthd's figure over it is the daemon and conmon alone
ID=$(curl -sf --unix-socket $WORK/berth.sock -H 'Content-Type: application/json' \
  -d '{"Image":"busybox","Cmd":["true"],"HostConfig":{"NetworkMode":"none"}}' http://d/v1.41/containers/create | jq -r .Id)
curl -sf --unix-socket $WORK/berth.sock -X POST http://d/v1.41/containers/$ID/start
curl -sf --unix-socket $WORK/berth.sock -X POST http://d/v1.41/containers/$ID/wait >/dev/null
mkdir -p $WORK/bundle-berth
for f in hostname hosts resolv.conf; do cp $WORK/berth-root/containers/$ID/$f $WORK/bundle-berth/; done
jq --arg r $WORK/bundle/rootfs --arg d $WORK/bundle-berth \
  '.root.path = $r | .root.readonly = false | .process.terminal = false | .linux.cgroupsPath = "/berth/apicost-floor"
   | .mounts |= map(if (.destination | startswith("/etc/")) then .source = ($d + "/" + (.destination | ltrimstr("/etc/"))) else . end)' \
  $WORK/berth-root/containers/$ID/config.json > $WORK/bundle-berth/config.json
curl -sf --unix-socket $WORK/berth.sock -X DELETE http://d/v1.41/containers/$ID

# 1. the cycle, interleaved
node bench/api-cost.mjs side $RUNS $WORK/crun-state crun:$WORK/bundle crun:$WORK/bundle-berth \
  $WORK/berth.sock@$CGROOT/apicost-berthd-$$ $WORK/docker.sock@$CGROOT/apicost-dockerd-$$ > $WORK/cycle.json

# 2. detached starts from $CLIENTS clients, then removal of all
cg_ms() { if [ -f $1/cpuacct.usage ]; then echo $(( $(cat $1/cpuacct.usage) / 1000000 )); else echo $(( $(awk '/usage_usec/{print $2}' $1/cpu.stat) / 1000 )); fi; }
c0=$(cg_ms $CGROOT/apicost-berthd-$$)
node bench/api-cost.mjs detach $WORK/berth.sock $N_DETACH $CLIENTS > $WORK/detach-berthd.json
B_CPU=$(( $(cg_ms $CGROOT/apicost-berthd-$$) - c0 ))
B_RUNNING=$(curl -s --unix-socket $WORK/berth.sock 'http://d/v1.41/containers/json' | jq length)
B_RSS=$(awk '/VmRSS/{print $2}' /proc/$BERTH_PID/status)
node bench/api-cost.mjs rmall $WORK/berth.sock >/dev/null
c0=$(cg_ms $CGROOT/apicost-dockerd-$$)
node bench/api-cost.mjs detach $WORK/docker.sock $N_DETACH_DOCKERD $CLIENTS > $WORK/detach-dockerd.json
D_CPU=$(( $(cg_ms $CGROOT/apicost-dockerd-$$) - c0 ))
D_RUNNING=$(curl -s --unix-socket $WORK/docker.sock 'http://d/v1.41/containers/json' | jq length)
node bench/api-cost.mjs rmall $WORK/docker.sock >/dev/null

# 3. cached rebuild through POST /build
C=$WORK/ctx10; mkdir -p $C/src
for i in 1 2 3 4 5; do echo "file $i" > $C/src/f$i.txt; done
cat > $C/Dockerfile <<'EOF'
FROM busybox
ENV APP=/app
WORKDIR /app
COPY src/ ./src/
RUN cat src/*.txt > all.txt
RUN echo built > /built
LABEL bench=build
EXPOSE 8080
USER app
CMD ["cat", "/app/all.txt"]
EOF
tar -C $C -cf $WORK/ctx10.tar .
node bench/api-cost.mjs build $WORK/berth.sock $WORK/ctx10.tar $RUNS > $WORK/build-berthd.json
node bench/api-cost.mjs build $WORK/docker.sock $WORK/ctx10.tar $RUNS > $WORK/build-dockerd.json
LOAD_AFTER=$(uptime | sed 's/.*load average: //')

node - "$WORK" "$OUT" "$RUNS" "$CLIENTS" "$B_RUNNING" "$D_RUNNING" "$B_RSS" "$LOAD_BEFORE" "$LOAD_AFTER" "$B_CPU" "$D_CPU" <<'JS'
const fs = require('node:fs');
const [work, out, runs, clients, bRunning, dRunning, bRss, loadBefore, loadAfter, bCpu, dCpu] = process.argv.slice(2);
const settle = Number(process.env.SETTLE_MS ?? 0);
const rd = (f) => JSON.parse(fs.readFileSync(`${work}/${f}`, 'utf8'));
const med = (v) => { const s = [...v].sort((a, b) => a - b); const m = s.length >> 1; return +(s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2).toFixed(2); };
const cyc = rd('cycle.json');
const cycle = { crun: med(cyc[`crun:${work}/bundle`]), crun_berth_bundle: med(cyc[`crun:${work}/bundle-berth`]),
  berthd: med(cyc[`${work}/berth.sock`]), dockerd: med(cyc[`${work}/docker.sock`]) };
const cc = cyc.cpu_ms_per_run;
const cpu = { crun: cc[`crun:${work}/bundle`], crun_berth_bundle: cc[`crun:${work}/bundle-berth`],
  berthd: cc[`${work}/berth.sock`], dockerd: cc[`${work}/docker.sock`] };
const db = rd('detach-berthd.json'), dd = rd('detach-dockerd.json');
const rate = { berthd: +(db.n / db.s).toFixed(1), dockerd: +(dd.n / dd.s).toFixed(1) };
const startCpu = { berthd: +(bCpu / db.n).toFixed(1), dockerd: +(dCpu / dd.n).toFixed(1) };
const build = { berthd: med(rd('build-berthd.json').ms), dockerd: med(rd('build-dockerd.json').ms) };
const r = {
  when: new Date().toISOString(), runs: +runs, settle_ms: settle, load_before: loadBefore, load_after: loadAfter,
  cycle_median_ms: cycle, cycle_cpu_ms: cpu,
  cycle_cpu_ratio: { berthd_vs_crun: +(cpu.berthd / cpu.crun).toFixed(2), berthd_vs_crun_same_config: +(cpu.berthd / cpu.crun_berth_bundle).toFixed(2),
    berthd_vs_dockerd: +(cpu.berthd / cpu.dockerd).toFixed(3) },
  cycle_ratio: { berthd_vs_crun: +(cycle.berthd / cycle.crun).toFixed(2), berthd_vs_crun_same_config: +(cycle.berthd / cycle.crun_berth_bundle).toFixed(2),
    berthd_vs_dockerd: +(cycle.berthd / cycle.dockerd).toFixed(3) },
  detached: { clients: +clients, berthd: { n: db.n, s: +db.s.toFixed(2), running: +bRunning, berthd_rss_mb: +(bRss / 1024).toFixed(1) },
    dockerd: { n: dd.n, s: +dd.s.toFixed(2), running: +dRunning }, per_s: rate, rate_ratio: +(rate.berthd / rate.dockerd).toFixed(1),
    cpu_ms_per_start: startCpu, cpu_ratio: +(startCpu.dockerd / startCpu.berthd).toFixed(1) },
  cached_build_median_ms: build, cached_build_ratio: +(build.berthd / build.dockerd).toFixed(3),
};
fs.writeFileSync(`${out}.json`, JSON.stringify(r, null, 2) + '\n');
fs.writeFileSync(`${out}.md`, `# The daemons' own cost through the API (${r.when}, medians of ${runs})

Load average (1, 5, 15 min) before: ${loadBefore}; after: ${loadAfter}. One persistent client per daemon (keep-alive, unix socket); ${settle} ms of pause before each timed cycle (\`SETTLE_MS\`).

| create+start+wait+remove \`busybox true\` | median ms | CPU ms per cycle |
|---|---|---|
| crun run, crun's default spec (floor) | ${cycle.crun} | ${cpu.crun} |
| crun run, the config.json berthd writes (floor, same container) | ${cycle.crun_berth_bundle} | ${cpu.crun_berth_bundle} |
| berthd (+ conmon, crun create) | ${cycle.berthd} | ${cpu.berthd} |
| dockerd (+ containerd, shims, runc) | ${cycle.dockerd} | ${cpu.dockerd} |

Wall: berthd / crun **${r.cycle_ratio.berthd_vs_crun}** (target ≤ 1.5), over crun with berthd's own config **${r.cycle_ratio.berthd_vs_crun_same_config}**; berthd / dockerd **${r.cycle_ratio.berthd_vs_dockerd}** (target ≤ 0.10).
CPU: berthd / crun **${r.cycle_cpu_ratio.berthd_vs_crun}**, over crun with berthd's own config **${r.cycle_cpu_ratio.berthd_vs_crun_same_config}**; berthd / dockerd **${r.cycle_cpu_ratio.berthd_vs_dockerd}**.
CPU is counted from the cgroups (a daemon and what it starts) and the bench's reaped children (crun run); the containers' own processes are not in it.

| detached starts, ${clients} clients | containers | s | per s | running after | CPU ms per start |
|---|---|---|---|---|---|
| berthd | ${db.n} | ${r.detached.berthd.s} | ${rate.berthd} | ${bRunning} | ${startCpu.berthd} |
| dockerd | ${dd.n} | ${r.detached.dockerd.s} | ${rate.dockerd} | ${dRunning} | ${startCpu.dockerd} |

rate berthd / dockerd: **${r.detached.rate_ratio}×** (target ≥ 10×); CPU per start dockerd / berthd: **${r.detached.cpu_ratio}×**; berthd RSS with ${bRunning} running: ${r.detached.berthd.berthd_rss_mb} MB

| cached 10-step rebuild, POST /build | median ms |
|---|---|
| berthd | ${build.berthd} |
| dockerd | ${build.dockerd} |

berthd / dockerd: **${r.cached_build_ratio}** (target ≤ 0.2)
`);
JS
cat $OUT.md
