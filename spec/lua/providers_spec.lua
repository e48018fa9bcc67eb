local cjson = require("cjson")
local limits = require("host.limits")
local providers = require("infraops.providers")

local GOOD = [[
local p = { name = "good", api_version = 1 }
function p.match(id)
  local zone, instance = id:match("^good:///([%w-]+)/(vm%-%d+)$")
  if zone then return { instance_id = instance, region = zone } end
  if id:match("^good://") then return nil, "malformed good providerID" end
end
function p.restart(target, opts, ctx)
  ctx.cache.set("last", target.instance_id)
  return { request_id = "req-" .. target.instance_id, dry_run = opts.dry_run }
end
function p.check(ctx) return ctx.env("GOOD_KEY") ~= nil, "GOOD_KEY is not set" end
return p
]]

-- An in-memory fs holding the given files under /p.
local function fake_fs(files)
  return {
    list_dir = function(dir)
      if dir ~= "/p" then
        return nil, "no such directory", "not_found"
      end
      local names = {}
      for name in pairs(files) do
        names[#names + 1] = name
      end
      table.sort(names)
      return names
    end,
    read_file = function(path)
      local text = files[path:match("[^/]+$")]
      if not text then
        return nil, "not found", "not_found"
      end
      return text
    end,
  }
end

local function fake_log()
  local log = { lines = {} }
  for _, level in ipairs({ "debug", "info", "warn", "error" }) do
    log[level] = function(message, fields)
      log.lines[#log.lines + 1] = { level = level, message = message, fields = fields or {} }
    end
  end
  return log
end

local function load(files, env, extra)
  local log, store = fake_log(), {}
  local registry, err = providers.load({ "/p" }, {
    fs = fake_fs(files), log = log, http = (extra or {}).http or {}, crypto = {}, time = {}, cjson = cjson, xml = {},
    sigv4 = {}, tc3 = {}, limits = (extra or {}).limits,
    shared = { get = function(k) return store[k] end, set = function(k, v) store[k] = v end,
      delete = function(k) store[k] = nil end,
      add = function(k, v)
        if store[k] then
          return false
        end
        store[k] = v
        return true
      end },
    getenv = function(name) return (env or {})[name] end,
  })
  return registry, err, log, store
end

local function node(provider_id)
  return { metadata = { name = "n1" }, spec = { providerID = provider_id } }
end

describe("infraops.providers", function()
  describe("load()", function()
    it("loads every *.lua file and ignores other files", function()
      local registry = load({ ["good.lua"] = GOOD, ["README.md"] = "# not a provider", [".hidden.lua"] = GOOD })
      assert.same({ "good" }, registry.names())
    end)

    it("logs a script with a syntax error and keeps serving the others", function()
      local registry, _, log = load({ ["good.lua"] = GOOD, ["broken.lua"] = "local p = {{ return p" })
      assert.same({ "good" }, registry.names())
      assert.equal(1, #registry.failed)
      assert.equal("/p/broken.lua", registry.failed[1].file)
      assert.equal("error", log.lines[1].level)
      assert.equal("/p/broken.lua", log.lines[1].fields.file)
    end)

    it("refuses scripts that break the contract", function()
      local registry = load({
        ["noname.lua"] = "return { api_version = 1, match = function() end, restart = function() end }",
        ["oldapi.lua"] = "return { name = 'old', api_version = 0, match = function() end, restart = function() end }",
        ["norestart.lua"] = "return { name = 'half', api_version = 1, match = function() end }",
        ["raises.lua"] = "error('boom')",
        ["number.lua"] = "return 42",
      })
      assert.same({}, registry.names())
      assert.equal(5, #registry.failed)
    end)

    it("refuses a second script with a name already loaded", function()
      local registry = load({ ["a.lua"] = GOOD, ["b.lua"] = GOOD })
      assert.same({ "good" }, registry.names())
      assert.equal(1, #registry.failed)
    end)

    it("gives scripts no io, os.execute, require, load or server globals, and no global writes", function()
      local probe = [[
        local seen = { io = io ~= nil, require = require ~= nil, load = load ~= nil, dofile = dofile ~= nil,
          execute = os.execute ~= nil, getenv = os.getenv ~= nil, debug = debug ~= nil, package = package ~= nil,
          time = os.time ~= nil }
        local p = { name = "probe", api_version = 1, seen = seen }
        function p.match() leaked = true end
        function p.restart() return {} end
        return p
      ]]
      local registry = load({ ["probe.lua"] = probe })
      assert.same({ "probe" }, registry.names())
      local entry = registry.match(node("x://y"))
      assert.is_nil(entry) -- the match raised (global write) and counts as no match
      local loaded = providers.load_script(probe, "probe.lua")
      assert.same({ io = false, require = false, load = false, dofile = false, execute = false, getenv = false,
        debug = false, package = false, time = true }, loaded.seen)
      assert.is_nil(rawget(_G, "leaked"))
    end)

    it("keeps each script's library tables to itself", function()
      local evil = [[
        string.format = function() return "hijacked" end
        return { name = "evil", api_version = 1, match = function() end, restart = function() end }
      ]]
      load({ ["evil.lua"] = evil })
      assert.equal("x=1", string.format("x=%d", 1))
    end)

    it("fails when a providers directory cannot be listed", function()
      local registry, err = providers.load({ "/missing" }, { fs = fake_fs({}), log = fake_log() })
      assert.is_nil(registry)
      assert.matches("/missing", err)
    end)
  end)

  describe("match()", function()
    local registry

    before_each(function()
      registry = load({ ["good.lua"] = GOOD })
    end)

    it("returns the provider and its target", function()
      local entry, target = registry.match(node("good:///zone-1/vm-42"))
      assert.equal("good", entry.name)
      assert.same({ instance_id = "vm-42", region = "zone-1" }, target)
    end)

    it("tells a missing providerID, an unknown one (naming the providers) and a malformed one apart", function()
      local _, code = registry.match(node(nil))
      assert.equal("no_provider_id", code)
      local _, code2, message = registry.match(node("other:///x"))
      assert.equal("no_match", code2)
      assert.matches("good", message)
      local _, code3 = registry.match(node("good://bad"))
      assert.equal("malformed", code3)
    end)
  end)

  describe("restart() and check()", function()
    it("runs the provider with its own namespaced cache and env", function()
      local registry, _, _, store = load({ ["good.lua"] = GOOD }, { GOOD_KEY = "x" })
      local entry, target = registry.match(node("good:///z/vm-1"))
      local result = registry.restart(entry, target, { dry_run = false })
      assert.equal("req-vm-1", result.request_id)
      assert.equal("vm-1", store["provider:good:last"])
      assert.same({ { name = "good", ready = true } }, registry.check())
    end)

    it("turns a raising provider into an Internal error without the traceback", function()
      local script = GOOD:gsub("ctx.cache.set%(\"last\", target.instance_id%)", "error('secret-laden failure')")
      local registry = load({ ["good.lua"] = script })
      local entry, target = registry.match(node("good:///z/vm-1"))
      local result, err = registry.restart(entry, target, {})
      assert.is_nil(result)
      assert.equal("Internal", err.reason)
      assert.is_nil(err.message:find("secret-laden", 1, true))
    end)

    it("reports a provider that is not ready, with its reason", function()
      local registry = load({ ["good.lua"] = GOOD })
      assert.same({ { name = "good", ready = false, reason = "GOOD_KEY is not set" } }, registry.check())
    end)
  end)

  describe("limits", function()
    local LIMITS = { run = limits.run, instructions = 200000, memory = 1 << 20, memory_text = "1Mi" }
    -- A provider whose restart(target) runs the code named by target.instance_id.
    local RUNAWAY = [[
      local p = { name = "runaway", api_version = 1 }
      local function spin() while true do end end
      local behaviours = {
        loop = spin,
        catch = function() while true do pcall(spin) end end,
        xpcall = function() while true do xpcall(spin, spin) end end,
        coroutine = function() local co = coroutine.wrap(function() while true do pcall(spin) end end) co() end,
        http_then_loop = function(ctx) ctx.http({ method = "GET", url = "http://cloud/" }) spin() end,
        finalizer = function() setmetatable({}, { __gc = spin }) end,
        sneaky = function()
          return setmetatable({ request_id = "r-1" }, { __index = function() spin() end })
        end,
      }
      function p.match(id)
        if id == "runaway://match-loop" then spin() end
        local what = id:match("^runaway://(.+)$")
        if what then return { instance_id = what } end
      end
      function p.restart(target, _, ctx) return behaviours[target.instance_id](ctx) end
      function p.check() spin() end
      return p
    ]]

    local function runaway()
      local registry = load({ ["runaway.lua"] = RUNAWAY, ["good.lua"] = GOOD }, { GOOD_KEY = "x" }, {
        limits = LIMITS, http = { new = function() return { request = function() return { status = 200 } end } end },
      })
      return registry
    end

    after_each(function()
      limits.reset()
    end)

    it("fails a restart that loops, however it catches the error, naming the provider and the limit", function()
      for _, how in ipairs({ "loop", "catch", "xpcall", "coroutine" }) do
        local registry = runaway()
        local entry, target = registry.match(node("runaway://" .. how))
        local result, err = registry.restart(entry, target, {})
        assert.is_nil(result, how)
        assert.equal("Internal", err.reason, how)
        assert.is_true(err.provider_failed, how)
        assert.is_nil(err.sent, how)
        assert.equal("the restart call exceeded its instruction limit (--provider-instruction-limit=200000)",
          err.message, how)
        assert.equal("provider runaway (restart): instruction limit exceeded", limits.poisoned(), how)
        limits.reset()
      end
    end)

    it("says the reboot may have gone out when the provider made an HTTP request before its limit", function()
      local registry = runaway()
      local entry, target = registry.match(node("runaway://http_then_loop"))
      local _, err = registry.restart(entry, target, {})
      assert.is_true(err.sent)
    end)

    it("fails a match that loops with code limit, and runs no provider code after that", function()
      local registry = runaway()
      local entry, code, message = registry.match(node("runaway://match-loop"))
      assert.is_nil(entry)
      assert.equal("limit", code)
      assert.equal("runaway: the match call exceeded its instruction limit (--provider-instruction-limit=200000)",
        message)
      local _, code2, message2 = registry.match(node("good:///z/vm-1"))
      assert.equal("limit", code2)
      assert.matches("the match call was not run: an earlier provider call in this request hit its limit", message2)
    end)

    it("reports a check that loops as not ready", function()
      local checks = runaway().check()
      assert.same({ name = "good", ready = true }, checks[1])
      assert.equal("runaway", checks[2].name)
      assert.is_false(checks[2].ready)
      assert.matches("check call exceeded its instruction limit", checks[2].reason)
    end)

    it("leaves out a script whose chunk loops, without poisoning the state", function()
      local registry = load({ ["spin.lua"] = "while true do end", ["good.lua"] = GOOD }, nil, { limits = LIMITS })
      assert.same({ "good" }, registry.names())
      assert.equal("the load call exceeded its instruction limit (--provider-instruction-limit=200000)",
        registry.failed[1].error)
      assert.is_nil(limits.poisoned())
    end)

    it("refuses __gc finalizers (Lua runs them with the limit's hook off)", function()
      local registry = runaway()
      local entry, target = registry.match(node("runaway://finalizer"))
      local _, err = registry.restart(entry, target, {})
      assert.equal("Internal", err.reason)
      assert.equal("provider runaway failed", err.message)
    end)

    it("hands the server plain copies of what a provider returns: no metatables, no provider code", function()
      local registry = runaway()
      local entry, target = registry.match(node("runaway://sneaky"))
      local result = registry.restart(entry, target, {})
      assert.is_nil(getmetatable(result))
      assert.same({ request_id = "r-1" }, result)
      assert.is_nil(result.anything)
    end)
  end)
end)
