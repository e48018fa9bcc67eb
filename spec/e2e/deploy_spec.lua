-- deploy/: the manifests render with kubectl kustomize and grant exactly what
-- the server needs (delegated auth, the authentication ConfigMap, nodes).
local cjson = require("cjson")
local shell = require("spec.helpers.shell")

-- YAML documents to a list of objects (Debian's python3-yaml does the parsing).
local YAML_TO_JSON = "/usr/bin/python3 -c 'import sys, yaml, json; "
  .. "print(json.dumps([d for d in yaml.safe_load_all(sys.stdin) if d]))'"

local function objects_of(yaml_command)
  return cjson.decode(shell.must(yaml_command .. " | " .. YAML_TO_JSON))
end

-- Renders a kustomization to a list of objects.
local function render(dir)
  return objects_of("kubectl kustomize " .. shell.quote(dir))
end

local function find(objects, kind, name)
  for _, o in ipairs(objects) do
    if o.kind == kind and o.metadata.name == name then
      return o
    end
  end
end

describe("deploy/base", function()
  local objects

  setup(function()
    objects = render("deploy/base")
  end)

  it("has the ServiceAccount the bindings name", function()
    local sa = find(objects, "ServiceAccount", "myapiserver")
    assert.is_table(sa)
    assert.equal("default", sa.metadata.namespace)
  end)

  it("binds system:auth-delegator for TokenReviews and SubjectAccessReviews", function()
    local b = find(objects, "ClusterRoleBinding", "myapiserver:system:auth-delegator")
    assert.equal("system:auth-delegator", b.roleRef.name)
    assert.same({ kind = "ServiceAccount", name = "myapiserver", namespace = "default" }, b.subjects[1])
  end)

  it("reads the authentication ConfigMap through a RoleBinding in kube-system", function()
    local b = find(objects, "RoleBinding", "myapiserver:extension-apiserver-authentication-reader")
    assert.equal("kube-system", b.metadata.namespace)
    assert.same({ apiGroup = "rbac.authorization.k8s.io", kind = "Role",
      name = "extension-apiserver-authentication-reader" }, b.roleRef)
  end)

  it("may read nodes and nothing else through its own ClusterRole", function()
    local role = find(objects, "ClusterRole", "myapiserver:node-reader")
    assert.same({ { apiGroups = { "" }, resources = { "nodes" }, verbs = { "get", "list", "watch" } } }, role.rules)
    local b = find(objects, "ClusterRoleBinding", "myapiserver:node-reader")
    assert.equal("myapiserver:node-reader", b.roleRef.name)
  end)
end)

describe("deploy/base restart records", function()
  it("may manage Leases and create Events in its namespace, bound to its ServiceAccount", function()
    local objects = render("deploy/base")
    local role = find(objects, "Role", "myapiserver:restart-records")
    assert.equal("default", role.metadata.namespace)
    assert.same({ "coordination.k8s.io" }, role.rules[1].apiGroups)
    assert.same({ "leases" }, role.rules[1].resources)
    assert.same({ "get", "list", "create", "update", "delete" }, role.rules[1].verbs)
    assert.same({ "events" }, role.rules[2].resources)
    assert.same({ "create" }, role.rules[2].verbs)
    local b = find(objects, "RoleBinding", "myapiserver:restart-records")
    assert.same({ kind = "ServiceAccount", name = "myapiserver", namespace = "default" }, b.subjects[1])
  end)
end)

describe("deploy/examples/restart-rbac.yaml", function()
  it("grants nodes/restart create, once for any node and once for named nodes", function()
    local items = objects_of("cat deploy/examples/restart-rbac.yaml")
    local any = find(items, "ClusterRole", "infraops:node-restarter")
    assert.same({ "nodes/restart" }, any.rules[2].resources)
    assert.same({ "create" }, any.rules[2].verbs)
    local named = find(items, "ClusterRole", "infraops:restart-worker-1-2")
    assert.same({ "worker-1", "worker-2" }, named.rules[1].resourceNames)
  end)
end)
