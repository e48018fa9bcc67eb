-- providers/aws.lua: providerID parsing, the signed RebootInstances request,
-- the credential chain (static, IRSA, EKS Pod Identity) with caching, the
-- error table of docs/providers.md, secrets kept out of errors and logs.
local fake_provider_ctx = require("helpers.fake_provider_ctx")

local PROVIDER_PATH = "providers/aws.lua"
local NOW = 1700000000 -- 2023-11-14T22:13:20Z
local ID = "i-0123456789abcdef0"
local SHORT_ID = "i-0123abcd"
local AKID = "AKIDEXAMPLE"
local SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
local SESSION = "FQoGZXIvYXdzEXAMPLESESSIONTOKEN//////////wEaDEXAMPLE"
local STS_AKID = "ASIASTSEXAMPLE"
local STS_SECRET = "stsSecretKeyEXAMPLE/abcdefghijklmnopqrstuv"
local STS_TOKEN = "IQoJb3JpZ2luX2VjEXAMPLESTSSESSIONTOKEN+/="
local WEB_TOKEN = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQifQ.c2lnbmF0dXJl"
local POD_TOKEN = "eyJwb2QtaWRlbnRpdHkiOiJ0b2tlbiJ9.cGF5bG9hZA.c2lnbmF0dXJlLXBvZA"
local POD_AKID = "ASIAPODEXAMPLE"
local POD_SECRET = "podSecretKeyEXAMPLE/0123456789abcdefghijkl"
local POD_SESSION = "PodSessionTokenEXAMPLE0123456789+/="
local ROLE = "arn:aws:iam::111122223333:role/myapiserver"
local TOKEN_FILE = "/var/run/secrets/eks.amazonaws.com/serviceaccount/token"
local POD_URI = "http://169.254.170.23/v1/credentials"
local POD_TOKEN_FILE = "/var/run/secrets/pods.eks.amazonaws.com/serviceaccount/eks-pod-identity-token"
local ALL_SECRETS = { SECRET, SESSION, STS_SECRET, STS_TOKEN, WEB_TOKEN, POD_TOKEN, POD_SECRET, POD_SESSION }

--- Loads the provider the way the server does: text mode, its own minimal environment.
local function load_provider()
  local file = assert(io.open(PROVIDER_PATH, "r"))
  local text = file:read("a")
  file:close()
  local env = {
    string = string, table = table, math = math, pairs = pairs, ipairs = ipairs, tostring = tostring,
    tonumber = tonumber, type = type, error = error, pcall = pcall, select = select, next = next,
    setmetatable = setmetatable, getmetatable = getmetatable,
    os = { time = os.time, clock = os.clock, date = os.date }, utf8 = utf8,
  }
  local chunk = assert(load(text, "@providers/aws.lua", "t", env))
  return chunk(), env
end

local aws = load_provider()

local function static_env(extra)
  local env = { AWS_ACCESS_KEY_ID = AKID, AWS_SECRET_ACCESS_KEY = SECRET }
  for k, v in pairs(extra or {}) do
    env[k] = v
  end
  return env
end

local function irsa_env(extra)
  local env = { AWS_ROLE_ARN = ROLE, AWS_WEB_IDENTITY_TOKEN_FILE = TOKEN_FILE, AWS_REGION = "us-east-1",
    AWS_DEFAULT_REGION = "us-east-1", AWS_STS_REGIONAL_ENDPOINTS = "regional" }
  for k, v in pairs(extra or {}) do
    env[k] = v
  end
  return env
end

local function pod_env(extra)
  local env = { AWS_CONTAINER_CREDENTIALS_FULL_URI = POD_URI, AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE = POD_TOKEN_FILE }
  for k, v in pairs(extra or {}) do
    env[k] = v
  end
  return env
end

local function new_ctx(opts)
  opts = opts or {}
  return fake_provider_ctx.new({
    responses = opts.responses or {},
    env = opts.env or static_env(),
    files = opts.files or { [TOKEN_FILE] = WEB_TOKEN .. "\n", [POD_TOKEN_FILE] = POD_TOKEN .. "\n" },
    clock = { now = opts.now or NOW },
  })
end

local function ok_answer(request_id)
  return { status = 200, headers = { ["Content-Type"] = "text/xml;charset=UTF-8" },
    body = '<?xml version="1.0" encoding="UTF-8"?>\n'
      .. '<RebootInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">'
      .. "<requestId>" .. (request_id or "59dbff89-35bd-4eac-99ed-be587EXAMPLE") .. "</requestId>"
      .. "<return>true</return></RebootInstancesResponse>" }
end

local function ec2_error(status, code, message, request_id, headers)
  return { status = status, headers = headers or {},
    body = '<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>' .. code
      .. "</Code><Message>" .. message .. "</Message></Error></Errors><RequestID>"
      .. (request_id or "ea966190-f9aa-478e-9ede-example") .. "</RequestID></Response>" }
end

local function sts_answer(expiration, opts)
  opts = opts or {}
  return { status = 200, headers = { ["x-amzn-RequestId"] = "sts-header-id" },
    body = '<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
      .. "<AssumeRoleWithWebIdentityResult>"
      .. "<SubjectFromWebIdentityToken>system:serviceaccount:infra:myapiserver</SubjectFromWebIdentityToken>"
      .. "<AssumedRoleUser><Arn>arn:aws:sts::111122223333:assumed-role/myapiserver/s</Arn>"
      .. "<AssumedRoleId>AROAEXAMPLE:s</AssumedRoleId></AssumedRoleUser>"
      .. "<Credentials>"
      .. "<AccessKeyId>" .. (opts.akid or STS_AKID) .. "</AccessKeyId>"
      .. "<SecretAccessKey>" .. (opts.secret or STS_SECRET) .. "</SecretAccessKey>"
      .. "<SessionToken>" .. (opts.token or STS_TOKEN) .. "</SessionToken>"
      .. "<Expiration>" .. expiration .. "</Expiration>"
      .. "</Credentials><Audience>sts.amazonaws.com</Audience>"
      .. "</AssumeRoleWithWebIdentityResult>"
      .. "<ResponseMetadata><RequestId>sts-request-1</RequestId></ResponseMetadata>"
      .. "</AssumeRoleWithWebIdentityResponse>" }
end

local function sts_error(status, code, message)
  return { status = status,
    body = "<ErrorResponse><Error><Type>Sender</Type><Code>" .. code .. "</Code><Message>" .. message
      .. "</Message></Error><RequestId>sts-err-1</RequestId></ErrorResponse>" }
end

