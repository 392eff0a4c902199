#!/usr/bin/env bash
# Trust benchmark (issue #7), side by side in one run: the cost of verification on a pull whose
# layers are all present (the pull is then metadata only, so verification is the whole difference):
#   berthd            POST /images/create, no trust policy
#   berthd + policy   the same with --trust-policy covering the repository (TUF refresh per pull)
#   dockerd           the same pull, for reference (dockerd has no working content trust here: no Notary)
#   berth CLI         `berth pull` vs `BERTH_CONTENT_TRUST=1 berth pull` (client-side verification)
# Medians of $RUNS pulls go to bench/results/<UTC time>-trust.{json,md}.
#   bash bench/trust.sh          # RUNS=30
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
bench_init trust
RUNS=${RUNS:-30}
WORK=${WORK:-/var/tmp/berth-bench-trust}
trap stop_engines EXIT
stop_engines 2>/dev/null || true
rm -rf "$WORK"; mkdir -p "$WORK"

port() { node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})"; }
REG=127.0.0.1:$(port)
bin/berth registry serve --addr $REG --root $WORK/registry >$WORK/registry.log 2>&1 &
PIDS="$!"
for _ in $(seq 100); do curl -s -o /dev/null http://$REG/v2/ && break; sleep 0.1; done
start_engines berthbenchtrust
REF=$REG/acme/web
printf '{"repositories": {"%s": "signed"}}\n' "$REG/acme" > $WORK/policy.json
PH=unix://$WORK/policy.sock
bin/berthd --host $PH --root $WORK/policy-root --exec-root $WORK/policy-run --trust-policy $WORK/policy.json >$WORK/policy.log 2>&1 &
PIDS="$PIDS $!"
for _ in $(seq 100); do [ -S $WORK/policy.sock ] && break; sleep 0.1; done

export BERTH_TRUST_DIR=$WORK/trust BERTH_TRUST_PASSPHRASE=bench-passphrase BERTH_TRUST_ROOT_PASSPHRASE=bench-root-passphrase
for h in $BH $PH $DH; do DOCKER_HOST=$h docker load -i $FIXTURE >/dev/null; done
DOCKER_HOST=$BH docker tag busybox $REF:v1
DOCKER_HOST=$BH bin/berth trust sign $REF:v1 >/dev/null
for h in $BH $PH $DH; do DOCKER_HOST=$h docker pull $REF:v1 >/dev/null; done

api_pull() { # $1 socket path: seconds for one pull of a present image
  curl -s -o /dev/null -w '%{time_total}' --unix-socket $1 -X POST "http://d/images/create?fromImage=$REF&tag=v1"
}
now() { date +%s.%N; }
cli_pull() { # $1: extra env
  local s=$(now)
  env $1 DOCKER_HOST=$BH bin/berth pull $REF:v1 >/dev/null
  echo "$(now) - $s" | bc
}
declare -A T
for i in $(seq 1 $RUNS); do
  T[berthd]+="$(api_pull $WORK/berth.sock) "
  T[policy]+="$(api_pull $WORK/policy.sock) "
  T[dockerd]+="$(api_pull $WORK/docker.sock) "
  T[cli]+="$(cli_pull X=0) "
  T[cli-trust]+="$(cli_pull BERTH_CONTENT_TRUST=1) "
done
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.1f", m*1000}'; }
declare -A M
for k in berthd policy dockerd cli cli-trust; do M[$k]=$(echo "${T[$k]}" | median); done
OVER=$(echo "${M[policy]} - ${M[berthd]}" | bc)
COVER=$(echo "${M[cli-trust]} - ${M[cli]}" | bc)
mkdir -p bench/results
cat > $OUT.json <<JSON
{"runs": $RUNS, "median_ms": {"berthd": ${M[berthd]}, "berthd_policy": ${M[policy]}, "dockerd": ${M[dockerd]}, "berth_cli": ${M[cli]}, "berth_cli_trust": ${M[cli-trust]}}, "overhead_ms": {"daemon_policy": $OVER, "cli_trust": $COVER}}
JSON
cat > $OUT.md <<MD
# Trust: verification overhead on a pull whose layers are present ($STAMP, $RUNS runs, medians)

| pull of a present image | median ms |
|---|---|
| berthd, no policy | ${M[berthd]} |
| berthd, --trust-policy (TUF refresh) | ${M[policy]} |
| dockerd (reference, no trust) | ${M[dockerd]} |
| \`berth pull\` | ${M[cli]} |
| \`BERTH_CONTENT_TRUST=1 berth pull\` | ${M[cli-trust]} |

Verification overhead: daemon policy **${OVER} ms**, CLI content trust **${COVER} ms** (target ≤ 20 ms).
MD
cat $OUT.md
