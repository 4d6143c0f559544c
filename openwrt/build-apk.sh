#!/usr/bin/env bash
# Build the APK v3 packages (OpenWrt 25.12 and later, apk-tools v3) of ugate
# and its LuCI app, the way OpenWrt's include/package-pack.mk does with
# `apk mkpkg`, but with our own writer (openwrt/apk.ts) and no SDK:
#
#   build/apk/<arch>/ugate-<ver>-r<rel>.apk            one per arch
#   build/apk/<arch>/luci-app-ugate-<ver>-r<rel>.apk   noarch, the same file in each
#
#   openwrt/build-apk.sh [VERSION]     VERSION defaults to package.json's
#
# Environment (as build-ipk.sh): UGATE_ARCHS, UGATE_BUNDLE_FRESH,
# UGATE_PKG_RELEASE, UGATE_LUCI_DIR, SOURCE_DATE_EPOCH, and
#   UGATE_APK_OUT=DIR      output directory (default build/apk)
#   UGATE_APK_KEY=FILE     private key (PEM, EC or RSA) to sign with; without
#                          it the packages are unsigned (apk add --allow-untrusted)
set -euo pipefail
# shellcheck source=openwrt/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=openwrt/stage.sh
. "$(dirname "$0")/stage.sh"
cd "$ROOT"

package_settings "$@"
OUT=${UGATE_APK_OUT:-$B/apk}

# apk's version syntax (apk-package(5)): number{.number}...{letter}{_suffix{number}}...{~hash}{-r#}
[[ $VERSION =~ ^[0-9]+(\.[0-9]+)*[a-z]?(_(alpha|beta|pre|rc|cvs|svn|git|hg|p)[0-9]*)*(~[0-9a-f]+)?$ ]] \
  || die "version '$VERSION' is not an apk version (number{.number}...{letter}{_suffix{number}}...{~hash})"
[[ $RELEASE =~ ^[0-9]+$ ]] || die "release '$RELEASE' is not a number"
PKG_VERSION=$VERSION-r$RELEASE
SIGN=()
if [ -n "${UGATE_APK_KEY:-}" ]; then
  [ -r "$UGATE_APK_KEY" ] || die "UGATE_APK_KEY=$UGATE_APK_KEY: cannot read the key"
  SIGN=(--sign-key "$UGATE_APK_KEY")
fi

if [ "${UGATE_BUNDLE_FRESH:-0}" != 1 ]; then
  say "./build.sh (refreshes build/gen/bundle.c; cached)"
  ./build.sh >&2
fi
openwrt/toolchain.sh "${ARCHS[@]}"

# The writer: TypeScript, bundled for Node by esbuild (a dev dependency).
WRITER=$B/apk.mjs
if [ ! -e "$WRITER" ] || [ openwrt/apk.ts -nt "$WRITER" ]; then
  npx esbuild openwrt/apk.ts --bundle --platform=node --format=esm --log-level=warning --outfile="$WRITER" >&2 \
    || die "esbuild openwrt/apk.ts failed"
fi

# OpenWrt's apk scripts (package-pack.mk): post-install runs default_postinst
# (uci-defaults, enable + start the init scripts) then the package's
# postinst-pkg; post-upgrade is the same with PKG_UPGRADE=1; pre-deinstall
# runs default_prerm (stop + disable) then prerm-pkg.
# shellcheck disable=SC2016  # the scripts' own variables, written literally
write_apk_scripts() {  # write_apk_scripts DIR PACKAGE [POSTINST-PKG]
  local dir=$1 pkg=$2 extra=${3:-}
  {
    echo '#!/bin/sh'
    echo '[ "${IPKG_NO_SCRIPT}" = "1" ] && exit 0'
    echo '[ -s ${IPKG_INSTROOT}/lib/functions.sh ] || exit 0'
    echo '. ${IPKG_INSTROOT}/lib/functions.sh'
    echo 'export root="${IPKG_INSTROOT}"'
    echo "export pkgname=\"$pkg\""
    echo 'add_group_and_user'
    echo 'default_postinst'
    [ -z "$extra" ] || sed '/^\s*#!/d' "$extra"
  } > "$dir/post-install"
  {
    echo '#!/bin/sh'
    echo 'export PKG_UPGRADE=1'
    sed '/^\s*#!/d' "$dir/post-install"
  } > "$dir/post-upgrade"
  {
    echo '#!/bin/sh'
    echo '[ -s ${IPKG_INSTROOT}/lib/functions.sh ] || exit 0'
    echo '. ${IPKG_INSTROOT}/lib/functions.sh'
    echo 'export root="${IPKG_INSTROOT}"'
    echo "export pkgname=\"$pkg\""
    echo 'default_prerm'
  } > "$dir/pre-deinstall"
}

