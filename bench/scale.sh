#!/usr/bin/env bash
# Many idle containers on one daemon (issue #19 part 1): `bash bench/scale.sh [N]`.
# Starts N idle busybox containers (`sleep 1d`, --network none) on a private berthd through the API
# (bench/scale-client.mjs: CLIENTS persistent connections, no CLI process per container), then
# measures what grows with the count: ps (docker CLI and API), ps --filter, inspect, events,
# system df, memory per container, berthd's RSS, a kill -9 and restart (time to /_ping and to all
# N listed; a sample of containers still the same processes, attachable, logs intact), and the
# removal of all with nothing left (mounts, cgroups, netns, processes, dirs).
# Then the same, at N_OTHER containers, for dockerd (Debian's 20.10, live-restore on) and podman
# (4.3, its Docker-compatible API service), through the same client.
# Knobs: N (argument, 1000), N_OTHER (300; 0 skips the others), CLIENTS (4), RUNS (5, per timed
# figure), ENGINES ("berthd dockerd podman"), WORK (/var/tmp/berth-scale).
# Writes bench/results/<UTC time>-scale.{json,md}. Stops and removes everything it started.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-${N:-1000}}
N_OTHER=${N_OTHER:-300}
CLIENTS=${CLIENTS:-4}
RUNS=${RUNS:-5}
ENGINES=${ENGINES:-berthd dockerd podman}
WORK=${WORK:-/var/tmp/berth-scale}
REPO=$(pwd)
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT=$REPO/bench/results/$STAMP-scale
FIXTURE=/var/cache/berth/fixtures/busybox.tar
CLIENT="node $REPO/bench/scale-client.mjs"
unset NODE_EXTRA_CA_CERTS
source bench/lib.sh
[ -d dist/src ] || npm run -s build
# the other engines' packages, when they are to run and missing (Debian's docker.io, podman)
need=""
for e in $ENGINES; do
  case "$e" in dockerd) p=docker.io ;; podman) p=podman ;; *) continue ;; esac
  dpkg -s "$p" >/dev/null 2>&1 || need="$need $p"
