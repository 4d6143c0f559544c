#!/usr/bin/env bash
# bench/aead.sh — each TLS 1.3 AEAD's cost per 16 KiB record with the mbedTLS
# ugate links, per arch (bench/aead.c; not a test).
#
#   bench/aead.sh [host] [ARCH...|all]
#
# host (the default): the musl build of ./build.sh, run here. ARCH: an
# OpenWrt arch of openwrt/toolchain.sh (`all`: every one), built there
# (--also aead-bench) and run under qemu-user: the emulator's speed is not
# the router's, so only the ratios between the ciphers of one arch mean
# anything there. Prints one table: CPU seconds per GB (sealed and opened)
# of AES-128-GCM, AES-256-GCM and ChaCha20-Poly1305, how many times faster
# ChaCha20-Poly1305 is than AES-128-GCM, and whether AES and GCM's multiply
# ran as CPU instructions.
#
# Environment: BENCH_SECONDS=1 (CPU seconds per cipher and direction).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_SECONDS=${BENCH_SECONDS:-1}
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
[[ $BENCH_SECONDS =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "BENCH_SECONDS: '$BENCH_SECONDS' is not a number of seconds"
TARGETS=("$@")
[[ ${#TARGETS[@]} -gt 0 ]] || TARGETS=(host)
if [[ " ${TARGETS[*]} " == *" all "* ]]; then
  read -r -a TARGETS <<<"host $("$ROOT/openwrt/toolchain.sh" list | tr '\n' ' ')"
fi

run_one() {  # TARGET: aead-bench's output
  local bin qemu=()
  if [[ $1 == host ]]; then
    [[ -f $B/qjs-src/.version ]] || die "build/qjs-src missing: run ./build.sh first"
    need musl-gcc musl-tools
    # The make call of ./build.sh's musl build: its objects serve as they are.
    native_make O="$B/obj/musl" CC=musl-gcc QJS="$B/qjs-src" MBEDTLS="$MBEDTLS" "$B/obj/musl/aead-bench" ||
      die "cannot build aead-bench"
    bin=$B/obj/musl/aead-bench
  else
    qemu=("$("$ROOT/openwrt/toolchain.sh" qemu "$1")") || die "unknown arch '$1'"
    "$ROOT/openwrt/toolchain.sh" --also aead-bench "$1" >&2 || die "$1: cross build failed"
    bin=$B/cross/$1/obj/aead-bench
  fi
  "${qemu[@]}" "$bin" "$BENCH_SECONDS" || die "$1: aead-bench failed"
}

REPORT=$TMP/report.md
{
  echo "bench/aead.sh: $(machine); $BENCH_SECONDS CPU s per cipher and direction; ugate rev $(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo '?')."
  echo
  echo "| target | run | AES-128-GCM s/GB | AES-256-GCM s/GB | ChaCha20-Poly1305 s/GB | ChaCha20 ÷ AES-128 speed | AES instructions |"
  echo "|---|---|---:|---:|---:|---:|---|"
} >"$REPORT"
for x in "${TARGETS[@]}"; do
  log "aead-bench: $x"
  res=$(run_one "$x")
  log "$res"
  how=native
  [[ $x == host ]] || how='qemu-user'
  awk -v x="$x" -v how="$how" '
    / CPU s\/GB / { s[$1] = $NF }
    /^AES and GCM/ { hw = $NF }
    END { printf "| %s | %s | %.2f | %.2f | %.2f | %.2f | %s |\n", x, how, s["AES-128-GCM"], s["AES-256-GCM"],
      s["ChaCha20-Poly1305"], s["AES-128-GCM"] / s["ChaCha20-Poly1305"], hw }' <<<"$res" >>"$REPORT"
done
echo
cat "$REPORT"
