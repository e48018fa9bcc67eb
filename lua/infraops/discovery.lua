-- The API discovery documents of infraops.michael.io/v1: the legacy
-- APIGroupList / APIGroup / APIResourceList, and the aggregated discovery
-- document (apidiscovery.k8s.io/v2) that kube-aggregator asks /apis for.
-- Every document is encoded once, in new(), with sorted keys so every Lua
-- state (and replica) serves the same bytes; serving one is a table lookup.
local stable_json = require("infraops.stable_json")

local discovery = {}

discovery.GROUP = "infraops.michael.io"
discovery.VERSION = "v1"
discovery.GROUP_VERSION = discovery.GROUP .. "/" .. discovery.VERSION

local V2_CONTENT_TYPE = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"

local function group_document()
  local version = { groupVersion = discovery.GROUP_VERSION, version = discovery.VERSION }
  return { name = discovery.GROUP, versions = { version }, preferredVersion = version }
end

local function resource_list()
  return {
    kind = "APIResourceList",
    apiVersion = "v1",
    groupVersion = discovery.GROUP_VERSION,
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
  }
end

local function aggregated_list()
  local function kind(name)
    return { group = discovery.GROUP, version = discovery.VERSION, kind = name }
  end
  return {
    kind = "APIGroupDiscoveryList",
    apiVersion = "apidiscovery.k8s.io/v2",
    metadata = {},
    items = { {
      metadata = { name = discovery.GROUP },
      versions = { {
        version = discovery.VERSION,
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
  }
end

--- Splits one media range "type/subtype;k=v;..." into its type and parameters.
local function parse_media_range(range)
  local parts = {}
  for part in range:gmatch("[^;]+") do
    parts[#parts + 1] = part:gsub("^%s+", ""):gsub("%s+$", "")
  end
  local params = {}
  for i = 2, #parts do
    local key, value = parts[i]:match("^([^=]+)=(.*)$")
    if key then
      params[key:lower()] = value
    end
  end
  return (parts[1] or ""):lower(), params
end

--- True if the Accept header asks for aggregated discovery v2
-- (application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList).
local function wants_v2(accept)
  for range in (accept or ""):gmatch("[^,]+") do
    local media_type, p = parse_media_range(range)
    if media_type == "application/json" and p.g == "apidiscovery.k8s.io" and p.v == "v2"
      and p.as == "APIGroupDiscoveryList" then
      return true
    end
  end
  return false
end

--- Pre-encodes the documents. Returns an object with :document(segments, accept).
function discovery.new()
  local group = group_document()
  local group_list = { kind = "APIGroupList", apiVersion = "v1", groups = { group } }
  local api_group = group_document()
  api_group.kind, api_group.apiVersion = "APIGroup", "v1"
  local self = {
    group_list = stable_json.encode(group_list),
    api_group = stable_json.encode(api_group),
    resource_list = stable_json.encode(resource_list()),
    aggregated = stable_json.encode(aggregated_list()),
  }

  --- The encoded document and its content type for a discovery path, or nil.
  -- @tparam table segments decoded path segments
  -- @tparam string accept the request's Accept header (may be nil)
  function self.document(segments, accept)
    local n = #segments
    if segments[1] ~= "apis" or n > 3 then
      return nil
    end
    if n == 1 then
      if wants_v2(accept) then
        return self.aggregated, V2_CONTENT_TYPE
      end
      return self.group_list, "application/json"
    end
    if segments[2] ~= discovery.GROUP then
      return nil
    end
    if n == 2 then
      return self.api_group, "application/json"
    end
    if segments[3] == discovery.VERSION then
      return self.resource_list, "application/json"
    end
    return nil
  end

  return self
end

discovery.wants_v2 = wants_v2

return discovery
