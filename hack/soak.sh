#!/bin/sh
# The load soak (hack/soak.lua): mixed discovery, list, get and restart traffic
# at 64 connections against the real server and the loopback fakes, with cloud
# and kube-apiserver faults rotating between rounds, for DURATION. Prints
# progress every minute and a report; exits non-zero when an invariant broke
# (a crash, a request without an answer, a restart not accounted for exactly
# once by the fake clouds, growing memory, threads or fds). Timing never fails it.
#   hack/soak.sh            30 minutes
#   hack/soak.sh 90s        (or 10m, 1h)
# Environment: BUILD_DIR (or MYAPISERVER_BUILD_DIR; default build). Logs of the
# last run: $BUILD_DIR/soak/.
set -eu
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-${MYAPISERVER_BUILD_DIR:-build}}
DURATION=${1:-30m}

# A new build directory is RelWithDebInfo; an existing one keeps its settings
# (BUILD_DIR=build-asan soaks the sanitizer build hack/test.sh makes).
if [ -f "$BUILD_DIR/CMakeCache.txt" ]; then
  cmake -S . -B "$BUILD_DIR" >/dev/null
else
  cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
cmake --build "$BUILD_DIR" -j "$(nproc)" --target myapiserver loadgen lua_host_time >/dev/null

preload=""
if grep -q '^ENABLE_ASAN_UBSAN:BOOL=ON' "$BUILD_DIR/CMakeCache.txt"; then
  # lua5.4 loads the instrumented host modules: it must carry the runtime (as in hack/test.sh).
  preload="$(gcc -print-file-name=libasan.so):$(gcc -print-file-name=libubsan.so)"
fi
MYAPISERVER_BUILD_DIR=$BUILD_DIR LUA_PATH="lua/?.lua;lua/?/init.lua;./?.lua;;" LUA_CPATH="$BUILD_DIR/lua/?.so;;" \
  LD_PRELOAD="$preload" ASAN_OPTIONS="detect_leaks=0" exec lua5.4 hack/soak.lua "$DURATION"
