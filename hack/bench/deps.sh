#!/bin/sh
# Installs the Debian packages that only the benchmarks need (on top of
# hack/deps.sh): nginx and golang-go for the discovery benchmark's reference
# servers, valgrind and python3. Idempotent: packages already present are left
# alone.
#   hack/bench/deps.sh
set -eu

# Debian 12's "nginx" is the server itself (nginx-light only adds the echo
# module to it); the reference needs the http, ssl and core modules only.
packages="
nginx
golang-go
valgrind
python3
"

missing=""
for p in $packages; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing="$missing $p"
  fi
done

if [ -n "$missing" ]; then
  echo "hack/bench/deps.sh: installing:$missing"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  # shellcheck disable=SC2086 # word splitting of the package list is wanted
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
fi

echo "hack/bench/deps.sh: all benchmark dependencies present"
