-- providers/tencentcloud.lua: providerID parsing, region resolution, the signed
-- CVM RebootInstances request, dry run (DescribeInstances), credentials
-- (static, session token, TKE OIDC with caching) and every error mapping,
-- against the fake ctx (spec/helpers/fake_provider_ctx.lua).
local fake_provider_ctx = require("helpers.fake_provider_ctx")

-- Loaded the way the server loads it, in the smallest environment that a
-- provider may count on: proves it needs nothing else.
local function load_provider()
  local f = assert(io.open("providers/tencentcloud.lua", "rb"))
  local text = f:read("a")
  f:close()
  local env = { string = string, table = table, math = math, pairs = pairs, ipairs = ipairs, tostring = tostring,
    tonumber = tonumber, type = type, error = error, pcall = pcall, select = select, next = next,
    setmetatable = setmetatable, getmetatable = getmetatable, os = { time = os.time, clock = os.clock, date = os.date },
    utf8 = utf8 }
  local chunk = assert(load(text, "@providers/tencentcloud.lua", "t", env))
  return chunk()
end

local provider = load_provider()

local NOW = 1700000000 -- 2023-11-14T22:13:20Z
local INSTANCE = "ins-3ven36lk"
local SECRET_ID = "AKIDstaticSECRETid0123456789"
local SECRET_KEY = "staticSECRETkeyDoNotLeak0123"
local SESSION_TOKEN = "sessionTOKENdoNotLeak-abcdef"
local WEB_TOKEN = "eyJwebIDENTITYtokenDoNotLeak.payload.sig"
local WEB_TOKEN_2 = "eyJrotatedWEBtokenDoNotLeak.payload.sig"
local TMP_ID = "AKIDtmpSECRETid9876543210"
local TMP_KEY = "tmpSECRETkeyDoNotLeak9876"
local TMP_TOKEN = "tmpSESSIONtokenDoNotLeak9876"
local TOKEN_FILE = "/var/run/secrets/tke.cloud.tencent.com/serviceaccount/token"
local ROLE_ARN = "qcs::cam::uin/100000000001:roleName/node-rebooter"
local ALL_SECRETS = { SECRET_KEY, SESSION_TOKEN, WEB_TOKEN, WEB_TOKEN_2, TMP_KEY, TMP_TOKEN }

local STATIC_ENV = { TENCENTCLOUD_SECRET_ID = SECRET_ID, TENCENTCLOUD_SECRET_KEY = SECRET_KEY }

local function oidc_env(extra)
  local e = { TKE_ROLE_ARN = ROLE_ARN, TKE_WEB_IDENTITY_TOKEN_FILE = TOKEN_FILE, TKE_PROVIDER_ID = "tke-oidc-provider",
    TKE_REGION = "ap-guangzhou" }
  for k, v in pairs(extra or {}) do
    e[k] = v
  end
  return e
end

local function merge(a, b)
  local out = {}
  for k, v in pairs(a or {}) do
    out[k] = v
  end
  for k, v in pairs(b or {}) do
    out[k] = v
  end
  return out
end

local function new_ctx(opts)
  opts = opts or {}
  return fake_provider_ctx.new({
    responses = opts.responses, env = opts.env or STATIC_ENV, files = opts.files,
    clock = { now = opts.now or NOW },
  })
end

local function ok_body(request_id)
  return ('{"Response":{"RequestId":"%s"}}'):format(request_id or "req-ok-1")
end

local function ok(request_id)
  return { status = 200, headers = { ["Content-Type"] = "application/json" }, body = ok_body(request_id) }
end

local function api_error(code, message, request_id, status)
  return { status = status or 200, headers = { ["Content-Type"] = "application/json" },
    body = ('{"Response":{"Error":{"Code":"%s","Message":"%s"},"RequestId":"%s"}}'):format(code,
      message or "something went wrong", request_id or "req-err-1") }
end

local function describe_body(state, instance_id, request_id)
  local set = state and ('[{"InstanceId":"%s","InstanceState":"%s"}]'):format(instance_id or INSTANCE, state) or "[]"
  return { status = 200, body = ('{"Response":{"TotalCount":%d,"InstanceSet":%s,"RequestId":"%s"}}'):format(
    state and 1 or 0, set, request_id or "req-describe-1") }
end

local function sts_ok(expired, opts)
  opts = opts or {}
  local creds = ('{"Token":"%s","TmpSecretId":"%s","TmpSecretKey":"%s"}'):format(opts.token or TMP_TOKEN,
    opts.id or TMP_ID, opts.key or TMP_KEY)
  local expiry = opts.expiration_only and ('"Expiration":"%s"'):format(opts.expiration_only)
    or ('"ExpiredTime":%d,"Expiration":"x"'):format(expired)
  return { status = 200, body = ('{"Response":{"Credentials":%s,%s,"RequestId":"req-sts-1"}}'):format(creds, expiry) }
end

local TARGET = { instance_id = INSTANCE, region = "ap-guangzhou", zone = "ap-guangzhou-3", zone_id = "100003" }

local function node_with(labels)
  return { metadata = { name = "node-1", labels = labels }, spec = { providerID = "qcloud:///100003/" .. INSTANCE } }
end

-- Recomputes Authorization (and the other signer headers) with ctx.tc3 on
-- the inputs the provider should have used.
local function expected_signature(ctx, req, o)
  local host = o.host or "cvm.tencentcloudapi.com"
  local add = ctx.tc3.sign({
    method = "POST", host = host, path = o.path or "/", query = "",
    headers = { ["Content-Type"] = "application/json; charset=utf-8", Host = host },
    body = req.body, service = o.service or "cvm",
    secret_id = o.secret_id or SECRET_ID, secret_key = o.secret_key or SECRET_KEY,
    session_token = o.session_token, time = o.time or NOW,
  }, ctx.crypto)
  return add
end

