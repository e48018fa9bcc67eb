local cjson = require("cjson")
local crypto = require("host.crypto")
local restart = require("infraops.restart")
local restart_record = require("infraops.restart_record")
local time = require("host.time")

local LEASES = "/apis/coordination.k8s.io/v1/namespaces/infra/leases"

-- An in-memory API: nodes, leases with resourceVersion checks, events.
local function fake_k8s(nodes)
  local k = { leases = {}, events = {}, rv = 0, calls = {} }
  local function err(code, message) return nil, { code = code, message = message } end
  local function copy(t) return cjson.decode(cjson.encode(t)) end
  function k.get(_, path)
    k.calls[#k.calls + 1] = "GET " .. path
    local name = path:match("^/api/v1/nodes/(.+)$")
    local found = name and nodes[name] or (not name and k.leases[path:match("/leases/(.+)$")])
    if not found then
      return err("not_found", "not found")
    end
    return copy(found)
  end
  function k.post(_, path, body)
    k.calls[#k.calls + 1] = "POST " .. path
    if path:match("/events$") then
      k.events[#k.events + 1] = body
      return body
    end
    if k.leases[body.metadata.name] then
      return err("already_exists", "exists")
    end
    k.rv = k.rv + 1
    body.metadata.resourceVersion = tostring(k.rv)
    k.leases[body.metadata.name] = copy(body)
    return body
  end
  function k.put(_, path, body)
    k.calls[#k.calls + 1] = "PUT " .. path
    local current = k.leases[path:match("/leases/(.+)$")]
    if not current or current.metadata.resourceVersion ~= body.metadata.resourceVersion then
      return err("conflict", "the object has been modified")
    end
    k.rv = k.rv + 1
    body.metadata.resourceVersion = tostring(k.rv)
    k.leases[body.metadata.name] = copy(body)
    return body
  end
  function k.delete(_, path)
    k.calls[#k.calls + 1] = "DELETE " .. path
    k.leases[path:match("/leases/(.+)$")] = nil
    return true
  end
  return k
end

local NODE = { metadata = { name = "worker-1", uid = "u1", labels = {} },
  spec = { providerID = "fake:///z1/vm-1" }, status = { nodeInfo = { bootID = "boot-a" } } }

-- A registry with one provider answering from `answers` in turn.
local function fake_registry(answers)
  local r = { calls = {} }
  local entry = { name = "fake" }
  function r.match(node)
    if not node.spec.providerID then
      return nil, "no_provider_id", "the node has no spec.providerID"
    end
    return entry, { instance_id = "vm-1", region = "z1" }
  end
  function r.restart(_, target, opts)
    r.calls[#r.calls + 1] = { target = target, opts = opts }
    local a = answers[math.min(#r.calls, #answers)]
    if a.err then
      return nil, a.err
    end
    return a
  end
  return r
end

local function new(answers, opts)
  opts = opts or {}
  local clock = { now = 1700000000, mono = 0 }
  local k8s = fake_k8s(opts.nodes or { ["worker-1"] = NODE, ["cp-1"] = NODE })
  local registry = fake_registry(answers or { { request_id = "req-1" } })
  local sleeps = {}
  local r = restart.new({
    k8s = k8s, registry = registry, crypto = crypto, cjson = cjson,
    guards = { check = function(_, node)
      if node.metadata.name == opts.protected then
        return false, "protected", "node matches --protected-nodes-selector x"
      end
      return true
    end },
    log = { info = function() end, warn = function() end, error = function() end },
    now = function() return clock.now end, monotonic = function() return clock.mono end,
    iso8601 = time.iso8601, iso8601_micro = time.iso8601_micro, parse_time = time.parse_iso8601,
    sleep = function(s) sleeps[#sleeps + 1] = s; clock.mono = clock.mono + s end, random = function() return 0.5 end,
    lease_namespace = "infra", cooldown = 300, identity = "pod-a",
  })
  return r, k8s, registry, clock, sleeps
end

local ALICE = { name = "alice" }

local function decode(res)
  return cjson.decode(res.body)
end

describe("infraops.restart", function()
  describe("valid_name()", function()
    it("accepts DNS-1123 subdomains only", function()
      for _, ok in ipairs({ "a", "worker-1", "ip-10-0-1-7.ec2.internal", string.rep("a", 63) }) do
        assert.is_true(restart.valid_name(ok), ok)
      end
      for _, bad in ipairs({ "", "Worker", "-a", "a-", "a..b", "a_b", "a/b", string.rep("a", 254), ".a" }) do
        assert.is_false(restart.valid_name(bad), bad)
      end
    end)
  end)

  describe("options()", function()
    it("accepts an empty body, a RestartOptions body and ?dryRun=All", function()
      assert.same({ dry_run = false }, restart.options("", {}, cjson))
      local body = '{"apiVersion":"infraops.michael.io/v1","kind":"RestartOptions","reason":"kernel","dryRun":["All"]}'
      assert.same({ dry_run = true, reason = "kernel" }, restart.options(body, {}, cjson))
      assert.same({ dry_run = true }, restart.options(nil, { dryRun = { "All" } }, cjson))
    end)

    it("refuses unknown fields, wrong kinds, bad dryRun values and non-objects with 400", function()
      for _, body in ipairs({ '{"force":true}', '{"kind":"Pod"}', '{"dryRun":["Some"]}', '[1]', 'not json',
        '{"reason":5}', '{"apiVersion":"v1"}' }) do
        local opts, res = restart.options(body, {}, cjson)
        assert.is_nil(opts, body)
        assert.equal(400, res.status, body)
      end
      local _, res = restart.options("", { dryRun = { "true" } }, cjson)
      assert.equal(400, res.status)
    end)
  end)

  describe("handle()", function()
    it("reboots, records the lease and an Event, and answers 202 NodeRestart", function()
      local r, k8s, registry = new()
      local res = r.handle("worker-1", ALICE, '{"reason":"stuck kubelet"}', {})
      assert.equal(202, res.status)
      local body = decode(res)
      assert.equal("NodeRestart", body.kind)
      assert.same({ "fake", "vm-1", "z1", "req-1", "alice", false }, { body.status.provider, body.status.instanceID,
        body.status.region, body.status.requestID, body.status.requestedBy, body.status.dryRun })
      assert.equal(1, #registry.calls)
      local record = restart_record.from_lease(k8s.leases["restart-worker-1"])
      assert.same({ "Requested", "boot-a", "req-1", "alice", "stuck kubelet" },
        { record.phase, record.boot_id, record.request_id, record.requested_by, record.reason })
      assert.equal(1, #k8s.events)
      assert.equal("RestartRequested", k8s.events[1].reason)
      assert.matches("alice", k8s.events[1].message)
      assert.matches("req%-1", k8s.events[1].message)
      assert.matches("stuck kubelet", k8s.events[1].message)
    end)

    it("refuses a second restart inside the cooldown with 409 and retryAfterSeconds", function()
      local r, _, registry, clock = new()
      r.handle("worker-1", ALICE, "", {})
      clock.now = clock.now + 100
      local res = r.handle("worker-1", ALICE, "", {})
      assert.equal(409, res.status)
      assert.equal("Conflict", decode(res).reason)
      assert.equal(200, decode(res).details.retryAfterSeconds)
      assert.equal(1, #registry.calls)
      clock.now = clock.now + 201
      assert.equal(202, r.handle("worker-1", ALICE, "", {}).status)
      assert.equal(2, #registry.calls)
    end)

    it("loses a race for the lease with 409 and reboots nothing", function()
      local r, k8s, registry = new()
      local real_post = k8s.post
      k8s.post = function(self, path, body) -- another replica creates it first
        if path == LEASES then
          real_post(self, path, { metadata = { name = body.metadata.name, annotations = body.metadata.annotations } })
        end
        return real_post(self, path, body)
      end
      local res = r.handle("worker-1", ALICE, "", {})
      assert.equal(409, res.status)
      assert.equal(0, #registry.calls)
    end)

    it("dry run checks everything, reboots nothing, takes no lease and records no event", function()
      local r, k8s, registry = new({ { request_id = "dry", dry_run = true } })
      local res = r.handle("worker-1", ALICE, "", { dryRun = { "All" } })
      assert.equal(202, res.status)
      assert.is_true(decode(res).status.dryRun)
      assert.is_true(registry.calls[1].opts.dry_run)
      assert.is_nil(next(k8s.leases))
      assert.equal(0, #k8s.events)
    end)

    it("answers 400 for an invalid name without fetching anything, 404 for a missing node", function()
      local r, k8s = new()
      assert.equal(400, r.handle("Not_A_Name", ALICE, "", {}).status)
      assert.equal(0, #k8s.calls)
      local res = r.handle("ghost", ALICE, "", {})
      assert.equal(404, res.status)
      assert.equal('nodes.infraops.michael.io "ghost" not found', decode(res).message)
    end)

    it("answers 422 for a node without providerID and 403 for a guarded node", function()
      local bare = { metadata = { name = "bare" }, spec = {}, status = {} }
      local r = new(nil, { nodes = { bare = bare } })
      local res = r.handle("bare", ALICE, "", {})
      assert.equal(422, res.status)
      assert.equal("Invalid", decode(res).reason)
      assert.equal("spec.providerID", decode(res).details.causes[1].field)
      local guarded = { metadata = { name = "cp-1" }, spec = { providerID = "fake:///z/vm-1" }, status = {} }
      local r2, k8s2, registry2 = new(nil, { nodes = { ["cp-1"] = guarded }, protected = "cp-1" })
      local res2 = r2.handle("cp-1", ALICE, "", {})
      assert.equal(403, res2.status)
      assert.equal('nodes.infraops.michael.io "cp-1" is forbidden: node matches --protected-nodes-selector x',
        decode(res2).message)
      assert.equal(0, #registry2.calls)
      assert.is_nil(next(k8s2.leases))
    end)

    it("retries throttling with backoff, then succeeds", function()
      local throttled = { err = { reason = "Throttled", retryable = true, cloud_code = "RequestLimitExceeded" } }
      local r, _, registry, _, sleeps = new({ throttled, throttled, { request_id = "req-3" } })
      local res = r.handle("worker-1", ALICE, "", {})
      assert.equal(202, res.status)
      assert.equal(3, #registry.calls)
      assert.equal(2, #sleeps)
      assert.is_true(sleeps[2] > sleeps[1])
    end)

    it("gives up on throttling with 429 and Retry-After, releasing the lease", function()
      local throttled = { err = { reason = "Throttled", retryable = true, retry_after = 7,
        cloud_code = "RequestLimitExceeded", request_id = "r-9" } }
      local r, k8s, registry = new({ throttled })
      local res = r.handle("worker-1", ALICE, "", {})
      assert.equal(429, res.status)
      assert.equal("7", res.headers["Retry-After"])
      assert.equal(3, #registry.calls)
      assert.is_nil(next(k8s.leases))
      assert.equal("RestartFailed", k8s.events[1].reason)
    end)

    it("keeps the lease and sends no Retry-After when the outcome is unknown", function()
      local r, k8s, registry = new({ { err = { reason = "Timeout", sent = true, retryable = true } } })
      local res = r.handle("worker-1", ALICE, "", {})
      assert.equal(504, res.status)
      assert.is_nil(res.headers["Retry-After"])
      assert.equal(1, #registry.calls)
      assert.equal("Unknown", restart_record.from_lease(k8s.leases["restart-worker-1"]).phase)
      assert.equal(409, r.handle("worker-1", ALICE, "", {}).status)
    end)

    it("maps a cloud refusal to 502 naming the cloud code and request id, and releases the lease", function()
      local r, k8s = new({ { err = { reason = "Forbidden", cloud_code = "UnauthorizedOperation", request_id = "r-1",
        message = "not allowed" } } })
      local res = r.handle("worker-1", ALICE, "", {})
      assert.equal(502, res.status)
      local msg = decode(res).message
      assert.matches("UnauthorizedOperation", msg)
      assert.matches("r%-1", msg)
      assert.is_nil(next(k8s.leases))
    end)

    it("answers 503 with Retry-After when the cloud is unavailable after retries", function()
      local down = { err = { reason = "Unavailable", retryable = true } }
      local r = new({ down })
      local res = r.handle("worker-1", ALICE, "", {})
      assert.equal(503, res.status)
      assert.is_string(res.headers["Retry-After"])
    end)
  end)
end)