local function pod_answer(expiration, opts)
  opts = opts or {}
  return { status = 200, headers = { ["Content-Type"] = "application/json" },
    body = '{"AccessKeyId":"' .. (opts.akid or POD_AKID) .. '","SecretAccessKey":"' .. POD_SECRET
      .. '","Token":"' .. POD_SESSION .. '","AccountId":"111122223333","Expiration":"' .. expiration .. '"}' }
end

-- 2023-11-14T23:13:20Z is NOW + 3600.
local IN_ONE_HOUR = "2023-11-14T23:13:20Z"

local function header(req, name)
  for k, v in pairs(req.headers or {}) do
    if k:lower() == name:lower() then
      return v
    end
  end
  return nil
end

local function form(body)
  local fields, count = {}, 0
  for pair in body:gmatch("[^&]+") do
    local k, v = pair:match("^([^=]*)=(.*)$")
    v = v:gsub("%%(%x%x)", function(hex)
      return string.char(tonumber(hex, 16))
    end)
    fields[k] = v
    count = count + 1
  end
  return fields, count
end

--- Recomputes the SigV4 headers for a recorded request with the signer and
-- the same inputs, and compares them with what was sent.
local function assert_signed(ctx, req, region, access_key, secret_key, session_token)
  local expected = ctx.sigv4.sign({
    method = req.method, url = req.url,
    headers = { ["Content-Type"] = header(req, "Content-Type") },
    body = req.body, service = "ec2", region = region,
    access_key = access_key, secret_key = secret_key, session_token = session_token,
    time = ctx.clock.now,
  }, ctx.crypto)
  local authorization = header(req, "Authorization")
  assert.is_string(authorization)
  assert.are.equal(header({ headers = expected }, "Authorization"), authorization)
  assert.are.equal(header({ headers = expected }, "X-Amz-Date"), header(req, "X-Amz-Date"))
  assert.are.equal(ctx.time.amz_date(ctx.clock.now), header(req, "X-Amz-Date"))
  local scope = ctx.time.amz_date(ctx.clock.now):sub(1, 8) .. "/" .. region .. "/ec2/aws4_request"
  assert.truthy(authorization:find("AWS4-HMAC-SHA256 Credential=" .. access_key .. "/" .. scope, 1, true))
  local signed = authorization:match("SignedHeaders=([^,]+)")
  assert.truthy(signed:find("host", 1, true))
  assert.truthy(signed:find("x-amz-date", 1, true))
  assert.truthy(signed:find("content-type", 1, true))
  if session_token then
    assert.are.equal(session_token, header(req, "X-Amz-Security-Token"))
    assert.truthy(signed:find("x-amz-security-token", 1, true))
  else
    assert.is_nil(header(req, "X-Amz-Security-Token"))
  end
end

