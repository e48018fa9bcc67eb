local authz = require("infraops.authz")
local cjson = require("cjson")
local crypto = require("host.crypto")
local fake_shared = require("spec.helpers.fake_shared")
local url = require("infraops.url")

local function attrs(method, path, query)
  return authz.attributes(method, assert(url.segments(path)), query or {}, path)
end

local ALICE = { name = "alice", uid = "u1", groups = { "dev", "system:authenticated" },
  extra = { scopes = { "a" } } }

local function new(review)
  local clock = { now = 0 }
  local reviews = {}
  local a = authz.new({
    review = function(spec)
      reviews[#reviews + 1] = spec
      return review(spec)
    end,
    cache = fake_shared.new(clock), crypto = crypto, cjson = cjson,
    allowed_ttl = 10, denied_ttl = 5, allow_paths = { "/healthz", "/readyz", "/livez", "/metrics/*" },
  })
  return a, reviews, clock
end

describe("infraops.authz", function()
  describe("attributes()", function()
    it("derives kube's attributes for this server's resources", function()
      local cases = {
        { "GET", "/apis/infraops.michael.io/v1/nodes", "list", "nodes", nil, nil },
        { "GET", "/apis/infraops.michael.io/v1/nodes/n1", "get", "nodes", "n1", nil },
        { "POST", "/apis/infraops.michael.io/v1/nodes/n1/restart", "create", "nodes", "n1", "restart" },
        { "HEAD", "/apis/infraops.michael.io/v1/nodes/n1", "get", "nodes", "n1", nil },
        { "DELETE", "/apis/infraops.michael.io/v1/nodes", "deletecollection", "nodes", nil, nil },
        { "PUT", "/apis/infraops.michael.io/v1/nodes/n1", "update", "nodes", "n1", nil },
      }
      for _, c in ipairs(cases) do
        local a = attrs(c[1], c[2])
        assert.is_true(a.resource_request, c[2])
        assert.equal(c[3], a.verb, c[2])
        assert.equal("infraops.michael.io", a.group)
        assert.equal("v1", a.version)
        assert.equal(c[4], a.resource)
        assert.equal(c[5], a.name)
        assert.equal(c[6], a.subresource)
      end
    end)

    it("treats discovery paths and other prefixes as non-resource", function()
      for _, path in ipairs({ "/apis", "/apis/infraops.michael.io", "/apis/infraops.michael.io/v1", "/healthz",
        "/openapi/v2", "/api" }) do
        local a = attrs("GET", path)
        assert.is_false(a.resource_request, path)
        assert.equal(path, a.path)
        assert.equal("get", a.verb)
      end
    end)

    it("handles the core group, namespaces, watch and a name from the field selector", function()
      local a = attrs("GET", "/api/v1/namespaces/ns1/pods", { watch = { "true" } })
      assert.same({ "", "v1", "ns1", "pods", "watch" }, { a.group, a.version, a.namespace, a.resource, a.verb })
      a = attrs("GET", "/apis/infraops.michael.io/v1/nodes", { fieldSelector = { "metadata.name=n7" } })
      assert.equal("list", a.verb)
      assert.equal("n7", a.name)
      a = attrs("GET", "/api/v1/namespaces/ns1")
      assert.same({ "namespaces", "ns1", "get" }, { a.resource, a.name, a.verb })
    end)
  end)

  describe("authorize()", function()
    it("asks a SubjectAccessReview with every attribute of the user and the request", function()
      local a, reviews = new(function() return { allowed = true } end)
      assert.is_true(a.authorize(ALICE, attrs("POST", "/apis/infraops.michael.io/v1/nodes/n1/restart")))
      assert.same({
        user = "alice", uid = "u1", groups = ALICE.groups, extra = ALICE.extra,
        resourceAttributes = { verb = "create", group = "infraops.michael.io", version = "v1",
          resource = "nodes", subresource = "restart", name = "n1" },
      }, reviews[1])
    end)

    it("sends non-resource attributes for discovery", function()
      local a, reviews = new(function() return { allowed = true } end)
      a.authorize(ALICE, attrs("GET", "/apis/infraops.michael.io/v1"))
      assert.same({ path = "/apis/infraops.michael.io/v1", verb = "get" }, reviews[1].nonResourceAttributes)
      assert.is_nil(reviews[1].resourceAttributes)
    end)

    it("caches allowed for its TTL and denied for its own", function()
      local verdict = true
      local a, reviews, clock = new(function() return { allowed = verdict, reason = "rbac" } end)
      local restart = attrs("POST", "/apis/infraops.michael.io/v1/nodes/n1/restart")
      a.authorize(ALICE, restart)
      a.authorize(ALICE, restart)
      assert.equal(1, #reviews)
      clock.now = 10.5
      verdict = false
      assert.is_false(a.authorize(ALICE, restart))
      assert.equal(2, #reviews)
      clock.now = 15
      assert.is_false(a.authorize(ALICE, restart))
      assert.equal(2, #reviews)
      clock.now = 16
      a.authorize(ALICE, restart)
      assert.equal(3, #reviews)
    end)

    it("keys the cache on every attribute: another name, group or user is asked again", function()
      local a, reviews = new(function() return { allowed = true } end)
      a.authorize(ALICE, attrs("POST", "/apis/infraops.michael.io/v1/nodes/n1/restart"))
      a.authorize(ALICE, attrs("POST", "/apis/infraops.michael.io/v1/nodes/n2/restart"))
      a.authorize({ name = "alice", groups = { "dev" }, extra = {} },
        attrs("POST", "/apis/infraops.michael.io/v1/nodes/n1/restart"))
      a.authorize({ name = "alice", uid = "u1", groups = ALICE.groups, extra = { scopes = { "b" } } },
        attrs("POST", "/apis/infraops.michael.io/v1/nodes/n1/restart"))
      assert.equal(4, #reviews)
    end)

    it("denies when the review says denied, or neither allowed nor denied", function()
      local a = new(function() return { allowed = false, denied = true, reason = "no" } end)
      local ok, reason = a.authorize(ALICE, attrs("GET", "/apis/infraops.michael.io/v1/nodes"))
      assert.is_false(ok)
      assert.equal("no", reason)
      a = new(function() return {} end)
      assert.is_false(a.authorize(ALICE, attrs("GET", "/apis/infraops.michael.io/v1/nodes")))
    end)

    it("never allows when the review fails, and does not cache the failure", function()
      local a, reviews = new(function() return nil, "connection refused" end)
      local ok, err = a.authorize(ALICE, attrs("GET", "/apis/infraops.michael.io/v1/nodes/n1"))
      assert.is_nil(ok)
      assert.equal("connection refused", err)
      a.authorize(ALICE, attrs("GET", "/apis/infraops.michael.io/v1/nodes/n1"))
      assert.equal(2, #reviews)
    end)

    it("allows system:masters and the always-allow paths without a review", function()
      local a, reviews = new(function() return { allowed = false } end)
      assert.is_true(a.authorize({ name = "root", groups = { "system:masters" } },
        attrs("POST", "/apis/infraops.michael.io/v1/nodes/n1/restart")))
      assert.is_true(a.authorize(ALICE, attrs("GET", "/healthz")))
      assert.is_true(a.authorize(ALICE, attrs("GET", "/metrics/cadvisor")))
      assert.is_false(a.authorize(ALICE, attrs("GET", "/healthz/ping")))
      assert.equal(1, #reviews)
    end)
  end)

  describe("forbidden_message()", function()
    it("words a denied restart as kube-apiserver does", function()
      assert.equal('nodes.infraops.michael.io "n1" is forbidden: User "alice" cannot create resource '
        .. '"nodes/restart" in API group "infraops.michael.io" at the cluster scope',
        authz.forbidden_message(ALICE, attrs("POST", "/apis/infraops.michael.io/v1/nodes/n1/restart")))
    end)

    it("words a list, a namespaced request, a non-resource path and a reason", function()
      assert.equal('nodes.infraops.michael.io is forbidden: User "alice" cannot list resource "nodes" in API '
        .. 'group "infraops.michael.io" at the cluster scope',
        authz.forbidden_message(ALICE, attrs("GET", "/apis/infraops.michael.io/v1/nodes")))
      assert.equal('pods "p" is forbidden: User "alice" cannot get resource "pods" in API group "" in the '
        .. 'namespace "ns1"', authz.forbidden_message(ALICE, attrs("GET", "/api/v1/namespaces/ns1/pods/p")))
      assert.equal('forbidden: User "alice" cannot get path "/apis/infraops.michael.io/v1": no RBAC',
        authz.forbidden_message(ALICE, attrs("GET", "/apis/infraops.michael.io/v1"), "no RBAC"))
    end)
  end)
end)
