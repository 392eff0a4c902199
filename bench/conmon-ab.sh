#!/usr/bin/env bash
# Which conmon, A/B in one run (issue #19): two berthds, one given Debian's conmon (`--conmon
# /usr/bin/conmon`), one scripts/conmon.sh's build, and `crun run` of the same rootfs (the floor),
# in interleaved rounds of create+start+wait+remove of `busybox true` through one persistent API
# client each (bench/api-cost.mjs side); CPU per cycle from each daemon's cpuacct cgroup. Also
# `conmon --version` of both, interleaved (perf stat task-clock). Prints a small table; the load
# average before and after.
#   RUNS=30 bash bench/conmon-ab.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
RUNS=${RUNS:-30}
WORK=${WORK:-/var/tmp/berth-bench-conmon-ab}
NEW=/usr/local/lib/berth/conmon
OLD=${OLD_CONMON:-/usr/bin/conmon}
FIXTURE=/var/cache/berth/fixtures/busybox.tar
[ -x $NEW ] || { echo "no $NEW: run scripts/conmon.sh" >&2; exit 1; }
PIDS=""
cleanup() {
  set +e
  for s in old new; do [ -S $WORK/$s.sock ] && node bench/api-cost.mjs rmall $WORK/$s.sock >/dev/null 2>&1; done
  for p in $PIDS; do kill $p 2>/dev/null; wait $p 2>/dev/null; done
  for cg in ${CGS:-}; do [ -d $cg ] && { cat $cg/cgroup.procs 2>/dev/null | while read -r p; do echo $p > $(dirname $cg)/cgroup.procs; done; rmdir $cg; }; done
  release_work "$WORK"
}
trap cleanup EXIT
rm -rf "$WORK"; mkdir -p "$WORK"
echo "load before: $(uptime | sed 's/.*load average: //')"

echo "conmon --version, perf stat task-clock ms (5 interleaved rounds of 40):"
for r in 1 2 3 4 5; do
  for b in $OLD $NEW /bin/true; do
    echo "$b $(perf stat -x, -e task-clock -r 40 $b --version 2>&1 >/dev/null | awk -F, '/task-clock/{print $1}')"
  done
done | awk '{ a[$1] = a[$1] " " sprintf("%.1f", $2) } END { for (k in a) print "  " k ":" a[k] }'

CGROOT=/sys/fs/cgroup/cpuacct; [ -f $CGROOT/cpuacct.usage ] || CGROOT=/sys/fs/cgroup
CGS=""
for s in old new; do
  flag=(); [ $s = old ] && flag=(--conmon $OLD)
  bin/berthd --host unix://$WORK/$s.sock --root $WORK/$s-root --exec-root $WORK/$s-run "${flag[@]}" >$WORK/$s.log 2>&1 &
  PIDS="$PIDS $!"
  cg=$CGROOT/conmon-ab-$s-$$; mkdir -p $cg; CGS="$CGS $cg"; echo $! > $cg/cgroup.procs
done
for s in old new; do
  for _ in $(seq 100); do [ -S $WORK/$s.sock ] && break; sleep 0.2; done
  DOCKER_HOST=unix://$WORK/$s.sock docker load -i $FIXTURE >/dev/null
  echo "$s: $(curl -s --unix-socket $WORK/$s.sock http://d/version | jq -r '.Components[] | select(.Name == "conmon") | .Details.path')"
done
mkdir -p $WORK/bundle/rootfs
layer=$(tar -xOf $FIXTURE ./manifest.json | jq -r '.[0].Layers[0]')
tar -xOf $FIXTURE "./$layer" | tar -x -C $WORK/bundle/rootfs
(cd $WORK/bundle && crun spec && jq '.process.args=["true"] | .process.terminal=false' config.json > c.json && mv c.json config.json)

node bench/api-cost.mjs side $RUNS $WORK/crun-state crun:$WORK/bundle \
  $WORK/old.sock@$CGROOT/conmon-ab-old-$$ $WORK/new.sock@$CGROOT/conmon-ab-new-$$ > $WORK/cycle.json
node - "$WORK" <<'JS'
const [w] = process.argv.slice(2);
const r = JSON.parse(require('node:fs').readFileSync(`${w}/cycle.json`, 'utf8'));
const med = (v) => { const s = [...v].sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };
const crun = med(r[`crun:${w}/bundle`]);
const row = (name, k) => console.log(`  ${name.padEnd(28)} ${med(r[k]).toFixed(1).padStart(7)} ms  ${(med(r[k]) / crun).toFixed(2)}x crun   CPU ${r.cpu_ms_per_run[k]} ms`);
console.log(`create+start+wait+remove, medians of ${r[`crun:${w}/bundle`].length} interleaved rounds:`);
row('crun run (floor)', `crun:${w}/bundle`);
row("berthd + Debian's conmon", `${w}/old.sock`);
row("berthd + conmon.sh's", `${w}/new.sock`);
JS
echo "load after: $(uptime | sed 's/.*load average: //')"
