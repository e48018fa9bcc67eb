-- A JSON client for the Kubernetes API over host.http: one connection per
-- client object, credentials per request (infraops.k8s.credentials), bounded
-- retries with backoff, and API errors mapped to stable codes.
--
-- Errors are the one exception to the string-error rule: request() returns
-- nil, err where err is a table { code, status, reason, message, retry_after,
-- details }, because callers need the fields of the Kubernetes Status (see
-- docs/kubernetes-client.md).
local cjson = require("cjson")
local credentials = require("infraops.k8s.credentials")

local client = {}
local methods = {}
local metatable = { __index = methods }

client.MAX_ATTEMPTS = 4
client.DEFAULT_TIMEOUT = 10
client.DEFAULT_DEADLINE = 30
client.MAX_RETRY_AFTER = 10
client.BACKOFF = { 0.2, 0.4, 0.8 }
client.JITTER = 0.2

local IDEMPOTENT = { GET = true, HEAD = true, PUT = true, DELETE = true, OPTIONS = true }
local METHODS = { GET = true, HEAD = true, POST = true, PUT = true, PATCH = true, DELETE = true, OPTIONS = true }
local RETRY_STATUS = { [429] = true, [500] = true, [502] = true, [503] = true, [504] = true }
local STATUS_CODES = {
  [400] = "bad_request",
  [401] = "unauthorized",
  [403] = "forbidden",
  [404] = "not_found",
  [410] = "gone",
  [422] = "invalid",
  [429] = "too_many_requests",
  [504] = "timeout",
}
-- host.http transport codes -> ours.
local TRANSPORT_CODES = { timeout = "timeout", connect = "unavailable", io = "unavailable", tls = "tls",
  too_large = "internal" }

--- Builds a client for a connection from infraops.k8s.kubeconfig.resolve.
-- @tparam table connection
-- @tparam[opt] table deps { http, sleep, now, monotonic, log, random, fs, process,
--   credentials (a prebuilt credentials object), version, parse_iso8601, base64_encode,
--   timeout (seconds per request, default DEFAULT_TIMEOUT; retries stop after 3 times it) }
function client.new(connection, deps)
  if type(connection) ~= "table" or type(connection.server) ~= "string" then
    error("infraops.k8s.client.new: connection must be a table with a server", 2)
  end
  deps = deps or {}
  local time = (not deps.sleep or not deps.monotonic) and require("host.time") or nil
  local self = {
    conn = connection,
    base_url = connection.server:gsub("/+$", ""),
    http = deps.http or require("host.http"),
    sleep = deps.sleep or time.sleep,
    monotonic = deps.monotonic or time.monotonic,
    log = deps.log or require("host.log"),
    random = deps.random or math.random,
    user_agent = "myapiserver/" .. (deps.version or "unknown"),
    credentials = deps.credentials or credentials.new(connection, deps),
    timeout = deps.timeout or client.DEFAULT_TIMEOUT,
    deadline = deps.timeout and 3 * deps.timeout or client.DEFAULT_DEADLINE,
    http_client = nil,
    http_cert = nil, -- the exec plugin certificate the http client was built with
  }
  return setmetatable(self, metatable)
end

local function escape(s)
  return (s:gsub("[^%w%-%._~]", function(c)
    return string.format("%%%02X", c:byte())
  end))
end
client.escape = escape

