#!/usr/bin/env bash
# Cross-build ugate for OpenWrt package architectures: static, stripped, -Os,
# musl, for the exact ABI of each arch.
#
#   openwrt/toolchain.sh ARCH...     build build/cross/ARCH/ugate (and jsc)
#   openwrt/toolchain.sh all         every arch below
#   openwrt/toolchain.sh list        print the archs
#
# Route (Debian packages only): clang + lld for every target; musl built per
# arch from Debian's `musl` source package; compiler-rt builtins (64-bit
# division on 32-bit targets, soft-float on MIPS, binary128 long double on
# aarch64) built per arch from compiler-rt/lib/builtins of Debian's
# `llvm-toolchain-14` source package. Both sources are fetched with
# `apt-get source` through a private sources list (openwrt/lib.sh) and checked
# against pinned sha256 sums.
#
# Everything is cached under build/cross/: a second run only relinks.
#
# Needs build/gen/bundle.c, build/ugate.js and build/qjs-src from ./build.sh
# (run here when missing). QuickJS-ng bytecode depends on byte order (its
# reader takes u16/u32/u64 fields in host order: the checksum check fails on
# the other one), so little-endian targets use build/gen/bundle.c as it is
# and big-endian targets get bytecode written by their own jsc run under
# qemu-user.
set -euo pipefail
# shellcheck source=openwrt/lib.sh
. "$(dirname "$0")/lib.sh"
cd "$ROOT"

X=$B/cross
SRC=$X/src
ARCHS=(x86_64 aarch64_generic arm_cortex-a7_neon-vfpv4 mipsel_24kc mips_24kc)

# Pinned Debian sources.
MUSL_PKG=musl
MUSL_PIN=1.2.5-3.1~deb13u1
MUSL_ORIG_SHA256=a9a118bbe84d8764da0ea0d28b3ab3fae8477fc7e4085d90102b8596fc7c75e4      # musl_1.2.5.orig.tar.gz (= upstream musl-1.2.5.tar.gz)
MUSL_DEBIAN_SHA256=46fdfb271edc2f035d8d4063ff2e299734409693e781e69e4b77e0a9a495072e    # musl_1.2.5-3.1~deb13u1.debian.tar.xz
LLVM_PKG=llvm-toolchain-14
LLVM_PIN=1:14.0.6-12
LLVM_ORIG_SHA256=d9bce5f42381d781e273c724db1ab0acd66259bf2782b79891664dbf1953d22c      # llvm-toolchain-14_14.0.6.orig.tar.xz

# ---- the targets -----------------------------------------------------------------
# arch → clang target triple and ABI flags (OpenWrt include/target.mk + the
# CPU_TYPE/CPU_SUBTYPE of the targets that use each package arch).
triple() {
  case $1 in
    x86_64) echo x86_64-linux-musl ;;
    aarch64_generic) echo aarch64-linux-musl ;;
    arm_cortex-a7_neon-vfpv4) echo armv7a-linux-musleabihf ;;
    mipsel_24kc) echo mipsel-linux-musl ;;
    mips_24kc) echo mips-linux-musl ;;
    *) die "unknown arch '$1' (known: ${ARCHS[*]})" ;;
  esac
}

abi_flags() {
  case $1 in
    x86_64) echo "-march=x86-64 -mtune=generic" ;;
    # armv8.0: no LSE; atomics inline as LL/SC instead of libcalls.
    aarch64_generic) echo "-march=armv8-a -mno-outline-atomics" ;;
    # cortex-a7, VFPv4 + NEON, hard-float calling convention; Thumb-2 code
    # (what OpenWrt builds these targets with, and smaller).
    arm_cortex-a7_neon-vfpv4) echo "-mcpu=cortex-a7 -mfpu=neon-vfpv4 -mfloat-abi=hard -mthumb" ;;
    # mips32r2 (24Kc has no FPU): o32 soft-float.
    mipsel_24kc | mips_24kc) echo "-march=mips32r2 -mabi=32 -msoft-float" ;;
  esac
}

big_endian() { [ "$1" = mips_24kc ]; }

