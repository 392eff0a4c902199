#!/usr/bin/env bash
# Sourced by criu.sh and crun.sh. apt_ensure PKG... installs the packages that are missing.
apt_ensure() {
  local missing=() p
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if [ ${#missing[@]} -gt 0 ]; then apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null; fi
}

# debian_orig_tarball PACKAGE MIN_VERSION DEST_DIR prints the path
# of the newest upstream tarball (`.orig.tar.*`) of PACKAGE >= MIN_VERSION found in Debian's
# sid or trixie source lists, downloaded into DEST_DIR. The mirror is the machine's own (from its
# apt sources, never written into the repo); a private list dir keeps the system's apt untouched.
# A mirror may list a version whose files are gone: each candidate is tried, newest first.
debian_orig_tarball() {
  local pkg=$1 min=$2 dest=$3 mirror lists v
  mirror=$(awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
  [ -n "$mirror" ] || mirror=$(awk '$1 == "deb" { print $2; exit }' /etc/apt/sources.list 2>/dev/null || true)
  [ -n "$mirror" ] || { echo "$pkg: no Debian mirror in the apt sources" >&2; return 1; }
  lists="$dest/apt"
  mkdir -p "$lists/lists/partial"
  printf 'deb-src %s sid main\ndeb-src %s trixie main\n' "$mirror" "$mirror" > "$lists/sources.list"
  local opts=(-o Dir::Etc::SourceList="$lists/sources.list" -o Dir::Etc::SourceParts=/dev/null -o Dir::State::Lists="$lists/lists" -o APT::Sandbox::User=root)
  apt-get "${opts[@]}" update -qq >/dev/null 2>&1 || true
  for v in $(apt-cache "${opts[@]}" showsrc "$pkg" 2>/dev/null | awk '/^Version:/ { print $2 }' | sort -rV | uniq); do
    dpkg --compare-versions "$v" ge "$min" || continue
    (cd "$dest" && apt-get "${opts[@]}" source --download-only "$pkg=$v" >/dev/null 2>&1 || true) # the .dsc or .debian.tar may be gone; the orig tarball is what counts
    local up=${v%-*}; up=${up#*:}
    local t; t=$(ls "$dest/${pkg}_${up}".orig.tar.* 2>/dev/null | grep -v '\.asc$' | head -1)
    [ -n "$t" ] && { echo "$t"; return 0; }
  done
  echo "$pkg: no source tarball >= $min could be downloaded from $mirror (sid, trixie)" >&2
  return 1
}
