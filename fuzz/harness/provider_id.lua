-- provider_id: spec.providerID (and the labels that complete it) through the
-- provider registry as the server loads it (providers/aws.lua,
-- providers/tencentcloud.lua in their own environments), then the target each
-- match yields into that provider's restart (dry run) against a cloud that
-- answers success, with static credentials.
--
-- Input: providerID NUL labels NUL environment region. labels: "key=value"
-- lines. The region goes to AWS_REGION and TENCENTCLOUD_REGION when not empty.
--
-- Checks: match never raises (the registry would log it) and returns entry,
-- target {instance_id = string, plain values} or nil, code, message; the
-- restart request goes to an https URL with a plain host name and header
-- values the HTTP client accepts, and restart never raises either.
local common = require("harness.common")

local env = {}
local requests = {}
local log = common.log(function(message, fields)
  common.fail("%s: %s", message, tostring(fields.error))
end)

local function answer(req)
  requests[#requests + 1] = req
  if req.url:find("ec2", 1, true) then
    return { status = 412, headers = {}, body = "<Response><Errors><Error><Code>DryRunOperation</Code>"
      .. "<Message>Request would have succeeded</Message></Error></Errors><RequestID>r-1</RequestID></Response>" }
  end
  return { status = 200, headers = {}, body = '{"Response":{"RequestId":"t-1","InstanceSet":[]}}' }
end

local shared = common.shared()
local registry = common.registry({ log = log, shared = shared, http = common.http(answer),
  getenv = function(name) return env[name] end })

local BASE_ENV = {
  AWS_ACCESS_KEY_ID = "AKIDEXAMPLE", AWS_SECRET_ACCESS_KEY = "secretEXAMPLEKEY",
  TENCENTCLOUD_SECRET_ID = "AKIDtencent", TENCENTCLOUD_SECRET_KEY = "tencentSecretEXAMPLE",
}
local CODES = { no_provider_id = true, no_match = true, malformed = true }

local function labels_of(text)
  local labels = {}
  for line in text:gmatch("[^\n]+") do
    local k, v = line:match("^([^=]*)=(.*)$")
    if k then
      labels[k] = v
    end
  end
  return labels
end

local function check_target(target)
  if type(target) ~= "table" or type(target.instance_id) ~= "string" or target.instance_id == "" then
    common.fail("match returned a target without an instance_id")
  end
  for key, value in pairs(target) do
    local kind = type(value)
    if type(key) ~= "string" or (kind ~= "string" and kind ~= "number" and kind ~= "boolean") then
      common.fail("target.%s is a %s, not a plain value", tostring(key), kind)
    end
  end
end

local function check_requests()
  for _, req in ipairs(requests) do
    if not req.url:find("^https://[%w%.%-]+/$") then
      common.fail("a providerID steered the cloud request to %q", req.url)
    end
  end
end

return function(data)
  local fields = common.split(data, 3)
  env = {}
  for k, v in pairs(BASE_ENV) do
    env[k] = v
  end
  if fields[3] ~= "" then
    env.AWS_REGION, env.TENCENTCLOUD_REGION = fields[3], fields[3]
  end
  shared.reset()
  requests = {}
  local node = { metadata = { name = "node-1", labels = labels_of(fields[2]) }, spec = { providerID = fields[1] } }
  local entry, target, message = registry.match(node)
  if not entry then
    if not CODES[target] or type(message) ~= "string" then
      common.fail("match returned nil with code %s", tostring(target))
    end
    return
  end
  check_target(target)
  local result, err = registry.restart(entry, target, { dry_run = true, node = "node-1" })
  if not result and (type(err) ~= "table" or type(err.reason) ~= "string") then
    common.fail("restart returned nil without a cloud error")
  end
  check_requests()
end
