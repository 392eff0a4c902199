#!/usr/bin/env bash
# CRI pod start latency, berthd beside Debian's containerd 1.6 (its CRI plugin) in one run, through
# the same client (bench/cri-client.mjs, berth's runtime.v1 .proto). Results:
# bench/results/<UTC>-cri.{json,md}.
#   bash bench/cri.sh            RUNS=5 bash bench/cri.sh   (a quick pass)
# Figure: RunPodSandbox + CreateContainer + StartContainer of a busybox `sleep`, pod network through
# CNI (bridge + host-local + portmap, the same chain for both, each on its own bridge and subnet),
# then stop and remove (timed apart); median of RUNS after WARMUP, the runtimes taking turns run by
# run (one client process drives both), so that the load of the shared machine falls on both alike.
# containerd: private --root/--state/--address and config, sandbox image a local pause image built
# here from Debian's static catatonit (`catatonit -P`), imported with `ctr -n k8s.io images import`
# with the busybox fixture. berthd: its CRI socket (--cri-socket); when this berthd has no CRI
# endpoint yet (before branch cri is merged) its side is reported as skipped and the run goes on.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
# bench_init's start without its scripts/install.sh run (which may npm ci and relink /usr/local/bin):
# this bench needs only Debian packages and a build of this tree
REPO=$(pwd)
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT=$REPO/bench/results/$STAMP-cri
FIXTURE=/var/cache/berth/fixtures/busybox.tar
need=""
for p in containerd runc containernetworking-plugins catatonit jq docker.io; do dpkg -s $p >/dev/null 2>&1 || need="$need $p"; done
if [ -n "$need" ]; then apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need >/dev/null; fi
[ -f $FIXTURE ] || bash scripts/fixture-busybox.sh $FIXTURE >/dev/null
npm run -s build
RUNS=${RUNS:-20}
WARMUP=${WARMUP:-2}
WORK=${WORK:-/var/tmp/berth-bench-cri}
CNI_BIN=/usr/lib/cni
PAUSE_REF=localhost/berth-pause:catatonit
CTRD_SOCK=$WORK/containerd.sock
BERTH_CRI=$WORK/berth-cri.sock
CTRD_BRIDGE=bcri-ctrd0
BERTH_BRIDGE=bcri-berth0

cleanup() {
  set +e
  [ -n "${CTRD_PID:-}" ] && {
    # pods a failed run left: their tasks, then the daemon, then the shims of this address
    for t in $(ctr -a $CTRD_SOCK -n k8s.io tasks ls -q 2>/dev/null); do ctr -a $CTRD_SOCK -n k8s.io tasks kill -s SIGKILL $t; done
    kill $CTRD_PID; wait $CTRD_PID 2>/dev/null
    for p in $(pgrep -f "containerd-shim-runc-v2 .*-address $CTRD_SOCK"); do kill -9 $p; done
  }
  [ -n "${BERTH_PID:-}" ] && { kill $BERTH_PID; wait $BERTH_PID 2>/dev/null; }
  for p in $(pgrep -f "conmon .*$WORK/"); do kill -9 $p; done # pods a failed run left under berthd
  ip link del $CTRD_BRIDGE 2>/dev/null
  ip link del $BERTH_BRIDGE 2>/dev/null
  release_work "$WORK"
  [ -n "${KEEP_WORK:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT
rm -rf "$WORK"; mkdir -p "$WORK"

# The pause image: one layer holding /catatonit (static), `catatonit -P` (pause mode), as an OCI
# image layout in a tar, named by the annotations ctr import reads.
make_pause_image() {
  local d=$WORK/pause b=$WORK/pause/blobs/sha256 layer cfg man lsize csize msize
  mkdir -p $d/rootfs $b
  cp /usr/bin/catatonit $d/rootfs/catatonit
  tar --numeric-owner --owner=0 --group=0 --mtime=@0 -C $d/rootfs -cf $d/layer.tar catatonit
  layer=$(sha256sum $d/layer.tar | cut -d' ' -f1); lsize=$(stat -c %s $d/layer.tar); mv $d/layer.tar $b/$layer
  jq -cn --arg l sha256:$layer '{architecture:"amd64",os:"linux",
    config:{Entrypoint:["/catatonit","-P"],WorkingDir:"/"},rootfs:{type:"layers",diff_ids:[$l]}}' >$d/cfg
  cfg=$(sha256sum $d/cfg | cut -d' ' -f1); csize=$(stat -c %s $d/cfg); mv $d/cfg $b/$cfg
  jq -cn --arg c sha256:$cfg --argjson cs $csize --arg l sha256:$layer --argjson ls $lsize '{schemaVersion:2,
    mediaType:"application/vnd.oci.image.manifest.v1+json",
    config:{mediaType:"application/vnd.oci.image.config.v1+json",digest:$c,size:$cs},
    layers:[{mediaType:"application/vnd.oci.image.layer.v1.tar",digest:$l,size:$ls}]}' >$d/man
  man=$(sha256sum $d/man | cut -d' ' -f1); msize=$(stat -c %s $d/man); mv $d/man $b/$man
  jq -cn --arg m sha256:$man --argjson ms $msize --arg ref $PAUSE_REF '{schemaVersion:2,manifests:[{
    mediaType:"application/vnd.oci.image.manifest.v1+json",digest:$m,size:$ms,
    annotations:{"io.containerd.image.name":$ref,"org.opencontainers.image.ref.name":"catatonit"}}]}' >$d/index.json
  echo '{"imageLayoutVersion":"1.0.0"}' >$d/oci-layout
  tar --numeric-owner --owner=0 --group=0 -C $d -cf $WORK/pause.tar oci-layout index.json blobs
}

