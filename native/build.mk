# How the ugate executable is made from C: QuickJS-ng, native/*.c and the
# bytecode. The one description every build uses: build.sh (musl, ASan),
# openwrt/toolchain.sh (each cross arch) and openwrt/sdk-build.sh (an OpenWrt
# SDK). Run from the repository's root:
#
#   make -f native/build.mk O=DIR CC=COMPILER [VAR=...] TARGET...
#
# Targets: $(BIN) (the executable), $(JSC) (the bytecode compiler), $(BUNDLE),
# O/mbedtls/libmbedcrypto.a (test/native programs link the asan one: h2.test.ts),
# $(O)/tls-test (test/native/tls-test.c with tls.c, for test/e2e/tls.ts),
# $(O)/tls-pick-test (test/native/tls-pick-test.c, for test/unit/tls-pick.test.ts),
# $(O)/aead-bench (bench/aead.c, for bench/aead.sh),
# $(O)/aesgcm-test (test/native/aesgcm-test.c, for test/unit/aesgcm.test.ts).
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
#   MBEDTLS  mbedTLS sources (default build/mbedtls-src), built into
#            O/mbedtls/libmbedcrypto.a, libmbedx509.a and libmbedtls.a with
#            native/mbedtls-config.h
#   AR       the archiver for that library (llvm-ar for clang cross builds)
#   OBJCOPY  when set, removes from BIN the sections -s keeps though nothing
#            loads them (llvm-objcopy for clang cross builds; see UNLOADED)
#   BUNDLE   the bytecode as C (default build/gen/bundle.c)
#   JS       when set, this build's jsc writes BUNDLE from JS, run through EMU
#            (qemu-user for a target of the other byte order); when unset,
#            BUNDLE is an input, written by a build of the same byte order
#   DEPS     files whose change makes every object stale (a sysroot's stamp)

# native/*.c linked into ugate, in link order: a new source is one more line.
NATIVE_SRCS := \
	aesgcm \
	engine \
	h2 \
	hbone \
	hpack \
	identity \
	jsheap \
	loop \
	main \
	mod_dns \
	mod_dot \
	mod_gate \
	mod_hbone \
	mod_identity \
	mod_net \
	mod_nlmon \
	mod_proc \
	mod_quic \
	mod_relay \
	mod_socks_udp \
	mod_sys \
	mod_tls \
	mod_udp \
	module \
	pipe \
	quic \
	relay \
	socks5 \
	socks_udp \
	tls \
	udp \
	udp_send \
	util

# QuickJS-ng, from its source directory; no qjs/qjsc/libc: ugate has its own.
# ugate only runs bytecode (jsc compiled it): its quickjs.o is built without
# the parser and compiler (QJS_DISABLE_PARSER; eval and new Function throw
# "eval is not supported"); jsc links the whole one, O/qjs/quickjs-parser.o.
QJS_SRCS := dtoa libregexp libunicode quickjs
QJS_NO_PARSER := -DQJS_DISABLE_PARSER

# mbedTLS's crypto library: library/Makefile's OBJS_CRYPTO. Modules that
# native/mbedtls-config.h leaves out compile to empty objects, so the config
# alone decides what is in it. The X.509 library (OBJS_X509) and the SSL
# library (OBJS_TLS, libmbedtls.a) the same way.
MBEDTLS_CRYPTO_SRCS := \
	aes aesce aesni aria asn1parse asn1write base64 bignum bignum_core \
	bignum_mod bignum_mod_raw block_cipher camellia ccm chacha20 chachapoly \
	cipher cipher_wrap cmac constant_time ctr_drbg des dhm ecdh ecdsa ecjpake \
	ecp ecp_curves ecp_curves_new entropy entropy_poll error gcm hkdf \
	hmac_drbg lmots lms md md5 memory_buffer_alloc nist_kw oid padlock pem pk \
	pk_ecc pk_wrap pkcs12 pkcs5 pkparse pkwrite platform platform_util \
	poly1305 psa_crypto psa_crypto_aead psa_crypto_cipher psa_crypto_client \
	psa_crypto_driver_wrappers_no_static psa_crypto_ecp psa_crypto_ffdh \
	psa_crypto_hash psa_crypto_mac psa_crypto_pake psa_crypto_random \
	psa_crypto_rsa psa_crypto_se psa_crypto_slot_management psa_crypto_storage \
	psa_its_file psa_util ripemd160 rsa rsa_alt_helpers sha1 sha256 sha512 \
	sha3 threading timing version version_features
