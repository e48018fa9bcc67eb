-- infraops.discovery (lua/infraops/discovery.lua): the legacy and aggregated
-- (apidiscovery.k8s.io/v2) discovery documents, compared field by field with
-- ../shared/docs/k8s-aggregation.md section 4, and the Accept negotiation.
local cjson = require("cjson")
local discovery = require("infraops.discovery")

local V2 = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
local V2BETA1 = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"

local GROUP_VERSION = { groupVersion = "infraops.michael.io/v1", version = "v1" }

local function segments(path)
  local out = {}
  for s in path:gmatch("[^/]+") do
    out[#out + 1] = s
  end
  return out
end

-- The document for a path: decoded body, content type and the raw body.
local function fetch(path, accept)
  local body, content_type = discovery.new().document(segments(path), accept)
  assert.is_string(body, "no document for " .. path)
  return cjson.decode(body), content_type, body
end

describe("infraops.discovery", function()
  it("encodes every document with sorted keys, so every Lua state serves the same bytes", function()
    local stable_json = require("infraops.stable_json")
    for _, path in ipairs({ "/apis", "/apis/infraops.michael.io", "/apis/infraops.michael.io/v1" }) do
      local doc, _, body = fetch(path)
      assert.equal(stable_json.encode(doc), body)
    end
    local doc, _, body = fetch("/apis", V2)
    assert.equal(stable_json.encode(doc), body)
  end)

  describe("constants", function()
    it("names the group and version", function()
      assert.are.equal("infraops.michael.io", discovery.GROUP)
      assert.are.equal("v1", discovery.VERSION)
      assert.are.equal("infraops.michael.io/v1", discovery.GROUP_VERSION)
    end)
  end)

  describe("document()", function()
    it("serves the APIGroupList at /apis", function()
      local doc, content_type = fetch("/apis")
      assert.are.equal("application/json", content_type)
      assert.are.same({
        kind = "APIGroupList",
        apiVersion = "v1",
        groups = { {
          name = "infraops.michael.io",
          versions = { GROUP_VERSION },
          preferredVersion = GROUP_VERSION,
        } },
      }, doc)
    end)

    it("serves the APIGroup with kind and apiVersion at /apis/infraops.michael.io", function()
      local doc, content_type = fetch("/apis/infraops.michael.io")
      assert.are.equal("application/json", content_type)
      assert.are.same({
        kind = "APIGroup",
        apiVersion = "v1",
        name = "infraops.michael.io",
        versions = { GROUP_VERSION },
        preferredVersion = GROUP_VERSION,
      }, doc)
    end)

    it("serves the APIResourceList at /apis/infraops.michael.io/v1", function()
      local doc, content_type = fetch("/apis/infraops.michael.io/v1")
      assert.are.equal("application/json", content_type)
      assert.are.same({
        kind = "APIResourceList",
        apiVersion = "v1",
        groupVersion = "infraops.michael.io/v1",
        resources = {
          {
            name = "nodes",
            singularName = "node",
            namespaced = false,
            kind = "Node",
            verbs = { "get", "list" },
            shortNames = { "inode" },
            categories = { "infraops" },
          },
          {
            name = "nodes/restart",
            singularName = "",
            namespaced = false,
            kind = "RestartOptions",
            verbs = { "create" },
          },
        },
      }, doc)
    end)

    it("always includes the required APIResource fields", function()
      local doc = fetch("/apis/infraops.michael.io/v1")
      for _, resource in ipairs(doc.resources) do
        for _, field in ipairs({ "name", "singularName", "namespaced", "kind", "verbs" }) do
          assert.is_not_nil(resource[field], resource.name .. " lacks " .. field)
        end
      end
    end)

    it("serves the APIResourceList whatever the Accept header", function()
      local doc, content_type = fetch("/apis/infraops.michael.io/v1", V2)
      assert.are.equal("application/json", content_type)
      assert.are.equal("APIResourceList", doc.kind)
    end)

    it("serves the aggregated v2 list at /apis for the v2 Accept", function()
      local doc, content_type, raw = fetch("/apis", V2)
      assert.are.equal(V2, content_type)
      local function kind(name)
        return { group = "infraops.michael.io", version = "v1", kind = name }
      end
      assert.are.same({
        kind = "APIGroupDiscoveryList",
        apiVersion = "apidiscovery.k8s.io/v2",
        metadata = {},
        items = { {
          metadata = { name = "infraops.michael.io" },
          versions = { {
            version = "v1",
            resources = { {
              resource = "nodes",
              responseKind = kind("Node"),
              scope = "Cluster",
              singularResource = "node",
              verbs = { "get", "list" },
              shortNames = { "inode" },
              categories = { "infraops" },
              subresources = { {
                subresource = "restart",
                responseKind = kind("RestartOptions"),
                verbs = { "create" },
              } },
            } },
          } },
        } },
      }, doc)
      -- metadata must be a JSON object, not an empty array
      assert.is_truthy(raw:find('"metadata":{}', 1, true))
    end)

    it("serves the APIGroupList at /apis for the v2beta1 Accept", function()
      local doc, content_type = fetch("/apis", V2BETA1)
      assert.are.equal("application/json", content_type)
      assert.are.equal("APIGroupList", doc.kind)
    end)

    it("returns the same pre-encoded body on every call", function()
      local docs = discovery.new()
      local a = docs.document({ "apis", "infraops.michael.io", "v1" })
      local b = docs.document({ "apis", "infraops.michael.io", "v1" })
      assert.are.equal(a, b)
    end)

    for _, path in ipairs({
      "/apis/other.group",
      "/apis/other.group/v1",
      "/apis/infraops.michael.io/v2",
      "/apis/infraops.michael.io/v1/nodes",
      "/apis/infraops.michael.io/v1/nodes/n1/restart",
      "/api",
      "/api/v1",
      "/",
      "/healthz",
    }) do
      it("returns nil for " .. path, function()
        local body, content_type = discovery.new().document(segments(path), V2)
        assert.is_nil(body)
        assert.is_nil(content_type)
      end)
    end
  end)

  describe("wants_v2()", function()
    local yes = {
      { V2, "the aggregator's exact Accept" },
      { "application/json; g=apidiscovery.k8s.io; v=v2; as=APIGroupDiscoveryList", "spaces after ;" },
      { "application/json ;g=apidiscovery.k8s.io ;v=v2 ;as=APIGroupDiscoveryList", "spaces before ;" },
      { V2 .. "," .. V2BETA1 .. ",application/json", "v2 first in a list" },
      { "application/json, " .. V2, "v2 after another type" },
      { V2BETA1 .. ", " .. V2, "v2 after v2beta1" },
      { "application/json;as=APIGroupDiscoveryList;v=v2;g=apidiscovery.k8s.io", "parameters reordered" },
      { "application/json;v=v2;g=apidiscovery.k8s.io;as=APIGroupDiscoveryList", "v first" },
    }
    for _, case in ipairs(yes) do
      it("is true for " .. case[2], function()
        assert.is_true(discovery.wants_v2(case[1]))
      end)
    end

    local no = {
      { "application/json", "plain JSON" },
      { "*/*", "any type" },
      { V2BETA1, "v2beta1" },
      { "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json", "v2beta1 list" },
      { "application/json;g=apidiscovery.k8s.io;v=v2", "no as= parameter" },
      { "application/json;g=apidiscovery.k8s.io;as=APIGroupDiscoveryList", "no v= parameter" },
      { "application/json;v=v2;as=APIGroupDiscoveryList", "no g= parameter" },
      { "application/json;as=Table;v=v1;g=meta.k8s.io,application/json", "kubectl's Table Accept" },
      { "", "an empty header" },
      -- Operator precedence in wants_v2: `a and b and c or d and e` lets the
      -- first branch skip the as= check and the second the type and g= checks.
      { "application/json;g=apidiscovery.k8s.io;v=v2;as=Table", "as=Table instead of APIGroupDiscoveryList" },
      { "application/yaml;g=apidiscovery.k8s.io;as=APIGroupDiscoveryList;v=v2", "a YAML media type" },
      { "application/json;g=other.example.io;as=APIGroupDiscoveryList;v=v2", "another group" },
    }
    for _, case in ipairs(no) do
      it("is false for " .. case[2], function()
        assert.is_false(discovery.wants_v2(case[1]))
      end)
    end

    it("is false for a nil header", function()
      assert.is_false(discovery.wants_v2(nil))
    end)
  end)
end)
