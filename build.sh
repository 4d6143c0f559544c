#!/usr/bin/env bash
# Build ugate: one static, stripped executable build/ugate.
#   ./build.sh          build/ugate (musl, static)
#   ./build.sh asan     build/ugate-asan (glibc, AddressSanitizer + UBSan), for the tests
#   ./build.sh all      both
#   ./build.sh ipk      OpenWrt packages for every arch in build/ipk (openwrt/build-ipk.sh)
#   ./build.sh packages the .ipk files and the APK v3 ones in build/apk (openwrt/build-apk.sh)
#   ./build.sh deps     install what building and testing need (Debian packages, npm ci)
#   ./build.sh clean    remove build/ (the cached QuickJS-ng sources too)
# QuickJS-ng comes from Debian's qjs-src package, fetched by name with apt-get
# into build/ through a private sources list; the machine's apt setup is only read.
set -euo pipefail
cd "$(dirname "$0")"
# say, die, warn, need, apt_install, debian_uri; ROOT, B, JOBS
# shellcheck source=openwrt/lib.sh
. openwrt/lib.sh

QJS_PKG=qjs-src
QJS_PIN=0.17.0-1
QJS_PIN_SHA256=04631979bdadaccffd76c1cb0aff5d07389aa889a90b6a902eba858a3a3b3988
SIZE_BUDGET=$((1536 * 1024))  # 1.5 MiB


# ---- dependencies ------------------------------------------------------------
# Debian packages for building (musl-tools, gcc, make) and for the tests' real
# clients and peers: curl, iperf3, strace, openssl; nftables + iproute2 for
# the capture tests in network namespaces; microsocks and tinyproxy as
# upstream proxies; busybox for the rpcd plugin test; qemu-system-x86 and cpio
# for the router-image test; clang/lld/llvm/dpkg-dev for the OpenWrt cross
# builds, qemu-user-static to run them, shellcheck for the init script,
# clang-format for the C style check.
DEB_PKGS=(musl-tools gcc make curl iperf3 strace openssl ca-certificates debian-archive-keyring
  nftables iproute2 microsocks tinyproxy-bin busybox qemu-system-x86 cpio
  clang lld llvm dpkg-dev qemu-user-static shellcheck clang-format python3)

install_deps() {
  apt_install "${DEB_PKGS[@]}"
  need node "nodejs (version 20 or newer)"
  local major
  major=$(node -p 'process.versions.node.split(".")[0]')
  [ "$major" -ge 20 ] || die "Node.js $(node --version) is too old: the build and tests need Node.js 20 or newer"
  npm_deps
}

