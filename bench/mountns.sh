#!/usr/bin/env bash
# The host's mount table and the cost of a start as the count grows (issue #19): `bash bench/mountns.sh`.
# Private berthds side by side (MODES "off on"; on = --rootfs-mountns; shell = the same staged by
# busybox, as without /usr/local/lib/berth/berth-stage), each in a CPU-accounting
# cgroup of its own (it, conmon, crun create, the staging shell: what it starts), filled with idle
# busybox containers (`sleep 1d`, --network none, bench/scale-client.mjs, CLIENTS at a time) up to
# each count of COUNTS ("300 1000"); at each count: the host's mount lines under each daemon's dir,
# then PROBES (20) probe starts (create + start through the API), off and on alternating, CPU per
# start from the daemon's cgroup around each probe plus the probes' own cgroups (the container's
# init makes its mount namespace); then the probes removed. Writes bench/results/<UTC>-mountns.md;
# removes all it made.
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
mkdir -p "$WORK" "$REPO/bench/results"

cleanup() {
  set +e
  local m
  for m in $MODES; do
    if [ -n "${PIDS[$m]:-}" ]; then
      $CLIENT "$WORK/$m/berth.sock" remove "$CLIENTS" >/dev/null 2>&1
      kill "${PIDS[$m]}" 2>/dev/null; wait "${PIDS[$m]}" 2>/dev/null
    fi
    PIDS[$m]=""
    if [ -d "$CG-$m" ]; then
      while read -r p; do echo "$p" > "$CGROOT/cgroup.procs"; done < "$CG-$m/cgroup.procs"
      rmdir "$CG-$m"
    fi
  done
  release_work "$WORK"
  rm -rf "$WORK"
}
declare -A PIDS
trap cleanup EXIT
trap 'exit 130' INT TERM

cg_ns() { if [ -f "$1/cpuacct.usage" ]; then cat "$1/cpuacct.usage"; else echo $(( $(awk '/usage_usec/{print $2}' "$1/cpu.stat") * 1000 )); fi; }
mounts() { grep -c . /proc/self/mountinfo; }
ms() { printf '%d.%01d' $(($1 / 1000000)) $(($1 % 1000000 / 100000)); }

{
  echo "# rootfs mount namespace (issue #19), $STAMP"
  echo
  echo "Both daemons side by side (off: the rootfs on the host, here a mount namespace of the off daemon's own, so that"
  echo "its mounts stay out of the table the on daemon's staging namespaces copy; on: --rootfs-mountns), each in a CPU-accounting"
  echo "cgroup of its own (berthd + conmon + crun create + the staging shell), filled to each count, then $PROBES"
  echo "probe starts (create + start of \`sleep 1d\`, --network none, one at a time), off and on alternating."
  echo "CPU per start: the daemon's cgroup over each probe (+0.5 s to settle) / plus the probe container's own"
  echo "cgroup (its init makes its mount namespace: crun's unshare, then the rest in the container's cgroup)."
  echo
  echo "load before: $(cut -d' ' -f1-3 /proc/loadavg); host mount table lines before the daemons: $(mounts)"
  echo
  echo "| running (each) | mount table lines each daemon's containers copy (off: its namespace's; on: the host's) | CPU ms per start, off: daemon / +init | on: daemon / +init |"
  echo "|---|---|---|---|"
} >"$OUT"

for m in $MODES; do
  flag="--rootfs-mountns=false"; [ "$m" != off ] && flag="--rootfs-mountns"
  # shell: the mode staged by busybox's unshare + sh + mount, as without berth-stage
  helper=(); [ "$m" = shell ] && helper=(env BERTH_STAGE_HELPER=)
  mkdir -p "$CG-$m" "$WORK/$m"
  # the off daemon in a mount namespace of its own: its rootfs mounts stay out of the host's table,
  # which the on daemon's staging namespaces copy (side by side, each sees only its own containers')
  pre=(); [ "$m" = off ] && pre=(unshare --mount --propagation private --)
  "${pre[@]}" "${helper[@]}" bin/berthd --host "unix://$WORK/$m/berth.sock" --root "$WORK/$m/root" --exec-root "$WORK/$m/run" --cri=false $flag >"$WORK/berthd-$m.log" 2>&1 &
  PIDS[$m]=$!
  echo "${PIDS[$m]}" > "$CG-$m/cgroup.procs"
done
for m in $MODES; do
  for _ in $(seq 100); do [ -S "$WORK/$m/berth.sock" ] && break; sleep 0.2; done
  DOCKER_HOST=unix://$WORK/$m/berth.sock docker load -i "$FIXTURE" >/dev/null
done
have=0
declare -A D I
for n in $COUNTS; do
  for m in $MODES; do [ "$n" -gt "$have" ] && $CLIENT "$WORK/$m/berth.sock" start $((n - have)) "$CLIENTS" "fill$have-" >/dev/null; done
  have=$n
  sleep 2
  lines=""
  for m in $MODES; do lines="$lines${lines:+ / }$(grep -c . "/proc/${PIDS[$m]}/mountinfo")"; D[$m]=0; I[$m]=0; done
  for i in $(seq "$PROBES"); do
    for m in $MODES; do
      c0=$(cg_ns "$CG-$m")
      $CLIENT "$WORK/$m/berth.sock" start 1 1 "probe$n-$i-" >/dev/null
      sleep 0.5
      D[$m]=$(( ${D[$m]} + $(cg_ns "$CG-$m") - c0 ))
    done
  done
  for m in $MODES; do
    for id in $(DOCKER_HOST=unix://$WORK/$m/berth.sock docker ps -q --no-trunc --filter "name=probe$n-"); do
      f=$CGROOT/berth/$id/cpuacct.usage
      [ -f "$f" ] && I[$m]=$(( ${I[$m]} + $(cat "$f") ))
    done
    $CLIENT "$WORK/$m/berth.sock" remove "$CLIENTS" "probe$n-" >/dev/null
  done
  row="| $n | $lines |"
  for m in $MODES; do row="$row $(ms $(( D[$m] / PROBES ))) / $(ms $(( (D[$m] + I[$m]) / PROBES ))) |"; done
  echo "$row" >>"$OUT"
done
echo >>"$OUT"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT"
cat "$OUT"
