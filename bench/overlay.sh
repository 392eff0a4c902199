#!/usr/bin/env bash
# Overlay networks across hosts (issue 18). Results: bench/results/<UTC>-overlay.{json,md}.
#   bash bench/overlay.sh            SECS=3 REPS=3 RUNS=5 bash bench/overlay.sh   (a quick pass)
# A cluster on this machine: an underlay network namespace (a bridge, etcd on its address) and two
# "hosts" (network namespaces joined to it by veths), a berthd in each with --cluster-store; one
# overlay network, a busybox container on each host.
# 1. TCP throughput container -> container across the hosts over the overlay (VXLAN), against the
#    same iperf3 between the two host namespaces directly over the underlay; REPS rounds of SECS
#    seconds each, the two alternating, medians. busybox has no iperf3:
#    Debian's runs from the host inside each container's network namespace (nsenter --net).
# 2. round-trip latency, busybox ping, overlay vs underlay (median of the per-packet times).
# 3. the time a new container's name takes to resolve on the other host: from `docker run -d`
#    returning on host 1 until host 2's name server answers it (nslookup in a tight loop, inside the
#    client container's namespace, against its network's name server).
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
# bench_init's set-up without scripts/install.sh (berth must be built already: `npm run -s build`)
REPO=$(pwd)
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT=$REPO/bench/results/$STAMP-overlay
FIXTURE=/var/cache/berth/fixtures/busybox.tar
for t in iperf3 etcd jq busybox nsenter; do
  command -v $t >/dev/null || { echo "bench/overlay.sh needs $t (scripts/install.sh installs it)" >&2; exit 1; }
done
SECS=${SECS:-10}
REPS=${REPS:-5}
RUNS=${RUNS:-10}
WORK=${WORK:-/var/tmp/berth-bench-overlay}
P=bov
NET=192.168.251

cleanup() {
  set +e
  for i in 1 2; do
    local H=unix://$WORK/h$i.sock
    ids=$(DOCKER_HOST=$H docker ps -aq 2>/dev/null)
    [ -n "$ids" ] && DOCKER_HOST=$H docker rm -f $ids >/dev/null 2>&1
    pid=$(cat $WORK/h$i.pid 2>/dev/null) && kill $pid 2>/dev/null
  done
  [ -n "${ETCD_PID:-}" ] && kill $ETCD_PID 2>/dev/null
  sleep 1
  for n in 1 2 u; do ip netns del $P$n 2>/dev/null; done
  release_work "$WORK"
  rm -rf "$WORK"
}
trap cleanup EXIT
for n in 1 2 u; do ip netns del $P$n 2>/dev/null || true; done
rm -rf "$WORK"; mkdir -p "$WORK"

# the underlay: a bridge in its own namespace, etcd on it, two hosts on veths
ip netns add ${P}u
ip -n ${P}u link add br0 type bridge
ip -n ${P}u addr add $NET.254/24 dev br0
ip -n ${P}u link set br0 up
ip -n ${P}u link set lo up
for i in 1 2; do
  ip netns add $P$i
  ip link add ${P}v$i type veth peer name eth0 netns $P$i
  ip link set ${P}v$i netns ${P}u
  ip -n ${P}u link set ${P}v$i master br0 up
  ip -n $P$i addr add $NET.$i/24 dev eth0
  ip -n $P$i link set eth0 up
  ip -n $P$i link set lo up
done
ip netns exec ${P}u etcd --data-dir $WORK/etcd --listen-client-urls http://$NET.254:2379 \
  --advertise-client-urls http://$NET.254:2379 --listen-peer-urls http://127.0.0.1:2380 >$WORK/etcd.log 2>&1 &
ETCD_PID=$!
for _ in $(seq 100); do grep -q 'ready to serve client requests' $WORK/etcd.log && break; sleep 0.2; done

# a berthd per host, in its namespace (its own mount namespace with that namespace's sysfs, as the tests do)
for i in 1 2; do
  nsenter --net=/run/netns/$P$i unshare --mount --propagation slave sh -c \
    'set -e; d=$(mktemp -d); mount --rbind /sys/fs/cgroup $d; mount -t sysfs sysfs /sys; mount --move $d /sys/fs/cgroup; rmdir $d; exec "$0" "$@"' \
    bin/berthd --host unix://$WORK/h$i.sock --root $WORK/h$i-root --exec-root $WORK/h$i-run \
    --cluster-store etcd://$NET.254:2379 --cluster-advertise $NET.$i >$WORK/h$i.log 2>&1 &
  echo $! >$WORK/h$i.pid
