#!/usr/bin/env bash
# Build the OpenWrt packages (opkg .ipk) of ugate and its LuCI app:
#
#   build/ipk/ugate_<ver>-r<rel>_<arch>.ipk     one per arch (openwrt/toolchain.sh)
#   build/ipk/luci-app-ugate_<ver>_all.ipk      from luci/htdocs and luci/root
#
#   openwrt/build-ipk.sh [VERSION]     VERSION defaults to package.json's
#
# Environment:
#   UGATE_ARCHS="x86_64 ..."   archs to package (default: all of toolchain.sh)
#   UGATE_BUNDLE_FRESH=1       build/gen/bundle.c is current: skip ./build.sh
#   UGATE_PKG_RELEASE=N        package release (default 1)
#   UGATE_LUCI_DIR=DIR         the LuCI app's tree (default luci/)
#   UGATE_IPK_OUT=DIR          output directory (default build/ipk)
#   SOURCE_DATE_EPOCH          time stamp of every file (default: the last
#                              commit's time), so the same input gives the
#                              same bytes
#
# The container is what opkg (opkg-lede) reads and what OpenWrt's
# scripts/ipkg-build writes: a gzip'd tar (not ar) holding ./debian-binary,
# ./data.tar.gz and ./control.tar.gz in that order; GNU tar headers (no PAX),
# owner and group 0, names sorted, one mtime, gzip -n.
set -euo pipefail
# shellcheck source=openwrt/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=openwrt/stage.sh
. "$(dirname "$0")/stage.sh"
cd "$ROOT"

package_settings "$@"
OUT=${UGATE_IPK_OUT:-$B/ipk}

# opkg's version: [epoch:]upstream[-revision]; upstream starts with a digit.
case $VERSION in
  [0-9]*) ;;
  *) die "version '$VERSION' must start with a digit" ;;
esac
[[ $VERSION =~ ^[0-9][A-Za-z0-9.+~]*$ ]] || die "version '$VERSION' has characters opkg does not allow in a version ([A-Za-z0-9.+~])"
[[ $RELEASE =~ ^[0-9]+$ ]] || die "release '$RELEASE' is not a number"
PKG_VERSION=$VERSION-r$RELEASE

need tar tar
need gzip gzip
tar --version | head -n 1 | grep -q 'GNU tar' || die "GNU tar is needed (--format=gnu --sort=name)"

# ---- the binaries ----------------------------------------------------------------
if [ "${UGATE_BUNDLE_FRESH:-0}" != 1 ]; then
  say "./build.sh (refreshes build/gen/bundle.c; cached)"
  ./build.sh >&2
fi
pkg_json_version=$(node -p 'require("./package.json").version')
[ "$VERSION" = "$pkg_json_version" ] || warn "packaging version $VERSION, but the binary reports $pkg_json_version (package.json)"
openwrt/toolchain.sh "${ARCHS[@]}"

# ---- helpers ---------------------------------------------------------------------------
TAR=(tar --format=gnu --numeric-owner --owner=0 --group=0 --sort=name "--mtime=@$SDE")

# tar+gzip the contents of DIR (entries ./, ./a, ...) into FILE.gz; the
# uncompressed size goes to TAR_SIZE.
TAR_SIZE=0
tar_dir() {  # tar_dir DIR FILE
  "${TAR[@]}" -C "$1" -cf "$2.tar" .
  TAR_SIZE=$(stat -c %s "$2.tar")
  gzip -n -9 -c "$2.tar" > "$2"
  rm -f "$2.tar"
}

# OpenWrt's standard maintainer scripts (include/package-ipkg.mk): they call
# default_postinst/default_prerm of /lib/functions.sh, which run the
# package's /etc/uci-defaults/*, enable and start (or stop and disable) its
# /etc/init.d/* and source the package's own postinst-pkg/prerm-pkg.
write_scripts() {  # write_scripts CONTROLDIR
  cat > "$1/postinst" <<'EOF'
#!/bin/sh
[ "${IPKG_NO_SCRIPT}" = "1" ] && exit 0
[ -s ${IPKG_INSTROOT}/lib/functions.sh ] || exit 0
. ${IPKG_INSTROOT}/lib/functions.sh
default_postinst $0 $@
EOF
  cat > "$1/prerm" <<'EOF'
#!/bin/sh
[ -s ${IPKG_INSTROOT}/lib/functions.sh ] || exit 0
. ${IPKG_INSTROOT}/lib/functions.sh
default_prerm $0 $@
EOF
  chmod 0755 "$1/postinst" "$1/prerm"
}

