-- infraops.nodes (lua/infraops/nodes.lua): GET nodes and GET nodes/NAME,
-- with a fake Kubernetes client, a fake provider registry and real guards.
local cjson = require("cjson")
local crypto = require("host.crypto")
local time = require("host.time")
local guards = require("infraops.guards")
local nodes = require("infraops.nodes")
local restart_record = require("infraops.restart_record")

local NOW = 1700000000
local NS = "infraops-system"
local LEASES = "/apis/coordination.k8s.io/v1/namespaces/" .. NS .. "/leases"
local TABLE_ACCEPT = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;"
  .. "g=meta.k8s.io,application/json"

local function iso(t)
  return os.date("!%Y-%m-%dT%H:%M:%SZ", t)
end

local function core_node(name, opts)
  opts = opts or {}
  return {
    apiVersion = "v1",
    kind = "Node",
    metadata = {
      name = name,
      uid = "uid-" .. name,
      resourceVersion = opts.rv or "100",
      creationTimestamp = iso(opts.created or (NOW - 5 * 86400)),
      labels = opts.labels or { ["kubernetes.io/hostname"] = name },
      annotations = { ["node.alpha.kubernetes.io/ttl"] = "0" },
    },
    spec = { providerID = opts.provider_id },
    status = {
      nodeInfo = { bootID = opts.boot_id or "boot-a" },
      conditions = { { type = "Ready", status = opts.ready == false and "False" or "True" } },
    },
  }
end

local function lease(node_name, annotations)
  local a = {}
  for key, value in pairs(annotations) do
    a[restart_record.ANNOTATIONS[key]] = value
  end
  return {
    apiVersion = "coordination.k8s.io/v1",
    kind = "Lease",
    metadata = {
      name = restart_record.lease_name(node_name, crypto),
      namespace = NS,
      resourceVersion = "7",
      labels = { [restart_record.LABELS.managed_by] = "myapiserver" },
      annotations = a,
    },
    spec = { holderIdentity = "myapiserver-0" },
  }
end

-- providerID "fake:///<zone>/<id>"; "fake://bad" is ours but malformed.
local function fake_registry()
  return {
    match = function(node)
      local id = node.spec and node.spec.providerID
      if not id or id == "" then
        return nil, "no_provider_id", "the node has no spec.providerID"
      end
      if id == "fake://bad" then
        return nil, "malformed", "fake: malformed providerID"
      end
      local zone, instance = id:match("^fake:///([%w-]+)/([%w-]+)$")
      if not zone then
        return nil, "no_match", ("no provider script matches providerID %q (loaded providers: fake)"):format(id)
      end
      return { name = "fake" }, { instance_id = instance, region = zone:sub(1, -2), zone = zone, account = "42" }
    end,
  }
end

