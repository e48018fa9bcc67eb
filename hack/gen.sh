#!/bin/sh
# hack/gen.sh: create a CA and a serving certificate for the APIService's Service.
#
# kube-aggregator dials the Service and verifies the serving certificate with
# ServerName SERVICE.NAMESPACE.svc against the APIService's spec.caBundle. Go
# ignores the CN, so the subjectAltNames are what matter.
#
# Works both as `cd hack && sh gen.sh` and as `hack/gen.sh` from the repository
# root; by default both write to <repo>/certs/. Run with --help for the options.
set -eu

PROG=gen.sh

usage() {
	cat <<'EOF'
Usage: gen.sh [options]

Creates a CA and a serving certificate for the APIService's Service, and
caBundle.txt (base64 of ca.crt on one line) for the APIService's spec.caBundle.
An existing CA in the output directory is reused (so a registered caBundle
stays valid) and only the serving certificate is reissued, unless --force.

Options:
  --namespace NS   namespace of the Service (env NAMESPACE; default: default)
  --service NAME   name of the Service (default: infraops-service)
  --out DIR        output directory, relative to the current directory
                   (env CERT_DIR; default: certs/ at the repository root)
  --dns NAME       extra DNS subjectAltName (repeatable)
  --ip ADDR        extra IP subjectAltName, IPv4 or IPv6 (repeatable)
                   (env EXTRA_SANS adds more: "DNS:foo,IP:10.0.0.5")
  --days N         validity of the serving certificate in days (default: 365;
                   a new CA is valid for 3650 days)
  --rsa            RSA 2048 keys instead of ECDSA P-256
  --force          create a new CA even if one exists (invalidates caBundle)
  -h, --help       show this help

Writes ca.crt, ca.key (0600), tls.crt, tls.key (0600) and caBundle.txt.
Subject alternative names: SERVICE, SERVICE.NS, SERVICE.NS.svc,
SERVICE.NS.svc.cluster.local, localhost, 127.0.0.1, plus the extra ones.
EOF
}

# Bad input: one clear line on stderr, exit 2, nothing written.
bad() {
	printf '%s: %s (see --help)\n' "$PROG" "$*" >&2
	exit 2
}

die() {
	printf '%s: %s\n' "$PROG" "$*" >&2
	exit 1
}

# DNS-1123 label: lowercase alphanumerics and '-', starts and ends alphanumeric, <= 63.
is_label() {
	case $1 in
	'' | -* | *- | *[!a-z0-9-]*) return 1 ;;
	esac
	[ "${#1}" -le 63 ]
}

# DNS-1123 subdomain (dot-separated labels, <= 253), optionally with a "*." wildcard.
is_dns_name() {
	_n=${1#\*.}
	[ -n "$_n" ] && [ "${#_n}" -le 253 ] || return 1
	case $_n in
	.* | *. | *..*) return 1 ;;
	esac
	_rest=$_n
	while :; do
		_label=${_rest%%.*}
		is_label "$_label" || return 1
		[ "$_rest" = "$_label" ] && return 0
		_rest=${_rest#*.}
	done
}

is_ipv4() {
	case $1 in
	*[!0-9.]* | .* | *. | *..*) return 1 ;;
	*.*.*.*.*) return 1 ;;
	*.*.*.*) ;;
	*) return 1 ;;
	esac
	_rest=$1
	while :; do
		_octet=${_rest%%.*}
		# at most 3 digits, value <= 255, no leading zeros (ambiguous octal)
		[ "${#_octet}" -le 3 ] || return 1
		case $_octet in 0?*) return 1 ;; esac
		[ "$_octet" -le 255 ] || return 1
		[ "$_rest" = "$_octet" ] && return 0
		_rest=${_rest#*.}
	done
}

