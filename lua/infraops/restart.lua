-- POST /apis/infraops.michael.io/v1/nodes/NAME/restart:
--   validate NAME and the body -> read the core Node -> the provider that
--   matches its providerID -> guards (own node, protected) -> take the node's
--   Lease (create / update with resourceVersion: one restart per node at a
--   time, then a cooldown) -> the provider's reboot call (bounded retries) ->
--   record the outcome in the Lease -> an Event on the Node -> 202 NodeRestart.
-- Dry run does every check and asks the cloud to validate; it takes no Lease,
-- reboots nothing and records no Event.
local label_selector = require("infraops.label_selector")
local restart_record = require("infraops.restart_record")
local status = require("infraops.status")

local restart = {}

local GROUP = "infraops.michael.io"
local MAX_REASON = 1024
local IN_PROGRESS_GRACE = 120 -- seconds an InProgress lease blocks others if its holder vanished
local RETRY_BUDGET = 25       -- seconds of cloud retries: well inside kube-apiserver's 60 s proxy timeout
-- Deadlines of one restart, seconds from its start, so that its answer reaches the client inside
-- kube-apiserver's 60 s request timeout (past it the aggregator answers 504 while this server
-- may still go on and reboot): the node read and the Lease taken by PREPARE_BY; no cloud retry
-- started after CLOUD_BY (a provider's call is bounded by its own timeouts, 20 s at most for the
-- shipped ones); the outcome recorded by RECORD_BY.
local PREPARE_BY, CLOUD_BY, RECORD_BY = 15, 30, 57
local MAX_ATTEMPTS = 3
local EVENT_NAMESPACE = "default" -- where kube records events about nodes

local function node_error(code, reason, name, message, extra)
  local details = { name = name, group = GROUP, kind = "nodes" }
  for k, v in pairs(extra or {}) do
    details[k] = v
  end
  return status.failure(code, reason, message, details)
end

--- True if s is a DNS-1123 subdomain (what a node name must be).
restart.valid_name = label_selector.is_dns1123_subdomain

-- What the API answered is decoded JSON: an empty answer is `true`, and an
-- object without metadata (or not named as asked) is not one we can use.
local NOT_AN_OBJECT = { code = "invalid_response", message = "the answer is not the object asked for" }

local function is_object(v)
  return type(v) == "table" and type(v.metadata) == "table"
end

local function bad(message)
  return nil, status.failure(400, "BadRequest", message)
end

--- RestartOptions from the body and query: {reason, dry_run} or nil, 400 response.
function restart.options(body, query, cjson)
  local opts = { dry_run = false }
  for _, v in ipairs(query.dryRun or {}) do
    if v ~= "All" then
      return bad(('dryRun: Unsupported value: "%s": supported values: "All"'):format(v))
    end
    opts.dry_run = true
  end
  if body == nil or body:match("^%s*$") then
    return opts
  end
  local ok, doc = pcall(cjson.decode, body)
  if not ok or type(doc) ~= "table" or doc[1] ~= nil then
    return bad("the request body must be a RestartOptions JSON object")
  end
  for key, value in pairs(doc) do
    if key == "apiVersion" then
      if value ~= GROUP .. "/v1" then
        return bad(('apiVersion: Unsupported value: "%s": supported values: "infraops.michael.io/v1"'):format(
          tostring(value)))
      end
    elseif key == "kind" then
      if value ~= "RestartOptions" then
        return bad(('kind: Unsupported value: "%s": supported values: "RestartOptions"'):format(tostring(value)))
      end
    elseif key == "reason" then
      if type(value) ~= "string" or #value > MAX_REASON then
        return bad(("reason: must be a string of at most %d bytes"):format(MAX_REASON))
      end
      opts.reason = value
    elseif key == "dryRun" then
      if type(value) ~= "table" then
        return bad('dryRun: must be a list, e.g. ["All"]')
      end
      for _, v in ipairs(value) do
        if v ~= "All" then
          return bad(('dryRun: Unsupported value: "%s": supported values: "All"'):format(tostring(v)))
        end
        opts.dry_run = true
      end
    else
      return bad(('strict decoding error: unknown field "%s"'):format(tostring(key)))
    end
  end
  return opts
