#!/bin/sh
# Builds the libFuzzer targets (fuzz/, into build-fuzz/), replays every crash
# reproducer in fuzz/regressions/<harness>/, then fuzzes each harness for
# SECONDS_EACH seconds (default 60) on a copy of its corpus, and prints one
# line of figures per harness.
#   hack/fuzz.sh                       every harness, 60 s each
#   hack/fuzz.sh 300 kubeconfig        one harness, 5 minutes
#   FUZZ_MERGE=1 hack/fuzz.sh 600      keep what was found: merge the run's new
#                                      inputs into fuzz/corpus/<harness>, minimised
#   FUZZ_JOBS=2 hack/fuzz.sh ...       libFuzzer -fork=2 (parallel workers)
#   hack/fuzz.sh --coverage [HARNESS...]  no fuzzing: line coverage of lua/ and
#                                      providers/ by the corpora, per file
# Exits non-zero if a reproducer or a fuzzer crashed (the crash file is named
# in the output; fuzz/README.md says how to turn it into a regression).
# Needs clang and libFuzzer (Debian: clang libclang-rt-14-dev); installs nothing.
set -eu
cd "$(dirname "$0")/.."

seconds=60
coverage=""
if [ "${1:-}" = --coverage ]; then
  coverage=1
  shift
fi
case "${1:-}" in
  '' | *[!0-9]*) ;;
  *) seconds=$1; shift ;;
esac
all="request_path identity_headers restart_body provider_id k8s_response cloud_xml cloud_json kubeconfig
exec_credential label_selector"
harnesses="${*:-$all}"
build="build-fuzz"
run_dir=$build/run

need_tools() {
  if ! command -v clang >/dev/null 2>&1; then
    echo "hack/fuzz.sh: clang not found; install it: apt-get install clang libclang-rt-14-dev" >&2
    exit 2
  fi
  runtime=$(clang -print-runtime-dir 2>/dev/null)/libclang_rt.fuzzer-x86_64.a
  if [ ! -f "$runtime" ] && [ ! -f "$(clang -print-file-name=libclang_rt.fuzzer-x86_64.a)" ]; then
    echo "hack/fuzz.sh: libFuzzer runtime not found; install it: apt-get install libclang-rt-14-dev" >&2
    exit 2
  fi
}

# The harness's dictionary: fuzz/dict/<harness>.dict plus the string literals of
# the Lua code it drives (the fuzzer cannot see Lua's string comparisons).
make_dict() {
  out=$build/dict/$1.dict
  mkdir -p "$build/dict"
  case $1 in
    request_path) sources="lua/infraops/*.lua" ;;
    identity_headers) sources="lua/infraops/authn.lua lua/infraops/authz.lua lua/infraops/auth_config.lua" ;;
    restart_body) sources="lua/infraops/restart.lua lua/infraops/restart_record.lua lua/infraops/url.lua" ;;
    provider_id) sources="providers/*.lua lua/infraops/providers.lua" ;;
    k8s_response) sources="lua/infraops/nodes.lua lua/infraops/restart_record.lua lua/infraops/auth_config.lua
      lua/infraops/k8s/client.lua providers/*.lua" ;;
    cloud_xml) sources="lua/infraops/xml.lua providers/aws.lua" ;;
    cloud_json) sources="providers/*.lua" ;;
    kubeconfig) sources="lua/infraops/k8s/*.lua" ;;
    exec_credential) sources="lua/infraops/k8s/credentials.lua lua/infraops/k8s/client.lua" ;;
    label_selector) sources="lua/infraops/label_selector.lua lua/infraops/guards.lua" ;;
    *) sources="" ;;
  esac
  {
    [ -f "fuzz/dict/$1.dict" ] && cat "fuzz/dict/$1.dict"
    # shellcheck disable=SC2086 # sources is a list of globs
    cat $sources | grep -oE '"[^"\\%]{2,48}"' | LC_ALL=C grep -v '[^ -~]' | LC_ALL=C sort -u
  } >"$out"
}

build_targets() {
  cmake -S fuzz -B "$build" -DCMAKE_C_COMPILER=clang >/dev/null
  cmake --build "$build" -j "$(nproc)" >/dev/null
}

# Runs every reproducer once, each on its own (libFuzzer stops at the first
# crash): each must now pass.
replay_regressions() {
  h=$1
  dir=fuzz/regressions/$h
  [ -d "$dir" ] || return 0
  log=$run_dir/$h/regressions.log
  : >"$log"
  total=0
  bad=""
  for f in $(find "$dir" -type f ! -name '*.md' | sort); do
    total=$((total + 1))
    "$build/fuzz_$h" -detect_leaks=0 -timeout=10 "$f" >>"$log" 2>&1 || bad="$bad $f"
  done
  [ "$total" -gt 0 ] || return 0
  if [ -z "$bad" ]; then
    echo "$h: $total regression input(s) pass"
    return 0
  fi
  echo "$h: REGRESSION: these reproducers fail again (see $log):" >&2
  for f in $bad; do
    echo "    $f" >&2
  done
  grep -aE '^FUZZ|^SUMMARY' "$log" | sort -u | sed 's/^/    /' >&2
  return 1
}

stat_of() { # stat_of NAME LOG: libFuzzer's -print_final_stats value
  sed -n "s/^stat::$1: *//p" "$2" | tail -n 1
}

