#!/usr/bin/env bash
# Issue 18, a measurement (not a bench of record): berth's overlay (veth + bridge + tc fast path)
# against the macvlan prototype (a macvlan on a VXLAN device, no veth/bridge/tc; branch
# ovl-macvlan-proto) against the underlay, in one run, on the same two "hosts" as bench/overlay.sh.
# The prototype's VXLAN (VNI 99, dstport 4790) and macvlan "containers" (plain namespaces) live in
# berthd's own host namespaces, so both VXLAN paths pay the same host netfilter (berth's tables).
#   IPERF_EXTRA="-A 0,1" SECS=3 REPS=6 bash bench/overlay-3way.sh
# Prints per round the three rates and Gbit per CPU-second (both iperf3 processes, getrusage), then
# medians of the per-round ratios against the underlay, and the load average.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
FIXTURE=/var/cache/berth/fixtures/busybox.tar
SECS=${SECS:-3}; REPS=${REPS:-6}; NICE=${NICE:--15}
WORK=${WORK:-/var/tmp/berth-bench-ov3}
P=b3o; NET=192.168.249
cleanup() { overlay_hosts_down m1 m2; }
trap cleanup EXIT
for n in 1 2 u m1 m2; do ip netns del $P$n 2>/dev/null || true; done
rm -rf "$WORK"; mkdir -p "$WORK"
overlay_hosts_up 1500
for _ in $(seq 100); do $D1 network create -d overlay benchov >/dev/null 2>&1 && break; sleep 0.3; done
for _ in $(seq 100); do $D2 network inspect benchov >/dev/null 2>&1 && break; sleep 0.2; done
$D1 run -d --name srv --network benchov busybox sleep 3600 >/dev/null
$D2 run -d --name cli --network benchov busybox sleep 3600 >/dev/null
SRV_PID=$($D1 inspect -f '{{.State.Pid}}' srv); CLI_PID=$($D2 inspect -f '{{.State.Pid}}' cli)
SRV_IP=$($D1 inspect -f '{{.NetworkSettings.Networks.benchov.IPAddress}}' srv)
for _ in $(seq 100); do $D2 exec cli ping -c1 -W1 $SRV_IP >/dev/null 2>&1 && break; sleep 0.2; done
# the prototype: in each host namespace a VXLAN (VNI 99) and a macvlan on it in a namespace of its own
for i in 1 2; do
  ip netns add ${P}m$i
  ip -n $P$i link add vxm mtu 1450 type vxlan id 99 local $NET.$i dstport 4790 nolearning
  ip -n $P$i link set vxm up
  ip -n $P$i link add mv0 link vxm address 02:42:0a:63:00:0$i type macvlan mode bridge
  ip -n $P$i link set mv0 netns ${P}m$i
  ip -n ${P}m$i link set mv0 name eth0; ip -n ${P}m$i addr add 10.99.0.$i/24 dev eth0
  ip -n ${P}m$i link set eth0 up; ip -n ${P}m$i link set lo up
done
for i in 1 2; do j=$((3 - i))
  bridge -n $P$i fdb append 02:42:0a:63:00:0$j dev vxm dst $NET.$j self permanent
  ip -n ${P}m$i neigh add 10.99.0.$j lladdr 02:42:0a:63:00:0$j dev eth0 nud permanent
