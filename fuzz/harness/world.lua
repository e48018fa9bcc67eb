-- A small, well-behaved world around infraops.app for the request-side
-- harnesses: a Kubernetes API that knows a few nodes and answers
-- SubjectAccessReviews as told, clouds that accept every reboot, a fixed
-- clock. Only the request is fuzzed; everything it talks to is sane.
local cjson = require("cjson")
local common = require("harness.common")

local world = {}

local NOW = 1700000000

local NODES = {
  { metadata = { name = "ip-10-0-1-7.ec2.internal", uid = "u1", creationTimestamp = "2023-11-01T00:00:00Z",
    labels = { ["topology.kubernetes.io/region"] = "us-east-1" }, resourceVersion = "11" },
    spec = { providerID = "aws:///us-east-1a/i-0123456789abcdef0" },
    status = { nodeInfo = { bootID = "b1" } } },
  { metadata = { name = "tke-worker-1", uid = "u2", creationTimestamp = "2023-11-01T00:00:00Z",
    labels = { ["topology.com.tencent.cloud.csi.cbs/zone"] = "ap-guangzhou-3" }, resourceVersion = "12" },
    spec = { providerID = "qcloud:///100003/ins-3ven36lk" } },
  { metadata = { name = "control-plane-1", labels = { ["node-role.kubernetes.io/control-plane"] = "" } },
    spec = { providerID = "aws:///us-east-1a/i-0123abcd" } },
  { metadata = { name = "own-node" }, spec = { providerID = "aws:///us-east-1b/i-0fedcba987654321f" } },
  { metadata = { name = "bare-metal" }, spec = {} },
}

local function copy(v)
  return cjson.decode(cjson.encode(v))
end

local function node_by_name(name)
  for _, n in ipairs(NODES) do
    if n.metadata.name == name then
      return copy(n)
    end
  end
  return nil
end

--- The fake Kubernetes client (get/post/put/delete as infraops.k8s.client).
-- state.decide(spec) -> SubjectAccessReview status or nil, message.
local function k8s(state)
  local client = {}
  local leases, revision = {}, 0
  function client.get(_, path)
    if path == "/api/v1/nodes" then
      return { kind = "NodeList", metadata = { resourceVersion = "100" }, items = copy(NODES) }
    end
    local name = path:match("^/api/v1/nodes/(.+)$")
    if name then
      local node = node_by_name(name)
      return node or nil, node == nil and { code = "not_found", status = 404, message = "not found" } or nil
    end
    if path:match("/leases$") then
      local items = {}
      for _, lease in pairs(leases) do
        items[#items + 1] = copy(lease)
      end
      return { kind = "LeaseList", items = items }
    end
    local lease_name = path:match("/leases/(.+)$")
    if lease_name and leases[lease_name] then
      return copy(leases[lease_name])
    end
    return nil, { code = "not_found", status = 404, message = "not found" }
  end
  local function store(body)
    body = copy(body)
    revision = revision + 1
    body.metadata.resourceVersion = tostring(revision)
    leases[body.metadata.name] = body
    return copy(body)
  end
  function client.post(_, path, body)
    if path:match("subjectaccessreviews$") then
      local verdict, err = state.decide(body.spec)
      if not verdict then
        return nil, { code = "unavailable", message = err }
      end
      return { status = verdict }
    elseif path:match("tokenreviews$") then
      local user = state.tokens[body.spec.token]
      return { status = { authenticated = user ~= nil, user = user } }
    elseif path:match("/leases$") then
      return store(body)
    end
    return copy(body)
  end
  function client.put(_, _, body)
    return store(body)
  end
  function client.delete(_, path)
    leases[path:match("/leases/(.+)$") or ""] = nil
    return true
  end
  function client.reset()
    leases = {}
  end
  return client
end

-- Cloud answers: every reboot accepted, every dry run finds a running instance.
local function cloud_answer(req)
  if req.url:find("ec2", 1, true) then
    return { status = 200, headers = {}, body = "<RebootInstancesResponse><requestId>r-1</requestId>"
      .. "<return>true</return></RebootInstancesResponse>" }
  elseif (req.headers or {})["X-TC-Action"] == "DescribeInstances" then
    return { status = 200, headers = {}, body = '{"Response":{"RequestId":"t-1","InstanceSet":'
      .. '[{"InstanceId":"ins-3ven36lk","InstanceState":"RUNNING"}]}}' }
  end
  return { status = 200, headers = {}, body = '{"Response":{"RequestId":"t-2"}}' }
end

local ENV = {
  AWS_ACCESS_KEY_ID = "AKIDEXAMPLE", AWS_SECRET_ACCESS_KEY = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
  TENCENTCLOUD_SECRET_ID = "AKIDtencent", TENCENTCLOUD_SECRET_KEY = "tencentSecretKeyEXAMPLE",
}

world.FLAGS = {
  ["authorization-always-allow-paths"] = "/healthz,/readyz,/livez,/openapi/*",
  ["authentication-skip-lookup"] = "true",
  ["requestheader-client-ca-file"] = "/fuzz/front-proxy-ca.crt",
  ["requestheader-allowed-names"] = "front-proxy-client,aggregator",
  ["requestheader-username-headers"] = "X-Remote-User",
  ["requestheader-group-headers"] = "X-Remote-Group",
  ["requestheader-extra-headers-prefix"] = "X-Remote-Extra-",
  ["requestheader-uid-headers"] = "X-Remote-Uid",
  ["lease-namespace"] = "kube-system",
  ["node-name"] = "own-node",
}

--- Builds the app once. Returns world with handle(req) and reset(decide, tokens).
function world.new()
  local app = require("infraops.app")
  local host_time = require("host.time")
  local shared = common.shared()
  local state = { decide = function() return { allowed = true } end, tokens = {} }
  local client = k8s(state)
  local log = common.log()
  local time = {
    now = function() return NOW end, monotonic = function() return 1000 end, sleep = function() end,
    iso8601 = host_time.iso8601, iso8601_micro = host_time.iso8601_micro, amz_date = host_time.amz_date,
    date = host_time.date, parse_iso8601 = host_time.parse_iso8601,
  }
  local registry = common.registry({ shared = shared, log = log, http = common.http(cloud_answer),
    getenv = function(name) return ENV[name] end })
  local handle, tick = app.new({ version = "fuzz", flags = world.FLAGS }, {
    log = log, shared = shared, crypto = require("host.crypto"), cjson = cjson, time = time, tls = false,
    monotonic = time.monotonic, k8s = client, registry = registry,
  })
  local self = { handle = handle }
  function self.reset(decide, tokens)
    shared.reset()
    client.reset()
    state.decide = decide or state.decide
    state.tokens = tokens or {}
    assert(tick(true))
  end
  return self
end

return world
