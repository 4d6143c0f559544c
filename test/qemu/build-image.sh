#!/usr/bin/env bash
# Build (or reuse) the x86_64 VM image of the QEMU router test, from Debian
# packages only:
#   build/qemu/vmlinuz        Debian's cloud kernel (linux-image-<ver>-cloud-amd64)
#   build/qemu/base.cpio.gz   initramfs: busybox-static, the kernel modules for
#                             virtio-net, bridge, veth and nftables (REDIRECT, fib, nat)
#                             with /etc/modules.load in dependency order, and the
#                             host's nft with the libraries ldd lists
#   build/qemu/image.info     what went in (versions), one "key=value" a line
# The test's own files (guest/, the .ipk) are not in it: run.sh appends them as
# a second cpio archive on every run.
#
# Debian packages are fetched by name with `apt-get download` through a
# private apt state under build/qemu/apt (the suite and archive URI are read
# from this machine's apt config and /etc/os-release; the machine's apt state
# is only read). apt checks each .deb against the signed index. Downloads are
# kept in build/qemu/dl; the image is rebuilt only when an input changed.
#
#   test/qemu/build-image.sh            build when stale, print the paths
#   test/qemu/build-image.sh --force    rebuild (downloads are kept)
#   test/qemu/build-image.sh --refresh  fetch the packages again, then rebuild
#
# Host tools: apt-get, dpkg-deb, cpio, gzip, flock, nft (Debian packages apt,
# dpkg, cpio, gzip, util-linux, nftables: the image gets this machine's nft).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
Q=$ROOT/build/qemu
DL=$Q/dl
A=$Q/apt

KERNEL_META=linux-image-cloud-amd64
BUSYBOX_PKG=busybox-static
# Modules the guest loads (their dependencies come from modules.dep): the NIC,
# OpenWrt's br-lan bridge, veth for the "internet" namespace, and what ugate's
# ruleset (src/core/nft.ts) needs: nat chains, redirect, fib.
MODULES=(virtio_pci virtio_net bridge veth nf_tables nft_chain_nat nft_nat nft_redir nft_fib_inet nft_fib_ipv4 nft_fib_ipv6)

# say, die, need, debian_uri (shared with build.sh and openwrt/)
# shellcheck source=openwrt/lib.sh
. "$ROOT/openwrt/lib.sh"

force=0 refresh=0
for arg in "$@"; do
  case $arg in
    --force) force=1 ;;
    --refresh) refresh=1 force=1 ;;
    *) die "unknown argument '$arg' (--force, --refresh)" ;;
  esac
done

need apt-get apt
need dpkg-deb dpkg
need cpio cpio
need gzip gzip
need sha256sum coreutils
need nft nftables
need ldd libc-bin

