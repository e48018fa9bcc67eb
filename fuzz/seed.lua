-- Writes the starting inputs of every harness into fuzz/corpus/<harness>/seed-*
-- from realistic examples (the specs' bodies, spec/fixtures, the cloud API
-- documentation). Run from the repository root: lua5.4 fuzz/seed.lua
-- The fuzzers grow the corpora from these; hack/fuzz.sh FUZZ_MERGE=1 keeps
-- what they find.
local NUL = "\0"

local function join(...)
  return table.concat({ ... }, NUL)
end

local function read(path)
  local f = assert(io.open(path, "rb"))
  local text = f:read("a")
  f:close()
  return text
end

local function write(harness, name, data)
  os.execute("mkdir -p fuzz/corpus/" .. harness)
  local f = assert(io.open(("fuzz/corpus/%s/seed-%s"):format(harness, name), "wb"))
  f:write(data)
  f:close()
end

local function seeds(harness, list)
  for name, data in pairs(list) do
    write(harness, name, data)
  end
end

local V2 = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
local TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io"
local GROUP = "/apis/infraops.michael.io/v1"

-- request_path: mode, method, uri, accept, authorization, body
seeds("request_path", {
  discovery = join("\1GET", "/apis", V2, "", ""),
  group = join("\0GET", "/apis/infraops.michael.io", "application/json", "", ""),
  resources = join("\2GET", GROUP, "", "", ""),
  list = join("\1GET", GROUP .. "/nodes?limit=1&labelSelector=env%3Dprod&continue=abc", TABLE, "", ""),
  list_field = join("\6GET", GROUP .. "/nodes?fieldSelector=metadata.name%3Dtke-worker-1", "", "", ""),
  get = join("\2GET", GROUP .. "/nodes/ip-10-0-1-7.ec2.internal", "application/json", "", ""),
  get_table = join("\3GET", GROUP .. "/nodes/tke-worker-1?includeObject=Object", TABLE, "", ""),
  restart = join("\1POST", GROUP .. "/nodes/tke-worker-1/restart?dryRun=All", "", "",
    '{"apiVersion":"infraops.michael.io/v1","kind":"RestartOptions","reason":"kernel update"}'),
  restart_denied = join("\6POST", GROUP .. "/nodes/ip-10-0-1-7.ec2.internal/restart", "", "", "{}"),
  healthz = join("\0GET", "/healthz?verbose", "", "", ""),
  readyz = join("\0GET", "/readyz/provider-aws", "", "", ""),
  livez_exclude = join("\0GET", "/livez?verbose&exclude=ping", "", "", ""),
  core = join("\5GET", "/api/v1/namespaces/default/pods/x/log", "", "", ""),
  watch = join("\2GET", GROUP .. "/nodes?watch=1", "", "", ""),
  bearer = join("\0GET", GROUP .. "/nodes", "", "Bearer good", ""),
  encoded = join("\1GET", "/apis/infraops.michael.io/v1/nodes/a%2Fb", "", "", ""),
  delete = join("\2DELETE", GROUP .. "/nodes", "", "", ""),
  openapi = join("\4GET", "/openapi/v2", "", "", ""),
})

-- identity_headers: mode, headers, common_name, organizations, settings
seeds("identity_headers", {
  front_proxy = join("\0X-Remote-User: alice\nX-Remote-Group: dev\nX-Remote-Group: ops\n"
    .. "X-Remote-Extra-Scopes: view\nX-Remote-Extra-Acme.com%2Fproject: p1\nX-Remote-Uid: 42",
    "front-proxy-client", "", ""),
  front_proxy_cn = join("\0X-Remote-User: alice", "someone-else", "", ""),
  custom = join("\4X-User: bob\nX-Groups: g1\nX-Extra-Team: a", "aggregator", "",
    "aggregator|X-User|X-Groups|X-Extra-|X-Id"),
  client_cert = join("\1X-Remote-User: mallory", "alice", "dev,ops", ""),
  empty_cn = join("\1", "", "dev", ""),
  unverified = join("\2Authorization: Bearer good", "x", "", ""),
  bearer = join("\3Authorization: Bearer good", "", "", ""),
  bearer_bad = join("\3Authorization: Bearer  ", "", "", ""),
  bearer_error = join("\3Authorization: bearer error", "", "", ""),
  anonymous = join("\3", "", "", ""),
})