# ---- JS toolchain -------------------------------------------------------------
npm_deps() {
  need node nodejs
  need npm npm
  if [ ! -e node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    say "npm ci"
    npm ci --no-audit --no-fund --loglevel=error >&2
  fi
}

# ---- QuickJS-ng sources ----------------------------------------------------------
fetch_qjs() {
  QJS=$B/qjs-src
  [ -f "$QJS/.version" ] && return
  need apt-get apt
  need dpkg-deb dpkg
  need sha256sum coreutils
  local A=$B/apt deb="" uri
  rm -rf "$A" && mkdir -p "$A/lists/partial" "$A/cache/archives/partial" "$A/dl"
  : > "$A/status"
  if [ -n "${QJS_DEB:-}" ]; then
    deb=$QJS_DEB
    say "using $deb (QJS_DEB)"
  else
    uri=$(debian_uri)
    [ -n "$uri" ] || die "cannot find a Debian archive URI in /etc/apt/sources.list{,.d}; set QJS_DEB=path/to/${QJS_PKG}_*.deb"
    local keyring=/usr/share/keyrings/debian-archive-keyring.gpg
    [ -r "$keyring" ] || die "$keyring missing: apt-get install debian-archive-keyring"
    printf 'deb [signed-by=%s] %s %s main\n' "$keyring" "$uri" testing "$keyring" "$uri" unstable > "$A/sources.list"
    local apt=(apt-get -q -o "Dir::Etc::SourceList=$A/sources.list" -o Dir::Etc::SourceParts=/dev/null
      -o "Dir::State=$A" -o "Dir::State::Lists=$A/lists" -o "Dir::State::status=$A/status"
      -o "Dir::Cache=$A/cache" -o APT::Sandbox::User=root -o Debug::NoLocking=1)
    say "apt-get update (private lists for testing + unstable, under build/apt)"
    "${apt[@]}" update >"$A/update.log" 2>&1 || die "apt-get update failed (see $A/update.log); tried $QJS_PKG from testing and unstable"
    if (cd "$A/dl" && "${apt[@]}" download "$QJS_PKG=$QJS_PIN") >"$A/download.log" 2>&1; then
      deb=$(ls "$A/dl"/${QJS_PKG}_*.deb)
      echo "$QJS_PIN_SHA256  $deb" | sha256sum -c --quiet - >&2 \
        || die "$deb: sha256 differs from the pinned $QJS_PIN_SHA256; refusing it"
    elif (cd "$A/dl" && "${apt[@]}" download "$QJS_PKG") >>"$A/download.log" 2>&1; then
      deb=$(ls "$A/dl"/${QJS_PKG}_*.deb)
      warn "$QJS_PKG $QJS_PIN is gone from testing/unstable; using $(basename "$deb") UNVERIFIED (no pinned sha256). The tests decide whether it still works; update QJS_PIN and QJS_PIN_SHA256 in build.sh."
    else
      die "cannot download Debian package $QJS_PKG (tried $QJS_PKG=$QJS_PIN, then any version, from testing and unstable; see $A/download.log). Set QJS_DEB=path/to/${QJS_PKG}_*.deb to use a local copy."
    fi
  fi
  rm -rf "$A/x" && mkdir -p "$A/x"
  dpkg-deb -x "$deb" "$A/x"
  [ -f "$A/x/usr/src/quickjs-ng/quickjs.c" ] || die "$deb has no usr/src/quickjs-ng/quickjs.c"
  rm -rf "$QJS" && mv "$A/x/usr/src/quickjs-ng" "$QJS"
  dpkg-deb -f "$deb" Version > "$QJS/.version"
  say "QuickJS-ng sources: $QJS_PKG $(cat "$QJS/.version")"
}

# ---- C compilation, cached: an object is rebuilt when its source, our headers
# or the QuickJS-ng sources are newer ------------------------------------------------
QJS_SRCS=(quickjs libregexp libunicode dtoa)
NATIVE_SRCS=(main loop module mod_sys mod_net mod_dns mod_relay relay mod_proc mod_unix mod_nlmon)
WARN=(-Wall -Wextra -Werror)

compile() {  # compile OUTDIR CC "FLAGS" SRC... (parallel; stale objects only)
  local out=$1 cc=$2 flags=$3; shift 3
  mkdir -p "$out"
  local src obj pids=() n=0
  for src in "$@"; do
    obj=$out/$(basename "${src%.c}").o
    if [ -e "$obj" ] && [ "$obj" -nt "$src" ] && [ "$obj" -nt "$QJS/.version" ] \
      && [ -z "$(find native -name '*.h' -newer "$obj" 2>/dev/null)" ]; then
      continue
    fi
    # shellcheck disable=SC2086
    $cc $flags -c "$src" -o "$obj" &
    pids+=($!)
    n=$((n + 1))
    if [ $((n % JOBS)) -eq 0 ]; then wait "${pids[@]}" || die "compile failed"; pids=(); fi
  done
  [ ${#pids[@]} -eq 0 ] || wait "${pids[@]}" || die "compile failed"
}

qjs_paths() { local f; for f in "${QJS_SRCS[@]}"; do echo "$QJS/$f.c"; done; }
native_paths() { local f; for f in "${NATIVE_SRCS[@]}"; do echo "native/$f.c"; done; }

# ---- the JS bundle ---------------------------------------------------------------------
VERSION=
bundle() {
  VERSION=$(node -p 'require("./package.json").version')
  say "tsc --noEmit (strict)"
  npx tsc --noEmit -p . >&2 || die "type check failed"
  say "esbuild src/main.ts → build/ugate.js"
  npx esbuild src/main.ts --bundle --format=esm --platform=neutral --target=es2023 \
    --external:ugate:native --define:__UGATE_VERSION__="\"$VERSION\"" \
    --minify-syntax --log-level=warning --outfile="$B/ugate.js" >&2 || die "esbuild failed"
}

# jsc (static, musl) compiles the bundle to bytecode as C. The format is
# portable across word size but not byte order: little-endian targets share
# this output, big-endian ones get their own (openwrt/toolchain.sh runs that
# target's jsc under qemu-user).
bytecode() {
  local o=$B/obj/musl
  compile "$o/tools" musl-gcc "-O2 -I$QJS ${WARN[*]}" native/tools/jsc.c
  if [ ! -x "$B/jsc" ] || [ "$o/tools/jsc.o" -nt "$B/jsc" ] || [ "$QJS/.version" -nt "$B/jsc" ]; then
    musl-gcc -static -o "$B/jsc" "$o/tools/jsc.o" "$o"/qjs/*.o -lm
  fi
  mkdir -p "$B/gen"
  "$B/jsc" "$B/ugate.js" "$B/gen/bundle.c.tmp" && mv "$B/gen/bundle.c.tmp" "$B/gen/bundle.c"
}

build_musl() {
  need musl-gcc musl-tools
  local o=$B/obj/musl opt="-Os -D_GNU_SOURCE -DNDEBUG -ffunction-sections -fdata-sections"
  say "compile QuickJS-ng (musl, cached)"
  compile "$o/qjs" musl-gcc "$opt -w" $(qjs_paths)
  bytecode
  say "compile native/ (musl, -Wall -Wextra)"
  compile "$o/native" musl-gcc "${opt/-D_GNU_SOURCE /} -I$QJS ${WARN[*]}" $(native_paths) "$B/gen/bundle.c"
  musl-gcc -static -s -Wl,--gc-sections -o "$B/ugate" "$o"/native/*.o "$o"/qjs/*.o -lm -lpthread
  local size
  size=$(stat -c %s "$B/ugate")
  say "build/ugate: $size bytes ($((size / 1024)) KiB, static, stripped; budget $((SIZE_BUDGET / 1024)) KiB)"
  [ "$size" -le "$SIZE_BUDGET" ] || die "build/ugate is $size bytes, over the $SIZE_BUDGET-byte budget"
}

build_asan() {
  need gcc gcc
  local o=$B/obj/asan
  say "compile QuickJS-ng (ASan, cached)"
  compile "$o/qjs" gcc "-O1 -g -D_GNU_SOURCE -fsanitize=address -fno-omit-frame-pointer -w" $(qjs_paths)
  [ -f "$B/gen/bundle.c" ] || bytecode
  say "compile native/ (ASan + UBSan)"
  compile "$o/native" gcc "-O1 -g -I$QJS -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer ${WARN[*]}" $(native_paths) "$B/gen/bundle.c"
  gcc -fsanitize=address,undefined -o "$B/ugate-asan" "$o"/native/*.o "$o"/qjs/*.o -lm -lpthread
  say "build/ugate-asan built"
}

main() {
  local what=${1:-ugate}
  case $what in
    clean) rm -rf "$B"; return ;;
    deps) install_deps; return ;;
    ugate | asan | all | ipk | packages) ;;
    *) die "unknown target '$what' (ugate, asan, all, ipk, packages, deps, clean)" ;;
  esac
  mkdir -p "$B"
  npm_deps
  fetch_qjs
  QJS=$B/qjs-src
  need musl-gcc musl-tools
  compile "$B/obj/musl/qjs" musl-gcc "-Os -D_GNU_SOURCE -DNDEBUG -ffunction-sections -fdata-sections -w" $(qjs_paths)
  bundle
  case $what in
    ugate) build_musl ;;
    asan) bytecode; build_asan ;;
    all) build_musl; build_asan ;;
    ipk) build_musl; UGATE_BUNDLE_FRESH=1 openwrt/build-ipk.sh "$VERSION" ;;
    packages)
      build_musl
      UGATE_BUNDLE_FRESH=1 openwrt/build-ipk.sh "$VERSION"
      UGATE_BUNDLE_FRESH=1 openwrt/build-apk.sh "$VERSION"
      ;;
  esac
}

main "$@"
