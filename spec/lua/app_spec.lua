-- infraops.app (lua/infraops/app.lua): the request handler end to end, with
-- request tables shaped like host/script_runtime.c push_request builds them.
local cjson = require("cjson")
local app = require("infraops.app")
local fake_shared = require("spec.helpers.fake_shared")

local V2 = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
local SHA = string.rep("0f", 32)

local function fake_log()
  local log = { lines = {} }
  for _, level in ipairs({ "debug", "info", "warn", "error" }) do
    log[level] = function(message, fields)
      log.lines[#log.lines + 1] = { level = level, message = message, fields = fields or {} }
    end
  end
  return log
end

local function anonymous_peer()
  return { presented = false, verified_client_ca = false, verified_requestheader = false }
end

local function alice_peer()
  return {
    presented = true,
    verified_client_ca = true,
    verified_requestheader = false,
    common_name = "alice",
    organizations = { "dev", "ops" },
    sha256 = SHA,
  }
end

local next_id = 0

-- A request as the host pushes it: raw path, raw query pairs, lower-case
-- header names mapping to lists of values.
local function request(method, path, opts)
  opts = opts or {}
  next_id = next_id + 1
  return {
    id = opts.id or ("audit-" .. next_id),
    method = method,
    path = path,
    query = opts.query or {},
    headers = opts.headers or {},
    body = opts.body or "",
    remote_address = "192.0.2.10:51234",
    peer = opts.peer or anonymous_peer(),
  }
end

-- A fake Kubernetes client: SubjectAccessReviews answered by `decide(spec)`
-- (default: allowed), TokenReviews from `tokens`; every call recorded.
local function fake_k8s(decide, tokens)
  local k = { posts = {} }
  function k.post(_, path, body)
    k.posts[#k.posts + 1] = { path = path, body = body }
    if path == "/apis/authorization.k8s.io/v1/subjectaccessreviews" then
      local verdict, err = (decide or function() return { allowed = true } end)(body.spec)
      if not verdict then
        return nil, { code = "unavailable", message = err }
      end
      return { status = verdict }
    end
    local user = (tokens or {})[body.spec.token]
    return { status = { authenticated = user ~= nil, user = user } }
  end
  return k
end

local FLAGS = { ["authorization-always-allow-paths"] = "/healthz,/readyz,/livez" }

local function new_handler(log, k8s)
  return app.new({ version = "test", flags = FLAGS }, {
    log = log or fake_log(), shared = fake_shared.new(), k8s = k8s or fake_k8s(),
    monotonic = function() return 0 end,
  })
end

local function assert_status_body(res, code, reason)
  assert.are.equal(code, res.status)
  assert.are.equal("application/json", res.headers["Content-Type"])
  local body = cjson.decode(res.body)
  assert.are.equal("Status", body.kind)
  assert.are.equal("Failure", body.status)
  assert.are.equal(code, body.code)
  assert.are.equal(reason, body.reason)
end

describe("infraops.app", function()
  describe("new()", function()
    it("returns a handler function", function()
      assert.is_function(new_handler())
    end)
  end)

  describe("handler", function()
    local handle
    before_each(function()
      handle = new_handler()
    end)

    it("serves the APIResourceList on GET /apis/infraops.michael.io/v1", function()
      local res = handle(request("GET", "/apis/infraops.michael.io/v1"))
      assert.are.equal(200, res.status)
      assert.are.equal("application/json", res.headers["Content-Type"])
      local doc = cjson.decode(res.body)
      assert.are.equal("APIResourceList", doc.kind)
      assert.are.equal("infraops.michael.io/v1", doc.groupVersion)
    end)

    it("serves HEAD like GET", function()
      local res = handle(request("HEAD", "/apis/infraops.michael.io/v1"))
      assert.are.equal(200, res.status)
    end)

    it("serves the APIGroupList on GET /apis without a v2 Accept", function()
      local res = handle(request("GET", "/apis", { headers = { accept = { "application/json" } } }))
      assert.are.equal(200, res.status)
      assert.are.equal("application/json", res.headers["Content-Type"])
      assert.are.equal("APIGroupList", cjson.decode(res.body).kind)
    end)

    it("serves the aggregated list on GET /apis with the v2 Accept", function()
      local res = handle(request("GET", "/apis", { headers = { accept = { V2 } } }))
      assert.are.equal(200, res.status)
      assert.are.equal(V2, res.headers["Content-Type"])
      assert.are.equal("APIGroupDiscoveryList", cjson.decode(res.body).kind)
    end)

    it("answers POST /apis with a 405 Status", function()
      assert_status_body(handle(request("POST", "/apis", { body = "{}" })), 405, "MethodNotAllowed")
    end)

    it("answers DELETE /apis/infraops.michael.io/v1 with a 405 Status", function()
      assert_status_body(handle(request("DELETE", "/apis/infraops.michael.io/v1")), 405, "MethodNotAllowed")
    end)

    it("answers GET /healthz with ok", function()
      local res = handle(request("GET", "/healthz"))
      assert.are.equal(200, res.status)
      assert.are.equal("ok", res.body)
      assert.are.equal("text/plain; charset=utf-8", res.headers["Content-Type"])
    end)

    it("answers GET /readyz?verbose with the check lines", function()
      local res = handle(request("GET", "/readyz", { query = { { "verbose", "" } } }))
      assert.are.equal(200, res.status)
      assert.are.equal("[+]ping ok\nreadyz check passed\n", res.body)
    end)

    it("answers GET /livez/ping with ok", function()
      local res = handle(request("GET", "/livez/ping"))
      assert.are.equal(200, res.status)
      assert.are.equal("ok", res.body)
    end)

    it("answers an unknown health check with a 404 Status", function()
      assert_status_body(handle(request("GET", "/readyz/nope")), 404, "NotFound")
    end)

    it("answers PUT /healthz with a 405 Status", function()
      assert_status_body(handle(request("PUT", "/healthz")), 405, "MethodNotAllowed")
    end)

    for _, path in ipairs({
      "/",
      "/api",
      "/apis/other.group/v1",
      "/apis/infraops.michael.io/v1/nodes/n1/reboot",
      "/apis/infraops.michael.io/v1/nodes/n1/restart/now",
      "/openapi/v2",
    }) do
      it("answers GET " .. path .. " with a 404 Status", function()
        assert_status_body(handle(request("GET", path)), 404, "NotFound")
      end)
    end

    it("answers POST to an unknown path with 404, not 405", function()
      assert_status_body(handle(request("POST", "/apis/other.group/v1")), 404, "NotFound")
    end)

    it("answers a trailing slash with a 404 Status", function()
      assert_status_body(handle(request("GET", "/apis/infraops.michael.io/v1/")), 404, "NotFound")
    end)

    it("answers a non-canonical path with a 404 Status", function()
      assert_status_body(handle(request("GET", "/apis/infraops.michael.io/v1/..")), 404, "NotFound")
      assert_status_body(handle(request("GET", "/apis/infraops.michael.io%2Fv1")), 404, "NotFound")
      assert_status_body(handle(request("GET", "/apis/%G1")), 404, "NotFound")
    end)

    it("answers a malformed query escape with a 400 Status", function()
      local res = handle(request("GET", "/apis/infraops.michael.io/v1", { query = { { "a", "%G1" } } }))
      assert_status_body(res, 400, "BadRequest")
    end)

    it("answers a malformed query escape on an unknown path with 400", function()
      assert_status_body(handle(request("GET", "/nowhere", { query = { { "x%", "" } } })), 400, "BadRequest")
    end)

    it("sets Audit-Id to the request id on every response", function()
      local cases = {
        request("GET", "/apis/infraops.michael.io/v1", { id = "id-ok" }),
        request("GET", "/healthz", { id = "id-health" }),
        request("POST", "/apis", { id = "id-405" }),
        request("GET", "/missing", { id = "id-404" }),
        request("GET", "/apis/", { id = "id-bad-path" }),
        request("GET", "/apis", { id = "id-400", query = { { "%", "" } } }),
      }
      for _, req in ipairs(cases) do
        local res = handle(req)
        assert.are.equal(req.id, res.headers["Audit-Id"], req.method .. " " .. req.path)
      end
    end)

    it("sets user to the CN of a verified client certificate", function()
      local res = handle(request("GET", "/apis/infraops.michael.io/v1", { peer = alice_peer() }))
      assert.are.equal("alice", res.user)
      local res404 = handle(request("GET", "/missing", { peer = alice_peer() }))
      assert.are.equal("alice", res404.user)
    end)

    it("sets user to system:anonymous without a verified client certificate", function()
      assert.are.equal("system:anonymous", handle(request("GET", "/healthz")).user)
      local front_proxy = alice_peer()
      front_proxy.verified_client_ca = false
      front_proxy.verified_requestheader = true
      front_proxy.common_name = "front-proxy-client"
      assert.are.equal("system:anonymous", handle(request("GET", "/healthz", { peer = front_proxy })).user)
    end)

    it("sets user to system:anonymous on error responses", function()
      assert.are.equal("system:anonymous", handle(request("GET", "/apis/")).user)
      assert.are.equal("system:anonymous", handle(request("GET", "/apis", { query = { { "%", "" } } })).user)
    end)

    it("ignores a forged X-Remote-User header from an anonymous peer", function()
      local res = handle(request("GET", "/apis/infraops.michael.io/v1", {
        headers = {
          ["x-remote-user"] = { "system:admin" },
          ["x-remote-group"] = { "system:masters" },
        },
      }))
      assert.are.equal(200, res.status)
      assert.are.equal("system:anonymous", res.user)
    end)

    it("ignores a forged X-Remote-User header from an unverified certificate", function()
      local peer = { presented = true, verified_client_ca = false, verified_requestheader = false }
      local res = handle(request("GET", "/healthz", {
        peer = peer,
        headers = { ["x-remote-user"] = { "system:admin" } },
      }))
      assert.are.equal("system:anonymous", res.user)
    end)
  end)

  describe("node routes", function()
    it("sends GET nodes to the list, GET nodes/NAME to get, and refuses other methods with 405", function()
      local k8s = fake_k8s()
      k8s.calls = {}
      function k8s.get(_, path, opts)
        k8s.calls[#k8s.calls + 1] = path
        if path == "/api/v1/nodes" then
          return { metadata = { resourceVersion = "1" }, items = {} }
        elseif path:match("/leases") then
          return { items = {} }
        end
        return nil, { code = "not_found", message = "not found", opts = opts }
      end
      local handle = new_handler(nil, k8s)
      local list = handle(request("GET", "/apis/infraops.michael.io/v1/nodes"))
      assert.are.equal(200, list.status)
      assert.are.equal("NodeList", cjson.decode(list.body).kind)
      assert_status_body(handle(request("GET", "/apis/infraops.michael.io/v1/nodes/ghost")), 404, "NotFound")
      assert_status_body(handle(request("DELETE", "/apis/infraops.michael.io/v1/nodes/n1")), 405, "MethodNotAllowed")
      assert_status_body(handle(request("GET", "/apis/infraops.michael.io/v1/nodes/n1/restart")), 405,
        "MethodNotAllowed")
      assert.are.equal("/api/v1/nodes", k8s.calls[1])
    end)

    it("answers node routes with 503 when there is no Kubernetes API", function()
      local handle = app.new({ version = "test", flags = FLAGS }, {
        log = fake_log(), shared = fake_shared.new(), k8s = false, k8s_error = "none configured",
        monotonic = function() return 0 end,
      })
      local masters = alice_peer()
      masters.organizations = { "system:masters" }
      local res = handle(request("GET", "/apis/infraops.michael.io/v1/nodes", { peer = masters }))
      assert_status_body(res, 503, "ServiceUnavailable")
    end)
  end)

  describe("authentication and authorization", function()
    local function status_of(res)
      return cjson.decode(res.body)
    end

    it("refuses an untrusted certificate with 401 except on always-allow paths", function()
      local handle = new_handler()
      local rogue = { presented = true, verified_client_ca = false, verified_requestheader = false }
      local res = handle(request("GET", "/apis/infraops.michael.io/v1", { peer = rogue }))
      assert.are.equal(401, res.status)
      assert.are.equal("Unauthorized", status_of(res).reason)
      assert.are.equal(200, handle(request("GET", "/readyz", { peer = rogue })).status)
    end)

    it("answers a denied review with kube's Forbidden Status", function()
      local handle = new_handler(nil, fake_k8s(function() return { allowed = false } end))
      local res = handle(request("GET", "/apis/infraops.michael.io/v1", { peer = alice_peer() }))
      assert.are.equal(403, res.status)
      local st = status_of(res)
      assert.are.equal("Forbidden", st.reason)
      assert.are.equal('forbidden: User "alice" cannot get path "/apis/infraops.michael.io/v1"', st.message)
    end)

    it("denies with 503 when the review cannot be made", function()
      local handle = new_handler(nil, fake_k8s(function() return nil, "connection refused" end))
      local res = handle(request("GET", "/apis", { peer = alice_peer() }))
      assert.are.equal(503, res.status)
      assert.are.equal("ServiceUnavailable", status_of(res).reason)
    end)

    it("reviews with the user from a bearer token, never sending the token in the review", function()
      local k8s = fake_k8s(nil, { ["tok-1"] = { username = "bob", groups = { "dev" } } })
      local handle = new_handler(nil, k8s)
      local res = handle(request("GET", "/apis", { headers = { authorization = { "Bearer tok-1" } } }))
      assert.are.equal(200, res.status)
      assert.are.equal("bob", res.user)
      local sar = k8s.posts[#k8s.posts].body.spec
      assert.are.equal("bob", sar.user)
      assert.same({ "dev", "system:authenticated" }, sar.groups)
      assert.is_nil(cjson.encode(sar):find("tok-1", 1, true))
    end)

    it("does not review system:masters or the always-allow paths", function()
      local k8s = fake_k8s(function() return { allowed = false } end)
      local handle = new_handler(nil, k8s)
      local masters = alice_peer()
      masters.organizations = { "system:masters" }
      assert.are.equal(200, handle(request("GET", "/apis", { peer = masters })).status)
      assert.are.equal(200, handle(request("GET", "/livez")).status)
      assert.are.equal(0, #k8s.posts)
    end)
  end)
end)