-- A fake client: routes path -> answer (a table), { err = {...} }, or a
-- function(opts) -> answer; unknown paths answer 404. Records every call.
local function fake_k8s(routes)
  local k8s = { calls = {} }
  function k8s:get(path, opts)
    self.calls[#self.calls + 1] = { path = path, query = opts and opts.query }
    local answer = routes[path]
    if type(answer) == "function" then
      answer = answer(opts)
    end
    if answer == nil then
      return nil, { code = "not_found", status = 404, reason = "NotFound", message = "not found" }
    elseif answer.err then
      return nil, answer.err
    end
    return answer
  end
  function k8s:paths()
    local out = {}
    for i, call in ipairs(self.calls) do
      out[i] = call.path
    end
    return out
  end
  return k8s
end

local function quiet_log()
  local log = { lines = {} }
  for _, level in ipairs({ "debug", "info", "warn", "error" }) do
    log[level] = function(message, fields)
      log.lines[#log.lines + 1] = { level = level, message = message, fields = fields }
    end
  end
  return log
end

local function new(routes, opts)
  opts = opts or {}
  local k8s = fake_k8s(routes or {})
  local n = nodes.new({
    k8s = k8s,
    registry = fake_registry(),
    guards = guards.new({ own_node = "self-node", protected = opts.protected }),
    crypto = crypto,
    lease_namespace = NS,
    restart_timeout = 900,
    now = function() return NOW end,
    parse_time = time.parse_iso8601,
    log = quiet_log(),
  })
  return n, k8s
end

local function decode(res, code)
  assert.are.equal(code or 200, res.status)
  assert.are.equal("application/json", res.headers["Content-Type"])
  return cjson.decode(res.body)
end

local function assert_status(res, code, reason)
  local body = decode(res, code)
  assert.are.equal("Status", body.kind)
  assert.are.equal("Failure", body.status)
  assert.are.equal(code, body.code)
  assert.are.equal(reason, body.reason)
  return body
end

local AWS_LIKE = "fake:///us-east-1a/i-0abc"

describe("infraops.nodes", function()
  describe("view()", function()
    it("shows a matched node's cloud identity and restartability", function()
      local n = new()
      local v = n:view(core_node("w1", { provider_id = AWS_LIKE }))
      assert.are.equal("infraops.michael.io/v1", v.apiVersion)
      assert.are.equal("Node", v.kind)
      assert.are.same({
        name = "w1", uid = "uid-w1", labels = { ["kubernetes.io/hostname"] = "w1" },
        creationTimestamp = iso(NOW - 5 * 86400), resourceVersion = "100",
      }, v.metadata)
      assert.are.same({ providerID = AWS_LIKE }, v.spec)
      assert.are.same({ provider = "fake", instanceID = "i-0abc", region = "us-east-1", zone = "us-east-1a",
        account = "42" }, v.status.cloud)
      assert.is_true(v.status.restartable)
      assert.is_nil(v.status.reason)
      assert.is_nil(v.status.message)
      assert.is_nil(v.status.lastRestart)
    end)

    it("gives the reason a node cannot be restarted", function()
      local n = new()
      local cases = {
        { core_node("a"), "NoProviderID", false },
        { core_node("b", { provider_id = "gce://p/z/vm" }), "NoMatchingProvider", false },
        { core_node("c", { provider_id = "fake://bad" }), "MalformedProviderID", false },
        { core_node("self-node", { provider_id = AWS_LIKE }), "OwnNode", true },
        { core_node("cp", { provider_id = AWS_LIKE, labels = { ["node-role.kubernetes.io/control-plane"] = "" } }),
          "Protected", true },
      }
      for _, case in ipairs(cases) do
        local v = n:view(case[1])
        assert.is_false(v.status.restartable, case[2])
        assert.are.equal(case[2], v.status.reason)
        assert.is_string(v.status.message)
        assert.are.equal(case[3], v.status.cloud ~= nil, case[2])
      end
    end)

    it("checks the provider before the guards (as the restart does)", function()
      local v = new():view(core_node("self-node"))
      assert.are.equal("NoProviderID", v.status.reason)
    end)

    it("names the loaded providers when nothing matches", function()
      local v = new():view(core_node("b", { provider_id = "gce://p/z/vm" }))
      assert.is_truthy(v.status.message:find("fake", 1, true))
    end)

    it("derives the last restart's phase from the Lease and the node", function()
      local n = new()
      local requested = {
        phase = "Requested", boot_id = "boot-a", requested_at = iso(NOW - 60), requested_by = "alice",
        request_id = "req-1", provider = "fake", instance_id = "i-0abc", region = "us-east-1", reason = "stuck",
      }
      local v = n:view(core_node("w1", { provider_id = AWS_LIKE }), lease("w1", requested))
      assert.are.same({
        phase = "Requested", requestedAt = iso(NOW - 60), requestedBy = "alice", requestID = "req-1",
        provider = "fake", instanceID = "i-0abc", reason = "stuck",
      }, v.status.lastRestart)

      v = n:view(core_node("w1", { provider_id = AWS_LIKE, boot_id = "boot-b" }), lease("w1", requested))
      assert.are.equal("Completed", v.status.lastRestart.phase)

      v = n:view(core_node("w1", { provider_id = AWS_LIKE, boot_id = "boot-b", ready = false }),
        lease("w1", requested))
      assert.are.equal("Requested", v.status.lastRestart.phase)

      requested.requested_at = iso(NOW - 901)
      v = n:view(core_node("w1", { provider_id = AWS_LIKE }), lease("w1", requested))
      assert.are.equal("TimedOut", v.status.lastRestart.phase)
    end)

    it("reports recorded phases and only the fields that are set", function()
      local v = new():view(core_node("w1", { provider_id = AWS_LIKE }),
        lease("w1", { phase = "Failed", requested_at = iso(NOW - 5), error = "InvalidState: stopped" }))
      assert.are.same({ phase = "Failed", requestedAt = iso(NOW - 5), error = "InvalidState: stopped" },
        v.status.lastRestart)
    end)

    it("ignores a Lease that is not a restart record", function()
      local v = new():view(core_node("w1", { provider_id = AWS_LIKE }), { metadata = { name = "restart-w1" } })
      assert.is_nil(v.status.lastRestart)
    end)

    it("does not trip over a garbage timestamp", function()
      local v = new():view(core_node("w1", { provider_id = AWS_LIKE }),
        lease("w1", { phase = "Requested", boot_id = "boot-a", requested_at = "yesterday" }))
      assert.are.equal("Requested", v.status.lastRestart.phase)
    end)
  end)

  describe("get()", function()
    it("answers 200 with the node and its restart Lease", function()
      local routes = {
        ["/api/v1/nodes/w1"] = core_node("w1", { provider_id = AWS_LIKE }),
        [LEASES .. "/restart-w1"] = lease("w1", { phase = "Requested", boot_id = "boot-a",
          requested_at = iso(NOW - 10) }),
      }
      local n, k8s = new(routes)
      local body = decode(n:get("w1"))
      assert.are.same({ "/api/v1/nodes/w1", LEASES .. "/restart-w1" }, k8s:paths())
      assert.are.equal("Node", body.kind)
      assert.are.equal("w1", body.metadata.name)
      assert.are.equal("i-0abc", body.status.cloud.instanceID)
      assert.is_true(body.status.restartable)
      assert.are.equal("Requested", body.status.lastRestart.phase)
    end)

    it("has no lastRestart when the Lease does not exist", function()
      local n = new({ ["/api/v1/nodes/w1"] = core_node("w1", { provider_id = AWS_LIKE }) })
      local body = decode(n:get("w1"))
      assert.is_nil(body.status.lastRestart)
    end)

    it("reads the hashed Lease name of a very long node name", function()
      local name = ("a"):rep(120) .. "." .. ("b"):rep(130)
      local n, k8s = new({ ["/api/v1/nodes/" .. name] = core_node(name) })
      decode(n:get(name))
      assert.are.equal(LEASES .. "/" .. restart_record.lease_name(name, crypto), k8s.calls[2].path)
      assert.is_true(#restart_record.lease_name(name, crypto) <= 253)
    end)

    it("refuses an invalid name with 400 and fetches nothing", function()
      local n, k8s = new()
      for _, name in ipairs({ "Upper", "a_b", "-a", "a..b", ("a"):rep(254), "", "a b", "a/b" }) do
        assert_status(n:get(name), 400, "BadRequest")
      end
      assert.are.same({}, k8s.calls)
    end)

    it("answers 404 in kube's words when the core node is missing", function()
      local n, k8s = new()
      local body = assert_status(n:get("ghost"), 404, "NotFound")
      assert.are.equal('nodes.infraops.michael.io "ghost" not found', body.message)
      assert.are.same({ name = "ghost", group = "infraops.michael.io", kind = "nodes" }, body.details)
      assert.are.equal(1, #k8s.calls)
    end)

    it("maps Kubernetes API failures", function()
      local cases = {
        { { code = "unavailable", message = "connection refused" }, 503, "ServiceUnavailable" },
        { { code = "timeout", status = 504, message = "slow" }, 504, "Timeout" },
        { { code = "forbidden", status = 403, reason = "Forbidden", message = "no" }, 500, "InternalError" },
        { { code = "unauthorized", status = 401 }, 500, "InternalError" },
        { { code = "credentials_unavailable", message = "token file missing" }, 503, "ServiceUnavailable" },
        { { code = "invalid_response", message = "not JSON" }, 500, "InternalError" },
        { { code = "too_many_requests", status = 429, retry_after = 3 }, 429, "TooManyRequests" },
      }
      for _, case in ipairs(cases) do
        local n = new({ ["/api/v1/nodes/w1"] = { err = case[1] } })
        local res = n:get("w1")
        local body = assert_status(res, case[2], case[3])
        assert.are.equal("w1", body.details.name)
        if case[2] == 429 then
          assert.are.equal("3", res.headers["Retry-After"])
          assert.are.equal(3, body.details.retryAfterSeconds)
        end
      end
    end)

    it("fails when the Lease cannot be read (other than 404)", function()
      local n = new({
        ["/api/v1/nodes/w1"] = core_node("w1", { provider_id = AWS_LIKE }),
        [LEASES .. "/restart-w1"] = { err = { code = "unavailable", message = "reset" } },
      })
      assert_status(n:get("w1"), 503, "ServiceUnavailable")
    end)

    it("answers a one-row Table when asked", function()
      local n = new({ ["/api/v1/nodes/w1"] = core_node("w1", { provider_id = AWS_LIKE }) })
      local body = decode(n:get("w1", TABLE_ACCEPT))
      assert.are.equal("Table", body.kind)
      assert.are.equal("meta.k8s.io/v1", body.apiVersion)
      assert.are.equal("100", body.metadata.resourceVersion)
      assert.are.equal(1, #body.rows)
      assert.are.same({ "w1", "fake", "i-0abc", "us-east-1", true, "5d" }, body.rows[1].cells)
      assert.are.same({ kind = "PartialObjectMetadata", apiVersion = "meta.k8s.io/v1", metadata = {
        name = "w1", uid = "uid-w1", labels = { ["kubernetes.io/hostname"] = "w1" },
        creationTimestamp = iso(NOW - 5 * 86400), resourceVersion = "100",
      } }, body.rows[1].object)
    end)

    it("honours includeObject in Tables", function()
      local n = new({ ["/api/v1/nodes/w1"] = core_node("w1", { provider_id = AWS_LIKE }) })
      local full = decode(n:get("w1", TABLE_ACCEPT, { includeObject = { "Object" } }))
      assert.are.equal("Node", full.rows[1].object.kind)
      assert.are.equal("infraops.michael.io/v1", full.rows[1].object.apiVersion)
      local none = decode(n:get("w1", TABLE_ACCEPT, { includeObject = { "None" } }))
      assert.is_nil(none.rows[1].object)
    end)
  end)

  describe("list()", function()
    local function node_list(items, meta)
      return { apiVersion = "v1", kind = "NodeList", metadata = meta or { resourceVersion = "500" }, items = items }
    end

    local function lease_list(items)
      return { apiVersion = "coordination.k8s.io/v1", kind = "LeaseList", metadata = { resourceVersion = "9" },
        items = items }
    end

    it("passes every query parameter through to the core list", function()
      local n, k8s = new({ ["/api/v1/nodes"] = node_list({}) })
      decode(n:list({
        limit = { "10" }, continue = { "tok-1" }, labelSelector = { "a=b,!c" }, fieldSelector = { "metadata.name=w1" },
        resourceVersion = { "123" }, resourceVersionMatch = { "NotOlderThan" }, pretty = { "true" },
      }))
      assert.are.equal(1, #k8s.calls)
      assert.are.equal("/api/v1/nodes", k8s.calls[1].path)
      assert.are.same({
        limit = "10", continue = "tok-1", labelSelector = "a=b,!c", fieldSelector = "metadata.name=w1",
        resourceVersion = "123", resourceVersionMatch = "NotOlderThan",
      }, k8s.calls[1].query)
    end)

    it("accepts plain string query values too", function()
      local n, k8s = new({ ["/api/v1/nodes"] = node_list({}) })
      decode(n:list({ labelSelector = "x" }))
      assert.are.same({ labelSelector = "x", limit = "500" }, k8s.calls[1].query)
    end)

    it("reads the core list in pages of 500, and caps larger limits", function()
      for _, query in ipairs({ {}, { limit = { "0" } }, { limit = { "" } }, { limit = { "100000" } } }) do
        local n, k8s = new({ ["/api/v1/nodes"] = node_list({}) })
        decode(n:list(query))
        assert.are.same({ limit = "500" }, k8s.calls[1].query)
      end
      assert.are.equal(500, nodes.DEFAULT_LIMIT)
    end)

    it("answers every node when no limit is given, as kube-apiserver does, reading every core page", function()
      local pages = {
        [""] = node_list({ core_node("w1", { provider_id = AWS_LIKE }), core_node("w2", { provider_id = AWS_LIKE }) },
          { resourceVersion = "9", continue = "p2", remainingItemCount = 2 }),
        p2 = node_list({ core_node("w3", { provider_id = AWS_LIKE }) }, { resourceVersion = "9", continue = "p3" }),
        p3 = node_list({ core_node("w4", { provider_id = AWS_LIKE }) }, { resourceVersion = "9" }),
      }
      for _, query in ipairs({ {}, { limit = { "0" } }, { labelSelector = { "a=b" } } }) do
        local n, k8s = new({
          ["/api/v1/nodes"] = function(opts) return pages[opts.query.continue or ""] end,
          [LEASES] = lease_list({ lease("w3", { phase = "Unknown" }) }),
        })
        local body = decode(n:list(query))
        local names = {}
        for i, item in ipairs(body.items) do
          names[i] = item.metadata.name
        end
        assert.are.same({ "w1", "w2", "w3", "w4" }, names)
        assert.are.same({ resourceVersion = "9" }, body.metadata) -- no continue, no remaining count
        assert.are.equal("Unknown", body.items[3].status.lastRestart.phase)
        assert.are.same({ "/api/v1/nodes", LEASES, "/api/v1/nodes", "/api/v1/nodes" }, k8s:paths())
        assert.are.equal("p2", k8s.calls[3].query.continue)
        assert.are.equal("p3", k8s.calls[4].query.continue)
        assert.are.equal(query.labelSelector and "a=b" or nil, k8s.calls[4].query.labelSelector)
      end
    end)

    it("stops a list without limit with an error when the core list never ends", function()
      local n, k8s = new({
        ["/api/v1/nodes"] = node_list({ core_node("w1", { provider_id = AWS_LIKE }) }, { continue = "again" }),
        [LEASES] = lease_list({}),
      })
      local res = n:list({})
      assert.are.equal(500, res.status)
      assert.matches("did not end after 1000 pages", cjson.decode(res.body).message)
      assert.are.equal(nodes.MAX_PAGES + 1, #k8s.calls) -- the pages and one Lease list
    end)

    it("stops at the first failing page of a list without limit and says why", function()
      local n = new({
        ["/api/v1/nodes"] = function(opts)
          if opts.query.continue then
            return { err = { code = "unavailable", status = 503, message = "etcd is away" } }
          end
          return node_list({ core_node("w1", { provider_id = AWS_LIKE }) }, { continue = "p2" })
        end,
        [LEASES] = lease_list({}),
      })
      local res = n:list({})
      assert.are.equal(503, res.status)
      assert.matches("etcd is away", cjson.decode(res.body).message)
    end)

    it("refuses a limit that is not a number", function()
      for _, limit in ipairs({ "ten", "-1", "1.5", "99999999999999999999999" }) do
        local n, k8s = new({ ["/api/v1/nodes"] = node_list({}) })
        assert_status(n:list({ limit = { limit } }), 400, "BadRequest")
        assert.are.same({}, k8s.calls)
      end
    end)

    it("returns the page with its continue token and remaining count", function()
      local items = {}
      for i = 1, 3 do
        items[i] = core_node("w" .. i, { provider_id = "fake:///eu-west-1b/i-" .. i })
      end
      local n = new({
        ["/api/v1/nodes"] = node_list(items, { resourceVersion = "777", continue = "next-page",
          remainingItemCount = 4997 }),
        [LEASES] = lease_list({}),
      })
      local body = decode(n:list({ limit = { "3" } }))
      assert.are.equal("NodeList", body.kind)
      assert.are.equal("infraops.michael.io/v1", body.apiVersion)
      assert.are.same({ resourceVersion = "777", continue = "next-page", remainingItemCount = 4997 }, body.metadata)
      assert.are.equal(3, #body.items)
      for i = 1, 3 do
        assert.are.equal("Node", body.items[i].kind)
        assert.are.equal("w" .. i, body.items[i].metadata.name)
        assert.are.equal("i-" .. i, body.items[i].status.cloud.instanceID)
        assert.are.equal("eu-west-1", body.items[i].status.cloud.region)
      end
    end)

    it("follows the client's continue token, one core call and one Lease call per page", function()
      local pages = {
        [""] = node_list({ core_node("w1", { provider_id = AWS_LIKE }), core_node("w2", { provider_id = AWS_LIKE }) },
          { resourceVersion = "5", continue = "p2" }),
        p2 = node_list({ core_node("w3", { provider_id = AWS_LIKE }) }, { resourceVersion = "5" }),
      }
      local n, k8s = new({
        ["/api/v1/nodes"] = function(opts) return pages[opts.query.continue or ""] end,
        [LEASES] = lease_list({ lease("w2", { phase = "Failed", error = "boom" }),
          lease("w3", { phase = "Unknown" }), lease("gone-node", { phase = "Failed" }) }),
      })
      local first = decode(n:list({ limit = { "2" } }))
      assert.are.equal("p2", first.metadata.continue)
      assert.are.same({ "/api/v1/nodes", LEASES }, k8s:paths())
      assert.are.same({ labelSelector = "app.kubernetes.io/managed-by=myapiserver" }, k8s.calls[2].query)
      assert.is_nil(first.items[1].status.lastRestart)
      assert.are.same({ phase = "Failed", error = "boom" }, first.items[2].status.lastRestart)

      local second = decode(n:list({ limit = { "2" }, continue = { first.metadata.continue } }))
      assert.are.equal(4, #k8s.calls)
      assert.are.same({ limit = "2", continue = "p2" }, k8s.calls[3].query)
      assert.are.equal(LEASES, k8s.calls[4].path)
      assert.is_nil(second.metadata.continue)
      assert.are.equal("w3", second.items[1].metadata.name)
      assert.are.equal("Unknown", second.items[1].status.lastRestart.phase)
    end)

    it("encodes an empty list as \"items\":[] and asks for no Leases", function()
      local n, k8s = new({ ["/api/v1/nodes"] = node_list({}) })
      local res = n:list({})
      assert.is_truthy(res.body:find('"items":[]', 1, true), res.body)
      local body = decode(res)
      assert.are.same({}, body.items)
      assert.are.same({ resourceVersion = "500" }, body.metadata)
      assert.are.same({ "/api/v1/nodes" }, k8s:paths())
    end)

    it("answers 410 Expired in kube's words for an expired continue token", function()
      local n = new({ ["/api/v1/nodes"] = { err = { code = "gone", status = 410, reason = "Expired",
        message = "The provided continue parameter is too old..." } } })
      local body = assert_status(n:list({ continue = { "old" } }), 410, "Expired")
      assert.are.equal("The provided continue parameter is too old to display a consistent list result. "
        .. "You can start a new list without the continue parameter.", body.message)
    end)

    it("hands kube's 400 for a bad selector back as 400", function()
      local n = new({ ["/api/v1/nodes"] = { err = { code = "bad_request", status = 400, reason = "BadRequest",
        message = "field label not supported: spec.foo" } } })
      local body = assert_status(n:list({ fieldSelector = { "spec.foo=x" } }), 400, "BadRequest")
      assert.are.equal("field label not supported: spec.foo", body.message)
    end)

    it("maps core list and Lease list failures", function()
      local n = new({ ["/api/v1/nodes"] = { err = { code = "timeout" } } })
      assert_status(n:list({}), 504, "Timeout")
      n = new({ ["/api/v1/nodes"] = { err = { code = "unavailable", status = 503 } } })
      assert_status(n:list({}), 503, "ServiceUnavailable")
      n = new({
        ["/api/v1/nodes"] = node_list({ core_node("w1") }),
        [LEASES] = { err = { code = "forbidden", status = 403, message = "cannot list leases" } },
      })
      assert_status(n:list({}), 500, "InternalError")
    end)

    it("refuses watch with 405", function()
      local n, k8s = new({ ["/api/v1/nodes"] = node_list({}) })
      assert_status(n:list({ watch = { "true" } }), 405, "MethodNotAllowed")
      assert.are.same({}, k8s.calls)
    end)

    it("answers a Table, checked column by column", function()
      local items = {
        core_node("w1", { provider_id = AWS_LIKE, created = NOW - 42 * 60 }),
        core_node("bare", { created = NOW - 10 }),
        core_node("cp", { provider_id = "fake:///ap-south-1c/i-cp", created = NOW - 3 * 3600,
          labels = { ["node-role.kubernetes.io/control-plane"] = "" } }),
      }
      local n = new({
        ["/api/v1/nodes"] = node_list(items, { resourceVersion = "88", continue = "more" }),
        [LEASES] = lease_list({}),
      })
      local res = n:list({ limit = { "50" } }, TABLE_ACCEPT)
      local body = decode(res)
      assert.are.equal("Table", body.kind)
      assert.are.equal("meta.k8s.io/v1", body.apiVersion)
      assert.are.same({ resourceVersion = "88", continue = "more" }, body.metadata)
      local names, types = {}, {}
      for i, column in ipairs(body.columnDefinitions) do
        names[i], types[i] = column.name:upper(), column.type
        assert.is_string(column.description)
        assert.are.equal(0, column.priority)
        assert.is_string(column.format)
      end
      assert.are.same({ "NAME", "PROVIDER", "INSTANCE", "REGION", "RESTARTABLE", "AGE" }, names)
      assert.are.same({ "string", "string", "string", "string", "boolean", "string" }, types)
      assert.are.equal("name", body.columnDefinitions[1].format)
      assert.are.same({ "w1", "fake", "i-0abc", "us-east-1", true, "42m" }, body.rows[1].cells)
      assert.are.same({ "bare", "<none>", "<none>", "<none>", false, "10s" }, body.rows[2].cells)
      assert.are.same({ "cp", "fake", "i-cp", "ap-south-1", false, "3h" }, body.rows[3].cells)
      for i, row in ipairs(body.rows) do
        assert.are.equal("PartialObjectMetadata", row.object.kind)
        assert.are.equal("meta.k8s.io/v1", row.object.apiVersion)
        assert.are.equal(items[i].metadata.name, row.object.metadata.name)
      end
    end)

    it("encodes an empty Table as \"rows\":[]", function()
      local n = new({ ["/api/v1/nodes"] = node_list({}) })
      local res = n:list({}, "application/json;as=Table;v=v1;g=meta.k8s.io")
      assert.is_truthy(res.body:find('"rows":[]', 1, true), res.body)
      local body = decode(res)
      assert.are.equal("Table", body.kind)
      assert.are.same({}, body.rows)
      assert.are.equal(6, #body.columnDefinitions)
    end)
  end)

  describe("wants_table()", function()
    it("recognises the Table media type among others", function()
      assert.is_true(nodes.wants_table(TABLE_ACCEPT))
      assert.is_true(nodes.wants_table("application/json; as=Table; g=meta.k8s.io; v=v1"))
      assert.is_true(nodes.wants_table("application/json, application/json;as=Table;v=v1;g=meta.k8s.io"))
      assert.is_false(nodes.wants_table("application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"))
      assert.is_false(nodes.wants_table("application/json"))
      assert.is_false(nodes.wants_table("application/yaml;as=Table;v=v1;g=meta.k8s.io"))
      assert.is_false(nodes.wants_table(nil))
      assert.is_false(nodes.wants_table(""))
    end)
  end)

  describe("human_duration()", function()
    it("prints ages as kubectl does", function()
      local cases = {
        { -5, "<invalid>" }, { -1, "0s" }, { 0, "0s" }, { 10, "10s" }, { 119, "119s" }, { 120, "2m" },
        { 125, "2m5s" }, { 599, "9m59s" }, { 600, "10m" }, { 42 * 60 + 30, "42m" }, { 179 * 60, "179m" },
        { 3 * 3600, "3h" }, { 3 * 3600 + 20 * 60, "3h20m" }, { 8 * 3600 + 59 * 60, "8h" }, { 47 * 3600, "47h" },
        { 48 * 3600, "2d" }, { 5 * 86400 + 3 * 3600, "5d3h" }, { 8 * 86400 + 5 * 3600, "8d" },
        { 729 * 86400, "729d" }, { 730 * 86400, "2y" }, { 800 * 86400, "2y70d" }, { 9 * 365 * 86400, "9y" },
      }
      for _, case in ipairs(cases) do
        assert.are.equal(case[2], nodes.human_duration(case[1]), tostring(case[1]))
      end
    end)
  end)
end)
