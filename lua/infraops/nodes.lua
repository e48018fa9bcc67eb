-- The read side of infraops.michael.io/v1 nodes: GET nodes and GET nodes/NAME.
-- Every object is computed from the core Node (its cloud identity from the
-- provider registry, whether it may be restarted from the guards) and from the
-- node's restart Lease (infraops.restart_record), never stored.
--
-- Lists page as kube-apiserver's do: with `limit`, one page (at most
-- nodes.MAX_LIMIT) and the core list's continue token handed back, so a client
-- that pages (kubectl, client-go's pager) never has a large cluster held at
-- once; without `limit`, every node, read from the core API in pages of
-- nodes.MAX_LIMIT (one consistent snapshot, as the continue tokens carry its
-- resourceVersion), each page turned into our small objects before the next
-- is read. The restart Leases come from one Lease list call.
--
-- Accept: application/json;as=Table;v=v1;g=meta.k8s.io (what kubectl sends)
-- gets a meta.k8s.io/v1 Table with NAME PROVIDER INSTANCE REGION RESTARTABLE
-- AGE columns; anything else the JSON objects.
local cjson = require("cjson")
local label_selector = require("infraops.label_selector")
local restart_record = require("infraops.restart_record")
local status = require("infraops.status")

local nodes = {}

nodes.GROUP = "infraops.michael.io"
nodes.API_VERSION = "infraops.michael.io/v1"
nodes.RESOURCE = "nodes"
nodes.DEFAULT_LIMIT = 500
nodes.MAX_LIMIT = 500
nodes.MAX_PAGES = 1000 -- a list without limit stops with an error past this many core pages
nodes.MANAGED_BY = "myapiserver"

local JSON = "application/json"
local QUALIFIED = nodes.RESOURCE .. "." .. nodes.GROUP -- nodes.infraops.michael.io

-- Query parameters handed to GET /api/v1/nodes as they came.
local PASSTHROUGH = { "continue", "labelSelector", "fieldSelector", "resourceVersion", "resourceVersionMatch" }

-- registry.match codes -> status.reason
local MATCH_REASONS = {
  no_provider_id = "NoProviderID",
  no_match = "NoMatchingProvider",
  malformed = "MalformedProviderID",
  limit = "ProviderFailed",
}
-- guards codes -> status.reason
local GUARD_REASONS = { own_node = "OwnNode", protected = "Protected" }

-- k8s.io/apimachinery/pkg/storage/etcd3 continueExpired: the wording kube uses
-- for an expired continue token (we cannot hand back kube's inconsistent-list
-- token, so never the variant that offers one).
nodes.EXPIRED_MESSAGE = "The provided continue parameter is too old to display a consistent list result. "
  .. "You can start a new list without the continue parameter."

local function tbl(v)
  return type(v) == "table" and v or nil
end

local function str(v)
  return type(v) == "string" and v or nil
end

local function escape(s)
  return (s:gsub("[^%w%-%._~]", function(c)
    return ("%%%02X"):format(c:byte())
  end))
end

-- The first value of a query parameter (url.query gives lists; plain strings
-- are accepted too).
local function param(query, name)
  local v = (query or {})[name]
  if type(v) == "table" then
    v = v[1]
  end
  return str(v)
end

local function camel(key)
  return (key:gsub("_(%w)", string.upper))
end

--- A short human duration as kubectl prints ages
-- (k8s.io/apimachinery/pkg/util/duration.HumanDuration).
function nodes.human_duration(seconds)
  seconds = math.floor(seconds)
  if seconds < -1 then
    return "<invalid>"
  elseif seconds < 0 then
    return "0s"
  elseif seconds < 120 then
    return ("%ds"):format(seconds)
  end
  local minutes = seconds // 60
  if minutes < 10 then
    local s = seconds % 60
    return s == 0 and ("%dm"):format(minutes) or ("%dm%ds"):format(minutes, s)
  elseif minutes < 180 then
    return ("%dm"):format(minutes)
  end
  local hours = seconds // 3600
  if hours < 8 then
    local m = minutes % 60
    return m == 0 and ("%dh"):format(hours) or ("%dh%dm"):format(hours, m)
  elseif hours < 48 then
    return ("%dh"):format(hours)
  elseif hours < 24 * 8 then
    local h = hours % 24
    return h == 0 and ("%dd"):format(hours // 24) or ("%dd%dh"):format(hours // 24, h)
  elseif hours < 24 * 365 * 2 then
    return ("%dd"):format(hours // 24)
  elseif hours < 24 * 365 * 8 then
    local days = (hours // 24) % 365
    local years = hours // 24 // 365
    return days == 0 and ("%dy"):format(years) or ("%dy%dd"):format(years, days)
  end
  return ("%dy"):format(hours // 24 // 365)
end

--- True if the Accept header asks for a meta.k8s.io/v1 Table.
function nodes.wants_table(accept)
  if type(accept) ~= "string" then
    return false
  end
  for range in accept:gmatch("[^,]+") do
    local media_type, params = nil, {}
    for part in range:gmatch("[^;]+") do
      part = part:match("^%s*(.-)%s*$")
      if not media_type then
        media_type = part:lower()
      else
        local key, value = part:match("^([^=]+)=(.*)$")
        if key then
          params[key:match("^%s*(.-)%s*$"):lower()] = value:match("^%s*(.-)%s*$")
        end
      end
    end
    if media_type == JSON and params.as == "Table" and params.v == "v1" and params.g == "meta.k8s.io" then
      return true
    end
  end
  return false
end

-- Encodes an object whose `field` is a JSON array that may be empty (cjson
-- writes an empty Lua table as {}): the rest is encoded by cjson, the array
-- from its already encoded elements.
local function encode_with_array(object, field, encoded_elements)
  local head = cjson.encode(object)
  return ('%s,"%s":[%s]}'):format(head:sub(1, -2), field, table.concat(encoded_elements, ","))
end

local function ok_response(body)
  return { status = 200, headers = { ["Content-Type"] = JSON }, body = body }
end

-- Table ----------------------------------------------------------------------

local COLUMNS = {
  { name = "Name", type = "string", format = "name", priority = 0,
    description = "Name of the core Node." },
  { name = "Provider", type = "string", format = "", priority = 0,
    description = "The cloud provider script that recognised the node's spec.providerID." },
  { name = "Instance", type = "string", format = "", priority = 0,
    description = "The cloud's ID of the virtual machine behind the node." },
  { name = "Region", type = "string", format = "", priority = 0,
    description = "The cloud region of the virtual machine." },
  { name = "Restartable", type = "boolean", format = "", priority = 0,
    description = "Whether this server would restart the node (see status.reason when not)." },
  { name = "Age", type = "string", format = "", priority = 0,
    description = "CreationTimestamp of the core Node, as a duration up to now." },
}
nodes.COLUMNS = COLUMNS

-- ListMeta fields worth copying (only those set).
local function list_meta(meta)
  meta = tbl(meta) or {}
  local out = {}
  out.resourceVersion = str(meta.resourceVersion)
  local token = str(meta.continue)
  if token and token ~= "" then
    out.continue = token
  end
  if type(meta.remainingItemCount) == "number" then
    out.remainingItemCount = math.tointeger(meta.remainingItemCount) or meta.remainingItemCount
  end
  return out
end

-- Methods ----------------------------------------------------------------------

local methods = {}
local metatable = { __index = methods }

--- Builds the read side.
-- @tparam table deps { k8s, registry, guards, crypto, lease_namespace,
--   restart_timeout (s), now (-> Unix seconds), parse_time (RFC 3339 -> Unix
--   seconds), log }
function nodes.new(deps)
  assert(type(deps) == "table", "infraops.nodes.new: deps must be a table")
  for _, name in ipairs({ "k8s", "registry", "guards", "crypto", "now", "parse_time" }) do
    assert(deps[name] ~= nil, "infraops.nodes.new: deps." .. name .. " is required")
  end
  local namespace = deps.lease_namespace or "default"
  local self = {
    k8s = deps.k8s,
    registry = deps.registry,
    guards = deps.guards,
    crypto = deps.crypto,
    lease_namespace = namespace,
    leases_path = ("/apis/coordination.k8s.io/v1/namespaces/%s/leases"):format(escape(namespace)),
    restart_timeout = deps.restart_timeout or 900,
    now = deps.now,
    parse_time = deps.parse_time,
    log = deps.log or require("host.log"),
  }
  return setmetatable(self, metatable)
end

-- RFC 3339 -> Unix seconds, or nil (never raises on garbage).
function methods:_time(text)
  if type(text) ~= "string" then
    return nil
  end
  local ok, t = pcall(self.parse_time, text)
  return ok and type(t) == "number" and t or nil
end

local function last_restart(self, node, lease, now)
  local record = restart_record.from_lease(lease)
  if not record then
    return nil
  end
  local parse = function(text)
    return self:_time(text)
  end
  return {
    phase = restart_record.phase(record, node, now, self.restart_timeout, parse),
    requestedAt = record.requested_at,
    requestedBy = record.requested_by,
    requestID = record.request_id,
    provider = record.provider,
    instanceID = record.instance_id,
    reason = record.reason,
    error = record.error,
  }
end

--- The infraops Node for a core Node and its restart Lease (or nil).
-- @tparam table node the core Node
-- @tparam[opt] table lease the node's restart Lease
-- @tparam[opt] number now Unix seconds (default deps.now())
function methods:view(node, lease, now)
  node = tbl(node) or {}
  local meta = tbl(node.metadata) or {}
  local spec = tbl(node.spec) or {}
  local object = {
    apiVersion = nodes.API_VERSION,
    kind = "Node",
    metadata = {
      name = str(meta.name),
      uid = str(meta.uid),
      labels = tbl(meta.labels),
      creationTimestamp = str(meta.creationTimestamp),
      resourceVersion = str(meta.resourceVersion),
    },
    spec = { providerID = str(spec.providerID) },
  }
  local st = { restartable = true }
  local entry, target, message = self.registry.match(node)
  if entry then
    target = tbl(target) or {}
    -- instance_id, region, zone and any other plain value the provider adds
    -- (account, project, ...), in camelCase.
    local cloud = {}
    for key, value in pairs(target) do
      local kind = type(value)
      if type(key) == "string" and (kind == "string" or kind == "number" or kind == "boolean") then
        cloud[key == "instance_id" and "instanceID" or camel(key)] = value
      end
    end
    cloud.provider = str(entry.name)
    st.cloud = cloud
    local allowed, code, why = self.guards:check(node)
    if not allowed then
      st.restartable, st.reason, st.message = false, GUARD_REASONS[code] or "Protected", why
    end
  else
    st.restartable = false
    st.reason = MATCH_REASONS[target] or "NoMatchingProvider"
    st.message = message
  end
  if lease then
    st.lastRestart = last_restart(self, node, lease, now or self.now())
  end
  object.status = st
  return object
end

-- A Status for a failed Kubernetes API call. `what` completes "while trying
-- to ...".
function methods:_api_failure(err, what, name)
  err = tbl(err) or {}
  local code = err.code
  local details = name and { name = name, group = nodes.GROUP, kind = nodes.RESOURCE } or {}
  self.log.warn("kubernetes api call failed", { action = what, code = code, status = err.status,
    error = err.message })
  if code == "timeout" then
    return status.failure(504, "Timeout", ("Timeout: the Kubernetes API did not answer in time while trying to %s")
      :format(what), details)
  elseif code == "unavailable" or code == "tls" then
    return status.failure(503, "ServiceUnavailable", ("the Kubernetes API could not be reached while trying to %s: %s")
      :format(what, tostring(err.message or code)), details)
  elseif code == "exec_failed" or code == "credentials_unavailable" then
    return status.failure(503, "ServiceUnavailable", ("the Kubernetes API could not be reached while trying to %s: "
      .. "the server has no credentials for it right now"):format(what), details)
  elseif code == "forbidden" then
    return status.failure(500, "InternalError", ("Internal error occurred: the server's ServiceAccount lacks "
      .. "permission to %s: %s"):format(what, tostring(err.message)), details)
  elseif code == "unauthorized" then
    return status.failure(500, "InternalError", ("Internal error occurred: the Kubernetes API rejected the "
      .. "server's credentials while trying to %s"):format(what), details)
  elseif code == "too_many_requests" then
    local wait = math.max(1, math.ceil(tonumber(err.retry_after) or 1))
    details.retryAfterSeconds = wait
    return status.failure(429, "TooManyRequests", ("the Kubernetes API is throttling requests; try again in %d "
      .. "seconds"):format(wait), details, { ["Retry-After"] = tostring(wait) })
  elseif code == "bad_request" then
    return status.failure(400, "BadRequest", tostring(err.message or "bad request"), details)
  elseif code == "gone" then
    return status.failure(410, "Expired", nodes.EXPIRED_MESSAGE, details)
  end
  return status.failure(500, "InternalError", ("Internal error occurred: unexpected answer from the Kubernetes "
    .. "API while trying to %s: %s"):format(what, tostring(err.message or code)), details)
end

local function not_found(name)
  return status.failure(404, "NotFound", ('%s "%s" not found'):format(QUALIFIED, name),
    { name = name, group = nodes.GROUP, kind = nodes.RESOURCE })
end

-- The Table row object for includeObject (Metadata by default).
local function row_object(view, include)
  if include == "None" then
    return nil
  elseif include == "Object" then
    return view
  end
  return { kind = "PartialObjectMetadata", apiVersion = "meta.k8s.io/v1", metadata = view.metadata }
end

-- One Table row, encoded.
function methods:_table_row(view, include, now)
  local cloud = view.status.cloud or {}
  local created = self:_time(view.metadata.creationTimestamp)
  local cells = {
    view.metadata.name or "",
    str(cloud.provider) or "<none>",
    str(cloud.instanceID) or "<none>",
    str(cloud.region) or "<none>",
    view.status.restartable,
    created and nodes.human_duration(now - created) or "<unknown>",
  }
  return cjson.encode({ cells = cells, object = row_object(view, include) })
end

-- The Table of already encoded rows.
local function table_response(rows, meta)
  local head = {
    kind = "Table",
    apiVersion = "meta.k8s.io/v1",
    metadata = meta,
    columnDefinitions = COLUMNS,
  }
  return ok_response(encode_with_array(head, "rows", rows))
end

-- The encoder of one view for the answer asked for: a Table row or the Node's JSON.
function methods:_encoder(accept, query, now)
  if nodes.wants_table(accept) then
    local include = param(query, "includeObject")
    return function(view)
      return self:_table_row(view, include, now)
    end
  end
  return cjson.encode
end

--- GET nodes/NAME.
-- @tparam string name the node's name (decoded path segment)
-- @tparam[opt] string accept the Accept header
-- @tparam[opt] table query decoded query (name -> {values}); includeObject for Tables
-- @return response table {status, headers, body}
function methods:get(name, accept, query)
  if not label_selector.is_dns1123_subdomain(name) then
    return status.bad_request(('invalid node name "%s": a lowercase RFC 1123 subdomain must consist of lower '
      .. "case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character")
      :format(tostring(name):sub(1, 300)))
  end
  local node, err = self.k8s:get("/api/v1/nodes/" .. escape(name))
  if not node then
    if tbl(err) and err.code == "not_found" then
      return not_found(name)
    end
    return self:_api_failure(err, ("get node %q"):format(name), name)
  elseif type(node) ~= "table" then
    return self:_api_failure({ code = "invalid_response", message = "empty body" }, ("get node %q"):format(name),
      name)
  end
  local lease_name = restart_record.lease_name(name, self.crypto)
  local lease, lerr = self.k8s:get(self.leases_path .. "/" .. escape(lease_name))
  if not lease then
    if not (tbl(lerr) and lerr.code == "not_found") then
      return self:_api_failure(lerr, ("get lease %q in namespace %q"):format(lease_name, self.lease_namespace),
        name)
    end
  elseif type(lease) ~= "table" then
    lease = nil
  end
  local now = self.now()
  local view = self:view(node, lease, now)
  if nodes.wants_table(accept) then
    local row = self:_encoder(accept, query, now)(view)
    return table_response({ row }, { resourceVersion = view.metadata.resourceVersion })
  end
  return ok_response(cjson.encode(view))
end

-- The restart Leases by name, or nil and the failure response.
function methods:_restart_leases()
  local lease_list, lerr = self.k8s:get(self.leases_path, {
    query = { labelSelector = restart_record.LABELS.managed_by .. "=" .. nodes.MANAGED_BY },
  })
  if not lease_list then
    return nil, self:_api_failure(lerr, ("list leases in namespace %q"):format(self.lease_namespace))
  end
  local leases = {}
  for _, lease in ipairs(tbl(tbl(lease_list) and lease_list.items) or {}) do
    local lease_name = tbl(lease) and tbl(lease.metadata) and str(lease.metadata.name)
    if lease_name then
      leases[lease_name] = lease
    end
  end
  return leases
end

--- GET nodes: with limit, one page of the core node list; without, all of it.
-- @tparam[opt] table query decoded query (name -> {values} or name -> string)
-- @tparam[opt] string accept the Accept header
-- @return response table
function methods:list(query, accept)
  query = query or {}
  local watch = param(query, "watch")
  if watch == "true" or watch == "1" then
    return status.failure(405, "MethodNotAllowed",
      ('watch is not supported on resources of kind "%s"'):format(QUALIFIED),
      { group = nodes.GROUP, kind = nodes.RESOURCE })
  end
  local core_query = {}
  for _, name in ipairs(PASSTHROUGH) do
    local value = param(query, name)
    if value and value ~= "" then
      core_query[name] = value
    end
  end
  local limit, all = nodes.DEFAULT_LIMIT, true
  local limit_text = param(query, "limit")
  if limit_text and limit_text ~= "" then
    local n = limit_text:find("^%d+$") and math.tointeger(tonumber(limit_text))
    if not n then
      return status.bad_request(('invalid value "%s" for limit: must be a non-negative integer')
        :format(limit_text:sub(1, 100)))
    end
    if n > 0 then
      limit, all = math.min(n, nodes.MAX_LIMIT), false
    end
  end
  core_query.limit = tostring(limit)

  local now = self.now()
  -- Each node is encoded as soon as its view is made: what a long list keeps is its answer's
  -- text, not the decoded core pages nor the views.
  local encode = self:_encoder(accept, query, now)
  local encoded, leases, meta, pages = {}, nil, nil, 0
  repeat
    local page_query = {}
    for k, v in pairs(core_query) do
      page_query[k] = v
    end
    local list, err = self.k8s:get("/api/v1/nodes", { query = page_query })
    if not list then
      return self:_api_failure(err, "list nodes")
    elseif type(list) ~= "table" then
      return self:_api_failure({ code = "invalid_response", message = "empty body" }, "list nodes")
    end
    local items = tbl(list.items) or {}
    if not leases and #items > 0 then
      local lerr
      leases, lerr = self:_restart_leases()
      if not leases then
        return lerr
      end
    end
    for _, node in ipairs(items) do
      local name = tbl(node) and tbl(node.metadata) and str(node.metadata.name)
      local lease = name and leases[restart_record.lease_name(name, self.crypto)] or nil
      encoded[#encoded + 1] = encode(self:view(node, lease, now))
    end
    meta = meta or list_meta(list.metadata)
    core_query.continue = list_meta(list.metadata).continue
    pages = pages + 1
    if all and core_query.continue and pages >= nodes.MAX_PAGES then
      return self:_api_failure({ code = "internal", message = ("the core node list did not end after %d pages")
        :format(pages) }, "list nodes")
    end
  until not all or not core_query.continue
  if all then -- one whole list, as kube-apiserver answers a list without limit
    meta.continue, meta.remainingItemCount = nil, nil
  end
  if nodes.wants_table(accept) then
    return table_response(encoded, meta)
  end
  local head = { apiVersion = nodes.API_VERSION, kind = "NodeList", metadata = meta }
  return ok_response(encode_with_array(head, "items", encoded))
end

return nodes
