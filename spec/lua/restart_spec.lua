local cjson = require("cjson")
local crypto = require("host.crypto")
local restart = require("infraops.restart")
local restart_record = require("infraops.restart_record")
local time = require("host.time")

local LEASES = "/apis/coordination.k8s.io/v1/namespaces/infra/leases"

-- An in-memory API: nodes, leases with resourceVersion checks, events. Like
-- infraops.k8s.client, a success returns the body and the HTTP response.
local function fake_k8s(nodes)
  local k = { leases = {}, events = {}, rv = 0, calls = {}, deadlines = {} }
  local function err(code, message) return nil, { code = code, message = message } end
  local function copy(t) return cjson.decode(cjson.encode(t)) end
  function k.get(_, path, opts)
    k.calls[#k.calls + 1] = "GET " .. path
    k.deadlines[#k.calls] = opts and opts.deadline
    local name = path:match("^/api/v1/nodes/(.+)$")
    local found = name and nodes[name] or (not name and k.leases[path:match("/leases/(.+)$")])
    if not found then
      return err("not_found", "not found")
    end
    return copy(found)
  end
  function k.post(_, path, body, opts)
    k.calls[#k.calls + 1] = "POST " .. path
    k.deadlines[#k.calls] = opts and opts.deadline
    if path:match("/events$") then
      k.events[#k.events + 1] = body
      return body, { status = 201 }
    end
    if k.leases[body.metadata.name] then
      return err("already_exists", "exists")
    end
    k.rv = k.rv + 1
    body.metadata.resourceVersion = tostring(k.rv)
    k.leases[body.metadata.name] = copy(body)
    return body, { status = 201 }
  end
  function k.put(_, path, body, opts)
    k.calls[#k.calls + 1] = "PUT " .. path
    k.deadlines[#k.calls] = opts and opts.deadline
    local current = k.leases[path:match("/leases/(.+)$")]
    if not current or current.metadata.resourceVersion ~= body.metadata.resourceVersion then
      return err("conflict", "the object has been modified")
    end
    k.rv = k.rv + 1
    body.metadata.resourceVersion = tostring(k.rv)
    k.leases[body.metadata.name] = copy(body)
    return body
  end
  function k.delete(_, path, opts)
    k.calls[#k.calls + 1] = "DELETE " .. path
    k.deadlines[#k.calls] = opts and opts.deadline
    k.leases[path:match("/leases/(.+)$")] = nil
    return true, { status = 200 }
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
  local sleeps, logs = {}, {}
  local function logger(level)
    return function(message, fields) logs[#logs + 1] = { level = level, message = message, fields = fields } end
  end
  local r = restart.new({
    k8s = k8s, registry = registry, crypto = crypto, cjson = cjson,
    guards = { check = function(_, node)
      if node.metadata.name == opts.protected then
        return false, "protected", "node matches --protected-nodes-selector x"
      end
      return true
    end },
    log = { info = logger("info"), warn = logger("warn"), error = logger("error") },
    now = function() return clock.now end, monotonic = function() return clock.mono end,
    iso8601 = time.iso8601, iso8601_micro = time.iso8601_micro, parse_time = time.parse_iso8601,
    sleep = function(s) sleeps[#sleeps + 1] = s; clock.mono = clock.mono + s end, random = function() return 0.5 end,
    lease_namespace = "infra", cooldown = 300, identity = "pod-a", shared = opts.shared,
  })
  return r, k8s, registry, clock, sleeps, logs
end

local function problems(logs)
  local out = {}
  for _, l in ipairs(logs) do
    if l.level ~= "info" then
      out[#out + 1] = l.message
    end
  end
  return out
end

local ALICE = { name = "alice" }

-- The annotations another request (another replica) would write for the same
-- node: the same record under its own claim.
local function others(body)
  local annotations = cjson.decode(cjson.encode(body.metadata.annotations))
  annotations[restart_record.ANNOTATIONS.claim] = "another-request"
  return annotations
end

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

  describe("unsupported_media_type()", function()
    it("reads JSON, or a body with no Content-Type (kube reads that as JSON)", function()
      for _, ct in ipairs({ nil, "application/json", "Application/JSON", "application/json; charset=utf-8",
        " application/json" }) do
        assert.is_nil(restart.unsupported_media_type(ct), tostring(ct))
      end
    end)

    it("answers 415 for what a browser sends cross-site without asking, and for anything else", function()
      for _, ct in ipairs({ "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
        "application/yaml", "application/jsonx", "" }) do
        local res = restart.unsupported_media_type(ct)
        if ct == "" then
          assert.is_nil(res) -- an empty header is no type at all
        else
          assert.equal(415, res.status, ct)
          assert.equal("UnsupportedMediaType", cjson.decode(res.body).reason)
        end
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

    describe("with the shared store: a Lease it has not seen is created at once", function()
      local fake_shared = require("spec.helpers.fake_shared")
      local LEASE = LEASES .. "/restart-worker-1"

      it("creates a new node's Lease without reading it first, then reads a known one", function()
        local r, k8s, registry, clock = new(nil, { shared = fake_shared.new() })
        assert.equal(202, r.handle("worker-1", ALICE, "", {}).status)
        assert.same({ "GET /api/v1/nodes/worker-1", "POST " .. LEASES, "PUT " .. LEASE }, { k8s.calls[1], k8s.calls[2],
          k8s.calls[3] })
        k8s.calls = {}
        clock.now = clock.now + 301
        assert.equal(202, r.handle("worker-1", ALICE, "", {}).status)
        assert.same({ "GET /api/v1/nodes/worker-1", "GET " .. LEASE, "PUT " .. LEASE }, { k8s.calls[1], k8s.calls[2],
          k8s.calls[3] })
        assert.equal(2, #registry.calls)
      end)

      it("falls back to read and update when the Lease exists, cooldown and all", function()
        local shared = fake_shared.new()
        local r, k8s, registry, clock = new(nil, { shared = shared })
        assert.equal(202, r.handle("worker-1", ALICE, "", {}).status)
        shared.delete("restart:lease-known:restart-worker-1") -- as after a restart of this server
        clock.now = clock.now + 100
        k8s.calls = {}
        local res = r.handle("worker-1", ALICE, "", {})
        assert.equal(409, res.status) -- inside the cooldown, found after AlreadyExists
        assert.same({ "GET /api/v1/nodes/worker-1", "POST " .. LEASES, "GET " .. LEASE }, k8s.calls)
        clock.now = clock.now + 201
        assert.equal(202, r.handle("worker-1", ALICE, "", {}).status)
        assert.equal(2, #registry.calls)
      end)

      it("forgets a Lease it released, and loses a race for a new one with 409", function()
        local shared = fake_shared.new()
        local r, k8s, registry = new({ { err = { reason = "Throttled", message = "no", retryable = false } } },
          { shared = shared })
        assert.is_true(r.handle("worker-1", ALICE, "", {}).status >= 400)
        assert.is_nil(k8s.leases["restart-worker-1"]) -- released after a certain failure
        assert.is_nil(shared.get("restart:lease-known:restart-worker-1"))
        local real_post = k8s.post
        k8s.post = function(self, path, body) -- another replica creates it first
          if path == LEASES then
            real_post(self, path, { metadata = { name = body.metadata.name, annotations = others(body),
              creationTimestamp = "x" }, spec = { renewTime = time.iso8601_micro(1700000000) } })
          end
          return real_post(self, path, body)
        end
        local res = r.handle("worker-1", ALICE, "", {})
        assert.equal(409, res.status)
        assert.equal(1, #registry.calls)
      end)
    end)

    it("gives every Kubernetes call a deadline inside kube-apiserver's 60 s request timeout", function()
      local r, k8s, _, clock = new()
      clock.mono = 100
      assert.equal(202, r.handle("worker-1", ALICE, "", {}).status)
      -- The node read and the Lease by 15 s from the start; the outcome (Lease update, Event) by 57 s.
      assert.same({ "GET /api/v1/nodes/worker-1", "GET " .. LEASES .. "/restart-worker-1", "POST " .. LEASES,
        "PUT " .. LEASES .. "/restart-worker-1", "POST /api/v1/namespaces/default/events" }, k8s.calls)
      assert.same({ 115, 115, 115, 157, 157 }, k8s.deadlines)
    end)

    it("starts no cloud retry 30 s after the restart began", function()
      local throttled = { err = { reason = "Throttled", message = "slow down", retryable = true, retry_after = 4 } }
      local r, _, registry, clock, sleeps = new({ throttled, throttled, { request_id = "late" } })
      local real_restart = registry.restart
      registry.restart = function(...) -- each cloud call takes 12 s
        clock.mono = clock.mono + 12
        return real_restart(...)
      end
      local res = r.handle("worker-1", ALICE, "", {})
      assert.is_true(res.status >= 400)
      assert.equal(2, #registry.calls) -- 12 s, a 4 s wait, 12 s: 28 s; the next wait would end past 30 s
      assert.equal(1, #sleeps)
    end)

    it("loses a race for the lease with 409 and reboots nothing", function()
      local r, k8s, registry = new()
      local real_post = k8s.post
      k8s.post = function(self, path, body) -- another replica creates it first
        if path == LEASES then
          real_post(self, path, { metadata = { name = body.metadata.name, annotations = others(body) } })
        end
        return real_post(self, path, body)
      end
      local res = r.handle("worker-1", ALICE, "", {})
      assert.equal(409, res.status)
      assert.equal(0, #registry.calls)
    end)

    describe("when a write landed but its answer was lost and the HTTP client sent it again", function()
      local fake_shared = require("spec.helpers.fake_shared")

      -- Makes the fake's `verb` on `pattern` act once, then answer as the second
      -- attempt would (AlreadyExists for a create, Conflict for a stale update),
      -- or, with `unanswered`, fail as a connection lost before any answer does.
      local function lose_answer(k8s, verb, pattern, unanswered)
        local real, lost = k8s[verb], false
        k8s[verb] = function(self, path, body, opts)
          local first, err = real(self, path, body, opts)
          if lost or not path:match(pattern) or not first then
            return first, err
          end
          lost = true
          if unanswered then
            return nil, { code = "unavailable", message = "Connection reset by peer" }
          end
          return nil, verb == "post" and { code = "already_exists", message = "exists" }
            or { code = "conflict", message = "the object has been modified" }
        end
      end

      local function assert_one_clean_restart(res, k8s, registry, logs)
        assert.equal(202, res.status)
        assert.equal(1, #registry.calls)
        assert.equal("Requested", restart_record.from_lease(k8s.leases["restart-worker-1"]).phase)
        assert.same({}, problems(logs))
      end

      for _, case in ipairs({
        { what = "takes its own new Lease (created at once)", shared = true, verb = "post", path = "/leases$" },
        { what = "takes its own new Lease (read first)", verb = "post", path = "/leases$" },
        { what = "takes its own new Lease after a create without any answer (created at once)", shared = true,
          verb = "post", path = "/leases$", unanswered = true },
        { what = "takes its own new Lease after a create without any answer (read first)", verb = "post",
          path = "/leases$", unanswered = true },
        -- the lease is taken by POST: the first PUT is the outcome's
        { what = "counts the outcome recorded when the update's second attempt conflicts", verb = "put",
          path = "/leases/" },
        { what = "counts the outcome recorded when the update got no answer but landed", verb = "put",
          path = "/leases/", unanswered = true },
        { what = "counts an Event that already exists under its own name as recorded", verb = "post",
          path = "/events$" },
      }) do
        it(case.what .. ": one reboot, 202, nothing logged", function()
          local r, k8s, registry, _, _, logs = new(nil, { shared = case.shared and fake_shared.new() or nil })
          lose_answer(k8s, case.verb, case.path, case.unanswered)
          assert_one_clean_restart(r.handle("worker-1", ALICE, "", {}), k8s, registry, logs)
          assert.equal(1, #k8s.events)
        end)
      end

      for _, unanswered in ipairs({ false, true }) do
        it("takes its own update of a Lease past its cooldown" .. (unanswered and " (no answer at all)" or "")
          .. " and reboots once", function()
          local r, k8s, registry, clock, _, logs = new()
          assert.equal(202, r.handle("worker-1", ALICE, "", {}).status)
          clock.now = clock.now + 301
          registry.calls = {}
          lose_answer(k8s, "put", "/leases/", unanswered)
          assert_one_clean_restart(r.handle("worker-1", ALICE, "", {}), k8s, registry, logs)
        end)
      end

      it("answers 503 and reboots nothing when a Lease write got no answer and did not land", function()
        local r, k8s, registry = new(nil, { shared = fake_shared.new() })
        k8s.post = function() return nil, { code = "unavailable", message = "Connection reset by peer" } end
        local res = r.handle("worker-1", ALICE, "", {})
        assert.equal(503, res.status)
        assert.equal(0, #registry.calls)
        assert.is_nil(next(k8s.leases))
      end)

      it("still loses to another request's Lease with 409, and logs a lost outcome it cannot find", function()
        local r, k8s, registry, clock, _, logs = new()
        assert.equal(202, r.handle("worker-1", ALICE, "", {}).status)
        clock.now = clock.now + 301
        local real_put = k8s.put
        k8s.put = function(self, path, body, opts) -- another request updates the Lease first
          local stolen = cjson.decode(cjson.encode(body))
          stolen.metadata.annotations = others(body)
          real_put(self, path, stolen, opts)
          return real_put(self, path, body, opts)
        end
        assert.equal(409, r.handle("worker-1", ALICE, "", {}).status)
        assert.equal(1, #registry.calls)
        clock.now = clock.now + 301
        k8s.leases = {} -- now the Lease is created, and the outcome's update conflicts with a stranger's write
        assert.equal(202, r.handle("worker-1", ALICE, "", {}).status)
        assert.same({ "could not record the restart outcome in its lease" }, problems(logs))
      end)
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

    it("logs no problem when the lease, its release and the Event all succeed", function()
      local r, _, _, _, _, logs = new()
      assert.equal(202, r.handle("worker-1", ALICE, "", {}).status)
      local r2, k8s2, _, _, _, logs2 = new({ { err = { reason = "Forbidden", message = "no" } } })
      assert.equal(502, r2.handle("worker-1", ALICE, "", {}).status)
      assert.is_nil(next(k8s2.leases))
      assert.same({}, problems(logs))
      assert.same({}, problems(logs2))
    end)

    it("answers 503 with Retry-After when the cloud is unavailable after retries", function()
      local down = { err = { reason = "Unavailable", retryable = true } }
      local r = new({ down })
      local res = r.handle("worker-1", ALICE, "", {})
      assert.equal(503, res.status)
      assert.is_string(res.headers["Retry-After"])
    end)

    it("answers a connection lost after sending with 504 and no Retry-After, keeping the lease", function()
      local r, k8s = new({ { err = { reason = "Unavailable", sent = true, message = "EC2: io: reset" } } })
      local res = r.handle("worker-1", ALICE, "", {})
      assert.equal(504, res.status)
      assert.is_nil(res.headers["Retry-After"])
      assert.matches("may or may not have happened", decode(res).message)
      assert.equal("Unknown", restart_record.from_lease(k8s.leases["restart-worker-1"]).phase)
    end)

    it("answers an unreadable cloud answer to a sent reboot with 502, keeping the lease", function()
      local r, k8s = new({ { err = { reason = "Internal", sent = true, cloud_code = "InvalidResponse",
        message = "not an API 3.0 JSON response" } } })
      local res = r.handle("worker-1", ALICE, "", {})
      assert.equal(502, res.status)
      assert.equal("BadGateway", decode(res).reason)
      assert.is_nil(res.headers["Retry-After"])
      assert.matches("could not be understood; the restart of node \"worker%-1\" may or may not have happened",
        decode(res).message)
      assert.equal("Unknown", restart_record.from_lease(k8s.leases["restart-worker-1"]).phase)
    end)

    it("answers a provider that failed (raised, or hit a limit) with 500; lease kept only if it sent", function()
      local r, k8s = new({ { err = { reason = "Internal", provider_failed = true,
        message = "the restart call exceeded its instruction limit (--provider-instruction-limit=9)" } } })
      local res = r.handle("worker-1", ALICE, "", {})
      assert.equal(500, res.status)
      assert.equal("Internal error occurred: fake: the restart call exceeded its instruction limit "
        .. "(--provider-instruction-limit=9)", decode(res).message)
      assert.is_nil(next(k8s.leases))
      local r2, k8s2 = new({ { err = { reason = "Internal", provider_failed = true, sent = true, message = "x" } } })
      local res2 = r2.handle("worker-1", ALICE, "", {})
      assert.equal(500, res2.status)
      assert.matches("may or may not have happened", decode(res2).message)
      assert.equal("Unknown", restart_record.from_lease(k8s2.leases["restart-worker-1"]).phase)
    end)

    it("answers 500 when matching the node's provider hit a limit", function()
      local r, k8s, registry = new()
      registry.match = function() return nil, "limit", "fake: the match call exceeded its memory limit" end
      local res = r.handle("worker-1", ALICE, "", {})
      assert.equal(500, res.status)
      assert.equal("Internal error occurred: fake: the match call exceeded its memory limit", decode(res).message)
      assert.is_nil(next(k8s.leases))
    end)
  end)
end)
