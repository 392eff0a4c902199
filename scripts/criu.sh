#!/usr/bin/env bash
# Installs CRIU >= 4.2 at /usr/local/sbin/criu and its libcriu at /usr/local/lib/berth (which
# scripts/crun.sh builds crun against). HOST.md: Debian 12's CRIU 3.17 fails on this kernel, and
# 4.1.1 hangs in the parasite cure on 6.18.44; 4.2.1 works. The upstream tarball comes from
# Debian's sid/trixie source packages (scripts/debian-source.sh), built with Debian 12's build
# dependencies. Idempotent: nothing happens when this build is installed and works; the built
# files are kept in /var/cache/berth/criu.
set -euo pipefail
min=4.2
build=3 # bump when the build changes: the cache is rebuilt
cache=/var/cache/berth/criu
lib=/usr/local/lib/berth
have() { [ "$(cat $cache/build 2>/dev/null)" = "$build" ] && [ -e $lib/libcriu.so.2 ] && cmp -s $cache/criu /usr/local/sbin/criu && /usr/local/sbin/criu check >/dev/null 2>&1; }
have && exit 0
here=$(cd "$(dirname "$0")" && pwd)
if [ ! -x $cache/criu ] || [ "$(cat $cache/build 2>/dev/null)" != "$build" ]; then
  . "$here/debian-source.sh"
  apt_ensure protobuf-c-compiler libprotobuf-c-dev libprotobuf-dev protobuf-compiler python3-protobuf libnl-3-dev libnet1-dev libcap-dev libbsd-dev libaio-dev libgnutls28-dev pkg-config make gcc xz-utils
  work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
  tarball=$(debian_orig_tarball criu "$min" "$work")
  tar -xf "$tarball" -C "$work"
  src=$(ls -d "$work"/criu-*/ | head -1)
  make -C "$src" -j"$(nproc)" criu lib >"$work/build.log" 2>&1 || { tail -30 "$work/build.log" >&2; exit 1; }
  rm -rf $cache; mkdir -p $cache/include/criu
  install -m 0755 "$src/criu/criu" $cache/criu
  install -m 0644 "$src/lib/c/libcriu.so" $cache/libcriu.so.2
  install -m 0644 "$src/lib/c/criu.h" "$src/criu/include/version.h" "$src/images/rpc.pb-c.h" $cache/include/criu/
  "$src/criu/criu" --version | awk '/^Version:/ { print $2 }' > $cache/version
  echo "$build" > $cache/build
fi
install -m 0755 $cache/criu /usr/local/sbin/criu
mkdir -p $lib; install -m 0644 $cache/libcriu.so.2 $lib/libcriu.so.2
have || { echo "criu: 'criu check' fails with the built binary" >&2; exit 1; }
