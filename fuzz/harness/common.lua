-- Helpers shared by the fuzz harnesses: splitting an input into fields, fakes
-- for the host modules that do I/O (log, shared store, HTTP, files), and the
-- checks every harness makes on what the product hands back. A broken check
-- calls fuzz.fail, which aborts so that libFuzzer records the input.
local cjson = require("cjson")
local fuzz = require("fuzz")

local common = {}

--- Raises the finding: message formatted like string.format.
function common.fail(fmt, ...)
  fuzz.fail(fmt:format(...))
end

--- Splits data on NUL into at most n fields; the last keeps the rest (NULs too).
-- The host hands paths, header values and query pairs over as C strings, so a
-- NUL can never be inside them: it is a safe field separator.
function common.split(data, n)
  local fields, pos = {}, 1
  for _ = 1, n - 1 do
    local nul = data:find("\0", pos, true)
    if not nul then
      break
    end
    fields[#fields + 1] = data:sub(pos, nul - 1)
    pos = nul + 1
  end
  fields[#fields + 1] = data:sub(pos)
  for i = #fields + 1, n do
    fields[i] = ""
  end
  return fields
end

--- The first byte as a number 0..255 and the rest (a mode selector).
function common.byte(data)
  if data == "" then
    return 0, ""
  end
  return data:byte(1), data:sub(2)
end

--- A host.log stand-in that keeps nothing; `on_error(message, fields)` sees
-- every error line (a harness may treat one as a finding), `on_line(level,
-- message, fields)` every line.
function common.log(on_error, on_line)
  local log = {}
  for _, level in ipairs({ "debug", "info", "warn", "error" }) do
    log[level] = function(message, fields)
      if on_line then
        on_line(level, message, fields or {})
      end
      if level == "error" and on_error then
        on_error(message, fields or {})
      end
    end
  end
  return log
end

--- The real host.shared (its checks on keys, values and ttls are part of
-- what is fuzzed), with reset() emptying it between inputs.
function common.shared()
  local shared = require("host.shared")
  return setmetatable({ reset = shared.flush }, { __index = shared })
end

local function is_string_map(t)
  if type(t) ~= "table" then
    return false
  end
  for k, v in pairs(t) do
    if type(k) ~= "string" or type(v) ~= "string" then
      return false
    end
  end
  return true
end
common.is_string_map = is_string_map

--- True if t is a list of strings (1..n, nothing else).
function common.is_string_list(t)
  if type(t) ~= "table" then
    return false
  end
  local n = 0
  for _ in pairs(t) do
    n = n + 1
  end
  for i = 1, n do
    if type(t[i]) ~= "string" then
      return false
    end
  end
  return true
end

--- What host/script_runtime.c read_response accepts, and a JSON body that decodes.
function common.check_response(res, where)
  if type(res) ~= "table" then
    common.fail("%s: response is a %s, not a table", where, type(res))
  end
  if math.type(res.status) ~= "integer" or res.status < 100 or res.status > 599 then
    common.fail("%s: status %s is not an integer in 100..599", where, tostring(res.status))
  end
  if res.headers ~= nil and not is_string_map(res.headers) then
    common.fail("%s: headers are not string -> string", where)
  end
  for name, value in pairs(res.headers or {}) do
    if name:find("[\r\n:]") or value:find("[\r\n]") then
      common.fail("%s: header %q: %q would be refused by the host (CR/LF)", where, name, value)
    end
  end
  if res.body ~= nil and type(res.body) ~= "string" then
    common.fail("%s: body is a %s", where, type(res.body))
  end
  local content_type = (res.headers or {})["Content-Type"] or ""
  if content_type:find("json", 1, true) then
    local ok, doc = pcall(cjson.decode, res.body or "")
    if not ok or type(doc) ~= "table" then
      common.fail("%s: %s body is not a JSON object: %s", where, content_type, tostring(res.body))
    end
    return doc
  end
  return nil
end

--- Checks the `value | nil, message[, code]` convention; codes: allowed codes (set).
function common.check_result(where, value, message, code, codes)
  if value ~= nil then
    return value
  end
  if type(message) ~= "string" then
    common.fail("%s: returned nil with a %s message", where, type(message))
  end
  if codes and not codes[code] then
    common.fail("%s: returned nil with code %s", where, tostring(code))
  end
  return nil
end

-- host.http's own request checks (host/bindings/http.c add_user_header):
-- it raises on them, so a product module must never send such a request.
-- The option names client:request accepts, read from host/bindings/http.c
-- itself so that the fake follows the binding.
local function request_keys()
  local keys = {}
  local source = require("host.fs").read_file(fuzz.repo .. "/host/bindings/http.c", 1024 * 1024) or ""
  local list = source:match("request_keys%[%]%s*=%s*(%b{})")
  for key in (list or ""):gmatch('"([%w_]+)"') do
    keys[key] = true
  end
  if next(keys) == nil then
    error("fuzz/harness/common.lua: no request_keys list in host/bindings/http.c")
  end
  return keys
end
local REQUEST_KEYS = request_keys()
local METHODS = { GET = true, HEAD = true, POST = true, PUT = true, PATCH = true, DELETE = true, OPTIONS = true }

local function check_request(req)
  if type(req) ~= "table" then
    error("host.http.request: argument must be a table")
  end
  for key in pairs(req) do
    if not REQUEST_KEYS[key] then
      error(("host.http.request: unknown option '%s'"):format(tostring(key)))
    end
  end
  if type(req.url) ~= "string" or req.url:find("\0", 1, true) or not req.url:lower():find("^https?://") then
    error("host.http.request: 'url' must be an http:// or https:// URL")
  end
  if req.method ~= nil and not METHODS[req.method] then
    error("host.http.request: 'method' must be one of GET HEAD POST PUT PATCH DELETE OPTIONS")
  end
  if req.method == "HEAD" and req.body ~= nil then
    error("host.http.request: a HEAD request has no 'body'")
  end
  for _, key in ipairs({ "timeout", "connect_timeout" }) do
    local t = req[key]
    if t ~= nil and (type(t) ~= "number" or not (t > 0 and t <= 1e6)) then
      error(("host.http.request: '%s' must be > 0 and <= 1e6 seconds"):format(key))
    end
  end
  for name, value in pairs(req.headers or {}) do
    if type(name) ~= "string" or not name:find("^[!#$%%&'*+%-.^_`|~%w]+$") then
      error("host.http.request: header names must be non-empty HTTP tokens")
    end
    if type(value) ~= "string" then
      error(("host.http.request: header '%s' value must be a string"):format(name))
    end
    if value:find("[\r\n%z]") then
      error(("host.http.request: header '%s' value contains CR, LF or NUL"):format(name))
    end
  end
  if req.body ~= nil and type(req.body) ~= "string" then
    error("host.http.request: 'body' must be a string")
  end
end

--- A host.http-like module whose client checks each request as the real one
-- does (raising on misuse) and answers from `answer(req)`: a response table,
-- or nil, message, code.
function common.http(answer)
  local http = {}
  function http.new(opts)
    -- The real constructor checks the options (PEM text, file/PEM pairs) and
    -- raises as in the server; it opens no connection.
    require("host.http").new(opts):close()
    local client = {}
    function client.request(_, req)
      check_request(req)
      return answer(req)
    end
    function client.close() end
    return client
  end
  return http
end

--- host.fs's and host.process's own argument checks: they raise on these.
function common.check_path(fname, path)
  if type(path) ~= "string" then
    error(("host.fs.%s: path must be a string (got %s)"):format(fname, type(path)))
  elseif path:find("\0", 1, true) then
    error(("host.fs.%s: path contains a NUL byte"):format(fname))
  end
end

function common.check_run(opts)
  if type(opts.argv) ~= "table" or #opts.argv == 0 then
    error("host.process.run: 'argv' must be a non-empty list of strings")
  end
  for _, v in ipairs(opts.argv) do
    if type(v) ~= "string" or v:find("\0", 1, true) then
      error("host.process.run: 'argv' elements must be strings without NUL")
    end
  end
  for k, v in pairs(opts.env or {}) do
    if type(k) ~= "string" or type(v) ~= "string" or k:find("[=%z]") or k == "" or v:find("\0", 1, true) then
      error("host.process.run: 'env' must map names to strings without NUL")
    end
  end
end

--- Reads a file of the repository (provider scripts) with host.fs.
function common.read_repo_file(path)
  local fs = require("host.fs")
  return assert(fs.read_file(fuzz.root .. "/" .. path, 1024 * 1024))
end

--- The provider registry as the server builds it (infraops.providers.load over
-- providers/), with the effects replaced: `deps` may give http (a host.http
-- like module), getenv, files (path -> text for ctx.read_file), shared, log.
function common.registry(deps)
  local providers = require("infraops.providers")
  local fs = require("host.fs")
  local files = deps.files or {}
  local fake_fs = {
    list_dir = function(dir)
      return fs.list_dir(dir)
    end,
    read_file = function(path, max)
      if path:sub(1, #fuzz.root + 1) == fuzz.root .. "/" then
        return fs.read_file(path, max)
      end
      local text = files[path]
      if not text then
        return nil, path .. ": not found", "not_found"
      end
      if #text > max then
        return nil, path .. ": too large", "too_large"
      end
      return text
    end,
  }
  local time = require("host.time")
  -- The server runs provider calls under host.limits (when the build has it);
  -- a tripped limit poisons the state, which the fuzz entry reports.
  local has_limits, host_limits = pcall(require, "host.limits")
  local limits = has_limits and { run = host_limits.run, instructions = 50000000, memory = 32 * 1024 * 1024,
    memory_text = "32Mi" } or nil
  local registry = assert(providers.load({ fuzz.root .. "/providers" }, {
    limits = limits,
    fs = fake_fs, log = deps.log or common.log(), http = deps.http or common.http(function()
      return nil, "no network in the fuzzer", "connect"
    end),
    shared = deps.shared or common.shared(), crypto = require("host.crypto"), cjson = cjson,
    xml = require("infraops.xml"), sigv4 = require("infraops.signers.sigv4"), tc3 = require("infraops.signers.tc3"),
    getenv = deps.getenv or function() return nil end,
    time = { now = deps.now or function() return 1700000000 end, amz_date = time.amz_date, iso8601 = time.iso8601,
      date = time.date, parse_iso8601 = time.parse_iso8601 },
  }))
  if #registry.failed > 0 then
    error("a provider script did not load: " .. tostring(registry.failed[1].error))
  end
  return registry
end

return common
