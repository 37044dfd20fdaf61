#!/usr/bin/env bash
# make test: every suite, each reported; fails if any fails.
set -uo pipefail
cd "$(dirname "$0")/.."
failed=()

section() { printf '\n==== %s\n' "$1"; }

section "C unit tests (meson)"
meson test -C dataplane/build --print-errorlogs || failed+=("C unit tests")

section "C unit tests under ASan + UBSan"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  meson test -C dataplane/build-asan --print-errorlogs || failed+=("C unit tests (ASan/UBSan)")

section "fuzzing: a short run of each libFuzzer target (make fuzz runs them longer)"
scripts/fuzz.sh "${FERRY_FUZZ_SECONDS:-10}" || failed+=("fuzzing")

section "TypeScript unit tests and the layout check"
node --test --test-reporter=spec build/tests/layout/*.test.js build/tests/conntrack/*.test.js build/tests/stt/*.test.js build/control/test/*.test.js || failed+=("TS unit/layout tests")

section "observability: metrics, dashboards, Prometheus, compose, OpenAPI"
node --test --test-reporter=spec --test-concurrency=1 build/tests/observability/*.test.js || failed+=("observability tests")

section "integration: ferryd + ferry-control in network namespaces"
node --test --test-reporter=spec --test-concurrency=1 build/tests/integration/*.test.js || failed+=("integration tests")

echo
if [ ${#failed[@]} -gt 0 ]; then
  echo "make test: FAILED: ${failed[*]}"
  exit 1
fi
echo "make test: all suites passed"
