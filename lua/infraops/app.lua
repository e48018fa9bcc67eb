-- The request handler: everything the host receives goes through handle(req):
-- decode the path -> authenticate -> authorize -> route (health, discovery,
-- nodes, nodes/NAME, nodes/NAME/restart; anything else a 404 Status). new() also returns the periodic task the host
-- runs every second in one of its pooled states (the authentication ConfigMap refresh).
local auth_config = require("infraops.auth_config")
local authn = require("infraops.authn")
local authz = require("infraops.authz")
local discovery = require("infraops.discovery")
local guards = require("infraops.guards")
local health = require("infraops.health")
local nodes = require("infraops.nodes")
local providers = require("infraops.providers")
local restart = require("infraops.restart")
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

local function seconds(flags, name, default)
  local text = flags[name]
  if not text then
    return default
  end
  local total = 0
  for number, unit in text:gmatch("([%d%.]+)(%a+)") do
    total = total + tonumber(number) * ({ ms = 0.001, s = 1, m = 60, h = 3600 })[unit]
  end
  return total
end

-- "32Mi" -> bytes (host/config.c checked the form).
local function bytes(flags, name, default)
  local number, unit = (flags[name] or default):match("^(%d+)(%a*)$")
  return math.tointeger(tonumber(number)) * ({ [""] = 1, Ki = 1 << 10, Mi = 1 << 20, Gi = 1 << 30 })[unit]
end

-- The Kubernetes API client, or nil and why (not every deployment needs one:
-- client certificates of system:masters users work without it).
local function kubernetes(config, deps)
  if deps.k8s ~= nil then
    return deps.k8s or nil, deps.k8s_error
  end
  local kubeconfig = require("infraops.k8s.kubeconfig")
  local client = require("infraops.k8s.client")
  local connection, err = kubeconfig.resolve({
    kubeconfig = config.flags.kubeconfig, context = config.flags.context,
  }, deps.k8s_deps or {})
  if not connection then
    return nil, err
  end
  return client.new(connection, { version = config.version, log = deps.log,
    timeout = seconds(config.flags, "kubernetes-api-timeout", 10) })
end

local function token_reviewer(k8s, k8s_error, within)
  return function(token)
    if not k8s then
      return nil, "cannot review bearer tokens: " .. tostring(k8s_error)
    end
    local review, err = k8s:post("/apis/authentication.k8s.io/v1/tokenreviews", {
      apiVersion = "authentication.k8s.io/v1", kind = "TokenReview", spec = { token = token },
    }, { retry = true, deadline = within(10) })
    if not review then
      return nil, "TokenReview failed: " .. err.message
    end
    local st = review.status or {}
    if not st.authenticated then
      return false
    end
    local user = st.user or {}
    return { name = user.username, uid = user.uid, groups = user.groups or {}, extra = user.extra or {} }
  end
end

local function access_reviewer(k8s, k8s_error, within)
  return function(spec)
    if not k8s then
      return nil, "cannot check authorization: " .. tostring(k8s_error)
    end
    local review, err = k8s:post("/apis/authorization.k8s.io/v1/subjectaccessreviews", {
      apiVersion = "authorization.k8s.io/v1", kind = "SubjectAccessReview", spec = spec,
    }, { retry = true, deadline = within(10) })
    if not review then
      return nil, "SubjectAccessReview failed: " .. err.message
    end
    return review.status or {}
  end
end

-- Who is asking and may they: the trust source, authenticator and authorizer.
local function build_auth(flags, ctx)
  local trust = auth_config.new({
    flags = flags, k8s = ctx.k8s, tls = ctx.tls, shared = ctx.shared, cjson = ctx.cjson, log = ctx.log,
    monotonic = ctx.monotonic, lookup_interval = seconds(flags, "authentication-lookup-interval", 30),
  })
  local authenticator = authn.new({
    settings = trust.requestheader, token_review = token_reviewer(ctx.k8s, ctx.k8s_error, ctx.within),
    cache = ctx.shared, crypto = ctx.crypto, cjson = ctx.cjson, log = ctx.log,
    token_ttl = seconds(flags, "authentication-token-webhook-cache-ttl", 10),
  })
  local authorizer = authz.new({
    review = access_reviewer(ctx.k8s, ctx.k8s_error, ctx.within), cache = ctx.shared, crypto = ctx.crypto,
    cjson = ctx.cjson, allow_paths = ctx.allow_paths,
    allowed_ttl = seconds(flags, "authorization-webhook-cache-authorized-ttl", 10),
    denied_ttl = seconds(flags, "authorization-webhook-cache-unauthorized-ttl", 10),
  })
  return trust, authenticator, authorizer