end

-- A Kubernetes API failure as the Status the user gets.
local function api_failure(err, what)
  if err.code == "timeout" then
    return status.failure(504, "Timeout", ("Timeout: the Kubernetes API did not answer in time (%s)"):format(what))
  elseif err.code == "forbidden" then
    return status.failure(500, "InternalError", ("Internal error occurred: this server is not allowed to %s: %s")
      :format(what, err.message))
  elseif err.code == "invalid_response" then
    return status.failure(503, "ServiceUnavailable", ("the Kubernetes API gave an answer that cannot be read (%s): %s")
      :format(what, err.message or err.code))
  end
  return status.failure(503, "ServiceUnavailable", ("the Kubernetes API could not be reached (%s): %s")
    :format(what, err.message or err.code))
end

-- The cloud (or provider) error as the Status the user gets. An outcome that is
-- not known (err.sent: the reboot may have gone out) never carries
-- Retry-After, so clients do not repeat it (docs/restart.md).
local function cloud_failure(name, entry, err, dry_run)
  local where = ("%s: %s"):format(entry.name, err.message or err.reason or "error")
  local maybe = (err.sent and not dry_run)
    and ("; the restart of node %q may or may not have happened"):format(name) or ""
  if err.cloud_code then
    local id = err.request_id and (", request id " .. err.request_id) or ""
    where = ("%s (%s%s)"):format(where, err.cloud_code, id)
  elseif err.request_id then
    where = where .. (" (request id %s)"):format(err.request_id)
  end
  local message = ("cloud provider refused to restart node %q: %s"):format(name, where)
  if err.reason == "Throttled" then
    local wait = math.max(1, math.ceil(tonumber(err.retry_after) or 5))
    return status.failure(429, "TooManyRequests", ("the cloud provider is throttling requests: %s"):format(where),
      { name = name, group = GROUP, kind = "nodes", retryAfterSeconds = wait }, { ["Retry-After"] = tostring(wait) })
  elseif err.reason == "Timeout" or (err.sent and not dry_run and err.reason == "Unavailable") then
    return status.failure(504, "Timeout", ("Timeout: the cloud provider did not answer; the restart of node %q "
      .. "may or may not have happened (%s)"):format(name, where), { name = name, group = GROUP, kind = "nodes" })
  elseif err.reason == "Unavailable" then
    return status.failure(503, "ServiceUnavailable", ("the cloud provider is unavailable: %s"):format(where),
      { name = name, group = GROUP, kind = "nodes", retryAfterSeconds = 5 }, { ["Retry-After"] = "5" })
  elseif err.reason == "Internal" and err.sent and not err.provider_failed then
    return status.failure(502, "BadGateway", ("the cloud provider's answer could not be understood%s: %s")
      :format(maybe, where), { name = name, group = GROUP, kind = "nodes",
        causes = { { reason = err.reason, message = err.message, field = err.cloud_code } } })
  elseif err.reason == "Internal" then
    return status.failure(500, "InternalError", "Internal error occurred: " .. where .. maybe)
  end
  return status.failure(502, "BadGateway", message, { name = name, group = GROUP, kind = "nodes",
    causes = { { reason = err.reason, message = err.message, field = err.cloud_code } } })
end

--- nil if the body's Content-Type is one the server reads (none, or JSON: as
-- kube's NegotiateInputSerializer, a missing type means JSON), else the 415
-- kube answers. A browser can send text/plain, form and multipart bodies to
-- another site without asking (e.g. to kubectl proxy on localhost): refusing
-- them keeps such a page from restarting nodes.
function restart.unsupported_media_type(content_type)
  local media = content_type and content_type:match("^%s*([^;%s]+)")
  if media == nil or media:lower() == "application/json" then
    return nil
  end
  return status.failure(415, "UnsupportedMediaType", "the body of the request was in an unknown format - "
    .. "accepted media types include: application/json")