local function serialize(value, seen)
  seen = seen or {}
  if type(value) ~= "table" then
    return tostring(value)
  end
  if seen[value] then
    return ""
  end
  seen[value] = true
  local parts = {}
  for k, v in pairs(value) do
    parts[#parts + 1] = tostring(k) .. "=" .. serialize(v, seen)
  end
  return "{" .. table.concat(parts, ",") .. "}"
end

local function assert_no_secrets(ctx, ...)
  local text = serialize({ logs = ctx.logs, results = { ... } })
  for _, secret in ipairs(ALL_SECRETS) do
    assert.is_nil(text:find(secret, 1, true), "a secret leaked: " .. secret:sub(1, 6) .. "...")
  end
end

local function target(region, id)
  return { instance_id = id or ID, region = region, zone = region and (region .. "a") or nil }
end

describe("providers/aws.lua", function()
  it("loads in the minimal sandbox environment and sets no globals", function()
    local provider, env = load_provider()
    local before = {}
    for k in pairs(env) do
      before[k] = true
    end
    assert.are.equal("aws", provider.name)
    assert.are.equal(1, provider.api_version)
    assert.is_function(provider.match)
    assert.is_function(provider.restart)
    assert.is_function(provider.check)
    provider.match("aws:///us-east-1a/" .. ID)
    provider.check(new_ctx())
    provider.restart(target("us-east-1"), {}, new_ctx({ responses = { ok_answer() } }))
    for k in pairs(env) do
      assert.is_true(before[k], "new global " .. tostring(k))
    end
  end)

  describe("match()", function()
    it("parses aws:///<zone>/<id> and derives the region from the zone", function()
      assert.are.same({ instance_id = ID, zone = "us-east-1a", region = "us-east-1" },
        aws.match("aws:///us-east-1a/" .. ID))
      assert.are.same({ instance_id = SHORT_ID, zone = "eu-west-3c", region = "eu-west-3" },
        aws.match("aws:///eu-west-3c/" .. SHORT_ID))
    end)

    it("derives the region of Local Zones, Wavelength, GovCloud and China zones", function()
      local cases = {
        ["us-west-2-lax-1a"] = "us-west-2",
        ["us-east-1-wl1-bos-wlz-1"] = "us-east-1",
        ["us-gov-west-1a"] = "us-gov-west-1",
        ["cn-north-1b"] = "cn-north-1",
        ["ap-southeast-2c"] = "ap-southeast-2",
      }
      for zone, region in pairs(cases) do
        local t = aws.match("aws:///" .. zone .. "/" .. ID)
        assert.are.equal(region, t.region, zone)
        assert.are.equal(zone, t.zone)
      end
    end)

    it("accepts aws:////<id>, aws:///<id>, a trailing slash and a bare instance id", function()
      assert.are.same({ instance_id = ID }, aws.match("aws:////" .. ID))
      assert.are.same({ instance_id = ID }, aws.match("aws:///" .. ID))
      assert.are.same({ instance_id = ID, zone = "us-east-1a", region = "us-east-1" },
        aws.match("aws:///us-east-1a/" .. ID .. "/"))
      assert.are.same({ instance_id = ID }, aws.match(ID))
      assert.are.same({ instance_id = SHORT_ID }, aws.match(SHORT_ID))
    end)

    it("accepts aws://<region>/<id> and aws://<region>/<zone>/<id>", function()
      assert.are.same({ instance_id = ID, region = "us-west-2" }, aws.match("aws://us-west-2/" .. ID))
      assert.are.same({ instance_id = ID, zone = "us-west-2b", region = "us-west-2" },
        aws.match("aws://us-west-2/us-west-2b/" .. ID))
      local t, err = aws.match("aws://us-west-2/eu-west-1a/" .. ID)
      assert.is_nil(t)
      assert.matches("not in region", err)
    end)

    it("reads the region label when the providerID has no zone, and prefers the zone", function()
      local node = { metadata = { name = "n1", labels = { ["topology.kubernetes.io/region"] = "ap-south-1" } } }
      assert.are.equal("ap-south-1", aws.match("aws:////" .. ID, node).region)
      assert.are.equal("ap-south-1", aws.match(ID, node).region)
      assert.are.equal("us-east-1", aws.match("aws:///us-east-1a/" .. ID, node).region)
      assert.are.equal("eu-west-1", aws.match("aws://eu-west-1/" .. ID, node).region)
      -- a zone name without a region prefix (an AZ id) falls back to the label
      local t = aws.match("aws:///use1-az1/" .. ID, node)
      assert.are.equal("use1-az1", t.zone)
      assert.are.equal("ap-south-1", t.region)
    end)

    it("leaves region nil when nothing names one (restart falls back to the environment)", function()
      assert.is_nil(aws.match("aws:////" .. ID).region)
      local bad_label = { metadata = { labels = { ["topology.kubernetes.io/region"] = "x y" } } }
      assert.is_nil(aws.match("aws:////" .. ID, bad_label).region)
      for _, node in ipairs({ "node", 42, true, {}, { metadata = "x" }, { metadata = { labels = "x" } },
        { metadata = { labels = { ["topology.kubernetes.io/region"] = 7 } } } }) do
        assert.is_nil(aws.match("aws:////" .. ID, node).region)
      end
    end)

    it("says Fargate nodes cannot be rebooted", function()
      local t, err = aws.match("aws:///us-east-1a/fargate-10.0.12.34")
      assert.is_nil(t)
      assert.matches("Fargate", err)
      t, err = aws.match("aws:///us-east-2b/fargate-ip-192-168-1-1.us-east-2.compute.internal")
      assert.is_nil(t)
      assert.matches("Fargate", err)
    end)

    it("answers nil, message for malformed aws:// IDs", function()
      local malformed = {
        "aws://", "aws:///", "aws:////", "aws:///us-east-1a/", "aws:///us-east-1a/i-xyz",
        "aws:///us-east-1a/i-0123", "aws:///us-east-1a/i-0123456789abcdef", "aws:///us-east-1a/i-0123456789ABCDEF0",
        "aws:///us-east-1a/i-0123456789abcdef01", "aws:///a/b/" .. ID, "aws:///us-east-1a//" .. ID,
        "aws:///us_east!/" .. ID, "aws://not a region/" .. ID, "aws://us-east-1a/" .. ID,
        "aws:///us-east-1a/vol-0123456789abcdef0", "aws:///us-east-1a/" .. ID .. "?x=1",
        "aws:///us-east-1a/" .. ID .. " ", "aws://" .. string.rep("a", 10240),
        "aws:///us-east-1a/" .. string.rep("0", 10240),
      }
      for _, id in ipairs(malformed) do
        local t, err = aws.match(id)
        assert.is_nil(t, id)
        assert.is_string(err, id)
        assert.truthy(#err < 1200, "a bounded message")
      end
    end)

    it("answers nil for IDs that are not AWS's", function()
      local foreign = {
        "", "gce://project/us-central1-a/vm-1", "qcloud:///100003/ins-abcdefgh", "cn-hangzhou.i-bp1abcdefg",
        "azure:///subscriptions/s/resourceGroups/r/providers/Microsoft.Compute/virtualMachines/vm",
        "openstack:///0b4c3c1e-1234-4abc-8def-123456789abc", "i-xyz", "i-0123", "AWS:///us-east-1a/" .. ID,
        "aws:/us-east-1a/" .. ID, "kind://docker/kind/kind-control-plane", string.rep("x", 10240),
        " aws:///us-east-1a/" .. ID,
      }
      for _, id in ipairs(foreign) do
        local t, err = aws.match(id)
        assert.is_nil(t, id)
        assert.is_nil(err, id)
      end
    end)

    it("never raises, whatever it is given", function()
      for _, value in ipairs({ 42, true, false, {}, function() end, 1.5, math.huge }) do
        assert.is_nil(aws.match(value))
      end
      assert.is_nil(aws.match(nil))
      assert.is_nil(aws.match(nil, nil))
      local seed = 12345
      local function random(n)
        seed = (seed * 1103515245 + 12345) % 2147483648
        return seed % n
      end
      local alphabet = "aws:/-.i0123456789abcdefABCDEF% \n\0?#_xyz"
      for _ = 1, 2000 do
        local parts = { random(2) == 0 and "aws://" or "" }
        for _ = 1, random(40) do
          local p = random(#alphabet) + 1
          parts[#parts + 1] = alphabet:sub(p, p)
        end
        local id = table.concat(parts)
        local ok, t, err = pcall(aws.match, id, { metadata = { labels = {} } })
        assert.is_true(ok, id)
        if t then
          assert.is_string(t.instance_id)
        elseif err then
          assert.is_string(err)
        end
      end
    end)
  end)

  describe("restart()", function()
    it("sends a SigV4-signed RebootInstances POST to the regional endpoint", function()
      local ctx = new_ctx({ responses = { ok_answer("req-1") } })
      local result, err = aws.restart(aws.match("aws:///us-east-1a/" .. ID), { node = "n1" }, ctx)
      assert.is_nil(err)
      assert.are.same({ request_id = "req-1", dry_run = false }, result)
      assert.are.equal(1, #ctx.requests)
      local req = ctx.requests[1]
      assert.are.equal("POST", req.method)
      assert.are.equal("https://ec2.us-east-1.amazonaws.com/", req.url)
      assert.are.equal(10, req.timeout)
      assert.are.equal("application/x-www-form-urlencoded; charset=utf-8", header(req, "Content-Type"))
      assert.are.equal("Action=RebootInstances&InstanceId.1=" .. ID .. "&Version=2016-11-15", req.body)
      local fields, count = form(req.body)
      assert.are.same({ Action = "RebootInstances", ["InstanceId.1"] = ID, Version = "2016-11-15" }, fields)
      assert.are.equal(3, count)
      assert_signed(ctx, req, "us-east-1", AKID, SECRET, nil)
    end)

    it("signs with the session token and sends X-Amz-Security-Token", function()
      local ctx = new_ctx({ responses = { ok_answer() }, env = static_env({ AWS_SESSION_TOKEN = SESSION }) })
      assert.is_table(aws.restart(target("eu-central-1"), {}, ctx))
      local req = ctx.requests[1]
      assert.are.equal("https://ec2.eu-central-1.amazonaws.com/", req.url)
      assert_signed(ctx, req, "eu-central-1", AKID, SECRET, SESSION)
      assert_no_secrets(ctx)
    end)

    it("uses the .amazonaws.com.cn domain in China regions", function()
      local ctx = new_ctx({ responses = { ok_answer() } })
      assert.is_table(aws.restart(aws.match("aws:///cn-northwest-1a/" .. ID), {}, ctx))
      assert.are.equal("https://ec2.cn-northwest-1.amazonaws.com.cn/", ctx.requests[1].url)
      assert_signed(ctx, ctx.requests[1], "cn-northwest-1", AKID, SECRET, nil)
    end)

    describe("region", function()
      it("falls back to AWS_REGION, then AWS_DEFAULT_REGION", function()
        local ctx = new_ctx({ responses = { ok_answer() },
          env = static_env({ AWS_REGION = "eu-north-1", AWS_DEFAULT_REGION = "eu-south-1" }) })
        assert.is_table(aws.restart(aws.match("aws:////" .. ID), {}, ctx))
        assert.are.equal("https://ec2.eu-north-1.amazonaws.com/", ctx.requests[1].url)
        assert_signed(ctx, ctx.requests[1], "eu-north-1", AKID, SECRET, nil)

        ctx = new_ctx({ responses = { ok_answer() }, env = static_env({ AWS_DEFAULT_REGION = "eu-south-1" }) })
        assert.is_table(aws.restart(aws.match(ID), {}, ctx))
        assert.are.equal("https://ec2.eu-south-1.amazonaws.com/", ctx.requests[1].url)
      end)

      it("prefers the target's region over the environment", function()
        local ctx = new_ctx({ responses = { ok_answer() }, env = static_env({ AWS_REGION = "eu-north-1" }) })
        assert.is_table(aws.restart(aws.match("aws:///sa-east-1a/" .. ID), {}, ctx))
        assert.are.equal("https://ec2.sa-east-1.amazonaws.com/", ctx.requests[1].url)
      end)

      it("answers InvalidRequest without a region, and for an invalid one", function()
        local ctx = new_ctx()
        local result, err = aws.restart(aws.match("aws:////" .. ID), {}, ctx)
        assert.is_nil(result)
        assert.are.equal("InvalidRequest", err.reason)
        assert.matches("no region", err.message)
        assert.are.equal(0, #ctx.requests)

        ctx = new_ctx({ env = static_env({ AWS_REGION = "evil.example.com/x" }) })
        result, err = aws.restart(aws.match(ID), {}, ctx)
        assert.is_nil(result)
        assert.are.equal("InvalidRequest", err.reason)
        assert.matches("AWS_REGION", err.message)
        assert.are.equal(0, #ctx.requests)

        result, err = aws.restart({ instance_id = ID, region = "us-east-1.evil.com" }, {}, new_ctx())
        assert.is_nil(result)
        assert.are.equal("InvalidRequest", err.reason)
      end)

      it("answers InvalidRequest for a target without a valid instance id", function()
        for _, t in ipairs({ {}, { instance_id = "i-xyz", region = "us-east-1" }, "x" }) do
          local result, err = aws.restart(t, {}, new_ctx())
          assert.is_nil(result)
          assert.are.equal("InvalidRequest", err.reason)
        end
      end)
    end)

    describe("endpoint overrides", function()
      it("uses AWS_ENDPOINT_URL_EC2 over AWS_ENDPOINT_URL, keeping its path, signing the real region", function()
        local ctx = new_ctx({ responses = { ok_answer() }, env = static_env({
          AWS_ENDPOINT_URL_EC2 = "http://127.0.0.1:18443/mock/ec2", AWS_ENDPOINT_URL = "http://127.0.0.1:1/" }) })
        assert.is_table(aws.restart(target("us-west-2"), {}, ctx))
        assert.are.equal("http://127.0.0.1:18443/mock/ec2", ctx.requests[1].url)
        assert_signed(ctx, ctx.requests[1], "us-west-2", AKID, SECRET, nil)
      end)

      it("uses AWS_ENDPOINT_URL (https too), adding / when it has no path", function()
        local ctx = new_ctx({ responses = { ok_answer() },
          env = static_env({ AWS_ENDPOINT_URL = "https://aws-mock.test:8443" }) })
        assert.is_table(aws.restart(target("us-west-2"), {}, ctx))
        assert.are.equal("https://aws-mock.test:8443/", ctx.requests[1].url)
        assert_signed(ctx, ctx.requests[1], "us-west-2", AKID, SECRET, nil)
      end)

      it("ignores overrides when AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true", function()
        local ctx = new_ctx({ responses = { ok_answer() }, env = static_env({
          AWS_ENDPOINT_URL_EC2 = "http://127.0.0.1:18443/", AWS_IGNORE_CONFIGURED_ENDPOINT_URLS = "true" }) })
        assert.is_table(aws.restart(target("us-west-2"), {}, ctx))
        assert.are.equal("https://ec2.us-west-2.amazonaws.com/", ctx.requests[1].url)
      end)

      it("answers InvalidRequest for an override that is not an http(s) URL", function()
        for _, bad in ipairs({ "ftp://x/", "127.0.0.1:8080", "http://", "http://h/?a=b", "http://u:p@h/" }) do
          local ctx = new_ctx({ env = static_env({ AWS_ENDPOINT_URL_EC2 = bad }) })
          local result, err = aws.restart(target("us-west-2"), {}, ctx)
          assert.is_nil(result, bad)
          assert.are.equal("InvalidRequest", err.reason)
          assert.matches("AWS_ENDPOINT_URL_EC2", err.message)
          assert.are.equal(0, #ctx.requests)
        end
      end)
    end)

    describe("dry run", function()
      it("sends DryRun=true and treats DryRunOperation as success", function()
        local ctx = new_ctx({ responses = { ec2_error(412, "DryRunOperation",
          "Request would have succeeded, but DryRun flag is set.", "dry-req-1") } })
        local result, err = aws.restart(target("us-east-1"), { dry_run = true }, ctx)
        assert.is_nil(err)
        assert.are.same({ request_id = "dry-req-1", dry_run = true }, result)
        local fields, count = form(ctx.requests[1].body)
        assert.are.equal("true", fields.DryRun)
        assert.are.equal(4, count)
        assert.are.equal("Action=RebootInstances&InstanceId.1=" .. ID .. "&Version=2016-11-15&DryRun=true",
          ctx.requests[1].body)
        assert_signed(ctx, ctx.requests[1], "us-east-1", AKID, SECRET, nil)
      end)

      it("maps UnauthorizedOperation to Forbidden", function()
        local ctx = new_ctx({ responses = { ec2_error(403, "UnauthorizedOperation",
          "You are not authorized to perform this operation. Encoded authorization failure message: abc",
          "dry-req-2") } })
        local result, err = aws.restart(target("us-east-1"), { dry_run = true }, ctx)
        assert.is_nil(result)
        assert.are.equal("Forbidden", err.reason)
        assert.are.equal("UnauthorizedOperation", err.cloud_code)
        assert.are.equal("dry-req-2", err.request_id)
        assert.falsy(err.retryable)
      end)

      it("does not take DryRunOperation for success when no dry run was asked", function()
        local ctx = new_ctx({ responses = { ec2_error(412, "DryRunOperation", "would have succeeded") } })
        local result, err = aws.restart(target("us-east-1"), {}, ctx)
        assert.is_nil(result)
        assert.are.equal("Internal", err.reason)
        assert.are.equal("DryRunOperation", err.cloud_code)
      end)
    end)
  end)

  describe("credentials", function()
    it("prefers static keys over IRSA and Pod Identity", function()
      local env = irsa_env(pod_env(static_env()))
      local ctx = new_ctx({ responses = { ok_answer() }, env = env })
      assert.is_table(aws.restart(target("us-east-1"), {}, ctx))
      assert.are.equal(1, #ctx.requests)
      assert_signed(ctx, ctx.requests[1], "us-east-1", AKID, SECRET, nil)
    end)

    it("needs both static keys", function()
      local ctx = new_ctx({ env = { AWS_ACCESS_KEY_ID = AKID } })
      local result, err = aws.restart(target("us-east-1"), {}, ctx)
      assert.is_nil(result)
      assert.are.equal("Unauthorized", err.reason)
      assert.matches("no AWS credentials", err.message)
      assert.are.equal(0, #ctx.requests)
    end)

    describe("IRSA web identity", function()
      it("exchanges the token file at the regional STS endpoint, unsigned, then signs with the session", function()
        local ctx = new_ctx({ responses = { sts_answer(IN_ONE_HOUR), ok_answer() }, env = irsa_env() })
        local result, err = aws.restart(target("eu-west-1"), {}, ctx)
        assert.is_nil(err)
        assert.is_table(result)
        assert.are.equal(2, #ctx.requests)
        local sts = ctx.requests[1]
        assert.are.equal("POST", sts.method)
        assert.are.equal("https://sts.us-east-1.amazonaws.com/", sts.url)
        assert.are.equal(10, sts.timeout)
        assert.is_nil(header(sts, "Authorization"))
        assert.are.equal("application/x-www-form-urlencoded; charset=utf-8", header(sts, "Content-Type"))
        local fields = form(sts.body)
        assert.are.equal("AssumeRoleWithWebIdentity", fields.Action)
        assert.are.equal("2011-06-15", fields.Version)
        assert.are.equal(ROLE, fields.RoleArn)
        assert.are.equal(WEB_TOKEN, fields.WebIdentityToken) -- the trailing newline is trimmed
        assert.are.equal("myapiserver-" .. NOW, fields.RoleSessionName)
        assert.truthy(sts.body:find("RoleArn=arn%3Aaws%3Aiam%3A%3A111122223333%3Arole%2Fmyapiserver", 1, true))
        local ec2 = ctx.requests[2]
        assert.are.equal("https://ec2.eu-west-1.amazonaws.com/", ec2.url)
        assert_signed(ctx, ec2, "eu-west-1", STS_AKID, STS_SECRET, STS_TOKEN)
        assert_no_secrets(ctx, result)
      end)

      it("uses AWS_ROLE_SESSION_NAME, the target region without AWS_REGION, and the global endpoint in legacy mode",
        function()
          local env = irsa_env({ AWS_ROLE_SESSION_NAME = "node-reboots" })
          env.AWS_REGION, env.AWS_DEFAULT_REGION = nil, nil
          local ctx = new_ctx({ responses = { sts_answer(IN_ONE_HOUR), ok_answer() }, env = env })
          assert.is_table(aws.restart(target("ap-northeast-1"), {}, ctx))
          assert.are.equal("https://sts.ap-northeast-1.amazonaws.com/", ctx.requests[1].url)
          assert.are.equal("node-reboots", form(ctx.requests[1].body).RoleSessionName)

          env.AWS_STS_REGIONAL_ENDPOINTS = "legacy"
          ctx = new_ctx({ responses = { sts_answer(IN_ONE_HOUR), ok_answer() }, env = env })
          assert.is_table(aws.restart(target("ap-northeast-1"), {}, ctx))
          assert.are.equal("https://sts.amazonaws.com/", ctx.requests[1].url)

          ctx = new_ctx({ responses = { sts_answer(IN_ONE_HOUR), ok_answer() }, env = env })
          assert.is_table(aws.restart(target("cn-north-1"), {}, ctx))
          assert.are.equal("https://sts.cn-north-1.amazonaws.com.cn/", ctx.requests[1].url)
        end)

      it("honours AWS_ENDPOINT_URL_STS, and AWS_ENDPOINT_URL for both services", function()
        local ctx = new_ctx({ responses = { sts_answer(IN_ONE_HOUR), ok_answer() },
          env = irsa_env({ AWS_ENDPOINT_URL_STS = "http://127.0.0.1:18444/sts" }) })
        assert.is_table(aws.restart(target("us-east-2"), {}, ctx))
        assert.are.equal("http://127.0.0.1:18444/sts", ctx.requests[1].url)
        assert.are.equal("https://ec2.us-east-2.amazonaws.com/", ctx.requests[2].url)

        ctx = new_ctx({ responses = { sts_answer(IN_ONE_HOUR), ok_answer() },
          env = irsa_env({ AWS_ENDPOINT_URL = "http://127.0.0.1:18445" }) })
        assert.is_table(aws.restart(target("us-east-2"), {}, ctx))
        assert.are.equal("http://127.0.0.1:18445/", ctx.requests[1].url)
        assert.are.equal("http://127.0.0.1:18445/", ctx.requests[2].url)
        assert_signed(ctx, ctx.requests[2], "us-east-2", STS_AKID, STS_SECRET, STS_TOKEN)
      end)

      it("caches the credentials until 5 minutes before Expiration, then re-reads the rotated token", function()
        local files = { [TOKEN_FILE] = WEB_TOKEN }
        local ctx = new_ctx({ env = irsa_env(), files = files, responses = {
          sts_answer(IN_ONE_HOUR), ok_answer("r1"), ok_answer("r2"),
          sts_answer("2023-11-15T00:13:20Z", { akid = "ASIASECONDEXAMPLE" }), ok_answer("r3"),
        } })
        assert.are.equal("r1", aws.restart(target("us-east-1"), {}, ctx).request_id)
        local value, ttl = ctx.cache.get("irsa:" .. ROLE)
        assert.is_string(value)
        assert.are.equal(3600 - 300, ttl)

        ctx.advance(3600 - 301) -- still fresh: no STS call
        assert.are.equal("r2", aws.restart(target("us-east-1"), {}, ctx).request_id)
        assert.are.equal(3, #ctx.requests)
        assert_signed(ctx, ctx.requests[3], "us-east-1", STS_AKID, STS_SECRET, STS_TOKEN)

        files[TOKEN_FILE] = "rotated-token-value"
        ctx.advance(1) -- 5 minutes before expiry: fetch again
        assert.are.equal("r3", aws.restart(target("us-east-1"), {}, ctx).request_id)
        assert.are.equal(5, #ctx.requests)
        assert.are.equal("rotated-token-value", form(ctx.requests[4].body).WebIdentityToken)
        assert_signed(ctx, ctx.requests[5], "us-east-1", "ASIASECONDEXAMPLE", STS_SECRET, STS_TOKEN)
        assert_no_secrets(ctx)
      end)

      it("does not cache credentials that expire within 5 minutes", function()
        local ctx = new_ctx({ env = irsa_env(), responses = {
          sts_answer("2023-11-14T22:15:00Z"), ok_answer(), sts_answer("2023-11-14T22:15:00Z"), ok_answer(),
        } })
        assert.is_table(aws.restart(target("us-east-1"), {}, ctx))
        assert.is_table(aws.restart(target("us-east-1"), {}, ctx))
        assert.are.equal(4, #ctx.requests)
        assert.is_nil(ctx.cache.get("irsa:" .. ROLE))
      end)

      it("drops cached credentials when EC2 rejects them, and fetches fresh ones next time", function()
        local ctx = new_ctx({ env = irsa_env(), responses = {
          sts_answer(IN_ONE_HOUR), ec2_error(400, "ExpiredToken", "The security token in the request is expired"),
          sts_answer(IN_ONE_HOUR, { akid = "ASIAFRESHEXAMPLE" }), ok_answer(),
        } })
        local result, err = aws.restart(target("us-east-1"), {}, ctx)
        assert.is_nil(result)
        assert.are.equal("Unauthorized", err.reason)
        assert.are.equal("ExpiredToken", err.cloud_code)
        assert.is_true(err.retryable) -- fresh temporary credentials may succeed
        assert.is_nil(ctx.cache.get("irsa:" .. ROLE))
        assert.is_table(aws.restart(target("us-east-1"), {}, ctx))
        assert.are.equal(4, #ctx.requests)
        assert.are.equal("https://sts.us-east-1.amazonaws.com/", ctx.requests[3].url)
        assert_signed(ctx, ctx.requests[4], "us-east-1", "ASIAFRESHEXAMPLE", STS_SECRET, STS_TOKEN)
      end)

      it("maps STS failures, naming the source and never the token", function()
        local cases = {
          { sts_error(400, "InvalidIdentityToken", "Token " .. WEB_TOKEN .. " is not valid"), "Unauthorized", true },
          { sts_error(403, "AccessDenied", "Not authorized to perform sts:AssumeRoleWithWebIdentity"),
            "Unauthorized", nil },
          { sts_error(400, "ExpiredTokenException", "Token expired: current date/time must be before"),
            "Unauthorized", nil },
          { sts_error(400, "Throttling", "Rate exceeded"), "Throttled", true },
          { sts_error(503, "ServiceUnavailable", "Service unavailable"), "Unavailable", true },
          { sts_error(400, "IDPCommunicationError", "could not reach the IdP"), "Unavailable", true },
          { { status = 200, body = "<AssumeRoleWithWebIdentityResponse/>" }, "Unauthorized", nil },
          { { err = "connection refused", code = "connect" }, "Unavailable", true },
          { { err = "timed out", code = "timeout" }, "Unavailable", true },
        }
        for _, case in ipairs(cases) do
          local ctx = new_ctx({ env = irsa_env(), responses = { case[1] } })
          local result, err = aws.restart(target("us-east-1"), {}, ctx)
          assert.is_nil(result)
          assert.are.equal(case[2], err.reason, serialize(case[1]))
          assert.are.equal(case[3], err.retryable, serialize(case[1]))
          assert.falsy(err.sent)
          assert.matches("IRSA", err.message)
          assert.are.equal(1, #ctx.requests) -- EC2 was not called
          if case[1].status and case[1].status ~= 200 then
            assert.is_string(err.cloud_code)
            assert.are.equal("sts-err-1", err.request_id)
          end
          assert_no_secrets(ctx, result, err)
        end
      end)

      it("fails Unauthorized when the token file is missing or empty", function()
        local ctx = new_ctx({ env = irsa_env(), files = {} })
        local result, err = aws.restart(target("us-east-1"), {}, ctx)
        assert.is_nil(result)
        assert.are.equal("Unauthorized", err.reason)
        assert.truthy(err.message:find(TOKEN_FILE, 1, true))
        assert.are.equal(0, #ctx.requests)

        ctx = new_ctx({ env = irsa_env(), files = { [TOKEN_FILE] = " \n" } })
        result, err = aws.restart(target("us-east-1"), {}, ctx)
        assert.is_nil(result)
        assert.are.equal("Unauthorized", err.reason)
        assert.matches("empty", err.message)
        assert.are.equal(0, #ctx.requests)
      end)
    end)

    describe("EKS Pod Identity", function()
      it("GETs the agent with the token file as Authorization and signs with its answer", function()
        local ctx = new_ctx({ env = pod_env({ AWS_REGION = "us-east-1" }),
          responses = { pod_answer(IN_ONE_HOUR), ok_answer() } })
        local result, err = aws.restart(target("us-east-1"), {}, ctx)
        assert.is_nil(err)
        assert.is_table(result)
        local agent = ctx.requests[1]
        assert.are.equal("GET", agent.method)
        assert.are.equal(POD_URI, agent.url)
        assert.are.equal(10, agent.timeout)
        assert.are.equal(POD_TOKEN, header(agent, "Authorization"))
        assert_signed(ctx, ctx.requests[2], "us-east-1", POD_AKID, POD_SECRET, POD_SESSION)
        assert_no_secrets(ctx, result)
      end)

      it("caches until 5 minutes before Expiration, then re-reads the token file", function()
        local files = { [POD_TOKEN_FILE] = POD_TOKEN }
        local ctx = new_ctx({ env = pod_env(), files = files, responses = {
          pod_answer(IN_ONE_HOUR), ok_answer(), ok_answer(), pod_answer("2023-11-15T01:13:20Z"), ok_answer(),
        } })
        assert.is_table(aws.restart(target("us-east-1"), {}, ctx))
        local _, ttl = ctx.cache.get("container:" .. POD_URI)
        assert.are.equal(3300, ttl)
        assert.is_table(aws.restart(target("us-east-1"), {}, ctx))
        assert.are.equal(3, #ctx.requests)
        files[POD_TOKEN_FILE] = "rotated-pod-token"
        ctx.advance(3300)
        assert.is_table(aws.restart(target("us-east-1"), {}, ctx))
        assert.are.equal(5, #ctx.requests)
        assert.are.equal("rotated-pod-token", header(ctx.requests[4], "Authorization"))
      end)

      it("accepts the literal AWS_CONTAINER_AUTHORIZATION_TOKEN and a loopback mock", function()
        local ctx = new_ctx({ responses = { pod_answer(IN_ONE_HOUR), ok_answer() }, env = {
          AWS_CONTAINER_CREDENTIALS_FULL_URI = "http://127.0.0.1:18446/v1/credentials",
          AWS_CONTAINER_AUTHORIZATION_TOKEN = POD_TOKEN } })
        assert.is_table(aws.restart(target("us-east-1"), {}, ctx))
        assert.are.equal("http://127.0.0.1:18446/v1/credentials", ctx.requests[1].url)
        assert.are.equal(POD_TOKEN, header(ctx.requests[1], "Authorization"))
      end)

      it("resolves the ECS relative URI against 169.254.170.2", function()
        local ctx = new_ctx({ responses = { pod_answer(IN_ONE_HOUR), ok_answer() },
          env = { AWS_CONTAINER_CREDENTIALS_RELATIVE_URI = "/v2/credentials/abc" } })
        assert.is_table(aws.restart(target("us-east-1"), {}, ctx))
        assert.are.equal("http://169.254.170.2/v2/credentials/abc", ctx.requests[1].url)
        assert.is_nil(header(ctx.requests[1], "Authorization"))
      end)

      it("refuses to send the token over plain http to other hosts", function()
        local ctx = new_ctx({ env = pod_env({ AWS_CONTAINER_CREDENTIALS_FULL_URI = "http://evil.example.com/creds" }) })
        local result, err = aws.restart(target("us-east-1"), {}, ctx)
        assert.is_nil(result)
        assert.are.equal("Unauthorized", err.reason)
        assert.matches("Pod Identity", err.message)
        assert.are.equal(0, #ctx.requests)

        ctx = new_ctx({ responses = { pod_answer(IN_ONE_HOUR), ok_answer() },
          env = pod_env({ AWS_CONTAINER_CREDENTIALS_FULL_URI = "https://creds.example.com/v1" }) })
        assert.is_table(aws.restart(target("us-east-1"), {}, ctx))
      end)

      it("is used only after IRSA", function()
        local ctx = new_ctx({ env = irsa_env(pod_env()), responses = { sts_answer(IN_ONE_HOUR), ok_answer() } })
        assert.is_table(aws.restart(target("us-east-1"), {}, ctx))
        assert.are.equal("https://sts.us-east-1.amazonaws.com/", ctx.requests[1].url)
      end)

      it("maps agent failures, naming the source and never the token", function()
        local cases = {
          { { status = 401, body = '{"code":"InvalidToken","message":"bad token ' .. POD_TOKEN .. '"}' },
            "Unauthorized" },
          { { status = 400, body = "not json" }, "Unauthorized" },
          { { status = 200, body = "not json" }, "Unauthorized" },
          { { status = 200, body = '{"AccessKeyId":"A"}' }, "Unauthorized" },
          { { status = 500, body = "" }, "Unavailable" },
          { { status = 429, body = "" }, "Throttled" },
          { { err = "connection refused", code = "connect" }, "Unavailable" },
        }
        for _, case in ipairs(cases) do
          local ctx = new_ctx({ env = pod_env(), responses = { case[1] } })
          local result, err = aws.restart(target("us-east-1"), {}, ctx)
          assert.is_nil(result)
          assert.are.equal(case[2], err.reason, serialize(case[1]))
          assert.matches("Pod Identity", err.message)
          assert.are.equal(1, #ctx.requests)
          assert_no_secrets(ctx, result, err)
        end
      end)

      it("fails Unauthorized when the token file cannot be read", function()
        local ctx = new_ctx({ env = pod_env(), files = {} })
        local result, err = aws.restart(target("us-east-1"), {}, ctx)
        assert.is_nil(result)
        assert.are.equal("Unauthorized", err.reason)
        assert.truthy(err.message:find(POD_TOKEN_FILE, 1, true))
        assert.are.equal(0, #ctx.requests)
      end)
    end)
  end)

  describe("errors", function()
    local code_cases = {
      { 503, "RequestLimitExceeded", "Throttled", true },
      { 400, "Throttling", "Throttled", true },
      { 503, "Unavailable", "Unavailable", true },
      { 500, "InternalError", "Unavailable", true },
      { 401, "AuthFailure", "Unauthorized" },
      { 401, "AuthFailure.SignatureFailure", "Unauthorized" },
      { 403, "SignatureDoesNotMatch", "Unauthorized" },
      { 403, "InvalidClientTokenId", "Unauthorized" },
      { 400, "RequestExpired", "Unauthorized" },
      { 400, "ExpiredToken", "Unauthorized" },
      { 403, "UnauthorizedOperation", "Forbidden" },
      { 401, "OptInRequired", "Forbidden" },
      { 400, "InvalidInstanceID.NotFound", "NotFound" },
      { 400, "InvalidInstanceID.Malformed", "InvalidRequest" },
      { 400, "InvalidParameterValue", "InvalidRequest" },
      { 400, "IncorrectState", "InvalidState" },
      { 400, "IncorrectInstanceState", "InvalidState" },
      { 400, "SomethingNew", "InvalidRequest" },
      { 500, "SomethingNew", "Unavailable", true },
    }
    for _, case in ipairs(code_cases) do
      local status, code, reason, retryable = case[1], case[2], case[3], case[4]
      it(string.format("maps HTTP %d %s to %s", status, code, reason), function()
        local ctx = new_ctx({ responses = { ec2_error(status, code, "message of " .. code, "rid-" .. code) } })
        local result, err = aws.restart(target("us-east-1"), {}, ctx)
        assert.is_nil(result)
        assert.are.equal(reason, err.reason)
        assert.are.equal(code, err.cloud_code)
        assert.are.equal("rid-" .. code, err.request_id)
        assert.are.equal("message of " .. code, err.message)
        assert.are.equal(retryable, err.retryable)
        assert.falsy(err.sent)
      end)
    end

    it("keeps static credentials retry-free on ExpiredToken (nothing to refresh)", function()
      local ctx = new_ctx({ responses = { ec2_error(400, "ExpiredToken", "expired") },
        env = static_env({ AWS_SESSION_TOKEN = SESSION }) })
      local _, err = aws.restart(target("us-east-1"), {}, ctx)
      assert.are.equal("Unauthorized", err.reason)
      assert.is_nil(err.retryable)
    end)

    it("drops cached Pod Identity credentials on AuthFailure", function()
      local ctx = new_ctx({ env = pod_env(), responses = {
        pod_answer(IN_ONE_HOUR), ec2_error(401, "AuthFailure", "AWS was not able to validate the credentials"),
        pod_answer(IN_ONE_HOUR), ok_answer(),
      } })
      local _, err = aws.restart(target("us-east-1"), {}, ctx)
      assert.are.equal("Unauthorized", err.reason)
      assert.is_nil(err.retryable)
      assert.is_nil(ctx.cache.get("container:" .. POD_URI))
      assert.is_table(aws.restart(target("us-east-1"), {}, ctx))
      assert.are.equal(4, #ctx.requests)
      assert.are.equal("GET", ctx.requests[3].method)
    end)

    it("maps bare HTTP statuses when the body is not an EC2 error", function()
      local cases = {
        { { status = 503, body = "<html>Service Unavailable</html>" }, "Unavailable", true },
        { { status = 502, body = "" }, "Unavailable", true },
        { { status = 429, body = "" }, "Throttled", true },
        { { status = 403, body = "" }, "Forbidden" },
        { { status = 401, body = "" }, "Unauthorized" },
        { { status = 404, body = "not found" }, "InvalidRequest" },
        { { status = 302, body = "" }, "Internal" },
      }
      for _, case in ipairs(cases) do
        local ctx = new_ctx({ responses = { case[1] } })
        local result, err = aws.restart(target("us-east-1"), {}, ctx)
        assert.is_nil(result)
        assert.are.equal(case[2], err.reason, case[1].status)
        assert.are.equal(case[3], err.retryable, case[1].status)
        assert.is_nil(err.cloud_code)
        assert.is_string(err.message)
      end
    end)

    it("passes Retry-After and the x-amzn-requestid header on", function()
      local ctx = new_ctx({ responses = {
        { status = 503, headers = { ["Retry-After"] = "7", ["x-amzn-RequestId"] = "hdr-rid" }, body = "" },
      } })
      local _, err = aws.restart(target("us-east-1"), {}, ctx)
      assert.are.equal(7, err.retry_after)
      assert.are.equal("hdr-rid", err.request_id)
    end)

    it("maps transport failures", function()
      local cases = {
        { "connect", "Unavailable", true, false },
        { "timeout", "Timeout", nil, true },
        { "tls", "Unavailable", nil, false },
        { "io", "Unavailable", nil, true },
      }
      for _, case in ipairs(cases) do
        local ctx = new_ctx({ responses = { { err = "ctx.http: " .. case[1] .. " failed", code = case[1] } } })
        local result, err = aws.restart(target("us-east-1"), {}, ctx)
        assert.is_nil(result)
        assert.are.equal(case[2], err.reason, case[1])
        assert.are.equal(case[3], err.retryable, case[1])
        assert.are.equal(case[4], err.sent, case[1])
      end
    end)

    it("answers Internal for a 200 that is not RebootInstancesResponse returning true", function()
      local bodies = {
        "", "not xml", "<RebootInstancesResponse><requestId>r-false</requestId><return>false</return>"
          .. "</RebootInstancesResponse>",
        "<DescribeInstancesResponse><requestId>r</requestId><return>true</return></DescribeInstancesResponse>",
        "<RebootInstancesResponse><requestId>r</requestId>",
      }
      for _, body in ipairs(bodies) do
        local ctx = new_ctx({ responses = { { status = 200, body = body } } })
        local result, err = aws.restart(target("us-east-1"), {}, ctx)
        assert.is_nil(result, body)
        assert.are.equal("Internal", err.reason)
      end
      local ctx = new_ctx({ responses = { { status = 200, body = bodies[3] } } })
      local _, err = aws.restart(target("us-east-1"), {}, ctx)
      assert.are.equal("r-false", err.request_id)
    end)

    it("decodes entities in EC2 messages and reads the RequestID", function()
      local ctx = new_ctx({ responses = { ec2_error(400, "InvalidInstanceID.NotFound",
        "The instance ID &apos;i-0123456789abcdef0&apos; does not exist", "f00-rid") } })
      local _, err = aws.restart(target("us-east-1"), {}, ctx)
      assert.are.equal("The instance ID 'i-0123456789abcdef0' does not exist", err.message)
      assert.are.equal("f00-rid", err.request_id)
    end)
  end)

  describe("secrets", function()
    it("never appear in errors or logs, even when the cloud echoes them", function()
      local scenarios = {
        { env = static_env({ AWS_SESSION_TOKEN = SESSION }), responses = {
          ec2_error(400, "AuthFailure", "bad key " .. SECRET .. " token " .. SESSION) } },
        { env = static_env({ AWS_SESSION_TOKEN = SESSION }), responses = {
          { err = "tls failed for token " .. SESSION, code = "tls" } } },
        { env = irsa_env(), responses = { sts_answer(IN_ONE_HOUR),
          ec2_error(403, "SignatureDoesNotMatch", "secret " .. STS_SECRET .. " / " .. STS_TOKEN) } },
        { env = irsa_env(), responses = { { err = "connect failed " .. WEB_TOKEN, code = "connect" } } },
        { env = pod_env(), responses = { pod_answer(IN_ONE_HOUR),
          ec2_error(400, "ExpiredToken", POD_SECRET .. POD_SESSION) } },
        { env = pod_env(), responses = { { status = 403, body = '{"message":"' .. POD_TOKEN .. '"}' } } },
      }
      for _, s in ipairs(scenarios) do
        local ctx = new_ctx(s)
        local result, err = aws.restart(target("us-east-1"), { dry_run = false }, ctx)
        assert.is_nil(result)
        assert.is_string(err.message)
        assert_no_secrets(ctx, err)
      end
    end)
  end)

  describe("check()", function()
    it("is true when a credential source is configured", function()
      for _, env in ipairs({ static_env(), irsa_env(), pod_env(),
        { AWS_CONTAINER_CREDENTIALS_FULL_URI = POD_URI, AWS_CONTAINER_AUTHORIZATION_TOKEN = POD_TOKEN } }) do
        local ctx = new_ctx({ env = env })
        assert.is_true(aws.check(ctx))
        assert.are.equal(0, #ctx.requests)
      end
    end)

    it("is false with a reason when none is", function()
      for _, env in ipairs({ {}, { AWS_ACCESS_KEY_ID = AKID }, { AWS_ROLE_ARN = ROLE },
        { AWS_WEB_IDENTITY_TOKEN_FILE = TOKEN_FILE }, { AWS_ACCESS_KEY_ID = "", AWS_SECRET_ACCESS_KEY = "" },
        { AWS_REGION = "us-east-1" } }) do
        local ctx = new_ctx({ env = env })
        local ok, reason = aws.check(ctx)
        assert.is_false(ok)
        assert.matches("no AWS credentials", reason)
        assert.matches("AWS_ACCESS_KEY_ID", reason)
        assert.matches("AWS_ROLE_ARN", reason)
        assert.matches("Pod Identity", reason)
        assert.are.equal(0, #ctx.requests)
      end
    end)
  end)
end)
