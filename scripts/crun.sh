#!/usr/bin/env bash
# Installs crun built with CRIU at /usr/local/lib/berth/crun, which berthd prefers to Debian's
# crun (built without CRIU: `crun checkpoint` is an unknown command), so a container started with
# the default runtime can be checkpointed. The source is Debian's (sid or trixie, newest that
# downloads), built against the libcriu of scripts/criu.sh (run it first), which crun dlopens:
# the binary carries an RPATH to /usr/local/lib/berth so it never loads Debian's libcriu 3.17.
# Idempotent; the built binary is kept in /var/cache/berth/crun.
set -euo pipefail
min=1.21
build=1 # bump when the build changes
cache=/var/cache/berth/crun
criu=/var/cache/berth/criu
lib=/usr/local/lib/berth
have() { [ "$(cat $cache/build 2>/dev/null)" = "$build-$(cat $criu/build 2>/dev/null)" ] && cmp -s $cache/crun $lib/crun && $lib/crun --version 2>/dev/null | grep -q '+CRIU'; }
have && exit 0
here=$(cd "$(dirname "$0")" && pwd)
[ -e $criu/include/criu/criu.h ] || { echo "crun: scripts/criu.sh must run first" >&2; exit 1; }
if [ "$(cat $cache/build 2>/dev/null)" != "$build-$(cat $criu/build)" ]; then
  . "$here/debian-source.sh"
  apt_ensure libyajl-dev libseccomp-dev libcap-dev gperf autoconf automake libtool pkg-config python3 make gcc
  work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
  tarball=$(debian_orig_tarball crun "$min" "$work")
  tar -xf "$tarball" -C "$work"
  src=$(ls -d "$work"/crun-*/ | head -1)
  mkdir -p "$work/pc"
  printf 'Name: CRIU\nDescription: libcriu of scripts/criu.sh\nVersion: %s\nLibs: -L%s -lcriu\nCflags: -I%s/include\n' "$(cat $criu/version)" "$lib" "$criu" > "$work/pc/criu.pc"
  # crun's criu.c includes <criu/criu.h>: our headers must come before Debian's /usr/include/criu (3.17)
  (cd "$src" && PKG_CONFIG_PATH="$work/pc" CPPFLAGS="-I$criu/include" LDFLAGS="-Wl,--disable-new-dtags,-rpath,$lib" \
    ./configure --disable-systemd --prefix=/usr/local >"$work/configure.log" 2>&1) || { tail -30 "$work/configure.log" >&2; exit 1; }
  grep -q '^#define HAVE_CRIU 1' "$src/config.h" || { echo "crun: configure found no CRIU" >&2; exit 1; }
  make -C "$src" -j"$(nproc)" >"$work/build.log" 2>&1 || { tail -30 "$work/build.log" >&2; exit 1; }
  rm -rf $cache; mkdir -p $cache
  install -m 0755 "$src/crun" $cache/crun
  echo "$build-$(cat $criu/build)" > $cache/build
fi
mkdir -p $lib; install -m 0755 $cache/crun $lib/crun
have || { echo "crun: the built crun does not report +CRIU" >&2; exit 1; }
