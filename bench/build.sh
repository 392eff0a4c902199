#!/usr/bin/env bash
# Builder benchmarks, berthd beside dockerd (Debian's docker.io, legacy builder: the one the
# docker CLI drives over /build without buildx) in one run. Results: bench/results/<UTC>-build.{json,md}.
#   bash bench/build.sh            RUNS=5 bash bench/build.sh   (a quick pass)
# 1. a fully cached rebuild of a 10-step Dockerfile on busybox (docker CLI -> each daemon; berth CLI -> berthd)
# 2. a cold build (--no-cache) of 10 `RUN true` steps minus a cold build with none, per RUN step:
#    the builder's overhead per RUN beyond the command's own time (`true`: ~1 ms).
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
bench_init build docker.io hyperfine
RUNS=${RUNS:-20}
WORK=${WORK:-/var/tmp/berth-bench-build}

cleanup() {
  set +e
  [ -n "${FAKE_PID:-}" ] && kill $FAKE_PID
  [ -n "${BERTH_PID:-}" ] && kill $BERTH_PID
  [ -n "${DOCKERD_PID:-}" ] && { kill $DOCKERD_PID; wait $DOCKERD_PID; }
  release_work "$WORK"
}
trap cleanup EXIT
rm -rf "$WORK"; mkdir -p "$WORK"

start_engines berthbenchbuild
DOCKER_HOST=$BH docker load -i $FIXTURE >/dev/null
DOCKER_HOST=$DH docker load -i $FIXTURE >/dev/null
export DOCKER_BUILDKIT=0

# the 10-step Dockerfile
C=$WORK/ctx10; mkdir -p $C/src
for i in 1 2 3 4 5; do echo "file $i" > $C/src/f$i.txt; done
cat > $C/Dockerfile <<'EOF'
FROM busybox
ENV APP=/app
WORKDIR /app
COPY src/ ./src/
RUN cat src/*.txt > all.txt
RUN echo built > /built
LABEL bench=build
EXPOSE 8080
USER app
CMD ["cat", "/app/all.txt"]
EOF
# the RUN-overhead pair
R=$WORK/run10; mkdir -p $R; { echo 'FROM busybox'; for i in $(seq 10); do echo "RUN true # $i"; done; } > $R/Dockerfile
Z=$WORK/run0; mkdir -p $Z; printf 'FROM busybox\nLABEL none=1\n' > $Z/Dockerfile

for h in $BH $DH; do DOCKER_HOST=$h docker build -q --network none $C >/dev/null; done

# the docker CLI's own floor: a daemon that answers /build at once (reads the context, sends an id)
FH=unix://$WORK/fake.sock
node -e '
const http = require("node:http"); const id = "sha256:" + "a".repeat(64);
http.createServer((req, res) => {
  if (req.url.includes("_ping")) { res.writeHead(200, { "Api-Version": "1.45", "Builder-Version": "1" }); return res.end("OK"); }
  req.resume(); req.on("end", () => { res.writeHead(200, { "Content-Type": "application/json" }); res.end(JSON.stringify({ aux: { ID: id } }) + "\r\n" + JSON.stringify({ stream: id + "\n" }) + "\r\n"); });
}).listen(process.argv[1]);' $WORK/fake.sock &
FAKE_PID=$!
for _ in $(seq 50); do [ -S $WORK/fake.sock ] && break; sleep 0.1; done

hyperfine -N --warmup 2 --runs $RUNS --export-json $WORK/cached.json \
  -n "docker build→berthd (cached)" "env DOCKER_HOST=$BH docker build -q --network none $C" \
  -n "berth build→berthd (cached)" "env BERTH_HOST=$BH bin/berth build -q --network none $C" \
  -n "docker build→dockerd (cached)" "env DOCKER_HOST=$DH docker build -q --network none $C" \
  -n "docker build→instant daemon (CLI floor)" "env DOCKER_HOST=$FH docker build -q --network none $C" | sed -n '/Summary/,$p'

hyperfine -N --warmup 1 --runs $RUNS --export-json $WORK/cold.json \
  -n "berthd cold 10×RUN" "env DOCKER_HOST=$BH docker build -q --no-cache --network none $R" \
  -n "berthd cold 0×RUN" "env DOCKER_HOST=$BH docker build -q --no-cache --network none $Z" \
  -n "dockerd cold 10×RUN" "env DOCKER_HOST=$DH docker build -q --no-cache --network none $R" \
  -n "dockerd cold 0×RUN" "env DOCKER_HOST=$DH docker build -q --no-cache --network none $Z" | sed -n '/Summary/,$p'

node - "$WORK" "$OUT" <<'EOF'
const [work, out] = process.argv.slice(2);
const fs = require('node:fs');
const med = (f) => Object.fromEntries(JSON.parse(fs.readFileSync(`${work}/${f}.json`)).results.map((r) => [r.command, r.median * 1000]));
const c = med('cached'), k = med('cold');
const perRun = (e) => (k[`${e} cold 10×RUN`] - k[`${e} cold 0×RUN`]) / 10;
const r = {
  cached: c,
  cachedRatio: c['docker build→berthd (cached)'] / c['docker build→dockerd (cached)'],
  cachedRatioBerthCli: c['berth build→berthd (cached)'] / c['docker build→dockerd (cached)'],
  cold: k,
  perRunMs: { berthd: perRun('berthd'), dockerd: perRun('dockerd') },
};
fs.writeFileSync(`${out}.json`, JSON.stringify(r, null, 2));
const f = (x) => x.toFixed(1);
const md = `# build bench ${out.split('/').pop()}\n\n| figure | berthd | dockerd | ratio | target |\n|---|---|---|---|---|\n` +
  `| cached rebuild, 10 steps, docker CLI (median ms) | ${f(c['docker build→berthd (cached)'])} | ${f(c['docker build→dockerd (cached)'])} | ${r.cachedRatio.toFixed(3)} | ≤ 0.2 |\n` +
  `| cached rebuild, berth CLI (median ms) | ${f(c['berth build→berthd (cached)'])} | | ${r.cachedRatioBerthCli.toFixed(3)} | |\n` +
  `| the docker CLI alone: an instant daemon (median ms) | ${f(c['docker build→instant daemon (CLI floor)'])} | | ${(c['docker build→instant daemon (CLI floor)'] / c['docker build→dockerd (cached)']).toFixed(3)} | floor of the ratio |\n` +
  `| cold build: overhead per RUN step (ms) | ${f(r.perRunMs.berthd)} | ${f(r.perRunMs.dockerd)} | ${(r.perRunMs.berthd / r.perRunMs.dockerd).toFixed(3)} | ≤ 30 ms |\n`;
fs.writeFileSync(`${out}.md`, md);
process.stdout.write(md);
EOF