fuzz_one() {
  h=$1
  work=$run_dir/$h
  mkdir -p "$work/artifacts"
  rm -rf "$work/corpus"
  cp -r "fuzz/corpus/$h" "$work/corpus" 2>/dev/null || mkdir -p "$work/corpus"
  make_dict "$h"
  log=$work/fuzz.log
  status=0
  fork=""
  [ -n "${FUZZ_JOBS:-}" ] && fork="-fork=$FUZZ_JOBS -ignore_crashes=0"
  # shellcheck disable=SC2086 # fork is empty or two flags
  "$build/fuzz_$h" "$work/corpus" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -malloc_limit_mb=1024 -detect_leaks=0 -print_final_stats=1 -dict="$build/dict/$h.dict" \
    -artifact_prefix="$work/artifacts/" $fork >"$log" 2>&1 || status=$?
  final=$(grep -E '^#[0-9]+[[:space:]]+(INITED|NEW|REDUCE|pulse|DONE|RELOAD)' "$log" | tail -n 1)
  cov=$(echo "$final" | sed -n 's/.* cov: \([0-9]*\).*/\1/p')
  ft=$(echo "$final" | sed -n 's/.* ft: \([0-9]*\).*/\1/p')
  lines=$(sed -n 's/^LUA: \([0-9]*\) distinct.*/\1/p' "$log" | tail -n 1)
  execs=$(stat_of number_of_executed_units "$log")
  [ -n "$execs" ] || execs=$(echo "$final" | sed -n 's/^#\([0-9]*\).*/\1/p')
  printf '%-17s %5ss %10s %8s %6s %7s %6s %6s  ' "$h" "$seconds" "${execs:--}" \
    "$(stat_of average_exec_per_sec "$log")" "${cov:--}" "${ft:--}" "$(stat_of new_units_added "$log")" "${lines:--}"
  if [ "$status" -ne 0 ]; then
    crash=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)
    echo "CRASH: ${crash:-see $log}"
    grep -E 'FUZZ |ERROR: |SUMMARY' "$log" | head -n 5 | sed 's/^/    /'
    return 1
  fi
  echo "ok"
  if [ "${FUZZ_MERGE:-}" = 1 ]; then
    merge_back "$h" "$work"
  fi
}

# The union of the repository's corpus and the run's, minimised (-merge=1
# keeps one input per new feature), replaces fuzz/corpus/<harness>.
merge_back() {
  merged=$2/merged
  rm -rf "$merged" && mkdir -p "$merged"
  "$build/fuzz_$1" -merge=1 -detect_leaks=0 -timeout=10 "$merged" "fuzz/corpus/$1" "$2/corpus" \
    >"$2/merge.log" 2>&1
  rm -rf "fuzz/corpus/$1" && mv "$merged" "fuzz/corpus/$1"
  echo "    fuzz/corpus/$1: $(find "fuzz/corpus/$1" -type f | wc -l) inputs after merging"
}

# Runs every corpus once with the line recorder on, then reports per file.
report_coverage() {
  mkdir -p "$run_dir/coverage"
  for h in $harnesses; do
    FUZZ_LUA_LINES="$run_dir/coverage/$h.lines" "$build/fuzz_$h" -runs=0 -detect_leaks=0 \
      "fuzz/corpus/$h" >"$run_dir/coverage/$h.log" 2>&1
  done
  # shellcheck disable=SC2046 # one file per harness
  lua5.4 fuzz/coverage.lua "$(pwd)" $(for h in $harnesses; do echo "$run_dir/coverage/$h.lines"; done)
}

# A function, so the shell has read all of it before running: editing this
# file during a long run cannot change what the run does.
main() {
  need_tools
  echo "== building $build"
  build_targets
  if [ -n "$coverage" ]; then
    report_coverage
    exit 0
  fi
  failed=0
  for h in $harnesses; do
    mkdir -p "$run_dir/$h"
    replay_regressions "$h" || failed=1
  done
  echo "== fuzzing ${seconds}s each"
  printf '%-17s %6s %10s %8s %6s %7s %6s %6s  %s\n' harness time execs exec/s cov ft new lua result
  for h in $harnesses; do
    fuzz_one "$h" || failed=1
  done
  exit $failed
}

main
