#!/usr/bin/env bash
# hack/local-up.sh: the local sandbox. One command, no cluster, no cloud account.
#
# Builds myapiserver (cmake, like hack/run-local.sh), makes a test PKI
# (hack/test-pki.sh), starts the fake EC2/STS and CVM endpoints, a fake
# kube-apiserver (with an aggregation layer) holding a few AWS and Tencent Cloud
# nodes and RBAC, then myapiserver behind that aggregator. Writes a kubeconfig
# for user "developer" (may list nodes and restart them; context "viewer" may
# only list) and prints commands to try. Ctrl-C or SIGTERM stops everything.
#
#   hack/local-up.sh [--help]
#
# Environment:
#   LOCAL_UP_DIR=path          state directory (default build/local-up)
#   LOCAL_UP_READY_FILE=path   write this file once everything serves (for tests)
#   LOCAL_UP_SKIP_BUILD=1      do not run cmake (use the existing binary)
#   MYAPISERVER_BUILD_DIR=dir  build directory (default build)
#   LOCAL_UP_PYTHON=python3    interpreter for the fakes (default /usr/bin/python3 if present)
#
# State: kubeconfig, endpoints.json (ports and control URLs of the fakes),
# pids (every process started), local-up.pid (this script), *.log.
set -euo pipefail

usage() {
  sed -n '2,/^$/p' "$0" | sed 's/^# \{0,1\}//'
}
case "${1:-}" in
  -h | --help) usage; exit 0 ;;
  "") ;;
  *) echo "error: unknown argument: $1 (see hack/local-up.sh --help)" >&2; exit 2 ;;
esac

cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD=${MYAPISERVER_BUILD_DIR:-build}
STATE=${LOCAL_UP_DIR:-$ROOT/build/local-up}
PY=${LOCAL_UP_PYTHON:-}
if [ -z "$PY" ]; then
  if [ -x /usr/bin/python3 ]; then PY=/usr/bin/python3; else PY=python3; fi
fi
LIFETIME=31536000 # the fakes exit by themselves after this; we stop them first

PIDS=()
STOPPING=0
cleanup() {
  # shellcheck disable=SC2320 # $? is the exit status the EXIT trap was called with
  local code=$?
  [ "$STOPPING" = 1 ] && return
  STOPPING=1
  trap '' INT TERM
  local pid i
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
    kill -TERM "${PIDS[i]}" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 1 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  [ -n "${LOCAL_UP_READY_FILE:-}" ] && rm -f "$LOCAL_UP_READY_FILE"
  [ "$(cat "$STATE/local-up.pid" 2>/dev/null)" = "$$" ] && rm -f "$STATE/local-up.pid"
  return "$code"
}
on_signal() {
  echo "local-up: stopping" >&2
  cleanup || true
  echo "local-up: stopped" >&2
  exit 0
}
trap on_signal INT TERM
trap cleanup EXIT

die() {
  echo "local-up: error: $*" >&2
  exit 1
}

if [ -z "${LOCAL_UP_SKIP_BUILD:-}" ]; then
  echo "local-up: building into $BUILD/"
  cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build "$BUILD" -j "$(nproc)" >/dev/null
fi
[ -x "$BUILD/myapiserver" ] || die "$BUILD/myapiserver is missing (build it, or unset LOCAL_UP_SKIP_BUILD)"

mkdir -p "$STATE"
if other=$(cat "$STATE/local-up.pid" 2>/dev/null) && kill -0 "$other" 2>/dev/null; then
  die "another hack/local-up.sh (pid $other) uses $STATE; stop it first (kill -INT $other)"
