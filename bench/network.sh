#!/usr/bin/env bash
# Networking benchmarks, berthd beside dockerd in one run. Results: bench/results/<UTC>-network.{json,md}.
#   bash bench/network.sh          RUNS=10 N_NET=100 bash bench/network.sh   (a quick pass)
# 1. start cost of networking: `docker run --rm busybox true` on the default bridge minus the same
#    with --network none, per engine (dockerd gets its own bridge on --bip, no iptables changes)
# 2. N_NET containers on one user-defined network (berthd): wall time to start them from four
#    clients, every name resolvable from a container on the network, berthd's RSS
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
bench_init network docker.io hyperfine
RUNS=${RUNS:-30}
N_NET=${N_NET:-500}
WORK=${WORK:-/var/tmp/berth-bench-net}

cleanup() {
  set +e
  [ -n "${BERTH_PID:-}" ] && { DOCKER_HOST=$BH docker rm -f $(DOCKER_HOST=$BH docker ps -aq) >/dev/null 2>&1; DOCKER_HOST=$BH docker network prune -f >/dev/null 2>&1; kill $BERTH_PID; wait $BERTH_PID; }
  [ -n "${DOCKERD_PID:-}" ] && { DOCKER_HOST=$DH docker rm -f $(DOCKER_HOST=$DH docker ps -aq) >/dev/null 2>&1; kill $DOCKERD_PID; wait $DOCKERD_PID; }
  ip link del docker0 2>/dev/null # dockerd leaves its bridge
  release_work "$WORK"
}
trap cleanup EXIT
rm -rf "$WORK"; mkdir -p "$WORK"

BH=unix://$WORK/berth.sock
bin/berthd --host $BH --root $WORK/berth-root --exec-root $WORK/berth-run >$WORK/berthd.log 2>&1 &
BERTH_PID=$!
DH=unix://$WORK/docker.sock

dockerd --data-root $WORK/docker-data --exec-root $WORK/docker-exec -H $DH --pidfile $WORK/dockerd.pid \
  --bip 10.198.0.1/24 --iptables=false --ip6tables=false --containerd-namespace berthbenchnet >$WORK/dockerd.log 2>&1 &
DOCKERD_PID=$!
for _ in $(seq 100); do [ -S $WORK/berth.sock ] && [ -S $WORK/docker.sock ] && break; sleep 0.2; done
DOCKER_HOST=$BH docker load -i $FIXTURE >/dev/null
DOCKER_HOST=$DH docker load -i $FIXTURE >/dev/null

hyperfine -N --warmup 3 --runs $RUNS --export-json $WORK/start.json \
  -n "berthd bridge" "env DOCKER_HOST=$BH docker run --rm busybox true" \
  -n "berthd none" "env DOCKER_HOST=$BH docker run --rm --network none busybox true" \
  -n "dockerd bridge" "env DOCKER_HOST=$DH docker run --rm busybox true" \
  -n "dockerd none" "env DOCKER_HOST=$DH docker run --rm --network none busybox true" | sed -n '/Summary/,$p'

export DOCKER_HOST=$BH
docker network create benchnet >/dev/null
s=$(date +%s.%N)
seq 1 $N_NET | xargs -P 4 -I{} docker run -d --name n{} --network benchnet busybox sleep 3600 >/dev/null
e=$(date +%s.%N)
running=$(docker ps -q | wc -l)
# every name resolves from inside the network (one container, one lookup each)
names=$(seq 1 $N_NET | sed 's/^/n/' | tr '\n' ' ')
resolved=$(docker run --rm --network benchnet busybox sh -c "ok=0; for n in $names; do nslookup \$n >/dev/null 2>&1 && ok=\$((ok+1)); done; echo \$ok")
rss=$(awk '/VmRSS/{print $2}' /proc/$BERTH_PID/status)

node - "$WORK" "$OUT" "$N_NET" "$(awk "BEGIN{print $e - $s}")" "$running" "$resolved" "$rss" <<'EOF'
const [work, out, n, secs, running, resolved, rss] = process.argv.slice(2);
const fs = require('node:fs');
const m = Object.fromEntries(JSON.parse(fs.readFileSync(`${work}/start.json`)).results.map((r) => [r.command, r.median * 1000]));
const r = {
  start: m,
  bridgeCostMs: { berthd: m['berthd bridge'] - m['berthd none'], dockerd: m['dockerd bridge'] - m['dockerd none'] },
  many: { containers: Number(n), seconds: Number(secs), running: Number(running), resolved: Number(resolved), berthdRssMB: Number(rss) / 1024 },
};
fs.writeFileSync(`${out}.json`, JSON.stringify(r, null, 2));
const f = (x) => x.toFixed(1);
const md = `# network bench ${out.split('/').pop()}\n\n| figure | berthd | dockerd | target |\n|---|---|---|---|\n` +
  `| run --rm true, default bridge (median ms) | ${f(m['berthd bridge'])} | ${f(m['dockerd bridge'])} | |\n` +
  `| run --rm true, --network none (median ms) | ${f(m['berthd none'])} | ${f(m['dockerd none'])} | |\n` +
  `| start cost of networking (bridge − none, ms) | ${f(r.bridgeCostMs.berthd)} | ${f(r.bridgeCostMs.dockerd)} | ≤ 15 ms |\n` +
  `| ${n} containers on one network: start (s, 4 clients) | ${f(r.many.seconds)} | | |\n` +
  `| … running / names resolvable | ${running} / ${resolved} | | all |\n` +
  `| … berthd RSS (MB) | ${f(r.many.berthdRssMB)} | | |\n`;
fs.writeFileSync(`${out}.md`, md);
process.stdout.write(md);
EOF
