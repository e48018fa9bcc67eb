#!/bin/sh
# Discovery throughput and latency: GET /apis/infraops.michael.io/v1 over mTLS
# with keep-alive, at 1, 16 and 64 connections, against myapiserver and two
# references serving the same bytes with the same TLS settings and
# client-certificate verification: nginx and a minimal Go net/http server
# (hack/bench/refservers/). Prints requests per second, p50 and p99 per server
# and connection count, the ratios, and the budget checks as OK/MISSED. A
# benchmark: it prints, it asserts nothing (it exits non-zero only when a
# server or the load generator fails). Stops everything it started on any exit.
#   hack/bench/discovery.sh
# Environment: BUILD_DIR (build), RUNS (3), DURATION (5, seconds a run),
# WARMUP (1, seconds before each run), CONNECTIONS ("1 16 64"),
# PORT_BASE (18741: myapiserver; +1 nginx, +2 Go).
set -eu
cd "$(dirname "$0")/../.."
ROOT=$PWD
PROG=discovery.sh

BUILD_DIR=${BUILD_DIR:-build}
RUNS=${RUNS:-3}
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-1}
CONNECTIONS=${CONNECTIONS:-"1 16 64"}
PORT_BASE=${PORT_BASE:-18741}
DPATH=/apis/infraops.michael.io/v1
SERVERS="myapiserver nginx go"

die() {
  printf '%s: %s\n' "$PROG" "$*" >&2
  exit 1
}

whole() { case $2 in '' | *[!0-9]*) die "$1: '$2' is not a whole number" ;; esac; }
whole RUNS "$RUNS"
whole DURATION "$DURATION"
whole WARMUP "$WARMUP"
whole PORT_BASE "$PORT_BASE"
for c in $CONNECTIONS; do whole CONNECTIONS "$c"; done
[ -n "$CONNECTIONS" ] || die "CONNECTIONS is empty"
[ "$RUNS" -ge 1 ] || die "RUNS must be at least 1"

MY_PORT=$PORT_BASE
NGINX_PORT=$((PORT_BASE + 1))
GO_PORT=$((PORT_BASE + 2))

# --- processes: every one started is stopped on any exit -----------------------