# "Looks like IPv6": hex groups and colons, at most one "::", optional trailing
# dotted IPv4; openssl does the exact parse.
is_ipv6() {
	case $1 in
	*:*:*) ;;
	*) return 1 ;;
	esac
	case $1 in
	*:::* | *::*::*) return 1 ;;
	esac
	_v6=$1
	case $1 in
	*.*)
		is_ipv4 "${1##*:}" || return 1
		_v6=${1%:*}:0
		;;
	esac
	case $_v6 in
	*[!0-9a-fA-F:]*) return 1 ;;
	esac
	_rest=$_v6
	_groups=0
	while :; do
		_g=${_rest%%:*}
		[ "${#_g}" -le 4 ] || return 1
		_groups=$((_groups + 1))
		[ "$_rest" = "$_g" ] && break
		_rest=${_rest#*:}
	done
	[ "$_groups" -le 8 ]
}

is_ip() {
	is_ipv4 "$1" || is_ipv6 "$1"
}

# Newline-separated lists of SANs (deduplicated).
NL='
'
DNS_SANS=
IP_SANS=

add_dns() {
	is_dns_name "$1" || bad "invalid DNS name '$1' (lowercase DNS-1123 name expected)"
	case "$NL$DNS_SANS" in *"$NL$1$NL"*) return 0 ;; esac
	DNS_SANS="$DNS_SANS$1$NL"
}

add_ip() {
	is_ip "$1" || bad "invalid IP address '$1' (IPv4 or IPv6 expected)"
	case "$NL$IP_SANS" in *"$NL$1$NL"*) return 0 ;; esac
	IP_SANS="$IP_SANS$1$NL"
}

# --- options ------------------------------------------------------------------

NAMESPACE=${NAMESPACE:-default}
SERVICE=infraops-service
OUT=${CERT_DIR:-}
DAYS=365
CA_DAYS=3650
FORCE=0
KEYTYPE=ec
EXTRA_DNS=
EXTRA_IP=

need_arg() {
	[ "$2" -ge 2 ] || bad "option $1 needs a value"
}

while [ "$#" -gt 0 ]; do
	opt=$1
	case $opt in
	--*=*)
		# --opt=value: split and re-dispatch
		shift
		set -- "${opt%%=*}" "${opt#*=}" "$@"
		continue
		;;
	esac
	case $opt in
	--namespace | -n)
		need_arg "$opt" "$#"
		NAMESPACE=$2
		shift 2
		;;
	--service)
		need_arg "$opt" "$#"
		SERVICE=$2
		shift 2
		;;
	--out | -o)
		need_arg "$opt" "$#"
		[ -n "$2" ] || bad "option $opt needs a non-empty value"
		OUT=$2
		shift 2
		;;
	--dns)
		need_arg "$opt" "$#"
		EXTRA_DNS="$EXTRA_DNS$2$NL"
		shift 2
		;;
	--ip)
		need_arg "$opt" "$#"
		EXTRA_IP="$EXTRA_IP$2$NL"
		shift 2
		;;
	--days)
		need_arg "$opt" "$#"
		DAYS=$2
		shift 2
		;;
	--rsa)
		KEYTYPE=rsa
		shift
		;;
	--force | -f)
		FORCE=1
		shift
		;;
	-h | --help)
		usage
		exit 0
		;;
	*)
		bad "unknown option '$opt'"
		;;
	esac
done

# --- validation (before anything is written) -----------------------------------

is_label "$NAMESPACE" || bad "invalid namespace '$NAMESPACE' (must be a DNS-1123 label: lowercase a-z, 0-9, '-', at most 63 chars)"
is_label "$SERVICE" || bad "invalid service name '$SERVICE' (must be a DNS-1123 label: lowercase a-z, 0-9, '-', at most 63 chars)"
case $DAYS in
'' | *[!0-9]* | 0 | 0*) bad "invalid --days '$DAYS' (positive integer expected)" ;;
esac
[ "${#DAYS}" -le 5 ] || bad "invalid --days '$DAYS' (at most 99999)"

