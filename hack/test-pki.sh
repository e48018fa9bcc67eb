#!/usr/bin/env bash
# hack/test-pki.sh OUTDIR: the PKI the end-to-end tests need (ECDSA P-256, openssl).
#
# Regenerates everything on every run (into a staging directory, then moved into
# OUTDIR, so a failed run leaves the previous set in place). Prints one summary
# line on success; on failure prints openssl's error and exits non-zero.
#
#   serving-ca.crt/.key, serving.crt/.key    hack/gen.sh: localhost, 127.0.0.1,
#                                            infraops-service.default.svc, ...
#   client-ca.crt/.key                       client CA
#     alice.crt/.key                         CN=alice, O=dev, O=ops (clientAuth)
#     admin.crt/.key                         CN=admin, O=system:masters
#     expired.crt/.key                       CN=alice, O=dev, O=ops; validity 2020-01-01..02
#     server-only.crt/.key                   CN=alice; extendedKeyUsage=serverAuth only
#     intermediate-ca.crt/.key               intermediate CA (pathlen 0)
#       bob.crt, bob.key                     CN=bob, O=dev (leaf only)
#       bob-chain.crt                        bob.crt + intermediate-ca.crt (leaf first)
#   client-ca-2.crt/.key                     second, independent client CA
#     carol.crt/.key                         CN=carol
#   front-proxy-ca.crt/.key                  request-header CA
#     front-proxy-client.crt/.key            CN=front-proxy-client (clientAuth)
#     front-proxy-other.crt/.key             CN=not-allowed (clientAuth)
#   rogue-ca.crt/.key                        attacker's CA, same subject as front-proxy-ca
#     rogue-front-proxy.crt/.key             CN=front-proxy-client
#     rogue-alice.crt/.key                   CN=alice, O=dev, O=ops
set -euo pipefail

PROG=test-pki.sh

