# Thin wrapper: build.sh does the work (and caches what it can).
.PHONY: all ugate asan deps run test unit e2e bench clean

all: ugate

ugate:
	./build.sh

asan:
	./build.sh asan

deps:
	./build.sh deps

# The gateway with its embedded default config (see README).
run: deps ugate
	build/ugate run

# Everything: unit tests on Node, then the end-to-end suite against the
# release binary and again against the AddressSanitizer build.
test: deps
	./build.sh all
	test/run.sh

unit: deps
	test/run.sh unit

e2e: deps
	./build.sh all
	test/run.sh e2e

bench: ugate
	bench/relay.sh

clean:
	./build.sh clean
