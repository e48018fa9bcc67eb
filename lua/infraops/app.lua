-- The request handler: everything the host receives goes through handle(req).
-- Routes: health endpoints, API discovery; anything else a 404 Status.
local authn = require("infraops.authn")
local discovery = require("infraops.discovery")
local health = require("infraops.health")
local status = require("infraops.status")
local url = require("infraops.url")

local app = {}

local function header(req, name)
  local values = req.headers[name]
  return values and values[1]
end

local function is_read(method)
  return method == "GET" or method == "HEAD"
end

--- Builds the handler.
-- @tparam table config { version = string, flags = { [flag] = string } }
-- @tparam[opt] table deps injected modules: { log = host.log-like }
-- @treturn function handle(req) -> { status, headers, body, user }
function app.new(_config, deps)
  deps = deps or {}
  local log = deps.log or require("host.log")
  local documents = discovery.new()
  local ping = { name = "ping", run = function() return true end }
  local endpoints = health.new({ healthz = { ping }, livez = { ping }, readyz = { ping } }, log)

  local function route(req, segments, query)
    local is_health = segments[1] == "healthz" or segments[1] == "livez" or segments[1] == "readyz"
    if is_health then
      if not is_read(req.method) then
        return status.method_not_allowed()
      end
      return endpoints.handle(segments, query) or status.not_found_path()
    end
    local body, content_type = documents.document(segments, header(req, "accept"))
    if body then
      if not is_read(req.method) then
        return status.method_not_allowed()
      end
      return status.json(body, content_type)
    end
    return status.not_found_path()
  end

  return function(req)
    local user = authn.identify(req.peer)
    local segments = url.segments(req.path)
    local query = url.query(req.query)
    local res
    if not segments or not query then
      res = segments and status.bad_request("malformed query string") or status.not_found_path()
    else
      res = route(req, segments, query)
    end
    res.headers["Audit-Id"] = req.id
    res.user = user.name
    return res
  end
end

return app
