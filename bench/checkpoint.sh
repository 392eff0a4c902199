#!/usr/bin/env bash
# Checkpoint/restore benchmarks (berthd; CRIU through runc and through the default runtime, crun
# built with CRIU by scripts/crun.sh). Results: bench/results/<UTC>-checkpoint.{json,md}.
#   bash bench/checkpoint.sh          RUNS=3 bash bench/checkpoint.sh
# For a container holding 64 MB and 512 MB of touched memory (busybox awk keeping a string):
# checkpoint time (`berth checkpoint create`, the container stops), restore time
# (`berth start --checkpoint`), and migration downtime to a second berthd on this host
# (`berth migrate`: the longest gap the application sees in its own ~10 ms ticks; no pre-copy —
# this kernel has no soft-dirty tracking — and with --post-copy: CRIU lazy pages, the process
# resumes there before its memory has moved, pages follow on demand).
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
bench_init checkpoint jq
RUNS=${RUNS:-5}
WORK=${WORK:-/var/tmp/berth-bench-ckpt}
cleanup() {
  set +e
  [ -n "${PODMAN:-}" ] && $PODMAN rm -af >/dev/null 2>&1
  for s in A B; do
    pid=$(cat $WORK/$s.pid 2>/dev/null) || continue
    DOCKER_HOST=unix://$WORK/$s.sock docker rm -f $(DOCKER_HOST=unix://$WORK/$s.sock docker ps -aq) >/dev/null 2>&1
    kill $pid; while kill -0 $pid 2>/dev/null; do sleep 0.1; done
  done
  release_work "$WORK"
}
trap cleanup EXIT
rm -rf "$WORK"; mkdir -p "$WORK"
for s in A B; do
  bin/berthd --host unix://$WORK/$s.sock --root $WORK/$s-root --exec-root $WORK/$s-run >$WORK/$s.log 2>&1 &
  echo $! > $WORK/$s.pid
done
for _ in $(seq 100); do [ -S $WORK/A.sock ] && [ -S $WORK/B.sock ] && break; sleep 0.2; done
for s in A B; do DOCKER_HOST=unix://$WORK/$s.sock docker load -i $FIXTURE >/dev/null; done
export BERTH_HOST=unix://$WORK/A.sock
# podman with private storage under $WORK, finding scripts/criu.sh's CRIU first (Debian's 3.17 fails here)
PODMAN="env PATH=/usr/local/sbin:$PATH podman --root $WORK/pod-root --runroot $WORK/pod-run --cgroup-manager cgroupfs --events-backend file"
$PODMAN load -i $FIXTURE >/dev/null 2>&1 || PODMAN=""
ms() { local s=$(date +%s%N); "$@" >/dev/null; echo $(( ($(date +%s%N) - s) / 1000000 )); }
hold() { # a container holding $1 MB of touched memory (runtime $3, runc by default), ready when the
  # string is built; it also appends the (host-wide) /proc/uptime to /tmp/ticks every ~10 ms: the
  # gaps are the downtime the application itself sees ("last answer before to first answer after")
  bin/berth run -d --runtime "${3:-runc}" --name "$2" busybox sh -c \
    "awk 'BEGIN { s = sprintf(\"%$(( $1 * 1048576 ))s\", \"\"); print \"ready\"; while (1) system(\"sleep 1\") }' & while true; do cut -d' ' -f1 /proc/uptime >> /tmp/ticks; usleep 10000; done" >/dev/null
  for _ in $(seq 300); do bin/berth logs "$2" 2>/dev/null | grep -q ready && return 0; sleep 0.2; done
  echo "bench: $2 did not get ready" >&2; exit 1
}
# migrate $1 (container) from $2 to $3 with flags $4: the largest gap between two ticks, in ms
migrate_gap() {
  DOCKER_HOST=unix://$WORK/$2.sock docker exec $1 sh -c ': > /tmp/ticks'
  BERTH_HOST=unix://$WORK/$2.sock bin/berth migrate $1 $4 --to unix://$WORK/$3.sock >/dev/null
  sleep 0.5
  DOCKER_HOST=unix://$WORK/$3.sock docker exec $1 cat /tmp/ticks | awk 'NR > 1 && $1 - p > g { g = $1 - p } { p = $1 } END { printf "%d", g * 1000 }'
}
# rows MB CONTAINER PREFIX: RUNS checkpoint + restore pairs, then RUNS stop-and-copy migrations back and forth
rows() {
  local mb=$1 ctr=$2 p=$3 i c r from to
  for i in $(seq $RUNS); do
    c=$(ms bin/berth checkpoint create $ctr c$i)
    r=$(ms bin/berth start --checkpoint c$i $ctr)
    echo "$mb ${p}checkpoint $c" >> $WORK/rows; echo "$mb ${p}restore $r" >> $WORK/rows
    bin/berth checkpoint rm $ctr c$i
  done
  for i in $(seq $RUNS); do
    from=$([ $((i % 2)) = 1 ] && echo A || echo B); to=$([ $from = A ] && echo B || echo A)
    echo "$mb ${p}migrate $(migrate_gap $ctr $from $to '')" >> $WORK/rows
  done
}
: > $WORK/rows
for mb in 64 512; do
  # the default runtime (crun): checkpoint, restore, stop-and-copy migration
  hold $mb d$mb crun
  rows $mb d$mb crun-
  for s in A B; do DOCKER_HOST=unix://$WORK/$s.sock docker rm -f d$mb >/dev/null 2>&1 || true; done
  hold $mb m$mb
  rows $mb m$mb ''
  for i in $(seq $RUNS); do
    from=$([ $((i % 2)) = 1 ] && echo A || echo B); to=$([ $from = A ] && echo B || echo A)
    [ "$(DOCKER_HOST=unix://$WORK/$from.sock docker ps -q --filter name=m$mb)" ] || { t=$from; from=$to; to=$t; }
    echo "$mb postcopy $(migrate_gap m$mb $from $to --post-copy)" >> $WORK/rows
  done
  # export/import side by side with podman (same workload, both gzip'd archives, both through runc)
  for s in A B; do [ "$(DOCKER_HOST=unix://$WORK/$s.sock docker ps -q --filter name=m$mb)" ] && export BERTH_HOST=unix://$WORK/$s.sock; done
  for i in $(seq $RUNS); do
    e=$(ms bin/berth checkpoint create --export $WORK/b$mb.tgz m$mb x$i)
    bin/berth rm -f m$mb >/dev/null
    r=$(ms bin/berth restore --import $WORK/b$mb.tgz --name m$mb)
    echo "$mb export $e" >> $WORK/rows; echo "$mb import $r" >> $WORK/rows
  done
  if [ -n "$PODMAN" ]; then
    $PODMAN run -d --name p$mb --runtime runc --network none --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 busybox \
      awk "BEGIN { s = sprintf(\"%$(( mb * 1048576 ))s\", \"\"); print \"ready\"; while (1) system(\"sleep 1\") }" >/dev/null
    for _ in $(seq 300); do $PODMAN logs p$mb 2>/dev/null | grep -q ready && break; sleep 0.2; done
    for i in $(seq $RUNS); do
      e=$(ms $PODMAN container checkpoint --export $WORK/p$mb.tgz p$mb)
      $PODMAN rm -f p$mb >/dev/null
      r=$(ms $PODMAN container restore --import $WORK/p$mb.tgz --name p$mb)
      echo "$mb podman-export $e" >> $WORK/rows; echo "$mb podman-import $r" >> $WORK/rows
    done
    $PODMAN rm -f p$mb >/dev/null 2>&1 || true
  fi
  for s in A B; do DOCKER_HOST=unix://$WORK/$s.sock docker rm -f m$mb >/dev/null 2>&1 || true; done
  export BERTH_HOST=unix://$WORK/A.sock
