-- host.http (host/bindings/http.c) against spec/helpers/http_test_server.py, in plain HTTP
-- and in TLS with certificates made here with openssl.
local http = require("host.http")
local cjson = require("cjson")

local SERVER_SCRIPT = "spec/helpers/http_test_server.py"
local SECRET = "Bearer s3cr3t-t0ken-do-not-log"

local function run(cmd)
  local ok = os.execute(cmd)
  assert(ok, "command failed: " .. cmd)
end

local function read_file(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

local function write_file(path, s)
  local f = assert(io.open(path, "wb"))
  f:write(s)
  f:close()
end

local function now()
  local p = assert(io.popen("date +%s.%N"))
  local t = tonumber(p:read("l"))
  p:close()
  return t
end

local function hex(s)
  return (s:gsub(".", function(c)
    return string.format("%02x", c:byte())
  end))
end

-- Runs fn, expects it to raise, and checks the message contains text (plain).
local function raises(text, fn, ...)
  local ok, err = pcall(fn, ...)
  assert.is_false(ok, "expected an error containing: " .. text)
  err = tostring(err)
  assert.is_truthy(err:find(text, 1, true), "error '" .. err .. "' does not contain '" .. text .. "'")
  return err
end

local function make_certs(dir)
  local ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
  local function ossl(args)
    run("cd " .. dir .. " && openssl " .. args .. " >/dev/null 2>&1")
  end
  for _, ca in ipairs({ "ca", "other-ca" }) do
    ossl("req -x509 " .. ec .. " -keyout " .. ca .. ".key -out " .. ca .. ".crt -days 2 -subj /CN=" .. ca
      .. " -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign")
  end
  local leaves = {
    server = { cn = "localhost", ext = "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n" },
    client = { cn = "test-client", ext = "extendedKeyUsage=clientAuth\n" },
  }
  for name, leaf in pairs(leaves) do
    write_file(dir .. "/" .. name .. ".ext",
      "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n" .. leaf.ext)
    ossl("req " .. ec .. " -keyout " .. name .. ".key -out " .. name .. ".csr -subj /CN=" .. leaf.cn)
    ossl("x509 -req -in " .. name .. ".csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 -out "
      .. name .. ".crt -extfile " .. name .. ".ext")
  end
end

-- Starts the test server; it prints {"port", "pid", "closed_port"} once listening.
local function start_server(dir, name, args)
  local cmd = "exec python3 " .. SERVER_SCRIPT .. " " .. (args or "") .. " 2>" .. dir .. "/" .. name .. ".log"
  local pipe = assert(io.popen(cmd, "r"))
  local line = pipe:read("l")
  assert(line, "test server " .. name .. " did not start; see " .. dir .. "/" .. name .. ".log")
  local info = cjson.decode(line)
  info.pipe = pipe
  return info
end

local function stop_server(server)
  if server then
    os.execute("kill " .. math.tointeger(server.pid) .. " 2>/dev/null")
    server.pipe:close()
  end
end

describe("host.http", function()
  local dir, plain, tls, mtls, base, tbase

  lazy_setup(function()
    local p = assert(io.popen("mktemp -d"))
    dir = p:read("l")
    p:close()
    make_certs(dir)
    plain = start_server(dir, "plain")
    tls = start_server(dir, "tls", string.format("--cert %s/server.crt --key %s/server.key --client-ca %s/ca.crt",
      dir, dir, dir))
    mtls = start_server(dir, "mtls", string.format(
      "--cert %s/server.crt --key %s/server.key --client-ca %s/ca.crt --require-client-cert", dir, dir, dir))
    base = "http://127.0.0.1:" .. math.tointeger(plain.port)
    tbase = "https://127.0.0.1:" .. math.tointeger(tls.port)
  end)

  lazy_teardown(function()
    stop_server(plain)
    stop_server(tls)
    stop_server(mtls)
    if dir then
      run("rm -rf " .. dir)
    end
  end)

  local function echo(client, req)
    local res, err, code = client:request(req)
    assert.is_nil(err, code)
    assert.are.equal(200, res.status)
    return cjson.decode(res.body), res
  end

  describe("plain HTTP", function()
    local client
    before_each(function()
      client = http.new()
    end)
    after_each(function()
      client:close()
    end)

    it("GETs with headers and no body", function()
      local got, res = echo(client, { url = base .. "/echo?x=1", headers = { ["X-Test"] = "yes" } })
      assert.are.equal("GET", got.method)
      assert.are.equal("/echo?x=1", got.path)
      assert.are.same({ "yes" }, got.headers["x-test"])
      assert.are.equal("", got.body_hex)
      assert.is_nil(got.headers["content-length"])
      assert.is_nil(got.headers["expect"])
      assert.are.equal("application/json", res.headers["content-type"])
      assert.are.equal(tostring(#res.body), res.headers["content-length"])
    end)

    it("POSTs a binary body with its exact length and no invented headers", function()
      local bytes = {}
      for i = 0, 255 do
        bytes[#bytes + 1] = string.char(i)
      end
      local body = table.concat(bytes) .. "\0\r\n\0"
      local got = echo(client, { method = "POST", url = base .. "/echo", body = body })
      assert.are.equal("POST", got.method)
      assert.are.equal(hex(body), got.body_hex)
      assert.are.same({ tostring(#body) }, got.headers["content-length"])
      assert.is_nil(got.headers["expect"])
      assert.is_nil(got.headers["content-type"])
    end)

    it("PUTs a large body without Expect: 100-continue", function()
      local body = string.rep("abc", 400000)
      local got = echo(client, {
        method = "PUT",
        url = base .. "/echo",
        body = body,
        headers = { ["Content-Type"] = "application/json" },
      })
      assert.are.equal("PUT", got.method)
      assert.are.equal(#body * 2, #got.body_hex)
      assert.are.same({ "application/json" }, got.headers["content-type"])
      assert.is_nil(got.headers["expect"])
    end)

    it("PATCHes, and sends Content-Length: 0 for a POST without body", function()
      local got = echo(client, { method = "PATCH", url = base .. "/echo", body = "{}" })
      assert.are.equal("PATCH", got.method)
      assert.are.equal(hex("{}"), got.body_hex)
      got = echo(client, { method = "POST", url = base .. "/echo" })
      assert.are.same({ "0" }, got.headers["content-length"])
    end)

    it("DELETEs and OPTIONs without a body, or with one", function()
      local got = echo(client, { method = "DELETE", url = base .. "/echo" })
      assert.are.equal("DELETE", got.method)
      assert.is_nil(got.headers["content-length"])
      got = echo(client, { method = "DELETE", url = base .. "/echo", body = "gone" })
      assert.are.equal(hex("gone"), got.body_hex)
      got = echo(client, { method = "OPTIONS", url = base .. "/echo" })
      assert.are.equal("OPTIONS", got.method)
    end)

    it("sends a GET body when given one", function()
      local got = echo(client, { method = "GET", url = base .. "/echo", body = "q" })
      assert.are.equal("GET", got.method)
      assert.are.equal(hex("q"), got.body_hex)
    end)

    it("HEADs: headers, no body", function()
      local res = assert(client:request({ method = "HEAD", url = base .. "/echo" }))
      assert.are.equal(200, res.status)
      assert.are.equal("", res.body)
      assert.is_truthy(tonumber(res.headers["content-length"]) > 0)
    end)

    it("sends an empty header value", function()
      local got = echo(client, { url = base .. "/echo", headers = { ["X-Empty"] = "" } })
      assert.are.same({ "" }, got.headers["x-empty"])
    end)

    it("returns any status as data", function()
      local res, err = client:request({ url = base .. "/status/500" })
      assert.is_nil(err)
      assert.are.equal(500, res.status)
      assert.are.equal("status 500", res.body)
      assert.are.equal("text/plain", res.headers["content-type"])
      res = assert(client:request({ url = base .. "/status/404" }))
      assert.are.equal(404, res.status)
    end)

    it("lower-cases header names and joins repeats with ', '", function()
      local res = assert(client:request({ url = base .. "/repeat" }))
      assert.are.equal("one, two", res.headers["x-multi"])
      assert.are.equal("a=1, b=2", res.headers["set-cookie"])
      for name in pairs(res.headers) do
        assert.are.equal(name:lower(), name)
      end
    end)

    it("does not follow redirects", function()
      local res = assert(client:request({ url = base .. "/redirect" }))
      assert.are.equal(302, res.status)
      assert.are.equal("/echo", res.headers["location"])
    end)

    it("reuses the connection for successive requests", function()
      local a = cjson.decode(assert(client:request({ url = base .. "/conn" })).body)
      echo(client, { method = "POST", url = base .. "/echo", body = "between" })
      local b = cjson.decode(assert(client:request({ url = base .. "/conn" })).body)
      assert.are.equal(a.conn, b.conn)
      assert.are.equal(a.port, b.port)
      local other = http.new()
      local c = cjson.decode(assert(other:request({ url = base .. "/conn" })).body)
      other:close()
      assert.are_not.equal(a.conn, c.conn)
    end)

    it("opens a new connection for a request with fresh_connection (never re-sent by libcurl)", function()
      local a = cjson.decode(assert(client:request({ url = base .. "/conn" })).body)
      local b = cjson.decode(assert(client:request({ url = base .. "/conn", fresh_connection = true })).body)
      assert.are_not.equal(a.conn, b.conn)
      local c = cjson.decode(assert(client:request({ url = base .. "/conn", fresh_connection = false })).body)
      assert.is_true(c.conn == a.conn or c.conn == b.conn) -- without it, an open connection is reused
      assert.has_error(function()
        client:request({ url = base .. "/conn", fresh_connection = "yes" })
      end, "host.http.request: 'fresh_connection' must be a boolean")
    end)
  end)

  describe("failures", function()
    it("reports a refused connection as 'connect'", function()
      local client = http.new()
      local res, err, code = client:request({
        url = "http://127.0.0.1:" .. math.tointeger(plain.closed_port) .. "/",
        headers = { Authorization = SECRET },
      })
      client:close()
      assert.is_nil(res)
      assert.are.equal("connect", code)
      assert.is_truthy(err:find("host.http.request: ", 1, true))
      assert.is_falsy(err:find("s3cr3t", 1, true))
    end)

    it("reports an unknown host as 'connect'", function()
      local client = http.new({ connect_timeout = 3 })
      local res, _, code = client:request({ url = "http://no-such-host.invalid/" })
      client:close()
      assert.is_nil(res)
      assert.are.equal("connect", code)
    end)

    it("times out a slow response as 'timeout' on time (per request)", function()
      local client = http.new()
      local t0 = now()
      local res, err, code = client:request({
        url = base .. "/slow?s=5",
        timeout = 0.5,
        headers = { Authorization = SECRET },
      })
      local elapsed = now() - t0
      client:close()
      assert.is_nil(res)
      assert.are.equal("timeout", code)
      assert.is_truthy(elapsed >= 0.4 and elapsed < 1.5, "took " .. elapsed .. " s")
      assert.is_falsy(err:find("s3cr3t", 1, true))
    end)

    it("times out with the client's default timeout", function()
      local client = http.new({ timeout = 0.3 })
      local t0 = now()
      local _, _, code = client:request({ url = base .. "/slow?s=3" })
      assert.are.equal("timeout", code)
      assert.is_truthy(now() - t0 < 1.5)
      -- the client stays usable after a failure
      assert.are.equal(200, assert(client:request({ url = base .. "/status/200" })).status)
      client:close()
    end)

    it("refuses a body over max_response_bytes as 'too_large'", function()
      local client = http.new({ max_response_bytes = 1000 })
      local res = assert(client:request({ url = base .. "/big?n=1000" }))
      assert.are.equal(1000, #res.body)
      for _, path in ipairs({ "/big?n=1001", "/big-chunked?n=200000" }) do
        local r, err, code = client:request({ url = base .. path, headers = { Authorization = SECRET } })
        assert.is_nil(r)
        assert.are.equal("too_large", code, err)
        assert.is_truthy(err:find("max_response_bytes", 1, true))
        assert.is_falsy(err:find("s3cr3t", 1, true))
      end
      assert.are.equal(200, assert(client:request({ url = base .. "/status/200" })).status)
      client:close()
    end)

    it("takes a 16 MiB default limit", function()
      local client = http.new()
      local res = assert(client:request({ url = base .. "/big?n=" .. 16 * 1024 * 1024 }))
      assert.are.equal(16 * 1024 * 1024, #res.body)
      local _, _, code = client:request({ url = base .. "/big-chunked?n=" .. (16 * 1024 * 1024 + 1) })
      assert.are.equal("too_large", code)
      client:close()
    end)
  end)

  describe("TLS", function()
    it("verifies the server with ca_file and reuses the TLS connection", function()
      local client = http.new({ ca_file = dir .. "/ca.crt" })
      local a = cjson.decode(assert(client:request({ url = tbase .. "/conn" })).body)
      local b = cjson.decode(assert(client:request({ url = tbase .. "/conn" })).body)
      assert.are.equal(a.conn, b.conn)
      local got = echo(client, { method = "POST", url = tbase .. "/echo", body = "over tls" })
      assert.are.equal(hex("over tls"), got.body_hex)
      client:close()
    end)

    it("verifies the server with ca_pem, by name too", function()
      local client = http.new({ ca_pem = read_file(dir .. "/ca.crt") })
      assert.are.equal(200, assert(client:request({ url = tbase .. "/status/200" })).status)
      local url = "https://localhost:" .. math.tointeger(tls.port) .. "/status/200"
      assert.are.equal(200, assert(client:request({ url = url })).status)
      client:close()
    end)

    it("fails verification as 'tls': wrong CA, system store, missing CA file", function()
      for _, opts in ipairs({
        { ca_file = dir .. "/other-ca.crt" },
        { ca_pem = read_file(dir .. "/other-ca.crt") },
        {},
        { ca_file = dir .. "/missing.crt" },
      }) do
        local client = http.new(opts)
        local res, err, code = client:request({ url = tbase .. "/echo", headers = { Authorization = SECRET } })
        client:close()
        assert.is_nil(res)
        assert.are.equal("tls", code, err)
        assert.is_falsy(err:find("s3cr3t", 1, true))
      end
    end)

    it("skips verification when told to", function()
      local client = http.new({ insecure_skip_verify = true })
      assert.are.equal(200, assert(client:request({ url = tbase .. "/status/200" })).status)
      client:close()
    end)

    it("sends no client certificate unless given one", function()
      local client = http.new({ ca_file = dir .. "/ca.crt" })
      local got = cjson.decode(assert(client:request({ url = tbase .. "/clientcert" })).body)
      client:close()
      assert.are.equal(cjson.null, got.cn)
    end)

    it("sends a client certificate from files", function()
      local client = http.new({
        ca_file = dir .. "/ca.crt",
        client_cert_file = dir .. "/client.crt",
        client_key_file = dir .. "/client.key",
      })
      local got = cjson.decode(assert(client:request({ url = tbase .. "/clientcert" })).body)
      client:close()
      assert.are.equal("test-client", got.cn)
    end)

    it("sends a client certificate from PEM strings", function()
      local client = http.new({
        ca_pem = read_file(dir .. "/ca.crt"),
        client_cert_pem = read_file(dir .. "/client.crt"),
        client_key_pem = read_file(dir .. "/client.key"),
      })
      for _ = 1, 2 do
        local got = cjson.decode(assert(client:request({ url = tbase .. "/clientcert" })).body)
        assert.are.equal("test-client", got.cn)
      end
      client:close()
    end)

    it("reports a server's refusal of a missing client certificate as 'tls'", function()
      local url = "https://127.0.0.1:" .. math.tointeger(mtls.port) .. "/clientcert"
      local client = http.new({ ca_file = dir .. "/ca.crt" })
      local res, err, code = client:request({ url = url, headers = { Authorization = SECRET } })
      client:close()
      assert.is_nil(res)
      -- TLS 1.3: the refusal comes after the client's handshake. Curl usually reads the alert
      -- ("tls"), but when the server's close wins the race the send fails first ("io").
      assert.is_truthy(code == "tls" or code == "io", err)
      assert.is_falsy(err:find("s3cr3t", 1, true))
      client = http.new({
        ca_file = dir .. "/ca.crt",
        client_cert_file = dir .. "/client.crt",
        client_key_file = dir .. "/client.key",
      })
      local got = cjson.decode(assert(client:request({ url = url })).body)
      client:close()
      assert.are.equal("test-client", got.cn)
    end)

    it("reports an unusable client certificate as 'tls'", function()
      local client = http.new({
        ca_file = dir .. "/ca.crt",
        client_cert_pem = "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n",
        client_key_pem = read_file(dir .. "/client.key"),
      })
      local res, err, code = client:request({ url = tbase .. "/clientcert" })
      client:close()
      assert.is_nil(res)
      assert.are.equal("tls", code, err)
      assert.is_falsy(err:find("PRIVATE KEY", 1, true))
    end)
  end)

  describe("misuse", function()
    local client
    before_each(function()
      client = http.new()
    end)
    after_each(function()
      client:close()
    end)

    local function req(r)
      return function()
        return client:request(r)
      end
    end

    it("raises on bad request fields", function()
      local u = base .. "/echo"
      raises("host.http.request: argument must be a table", client.request, client, "x")
      raises("host.http.request: 'url' must be a string", req({}))
      raises("host.http.request: 'url' must be a string", req({ url = 42 }))
      raises("host.http.request: 'url' must be an http:// or https:// URL", req({ url = "ftp://x/" }))
      raises("host.http.request: 'url' must not contain NUL", req({ url = u .. "\0x" }))
      raises("host.http.request: 'method' must be one of", req({ url = u, method = "get" }))
      raises("host.http.request: 'method' must be one of", req({ url = u, method = "BREW" }))
      raises("host.http.request: 'body' must be a string", req({ url = u, method = "POST", body = {} }))
      raises("host.http.request: a HEAD request has no 'body'", req({ url = u, method = "HEAD", body = "" }))
      raises("host.http.request: unknown option 'heders'", req({ url = u, heders = {} }))
      raises("host.http.request: option names must be strings", req({ u }))
    end)

    it("raises on bad timeouts", function()
      local u = base .. "/echo"
      raises("host.http.request: 'timeout' must be > 0", req({ url = u, timeout = 0 }))
      raises("host.http.request: 'timeout' must be > 0", req({ url = u, timeout = -1 }))
      raises("host.http.request: 'timeout' must be > 0", req({ url = u, timeout = 0 / 0 }))
      raises("host.http.request: 'connect_timeout' must be a number", req({ url = u, connect_timeout = "1" }))
      raises("host.http.new: 'timeout' must be > 0", http.new, { timeout = 0 })
      raises("host.http.new: 'connect_timeout' must be > 0", http.new, { connect_timeout = -0.5 })
    end)

    it("raises on bad headers, never quoting a value", function()
      local u = base .. "/echo"
      raises("host.http.request: 'headers' must be a table", req({ url = u, headers = "X: y" }))
      raises("host.http.request: header 'X-N' value must be a string", req({ url = u, headers = { ["X-N"] = 1 } }))
      raises("header names must be non-empty HTTP tokens", req({ url = u, headers = { "v" } }))
      raises("header names must be non-empty HTTP tokens", req({ url = u, headers = { ["Bad Name"] = "v" } }))
      raises("header names must be non-empty HTTP tokens", req({ url = u, headers = { [""] = "v" } }))
      raises("header 'Content-Length' is set from 'body'",
        req({ url = u, headers = { ["Content-Length"] = "3" } }))
      for _, bad in ipairs({ SECRET .. "\r\nX-Injected: 1", SECRET .. "\n", SECRET .. "\0" }) do
        local err = raises("host.http.request: header 'Authorization' value contains CR, LF or NUL",
          req({ url = u, headers = { Authorization = bad } }))
        assert.is_falsy(err:find("s3cr3t", 1, true))
      end
      -- the client still works after a raise
      assert.are.equal(200, assert(client:request({ url = base .. "/status/200" })).status)
    end)

    it("raises on bad new() options", function()
      raises("host.http.new: options must be a table", http.new, "x")
      raises("host.http.new: unknown option 'ca_flie'", http.new, { ca_flie = "x" })
      raises("host.http.new: 'ca_file' must be a string", http.new, { ca_file = true })
      raises("host.http.new: set 'ca_file' or 'ca_pem', not both", http.new, { ca_file = "a", ca_pem = "b" })
      local err = raises("host.http.new: 'client_key_pem' is not PEM text", http.new,
        { client_cert_file = "c", client_key_pem = "s3cr3t key material" })
      assert.is_falsy(err:find("s3cr3t", 1, true))
      raises("host.http.new: a client key needs a client certificate", http.new, { client_key_file = "k" })
      raises("host.http.new: 'max_response_bytes' must be an integer >= 1", http.new, { max_response_bytes = 0 })
      raises("host.http.new: 'max_response_bytes' must be an integer >= 1", http.new, { max_response_bytes = 1.5 })
      raises("host.http.new: 'insecure_skip_verify' must be a boolean", http.new, { insecure_skip_verify = 1 })
    end)

    it("raises when self is not a client", function()
      raises("host.http.request: expected a host.http.Client", client.request, {}, { url = base })
      raises("host.http.close: expected a host.http.Client", client.close, "x")
    end)
  end)

  describe("close", function()
    it("is idempotent, and a closed client raises", function()
      local client = http.new()
      assert.is_truthy(tostring(client):find("host.http.Client (open)", 1, true))
      client:close()
      client:close()
      assert.is_truthy(tostring(client):find("host.http.Client (closed)", 1, true))
      raises("host.http.request: client is closed", client.request, client, { url = base .. "/echo" })
    end)

    it("closes a <close> variable at scope end", function()
      local outer
      do
        local client <close> = http.new()
        outer = client
        assert.are.equal(200, assert(client:request({ url = base .. "/status/200" })).status)
      end
      raises("host.http.request: client is closed", outer.request, outer, { url = base .. "/echo" })
    end)

    it("frees unclosed clients in __gc", function()
      for _ = 1, 20 do
        local client = http.new({ ca_pem = read_file(dir .. "/ca.crt") })
        assert(client:request({ url = base .. "/status/204" }))
      end
      collectgarbage()
      collectgarbage()
    end)
  end)
end)
