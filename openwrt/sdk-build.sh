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
#   QJS             QuickJS-ng sources (default build/qjs-src)
#
# Steps: esbuild bundles src/ (host Node.js >= 20, devDependencies from
# npm ci), jsc compiles the bundle to bytecode, the target compiler builds
# QuickJS-ng + native/*.c + the bytecode into one static, stripped binary.
# QuickJS-ng bytecode is written in the host's byte order and read in the
# target's (no swapping): for a big-endian target the bytecode must come from
# a jsc built for the target, run under qemu-user on the build host.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=${1:?usage: openwrt/sdk-build.sh OUTDIR}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
CC=${UGATE_CC:?set UGATE_CC to the target compiler}
CFLAGS=${UGATE_CFLAGS:-}
LDFLAGS=${UGATE_LDFLAGS:-}
HOSTCC=${UGATE_HOSTCC:-cc}
ENDIAN=${UGATE_ENDIAN:-little}
QJS=${QJS:-$ROOT/build/qjs-src}
QJS_SRCS=(quickjs libregexp libunicode dtoa)

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'sdk-build.sh: error: %s\n' "$*" >&2; exit 1; }

[ -f "$QJS/quickjs.c" ] || die "no QuickJS-ng sources in $QJS (set QJS)"
command -v node >/dev/null 2>&1 || die "host Node.js >= 20 is needed to bundle src/ (esbuild)"
[ "$(node -p 'process.versions.node.split(".")[0]')" -ge 20 ] || die "Node.js $(node --version) is too old (>= 20)"

# 1. bundle (the flags of build.sh's bundle step)
if [ ! -x node_modules/.bin/esbuild ]; then
  say "npm ci"
  npm ci --no-audit --no-fund --loglevel=error >&2
fi
VERSION=$(node -p 'require("./package.json").version')
say "esbuild src/main.ts"
node_modules/.bin/esbuild src/main.ts --bundle --format=esm --platform=neutral --target=es2023 \
  --external:ugate:native --define:__UGATE_VERSION__="\"$VERSION\"" \
  --minify-syntax --log-level=warning --outfile="$OUT/ugate.js" >&2

# 2. bytecode
qjs_c() { local f; for f in "${QJS_SRCS[@]}"; do echo "$QJS/$f.c"; done; }
# shellcheck disable=SC2046
case $ENDIAN in
  little)
    say "host jsc ($HOSTCC)"
    $HOSTCC -O2 -D_GNU_SOURCE -I"$QJS" -o "$OUT/jsc" native/tools/jsc.c $(qjs_c) -lm -lpthread
    "$OUT/jsc" "$OUT/ugate.js" "$OUT/bundle.c"
    ;;
  big)
    q=${UGATE_QEMU:-}
    [ -n "$q" ] && command -v "$q" >/dev/null 2>&1 || q="${q%-static}-static"
    command -v "$q" >/dev/null 2>&1 \
      || die "big-endian target: QuickJS-ng bytecode must be written by a big-endian jsc; install qemu-user on the build host and set UGATE_QEMU (tried ${UGATE_QEMU:-<unset>} and $q)"
    say "target jsc under $q (big-endian bytecode)"
    # shellcheck disable=SC2086
    $CC $CFLAGS -D_GNU_SOURCE -I"$QJS" $LDFLAGS -static -o "$OUT/jsc" native/tools/jsc.c $(qjs_c) -lm -lpthread
    "$q" "$OUT/jsc" "$OUT/ugate.js" "$OUT/bundle.c"
    ;;
  *) die "UGATE_ENDIAN must be little or big, not '$ENDIAN'" ;;
esac

# 3. the binary
say "compile and link ugate ($CC)"
objs=()
for f in $(qjs_c); do
  o=$OUT/qjs-$(basename "${f%.c}").o
  # shellcheck disable=SC2086
  $CC $CFLAGS -Os -DNDEBUG -D_GNU_SOURCE -ffunction-sections -fdata-sections -w -c "$f" -o "$o"
  objs+=("$o")
done
for f in native/*.c "$OUT/bundle.c"; do
  o=$OUT/$(basename "${f%.c}").o
  # shellcheck disable=SC2086
  $CC $CFLAGS -Os -DNDEBUG -ffunction-sections -fdata-sections -I"$QJS" -Wall -Wextra -c "$f" -o "$o"
  objs+=("$o")
done
# shellcheck disable=SC2086
$CC $CFLAGS $LDFLAGS -static -s -Wl,--gc-sections -o "$OUT/ugate" "${objs[@]}" -lm -lpthread
say "$OUT/ugate: $(stat -c %s "$OUT/ugate") bytes"
