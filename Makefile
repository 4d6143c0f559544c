# Thin wrapper: build.sh does the work (and caches what it can).
.PHONY: all ugate asan ipk packages deps run test unit e2e bench clean

all: ugate

ugate:
	./build.sh

asan:
	./build.sh asan

# OpenWrt packages (5 archs + luci-app-ugate) in build/ipk; no SDK needed.
ipk:
	./build.sh ipk

# Both package formats: .ipk (opkg, OpenWrt 24.10 and older) in build/ipk and
# APK v3 (apk, OpenWrt 25.12 and later) in build/apk/<arch>.
packages:
	./build.sh packages

deps:
	./build.sh deps

# The gateway with its embedded default config (see README).
run: deps ugate
	build/ugate run

# Everything: unit tests on Node, the end-to-end suite against the release
# binary and again against the AddressSanitizer build, then the packages
# (cross builds under qemu-user, .ipk and .apk checks, the QEMU router image).
test: deps
	./build.sh all
	./build.sh packages
	test/run.sh

unit: deps
	test/run.sh unit

e2e: deps
	./build.sh all
	test/run.sh e2e

# The benchmark suite (bench/run.sh; not part of test): rewrites docs/performance.md
# and docs/img/bench-*.png. BENCH_QUICK=1 for a ~2 min check of the suite.
bench: ugate
	bench/run.sh

clean:
	./build.sh clean
