#!/bin/sh
# Every benchmark in one command, against loopback fakes: discovery throughput
# and latency beside nginx and a Go server (discovery.sh), then the restart
# path, isolation, memory, start-up and scale figures (suite.lua), each as a
# median of several runs with min and max, and a table against the budgets.
# Prints; asserts nothing (exits non-zero only if something fails to run).
#   hack/bench/run.sh                 everything (about 10 minutes on 2 cores)
#   hack/bench/run.sh restart scale   only these suite sections (no discovery)
# Environment: RUNS (3), DURATION (5 s a discovery run), BUILD_DIR (build).
set -eu
cd "$(dirname "$0")/../.."
BUILD_DIR=${BUILD_DIR:-build}
RUNS=${RUNS:-3}
export RUNS BUILD_DIR

hack/bench/deps.sh >/dev/null
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD_DIR" -j "$(nproc)" >/dev/null

echo "machine: $(nproc) CPUs, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo);" \
  "load average $(cut -d' ' -f1-3 /proc/loadavg) (the load generator and the fakes share these CPUs)"
if [ $# -eq 0 ]; then
  echo "== discovery"
  hack/bench/discovery.sh
fi
MYAPISERVER_BUILD_DIR=$BUILD_DIR LUA_PATH="lua/?.lua;lua/?/init.lua;./?.lua;;" LUA_CPATH="$BUILD_DIR/lua/?.so;;" \
  exec lua5.4 hack/bench/suite.lua "$@"