# A conflist: bridge $2 with host-local in $3 (own data dir), then portmap; as berth's default.
write_conflist() {
  mkdir -p $1
  jq -n --arg br $2 --arg net $3 --arg data $WORK/cni-ipam-$2 '{cniVersion:"1.0.0",name:("bench-"+$br),plugins:[
    {type:"bridge",bridge:$br,isGateway:true,ipMasq:true,hairpinMode:true,
     ipam:{type:"host-local",dataDir:$data,ranges:[[{subnet:($net+".0/24"),gateway:($net+".1")}]],routes:[{dst:"0.0.0.0/0"}]}},
    {type:"portmap",capabilities:{portMappings:true}}]}' >$1/10-bench.conflist
}

make_pause_image
write_conflist $WORK/cni-ctrd $CTRD_BRIDGE 10.124.0
write_conflist $WORK/cni-berth $BERTH_BRIDGE 10.124.1

# --- containerd 1.6 with its CRI plugin, private everything ---
cat >$WORK/containerd.toml <<EOF
version = 2
root = "$WORK/containerd/root"
state = "$WORK/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = "$CTRD_SOCK"
[ttrpc]
  address = "$WORK/containerd.ttrpc.sock"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "$WORK/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_REF"
  netns_mounts_under_state_dir = true
  disable_tcp_service = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  # no CAP_SYS_RESOURCE here (HOST.md): the pause container's oom_score_adj -998 is refused, so no lower than containerd's own
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$CNI_BIN"
    conf_dir = "$WORK/cni-ctrd"
    max_conf_num = 1
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        Root = "$WORK/containerd/runc"
        SystemdCgroup = false
EOF
containerd --config $WORK/containerd.toml >$WORK/containerd.log 2>&1 &
CTRD_PID=$!
for _ in $(seq 100); do [ -S $CTRD_SOCK ] && break; sleep 0.2; done
[ -S $CTRD_SOCK ] || { tail -20 $WORK/containerd.log; echo "containerd did not start"; exit 1; }
ctr -a $CTRD_SOCK -n k8s.io images import $WORK/pause.tar >/dev/null
ctr -a $CTRD_SOCK -n k8s.io images import $FIXTURE >/dev/null
CTRD_VERSION=$(containerd --version | awk '{print $3}')

# --- berthd's CRI endpoint (branch cri) ---
# Started with --cri-socket whatever its usage line says; a berthd that refuses the flag or never
# opens the socket is reported as skipped, with its own words.
BERTH_NOTE=""
cni_flags=()
help=$(bin/berthd --help 2>&1 || true)
grep -q -- '--cni-conf-dir' <<<"$help" && cni_flags+=(--cni-conf-dir $WORK/cni-berth)
grep -q -- '--cni-bin-dir' <<<"$help" && cni_flags+=(--cni-bin-dir $CNI_BIN)
bin/berthd --host unix://$WORK/berth.sock --root $WORK/berth-root --exec-root $WORK/berth-run \
  --cri-socket unix://$BERTH_CRI "${cni_flags[@]}" ${BERTH_ARGS:-} >$WORK/berthd.log 2>&1 &
