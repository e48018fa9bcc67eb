local authn = require("infraops.authn")
local cjson = require("cjson")
local crypto = require("host.crypto")
local fake_shared = require("spec.helpers.fake_shared")

local SETTINGS = {
  allowed_names = { "front-proxy-client" },
  username_headers = { "X-Remote-User" },
  group_headers = { "X-Remote-Group" },
  extra_prefixes = { "X-Remote-Extra-" },
  uid_headers = { "X-Remote-Uid" },
}

local function front_proxy_peer(cn)
  return { presented = true, verified_requestheader = true, verified_client_ca = false, common_name = cn,
    organizations = {}, sha256 = "ff" }
end

local ALICE_PEER = { presented = true, verified_client_ca = true, verified_requestheader = false,
  common_name = "alice", organizations = { "dev", "ops" }, sha256 = "abc123" }

local function request(peer, headers)
  return { id = "r1", method = "GET", path = "/apis", headers = headers or {}, peer = peer or { presented = false } }
end

local function new(overrides)
  local clock = { now = 0 }
  local deps = {
    settings = function() return SETTINGS end,
    token_review = function() return false end,
    cache = fake_shared.new(clock), crypto = crypto, cjson = cjson, token_ttl = 10,
  }
  for k, v in pairs(overrides or {}) do
    deps[k] = v
  end
  return authn.new(deps), deps, clock
end

describe("infraops.authn", function()
  describe("authenticate() with a front-proxy certificate", function()
    it("takes the user, every group line, the uid and decoded extras from the headers", function()
      local a = new()
      local user = a.authenticate(request(front_proxy_peer("front-proxy-client"), {
        ["x-remote-user"] = { "alice" },
        ["x-remote-uid"] = { "u-1" },
        ["x-remote-group"] = { "dev", "ops" },
        ["x-remote-extra-authentication.kubernetes.io%2fcredential-id"] = { "JTI=1" },
        ["x-remote-extra-scopes"] = { "a", "b" },
      }))
      assert.equal("alice", user.name)
      assert.equal("u-1", user.uid)
      assert.same({ "dev", "ops", "system:authenticated" }, user.groups)
      assert.same({ "JTI=1" }, user.extra["authentication.kubernetes.io/credential-id"])
      assert.same({ "a", "b" }, user.extra.scopes)
    end)

    it("refuses a CN that is not in the allowed names", function()
      local a = new()
      local user, err = a.authenticate(request(front_proxy_peer("not-allowed"), { ["x-remote-user"] = { "alice" } }))
      assert.is_nil(user)
      assert.is_string(err)
    end)

    it("accepts any CN from the request-header CA when the allowed list is empty", function()
      local open = { allowed_names = {}, username_headers = { "X-Remote-User" }, group_headers = {},
        extra_prefixes = {} }
      local a = new({ settings = function() return open end })
      local user = a.authenticate(request(front_proxy_peer("anything"), { ["x-remote-user"] = { "carol" } }))
      assert.equal("carol", user.name)
    end)

    it("ignores the headers when front-proxy authentication is off", function()
      local a = new({ settings = function() return nil end })
      local user, err = a.authenticate(request(front_proxy_peer("front-proxy-client"), { ["x-remote-user"] = { "x" } }))
      assert.is_nil(user) -- the certificate is not from the client CA either: refused
      assert.is_string(err)
    end)

    it("has no opinion without a user header, and then refuses a certificate it cannot use", function()
      local a = new()
      local user = a.authenticate(request(front_proxy_peer("front-proxy-client"), {}))
      assert.is_nil(user)
    end)
  end)

  describe("authenticate() with a client certificate", function()
    it("uses CN and O values, and the credential id", function()
      local user = new().authenticate(request(ALICE_PEER))
      assert.equal("alice", user.name)
      assert.same({ "dev", "ops", "system:authenticated" }, user.groups)
      assert.same({ "X509SHA256=abc123" }, user.extra["authentication.kubernetes.io/credential-id"])
    end)

    it("never reads X-Remote-* headers from a client-CA certificate", function()
      local user = new().authenticate(request(ALICE_PEER, {
        ["x-remote-user"] = { "mallory" }, ["x-remote-group"] = { "system:masters" } }))
      assert.equal("alice", user.name)
      assert.same({ "dev", "ops", "system:authenticated" }, user.groups)
    end)

    it("refuses a presented certificate that verified against nothing", function()
      local user, err = new().authenticate(request({ presented = true }))
      assert.is_nil(user)
      assert.is_string(err)
    end)
  end)

  describe("authenticate() with a bearer token", function()
    local function token_request(token)
      return request(nil, { authorization = { "Bearer " .. token } })
    end

    it("asks TokenReview once and caches the answer under a hash of the token", function()
      local calls = 0
      local a, deps = new({ token_review = function(token)
        calls = calls + 1
        assert.equal("secret-token", token)
        return { name = "bob", groups = { "dev" }, extra = {} }
      end })
      assert.equal("bob", a.authenticate(token_request("secret-token")).name)
      assert.equal("bob", a.authenticate(token_request("secret-token")).name)
      assert.equal(1, calls)
      assert.equal(1, #deps.cache.sets)
      assert.is_nil(deps.cache.sets[1].key:find("secret-token", 1, true))
      assert.is_nil(deps.cache.sets[1].value:find("secret-token", 1, true))
      assert.equal(10, deps.cache.sets[1].ttl)
    end)

    it("caches a refusal too, and asks again after the TTL", function()
      local calls = 0
      local a, _, clock = new({ token_review = function()
        calls = calls + 1
        return false
      end })
      assert.is_nil(a.authenticate(token_request("bad")))
      assert.is_nil(a.authenticate(token_request("bad")))
      assert.equal(1, calls)
      clock.now = 11
      assert.is_nil(a.authenticate(token_request("bad")))
      assert.equal(2, calls)
    end)

    it("does not cache a TokenReview that failed, and refuses the request", function()
      local calls = 0
      local a, deps = new({ token_review = function()
        calls = calls + 1
        return nil, "unreachable"
      end })
      local user, err = a.authenticate(token_request("t"))
      assert.is_nil(user)
      assert.matches("unreachable", err)
      a.authenticate(token_request("t"))
      assert.equal(2, calls)
      assert.equal(0, #deps.cache.sets)
    end)

    it("refuses a malformed Authorization header", function()
      local user = new().authenticate(request(nil, { authorization = { "Bearer" } }))
      assert.is_nil(user)
    end)
  end)

  it("is anonymous when nothing is presented", function()
    local user = new().authenticate(request())
    assert.equal("system:anonymous", user.name)
    assert.same({ "system:unauthenticated" }, user.groups)
  end)
end)
