#!/bin/sh
# Prints the time from exec to the first answered /readyz and the idle RSS of
# myapiserver (median, min and max of N runs). A benchmark: it prints, it
# asserts nothing. Needs a build (build/) and certificates (hack/gen.sh).
#   hack/bench/startup.sh [runs]
set -eu
cd "$(dirname "$0")/../.."
runs=${1:-9}
[ -f certs/tls.crt ] || hack/gen.sh >/dev/null
bin=${MYAPISERVER_BIN:-build/myapiserver}
port=18643

ms_now() { date +%s%N | awk '{ printf "%.3f", $1 / 1000000 }'; }

starts=""; rsss=""
i=0
while [ "$i" -lt "$runs" ]; do
  t0=$(ms_now)
  # No cluster here: trust from flags only (the ConfigMap fetch is not counted, as the issue asks).
  "$bin" --bind-address=127.0.0.1 --secure-port=$port --tls-cert-file=certs/tls.crt \
    --tls-private-key-file=certs/tls.key --log-level=warn --authentication-skip-lookup &
  pid=$!
  tries=0
  until curl -sf --cacert certs/ca.crt "https://127.0.0.1:$port/readyz" >/dev/null 2>&1; do
    tries=$((tries + 1))
    if [ "$tries" -gt 2000 ] || ! kill -0 "$pid" 2>/dev/null; then
      echo "startup.sh: the server did not answer /readyz" >&2
      kill "$pid" 2>/dev/null || true
      exit 1
    fi
  done
  t1=$(ms_now)
  sleep 1
  rss=$(awk '/^VmRSS/ { print $2 }' "/proc/$pid/status")
  kill -TERM "$pid"; wait "$pid" || true
  starts="$starts $(echo "$t1 $t0" | awk '{ printf "%.1f", $1 - $2 }')"
  rsss="$rsss $rss"
  i=$((i + 1))
done

stats() { # median min max of the words in $1
  echo "$1" | tr ' ' '\n' | grep . | sort -n | awk '{ v[NR] = $1 } END { printf "median %s  min %s  max %s", v[int((NR + 1) / 2)], v[1], v[NR] }'
}
echo "runs: $runs"
echo "start to first answered /readyz (ms, includes curl's own TLS handshake): $(stats "$starts")"
echo "idle RSS after 1 s (KiB): $(stats "$rsss")"
