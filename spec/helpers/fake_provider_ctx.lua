-- A fake provider `ctx` (docs/providers.md, "What ctx gives a provider") for
-- provider unit specs. Pure parts are real (host.crypto, host.time formatting,
-- cjson, infraops.xml, the SigV4 and TC3 signers); effects are scripted and
-- recorded:
--
--   local fake_provider_ctx = require("helpers.fake_provider_ctx")
--   local ctx = fake_provider_ctx.new({
--     responses = {                                  -- ctx.http answers, in order
--       { status = 200, headers = { ["X-Amzn-RequestId"] = "r-1" }, body = "<x/>" },
--       { err = "timed out", code = "timeout" },     -- -> nil, "timed out", "timeout"
--       function(req) return { status = 500, body = "" } end,
--     },
--     env = { AWS_REGION = "us-east-1" },            -- ctx.env(name)
--     files = { ["/var/run/token"] = "eyJ..." },     -- ctx.read_file(path)
--     clock = { now = 1700000000 },                  -- ctx.time.now() and the cache ttl
--   })
--   provider.restart(target, opts, ctx)
--   ctx.requests[1].headers.Authorization  -- every ctx.http request, deep-copied
--   ctx.logs[1].level, ctx.logs[1].message, ctx.logs[1].fields
--   ctx.advance(3600)                      -- moves the fake clock (cache entries expire)
--
-- Responses may also be positional ({ 200, headers, body }); header names are
-- lower-cased as the real ctx.http does; missing headers/body become {} / "".
-- ctx.http raises (a spec bug, not a cloud error) when the queue is empty, when
-- a request has an unknown field, no method/url, a non-string header value or
-- a timeout over 20 s. ctx.read_file of a path not in `files` returns
-- nil, message, "not_found"; more than 64 KiB returns nil, message, "too_large".
-- ctx.cache behaves like host.shared get/set/delete (strings only; get returns
-- value, remaining_ttl with math.huge for no expiry) on the fake clock.
-- ctx.time formatters default `t` to the fake clock, like host.time does with
-- the real one. ctx.json.decode returns nil, message on bad JSON.
local cjson = require("cjson")
local crypto = require("host.crypto")
local host_time = require("host.time")
local xml = require("infraops.xml")
local sigv4 = require("infraops.signers.sigv4")
local tc3 = require("infraops.signers.tc3")

local fake_provider_ctx = {}

local REQUEST_FIELDS = { method = true, url = true, headers = true, body = true, timeout = true }
local MAX_FILE_BYTES = 64 * 1024
local MAX_TIMEOUT = 20

local function deep_copy(value)
  if type(value) ~= "table" then
    return value
  end
  local out = {}
  for k, v in pairs(value) do
    out[k] = deep_copy(v)
  end
  return out
end

local function check_request(req)
  if type(req) ~= "table" then
    error("ctx.http: request must be a table", 3)
  end
  for k in pairs(req) do
    if not REQUEST_FIELDS[k] then
      error("ctx.http: unknown request field '" .. tostring(k) .. "'", 3)
    end
  end
  if type(req.method) ~= "string" or type(req.url) ~= "string" then
    error("ctx.http: 'method' and 'url' must be strings", 3)
  end
  for name, value in pairs(req.headers or {}) do
    if type(name) ~= "string" or type(value) ~= "string" then
      error("ctx.http: header '" .. tostring(name) .. "' must be a string name with a string value", 3)
    end
  end
  if req.body ~= nil and type(req.body) ~= "string" then
    error("ctx.http: 'body' must be a string", 3)
  end
  if req.timeout ~= nil and (type(req.timeout) ~= "number" or req.timeout <= 0 or req.timeout > MAX_TIMEOUT) then
    error("ctx.http: 'timeout' must be a number in (0, 20]", 3)
  end
end

local function normalise_response(entry)
  local status, headers, body
  if entry[1] ~= nil then
    status, headers, body = entry[1], entry[2], entry[3]
  else
    status, headers, body = entry.status, entry.headers, entry.body
  end
  local lower = {}
  for name, value in pairs(headers or {}) do
    lower[string.lower(name)] = value
  end
  return { status = status, headers = lower, body = body or "" }
