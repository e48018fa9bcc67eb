-- restart_body: POST .../nodes/NAME/restart with a fuzzed node name, raw
-- query and RestartOptions body: infraops.restart.options on its own, then
-- the whole request through infraops.app (name check, body, node lookup,
-- provider, guards, Lease, cloud call, Event) as system:masters.
--
-- Input: one mode byte, then name NUL query NUL body. Mode bit 0 set: the
-- name is sent percent-encoded as a path segment (so '/' and NUL-free bytes
-- of every kind reach the handler); else as written.
--
-- Checks: options() gives {dry_run = boolean, reason = string <= 1024 bytes}
-- or nil and a 400 response; the handler's response is one the host accepts
-- and a 202 only follows valid options.
local cjson = require("cjson")
local common = require("harness.common")
local restart = require("infraops.restart")
local url = require("infraops.url")
local world = require("harness.world").new()

local MASTERS = { presented = true, verified_client_ca = true, verified_requestheader = false, common_name = "admin",
  organizations = { "system:masters" }, sha256 = string.rep("ab", 32) }

local function escape(s)
  return (s:gsub("[^%w%-%._~]", function(c)
    return ("%%%02X"):format(c:byte())
  end))
end

local function query_pairs(raw)
  local out = {}
  for piece in (raw .. "&"):gmatch("([^&]*)&") do
    if piece ~= "" then
      local name, value = piece:match("^([^=]*)=(.*)$")
      out[#out + 1] = { name or piece, value or "" }
    end
  end
  return out
end

local function check_options(opts, bad)
  if opts == nil then
    common.check_response(bad, "restart.options")
    if bad.status ~= 400 then
      common.fail("restart.options refused with status %s, not 400", tostring(bad.status))
    end
    return
  end
  if type(opts) ~= "table" or type(opts.dry_run) ~= "boolean" then
    common.fail("restart.options returned a malformed options table")
  end
  if opts.reason ~= nil and (type(opts.reason) ~= "string" or #opts.reason > 1024) then
    common.fail("restart.options accepted a reason of %s", type(opts.reason))
  end
end

return function(data)
  local mode, rest = common.byte(data)
  local fields = common.split(rest, 3)
  local name, raw_query, body = fields[1], fields[2], fields[3]
  local pairs_ = query_pairs(raw_query)
  local query = url.query(pairs_)
  local opts, bad
  if query then
    opts, bad = restart.options(body, query, cjson)
    check_options(opts, bad)
  end
  world.reset()
  local segment = mode & 1 == 1 and escape(name) or name
  local req = { id = "fuzz", method = "POST", path = "/apis/infraops.michael.io/v1/nodes/" .. segment .. "/restart",
    query = pairs_, headers = {}, body = body, remote_address = "192.0.2.1:4000", peer = MASTERS }
  local res = world.handle(req)
  common.check_response(res, "POST restart")
  if res.status == 202 and not opts then
    common.fail("202 for a request whose options are invalid")
  end
end
