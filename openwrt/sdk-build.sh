#!/usr/bin/env bash
# Build ugate with an OpenWrt SDK's cross compiler (called by openwrt/Makefile's
# Build/Compile; usable by hand with any static-capable cross gcc/clang).
#
#   openwrt/sdk-build.sh OUTDIR        → OUTDIR/ugate
#
# Environment (the Makefile passes the SDK's values):
#   UGATE_CC        target C compiler ($(TARGET_CC)); must link -static
#   UGATE_CFLAGS    target flags ($(TARGET_CFLAGS): arch, float ABI, -Os)
#   UGATE_LDFLAGS   target link flags ($(TARGET_LDFLAGS))
#   UGATE_HOSTCC    host C compiler, for jsc (default cc)
#   UGATE_ENDIAN    little | big (CONFIG_BIG_ENDIAN)
#   UGATE_QEMU      big endian only: the qemu-user binary that runs target
#                   code on the build host (e.g. qemu-mips-static)
#   UGATE_AR        target archiver ($(TARGET_AR); default ar)
#   QJS             QuickJS-ng sources (default build/qjs-src)
#   MBEDTLS         mbedTLS sources (default build/mbedtls-src)
#
# Steps: esbuild bundles src/ (host Node.js >= 20, devDependencies from
# npm ci), jsc compiles the bundle to bytecode, the target compiler builds
# QuickJS-ng + native/*.c + the bytecode into one static, stripped binary
# (native/build.mk: the sources and flags of every build; needs GNU make).
# QuickJS-ng bytecode is written in the host's byte order and read in the
# target's (no swapping): for a big-endian target the bytecode must come from
# a jsc built for the target, run under qemu-user on the build host.
set -euo pipefail
# say, die, need, esbuild_bundle, native_make; ROOT
# shellcheck source=openwrt/lib.sh
. "$(dirname "$0")/lib.sh"
cd "$ROOT"
OUT=${1:?usage: openwrt/sdk-build.sh OUTDIR}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
CC=${UGATE_CC:?set UGATE_CC to the target compiler}
CFLAGS=${UGATE_CFLAGS:-}
LDFLAGS=${UGATE_LDFLAGS:-}
HOSTCC=${UGATE_HOSTCC:-cc}
ENDIAN=${UGATE_ENDIAN:-little}
AR=${UGATE_AR:-ar}
QJS=${QJS:-$ROOT/build/qjs-src}
MBEDTLS=${MBEDTLS:-$ROOT/build/mbedtls-src}

[ -f "$QJS/quickjs.c" ] || die "no QuickJS-ng sources in $QJS (set QJS)"
[ -f "$MBEDTLS/library/aes.c" ] || die "no mbedTLS sources in $MBEDTLS (set MBEDTLS)"
command -v node >/dev/null 2>&1 || die "host Node.js >= 20 is needed to bundle src/ (esbuild)"
[ "$(node -p 'process.versions.node.split(".")[0]')" -ge 20 ] || die "Node.js $(node --version) is too old (>= 20)"

# 1. bundle
if [ ! -x node_modules/.bin/esbuild ]; then
  say "npm ci"
  npm ci --no-audit --no-fund --loglevel=error >&2
fi
say "esbuild src/main.ts"
esbuild_bundle "$OUT/ugate.js" "$(node -p 'require("./package.json").version')" || die "esbuild failed"

# 2. bytecode, 3. the binary: native/build.mk, as for every other build.
target=(O="$OUT/obj" CC="$CC" AR="$AR" CFLAGS="$CFLAGS" LDFLAGS="$LDFLAGS" QJS="$QJS" MBEDTLS="$MBEDTLS" BIN="$OUT/ugate" BUNDLE="$OUT/bundle.c")
case $ENDIAN in
  little)
    say "host jsc ($HOSTCC)"
    native_make O="$OUT/host" CC="$HOSTCC" PROFILE=tool QJS="$QJS" JS="$OUT/ugate.js" BUNDLE="$OUT/bundle.c" \
      "$OUT/bundle.c" || die "host jsc failed"
    ;;
  big)
    q=${UGATE_QEMU:-}
    [ -n "$q" ] && command -v "$q" >/dev/null 2>&1 || q="${q%-static}-static"
    command -v "$q" >/dev/null 2>&1 \
      || die "big-endian target: QuickJS-ng bytecode must be written by a big-endian jsc; install qemu-user on the build host and set UGATE_QEMU (tried ${UGATE_QEMU:-<unset>} and $q)"
    say "target jsc under $q (big-endian bytecode)"
    target+=(JS="$OUT/ugate.js" EMU="$q")
    ;;
  *) die "UGATE_ENDIAN must be little or big, not '$ENDIAN'" ;;
esac
say "compile and link ugate ($CC)"
native_make "${target[@]}" "$OUT/ugate" || die "build failed"
say "$OUT/ugate: $(stat -c %s "$OUT/ugate") bytes"
