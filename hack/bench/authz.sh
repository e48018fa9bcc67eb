#!/bin/sh
# Server-side latency of cached vs uncached authorization (prints, asserts nothing).
#   hack/bench/authz.sh [requests]
set -eu
cd "$(dirname "$0")/../.."
[ -x build/myapiserver ] || { cmake -S . -B build >/dev/null && cmake --build build -j "$(nproc)" >/dev/null; }
LUA_PATH="lua/?.lua;lua/?/init.lua;./?.lua;;" LUA_CPATH="build/lua/?.so;;" exec lua5.4 hack/bench/authz.lua "$@"
