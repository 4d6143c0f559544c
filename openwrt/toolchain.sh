#!/usr/bin/env bash
# Cross-build ugate for OpenWrt package architectures: static, stripped, -Os,
# musl, for the exact ABI of each arch.
#
#   openwrt/toolchain.sh ARCH...     build build/cross/ARCH/ugate (and jsc)
#   openwrt/toolchain.sh all         every arch below
#   openwrt/toolchain.sh list        print the archs
#   openwrt/toolchain.sh qemu ARCH   print the qemu-user binary that runs ARCH
#   --also NAME (before the archs)   also build native/build.mk's O/NAME
#                                    (build/cross/ARCH/obj/NAME: aead-bench)
#
# Route (Debian packages only): clang + lld for every target; musl built per
# arch from Debian's `musl` source package; compiler-rt builtins (64-bit
# division on 32-bit targets, soft-float on MIPS, binary128 long double on
# aarch64) built per arch from compiler-rt/lib/builtins of Debian's
# `llvm-toolchain-14` source package; mbedTLS (openwrt/lib.sh) built per arch
# by native/build.mk. The sources are fetched with
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
# Router flash: issue 12 keeps mipsel (the largest) within 1.6 MiB; every
# arch is held to it (docs/openwrt.md: Size).
CROSS_SIZE_BUDGET=$((16 * 1024 * 1024 / 10))  # 1677721 bytes
QJS=$B/qjs-src
SRC=$X/src

# Pinned Debian sources.
MUSL_PKG=musl
MUSL_PIN=1.2.5-3.1~deb13u1
MUSL_ORIG_SHA256=a9a118bbe84d8764da0ea0d28b3ab3fae8477fc7e4085d90102b8596fc7c75e4      # musl_1.2.5.orig.tar.gz (= upstream musl-1.2.5.tar.gz)
MUSL_DEBIAN_SHA256=46fdfb271edc2f035d8d4063ff2e299734409693e781e69e4b77e0a9a495072e    # musl_1.2.5-3.1~deb13u1.debian.tar.xz
LLVM_PKG=llvm-toolchain-14
LLVM_PIN=1:14.0.6-12
LLVM_ORIG_SHA256=d9bce5f42381d781e273c724db1ab0acd66259bf2782b79891664dbf1953d22c      # llvm-toolchain-14_14.0.6.orig.tar.xz

# ---- the targets -----------------------------------------------------------------
# One row an arch, the only place the build knows one (the package tests list the archs too):
#   arch     OpenWrt package arch
#   triple   clang target (musl libc)
#   endian   byte order (big: the bytecode comes from the target's own jsc)
#   float    float ABI, checked in the ELF (hard: FP registers carry floats)
#   qemu     the qemu-user binary that runs it on the build host
#   elf      ELF class and machine as readelf -h shows them
#   readelf  more of what `readelf -h -A` must show, ';' between (regexps)
#   cflags   ABI flags: OpenWrt's include/target.mk and the CPU_TYPE and
#            CPU_SUBTYPE of the targets that use the package arch
# aarch64 is armv8.0 (no LSE): atomics inline as LL/SC instead of libcalls.
# cortex-a7 has VFPv4 + NEON; Thumb-2 code is what OpenWrt builds and smaller.
# The 24Kc is mips32r2 without an FPU: o32 soft-float.
ARCH_TABLE='
arch                     | triple                  | endian | float | qemu                | elf              | readelf                                     | cflags
x86_64                   | x86_64-linux-musl       | little | hard  | qemu-x86_64-static  | ELF64 X86-64     | -                                           | -march=x86-64 -mtune=generic
aarch64_generic          | aarch64-linux-musl      | little | hard  | qemu-aarch64-static | ELF64 AArch64    | -                                           | -march=armv8-a -mno-outline-atomics
arm_cortex-a7_neon-vfpv4 | armv7a-linux-musleabihf | little | hard  | qemu-arm-static     | ELF32 ARM        | CPU_arch: v7;FP_arch: VFPv4;SIMD_arch: NEON | -mcpu=cortex-a7 -mfpu=neon-vfpv4 -mfloat-abi=hard -mthumb
mipsel_24kc              | mipsel-linux-musl       | little | soft  | qemu-mipsel-static  | ELF32 MIPS R3000 | Flags: .*o32;Flags: .*mips32r2              | -march=mips32r2 -mabi=32 -msoft-float
mips_24kc                | mips-linux-musl         | big    | soft  | qemu-mips-static    | ELF32 MIPS R3000 | Flags: .*o32;Flags: .*mips32r2              | -march=mips32r2 -mabi=32 -msoft-float
'
# Fields of the rows, trimmed, a tab between; the heading is not a row.
arch_rows() { awk -F' *[|] *' -v OFS='\t' 'NF > 1 && $1 != "arch" { $1 = $1; sub(/ +$/, ""); print }' <<<"$ARCH_TABLE"; }
read -r -a ARCHS <<<"$(arch_rows | cut -f1 | tr '\n' ' ')"