BERTH_PID=$!
for _ in $(seq 150); do
  { [ -S $WORK/berth.sock ] && [ -S $BERTH_CRI ]; } && break
  kill -0 $BERTH_PID 2>/dev/null || break
  sleep 0.2
done
TARGETS=(containerd=unix://$CTRD_SOCK)
if [ -S $BERTH_CRI ]; then
  DOCKER_HOST=unix://$WORK/berth.sock docker load -i $FIXTURE >/dev/null || echo "berthd: docker load of the fixture failed"
  TARGETS=(berthd=unix://$BERTH_CRI "${TARGETS[@]}")
  [ ${#cni_flags[@]} -eq 0 ] && BERTH_NOTE="berthd lists no --cni-conf-dir: its pods used its own CNI configuration"
else
  kill $BERTH_PID 2>/dev/null || true; wait $BERTH_PID 2>/dev/null || true
  BERTH_PID=""
  BERTH_NOTE="this berthd has no CRI endpoint ($(head -1 $WORK/berthd.log | tr -d '`|')): merge branch cri, then run again"
  echo "berthd: skipped: $BERTH_NOTE"
fi

# --- one client, both runtimes, runs interleaved ---
echo "${TARGETS[*]}: $RUNS runs after $WARMUP warm-ups"
LOG_ROOT=$WORK/pod-logs node bench/cri-client.mjs $WORK/cri.json $RUNS $WARMUP "${TARGETS[@]}"

node - "$WORK" "$OUT" "$CTRD_VERSION" "$BERTH_NOTE" <<'EOF'
const [work, out, ctrdVersion, berthNote] = process.argv.slice(2);
const fs = require('node:fs');
const all = JSON.parse(fs.readFileSync(`${work}/cri.json`, 'utf8'));
const ctrd = all.targets.containerd;
const berth = all.targets.berthd ?? { error: `skipped: ${berthNote}` };
const r = { runs: all.runs, warmup: all.warmup, containerd: { version: ctrdVersion, ...ctrd }, berthd: berth };
if (!berth.error && !ctrd.error) r.ratio = berth.medianMs.total / ctrd.medianMs.total;
fs.writeFileSync(`${out}.json`, JSON.stringify(r, null, 2));
const f = (x) => (x === undefined ? '' : x.toFixed(1));
const cell = (t, k) => (t.error ? (t.error.startsWith('skipped') ? 'skipped' : 'failed') : f(t.medianMs[k]));
const md =
  `# CRI bench ${out.split('/').pop()}\n\n${all.runs} runs after ${all.warmup} warm-ups, the runtimes taking turns; ` +
  `medians in ms; one client and one .proto for both; pods on CNI bridge + host-local + portmap.\n\n` +
  `| figure | berthd | containerd ${ctrdVersion} | target |\n|---|---|---|---|\n` +
  `| **pod start** (RunPodSandbox + CreateContainer + StartContainer) | ${cell(berth, 'total')} | ${cell(ctrd, 'total')} | berthd ≤ ½ containerd |\n` +
  `| … RunPodSandbox | ${cell(berth, 'runPodSandbox')} | ${cell(ctrd, 'runPodSandbox')} | |\n` +
  `| … CreateContainer | ${cell(berth, 'createContainer')} | ${cell(ctrd, 'createContainer')} | |\n` +
  `| … StartContainer | ${cell(berth, 'startContainer')} | ${cell(ctrd, 'startContainer')} | |\n` +
  `| stop + remove container and pod (not in the figure) | ${cell(berth, 'teardown')} | ${cell(ctrd, 'teardown')} | |\n` +
  (r.ratio !== undefined ? `| ratio berthd / containerd (pod start) | ${r.ratio.toFixed(2)} | 1 | ≤ 0.5 |\n` : '') +
  (berth.error ? `\nberthd: ${berth.error}\n` : berthNote ? `\nberthd: ${berthNote}\n` : '') +
  (ctrd.error ? `\ncontainerd: ${ctrd.error}\n` : '');
fs.writeFileSync(`${out}.md`, md);
process.stdout.write(md);
EOF
