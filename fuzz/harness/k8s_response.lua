-- k8s_response: answers of the Kubernetes API, as bytes, through the real
-- client (infraops.k8s.client: JSON decoding, Status errors, retries) into
-- what the server builds from them: the nodes view (infraops.nodes: NodeList
-- and Node, Tables, providerIDs through the provider registry, restart Leases
-- through infraops.restart_record), and the authentication ConfigMap
-- (infraops.auth_config).
--
-- Input: two mode bytes, then body1 NUL body2 NUL body3 NUL retry_after.
-- Each HTTP call gets the next body (then connection errors).
-- Mode byte 1: bits 0-1 the call (0 list nodes, 1 get node, 2 the
-- authentication ConfigMap refresh, 3 list with a Table Accept); bit 2: get
-- as a Table; bit 3 set: instead, POST nodes/NAME/restart (infraops.restart:
-- the Node, then the Lease; bit 4: a dry run). Mode byte 2: low nibble the
-- status of the first answer, high nibble of the others (STATUSES).
--
-- Checks: nothing raises; responses are ones the host accepts; the refresh
-- returns true or nil, message and publishes lists of strings.
local cjson = require("cjson")
local common = require("harness.common")
local auth_config = require("infraops.auth_config")
local client_module = require("infraops.k8s.client")
local guards = require("infraops.guards")
local nodes = require("infraops.nodes")

local STATUSES = { 200, 200, 200, 201, 204, 400, 401, 403, 404, 409, 410, 422, 429, 500, 503, 504 }
local TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io"

local answers = {}
local http = common.http(function()
  local answer = table.remove(answers, 1)
  if not answer then
    return nil, "connection refused", "connect"
  end
  return answer
end)

local clock = 0
local log = common.log()
local k8s = client_module.new({ server = "https://kube.fuzz:6443", token = "fuzz-token" }, {
  http = http, log = log, version = "fuzz",
  sleep = function(s) clock = clock + s end,
  monotonic = function() return clock end,
  random = function() return 0.5 end,
})

local shared = common.shared()
local ENV = { AWS_ACCESS_KEY_ID = "AKIDEXAMPLE", AWS_SECRET_ACCESS_KEY = "secretEXAMPLE",
  TENCENTCLOUD_SECRET_ID = "AKIDtencent", TENCENTCLOUD_SECRET_KEY = "tencentSecretEXAMPLE", AWS_REGION = "us-east-1",
  TENCENTCLOUD_REGION = "ap-guangzhou" }
-- The clouds accept every reboot: only the Kubernetes answers are fuzzed.
local cloud_http = common.http(function(req)
  if req.url:find("ec2", 1, true) then
    return { status = 200, headers = {}, body = "<RebootInstancesResponse><requestId>r-1</requestId>"
      .. "<return>true</return></RebootInstancesResponse>" }
  end
  return { status = 200, headers = {}, body = '{"Response":{"RequestId":"t-1","InstanceSet":'
    .. '[{"InstanceId":"ins-3ven36lk","InstanceState":"RUNNING"}]}}' }
end)
local registry = common.registry({ log = common.log(function(message, fields)
  common.fail("%s: %s", message, tostring(fields.error))
end), shared = shared, http = cloud_http, getenv = function(name) return ENV[name] end })
local time = require("host.time")
local view = nodes.new({
  k8s = k8s, registry = registry, guards = guards.new({ own_node = "own-node" }), crypto = require("host.crypto"),
  lease_namespace = "kube-system", restart_timeout = 900, log = log,
  now = function() return 1700000000 end, parse_time = time.parse_iso8601,
})

local restarter = require("infraops.restart").new({
  k8s = k8s, registry = registry, guards = guards.new({ own_node = "own-node" }), crypto = require("host.crypto"),
  cjson = cjson, log = log, now = function() return 1700000000 end, monotonic = function() return clock end,
  iso8601 = time.iso8601, iso8601_micro = time.iso8601_micro, parse_time = time.parse_iso8601,
  sleep = function(s) clock = clock + s end, random = function() return 0.5 end, lease_namespace = "kube-system",
  cooldown = 300, identity = "myapiserver-0",
})

local tls = {
  set_cluster_cas = function(cas)
    for key, value in pairs(cas) do
      if type(value) ~= "string" then
        common.fail("host.tls.set_cluster_cas: %s is a %s", key, type(value))
      end
    end
    return true
  end,
}

local function check_settings(settings)
  if settings == nil then
    return
  end
  for _, key in ipairs({ "allowed_names", "username_headers", "group_headers", "extra_prefixes", "uid_headers" }) do
    if not common.is_string_list(settings[key]) then
      common.fail("request-header setting %s is not a list of strings", key)
    end
  end
end

local function refresh()
  local trust = auth_config.new({ flags = {}, k8s = k8s, tls = tls, shared = shared, cjson = cjson, log = log,
    monotonic = function() return clock end, lookup_interval = 30 })
  local ok, err = trust.refresh(true)
  if not ok and type(err) ~= "string" then
    common.fail("refresh returned %s without a message", tostring(ok))
  end
  check_settings(trust.requestheader())
end

local function answer(selector, body, retry_after)
  return { status = STATUSES[selector % #STATUSES + 1], headers = { ["retry-after"] = retry_after ~= "" and retry_after
    or nil, ["content-type"] = "application/json" }, body = body }
end

return function(data)
  local mode, rest = common.byte(data)
  local statuses
  statuses, rest = common.byte(rest)
  local fields = common.split(rest, 4)
  shared.reset()
  answers = { answer(statuses & 15, fields[1], fields[4]) }
  for i = 2, 3 do
    answers[i] = answer(statuses >> 4, fields[i], fields[4])
  end
  if mode & 8 ~= 0 then
    local body = mode & 16 ~= 0 and '{"dryRun":["All"]}' or '{"reason":"fuzz"}'
    return common.check_response(restarter.handle("ip-10-0-1-7.ec2.internal", { name = "alice" }, body, {}),
      "restart")
  end
  local call = mode & 3
  if call == 2 then
    return refresh()
  end
  local res
  if call == 1 then
    res = view:get("ip-10-0-1-7.ec2.internal", mode & 4 ~= 0 and TABLE or nil, { includeObject = { "Object" } })
  else
    res = view:list({ limit = { "2" } }, call == 3 and TABLE or "application/json")
  end
  common.check_response(res, "nodes")
end
