# shellcheck shell=bash
# Shared shell helpers for build.sh and openwrt/*.sh. Sourced, never run.
# Expects bash with `set -euo pipefail`.
#
# Debian sources come through a private apt set-up under build/cross/apt: its
# own sources list (deb-src lines for the suites asked for, the archive URI
# read from this machine's apt config), its own lists, cache and status. The
# machine's apt state is only read, never written.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
B=$ROOT/build
# shellcheck disable=SC2034  # used by the scripts that source this file
JOBS=$(nproc 2>/dev/null || echo 2)

say() { printf '==> %s\n' "$*" >&2; }
die() { printf '%s: error: %s\n' "$(basename "$0")" "$*" >&2; exit 1; }
warn() { printf '\n!!! WARNING: %s\n\n' "$*" >&2; }

need() {  # need COMMAND DEBIAN-PACKAGE
  command -v "$1" >/dev/null 2>&1 || die "'$1' not found: install it with: apt-get install $2"
}

# esbuild: src/main.ts → one ES module, the version baked in. Paths in the
# output are relative to the root, wherever the checkout is.
esbuild_bundle() (  # esbuild_bundle OUTFILE(absolute) VERSION
  cd "$ROOT" && node_modules/.bin/esbuild src/main.ts --bundle --format=esm --platform=neutral --target=es2023 \
    --external:ugate:native --define:__UGATE_VERSION__="\"$2\"" \
    --minify-syntax --log-level=warning --outfile="$1" >&2
)

# The C build: native/build.mk, the one description of sources and flags
# (its head lists the variables), run from the repository's root.
native_make() {  # native_make VAR=VALUE... TARGET...
  need make make
  make -s --no-print-directory -j"$JOBS" -C "$ROOT" -f native/build.mk "$@"
}

# Install Debian packages that are missing (root or sudo).
apt_install() {  # apt_install PACKAGE...
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  say "apt-get install ${missing[*]}"
  "${sudo[@]}" apt-get update -qq >&2 || true
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2 \
    || die "apt-get install ${missing[*]} failed"
}

# The Debian archive's URI as this machine's apt knows it (deb822 or one-line
# format); the security archive is skipped. Same rules as build.sh.
debian_uri() {
  local f uri
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -r "$f" ] || continue
    uri=$(awk '/^URIs:/ { for (i = 2; i <= NF; i++) if ($i !~ /security/) { print $i; exit } }' "$f")
    [ -n "$uri" ] && { echo "$uri"; return; }
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -r "$f" ] || continue
    uri=$(awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { if ($i !~ /security/) { print $i; exit } else break } }' "$f")
    [ -n "$uri" ] && { echo "$uri"; return; }
  done
}

# The private apt: PRIVATE_APT is the apt-get command line, set by apt_private.
PRIVATE_APT=()
APT_DIR=$B/cross/apt
# Suites whose Sources indices the private apt knows. bookworm holds the LLVM
# 14 sources (compiler-rt), trixie the pinned musl; testing and unstable are
# the fall-backs when a pin has left the archive.
APT_SUITES=(bookworm trixie testing unstable)