qemu_of() {
  case $1 in
    x86_64) echo qemu-x86_64-static ;;
    aarch64_generic) echo qemu-aarch64-static ;;
    arm_cortex-a7_neon-vfpv4) echo qemu-arm-static ;;
    mipsel_24kc) echo qemu-mipsel-static ;;
    mips_24kc) echo qemu-mips-static ;;
  esac
}

cc_of() {  # the compiler command for an arch (no sysroot)
  echo "clang --target=$(triple "$1") $(abi_flags "$1") -ffile-prefix-map=$ROOT=."
}

tools() {
  apt_install clang lld llvm dpkg-dev patch xz-utils file binutils
  need clang clang
  need ld.lld lld
  need llvm-ar llvm
  need llvm-ranlib llvm
  need dpkg-source dpkg-dev
}

# ---- sources -----------------------------------------------------------------------
MUSL_SRC=
fetch_musl() {
  MUSL_SRC=$SRC/musl
  [ -f "$MUSL_SRC/.debian-version" ] && return
  local dl=$X/dl/musl dsc v
  fetch_debian_source "$MUSL_PKG" "$MUSL_PIN" "$dl"
  check_sha256 "$dl/musl_1.2.5.orig.tar.gz" "$MUSL_ORIG_SHA256"
  check_sha256 "$dl/musl_${MUSL_PIN}.debian.tar.xz" "$MUSL_DEBIAN_SHA256"
  dsc=$(ls "$dl"/*.dsc)
  v=$(sed -n 's/^Version: //p' "$dsc" | head -n 1)
  rm -rf "$MUSL_SRC.tmp" "$MUSL_SRC"
  # dpkg-source checks the .dsc's checksums and applies debian/patches.
  mkdir -p "$SRC"
  dpkg-source --no-copy -x "$dsc" "$MUSL_SRC.tmp" >"$dl/extract.log" 2>&1 || die "dpkg-source -x $dsc failed (see $dl/extract.log)"
  echo "$v" > "$MUSL_SRC.tmp/.debian-version"
  mv "$MUSL_SRC.tmp" "$MUSL_SRC"
  rm -rf "$dl"
  say "musl sources: Debian $MUSL_PKG $v"
}

# compiler-rt/lib/builtins only (about 2 MB) out of the 130 MB LLVM tarball,
# which is deleted afterwards. Debian's patches to compiler-rt leave these
# sources alone (the one that touches lib/builtins/ edits its CMakeLists.txt,
# which is not used here).
CRT_SRC=
fetch_compiler_rt() {
  CRT_SRC=$SRC/compiler-rt
  [ -f "$CRT_SRC/.debian-version" ] && return
  local dl=$X/dl/llvm dsc v orig
  fetch_debian_source "$LLVM_PKG" "$LLVM_PIN" "$dl"
  check_sha256 "$dl/llvm-toolchain-14_14.0.6.orig.tar.xz" "$LLVM_ORIG_SHA256"
  dsc=$(ls "$dl"/*.dsc)
  v=$(sed -n 's/^Version: //p' "$dsc" | head -n 1)
  orig=$(ls "$dl"/*.orig.tar.xz)
  say "extract compiler-rt/lib/builtins from $(basename "$orig")"
  rm -rf "$dl/x" && mkdir -p "$dl/x"
  tar -xJf "$orig" -C "$dl/x" --wildcards --no-anchored 'compiler-rt/lib/builtins/*' 'compiler-rt/LICENSE.TXT' \
    || die "cannot extract compiler-rt from $orig"
  rm -rf "$CRT_SRC"
  mkdir -p "$CRT_SRC"
  mv "$dl"/x/*/compiler-rt/lib/builtins "$CRT_SRC/builtins"
  mv "$dl"/x/*/compiler-rt/LICENSE.TXT "$CRT_SRC/"
  echo "$LLVM_PKG $v" > "$CRT_SRC/.debian-version"
  rm -rf "$dl"
  say "compiler-rt builtins: Debian $LLVM_PKG $v"
}

# ---- musl, per arch ------------------------------------------------------------------
MUSL_CFLAGS="-Os -ffunction-sections -fdata-sections"

build_musl() {  # build_musl ARCH
  local a=$1 s=$X/$1/sysroot stamp
  stamp="musl $(cat "$MUSL_SRC/.debian-version") | $(cc_of "$a") | $MUSL_CFLAGS | $(clang --version | head -n 1)"
  if [ -f "$s/.musl" ] && [ "$(cat "$s/.musl")" = "$stamp" ]; then return; fi
  say "$a: build musl $(cat "$MUSL_SRC/.debian-version") (once; a few minutes)"
  local w=$X/$a/musl-build
  rm -rf "$w" "$s" && mkdir -p "$w"
  (
    cd "$w"
    "$MUSL_SRC/configure" --target="$(triple "$a")" --prefix=/usr --disable-shared \
      CC="$(cc_of "$a")" CFLAGS="$MUSL_CFLAGS" AR=llvm-ar RANLIB=llvm-ranlib LIBCC= >configure.log 2>&1 \
      || { tail -n 30 configure.log >&2; exit 1; }
    make -j"$JOBS" >make.log 2>&1 || { tail -n 30 make.log >&2; exit 1; }
    make install DESTDIR="$s" >install.log 2>&1 || { tail -n 30 install.log >&2; exit 1; }
  ) || die "$a: musl build failed (logs in $w)"
  rm -rf "$w"
  echo "$stamp" > "$s/.musl"
}

# ---- compiler-rt builtins, per arch ------------------------------------------------------
# GENERIC_SOURCES of compiler-rt 14's lib/builtins/CMakeLists.txt, less the
# Apple- and PowerPC-only files; arch files replace generic files of the same
# base name, as the CMake build does.
CRT_GENERIC="absvdi2 absvsi2 absvti2 adddf3 addsf3 addvdi3 addvsi3 addvti3 ashldi3 ashlti3 ashrdi3
  ashrti3 bswapdi2 bswapsi2 clzdi2 clzsi2 clzti2 cmpdi2 cmpti2 comparedf2 comparesf2 ctzdi2 ctzsi2
  ctzti2 divdc3 divdf3 divdi3 divmoddi4 divmodsi4 divmodti4 divsc3 divsf3 divsi3 divti3 extendsfdf2
  extendhfsf2 ffsdi2 ffssi2 ffsti2 fixdfdi fixdfsi fixdfti fixsfdi fixsfsi fixsfti fixunsdfdi
  fixunsdfsi fixunsdfti fixunssfdi fixunssfsi fixunssfti floatdidf floatdisf floatsidf floatsisf
  floattidf floattisf floatundidf floatundisf floatunsidf floatunsisf floatuntidf floatuntisf fp_mode
  int_util lshrdi3 lshrti3 moddi3 modsi3 modti3 muldc3 muldf3 muldi3 mulodi4 mulosi4 muloti4 mulsc3
  mulsf3 multi3 mulvdi3 mulvsi3 mulvti3 negdf2 negdi2 negsf2 negti2 negvdi2 negvsi2 negvti2 paritydi2
  paritysi2 parityti2 popcountdi2 popcountsi2 popcountti2 powidf2 powisf2 subdf3 subsf3 subvdi3
  subvsi3 subvti3 truncdfhf2 truncdfsf2 truncsfhf2 ucmpdi2 ucmpti2 udivdi3 udivmoddi4 udivmodsi4
  udivmodti4 udivsi3 udivti3 umoddi3 umodsi3 umodti3"
# binary128 long double (aarch64's).
CRT_TF="addtf3 comparetf2 divtc3 divtf3 extenddftf2 extendhftf2 extendsftf2 fixtfdi fixtfsi fixtfti
  fixunstfdi fixunstfsi fixunstfti floatditf floatsitf floattitf floatunditf floatunsitf floatuntitf
  multc3 multf3 powitf2 subtf3 trunctfdf2 trunctfhf2 trunctfsf2"
# x87 80-bit long double (x86_64's).
CRT_XF="divxc3 fixxfdi fixxfti fixunsxfdi fixunsxfsi fixunsxfti floatdixf floattixf floatundixf
  floatuntixf mulxc3 powixf2"
CRT_ARM="arm/fp_mode.c arm/bswapdi2.S arm/bswapsi2.S arm/clzdi2.S arm/clzsi2.S arm/comparesf2.S
  arm/divmodsi4.S arm/divsi3.S arm/modsi3.S arm/udivmodsi4.S arm/udivsi3.S arm/umodsi3.S
  arm/sync_synchronize.S arm/aeabi_cdcmp.S arm/aeabi_cdcmpeq_check_nan.c arm/aeabi_cfcmp.S
  arm/aeabi_cfcmpeq_check_nan.c arm/aeabi_dcmp.S arm/aeabi_div0.c arm/aeabi_drsub.c arm/aeabi_fcmp.S
  arm/aeabi_frsub.c arm/aeabi_idivmod.S arm/aeabi_ldivmod.S arm/aeabi_memcmp.S arm/aeabi_memcpy.S
  arm/aeabi_memmove.S arm/aeabi_memset.S arm/aeabi_uidivmod.S arm/aeabi_uldivmod.S"

crt_sources() {  # crt_sources ARCH: paths relative to lib/builtins
  local a=$1 extra="" f b
  case $a in
    x86_64) extra="x86_64/floatdidf.c x86_64/floatdisf.c x86_64/floatdixf.c x86_64/floatundidf.S x86_64/floatundisf.S x86_64/floatundixf.S"
      for f in $CRT_XF; do extra+=" $f.c"; done ;;
    aarch64_generic) extra="aarch64/fp_mode.c"
      for f in $CRT_TF; do extra+=" $f.c"; done ;;
    arm_cortex-a7_neon-vfpv4) extra=$CRT_ARM ;;
    # 64-bit __atomic_* libcalls (mips32 has no 64-bit LL/SC): lock-based.
    mipsel_24kc | mips_24kc) extra="atomic.c" ;;
  esac
  local over=" "
  for f in $extra; do
    b=$(basename "$f"); over+="${b%.*} "
  done
  for f in $CRT_GENERIC; do
    case $over in *" $f "*) ;; *) echo "$f.c" ;; esac
  done
  for f in $extra; do echo "$f"; done
}

build_builtins() {  # build_builtins ARCH
  local a=$1 s=$X/$1/sysroot lib stamp
  lib=$s/usr/lib/libclang_rt.builtins.a
  stamp="$(cat "$CRT_SRC/.debian-version") | $(cc_of "$a") | $(cat "$s/.musl")"
  if [ -f "$lib" ] && [ -f "$s/.builtins" ] && [ "$(cat "$s/.builtins")" = "$stamp" ]; then return; fi
  say "$a: build compiler-rt builtins"
  local o=$X/$a/obj/builtins f obj pids=() n=0 cc
  rm -rf "$o" && mkdir -p "$o"
  cc="$(cc_of "$a") --sysroot=$s -Os -std=c11 -fno-builtin -ffreestanding -fvisibility=hidden -DVISIBILITY_HIDDEN -ffunction-sections -fdata-sections -w"
  while read -r f; do
    obj=$o/$(echo "${f%.*}" | tr / _).o
    # shellcheck disable=SC2086
    $cc -c "$CRT_SRC/builtins/$f" -o "$obj" &
    pids+=($!)
    n=$((n + 1))
    if [ $((n % (JOBS * 4))) -eq 0 ]; then wait "${pids[@]}" || die "$a: compiler-rt: compile failed"; pids=(); fi
  done < <(crt_sources "$a")
  [ ${#pids[@]} -eq 0 ] || wait "${pids[@]}" || die "$a: compiler-rt: compile failed"
  rm -f "$lib"
  llvm-ar rcsD "$lib" "$o"/*.o
  echo "$stamp" > "$s/.builtins"
}

# ---- ugate, per arch ------------------------------------------------------------------------
QJS=$B/qjs-src
QJS_SRCS=(quickjs libregexp libunicode dtoa)   # as build.sh
WARN=(-Wall -Wextra)

compile() {  # compile ARCH OUTDIR "FLAGS" SRC... (parallel; stale objects only)
  local a=$1 out=$2 flags=$3; shift 3
  mkdir -p "$out"
  # Other flags (or another compiler): every object here is stale.
  local stamp
  stamp="$(cc_of "$a") $flags"
  if [ ! -f "$out/.flags" ] || [ "$(cat "$out/.flags")" != "$stamp" ]; then
    rm -f "$out"/*.o
    echo "$stamp" > "$out/.flags"
  fi
  local src obj pids=() n=0 s=$X/$a/sysroot
  for src in "$@"; do
    obj=$out/$(basename "${src%.c}").o
    if [ -e "$obj" ] && [ "$obj" -nt "$src" ] && [ "$obj" -nt "$QJS/.version" ] && [ "$obj" -nt "$s/.builtins" ] \
      && [ -z "$(find native -name '*.h' -newer "$obj" 2>/dev/null)" ]; then
      continue
    fi
    # shellcheck disable=SC2086
    $(cc_of "$a") --sysroot="$s" $flags -c "$src" -o "$obj" &
    pids+=($!)
    n=$((n + 1))
    if [ $((n % JOBS)) -eq 0 ]; then wait "${pids[@]}" || die "$a: compile failed"; pids=(); fi
  done
  [ ${#pids[@]} -eq 0 ] || wait "${pids[@]}" || die "$a: compile failed"
}

link() {  # link ARCH OUT OBJ...
  local a=$1 out=$2 s=$X/$1/sysroot; shift 2
  # No libgcc anywhere: crt from musl, libc.a, compiler-rt builtins; lld
  # resolves archive members in any order.
  # shellcheck disable=SC2046
  $(cc_of "$a") -fuse-ld=lld -static -nostdlib -Wl,--gc-sections -Wl,--build-id=none -s -o "$out.tmp" \
    "$s/usr/lib/crt1.o" "$s/usr/lib/crti.o" "$@" \
    "$s/usr/lib/libc.a" "$s/usr/lib/libclang_rt.builtins.a" "$s/usr/lib/crtn.o" \
    || die "$a: link of $out failed"
  mv "$out.tmp" "$out"
}

# Check the ELF header and ABI attributes against what the arch promises.
check_elf() {  # check_elf ARCH FILE
  local a=$1 f=$2 h attrs want_class want_data want_machine
  h=$(readelf -h "$f")
  case $a in
    x86_64) want_class=ELF64 want_data=little want_machine='X86-64' ;;
    aarch64_generic) want_class=ELF64 want_data=little want_machine='AArch64' ;;
    arm_cortex-a7_neon-vfpv4) want_class=ELF32 want_data=little want_machine='ARM' ;;
    mipsel_24kc) want_class=ELF32 want_data=little want_machine='MIPS R3000' ;;
    mips_24kc) want_class=ELF32 want_data=big want_machine='MIPS R3000' ;;
  esac
  grep -q "Class: *$want_class" <<<"$h" || die "$f: not $want_class"
  grep -q "Data: .*$want_data endian" <<<"$h" || die "$f: not $want_data endian"
  grep -q "Machine: .*$want_machine" <<<"$h" || die "$f: machine is not $want_machine"
  grep -q 'Type: *EXEC' <<<"$h" || die "$f: not a static (ET_EXEC) executable"
  if readelf -lW "$f" | grep -qE 'INTERP|DYNAMIC'; then die "$f: has an interpreter or dynamic section: not static"; fi
  attrs=$(readelf -A "$f" 2>/dev/null || true)
  case $a in
    arm_cortex-a7_neon-vfpv4)
      grep -q 'Flags: .*hard-float ABI' <<<"$h" || die "$f: e_flags lack hard-float ABI"
      grep -q 'Tag_ABI_VFP_args: VFP registers' <<<"$attrs" || die "$f: Tag_ABI_VFP_args is not 'VFP registers'"
      grep -q 'Tag_CPU_arch: v7' <<<"$attrs" || die "$f: Tag_CPU_arch is not v7"
      grep -q 'Tag_FP_arch: VFPv4' <<<"$attrs" || die "$f: Tag_FP_arch is not VFPv4"
      ;;
    mipsel_24kc | mips_24kc)
      grep -q 'Flags: .*mips32r2' <<<"$h" || die "$f: e_flags lack mips32r2"
      grep -q 'Flags: .*o32' <<<"$h" || die "$f: e_flags lack o32"
      grep -q 'FP ABI: Soft float' <<<"$attrs" || die "$f: .MIPS.abiflags FP ABI is not 'Soft float'"
      ;;
  esac
}

build_ugate() {  # build_ugate ARCH
  # -fno-pic: a static, non-PIE executable (on MIPS: non-PIC abicalls, as
  # gcc builds executables; 8% smaller than clang's PIC default).
  local a=$1 d=$X/$1 o=$X/$1/obj opt="-Os -fno-pic -DNDEBUG -ffunction-sections -fdata-sections"
  local natives=() f
  for f in native/*.c; do natives+=("$f"); done
  local qjs_c=()
  for f in "${QJS_SRCS[@]}"; do qjs_c+=("$QJS/$f.c"); done
  compile "$a" "$o/qjs" "$opt -D_GNU_SOURCE -w" "${qjs_c[@]}"
  compile "$a" "$o/tools" "$opt -I$QJS ${WARN[*]}" native/tools/jsc.c
  link "$a" "$d/jsc" "$o/tools/jsc.o" "$o"/qjs/*.o
  local bundle=$B/gen/bundle.c
  if big_endian "$a"; then
    # Bytecode in the target's byte order, written by the target's own jsc.
    local q
    q=$(qemu_of "$a")
    command -v "$q" >/dev/null 2>&1 || apt_install qemu-user-static
    need "$q" qemu-user-static
    bundle=$d/gen/bundle.c
    if [ ! -f "$bundle" ] || [ "$B/ugate.js" -nt "$bundle" ] || [ "$d/jsc" -nt "$bundle" ]; then
      mkdir -p "$d/gen"
      "$q" "$d/jsc" "$B/ugate.js" "$bundle.tmp" || die "$a: jsc under $q failed"
      mv "$bundle.tmp" "$bundle"
    fi
  fi
  # bundle.c is named bundle.o in either case; rebuild when the bundle changes.
  compile "$a" "$o/native" "$opt -I$QJS ${WARN[*]}" "${natives[@]}" "$bundle"
  local objs=()
  for f in "${natives[@]}"; do objs+=("$o/native/$(basename "${f%.c}").o"); done
  link "$a" "$d/ugate" "${objs[@]}" "$o/native/bundle.o" "$o"/qjs/*.o
  check_elf "$a" "$d/ugate"
  local size
  size=$(stat -c %s "$d/ugate")
  say "build/cross/$a/ugate: $size bytes ($((size / 1024)) KiB; static, stripped; $(triple "$a") $(abi_flags "$a"))"
}

main() {
  [ $# -gt 0 ] || die "usage: openwrt/toolchain.sh ARCH...|all|list (archs: ${ARCHS[*]})"
  local want=() a
  for a in "$@"; do
    case $a in
      all) want+=("${ARCHS[@]}") ;;
      list) printf '%s\n' "${ARCHS[@]}"; return ;;
      *) triple "$a" >/dev/null; want+=("$a") ;;
    esac
  done
  tools
  # One build at a time in build/cross (a test and a shell may race).
  mkdir -p "$X"
  exec 9>"$X/.lock"
  flock 9
  if [ ! -f "$B/gen/bundle.c" ] || [ ! -f "$B/ugate.js" ] || [ ! -f "$QJS/.version" ]; then
    say "build/gen/bundle.c missing: running ./build.sh"
    ./build.sh >&2
  fi
  fetch_musl
  fetch_compiler_rt
  for a in "${want[@]}"; do
    build_musl "$a"
    build_builtins "$a"
    build_ugate "$a"
  done
}

main "$@"
