#!/usr/bin/env bash
# Installs a conmon that starts cheaply at /usr/local/lib/berth/conmon, which berthd prefers to
# Debian's. Every container start and exec runs conmon once; Debian 12's conmon links glib and
# libsystemd (journald logging, which berth never asks for), and libsystemd pulls in libgcrypt,
# liblzma, libzstd, liblz4 and libgpg-error: 12 shared objects to map and relocate at each exec
# (`conmon --version` ~12 ms of CPU on a quiet machine here, /bin/true ~4 ms). This one is built
# from Debian's source (sid or trixie, newest that downloads) without systemd and without
# seccomp-notify (neither is used by berth; Debian's is built without the latter too), linked
# static-pie: glib, pcre2 and glibc inside, no dynamic loader, still position-independent.
# A statically linked library gets no security updates of its own: the build stamp carries the
# versions of Debian's libc6, libglib2.0-0 and libpcre2-8-0, so the next run after an upgrade of
# any of them rebuilds. (Static glibc: conmon calls nothing that needs NSS or iconv modules.)
# Idempotent; the built binary is kept in /var/cache/berth/conmon.
set -euo pipefail
min=2.1.6
build=1 # bump when the build changes
cache=/var/cache/berth/conmon
lib=/usr/local/lib/berth
stamp() { echo "$build-$(dpkg-query -W -f='${Version}/' libc6 libglib2.0-0 libpcre2-8-0 2>/dev/null)"; }
have() { [ "$(cat $cache/build 2>/dev/null)" = "$(stamp)" ] && cmp -s $cache/conmon $lib/conmon && $lib/conmon --version 2>/dev/null | grep -q '^conmon version'; }
have && exit 0
here=$(cd "$(dirname "$0")" && pwd)
if [ "$(cat $cache/build 2>/dev/null)" != "$(stamp)" ]; then
  . "$here/debian-source.sh"
  apt_ensure libglib2.0-dev libpcre2-dev libc6-dev pkg-config make gcc binutils xz-utils
  work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
  tarball=$(debian_orig_tarball conmon "$min" "$work")
  tar -xf "$tarball" -C "$work"
  src=$(ls -d "$work"/conmon-*/ | head -1)
  # conmon's Makefile turns journald and seccomp-notify on when pkg-config finds their libraries:
  # a pkg-config that finds neither, and a seccomp probe that says no
  printf '#!/bin/sh\ncase "$*" in *libsystemd*|*libseccomp*) exit 1;; esac\nexec pkg-config "$@"\n' > "$work/pkg-config"
  chmod +x "$work/pkg-config"
  printf '#!/bin/sh\n' > "$src/hack/seccomp-notify.sh"
  make -C "$src" bin/conmon PKG_CONFIG="$work/pkg-config" GIT_COMMIT=unknown \
    CFLAGS="-std=c99 -O2 -Wall -Wextra" LDFLAGS="-static-pie" \
    LIBS="$(pkg-config --static --libs glib-2.0)" >"$work/build.log" 2>&1 || { tail -30 "$work/build.log" >&2; exit 1; }
  readelf -lW "$src/bin/conmon" > "$work/elf"
  ! grep -q INTERP "$work/elf" || { echo "conmon: the build is not static" >&2; exit 1; }
  rm -rf $cache; mkdir -p $cache
  install -m 0755 "$src/bin/conmon" $cache/conmon
  stamp > $cache/build
fi
mkdir -p $lib; install -m 0755 $cache/conmon $lib/conmon
have || { echo "conmon: the built conmon does not answer --version" >&2; exit 1; }
