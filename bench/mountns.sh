#!/usr/bin/env bash
# The host's mount table and the cost of a start as the count grows (issue #19): `bash bench/mountns.sh`.
# For each mode (MODES: "off on"; on = berthd --rootfs-mountns) a private berthd in a CPU-accounting
# cgroup of its own (it, conmon and crun create: what it starts) is filled with idle busybox
# containers (`sleep 1d`, --network none, bench/scale-client.mjs, CLIENTS at a time) up to each
# count of COUNTS ("300 1000"); at each count: the host's mount table lines, then PROBES (20)
# containers started one at a time (create + start through the API), their wall time and CPU per
# start: berthd's cgroup plus the probes' own cgroups (the container's init makes its mount
# namespace), then the probes removed. Writes bench/results/<UTC time>-mountns.md; removes all it made.
set -euo pipefail
cd "$(dirname "$0")/.."
COUNTS=${COUNTS:-300 1000}
MODES=${MODES:-off on}
PROBES=${PROBES:-20}
CLIENTS=${CLIENTS:-4}
WORK=${WORK:-/var/tmp/berth-mountns}
REPO=$(pwd)
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT=$REPO/bench/results/$STAMP-mountns.md
FIXTURE=/var/cache/berth/fixtures/busybox.tar
CLIENT="node $REPO/bench/scale-client.mjs"
unset NODE_EXTRA_CA_CERTS
source bench/lib.sh
[ -d dist/src ] || npm run -s build
CGROOT=/sys/fs/cgroup/cpuacct; [ -f $CGROOT/cpuacct.usage ] || CGROOT=/sys/fs/cgroup
CG=$CGROOT/mountns-bench-$$
DAEMON_PID=""
mkdir -p "$WORK" "$REPO/bench/results"

cleanup() {
  set +e
  if [ -n "$DAEMON_PID" ]; then
    $CLIENT "$WORK/berth.sock" remove "$CLIENTS" >/dev/null 2>&1
    kill "$DAEMON_PID" 2>/dev/null; wait "$DAEMON_PID" 2>/dev/null
  fi
  DAEMON_PID=""
  release_work "$WORK"
  if [ -d "$CG" ]; then
    while read -r p; do echo "$p" > "$CGROOT/cgroup.procs"; done < "$CG/cgroup.procs"
    rmdir "$CG"
  fi
  rm -rf "$WORK"/*
}
trap 'cleanup; rm -rf "$WORK"' EXIT

cg_ns() { if [ -f "$1/cpuacct.usage" ]; then cat "$1/cpuacct.usage"; else echo $(( $(awk '/usage_usec/{print $2}' "$1/cpu.stat") * 1000 )); fi; }
mounts() { grep -c . /proc/self/mountinfo; }

{
  echo "# rootfs mount namespace (issue #19), $STAMP"
  echo
  echo "load before: $(cut -d' ' -f1-3 /proc/loadavg); probes: $PROBES one at a time; host mount table lines before any daemon: $(mounts)"
  echo
  echo "| mode | running | host mount lines | probe start wall ms (median) | CPU ms per start (berthd+conmon+crun / + container init) |"
  echo "|---|---|---|---|---|"
} >"$OUT"

for mode in $MODES; do
  flag=""; [ "$mode" = on ] && flag="--rootfs-mountns"
  mkdir -p "$CG"
  bin/berthd --host "unix://$WORK/berth.sock" --root "$WORK/root" --exec-root "$WORK/run" --cri=false $flag >"$WORK/berthd-$mode.log" 2>&1 &
  DAEMON_PID=$!
  echo "$DAEMON_PID" > "$CG/cgroup.procs"
  for _ in $(seq 100); do [ -S "$WORK/berth.sock" ] && break; sleep 0.2; done
  DOCKER_HOST=unix://$WORK/berth.sock docker load -i "$FIXTURE" >/dev/null
  have=0
  for n in $COUNTS; do
    [ "$n" -gt "$have" ] && $CLIENT "$WORK/berth.sock" start $((n - have)) "$CLIENTS" "fill$have-" >/dev/null
    have=$n
    sleep 2
    lines=$(mounts)
    walls=()
    c0=$(cg_ns "$CG")
    ids=()
    for i in $(seq "$PROBES"); do
      t0=$(date +%s%N)
      $CLIENT "$WORK/berth.sock" start 1 1 "probe$n-$i-" >/dev/null
      walls+=($(( ($(date +%s%N) - t0) / 1000000 )))
    done
    sleep 1
    c1=$(cg_ns "$CG")
    inits=0
    for id in $(DOCKER_HOST=unix://$WORK/berth.sock docker ps -q --no-trunc --filter "name=probe$n-"); do
      f=$CGROOT/berth/$id/cpuacct.usage
      [ -f "$f" ] && inits=$(( inits + $(cat "$f") ))
    done
    med=$(printf '%s\n' "${walls[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
    d=$(( (c1 - c0) / PROBES / 1000 ))
    t=$(( (c1 - c0 + inits) / PROBES / 1000 ))
    printf '| %s | %s | %s | %s | %s.%03d / %s.%03d |\n' "$mode" "$n" "$lines" "$med (includes the client node's ~100 ms)" \
      $((d / 1000)) $((d % 1000)) $((t / 1000)) $((t % 1000)) >>"$OUT"
    $CLIENT "$WORK/berth.sock" remove "$CLIENTS" "probe$n-" >/dev/null
  done
  cleanup
done
echo >>"$OUT"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT"
cat "$OUT"
