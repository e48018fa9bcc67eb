-- The record of a node's restart, kept in a coordination.k8s.io/v1 Lease per
-- node: the in-progress lock, the cooldown, and what is needed to tell later
-- whether the reboot happened (the node's bootID before the call). Several
-- replicas agree through the Lease's resourceVersion, never through memory.
-- This module only names and reads things; infraops.restart writes them.
local restart_record = {}

local PREFIX = "infraops.michael.io/"

--- Annotation keys on the Lease.
restart_record.ANNOTATIONS = {
  phase = PREFIX .. "phase",             -- InProgress | Requested | Failed | Unknown
  boot_id = PREFIX .. "boot-id",         -- status.nodeInfo.bootID before the reboot call
  request_id = PREFIX .. "request-id",   -- the cloud's request id
  requested_by = PREFIX .. "requested-by",
  requested_at = PREFIX .. "requested-at", -- RFC 3339
  provider = PREFIX .. "provider",
  instance_id = PREFIX .. "instance-id",
  region = PREFIX .. "region",
  reason = PREFIX .. "reason",           -- the reason the user gave
  error = PREFIX .. "error",             -- why it failed (Failed / Unknown)
  claim = PREFIX .. "claim",             -- random per restart request: tells its own write
                                         -- from another's when an answer was lost
}

restart_record.LABELS = {
  managed_by = "app.kubernetes.io/managed-by", -- = "myapiserver"
  node = PREFIX .. "node",                     -- the node name when it fits a label value
}

--- The Lease name for a node: "restart-<node>", or for names too long for
-- that, a prefix of the name plus a hash (a Lease name is a DNS subdomain of
-- at most 253 characters, like a node name).
-- @tparam string node_name a valid DNS-1123 subdomain
-- @tparam table crypto host.crypto-like (sha256, hex_encode)
function restart_record.lease_name(node_name, crypto)
  local name = "restart-" .. node_name
  if #name <= 253 then
    return name
  end
  local digest = crypto.hex_encode(crypto.sha256(node_name)):sub(1, 16)
  return ("restart-%s-%s"):format(node_name:sub(1, 253 - 26):gsub("[.-]+$", ""), digest)
end

-- The Lease comes from the API as decoded JSON: a field of the wrong type
-- reads as absent (never an error).
local function tbl(v)
  return type(v) == "table" and v or nil
end

local function str(v)
  return type(v) == "string" and v or nil
end

--- The record from a Lease object (nil if it is not one of ours).
function restart_record.from_lease(lease)
  local metadata = tbl(tbl(lease) and lease.metadata) or {}
  local annotations = tbl(metadata.annotations) or {}
  local a = restart_record.ANNOTATIONS
  if not str(annotations[a.phase]) then
    return nil
  end
  local spec = tbl(lease.spec) or {}
  return {
    phase = annotations[a.phase],
    boot_id = str(annotations[a.boot_id]),
    request_id = str(annotations[a.request_id]),
    requested_by = str(annotations[a.requested_by]),
    requested_at = str(annotations[a.requested_at]),
    provider = str(annotations[a.provider]),
    instance_id = str(annotations[a.instance_id]),
    region = str(annotations[a.region]),
    reason = str(annotations[a.reason]),
    error = str(annotations[a.error]),
    holder = str(spec.holderIdentity),
    renew_time = str(spec.renewTime),
    lease_duration = math.type(spec.leaseDurationSeconds) and spec.leaseDurationSeconds or nil,
    resource_version = str(metadata.resourceVersion),
  }
end

--- The phase a reader sees, derived with no controller running:
--   Requested until the node reports another bootID than before the call,
--   Completed once the new boot is Ready, TimedOut after `timeout` seconds
--   without a new boot; Failed and Unknown as recorded.
-- @tparam table record from from_lease()
-- @tparam table node the core Node
-- @tparam number now Unix seconds
-- @tparam number timeout seconds (--restart-timeout)
-- @tparam function parse_time RFC 3339 -> Unix seconds (host.time.parse_iso8601)
function restart_record.phase(record, node, now, timeout, parse_time)
  if record.phase ~= "Requested" then
    return record.phase
  end
  local status = tbl(tbl(node) and node.status) or {}
  local boot_id = str((tbl(status.nodeInfo) or {}).bootID)
  if boot_id and record.boot_id and boot_id ~= record.boot_id then
    for _, c in ipairs(tbl(status.conditions) or {}) do
      if tbl(c) and c.type == "Ready" and c.status == "True" then
        return "Completed"
      end
    end
    return "Requested"
  end
  local at = record.requested_at and parse_time(record.requested_at)
  if at and now > at + timeout then
    return "TimedOut"
  end
  return "Requested"
end

return restart_record
