#!/usr/bin/env bash
# Registry benchmarks (issue #3), side by side in one run:
#  1. registry throughput: the same client (curl, 4 blobs at a time) pushes then pulls every layer
#     of a ~1 GiB, 8-layer image to/from berth registry and Debian's docker-registry 2.8;
#  2. engine pull: `docker pull` of that image from the same local registry (berth registry) by
#     berthd and by dockerd, from nothing to image ready (download + unpack).
# Layers are random bytes (incompressible) and travel uncompressed. Medians of $RUNS runs go to
# bench/results/<UTC time>-registry.{json,md}.
#   bash bench/registry.sh                  # LAYERS=8 MIB=128 RUNS=3
#   LAYERS=8 MIB=16 RUNS=1 bash bench/registry.sh   # a quick pass
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
bench_init registry docker.io docker-registry skopeo
LAYERS=${LAYERS:-8}
MIB=${MIB:-128}
RUNS=${RUNS:-3}
WORK=${WORK:-/var/tmp/berth-bench-registry}
trap stop_engines EXIT
stop_engines 2>/dev/null || true
rm -rf "$WORK"; mkdir -p "$WORK"
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

echo "making a $LAYERS x $MIB MiB image"
node bench/make-image.mjs $WORK/big.tar $LAYERS $MIB big:1 >/dev/null
BLOBS=$WORK/big.tar.layers
TOTAL_MB=$(du -sm $BLOBS | cut -f1)

port() { node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})"; }
BR=127.0.0.1:$(port)
bin/berth registry serve --addr $BR --root $WORK/berth-registry >$WORK/berth-registry.log 2>&1 &
BR_PID=$!
PIDS="$BR_PID"
DR=127.0.0.1:$(port)
printf 'version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: %s\n' $WORK/dist-root $DR > $WORK/dist.yml
docker-registry serve $WORK/dist.yml >$WORK/dist.log 2>&1 &
PIDS="$PIDS $!"
for a in $BR $DR; do for _ in $(seq 100); do curl -s -o /dev/null http://$a/v2/ && break; sleep 0.1; done; done

