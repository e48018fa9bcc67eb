-- Per-request credentials for the Kubernetes API: the Authorization header
-- (bearer token, token file, basic auth or an exec plugin's token) and the
-- client certificate an exec plugin may return. Token files are re-read when
-- they change (bound service account tokens rotate), exec plugin results are
-- cached until their expirationTimestamp, and invalidate() (after a 401)
-- forces both to be fetched again. No token ever goes into a message or a log.
local cjson = require("cjson")

local credentials = {}
local methods = {}
local metatable = { __index = methods }

credentials.TOKEN_FILE_MAX_AGE = 60 -- seconds; re-read at least this often
credentials.EXEC_TIMEOUT = 30
credentials.EXEC_MAX_OUTPUT = 1024 * 1024
local MAX_TOKEN_BYTES = 1024 * 1024
local STDERR_EXCERPT = 200
local EXEC_KIND = "ExecCredential"

local function trim(s)
  return (s:gsub("^%s+", ""):gsub("%s+$", ""))
end

--- Builds the credential source for a connection (see infraops.k8s.kubeconfig).
-- @tparam table connection
-- @tparam[opt] table deps { fs, process, now, monotonic, parse_iso8601, base64_encode, log }
function credentials.new(connection, deps)
  if type(connection) ~= "table" then
    error("infraops.k8s.credentials.new: connection must be a table", 2)
  end
  deps = deps or {}
  local self = {
    conn = connection,
    fs = connection.token_file and (deps.fs or require("host.fs")),
    process = connection.exec and (deps.process or require("host.process")),
    now = deps.now or require("host.time").now,
    monotonic = deps.monotonic or require("host.time").monotonic,
    parse_iso8601 = deps.parse_iso8601 or require("host.time").parse_iso8601,
    log = deps.log or require("host.log"),
    file = {}, -- token file cache: { token, stat, read_at }
    exec_result = nil, -- { authorization, client_cert_pem, client_key_pem, expires_at }
  }
  if connection.basic then
    local encode = deps.base64_encode or require("host.crypto").base64_encode
    self.basic_header = "Basic " .. encode(connection.basic.username .. ":" .. connection.basic.password)
  end
  return setmetatable(self, metatable)
end

local function same_file(a, b)
  return a and b and a.mtime == b.mtime and a.size == b.size and a.inode == b.inode and a.dev == b.dev
end

-- Returns the token from the file, re-reading it when it changed or is older
-- than TOKEN_FILE_MAX_AGE. A failed re-read keeps the previous token (the
-- file may be in the middle of a symlink swap), as client-go does.
local function file_token(self)
  local path, cache = self.conn.token_file, self.file
  local now = self.monotonic()
  local stat = self.fs.stat(path)
  if cache.token and stat and same_file(stat, cache.stat) and now - cache.read_at < credentials.TOKEN_FILE_MAX_AGE then
    return cache.token
  end
  local data, err = self.fs.read_file(path, MAX_TOKEN_BYTES)
  local token = data and trim(data)
  if not token or token == "" or token:find("%c") then
    -- A control character (a second line) cannot go into an Authorization header.
    local why = not token and (err or "cannot read") or token == "" and "it is empty"
      or "it holds a control character (more than one line?)"
    if cache.token then
      self.log.warn("token file cannot be re-read; keeping the previous token", { path = path, error = why })
      return cache.token
    end
    return nil, string.format("token file %s: %s", path, why), "credentials_unavailable"
  end
  self.file = { token = token, stat = stat, read_at = now }
  return token
end

local function first_line(s)
  local line = (s or ""):match("^%s*([^\r\n]*)") or ""
  if #line > STDERR_EXCERPT then
    line = line:sub(1, STDERR_EXCERPT) .. "..."
  end
  return line
end

local function exec_failed(exec, what)
  return nil, string.format("exec plugin %s failed: %s", exec.command, what), "exec_failed"
end

local function exec_input(exec)
  local env = {}
  for _, item in ipairs(exec.env or {}) do
    env[item.name] = item.value
  end
  local spec = { interactive = false }
  if exec.provide_cluster_info then
    spec.cluster = exec.cluster
  end
  local ok, info = pcall(cjson.encode, { apiVersion = exec.api_version, kind = EXEC_KIND, spec = spec })
  if not ok then
    return nil, "cannot encode KUBERNETES_EXEC_INFO"
  end
  env.KUBERNETES_EXEC_INFO = info -- set last: it wins over a configured variable, as in client-go
  local argv = { exec.command }
  for _, arg in ipairs(exec.args or {}) do
    argv[#argv + 1] = arg
  end
  return argv, env
end

-- Checks the ExecCredential; messages name fields, never their values.
local function parse_exec_output(self, exec, stdout)
  local ok, doc = pcall(cjson.decode, stdout)
  if not ok or type(doc) ~= "table" then
    return exec_failed(exec, "output is not a JSON object")
  end
  if doc.apiVersion ~= exec.api_version or doc.kind ~= EXEC_KIND then
    return exec_failed(exec, "output is not an ExecCredential of apiVersion " .. exec.api_version)
  end
  local status = doc.status
  if type(status) ~= "table" then
    return exec_failed(exec, "output has no status")
  end
  local function text(key)
    local v = status[key]
    return type(v) == "string" and v ~= "" and v or nil
  end
  local token, cert, key = text("token"), text("clientCertificateData"), text("clientKeyData")
  if (cert == nil) ~= (key == nil) then
    return exec_failed(exec, "status has only one of clientCertificateData and clientKeyData")
  end
  if not token and not cert then
    return exec_failed(exec, "status has neither a token nor a client certificate")
  end
  -- host.http raises on a header value with a line break: refuse such a token here.
  if token and token:find("%c") then
    return exec_failed(exec, "status.token holds a control character")
  end
  local result = { authorization = token and "Bearer " .. token, client_cert_pem = cert, client_key_pem = key }
  local expiry = status.expirationTimestamp
  if type(expiry) == "string" then
    local expires_at = self.parse_iso8601(expiry)
    if not expires_at then
      return exec_failed(exec, "status.expirationTimestamp is not an RFC 3339 time")
    end
    result.expires_at = expires_at
  elseif expiry ~= nil and expiry ~= cjson.null then
    return exec_failed(exec, "status.expirationTimestamp is not a string")
  end
  return result
end

local function run_exec(self)
  local exec = self.conn.exec
  local argv, env = exec_input(exec)
  if not argv then
    return exec_failed(exec, env)
  end
  local started = self.monotonic()
  local res, err, code = self.process.run({
    argv = argv,
    env = env,
    inherit_env = true,
    timeout = credentials.EXEC_TIMEOUT,
    max_output = credentials.EXEC_MAX_OUTPUT,
  })
  self.log.debug("exec plugin ran", {
    command = exec.command,
    exit_code = res and res.exit_code or nil,
    error = code,
    duration_ms = math.floor((self.monotonic() - started) * 1000 + 0.5),
  })
  if not res then
    if code == "not_found" then
      return exec_failed(exec, "command not found" .. (exec.install_hint and (": " .. exec.install_hint) or ""))
    elseif code == "timeout" then
      return exec_failed(exec, string.format("no result within %d s", credentials.EXEC_TIMEOUT))
    elseif code == "too_large" then
      return exec_failed(exec, "output over the size limit")
    end
    return exec_failed(exec, err or code or "cannot run")
  end
  if res.signal then
    return exec_failed(exec, "killed by signal " .. tostring(res.signal))
  end
  if res.exit_code ~= 0 then
    return exec_failed(exec, string.format("exit %s: %s", tostring(res.exit_code), first_line(res.stderr)))
  end
  return parse_exec_output(self, exec, res.stdout or "")
end

local function exec_credentials(self)
  local cached = self.exec_result
  if cached and (not cached.expires_at or self.now() < cached.expires_at) then
    return cached
  end
  self.exec_result = nil
  local result, err, code = run_exec(self)
  if not result then
    return nil, err, code
  end
  self.exec_result = result
  return result
end

--- The credentials for the next request.
-- @return { authorization = header value or nil, client_cert_pem = PEM or nil,
--   client_key_pem = PEM or nil }, or nil, message, code
--   ("credentials_unavailable" | "exec_failed")
function methods:get()
  local conn = self.conn
  if conn.token_file then -- wins over a static token, as in client-go
    local token, err, code = file_token(self)
    if not token then
      return nil, err, code
    end
    return { authorization = "Bearer " .. token }
  elseif conn.token then
    return { authorization = "Bearer " .. conn.token }
  elseif self.basic_header then
    return { authorization = self.basic_header }
  elseif conn.exec then
    local result, err, code = exec_credentials(self)
    if not result then
      return nil, err, code
    end
    return { authorization = result.authorization, client_cert_pem = result.client_cert_pem,
      client_key_pem = result.client_key_pem }
  end
  return {}
end

--- Forgets cached credentials (call it after a 401): the next get() re-reads
-- the token file and re-runs the exec plugin.
function methods:invalidate()
  self.exec_result = nil
  self.file.read_at = -math.huge
end

return credentials
