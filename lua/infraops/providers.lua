-- The provider registry: every *.lua in the providers directories, each loaded
-- in its own environment (no io, os.execute, require, load or server globals;
-- writing a global raises), checked against the contract (docs/providers.md),
-- and given a `ctx` of its own. A script that fails to load is logged and left
-- out; the others serve. Every call into a script (its chunk, match, restart,
-- check) runs under an instruction and a memory limit (host.limits): a script
-- that loops or allocates without bound fails that call instead of the server.
-- Least privilege for trusted code, not a sandbox against hostile code: see
-- docs/architecture.md.
local providers = {}

local API_VERSION = 1
local MAX_SCRIPT_BYTES = 1024 * 1024
local MAX_READ_FILE = 64 * 1024
local MAX_HTTP_TIMEOUT = 20
local MAX_DEPTH = 16 -- of the plain copies of what a provider returns

-- Without deps.limits (specs with fakes): no limits, a plain pcall.
local UNLIMITED = { run = function(fn, _, ...) return pcall(fn, ...) end }
local LIMIT_FLAGS = { ["instruction limit exceeded"] = "provider-instruction-limit",
  ["memory limit exceeded"] = "provider-memory-limit" }

local BASE = { "assert", "error", "ipairs", "next", "pairs", "pcall", "select", "tonumber", "tostring", "type",
  "xpcall", "rawequal", "rawget", "rawlen", "rawset", "setmetatable", "getmetatable", "_VERSION" }
local LIBRARIES = { "string", "table", "math", "utf8", "coroutine" }

local function copy(t)
  local out = {}
  for k, v in pairs(t) do
    out[k] = v
  end
  return out
end

-- A fresh environment per script: copies of the libraries (a script changing
-- string.format changes only its own copy), globals locked.
local function environment(name)
  local env = {}
  for _, k in ipairs(BASE) do
    env[k] = _G[k]
  end
  for _, lib in ipairs(LIBRARIES) do
    env[lib] = copy(_G[lib])
  end
  env.os = { time = os.time, clock = os.clock, date = os.date }
  -- Lua runs finalizers, and message handlers of errors raised by a limit,
  -- with hooks off: the instruction limit could not stop a loop in them. So no
  -- __gc, and xpcall's handler runs after the stack has unwound.
  env.setmetatable = function(t, mt)
    if type(mt) == "table" and rawget(mt, "__gc") ~= nil then
      error(("provider %s: __gc finalizers are not allowed"):format(name), 2)
    end
    return setmetatable(t, mt)
  end
  env.xpcall = function(f, handler, ...)
    local results = table.pack(pcall(f, ...))
    if results[1] then
      return table.unpack(results, 1, results.n)
    end
    return false, select(2, pcall(handler, results[2]))
  end
  return setmetatable(env, {
    __newindex = function(_, key)
      error(("provider %s: assignment to global '%s' (use locals)"):format(name, tostring(key)), 2)
    end,
  })
end

local function check_contract(module, file)
  if type(module) ~= "table" then
    return nil, "must return a table"
  end
  if type(module.name) ~= "string" or not module.name:match("^[a-z][a-z0-9-]*$") then
    return nil, "needs a name: lower-case letters, digits and '-'"
  end
  if module.api_version ~= API_VERSION then
    return nil, ("api_version must be %d"):format(API_VERSION)
  end
  for _, fn in ipairs({ "match", "restart" }) do
    if type(module[fn]) ~= "function" then
      return nil, ("needs a function %s"):format(fn)
    end
  end
  if module.check ~= nil and type(module.check) ~= "function" then
    return nil, "check must be a function"
  end
  return module, file
end

-- A copy of v made of strings, numbers, booleans and tables of them (no
-- metatables, functions or coroutines), so no provider code runs when the
-- server reads what a provider returned.
local function plain(v, depth)
  local kind = type(v)
  if kind ~= "table" then
    return (kind == "string" or kind == "number" or kind == "boolean") and v or nil
  end
  if depth >= MAX_DEPTH then
    return nil
  end
  local out = {}
  local k, x = next(v)
  while k ~= nil do
    local kk = type(k)
    if kk == "string" or kk == "number" or kk == "boolean" then
      out[k] = plain(x, depth + 1)
    end
    k, x = next(v, k)
  end
  return out
end

-- An error value as text, without calling a provider's __tostring.
local function describe(err)
  return type(err) == "string" and err or ("(error object is a %s value)"):format(type(err))
end

