-- cloud_xml: XML answers from AWS (EC2 RebootInstances, STS
-- AssumeRoleWithWebIdentity) through infraops.xml and providers/aws.lua.
--
-- Input: two mode bytes, then body1 NUL body2 NUL retry_after NUL request_id.
-- Mode byte 1, bits 0-1: credentials (0 static keys, 1 static keys with a
-- session token, 2 and 3 IRSA: body1 answers STS, body2 EC2); bit 2: dry run.
-- Mode byte 2: low nibble the HTTP status of the first answer, high nibble
-- of the second (harness/cloud.lua STATUSES).
--
-- Checks: infraops.xml never raises and returns strings (text) or a list of
-- strings (all); restart returns a result or a cloud error and no secret
-- shows in a message or a log line (harness/cloud.lua).
local common = require("harness.common")
local cloud = require("harness.cloud")
local xml = require("infraops.xml")

local world = cloud.new()

local SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
local SESSION = "FQoGZXIvYXdzEXAMPLESESSIONTOKEN"
local WEB_TOKEN = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJmdXp6In0.c2lnbmF0dXJl"
local TOKEN_FILE = "/var/run/secrets/eks.amazonaws.com/serviceaccount/token"
local TAGS = { "Code", "requestId", "ns:Code", "Error" }

local function check_xml(doc)
  for _, tag in ipairs(TAGS) do
    local text = xml.text(doc, tag)
    if text ~= nil and type(text) ~= "string" then
      common.fail("xml.text(%q) returned a %s", tag, type(text))
    end
    if not common.is_string_list(xml.all(doc, tag)) then
      common.fail("xml.all(%q) is not a list of strings", tag)
    end
  end
end

-- The secrets an STS answer hands out (they must be scrubbed like ours).
local function sts_secrets(body, out)
  for _, tag in ipairs({ "SecretAccessKey", "SessionToken" }) do
    local value = xml.text(body, tag)
    if value and value ~= "" then
      out[#out + 1] = value
    end
  end
end

local function attempt(creds, statuses, fields)
  local env = { AWS_REGION = "us-east-1" }
  local secrets, issued = { SECRET }, {}
  local kind = creds & 3
  if kind <= 1 then
    env.AWS_ACCESS_KEY_ID, env.AWS_SECRET_ACCESS_KEY = "AKIDEXAMPLE", SECRET
    if kind == 1 then
      env.AWS_SESSION_TOKEN = SESSION
      secrets[#secrets + 1] = SESSION
    end
  else
    env.AWS_ROLE_ARN, env.AWS_WEB_IDENTITY_TOKEN_FILE = "arn:aws:iam::111122223333:role/fuzz", TOKEN_FILE
    world.files[TOKEN_FILE] = WEB_TOKEN
    secrets = { WEB_TOKEN }
    sts_secrets(fields[1], issued)
  end
  world.env = env
  world.answers = {
    cloud.answer(statuses & 15, fields[1], fields[3], fields[4]),
    cloud.answer(statuses >> 4, fields[2], fields[3], fields[4]),
  }
  local result, err, suspects = world.run("aws", { dry_run = creds & 4 ~= 0, node = "node-1" }, secrets)
  return result, err, suspects, issued
end

return function(data)
  local creds, rest = common.byte(data)
  local statuses
  statuses, rest = common.byte(rest)
  local fields = common.split(rest, 4)
  check_xml(fields[1])
  local _, err, suspects, issued = attempt(creds, statuses, fields)
  cloud.confirm(function(tainted)
    return attempt(creds, statuses, tainted)
  end, fields, err, suspects, issued)
end
