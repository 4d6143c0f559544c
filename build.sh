#!/usr/bin/env bash
# Build ugate: one static, stripped executable build/ugate.
#   ./build.sh          build/ugate (musl, static)
#   ./build.sh asan     build/ugate-asan (glibc, AddressSanitizer + UBSan), for the tests
#   ./build.sh all      both, and the interop peer
#   ./build.sh interop  build/ztunnel-peer, the Rust HBONE peer of the interop tests
#   ./build.sh ipk      OpenWrt packages for every arch in build/ipk (openwrt/build-ipk.sh)
#   ./build.sh packages the .ipk files and the APK v3 ones in build/apk (openwrt/build-apk.sh)
#   ./build.sh deps     install what building and testing need (Debian packages, npm ci)
#   ./build.sh clean    remove build/ (the cached QuickJS-ng and mbedTLS sources too)
# QuickJS-ng comes from Debian's qjs-src package, fetched by name with apt-get
# into build/ through a private sources list; the machine's apt setup is only read.
# mbedTLS comes from Debian's mbedtls source package the same way (openwrt/lib.sh).
set -euo pipefail
cd "$(dirname "$0")"
# say, die, warn, need, apt_install, debian_uri, fetch_mbedtls; ROOT, B, JOBS, MBEDTLS
# shellcheck source=openwrt/lib.sh
. openwrt/lib.sh

QJS_PKG=qjs-src
QJS_PIN=0.17.0-1
QJS_PIN_SHA256=04631979bdadaccffd76c1cb0aff5d07389aa889a90b6a902eba858a3a3b3988
SIZE_BUDGET=$((1280 * 1024))  # 1.25 MiB (the OpenWrt builds: 1.6 MiB, openwrt/toolchain.sh)


# ---- dependencies ------------------------------------------------------------
# Debian packages for building (musl-tools, gcc, make) and for the tests' real
# clients and peers: curl, strace, openssl; nftables + iproute2 for
# the capture tests in network namespaces; microsocks and tinyproxy as
# upstream proxies; busybox for the rpcd plugin test; qemu-system-x86 and cpio
# for the router-image test; clang/lld/llvm/dpkg-dev for the OpenWrt cross
# builds, qemu-user-static to run them, shellcheck for the init script,
# clang-format for the C style check, bind9-dnsutils (dig) for the DNS tests,
# prometheus (promtool + server) for /metrics, chromium for the admin live page;
# for the HBONE interop tests: cargo and the Rust crates ztunnel is built on
# (the peer in test/interop/ztunnel-peer builds offline against them) and
# nghttp2-proxy (nghttpx as a third-party HTTP/2 CONNECT server).
RUST_CRATES=(librust-h2-dev librust-http-dev librust-bytes-dev librust-rustls-dev librust-rustls-pemfile-dev
  librust-tokio-rustls-dev librust-tokio-dev librust-webpki-dev librust-ring-dev)
DEB_PKGS=(musl-tools gcc make curl strace openssl ca-certificates debian-archive-keyring
  nftables iproute2 microsocks tinyproxy-bin busybox qemu-system-x86 cpio
  clang lld llvm dpkg-dev qemu-user-static shellcheck clang-format python3
  bind9-dnsutils prometheus chromium cargo "${RUST_CRATES[@]}" nghttp2-proxy)

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

# ---- the JS bundle ---------------------------------------------------------------------
VERSION=
bundle() {
  VERSION=$(node -p 'require("./package.json").version')
  say "tsc --noEmit (strict)"
  npx tsc --noEmit -p . >&2 || die "type check failed"
  say "esbuild src/main.ts → build/ugate.js"
  esbuild_bundle "$B/ugate.js" "$VERSION" || die "esbuild failed"
}

