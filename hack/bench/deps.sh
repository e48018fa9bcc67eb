#!/bin/sh
# Installs the Debian packages that only the benchmarks need, on top of
# hack/deps.sh's: nginx and golang-go for the discovery benchmark's reference
# servers, valgrind and python3. Idempotent: packages already present are left
# alone. (Debian 12's "nginx" is the server itself; nginx-light only adds the
# echo module to it.)
#   hack/bench/deps.sh
set -eu
cd "$(dirname "$0")/../.."
exec hack/deps.sh nginx golang-go valgrind python3