--- Encodes a query table (name -> string or list of strings) with sorted names.
function client.encode_query(query)
  local names = {}
  for name in pairs(query) do
    names[#names + 1] = name
  end
  table.sort(names)
  local parts = {}
  for _, name in ipairs(names) do
    local value = query[name]
    local values = type(value) == "table" and value or { value }
    for _, v in ipairs(values) do
      if type(v) ~= "string" and type(v) ~= "number" and type(v) ~= "boolean" then
        error("infraops.k8s.client: query value for '" .. tostring(name) .. "' must be a string or a list", 3)
      end
      parts[#parts + 1] = escape(tostring(name)) .. "=" .. escape(tostring(v))
    end
  end
  return table.concat(parts, "&")
end

-- The host.http client, (re)built when an exec plugin hands over a new
-- client certificate.
function methods:_http_client(creds)
  local cert = creds.client_cert_pem and (creds.client_cert_pem .. "\0" .. creds.client_key_pem) or nil
  if self.http_client and cert == self.http_cert then
    return self.http_client
  end
  if self.http_client then
    self.http_client:close()
    self.http_client, self.http_cert = nil, nil -- http.new below may raise
  end
  local conn, opts = self.conn, {}
  opts.ca_file, opts.ca_pem = conn.ca_file, conn.ca_pem
  opts.insecure_skip_verify = conn.insecure or nil
  if creds.client_cert_pem then
    opts.client_cert_pem, opts.client_key_pem = creds.client_cert_pem, creds.client_key_pem
  else
    opts.client_cert_file, opts.client_key_file = conn.client_cert_file, conn.client_key_file
    opts.client_cert_pem, opts.client_key_pem = conn.client_cert_pem, conn.client_key_pem
  end
  self.http_client = self.http.new(opts)
  self.http_cert = cert
  return self.http_client
end

local function header_set(headers, name, value)
  local lower = name:lower()
  for k in pairs(headers) do
    if k:lower() == lower then
      headers[k] = nil
    end
  end
  headers[name] = value
end

local function status_error(res)
  local err = { status = res.status, message = "the server responded with status " .. res.status }
  local ok, doc = pcall(cjson.decode, res.body or "")
  if ok and type(doc) == "table" and doc.kind == "Status" then
    err.reason = type(doc.reason) == "string" and doc.reason ~= "" and doc.reason or nil
    err.message = type(doc.message) == "string" and doc.message ~= "" and doc.message or err.message
    err.details = type(doc.details) == "table" and doc.details or nil
  end
  if res.status == 409 then
    err.code = err.reason == "AlreadyExists" and "already_exists" or "conflict"
  elseif res.status >= 500 and res.status ~= 504 then
    err.code = "unavailable"
  else
    err.code = STATUS_CODES[res.status] or "internal"
  end
  local retry_after = tonumber((res.headers or {})["retry-after"] or "")
  if retry_after and retry_after >= 0 then
    err.retry_after = retry_after
  end
  return err
end

local function decode_success(res)
  local body = res.body or ""
  if not body:find("%S") then
    return true
  end
  local ok, doc = pcall(cjson.decode, body)
  if not ok or type(doc) ~= "table" then
    return nil, { code = "invalid_response", status = res.status, message = "the response body is not a JSON object" }
  end
  return doc
end

function methods:_backoff(attempt, err)
  if err.retry_after then
    return math.min(err.retry_after, client.MAX_RETRY_AFTER)
  end
  local base = client.BACKOFF[math.min(attempt, #client.BACKOFF)]
  return base * (1 + (self.random() * 2 - 1) * client.JITTER)
end

-- One HTTP exchange. Returns result, nil on success; nil, err, retryable.
function methods:_attempt(req, log_path, attempt, retry, idempotent)
  local creds, cerr, ccode = self.credentials:get()
  if not creds then
    return nil, { code = ccode or "credentials_unavailable", message = cerr }, false
  end
  -- host.http.new raises on TLS material it cannot use (an exec plugin's
  -- certificate that is not PEM): a failed request, not a crash.
  local ok, http_client = pcall(self._http_client, self, creds)
  if not ok then
    return nil, { code = "credentials_unavailable", message = tostring(http_client) }, false
  end
  req.headers.Authorization = creds.authorization
  local started = self.monotonic()
  local res, msg, tcode = http_client:request(req)
  req.headers.Authorization = nil
  self.log.debug("kubernetes api request", {
    method = req.method,
    path = log_path,
    status = res and res.status or nil,
    error = tcode,
    attempt = attempt,
    duration_ms = math.floor((self.monotonic() - started) * 1000 + 0.5),
  })
  if not res then
    local err = { code = TRANSPORT_CODES[tcode] or "internal", message = msg or tcode or "request failed" }
    local transient = tcode == "connect" or (idempotent and (tcode == "timeout" or tcode == "io"))
    return nil, err, retry and transient
  end
  if res.status >= 200 and res.status < 300 then
    local doc, err = decode_success(res)
    return doc, err, false, res
  end
  local err = status_error(res)
  if res.status == 401 then
    self.credentials:invalidate()
  end
  return nil, err, retry and RETRY_STATUS[res.status] or false
end

--- Sends a request and decodes the JSON answer.
-- @tparam string method GET, POST, PUT, PATCH, DELETE, ...
-- @tparam string path absolute API path, already escaped ("/api/v1/namespaces/x/pods")
-- @tparam[opt] table opts { body, query, headers, timeout, deadline, retry }
-- @return decoded body (or true when empty), response; or nil, err table
function methods:request(method, path, opts)
  if type(method) ~= "string" or not METHODS[method] then
    error("infraops.k8s.client.request: method must be one of GET HEAD POST PUT PATCH DELETE OPTIONS", 2)
  end
  if type(path) ~= "string" or path:sub(1, 1) ~= "/" then
    error("infraops.k8s.client.request: path must be a string starting with /", 2)
  end
  opts = opts or {}
  local headers = { Accept = "application/json", ["User-Agent"] = self.user_agent }
  local body = opts.body
  if type(body) == "table" then
    body = cjson.encode(body)
  elseif body ~= nil and type(body) ~= "string" then
    error("infraops.k8s.client.request: body must be a table or a string", 2)
  end
  if body then
    headers["Content-Type"] = "application/json"
  end
  for name, value in pairs(opts.headers or {}) do
    if name:lower() ~= "authorization" then
      header_set(headers, name, value)
    end
  end
  local url = self.base_url .. path
  if opts.query and next(opts.query) then
    url = url .. (path:find("?", 1, true) and "&" or "?") .. client.encode_query(opts.query)
  end
  local req = {
    method = method,
    url = url,
    headers = headers,
    body = body,
    timeout = opts.timeout or self.timeout,
  }
  local log_path = path:match("^[^?]*")
  local idempotent = IDEMPOTENT[method] or false
  local retry
  if opts.retry == nil then
    retry = idempotent
  else
    retry = opts.retry == true
  end
  local deadline = opts.deadline or (self.monotonic() + self.deadline)
  local retried_401 = false
  local attempt, last_err = 0, nil
  local timeout = req.timeout
  while attempt < client.MAX_ATTEMPTS do
    -- No attempt runs past the call's deadline: its timeout is cut to what is left.
    local left = deadline - self.monotonic()
    if left <= 0 then
      last_err = last_err or { code = "timeout", message = "the deadline passed before the request was sent" }
      break
    end
    req.timeout = math.min(timeout, left)
    attempt = attempt + 1
    local doc, err, retryable, res = self:_attempt(req, log_path, attempt, retry, idempotent)
    if doc ~= nil then
      return doc, res
    end
    last_err = err
    if err.status == 401 and not retried_401 and self.monotonic() < deadline then
      retried_401 = true -- the token may have just expired: once, at once
    elseif not retryable or attempt >= client.MAX_ATTEMPTS then
      break
    else
      local wait = self:_backoff(attempt, err)
      if self.monotonic() + wait > deadline then
        break
      end
      self.sleep(wait)
    end
  end
  return nil, last_err
end

function methods:get(path, opts)
  return self:request("GET", path, opts)
end

local function with_body(opts, body)
  local copy = {}
  for k, v in pairs(opts or {}) do
    copy[k] = v
  end
  copy.body = body
  return copy
end

function methods:post(path, body, opts)
  return self:request("POST", path, with_body(opts, body))
end

function methods:put(path, body, opts)
  return self:request("PUT", path, with_body(opts, body))
end

function methods:delete(path, opts)
  return self:request("DELETE", path, opts)
end

--- Closes the HTTP connection; the client can still be used (it reconnects).
function methods:close()
  if self.http_client then
    self.http_client:close()
    self.http_client = nil
    self.http_cert = nil
  end
end

return client
