-- infraops.guards (lua/infraops/guards.lua): the node the server runs on and
-- protected nodes are never restarted.
local guards = require("infraops.guards")

local function node(name, labels)
  return { metadata = { name = name, labels = labels } }
end

local CONTROL_PLANE = { ["node-role.kubernetes.io/control-plane"] = "" }
local MASTER = { ["node-role.kubernetes.io/master"] = "" }

describe("infraops.guards", function()
  it("allows an ordinary node", function()
    local g = guards.new({ own_node = "self" })
    assert.are.same({ true }, { g:check(node("worker-1", { ["kubernetes.io/os"] = "linux" })) })
    assert.are.same({ true }, { g:check(node("worker-2")) })
  end)

  it("refuses the node the server runs on", function()
    local g = guards.new({ own_node = "self" })
    local ok, code, message = g:check(node("self"))
    assert.is_false(ok)
    assert.are.equal("own_node", code)
    assert.is_string(message)
  end)

  it("reports own_node before protected", function()
    local g = guards.new({ own_node = "cp-1" })
    local _, code = g:check(node("cp-1", CONTROL_PLANE))
    assert.are.equal("own_node", code)
  end)

  it("protects control-plane nodes by default", function()
    local g = guards.new({})
    local ok, code, message = g:check(node("cp-1", CONTROL_PLANE))
    assert.is_false(ok)
    assert.are.equal("protected", code)
    assert.are.equal("node matches --protected-nodes-selector node-role.kubernetes.io/control-plane", message)
    assert.are.equal("node-role.kubernetes.io/control-plane", guards.DEFAULT_PROTECTED)
  end)

  it("does not protect legacy master-only nodes by default; the flag does", function()
    assert.is_true((guards.new({}):check(node("m-1", MASTER))))
    local g = guards.new({ protected = "node-role.kubernetes.io/master" })
    local ok, code = g:check(node("m-1", MASTER))
    assert.is_false(ok)
    assert.are.equal("protected", code)
    assert.is_true((g:check(node("cp-1", CONTROL_PLANE))))
  end)

  it("uses any label selector given", function()
    local g = guards.new({ protected = "env in (prod), tier!=batch" })
    assert.is_false((g:check(node("a", { env = "prod" }))))
    assert.is_true((g:check(node("b", { env = "prod", tier = "batch" }))))
    assert.is_true((g:check(node("c", { env = "dev" }))))
  end)

  it("protects nothing when the flag is explicitly empty", function()
    for _, text in ipairs({ "", "  " }) do
      local g = guards.new({ protected = text })
      assert.is_true((g:check(node("cp-1", CONTROL_PLANE))))
    end
  end)

  it("has no own node when none is given", function()
    local g = guards.new({ own_node = "" })
    assert.is_true((g:check(node(""))))
    assert.is_true((guards.new():check(node("x"))))
  end)

  it("raises at start-up on an invalid selector, naming the flag", function()
    for _, text in ipairs({ "x in (", "a=b=c", "Bad Key", 42 }) do
      local ok, err = pcall(guards.new, { protected = text })
      assert.is_false(ok)
      assert.is_truthy(tostring(err):find("--protected-nodes-selector", 1, true), tostring(err))
    end
  end)

  it("survives nodes without metadata or labels", function()
    local g = guards.new({ own_node = "self", protected = "!ready" })
    for _, n in ipairs({ {}, { metadata = "x" }, { metadata = { labels = "x" } } }) do
      local ok, code = g:check(n)
      assert.is_false(ok)
      assert.are.equal("protected", code)
    end
    assert.is_false((g:check(nil)))
  end)
end)