end

-- The per-call limits of provider scripts (host.limits; docs/providers.md).
local function provider_limits(flags, deps)
  return { run = (deps.limits or require("host.limits")).run,
    instructions = math.tointeger(tonumber(flags["provider-instruction-limit"] or "50000000")),
    memory = bytes(flags, "provider-memory-limit", "32Mi"), memory_text = flags["provider-memory-limit"] or "32Mi" }
end

-- The provider registry, the nodes view and the restart handler.
local function build_nodes(flags, ctx, deps)
  local time = ctx.time
  local registry = deps.registry or assert(providers.load(auth_config.split_list(flags["providers-dir"]), {
    fs = deps.fs or require("host.fs"), log = ctx.log, http = deps.http or require("host.http"),
    shared = ctx.shared, crypto = ctx.crypto, cjson = ctx.cjson, xml = require("infraops.xml"),
    sigv4 = require("infraops.signers.sigv4"), tc3 = require("infraops.signers.tc3"), getenv = os.getenv,
    time = { now = time.now, amz_date = time.amz_date, iso8601 = time.iso8601, date = time.date,
      parse_iso8601 = time.parse_iso8601 }, limits = provider_limits(flags, deps),
  }))
  local node_guards = guards.new({ own_node = flags["node-name"], protected = flags["protected-nodes-selector"] })
  if not ctx.k8s then
    return registry
  end
  local node_views = nodes.new({
    k8s = ctx.k8s, registry = registry, guards = node_guards, crypto = ctx.crypto, log = ctx.log,
    lease_namespace = flags["lease-namespace"], restart_timeout = seconds(flags, "restart-timeout", 900),
    now = time.now, parse_time = time.parse_iso8601,
  })
  local restarter = restart.new({
    k8s = ctx.k8s, registry = registry, guards = node_guards, crypto = ctx.crypto, cjson = ctx.cjson,
    shared = ctx.shared, log = ctx.log, now = time.now, monotonic = ctx.monotonic, iso8601 = time.iso8601,
    iso8601_micro = time.iso8601_micro, parse_time = time.parse_iso8601, sleep = time.sleep,
    random = math.random, lease_namespace = flags["lease-namespace"],
    cooldown = seconds(flags, "restart-cooldown", 300),
    identity = os.getenv("POD_NAME") or os.getenv("HOSTNAME") or "myapiserver",
  })
  return registry, node_views, restarter
end

-- /healthz, /livez, /readyz; every provider's readiness as an optional check:
-- a cloud without credentials in a multi-cloud cluster must not take the whole
-- API (discovery, the other clouds) out of service.
local function build_health(registry, log)
  local ping = { name = "ping", run = function() return true end }
  local ready_checks = { ping }
  for _, name in ipairs(registry.names()) do
    ready_checks[#ready_checks + 1] = { name = "provider-" .. name, optional = true, run = function()
      for _, c in ipairs(registry.check()) do
        if c.name == name then
          return c.ready, c.reason
        end
      end
      return false, "not loaded"
    end }
  end
  return health.new({ healthz = { ping }, livez = { ping }, readyz = ready_checks }, log)
end

-- The host modules and shared helpers, each replaceable through deps (specs).
local function context(config, deps)
  local ctx = {
    log = deps.log or require("host.log"),
    shared = deps.shared or require("host.shared"),
    crypto = deps.crypto or require("host.crypto"),
    cjson = deps.cjson or require("cjson"),
    time = deps.time or require("host.time"),
    tls = deps.tls,
  }
  if ctx.tls == nil then
    local ok, module = pcall(require, "host.tls")
    ctx.tls = ok and module or nil
  end
  ctx.allow_paths = auth_config.split_list(config.flags["authorization-always-allow-paths"])
  ctx.monotonic = deps.monotonic or ctx.time.monotonic
  ctx.within = function(s)
    return ctx.monotonic() + s
  end
  ctx.k8s, ctx.k8s_error = kubernetes(config, { k8s = deps.k8s, k8s_error = deps.k8s_error, log = ctx.log })
  return ctx