-- Everything a provider produced, flattened to text, for secret scans.
local function dump(value, seen)
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
    parts[#parts + 1] = dump(k, seen) .. "=" .. dump(v, seen)
  end
  return "{" .. table.concat(parts, ",") .. "}"
end

local function assert_no_secrets(...)
  local text = dump({ ... })
  for _, secret in ipairs(ALL_SECRETS) do
    assert.is_nil(text:find(secret, 1, true), "secret leaked: " .. secret)
  end
end

describe("providers/tencentcloud.lua", function()
  it("loads in the minimal provider environment and meets the contract", function()
    assert.equal("tencentcloud", provider.name)
    assert.equal(1, provider.api_version)
    assert.is_function(provider.match)
    assert.is_function(provider.restart)
    assert.is_function(provider.check)
  end)

  describe("match()", function()
    it("parses a TKE providerID with a numeric zone id and takes the region from the CBS CSI zone label", function()
      local t, err = provider.match("qcloud:///100003/" .. INSTANCE,
        node_with({ ["topology.com.tencent.cloud.csi.cbs/zone"] = "ap-guangzhou-3",
          ["topology.kubernetes.io/zone"] = "100003", ["topology.kubernetes.io/region"] = "gz" }))
      assert.is_nil(err)
      assert.same({ instance_id = INSTANCE, region = "ap-guangzhou", zone = "ap-guangzhou-3", zone_id = "100003" }, t)
    end)

    it("parses the other observed TKE forms (Hong Kong, Chengdu)", function()
      local hk = provider.match("qcloud:///300003/ins-bzwza4jk",
        node_with({ ["topology.com.tencent.cloud.csi.cbs/zone"] = "ap-hongkong-3",
          ["topology.kubernetes.io/region"] = "hk" }))
      assert.same({ instance_id = "ins-bzwza4jk", region = "ap-hongkong", zone = "ap-hongkong-3",
        zone_id = "300003" }, hk)
      local cd = provider.match("qcloud:///160001/ins-0a1b2c3d",
        node_with({ ["topology.com.tencent.cloud.csi.cbs/zone"] = "ap-chengdu-1" }))
      assert.equal("ap-chengdu", cd.region)
    end)

    it("takes the region from a zone name in the providerID (self-built clusters)", function()
      local t = provider.match("qcloud:///ap-beijing-3/ins-abcd1234", nil)
      assert.same({ instance_id = "ins-abcd1234", region = "ap-beijing", zone = "ap-beijing-3" }, t)
    end)

    it("keeps multi-part region names (finance zones)", function()
      local t = provider.match("qcloud:///ap-shanghai-fsi-1/ins-abcd1234", nil)
      assert.equal("ap-shanghai-fsi", t.region)
      t = provider.match("qcloud:///100003/ins-abcd1234",
        node_with({ ["topology.com.tencent.cloud.csi.cbs/zone"] = "ap-shenzhen-fsi-2" }))
      assert.equal("ap-shenzhen-fsi", t.region)
    end)

    it("prefers the zone name in the providerID over the CBS label", function()
      local t = provider.match("qcloud:///ap-beijing-3/ins-abcd1234",
        node_with({ ["topology.com.tencent.cloud.csi.cbs/zone"] = "ap-guangzhou-3" }))
      assert.equal("ap-beijing", t.region)
    end)

    it("prefers the CBS zone label over topology.kubernetes.io/region", function()
      local t = provider.match("qcloud:///100003/" .. INSTANCE,
        node_with({ ["topology.com.tencent.cloud.csi.cbs/zone"] = "ap-guangzhou-3",
          ["topology.kubernetes.io/region"] = "ap-shanghai" }))
      assert.equal("ap-guangzhou", t.region)
    end)

    it("uses topology.kubernetes.io/region only when it holds a full region name", function()
      local t = provider.match("qcloud:///100003/" .. INSTANCE,
        node_with({ ["topology.kubernetes.io/region"] = "ap-shanghai" }))
      assert.equal("ap-shanghai", t.region)
      assert.equal("100003", t.zone)
      for _, short in ipairs({ "hk", "gz", "cd", "ap-guangzhou-3", "AP-GUANGZHOU", "", "ap-" }) do
        t = provider.match("qcloud:///100003/" .. INSTANCE, node_with({ ["topology.kubernetes.io/region"] = short }))
        assert.is_nil(t.region, short)
      end
    end)

    it("ignores a CBS zone label that is not a zone name", function()
      local t = provider.match("qcloud:///100003/" .. INSTANCE,
        node_with({ ["topology.com.tencent.cloud.csi.cbs/zone"] = "100003",
          ["topology.kubernetes.io/region"] = "ap-nanjing" }))
      assert.equal("ap-nanjing", t.region)
    end)

    it("leaves the region for restart (TENCENTCLOUD_REGION) when nothing on the node tells it", function()
      local t = provider.match("qcloud:///100003/" .. INSTANCE, node_with({}))
      assert.same({ instance_id = INSTANCE, zone = "100003", zone_id = "100003" }, t)
      t = provider.match("qcloud:///100003/" .. INSTANCE, nil)
      assert.is_nil(t.region)
    end)

    it("uses TENCENTCLOUD_REGION at match time if a ctx is passed", function()
      local ctx = new_ctx({ env = { TENCENTCLOUD_REGION = "ap-singapore" } })
      local t = provider.match("qcloud:///100003/" .. INSTANCE, node_with({}), ctx)
      assert.equal("ap-singapore", t.region)
    end)

    it("accepts an empty zone segment (TKE's own regex allows it)", function()
      local t = provider.match("qcloud:////" .. INSTANCE, nil)
      assert.same({ instance_id = INSTANCE }, t)
    end)

    it("returns nil, without a message, for providerIDs that are not qcloud://", function()
      for _, id in ipairs({ "", "aws:///us-east-1a/i-0123456789abcdef0", "tencentcloud:///100003/" .. INSTANCE,
        "gce://p/z/n", "QCLOUD:///100003/" .. INSTANCE, " qcloud:///100003/" .. INSTANCE, "qcloud:", "qcloud:/x",
        "ins-3ven36lk", "kind://docker/kind/kind-worker" }) do
        local t, err = provider.match(id, nil)
        assert.is_nil(t, id)
        assert.is_nil(err, id)
      end
    end)

    it("returns nil for non-string providerIDs without raising", function()
      for _, id in ipairs({ 42, true, {}, function() end }) do
        local t, err = provider.match(id, nil)
        assert.is_nil(t)
        assert.is_nil(err)
      end
      assert.is_nil(provider.match(nil, nil))
    end)

    it("returns nil and a message for malformed qcloud:// providerIDs", function()
      for _, id in ipairs({ "qcloud://", "qcloud:///", "qcloud:///100003", "qcloud:///100003/",
        "qcloud:///100003/ins-abc", "qcloud:///100003/ins-3ven36lkx", "qcloud:///100003/ins-3VEN36LK",
        "qcloud:///100003/i-3ven36lk", "qcloud:///100003/ins_3ven36lk", "qcloud:///100003/ins-3ven36l!",
        "qcloud:///100003/" .. INSTANCE .. "/", "qcloud:///100003/" .. INSTANCE .. "/x",
        "qcloud://100003/" .. INSTANCE, "qcloud:///ZONE/" .. INSTANCE, "qcloud:///10 03/" .. INSTANCE,
        "qcloud:///a/b/" .. INSTANCE, "qcloud:///100003/" .. INSTANCE .. "?x=1",
        "qcloud:///100003/ins-3ven36lk\n", "qcloud:///" .. string.rep("9", 100000) .. "/x" }) do
        local fine, t, err = pcall(provider.match, id, nil)
        assert.is_true(fine, id)
        assert.is_nil(t, id)
        assert.is_string(err, id)
        assert.truthy(err:find("qcloud:///<zone>/ins%-xxxxxxxx") or err:find("instance id must be"), err)
        assert.is_true(#err < 400)
      end
    end)

    it("never raises on odd node shapes or label values", function()
      local nodes = { "node", 5, {}, { metadata = 5 }, { metadata = { labels = "x" } },
        { metadata = { labels = { ["topology.com.tencent.cloud.csi.cbs/zone"] = 3,
          ["topology.kubernetes.io/region"] = {} } } },
        { metadata = { labels = { ["topology.com.tencent.cloud.csi.cbs/zone"] = string.rep("a-", 10000) .. "1" } } } }
      for _, node in ipairs(nodes) do
        local fine, t = pcall(provider.match, "qcloud:///100003/" .. INSTANCE, node)
        assert.is_true(fine)
        assert.equal(INSTANCE, t.instance_id)
        assert.is_nil(t.region)
      end
    end)

    it("never raises on random garbage", function()
      math.randomseed(42)
      for _ = 1, 2000 do
        local bytes = {}
        for i = 1, math.random(0, 40) do
          bytes[i] = string.char(math.random(0, 255))
        end
        local prefix = ({ "", "qcloud://", "qcloud:///", "qcloud:///100003/" })[math.random(1, 4)]
        local id = prefix .. table.concat(bytes)
        local fine, t, err = pcall(provider.match, id, node_with({ ["topology.com.tencent.cloud.csi.cbs/zone"] = id }))
        assert.is_true(fine)
        assert.is_true(t == nil or type(t.instance_id) == "string")
        assert.is_true(err == nil or type(err) == "string")
      end
    end)
  end)

  describe("restart()", function()
    it("POSTs a signed RebootInstances with StopType SOFT_FIRST and returns the request id", function()
      local ctx = new_ctx({ responses = { ok("req-reboot-1") } })
      local result, err = provider.restart(TARGET, { dry_run = false, node = "node-1" }, ctx)
      assert.is_nil(err)
      assert.same({ request_id = "req-reboot-1", dry_run = false }, result)
      assert.equal(1, #ctx.requests)
      local req = ctx.requests[1]
      assert.equal("POST", req.method)
      assert.equal("https://cvm.tencentcloudapi.com/", req.url)
      assert.equal(10, req.timeout)
      assert.equal('{"InstanceIds":["ins-3ven36lk"],"StopType":"SOFT_FIRST"}', req.body)
      local h = req.headers
      assert.equal("application/json; charset=utf-8", h["Content-Type"])
      assert.equal("cvm.tencentcloudapi.com", h.Host)
      assert.equal("RebootInstances", h["X-TC-Action"])
      assert.equal("2017-03-12", h["X-TC-Version"])
      assert.equal("ap-guangzhou", h["X-TC-Region"])
      assert.equal("1700000000", h["X-TC-Timestamp"])
      assert.is_nil(h["X-TC-Token"])
      local prefix = "TC3-HMAC-SHA256 Credential=" .. SECRET_ID .. "/2023-11-14/cvm/tc3_request, SignedHeaders="
      assert.equal(prefix, h.Authorization:sub(1, #prefix))
      assert.truthy(h.Authorization:find(", Signature=%x+$"))
      assert.equal(expected_signature(ctx, req, {}).Authorization, h.Authorization)
    end)

    it("does not send the deprecated ForceReboot (it must not be combined with StopType)", function()
      local ctx = new_ctx({ responses = { ok() } })
      provider.restart(TARGET, {}, ctx)
      local body = ctx.json.decode(ctx.requests[1].body)
      assert.same({ InstanceIds = { INSTANCE }, StopType = "SOFT_FIRST" }, body)
    end)

    it("takes StopType from TENCENTCLOUD_REBOOT_STOP_TYPE", function()
      for value, expected in pairs({ SOFT = "SOFT", HARD = "HARD", SOFT_FIRST = "SOFT_FIRST", soft = "SOFT",
        hard = "HARD" }) do
        local ctx = new_ctx({ responses = { ok() },
          env = merge(STATIC_ENV, { TENCENTCLOUD_REBOOT_STOP_TYPE = value }) })
        assert.truthy(provider.restart(TARGET, {}, ctx))
        assert.equal(expected, ctx.json.decode(ctx.requests[1].body).StopType)
        assert.equal(expected_signature(ctx, ctx.requests[1], {}).Authorization, ctx.requests[1].headers.Authorization)
      end
    end)

    it("refuses an unknown stop type without calling the cloud", function()
      local ctx = new_ctx({ env = merge(STATIC_ENV, { TENCENTCLOUD_REBOOT_STOP_TYPE = "FORCE" }) })
      local result, err = provider.restart(TARGET, {}, ctx)
      assert.is_nil(result)
      assert.equal("Internal", err.reason)
      assert.truthy(err.message:find("TENCENTCLOUD_REBOOT_STOP_TYPE", 1, true))
      assert.equal(0, #ctx.requests)
    end)

    it("signs with the fake clock's time", function()
      local ctx = new_ctx({ responses = { ok() }, now = 1551113065 })
      provider.restart(TARGET, {}, ctx)
      local req = ctx.requests[1]
      assert.equal("1551113065", req.headers["X-TC-Timestamp"])
      assert.truthy(req.headers.Authorization:find("/2019-02-25/cvm/tc3_request", 1, true))
      assert.equal(expected_signature(ctx, req, { time = 1551113065 }).Authorization, req.headers.Authorization)
    end)

    describe("region", function()
      it("uses the target's region", function()
        local ctx = new_ctx({ responses = { ok() }, env = merge(STATIC_ENV, { TENCENTCLOUD_REGION = "ap-beijing" }) })
        provider.restart(TARGET, {}, ctx)
        assert.equal("ap-guangzhou", ctx.requests[1].headers["X-TC-Region"])
      end)

      it("falls back to TENCENTCLOUD_REGION, then TKE_REGION, when match could not tell", function()
        local target = provider.match("qcloud:///100003/" .. INSTANCE, node_with({}))
        local ctx = new_ctx({ responses = { ok() }, env = merge(STATIC_ENV, { TENCENTCLOUD_REGION = "ap-beijing",
          TKE_REGION = "ap-shanghai" }) })
        assert.truthy(provider.restart(target, {}, ctx))
        assert.equal("ap-beijing", ctx.requests[1].headers["X-TC-Region"])
        ctx = new_ctx({ responses = { ok() }, env = merge(STATIC_ENV, { TKE_REGION = "ap-shanghai" }) })
        assert.truthy(provider.restart(target, {}, ctx))
        assert.equal("ap-shanghai", ctx.requests[1].headers["X-TC-Region"])
      end)

      it("fails with InvalidRequest, without calling the cloud, when no region is known", function()
        local target = provider.match("qcloud:///100003/" .. INSTANCE, node_with({}))
        for _, region_env in ipairs({ {}, { TENCENTCLOUD_REGION = "gz" }, { TENCENTCLOUD_REGION = "" } }) do
          local ctx = new_ctx({ env = merge(STATIC_ENV, region_env) })
          local result, err = provider.restart(target, {}, ctx)
          assert.is_nil(result)
          assert.equal("InvalidRequest", err.reason)
          assert.truthy(err.message:find("TENCENTCLOUD_REGION", 1, true))
          assert.truthy(err.message:find("topology.com.tencent.cloud.csi.cbs/zone", 1, true))
          assert.equal(0, #ctx.requests)
        end
      end)

      it("rejects a target without a valid instance id", function()
        local ctx = new_ctx()
        local _, err = provider.restart({ instance_id = "i-abc", region = "ap-guangzhou" }, {}, ctx)
        assert.equal("InvalidRequest", err.reason)
        _, err = provider.restart(nil, {}, ctx)
        assert.equal("InvalidRequest", err.reason)
        assert.equal(0, #ctx.requests)
      end)
    end)

    describe("endpoint", function()
      it("uses cvm.internal.tencentcloudapi.com inside a cluster", function()
        local ctx = new_ctx({ responses = { ok() }, env = merge(STATIC_ENV, { KUBERNETES_SERVICE_HOST = "10.0.0.1" }) })
        assert.truthy(provider.restart(TARGET, {}, ctx))
        local req = ctx.requests[1]
        assert.equal("https://cvm.internal.tencentcloudapi.com/", req.url)
        assert.equal("cvm.internal.tencentcloudapi.com", req.headers.Host)
        assert.equal(expected_signature(ctx, req, { host = "cvm.internal.tencentcloudapi.com" }).Authorization,
          req.headers.Authorization)
      end)

      it("uses TENCENTCLOUD_CVM_ENDPOINT (http accepted) for the URL, the Host header and the signature", function()
        local ctx = new_ctx({ responses = { ok() }, env = merge(STATIC_ENV, {
          TENCENTCLOUD_CVM_ENDPOINT = "http://127.0.0.1:8443", KUBERNETES_SERVICE_HOST = "10.0.0.1" }) })
        assert.truthy(provider.restart(TARGET, {}, ctx))
        local req = ctx.requests[1]
        assert.equal("http://127.0.0.1:8443/", req.url)
        assert.equal("127.0.0.1:8443", req.headers.Host)
        assert.truthy(req.headers.Authorization:find("/cvm/tc3_request", 1, true))
        assert.equal(expected_signature(ctx, req, { host = "127.0.0.1:8443" }).Authorization, req.headers.Authorization)
      end)

      it("accepts an https override with a trailing slash", function()
        local ctx = new_ctx({ responses = { ok() }, env = merge(STATIC_ENV, {
          TENCENTCLOUD_CVM_ENDPOINT = "https://cvm.ap-guangzhou.tencentcloudapi.com/" }) })
        assert.truthy(provider.restart(TARGET, {}, ctx))
        assert.equal("https://cvm.ap-guangzhou.tencentcloudapi.com/", ctx.requests[1].url)
        assert.equal("cvm.ap-guangzhou.tencentcloudapi.com", ctx.requests[1].headers.Host)
      end)

      it("rejects an override that is not an http(s) URL", function()
        for _, bad in ipairs({ "cvm.example.com", "ftp://x/", "https://", "https://u:p@host/", "https://a b/" }) do
          local ctx = new_ctx({ env = merge(STATIC_ENV, { TENCENTCLOUD_CVM_ENDPOINT = bad }) })
          local result, err = provider.restart(TARGET, {}, ctx)
          assert.is_nil(result, bad)
          assert.equal("Internal", err.reason)
          assert.truthy(err.message:find("TENCENTCLOUD_CVM_ENDPOINT", 1, true))
          assert.equal(0, #ctx.requests)
          local ready, why = provider.check(ctx)
          assert.is_false(ready)
          assert.truthy(why:find("TENCENTCLOUD_CVM_ENDPOINT", 1, true))
        end
      end)
    end)

    describe("dry run", function()
      it("calls DescribeInstances (signed the same way) and succeeds for a RUNNING instance", function()
        local ctx = new_ctx({ responses = { describe_body("RUNNING", nil, "req-describe-7") } })
        local result, err = provider.restart(TARGET, { dry_run = true }, ctx)
        assert.is_nil(err)
        assert.same({ request_id = "req-describe-7", dry_run = true }, result)
        assert.equal(1, #ctx.requests)
        local req = ctx.requests[1]
        assert.equal("https://cvm.tencentcloudapi.com/", req.url)
        assert.equal("DescribeInstances", req.headers["X-TC-Action"])
        assert.equal("2017-03-12", req.headers["X-TC-Version"])
        assert.equal("ap-guangzhou", req.headers["X-TC-Region"])
        assert.same({ InstanceIds = { INSTANCE } }, ctx.json.decode(req.body))
        assert.equal(expected_signature(ctx, req, {}).Authorization, req.headers.Authorization)
        for _, r in ipairs(ctx.requests) do
          assert.not_equal("RebootInstances", r.headers["X-TC-Action"])
        end
      end)

      it("answers InvalidState when the instance is not RUNNING", function()
        for _, state in ipairs({ "STOPPED", "REBOOTING", "PENDING", "SHUTDOWN", "STARTING" }) do
          local ctx = new_ctx({ responses = { describe_body(state) } })
          local result, err = provider.restart(TARGET, { dry_run = true }, ctx)
          assert.is_nil(result)
          assert.equal("InvalidState", err.reason)
          assert.equal("req-describe-1", err.request_id)
          assert.is_string(err.cloud_code)
          assert.truthy(err.message:find(state, 1, true))
        end
      end)

      it("answers NotFound when DescribeInstances returns no such instance", function()
        local ctx = new_ctx({ responses = { describe_body(nil) } })
        local result, err = provider.restart(TARGET, { dry_run = true }, ctx)
        assert.is_nil(result)
        assert.equal("NotFound", err.reason)
        assert.equal("InvalidInstanceId.NotFound", err.cloud_code)
        assert.equal("req-describe-1", err.request_id)
        ctx = new_ctx({ responses = { describe_body("RUNNING", "ins-00000000") } })
        result, err = provider.restart(TARGET, { dry_run = true }, ctx)
        assert.is_nil(result)
        assert.equal("NotFound", err.reason)
      end)

      it("maps DescribeInstances errors like RebootInstances errors", function()
        local ctx = new_ctx({ responses = { api_error("InvalidInstanceId.NotFound", "not found", "req-d-2") } })
        local _, err = provider.restart(TARGET, { dry_run = true }, ctx)
        assert.equal("NotFound", err.reason)
        assert.equal("req-d-2", err.request_id)
        ctx = new_ctx({ responses = { api_error("UnauthorizedOperation", "no cvm:DescribeInstances") } })
        _, err = provider.restart(TARGET, { dry_run = true }, ctx)
        assert.equal("Forbidden", err.reason)
      end)

      it("treats a dry-run timeout as retryable and not sent (it changes nothing)", function()
        local ctx = new_ctx({ responses = { { err = "timed out", code = "timeout" } } })
        local _, err = provider.restart(TARGET, { dry_run = true }, ctx)
        assert.equal("Timeout", err.reason)
        assert.is_falsy(err.sent)
        assert.is_true(err.retryable)
      end)
    end)

    describe("credentials", function()
      it("sends X-TC-Token and signs with the session token from TENCENTCLOUD_SESSION_TOKEN", function()
        local ctx = new_ctx({ responses = { ok() }, env = merge(STATIC_ENV,
          { TENCENTCLOUD_SESSION_TOKEN = SESSION_TOKEN }) })
        assert.truthy(provider.restart(TARGET, {}, ctx))
        local req = ctx.requests[1]
        assert.equal(SESSION_TOKEN, req.headers["X-TC-Token"])
        local expected = expected_signature(ctx, req, { session_token = SESSION_TOKEN })
        assert.equal(expected.Authorization, req.headers.Authorization)
      end)

      it("fails Unauthorized, naming the variables, without any credentials", function()
        for _, e in ipairs({ {}, { TENCENTCLOUD_SECRET_ID = SECRET_ID }, { TENCENTCLOUD_SECRET_KEY = SECRET_KEY },
          { TKE_ROLE_ARN = ROLE_ARN }, { TENCENTCLOUD_SECRET_ID = "", TENCENTCLOUD_SECRET_KEY = "" } }) do
          local ctx = new_ctx({ env = e })
          local result, err = provider.restart(TARGET, {}, ctx)
          assert.is_nil(result)
          assert.equal("Unauthorized", err.reason)
          for _, var in ipairs({ "TENCENTCLOUD_SECRET_ID", "TENCENTCLOUD_SECRET_KEY", "TKE_ROLE_ARN",
            "TKE_WEB_IDENTITY_TOKEN_FILE", "TKE_PROVIDER_ID" }) do
            assert.truthy(err.message:find(var, 1, true), var)
          end
          assert.equal(0, #ctx.requests)
          assert_no_secrets(err)
        end
      end)

      it("prefers static keys over TKE OIDC", function()
        local ctx = new_ctx({ responses = { ok() }, env = merge(STATIC_ENV, oidc_env()),
          files = { [TOKEN_FILE] = WEB_TOKEN } })
        assert.truthy(provider.restart(TARGET, {}, ctx))
        assert.equal(1, #ctx.requests)
        assert.equal("https://cvm.tencentcloudapi.com/", ctx.requests[1].url)
      end)

      describe("TKE OIDC", function()
        local function oidc_ctx(extra_env, responses, files)
          return new_ctx({ env = oidc_env(extra_env), responses = responses,
            files = files or { [TOKEN_FILE] = WEB_TOKEN .. "\n" } })
        end

        it("exchanges the web identity token at STS, then signs with the temporary credentials", function()
          local ctx = oidc_ctx({}, { sts_ok(NOW + 7200), ok("req-reboot-2") })
          local result, err = provider.restart(TARGET, {}, ctx)
          assert.is_nil(err)
          assert.same({ request_id = "req-reboot-2", dry_run = false }, result)
          assert.equal(2, #ctx.requests)
          local sts = ctx.requests[1]
          assert.equal("POST", sts.method)
          assert.equal("https://sts.tencentcloudapi.com/", sts.url)
          assert.equal("sts.tencentcloudapi.com", sts.headers.Host)
          assert.equal("AssumeRoleWithWebIdentity", sts.headers["X-TC-Action"])
          assert.equal("2018-08-13", sts.headers["X-TC-Version"])
          assert.equal("ap-guangzhou", sts.headers["X-TC-Region"])
          assert.equal("1700000000", sts.headers["X-TC-Timestamp"])
          assert.equal("SKIP", sts.headers.Authorization)
          assert.equal("application/json; charset=utf-8", sts.headers["Content-Type"])
          local body = ctx.json.decode(sts.body)
          assert.equal("tke-oidc-provider", body.ProviderId)
          assert.equal(WEB_TOKEN, body.WebIdentityToken) -- trimmed
          assert.equal(ROLE_ARN, body.RoleArn)
          assert.is_string(body.RoleSessionName)
          assert.equal(7200, body.DurationSeconds)

          local cvm = ctx.requests[2]
          assert.equal("RebootInstances", cvm.headers["X-TC-Action"])
          assert.equal(TMP_TOKEN, cvm.headers["X-TC-Token"])
          assert.truthy(cvm.headers.Authorization:find("Credential=" .. TMP_ID .. "/", 1, true))
          assert.equal(expected_signature(ctx, cvm, { secret_id = TMP_ID, secret_key = TMP_KEY,
            session_token = TMP_TOKEN }).Authorization, cvm.headers.Authorization)
          assert_no_secrets(ctx.logs, result)
        end)

        it("uses sts.internal.tencentcloudapi.com in a cluster and TENCENTCLOUD_STS_ENDPOINT when set", function()
          local ctx = oidc_ctx({ KUBERNETES_SERVICE_HOST = "10.0.0.1" }, { sts_ok(NOW + 7200), ok() })
          assert.truthy(provider.restart(TARGET, {}, ctx))
          assert.equal("https://sts.internal.tencentcloudapi.com/", ctx.requests[1].url)
          assert.equal("https://cvm.internal.tencentcloudapi.com/", ctx.requests[2].url)
          ctx = oidc_ctx({ TENCENTCLOUD_STS_ENDPOINT = "http://127.0.0.1:9000" }, { sts_ok(NOW + 7200), ok() })
          assert.truthy(provider.restart(TARGET, {}, ctx))
          assert.equal("http://127.0.0.1:9000/", ctx.requests[1].url)
          assert.equal("127.0.0.1:9000", ctx.requests[1].headers.Host)
        end)

        it("uses the target's region for STS when TKE_REGION is not set", function()
          local e = oidc_env()
          e.TKE_REGION = nil
          local ctx = new_ctx({ env = e, files = { [TOKEN_FILE] = WEB_TOKEN },
            responses = { sts_ok(NOW + 7200), ok() } })
          assert.truthy(provider.restart({ instance_id = INSTANCE, region = "ap-hongkong" }, {}, ctx))
          assert.equal("ap-hongkong", ctx.requests[1].headers["X-TC-Region"])
        end)

        it("caches the temporary credentials until 5 minutes before they expire, re-reading the token", function()
          local files = { [TOKEN_FILE] = WEB_TOKEN }
          local ctx = oidc_ctx({}, {
            sts_ok(NOW + 7200), ok("r1"), ok("r2"), ok("r3"),
            sts_ok(NOW + 7200 + 7200, { id = "AKIDsecondTMPid", key = "secondTMPkeyDoNotLeak", token = "tok2xyz" }),
            ok("r4"),
          }, files)
          assert.equal("r1", provider.restart(TARGET, {}, ctx).request_id)
          assert.equal("r2", provider.restart(TARGET, {}, ctx).request_id)
          ctx.advance(7200 - 300 - 1)
          assert.equal("r3", provider.restart(TARGET, {}, ctx).request_id)
          assert.equal(4, #ctx.requests) -- one STS call for three reboots
          assert.equal(TMP_TOKEN, ctx.requests[4].headers["X-TC-Token"])
          files[TOKEN_FILE] = WEB_TOKEN_2 -- kubelet rotated the projected token
          ctx.advance(1)
          assert.equal("r4", provider.restart(TARGET, {}, ctx).request_id)
          assert.equal(6, #ctx.requests)
          assert.equal("AssumeRoleWithWebIdentity", ctx.requests[5].headers["X-TC-Action"])
          assert.equal(WEB_TOKEN_2, ctx.json.decode(ctx.requests[5].body).WebIdentityToken)
          assert.equal(tostring(NOW + 7200 - 300), ctx.requests[5].headers["X-TC-Timestamp"])
          local cvm = ctx.requests[6]
          assert.equal("tok2xyz", cvm.headers["X-TC-Token"])
          local expected = expected_signature(ctx, cvm, { secret_id = "AKIDsecondTMPid",
            secret_key = "secondTMPkeyDoNotLeak", session_token = "tok2xyz", time = NOW + 7200 - 300 })
          assert.equal(expected.Authorization, cvm.headers.Authorization)
        end)

        it("takes the expiry from Expiration when ExpiredTime is missing", function()
          local ctx = oidc_ctx({}, { sts_ok(nil, { expiration_only = "2023-11-15T00:13:20Z" }), ok(), ok(),
            sts_ok(NOW + 9999), ok() })
          provider.restart(TARGET, {}, ctx)
          ctx.advance(7200 - 301)
          provider.restart(TARGET, {}, ctx)
          assert.equal(3, #ctx.requests)
          ctx.advance(1)
          provider.restart(TARGET, {}, ctx)
          assert.equal(5, #ctx.requests)
          assert.equal("AssumeRoleWithWebIdentity", ctx.requests[4].headers["X-TC-Action"])
        end)

        it("does not cache credentials that expire within 5 minutes", function()
          local ctx = oidc_ctx({}, { sts_ok(NOW + 200), ok(), sts_ok(NOW + 7200), ok() })
          provider.restart(TARGET, {}, ctx)
          provider.restart(TARGET, {}, ctx)
          assert.equal(4, #ctx.requests)
          assert.equal("AssumeRoleWithWebIdentity", ctx.requests[3].headers["X-TC-Action"])
        end)

        it("drops cached credentials that CVM refuses, and marks token/expiry refusals retryable", function()
          local ctx = oidc_ctx({}, {
            sts_ok(NOW + 7200), api_error("AuthFailure.TokenFailure", "token expired", "req-a"),
            sts_ok(NOW + 7200, { token = "freshTOKEN" }), ok("req-b"),
          })
          local result, err = provider.restart(TARGET, {}, ctx)
          assert.is_nil(result)
          assert.equal("Unauthorized", err.reason)
          assert.equal("AuthFailure.TokenFailure", err.cloud_code)
          assert.is_true(err.retryable)
          result = provider.restart(TARGET, {}, ctx)
          assert.equal("req-b", result.request_id)
          assert.equal("AssumeRoleWithWebIdentity", ctx.requests[3].headers["X-TC-Action"])
          assert.equal("freshTOKEN", ctx.requests[4].headers["X-TC-Token"])
        end)

        it("drops cached credentials on any AuthFailure", function()
          local ctx = oidc_ctx({}, { sts_ok(NOW + 7200), api_error("AuthFailure.SignatureFailure", "bad sig"),
            sts_ok(NOW + 7200), ok() })
          local _, err = provider.restart(TARGET, {}, ctx)
          assert.equal("Unauthorized", err.reason)
          assert.is_falsy(err.retryable)
          assert.truthy(provider.restart(TARGET, {}, ctx))
          assert.equal(4, #ctx.requests)
        end)

        it("keeps cached credentials on errors that are not about them", function()
          local ctx = oidc_ctx({}, { sts_ok(NOW + 7200), api_error("RequestLimitExceeded", "slow down"), ok() })
          provider.restart(TARGET, {}, ctx)
          assert.truthy(provider.restart(TARGET, {}, ctx))
          assert.equal(3, #ctx.requests)
        end)

        it("fails Unauthorized without a network call when the token file cannot be read", function()
          for _, files in ipairs({ {}, { [TOKEN_FILE] = "" }, { [TOKEN_FILE] = " \n" } }) do
            local ctx = oidc_ctx({}, {}, files)
            local result, err = provider.restart(TARGET, {}, ctx)
            assert.is_nil(result)
            assert.equal("Unauthorized", err.reason)
            assert.truthy(err.message:find("TKE_WEB_IDENTITY_TOKEN_FILE", 1, true))
            assert.equal(0, #ctx.requests)
          end
        end)

        it("maps STS refusals to Unauthorized and keeps throttling/5xx retryable", function()
          local cases = {
            { api_error("InvalidParameter.WebIdentityTokenError", "bad token " .. WEB_TOKEN, "req-s1"),
              "Unauthorized" },
            { api_error("AuthFailure.TokenFailure", "nope", "req-s1"), "Unauthorized" },
            { api_error("ResourceNotFound.RoleNotExist", "no role", "req-s1"), "Unauthorized" },
            { api_error("RequestLimitExceeded", "slow", "req-s1"), "Throttled", true },
            { api_error("InternalError", "oops", "req-s1"), "Unavailable", true },
            { { status = 502, body = "<html>bad gateway</html>" }, "Unavailable", true },
          }
          for _, case in ipairs(cases) do
            local ctx = oidc_ctx({}, { case[1] })
            local result, err = provider.restart(TARGET, {}, ctx)
            assert.is_nil(result)
            assert.equal(case[2], err.reason)
            assert.equal(case[3], err.retryable)
            assert.truthy(err.message:find("AssumeRoleWithWebIdentity", 1, true))
            assert.equal(1, #ctx.requests)
            assert_no_secrets(err, ctx.logs)
          end
        end)

        it("treats an STS timeout as retryable and not sent (no reboot went out)", function()
          local ctx = oidc_ctx({}, { { err = "timed out", code = "timeout" } })
          local _, err = provider.restart(TARGET, {}, ctx)
          assert.equal("Timeout", err.reason)
          assert.is_falsy(err.sent)
          assert.is_true(err.retryable)
        end)

        it("fails when STS answers without credentials", function()
          local ctx = oidc_ctx({}, { ok("req-s9") })
          local _, err = provider.restart(TARGET, {}, ctx)
          assert.equal("Unauthorized", err.reason)
          assert.equal("req-s9", err.request_id)
        end)
      end)
    end)

    describe("errors", function()
      local cases = {
        { "RequestLimitExceeded", "Throttled", true },
        { "RequestLimitExceeded.UinLimitExceeded", "Throttled", true },
        { "RequestLimitExceeded.GlobalRegionUinLimitExceeded", "Throttled", true },
        { "AuthFailure.SecretIdNotFound", "Unauthorized" },
        { "AuthFailure.SignatureFailure", "Unauthorized" },
        { "AuthFailure.SignatureExpire", "Unauthorized" },
        { "AuthFailure.TokenFailure", "Unauthorized" },
        { "AuthFailure.InvalidSecretId", "Unauthorized" },
        { "AuthFailure.InvalidAuthorization", "Unauthorized" },
        { "AuthFailure.UnauthorizedOperation", "Forbidden" },
        { "UnauthorizedOperation", "Forbidden" },
        { "UnauthorizedOperation.CamNoAuth", "Forbidden" },
        { "OperationDenied.AccountNotSupported", "Forbidden" },
        { "InvalidInstanceId.NotFound", "NotFound" },
        { "InvalidInstanceId.Malformed", "InvalidRequest" },
        { "InvalidParameter", "InvalidRequest" },
        { "InvalidParameterValue", "InvalidRequest" },
        { "InvalidParameterValue.InstanceIdMalformed", "InvalidRequest" },
        { "MissingParameter", "InvalidRequest" },
        { "UnsupportedRegion", "InvalidRequest" },
        { "IncorrectState", "InvalidState" },
        { "InvalidInstanceState", "InvalidState" },
        { "InvalidInstanceState.Stopped", "InvalidState" },
        { "UnsupportedOperation.InstanceStateStopped", "InvalidState" },
        { "UnsupportedOperation.InstanceStateRebooting", "InvalidState" },
        { "OperationDenied.InstanceOperationInProgress", "InvalidState" },
        { "InternalError", "Unavailable", true },
        { "InternalError.TradeUnknownError", "Unavailable", true },
        { "InternalServerError", "Unavailable", true },
        { "SomethingNew.NeverSeen", "Internal" },
      }
      for _, case in ipairs(cases) do
        local code, reason, retryable = case[1], case[2], case[3]
        it(("maps %s (HTTP 200 + Response.Error) to %s"):format(code, reason), function()
          local ctx = new_ctx({ responses = { api_error(code, "the cloud says " .. code, "req-e-42") } })
          local result, err = provider.restart(TARGET, {}, ctx)
          assert.is_nil(result)
          assert.equal(reason, err.reason)
          assert.equal(code, err.cloud_code)
          assert.equal("req-e-42", err.request_id)
          assert.equal(retryable, err.retryable)
          assert.is_falsy(err.sent)
          assert.truthy(err.message:find("the cloud says " .. code, 1, true))
        end)
      end

      it("maps an Error object on a non-200 status by its code", function()
        local ctx = new_ctx({ responses = { api_error("InternalError", "boom", "req-5", 500) } })
        local _, err = provider.restart(TARGET, {}, ctx)
        assert.equal("Unavailable", err.reason)
        assert.equal("InternalError", err.cloud_code)
        assert.equal("req-5", err.request_id)
      end)

      it("maps HTTP 5xx without a JSON body to Unavailable, retryable", function()
        for _, status in ipairs({ 500, 502, 503, 504 }) do
          local ctx = new_ctx({ responses = { { status = status, body = "<html>gateway</html>" } } })
          local _, err = provider.restart(TARGET, {}, ctx)
          assert.equal("Unavailable", err.reason)
          assert.is_true(err.retryable)
          assert.equal("HTTP" .. status, err.cloud_code)
        end
      end)

      it("passes a Retry-After header on", function()
        local ctx = new_ctx({ responses = { { status = 503, headers = { ["Retry-After"] = "3" }, body = "" } } })
        local _, err = provider.restart(TARGET, {}, ctx)
        assert.equal(3, err.retry_after)
      end)

      it("maps a 200 with a body that is not API JSON to Internal", function()
        for _, body in ipairs({ "<html>captive portal</html>", "", "[]", '{"foo":1}', '{"Response":"x"}' }) do
          local ctx = new_ctx({ responses = { { status = 200, body = body } } })
          local result, err = provider.restart(TARGET, {}, ctx)
          assert.is_nil(result)
          assert.equal("Internal", err.reason, body)
          assert.is_falsy(err.retryable)
        end
      end)

      it("maps unexpected 4xx statuses", function()
        local expected = { [429] = "Throttled", [401] = "Unauthorized", [403] = "Forbidden", [404] = "Internal" }
        for status, reason in pairs(expected) do
          local ctx = new_ctx({ responses = { { status = status, body = "nope" } } })
          local _, err = provider.restart(TARGET, {}, ctx)
          assert.equal(reason, err.reason)
        end
      end)

      it("maps a refused connection to Unavailable, retryable, not sent", function()
        local ctx = new_ctx({ responses = { { err = "connection refused", code = "connect" } } })
        local _, err = provider.restart(TARGET, {}, ctx)
        assert.equal("Unavailable", err.reason)
        assert.is_true(err.retryable)
        assert.is_falsy(err.sent)
      end)

      it("maps a timeout to Timeout with sent = true (the reboot may have happened)", function()
        local ctx = new_ctx({ responses = { { err = "timed out after 10 s", code = "timeout" } } })
        local _, err = provider.restart(TARGET, {}, ctx)
        assert.equal("Timeout", err.reason)
        assert.is_true(err.sent)
        assert.is_falsy(err.retryable)
      end)

      it("maps other transport failures without retrying blindly", function()
        local ctx = new_ctx({ responses = { { err = "certificate verify failed", code = "tls" } } })
        local _, err = provider.restart(TARGET, {}, ctx)
        assert.equal("Unavailable", err.reason)
        assert.is_falsy(err.retryable)
        ctx = new_ctx({ responses = { { err = "connection reset", code = "io" } } })
        _, err = provider.restart(TARGET, {}, ctx)
        assert.is_true(err.sent)
        ctx = new_ctx({ responses = { { err = "too large", code = "too_large" } } })
        _, err = provider.restart(TARGET, {}, ctx)
        assert.equal("Internal", err.reason)
      end)

      it("returns the request id of a success even when it is the only field", function()
        local ctx = new_ctx({ responses = { { status = 200, body = '{"Response":{"RequestId":"only-id"}}' } } })
        assert.same({ request_id = "only-id", dry_run = false }, provider.restart(TARGET, {}, ctx))
      end)
    end)

    describe("secrets", function()
      it("never puts keys or tokens in errors or logs, even when the cloud echoes them", function()
        local env = merge(STATIC_ENV, { TENCENTCLOUD_SESSION_TOKEN = SESSION_TOKEN })
        local echo = ("key %s token %s"):format(SECRET_KEY, SESSION_TOKEN)
        local responses = {
          api_error("AuthFailure.SignatureFailure", echo), api_error("InvalidParameter", echo),
          { err = "failed to send " .. SECRET_KEY, code = "io" }, { err = SESSION_TOKEN, code = "timeout" },
          { err = SESSION_TOKEN, code = "connect" }, ok(),
        }
        local ctx = new_ctx({ env = env, responses = responses })
        local outputs = {}
        for _ = 1, #responses do
          outputs[#outputs + 1] = { provider.restart(TARGET, { node = "n" }, ctx) }
        end
        assert.truthy(dump(outputs):find("[REDACTED]", 1, true))
        assert_no_secrets(outputs, ctx.logs)
      end)

      it("never puts the web identity token or temporary credentials in errors or logs", function()
        local ctx = new_ctx({ env = oidc_env(), files = { [TOKEN_FILE] = WEB_TOKEN }, responses = {
          api_error("InvalidParameter.WebIdentityTokenError", "invalid token " .. WEB_TOKEN),
          sts_ok(NOW + 7200), api_error("AuthFailure.TokenFailure", "bad " .. TMP_TOKEN .. " " .. TMP_KEY),
          sts_ok(NOW + 7200), ok(),
        } })
        local outputs = {}
        for _ = 1, 3 do
          outputs[#outputs + 1] = { provider.restart(TARGET, {}, ctx) }
        end
        assert.is_true(#ctx.logs > 0)
        assert_no_secrets(outputs, ctx.logs)
      end)
    end)
  end)

  describe("check()", function()
    local function check_with(e)
      local ctx = new_ctx({ env = e }) -- no scripted responses: any network call raises
      local ready, why = provider.check(ctx)
      assert.equal(0, #ctx.requests)
      return ready, why
    end

    it("is ready with static keys", function()
      assert.is_true(check_with(STATIC_ENV))
      assert.is_true(check_with(merge(STATIC_ENV, { TENCENTCLOUD_SESSION_TOKEN = SESSION_TOKEN })))
    end)

    it("is ready with the TKE OIDC variables", function()
      assert.is_true(check_with(oidc_env()))
    end)

    it("is not ready without credentials, naming the variables", function()
      for _, e in ipairs({ {}, { TENCENTCLOUD_SECRET_ID = SECRET_ID }, { TENCENTCLOUD_SECRET_KEY = SECRET_KEY },
        { TKE_ROLE_ARN = ROLE_ARN, TKE_PROVIDER_ID = "x" } }) do
        local ready, why = check_with(e)
        assert.is_false(ready)
        for _, var in ipairs({ "TENCENTCLOUD_SECRET_ID", "TENCENTCLOUD_SECRET_KEY", "TKE_ROLE_ARN",
          "TKE_WEB_IDENTITY_TOKEN_FILE", "TKE_PROVIDER_ID", "TKE_REGION" }) do
          assert.truthy(why:find(var, 1, true), var)
        end
        assert_no_secrets(why)
      end
    end)

    it("is not ready with an invalid stop type or endpoint", function()
      local ready, why = check_with(merge(STATIC_ENV, { TENCENTCLOUD_REBOOT_STOP_TYPE = "NOW" }))
      assert.is_false(ready)
      assert.truthy(why:find("TENCENTCLOUD_REBOOT_STOP_TYPE", 1, true))
      ready, why = check_with(merge(STATIC_ENV, { TENCENTCLOUD_STS_ENDPOINT = "sts" }))
      assert.is_false(ready)
      assert.truthy(why:find("TENCENTCLOUD_STS_ENDPOINT", 1, true))
    end)
  end)
end)