local function limit_message(limits, what, tripped)
  if tripped:match("^not run: ") then
    return ("the %s call was not run: an earlier provider call in this request hit its limit"):format(what)
  end
  local flag = LIMIT_FLAGS[tripped]
  return ("the %s call exceeded its %s (--%s=%s)"):format(what, (tripped:gsub(" exceeded$", "")), tostring(flag),
    tostring(flag == "provider-memory-limit" and limits.memory_text or limits.instructions))
end

-- Calls fn(...), provider code, under the limits; copies its first three
-- results to plain values inside the call (raw = true: as they are). Returns
-- true, r1, r2, r3 | false, message (it raised) | nil, message (a limit; the
-- Lua state is then discarded after the request, except for a chunk: a script
-- that fails to load leaves nothing behind).
local function guarded(limits, name, what, raw, fn, ...)
  local ok, r1, r2, r3 = limits.run(function(...)
    local a, b, c = fn(...)
    if raw then
      return a, b, c
    end
    return plain(a, 0), plain(b, 0), plain(c, 0)
  end, { instructions = limits.instructions, memory = limits.memory, poison = what ~= "load",
    label = ("provider %s (%s)"):format(name, what) }, ...)
  if ok == nil then
    return nil, limit_message(limits, what, r1)
  elseif not ok then
    return false, describe(r1)
  end
  return true, r1, r2, r3
end

--- Loads one script from its text. Returns the module, or nil, message.
-- limits: { run = host.limits.run, instructions, memory } (nil: none).
function providers.load_script(text, file, limits)
  local chunk, err = load(text, "@" .. file, "t", environment(file))
  if not chunk then
    return nil, err
  end
  local ok, module = guarded(limits or UNLIMITED, file, "load", true, chunk)
  if not ok then
    return nil, module
  end
  return check_contract(module, file)
end

-- The ctx a provider gets (docs/providers.md), built once per provider;
-- entry.http_calls counts its HTTP requests.
local function make_ctx(name, deps, entry)
  local client
  local function http(req)
    entry.http_calls = (entry.http_calls or 0) + 1
    client = client or deps.http.new({ timeout = MAX_HTTP_TIMEOUT, connect_timeout = 5 })
    local timeout = math.min(tonumber(req.timeout) or 10, MAX_HTTP_TIMEOUT)
    -- Always a new connection: on a reused one libcurl re-sends a request by itself when the
    -- connection turns out dead before the answer, and the cloud may have acted on the first
    -- (a reboot, twice). A handshake per cloud call is the price.
    return client:request({ method = req.method, url = req.url, headers = req.headers, body = req.body,
      timeout = timeout, fresh_connection = true })
  end
  local prefix = "provider:" .. name .. ":"
  local log = {}
  for _, level in ipairs({ "debug", "info", "warn", "error" }) do
    log[level] = function(message, fields)
      local f = copy(fields or {})
      f.provider = name
      deps.log[level](message, f)
    end
  end
  return {
    http = http,
    env = deps.getenv,
    read_file = function(path)
      return deps.fs.read_file(path, MAX_READ_FILE)
    end,
    cache = {
      get = function(key) return deps.shared.get(prefix .. key) end,
      set = function(key, value, ttl) return deps.shared.set(prefix .. key, value, ttl) end,
      delete = function(key) return deps.shared.delete(prefix .. key) end,
    },
    crypto = deps.crypto,
    time = deps.time,
    json = {
      encode = deps.cjson.encode,
      decode = function(text)
        local ok, value = pcall(deps.cjson.decode, text)
        if not ok then
          return nil, "invalid JSON"
        end
        return value
      end,
    },
    xml = deps.xml,
    sigv4 = deps.sigv4,
    tc3 = deps.tc3,
    log = log,
  }
end

