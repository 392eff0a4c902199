#!/usr/bin/env bash
# Installs berth-stage (src/runtime/berth-stage.c) at /usr/local/lib/berth/berth-stage: the staging
# mount namespace of a container's conmon (berthd --rootfs-mountns, issue #19) in one static
# process, where busybox's unshare, sh and mount took three execs and a shell. berthd uses it when
# it is executable there, else the busybox path (same protocol). Linked static (glibc; it calls
# nothing that needs NSS): no dynamic loader at each container start. The stamp holds the source's
# hash and Debian's libc6 version, so a change of either rebuilds at the next install.sh.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$here/../src/runtime/berth-stage.c
lib=/usr/local/lib/berth
cache=/var/cache/berth/berth-stage
stamp() { echo "$(sha256sum <"$src" | cut -c1-16)-$(dpkg-query -W -f='${Version}' libc6 2>/dev/null)"; }
have() { [ "$(cat $cache/build 2>/dev/null)" = "$(stamp)" ] && cmp -s $cache/berth-stage $lib/berth-stage && $lib/berth-stage --version 2>/dev/null | grep -q '^berth-stage '; }
have && exit 0
if [ "$(cat $cache/build 2>/dev/null)" != "$(stamp)" ] || [ ! -x $cache/berth-stage ]; then
  command -v gcc >/dev/null || { . "$here/debian-source.sh"; apt_ensure gcc libc6-dev; }
  work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
  gcc -std=c11 -O2 -Wall -Wextra -Werror -static-pie -fPIE -o "$work/berth-stage" "$src"
  ! readelf -lW "$work/berth-stage" | grep -q INTERP || { echo "berth-stage: the build is not static" >&2; exit 1; }
  mkdir -p $cache
  install -m 0755 "$work/berth-stage" $cache/berth-stage
  stamp > $cache/build
fi
mkdir -p $lib; install -m 0755 $cache/berth-stage $lib/berth-stage
have || { echo "berth-stage: the built helper does not answer --version" >&2; exit 1; }
