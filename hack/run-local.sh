#!/bin/sh
# Builds myapiserver and runs it locally on https://127.0.0.1:8443, with no
# cluster: certificates from hack/gen.sh (certs/), and a client certificate for
# curl and kubectl (certs/admin.crt: CN=admin, O=system:masters, signed by the
# same CA, which the server trusts as its client CA). Without a cluster there
# is no SubjectAccessReview, so only system:masters certificates are allowed
# past the health endpoints (--authentication-skip-lookup: trust from flags).
# Ctrl-C stops it.
#   hack/run-local.sh [extra myapiserver flags...]
set -eu
cd "$(dirname "$0")/.."

cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc)" >/dev/null

[ -f certs/tls.crt ] || hack/gen.sh >/dev/null
if [ ! -f certs/admin.crt ]; then
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=admin/O=system:masters" \
    -keyout certs/admin.key -out certs/admin.csr 2>/dev/null
  printf 'extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature\n' >certs/admin.ext
  openssl x509 -req -in certs/admin.csr -CA certs/ca.crt -CAkey certs/ca.key -CAcreateserial \
    -days 365 -extfile certs/admin.ext -out certs/admin.crt 2>/dev/null
  rm -f certs/admin.csr certs/admin.ext
  chmod 600 certs/admin.key
fi

cat <<EOT
myapiserver on https://127.0.0.1:8443 (Ctrl-C stops it). Try:
  curl --cacert certs/ca.crt --cert certs/admin.crt --key certs/admin.key \\
       https://127.0.0.1:8443/apis/infraops.michael.io/v1
  curl --cacert certs/ca.crt https://127.0.0.1:8443/readyz?verbose

EOT
exec build/myapiserver --bind-address=127.0.0.1 --secure-port=8443 \
  --tls-cert-file=certs/tls.crt --tls-private-key-file=certs/tls.key \
  --client-ca-file=certs/ca.crt --authentication-skip-lookup "$@"