apt_private() {
  [ ${#PRIVATE_APT[@]} -gt 0 ] && return 0
  need apt-get apt
  local A=$APT_DIR uri keyring=/usr/share/keyrings/debian-archive-keyring.gpg s
  uri=$(debian_uri)
  [ -n "$uri" ] || die "cannot find a Debian archive URI in /etc/apt/sources.list{,.d}"
  [ -r "$keyring" ] || die "$keyring missing: apt-get install debian-archive-keyring"
  mkdir -p "$A/lists/partial" "$A/cache/archives/partial"
  [ -e "$A/status" ] || : > "$A/status"
  : > "$A/sources.list.new"
  for s in "${APT_SUITES[@]}"; do
    printf 'deb-src [signed-by=%s] %s %s main\n' "$keyring" "$uri" "$s" >> "$A/sources.list.new"
  done
  mv "$A/sources.list.new" "$A/sources.list"
  PRIVATE_APT=(-o "Dir::Etc::SourceList=$A/sources.list" -o Dir::Etc::SourceParts=/dev/null
    -o "Dir::State=$A" -o "Dir::State::Lists=$A/lists" -o "Dir::State::status=$A/status"
    -o "Dir::Cache=$A/cache" -o APT::Sandbox::User=root -o Debug::NoLocking=1)
  say "apt-get update (private deb-src lists for ${APT_SUITES[*]}, under build/cross/apt)"
  apt-get -q "${PRIVATE_APT[@]}" update >"$A/update.log" 2>&1 \
    || die "apt-get update of the private source lists failed (see $A/update.log)"
}

# Download a Debian source package (.dsc, orig and debian tarballs) into DIR.
# apt checks every file against the signed Sources index; the caller then
# checks the pinned sha256 sums (check_sha256). Tries PKG=PIN, then, with a
# warning, any version (FETCHED_PIN=0: the pinned sums do not apply).
FETCHED_PIN=1
fetch_debian_source() {  # fetch_debian_source PKG PIN DIR
  local pkg=$1 pin=$2 dir=$3
  apt_private
  rm -rf "$dir" && mkdir -p "$dir"
  FETCHED_PIN=1
  say "apt-get source --download-only $pkg=$pin"
  if (cd "$dir" && apt-get -q "${PRIVATE_APT[@]}" source --download-only "$pkg=$pin") >"$dir/download.log" 2>&1; then
    :
  elif (cd "$dir" && apt-get -q "${PRIVATE_APT[@]}" source --download-only "$pkg") >>"$dir/download.log" 2>&1; then
    FETCHED_PIN=0
    warn "Debian source $pkg $pin is gone from ${APT_SUITES[*]}; using $(basename "$(ls "$dir"/*.dsc)") UNVERIFIED (no pinned sha256). Update the pin (openwrt/toolchain.sh, openwrt/lib.sh)."
  else
    die "cannot download the Debian source package $pkg (tried $pkg=$pin, then any version, from ${APT_SUITES[*]}; see $dir/download.log)"
  fi
}

# sha256 check of a pinned download (skipped after a fall-back download).
check_sha256() {  # check_sha256 FILE SHA256
  [ "$FETCHED_PIN" = 1 ] || return 0
  [ -e "$1" ] || die "$1 missing from the download of the pinned source"
  echo "$2  $1" | sha256sum -c --quiet - >&2 || die "$1: sha256 differs from the pinned $2; refusing it"
}

# A pinned Debian source package unpacked into DEST with debian/patches
# applied (dpkg-source checks the .dsc's checksums), DEST/.debian-version
# naming the version; nothing is done when DEST already holds one. ORIG and
# DEBIAN are the tarballs' file names, checked against their pinned sums.
unpack_debian_source() {  # unpack_debian_source PKG PIN DEST ORIG ORIG-SHA256 DEBIAN DEBIAN-SHA256
  local pkg=$1 pin=$2 dest=$3 dl=$B/cross/dl/$1 dsc v
  [ -f "$dest/.debian-version" ] && return
  need dpkg-source dpkg-dev
  fetch_debian_source "$pkg" "$pin" "$dl"
  check_sha256 "$dl/$4" "$5"
  check_sha256 "$dl/$6" "$7"
  dsc=$(ls "$dl"/*.dsc)
  v=$(sed -n 's/^Version: //p' "$dsc" | head -n 1)
  rm -rf "$dest.tmp" "$dest"
  mkdir -p "$(dirname "$dest")"
  dpkg-source --no-copy -x "$dsc" "$dest.tmp" >"$dl/extract.log" 2>&1 || die "dpkg-source -x $dsc failed (see $dl/extract.log)"
  echo "$v" > "$dest.tmp/.debian-version"
  mv "$dest.tmp" "$dest"
  rm -rf "$dl"
  say "$pkg sources: Debian $pkg $v"
}

# mbedTLS (TLS 1.3 for HBONE and DNS over TLS, X.509 identities, QUIC's crypto): Debian trixie's source
# package, unpacked in build/mbedtls-src. native/build.mk builds it per target
# with our own configuration, native/mbedtls-config.h.
MBEDTLS_PIN=3.6.6-0.1~deb13u1
MBEDTLS_ORIG_SHA256=8fb65fae8dcae5840f793c0a334860a411f884cc537ea290ce1c52bb64ca007a    # mbedtls_3.6.6.orig.tar.bz2
MBEDTLS_DEBIAN_SHA256=210466c522eeebc85cf2f76bd5aef935b4ebac465559cc0a84f9e73a8ed6601c  # mbedtls_3.6.6-0.1~deb13u1.debian.tar.xz
MBEDTLS=$B/mbedtls-src
fetch_mbedtls() {
  unpack_debian_source mbedtls "$MBEDTLS_PIN" "$MBEDTLS" mbedtls_3.6.6.orig.tar.bz2 "$MBEDTLS_ORIG_SHA256" \
    "mbedtls_${MBEDTLS_PIN}.debian.tar.xz" "$MBEDTLS_DEBIAN_SHA256"
}

# Reproducible time stamp: $SOURCE_DATE_EPOCH, else the last commit's time,
# else package.json's mtime (a tree that is not a git checkout).
source_date_epoch() {
  if [ -n "${SOURCE_DATE_EPOCH:-}" ]; then
    echo "$SOURCE_DATE_EPOCH"
  elif git -C "$ROOT" rev-parse --git-dir >/dev/null 2>&1 && git -C "$ROOT" log -1 --format=%ct >/dev/null 2>&1; then
    git -C "$ROOT" log -1 --format=%ct
  else
    stat -c %Y "$ROOT/package.json"
  fi
}
