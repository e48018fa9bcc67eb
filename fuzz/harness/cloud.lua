-- What the cloud harnesses share: the provider registry as the server loads
-- it, a cloud whose answers come from the input (one per HTTP call, in
-- order), and the checks on what restart returns: a result, or a cloud error
-- of docs/providers.md, and no secret in any message or log line.
local common = require("harness.common")

local cloud = {}

cloud.STATUSES = { 200, 400, 401, 403, 404, 412, 429, 500, 502, 503, 504, 302, 0, 200, 200, 200 }

local REASONS = { Throttled = true, Unauthorized = true, Forbidden = true, NotFound = true, InvalidState = true,
  InvalidRequest = true, Unavailable = true, Timeout = true, Internal = true }

--- Builds the world. Returns an object with run(env, files, answers, target, opts, secrets).
-- answers: list of { status, body, headers } (a missing one: a connect error).
function cloud.new()
  local self = { env = {}, files = {}, answers = {}, lines = {} }
  local on_error = function(message, fields)
    if message:find("raised an error", 1, true) then
      common.fail("%s: %s", message, tostring(fields.error))
    end
  end
  local log = common.log(on_error, function(level, message, fields)
    self.lines[#self.lines + 1] = { level = level, message = message, fields = fields }
  end)
  local shared = common.shared()
  local http = common.http(function()
    local answer = table.remove(self.answers, 1)
    if not answer then
      return nil, "connection refused", "connect"
    end
    return answer
  end)
  local registry = common.registry({ log = log, shared = shared, http = http, files = self.files,
    getenv = function(name) return self.env[name] end })
  local PROVIDER_IDS = { aws = "aws:///us-east-1a/i-0123456789abcdef0",
    tencentcloud = "qcloud:///ap-guangzhou-3/ins-3ven36lk" }
  local function target_of(provider)
    return registry.match({ spec = { providerID = PROVIDER_IDS[provider] } })
  end

  -- Our secrets seen in what restart produced. Only suspects: the input can
  -- hold a secret too (the fuzzer learns them from the scrubbers' plain finds),
  -- and a cloud repeating what it was told is no leak. cloud.confirm decides.
  local suspects
  local function check_secrets(text, secrets, where)
    if type(text) ~= "string" then
      return
    end
    for _, secret in ipairs(secrets) do
      if #secret >= 4 and text:find(secret, 1, true) then
        suspects[#suspects + 1] = { secret = secret, where = where, text = text }
      end
    end
  end

  local function check_error(err, secrets)
    if type(err) ~= "table" or not REASONS[err.reason] or type(err.message) ~= "string" then
      common.fail("restart returned nil without a cloud error (reason %s)", tostring(type(err) == "table"
        and err.reason))
    end
    for _, key in ipairs({ "cloud_code", "request_id" }) do
      if err[key] ~= nil and type(err[key]) ~= "string" then
        common.fail("err.%s is a %s", key, type(err[key]))
      end
    end
    if err.retry_after ~= nil and (type(err.retry_after) ~= "number" or err.retry_after ~= err.retry_after) then
      common.fail("err.retry_after is %s", tostring(err.retry_after))
    end
    check_secrets(err.message, secrets, "the error message")
  end

  --- One restart of `provider` with env, files and answers; checks the
  -- outcome. secrets: ours, must show nowhere. Returns result, err, and the
  -- places where one of our secrets showed (for cloud.confirm).
  function self.run(provider, opts, secrets)
    shared.reset()
    self.lines = {}
    suspects = {}
    local result, err = registry.restart(target_of(provider), select(2, target_of(provider)), opts)
    if result then
      if type(result) ~= "table" or (result.request_id ~= nil and type(result.request_id) ~= "string") then
        common.fail("restart returned a malformed result")
      end
    else
      check_error(err, secrets)
    end
    for _, line in ipairs(self.lines) do
      check_secrets(line.message, secrets, "a log line")
      for key, value in pairs(line.fields) do
        check_secrets(tostring(value), secrets, "log field " .. tostring(key))
      end
    end
    return result, err, suspects
  end

  return self
end

local function replace_plain(text, old, new)
  local parts, pos = {}, 1
  while true do
    local s, e = text:find(old, pos, true)
    if not s then
      break
    end
    parts[#parts + 1] = text:sub(pos, s - 1) .. new
    pos = e + 1
  end
  parts[#parts + 1] = text:sub(pos)
  return table.concat(parts)
end

-- A marker of n random letters found in none of the fields. Random, because
-- libFuzzer sees the harness's own comparisons too and would learn a fixed
-- marker and put it into inputs.
local function new_marker(n, fields)
  while true do
    local letters = {}
    for i = 1, n do
      letters[i] = string.char(math.random(65, 90) + (math.random(0, 1) * 32))
    end
    local marker = table.concat(letters)
    local unused = true
    for _, field in ipairs(fields) do
      unused = unused and not field:find(marker, 1, true)
    end
    if unused then
      return marker
    end
  end
end

-- The fields with `secret` replaced by a marker of the same length (in field
-- `only` alone when given).
local function taint(fields, secret, only)
  local marker = new_marker(#secret, fields)
  local tainted = {}
  for i, field in ipairs(fields) do
    tainted[i] = (only == nil or only == i) and replace_plain(field, secret, marker) or field
  end
  return tainted, marker
end

--- Decides whether a secret really leaked, by taint: the input is run again
-- with the secret replaced by a marker of the same length.
-- * Our secrets (suspects from run): still there without the input's copies,
--   so they came from our configuration: a leak.
-- * Secrets a cloud handed out (issued in the first answer, e.g. STS
--   credentials) must not reach the error message: replaced in that answer
--   only, the marker shows there, so it flowed from the credentials (seeing
--   the text alone can be chance, a short "secret" our wording holds, or the
--   next answer repeating it).
-- attempt(fields) -> result, err, suspects, issued.
function cloud.confirm(attempt, fields, err, suspects, issued)
  for _, s in ipairs(suspects) do
    local _, _, again = attempt((taint(fields, s.secret)))
    for _, t in ipairs(again) do
      if t.secret == s.secret then
        common.fail("%s shows the secret %q: %s", t.where, t.secret, t.text)
      end
    end
  end
  if type(err) ~= "table" or type(err.message) ~= "string" then
    return
  end
  for _, secret in ipairs(issued) do
    if #secret >= 4 and err.message:find(secret, 1, true) then
      local tainted, marker = taint(fields, secret, 1)
      local _, again = attempt(tainted)
      if type(again) == "table" and type(again.message) == "string" and again.message:find(marker, 1, true) then
        common.fail("a secret the cloud issued reaches the error message: %s", again.message)
      end
    end
  end
end

--- A response from a status selector, a body and optional header values.
function cloud.answer(selector, body, retry_after, request_id)
  local headers = {}
  if retry_after ~= "" then
    headers["retry-after"] = retry_after
  end
  if request_id ~= "" then
    headers["x-amzn-requestid"] = request_id
  end
  return { status = cloud.STATUSES[selector % #cloud.STATUSES + 1], headers = headers, body = body }
end

return cloud