done
ip netns exec ${P}m2 busybox ping -c1 -W2 10.99.0.1 >/dev/null
IPERF_FLAGS=(-t $SECS ${IPERF_EXTRA:-})
iperf() {
  local srv=$1 cli=$2 addr=$3 try j s
  for try in 1 2 3; do
    $srv nice -n $NICE iperf3 -s -1 --idle-timeout 60 >/dev/null 2>&1 & s=$!
    for _ in $(seq 100); do $srv ss -Hltn 'sport = :5201' | grep -q . && break; sleep 0.05; done
    if [ -n "${PERF_OUT:-}" ]; then
      # --synth=no: with thousands of processes on the machine, perf's start (the maps of every
      # process) took longer than a run; kernel symbols resolve without it. PERF_WARM seconds for
      # perf to open its events, then the run, then SIGINT.
      perf record -q -a -g -e cpu-clock -F 2000 --synth=no -o $PERF_OUT.data -- sleep 120 2>/dev/null & pp=$!
      sleep ${PERF_WARM:-12}
    fi
    j=$($cli nice -n $NICE iperf3 -c $addr "${IPERF_FLAGS[@]}" -J || true)
    [ -n "${PERF_OUT:-}" ] && { kill -INT $pp; wait $pp || true; echo "$j" >$PERF_OUT.json; }
    kill $s 2>/dev/null || true; wait $s 2>/dev/null || true
    jq -e '.end.sum_received.bits_per_second' <<<"$j" >/dev/null 2>&1 && break
  done
  jq -c '{gbps: (.end.sum_received.bits_per_second / 1e9), retr: .end.sum_sent.retransmits,
      gpc: ((.end.sum_received.bytes * 8 / 1e9) / ((.end.cpu_utilization_percent.host_total + .end.cpu_utilization_percent.remote_total) / 100 * .end.sum_received.seconds))}' <<<"$j"
}
run_ov() { iperf "nsenter --net=/proc/$SRV_PID/ns/net" "nsenter --net=/proc/$CLI_PID/ns/net" $SRV_IP; }
run_mv() { iperf "ip netns exec ${P}m1" "ip netns exec ${P}m2" 10.99.0.1; }
run_ul() { iperf "ip netns exec ${P}1" "ip netns exec ${P}2" $NET.1; }
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg); iperf3 ${IPERF_FLAGS[*]} nice $NICE" >&2
: >$WORK/rounds.jsonl
for r in $(seq $REPS); do
  if [ $((r % 2)) = 1 ]; then order="ov mv ul"; else order="ul mv ov"; fi
  declare -A got=()
  for k in $order; do got[$k]=$(run_$k); done
  jq -nc --argjson ov "${got[ov]}" --argjson mv "${got[mv]}" --argjson ul "${got[ul]}" \
    --arg load "$(cut -d' ' -f1 /proc/loadavg)" '{ov: $ov, mv: $mv, ul: $ul, load1: ($load | tonumber)}' | tee -a $WORK/rounds.jsonl |
    jq -r --arg r $r 'def f: .*100|round/100; "round \($r): Gbit/s ov \(.ov.gbps|f) mv \(.mv.gbps|f) ul \(.ul.gbps|f); Gbit/cpu-s ov \(.ov.gpc|f) mv \(.mv.gpc|f) ul \(.ul.gpc|f); retr \(.ov.retr)/\(.mv.retr)/\(.ul.retr); load \(.load1)"' >&2
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
# PROFILE=N: N more rounds (ABBA), each path under `perf record -a -g` (cpu-clock), read by
# bench/overlay-profile.py (CPU per byte by category, divided by the copies to and from user space)
if [ "${PROFILE:-0}" -gt 0 ]; then
  PD=${PROFILE_DIR:-/var/tmp/ov3-prof}; rm -rf $PD; mkdir -p $PD
  for r in $(seq $PROFILE); do
    if [ $((r % 2)) = 1 ]; then order="ov mv ul"; else order="ul mv ov"; fi
    for k in $order; do PERF_OUT=$PD/$k$r run_$k >/dev/null; done
    echo "profile round $r: load $(cut -d' ' -f1 /proc/loadavg)" >&2
  done
fi
jq -s 'def med: sort | if length % 2 == 1 then .[length/2|floor] else (.[length/2-1] + .[length/2]) / 2 end;
  def r3: .*1000|round/1000;
  {rounds: length, load1_median: (map(.load1)|med),
   gbps: {ov: (map(.ov.gbps)|med|r3), mv: (map(.mv.gbps)|med|r3), ul: (map(.ul.gbps)|med|r3)},
   rate_ratio: {ov: (map(.ov.gbps/.ul.gbps)|med|r3), mv: (map(.mv.gbps/.ul.gbps)|med|r3)},
   gbit_per_cpu_s: {ov: (map(.ov.gpc)|med|r3), mv: (map(.mv.gpc)|med|r3), ul: (map(.ul.gpc)|med|r3)},
   cpu_ratio: {ov: (map(.ov.gpc/.ul.gpc)|med|r3), mv: (map(.mv.gpc/.ul.gpc)|med|r3),
     mv_all: map(.mv.gpc/.ul.gpc|r3), ov_all: map(.ov.gpc/.ul.gpc|r3)}}' $WORK/rounds.jsonl
