-- host.time (host/bindings/time.c): formatters at known instants, clocks,
-- RFC 3339 parsing, and independence from the TZ environment.
local time = require("host.time")

local BUILD = os.getenv("MYAPISERVER_BUILD_DIR") or "build"
local T_2026 = 1795512435 -- 2026-11-24T09:27:15Z, the instant in the docs

-- Runs a Lua script in a child lua5.4 with `env` prepended to the command
-- (e.g. "TZ=Asia/Shanghai") and the build tree's modules on the cpath.
local function run_child(env, body)
  local path = os.tmpname()
  local f = assert(io.open(path, "w"))
  f:write(string.format("package.cpath = %q .. package.cpath\n", BUILD .. "/lua/?.so;"), body)
  f:close()
  local p = assert(io.popen(env .. " lua5.4 " .. path .. " 2>&1"))
  local out = p:read("a")
  local ok = p:close()
  os.remove(path)
  return out, ok
end

local function raises(fn, ...)
  local ok, err = pcall(fn, ...)
  return not ok, tostring(err)
end

describe("host.time formatters", function()
  local cases = {
    {
      t = 0,
      iso = "1970-01-01T00:00:00Z",
      micro = "1970-01-01T00:00:00.000000Z",
      amz = "19700101T000000Z",
      http = "Thu, 01 Jan 1970 00:00:00 GMT",
      date = "1970-01-01",
    },
    {
      t = 951782400,
      iso = "2000-02-29T00:00:00Z",
      micro = "2000-02-29T00:00:00.000000Z",
      amz = "20000229T000000Z",
      http = "Tue, 29 Feb 2000 00:00:00 GMT",
      date = "2000-02-29",
    },
    {
      t = 1700000000,
      iso = "2023-11-14T22:13:20Z",
      micro = "2023-11-14T22:13:20.000000Z",
      amz = "20231114T221320Z",
      http = "Tue, 14 Nov 2023 22:13:20 GMT",
      date = "2023-11-14",
    },
    {
      t = 1700000000.123456,
      iso = "2023-11-14T22:13:20Z",
      micro = "2023-11-14T22:13:20.123456Z",
      amz = "20231114T221320Z",
      http = "Tue, 14 Nov 2023 22:13:20 GMT",
      date = "2023-11-14",
    },
    {
      t = T_2026 + 0.999,
      iso = "2026-11-24T09:27:15Z",
      micro = "2026-11-24T09:27:15.999000Z",
      amz = "20261124T092715Z",
      http = "Tue, 24 Nov 2026 09:27:15 GMT",
      date = "2026-11-24",
    },
    {
      t = -0.5, -- before the epoch the fraction still belongs to the second before
      iso = "1969-12-31T23:59:59Z",
      micro = "1969-12-31T23:59:59.500000Z",
      amz = "19691231T235959Z",
      http = "Wed, 31 Dec 1969 23:59:59 GMT",
      date = "1969-12-31",
    },
  }

  for _, c in ipairs(cases) do
    it("formats " .. tostring(c.t), function()
      assert.are.equal(c.iso, time.iso8601(c.t))
      assert.are.equal(c.micro, time.iso8601_micro(c.t))
      assert.are.equal(c.amz, time.amz_date(c.t))
      assert.are.equal(c.http, time.rfc1123(c.t))
      assert.are.equal(c.date, time.date(c.t))
    end)
  end

  it("truncates the fraction in the seconds formats", function()
    assert.are.equal("2023-11-14T22:13:20Z", time.iso8601(1700000000.9999))
    assert.are.equal("20231114T221320Z", time.amz_date(1700000000.9999))
  end)

  it("formats the current time when t is omitted", function()
    local before = time.iso8601(os.time())
    local got = time.iso8601()
    assert.truthy(got:match("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%dZ$"))
    assert.truthy(got >= before)
    assert.truthy(time.iso8601_micro():match("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%d%d%d%dZ$"))
    assert.truthy(time.rfc1123():match("^%a%a%a, %d%d %a%a%a %d%d%d%d %d%d:%d%d:%d%d GMT$"))
    assert.truthy(time.date(nil):match("^%d%d%d%d%-%d%d%-%d%d$"))
  end)

  it("covers the four-digit-year range and refuses beyond it", function()
    assert.are.equal("0001-01-01T00:00:00Z", time.iso8601(-62135596800))
    assert.are.equal("9999-12-31T23:59:59Z", time.iso8601(253402300799))
    assert.is_true((raises(time.iso8601, -62135596801)))
    assert.is_true((raises(time.iso8601, 253402300800)))
  end)

  it("raises on misuse, naming the function", function()
    for _, name in ipairs({ "iso8601", "iso8601_micro", "amz_date", "rfc1123", "date" }) do
      for _, bad in ipairs({ "1700000000", {}, true, 0 / 0, math.huge, -math.huge, 1e12 }) do
        local raised, err = raises(time[name], bad)
        assert.is_true(raised, name .. " accepted " .. tostring(bad))
        assert.truthy(err:find("host.time." .. name, 1, true), err)
      end
    end
  end)
end)