add_dns "$SERVICE"
add_dns "$SERVICE.$NAMESPACE"
add_dns "$SERVICE.$NAMESPACE.svc"
add_dns "$SERVICE.$NAMESPACE.svc.cluster.local"
add_dns localhost
add_ip 127.0.0.1

old_ifs=$IFS
IFS=$NL
for name in $EXTRA_DNS; do add_dns "$name"; done
for addr in $EXTRA_IP; do add_ip "$addr"; done
IFS=,
for san in ${EXTRA_SANS:-}; do
	# strip surrounding blanks
	san=${san#"${san%%[! ]*}"}
	san=${san%"${san##*[! ]}"}
	case $san in
	'') ;;
	DNS:* | dns:*) add_dns "${san#*:}" ;;
	IP:* | ip:*) add_ip "${san#*:}" ;;
	*) bad "invalid EXTRA_SANS entry '$san' (expected DNS:name or IP:address)" ;;
	esac
done
IFS=$old_ifs

command -v openssl >/dev/null 2>&1 || die "openssl not found in PATH"

# Default output: certs/ at the repository root (the parent of hack/), whatever
# the current directory is.
if [ -z "$OUT" ]; then
	script_dir=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd) || die "cannot locate the script directory"
	OUT=$(dirname -- "$script_dir")/certs
fi

# Existing CA: reuse unless --force. Half a CA is an error, not a silent reset.
REUSE_CA=0
if [ "$FORCE" -eq 0 ]; then
	if [ -f "$OUT/ca.crt" ] && [ -f "$OUT/ca.key" ]; then
		REUSE_CA=1
	elif [ -f "$OUT/ca.crt" ] || [ -f "$OUT/ca.key" ]; then
		die "$OUT has only one of ca.crt/ca.key; restore it or use --force to create a new CA"
	fi
fi

# --- generation -----------------------------------------------------------------

umask 077
mkdir -p -- "$OUT" || die "cannot create $OUT"
OUT=$(CDPATH='' cd -- "$OUT" && pwd) || die "cannot enter $OUT"
WORK=$(mktemp -d "$OUT/.gen.XXXXXX") || die "cannot create a temporary directory in $OUT"
trap 'rm -rf -- "$WORK"' EXIT
trap 'exit 130' HUP INT TERM

# Run a command quietly; on failure show its output (openssl's error) and stop.
run() {
	if ! "$@" >"$WORK/log" 2>&1; then
		printf '%s: failed: %s\n' "$PROG" "$*" >&2
		cat "$WORK/log" >&2
		exit 1
	fi
}

genkey() {
	if [ "$KEYTYPE" = rsa ]; then
		run openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$1"
	else
		run openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1"
	fi
}

serial() {
	# 127-bit random positive serial
	printf '0x%s' "$(openssl rand -hex 16 | sed 's/^./7/')"
}

{
	printf '[req]\ndistinguished_name = dn\nprompt = no\n[dn]\n'
	printf '[v3_ca]\n'
	printf 'basicConstraints = critical,CA:TRUE\n'
	printf 'keyUsage = critical,keyCertSign,cRLSign\n'
	printf 'subjectKeyIdentifier = hash\n'
	printf '[v3_serving]\n'
	printf 'basicConstraints = CA:FALSE\n'
	printf 'keyUsage = digitalSignature,keyEncipherment\n'
	printf 'extendedKeyUsage = serverAuth\n'
	printf 'subjectKeyIdentifier = hash\n'
	printf 'authorityKeyIdentifier = keyid,issuer\n'
	printf 'subjectAltName = @alt_names\n'
	printf '[alt_names]\n'
	i=0
	IFS=$NL
	for name in $DNS_SANS; do
		i=$((i + 1))
		printf 'DNS.%d = %s\n' "$i" "$name"
	done
	i=0
	for addr in $IP_SANS; do
		i=$((i + 1))
		printf 'IP.%d = %s\n' "$i" "$addr"
	done
	IFS=$old_ifs
} >"$WORK/openssl.cnf"

