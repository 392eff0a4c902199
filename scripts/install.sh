#!/usr/bin/env bash
# Installs everything berth needs on a fresh Debian 12 machine (as root), builds it, puts
# `berth` and `berthd` on PATH, builds the busybox fixture image, and — unless --no-run —
# starts berthd and runs a container. Idempotent: a second run only does what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
RUN=1
[ "${1:-}" = "--no-run" ] && RUN=0

APT_PKGS=(crun runc conmon busybox-static tini catatonit containernetworking-plugins etcd-server iperf3 openssh-client iproute2 procps skopeo umoci jq tmux hyperfine apache2-utils docker-registry docker.io pigz docker-compose python3-docker)
missing=()
for p in "${APT_PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# A git worktree whose node_modules links to another checkout's shares those packages: npm ci
# there would empty them for every checkout, and the PATH links belong to the main checkout.
SHARED=0
[ -L node_modules ] && SHARED=1
if [ $SHARED = 0 ] && { [ ! -d node_modules/better-sqlite3/build ] || [ package-lock.json -nt node_modules/.package-lock.json ]; }; then
  log=$(mktemp)
  npm ci --no-fund --no-audit >"$log" 2>&1 || { cat "$log"; rm -f "$log"; echo "npm ci failed" >&2; exit 1; }
  rm -f "$log"
fi
node -e "require('better-sqlite3')" 2>/dev/null || [ $SHARED = 1 ] || npm rebuild better-sqlite3 2>&1 | tail -1
node -e "require('better-sqlite3')"
npm run -s build

if [ $SHARED = 0 ]; then
  ln -sf "$REPO/bin/berth" /usr/local/bin/berth
  ln -sf "$REPO/bin/berthd" /usr/local/bin/berthd
fi

bash scripts/fixture-busybox.sh /var/cache/berth/fixtures/busybox.tar >/dev/null
# conmon built static without libsystemd (a third of the CPU of Debian's at each container start
# and exec); berthd falls back to Debian's conmon when there is none
bash scripts/conmon.sh || echo "WARNING: conmon could not be built: berthd uses the one built before, else Debian's (slower starts)" >&2
# the staging helper of --rootfs-mountns (one static process per start instead of busybox's
# unshare + sh + mount); berthd falls back to busybox when there is none
bash scripts/berth-stage.sh || echo "WARNING: berth-stage could not be built: berthd stages rootfs mounts with busybox (slower starts)" >&2
# CRIU >= 4.2 and crun built with it (checkpoint under the default runtime). berthd probes what
# works at start and says so in `info`; a machine where they cannot be built still runs containers.
if bash scripts/criu.sh; then
  bash scripts/crun.sh || echo "WARNING: crun with CRIU could not be built: only runc containers can be checkpointed" >&2
else
  echo "WARNING: CRIU could not be installed: checkpoint/restore will be unavailable" >&2
fi

[ $RUN = 1 ] || exit 0

SOCK=/run/berth/berth.sock
if ! berth version >/dev/null 2>&1; then
  mkdir -p /var/log
  nohup berthd >>/var/log/berthd.log 2>&1 &
  for _ in $(seq 1 100); do [ -S $SOCK ] && berth version >/dev/null 2>&1 && break; sleep 0.1; done
fi
berth image inspect busybox:latest >/dev/null 2>&1 || berth load -i /var/cache/berth/fixtures/busybox.tar
berth run --rm busybox echo "hello from a berth container"
