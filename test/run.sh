#!/usr/bin/env bash
# Run the test suites and print one closing line "N passed, N failed".
#   test/run.sh          unit, e2e against build/ugate and build/ugate-asan, package
#   test/run.sh unit     unit tests only (Node; three compile C against build/mbedtls-src: ./build.sh first)
#   test/run.sh e2e      e2e suites only
#   test/run.sh package  cross builds, .ipk and .apk files, the QEMU router image (needs ./build.sh packages)
set -uo pipefail
cd "$(dirname "$0")/.."
what=${1:-all}
passed=0 failed=0 status=0
failures=$(mktemp)  # "suite: not ok ..." lines, repeated after the closing line's count
trap 'rm -f "$failures"' EXIT

suite() {  # suite NAME ENV... -- TAP-ARGS...
  local name=$1; shift
  local envs=()
  while [ "$1" != "--" ]; do envs+=("$1"); shift; done
  shift
  echo "### $name" >&2
  local out rc
  out=$(mktemp)
  env "${envs[@]}" npx tap "$@" 2>&1 | tee "$out"
  rc=${PIPESTATUS[0]}
  # tap's closing line: "# { total: N, pass: N, fail: N, ... }"
  local summary p f
  summary=$(grep -E '^# \{ total: ' "$out" | tail -n 1)
  p=$(sed -nE 's/.*pass: ([0-9]+).*/\1/p' <<<"$summary")
  f=$(sed -nE 's/.*fail: ([0-9]+).*/\1/p' <<<"$summary")
  # Every failing assertion with its enclosing subtests, so the tail of a long log names it.
  awk -v suite="$name" '
    /^ *# Subtest: / { d = match($0, /[^ ]/); t[int((d - 1) / 4)] = substr($0, d + 11); next }
    /^ *not ok / { d = int((match($0, /[^ ]/) - 1) / 4); p = ""; for (i = 0; i < d; i++) p = p t[i] " > "; print suite ": " p substr($0, d * 4 + 1) }
  ' "$out" >>"$failures"
  rm -f "$out"
  passed=$((passed + ${p:-0}))
  failed=$((failed + ${f:-0}))
  if [ "$rc" -ne 0 ]; then
    status=1
    [ "${f:-0}" -gt 0 ] || failed=$((failed + 1))  # a crash or a bail-out counts as a failure
    echo "### $name: FAILED (tap exit $rc)" >&2
    echo "$name: tap exited $rc" >>"$failures"
  fi
}

check() {  # check NAME COMMAND...: a failing check counts as one failure
  local name=$1; shift
  echo "### $name" >&2
  if "$@"; then passed=$((passed + 1)); else status=1; failed=$((failed + 1)); echo "### $name: FAILED" >&2; echo "check: $name" >>"$failures"; fi
}

check "type check of the tests" npx tsc --noEmit -p test
check "format (prettier)" npx prettier --check --log-level=warn 'src/**/*.ts' 'test/**/*.ts' 'test/**/*.mjs' 'bench/**/*.ts' 'luci/**/*.js'
check "format (clang-format)" clang-format --dry-run --Werror native/*.c native/*.h native/tools/*.c bench/*.c test/native/*.c
check "no unused exports in src/" node test/tools/unused-exports.mjs

case $what in
  all | unit) suite unit -- test/unit ;;
esac
case $what in
  all | e2e)
    suite "e2e (build/ugate)" UGATE_BIN=build/ugate -- test/e2e
    suite "e2e (build/ugate-asan)" UGATE_BIN=build/ugate-asan \
      ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 -- test/e2e
    ;;
esac
case $what in
  all | package) suite package -- test/package ;;
esac
if [ -s "$failures" ]; then
  echo "### what failed"
  cat "$failures"
fi
echo "$passed passed, $failed failed"
exit $status
