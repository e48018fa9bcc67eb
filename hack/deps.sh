#!/bin/sh
# Installs every Debian package that building, testing and running locally
# need, and any named as arguments. Idempotent: packages already present are
# left alone.
set -eu

# Building and running the server (deploy/Dockerfile's build stage installs the same -dev packages).
build_packages="
build-essential cmake pkg-config
liblua5.4-dev lua5.4 lua-cjson lua-cjson-dev
libmicrohttpd-dev libgnutls28-dev nettle-dev libcurl4-gnutls-dev libyaml-dev
"
# The tests, the local sandbox, fuzzing (clang's libFuzzer) and memcheck.
test_packages="
gnutls-bin openssl curl ca-certificates
lua-busted lua-check python3 python3-yaml procps kubectl
clang-format
clang libclang-rt-14-dev valgrind
"
# Arguments: more packages to install the same way (hack/bench/deps.sh passes its own).
packages="$build_packages $test_packages $*"

missing=""
for p in $packages; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing="$missing $p"
  fi
done

if [ -n "$missing" ]; then
  echo "hack/deps.sh: installing:$missing"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  # shellcheck disable=SC2086 # word splitting of the package list is wanted
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
fi

echo "hack/deps.sh: all dependencies present"