PIDS=""
cleanup() {
  for pid in $PIDS; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in $PIDS; do
    i=0
    while kill -0 "$pid" 2>/dev/null && [ "$i" -lt 50 ]; do
      sleep 0.1
      i=$((i + 1))
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  PIDS=""
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- build, certificates ---------------------------------------------------------

hack/bench/deps.sh >/dev/null

echo "$PROG: building myapiserver and loadgen in $BUILD_DIR/" >&2
cmake -S . -B "$BUILD_DIR" >/dev/null
cmake --build "$BUILD_DIR" -j "$(nproc)" --target myapiserver loadgen >/dev/null
BUILD=$(CDPATH='' cd -- "$BUILD_DIR" && pwd)

echo "$PROG: building the Go reference server" >&2
(
  cd hack/bench/refservers/goserver
  GOCACHE=$BUILD/go/cache GOPATH=$BUILD/go/path GOFLAGS=-mod=mod GOTOOLCHAIN=local GOPROXY=off \
    go build -o "$BUILD/refserver-go" .
)

[ -f certs/tls.crt ] || hack/gen.sh >/dev/null
if [ ! -f certs/admin.crt ]; then
  # The same client certificate as hack/run-local.sh's: CN=admin, O=system:masters.
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=admin/O=system:masters" \
    -keyout certs/admin.key -out certs/admin.csr 2>/dev/null
  printf 'extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature\n' >certs/admin.ext
  openssl x509 -req -in certs/admin.csr -CA certs/ca.crt -CAkey certs/ca.key -CAcreateserial \
    -days 365 -extfile certs/admin.ext -out certs/admin.crt 2>/dev/null
  rm -f certs/admin.csr certs/admin.ext
  chmod 600 certs/admin.key
fi
CERTS=$ROOT/certs

RUN=$BUILD/bench-discovery
rm -rf -- "$RUN"
mkdir -p -- "$RUN/nginx"

# curl with the admin client certificate; extra arguments follow.
mtls_curl() {
  curl -sS --max-time 5 --cacert "$CERTS/ca.crt" --cert "$CERTS/admin.crt" --key "$CERTS/admin.key" "$@"
}

# wait_ready NAME PID URL LOG: until URL answers 200 with the admin certificate,
# while PID lives (10 s at most).
wait_ready() {
  i=0
  until [ "$(mtls_curl -o /dev/null -w '%{http_code}' "$3" 2>/dev/null)" = 200 ]; do
    if ! kill -0 "$2" 2>/dev/null; then
      cat "$4" >&2
      die "$1 exited before it answered $3 (log above)"
    fi
    i=$((i + 1))
    [ "$i" -le 100 ] || die "$1 did not answer $3 in 10 s (log: $4)"
    sleep 0.1
  done
  kill -0 "$2" 2>/dev/null || die "$1 exited, and something else answers $3 (is the port taken?)"
}

# --- myapiserver, and the bytes it serves ---------------------------------------------

"$BUILD/myapiserver" --bind-address=127.0.0.1 --secure-port="$MY_PORT" \
  --tls-cert-file="$CERTS/tls.crt" --tls-private-key-file="$CERTS/tls.key" \
  --client-ca-file="$CERTS/ca.crt" --authentication-skip-lookup --log-level=warn \
  >"$RUN/myapiserver.log" 2>&1 &
PIDS="$PIDS $!"
wait_ready myapiserver "$!" "https://127.0.0.1:$MY_PORT$DPATH" "$RUN/myapiserver.log"

BODY=$RUN/discovery.json
mtls_curl -f -o "$BODY" "https://127.0.0.1:$MY_PORT$DPATH" || die "could not fetch $DPATH from myapiserver"
[ -s "$BODY" ] || die "myapiserver answered $DPATH with an empty body"
chmod 644 "$BODY"

# --- the references ----------------------------------------------------------------

# nginx as root starts its workers as "nobody", which may not reach files
# under a private directory: then the workers stay root (loopback only).
NGINX_USER=""
[ "$(id -u)" -ne 0 ] || NGINX_USER="user root;"
sed -e "s|@USER@|$NGINX_USER|" \
  -e "s|@RUN_DIR@|$RUN/nginx|g" \
  -e "s|@PORT@|$NGINX_PORT|g" \
  -e "s|@CERT@|$CERTS/tls.crt|g" \
  -e "s|@KEY@|$CERTS/tls.key|g" \
  -e "s|@CLIENT_CA@|$CERTS/ca.crt|g" \
  -e "s|@BODY@|$BODY|g" \
  hack/bench/refservers/nginx.conf.in >"$RUN/nginx/nginx.conf"
! grep -q '@[A-Z_]*@' "$RUN/nginx/nginx.conf" || die "unsubstituted placeholder in $RUN/nginx/nginx.conf"
nginx -p "$RUN/nginx/" -e "$RUN/nginx/error.log" -c "$RUN/nginx/nginx.conf" \
  >"$RUN/nginx/stdout.log" 2>&1 &
PIDS="$PIDS $!"
wait_ready nginx "$!" "https://127.0.0.1:$NGINX_PORT$DPATH" "$RUN/nginx/error.log"

"$BUILD/refserver-go" -addr "127.0.0.1:$GO_PORT" -cert "$CERTS/tls.crt" -key "$CERTS/tls.key" \
  -client-ca "$CERTS/ca.crt" -body "$BODY" -path "$DPATH" >"$RUN/go.log" 2>&1 &
PIDS="$PIDS $!"
wait_ready go "$!" "https://127.0.0.1:$GO_PORT$DPATH" "$RUN/go.log"

port_of() {
  case $1 in
  myapiserver) echo "$MY_PORT" ;;
  nginx) echo "$NGINX_PORT" ;;
  go) echo "$GO_PORT" ;;
  esac
}

# Same bytes from all three, and no answer without a client certificate.
for s in $SERVERS; do
  url="https://127.0.0.1:$(port_of "$s")$DPATH"
  mtls_curl -f -o "$RUN/check.$s" "$url" || die "$s: GET $DPATH failed"
  cmp -s "$BODY" "$RUN/check.$s" || die "$s does not serve the same bytes as myapiserver's first answer"
  code=$(curl -sS --max-time 5 --cacert "$CERTS/ca.crt" -o /dev/null -w '%{http_code}' "$url" 2>/dev/null) || true
  [ "$code" != 200 ] || die "$s answered $DPATH without a client certificate"
done

# --- load ----------------------------------------------------------------------------

RESULTS=$RUN/results.txt
: >"$RESULTS"
echo "$PROG: $RUNS run(s) of ${DURATION}s (+${WARMUP}s warm-up) per server and connection count" >&2
# Runs outermost and the servers innermost, so that drift in what else the
# machine is doing spreads over all three alike.
run=1
while [ "$run" -le "$RUNS" ]; do
  for c in $CONNECTIONS; do
    for s in $SERVERS; do
      printf '%s: run %d/%d, %s, %d connection(s)\n' "$PROG" "$run" "$RUNS" "$s" "$c" >&2
      if ! out=$("$BUILD/loadgen" --url "https://127.0.0.1:$(port_of "$s")$DPATH" \
        --cacert "$CERTS/ca.crt" --cert "$CERTS/admin.crt" --key "$CERTS/admin.key" \
        --connections "$c" --duration "$DURATION" --warmup "$WARMUP" --expect-status 200 2>"$RUN/loadgen.err"); then
        printf '%s\n' "$out" >&2
        cat "$RUN/loadgen.err" >&2
        die "loadgen failed against $s with $c connection(s)"
      fi
      line=$(printf '%s\n' "$out" | grep 'rps=' | tail -n 1)
      [ -n "$line" ] || die "loadgen printed no result against $s: $out"
      printf '%s %s %s %s\n' "$s" "$c" "$run" "$line" >>"$RESULTS"
      # Check the servers are still there (a crash would show as errors otherwise).
      for pid in $PIDS; do
        kill -0 "$pid" 2>/dev/null || die "a server exited during the runs (logs in $RUN/)"
      done
    done
  done
  run=$((run + 1))
