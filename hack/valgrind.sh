#!/bin/sh
# Runs end-to-end specs with every myapiserver process under valgrind memcheck
# (the normal build: sanitizers and valgrind do not mix), then reads every
# valgrind log: any invalid read or write, use of uninitialised memory, bad
# free, or definite/indirect leak fails the run. Exits non-zero on any finding
# or failed spec, with the logs' paths.
#   hack/valgrind.sh                  the default set of specs (below)
#   hack/valgrind.sh spec/e2e/x.lua   these specs instead
set -eu
cd "$(dirname "$0")/.."
BUILD=${MYAPISERVER_BUILD_DIR:-build}
command -v valgrind >/dev/null || { echo "valgrind.sh: valgrind is not installed (hack/deps.sh)" >&2; exit 2; }
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD" -j "$(nproc)" >/dev/null

# The specs whose servers see the widest traffic: every route, authentication
# kind, restart outcome and attack. Specs built on short deadlines (faults_spec's
# one-second Kubernetes timeouts, lifecycle_spec's slow-request races) cannot
# hold them 20-50 times slower under memcheck; the ASan + UBSan pass of
# hack/test.sh runs them with the same checks for invalid accesses and leaks.
specs=${*:-"spec/e2e/server_spec.lua spec/e2e/identity_spec.lua spec/e2e/restart_spec.lua spec/e2e/security_spec.lua spec/e2e/plugin_spec.lua"}

logs=$(mktemp -d)
wrap="valgrind --tool=memcheck --error-exitcode=99 --leak-check=full --show-leak-kinds=definite,indirect"
# A child forked to run an exec credential plugin is silent (it becomes the plugin at exec).
wrap="$wrap --errors-for-leak-kinds=definite,indirect --track-origins=yes --num-callers=30"
wrap="$wrap --child-silent-after-fork=yes"
wrap="$wrap --log-file=$logs/valgrind.%p.log"
status=0
# shellcheck disable=SC2086 # specs is a word list
# Tests tagged #timing hold the server to deadlines of a second or two (slow-connection
# reaping); they run in both passes of hack/test.sh, not 20-50 times slower here.
MYAPISERVER_BUILD_DIR=$BUILD MYAPISERVER_WRAP=$wrap hack/busted -o utfTerminal --exclude-tags=timing $specs ||
  status=1

count=0
bad=""
for log in "$logs"/valgrind.*.log; do
  [ -s "$log" ] || continue # a silent forked child
  count=$((count + 1))
  # No summary: the server never exited by itself (killed), so its leaks were never checked.
  grep -q "ERROR SUMMARY: 0 errors" "$log" || bad="$bad $log"
done
echo "valgrind.sh: $count server processes ran under memcheck"
if [ -n "$bad" ]; then
  for log in $bad; do
    echo "== $log"
    grep -E "ERROR SUMMARY|Invalid|uninitialised|definitely lost|indirectly lost|at 0x|by 0x" "$log" | head -40
  done
  echo "valgrind.sh: memcheck findings in:$bad"
  exit 1
fi
[ "$count" -gt 0 ] || { echo "valgrind.sh: no server ran under valgrind" >&2; exit 1; }
[ "$status" -eq 0 ] || { echo "valgrind.sh: specs failed under valgrind (logs in $logs)"; exit 1; }
rm -rf "$logs"
echo "valgrind.sh: clean"
