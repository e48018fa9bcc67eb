#!/bin/sh
# Runs every test: ctest (pure C), luacheck, and busted (Lua units, the host
# bindings, end-to-end specs against the real binary), first in a normal build,
# then again in an AddressSanitizer + UndefinedBehaviorSanitizer build.
#   hack/test.sh            both passes
#   hack/test.sh --quick    the normal build only
#   hack/test.sh --asan     the sanitizer build only
# Extra arguments after -- go to busted (e.g. -- spec/lua).
set -eu
cd "$(dirname "$0")/.."

passes="normal asan"
case "${1:-}" in
  --quick) passes="normal"; shift ;;
  --asan) passes="asan"; shift ;;
esac
[ "${1:-}" = "--" ] && shift
busted_args="$*"

total_passed=0
total_failed=0

count_ctest() { # reads ctest's summary line: "100% tests passed, 0 tests failed out of 5"
  n=$(sed -n 's/.*tests passed, \([0-9]*\) tests\{0,1\} failed out of \([0-9]*\).*/\1 \2/p' "$1" | tail -n 1)
  [ -n "$n" ] || { echo "0 0"; return; }
  set -- $n
  echo "$(($2 - $1)) $1"
}

count_busted() { # "12 successes / 0 failures / 1 errors / 0 pending : 0.5 seconds"
  line=$(grep -E '[0-9]+ successes? / [0-9]+ failures? / [0-9]+ errors?' "$1" | tail -n 1)
  ok=$(echo "$line" | sed -n 's/^[^0-9]*\([0-9]*\) success.*/\1/p')
  bad=$(echo "$line" | sed -n 's/.* \([0-9]*\) failures\{0,1\} \/ \([0-9]*\) error.*/\1 \2/p')
  set -- ${bad:-0 0}
  echo "${ok:-0} $(($1 + $2))"
}

run_pass() {
  pass=$1
  build_dir=build
  cmake_args="-DCMAKE_BUILD_TYPE=RelWithDebInfo"
  preload=""
  if [ "$pass" = asan ]; then
    build_dir=build-asan
    cmake_args="-DCMAKE_BUILD_TYPE=Debug -DENABLE_ASAN_UBSAN=ON"
    # The host modules are loaded by a stock lua5.4, which must carry the runtime.
    preload="$(gcc -print-file-name=libasan.so):$(gcc -print-file-name=libubsan.so)"
  fi
  echo "== $pass build ($build_dir)"
  # shellcheck disable=SC2086 # cmake_args and busted_args are word lists
  cmake -S . -B "$build_dir" $cmake_args >/dev/null
  cmake --build "$build_dir" -j "$(nproc)" >/dev/null

  log=$(mktemp)
  echo "== $pass: ctest"
  status=0
  (cd "$build_dir" && ctest --output-on-failure) >"$log" 2>&1 || status=1
  cat "$log"
  set -- $(count_ctest "$log")
  total_passed=$((total_passed + $1)); total_failed=$((total_failed + $2 + status * ($2 == 0)))

  echo "== $pass: busted"
  status=0
  MYAPISERVER_BUILD_DIR="$build_dir" LD_PRELOAD="$preload" \
    ASAN_OPTIONS="detect_leaks=0:abort_on_error=1" UBSAN_OPTIONS="print_stacktrace=1" \
    hack/busted -o utfTerminal $busted_args >"$log" 2>&1 || status=1
  cat "$log"
  set -- $(count_busted "$log")
  total_passed=$((total_passed + $1)); total_failed=$((total_failed + $2 + status * ($2 == 0)))
  rm -f "$log"
}

echo "== luacheck"
if luacheck -q lua spec hack/bench hack/soak.lua fuzz; then :; else total_failed=$((total_failed + 1)); fi

for pass in $passes; do
  run_pass "$pass"
done

echo "$total_passed passed, $total_failed failed"
[ "$total_failed" -eq 0 ]
