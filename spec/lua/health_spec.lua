-- infraops.health (lua/infraops/health.lua): /healthz, /livez, /readyz as
-- k8s.io/apiserver answers them (../shared/docs/k8s-aggregation.md section 7).
local health = require("infraops.health")

local SECRET = "dial tcp 10.0.0.7:443: secret-internal-host refused"

local function passing(name)
  return { name = name, run = function() return true end }
end

local function failing(name, reason)
  return { name = name, run = function() return false, reason end }
end

local function raising(name, message)
  return { name = name, run = function() error(message, 0) end }
end

-- A host.log-like logger that records every call.
local function fake_log()
  local log = { lines = {} }
  for _, level in ipairs({ "debug", "info", "warn", "error" }) do
    log[level] = function(message, fields)
      log.lines[#log.lines + 1] = { level = level, message = message, fields = fields or {} }
    end
  end
  return log
end

local function split_lines(body)
  local lines = {}
  for line in body:gmatch("([^\n]*)\n") do
    lines[#lines + 1] = line
  end
  return lines
end

local function assert_plain_headers(res)
  assert.are.equal("text/plain; charset=utf-8", res.headers["Content-Type"])
  assert.are.equal("nosniff", res.headers["X-Content-Type-Options"])
end

describe("infraops.health", function()
  describe("handle()", function()
    it("answers plain ok when every check passes", function()
      local h = health.new({ livez = { passing("ping"), passing("log") } })
      local res = h.handle({ "livez" }, {})
      assert.are.equal(200, res.status)
      assert.are.equal("ok", res.body)
      assert_plain_headers(res)
    end)

    it("lists every check with ?verbose and ends with '<name> check passed'", function()
      local h = health.new({ readyz = { passing("ping"), passing("informer-sync") } })
      local res = h.handle({ "readyz" }, { verbose = { "" } })
      assert.are.equal(200, res.status)
      assert_plain_headers(res)
      assert.are.same({ "[+]ping ok", "[+]informer-sync ok", "readyz check passed" }, split_lines(res.body))
      assert.are.equal("\n", res.body:sub(-1))
    end)

    it("answers 500 for a failing check, withholding the reason", function()
      local log = fake_log()
      local h = health.new({ healthz = { passing("ping"), failing("cloud", SECRET) } }, log)
      local res = h.handle({ "healthz" }, {})
      assert.are.equal(500, res.status)
      assert_plain_headers(res)
      assert.are.same({ "[+]ping ok", "[-]cloud failed: reason withheld", "healthz check failed" },
        split_lines(res.body))
      assert.is_nil(res.body:find("secret-internal-host", 1, true))
    end)

    it("logs a failing check with its reason", function()
      local log = fake_log()
      local h = health.new({ healthz = { failing("cloud", SECRET) } }, log)
      h.handle({ "healthz" }, {})
      assert.are.equal(1, #log.lines)
      local line = log.lines[1]
      assert.are.equal("warn", line.level)
      assert.are.equal("healthz", line.fields.endpoint)
      assert.are.equal("cloud", line.fields.check)
      assert.are.equal(SECRET, line.fields.reason)
    end)

    it("logs nothing when every check passes", function()
      local log = fake_log()
      local h = health.new({ healthz = { passing("ping") } }, log)
      h.handle({ "healthz" }, { verbose = { "" } })
      assert.are.equal(0, #log.lines)
    end)

    it("works without a logger", function()
      local h = health.new({ healthz = { failing("cloud", SECRET) } })
      assert.are.equal(500, h.handle({ "healthz" }, {}).status)
    end)

    it("counts a check that raises as failed and logs the error", function()
      local log = fake_log()
      local h = health.new({ livez = { passing("ping"), raising("boom", "kaboom at secret-internal-host") } }, log)
      local res = h.handle({ "livez" }, { verbose = { "" } })
      assert.are.equal(500, res.status)
      assert.are.same({ "[+]ping ok", "[-]boom failed: reason withheld", "livez check failed" }, split_lines(res.body))
      assert.is_nil(res.body:find("secret-internal-host", 1, true))
      assert.are.equal(1, #log.lines)
      assert.are.equal("boom", log.lines[1].fields.check)
      assert.is_truthy(tostring(log.lines[1].fields.reason):find("kaboom", 1, true))
    end)

    it("counts a check returning a non-true value as failed", function()
      local h = health.new({ livez = { { name = "truthy", run = function() return "yes" end } } })
      assert.are.equal(500, h.handle({ "livez" }, {}).status)
    end)

    it("skips a check named by ?exclude", function()
      local log = fake_log()
      local h = health.new({ readyz = { passing("ping"), failing("cloud", SECRET) } }, log)
      local res = h.handle({ "readyz" }, { exclude = { "cloud" } })
      assert.are.equal(200, res.status)
      assert.are.equal("ok", res.body)
      assert.are.equal(0, #log.lines)
    end)

    it("does not run an excluded check at all", function()
      local ran = false
      local slow = { name = "slow", run = function() ran = true; return true end }
      local h = health.new({ readyz = { passing("ping"), slow } })
      local res = h.handle({ "readyz" }, { exclude = { "slow" }, verbose = { "" } })
      assert.is_false(ran)
      assert.are.same({ "[+]ping ok", "readyz check passed" }, split_lines(res.body))
    end)

    it("accepts ?exclude more than once", function()
      local h = health.new({ readyz = { passing("ping"), failing("a", "x"), failing("b", "y") } })
      assert.are.equal(500, h.handle({ "readyz" }, { exclude = { "a" } }).status)
      assert.are.equal(200, h.handle({ "readyz" }, { exclude = { "a", "b" } }).status)
    end)

    it("answers a single passing check at /readyz/<check>", function()
      local h = health.new({ readyz = { passing("ping"), failing("cloud", SECRET) } })
      local res = h.handle({ "readyz", "ping" }, {})
      assert.are.equal(200, res.status)
      assert.are.equal("ok", res.body)
      assert_plain_headers(res)
    end)

    it("answers a single failing check at /readyz/<check> with 500", function()
      local h = health.new({ readyz = { passing("ping"), failing("cloud", "broken") } })
      local res = h.handle({ "readyz", "cloud" }, {})
      assert.are.equal(500, res.status)
      assert_plain_headers(res)
      assert.are.equal("internal server error", res.body:match("^internal server error"))
    end)

    it("answers a single raising check with 500", function()
      local h = health.new({ readyz = { raising("boom", "kaboom") } })
      local res = h.handle({ "readyz", "boom" }, {})
      assert.are.equal(500, res.status)
    end)

    it("returns nil for an unknown check", function()
      local h = health.new({ readyz = { passing("ping") } })
      assert.is_nil(h.handle({ "readyz", "nope" }, {}))
    end)

    it("returns nil for a path that is not a configured endpoint", function()
      local h = health.new({ readyz = { passing("ping") } })
      assert.is_nil(h.handle({ "livez" }, {}))
      assert.is_nil(h.handle({ "apis" }, {}))
      assert.is_nil(h.handle({}, {}))
      assert.is_nil(h.handle({ "readyz", "ping", "extra" }, {}))
    end)
  end)

  describe("optional checks", function()
    it("are listed with ?verbose but do not fail the endpoint, and answer alone at /<endpoint>/<name>", function()
      local optional = failing("provider-x", "no credentials")
      optional.optional = true
      local h = health.new({ readyz = { passing("ping"), optional } }, fake_log())
      local res = h.handle({ "readyz" }, { verbose = { "" } })
      assert.are.equal(200, res.status)
      assert.same({ "[+]ping ok", "[-]provider-x not ready (optional): reason withheld", "readyz check passed" },
        split_lines(res.body))
      assert.are.equal(200, h.handle({ "readyz" }, {}).status)
      assert.are.equal(500, h.handle({ "readyz", "provider-x" }, {}).status)
    end)
  end)
end)