done
node - "$WORK/rows" "$OUT" <<'JS'
const [rows, out] = process.argv.slice(2);
const fs = require('node:fs');
const data = {};
for (const l of fs.readFileSync(rows, 'utf8').trim().split('\n')) { const [mb, what, v] = l.split(' '); ((data[mb] ??= {})[what] ??= []).push(Number(v)); }
const med = (a) => { const s = [...a].sort((x, y) => x - y); return s[Math.floor(s.length / 2)]; };
const r = Object.fromEntries(Object.entries(data).map(([mb, d]) => [mb, Object.fromEntries(Object.entries(d).map(([k, v]) => [k, med(v)]))]));
fs.writeFileSync(`${out}.json`, JSON.stringify({ medians: r, raw: data }, null, 2));
const md = `# checkpoint bench ${out.split('/').pop()}\n\n| touched memory | runtime | checkpoint (ms) | restore (ms) | migration downtime, stop-and-copy (ms) | migration downtime, post-copy (ms) | target |\n|---|---|---|---|---|---|---|\n` +
  Object.entries(r).map(([mb, m]) => `| ${mb} MB | crun (default) | ${m['crun-checkpoint']} | ${m['crun-restore']} | ${m['crun-migrate']} | n/a (crun has no lazy pages) | ${mb === '512' ? 'downtime ≤ 300 ms' : ''} |\n| ${mb} MB | runc | ${m.checkpoint} | ${m.restore} | ${m.migrate} | ${m.postcopy} | ${mb === '512' ? 'downtime ≤ 300 ms' : ''} |`).join('\n') +
  `\n\nPre-copy: not possible on this kernel (no CONFIG_MEM_SOFT_DIRTY, which CRIU pre-dumps need).\n` +
  `\n\nSide by side with podman 4.3 (runc, the same CRIU), archives gzip'd by both:\n\n| touched memory | berth checkpoint --export (ms) | podman container checkpoint --export (ms) | berth restore --import (ms) | podman container restore --import (ms) |\n|---|---|---|---|---|\n` +
  Object.entries(r).map(([mb, m]) => `| ${mb} MB | ${m.export} | ${m['podman-export'] ?? 'n/a'} | ${m.import} | ${m['podman-import'] ?? 'n/a'} |`).join('\n') + '\n';
fs.writeFileSync(`${out}.md`, md);
process.stdout.write(md);
JS