done
for _ in $(seq 150); do [ -S $WORK/h1.sock ] && [ -S $WORK/h2.sock ] && break; sleep 0.2; done
D1="docker -H unix://$WORK/h1.sock"
D2="docker -H unix://$WORK/h2.sock"
$D1 load -i $FIXTURE >/dev/null
$D2 load -i $FIXTURE >/dev/null
for _ in $(seq 100); do $D1 network create -d overlay benchov >/dev/null 2>&1 && break; sleep 0.3; done
for _ in $(seq 100); do $D2 network inspect benchov >/dev/null 2>&1 && break; sleep 0.2; done
$D1 run -d --name srv --network benchov busybox sleep 3600 >/dev/null
$D2 run -d --name cli --network benchov busybox sleep 3600 >/dev/null
SRV_PID=$($D1 inspect -f '{{.State.Pid}}' srv)
CLI_PID=$($D2 inspect -f '{{.State.Pid}}' cli)
SRV_IP=$($D1 inspect -f '{{.NetworkSettings.Networks.benchov.IPAddress}}' srv)
GW=$($D2 network inspect -f '{{(index .IPAM.Config 0).Gateway}}' benchov)
for _ in $(seq 100); do $D2 exec cli ping -c1 -W1 $SRV_IP >/dev/null 2>&1 && break; sleep 0.2; done

# 1. throughput (one TCP stream, SECS seconds, receiver's figure)
iperf() { # $1: nsenter/ip-netns prefix of the server, $2: of the client, $3: server address
  $1 iperf3 -s -1 >/dev/null 2>&1 &
  local s=$!
  sleep 0.5
  $2 iperf3 -c $3 -t $SECS -J | jq '.end.sum_received.bits_per_second / 1e9'
  wait $s 2>/dev/null || true
}
# REPS rounds, overlay and underlay alternating (the machine's load changes under us), medians
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
OV_ALL=(); UL_ALL=()
for _ in $(seq $REPS); do
  OV_ALL+=($(iperf "nsenter --net=/proc/$SRV_PID/ns/net" "nsenter --net=/proc/$CLI_PID/ns/net" $SRV_IP))
  UL_ALL+=($(iperf "ip netns exec ${P}1" "ip netns exec ${P}2" $NET.1))
done
OV_GBPS=$(printf '%s\n' "${OV_ALL[@]}" | median)
UL_GBPS=$(printf '%s\n' "${UL_ALL[@]}" | median)

# 2. latency: median round trip of 200 pings, 10 ms apart
rtt() { "$@" | sed -n 's/.*time=\([0-9.]*\) ms/\1/p' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
OV_RTT=$(rtt nsenter --net=/proc/$CLI_PID/ns/net busybox ping -c 200 -i 0.01 $SRV_IP)
UL_RTT=$(rtt ip netns exec ${P}2 busybox ping -c 200 -i 0.01 $NET.1)

# 3. name propagation: RUNS new containers on host 1, each until host 2's name server answers its name
PROP=()
for r in $(seq $RUNS); do
  $D1 run -d --name new$r --network benchov busybox sleep 3600 >/dev/null
  t0=$(date +%s%N)
  nsenter --net=/proc/$CLI_PID/ns/net sh -c "until busybox nslookup new$r $GW >/dev/null 2>&1; do :; done"
  t1=$(date +%s%N)
  PROP+=($(( (t1 - t0) / 1000000 )))
done
PROP_MED=$(printf '%s\n' "${PROP[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
PROP_MAX=$(printf '%s\n' "${PROP[@]}" | sort -n | tail -1)

RATIO=$(jq -n "$OV_GBPS / $UL_GBPS")
jq -n --arg stamp "$STAMP" --argjson secs $SECS --argjson runs $RUNS \
  --argjson ov "$OV_GBPS" --argjson ul "$UL_GBPS" --argjson ratio "$RATIO" \
  --argjson ovrtt "$OV_RTT" --argjson ulrtt "$UL_RTT" --argjson pmed "$PROP_MED" --argjson pmax "$PROP_MAX" \
  --arg props "${PROP[*]}" --arg ovall "${OV_ALL[*]}" --arg ulall "${UL_ALL[*]}" \
  '{stamp: $stamp, iperf_seconds: $secs, throughput_gbps: {overlay: $ov, underlay: $ul, ratio: $ratio,
      overlay_runs: ($ovall | split(" ") | map(tonumber)), underlay_runs: ($ulall | split(" ") | map(tonumber))},
    rtt_ms_median: {overlay: $ovrtt, underlay: $ulrtt},
    name_propagation_ms: {median: $pmed, max: $pmax, runs: ($props | split(" ") | map(tonumber))}}' >$OUT.json
cat >$OUT.md <<EOF
# Overlay networks across hosts ($STAMP)
Two berthds in their own network namespaces on one machine (2 CPUs shared with other work), etcd on the underlay bridge.

| figure | overlay (VXLAN) | underlay directly | overlay / underlay |
|---|---|---|---|
| TCP throughput, 1 stream, median of $REPS × ${SECS} s (Gbit/s) | $(printf %.2f $OV_GBPS) | $(printf %.2f $UL_GBPS) | $(printf %.2f $RATIO) |
| round trip, median of 200 pings (ms) | $OV_RTT | $UL_RTT | |

Throughput runs, overlay: ${OV_ALL[*]}; underlay: ${UL_ALL[*]}.

A new container's name on the other host (from \`docker run -d\` returning to an answer from that host's name server),
$RUNS runs: median ${PROP_MED} ms, max ${PROP_MAX} ms (all: ${PROP[*]}).
EOF
cat $OUT.md
