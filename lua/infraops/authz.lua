-- May this user do this? Kube's request attributes (k8s.io/apiserver
-- RequestInfo) checked with a SubjectAccessReview against the cluster's RBAC,
-- decisions cached briefly (allowed and denied, keyed by every attribute).
-- Group system:masters and the always-allow paths skip the review. A review
-- that cannot be made denies: never allow on error.
local authz = {}

local MASTERS = "system:masters"

local VERBS = { POST = "create", PUT = "update", PATCH = "patch", DELETE = "delete", GET = "get", HEAD = "get" }

local function truthy_param(values)
  local v = values and values[1]
  return v ~= nil and v ~= "false" and v ~= "0"
end

--- Request attributes from method, decoded path segments and decoded query
-- (name -> {values}), as RequestInfo derives them.
function authz.attributes(method, segments, query, raw_path)
  local verb = VERBS[method] or ""
  local prefix = segments[1]
  local non_resource = { resource_request = false, path = raw_path, verb = method:lower() }
  if prefix ~= "api" and prefix ~= "apis" then
    return non_resource
  end
  local i, attrs = 2, { resource_request = true }
  if prefix == "apis" then
    if #segments < 4 then -- /apis, /apis/<group>, /apis/<group>/<version>
      return non_resource
    end
    attrs.group, i = segments[2], 3
  else
    if #segments < 3 then
      return non_resource
    end
    attrs.group = ""
  end
  attrs.version = segments[i]
  local rest = { table.unpack(segments, i + 1) }
  if rest[1] == "namespaces" and #rest >= 3 then
    attrs.namespace = rest[2]
    rest = { table.unpack(rest, 3) }
  elseif rest[1] == "namespaces" then
    attrs.resource, attrs.name = "namespaces", rest[2]
  end
  attrs.resource = attrs.resource or rest[1]
  attrs.name = attrs.name or rest[2]
  attrs.subresource = rest[3] -- as in kube, parts past the subresource are left to routing
  if not attrs.name and (method == "GET" or method == "HEAD") then
    verb = truthy_param(query.watch) and "watch" or "list"
  elseif not attrs.name and method == "DELETE" then
    verb = "deletecollection"
  end
  if (verb == "list" or verb == "watch") and query.fieldSelector then
    attrs.name = (query.fieldSelector[1] or ""):match("^metadata%.name=([^,]+)$")
  end
  attrs.verb = verb
  return attrs
end

--- True if a non-resource path is in the always-allow list (exact, or prefix for "x*").
function authz.always_allowed(path, allow_paths)
  for _, entry in ipairs(allow_paths) do
    if entry:sub(-1) == "*" then
      if path:sub(1, #entry - 1) == entry:sub(1, -2) then
        return true
      end
    elseif path == entry then
      return true
    end
  end
  return false
end

--- The SubjectAccessReview spec for a user and attributes.
function authz.review_spec(user, attrs)
  local spec = { user = user.name, uid = user.uid, groups = user.groups, extra = user.extra }
  if attrs.resource_request then
    spec.resourceAttributes = {
      verb = attrs.verb, group = attrs.group, version = attrs.version, resource = attrs.resource,
      subresource = attrs.subresource, name = attrs.name, namespace = attrs.namespace,
    }
  else
    spec.nonResourceAttributes = { path = attrs.path, verb = attrs.verb }
  end
  return spec
end

-- A canonical cache key over every attribute (cjson's key order is not stable).
local function cache_key(crypto, user, attrs)
  local parts = { user.name or "", user.uid or "", table.concat(user.groups or {}, "\1") }
  local keys = {}
  for k in pairs(user.extra or {}) do
    keys[#keys + 1] = k
  end
  table.sort(keys)
  for _, k in ipairs(keys) do
    parts[#parts + 1] = k .. "\2" .. table.concat(user.extra[k], "\1")
  end
  for _, field in ipairs({ "verb", "group", "version", "resource", "subresource", "name", "namespace", "path" }) do
    parts[#parts + 1] = field .. "=" .. tostring(attrs[field] or "")
  end
  return "authz:" .. crypto.hex_encode(crypto.sha256(table.concat(parts, "\0")))
end

--- The message kube-apiserver writes for a denied request.
function authz.forbidden_message(user, attrs, reason)
  local who = ("User %q"):format(user.name)
  local msg
  if not attrs.resource_request then
    msg = ("forbidden: %s cannot %s path %q"):format(who, attrs.verb, attrs.path)
  else
    local resource = attrs.subresource and (attrs.resource .. "/" .. attrs.subresource) or attrs.resource
    local qualified = attrs.group ~= "" and (attrs.resource .. "." .. attrs.group) or attrs.resource
    local subject = attrs.name and ("%s %q"):format(qualified, attrs.name) or qualified
    local scope = attrs.namespace and ("in the namespace %q"):format(attrs.namespace) or "at the cluster scope"
    msg = ("%s is forbidden: %s cannot %s resource %q in API group %q %s"):format(
      subject, who, attrs.verb, resource, attrs.group, scope)
  end
  if reason and reason ~= "" then
    msg = msg .. ": " .. reason
  end
  return msg
end

--- Creates an authorizer.
-- @tparam table deps review(spec) -> status table or nil, err; cache (host.shared-like);
--   crypto; cjson; allowed_ttl, denied_ttl (seconds); allow_paths (list)
function authz.new(deps)
  local self = {}

  --- Returns true, or false, reason (denied), or nil, err (could not decide: deny).
  function self.authorize(user, attrs)
    for _, g in ipairs(user.groups or {}) do
      if g == MASTERS then
        return true
      end
    end
    if not attrs.resource_request and authz.always_allowed(attrs.path, deps.allow_paths) then
      return true
    end
    local key = cache_key(deps.crypto, user, attrs)
    local cached = deps.cache.get(key)
    if cached then
      local decision = deps.cjson.decode(cached)
      return decision.allowed, decision.reason
    end
    local status, err = deps.review(authz.review_spec(user, attrs))
    if not status then
      return nil, err
    end
    local allowed = status.allowed == true and status.denied ~= true
    local reason = status.reason
    deps.cache.set(key, deps.cjson.encode({ allowed = allowed, reason = reason }),
      allowed and deps.allowed_ttl or deps.denied_ttl)
    return allowed, reason
  end

  return self
end

return authz