-- restart_body: mode, name, query, body
seeds("restart_body", {
  full = join("\0tke-worker-1", "",
    '{"apiVersion":"infraops.michael.io/v1","kind":"RestartOptions","reason":"kernel update","dryRun":["All"]}'),
  empty = join("\0ip-10-0-1-7.ec2.internal", "", ""),
  query_dry = join("\0tke-worker-1", "dryRun=All", "{}"),
  bad_dry = join("\0tke-worker-1", "dryRun=Some", ""),
  bad_kind = join("\0tke-worker-1", "", '{"kind":"DeleteOptions"}'),
  unknown = join("\0tke-worker-1", "", '{"force":true}'),
  array = join("\0tke-worker-1", "", '["All"]'),
  long_reason = join("\0tke-worker-1", "", '{"reason":"' .. string.rep("r", 1100) .. '"}'),
  protected = join("\0control-plane-1", "", "{}"),
  own = join("\0own-node", "", "{}"),
  bare = join("\0bare-metal", "", "{}"),
  missing = join("\0no-such-node", "", "{}"),
  bad_name = join("\1Bad_Name", "", "{}"),
  nested = join("\0tke-worker-1", "", '{"dryRun":[["All"]],"reason":null}'),
})

-- provider_id: providerID, labels, region
seeds("provider_id", {
  aws_zone = join("aws:///us-east-1a/i-0123456789abcdef0", "", ""),
  aws_four = join("aws:////i-0123456789abcdef0", "topology.kubernetes.io/region=eu-west-1", ""),
  aws_bare_uri = join("aws:///i-0123abcd", "", "us-west-2"),
  aws_region = join("aws://us-gov-west-1/i-0123456789abcdef0", "", ""),
  aws_region_zone = join("aws://us-west-2/us-west-2-lax-1a/i-0123456789abcdef0", "", ""),
  aws_bare = join("i-0123456789abcdef0", "", "ap-southeast-2"),
  aws_fargate = join("aws:///us-east-1a/fargate-ip-10-0-1-7.ec2.internal", "", ""),
  aws_bad = join("aws:///us-east-1a/i-XYZ", "", ""),
  aws_cn = join("aws:///cn-north-1a/i-0123456789abcdef0", "", ""),
  tc_zone_id = join("qcloud:///100003/ins-3ven36lk", "topology.com.tencent.cloud.csi.cbs/zone=ap-guangzhou-3", ""),
  tc_zone = join("qcloud:///ap-shanghai-fsi-2/ins-abcdef12", "", ""),
  tc_label = join("qcloud:///100003/ins-3ven36lk", "topology.kubernetes.io/region=ap-beijing", ""),
  tc_env = join("qcloud:////ins-3ven36lk", "", "na-siliconvalley"),
  tc_bad = join("qcloud:///100003/ins-UPPER", "", ""),
  other = join("gce://project/zone/instance", "", ""),
  empty = join("", "", ""),
})

-- cloud_xml: creds, statuses, body1, body2, retry_after, request id
local REBOOT_OK = '<?xml version="1.0" encoding="UTF-8"?>\n'
  .. '<RebootInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">\n'
  .. "    <requestId>59dbff89-35bd-4eac-99ed-be587EXAMPLE</requestId>\n    <return>true</return>\n"
  .. "</RebootInstancesResponse>"
local EC2_ERROR = '<?xml version="1.0" encoding="UTF-8"?>\n'
  .. "<Response><Errors><Error><Code>InvalidInstanceID.NotFound</Code>"
  .. "<Message>The instance ID 'i-0123456789abcdef0' does not exist</Message></Error></Errors>"
  .. "<RequestID>ea966190-f9aa-478e-9ede-example</RequestID></Response>"
local DRY_RUN = "<Response><Errors><Error><Code>DryRunOperation</Code><Message>Request would have succeeded, "
  .. "but DryRun flag is set.</Message></Error></Errors><RequestID>r-2</RequestID></Response>"
local THROTTLED = "<Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>Request limit exceeded."
  .. "</Message></Error></Errors><RequestID>r-3</RequestID></Response>"
local STS_OK = [[<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleWithWebIdentityResult>
    <Credentials>
      <SessionToken>AQoDYXdzEE0a8ANXXXXXXXXNO1ewxE5TijQyp+IEXAMPLE/ab+c=</SessionToken>
      <SecretAccessKey>wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY</SecretAccessKey>
      <Expiration>2023-11-14T23:13:20Z</Expiration>
      <AccessKeyId>ASgeIAIOSFODNN7EXAMPLE</AccessKeyId>
    </Credentials>
  </AssumeRoleWithWebIdentityResult>
  <ResponseMetadata><RequestId>ad4156e9-bce1-11e2-82e6-6b6efEXAMPLE</RequestId></ResponseMetadata>
</AssumeRoleWithWebIdentityResponse>]]
local STS_ERROR = "<ErrorResponse><Error><Type>Sender</Type><Code>InvalidIdentityToken</Code>"
  .. "<Message>Couldn't retrieve verification key from your identity provider</Message></Error>"
  .. "<RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId></ErrorResponse>"
