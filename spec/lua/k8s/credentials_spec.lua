-- infraops.k8s.credentials (lua/infraops/k8s/credentials.lua): token files,
-- basic auth and exec plugins, with fake fs, process and clock.
local cjson = require("cjson")
local fake = require("helpers.fake_http")
local credentials = require("infraops.k8s.credentials")

local V1 = "client.authentication.k8s.io/v1"
local V1BETA1 = "client.authentication.k8s.io/v1beta1"
local TOKEN = "tok-SECRET-9f8e7d"

local function parse_iso8601(s)
  local y, mo, d, h, mi, sec = s:match("^(%d+)-(%d+)-(%d+)T(%d+):(%d+):(%d+)Z$")
  if not y then
    return nil, "bad time", "invalid_time"
  end
  -- days from civil (Howard Hinnant), enough for the specs
  y, mo, d = tonumber(y), tonumber(mo), tonumber(d)
  y = mo <= 2 and y - 1 or y
  local era = y // 400
  local yoe = y - era * 400
  local doy = (153 * (mo + (mo > 2 and -3 or 9)) + 2) // 5 + d - 1
  local doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
  local days = era * 146097 + doe - 719468
  return days * 86400 + tonumber(h) * 3600 + tonumber(mi) * 60 + tonumber(sec)
end

local function setup(connection, script, files)
  local t = {
    clock = fake.clock(parse_iso8601("2026-01-01T00:00:00Z")),
    fs = fake.memory_fs(files),
    process = fake.process(script),
    log = fake.log(),
  }
  t.creds = credentials.new(connection, {
    fs = t.fs,
    process = t.process,
    now = t.clock.now,
    monotonic = t.clock.monotonic,
    parse_iso8601 = parse_iso8601,
    base64_encode = fake.base64_encode,
    log = t.log,
  })
  return t
end

local function exec_output(status, api_version, kind)
  return { stdout = cjson.encode({ apiVersion = api_version or V1, kind = kind or "ExecCredential", status = status }) }
end

local function exec_conn(extra)
  local exec = { api_version = V1, command = "get-token", args = { "--fast" }, env = { { name = "A", value = "1" } },
    provide_cluster_info = false }
  for k, v in pairs(extra or {}) do
    exec[k] = v
  end
  return { server = "https://api.test", exec = exec }
end

local function get(creds)
  return table.pack(creds:get())
end