end

local function new_http(ctx, responses)
  local queue = {}
  for i, entry in ipairs(responses or {}) do
    queue[i] = entry
  end
  return function(req)
    check_request(req)
    ctx.requests[#ctx.requests + 1] = deep_copy(req)
    local entry = table.remove(queue, 1)
    if entry == nil then
      error("ctx.http: no scripted response left for " .. req.method .. " " .. req.url, 2)
    end
    if type(entry) == "function" then
      entry = entry(deep_copy(req))
    end
    if entry.err or entry.code then
      return nil, entry.err or ("ctx.http: " .. entry.code), entry.code
    end
    return normalise_response(entry)
  end
end

local function new_cache(clock)
  local store = {}
  local cache = {}
  function cache.get(key)
    local entry = store[key]
    if entry == nil then
      return nil
    end
    if entry.expires and entry.expires <= clock.now then
      store[key] = nil
      return nil
    end
    return entry.value, entry.expires and (entry.expires - clock.now) or math.huge
  end
  function cache.set(key, value, ttl)
    if type(key) ~= "string" or type(value) ~= "string" then
      error("ctx.cache.set: key and value must be strings", 2)
    end
    if ttl ~= nil and (type(ttl) ~= "number" or ttl <= 0) then
      error("ctx.cache.set: ttl must be a number > 0", 2)
    end
    local expires = (ttl ~= nil and ttl ~= math.huge) and (clock.now + ttl) or nil
    store[key] = { value = value, expires = expires }
    return true
  end
  function cache.delete(key)
    local live = cache.get(key) ~= nil
    store[key] = nil
    return live
  end
  return cache
end

local function new_time(clock)
  local function formatter(name)
    local real = host_time[name]
    return function(t)
      if t == nil then
        t = clock.now
      end
      return real(t)
    end
  end
  return {
    now = function()
      return clock.now
    end,
    amz_date = formatter("amz_date"),
    iso8601 = formatter("iso8601"),
    date = formatter("date"),
    rfc1123 = formatter("rfc1123"),
    parse_iso8601 = host_time.parse_iso8601,
  }
end

local function new_json()
  local engine = cjson.new()
  return {
    encode = engine.encode,
    decode = function(text)
      local ok, value = pcall(engine.decode, text)
      if not ok then
        return nil, tostring(value)
      end
      return value
    end,
    null = engine.null,
  }
end

local function new_log(logs)
  local log = {}
  for _, level in ipairs({ "debug", "info", "warn", "error" }) do
    log[level] = function(message, fields)
      logs[#logs + 1] = { level = level, message = message, fields = deep_copy(fields) }
    end
  end
  return log
end

--- Builds a fake ctx. opts: responses, env, files, clock (all optional).
function fake_provider_ctx.new(opts)
  opts = opts or {}
  local env = opts.env or {}
  local files = opts.files or {}
  local clock = opts.clock or { now = 1700000000 }
  local ctx = { requests = {}, logs = {}, clock = clock }
  ctx.http = new_http(ctx, opts.responses)
  ctx.env = function(name)
    return env[name]
  end
  ctx.read_file = function(path)
    local data = files[path]
    if data == nil then
      return nil, "ctx.read_file: " .. tostring(path) .. ": no such file", "not_found"
    end
    if #data > MAX_FILE_BYTES then
      return nil, "ctx.read_file: " .. tostring(path) .. ": larger than 64 KiB", "too_large"
    end
    return data
  end
  ctx.cache = new_cache(clock)
  ctx.crypto = crypto
  ctx.time = new_time(clock)
  ctx.json = new_json()
  ctx.xml = xml
  ctx.sigv4 = sigv4
  ctx.tc3 = tc3
  ctx.log = new_log(ctx.logs)
  --- Moves the fake clock forward by `seconds` (ctx.time.now and cache ttl).
  ctx.advance = function(seconds)
    clock.now = clock.now + seconds
  end
  return ctx
end

return fake_provider_ctx