local EXPIRED = "<Response><Errors><Error><Code>ExpiredToken</Code><Message>The security token included in the "
  .. "request is expired</Message></Error></Errors><RequestID>r-4</RequestID></Response>"
local ENTITIES = "<Response><Errors><Error><Code>AuthFailure</Code><Message>&lt;a&gt; &amp; &#x41;&#66; "
  .. "<![CDATA[<raw>]]></Message></Error></Errors></Response>"
seeds("cloud_xml", {
  ok = "\0\0" .. join(REBOOT_OK, "", "", ""),
  ok_session = "\1\0" .. join(REBOOT_OK, "", "", "hdr-id"),
  not_found = "\0\1" .. join(EC2_ERROR, "", "", ""),
  dry_run = "\4\5" .. join(DRY_RUN, "", "", ""),
  throttled = "\0\6" .. join(THROTTLED, "", "2", ""),
  server_error = "\0\7" .. join("<html>oops</html>", "", "", ""),
  irsa = "\2\0" .. join(STS_OK, REBOOT_OK, "", ""),
  irsa_expired = "\2\2" .. join(STS_OK, EXPIRED, "", ""),
  irsa_error = "\3\1" .. join(STS_ERROR, "", "", ""),
  entities = "\0\2" .. join(ENTITIES, "", "", ""),
  garbage = "\0\0" .. join("<a><b>unclosed <c/> <!-- x --> <?pi?> </b>", "", "", ""),
})

-- cloud_json: mode, statuses, body1, body2, retry_after
local CVM_OK = '{"Response":{"RequestId":"6ef60bec-0242-43af-bb20-270359fb54a7"}}'
local CVM_ERROR = '{"Response":{"Error":{"Code":"InvalidInstanceId.NotFound","Message":"The instance ins-3ven36lk '
  .. 'does not exist."},"RequestId":"b5b41468-520d-4192-b42f-595cc34b6c1c"}}'
local CVM_LIMIT = '{"Response":{"Error":{"Code":"RequestLimitExceeded","Message":"too many"},"RequestId":"r"}}'
local DESCRIBE = '{"Response":{"TotalCount":1,"InstanceSet":[{"InstanceId":"ins-3ven36lk","InstanceState":"RUNNING"}],'
  .. '"RequestId":"d-1"}}'
local STOPPED = '{"Response":{"InstanceSet":[{"InstanceId":"ins-3ven36lk","InstanceState":"STOPPED"}],"RequestId":"d"}}'
local TC_STS = '{"Response":{"Credentials":{"Token":"tencentTmpTokenEXAMPLE","TmpSecretId":"AKIDtmpEXAMPLE",'
  .. '"TmpSecretKey":"tmpSecretKeyEXAMPLE0123"},"ExpiredTime":1700007200,"Expiration":"2023-11-15T00:13:20Z",'
  .. '"RequestId":"s-1"}}'
local TC_STS_ERROR = '{"Response":{"Error":{"Code":"InvalidParameter.WebIdentityTokenError",'
  .. '"Message":"token invalid"},"RequestId":"s-2"}}'
local POD_CREDS = '{"AccessKeyId":"ASIAPODEXAMPLE","SecretAccessKey":"podSecretKeyEXAMPLE/0123456789abcdefghijkl",'
  .. '"Token":"PodSessionTokenEXAMPLE0123456789+/=","AccountId":"111122223333",'
  .. '"Expiration":"2023-11-15T04:13:20Z"}'
local POD_ERROR = '{"code":"AccessDeniedException","message":"Unauthorized: token invalid"}'
seeds("cloud_json", {
  ok = "\0\0" .. join(CVM_OK, "", ""),
  ok_session = "\1\0" .. join(CVM_OK, "", ""),
  not_found = "\0\0" .. join(CVM_ERROR, "", ""),
  limit = "\0\0" .. join(CVM_LIMIT, "", "3"),
  dry_run = "\4\0" .. join(DESCRIBE, "", ""),
  dry_stopped = "\4\0" .. join(STOPPED, "", ""),
  http_error = "\0\9" .. join("bad gateway", "", ""),
  oidc = "\2\0" .. join(TC_STS, CVM_OK, ""),
  oidc_error = "\2\0" .. join(TC_STS_ERROR, "", ""),
  oidc_dry = "\6\0" .. join(TC_STS, DESCRIBE, ""),
  pod = "\3\0" .. join(POD_CREDS, REBOOT_OK, ""),
  pod_error = "\3\3" .. join(POD_ERROR, "", ""),
  pod_dry = "\7\0" .. join(POD_CREDS, DRY_RUN, ""),
})