# ---- Debian packages, fetched by name ---------------------------------------------
APT=()
private_apt() {
  [ ${#APT[@]} -gt 0 ] && return 0
  local uri suite keyring=/usr/share/keyrings/debian-archive-keyring.gpg
  uri=$(debian_uri)
  [ -n "$uri" ] || die "cannot find a Debian archive URI in /etc/apt/sources.list{,.d}"
  [ -r "$keyring" ] || die "$keyring missing: apt-get install debian-archive-keyring"
  suite=$( (. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}") )
  suite=${QEMU_DEBIAN_SUITE:-${suite:-bookworm}}
  rm -rf "$A" && mkdir -p "$A/lists/partial" "$A/cache/archives/partial"
  : > "$A/status"
  printf 'deb [signed-by=%s] %s %s main\n' "$keyring" "$uri" "$suite" "$keyring" "$uri" "$suite-updates" > "$A/sources.list"
  APT=(apt-get -q -o "Dir::Etc::SourceList=$A/sources.list" -o Dir::Etc::SourceParts=/dev/null
    -o "Dir::State=$A" -o "Dir::State::Lists=$A/lists" -o "Dir::State::status=$A/status"
    -o "Dir::Cache=$A/cache" -o APT::Sandbox::User=root -o Debug::NoLocking=1)
  say "apt-get update (private lists for $suite and $suite-updates, under build/qemu/apt)"
  "${APT[@]}" update >"$A/update.log" 2>&1 || die "apt-get update failed (see $A/update.log)"
}

download() {  # download PKG[=VER]: into $DL, prints the .deb's path
  private_apt
  (cd "$DL" && "${APT[@]}" download "$1") >>"$A/download.log" 2>&1 \
    || die "cannot download Debian package $1 (see $A/download.log)"
}

deb_of() {  # deb_of PKG: the cached .deb of PKG, if any
  local f
  for f in "$DL/$1"_*.deb; do [ -e "$f" ] && { echo "$f"; return 0; }; done
  return 0
}

mkdir -p "$DL"
# One build at a time (two test runs may start together).
need flock util-linux
exec 9> "$Q/.lock"
flock 9
if [ "$refresh" = 1 ]; then rm -f "$DL"/*.deb; fi
meta=$(deb_of "$KERNEL_META")
[ -n "$meta" ] || { say "apt-get download $KERNEL_META"; download "$KERNEL_META"; meta=$(deb_of "$KERNEL_META"); }
[ -n "$meta" ] || die "no $KERNEL_META .deb in $DL after the download"
# The metapackage depends on exactly one linux-image-<ver>-cloud-amd64.
KPKG=$(dpkg-deb -f "$meta" Depends | tr ',' '\n' | sed -nE 's/^ *(linux-image-[0-9][^ ]*-cloud-amd64)( .*)?$/\1/p' | head -n 1)
[ -n "$KPKG" ] || die "$(basename "$meta"): no linux-image-<ver>-cloud-amd64 in its Depends ($(dpkg-deb -f "$meta" Depends))"
kdeb=$(deb_of "$KPKG")
[ -n "$kdeb" ] || { say "apt-get download $KPKG"; download "$KPKG"; kdeb=$(deb_of "$KPKG"); }
[ -n "$kdeb" ] || die "no $KPKG .deb in $DL after the download"
bdeb=$(deb_of "$BUSYBOX_PKG")
[ -n "$bdeb" ] || { say "apt-get download $BUSYBOX_PKG"; download "$BUSYBOX_PKG"; bdeb=$(deb_of "$BUSYBOX_PKG"); }
[ -n "$bdeb" ] || die "no $BUSYBOX_PKG .deb in $DL after the download"

# ---- up to date? ------------------------------------------------------------------------
NFT=$(command -v nft)
stamp() {
  {
    sha256sum "$0" | cut -d' ' -f1
    basename "$kdeb"
    basename "$bdeb"
    sha256sum "$NFT" | cut -d' ' -f1
    ldd "$NFT" | awk '/=>/ { print $3 }' | xargs -r sha256sum | cut -d' ' -f1
  } | sha256sum | cut -d' ' -f1
}
STAMP=$(stamp)
if [ "$force" = 0 ] && [ -f "$Q/vmlinuz" ] && [ -f "$Q/base.cpio.gz" ] && [ -f "$Q/image.info" ] \
  && [ "$(cat "$Q/image.stamp" 2>/dev/null)" = "$STAMP" ]; then
  echo "$Q/vmlinuz"
  echo "$Q/base.cpio.gz"
  exit 0
fi

# ---- build --------------------------------------------------------------------------------
W=$Q/work
rm -rf "$W" && mkdir -p "$W/kernel" "$W/busybox" "$W/root"
say "unpack $(basename "$kdeb")"
dpkg-deb -x "$kdeb" "$W/kernel"
KVER=${KPKG#linux-image-}
[ -d "$W/kernel/lib/modules/$KVER" ] || die "$(basename "$kdeb") has no lib/modules/$KVER"
vmlinuz=$(ls "$W/kernel/boot/vmlinuz-$KVER" 2>/dev/null) || die "$(basename "$kdeb") has no boot/vmlinuz-$KVER"
dpkg-deb -x "$bdeb" "$W/busybox"
BB=$W/busybox/bin/busybox
[ -x "$BB" ] || die "$(basename "$bdeb") has no bin/busybox"

# modules.dep: the .deb ships none (depmod runs at install); busybox's depmod writes it.
"$BB" depmod -b "$W/kernel" "$KVER" || die "depmod failed"
DEP=$W/kernel/lib/modules/$KVER/modules.dep
[ -s "$DEP" ] || die "depmod wrote no $DEP"

# Load order: every module after its dependencies (modules.dep lists them all).
declare -A seen=()
order=()
mod_path() {  # mod_path NAME: its path in modules.dep ('-' and '_' are the same)
  local n=${1//-/_}
  awk -F: -v n="$n" '{ b = $1; sub(/.*\//, "", b); sub(/\.ko$/, "", b); gsub(/-/, "_", b); if (b == n) { print $1; exit } }' "$DEP"
}
visit() {  # visit PATH
  local p=$1 d
  [ -n "${seen[$p]:-}" ] && return 0
  seen[$p]=1
  for d in $(awk -F: -v p="$p" '$1 == p { print $2; exit }' "$DEP"); do visit "$d"; done
  order+=("$p")
}
for m in "${MODULES[@]}"; do
  p=$(mod_path "$m")
  [ -n "$p" ] || die "module $m is not in $KPKG (modules.dep); is it built in? grep the kernel's config"
  visit "$p"
done

R=$W/root
mkdir -p "$R"/{bin,sbin,usr/bin,usr/sbin,lib/modules,etc,proc,sys,dev,tmp,run,var,root}
ln -s ../run "$R/var/run"
cp "$BB" "$R/bin/busybox"
"$BB" --list-full | while read -r applet; do
  [ -e "$R/$applet" ] || ln -s /bin/busybox "$R/$applet"
done
: > "$R/etc/modules.load"
for p in "${order[@]}"; do
  cp "$W/kernel/lib/modules/$KVER/$p" "$R/lib/modules/"
  echo "/lib/modules/$(basename "$p")" >> "$R/etc/modules.load"
done

# nft from the host, with its libraries (ldd) and the loader.
cp "$NFT" "$R/usr/sbin/nft"
ldd "$NFT" | awk '/=>/ && $3 ~ /^\// { print $3 } /^[ \t]*\/[^ ]*ld-linux/ { print $1 }' | sort -u | while read -r lib; do
  mkdir -p "$R$(dirname "$lib")"
  cp -L "$lib" "$R$lib"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/var:/bin/false\n' > "$R/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$R/etc/group"
printf '127.0.0.1 localhost\n::1 localhost\n' > "$R/etc/hosts"

say "pack base.cpio.gz ($(du -sh "$R" | cut -f1) unpacked, ${#order[@]} modules)"
(cd "$R" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) | gzip -n -6 > "$Q/base.cpio.gz.tmp"
cp "$vmlinuz" "$Q/vmlinuz.tmp"
{
  echo "kernel=$KPKG $(dpkg-deb -f "$kdeb" Version)"
  echo "busybox=$BUSYBOX_PKG $(dpkg-deb -f "$bdeb" Version)"
  echo "nft=$("$NFT" --version)"
  echo "modules=$(for p in "${order[@]}"; do basename "$p" .ko; done | tr '\n' ' ' | sed 's/ $//')"
} > "$Q/image.info"
mv "$Q/base.cpio.gz.tmp" "$Q/base.cpio.gz"
mv "$Q/vmlinuz.tmp" "$Q/vmlinuz"
echo "$STAMP" > "$Q/image.stamp"
rm -rf "$W"
say "build/qemu/base.cpio.gz: $(stat -c %s "$Q/base.cpio.gz") bytes; kernel $KVER"
echo "$Q/vmlinuz"
echo "$Q/base.cpio.gz"
