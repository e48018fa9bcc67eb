-- identity_headers: who the server thinks is asking (infraops.authn) from
-- fuzzed request headers and certificate names, then what it asks the
-- authorizer (infraops.authz: attributes, SubjectAccessReview spec, cache key,
-- forbidden message).
--
-- Input: one mode byte, then headers NUL common_name NUL organizations NUL settings.
-- headers: "Name: value" lines (names lower-cased and repeated values
-- collected, as host/script_runtime.c push_headers does). organizations:
-- comma-separated. settings: "allowed|username|group|extra|uid" header-name
-- lists (comma-separated), used when mode bit 2 is set; else the usual
-- X-Remote-* settings with allowed name "front-proxy-client".
-- Mode bits 0-1: the peer (0 front-proxy CA verified, 1 client CA verified,
-- 2 presented but unverified, 3 no certificate).
--
-- Checks: authenticate returns a well-formed user (name, groups with
-- system:authenticated, extra of string lists) or nil, message; front-proxy
-- headers count only from a verified front-proxy certificate with an allowed
-- name; the review spec encodes as JSON.
local cjson = require("cjson")
local common = require("harness.common")
local auth_config = require("infraops.auth_config")
local authn = require("infraops.authn")
local authz = require("infraops.authz")

local crypto = require("host.crypto")
local shared = common.shared()
local current_settings

local USERS = { good = { name = "carol", groups = { "dev" }, extra = {} } }

local authenticator = authn.new({
  settings = function() return current_settings end,
  token_review = function(token)
    if token == "error" then
      return nil, "TokenReview failed: connection refused"
    end
    return USERS[token] or false
  end,
  cache = shared, crypto = crypto, cjson = cjson, token_ttl = 10, log = common.log(),
})

local authorizer = authz.new({
  review = function(spec)
    local ok, encoded = pcall(cjson.encode, spec)
    if not ok then
      common.fail("the SubjectAccessReview spec does not encode: %s", encoded)
    end
    return { allowed = #encoded % 2 == 0, reason = "decided by the fuzzer" }
  end,
  cache = shared, crypto = crypto, cjson = cjson, allowed_ttl = 10, denied_ttl = 10, allow_paths = { "/healthz" },
})

local DEFAULT_SETTINGS = auth_config.from_flags({
  ["requestheader-allowed-names"] = "front-proxy-client",
  ["requestheader-username-headers"] = "X-Remote-User",
  ["requestheader-group-headers"] = "X-Remote-Group",
  ["requestheader-extra-headers-prefix"] = "X-Remote-Extra-",
  ["requestheader-uid-headers"] = "X-Remote-Uid",
})

local function parse_settings(text)
  local parts = {}
  for part in (text .. "|"):gmatch("([^|]*)|") do
    parts[#parts + 1] = auth_config.split_list(part)
  end
  return { allowed_names = parts[1] or {}, username_headers = parts[2] or {}, group_headers = parts[3] or {},
    extra_prefixes = parts[4] or {}, uid_headers = parts[5] or {} }
end

-- As push_headers: lower-case names, every value of a repeated name kept.
-- libmicrohttpd trims the blanks around a value.
local function parse_headers(block)
  local headers = {}
  for line in block:gmatch("[^\r\n]+") do
    local name, value = line:match("^([^:]+):[ \t]*(.-)[ \t]*$")
    if name then
      name = name:lower()
      headers[name] = headers[name] or {}
      table.insert(headers[name], value)
    end
  end
  return headers
end

local function peer(kind, cn, orgs)
  local p = { presented = kind ~= 3, verified_requestheader = kind == 0, verified_client_ca = kind == 1 }
  if kind <= 1 then
    p.common_name, p.organizations, p.sha256 = cn, auth_config.split_list(orgs), string.rep("0f", 32)
  end
  return p
end

local function check_user(user, req, settings)
  if type(user.name) ~= "string" or not common.is_string_list(user.groups)
    or (user.uid ~= nil and type(user.uid) ~= "string") or type(user.extra) ~= "table" then
    common.fail("authenticate returned a malformed user")
  end
  for key, values in pairs(user.extra) do
    if type(key) ~= "string" or not common.is_string_list(values) then
      common.fail("user.extra[%s] is not a list of strings", tostring(key))
    end
  end
  if user ~= authn.ANONYMOUS then
    local has = false
    for _, g in ipairs(user.groups) do
      has = has or g == "system:authenticated"
    end
    if not has then
      common.fail("user %q lacks system:authenticated", user.name)
    end
  end
  if user.via == "front-proxy" then
    local allowed = #settings.allowed_names == 0
    for _, n in ipairs(settings.allowed_names) do
      allowed = allowed or n == req.peer.common_name
    end
    if not req.peer.verified_requestheader or not allowed then
      common.fail("front-proxy identity accepted from a peer that may not send it")
    end
  end
end

return function(data)
  local mode, rest = common.byte(data)
  local fields = common.split(rest, 4)
  shared.reset()
  current_settings = mode & 4 ~= 0 and parse_settings(fields[4]) or DEFAULT_SETTINGS
  local req = { id = "fuzz", method = "GET", path = "/apis/infraops.michael.io/v1/nodes", query = {},
    headers = parse_headers(fields[1]), body = "", peer = peer(mode & 3, fields[2], fields[3]) }
  local user, why = authenticator.authenticate(req)
  if not common.check_result("authenticate", user, why) then
    return
  end
  check_user(user, req, current_settings)
  local segments = { "apis", "infraops.michael.io", "v1", "nodes" }
  local attrs = authz.attributes(req.method, segments, {}, req.path)
  local allowed, reason = authorizer.authorize(user, attrs)
  if allowed == false then
    authz.forbidden_message(user, attrs, reason)
  end
  -- A second time: the answer now comes from the cache and must agree.
  local again = authorizer.authorize(user, attrs)
  if again ~= allowed then
    common.fail("the cached authorization decision differs from the first")
  end
end
