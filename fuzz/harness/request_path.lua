-- request_path: the whole request handler (infraops.app) on a fuzzed method,
-- raw URI, Accept and Authorization headers and body: path and query decoding
-- (infraops.url), RequestInfo (infraops.authz.attributes), the forbidden
-- message, routing to health, discovery, nodes and restart.
--
-- Input: one mode byte, then method NUL uri NUL accept NUL authorization NUL body.
-- Mode bits 0-1: the peer (0 none, 1 system:masters certificate, 2 ordinary
-- certificate, 3 front proxy); bits 2-3: the SubjectAccessReview answer (0
-- allow, 1 deny, 2 error, 3 allow reads only).
--
-- Checks: the response is one the host accepts (status, headers, JSON body);
-- no request is answered 2xx past a denying authorizer, except the
-- always-allow paths and system:masters.
local common = require("harness.common")
local world = require("harness.world").new()

local METHODS = { "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS" }
local ALWAYS_ALLOWED = { ["/healthz"] = true, ["/readyz"] = true, ["/livez"] = true }

local PEERS = {
  [0] = { presented = false, verified_client_ca = false, verified_requestheader = false },
  [1] = { presented = true, verified_client_ca = true, verified_requestheader = false, common_name = "admin",
    organizations = { "system:masters" }, sha256 = string.rep("ab", 32) },
  [2] = { presented = true, verified_client_ca = true, verified_requestheader = false, common_name = "alice",
    organizations = { "dev" }, sha256 = string.rep("cd", 32) },
  [3] = { presented = true, verified_client_ca = false, verified_requestheader = true,
    common_name = "front-proxy-client", organizations = {}, sha256 = string.rep("ef", 32) },
}

local DECISIONS = {
  [0] = function() return { allowed = true } end,
  [1] = function() return { allowed = false, reason = "no RBAC policy matched" } end,
  [2] = function() return nil, "connection refused" end,
  [3] = function(spec)
    local verb = spec.resourceAttributes and spec.resourceAttributes.verb or spec.nonResourceAttributes.verb
    return { allowed = verb == "get" or verb == "list" }
  end,
}

-- As libmicrohttpd hands the query to the host: split on '&', then at the
-- first '='; still percent-encoded (the host's unescape callback keeps it).
local function query_pairs(raw)
  local pairs_ = {}
  if raw == nil then
    return pairs_
  end
  for piece in (raw .. "&"):gmatch("([^&]*)&") do
    local name, value = piece:match("^([^=]*)=(.*)$")
    pairs_[#pairs_ + 1] = { name or piece, value or "" }
  end
  return pairs_
end

local function request(mode, fields)
  local method = fields[1] ~= "" and fields[1] or METHODS[(mode >> 4) % #METHODS + 1]
  local path, raw_query = fields[2]:match("^([^?]*)%?(.*)$")
  path = path or fields[2]
  local headers = {}
  if fields[3] ~= "" then
    headers.accept = { fields[3] }
  end
  if fields[4] ~= "" then
    headers.authorization = { fields[4] }
  end
  local peer = PEERS[mode & 3]
  if mode & 3 == 3 then
    headers["x-remote-user"] = { "bob" }
    headers["x-remote-group"] = { "dev", "ops" }
  end
  return {
    id = "fuzz-request", method = method, path = path, query = query_pairs(raw_query), headers = headers,
    body = fields[5], remote_address = "192.0.2.1:4000", peer = peer,
  }
end

return function(data)
  local mode, rest = common.byte(data)
  local fields = common.split(rest, 5)
  local decision = (mode >> 2) & 3
  world.reset(DECISIONS[decision], { good = { username = "carol", groups = { "dev" } } })
  local req = request(mode, fields)
  local res = world.handle(req)
  common.check_response(res, req.method .. " " .. fields[2])
  if res.headers["Audit-Id"] ~= req.id or type(res.user) ~= "string" then
    common.fail("response without Audit-Id or user")
  end
  local masters = mode & 3 == 1
  if decision ~= 0 and decision ~= 3 and not masters and res.status < 300
    and not ALWAYS_ALLOWED[req.path] and req.path:sub(1, 9) ~= "/openapi/" then
    common.fail("%s %s answered %d although every authorization is denied", req.method, req.path, res.status)
  end
  if decision == 3 and not masters and res.status < 300 and req.method ~= "GET" and req.method ~= "HEAD" then
    common.fail("%s %s answered %d although only reads are allowed", req.method, req.path, res.status)
  end
end
