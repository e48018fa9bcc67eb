-- infraops.k8s.client (lua/infraops/k8s/client.lua): requests, error mapping,
-- retries and headers, over a fake host.http and a fake clock.
local cjson = require("cjson")
local fake = require("helpers.fake_http")
local k8s_client = require("infraops.k8s.client")

local TOKEN = "tok-SECRET-4a5b6c"
local SERVER = "https://api.test:6443"

-- Credentials whose answers and invalidations the spec controls.
local function fake_credentials(list)
  local creds = { invalidated = 0, list = list or { { authorization = "Bearer " .. TOKEN } }, calls = 0 }
  function creds.get(self)
    self.calls = self.calls + 1
    local entry = self.list[math.min(self.calls, #self.list)]
    if entry.code then
      return nil, entry.message or "no credentials", entry.code
    end
    return entry
  end
  function creds.invalidate(self)
    self.invalidated = self.invalidated + 1
  end
  return creds
end

local function setup(script, opts)
  opts = opts or {}
  local t = {
    http = fake.http(script),
    clock = fake.clock(),
    log = fake.log(),
    credentials = opts.credentials or fake_credentials(),
  }
  t.client = k8s_client.new(opts.connection or { server = SERVER, ca_file = "/ca.crt" }, {
    http = t.http,
    sleep = t.clock.sleep,
    now = t.clock.now,
    monotonic = t.clock.monotonic,
    log = t.log,
    random = opts.random or function()
      return 0.5 -- no jitter
    end,
    credentials = t.credentials,
    version = "1.2.3",
  })
  return t
end

local function status_body(code, reason, message, details)
  return cjson.encode({ kind = "Status", apiVersion = "v1", status = "Failure", code = code, reason = reason,
    message = message, details = details })
end

local function json(status, doc, headers)
  return { status = status, body = cjson.encode(doc), headers = headers }
end

local function call(t, method, path, opts)
  return table.pack(t.client:request(method, path, opts))
end

local function near(expected, actual)
  assert.is_true(math.abs(expected - actual) < 1e-9, string.format("expected %s, got %s", expected, actual))
end

describe("infraops.k8s.client", function()
  describe("request()", function()
    it("decodes a JSON object and returns the response", function()
      local t = setup({ json(200, { kind = "Pod", metadata = { name = "p" } }) })
      local r = call(t, "GET", "/api/v1/namespaces/x/pods/p")
      assert.are.equal("Pod", r[1].kind)
      assert.are.equal(200, r[2].status)
      assert.are.equal(SERVER .. "/api/v1/namespaces/x/pods/p", t.http.requests[1].url)
      assert.are.equal("GET", t.http.requests[1].method)
      assert.are.equal(10, t.http.requests[1].timeout)
    end)

    it("returns true for an empty body", function()
      local t = setup({ { status = 204, body = "" }, { status = 200, body = " \n" } })
      assert.is_true(call(t, "DELETE", "/a")[1])
      assert.is_true(call(t, "DELETE", "/a")[1])
    end)

    it("returns invalid_response for a 2xx body that is not a JSON object", function()
      local t = setup({ { status = 200, body = "<html>" }, { status = 200, body = "42" } })
      local r = call(t, "GET", "/a")
      assert.is_nil(r[1])
      assert.are.equal("invalid_response", r[2].code)
      assert.are.equal(200, r[2].status)
      assert.are.equal("invalid_response", call(t, "GET", "/a")[2].code)
      assert.are.equal(2, #t.http.requests) -- not retried
    end)

    local cases = {
      { 400, "BadRequest", "bad_request" },
      { 403, "Forbidden", "forbidden" },
      { 404, "NotFound", "not_found" },
      { 409, "Conflict", "conflict" },
      { 409, "AlreadyExists", "already_exists" },
      { 410, "Expired", "gone" },
      { 422, "Invalid", "invalid" },
      { 429, "TooManyRequests", "too_many_requests" },
      { 500, "InternalError", "unavailable" },
      { 503, "ServiceUnavailable", "unavailable" },
      { 504, "Timeout", "timeout" },
      { 418, nil, "internal" },
    }
    for _, case in ipairs(cases) do
      local status, reason, code = case[1], case[2], case[3]
      it(string.format("maps a %d %s Status to %s", status, tostring(reason), code), function()
        local details = { name = "p", kind = "pods" }
        local t = setup({ { status = status, body = status_body(status, reason, "the message", details) } })
        local r = call(t, "GET", "/a", { retry = false })
        assert.is_nil(r[1])
        assert.are.equal(code, r[2].code)
        assert.are.equal(status, r[2].status)
        assert.are.equal(reason, r[2].reason)
        assert.are.equal("the message", r[2].message)
        assert.are.same(details, r[2].details)
      end)
    end

    it("maps a 401 to unauthorized after its one retry", function()
      local t = setup({ { status = 401, body = status_body(401, "Unauthorized", "Unauthorized") },
        { status = 401, body = status_body(401, "Unauthorized", "Unauthorized") } })
      local r = call(t, "GET", "/a")
      assert.are.equal("unauthorized", r[2].code)
      assert.are.equal("Unauthorized", r[2].reason)
      assert.are.equal(2, #t.http.requests)
      assert.are.equal(2, t.credentials.invalidated)
      assert.are.same({}, t.clock.sleeps)
    end)

    it("handles an error body that is not a Status", function()
      local t = setup({ { status = 404, body = "404 page not found\n" }, { status = 403, body = '{"kind":"Pod"}' } })
      local r = call(t, "GET", "/a")
      assert.are.equal("not_found", r[2].code)
      assert.is_nil(r[2].reason)
      assert.is_nil(r[2].details)
      assert.is_string(r[2].message)
      local r2 = call(t, "GET", "/a")
      assert.are.equal("forbidden", r2[2].code)
      assert.is_nil(r2[2].reason)
    end)

    for tcode, code in pairs({ tls = "tls", too_large = "internal" }) do
      it("maps a transport failure " .. tcode .. " to " .. code .. " without retrying", function()
        local t = setup({ { code = tcode } })
        local r = call(t, "GET", "/a")
        assert.are.equal(code, r[2].code)
        assert.is_nil(r[2].status)
        assert.are.equal(1, #t.http.requests)
      end)
    end

    it("encodes a table body as JSON and sends a string body as is", function()
      local t = setup({ json(201, { kind = "Lease" }), json(200, {}) })
      t.client:request("POST", "/apis/x", { body = { kind = "Lease", spec = { holderIdentity = "a b" } } })
      assert.are.same({ kind = "Lease", spec = { holderIdentity = "a b" } }, cjson.decode(t.http.requests[1].body))
      t.client:request("PUT", "/apis/x", { body = '{"raw":true}' })
      assert.are.equal('{"raw":true}', t.http.requests[2].body)
    end)

    it("encodes the query with sorted names and percent-encoding", function()
      local t = setup({ json(200, {}) })
      t.client:get("/api/v1/pods", { query = {
        limit = "10",
        labelSelector = "app=web,tier in (a,b)",
        fieldSelector = { "status.phase!=Running", "x/y" },
        ["continue"] = "tok+/=~_-.",
      } })
      assert.are.equal(SERVER .. "/api/v1/pods?continue=tok%2B%2F%3D~_-.&fieldSelector=status.phase%21%3DRunning"
        .. "&fieldSelector=x%2Fy&labelSelector=app%3Dweb%2Ctier%20in%20%28a%2Cb%29&limit=10", t.http.requests[1].url)
    end)

    it("sets Accept, User-Agent, Authorization, and Content-Type only with a body", function()
      local t = setup({ json(200, {}), json(200, {}) })
      t.client:get("/a")
      local h = t.http.requests[1].headers
      assert.are.equal("application/json", h.Accept)
      assert.are.equal("myapiserver/1.2.3", h["User-Agent"])
      assert.are.equal("Bearer " .. TOKEN, h.Authorization)
      assert.is_nil(h["Content-Type"])
      t.client:put("/a", { kind = "X" })
      assert.are.equal("application/json", t.http.requests[2].headers["Content-Type"])
    end)

    it("lets callers replace headers but not Authorization", function()
      local t = setup({ json(200, {}) })
      local headers = { accept = "application/yaml", authorization = "Bearer mine", ["X-Extra"] = "1" }
      t.client:get("/a", { headers = headers })
      local h = t.http.requests[1].headers
      assert.are.equal("application/yaml", h.accept)
      assert.is_nil(h.Accept)
      assert.are.equal("Bearer " .. TOKEN, h.Authorization)
      assert.is_nil(h.authorization)
      assert.are.equal("1", h["X-Extra"])
    end)

    it("sends no Authorization header without credentials", function()
      local t = setup({ json(200, {}) }, { credentials = fake_credentials({ {} }) })
      t.client:get("/a")
      assert.is_nil(t.http.requests[1].headers.Authorization)
    end)

    it("returns a credentials failure without sending the request", function()
      local t = setup({}, { credentials = fake_credentials({ { code = "exec_failed" } }) })
      local r = call(t, "GET", "/a")
      assert.is_nil(r[1])
      assert.are.equal("exec_failed", r[2].code)
      assert.are.equal(0, #t.http.requests)
    end)

    it("joins a server path prefix and drops its trailing slash", function()
      local t = setup({ json(200, {}) }, { connection = { server = "https://h/prefix/" } })
      t.client:get("/api")
      assert.are.equal("https://h/prefix/api", t.http.requests[1].url)
    end)

    it("raises on misuse", function()
      local t = setup({})
      assert.has_error(function() t.client:request("get", "/a") end)
      assert.has_error(function() t.client:request("GET", "a") end)
      assert.has_error(function() t.client:request("POST", "/a", { body = 42 }) end)
      assert.has_error(function() t.client:get("/a", { query = { a = { {} } } }) end)
    end)
  end)

  describe("retries", function()
    it("honours Retry-After on 429, capped at 10 s", function()
      local t = setup({
        { status = 429, headers = { ["retry-after"] = "2" }, body = status_body(429, "TooManyRequests", "slow") },
        { status = 429, headers = { ["retry-after"] = "30" }, body = "" },
        json(200, { ok = true }),
      })
      local r = call(t, "GET", "/a", { deadline = t.clock.monotonic() + 60 })
      assert.is_true(r[1].ok)
      assert.are.same({ 2, 10 }, t.clock.sleeps)
    end)

    it("reports retry_after on the error", function()
      local t = setup({ { status = 429, headers = { ["retry-after"] = "7" }, body = "" } })
      local r = call(t, "GET", "/a", { retry = false })
      assert.are.equal(7, r[2].retry_after)
    end)

    it("retries a 503 after 0.2 s", function()
      local t = setup({ { status = 503, body = "" }, json(200, { ok = true }) })
      assert.is_true(call(t, "GET", "/a")[1].ok)
      assert.are.equal(1, #t.clock.sleeps)
      near(0.2, t.clock.sleeps[1])
    end)

    it("applies +-20% jitter", function()
      local low = setup({ { status = 503, body = "" }, json(200, {}) }, { random = function() return 0 end })
      low.client:get("/a")
      near(0.16, low.clock.sleeps[1])
      local high = setup({ { status = 503, body = "" }, json(200, {}) }, { random = function() return 1 end })
      high.client:get("/a")
      near(0.24, high.clock.sleeps[1])
    end)

    it("retries a refused connection", function()
      local t = setup({ { code = "connect" }, json(200, { ok = true }) })
      assert.is_true(call(t, "GET", "/a")[1].ok)
      assert.are.equal(2, #t.http.requests)
    end)

    it("gives up after 4 attempts with the last error and backs off 0.2, 0.4, 0.8 s", function()
      local t = setup({ { status = 500, body = "" }, { status = 502, body = "" }, { status = 503, body = "" },
        { status = 504, body = status_body(504, "Timeout", "last") } })
      local r = call(t, "GET", "/a")
      assert.is_nil(r[1])
      assert.are.equal("timeout", r[2].code)
      assert.are.equal("last", r[2].message)
      assert.are.equal(4, #t.http.requests)
      assert.are.equal(3, #t.clock.sleeps)
      near(0.2, t.clock.sleeps[1])
      near(0.4, t.clock.sleeps[2])
      near(0.8, t.clock.sleeps[3])
    end)

    it("never sleeps past the deadline", function()
      local t = setup({ { status = 503, body = "" }, { status = 503, body = "" }, json(200, {}) })
      local r = call(t, "GET", "/a", { deadline = t.clock.monotonic() + 0.5 })
      assert.are.equal("unavailable", r[2].code)
      assert.are.equal(2, #t.http.requests)
      assert.are.equal(1, #t.clock.sleeps)
    end)

    it("does not wait for a Retry-After beyond the deadline", function()
      local t = setup({ { status = 429, headers = { ["retry-after"] = "5" }, body = "" }, json(200, {}) })
      local r = call(t, "GET", "/a", { deadline = t.clock.monotonic() + 3 })
      assert.are.equal("too_many_requests", r[2].code)
      assert.are.same({}, t.clock.sleeps)
    end)

    it("cuts each attempt's timeout to what is left of the deadline", function()
      local t = setup({ { status = 503, body = "" }, json(200, { ok = true }) })
      local r = call(t, "GET", "/a", { deadline = t.clock.monotonic() + 3, timeout = 10 })
      assert.is_true(r[1].ok)
      assert.are.equal(3, t.http.requests[1].timeout)
      assert.is_true(math.abs((3 - t.clock.sleeps[1]) - t.http.requests[2].timeout) < 1e-9) -- after one backoff
    end)

    it("sends nothing once the deadline has passed, and says it timed out", function()
      local t = setup({ json(200, {}) })
      local r = call(t, "GET", "/a", { deadline = t.clock.monotonic() - 1 })
      assert.is_nil(r[1])
      assert.are.equal("timeout", r[2].code)
      assert.are.equal(0, #t.http.requests)
    end)

    it("does not retry a POST by default", function()
      local t = setup({ { status = 503, body = "" }, json(201, {}) })
      local r = call(t, "POST", "/a", { body = {} })
      assert.are.equal("unavailable", r[2].code)
      assert.are.equal(1, #t.http.requests)
      local t2 = setup({ { code = "connect" }, json(201, {}) })
      assert.are.equal("unavailable", call(t2, "POST", "/a")[2].code)
      assert.are.equal(1, #t2.http.requests)
    end)

    it("retries a POST when asked, but not after a timeout", function()
      local t = setup({ { status = 503, body = "" }, json(201, { created = true }) })
      assert.is_true(call(t, "POST", "/a", { body = {}, retry = true })[1].created)
      local t2 = setup({ { code = "timeout" }, json(201, {}) })
      assert.are.equal("timeout", call(t2, "POST", "/a", { retry = true })[2].code)
      assert.are.equal(1, #t2.http.requests)
    end)

    it("retries a timed-out GET", function()
      local t = setup({ { code = "timeout" }, json(200, { ok = true }) })
      assert.is_true(call(t, "GET", "/a")[1].ok)
    end)

    it("does not retry a GET when retry is false", function()
      local t = setup({ { status = 503, body = "" }, json(200, {}) })
      assert.are.equal("unavailable", call(t, "GET", "/a", { retry = false })[2].code)
      assert.are.equal(1, #t.http.requests)
    end)

    it("does not retry a 4xx other than 401 and 429", function()
      local t = setup({ { status = 409, body = status_body(409, "Conflict", "c") }, json(200, {}) })
      assert.are.equal("conflict", call(t, "PUT", "/a", { body = {} })[2].code)
      assert.are.equal(1, #t.http.requests)
    end)

    it("invalidates credentials on a 401 and retries once at once, also for a POST", function()
      local creds = fake_credentials({ { authorization = "Bearer old" }, { authorization = "Bearer new" } })
      local t = setup({ { status = 401, body = "" }, json(201, { ok = true }) }, { credentials = creds })
      assert.is_true(call(t, "POST", "/a", { body = {} })[1].ok)
      assert.are.equal(1, creds.invalidated)
      assert.are.equal("Bearer old", t.http.requests[1].headers.Authorization)
      assert.are.equal("Bearer new", t.http.requests[2].headers.Authorization)
      assert.are.same({}, t.clock.sleeps)
    end)
  end)

  describe("connections", function()
    it("reuses one host.http client built from the connection", function()
      local conn = { server = SERVER, ca_pem = "-----BEGIN CERTIFICATE-----", client_cert_file = "/c.crt",
        client_key_file = "/c.key" }
      local t = setup({ json(200, {}), json(200, {}) }, { connection = conn })
      t.client:get("/a")
      t.client:get("/b")
      assert.are.equal(1, #t.http.clients)
      assert.are.same({ ca_pem = conn.ca_pem, client_cert_file = "/c.crt", client_key_file = "/c.key" },
        t.http.clients[1].opts)
      assert.are.equal(t.http.clients[1], t.http.requests[2].client)
    end)

    it("passes insecure_skip_verify", function()
      local t = setup({ json(200, {}) }, { connection = { server = SERVER, insecure = true } })
      t.client:get("/a")
      assert.is_true(t.http.clients[1].opts.insecure_skip_verify)
    end)

    it("builds a new client when the exec plugin returns a new certificate", function()
      local creds = fake_credentials({
        { client_cert_pem = "CERT1", client_key_pem = "KEY1" },
        { client_cert_pem = "CERT1", client_key_pem = "KEY1" },
        { client_cert_pem = "CERT2", client_key_pem = "KEY2" },
      })
      local t = setup({ json(200, {}), json(200, {}), json(200, {}) }, { credentials = creds })
      t.client:get("/a")
      t.client:get("/a")
      assert.are.equal(1, #t.http.clients)
      t.client:get("/a")
      assert.are.equal(2, #t.http.clients)
      assert.is_true(t.http.clients[1].closed)
      assert.are.equal("CERT2", t.http.clients[2].opts.client_cert_pem)
      assert.are.equal("/ca.crt", t.http.clients[2].opts.ca_file)
    end)

    it("close() closes the client and the next request reconnects", function()
      local t = setup({ json(200, {}), json(200, {}) })
      t.client:get("/a")
      t.client:close()
      assert.is_true(t.http.clients[1].closed)
      t.client:get("/a")
      assert.are.equal(2, #t.http.clients)
    end)
  end)

  describe("logging", function()
    it("logs one debug line per attempt with method, path, status and attempt", function()
      local t = setup({ { status = 503, body = "" }, json(200, {}) })
      t.client:get("/api/v1/pods", { query = { labelSelector = "a=b" } })
      assert.are.equal(2, t.log.count("debug"))
      assert.are.equal(2, t.log.count())
      local f = t.log.lines[2].fields
      assert.are.equal("GET", f.method)
      assert.are.equal("/api/v1/pods", f.path)
      assert.are.equal(200, f.status)
      assert.are.equal(2, f.attempt)
      assert.is_number(f.duration_ms)
    end)

    it("never puts the token in an error or a log line", function()
      local t = setup({
        { status = 401, body = "" },
        { status = 500, body = status_body(500, "InternalError", "boom") },
        { code = "connect", err = "host.http.request: couldn't connect" },
        { code = "tls" },
        json(200, { data = TOKEN }),
      })
      local r = call(t, "GET", "/a") -- 401, retried at once; 500; connect; tls: the last error
      assert.are.equal("tls", r[2].code)
      for _, v in pairs(r[2]) do
        assert.is_nil(tostring(v):find(TOKEN, 1, true))
      end
      assert.are.equal(TOKEN, call(t, "GET", "/a")[1].data)
      assert.are.equal(5, t.log.count("debug"))
      assert.is_nil(t.log.text():find(TOKEN, 1, true))
    end)
  end)

  describe("convenience methods", function()
    it("get, post, put and delete send their method and body", function()
      local t = setup({ json(200, {}), json(201, {}), json(200, {}), json(200, {}) })
      t.client:get("/a")
      t.client:post("/a", { kind = "A" }, { query = { dryRun = "All" } })
      t.client:put("/a", { kind = "B" })
      t.client:delete("/a")
      local got = {}
      for i, req in ipairs(t.http.requests) do
        got[i] = req.method .. " " .. req.url:sub(#SERVER + 1) .. " " .. tostring(req.body)
      end
      assert.are.same({ "GET /a nil", 'POST /a?dryRun=All {"kind":"A"}', 'PUT /a {"kind":"B"}', "DELETE /a nil" }, got)
    end)
  end)
end)