done

# --- report --------------------------------------------------------------------------

# runstat SERVER CONNS KEY: "median min max" of KEY=value over the runs.
values() {
  awk -v s="$1" -v c="$2" -v k="$3" '
    $1 == s && $2 == c {
      for (i = 4; i <= NF; i++) {
        n = index($i, "=")
        if (n > 0 && substr($i, 1, n - 1) == k) print substr($i, n + 1)
      }
    }' "$RESULTS"
}
runstat() {
  values "$@" | sort -g | awk '
    { v[NR] = $1 }
    END {
      if (NR == 0) { print "0 0 0"; exit }
      m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
      print m, v[1], v[NR]
    }'
}
# total SERVER CONNS KEY: the sum of KEY=value over the runs.
total() { values "$@" | awk '{ t += $1 } END { print t + 0 }'; }
first() { echo "$1" | awk '{ print $1 }'; }
# ratio A B: A / B with two decimals, "-" when B is 0 or missing
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 > 0 && a != "-") printf "%.2f", a / b; else printf "-" }'; }

echo
echo "discovery: GET $DPATH, mTLS (client certificate verified), HTTP/1.1 keep-alive, 127.0.0.1"
echo "$RUNS run(s) of ${DURATION}s each after a ${WARMUP}s warm-up; $(nproc) CPU(s), load generator on the same machine"
echo "nginx: $(nginx -v 2>&1 | sed 's/^nginx version: //'), go: $(go version | awk '{ print $3 }'), body: $(wc -c <"$BODY" | tr -d ' ') bytes"
echo
printf '%-12s %5s  %9s %9s %9s  %8s  %8s %8s %8s  %6s %6s\n' server conns "rps med" min max "p50 ms" "p99 ms" min max errors reconn
for c in $CONNECTIONS; do
  for s in $SERVERS; do
    # shellcheck disable=SC2046 # the three words of runstat are wanted as arguments
    set -- $(runstat "$s" "$c" rps) $(runstat "$s" "$c" p50_ms) $(runstat "$s" "$c" p99_ms)
    printf '%-12s %5s  %9.0f %9.0f %9.0f  %8.3f  %8.3f %8.3f %8.3f  %6s %6s\n' "$s" "$c" "$1" "$2" "$3" "$4" "$7" "$8" "$9" \
      "$(total "$s" "$c" errors)" "$(total "$s" "$c" reconnects)"
  done
done

echo
printf '%5s  %20s  %23s\n' conns "myapiserver/go rps" "myapiserver/nginx p99"
for c in $CONNECTIONS; do
  printf '%5s  %20s  %23s\n' "$c" \
    "$(ratio "$(first "$(runstat myapiserver "$c" rps)")" "$(first "$(runstat go "$c" rps)")")" \
    "$(ratio "$(first "$(runstat myapiserver "$c" p99_ms)")" "$(first "$(runstat nginx "$c" p99_ms)")")"
done

echo
# Budget (informational): throughput at 16 and 64 >= Go's; p99 at 16 within 2x nginx's.
verdict() { awk -v ok="$1" 'BEGIN { print (ok ? "OK" : "MISSED") }'; }
has_conns() { case " $CONNECTIONS " in *" $1 "*) return 0 ;; esac; return 1; }
for c in 16 64; do
  if has_conns "$c"; then
    a=$(first "$(runstat myapiserver "$c" rps)")
    b=$(first "$(runstat go "$c" rps)")
    printf 'budget: rps at %s connections, myapiserver %.0f >= go %.0f: %s\n' "$c" "$a" "$b" \
      "$(verdict "$(awk -v a="$a" -v b="$b" 'BEGIN { print (a >= b) }')")"
  else
    echo "budget: rps at $c connections: not measured (CONNECTIONS=\"$CONNECTIONS\")"
  fi
done
if has_conns 16; then
  a=$(first "$(runstat myapiserver 16 p99_ms)")
  b=$(first "$(runstat nginx 16 p99_ms)")
  printf 'budget: p99 at 16 connections, myapiserver %.3f ms <= 2 x nginx %.3f ms: %s\n' "$a" "$b" \
    "$(verdict "$(awk -v a="$a" -v b="$b" 'BEGIN { print (a <= 2 * b) }')")"
else
  echo "budget: p99 at 16 connections: not measured (CONNECTIONS=\"$CONNECTIONS\")"
fi
echo "(raw results and logs: $RUN/)"