end

--- Builds the handler and the periodic task.
-- @tparam table config { version = string, flags = { [flag] = string } }
-- @tparam[opt] table deps injected: log, shared, crypto, cjson, tls, time, monotonic,
--   k8s (a client, or false for none) and k8s_error, registry, fs, http, limits
-- @treturn function handle(req) -> { status, headers, body, user }
-- @treturn function tick(first) -> true | nil, err
function app.new(config, deps)
  deps = deps or {}
  local flags = config.flags
  local ctx = context(config, deps)
  local log, k8s, k8s_error = ctx.log, ctx.k8s, ctx.k8s_error
  local trust, authenticator, authorizer = build_auth(flags, ctx)
  local allow_paths = ctx.allow_paths
  local registry, node_views, restarter = build_nodes(flags, ctx, deps)
  local endpoints = build_health(registry, log)
  local documents = discovery.new()

  -- GET nodes, GET nodes/NAME, POST nodes/NAME/restart under /apis/infraops.michael.io/v1.
  local function route_nodes(req, segments, query, user)
    local n, method = #segments, req.method
    if n > 6 or (n == 6 and segments[6] ~= "restart") then
      return status.not_found_path()
    end
    local wanted = n == 6 and "POST" or "GET"
    if method ~= wanted and not (wanted == "GET" and method == "HEAD") then
      return status.method_not_allowed()
    end
    if not k8s then
      return status.failure(503, "ServiceUnavailable", "no Kubernetes API is configured: " .. tostring(k8s_error))
    end
    if n == 4 then
      return node_views:list(query, header(req, "accept"))
    elseif n == 5 then
      return node_views:get(segments[5], header(req, "accept"))
    end
    return restarter.handle(segments[5], user, req.body, query, header(req, "content-type"))
  end

  local function route(req, segments, query, user)
    if segments[1] == "apis" and segments[2] == discovery.GROUP and segments[3] == discovery.VERSION
      and segments[4] == "nodes" then
      return route_nodes(req, segments, query, user)
    end
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

  -- Returns the user and nil, or the user and the refusal to send.
  local function admit(req, segments, query)
    local open_path = authz.always_allowed(req.path, allow_paths)
    local user, why = authenticator.authenticate(req)
    if not user then
      log.info("authentication failed", { request_id = req.id, reason = why })
      if not open_path then
        return authn.ANONYMOUS, status.failure(401, "Unauthorized", "Unauthorized")
      end
      user = authn.ANONYMOUS
    end
    if open_path then
      return user
    end
    local attrs = authz.attributes(req.method, segments, query, req.path)
    local allowed, reason = authorizer.authorize(user, attrs)
    if allowed == nil then
      log.warn("authorization could not be checked; denying", { request_id = req.id, error = reason })
      return user, status.failure(503, "ServiceUnavailable",
        "authorization could not be checked; please try again later")
    elseif not allowed then
      return user, status.failure(403, "Forbidden", authz.forbidden_message(user, attrs, reason), {
        name = attrs.name, group = attrs.group, kind = attrs.resource,
      })
    end
    return user
  end

  local function handle(req)
    local segments = url.segments(req.path)
    local query = url.query(req.query)
    local user, res
    if not segments then
      user, res = authn.ANONYMOUS, status.not_found_path()
    elseif not query then
      user, res = authn.ANONYMOUS, status.bad_request("malformed query string")
    else
      user, res = admit(req, segments, query)
      res = res or route(req, segments, query, user)
    end
    res.headers["Audit-Id"] = req.id
    res.user = user.name
    return res
  end

  local function tick(first)
    if first and not k8s then
      log.warn("no Kubernetes API: bearer tokens and SubjectAccessReviews cannot be checked, so only "
        .. "system:masters client certificates get past the always-allow paths", { reason = tostring(k8s_error) })
    end
    return trust.refresh(first)
  end

  return handle, tick
end

return app