describe("infraops.k8s.credentials", function()
  describe("static credentials", function()
    it("sends a static token as a bearer token", function()
      local t = setup({ server = "https://a", token = TOKEN })
      assert.are.equal("Bearer " .. TOKEN, t.creds:get().authorization)
    end)

    it("sends basic auth", function()
      local t = setup({ server = "https://a", basic = { username = "admin", password = "s3cret" } })
      assert.are.equal("Basic " .. fake.base64_encode("admin:s3cret"), t.creds:get().authorization)
    end)

    it("sends no Authorization without credentials", function()
      local t = setup({ server = "https://a" })
      assert.are.same({}, t.creds:get())
    end)
  end)

  describe("token files", function()
    local path = "/sa/token"

    it("reads the token once and trims whitespace", function()
      local t = setup({ server = "https://a", token_file = path }, nil, { [path] = " " .. TOKEN .. "\n" })
      assert.are.equal("Bearer " .. TOKEN, t.creds:get().authorization)
      assert.are.equal("Bearer " .. TOKEN, t.creds:get().authorization)
      assert.are.equal(1, t.fs.reads[path])
    end)

    it("re-reads the file when it changes", function()
      local t = setup({ server = "https://a", token_file = path }, nil, { [path] = "old" })
      assert.are.equal("Bearer old", t.creds:get().authorization)
      t.fs.write(path, "new\n")
      assert.are.equal("Bearer new", t.creds:get().authorization)
      assert.are.equal(2, t.fs.reads[path])
    end)

    it("re-reads an unchanged file after 60 s", function()
      local t = setup({ server = "https://a", token_file = path }, nil, { [path] = "same" })
      t.creds:get()
      t.clock.advance(59)
      t.creds:get()
      assert.are.equal(1, t.fs.reads[path])
      t.clock.advance(1)
      t.creds:get()
      assert.are.equal(2, t.fs.reads[path])
    end)

    it("re-reads after invalidate()", function()
      local t = setup({ server = "https://a", token_file = path }, nil, { [path] = "same" })
      t.creds:get()
      t.creds:invalidate()
      t.creds:get()
      assert.are.equal(2, t.fs.reads[path])
    end)

    it("prefers the token file over a static token", function()
      local t = setup({ server = "https://a", token_file = path, token = "static" }, nil, { [path] = "from-file" })
      assert.are.equal("Bearer from-file", t.creds:get().authorization)
    end)

    it("fails with credentials_unavailable when the file is missing or empty", function()
      local missing = setup({ server = "https://a", token_file = path })
      local r = get(missing.creds)
      assert.is_nil(r[1])
      assert.are.equal("credentials_unavailable", r[3])
      local empty = setup({ server = "https://a", token_file = path }, nil, { [path] = " \n" })
      assert.are.equal("credentials_unavailable", get(empty.creds)[3])
    end)

    it("keeps the previous token when the file disappears, without logging it", function()
      local t = setup({ server = "https://a", token_file = path }, nil, { [path] = TOKEN })
      t.creds:get()
      t.fs.remove(path)
      t.clock.advance(61)
      assert.are.equal("Bearer " .. TOKEN, t.creds:get().authorization)
      assert.are.equal(1, t.log.count("warn"))
      assert.is_nil(t.log.text():find(TOKEN, 1, true))
    end)
  end)

  describe("exec plugins", function()
    it("runs the plugin with args, env and KUBERNETES_EXEC_INFO, and parses a token", function()
      local t = setup(exec_conn(), { exec_output({ token = TOKEN }) })
      assert.are.equal("Bearer " .. TOKEN, t.creds:get().authorization)
      local call = t.process.calls[1]
      assert.are.same({ "get-token", "--fast" }, call.argv)
      assert.is_true(call.inherit_env)
      assert.are.equal(30, call.timeout)
      assert.are.equal(1024 * 1024, call.max_output)
      assert.are.equal("1", call.env.A)
      local info = cjson.decode(call.env.KUBERNETES_EXEC_INFO)
      assert.are.equal(V1, info.apiVersion)
      assert.are.equal("ExecCredential", info.kind)
      assert.is_false(info.spec.interactive)
      assert.is_nil(info.spec.cluster)
    end)

    it("passes cluster info when provideClusterInfo is set", function()
      local cluster = { server = "https://api.test", ["certificate-authority-data"] = "Q0E=", config = { a = "b" } }
      local t = setup(exec_conn({ provide_cluster_info = true, cluster = cluster }), { exec_output({ token = "x" }) })
      t.creds:get()
      local info = cjson.decode(t.process.calls[1].env.KUBERNETES_EXEC_INFO)
      assert.are.same(cluster, info.spec.cluster)
    end)

    it("sets KUBERNETES_EXEC_INFO over a configured variable of the same name", function()
      local conn = exec_conn({ env = { { name = "KUBERNETES_EXEC_INFO", value = "mine" } } })
      local t = setup(conn, { exec_output({ token = "x" }) })
      t.creds:get()
      assert.are_not.equal("mine", t.process.calls[1].env.KUBERNETES_EXEC_INFO)
    end)

    it("accepts a v1beta1 plugin", function()
      local t = setup(exec_conn({ api_version = V1BETA1 }), { exec_output({ token = "b" }, V1BETA1) })
      assert.are.equal("Bearer b", t.creds:get().authorization)
      assert.are.equal(V1BETA1, cjson.decode(t.process.calls[1].env.KUBERNETES_EXEC_INFO).apiVersion)
    end)

    it("parses a client certificate and key", function()
      local t = setup(exec_conn(), { exec_output({ clientCertificateData = "CERT PEM", clientKeyData = "KEY PEM" }) })
      local c = t.creds:get()
      assert.is_nil(c.authorization)
      assert.are.equal("CERT PEM", c.client_cert_pem)
      assert.are.equal("KEY PEM", c.client_key_pem)
    end)

    it("caches the result until expirationTimestamp, then runs the plugin again", function()
      local t = setup(exec_conn(), {
        exec_output({ token = "first", expirationTimestamp = "2026-01-01T00:10:00Z" }),
        exec_output({ token = "second" }),
      })
      assert.are.equal("Bearer first", t.creds:get().authorization)
      t.clock.advance(599)
      assert.are.equal("Bearer first", t.creds:get().authorization)
      assert.are.equal(1, #t.process.calls)
      t.clock.advance(1)
      assert.are.equal("Bearer second", t.creds:get().authorization)
      assert.are.equal(2, #t.process.calls)
    end)

    it("caches a result without expiry until invalidate()", function()
      local t = setup(exec_conn(), { exec_output({ token = "first" }), exec_output({ token = "second" }) })
      t.creds:get()
      t.clock.advance(86400)
      assert.are.equal("Bearer first", t.creds:get().authorization)
      t.creds:invalidate()
      assert.are.equal("Bearer second", t.creds:get().authorization)
      assert.are.equal(2, #t.process.calls)
    end)

    it("rejects an apiVersion other than the configured one", function()
      local t = setup(exec_conn(), { exec_output({ token = TOKEN }, V1BETA1) })
      assert.are.equal("exec_failed", get(t.creds)[3])
    end)

    it("rejects another kind", function()
      local t = setup(exec_conn(), { exec_output({ token = TOKEN }, V1, "Secret") })
      assert.are.equal("exec_failed", get(t.creds)[3])
    end)

    it("rejects output without a token or a certificate, or with half a pair", function()
      local t = setup(exec_conn(), { exec_output({}), exec_output({ clientCertificateData = "CERT" }),
        { stdout = cjson.encode({ apiVersion = V1, kind = "ExecCredential" }) } })
      assert.are.equal("exec_failed", get(t.creds)[3])
      assert.are.equal("exec_failed", get(t.creds)[3])
      assert.are.equal("exec_failed", get(t.creds)[3])
    end)

    it("rejects an invalid expirationTimestamp", function()
      local t = setup(exec_conn(), { exec_output({ token = TOKEN, expirationTimestamp = "tomorrow" }) })
      assert.are.equal("exec_failed", get(t.creds)[3])
    end)

    it("rejects output that is not JSON", function()
      local t = setup(exec_conn(), { { stdout = "token: " .. TOKEN } })
      local r = get(t.creds)
      assert.is_nil(r[1])
      assert.are.equal("exec_failed", r[3])
      assert.is_nil(r[2]:find(TOKEN, 1, true))
    end)

    it("reports a non-zero exit with stderr but never stdout", function()
      local long = string.rep("e", 500)
      local stderr = "\n  login required " .. long .. "\nmore"
      local t = setup(exec_conn(), { { exit_code = 3, stdout = TOKEN, stderr = stderr } })
      local r = get(t.creds)
      assert.is_nil(r[1])
      assert.are.equal("exec_failed", r[3])
      assert.is_nil(r[2]:find(TOKEN, 1, true))
      assert.truthy(r[2]:find("login required", 1, true))
      assert.is_nil(r[2]:find("more", 1, true))
      assert.is_true(#r[2] < 300)
    end)

    it("reports a plugin killed by a signal", function()
      local t = setup(exec_conn(), { { exit_code = -1, signal = 9 } })
      assert.are.equal("exec_failed", get(t.creds)[3])
    end)

    for _, code in ipairs({ "timeout", "not_found", "too_large", "io" }) do
      it("maps a process failure (" .. code .. ") to exec_failed", function()
        local t = setup(exec_conn(), { { code = code } })
        local r = get(t.creds)
        assert.is_nil(r[1])
        assert.are.equal("exec_failed", r[3])
      end)
    end

    it("runs the plugin again after a failure", function()
      local t = setup(exec_conn(), { { exit_code = 1 }, exec_output({ token = "ok" }) })
      assert.are.equal("exec_failed", get(t.creds)[3])
      assert.are.equal("Bearer ok", t.creds:get().authorization)
    end)

    it("never logs the token", function()
      local t = setup(exec_conn(), { exec_output({ token = TOKEN }) })
      t.creds:get()
      assert.is_true(t.log.count() > 0)
      assert.is_nil(t.log.text():find(TOKEN, 1, true))
    end)
  end)

  describe("new()", function()
    it("raises on a connection that is not a table", function()
      assert.has_error(function()
        credentials.new(nil, {})
      end)
    end)
  end)
end)
