#!/usr/bin/env bash
# Installs CRIU 4.1.1 at /usr/local/sbin/criu (HOST.md: Debian 12's CRIU 3.17 fails on this
# kernel): the upstream tarball of Debian trixie's source package, built with Debian 12's build
# dependencies. The mirror is taken from the machine's own apt sources (never written into the
# repo), with one patch (scripts/criu-sockopts.patch). Idempotent: nothing happens when this
# build is installed and works; the built binary is kept in /var/cache/berth/criu.
set -euo pipefail
want=4.1.1
build=2 # bump when the patches change: the cached binary is rebuilt
have() { [ "$(cat /var/cache/berth/criu/build 2>/dev/null)" = "$want-$build" ] && /usr/local/sbin/criu --version 2>/dev/null | grep -q "Version: 4\." && /usr/local/sbin/criu check >/dev/null 2>&1; }
have && exit 0
cache=/var/cache/berth/criu
here=$(cd "$(dirname "$0")" && pwd)
if [ ! -x $cache/criu-$want ] || [ "$(cat $cache/build 2>/dev/null)" != "$want-$build" ]; then
  deps=(protobuf-c-compiler libprotobuf-c-dev libprotobuf-dev protobuf-compiler python3-protobuf libnl-3-dev libnet1-dev libcap-dev libbsd-dev libaio-dev libgnutls28-dev pkg-config make gcc)
  missing=(); for p in "${deps[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if [ ${#missing[@]} -gt 0 ]; then apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null; fi
  work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
  mirror=$(awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
  [ -n "$mirror" ] || mirror=$(awk '$1 == "deb" { print $2; exit }' /etc/apt/sources.list 2>/dev/null || true)
  [ -n "$mirror" ] || { echo "criu: no Debian mirror in the apt sources" >&2; exit 1; }
  mkdir -p "$work/lists/partial"
  echo "deb-src $mirror trixie main" > "$work/sources.list"
  apt_opts=(-o Dir::Etc::SourceList="$work/sources.list" -o Dir::Etc::SourceParts=/dev/null -o Dir::State::Lists="$work/lists")
  apt-get "${apt_opts[@]}" update -qq
  (cd "$work" && apt-get "${apt_opts[@]}" source --download-only criu >/dev/null 2>&1 || true) # the .dsc may be gone; the tarball is what counts
  tarball=$(ls "$work"/criu_${want}.orig.tar.* 2>/dev/null | head -1)
  [ -n "$tarball" ] || { echo "criu: could not download criu_${want}.orig.tar.* from $mirror" >&2; exit 1; }
  tar -xf "$tarball" -C "$work"
  # kernels >= 6.16 refuse SO_PASSCRED/SO_PASSSEC on TCP/UDP sockets (EOPNOTSUPP): CRIU 4.1.1
  # then fails to dump any container with an open inet socket
  patch -d "$work/criu-$want" -p1 < "$here/criu-sockopts.patch" >/dev/null
  make -C "$work/criu-$want" -j"$(nproc)" criu >"$work/build.log" 2>&1 || { tail -30 "$work/build.log" >&2; exit 1; }
  mkdir -p $cache
  install -m 0755 "$work/criu-$want/criu/criu" $cache/criu-$want
  echo "$want-$build" > $cache/build
fi
install -m 0755 $cache/criu-$want /usr/local/sbin/criu
have || { echo "criu: 'criu check' fails with the built binary" >&2; exit 1; }