-- k8s_response: mode, statuses, body1, body2, body3, retry_after
local NODE = '{"kind":"Node","apiVersion":"v1","metadata":{"name":"ip-10-0-1-7.ec2.internal","uid":"8f2e",'
  .. '"resourceVersion":"1234","creationTimestamp":"2023-11-01T10:00:00Z","labels":{"kubernetes.io/hostname":'
  .. '"ip-10-0-1-7","topology.kubernetes.io/region":"us-east-1","node-role.kubernetes.io/worker":""}},'
  .. '"spec":{"providerID":"aws:///us-east-1a/i-0123456789abcdef0"},"status":{"nodeInfo":{"bootID":"b-1"},'
  .. '"conditions":[{"type":"Ready","status":"True"}]}}'
local TC_NODE = '{"metadata":{"name":"tke-worker-1","labels":{"topology.com.tencent.cloud.csi.cbs/zone":'
  .. '"ap-guangzhou-3"}},"spec":{"providerID":"qcloud:///100003/ins-3ven36lk"}}'
local CP_NODE = '{"metadata":{"name":"cp-1","labels":{"node-role.kubernetes.io/control-plane":""}},'
  .. '"spec":{"providerID":"aws:///us-east-1a/i-0123abcd"}}'
local LIST = '{"kind":"NodeList","apiVersion":"v1","metadata":{"resourceVersion":"99","continue":"eyJ2IjoxfQ",'
  .. '"remainingItemCount":3},"items":[' .. NODE .. "," .. TC_NODE .. "," .. CP_NODE
  .. ',{"metadata":{"name":"bare"},"spec":{}}]}'
local LEASE = '{"metadata":{"name":"restart-ip-10-0-1-7.ec2.internal","resourceVersion":"7","annotations":{'
  .. '"infraops.michael.io/phase":"Requested","infraops.michael.io/boot-id":"b-0",'
  .. '"infraops.michael.io/requested-at":"2023-11-14T22:00:00Z","infraops.michael.io/requested-by":"alice",'
  .. '"infraops.michael.io/request-id":"r-1","infraops.michael.io/provider":"aws"}},'
  .. '"spec":{"holderIdentity":"myapiserver-0","renewTime":"2023-11-14T22:00:00.000000Z"}}'
local LEASES = '{"kind":"LeaseList","items":[' .. LEASE .. "]}"
local STATUS_GONE = '{"kind":"Status","apiVersion":"v1","status":"Failure","message":"too old resource version",'
  .. '"reason":"Expired","code":410}'
local STATUS_FORBIDDEN = '{"kind":"Status","apiVersion":"v1","status":"Failure","message":"nodes is forbidden: '
  .. 'User \\"system:serviceaccount:infraops:myapiserver\\" cannot list resource \\"nodes\\"",'
  .. '"reason":"Forbidden","details":{"kind":"nodes"},"code":403}'
local CONFIGMAP = '{"kind":"ConfigMap","metadata":{"name":"extension-apiserver-authentication"},"data":{'
  .. '"client-ca-file":"-----BEGIN CERTIFICATE-----\\nMIIB\\n-----END CERTIFICATE-----\\n",'
  .. '"requestheader-client-ca-file":"-----BEGIN CERTIFICATE-----\\nMIIC\\n-----END CERTIFICATE-----\\n",'
  .. '"requestheader-allowed-names":"[\\"front-proxy-client\\"]",'
  .. '"requestheader-extra-headers-prefix":"[\\"X-Remote-Extra-\\"]",'
  .. '"requestheader-group-headers":"[\\"X-Remote-Group\\"]",'
  .. '"requestheader-username-headers":"[\\"X-Remote-User\\"]",'
  .. '"requestheader-uid-headers":"[\\"X-Remote-Uid\\"]"}}'