# Select ARCH: its row's fields, its compiler (no sysroot) and its sysroot.
A='' TRIPLE='' ENDIAN='' FLOAT='' QEMU='' ELF='' ELF_SHOWS='' ABI_FLAGS='' TCC='' S=''
use_arch() {  # use_arch ARCH
  local row
  row=$(arch_rows | awk -F'\t' -v a="$1" '$1 == a')
  [ -n "$row" ] || die "unknown arch '$1' (known: ${ARCHS[*]})"
  IFS=$'\t' read -r A TRIPLE ENDIAN FLOAT QEMU ELF ELF_SHOWS ABI_FLAGS <<<"$row"
  TCC="clang --target=$TRIPLE $ABI_FLAGS -ffile-prefix-map=$ROOT=."
  S=$X/$A/sysroot
}

tools() {
  apt_install clang lld llvm dpkg-dev patch xz-utils file binutils
  need clang clang
  need ld.lld lld
  need llvm-ar llvm
  need llvm-ranlib llvm
  need llvm-objcopy llvm
  need dpkg-source dpkg-dev
}

# ---- sources -----------------------------------------------------------------------
MUSL_SRC=$SRC/musl
fetch_musl() {
  unpack_debian_source "$MUSL_PKG" "$MUSL_PIN" "$MUSL_SRC" musl_1.2.5.orig.tar.gz "$MUSL_ORIG_SHA256" \
    "musl_${MUSL_PIN}.debian.tar.xz" "$MUSL_DEBIAN_SHA256"
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
# -fno-pic as for ugate: Debian's clang makes PIC by default, and libc.a
# only ever goes into ugate's static non-PIE executable (22 KB less on MIPS,
# under 1 KB elsewhere).
MUSL_CFLAGS="-Os -ffunction-sections -fdata-sections -fno-pic"

build_musl() {  # the selected arch's libc in $S
  local stamp
  stamp="musl $(cat "$MUSL_SRC/.debian-version") | $TCC | $MUSL_CFLAGS | $(clang --version | head -n 1)"
  if [ -f "$S/.musl" ] && [ "$(cat "$S/.musl")" = "$stamp" ]; then return; fi
  say "$A: build musl $(cat "$MUSL_SRC/.debian-version") (once; a few minutes)"
  local w=$X/$A/musl-build
  rm -rf "$w" "$S" && mkdir -p "$w"
  (
    cd "$w"
    "$MUSL_SRC/configure" --target="$TRIPLE" --prefix=/usr --disable-shared \
      CC="$TCC" CFLAGS="$MUSL_CFLAGS" AR=llvm-ar RANLIB=llvm-ranlib LIBCC= >configure.log 2>&1 \
      || { tail -n 30 configure.log >&2; exit 1; }
    make -j"$JOBS" >make.log 2>&1 || { tail -n 30 make.log >&2; exit 1; }
    make install DESTDIR="$S" >install.log 2>&1 || { tail -n 30 install.log >&2; exit 1; }
  ) || die "$A: musl build failed (logs in $w)"
  rm -rf "$w"
  echo "$stamp" > "$S/.musl"
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

# compiler-rt's own arch directories, chosen by the triple's CPU as its CMake
# build does.
crt_sources() {  # paths relative to lib/builtins, for the selected arch
  local extra="" f b
  case $TRIPLE in
    x86_64-*) extra="x86_64/floatdidf.c x86_64/floatdisf.c x86_64/floatdixf.c x86_64/floatundidf.S x86_64/floatundisf.S x86_64/floatundixf.S"
      for f in $CRT_XF; do extra+=" $f.c"; done ;;
    aarch64-*) extra="aarch64/fp_mode.c"
      for f in $CRT_TF; do extra+=" $f.c"; done ;;
    arm*) extra=$CRT_ARM ;;
    # 64-bit __atomic_* libcalls (mips32 has no 64-bit LL/SC): lock-based.
    mips*) extra="atomic.c" ;;
    *) die "$A: no compiler-rt sources known for $TRIPLE" ;;
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

