# shellcheck shell=bash
# What the packages install, staged like OpenWrt's IDIR, for both package
# formats (build-ipk.sh: .ipk for opkg, build-apk.sh: APK v3 for apk).
# Sourced, never run; expects lib.sh ($ROOT, $B, die) to be sourced first.

# The settings both package scripts take (see their headers): VERSION,
# RELEASE, LUCI, ARCHS, SOURCE_DATE_EPOCH (exported, also as SDE).
package_settings() {  # package_settings [VERSION]
  # shellcheck disable=SC2034  # used by the scripts that source this file
  VERSION=${1:-$(node -p 'require("./package.json").version')}
  # shellcheck disable=SC2034
  RELEASE=${UGATE_PKG_RELEASE:-1}
  # shellcheck disable=SC2034
  LUCI=${UGATE_LUCI_DIR:-$ROOT/luci}
  # shellcheck disable=SC2034
  read -r -a ARCHS <<<"${UGATE_ARCHS:-$("$ROOT/openwrt/toolchain.sh" list | tr '\n' ' ')}"
  SDE=$(source_date_epoch)
  export SOURCE_DATE_EPOCH=$SDE
}

# shellcheck disable=SC2034  # used by the scripts that source this file
# Kept across upgrades (opkg: conffiles; apk: /lib/apk/packages/<name>.conffiles).
UGATE_CONFFILES=(/etc/config/ugate)

# shellcheck disable=SC2034
UGATE_DESC=(
  "Tiny TCP gateway: SOCKS4/4a/5 and HTTP proxy, transparent nftables"
  "capture and SNI routing; relays in the kernel with splice(2). One static"
  "executable (QuickJS-ng bytecode + C), no shared libraries."
)
# shellcheck disable=SC2034
LUCI_DESC=(
  "LuCI support for ugate: settings (listeners, rules, upstreams, transparent"
  "capture) and live status."
)

# ugate for one arch into DEST (the cross-built binary must exist).
stage_ugate() {  # stage_ugate DEST ARCH
  local d=$1 arch=$2
  install -d -m 0755 "$d" "$d/usr" "$d/usr/bin" "$d/etc" "$d/etc/init.d" "$d/etc/config" "$d/etc/uci-defaults"
  install -m 0755 "$B/cross/$arch/ugate" "$d/usr/bin/ugate"
  install -m 0755 "$ROOT/files/etc/init.d/ugate" "$d/etc/init.d/ugate"
  # OpenWrt's INSTALL_CONF mode: it may hold proxy passwords.
  install -m 0600 "$ROOT/files/etc/config/ugate" "$d/etc/config/ugate"
  install -m 0755 "$ROOT/files/etc/uci-defaults/99-ugate" "$d/etc/uci-defaults/99-ugate"
}

# luci/htdocs → /www, luci/root → /; a file keeps its run bit (rpcd plugins,
# uci-defaults), every other file is 0644, every directory 0755.
stage_tree() {  # stage_tree SRC DEST
  local src=$1 dest=$2 rel
  [ -d "$src" ] || return 0
  install -d -m 0755 "$dest"
  while IFS= read -r -d '' rel; do
    rel=${rel#./}
    if [ -d "$src/$rel" ]; then
      install -d -m 0755 "$dest/$rel"
    elif [ -f "$src/$rel" ]; then
      if [ -x "$src/$rel" ]; then install -m 0755 "$src/$rel" "$dest/$rel"; else install -m 0644 "$src/$rel" "$dest/$rel"; fi
    else
      die "$src/$rel: only plain files and directories can be packaged"
    fi
  done < <(cd "$src" && find . -mindepth 1 -print0 | LC_ALL=C sort -z)
}

stage_luci() {  # stage_luci DEST LUCI-DIR
  install -d -m 0755 "$1"
  stage_tree "$2/htdocs" "$1/www"
  stage_tree "$2/root" "$1"
  [ -n "$(find "$1" -type f -print -quit)" ] || die "$2/htdocs and $2/root hold no files: nothing to package for luci-app-ugate"
}

# luci-app-ugate's postinst-pkg (luci.mk's): LuCI's caches go, rpcd rereads
# its ACLs and exec plugins; only on a live router, not in an image build.
write_luci_postinst_pkg() {  # write_luci_postinst_pkg FILE
  cat > "$1" <<'SH'
#!/bin/sh
[ -n "${IPKG_INSTROOT}" ] || {
	rm -f /tmp/luci-indexcache*
	rm -rf /tmp/luci-modulecache/
	killall -HUP rpcd 2>/dev/null
	exit 0
}
SH
  chmod 0755 "$1"
}