if [[ $# -ne 1 || -z $1 || $1 == -* ]]; then
	echo "usage: $PROG OUTDIR" >&2
	exit 2
fi
OUTDIR=$1
HACK_DIR=$(CDPATH='' cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)

umask 077
mkdir -p -- "$OUTDIR"
OUTDIR=$(CDPATH='' cd -- "$OUTDIR" && pwd)
STAGE=$(mktemp -d "$OUTDIR/.test-pki.XXXXXX")
WORK=$STAGE/.work
mkdir "$WORK"
trap 'rm -rf -- "$STAGE"' EXIT

# Run a command quietly; on failure show its output and stop.
run() {
	if ! "$@" >"$WORK/log" 2>&1; then
		echo "$PROG: failed: $*" >&2
		cat "$WORK/log" >&2
		exit 1
	fi
}

serial() {
	printf '0x%s' "$(openssl rand -hex 16 | sed 's/^./7/')"
}

cat >"$WORK/openssl.cnf" <<'EOF'
[req]
distinguished_name = dn
prompt = no
[dn]

[v3_ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash

[v3_intermediate]
basicConstraints = critical,CA:TRUE,pathlen:0
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid,issuer

[v3_client]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid,issuer

[v3_server_only]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid,issuer

# `openssl ca` is the only way in OpenSSL 3.0 to set an explicit notBefore/notAfter
# (x509 -not_before/-not_after arrived in 3.4; -days must be positive).
[ca]
default_ca = past_ca

[past_ca]
database = $ENV::PKI_WORK/index.txt
new_certs_dir = $ENV::PKI_WORK
serial = $ENV::PKI_WORK/serial
default_md = sha256
policy = policy_any
unique_subject = no
email_in_dn = no
copy_extensions = none

[policy_any]
commonName = supplied
organizationName = optional
EOF
export PKI_WORK=$WORK

key() { # NAME
	run openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$STAGE/$1.key"
}

ca() { # NAME SUBJECT
	key "$1"
	run openssl req -x509 -new -config "$WORK/openssl.cnf" -extensions v3_ca \
		-key "$STAGE/$1.key" -subj "$2" -days 3650 -sha256 -set_serial "$(serial)" \
		-out "$STAGE/$1.crt"
}

csr() { # NAME SUBJECT
	key "$1"
	run openssl req -new -config "$WORK/openssl.cnf" -key "$STAGE/$1.key" -subj "$2" \
		-out "$WORK/$1.csr"
}

sign() { # NAME SUBJECT ISSUER EXTENSIONS
	csr "$1" "$2"
	run openssl x509 -req -in "$WORK/$1.csr" -CA "$STAGE/$3.crt" -CAkey "$STAGE/$3.key" \
		-set_serial "$(serial)" -days 825 -sha256 \
		-extfile "$WORK/openssl.cnf" -extensions "$4" -out "$STAGE/$1.crt"
}

# Serving certificate: hack/gen.sh (ignoring the caller's NAMESPACE/CERT_DIR/EXTRA_SANS).
run env -u NAMESPACE -u CERT_DIR -u EXTRA_SANS sh "$HACK_DIR/gen.sh" \
	--force --namespace default --out "$WORK/serving"
mv "$WORK/serving/ca.crt" "$STAGE/serving-ca.crt"
mv "$WORK/serving/ca.key" "$STAGE/serving-ca.key"
mv "$WORK/serving/tls.crt" "$STAGE/serving.crt"
mv "$WORK/serving/tls.key" "$STAGE/serving.key"

# Client CA and its clients.
ca client-ca "/CN=myapiserver-test-client-ca"
sign alice "/CN=alice/O=dev/O=ops" client-ca v3_client
sign admin "/CN=admin/O=system:masters" client-ca v3_client
sign server-only "/CN=alice/O=dev/O=ops" client-ca v3_server_only

# Expired: validity entirely in the past.
: >"$WORK/index.txt"
csr expired "/CN=alice/O=dev/O=ops"
run openssl ca -batch -config "$WORK/openssl.cnf" -notext -preserveDN \
	-cert "$STAGE/client-ca.crt" -keyfile "$STAGE/client-ca.key" \
	-rand_serial -startdate 200101000000Z -enddate 200102000000Z \
	-extfile "$WORK/openssl.cnf" -extensions v3_client \
	-in "$WORK/expired.csr" -out "$STAGE/expired.crt"

# Intermediate CA under the client CA, and bob's chain (leaf first).
csr intermediate-ca "/CN=myapiserver-test-intermediate-ca"
run openssl x509 -req -in "$WORK/intermediate-ca.csr" \
	-CA "$STAGE/client-ca.crt" -CAkey "$STAGE/client-ca.key" \
	-set_serial "$(serial)" -days 3650 -sha256 \
	-extfile "$WORK/openssl.cnf" -extensions v3_intermediate -out "$STAGE/intermediate-ca.crt"
sign bob "/CN=bob/O=dev" intermediate-ca v3_client
cat "$STAGE/bob.crt" "$STAGE/intermediate-ca.crt" >"$STAGE/bob-chain.crt"

# Second, independent client CA (CA rotation).
ca client-ca-2 "/CN=myapiserver-test-client-ca-2"
sign carol "/CN=carol" client-ca-2 v3_client

# Front-proxy (request-header) CA.
ca front-proxy-ca "/CN=myapiserver-test-front-proxy-ca"
sign front-proxy-client "/CN=front-proxy-client" front-proxy-ca v3_client
sign front-proxy-other "/CN=not-allowed" front-proxy-ca v3_client

# The attacker's look-alikes.
# The attacker's CA copies the front-proxy CA's subject: only the signature
# tells them apart, so code that matched issuers by name would be caught.
ca rogue-ca "/CN=myapiserver-test-front-proxy-ca"
sign rogue-front-proxy "/CN=front-proxy-client" rogue-ca v3_client
sign rogue-alice "/CN=alice/O=dev/O=ops" rogue-ca v3_client

rm -rf -- "$WORK"
chmod 600 "$STAGE"/*.key
chmod 644 "$STAGE"/*.crt
count=0
for f in "$STAGE"/*; do
	mv -f -- "$f" "$OUTDIR/"
	count=$((count + 1))
done
echo "$PROG: wrote $count files to $OUTDIR"