# Fields in OpenWrt's order (package-ipkg.mk); Installed-Size is filled in
# once the data tar exists.
write_control() {  # write_control FILE PACKAGE VERSION DEPENDS SECTION ARCH INSTALLED DESCRIPTION...
  local f=$1 pkg=$2 ver=$3 deps=$4 section=$5 arch=$6 size=$7; shift 7
  {
    echo "Package: $pkg"
    echo "Version: $ver"
    [ -z "$deps" ] || echo "Depends: $deps"
    echo "License: Apache-2.0"
    echo "Section: $section"
    echo "Architecture: $arch"
    echo "Installed-Size: $size"
    printf 'Description: %s\n' "$1"
    shift
    local line
    for line in "$@"; do printf ' %s\n' "$line"; done
  } > "$f"
  chmod 0644 "$f"
}

# The outer container: ./debian-binary, ./data.tar.gz, ./control.tar.gz.
pack() {  # pack WORKDIR OUTFILE
  printf '2.0\n' > "$1/debian-binary"
  chmod 0644 "$1/debian-binary" "$1/data.tar.gz" "$1/control.tar.gz"
  "${TAR[@]}" -C "$1" -cf "$1/outer.tar" ./debian-binary ./data.tar.gz ./control.tar.gz
  gzip -n -9 -c "$1/outer.tar" > "$2.tmp"
  mv "$2.tmp" "$2"
}

report() {  # report FILE
  local size
  size=$(stat -c %s "$1")
  say "$(basename "$1"): $size bytes ($((size / 1024)) KiB), sha256 $(sha256sum "$1" | cut -c1-16)…"
}

STAGE=$OUT/.stage
rm -rf "$STAGE"
mkdir -p "$OUT" "$STAGE"
rm -f "$OUT"/ugate_*.ipk "$OUT"/luci-app-ugate_*.ipk

# ---- ugate, per arch ------------------------------------------------------------------
for arch in "${ARCHS[@]}"; do
  w=$STAGE/ugate-$arch
  d=$w/data c=$w/control
  install -d -m 0755 "$c"
  stage_ugate "$d" "$arch"
  tar_dir "$d" "$w/data.tar.gz"
  write_control "$c/control" ugate "$PKG_VERSION" "" net "$arch" "$TAR_SIZE" "${UGATE_DESC[@]}"
  printf '%s\n' "${UGATE_CONFFILES[@]}" > "$c/conffiles"
  chmod 0644 "$c/conffiles"
  write_scripts "$c"
  tar_dir "$c" "$w/control.tar.gz"
  pack "$w" "$OUT/ugate_${PKG_VERSION}_${arch}.ipk"
  report "$OUT/ugate_${PKG_VERSION}_${arch}.ipk"
done

# ---- luci-app-ugate ----------------------------------------------------------------------
w=$STAGE/luci-app-ugate
d=$w/data c=$w/control
install -d -m 0755 "$c"
stage_luci "$d" "$LUCI"
tar_dir "$d" "$w/data.tar.gz"
write_control "$c/control" luci-app-ugate "$VERSION" "luci-base, ugate" luci all "$TAR_SIZE" "${LUCI_DESC[@]}"
write_scripts "$c"
# Sourced by default_postinst (package-ipkg.mk's postinst-pkg).
write_luci_postinst_pkg "$c/postinst-pkg"
tar_dir "$c" "$w/control.tar.gz"
pack "$w" "$OUT/luci-app-ugate_${VERSION}_all.ipk"
report "$OUT/luci-app-ugate_${VERSION}_all.ipk"

rm -rf "$STAGE"
say "packages in ${OUT#"$ROOT"/}/ (SOURCE_DATE_EPOCH=$SDE)"
