#!/usr/bin/env bash
# Builds the test fixture image busybox:latest offline, from Debian's busybox-static, as a
# docker-archive tar (loadable by `docker load`, `berth load`, podman). Deterministic: the same
# busybox binary gives the same image id. Idempotent: skips when the output is up to date.
#   scripts/fixture-busybox.sh [out.tar]   (default /var/cache/berth/fixtures/busybox.tar)
set -euo pipefail
OUT=${1:-/var/cache/berth/fixtures/busybox.tar}
BB=/bin/busybox
[ -x $BB ] || { echo "busybox-static is not installed" >&2; exit 1; }
if [ -f "$OUT" ] && [ "$OUT" -nt $BB ] && [ "$OUT" -nt "$0" ]; then echo "$OUT"; exit 0; fi
mkdir -p "$(dirname "$OUT")"
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
R=$W/rootfs
mkdir -p $R/{bin,sbin,usr/bin,usr/sbin,etc,tmp,root,home/app,proc,sys,dev,var/www}
cp $BB $R/bin/busybox
for a in $($BB --list-full); do
  [ "$a" = bin/busybox ] && continue
  mkdir -p "$R/$(dirname "$a")"
  ln -sf /bin/busybox "$R/$a"
done
cat > $R/etc/passwd <<'P'
root:x:0:0:root:/root:/bin/sh
app:x:1000:1000:app:/home/app:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
P
cat > $R/etc/group <<'G'
root:x:0:
app:x:1000:
nogroup:x:65534:
G
chmod 1777 $R/tmp; chmod 700 $R/root; chown 1000:1000 $R/home/app
mkdir -p $W/img
tar --sort=name --mtime=@0 --numeric-owner --format=posix --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime -C $R -cf $W/layer.tar .
LH=$(sha256sum $W/layer.tar | cut -d' ' -f1)
mkdir -p $W/img/blobs/sha256
mv $W/layer.tar $W/img/blobs/sha256/$LH
CREATED=2024-01-01T00:00:00Z
jq -cn --arg d "sha256:$LH" --arg c $CREATED '{architecture:"amd64",os:"linux",created:$c,
  config:{Env:["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],Cmd:["sh"]},
  rootfs:{type:"layers",diff_ids:[$d]},
  history:[{created:$c,created_by:"berth fixture: Debian busybox-static rootfs"},{created:$c,created_by:"CMD [\"sh\"]",empty_layer:true}]}' \
  | tr -d '\n' > $W/config.json
CH=$(sha256sum $W/config.json | cut -d' ' -f1)
mv $W/config.json $W/img/blobs/sha256/$CH
jq -cn --arg c "blobs/sha256/$CH" --arg l "blobs/sha256/$LH" '[{Config:$c,RepoTags:["busybox:latest"],Layers:[$l]}]' > $W/img/manifest.json
jq -cn --arg h "$CH" '{busybox:{latest:$h}}' > $W/img/repositories
tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C $W/img -cf "$OUT.tmp" .
mv "$OUT.tmp" "$OUT"
echo "$OUT"
