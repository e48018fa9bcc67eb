-- Regressions found by fuzzing (fuzz/regressions/k8s_response): the restart
-- handler and the provider registry read what the Kubernetes API answered;
-- an empty answer (the client's `true`) or an object of the wrong shape gives
-- an error response, never a raise.
local cjson = require("cjson")
local crypto = require("host.crypto")
local providers = require("infraops.providers")
local restart = require("infraops.restart")
local time = require("host.time")

local NODE = { metadata = { name = "worker-1", labels = {} }, spec = { providerID = "fake:///z1/vm-1" } }

-- A Kubernetes client answering every GET from `answers[path-kind]`, and
-- writes with what it was given.
local function fake_k8s(answers)
  local k = {}
  function k.get(_, path)
    local answer = answers.node
    if path:match("/leases/") then
      answer = answers.lease
    end
    if answer == nil then
      return nil, { code = "not_found", message = "not found" }
    end
    return answer
  end
  function k.post(_, _, body)
    return answers.written == nil and body or answers.written
  end
  function k.put(_, _, body)
    return body
  end
  function k.delete()
    return true
  end
  return k
end

local function handle(answers)
  local registry = providers.registry({ { name = "fake", module = {
    match = function(id) return id:match("^fake://") and { instance_id = "vm-1" } or nil end,
    restart = function() return { request_id = "r-1" } end,
  } } }, {}, { error = function() end })
  local r = restart.new({
    k8s = fake_k8s(answers), registry = registry, guards = { check = function() return true end },
    crypto = crypto, cjson = cjson, log = { info = function() end, warn = function() end, error = function() end },
    now = function() return 1700000000 end, monotonic = function() return 0 end, iso8601 = time.iso8601,
    iso8601_micro = time.iso8601_micro, parse_time = time.parse_iso8601, sleep = function() end,
    random = function() return 0.5 end, lease_namespace = "infra", cooldown = 300, identity = "me",
  })
  return r.handle("worker-1", { name = "alice" }, "", {})
end

describe("fuzz regressions: restart and the provider registry", function()
  it("answers an error when the Node GET answers an empty body", function()
    local res = handle({ node = true })
    assert.are.equal(503, res.status)
  end)

  it("answers an error when the Lease GET answers an empty body", function()
    local res = handle({ node = NODE, lease = true })
    assert.are.equal(503, res.status)
  end)

  it("answers an error when taking the Lease answers an empty body", function()
    local res = handle({ node = NODE, written = true })
    assert.are.equal(503, res.status)
  end)

  it("answers an error when the Lease create answers a Lease without its name or annotations", function()
    local res = handle({ node = NODE, written = { metadata = {}, spec = {} } })
    assert.are.equal(503, res.status)
  end)

  it("answers an error when the Node GET answers another node", function()
    local res = handle({ node = { metadata = { name = "worker-2" }, spec = NODE.spec } })
    assert.are.equal(503, res.status)
  end)

  it("registry.match: a spec that is not an object means no providerID", function()
    local registry = providers.registry({}, {}, { error = function() end })
    for _, node in ipairs({ true, { spec = 5 }, { spec = "x" } }) do
      local entry, code = registry.match(node)
      assert.is_nil(entry)
      assert.are.equal("no_provider_id", code)
    end
  end)
end)
