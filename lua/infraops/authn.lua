-- Who is asking, in kube's order (k8s.io/apiserver delegating authenticator):
--   1. request header (front-proxy): only for a client certificate that
--      verified against the request-header CA and whose CN is allowed;
--   2. client certificate verified against the client CA: user = CN, groups = O;
--   3. Authorization: Bearer, checked with a TokenReview (answers cached);
--   4. otherwise anonymous.
-- The first success wins; errors are collected and, with no success, the
-- request is refused (401). X-Remote-* headers from anyone else are ignored.
local authn = {}

local AUTHENTICATED = "system:authenticated"
local CREDENTIAL_ID = "authentication.kubernetes.io/credential-id"

authn.ANONYMOUS = { name = "system:anonymous", groups = { "system:unauthenticated" }, extra = {} }

local function contains(list, value)
  for _, v in ipairs(list) do
    if v == value then
      return true
    end
  end
  return false
end

-- Kube appends system:authenticated to every non-anonymous user.
local function with_authenticated(groups)
  local out = {}
  for _, g in ipairs(groups) do
    out[#out + 1] = g
  end
  if not contains(out, AUTHENTICATED) then
    out[#out + 1] = AUTHENTICATED
  end
  return out
end

-- The user (or uid) header as kube reads it (k8s.io/apiserver requestheader
-- headerValue: http.Header.Get per name): the first line of the first named
-- header whose first line is not empty. An empty first line is not skipped in
-- favour of a later line of the same header.
local function first_value(headers, names)
  for _, name in ipairs(names) do
    local value = (headers[name:lower()] or {})[1]
    if value ~= nil and value ~= "" then
      return value
    end
  end
  return nil
end

-- All non-empty values of the given (lower-case) header names, in order.
local function header_values(headers, names)
  local out = {}
  for _, name in ipairs(names) do
    for _, value in ipairs(headers[name:lower()] or {}) do
      if value ~= "" then
        out[#out + 1] = value
      end
    end
  end
  return out
end

-- Extra keys arrive lower-cased after the prefix and percent-encoded (see
-- client-go's headerKeyEscape); a malformed escape keeps the lower-cased text.
local function decode_extra_key(raw)
  local lowered = raw:lower()
  if lowered:find("%%[^%x]") or lowered:find("%%%x[^%x]") or lowered:find("%%%x?$") then
    return lowered
  end
  return (lowered:gsub("%%(%x%x)", function(hex)
    return string.char(tonumber(hex, 16))
  end))
end

local function header_extras(headers, prefixes)
  local extra = {}
  for name, values in pairs(headers) do
    for _, prefix in ipairs(prefixes) do
      local p = prefix:lower()
      if #name > #p and name:sub(1, #p) == p then
        local key = decode_extra_key(name:sub(#p + 1))
        extra[key] = extra[key] or {}
        for _, v in ipairs(values) do
          table.insert(extra[key], v)
        end
      end
    end
  end
  return extra
end

--- Front-proxy identity. Returns user, or nil, err (an error), or nil (no opinion).
function authn.from_request_header(req, settings)
  local peer = req.peer or {}
  if not settings or not peer.verified_requestheader then
    return nil
  end
  if #settings.allowed_names > 0 and not contains(settings.allowed_names, peer.common_name) then
    return nil, ("client certificate CN %q is not allowed to send front-proxy headers"):format(
      tostring(peer.common_name))
  end
  local name = first_value(req.headers, settings.username_headers)
  if not name then
    return nil
  end
  return {
    name = name,
    uid = first_value(req.headers, settings.uid_headers or {}),
    groups = with_authenticated(header_values(req.headers, settings.group_headers)),
    extra = header_extras(req.headers, settings.extra_prefixes),
    via = "front-proxy",
  }
end

--- Client-certificate identity. Returns user, or nil, err, or nil (no certificate).
function authn.from_client_certificate(req)
  local peer = req.peer or {}
  if peer.verified_client_ca then
    if not peer.common_name or peer.common_name == "" then
      return nil, "client certificate has an empty common name"
    end
    return {
      name = peer.common_name,
      groups = with_authenticated(peer.organizations or {}),
      extra = { [CREDENTIAL_ID] = { "X509SHA256=" .. peer.sha256 } },
      via = "x509",
    }
  end
  if peer.presented then -- as kube's x509 authenticator: any other certificate is an error
    return nil, "client certificate not trusted by the client CA (unknown authority, expired, "
      .. "or not for client auth)"
  end
  return nil
end

local function bearer_token(headers)
  local value = (headers.authorization or {})[1]
  if not value then
    return nil
  end
  local token = value:match("^[Bb][Ee][Aa][Rr][Ee][Rr] +(%S+) *$")
  return token, token == nil
end

--- Creates an authenticator.
-- @tparam table deps
--   settings(): the request-header settings or nil (see infraops.auth_config)
--   token_review(token): user table, or false (not authenticated), or nil, err
--   cache: host.shared-like store; crypto: host.crypto-like (sha256, hex_encode)
--   cjson, token_ttl (seconds), log
function authn.new(deps)
  local self = {}

  -- TokenReview answers, cached by a hash of the token (never the token itself).
  local function review(token)
    local key = "authn.token:" .. deps.crypto.hex_encode(deps.crypto.sha256(token))
    local cached = deps.cache.get(key)
    if cached then
      local entry = deps.cjson.decode(cached)
      return entry.user or false
    end
    local user, err = deps.token_review(token)
    if user == nil then
      return nil, err
    end
    deps.cache.set(key, deps.cjson.encode({ user = user or nil }), deps.token_ttl)
    return user
  end

  --- Returns user, or nil, reason (401). Anonymous when nothing is presented.
  function self.authenticate(req)
    local errors = {}
    for _, step in ipairs({
      function() return authn.from_request_header(req, deps.settings()) end,
      function() return authn.from_client_certificate(req) end,
    }) do
      local user, err = step()
      if user then
        return user
      end
      errors[#errors + 1] = err
    end
    local token, malformed = bearer_token(req.headers)
    if malformed then
      errors[#errors + 1] = "malformed Authorization header"
    elseif token then
      local user, err = review(token)
      if user then
        user.groups = with_authenticated(user.groups or {})
        user.extra = user.extra or {}
        user.via = "token"
        return user
      end
      errors[#errors + 1] = err or "invalid bearer token"
    end
    if #errors > 0 then
      return nil, table.concat(errors, "; ")
    end
    return authn.ANONYMOUS
  end

  return self
end

return authn