MBEDTLS_X509_SRCS := \
	pkcs7 x509 x509_create x509_crl x509_crt x509_csr x509write x509write_crt \
	x509write_csr
MBEDTLS_SSL_SRCS := \
	debug mps_reader mps_trace net_sockets ssl_cache ssl_ciphersuites \
	ssl_client ssl_cookie ssl_debug_helpers_generated ssl_msg ssl_ticket \
	ssl_tls ssl_tls12_client ssl_tls12_server ssl_tls13_keys \
	ssl_tls13_client ssl_tls13_server ssl_tls13_generic

# Our code (native/, jsc, the bytecode) on every target; QuickJS-ng's warnings
# are not ours to fix.
WARN := -Wall -Wextra -Werror
QJS_WARN := -w

PROFILE ?= release
ifeq ($(PROFILE),release)
# No unwind tables: C without exceptions, and nothing walks the stack of a
# release build. x86-64 and aarch64 emit .eh_frame by default (150 and 104 KB
# of their OpenWrt builds); arm and MIPS have none either way.
OPT := -Os -DNDEBUG -ffunction-sections -fdata-sections -fno-asynchronous-unwind-tables -fno-unwind-tables
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
MBEDTLS ?= build/mbedtls-src
BIN ?= $(O)/ugate
JSC ?= $(O)/jsc
BUNDLE ?= build/gen/bundle.c
LDLIBS ?= -lm -lpthread
# Not loaded and not needed, yet kept by the linker's -s: clang's MIPS
# procedure descriptors for debuggers (.pdr: 100 KB, 6% of a MIPS ugate),
# an empty .mdebug.abi32, the compilers' .comment.
UNLOADED := .pdr .mdebug.abi32 .comment

# Our config header replaces mbedTLS's default one, for it and for us.
MBEDTLS_CONFIG := -Inative -I$(MBEDTLS)/include -DMBEDTLS_CONFIG_FILE='"mbedtls-config.h"'
QJS_CFLAGS = $(CFLAGS) $(OPT) -D_GNU_SOURCE $(QJS_WARN)
MBEDTLS_CFLAGS = $(CFLAGS) $(OPT) $(OUR_OPT) $(MBEDTLS_CONFIG) -I$(MBEDTLS)/library -w
OUR_CFLAGS = $(CFLAGS) $(OPT) $(OUR_OPT) -I$(QJS) $(MBEDTLS_CONFIG) $(WARN)
LINK_ARGS = $(CFLAGS) $(LINK) $(LDFLAGS)
# mbedTLS's one-shot GCM calls go to native/aesgcm.c first (its bulk AES-GCM
# with CPU instructions, else mbedTLS's code): every link of aesgcm.o has them.
GCM_WRAP := -Wl,--wrap=mbedtls_gcm_crypt_and_tag -Wl,--wrap=mbedtls_gcm_auth_decrypt

QJS_OBJS := $(QJS_SRCS:%=$(O)/qjs/%.o)
JSC_QJS_OBJS := $(filter-out $(O)/qjs/quickjs.o,$(QJS_OBJS)) $(O)/qjs/quickjs-parser.o
MBEDCRYPTO := $(O)/mbedtls/libmbedcrypto.a
MBEDX509 := $(O)/mbedtls/libmbedx509.a
MBEDSSL := $(O)/mbedtls/libmbedtls.a
MBEDTLS_OBJS := $(MBEDTLS_CRYPTO_SRCS:%=$(O)/mbedtls/%.o)
MBEDX509_OBJS := $(MBEDTLS_X509_SRCS:%=$(O)/mbedtls/%.o)
MBEDSSL_OBJS := $(MBEDTLS_SSL_SRCS:%=$(O)/mbedtls/%.o)
# Link order: a library before the ones it calls.
MBEDLIBS := $(MBEDSSL) $(MBEDX509) $(MBEDCRYPTO)
NATIVE_OBJS := $(NATIVE_SRCS:%=$(O)/native/%.o) $(O)/native/bundle.o