if [ "$REUSE_CA" -eq 1 ]; then
	# The existing CA must be usable: key matches, still valid for the leaf's lifetime.
	run openssl x509 -in "$OUT/ca.crt" -noout -pubkey -out "$WORK/ca.pub"
	run openssl pkey -in "$OUT/ca.key" -pubout -out "$WORK/ca.key.pub"
	cmp -s "$WORK/ca.pub" "$WORK/ca.key.pub" || die "$OUT/ca.key does not match $OUT/ca.crt; use --force to create a new CA"
	openssl x509 -in "$OUT/ca.crt" -noout -checkend 0 >/dev/null 2>&1 || die "$OUT/ca.crt has expired; use --force to create a new CA"
	if ! openssl x509 -in "$OUT/ca.crt" -noout -checkend $((DAYS * 86400)) >/dev/null 2>&1; then
		printf '%s: warning: the existing CA expires before the serving certificate (%s days)\n' "$PROG" "$DAYS" >&2
	fi
	CA_CRT=$OUT/ca.crt
	CA_KEY=$OUT/ca.key
else
	genkey "$WORK/ca.key"
	run openssl req -x509 -new -config "$WORK/openssl.cnf" -extensions v3_ca \
		-key "$WORK/ca.key" -subj "/CN=$SERVICE-ca@$(date +%s)" \
		-days "$CA_DAYS" -sha256 -set_serial "$(serial)" -out "$WORK/ca.crt"
	CA_CRT=$WORK/ca.crt
	CA_KEY=$WORK/ca.key
fi

genkey "$WORK/tls.key"
run openssl req -new -config "$WORK/openssl.cnf" -key "$WORK/tls.key" \
	-subj "/CN=$SERVICE.$NAMESPACE.svc" -out "$WORK/tls.csr"
run openssl x509 -req -in "$WORK/tls.csr" -CA "$CA_CRT" -CAkey "$CA_KEY" \
	-set_serial "$(serial)" -days "$DAYS" -sha256 \
	-extfile "$WORK/openssl.cnf" -extensions v3_serving -out "$WORK/tls.crt"
run openssl verify -CAfile "$CA_CRT" -purpose sslserver "$WORK/tls.crt"

if [ "$REUSE_CA" -eq 1 ]; then
	cp -- "$OUT/ca.crt" "$WORK/ca.crt"
fi
run openssl base64 -A -in "$WORK/ca.crt" -out "$WORK/caBundle.txt"
# openssl base64 -A ends without a newline on some versions: make it one text line.
[ -z "$(tail -c 1 "$WORK/caBundle.txt")" ] || echo >>"$WORK/caBundle.txt"

chmod 600 "$WORK/tls.key"
chmod 644 "$WORK/tls.crt" "$WORK/ca.crt" "$WORK/caBundle.txt"
if [ "$REUSE_CA" -eq 0 ]; then
	chmod 600 "$WORK/ca.key"
	mv -f -- "$WORK/ca.key" "$OUT/ca.key"
	mv -f -- "$WORK/ca.crt" "$OUT/ca.crt"
fi
mv -f -- "$WORK/tls.key" "$OUT/tls.key"
mv -f -- "$WORK/tls.crt" "$OUT/tls.crt"
mv -f -- "$WORK/caBundle.txt" "$OUT/caBundle.txt"

if [ "$REUSE_CA" -eq 1 ]; then
	ca_note="reused the existing CA; caBundle unchanged"
else
	ca_note="created a new CA"
fi
sans=$(printf '%s' "$DNS_SANS$IP_SANS" | tr '\n' ' ')
printf 'Wrote ca.crt ca.key tls.crt tls.key caBundle.txt to %s (%s)\n' "$OUT" "$ca_note"
printf 'Serving certificate for %s.%s.svc, SANs: %s\n' "$SERVICE" "$NAMESPACE" "${sans% }"
printf 'caBundle for the APIService (spec.caBundle):\n'
cat "$OUT/caBundle.txt"