build_builtins() {  # the selected arch's libclang_rt.builtins.a in $S
  local lib=$S/usr/lib/libclang_rt.builtins.a stamp
  stamp="$(cat "$CRT_SRC/.debian-version") | $TCC | $(cat "$S/.musl")"
  if [ -f "$lib" ] && [ -f "$S/.builtins" ] && [ "$(cat "$S/.builtins")" = "$stamp" ]; then return; fi
  say "$A: build compiler-rt builtins"
  local o=$X/$A/obj/builtins f obj pids=() n=0 cc
  rm -rf "$o" && mkdir -p "$o"
  cc="$TCC --sysroot=$S -Os -fno-pic -std=c11 -fno-builtin -ffreestanding -fvisibility=hidden -DVISIBILITY_HIDDEN -ffunction-sections -fdata-sections -w"
  while read -r f; do
    obj=$o/$(echo "${f%.*}" | tr / _).o
    # shellcheck disable=SC2086
    $cc -c "$CRT_SRC/builtins/$f" -o "$obj" &
    pids+=($!)
    n=$((n + 1))
    if [ $((n % (JOBS * 4))) -eq 0 ]; then wait "${pids[@]}" || die "$A: compiler-rt: compile failed"; pids=(); fi
  done < <(crt_sources)
  [ ${#pids[@]} -eq 0 ] || wait "${pids[@]}" || die "$A: compiler-rt: compile failed"
  rm -f "$lib"
  llvm-ar rcsD "$lib" "$o"/*.o
  echo "$stamp" > "$S/.builtins"
}

# ---- ugate, per arch ------------------------------------------------------------------------
# The float ABI an ELF file records (readelf -h in $1, readelf -A in $2).
elf_float() {
  case $ELF in
    *' ARM')
      if grep -q 'Flags: .*hard-float ABI' <<<"$1" && grep -q 'Tag_ABI_VFP_args: VFP registers' <<<"$2"; then
        echo hard
      else echo soft; fi ;;
    *' MIPS '*)
      if grep -q 'FP ABI: Soft float' <<<"$2"; then echo soft; else echo hard; fi ;;
    *) echo hard ;;  # x86-64, AArch64: floats in FP registers is the only ABI
  esac
}

# Check the ELF header and ABI attributes against the selected arch's row.
check_elf() {  # check_elf FILE
  local f=$1 h attrs pat pats float
  h=$(readelf -h "$f")
  attrs=$(readelf -A "$f" 2>/dev/null || true)
  grep -q "Class: *${ELF%% *}" <<<"$h" || die "$f: not ${ELF%% *}"
  grep -q "Data: .*$ENDIAN endian" <<<"$h" || die "$f: not $ENDIAN endian"
  grep -q "Machine: .*${ELF#* }" <<<"$h" || die "$f: machine is not ${ELF#* }"
  grep -q 'Type: *EXEC' <<<"$h" || die "$f: not a static (ET_EXEC) executable"
  if readelf -lW "$f" | grep -qE 'INTERP|DYNAMIC'; then die "$f: has an interpreter or dynamic section: not static"; fi
  float=$(elf_float "$h" "$attrs")
  [ "$float" = "$FLOAT" ] || die "$f: float ABI is $float, not $FLOAT"
  [ "$ELF_SHOWS" = - ] && return
  IFS=';' read -r -a pats <<<"$ELF_SHOWS"
  for pat in "${pats[@]}"; do
    grep -qE "$pat" <<<"$h$attrs" || die "$f: readelf -h -A shows no /$pat/"
  done
}

ALSO=()  # --also: more native/build.mk targets, under each arch's obj/
build_ugate() {  # the selected arch's ugate and jsc in build/cross/ARCH
  local d=$X/$A bundle=$B/gen/bundle.c own=() also=() n
  for n in "${ALSO[@]}"; do also+=("$d/obj/$n"); done
  if [ "$ENDIAN" = big ]; then
    # Bytecode in the target's byte order, written by the target's own jsc.
    command -v "$QEMU" >/dev/null 2>&1 || apt_install qemu-user-static
    need "$QEMU" qemu-user-static
    bundle=$d/gen/bundle.c
    own=(JS="$B/ugate.js" EMU="$QEMU")
  fi
  # -fno-pic: a static, non-PIE executable (on MIPS: non-PIC abicalls, as
  # gcc builds executables; 8% smaller than clang's PIC default; -mno-abicalls
  # makes code of the same size, and clang 14 fails on it unless -G0). No libgcc
  # anywhere: crt from musl, libc.a, compiler-rt builtins; lld resolves
  # archive members in any order.
  native_make O="$d/obj" CC="$TCC" AR=llvm-ar OBJCOPY=llvm-objcopy CFLAGS="--sysroot=$S -fno-pic" DEPS="$S/.builtins" QJS="$QJS" MBEDTLS="$MBEDTLS" \
    LDFLAGS="-fuse-ld=lld -nostdlib -Wl,--build-id=none $S/usr/lib/crt1.o $S/usr/lib/crti.o" \
    LDLIBS="$S/usr/lib/libc.a $S/usr/lib/libclang_rt.builtins.a $S/usr/lib/crtn.o" \
    BIN="$d/ugate" JSC="$d/jsc" BUNDLE="$bundle" "${own[@]}" "$d/ugate" "$d/jsc" "${also[@]}" \
    || die "$A: build failed"
  check_elf "$d/ugate"
  local size
  size=$(stat -c %s "$d/ugate")
  say "build/cross/$A/ugate: $size bytes ($((size / 1024)) KiB; static, stripped; $TRIPLE $ABI_FLAGS; budget $((CROSS_SIZE_BUDGET / 1024)) KiB)"
  [ "$size" -le "$CROSS_SIZE_BUDGET" ] || die "build/cross/$A/ugate is $size bytes, over the $CROSS_SIZE_BUDGET-byte budget"
}

main() {
  [ $# -gt 0 ] || die "usage: openwrt/toolchain.sh [--also NAME]... ARCH...|all|list|qemu ARCH (archs: ${ARCHS[*]})"
  if [ "$1" = qemu ]; then
    [ $# -eq 2 ] || die "usage: openwrt/toolchain.sh qemu ARCH"
    use_arch "$2"
    echo "$QEMU"
    return
  fi
  while [ "${1:-}" = --also ]; do
    [ $# -ge 2 ] || die "--also needs a target name"
    ALSO+=("$2")
    shift 2
  done
  local want=() a
  for a in "$@"; do
    case $a in
      all) want+=("${ARCHS[@]}") ;;
      list) printf '%s\n' "${ARCHS[@]}"; return ;;
      *) use_arch "$a"; want+=("$a") ;;
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
  fetch_mbedtls
  for a in "${want[@]}"; do
    use_arch "$a"
    build_musl
    build_builtins
    build_ugate
  done
}

main "$@"