# Any change of compiler or flags makes every object stale: the stamp is
# rewritten (and so newer than them) only when its text changes.
FLAGS_TEXT := $(strip $(CC) | $(QJS_CFLAGS) | $(QJS_NO_PARSER) | $(MBEDTLS_CFLAGS) | $(OUR_CFLAGS) | $(LINK_ARGS) | $(LDLIBS) | $(OBJCOPY))
ifneq ($(FLAGS_TEXT),$(strip $(shell cat $(O)/.flags 2>/dev/null)))
$(shell mkdir -p $(O))
$(file >$(O)/.flags,$(FLAGS_TEXT))
endif
# A new QuickJS-ng keeps its packaged (old) mtimes: its .version is new.
COMMON_DEPS := $(O)/.flags $(wildcard $(QJS)/.version $(QJS)/*.h) $(DEPS)
# A new mbedTLS: its .debian-version (build.sh's fetch writes it).
MBEDTLS_DEPS := $(COMMON_DEPS) $(wildcard $(MBEDTLS)/.debian-version) native/mbedtls-config.h
OUR_DEPS := $(COMMON_DEPS) $(wildcard native/*.h) $(wildcard $(MBEDTLS)/.debian-version)

.DELETE_ON_ERROR:
.PHONY: all
all: $(BIN)

$(O)/qjs/%.o: $(QJS)/%.c $(COMMON_DEPS)
	@mkdir -p $(@D)
	$(CC) $(QJS_CFLAGS) -c $< -o $@

$(O)/qjs/quickjs.o: $(QJS)/quickjs.c $(COMMON_DEPS)
	@mkdir -p $(@D)
	$(CC) $(QJS_CFLAGS) $(QJS_NO_PARSER) -c $< -o $@

$(O)/qjs/quickjs-parser.o: $(QJS)/quickjs.c $(COMMON_DEPS)
	@mkdir -p $(@D)
	$(CC) $(QJS_CFLAGS) -c $< -o $@

$(O)/mbedtls/%.o: $(MBEDTLS)/library/%.c $(MBEDTLS_DEPS)
	@mkdir -p $(@D)
	$(CC) $(MBEDTLS_CFLAGS) -c $< -o $@

$(MBEDCRYPTO): $(MBEDTLS_OBJS)
	rm -f $@
	$(AR) rcs $@ $^

$(MBEDX509): $(MBEDX509_OBJS)
	rm -f $@
	$(AR) rcs $@ $^

$(MBEDSSL): $(MBEDSSL_OBJS)
	rm -f $@
	$(AR) rcs $@ $^

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
$(BIN): $(NATIVE_OBJS) $(QJS_OBJS) $(MBEDLIBS)
	$(CC) $(LINK_ARGS) $(GCM_WRAP) -o $@.tmp $(NATIVE_OBJS) $(QJS_OBJS) $(MBEDLIBS) $(LDLIBS)
	$(if $(OBJCOPY),$(OBJCOPY) $(UNLOADED:%=--remove-section=%) $@.tmp)
	mv $@.tmp $@

TLS_TESTS := $(O)/tls-test $(O)/tls-pick-test $(O)/aesgcm-test

$(TLS_TESTS:$(O)/%=$(O)/tools/%.o): $(O)/tools/%.o: test/native/%.c $(OUR_DEPS)
	@mkdir -p $(@D)
	$(CC) $(OUR_CFLAGS) -c $< -o $@

$(TLS_TESTS): $(O)/%: $(O)/tools/%.o $(O)/native/tls.o $(O)/native/identity.o $(O)/native/aesgcm.o $(MBEDLIBS)
	$(CC) $(LINK_ARGS) $(GCM_WRAP) -o $@ $^ $(LDLIBS)

# bench/aead.c: each AEAD's cost per TLS record with this target's mbedTLS (bench/aead.sh).
$(O)/tools/aead.o: bench/aead.c $(OUR_DEPS)
	@mkdir -p $(@D)
	$(CC) $(OUR_CFLAGS) -c $< -o $@

$(O)/aead-bench: $(O)/tools/aead.o $(O)/native/tls.o $(O)/native/identity.o $(O)/native/aesgcm.o $(MBEDLIBS)
	$(CC) $(LINK_ARGS) $(GCM_WRAP) -o $@ $^ $(LDLIBS)

$(JSC): $(O)/tools/jsc.o $(JSC_QJS_OBJS)
	$(CC) $(LINK_ARGS) -o $@.tmp $(O)/tools/jsc.o $(JSC_QJS_OBJS) $(LDLIBS)
	mv $@.tmp $@

ifneq ($(JS),)
$(BUNDLE): $(JS) $(JSC)
	@mkdir -p $(@D)
	$(EMU) $(JSC) $(JS) $@.tmp
	mv $@.tmp $@
endif