now() { date +%s.%N; }
# CPU seconds of a daemon and its waited-for children (utime+stime+cutime+cstime): steadier than
# wall time on a shared machine (dockerd 20.10 untars in a re-executed child, counted once it exits)
cpu_of() { awk -v hz=$(getconf CLK_TCK) '{printf "%.2f", ($14+$15+$16+$17)/hz}' /proc/$1/stat; }
# one blob: POST for a session, PUT the bytes with the digest (the upload every registry takes)
push_one() { # $1 addr, $2 repo, $3 hex
  local loc
  loc=$(curl -sf -o /dev/null -D - -X POST "http://$1/v2/$2/blobs/uploads/" | tr -d '\r' | awk 'tolower($1)=="location:"{print $2}')
  case $loc in http*) ;; *) loc="http://$1$loc";; esac
  case $loc in *\?*) loc="$loc&digest=sha256:$3";; *) loc="$loc?digest=sha256:$3";; esac
  [ "$(curl -s -o /dev/null -w '%{http_code}' -X PUT -H 'Content-Type: application/octet-stream' -T $BLOBS/$3 "$loc")" = 201 ] || { echo "push of $3 to $1 failed" >&2; exit 1; }
}
export -f push_one; export BLOBS
# push every blob, 4 at a time; prints seconds
push_blobs() { # $1 addr, $2 repo
  local s=$(now)
  ls $BLOBS | xargs -P 4 -I{} bash -c "push_one $1 $2 {}"
  echo "$(now) - $s" | bc
}
pull_blobs() {
  local s=$(now)
  ls $BLOBS | xargs -P 4 -I{} curl -sf -o /dev/null "http://$1/v2/$2/blobs/sha256:{}"
  echo "$(now) - $s" | bc
}
declare -A T
for i in $(seq 1 $RUNS); do
  for r in berth:$BR dist:$DR; do
    name=${r%%:*}; addr=${r#*:}
    T[$name-push]+="$(push_blobs $addr bench/run$i) "
    T[$name-pull]+="$(pull_blobs $addr bench/run$i) "
  done
done

# --- skopeo: copies of a 100 MiB image (4 x 25 MiB) to and from each registry -------------------
# a fresh, empty registry per copy (skopeo's blob-info cache would otherwise mount or skip blobs it
# has seen anywhere); push from a docker-archive, then pull into a dir: from nothing, both ways
node bench/make-image.mjs $WORK/sk.tar 4 25 sk:1 >/dev/null
fresh_registry() { # $1 berth|dist, $2 root; prints "pid addr"
  local a=127.0.0.1:$(port) p
  if [ $1 = berth ]; then
    bin/berth registry serve --addr $a --root $2 >/dev/null 2>&1 & p=$!
  else
    mkdir -p $2; printf 'version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: %s\n' $2/data $a > $2.yml
    docker-registry serve $2.yml >/dev/null 2>&1 & p=$!
  fi
  for _ in $(seq 100); do curl -s -o /dev/null http://$a/v2/ && break; sleep 0.05; done
  echo "$p $a"
}
for i in $(seq 1 $((RUNS * 3))); do
  for name in berth dist; do
    rm -rf $WORK/sk-$name $WORK/sk-out
    read -r p a < <(fresh_registry $name $WORK/sk-$name)
    c=$(cpu_of $p); s=$(now); skopeo copy -q --dest-tls-verify=false docker-archive:$WORK/sk.tar docker://$a/sk/img:1; e=$(now)
    T[$name-skopeo-push]+="$(echo "$e - $s" | bc) "; T[$name-skopeo-push-cpu]+="$(echo "$(cpu_of $p) - $c" | bc) "
    c=$(cpu_of $p); s=$(now); skopeo copy -q --src-tls-verify=false docker://$a/sk/img:1 dir:$WORK/sk-out; e=$(now)
    T[$name-skopeo-pull]+="$(echo "$e - $s" | bc) "; T[$name-skopeo-pull-cpu]+="$(echo "$(cpu_of $p) - $c" | bc) "
    kill $p; wait $p 2>/dev/null || true
  done
done

# --- engine pull: berthd vs dockerd from berth registry ----------------------------------------
start_engines berthbenchreg
sleep 1
REF=$BR/big/img:1
DOCKER_HOST=$BH docker load -i $WORK/big.tar >/dev/null
DOCKER_HOST=$BH docker tag big:1 $REF
DOCKER_HOST=$BH docker push $REF >/dev/null
timed_pull() { # $1 DOCKER_HOST, $2 daemon pid; prints "wall cpu" seconds
  DOCKER_HOST=$1 docker rmi -f $REF big:1 >/dev/null 2>&1 || true
  DOCKER_HOST=$1 docker image prune -af >/dev/null 2>&1 || true
  sync
  local c=$(cpu_of $2) r=$(cpu_of $BR_PID) s=$(now)
  DOCKER_HOST=$1 docker pull $REF >/dev/null
  echo "$(echo "$(now) - $s" | bc) $(echo "$(cpu_of $2) - $c" | bc) $(echo "$(cpu_of $BR_PID) - $r" | bc)"
}
# interleaved, so both see the same load; the registry's CPU over each pull too (it shares the 2 cores)
for i in $(seq 1 $RUNS); do
  read -r w c r < <(timed_pull $BH $BERTH_PID); T[berthd-pull]+="$w "; T[berthd-cpu]+="$c "; T[berthd-reg-cpu]+="$r "
  read -r w c r < <(timed_pull $DH $DOCKERD_PID); T[dockerd-pull]+="$w "; T[dockerd-cpu]+="$c "; T[dockerd-reg-cpu]+="$r "
done

LOAD=$(uptime | sed 's/.*load average: //')
node - "$OUT" "$TOTAL_MB" "$LAYERS" "$MIB" "$RUNS" "${T[berth-push]}" "${T[berth-pull]}" "${T[dist-push]}" "${T[dist-pull]}" "${T[berthd-pull]}" "${T[dockerd-pull]}" "${T[berth-skopeo-push]}" "${T[berth-skopeo-pull]}" "${T[dist-skopeo-push]}" "${T[dist-skopeo-pull]}" "${T[berthd-cpu]}" "${T[dockerd-cpu]}" "${T[berthd-reg-cpu]}" "${T[dockerd-reg-cpu]}" "${T[berth-skopeo-push-cpu]}" "${T[berth-skopeo-pull-cpu]}" "${T[dist-skopeo-push-cpu]}" "${T[dist-skopeo-pull-cpu]}" "$LOAD_START" "$LOAD" <<'JS'
const fs = require('fs');
const [out, mb, layers, mib, runs, ...rest] = process.argv.slice(2);
const load = rest.pop();
const loadStart = rest.pop();
const med = (s) => { const v = s.trim().split(/\s+/).map(Number).sort((a, b) => a - b); return v[Math.floor(v.length / 2)]; };
const [bp, bl, dp, dl, be, de, bsp, bsl, dsp, dsl, bc, dc, brc, drc, bspc, bslc, dspc, dslc] = rest.map(med);
const mbps = (t) => +(mb / t).toFixed(0);
const res = {
  when: new Date().toISOString(), image: { layers: +layers, mib_per_layer: +mib, total_mb: +mb }, runs: +runs,
  registry_push_s: { berth: +bp.toFixed(2), distribution: +dp.toFixed(2) },
  registry_pull_s: { berth: +bl.toFixed(2), distribution: +dl.toFixed(2) },
  registry_throughput_mb_s: { berth_push: mbps(bp), distribution_push: mbps(dp), berth_pull: mbps(bl), distribution_pull: mbps(dl) },
  throughput_ratio_berth_vs_distribution: { push: +(dp / bp).toFixed(2), pull: +(dl / bl).toFixed(2) },
  engine_pull_s: { berthd: +be.toFixed(2), dockerd: +de.toFixed(2), ratio_berthd_vs_dockerd: +(be / de).toFixed(2) },
  engine_pull_cpu_s: { berthd: +bc.toFixed(2), dockerd: +dc.toFixed(2), ratio_berthd_vs_dockerd: +(bc / dc).toFixed(2) },
  engine_pull_registry_cpu_s: { serving_berthd: +brc.toFixed(2), serving_dockerd: +drc.toFixed(2) },
  skopeo_100mib_s: { berth_push: +bsp.toFixed(3), distribution_push: +dsp.toFixed(3), berth_pull: +bsl.toFixed(3), distribution_pull: +dsl.toFixed(3),
    ratio_berth_vs_distribution: { push: +(dsp / bsp).toFixed(2), pull: +(dsl / bsl).toFixed(2) }, copies_each: +runs * 3,
    registry_cpu_s: { berth_push: +bspc.toFixed(2), distribution_push: +dspc.toFixed(2), berth_pull: +bslc.toFixed(2), distribution_pull: +dslc.toFixed(2) } },
  load_average_at_start: loadStart,
  load_average_at_end: load,
};
fs.writeFileSync(`${out}.json`, JSON.stringify(res, null, 2) + '\n');
fs.writeFileSync(`${out}.md`, `# registry bench ${res.when} (medians of ${runs} runs; ${layers} layers x ${mib} MiB = ${mb} MB, random bytes, uncompressed)

| registry (curl, 4 blobs at a time) | push s | pull s | push MB/s | pull MB/s |
|---|---|---|---|---|
| berth registry | ${res.registry_push_s.berth} | ${res.registry_pull_s.berth} | ${res.registry_throughput_mb_s.berth_push} | ${res.registry_throughput_mb_s.berth_pull} |
| docker-registry 2.8 | ${res.registry_push_s.distribution} | ${res.registry_pull_s.distribution} | ${res.registry_throughput_mb_s.distribution_push} | ${res.registry_throughput_mb_s.distribution_pull} |

berth / distribution throughput: push **${res.throughput_ratio_berth_vs_distribution.push}x**, pull **${res.throughput_ratio_berth_vs_distribution.pull}x**

| engine: \`docker pull\` from berth registry, nothing local | seconds | daemon CPU s |
|---|---|---|
| berthd | ${res.engine_pull_s.berthd} | ${res.engine_pull_cpu_s.berthd} |
| dockerd | ${res.engine_pull_s.dockerd} | ${res.engine_pull_cpu_s.dockerd} |

berthd / dockerd: **${res.engine_pull_s.ratio_berthd_vs_dockerd}** (wall), **${res.engine_pull_cpu_s.ratio_berthd_vs_dockerd}** (daemon CPU).
The registry's own CPU over a pull: ${res.engine_pull_registry_cpu_s.serving_berthd} s serving berthd, ${res.engine_pull_registry_cpu_s.serving_dockerd} s serving dockerd.

| skopeo copy, 100 MiB image (4 x 25 MiB), fresh registry each, medians of ${runs * 3} | push s (registry CPU s) | pull s (registry CPU s) |
|---|---|---|
| berth registry | ${res.skopeo_100mib_s.berth_push} (CPU ${res.skopeo_100mib_s.registry_cpu_s.berth_push}) | ${res.skopeo_100mib_s.berth_pull} (CPU ${res.skopeo_100mib_s.registry_cpu_s.berth_pull}) |
| docker-registry 2.8 | ${res.skopeo_100mib_s.distribution_push} (CPU ${res.skopeo_100mib_s.registry_cpu_s.distribution_push}) | ${res.skopeo_100mib_s.distribution_pull} (CPU ${res.skopeo_100mib_s.registry_cpu_s.distribution_pull}) |

berth / distribution speed with skopeo: push **${res.skopeo_100mib_s.ratio_berth_vs_distribution.push}x**, pull **${res.skopeo_100mib_s.ratio_berth_vs_distribution.pull}x**

Load average at the start: ${loadStart}; at the end: ${load}
`);
console.log(JSON.stringify(res, null, 2));
JS
echo "results: $OUT.json $OUT.md"