# ---- C: native/build.mk (sources, flags, cached objects) -------------------------
# jsc (static, musl) compiles the bundle to bytecode as C. The format is
# portable across word size but not byte order: little-endian targets share
# this output, big-endian ones get their own (openwrt/toolchain.sh runs that
# target's jsc under qemu-user).
musl_make() {  # musl_make TARGET...
  need musl-gcc musl-tools
  native_make O="$B/obj/musl" CC=musl-gcc QJS="$QJS" MBEDTLS="$MBEDTLS" BIN="$B/ugate" JSC="$B/jsc" \
    JS="$B/ugate.js" BUNDLE="$B/gen/bundle.c" "$@" || die "musl build failed"
}

build_musl() {
  say "build/ugate (musl, static; -Wall -Wextra -Werror)"
  musl_make "$B/ugate"
  local size
  size=$(stat -c %s "$B/ugate")
  say "build/ugate: $size bytes ($((size / 1024)) KiB, static, stripped; budget $((SIZE_BUDGET / 1024)) KiB)"
  [ "$size" -le "$SIZE_BUDGET" ] || die "build/ugate is $size bytes, over the $SIZE_BUDGET-byte budget"
}

build_asan() {
  need gcc gcc
  musl_make "$B/gen/bundle.c"
  say "build/ugate-asan (glibc, ASan + UBSan)"
  native_make O="$B/obj/asan" CC=gcc PROFILE=asan QJS="$QJS" MBEDTLS="$MBEDTLS" BIN="$B/ugate-asan" \
    BUNDLE="$B/gen/bundle.c" "$B/ugate-asan" || die "ASan build failed"
}

# ---- the Rust HBONE peer of the interop tests ----------------------------------------
# Offline against Debian's crate directory: a cargo home under build/ whose
# config replaces the default registry by that directory, so no network and
# no lock file from elsewhere; the versions are Debian 12's.
CRATES_DIR=/usr/share/cargo/registry
build_interop() {
  need cargo cargo
  [ -d "$CRATES_DIR/h2-0.3.13" ] || [ -n "$(ls -d "$CRATES_DIR"/h2-0.3.* 2>/dev/null)" ] ||
    die "$CRATES_DIR has no h2 crate: apt-get install ${RUST_CRATES[*]}"
  local home=$B/cargo-home src=$ROOT/test/interop/ztunnel-peer start=$SECONDS
  mkdir -p "$home"
  # The lock is made here, by whichever cargo builds (rustup's or Debian's, whose formats differ).
  rm -f "$src/Cargo.lock"
  printf '[source.crates-io]\nreplace-with = "debian"\n[source.debian]\ndirectory = "%s"\n[net]\noffline = true\n' \
    "$CRATES_DIR" > "$home/config.toml"
  say "build/ztunnel-peer (cargo, offline, crates from $CRATES_DIR)"
  CARGO_HOME=$home cargo build -q --release --manifest-path "$src/Cargo.toml" \
    --target-dir "$B/ztunnel-peer-target" -j "$JOBS" || die "ztunnel-peer build failed"
  cp "$B/ztunnel-peer-target/release/ztunnel-peer" "$B/ztunnel-peer"
  say "build/ztunnel-peer done in $((SECONDS - start)) s"
}

main() {
  local what=${1:-ugate}
  case $what in
    clean) rm -rf "$B"; return ;;
    deps) install_deps; return ;;
    interop) mkdir -p "$B"; build_interop; return ;;
    ugate | asan | all | ipk | packages) ;;
    *) die "unknown target '$what' (ugate, asan, all, interop, ipk, packages, deps, clean)" ;;
  esac
  mkdir -p "$B"
  npm_deps
  fetch_qjs
  fetch_mbedtls
  bundle
  case $what in
    ugate) build_musl ;;
    asan) build_asan ;;
    all) build_musl; build_asan; build_interop ;;
    ipk) build_musl; UGATE_BUNDLE_FRESH=1 openwrt/build-ipk.sh "$VERSION" ;;
    packages)
      build_musl
      UGATE_BUNDLE_FRESH=1 openwrt/build-ipk.sh "$VERSION"
      UGATE_BUNDLE_FRESH=1 openwrt/build-apk.sh "$VERSION"
      ;;
  esac
}

main "$@"