end

--- Creates the handler. deps: k8s, registry, guards, crypto, cjson, log,
-- now (Unix seconds), iso8601, iso8601_micro, parse_time, sleep, random,
-- lease_namespace, cooldown (s), identity (Lease holder); shared (host.shared, optional:
-- with it a Lease this server has not seen is created at once instead of read first).
function restart.new(deps)
  local self = {}
  local leases_path = ("/apis/coordination.k8s.io/v1/namespaces/%s/leases"):format(deps.lease_namespace)

  local function lease_body(lease_name, node_name, annotations, previous)
    local now = deps.iso8601_micro(deps.now())
    return {
      apiVersion = "coordination.k8s.io/v1",
      kind = "Lease",
      metadata = {
        name = lease_name,
        namespace = deps.lease_namespace,
        resourceVersion = previous and previous.metadata.resourceVersion or nil,
        labels = {
          [restart_record.LABELS.managed_by] = "myapiserver",
          [restart_record.LABELS.node] = #node_name <= 63 and node_name or nil,
        },
        annotations = annotations,
      },
      spec = {
        holderIdentity = deps.identity,
        leaseDurationSeconds = math.ceil(deps.cooldown),
        acquireTime = now,
        renewTime = now,
      },
    }
  end

  -- Whether the Lease carries this request's claim: our own write, whose answer was lost
  -- (libcurl sends a request again, POST and PUT too, when a reused connection dies
  -- before the answer; the second attempt then finds what the first one wrote).
  local function claimed(lease, claim)
    local annotations = is_object(lease) and type(lease.metadata.annotations) == "table"
      and lease.metadata.annotations or {}
    return type(claim) == "string" and annotations[restart_record.ANNOTATIONS.claim] == claim
  end

  -- 409 unless the node's lease is free; returns the lease object (or false)
  -- otherwise, and true when the lease is this request's own (claim).
  local function check_lease(name, lease_name, within, claim)
    local lease, err = deps.k8s:get(leases_path .. "/" .. lease_name, within)
    if not lease then
      if err.code == "not_found" then
        return false
      end
      return nil, api_failure(err, "read the restart lease")
    end
    if not is_object(lease) then
      return nil, api_failure(NOT_AN_OBJECT, "read the restart lease")
    end
    if claimed(lease, claim) then
      return lease, true
    end
    local record = restart_record.from_lease(lease)
    if not record then
      return lease
    end
    local now = deps.now()
    local since = record.requested_at and deps.parse_time(record.requested_at) or 0
    local busy_until
    if record.phase == "InProgress" then
      busy_until = since + IN_PROGRESS_GRACE
    elseif record.phase ~= "Failed" then
      busy_until = since + deps.cooldown
    end
    if busy_until and now < busy_until then
      local wait = math.max(1, math.ceil(busy_until - now))
      local why = record.phase == "InProgress" and "a restart is in progress"
        or ("it was restarted at %s by %s; cooldown %ds"):format(record.requested_at, tostring(record.requested_by),
          math.floor(deps.cooldown))
      return nil, node_error(409, "Conflict", name,
        ('Operation cannot be fulfilled on nodes.infraops.michael.io "%s": %s'):format(name, why),
        { retryAfterSeconds = wait })
    end
    return lease
  end

  local function conflict(name)
    return node_error(409, "Conflict", name, ('Operation cannot be fulfilled on nodes.infraops.michael.io "%s": '
      .. "another restart of this node was just started"):format(name),
      { retryAfterSeconds = math.ceil(deps.cooldown) })
  end

  -- Takes the lease (create, or update the stale one with its resourceVersion).
  -- Whether this server has seen the node's Lease exist (host.shared, all states): a node it has
  -- not is most likely restarted for the first time, so its Lease is created at once, one round
  -- trip instead of a read and a create; AlreadyExists sends it down the read-and-update path.
  local KNOWN_PREFIX, KNOWN_TTL = "restart:lease-known:", 3600
  local function lease_known(lease_name)
    return deps.shared ~= nil and deps.shared.get(KNOWN_PREFIX .. lease_name) ~= nil
  end
  local function remember_lease(lease_name, exists)
    if deps.shared then
      if exists then
        deps.shared.set(KNOWN_PREFIX .. lease_name, "1", KNOWN_TTL)
      else
        deps.shared.delete(KNOWN_PREFIX .. lease_name)
      end
    end
  end

  -- The Lease the API answered after a create or update: later updates need
  -- its name, spec and annotations.
  local function as_lease(answer, lease_name)
    if not is_object(answer) or type(answer.spec) ~= "table" or answer.metadata.name ~= lease_name then
      return nil, api_failure(NOT_AN_OBJECT, "take the restart lease")
    end
    if type(answer.metadata.annotations) ~= "table" then
      answer.metadata.annotations = {}
    end
    return answer
  end

  -- After a Lease write that failed with 409 (perhaps its own second attempt) or got no
  -- answer at all (perhaps acted on): the Lease if this request's write landed after all;
  -- else nil and the answer for the client.
  local function after_failed_write(name, lease_name, claim, err, within)
    local lost_race = err.code == "conflict" or err.code == "already_exists"
    if lost_race or err.status == nil then
      local current = deps.k8s:get(leases_path .. "/" .. lease_name, within)
      if claimed(current, claim) then
        return current
      end
    end
    return nil, lost_race and conflict(name) or api_failure(err, "take the restart lease")
  end

  -- annotations carry the request's claim (restart_record.ANNOTATIONS.claim).
  local function take_lease(name, lease_name, annotations, within)
    local claim = annotations[restart_record.ANNOTATIONS.claim]
    if deps.shared and not lease_known(lease_name) then
      local created, err = deps.k8s:post(leases_path, lease_body(lease_name, name, annotations, nil), within)
      if not created and err.code ~= "already_exists" then
        local failure
        created, failure = after_failed_write(name, lease_name, claim, err, within)
        if not created then
          return nil, failure
        end
      end
      remember_lease(lease_name, true) -- it exists; unless it is ours, read it and take it over below
      if created then
        return as_lease(created, lease_name)
      end
    end
    local existing, ours_or_failure = check_lease(name, lease_name, within, claim)
    if existing == nil then
      return nil, ours_or_failure
    elseif ours_or_failure then -- the create above took it, only its answer was lost
      return as_lease(existing, lease_name)
    end
    local body = lease_body(lease_name, name, annotations, existing or nil)
    local taken, err
    if existing then
      taken, err = deps.k8s:put(leases_path .. "/" .. lease_name, body, within)
    else
      taken, err = deps.k8s:post(leases_path, body, within)
    end
    if not taken then
      local failure
      taken, failure = after_failed_write(name, lease_name, claim, err, within)
      if not taken then
        return nil, failure
      end
    end
    remember_lease(lease_name, true)
    return as_lease(taken, lease_name)
  end

  local function update_lease(lease, changes, within)
    for k, v in pairs(changes) do
      lease.metadata.annotations[k] = v
    end
    lease.spec.renewTime = deps.iso8601_micro(deps.now())
    local path = leases_path .. "/" .. lease.metadata.name
    local updated, err = deps.k8s:put(path, lease, within)
    if not updated and (err.code == "conflict" or err.status == nil) then -- did it land after all?
      local current = deps.k8s:get(path, within)
      local a = restart_record.ANNOTATIONS
      local phase = is_object(current) and type(current.metadata.annotations) == "table"
        and current.metadata.annotations[a.phase]
      updated = claimed(current, lease.metadata.annotations[a.claim]) and phase == changes[a.phase]
    end
    if not updated then
      deps.log.error("could not record the restart outcome in its lease", { lease = lease.metadata.name,
        error = err.message })
    end
  end

  local function release_lease(lease, within)
    -- (on success the client returns the body and the HTTP response: no error)
    local deleted, err = deps.k8s:delete(leases_path .. "/" .. lease.metadata.name, {
      body = { apiVersion = "v1", kind = "DeleteOptions",
        preconditions = { resourceVersion = lease.metadata.resourceVersion } },
      deadline = within.deadline,
    })
    if not deleted and err.code ~= "not_found" then
      deps.log.error("could not release the restart lease", { lease = lease.metadata.name, error = err.message })
    else
      remember_lease(lease.metadata.name, false)
    end
  end

  -- The provider call with bounded retries for what is safe to repeat.
  local function call_provider(entry, target, opts, retries_by)
    local deadline = math.min(deps.monotonic() + RETRY_BUDGET, retries_by)
    local result, err
    for attempt = 1, MAX_ATTEMPTS do
      result, err = deps.registry.restart(entry, target, opts)
      if result or not err.retryable or err.sent or attempt == MAX_ATTEMPTS then
        break
      end
      local wait = tonumber(err.retry_after) or (0.5 * 2 ^ (attempt - 1))
      wait = math.min(wait, 5) * (0.8 + 0.4 * deps.random())
      if deps.monotonic() + wait > deadline then
        break
      end
      deps.log.info("cloud call failed; retrying", { provider = entry.name, reason = err.reason,
        cloud_code = err.cloud_code, attempt = attempt })
      deps.sleep(wait)
    end
    return result, err
  end

  local function record_event(node, user, entry, target, opts, result, err, within)
    local now = deps.now()
    local message
    if result then
      message = ("Restart of node %s requested by %s%s: %s instance %s in %s, cloud request id %s"):format(
        node.metadata.name, user.name, opts.reason and (" (reason: " .. opts.reason .. ")") or "", entry.name,
        target.instance_id, tostring(target.region), tostring(result.request_id))
    else
      message = ("Restart of node %s requested by %s%s failed: %s instance %s: %s%s"):format(
        node.metadata.name, user.name, opts.reason and (" (reason: " .. opts.reason .. ")") or "", entry.name,
        target.instance_id, tostring(err.message or err.reason),
        err.cloud_code and (" (" .. err.cloud_code .. ")") or "")
    end
    local event = {
      apiVersion = "v1", kind = "Event",
      metadata = { name = ("%s.%x"):format(node.metadata.name, math.floor(now * 1e6)), namespace = EVENT_NAMESPACE },
      involvedObject = { apiVersion = "v1", kind = "Node", name = node.metadata.name, uid = node.metadata.name },
      reason = result and "RestartRequested" or "RestartFailed",
      type = result and "Normal" or "Warning",
      message = message,
      source = { component = "myapiserver" },
      reportingComponent = "myapiserver",
      reportingInstance = deps.identity,
      firstTimestamp = deps.iso8601(now), lastTimestamp = deps.iso8601(now), count = 1,
    }
    local recorded, event_err = deps.k8s:post(("/api/v1/namespaces/%s/events"):format(EVENT_NAMESPACE), event,
      within)
    -- AlreadyExists: the name (node and microseconds) is this Event's own, sent
    -- twice after a lost answer; the first one was recorded.
    if not recorded and event_err.code ~= "already_exists" then
      deps.log.warn("could not record the restart event", { node = node.metadata.name, error = event_err.message })
    end
  end

  local function accepted(node, user, entry, target, opts, result, requested_at)
    local name = node.metadata.name
    local body = {
      apiVersion = GROUP .. "/v1", kind = "NodeRestart",
      metadata = { name = name, creationTimestamp = requested_at },
      spec = { nodeName = name, reason = opts.reason, dryRun = opts.dry_run },
      status = {
        provider = entry.name, instanceID = target.instance_id, region = target.region, zone = target.zone,
        requestID = result.request_id, requestedBy = user.name, requestedAt = requested_at,
        dryRun = opts.dry_run, phase = opts.dry_run and "Validated" or "Requested",
      },
    }
    return { status = 202, headers = { ["Content-Type"] = "application/json" }, body = deps.cjson.encode(body) }
  end

  -- The node, its provider and target, after the guards; or nil, response.
  local function resolve(name, within)
    local node, err = deps.k8s:get("/api/v1/nodes/" .. name, within)
    if not node then
      if err.code == "not_found" then
        return nil, node_error(404, "NotFound", name, ('nodes.infraops.michael.io "%s" not found'):format(name))
      end
      return nil, api_failure(err, "read the node")
    end
    if not is_object(node) or node.metadata.name ~= name then
      return nil, api_failure(NOT_AN_OBJECT, "read the node")
    end
    local entry, target_or_code, message = deps.registry.match(node)
    if not entry and target_or_code == "limit" then
      return nil, status.failure(500, "InternalError", "Internal error occurred: " .. message)
    elseif not entry then
      local field = "spec.providerID"
      -- As apimachinery's NewInvalid: details.kind is the Kind, so kubectl prints 'The Node "x" is invalid'.
      return nil, node_error(422, "Invalid", name, ('Node.infraops.michael.io "%s" is invalid: %s: %s'):format(
        name, field, message), { kind = "Node", causes = { { reason = target_or_code == "no_provider_id"
          and "FieldValueRequired" or "FieldValueNotSupported", message = message, field = field } } })
    end
    local allowed, _, why = deps.guards:check(node)
    if not allowed then
      return nil, node_error(403, "Forbidden", name, ('nodes.infraops.michael.io "%s" is forbidden: %s'):format(
        name, why))
    end
    return node, entry, target_or_code
  end

  --- Handles the POST; user = {name, ...} from authentication.
  function self.handle(name, user, body, query, content_type)
    if not restart.valid_name(name) then
      return status.failure(400, "BadRequest", ('invalid node name "%s": must be a lowercase RFC 1123 subdomain')
        :format(name:sub(1, 300)))
    end
    local unsupported = restart.unsupported_media_type(content_type)
    if unsupported then
      return unsupported
    end
    local opts, invalid = restart.options(body, query, deps.cjson)
    if not opts then
      return invalid
    end
    opts.node = name
    local started = deps.monotonic()
    local prepare, record = { deadline = started + PREPARE_BY }, { deadline = started + RECORD_BY }
    local node, entry, target = resolve(name, prepare)
    if not node then
      return entry
    end
    local requested_at = deps.iso8601(deps.now())
    if opts.dry_run then
      local result, err = call_provider(entry, target, opts, started + CLOUD_BY)
      if not result then
        return cloud_failure(name, entry, err, true)
      end
      return accepted(node, user, entry, target, opts, result, requested_at)
    end
    local a = restart_record.ANNOTATIONS
    local lease, failure = take_lease(name, restart_record.lease_name(name, deps.crypto), {
      [a.phase] = "InProgress", [a.boot_id] = ((node.status or {}).nodeInfo or {}).bootID,
      [a.requested_by] = user.name, [a.requested_at] = requested_at, [a.provider] = entry.name,
      [a.instance_id] = target.instance_id, [a.region] = target.region, [a.reason] = opts.reason,
      [a.claim] = deps.crypto.hex_encode(deps.crypto.random_bytes(8)),
    }, prepare)
    if not lease then
      return failure
    end
    local result, err = call_provider(entry, target, opts, started + CLOUD_BY)
    if result then
      update_lease(lease, { [a.phase] = "Requested", [a.request_id] = result.request_id }, record)
    elseif err.sent or err.reason == "Timeout" then
      update_lease(lease, { [a.phase] = "Unknown", [a.error] = err.message }, record)
    else
      release_lease(lease, record)
    end
    record_event(node, user, entry, target, opts, result, err, record)
    deps.log.info(result and "restart requested" or "restart failed", { node = name, user = user.name,
      provider = entry.name, instance = target.instance_id, request_id = result and result.request_id,
      cloud_code = err and err.cloud_code })
    if not result then
      return cloud_failure(name, entry, err, false)
    end
    return accepted(node, user, entry, target, opts, result, requested_at)
  end

  return self
end

return restart