# apk's own package database files, as package-pack.mk writes them into the
# tree: <name>.list (every file and link), <name>.conffiles (kept across
# upgrades) and <name>.conffiles_static ("path sha256" of the shipped copy).
write_apk_db_files() {  # write_apk_db_files TREE PACKAGE CONFFILE...
  local d=$1 pkg=$2 f; shift 2
  local db=$d/lib/apk/packages
  install -d -m 0755 "$d/lib" "$d/lib/apk" "$db"
  (cd "$d" && find . -type f,l -printf '/%P\n' | LC_ALL=C sort) > "$B/.apk-list.tmp"
  install -m 0644 "$B/.apk-list.tmp" "$db/$pkg.list"
  rm -f "$B/.apk-list.tmp"
  [ $# -gt 0 ] || return 0
  printf '%s\n' "$@" > "$db/$pkg.conffiles"
  for f in "$@"; do
    [ -f "$d$f" ] || die "conffile $f is not in the $pkg package"
    echo "$f $(sha256sum < "$d$f" | cut -d' ' -f1)"
  done > "$db/$pkg.conffiles_static"
  chmod 0644 "$db/$pkg.conffiles" "$db/$pkg.conffiles_static"
}

mkpkg() {  # mkpkg TREE SCRIPTDIR OUTFILE --info K:V...
  local tree=$1 s=$2 out=$3; shift 3
  node "$WRITER" --files "$tree" --output "$out" "$@" "${SIGN[@]}" \
    --script "post-install:$s/post-install" --script "post-upgrade:$s/post-upgrade" \
    --script "pre-deinstall:$s/pre-deinstall" || die "writing $out failed"
  local size
  size=$(stat -c %s "$out")
  say "${out#"$OUT"/}: $size bytes ($((size / 1024)) KiB), sha256 $(sha256sum "$out" | cut -c1-16)…"
}

# make's $(strip): the description on one line.
oneline() { echo "$*"; }

STAGE=$OUT/.stage
rm -rf "$STAGE" "$OUT"
mkdir -p "$OUT" "$STAGE"
COMMON=(--info "license:Apache-2.0" --info "url:" --info "maintainer:")

w=$STAGE/luci-app-ugate
stage_luci "$w/data" "$LUCI"
write_apk_db_files "$w/data" luci-app-ugate
write_luci_postinst_pkg "$w/postinst-pkg"
write_apk_scripts "$w" luci-app-ugate "$w/postinst-pkg"
LUCI_APK=$STAGE/luci-app-ugate-$PKG_VERSION.apk
mkpkg "$w/data" "$w" "$LUCI_APK" --info "name:luci-app-ugate" --info "version:$PKG_VERSION" \
  --info "description:$(oneline "${LUCI_DESC[@]}")" --info "arch:noarch" "${COMMON[@]}" \
  --info "origin:package/luci-app-ugate" --info "depends:luci-base ugate"

for arch in "${ARCHS[@]}"; do
  w=$STAGE/ugate-$arch
  stage_ugate "$w/data" "$arch"
  write_apk_db_files "$w/data" ugate "${UGATE_CONFFILES[@]}"
  write_apk_scripts "$w" ugate
  mkdir -p "$OUT/$arch"
  mkpkg "$w/data" "$w" "$OUT/$arch/ugate-$PKG_VERSION.apk" --info "name:ugate" --info "version:$PKG_VERSION" \
    --info "description:$(oneline "${UGATE_DESC[@]}")" --info "arch:$arch" "${COMMON[@]}" \
    --info "origin:package/ugate" --info "depends:"
  cp "$LUCI_APK" "$OUT/$arch/"
done

rm -rf "$STAGE"
say "APK v3 packages in ${OUT#"$ROOT"/}/<arch>/ (SOURCE_DATE_EPOCH=$SDE${SIGN:+, signed with $UGATE_APK_KEY})"
