-- Regressions found by fuzzing (fuzz/regressions/k8s_response): the
-- authentication ConfigMap read from the API must give true or nil, message
-- for any answer, and a list setting must be a JSON array.
local auth_config = require("infraops.auth_config")
local cjson = require("cjson")
local fake_shared = require("spec.helpers.fake_shared")

local function refresh(answer)
  local k8s = { get = function() return answer end }
  local shared = fake_shared.new()
  local trust = auth_config.new({
    flags = {}, k8s = k8s, shared = shared, cjson = cjson, monotonic = function() return 0 end,
    log = { warn = function() end },
  })
  local ok, err = trust.refresh(true)
  return ok, err, trust
end

describe("fuzz regressions: auth_config", function()
  it("refuses an empty 200 answer (the client's true) instead of raising", function()
    local ok, err = refresh(true)
    assert.is_nil(ok)
    assert.matches("not a ConfigMap", err)
  end)

  it("refuses data that is not a map of strings", function()
    for _, data in ipairs({ 5, "x", { ["client-ca-file"] = 1 } }) do
      local ok, err = refresh({ data = data })
      assert.is_nil(ok)
      assert.matches("not a map of strings", err)
    end
  end)

  it("treats JSON null data as empty", function()
    local ok, _, trust = refresh({ data = cjson.null })
    assert.is_true(ok)
    assert.is_nil(trust.requestheader())
  end)

  it("refuses a list setting that is a JSON object (it must not read as 'any name allowed')", function()
    local settings, err = auth_config.from_configmap(cjson, {
      ["requestheader-client-ca-file"] = "PEM", ["requestheader-allowed-names"] = '{"cn":"front-proxy-client"}',
    })
    assert.is_nil(settings)
    assert.matches("requestheader%-allowed%-names is not a JSON array", err)
  end)
end)
