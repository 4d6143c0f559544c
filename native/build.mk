# How the ugate executable is made from C: QuickJS-ng, native/*.c and the
# bytecode. The one description every build uses: build.sh (musl, ASan),
# openwrt/toolchain.sh (each cross arch) and openwrt/sdk-build.sh (an OpenWrt
# SDK). Run from the repository's root:
#
#   make -f native/build.mk O=DIR CC=COMPILER [VAR=...] TARGET...
#
# Targets: $(BIN) (the executable), $(JSC) (the bytecode compiler), $(BUNDLE).
#   CC       the compiler, with any target flags that belong to it
#   CFLAGS   the target's flags, on every compile and link (--sysroot, arch,
#            an SDK's TARGET_CFLAGS)
#   LDFLAGS  more link flags, before the objects (linker, start files)
#   LDLIBS   after the objects (default -lm -lpthread)
#   PROFILE  release: static, stripped, -Os (default); asan: ASan + UBSan;
#            tool: a program for the build machine (an SDK's host jsc)
#   O        objects: O/qjs, O/native, O/tools; stale ones are rebuilt, all
#            of them when the flags change (O/.flags)
#   BIN JSC  outputs (default O/ugate, O/jsc)
#   QJS      QuickJS-ng sources (default build/qjs-src)
#   BUNDLE   the bytecode as C (default build/gen/bundle.c)
#   JS       when set, this build's jsc writes BUNDLE from JS, run through EMU
#            (qemu-user for a target of the other byte order); when unset,
#            BUNDLE is an input, written by a build of the same byte order
#   DEPS     files whose change makes every object stale (a sysroot's stamp)

# native/*.c linked into ugate, in link order: a new source is one more line.
NATIVE_SRCS := \
	loop \
	main \
	mod_dns \
	mod_net \
	mod_nlmon \
	mod_proc \
	mod_relay \
	mod_sys \
	mod_udp \
	module \
	pipe \
	relay \
	udp \
	util

# QuickJS-ng, from its source directory; no qjs/qjsc/libc: ugate has its own.
QJS_SRCS := dtoa libregexp libunicode quickjs

# Our code (native/, jsc, the bytecode) on every target; QuickJS-ng's warnings
# are not ours to fix.
WARN := -Wall -Wextra -Werror
QJS_WARN := -w

PROFILE ?= release
ifeq ($(PROFILE),release)
OPT := -Os -DNDEBUG -ffunction-sections -fdata-sections
LINK := -static -s -Wl,--gc-sections
else ifeq ($(PROFILE),asan)
# UBSan on our code only: QuickJS-ng is not clean under it.
OPT := -O1 -g -fno-omit-frame-pointer -fsanitize=address
OUR_OPT := -fsanitize=undefined -fno-sanitize-recover=undefined
LINK := -fsanitize=address,undefined
else ifeq ($(PROFILE),tool)
OPT := -O2
LINK :=
else
$(error PROFILE must be release, asan or tool, not '$(PROFILE)')
endif

O ?= $(error O= (the object directory) is not set)
QJS ?= build/qjs-src
BIN ?= $(O)/ugate
JSC ?= $(O)/jsc
BUNDLE ?= build/gen/bundle.c
LDLIBS ?= -lm -lpthread

QJS_CFLAGS = $(CFLAGS) $(OPT) -D_GNU_SOURCE $(QJS_WARN)
OUR_CFLAGS = $(CFLAGS) $(OPT) $(OUR_OPT) -I$(QJS) $(WARN)
LINK_ARGS = $(CFLAGS) $(LINK) $(LDFLAGS)

QJS_OBJS := $(QJS_SRCS:%=$(O)/qjs/%.o)
NATIVE_OBJS := $(NATIVE_SRCS:%=$(O)/native/%.o) $(O)/native/bundle.o

# Any change of compiler or flags makes every object stale: the stamp is
# rewritten (and so newer than them) only when its text changes.
FLAGS_TEXT := $(strip $(CC) | $(QJS_CFLAGS) | $(OUR_CFLAGS) | $(LINK_ARGS) | $(LDLIBS))
ifneq ($(FLAGS_TEXT),$(strip $(shell cat $(O)/.flags 2>/dev/null)))
$(shell mkdir -p $(O))
$(file >$(O)/.flags,$(FLAGS_TEXT))
endif
# A new QuickJS-ng keeps its packaged (old) mtimes: its .version is new.
COMMON_DEPS := $(O)/.flags $(wildcard $(QJS)/.version $(QJS)/*.h) $(DEPS)
OUR_DEPS := $(COMMON_DEPS) $(wildcard native/*.h)

.DELETE_ON_ERROR:
.PHONY: all
all: $(BIN)

$(O)/qjs/%.o: $(QJS)/%.c $(COMMON_DEPS)
	@mkdir -p $(@D)
	$(CC) $(QJS_CFLAGS) -c $< -o $@

$(O)/native/%.o: native/%.c $(OUR_DEPS)
	@mkdir -p $(@D)
	$(CC) $(OUR_CFLAGS) -c $< -o $@

$(O)/native/bundle.o: $(BUNDLE) $(OUR_DEPS)
	@mkdir -p $(@D)
	$(CC) $(OUR_CFLAGS) -c $< -o $@

$(O)/tools/jsc.o: native/tools/jsc.c $(OUR_DEPS)
	@mkdir -p $(@D)
	$(CC) $(OUR_CFLAGS) -c $< -o $@

# Linked to a temporary name first: a test may be running the old one.
$(BIN): $(NATIVE_OBJS) $(QJS_OBJS)
	$(CC) $(LINK_ARGS) -o $@.tmp $(NATIVE_OBJS) $(QJS_OBJS) $(LDLIBS)
	mv $@.tmp $@

$(JSC): $(O)/tools/jsc.o $(QJS_OBJS)
	$(CC) $(LINK_ARGS) -o $@.tmp $(O)/tools/jsc.o $(QJS_OBJS) $(LDLIBS)
	mv $@.tmp $@

ifneq ($(JS),)
$(BUNDLE): $(JS) $(JSC)
	@mkdir -p $(@D)
	$(EMU) $(JSC) $(JS) $@.tmp
	mv $@.tmp $@
endif
