-- host.log (host/bindings/log.c): a child lua5.4 logs to stderr and the spec
-- parses its lines. Thread interleaving is C-side: host/tests/log_test.c.
local cjson = require("cjson")
local log = require("host.log")

local BUILD = os.getenv("MYAPISERVER_BUILD_DIR") or "build"
local ELLIPSIS = "\226\128\166" -- U+2026
local TS = "%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%dZ"

-- Runs `body` in a child lua5.4 with `log` = require("host.log") and returns
-- its stderr (and stdout) as a list of lines.
local function run_log(body)
  local path = os.tmpname()
  local f = assert(io.open(path, "w"))
  f:write(string.format("package.cpath = %q .. package.cpath\n", BUILD .. "/lua/?.so;"),
    'local log = require("host.log")\n', body)
  f:close()
  local p = assert(io.popen("lua5.4 " .. path .. " 2>&1"))
  local out = p:read("a")
  local ok = p:close()
  os.remove(path)
  assert(ok, out)
  local lines = {}
  for line in out:gmatch("([^\n]*)\n") do
    lines[#lines + 1] = line
  end
  assert(out == "" or out:sub(-1) == "\n", "output does not end in a newline: " .. out)
  return lines, out
end

-- The keys of a flat JSON object line in the order they appear.
local function key_order(line)
  local keys = {}
  for key in line:gmatch('[{,]"([^"]*)":') do
    keys[#keys + 1] = key
  end
  return keys
end

local function raises(fn, ...)
  local ok, err = pcall(fn, ...)
  return not ok, tostring(err)
end

describe("host.log JSON lines", function()
  it("writes ts, level, msg and the fields as strings", function()
    local lines = run_log([[
log.configure{ level = "debug", format = "json" }
log.info("hello", { zeta = "z", alpha = "a", n = 3, f = 1.5, whole = 2.0, neg = -7, yes = true, no = false })
log.debug("d") log.warn("w") log.error("e")
]])
    assert.are.equal(4, #lines)
    local rec = cjson.decode(lines[1])
    assert.truthy(rec.ts:match("^" .. TS .. "$"), rec.ts)
    assert.are.equal("info", rec.level)
    assert.are.equal("hello", rec.msg)
    assert.are.same({ "z", "a", "3", "1.5", "2", "-7", "true", "false" },
      { rec.zeta, rec.alpha, rec.n, rec.f, rec.whole, rec.neg, rec.yes, rec.no })
    assert.are.same({ "debug", "warn", "error" },
      { cjson.decode(lines[2]).level, cjson.decode(lines[3]).level, cjson.decode(lines[4]).level })
    assert.are.equal("d", cjson.decode(lines[2]).msg)
  end)

  it("writes keys in sorted order after ts, level and msg", function()
    local lines = run_log([[
log.configure{ format = "json" }
log.info("sorted", { zeta = "1", alpha = "2", Mid = "3", beta_2 = "4", beta = "5" })
log.info("sorted", { beta = "5", beta_2 = "4", Mid = "3", alpha = "2", zeta = "1" })
]])
    assert.are.same({ "ts", "level", "msg", "Mid", "alpha", "beta", "beta_2", "zeta" }, key_order(lines[1]))
    assert.are.equal(lines[1]:gsub('"ts":"[^"]*"', ""), lines[2]:gsub('"ts":"[^"]*"', ""))
  end)

  it("escapes quotes, backslashes, newlines and control characters", function()
    local lines = run_log([[
log.configure{ format = "json" }
log.info('say "hi"\\ then\nnext\tline\r\1\31\127 é ✓', { v = '"\n\0' })
]])
    assert.are.equal(1, #lines)
    assert.truthy(lines[1]:find('"msg":"say \\"hi\\"\\\\ then\\nnext\\tline\\r\\u0001\\u001f', 1, true), lines[1])
    local rec = cjson.decode(lines[1])
    assert.are.equal('say "hi"\\ then\nnext\tline\r\1\31\127 é ✓', rec.msg)
    assert.are.equal('"\n', rec.v) -- the C API stops at a NUL
  end)

  it("replaces invalid UTF-8 with U+FFFD so the line stays valid", function()
    local lines = run_log([[
log.configure{ format = "json" }
log.info("bad \255\254 overlong \192\175 surrogate \237\160\128 cut \226\130", { ["k\255"] = "v\128" })
]])
    assert.are.equal(1, #lines)
    assert.is_not_nil(utf8.len(lines[1]), "line is not valid UTF-8")
    local rec = cjson.decode(lines[1])
    local r = "\239\191\189"
    assert.are.equal("bad " .. r .. r .. " overlong " .. r .. r .. " surrogate " .. r .. r .. r .. " cut " .. r .. r,
      rec.msg)
    assert.are.equal("v" .. r, rec["k" .. r])
  end)

  it("truncates a 100 KB message to one valid line, keeping the other fields", function()
    local lines = run_log([[
log.configure{ format = "json" }
log.info(string.rep("m", 100000), { after = "kept", also = string.rep("\n", 30000) })
log.info("next line")
]])
    assert.are.equal(2, #lines)
    assert.is_true(#lines[1] + 1 <= 16384, "line is " .. #lines[1] .. " bytes")
    local rec = cjson.decode(lines[1])
    assert.are.equal("true", rec.truncated)
    assert.are.equal("kept", rec.after)
    assert.are.equal(ELLIPSIS, rec.msg:sub(-3))
    assert.truthy(rec.msg:match("^m+" .. ELLIPSIS .. "$"))
    assert.truthy(rec.also:match("^\n+" .. ELLIPSIS .. "$"))
    assert.is_true(#rec.msg > 4000)
    assert.are.equal("next line", cjson.decode(lines[2]).msg)
  end)
end)

describe("host.log levels", function()
  it("defaults to info and hides lower levels", function()
    local lines = run_log([[
io.stderr:write(tostring(log.enabled("debug")), " ", tostring(log.enabled("info")), "\n")
log.debug("hidden")
log.info("shown")
]])
    assert.are.equal("false true", lines[1])
    assert.are.equal(2, #lines)
    assert.truthy(lines[2]:match("^" .. TS .. " INFO shown$"), lines[2])
  end)

  it("filters by the configured level", function()
    local lines = run_log([[
log.configure{ level = "warn", format = "json" }
log.debug("no") log.info("no") log.warn("yes") log.error("yes")
log.configure{ level = "error" }
log.warn("no") log.error("yes")
log.configure{ level = "debug" }
log.debug("yes")
]])
    assert.are.equal(4, #lines)
    for _, line in ipairs(lines) do
      assert.are.equal("yes", cjson.decode(line).msg)
    end
  end)

  it("log.enabled follows configure and accepts warning and any case", function()
    local lines = run_log([[
local out = {}
for _, level in ipairs({ "warn", "error" }) do
  log.configure{ level = level }
  for _, name in ipairs({ "debug", "INFO", "warning", "Error" }) do
    out[#out + 1] = tostring(log.enabled(name))
  end
end
io.stderr:write(table.concat(out, " "), "\n")
]])
    assert.are.same({ "false false true true false false false true" }, lines)
  end)
end)

describe("host.log redaction", function()
  it("redacts every sensitive key form, in JSON and text", function()
    local body = [[
log.info("r", { authorization = "s1", Authorization_x = "v1", token = "s2", TOKEN2 = "v2", password = "s3",
  Secret = "s4", github_token = "s5", client_secret = "s6", secret_access_key = "s7", API_KEY = "s8",
  key = "v3", keyboard = "v4", tokens = "v5", secretary = "v6" })
]]
    local json = run_log('log.configure{ format = "json" }\n' .. body)
    local text = run_log('log.configure{ format = "text" }\n' .. body)
    local rec = cjson.decode(json[1])
    for key, value in pairs(rec) do
      if value:match("^s%d$") then
        error("secret " .. key .. " written: " .. json[1])
      end
    end
    for _, key in ipairs({ "authorization", "token", "password", "Secret", "github_token", "client_secret",
      "secret_access_key", "API_KEY" }) do
      assert.are.equal("[redacted]", rec[key], key)
      assert.truthy(text[1]:find(" " .. key .. "=[redacted]", 1, true), key .. ": " .. text[1])
    end
    assert.are.same({ "v1", "v2", "v3", "v4", "v5", "v6" },
      { rec.Authorization_x, rec.TOKEN2, rec.key, rec.keyboard, rec.tokens, rec.secretary })
    assert.is_nil(text[1]:find("s%d"))
  end)
end)

describe("host.log text lines", function()
  it("quotes values with spaces, quotes, = or control characters", function()
    local lines = run_log([[
log.configure{ format = "text" }
log.warn("text msg", { plain = "v", spaced = "a b", eq = "k=v", quote = 'say "hi"', nl = "x\ny", empty = "",
  utf = "é✓", bad = "\255", n = 42, f = 0.25 })
log.info("multi\nline \"msg\"")
]])
    assert.are.equal(2, #lines)
    local ts, rest = lines[1]:match("^(" .. TS .. ")(.*)$")
    assert.is_not_nil(ts, lines[1])
    assert.are.equal(' WARN text msg bad="\\xff" empty="" eq="k=v" f=0.25 n=42 nl="x\\ny" plain=v'
      .. ' quote="say \\"hi\\"" spaced="a b" utf=é✓', rest)
    assert.truthy(lines[2]:match("^" .. TS .. ' INFO multi\\nline "msg"$'), lines[2])
  end)

  it("truncates long text lines with an ellipsis and a mark", function()
    local lines = run_log([[
log.configure{ format = "text" }
log.error("big", { v = string.rep("a b", 20000) })
]])
    assert.are.equal(1, #lines)
    assert.is_true(#lines[1] + 1 <= 16384)
    assert.truthy(lines[1]:match(' v="[a b]+' .. ELLIPSIS .. '" truncated=true$'), lines[1]:sub(-60))
  end)
end)

describe("host.log misuse", function()
  it("raises naming the function", function()
    local cases = {
      { log.info, { 42 }, "host.log.info: msg must be a string" },
      { log.warn, { nil }, "host.log.warn: msg must be a string" },
      { log.error, { "m", "fields" }, "host.log.error: fields must be a table" },
      { log.error, { "m", { t = {} } }, "host.log.error: field 't' must be a string, number or boolean" },
      { log.error, { "m", { f = print } }, "host.log.error: field 'f'" },
      { log.error, { "m", { "positional" } }, "host.log.error: field keys must be strings" },
      { log.enabled, { "loud" }, "host.log.enabled: unknown level 'loud'" },
      { log.enabled, { 1 }, "host.log.enabled: unknown level" },
      { log.configure, { { level = "loud" } }, "host.log.configure: unknown level 'loud'" },
      { log.configure, { { format = "xml" } }, "host.log.configure: format must be" },
      { log.configure, { "json" }, "host.log.configure: expected a table" },
    }
    for _, c in ipairs(cases) do
      local raised, err = raises(c[1], table.unpack(c[2], 1, 2))
      assert.is_true(raised, c[3])
      assert.truthy(err:find(c[3], 1, true), err)
    end
  end)

  it("refuses more than 64 fields", function()
    local fields = {}
    for i = 1, 65 do
      fields["k" .. i] = i
    end
    local raised, err = raises(log.error, "m", fields)
    assert.is_true(raised)
    assert.truthy(err:find("more than 64 fields", 1, true), err)
  end)

  it("does no field work for a disabled level", function()
    -- Level info (the default) in this process: debug returns at once.
    log.configure({ level = "info" })
    assert.is_false(log.enabled("debug"))
    assert.has_no.errors(function() log.debug("m", { t = {} }) end)
    assert.is_true((raises(log.debug, 42)))
  end)
end)
