-- Fakes for the host bindings the Kubernetes client uses: host.http (scripted
-- responses, strict about option names like the real one), a clock whose
-- sleep advances it, a capturing logger, in-memory and on-disk host.fs,
-- host.process, a JSON "YAML" decoder and base64 in plain Lua.
local cjson = require("cjson")

local fake = {}

local NEW_OPTIONS = {
  ca_file = true, ca_pem = true, client_cert_file = true, client_key_file = true, client_cert_pem = true,
  client_key_pem = true, insecure_skip_verify = true, connect_timeout = true, timeout = true,
  max_response_bytes = true,
}
local REQUEST_FIELDS = { url = true, method = true, headers = true, body = true, timeout = true,
  connect_timeout = true }

local function copy(t)
  local out = {}
  for k, v in pairs(t) do
    out[k] = type(v) == "table" and copy(v) or v
  end
  return out
end

--- A host.http module answering from a script. Each script entry is a
-- response { status, headers, body }, a transport failure { err = msg,
-- code = "connect" }, or a function(req) returning either. `requests` and
-- `clients` record what was asked (requests are deep copies).
function fake.http(script)
  local http = { script = script or {}, requests = {}, clients = {} }
  function http.new(opts)
    opts = opts or {}
    for k in pairs(opts) do
      assert(NEW_OPTIONS[k], "host.http.new: unknown option '" .. tostring(k) .. "'")
    end
    local c = { opts = copy(opts), closed = false }
    function c.request(self, req)
      assert(not self.closed, "host.http.request: client is closed")
      for k in pairs(req) do
        assert(REQUEST_FIELDS[k], "host.http.request: unknown field '" .. tostring(k) .. "'")
      end
      for name, value in pairs(req.headers or {}) do
        assert(type(value) == "string", "host.http.request: header '" .. name .. "' value must be a string")
      end
      local recorded = copy(req)
      recorded.client = self
      http.requests[#http.requests + 1] = recorded
      local entry = table.remove(http.script, 1)
      assert(entry, "fake http: no scripted response left for " .. tostring(req.method) .. " " .. req.url)
      if type(entry) == "function" then
        entry = entry(req)
      end
      if entry.err or entry.code then
        return nil, entry.err or ("host.http.request: " .. entry.code), entry.code
      end
      return { status = entry.status, headers = entry.headers or {}, body = entry.body or "" }
    end
    function c.close(self)
      self.closed = true
    end
    http.clients[#http.clients + 1] = c
    return c
  end
  return http
end

--- A clock: now() and monotonic() advance only through sleep(), which records
-- each wait in `sleeps`.
function fake.clock(start)
  local clock = { wall = start or 1795512435, mono = 1000, sleeps = {} }
  function clock.now()
    return clock.wall
  end
  function clock.monotonic()
    return clock.mono
  end
  function clock.advance(seconds)
    clock.wall = clock.wall + seconds
    clock.mono = clock.mono + seconds
  end
  function clock.sleep(seconds)
    assert(type(seconds) == "number" and seconds >= 0, "sleep: seconds must be a non-negative number")
    clock.sleeps[#clock.sleeps + 1] = seconds
    clock.advance(seconds)
  end
  return clock
end

--- A host.log that keeps every line; text() joins messages and field values.
function fake.log()
  local log = { lines = {} }
  for _, level in ipairs({ "debug", "info", "warn", "error" }) do
    log[level] = function(msg, fields)
      assert(type(msg) == "string", "host.log." .. level .. ": msg must be a string")
      for k, v in pairs(fields or {}) do
        local t = type(v)
        assert(type(k) == "string" and (t == "string" or t == "number" or t == "boolean"),
          "host.log." .. level .. ": bad field " .. tostring(k))
      end
      log.lines[#log.lines + 1] = { level = level, msg = msg, fields = fields or {} }
    end
  end
  function log.enabled()
    return true
  end
  function log.text()
    local parts = {}
    for _, line in ipairs(log.lines) do
      parts[#parts + 1] = line.msg
      for k, v in pairs(line.fields) do
        parts[#parts + 1] = k .. "=" .. tostring(v)
      end
    end
    return table.concat(parts, "\n")
  end
  function log.count(level)
    local n = 0
    for _, line in ipairs(log.lines) do
      n = n + ((level == nil or line.level == level) and 1 or 0)
    end
    return n
  end
  return log
end

--- An in-memory host.fs. write() changes the file as a rotation would (new
-- inode, later mtime); `reads` counts read_file calls per path.
function fake.memory_fs(files)
  local fs = { files = {}, reads = {}, next_inode = 100 }
  function fs.write(path, data)
    fs.next_inode = fs.next_inode + 1
    local old = fs.files[path]
    fs.files[path] = { data = data, mtime = (old and old.mtime or 1000) + 1, inode = fs.next_inode }
  end
  function fs.remove(path)
    fs.files[path] = nil
  end
  function fs.read_file(path, max_bytes)
    fs.reads[path] = (fs.reads[path] or 0) + 1
    local f = fs.files[path]
    if not f then
      return nil, "host.fs.read_file: " .. path .. ": not found", "not_found"
    end
    if max_bytes and #f.data > max_bytes then
      return nil, "host.fs.read_file: " .. path .. ": too large", "too_large"
    end
    return f.data
  end
  function fs.stat(path)
    local f = fs.files[path]
    if not f then
      return nil, "host.fs.stat: " .. path .. ": not found", "not_found"
    end
    return { size = #f.data, mtime = f.mtime, inode = f.inode, dev = 1 }
  end
  for path, data in pairs(files or {}) do
    fs.write(path, data)
  end
  return fs
end

--- A host.fs over the real disk (for fixtures), read-only.
function fake.disk_fs()
  local fs = {}
  function fs.read_file(path, max_bytes)
    local f = io.open(path, "rb")
    if not f then
      return nil, "host.fs.read_file: " .. path .. ": not found", "not_found"
    end
    local data = f:read("a")
    f:close()
    if max_bytes and #data > max_bytes then
      return nil, "host.fs.read_file: " .. path .. ": too large", "too_large"
    end
    return data
  end
  function fs.stat(path)
    local data = fs.read_file(path)
    if not data then
      return nil, "host.fs.stat: " .. path .. ": not found", "not_found"
    end
    return { size = #data, mtime = 1, inode = 1, dev = 1 }
  end
  return fs
end

--- A host.process answering from a script of results ({ exit_code, stdout,
-- stderr, signal } or { err, code }) or functions(opts); `calls` records opts.
function fake.process(script)
  local process = { script = script or {}, calls = {} }
  function process.run(opts)
    process.calls[#process.calls + 1] = copy(opts)
    local entry = table.remove(process.script, 1)
    assert(entry, "fake process: no scripted result left")
    if type(entry) == "function" then
      entry = entry(opts)
    end
    if entry.code then
      return nil, entry.err or ("host.process.run: " .. entry.code), entry.code
    end
    return { exit_code = entry.exit_code or 0, signal = entry.signal, stdout = entry.stdout or "",
      stderr = entry.stderr or "" }
  end
  return process
end

--- host.yaml stand-in for JSON fixtures (JSON is YAML).
fake.json_yaml = {
  null = cjson.null,
  decode = function(text)
    local ok, value = pcall(cjson.decode, text)
    if not ok then
      return nil, "invalid JSON", "invalid_yaml"
    end
    return value
  end,
}

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

function fake.base64_encode(data)
  return ((data:gsub(".", function(c)
    local bits, b = "", c:byte()
    for i = 8, 1, -1 do
      bits = bits .. (b % 2 ^ i - b % 2 ^ (i - 1) > 0 and "1" or "0")
    end
    return bits
  end) .. "0000"):gsub("%d%d%d?%d?%d?%d?", function(bits)
    if #bits < 6 then
      return ""
    end
    local n = tonumber(bits, 2)
    return B64:sub(n + 1, n + 1)
  end) .. ({ "", "==", "=" })[#data % 3 + 1])
end

function fake.base64_decode(text)
  text = text:gsub("%s", "")
  if #text % 4 ~= 0 or text:find("[^%w%+/=]") or text:find("=[^=]") then
    return nil, "invalid base64", "invalid_base64"
  end
  return (text:gsub("=", ""):gsub(".", function(c)
    local bits, n = "", B64:find(c, 1, true) - 1
    for i = 6, 1, -1 do
      bits = bits .. (n % 2 ^ i - n % 2 ^ (i - 1) > 0 and "1" or "0")
    end
    return bits
  end):gsub("%d%d%d?%d?%d?%d?%d?%d?", function(bits)
    if #bits ~= 8 then
      return ""
    end
    return string.char(tonumber(bits, 2))
  end))
end

return fake
