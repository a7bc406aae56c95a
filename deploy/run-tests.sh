#!/usr/bin/env bash
# Builds frl and runs every test, twice: the portable release build, then
# the same suite under AddressSanitizer + UndefinedBehaviorSanitizer.
# This is the README's test command and what CI runs (.ci/run).
#
#   deploy/run-tests.sh            both builds
#   FRL_TEST_QUICK=1 deploy/run-tests.sh   the release build only
set -euo pipefail
cd "$(dirname "$0")/.."
deploy/setup-debian.sh

jobs=$(nproc 2>/dev/null || echo 2)
werror=OFF
[[ "${CI:-}" == "true" ]] && werror=ON

run_suite() { # build-dir, extra cmake args...
  local dir=$1; shift
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFRL_WERROR=$werror "$@" >/dev/null
  cmake --build "$dir" -j "$jobs"
  (cd "$dir" && ctest --output-on-failure -j "$jobs")
}

echo "== portable build: tests" >&2
run_suite build
if [[ "${FRL_TEST_QUICK:-}" != "1" ]]; then
  echo "== ASan+UBSan build: tests" >&2
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    run_suite build-asan -DFRL_SANITIZE=ON
fi
