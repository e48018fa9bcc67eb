-- cloud_json: JSON answers from the clouds: Tencent Cloud API 3.0 (CVM
-- RebootInstances and DescribeInstances, STS AssumeRoleWithWebIdentity for
-- TKE OIDC) through providers/tencentcloud.lua, and the EKS Pod Identity /
-- ECS container-credentials answer through providers/aws.lua.
--
-- Input: two mode bytes, then body1 NUL body2 NUL retry_after.
-- Mode byte 1, bits 0-1: 0 Tencent static keys, 1 static keys with a session
-- token, 2 TKE OIDC (body1 answers STS, body2 CVM), 3 AWS container
-- credentials (body1 is the credentials JSON, body2 the EC2 XML); bit 2: dry
-- run. Mode byte 2: low nibble the HTTP status of the first answer, high
-- nibble of the second (harness/cloud.lua STATUSES).
--
-- Checks: restart returns a result or a cloud error, never raises (a raise is
-- logged by the registry), and no secret shows in a message or a log line.
local cjson = require("cjson")
local common = require("harness.common")
local cloud = require("harness.cloud")

local world = cloud.new()

local SECRET = "tencentSecretKeyEXAMPLE0123456789"
local SESSION = "tencentSessionTokenEXAMPLE"
local WEB_TOKEN = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ0a2UifQ.c2lnbmF0dXJl"
local POD_TOKEN = "eyJwb2QtaWRlbnRpdHkiOiJ0b2tlbiJ9.cGF5bG9hZA.c2lnbmF0dXJl"
local TKE_TOKEN_FILE = "/var/run/secrets/tke.cloud.tencent.com/serviceaccount/token"
local POD_TOKEN_FILE = "/var/run/secrets/pods.eks.amazonaws.com/serviceaccount/eks-pod-identity-token"

-- String values found under the given keys anywhere in a JSON answer.
local function issued_secrets(body, keys, out)
  local ok, doc = pcall(cjson.decode, body)
  if not ok then
    return
  end
  local function walk(v, depth)
    if type(v) ~= "table" or depth > 8 then
      return
    end
    for k, x in pairs(v) do
      if keys[k] and type(x) == "string" and x ~= "" then
        out[#out + 1] = x
      end
      walk(x, depth + 1)
    end
  end
  walk(doc, 0)
end

local function tencent(kind, fields, env, files)
  local secrets, issued = {}, {}
  if kind <= 1 then
    env.TENCENTCLOUD_SECRET_ID, env.TENCENTCLOUD_SECRET_KEY = "AKIDtencentEXAMPLE", SECRET
    secrets[1] = SECRET
    if kind == 1 then
      env.TENCENTCLOUD_SESSION_TOKEN = SESSION
      secrets[2] = SESSION
    end
  else
    env.TKE_ROLE_ARN, env.TKE_PROVIDER_ID, env.TKE_REGION = "qcs::cam::uin/100000:roleName/fuzz", "oidc-fuzz",
      "ap-guangzhou"
    env.TKE_WEB_IDENTITY_TOKEN_FILE = TKE_TOKEN_FILE
    files[TKE_TOKEN_FILE] = WEB_TOKEN
    secrets[1] = WEB_TOKEN
    issued_secrets(fields[1], { TmpSecretKey = true, Token = true }, issued)
  end
  return "tencentcloud", secrets, issued
end

local function aws_container(fields, env, files)
  env.AWS_REGION = "us-east-1"
  env.AWS_CONTAINER_CREDENTIALS_FULL_URI = "http://169.254.170.23/v1/credentials"
  env.AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE = POD_TOKEN_FILE
  files[POD_TOKEN_FILE] = POD_TOKEN
  local issued = {}
  issued_secrets(fields[1], { SecretAccessKey = true, Token = true }, issued)
  return "aws", { POD_TOKEN }, issued
end

local function attempt(mode, statuses, fields)
  local env, files = {}, world.files
  for k in pairs(files) do
    files[k] = nil
  end
  local provider, secrets, issued
  if mode & 3 == 3 then
    provider, secrets, issued = aws_container(fields, env, files)
  else
    provider, secrets, issued = tencent(mode & 3, fields, env, files)
  end
  world.env = env
  world.answers = {
    cloud.answer(statuses & 15, fields[1], fields[3], ""),
    cloud.answer(statuses >> 4, fields[2], fields[3], ""),
  }
  local result, err, suspects = world.run(provider, { dry_run = mode & 4 ~= 0, node = "node-1" }, secrets)
  return result, err, suspects, issued
end

return function(data)
  local mode, rest = common.byte(data)
  local statuses
  statuses, rest = common.byte(rest)
  local fields = common.split(rest, 3)
  local _, err, suspects, issued = attempt(mode, statuses, fields)
  cloud.confirm(function(tainted)
    return attempt(mode, statuses, tainted)
  end, fields, err, suspects, issued)
end
