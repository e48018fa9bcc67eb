-- /healthz, /livez and /readyz as k8s.io/apiserver answers them: "ok", or with
-- ?verbose one "[+]check ok" line per check; ?exclude=NAME skips a check;
-- /readyz/NAME runs one check. In the combined answer a failing check's
-- reason is withheld and logged; /readyz/NAME answers it, as kube does, except
-- for a check that raised an error, whose text (Lua internals) is only logged.
local health = {}

local function reply(code, body)
  return {
    status = code,
    headers = { ["Content-Type"] = "text/plain; charset=utf-8", ["X-Content-Type-Options"] = "nosniff" },
    body = body,
  }
end

-- Returns passed, reason, raised (true when the check raised an error).
local function run(check)
  local ok, passed, reason = pcall(check.run)
  if not ok then
    return false, tostring(passed), true
  end
  return passed == true, reason, false
end

local function set_of(values)
  local out = {}
  for _, v in ipairs(values or {}) do
    out[v] = true
  end
  return out
end

--- Creates the health endpoints.
-- @tparam table checks endpoint name ("healthz", "livez", "readyz") -> list of
--   { name = string, run = function() -> true | false, reason, optional = bool }
--   (an optional check is listed with ?verbose and served at /<endpoint>/<name>,
--   but does not make the endpoint fail)
-- @tparam[opt] table log host.log-like logger for failed checks
function health.new(checks, log)
  local self = {}

  local function single(endpoint, name)
    for _, check in ipairs(checks[endpoint]) do
      if check.name == name then
        local passed, reason, raised = run(check)
        if passed then
          return reply(200, "ok")
        end
        if log then
          log.warn("health check failed", { endpoint = endpoint, check = name, reason = reason })
        end
        if raised or not reason then
          reason = "check failed"
        end
        return reply(500, "internal server error: " .. reason)
      end
    end
    return nil
  end

  --- Response for GET /<endpoint>[/<check>], or nil if not a health path.
  function self.handle(segments, query)
    local endpoint = segments[1]
    if #segments == 0 or #segments > 2 or not checks[endpoint] then
      return nil
    end
    if #segments == 2 then
      return single(endpoint, segments[2])
    end
    local excluded = set_of(query.exclude)
    local lines, failed = {}, false
    for _, check in ipairs(checks[endpoint]) do
      if not excluded[check.name] then
        local passed, reason = run(check)
        if passed then
          lines[#lines + 1] = "[+]" .. check.name .. " ok"
        elseif check.optional then -- reported, but does not make the endpoint fail
          lines[#lines + 1] = "[-]" .. check.name .. " not ready (optional): reason withheld"
          if log then
            log.debug("optional health check not passing", { endpoint = endpoint, check = check.name,
              reason = reason })
          end
        else
          failed = true
          lines[#lines + 1] = "[-]" .. check.name .. " failed: reason withheld"
          if log then
            log.warn("health check failed", { endpoint = endpoint, check = check.name, reason = reason })
          end
        end
      end
    end
    local verdict = endpoint .. (failed and " check failed" or " check passed")
    if query.verbose or failed then
      lines[#lines + 1] = verdict
      return reply(failed and 500 or 200, table.concat(lines, "\n") .. "\n")
    end
    return reply(200, "ok")
  end

  return self
end

return health
