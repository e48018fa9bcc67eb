#!/bin/sh
# Restart latency and 100 concurrent restarts against loopback fakes (prints, asserts nothing).
#   hack/bench/restart.sh [sequential-count]
set -eu
cd "$(dirname "$0")/../.."
[ -x build/myapiserver ] || { cmake -S . -B build >/dev/null && cmake --build build -j "$(nproc)" >/dev/null; }
LUA_PATH="lua/?.lua;lua/?/init.lua;./?.lua;;" LUA_CPATH="build/lua/?.so;;" exec lua5.4 hack/bench/restart.lua "$@"