fi
rm -f "$STATE"/*.log "$STATE/pids" "$STATE/endpoints.json" "$STATE/kubeconfig"
: >"$STATE/pids"
echo "$$" >"$STATE/local-up.pid" # kill -INT or -TERM this one to stop the sandbox
PKI=$STATE/pki
echo "local-up: certificates into $PKI/"
hack/test-pki.sh "$PKI" >/dev/null

# Starts a fake: start_fake NAME SCRIPT CONFIG; its ready line ends up in $STATE/NAME.ready.
start_fake() {
  local name=$1 script=$2 config=$3
  "$PY" "$script" --config "$config" --lifetime "$LIFETIME" >"$STATE/$name.out" 2>"$STATE/$name.log" &
  local pid=$!
  PIDS+=("$pid")
  echo "$pid" >>"$STATE/pids"
  local line=""
  for _ in $(seq 1 200); do
    line=$(grep -m1 '^{' "$STATE/$name.out" 2>/dev/null || true)
    [ -n "$line" ] && break
    kill -0 "$pid" 2>/dev/null || die "$name exited; see $STATE/$name.log"
    sleep 0.05
  done
  [ -n "$line" ] || die "$name did not get ready in 10 s; see $STATE/$name.log"
  printf '%s\n' "$line" >"$STATE/$name.ready"
}

# json_get FILE KEY: one value of a one-line JSON object.
json_get() {
  "$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"
}

AWS_KEY=AKIAFAKESTATIC000001
AWS_SECRET=fakeStaticSecret/0000+AWS/EXAMPLEKEY0001
TC_ID=AKIDFAKESTATIC00000000000000000000001
TC_KEY=fakeStaticSecretKey0000000000001
SA=system:serviceaccount:default:myapiserver
SA_TOKEN=local-up-myapiserver-token

cat >"$STATE/aws.json" <<EOF
{"credentials": {"$AWS_KEY": {"secret": "$AWS_SECRET", "account": "111122223333"}},
 "instances": {
   "i-0123456789abcdef0": {"region": "us-east-1", "az": "us-east-1a", "state": "running"},
   "i-0a1b2c3d4e5f60718": {"region": "us-east-1", "az": "us-east-1b", "state": "running"},
   "i-0c0ffee000000c001": {"region": "us-east-1", "az": "us-east-1a", "state": "running"}}}
EOF
cat >"$STATE/tencentcloud.json" <<EOF
{"credentials": {"$TC_ID": {"secret": "$TC_KEY"}},
 "instances": {"ins-abcdefgh": {"region": "ap-guangzhou", "zone": "ap-guangzhou-3", "state": "RUNNING"}}}
EOF

echo "local-up: starting the fake EC2/STS and CVM endpoints"
start_fake aws spec/fakes/fake_aws.py "$STATE/aws.json"
start_fake tencentcloud spec/fakes/fake_tencentcloud.py "$STATE/tencentcloud.json"
AWS_PORT=$(json_get "$STATE/aws.ready" port)
AWS_CONTROL=$(json_get "$STATE/aws.ready" control_port)
TC_PORT=$(json_get "$STATE/tencentcloud.ready" port)
TC_CONTROL=$(json_get "$STATE/tencentcloud.ready" control_port)

# The fake cluster: nodes, tokens, RBAC.
"$PY" - "$STATE/kube.json" "$PKI" "$SA" "$SA_TOKEN" <<'EOF'
import json, sys
path, pki, sa, token = sys.argv[1:5]

def node(name, provider_id, labels, boot_id, ip, role=None):
    labels = dict(labels, **{"kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                             "kubernetes.io/arch": "amd64"})
    if role:
        labels["node-role.kubernetes.io/" + role] = ""
    return {"metadata": {"name": name, "labels": labels},
            "spec": {"providerID": provider_id},
            "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
                       "addresses": [{"type": "InternalIP", "address": ip},
                                     {"type": "Hostname", "address": name}],
                       "nodeInfo": {"kubeletVersion": "v1.33.1", "bootID": boot_id,
                                    "osImage": "Debian GNU/Linux 12 (bookworm)",
                                    "containerRuntimeVersion": "containerd://1.7.24"}}}

aws = {"topology.kubernetes.io/region": "us-east-1", "node.kubernetes.io/instance-type": "m5.large"}
nodes = [
    node("ip-10-0-0-5.ec2.internal", "aws:///us-east-1a/i-0c0ffee000000c001",
         dict(aws, **{"topology.kubernetes.io/zone": "us-east-1a"}),
         "5d1c29c4-0f7e-4c59-9d53-4c3c6a1f0c01", "10.0.0.5", role="control-plane"),
    node("ip-10-0-1-7.ec2.internal", "aws:///us-east-1a/i-0123456789abcdef0",
         dict(aws, **{"topology.kubernetes.io/zone": "us-east-1a"}),
         "8a3f2e61-7c4b-4d1e-9f0a-2b6c5d4e3f17", "10.0.1.7"),
    node("ip-10-0-2-9.ec2.internal", "aws:///us-east-1b/i-0a1b2c3d4e5f60718",
         dict(aws, **{"topology.kubernetes.io/zone": "us-east-1b"}),
         "c4e7b1a2-3d5f-4a69-8b0c-1e2f3a4b5c29", "10.0.2.9"),
    node("tke-worker-1", "qcloud:///ap-guangzhou-3/ins-abcdefgh",
         {"topology.com.tencent.cloud.csi.cbs/zone": "ap-guangzhou-3",
          "topology.kubernetes.io/region": "gz",
          "node.kubernetes.io/instance-type": "S5.MEDIUM4"},
         "0f9e8d7c-6b5a-4938-8271-605f4e3d2c1b", "172.16.0.12"),
]

def rule(name, users, verbs, groups, resources, **kw):
    r = {"name": name, "subjects": {"users": users}, "verbs": verbs,
         "apiGroups": groups, "resources": resources}
    r.update(kw)
    return r

rbac = [
    rule("system:auth-delegator", [sa], ["create"], ["authentication.k8s.io"], ["tokenreviews"]),
    rule("system:auth-delegator", [sa], ["create"], ["authorization.k8s.io"], ["subjectaccessreviews"]),
    rule("extension-apiserver-authentication-reader", [sa], ["get", "list", "watch"], [""], ["configmaps"],
         namespaces=["kube-system"], resourceNames=["extension-apiserver-authentication"]),
    rule("myapiserver-nodes", [sa], ["get", "list", "watch"], [""], ["nodes"]),
    rule("myapiserver-leases", [sa], ["get", "list", "watch", "create", "update", "delete"],
         ["coordination.k8s.io"], ["leases"]),
    rule("myapiserver-events", [sa], ["create", "get", "list"], [""], ["events"]),
    # developer (client certificate CN=alice) and viewer (CN=bob)
    rule("node-restarter", ["alice"], ["get", "list"], ["infraops.michael.io"], ["nodes"]),
    rule("node-restarter", ["alice"], ["create"], ["infraops.michael.io"], ["nodes/restart"]),
    rule("node-viewer", ["alice", "bob"], ["get", "list", "watch"], [""], ["nodes", "events"]),
    rule("node-viewer", ["bob"], ["get", "list"], ["infraops.michael.io"], ["nodes"]),
]
json.dump({"pki": pki, "nodes": nodes, "rbac": rbac,
           "tokens": {token: {"username": sa, "uid": "6b1f0c3e-local-up-sa"}}}, open(path, "w"), indent=1)
EOF

echo "local-up: starting the fake kube-apiserver"
start_fake kube spec/fakes/kube_apiserver.py "$STATE/kube.json"
KUBE_PORT=$(json_get "$STATE/kube.ready" api_port)
KUBE_CONTROL=$(json_get "$STATE/kube.ready" control_port)

write_kubeconfig() { # path user-block...
  local path=$1
  shift
  {
    printf 'apiVersion: v1\nkind: Config\nclusters:\n- name: local-up\n  cluster:\n'
    printf '    server: https://127.0.0.1:%s\n    certificate-authority: %s\n' "$KUBE_PORT" "$PKI/serving-ca.crt"
    printf '%s\n' "$@"
  } >"$path"
}
write_kubeconfig "$STATE/myapiserver.kubeconfig" \
  "users:" "- name: myapiserver" "  user:" "    token: $SA_TOKEN" \
  "contexts:" "- name: local-up" "  context: {cluster: local-up, user: myapiserver}" \
  "current-context: local-up"
chmod 600 "$STATE/myapiserver.kubeconfig"

echo "local-up: starting myapiserver"
env AWS_ENDPOINT_URL_EC2="http://127.0.0.1:$AWS_PORT" AWS_ENDPOINT_URL_STS="http://127.0.0.1:$AWS_PORT" \
  AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true \
  AWS_ACCESS_KEY_ID="$AWS_KEY" AWS_SECRET_ACCESS_KEY="$AWS_SECRET" \
  TENCENTCLOUD_CVM_ENDPOINT="http://127.0.0.1:$TC_PORT" TENCENTCLOUD_STS_ENDPOINT="http://127.0.0.1:$TC_PORT" \
  TENCENTCLOUD_REGION=ap-guangzhou TENCENTCLOUD_SECRET_ID="$TC_ID" TENCENTCLOUD_SECRET_KEY="$TC_KEY" \
  "$BUILD/myapiserver" --bind-address=127.0.0.1 --secure-port=0 --log-format=json \
  --tls-cert-file="$PKI/serving.crt" --tls-private-key-file="$PKI/serving.key" \
  --kubeconfig="$STATE/myapiserver.kubeconfig" --node-name=ip-10-0-0-5.ec2.internal \
  --lease-namespace=default >"$STATE/myapiserver.log" 2>&1 &
SERVER_PID=$!
PIDS+=("$SERVER_PID")
echo "$SERVER_PID" >>"$STATE/pids"
SERVER_PORT=""
for _ in $(seq 1 300); do
  SERVER_PORT=$("$PY" -c '
import json, sys
for line in open(sys.argv[1]):
    try:
        e = json.loads(line)
    except ValueError:
        continue
    if isinstance(e, dict) and e.get("msg") == "serving HTTPS" and e.get("port"):
        print(e["port"]); break' "$STATE/myapiserver.log" 2>/dev/null || true)
  [ -n "$SERVER_PORT" ] && break
  kill -0 "$SERVER_PID" 2>/dev/null || die "myapiserver exited; see $STATE/myapiserver.log"
  sleep 0.05
done
[ -n "$SERVER_PORT" ] || die "myapiserver did not start in 15 s; see $STATE/myapiserver.log"

# Point the aggregator (APIService infraops.michael.io/v1) at it.
curl -fsS --max-time 10 -X PUT --data-binary "{\"port\": $SERVER_PORT}" \
  "http://127.0.0.1:$KUBE_CONTROL/backend" >/dev/null || die "could not set the aggregator's backend"

write_kubeconfig "$STATE/kubeconfig" \
  "users:" \
  "- name: developer" "  user:" "    client-certificate: $PKI/alice.crt" "    client-key: $PKI/alice.key" \
  "- name: viewer" "  user:" "    client-certificate: $PKI/bob-chain.crt" "    client-key: $PKI/bob.key" \
  "contexts:" \
  "- name: developer" "  context: {cluster: local-up, user: developer, namespace: default}" \
  "- name: viewer" "  context: {cluster: local-up, user: viewer, namespace: default}" \
  "current-context: developer"
chmod 600 "$STATE/kubeconfig"

cat >"$STATE/endpoints.json" <<EOF
{"kube_api_url": "https://127.0.0.1:$KUBE_PORT", "kube_control_url": "http://127.0.0.1:$KUBE_CONTROL",
 "aws_url": "http://127.0.0.1:$AWS_PORT", "aws_control_url": "http://127.0.0.1:$AWS_CONTROL",
 "tencentcloud_url": "http://127.0.0.1:$TC_PORT", "tencentcloud_control_url": "http://127.0.0.1:$TC_CONTROL",
 "myapiserver_url": "https://127.0.0.1:$SERVER_PORT",
 "ports": [$KUBE_PORT, $KUBE_CONTROL, $AWS_PORT, $AWS_CONTROL, $TC_PORT, $TC_CONTROL, $SERVER_PORT],
 "kubeconfig": "$STATE/kubeconfig", "pids_file": "$STATE/pids"}
EOF

# Ready once the aggregated API answers through the fake kube-apiserver as the developer.
ok=""
for _ in $(seq 1 100); do
  if curl -fsS --max-time 5 --cacert "$PKI/serving-ca.crt" --cert "$PKI/alice.crt" --key "$PKI/alice.key" \
    "https://127.0.0.1:$KUBE_PORT/apis/infraops.michael.io/v1/nodes" >/dev/null 2>&1; then
    ok=1
    break
  fi
  kill -0 "$SERVER_PID" 2>/dev/null || die "myapiserver exited; see $STATE/myapiserver.log"
  sleep 0.1
done
[ -n "$ok" ] || die "the aggregated API did not answer; see $STATE/*.log"

REL=${STATE#"$ROOT"/}
cat <<EOT

The sandbox is up (Ctrl-C stops everything). Fake cluster: https://127.0.0.1:$KUBE_PORT,
myapiserver: https://127.0.0.1:$SERVER_PORT (node ip-10-0-0-5.ec2.internal is "its own" node:
restarting it is refused). Logs: $REL/*.log; ports: $REL/endpoints.json.
Try:

  export KUBECONFIG=$STATE/kubeconfig PATH=$ROOT/hack:\$PATH
  kubectl get nodes.infraops.michael.io
  kubectl restart node ip-10-0-1-7.ec2.internal --reason "trying it out"
  kubectl get events -o custom-columns=NODE:.involvedObject.name,REASON:.reason,MESSAGE:.message
  kubectl restart node tke-worker-1 --dry-run=server
  kubectl restart node ip-10-0-0-5.ec2.internal          # refused: the server's own node
  kubectl restart node ip-10-0-2-9.ec2.internal --context viewer   # Forbidden
  curl -s http://127.0.0.1:$AWS_CONTROL/reboots          # what the fake EC2 rebooted

EOT

if [ -n "${LOCAL_UP_READY_FILE:-}" ]; then
  printf '%s\n' "$STATE/endpoints.json" >"$LOCAL_UP_READY_FILE"
fi

# Run until signalled, or until one of ours dies.
while :; do
  for pid in "${PIDS[@]}"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "local-up: process $pid exited; see $REL/*.log" >&2
      exit 1
    fi
  done
  sleep 1 &
  wait $! || true
done
