#!/usr/bin/env bash
# Kernel memory per idle container, two builds of berth side by side (A/B, alternating rounds):
#   bash bench/kmem-ab.sh OLD_REF [N]      e.g. bash bench/kmem-ab.sh HEAD~1 300
# OLD_REF is a git revision, built into a worktree under $WORK; the new build is this tree's dist/.
# Each round starts a private berthd from one build, N idle busybox containers (`sleep 1d`,
# --network none, bench/scale-client.mjs), and reads /proc/meminfo and /proc/slabinfo before and
# after (page cache dropped both times), then removes them all. Knobs: ROUNDS (2), WORK
# (/var/tmp/berth-kmem-ab). Writes bench/results/<UTC time>-kmem-ab.md. The memory cgroups' shrinker
# info depends on the boot's history (bench/README.md "Where the kernel's memory per container
# goes"), so compare builds within one run, never across boots.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
OLD_REF=${1:?usage: bash bench/kmem-ab.sh OLD_REF [N]}
N=${2:-300}
ROUNDS=${ROUNDS:-2}
WORK=${WORK:-/var/tmp/berth-kmem-ab}
bench_init kmem-ab
rm -rf "$WORK"
mkdir -p "$WORK"
DAEMON=""
cleanup() {
  set +e
  [ -n "$DAEMON" ] && kill -9 "$DAEMON" 2>/dev/null
  pkill -9 -f "conmon .*$WORK/" 2>/dev/null
  sleep 1
  release_work "$WORK"
  git worktree remove --force "$WORK/old" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

git worktree add --detach "$WORK/old" "$OLD_REF" >/dev/null 2>&1
ln -s "$REPO/node_modules" "$WORK/old/node_modules"
(cd "$WORK/old" && npm run -s build >/dev/null)

quiet_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; sleep 1; }
# one round of build $1 (a checkout with dist/): prints a markdown row
round() {
  local label=$1 tree=$2 w=$WORK/run
  rm -rf "$w"
  mkdir -p "$w"
  setsid node "$tree/dist/src/cmd/berthd.js" --host "unix://$w/s.sock" --root "$w/root" --exec-root "$w/run" \
    --cri=false >"$w/berthd.log" 2>&1 &
  DAEMON=$!
  for _ in $(seq 300); do curl -sf --unix-socket "$w/s.sock" http://x/_ping >/dev/null && break; sleep 0.1; done
  docker -H "unix://$w/s.sock" load -i "$FIXTURE" >/dev/null
  quiet_caches
  local a0 s0 u0 a1 s1 u1 top
  a0=$(meminfo MemAvailable) s0=$(meminfo Slab) u0=$(meminfo SUnreclaim)
  cp /proc/slabinfo "$w/slab0"
  node bench/scale-client.mjs "$w/s.sock" start "$N" 4 ab- >"$w/start.json"
  sleep 3
  quiet_caches
  a1=$(meminfo MemAvailable) s1=$(meminfo Slab) u1=$(meminfo SUnreclaim)
  top=$(awk -v n="$N" 'NR==FNR{if(FNR>2)b[$1]=$3*$4;next} FNR>2{d=int(($3*$4-b[$1])/1024/n); if(d>0)print d, $1}' \
    "$w/slab0" /proc/slabinfo | sort -rn | head -6 | awk '{printf "%s%s %s", (NR>1?", ":""), $2, $1}')
  printf '| %s | %s | %d | %d | %d | %s |\n' "$label" "$(jq -r .started "$w/start.json")" \
    $(((a0 - a1) / N)) $(((s1 - s0) / N)) $(((u1 - u0) / N)) "$top"
  node bench/scale-client.mjs "$w/s.sock" remove 4 >/dev/null
  kill "$DAEMON"
  wait "$DAEMON" 2>/dev/null || true
  DAEMON=""
  release_work "$w" || true # its nft and pkill fail when there is nothing of theirs
}

{
  printf '# Kernel memory per idle container: %s against this tree (%s)\n\n' "$OLD_REF" "$(date -u +%FT%TZ)"
  printf '%s idle containers a round, %s rounds, alternating; KiB per container. Load before: %s.\n\n' \
    "$N" "$ROUNDS" "$(cut -d' ' -f1-3 /proc/loadavg)"
  printf '| build | started | MemAvailable drop | Slab | unreclaimable slab | slab caches grown most |\n'
  printf '|---|---|---|---|---|---|\n'
  for _ in $(seq "$ROUNDS"); do
    round "old ($OLD_REF)" "$WORK/old"
    round new "$REPO"
  done
} | tee "$OUT.md"
