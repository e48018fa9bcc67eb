-- exec_credential: what an exec credential plugin prints (an ExecCredential
-- JSON document) and a token file's content, through
-- infraops.k8s.credentials, then into a request of the Kubernetes client.
--
-- Input: one mode byte, then the plugin's stdout (or, mode bit 2, the token
-- file). Mode bit 0: apiVersion v1beta1 instead of v1; bit 1: the plugin
-- exits 1 with the input as stderr; bit 3: provideClusterInfo.
--
-- Checks: get() returns credentials (an Authorization value, a certificate
-- and key as strings) or nil, message, "exec_failed" |
-- "credentials_unavailable"; a GET through the client never raises (the
-- HTTP client checks every header as host.http does).
local common = require("harness.common")
local client = require("infraops.k8s.client")
local credentials = require("infraops.k8s.credentials")
local time = require("host.time")

local CODES = { exec_failed = true, credentials_unavailable = true }
local TOKEN_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/token"

local output, exit_code = "", 0
local log = common.log()

local process = {
  run = function(opts)
    common.check_run(opts)
    if exit_code ~= 0 then
      return { exit_code = exit_code, stdout = "", stderr = output }
    end
    return { exit_code = 0, stdout = output, stderr = "" }
  end,
}

local fs = {
  read_file = function(path)
    common.check_path("read_file", path)
    return output
  end,
  stat = function(path)
    common.check_path("stat", path)
    return { mtime = 1, size = #output, inode = 1, dev = 1 }
  end,
}

local http = common.http(function()
  return { status = 200, headers = {}, body = '{"kind":"APIVersions"}' }
end)

local function connection(mode)
  if mode & 4 ~= 0 then
    return { server = "https://kube.fuzz:6443", token_file = TOKEN_FILE }
  end
  return {
    server = "https://kube.fuzz:6443",
    exec = { api_version = mode & 1 == 1 and "client.authentication.k8s.io/v1beta1"
      or "client.authentication.k8s.io/v1", command = "/usr/local/bin/fuzz-plugin", args = { "token" },
      env = { { name = "FUZZ", value = "1" } }, provide_cluster_info = mode & 8 ~= 0,
      cluster = { server = "https://kube.fuzz:6443", ["certificate-authority-data"] = "Zm9v" } },
  }
end

local function check_credentials(creds, err, code)
  if not common.check_result("credentials:get", creds, err, code, CODES) then
    return false
  end
  for _, key in ipairs({ "authorization", "client_cert_pem", "client_key_pem" }) do
    if creds[key] ~= nil and type(creds[key]) ~= "string" then
      common.fail("credentials.%s is a %s", key, type(creds[key]))
    end
  end
  return true
end

return function(data)
  local mode, rest = common.byte(data)
  output, exit_code = rest, mode & 2 ~= 0 and 1 or 0
  local conn = connection(mode)
  local deps = { fs = fs, process = process, log = log, http = http, now = function() return 1700000000 end,
    monotonic = function() return 0 end, sleep = function() end, parse_iso8601 = time.parse_iso8601,
    random = function() return 0.5 end }
  local source = credentials.new(conn, deps)
  if not check_credentials(source:get()) then
    return
  end
  check_credentials(source:get()) -- cached, or run again when already expired
  deps.credentials = source
  local doc, failure = client.new(conn, deps):get("/api")
  if doc == nil and type(failure) ~= "table" then
    common.fail("client:get returned nil without an error table")
  end
end
