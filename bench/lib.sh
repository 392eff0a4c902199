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