local function list_scripts(fs, dirs)
  local files = {}
  for _, dir in ipairs(dirs) do
    local names, err = fs.list_dir(dir)
    if not names then
      return nil, ("--providers-dir %s: %s"):format(dir, err)
    end
    for _, n in ipairs(names) do
      if n:match("%.lua$") and not n:match("^%.") then
        files[#files + 1] = dir .. "/" .. n
      end
    end
  end
  return files
end

--- Loads every provider. deps: fs, log, http, shared, crypto, time, cjson, xml,
-- sigv4, tc3, getenv, limits (optional: { run = host.limits.run, instructions,
-- memory (bytes), memory_text (as the flag said it) }). Returns a registry, or
-- nil, message when a directory cannot be listed (a misconfiguration, not a
-- broken script).
function providers.load(dirs, deps)
  local files, err = list_scripts(deps.fs, dirs)
  if not files then
    return nil, err
  end
  local loaded, by_name, failed = {}, {}, {}
  for _, file in ipairs(files) do
    local text, read_err = deps.fs.read_file(file, MAX_SCRIPT_BYTES)
    local module, load_err = nil, read_err
    if text then
      module, load_err = providers.load_script(text, file, deps.limits)
    end
    if module and by_name[module.name] then
      module, load_err = nil, ("provider name %q already loaded from %s"):format(module.name, by_name[module.name].file)
    end
    if module then
      local entry = { name = module.name, file = file, module = module }
      entry.ctx = make_ctx(module.name, deps, entry)
      loaded[#loaded + 1] = entry
      by_name[module.name] = entry
    else
      failed[#failed + 1] = { file = file, error = load_err }
      -- Every Lua state loads the scripts: the shared store lets one of them say it.
      if deps.shared.add("providers:load-error:" .. file .. ":" .. tostring(load_err), "1") then
        deps.log.error("provider script failed to load; the others still serve", { file = file, error = load_err })
      end
    end
  end
  table.sort(loaded, function(a, b) return a.name < b.name end)
  return providers.registry(loaded, failed, deps.log, deps.limits)
end

--- A registry over loaded entries ({name, file, module, ctx}); limits as for load.
function providers.registry(loaded, failed, log, limits)
  local self = { failed = failed }
  limits = limits or UNLIMITED

  function self.names()
    local out = {}
    for i, e in ipairs(loaded) do
      out[i] = e.name
    end
    return out
  end

  --- The provider for a node: entry, target; or nil, code, message with code
  -- no_provider_id | no_match | malformed | limit (a provider call hit its limit).
  function self.match(node)
    local spec = type(node) == "table" and node.spec
    local provider_id = type(spec) == "table" and spec.providerID or nil
    if type(provider_id) ~= "string" or provider_id == "" then
      return nil, "no_provider_id", "the node has no spec.providerID"
    end
    for _, e in ipairs(loaded) do
      local ok, target, err = guarded(limits, e.name, "match", false, e.module.match, provider_id, node, e.ctx)
      if ok == nil then
        return nil, "limit", ("%s: %s"):format(e.name, target)
      elseif not ok then
        log.error("provider match raised an error", { provider = e.name, error = target })
      elseif target then
        return e, target
      elseif err then
        return nil, "malformed", ("%s: %s"):format(e.name, tostring(err))
      end
    end
    local names = #loaded > 0 and table.concat(self.names(), ", ") or "none"
    return nil, "no_match", ("no provider script matches providerID %q (loaded providers: %s)"):format(
      provider_id, names)
  end

  --- One reboot attempt: result, or nil, cloud error table (docs/providers.md).
  -- A provider that raised or hit a limit gives reason Internal with
  -- provider_failed = true, and sent = true when it made an HTTP request first
  -- (the reboot may have gone out).
  function self.restart(entry, target, opts)
    local calls = entry.http_calls or 0
    local ok, result, err = guarded(limits, entry.name, "restart", false, entry.module.restart, target, opts,
      entry.ctx)
    if not ok then
      local sent = (entry.http_calls or 0) > calls or nil
      if ok == nil then -- the host logs it, with the request id
        return nil, { reason = "Internal", message = result, provider_failed = true, sent = sent }
      end
      log.error("provider restart raised an error", { provider = entry.name, error = result })
      return nil, { reason = "Internal", message = ("provider %s failed"):format(entry.name), provider_failed = true,
        sent = sent }
    end
    if result == nil and type(err) ~= "table" then
      err = { reason = "Internal", message = ("provider %s: %s"):format(entry.name, tostring(err)) }
    end
    return result, err
  end

  --- Readiness of every provider: list of {name, ready, reason}.
  function self.check()
    local out = {}
    for _, e in ipairs(loaded) do
      local ready, reason = true, nil
      if e.module.check then
        local ok, r1, r2 = guarded(limits, e.name, "check", false, e.module.check, e.ctx)
        if ok then
          ready, reason = r1 == true, (r1 ~= true and r2) or nil
        elseif ok == nil then
          ready, reason = false, r1
        else
          ready, reason = false, "check raised an error: " .. r1
        end
      end
      out[#out + 1] = { name = e.name, ready = ready, reason = reason }
    end
    return out
  end

  return self
end

return providers
