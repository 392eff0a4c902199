# Shared by the bench scripts (sourced).
# Unmounts whatever is left mounted under the work dir $1 and stops the containerd instances a
# dockerd started for it, and removes the nftables table and links of each berthd root under it
# (a stopped berthd leaves them for live restore), so that the next run starts clean.
release_work() {
  sleep 1
  local idf id # berthd's nftables table and links: a stopped daemon leaves them for live restore
  for idf in "$1"/*/engine-id; do
    [ -f "$idf" ] || continue
    id=$(tr -d - < "$idf" | cut -c1-8)
    nft delete table ip "berth_$id" 2>/dev/null
    ip -j link show | jq -r --arg m "berth:$id" '.[] | select(.ifalias == $m) | .ifname' | xargs -r -n1 ip link del 2>/dev/null
  done
  grep -o " $1[^ ]*" /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l 2>/dev/null
  pkill -f "containerd.*$1" 2>/dev/null
  return 0
}

# A /proc/meminfo field in KiB: `meminfo MemAvailable`
meminfo() { awk -v k="$1:" '$1==k{print $2}' /proc/meminfo; }

# Starts berthd and dockerd with private roots and sockets under $WORK (dockerd's containerd
# namespace $1) in the background; sets BH, DH, BERTH_PID, DOCKERD_PID; waits for both sockets.
start_engines() {
  BH=unix://$WORK/berth.sock
  bin/berthd --host $BH --root $WORK/berth-root --exec-root $WORK/berth-run >$WORK/berthd.log 2>&1 &
  BERTH_PID=$!
  DH=unix://$WORK/docker.sock
  dockerd --data-root $WORK/docker-data --exec-root $WORK/docker-exec -H $DH --pidfile $WORK/dockerd.pid \
    --bridge=none --iptables=false --ip6tables=false --containerd-namespace "$1" >$WORK/dockerd.log 2>&1 &
  DOCKERD_PID=$!
  for _ in $(seq 100); do [ -S $WORK/berth.sock ] && [ -S $WORK/docker.sock ] && break; sleep 0.2; done
}

# The common start of a bench script: sets REPO, STAMP, OUT (results path, suffixed with $1) and
# FIXTURE; builds berth; installs the Debian packages named after $1 that are missing.
bench_init() {
  REPO=$(pwd)
  STAMP=$(date -u +%Y%m%dT%H%M%SZ)
  OUT=$REPO/bench/results/$STAMP${1:+-$1}
  FIXTURE=/var/cache/berth/fixtures/busybox.tar
  shift
  bash scripts/install.sh --no-run >/dev/null
  local need="" p
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || need="$need $p"; done
  if [ -n "$need" ]; then apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need >/dev/null; fi
  return 0
}

# The usual end of a bench run: stops the helper processes in $PIDS, dockerd and berthd, then
# releases $WORK. Scripts that start nothing else use it as their EXIT trap.
stop_engines() {
  set +e
  local p
  for p in ${PIDS:-}; do kill $p 2>/dev/null; done
  [ -n "${DOCKERD_PID:-}" ] && { kill $DOCKERD_PID; wait $DOCKERD_PID 2>/dev/null; }
  [ -n "${BERTH_PID:-}" ] && kill $BERTH_PID
  release_work "$WORK"
}

# The overlay benches' two "hosts" (bench/overlay.sh, overlay-3way.sh): network namespaces ${P}1 and
# ${P}2 on a bridge in ${P}u (the underlay, MTU $1, default 1500; addresses $NET.1, .2, and .254 for
# etcd), a berthd in each (its own mount namespace with that namespace's sysfs, as the tests do) on
# the cluster store; sets ETCD_PID, D1 and D2 (docker against each), loads $FIXTURE into both.
# Uses P, NET, WORK, FIXTURE.
overlay_hosts_up() {
  local mtu=${1:-1500} i
  ip netns add ${P}u
  ip -n ${P}u link add br0 mtu $mtu type bridge
  ip -n ${P}u addr add $NET.254/24 dev br0
  ip -n ${P}u link set br0 up
  ip -n ${P}u link set lo up
  for i in 1 2; do
    ip netns add $P$i
    ip link add ${P}v$i mtu $mtu type veth peer name eth0 mtu $mtu netns $P$i
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
}

# Undoes overlay_hosts_up: the hosts' containers, berthds and etcd, the namespaces ${P}1 ${P}2 ${P}u
# and ${P}<each argument>, and WORK.
overlay_hosts_down() {
  set +e
  local i n ids pid
  for i in 1 2; do
    ids=$(DOCKER_HOST=unix://$WORK/h$i.sock docker ps -aq 2>/dev/null)
    [ -n "$ids" ] && DOCKER_HOST=unix://$WORK/h$i.sock docker rm -f $ids >/dev/null 2>&1
    pid=$(cat $WORK/h$i.pid 2>/dev/null) && kill $pid 2>/dev/null
  done
  [ -n "${ETCD_PID:-}" ] && kill $ETCD_PID 2>/dev/null
  sleep 1
  for n in 1 2 u "$@"; do ip netns del $P$n 2>/dev/null; done
  release_work "$WORK"
  rm -rf "$WORK"
}
