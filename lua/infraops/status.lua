-- metav1.Status responses, worded the way kube-apiserver words them so kubectl
-- prints a useful line ("Error from server (NotFound): ...").
local cjson = require("cjson")

local status = {}

local JSON = "application/json"

--- A response table carrying a Failure Status.
-- @tparam number code HTTP status code
-- @tparam string reason kube's StatusReason (NotFound, Forbidden, ...)
-- @tparam string message human-readable text
-- @tparam[opt] table details name, group, kind, causes, retryAfterSeconds
-- @tparam[opt] table headers extra response headers
function status.failure(code, reason, message, details, headers)
  local body = {
    kind = "Status",
    apiVersion = "v1",
    metadata = {},
    status = "Failure",
    message = message,
    reason = reason,
    details = details,
    code = code,
  }
  local out_headers = { ["Content-Type"] = JSON }
  for name, value in pairs(headers or {}) do
    out_headers[name] = value
  end
  return { status = code, headers = out_headers, body = cjson.encode(body) }
end

function status.not_found_path()
  return status.failure(404, "NotFound", "the server could not find the requested resource", {})
end

function status.method_not_allowed()
  return status.failure(405, "MethodNotAllowed",
    "the server does not allow this method on the requested resource", {})
end

function status.bad_request(message)
  return status.failure(400, "BadRequest", message)
end

--- A 200 JSON response from an already encoded body.
function status.json(body, content_type)
  return { status = 200, headers = { ["Content-Type"] = content_type or JSON }, body = body }
end

return status
