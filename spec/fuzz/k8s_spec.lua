-- Regressions found by fuzzing (fuzz/regressions/kubeconfig, exec_credential):
-- a kubeconfig, token file or exec plugin output that the host bindings would
-- raise on (a header value with a line break, TLS material that is not PEM, a
-- path, argument or environment name host.fs/host.process refuse) must give
-- an error value, never a raise.
local cjson = require("cjson")
local fake = require("helpers.fake_http")
local client = require("infraops.k8s.client")
local credentials = require("infraops.k8s.credentials")
local kubeconfig = require("infraops.k8s.kubeconfig")

local V1 = "client.authentication.k8s.io/v1"

local function resolve(doc)
  local fs = fake.memory_fs({ ["/k/config"] = cjson.encode(doc), ["/k/ca.crt"] = "PEM" })
  return table.pack(kubeconfig.resolve({ kubeconfig = "/k/config" }, {
    fs = fs, yaml = fake.json_yaml, getenv = function() return nil end, log = fake.log(),
    base64_decode = fake.base64_decode, base64_encode = fake.base64_encode,
  }))
end

local function config(cluster, user)
  cluster.server = cluster.server or "https://k.test"
  return {
    ["current-context"] = "c",
    contexts = { { name = "c", context = { cluster = "k", user = "u" } } },
    clusters = { { name = "k", cluster = cluster } },
    users = { { name = "u", user = user } },
  }
end

local function exec_user(extra)
  local exec = { apiVersion = V1, command = "plugin", interactiveMode = "Never" }
  for k, v in pairs(extra) do
    exec[k] = v
  end
  return { exec = exec }
end

local function assert_invalid(r, pattern)
  assert.is_nil(r[1])
  assert.are.equal("invalid_config", r[3])
  assert.matches(pattern, r[2])
end

describe("fuzz regressions: kubeconfig", function()
  it("refuses certificate-authority-data that is not PEM", function()
    assert_invalid(resolve(config({ ["certificate-authority-data"] = fake.base64_encode("-]-\n") }, { token = "t" })),
      "does not hold PEM data")
  end)

  it("refuses a token with a line break", function()
    assert_invalid(resolve(config({ ["insecure-skip-tls-verify"] = true }, { token = "a\nb" })), "control character")
  end)

  it("refuses a path with a NUL byte", function()
    assert_invalid(resolve(config({ ["certificate-authority"] = "ca\0.crt" }, { token = "t" })), "NUL")
  end)

  it("refuses an exec env name with '='", function()
    assert_invalid(resolve(config({ ["insecure-skip-tls-verify"] = true },
      exec_user({ env = { { name = "A=B", value = "x" } } }))), "without '='")
  end)

  it("refuses an exec argument with a NUL byte", function()
    assert_invalid(resolve(config({ ["insecure-skip-tls-verify"] = true }, exec_user({ args = { "a\0b" } }))),
      "without NUL")
  end)
end)

local function source(conn, stdout, file)
  return credentials.new(conn, {
    fs = fake.memory_fs(file and { ["/t/token"] = file } or {}),
    process = fake.process({ { stdout = stdout or "" } }),
    now = function() return 0 end, monotonic = function() return 0 end,
    parse_iso8601 = function() return nil end, log = fake.log(),
  })
end

local function exec_conn()
  return { server = "https://k.test", exec = { api_version = V1, command = "plugin", args = {}, env = {} } }
end

local function exec_output(status)
  return cjson.encode({ apiVersion = V1, kind = "ExecCredential", status = status })
end

describe("fuzz regressions: credentials", function()
  it("refuses a token file of two lines", function()
    local creds, err, code = source({ server = "https://k.test", token_file = "/t/token" }, nil,
      "first\nsecond\n"):get()
    assert.is_nil(creds)
    assert.are.equal("credentials_unavailable", code)
    assert.matches("control character", err)
  end)

  it("refuses an exec token with a line break", function()
    local creds, err, code = source(exec_conn(), exec_output({ token = "a\nb" })):get()
    assert.is_nil(creds)
    assert.are.equal("exec_failed", code)
    assert.matches("control character", err)
  end)
end)

describe("fuzz regressions: client", function()
  it("turns TLS material host.http refuses into an error, not a raise", function()
    local conn = exec_conn()
    local creds = source(conn, exec_output({ clientCertificateData = "CERT", clientKeyData = "KEY" }))
    local k8s = client.new(conn, { http = require("host.http"), credentials = creds, log = fake.log(),
      sleep = function() end, monotonic = function() return 0 end })
    local doc, err = k8s:get("/api")
    assert.is_nil(doc)
    assert.are.equal("credentials_unavailable", err.code)
    assert.matches("not PEM", err.message)
  end)
end)