done
if [ -n "$need" ] && [ "$N_OTHER" != 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need >/dev/null
fi

# each container is two tasks (conmon + its process) and pid_max is 32768 here: say so before a start that cannot fit
tasks_now=$(cut -d' ' -f4 /proc/loadavg | cut -d/ -f2)
if [ $((tasks_now + 2 * N + 500)) -gt "$(cat /proc/sys/kernel/pid_max)" ]; then
  printf 'warning: %s tasks now + 2 x %s containers is above pid_max (%s): starts will fail with EAGAIN\n' \
    "$tasks_now" "$N" "$(cat /proc/sys/kernel/pid_max)" >&2
fi

mkdir -p "$WORK" "$REPO/bench/results"
WORK=$(cd "$WORK" && pwd)
RES=$WORK/results.jsonl
: >"$RES"
DAEMON_PID=""
PODMAN_BIN="podman --root $WORK/podman-root --runroot $WORK/podman-run --cgroup-manager cgroupfs --events-backend file"

# What an engine leaves when a run stops half way: its containers' processes and monitors.
# The monitors and their children from one read of the process table, then one kill: a loop of a
# pgrep per monitor took minutes at 2,400 monitors, and a pid read at its start could name another
# process by the time the loop reached it (a kill in it hit a shell's own child).
kill_leftovers() {
  local mons kids
  mons=$(pgrep -f "$(monitor_re "$1")" | tr '\n' ' ')
  [ -n "$mons" ] || return 0
  kids=$(ps -eo pid=,ppid= | awk -v m=" $mons " 'index(m, " " $2 " ") { print $1 }')
  kill -9 $kids $mons 2>/dev/null
  return 0
}
# the cgroup parent under which each engine makes its containers' cgroups
cgroup_parent() { case $1 in berthd) echo berth ;; dockerd) echo docker ;; podman) echo libpod_parent ;; esac; }
# Notes the cgroups an engine's parent holds before its run, so that release_cgroups knows its own.
note_cgroups() { ls "/sys/fs/cgroup/memory/$(cgroup_parent "$1")" 2>/dev/null >"$WORK/cgroups-before-$1" || true; }
# Removes the empty cgroups an engine's run made and left (an engine that did not come back after
# kill -9 removes nothing; each empty memory cgroup costs the kernel ~1.4 MB here, HOST.md). A cgroup
# that still holds a process is not removed (rmdir fails), nor one that was there before the run.
release_cgroups() {
  local parent h c
  parent=$(cgroup_parent "$1")
  [ -f "$WORK/cgroups-before-$1" ] || return 0
  for h in /sys/fs/cgroup/*/; do
    [ -d "$h$parent" ] || continue
    for c in "$h$parent"/*/; do
      [ -d "$c" ] || continue
      grep -qxF "$(basename "$c")" "$WORK/cgroups-before-$1" && continue
      find "$c" -depth -type d -exec rmdir {} + 2>/dev/null
    done
  done
  return 0
}
cleanup() {
  set +e
  [ -n "$DAEMON_PID" ] && kill -9 "$DAEMON_PID" 2>/dev/null
  [ -d "$WORK/podman-root" ] && timeout 300 $PODMAN_BIN rm -af -t 0 >/dev/null 2>&1
  for e in berthd dockerd podman; do kill_leftovers "$e"; done
  sleep 1 # the killed processes leave their cgroups
  for e in berthd dockerd podman; do release_cgroups "$e"; done
  release_work "$WORK"
  mkdir -p "$WORK.logs" && cp "$WORK"/*.log "$WORK.logs/" 2>/dev/null # the daemons' logs, kept next to it
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { printf '%s %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
emit() { printf '{"engine":"%s","key":"%s","value":%s}\n' "$1" "$2" "${3:-null}" >>"$RES"; }
now_ms() { date +%s%3N; }

# median wall ms of RUNS runs of a command (output discarded)
median_ms() {
  local xs=() i t
  for i in $(seq "$RUNS"); do
    t=$(now_ms)
    "$@" >/dev/null 2>&1 || true
    xs+=($(($(now_ms) - t)))
  done
  printf '%s\n' "${xs[@]}" | sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'
}

# the daemon under test: start_<engine> sets SOCK and DAEMON_PID and waits for /_ping
start_berthd() {
  SOCK=$WORK/berth.sock
  setsid "$REPO/bin/berthd" --host "unix://$SOCK" --root "$WORK/berth-root" --exec-root "$WORK/berth-run" \
    >>"$WORK/berthd.log" 2>&1 &
  DAEMON_PID=$!
}
start_dockerd() {
  SOCK=$WORK/docker.sock
  setsid dockerd --data-root "$WORK/docker-data" --exec-root "$WORK/docker-exec" -H "unix://$SOCK" \
    --pidfile "$WORK/dockerd.pid" --bridge=none --iptables=false --ip6tables=false --live-restore \
    --containerd-namespace "scale-$STAMP" >>"$WORK/dockerd.log" 2>&1 &
  DAEMON_PID=$!
}
start_podman() {
  SOCK=$WORK/podman.sock
  setsid $PODMAN_BIN system service --time=0 "unix://$SOCK" >>"$WORK/podman.log" 2>&1 &
  DAEMON_PID=$!
}
wait_ping() {
  for _ in $(seq 600); do
    curl -sf --unix-socket "$SOCK" http://x/_ping >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  log "$1 did not answer /_ping"
  return 1
}
# what a monitor's command line names: conmon for berthd and podman, containerd-shim for dockerd
monitor_re() {
  case $1 in
    berthd) echo "^(/usr/bin|/usr/local/lib/berth)/conmon .*$WORK/berth-run" ;;
    dockerd) echo "^/usr/bin/containerd-shim-runc-v2 -namespace scale-$STAMP " ;;
    podman) echo "^/usr/bin/conmon .*$WORK/podman-r" ;;
  esac
}
daemon_rss_kb() { awk '/^VmRSS/{print $2}' "/proc/$DAEMON_PID/status"; }

run_engine() {
  local e=$1 n=$2
  log "== $e: $n containers"
  note_cgroups "$e"
  "start_$e"
  wait_ping "$e"
  if [ "$e" = podman ]; then $PODMAN_BIN load -i "$FIXTURE" >/dev/null; else docker -H "unix://$SOCK" load -i "$FIXTURE" >/dev/null; fi
  local D="docker -H unix://$SOCK"
  local avail0 slab0 sunreclaim0
  avail0=$(meminfo MemAvailable)
  slab0=$(meminfo Slab)
  sunreclaim0=$(meminfo SUnreclaim)
  cp /proc/slabinfo "$WORK/slabinfo-$e"
  emit "$e" mounts_before "$(wc -l </proc/self/mountinfo)"
  emit "$e" load_before "$(cut -d' ' -f1 /proc/loadavg)"

  # witnesses: containers that log and read stdin, to check attach and logs across the restart
  local w
  for w in 1 2 3; do
    $D run -d -i --network none --name "witness$w" ${ULIMIT_FLAGS:-} busybox \
      sh -c 'echo before restart; while read l; do echo got $l; done' >/dev/null
  done

  log "$e: starting $n"
  local started
  started=$($CLIENT "$SOCK" start "$n" "$CLIENTS" scale-)
  emit "$e" start "$started"
  log "$e: $started"
  emit "$e" count "$($CLIENT "$SOCK" count)"
  emit "$e" load_after_start "$(cut -d' ' -f1 /proc/loadavg)"
  emit "$e" mounts_after_start "$(wc -l </proc/self/mountinfo)"
  # a new mount namespace copies every mount: the kernel's cost per container start at this count
  emit "$e" unshare_mount_ns_ms "$(median_ms unshare -m true)"
  # and crun reads the whole table (/proc/mounts, 4 KiB at a time) at each create: its cost at this count
  emit "$e" read_mounts_ms "$(median_ms dd if=/proc/self/mounts of=/dev/null bs=4096 status=none)"
  emit "$e" mounts_bytes "$(wc -c </proc/self/mounts)"

  # the starts may stop early (a host floor): what follows names the containers that were made
  n=$(jq -r '.started // 0' <<<"${started:-{\}}" 2>/dev/null || echo 0)
  [ "$n" -gt 0 ] 2>/dev/null || n=$(($($CLIENT "$SOCK" count | jq .all) - 3))
  local mid=$((n / 2))
  emit "$e" ps_cli_ms "$(median_ms $D ps -q)"
  emit "$e" ps_a_cli_ms "$(median_ms $D ps -aq)"
  emit "$e" ps_api "$($CLIENT "$SOCK" time "$RUNS" GET /v1.41/containers/json)"
  emit "$e" ps_filter_name_cli_ms "$(median_ms $D ps -q --filter name=scale-$mid)"
  emit "$e" ps_filter_status_cli_ms "$(median_ms $D ps -q --filter status=exited)"
  emit "$e" ps_filter_label_cli_ms "$(median_ms $D ps -q --filter label=nothing=here)"
  emit "$e" inspect_cli_ms "$(median_ms $D inspect scale-$mid)"
  emit "$e" inspect_api "$($CLIENT "$SOCK" time "$RUNS" GET /v1.41/containers/scale-$mid/json)"
  emit "$e" system_df_cli_ms "$(median_ms $D system df)"
  emit "$e" system_df_api "$($CLIENT "$SOCK" time "$RUNS" GET /v1.41/system/df)"
  emit "$e" events "$($CLIENT "$SOCK" events)"
  emit "$e" monitors "$($CLIENT - pss "$(monitor_re "$e")")"
  emit "$e" daemon_rss_kb "$(daemon_rss_kb "$e")"
  emit "$e" daemon_fds "$(ls "/proc/$DAEMON_PID/fd" | wc -l)"
  if [ "$e" = dockerd ]; then
    emit "$e" containerd_rss_kb "$(awk '/^VmRSS/{print $2}' /proc/"$(pgrep -f "containerd --config $WORK/docker-exec" | head -1)"/status 2>/dev/null || echo 0)"
  fi
  emit "$e" mem_available_delta_kb "$((avail0 - $(meminfo MemAvailable)))"
  emit "$e" slab_delta_kb "$(($(meminfo Slab) - slab0))"
  emit "$e" unreclaimable_slab_delta_kb "$(($(meminfo SUnreclaim) - sunreclaim0))"
  # which kernel caches grew (KiB; machine-wide): where the kernel's cost per container goes
  emit "$e" slab_caches_kb "$(awk 'NR==FNR{if(FNR>2)b[$1]=$3*$4;next} FNR>2{d=int(($3*$4-b[$1])/1024); if(d>0)print d, $1}' \
    "$WORK/slabinfo-$e" /proc/slabinfo | sort -rn | head -10 | jq -cRn '[inputs | split(" ") | {(.[1]): (.[0]|tonumber)}] | add')"

  # kill -9 and restart: time to /_ping and to all listed
  local sample pids_before
  sample=$(seq 0 $((n / 10 > 0 ? n / 10 : 1)) $((n - 1)) | head -10 | sed 's/^/scale-/')
  pids_before=$(for c in $sample; do $D inspect -f '{{.State.Pid}}' "$c"; done | tr '\n' ' ')
  local want
  want=$($CLIENT "$SOCK" count | jq .running)
  log "$e: kill -9 and restart ($want running)"
  kill -9 "$DAEMON_PID"
  # (dockerd's own containerd dies with it; the shims keep the containers)
  sleep 0.5
  [ "$e" = berthd ] && rm -f "$SOCK" # a stale socket refuses: its removal is what the restart does too
  # as a supervisor would after a crash: dockerd refuses to start while its pid files name a live
  # process (dockerd's, and its containerd's, which dies with it), and on this busy machine a dead
  # one's pid is soon someone else's
  rm -f "$WORK/dockerd.pid" "$WORK/docker-exec/containerd/containerd.pid"
  local t0
  t0=$(now_ms)
  "start_$e"
  local listed
  listed=$($CLIENT "$SOCK" wait-listed "$want" "$([ "$e" = berthd ] && echo 900 || echo 180)")
  emit "$e" restart "$(jq -c --argjson t "$(($(now_ms) - t0))" '. + {total_ms: $t}' <<<"$listed")"
  log "$e: restart $listed"
  if [ "$(jq .ping_ms <<<"$listed")" = null ]; then
    log "$e did not come back after kill -9: its containers are removed without it"
    kill -9 "$DAEMON_PID" 2>/dev/null
    DAEMON_PID=""
    kill_leftovers "$e"
    sleep 1
    release_cgroups "$e"
    return 0
  fi
  local pids_after
  pids_after=$(for c in $sample; do $D inspect -f '{{.State.Pid}}' "$c"; done | tr '\n' ' ')
  emit "$e" same_processes_after_restart "$([ "$pids_before" = "$pids_after" ] && echo true || echo false)"
  local ok=0
  for w in 1 2 3; do
    [ "$($CLIENT "$SOCK" attach "witness$w" "ping$w" | jq .ok)" = true ] || continue
    for _ in $(seq 20); do # the log file may lag the attach stream a little
      if $D logs "witness$w" 2>&1 | tr '\n' ' ' | grep -q "^before restart .*got ping$w"; then
        ok=$((ok + 1))
        break
      fi
      sleep 0.25
    done
  done
  emit "$e" witnesses_attach_and_logs_ok "$ok"

  # removal of all, then what is left
  $CLIENT "$SOCK" ids >"$WORK/ids-$e"
  log "$e: removing all"
  emit "$e" remove "$($CLIENT "$SOCK" remove "$CLIENTS")"
  emit "$e" count_after_remove "$($CLIENT "$SOCK" count)"
  sleep 2
  case $e in
    berthd) emit "$e" leftovers "$($CLIENT - leftovers "$WORK/ids-$e" "$WORK/berth-root" berth)" ;;
    dockerd) emit "$e" leftovers "$($CLIENT - leftovers "$WORK/ids-$e" "$WORK/docker-data" docker)" ;;
    podman) emit "$e" leftovers "$($CLIENT - leftovers "$WORK/ids-$e" "$WORK/podman-root" libpod_parent)" ;;
  esac
  kill "$DAEMON_PID"
  wait "$DAEMON_PID" 2>/dev/null || true
  DAEMON_PID=""
  sleep 1
}

for e in $ENGINES; do
  n=$N
  [ "$e" = berthd ] || n=$N_OTHER
  [ "$n" -gt 0 ] || continue
  ULIMIT_FLAGS=""
  if [ "$e" = podman ]; then
    export SCALE_ULIMITS=1
    ULIMIT_FLAGS="--ulimit nofile=1024:1024 --ulimit nproc=1024:1024"
  else
    unset SCALE_ULIMITS
  fi
  run_engine "$e" "$n" || log "$e: failed (see $WORK/$e*.log)"
done

cp "$RES" "$OUT.jsonl" # the raw figures: scale-report.mjs can put runs made apart side by side
node "$REPO/bench/scale-report.mjs" "$RES" "$OUT" "$N" "$N_OTHER"
log "results: $OUT.md"
