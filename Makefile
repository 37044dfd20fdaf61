# Ferry: `make demo` and `make test` are all a new machine needs (Debian, as root).
SHELL := /bin/bash
DP_BUILD := dataplane/build
DP_ASAN := dataplane/build-asan
DP_FUZZ := dataplane/build-fuzz
FUZZ_SECONDS ?= 300
FERRYD := $(DP_BUILD)/ferryd
export npm_config_nodedir := $(if $(wildcard /usr/include/node),/usr,)

.PHONY: all deps build dataplane dataplane-asan dataplane-fuzz control test test-c test-layout test-ts \
        test-integration demo bench fuzz soak clean

all: build

deps:
	@scripts/install-deps.sh

build: deps dataplane control

dataplane:
	@if [ ! -f $(DP_BUILD)/build.ninja ]; then meson setup $(DP_BUILD) dataplane >/dev/null; fi
	@ninja -C $(DP_BUILD) >/dev/null

# the C unit tests again, under AddressSanitizer and UndefinedBehaviorSanitizer
dataplane-asan:
	@if [ ! -f $(DP_ASAN)/build.ninja ]; then meson setup $(DP_ASAN) dataplane -Db_sanitize=address,undefined \
	  -Db_lundef=false -Dbuildtype=debugoptimized >/dev/null; fi
	@ninja -C $(DP_ASAN) >/dev/null

# libFuzzer targets (clang, ASan + UBSan)
dataplane-fuzz:
	@if [ ! -f $(DP_FUZZ)/build.ninja ]; then CC=clang-14 meson setup $(DP_FUZZ) dataplane -Dfuzz=true \
	  -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debugoptimized >/dev/null; fi
	@ninja -C $(DP_FUZZ) fuzz_parse fuzz_ctl fuzz_ct fuzz_stt >/dev/null

control:
	@node proto/gen.mjs --ts control/src/gen/proto.ts
	@npx tsc -p tsconfig.json

test: build dataplane-asan dataplane-fuzz
	@scripts/run-tests.sh

test-c: build
	@meson test -C $(DP_BUILD) --print-errorlogs

test-ts: build
	@node --test build/tests/layout/*.test.js build/tests/conntrack/*.test.js build/tests/stt/*.test.js build/control/test/*.test.js

test-integration: build
	@node --test --test-concurrency=1 build/tests/integration/*.test.js

demo: build
	@scripts/demo.sh

bench: build
	@node build/bench/bench.js

# SOAK_SECONDS (default 600) of mixed traffic and control-plane churn on two nodes; not part of `make test`
soak: build
	@node build/tests/soak/soak.js

# the fuzzers for FUZZ_SECONDS each (default 5 minutes), corpora kept in .ferry-run/fuzz
fuzz: build dataplane-fuzz
	@scripts/fuzz.sh $(FUZZ_SECONDS)

clean:
	rm -rf $(DP_BUILD) $(DP_ASAN) $(DP_FUZZ) build