describe("host.time clocks", function()
  it("now() is Unix time with a fraction", function()
    local now = time.now()
    assert.are.equal("number", type(now))
    assert.is_true(math.abs(now - os.time()) < 2)
    assert.is_true(math.type(now) == "float")
  end)

  it("monotonic() never goes back and advances", function()
    local last = time.monotonic()
    local first = last
    for _ = 1, 1000 do
      local m = time.monotonic()
      assert.is_true(m >= last)
      last = m
    end
    local start = os.clock()
    while os.clock() - start < 0.01 do -- busy wait: no sleep in plain Lua
    end
    assert.is_true(time.monotonic() > first)
  end)
end)

describe("host.time.parse_iso8601", function()
  it("parses Z and offsets to the same instant", function()
    assert.are.equal(T_2026, time.parse_iso8601("2026-11-24T09:27:15Z"))
    assert.are.equal(T_2026, time.parse_iso8601("2026-11-24T10:27:15+01:00"))
    assert.are.equal(T_2026, time.parse_iso8601("2026-11-24T03:57:15-05:30"))
    assert.are.equal(T_2026, time.parse_iso8601("2026-11-24T09:27:15+00:00"))
    assert.are.equal(T_2026, time.parse_iso8601("2026-11-24t09:27:15z"))
    assert.are.equal(T_2026 - (23 * 3600 + 59 * 60), time.parse_iso8601("2026-11-24T09:27:15+23:59"))
    assert.are.equal(T_2026 + 23 * 3600 + 59 * 60, time.parse_iso8601("2026-11-24T09:27:15-23:59"))
  end)

  it("returns a float", function()
    assert.are.equal("float", math.type(time.parse_iso8601("2026-11-24T09:27:15Z")))
  end)

  it("keeps fractional seconds", function()
    assert.are.equal(T_2026 + 0.5, time.parse_iso8601("2026-11-24T09:27:15.5Z"))
    assert.is_true(math.abs(time.parse_iso8601("2026-11-24T09:27:15.123456Z") - (T_2026 + 0.123456)) < 1e-6)
    assert.is_true(math.abs(time.parse_iso8601("2026-11-24T10:27:15.25+01:00") - (T_2026 + 0.25)) < 1e-9)
    -- nanoseconds (Go's RFC3339Nano) and beyond
    assert.is_true(math.abs(time.parse_iso8601("2026-11-24T09:27:15.123456789123Z") - (T_2026 + 0.123456789)) < 1e-6)
  end)

  it("round-trips with the formatters", function()
    for _, t in ipairs({ 0, 951782400, 1700000000, T_2026, -62135596800, 253402300799 }) do
      assert.are.equal(t, time.parse_iso8601(time.iso8601(t)))
    end
    local micros = { "2026-11-24T09:27:15.123456Z", "2000-02-29T23:59:59.000001Z", "1970-01-01T00:00:00.999999Z" }
    for _, s in ipairs(micros) do
      assert.are.equal(s, time.iso8601_micro(time.parse_iso8601(s)))
    end
  end)

  it("knows leap years", function()
    assert.are.equal(951782400, time.parse_iso8601("2000-02-29T00:00:00Z"))
    assert.is_not_nil(time.parse_iso8601("2024-02-29T00:00:00Z"))
    assert.is_nil(time.parse_iso8601("1900-02-29T00:00:00Z"))
    assert.is_nil(time.parse_iso8601("2023-02-29T00:00:00Z"))
  end)

  it("returns nil, message, invalid_time for bad input", function()
    local bad = {
      "2026-13-01T00:00:00Z",
      "yesterday",
      "",
      "2026-11-24T09:27:15", -- missing zone
      "2026-11-24 09:27:15Z",
      "2026-11-24T24:00:00Z",
      "2026-11-24T09:60:00Z",
      "2026-11-24T09:27:60Z",
      "2026-11-31T00:00:00Z",
      "2026-00-10T00:00:00Z",
      "2026-11-24T09:27:15+1:00",
      "2026-11-24T09:27:15+01:60",
      "2026-11-24T09:27:15+0100",
      "2026-11-24T09:27:15.Z",
      "2026-11-24T09:27:15Zjunk",
      "2026-11-24T09:27:15Z\0",
      "+2026-11-24T09:27:15Z",
      "26-11-24T09:27:15Z",
    }
    for _, s in ipairs(bad) do
      local t, message, code = time.parse_iso8601(s)
      assert.is_nil(t, s)
      assert.are.equal("invalid_time", code, s)
      assert.truthy(message:find("host.time.parse_iso8601", 1, true), message)
    end
  end)

  it("raises on a non-string", function()
    for _, bad in ipairs({ 1795512435, {}, true }) do
      local raised, err = raises(time.parse_iso8601, bad)
      assert.is_true(raised)
      assert.truthy(err:find("host.time.parse_iso8601", 1, true), err)
    end
    assert.is_true((raises(time.parse_iso8601)))
  end)
end)

describe("host.time and TZ", function()
  -- Everything the module returns for a set of inputs, one value a line.
  local probe = [[
local time = require("host.time")
local out = {}
for _, t in ipairs({ 0, 951782400, 1700000000, 1700000000.123456, 1795512435.25, -0.5 }) do
  out[#out + 1] = table.concat({ time.iso8601(t), time.iso8601_micro(t), time.amz_date(t),
    time.rfc1123(t), time.date(t) }, "|")
end
for _, s in ipairs({ "2026-11-24T09:27:15Z", "2026-11-24T10:27:15+01:00", "2000-02-29T12:00:00.5-08:00",
    "1969-12-31T23:59:59.25Z" }) do
  out[#out + 1] = string.format("%.17g", time.parse_iso8601(s))
end
io.write(table.concat(out, "\n"), "\n")
]]

  local function expected()
    local out = {}
    for _, t in ipairs({ 0, 951782400, 1700000000, 1700000000.123456, 1795512435.25, -0.5 }) do
      out[#out + 1] = table.concat({ time.iso8601(t), time.iso8601_micro(t), time.amz_date(t),
        time.rfc1123(t), time.date(t) }, "|")
    end
    for _, s in ipairs({ "2026-11-24T09:27:15Z", "2026-11-24T10:27:15+01:00", "2000-02-29T12:00:00.5-08:00",
      "1969-12-31T23:59:59.25Z" }) do
      out[#out + 1] = string.format("%.17g", time.parse_iso8601(s))
    end
    return table.concat(out, "\n") .. "\n"
  end

  for _, tz in ipairs({ "Asia/Shanghai", "America/St_Johns", "UTC" }) do
    it("gives the same results with TZ=" .. tz, function()
      -- The child really is in that zone: its local hour at the epoch differs.
      local hour = run_child("TZ=" .. tz, 'io.write(os.date("%H", 0))')
      if tz == "Asia/Shanghai" then
        assert.are.equal("08", hour)
      end
      local out, ok = run_child("TZ=" .. tz, probe)
      assert.is_true(ok, out)
      assert.are.equal(expected(), out)
    end)
  end

  it("gives the same results in a non-C locale", function()
    local out, ok = run_child("LC_ALL=C.UTF-8 TZ=Asia/Shanghai",
      'os.setlocale("") ' .. probe)
    assert.is_true(ok, out)
    assert.are.equal(expected(), out)
  end)
end)

describe("sleep()", function()
  it("waits at least the time asked for and returns nothing", function()
    local start = time.monotonic()
    assert.are.equal(0, select("#", time.sleep(0.05)))
    assert.is_true(time.monotonic() - start >= 0.05 - 1e-6)
    assert.are.equal(0, select("#", time.sleep(0)))
    time.sleep(1) -- an integer is fine too
    assert.is_true(time.monotonic() - start >= 1.05 - 1e-6)
  end)

  it("raises unless seconds is a number in 0..3600", function()
    for _, bad in ipairs({ -0.001, -1, 3600.001, 1e9, 0 / 0, math.huge, -math.huge, "0.1", {}, true }) do
      local raised, err = raises(time.sleep, bad)
      assert.is_true(raised, "accepted " .. tostring(bad))
      assert.truthy(err:find("host.time.sleep", 1, true), err)
    end
    assert.is_true((raises(time.sleep)))
    assert.is_true((raises(time.sleep, nil)))
  end)

  it("keeps sleeping the remaining time after a signal interrupts it", function()
    -- lua5.4 handles SIGINT while a chunk runs: the handler makes nanosleep fail
    -- with EINTR, then raises "interrupted!" once the C function returns, which
    -- the child's pcall catches. The signal is sent only once the child is
    -- blocked (state S in /proc), i.e. inside the sleep.
    local path = os.tmpname()
    local f = assert(io.open(path, "w"))
    f:write(string.format("package.cpath = %q .. package.cpath\n", BUILD .. "/lua/?.so;"), [[
local time = require("host.time")
local start = time.monotonic()
io.write("sleeping\n") io.flush()
local ok, err = pcall(time.sleep, 1.5)
io.write(string.format("%s|%s|%.6f\n", tostring(ok), tostring(err), time.monotonic() - start))
]])
    f:close()
    local p = assert(io.popen("sh -c 'echo $$; exec lua5.4 " .. path .. "'"))
    local pid = assert(tonumber(p:read("l")))
    assert.are.equal("sleeping", p:read("l"))
    local state
    repeat
      local stat = io.open("/proc/" .. pid .. "/stat")
      state = stat and stat:read("a"):match("^%d+ %b() (%a)")
      if stat then stat:close() end
    until state == "S" or state == nil
    assert.are.equal("S", state)
    os.execute("kill -INT " .. pid)
    local line = p:read("l")
    p:close()
    os.remove(path)
    local ok, err, elapsed = line:match("^(%a+)|(.-)|([%d.]+)$")
    assert.are.equal("false", ok, line)
    assert.truthy(err:find("interrupted!", 1, true), line)
    assert.is_true(tonumber(elapsed) >= 1.5 - 1e-6, line)
  end)
end)
