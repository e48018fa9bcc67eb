-- host.limits as a Lua C module in a stock lua5.4: the instruction limit, what
-- a limited function cannot do to escape it, the poisoned flag. The memory
-- limit needs the server's allocator: host/tests/limits_test.c covers it.
local limits = require("host.limits")

local function spin()
  while true do -- luacheck: ignore 512
  end
end

describe("host.limits", function()
  after_each(function()
    limits.reset()
  end)

  it("runs a function like pcall: true and its results, or false and its error", function()
    assert.same({ true, 3, "x" }, { limits.run(function(a, b) return a + b, "x" end, {}, 1, 2) })
    local ok, err = limits.run(function() error("boom", 0) end, { instructions = 1e6 })
    assert.is_false(ok)
    assert.equal("boom", err)
    assert.is_nil(limits.poisoned())
  end)

  it("stops a loop at the instruction limit and marks the state poisoned", function()
    local ok, why = limits.run(spin, { instructions = 1e5, label = "provider x (restart)" })
    assert.is_nil(ok)
    assert.equal("instruction limit exceeded", why)
    assert.equal("provider x (restart): instruction limit exceeded", limits.poisoned())
  end)

  it("runs nothing more in a poisoned state, and reset() forgets the trip", function()
    limits.run(spin, { instructions = 1e4 })
    local ran = false
    local ok, why = limits.run(function() ran = true end, {})
    assert.is_nil(ok)
    assert.equal("not run: limited call: instruction limit exceeded", why)
    assert.is_false(ran)
    limits.reset()
    assert.is_true((limits.run(function() return true end, {})))
  end)

  it("leaves the state usable with poison = false", function()
    assert.is_nil((limits.run(spin, { instructions = 1e4, poison = false })))
    assert.is_nil(limits.poisoned())
  end)

  it("keeps raising once tripped, so catching the error does not let a loop go on", function()
    local escapes = {
      pcall_loop = function()
        while true do
          pcall(spin)
        end
      end,
      nested = function()
        while true do
          pcall(function()
            while true do
              pcall(spin)
            end
          end)
        end
      end,
      coroutine = function()
        local co = coroutine.wrap(function()
          while true do
            pcall(spin)
          end
        end)
        while true do
          pcall(co)
        end
      end,
      many_coroutines = function()
        while true do
          pcall(coroutine.resume, coroutine.create(spin))
        end
      end,
    }
    for name, fn in pairs(escapes) do
      local ok, why = limits.run(fn, { instructions = 1e5 })
      assert.is_nil(ok, name)
      assert.equal("instruction limit exceeded", why, name)
      limits.reset()
    end
  end)

  it("counts a coroutine made in one limited call when a later one resumes it", function()
    local co
    assert.is_true((limits.run(function() co = coroutine.create(spin) end, { instructions = 1e5 })))
    local ok, why = limits.run(coroutine.resume, { instructions = 1e5 }, co)
    assert.is_nil(ok)
    assert.equal("instruction limit exceeded", why)
  end)

  it("restores the caller's hook and refuses to nest", function()
    local ok, err = limits.run(function() return limits.run(function() end, {}) end, {})
    assert.is_false(ok) -- the inner run raised inside the outer one
    assert.matches("host.limits.run: already inside a limited call", err, 1, true)
    assert.is_nil(debug.gethook())
  end)

  it("checks its arguments", function()
    assert.has_error(function() limits.run("x", {}) end)
    assert.has_error(function() limits.run(spin) end)
    assert.has_error(function() limits.run(spin, { instructions = -1 }) end,
      "host.limits.run: 'instructions' must be an integer >= 0")
    assert.has_error(function() limits.run(spin, { memory = "lots" }) end,
      "host.limits.run: 'memory' must be an integer >= 0")
  end)

  it("has no memory limit in a stock lua5.4 (the server's allocator is not there)", function()
    assert.is_false(limits.memory_limited())
    assert.is_true((limits.run(function() return #string.rep("x", 1 << 21) end, { memory = 1024 })))
    assert.is_true(math.type(limits.in_use()) == "integer" and limits.in_use() > 0)
  end)
end)