seeds("k8s_response", {
  list = "\0\0" .. join(LIST, LEASES, "", ""),
  list_table = "\3\0" .. join(LIST, LEASES, "", ""),
  list_empty = "\0\0" .. join('{"kind":"NodeList","metadata":{},"items":[]}', "", "", ""),
  get = "\1\0" .. join(NODE, LEASE, "", ""),
  get_table = "\5\0" .. join(NODE, LEASE, "", ""),
  get_no_lease = "\1\128" .. join(TC_NODE, '{"kind":"Status","code":404,"reason":"NotFound"}', "", ""),
  gone = "\0\10" .. join(STATUS_GONE, "", "", ""),
  forbidden = "\0\7" .. join(STATUS_FORBIDDEN, "", "", ""),
  throttled = "\0\12" .. join("", "", "", "1"),
  unavailable = "\1\13" .. join("upstream connect error", NODE, LEASE, ""),
  configmap = "\2\0" .. join(CONFIGMAP, "", "", ""),
  configmap_missing = "\2\8" .. join('{"kind":"Status","code":404}', "", "", ""),
  configmap_bad = "\2\0" .. join('{"data":{"requestheader-client-ca-file":"x","requestheader-allowed-names":"[1]"}}',
    "", "", ""),
})

-- kubeconfig: the file
for _, name in ipairs({ "basic", "data", "exec-v1", "exec-v1beta1", "token", "token-file", "client-cert-files",
  "two-contexts", "tls-server-name", "auth-provider", "bad-base64", "ca-and-insecure", "exec-always" }) do
  write("kubeconfig", name, read("spec/fixtures/kubeconfig/" .. name .. ".json"))
end
write("kubeconfig", "yaml", read("spec/fixtures/kubeconfig/kubeconfig.yaml"))
write("kubeconfig", "anchors", read("spec/fixtures/yaml/anchors.yaml"))
write("kubeconfig", "flow", "apiVersion: v1\nkind: Config\ncurrent-context: c\ncontexts: [{name: c, context: "
  .. "{cluster: k, user: u, namespace: ns}}]\nclusters: [{name: k, cluster: {server: 'https://10.0.0.1:6443', "
  .. "insecure-skip-tls-verify: true}}]\nusers: [{name: u, user: {username: admin, password: !!str 1234}}]\n")

-- exec_credential: mode, stdout (or token file)
local function exec_credential(version, status)
  return '{"apiVersion":"client.authentication.k8s.io/' .. version .. '","kind":"ExecCredential","status":'
    .. status .. "}"
end
seeds("exec_credential", {
  token = "\0" .. exec_credential("v1", '{"token":"my-bearer-token","expirationTimestamp":"2023-11-14T23:13:20Z"}'),
  beta = "\1" .. exec_credential("v1beta1", '{"token":"t"}'),
  cert = "\0" .. exec_credential("v1", '{"clientCertificateData":"-----BEGIN CERTIFICATE-----\\nMIIB\\n'
    .. '-----END CERTIFICATE-----\\n","clientKeyData":"-----BEGIN PRIVATE KEY-----\\nMIIE\\n'
    .. '-----END PRIVATE KEY-----\\n"}'),
  cert_only = "\0" .. exec_credential("v1", '{"clientCertificateData":"x"}'),
  no_status = "\0" .. '{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential"}',
  bad_time = "\0" .. exec_credential("v1", '{"token":"t","expirationTimestamp":"tomorrow"}'),
  expired = "\0" .. exec_credential("v1", '{"token":"t","expirationTimestamp":"2000-01-01T00:00:00Z"}'),
  wrong_kind = "\0" .. '{"apiVersion":"client.authentication.k8s.io/v1","kind":"Status"}',
  failing = "\2error: could not get token: exit status 1\n",
  cluster_info = "\8" .. exec_credential("v1", '{"token":"t"}'),
  token_file = "\4eyJhbGciOiJSUzI1NiIsImtpZCI6IiJ9.eyJpc3MiOiJrdWJlcm5ldGVzIn0.c2ln\n",
})

-- label_selector: selector, labels
seeds("label_selector", {
  exists = join("node-role.kubernetes.io/control-plane", "node-role.kubernetes.io/control-plane="),
  equals = join("env=prod,tier!=frontend", "env=prod\ntier=backend"),
  set = join("env in (prod, staging),!canary", "env=staging"),
  notin = join("zone notin (a,b,)", "zone=c"),
  numbers = join("gpu>2,ram<512", "gpu=4\nram=256"),
  doubled = join("a==b", "a=b"),
  empty = join("", "x=y"),
  empty_values = join("k in ()", "k="),
  bad = join("a b", ""),
  prefixed = join("example.com/key-name_1.x=Value.9", "example.com/key-name_1.x=Value.9"),
})

print("seeds written under fuzz/corpus/")
