-- kubeconfig: a kubeconfig file, as bytes, through host.yaml (libyaml,
-- host/bindings/yaml.c) and infraops.k8s.kubeconfig.resolve, then the
-- credentials and the client built from the connection, and one request.
--
-- Input: the file. Files it names exist when their path starts with "/etc/fuzz/"
-- or is relative: a small PEM when the name ends in .crt, .key or .pem, else
-- a token. The exec plugin answers with a fixed ExecCredential.
--
-- Checks: resolve returns a connection (server an http(s) URL) or nil,
-- message, "invalid_config" | "not_found"; credentials.new, client.new and a
-- GET through the client (the HTTP client checks every header as host.http
-- does) never raise.
local common = require("harness.common")
local client = require("infraops.k8s.client")
local credentials = require("infraops.k8s.credentials")
local crypto = require("host.crypto")
local kubeconfig = require("infraops.k8s.kubeconfig")
local time = require("host.time")

local PATH = "/etc/fuzz/kubeconfig"
local PEM = "-----BEGIN CERTIFICATE-----\nMIIBfuzz\n-----END CERTIFICATE-----\n"
local EXEC_OUTPUT = '{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential",'
  .. '"status":{"token":"exec-token"}}'
local CODES = { invalid_config = true, not_found = true }

local text = ""
local log = common.log()

local function known(path)
  return path:sub(1, 10) == "/etc/fuzz/" or path:sub(1, 1) ~= "/"
end

local fs = {
  read_file = function(path)
    common.check_path("read_file", path)
    if path == PATH then
      return text
    elseif known(path) then
      return path:find("%.[ck][re][ty]$") and PEM or path:find("%.pem$") and PEM or "fuzz-token\n"
    end
    return nil, path .. ": not found", "not_found"
  end,
  stat = function(path)
    common.check_path("stat", path)
    if path == PATH or known(path) then
      return { mtime = 1, size = 10, inode = 1, dev = 1 }
    end
    return nil, path .. ": not found", "not_found"
  end,
}

local process = {
  run = function(opts)
    common.check_run(opts)
    return { exit_code = 0, stdout = EXEC_OUTPUT, stderr = "" }
  end,
}

local http = common.http(function()
  return { status = 200, headers = {}, body = '{"kind":"APIVersions"}' }
end)

local DEPS = {
  fs = fs, yaml = require("host.yaml"), getenv = function() return nil end, log = log,
  base64_decode = crypto.base64_decode, base64_encode = crypto.base64_encode,
}

return function(data)
  text = data
  local conn, err, code = kubeconfig.resolve({ kubeconfig = PATH }, DEPS)
  if not common.check_result("kubeconfig.resolve", conn, err, code, CODES) then
    return
  end
  if type(conn.server) ~= "string" or not conn.server:find("^https?://") then
    common.fail("resolve returned a connection whose server is %s", tostring(conn.server))
  end
  local deps = { fs = fs, process = process, log = log, http = http, now = function() return 1700000000 end,
    monotonic = function() return 0 end, sleep = function() end, parse_iso8601 = time.parse_iso8601,
    base64_encode = crypto.base64_encode, random = function() return 0.5 end }
  deps.credentials = credentials.new(conn, deps)
  local k8s = client.new(conn, deps)
  local doc, failure = k8s:get("/api")
  if doc == nil and type(failure) ~= "table" then
    common.fail("client:get returned nil without an error table")
  end
end
