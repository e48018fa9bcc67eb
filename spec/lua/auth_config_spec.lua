local auth_config = require("infraops.auth_config")
local cjson = require("cjson")
local fake_shared = require("spec.helpers.fake_shared")

local DATA = {
  ["client-ca-file"] = "CLIENT-CA-PEM",
  ["requestheader-client-ca-file"] = "FRONT-PROXY-CA-PEM",
  ["requestheader-allowed-names"] = '["front-proxy-client"]',
  ["requestheader-username-headers"] = '["X-Remote-User"]',
  ["requestheader-group-headers"] = '["X-Remote-Group"]',
  ["requestheader-extra-headers-prefix"] = '["X-Remote-Extra-"]',
  ["requestheader-uid-headers"] = "[]",
}

local DEFAULT_FLAGS = {
  ["requestheader-username-headers"] = "x-remote-user",
  ["requestheader-group-headers"] = "x-remote-group",
  ["requestheader-extra-headers-prefix"] = "x-remote-extra-",
}

-- A fake Kubernetes client answering the ConfigMap GET from `answers` in turn.
local function fake_k8s(answers)
  local k = { calls = 0 }
  function k.get(_, path)
    k.calls = k.calls + 1
    assert.equal("/api/v1/namespaces/kube-system/configmaps/extension-apiserver-authentication", path)
    local a = answers[math.min(k.calls, #answers)]
    if a.err then
      return nil, a.err
    end
    return { data = a.data }
  end
  return k
end

local function fake_tls(fail)
  local t = { calls = {} }
  function t.set_cluster_cas(cas)
    t.calls[#t.calls + 1] = cas
    if fail then
      return nil, "bad bundle", "invalid_ca"
    end
    return true, true
  end
  return t
end

local function new(flags, k8s, tls)
  local merged = {}
  for k, v in pairs(DEFAULT_FLAGS) do
    merged[k] = v
  end
  for k, v in pairs(flags or {}) do
    merged[k] = v
  end
  local clock = { now = 0 }
  local warnings = {}
  local c = auth_config.new({
    flags = merged, k8s = k8s, tls = tls, shared = fake_shared.new(clock), cjson = cjson,
    log = { warn = function(msg, fields) warnings[#warnings + 1] = { msg = msg, fields = fields } end },
    monotonic = function() return clock.now end, lookup_interval = 30,
  })
  return c, clock, warnings
end

describe("infraops.auth_config", function()
  it("takes CAs and request-header settings from the ConfigMap", function()
    local tls = fake_tls()
    local c = new({}, fake_k8s({ { data = DATA } }), tls)
    assert.is_true(c.refresh(true))
    assert.same({ client_ca = "CLIENT-CA-PEM", requestheader_ca = "FRONT-PROXY-CA-PEM" }, tls.calls[1])
    assert.same({ allowed_names = { "front-proxy-client" }, username_headers = { "X-Remote-User" },
      group_headers = { "X-Remote-Group" }, extra_prefixes = { "X-Remote-Extra-" }, uid_headers = {} },
      c.requestheader())
  end)

  it("turns front-proxy authentication off when the ConfigMap has no request-header CA", function()
    local tls = fake_tls()
    local c = new({}, fake_k8s({ { data = { ["client-ca-file"] = "CLIENT-CA-PEM" } } }), tls)
    assert.is_true(c.refresh(true))
    assert.is_nil(c.requestheader())
    assert.is_nil(tls.calls[1].requestheader_ca)
  end)

  it("takes every request-header setting from flags when the CA is a flag", function()
    local tls = fake_tls()
    local c = new({ ["requestheader-client-ca-file"] = "/etc/fp.crt", ["requestheader-allowed-names"] = "a, b" },
      fake_k8s({ { data = DATA } }), tls)
    assert.is_true(c.refresh(true))
    assert.same({ "a", "b" }, c.requestheader().allowed_names)
    assert.same({ "x-remote-user" }, c.requestheader().username_headers)
    assert.is_nil(tls.calls[1].requestheader_ca)
    assert.equal("CLIENT-CA-PEM", tls.calls[1].client_ca)
  end)

  it("re-reads the ConfigMap only when the interval has passed, and applies changes", function()
    local rotated = {}
    for k, v in pairs(DATA) do
      rotated[k] = v
    end
    rotated["requestheader-allowed-names"] = '["other-proxy"]'
    local k8s = fake_k8s({ { data = DATA }, { data = rotated } })
    local c, clock = new({}, k8s, fake_tls())
    c.refresh(true)
    c.refresh(false)
    assert.equal(1, k8s.calls)
    clock.now = 31
    c.refresh(false)
    assert.equal(2, k8s.calls)
    assert.same({ "other-proxy" }, c.requestheader().allowed_names)
  end)

  it("fails the first load unless told to tolerate it, naming the RoleBinding on Forbidden", function()
    local forbidden = { err = { code = "forbidden", message = "configmaps is forbidden" } }
    local ok, err = new({}, fake_k8s({ forbidden }), fake_tls()).refresh(true)
    assert.is_nil(ok)
    assert.matches("extension%-apiserver%-authentication%-reader", err)
    local tolerant = new({ ["authentication-tolerate-lookup-failure"] = "true" }, fake_k8s({ forbidden }), fake_tls())
    assert.is_true(tolerant.refresh(true))
  end)

  it("keeps the last good settings when a later read fails", function()
    local k8s = fake_k8s({ { data = DATA }, { err = { code = "unavailable", message = "down" } } })
    local c, clock, warnings = new({}, k8s, fake_tls())
    c.refresh(true)
    clock.now = 31
    assert.is_true(c.refresh(false))
    assert.same({ "front-proxy-client" }, c.requestheader().allowed_names)
    assert.equal(1, #warnings)
  end)

  it("treats a missing ConfigMap as empty, and a malformed list as an error", function()
    local c = new({}, fake_k8s({ { err = { code = "not_found", message = "not found" } } }), fake_tls())
    assert.is_true(c.refresh(true))
    assert.is_nil(c.requestheader())
    local bad = {}
    for k, v in pairs(DATA) do
      bad[k] = v
    end
    bad["requestheader-group-headers"] = "X-Remote-Group"
    local ok = new({}, fake_k8s({ { data = bad } }), fake_tls()).refresh(true)
    assert.is_nil(ok)
  end)

  it("refuses CA bundles the TLS store cannot load", function()
    local ok = new({}, fake_k8s({ { data = DATA } }), fake_tls(true)).refresh(true)
    assert.is_nil(ok)
  end)

  it("never reads the ConfigMap with --authentication-skip-lookup", function()
    local k8s = fake_k8s({ { data = DATA } })
    local c = new({ ["authentication-skip-lookup"] = "true" }, k8s, fake_tls())
    assert.is_true(c.refresh(true))
    assert.equal(0, k8s.calls)
    assert.is_nil(c.requestheader())
  end)

  it("fails the first load without a Kubernetes API unless the lookup is skipped", function()
    assert.is_nil((new({}, nil, fake_tls()).refresh(true)))
  end)
end)
