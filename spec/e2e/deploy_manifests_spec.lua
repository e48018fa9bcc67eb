-- deploy/: the Deployment, Service, PodDisruptionBudget and APIService of the
-- base, the components that read files outside deploy/ (provider scripts,
-- TLS Secret, caBundle) and every overlay, rendered with kubectl kustomize;
-- plus deploy/Dockerfile against the binary's real library dependencies.
local cjson = require("cjson")
local shell = require("spec.helpers.shell")

local BUILD = os.getenv("MYAPISERVER_BUILD_DIR") or "build"
local OVERLAYS = { "self-built", "eks-static-keys", "eks-irsa", "tke", "out-of-cluster" }
local IN_CLUSTER = { "self-built", "eks-static-keys", "eks-irsa", "tke" }
local KUSTOMIZE = "kubectl kustomize --load-restrictor LoadRestrictionsNone "

-- YAML documents to a list of objects (Debian's python3-yaml does the parsing).
local YAML_TO_JSON = "/usr/bin/python3 -c 'import sys, yaml, json; "
  .. "print(json.dumps([d for d in yaml.safe_load_all(sys.stdin) if d]))'"

local function objects_of(yaml_command)
  return cjson.decode(shell.must(yaml_command .. " | " .. YAML_TO_JSON))
end

local function find(objects, kind, name)
  for _, o in ipairs(objects) do
    if o.kind == kind and o.metadata.name == name then
      return o
    end
  end
end

local function find_prefix(objects, kind, prefix)
  for _, o in ipairs(objects) do
    if o.kind == kind and o.metadata.name:sub(1, #prefix) == prefix then
      return o
    end
  end
end

local function count_kind(objects, kind)
  local n = 0
  for _, o in ipairs(objects) do
    if o.kind == kind then
      n = n + 1
    end
  end
  return n
end

local function pod_spec(objects)
  return find(objects, "Deployment", "myapiserver").spec.template.spec
end

local function container(objects)
  return pod_spec(objects).containers[1]
end

local function env_of(c)
  local out = {}
  for _, e in ipairs(c.env or {}) do
    out[e.name] = e
  end
  return out
end

local function volume(spec, name)
  for _, v in ipairs(spec.volumes) do
    if v.name == name then
      return v
    end
  end
end

local function mount_path(c, name)
  for _, m in ipairs(c.volumeMounts) do
    if m.name == name then
      return m.mountPath, m.readOnly
    end
  end
end

-- Secret names the container takes credentials from (envFrom and env).
local function secret_refs(c)
  local out = {}
  for _, f in ipairs(c.envFrom or {}) do
    if f.secretRef then
      out[f.secretRef.name] = f.secretRef.optional == true
    end
  end
  for _, e in ipairs(c.env or {}) do
    local ref = e.valueFrom and e.valueFrom.secretKeyRef
    if ref then
      out[ref.name] = ref.optional == true
    end
  end
  return out
end

-- The flags `myapiserver --help` lists.
local function help_flags()
  local flags = {}
  local help = shell.must(shell.quote(BUILD .. "/myapiserver") .. " --help")
  for flag in help:gmatch("\n%s+(%-%-[%w%-]+)") do
    flags[flag] = true
  end
  return flags
end

local function read(path)
  return assert(shell.read_file(path), path)
end

-- A copy of deploy/ and providers/ beside certificates from hack/gen.sh, so the
-- components that read ../../../certs and ../../../providers render without
-- touching the repository's certs/.
local work
local rendered = {}

local function render(name)
  if not rendered[name] then
    rendered[name] = objects_of(KUSTOMIZE .. shell.quote(work .. "/deploy/" .. name))
  end
  return rendered[name]
end

setup(function()
  work = shell.temp_dir()
  shell.must("cp -R deploy providers " .. shell.quote(work .. "/"))
  shell.must("hack/gen.sh --out " .. shell.quote(work .. "/certs"))
end)

teardown(function()
  shell.remove_tree(work)
end)

describe("deploy/base Deployment", function()
  local objects

  setup(function()
    -- Without the load-restrictor flag: the base reads nothing outside itself.
    objects = objects_of("kubectl kustomize deploy/base")
  end)

  it("runs 2 replicas as the myapiserver ServiceAccount, spread across nodes", function()
    local d = find(objects, "Deployment", "myapiserver")
    assert.equal("default", d.metadata.namespace)
    assert.equal(2, d.spec.replicas)
    local spec = pod_spec(objects)
    assert.equal("myapiserver", spec.serviceAccountName)
    local pref = spec.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution
    assert.equal(1, #pref)
    assert.equal("kubernetes.io/hostname", pref[1].podAffinityTerm.topologyKey)
    assert.same(d.spec.template.metadata.labels, pref[1].podAffinityTerm.labelSelector.matchLabels)
    assert.same(d.spec.selector.matchLabels, d.spec.template.metadata.labels)
  end)

  it("runs container myapiserver from image myapiserver:latest with the agreed arguments", function()
    local c = container(objects)
    assert.equal("myapiserver", c.name)
    assert.equal("myapiserver:latest", c.image)
    assert.same({
      "--secure-port=8443",
      "--tls-cert-file=/etc/myapiserver/tls/tls.crt",
      "--tls-private-key-file=/etc/myapiserver/tls/tls.key",
      "--providers-dir=/etc/myapiserver/providers",
      "--log-format=json",
    }, c.args)
    assert.same({ { name = "https", containerPort = 8443, protocol = "TCP" } }, c.ports)
  end)

  it("sets MY_NODE_NAME, POD_NAMESPACE and POD_NAME from the Downward API", function()
    local env = env_of(container(objects))
    assert.equal("spec.nodeName", env.MY_NODE_NAME.valueFrom.fieldRef.fieldPath)
    assert.equal("metadata.namespace", env.POD_NAMESPACE.valueFrom.fieldRef.fieldPath)
    assert.equal("metadata.name", env.POD_NAME.valueFrom.fieldRef.fieldPath)
  end)

  it("takes cloud credentials from the two Secrets, both optional", function()
    local c = container(objects)
    assert.same({
      { secretRef = { name = "myapiserver-aws", optional = true } },
      { secretRef = { name = "myapiserver-tencentcloud", optional = true } },
    }, c.envFrom)
  end)

  it("probes /livez and /readyz over HTTPS on the 8443 port", function()
    local c = container(objects)
    local ports = { https = 8443 }
    for probe, path in pairs({ livenessProbe = "/livez", readinessProbe = "/readyz" }) do
      local get = c[probe].httpGet
      assert.equal(path, get.path, probe)
      assert.equal("HTTPS", get.scheme, probe)
      assert.equal(8443, ports[get.port] or get.port, probe)
    end
  end)

  it("requests 20m CPU and 32Mi, limits memory to 384Mi and sets no CPU limit", function()
    assert.same({ requests = { cpu = "20m", memory = "32Mi" }, limits = { memory = "384Mi" } },
      container(objects).resources)
    local text = read("deploy/base/deployment.yaml")
    assert.truthy(text:find("docs/performance.md", 1, true), "the comment names where the figures come from")
    -- The limit holds the measured worst case: every request of --max-requests-inflight in flight.
    local peak = tonumber(read("docs/performance.md"):match("| peak RSS, 400 restarts in flight[^|]*| ([%d.]+) MiB"))
    assert.is_number(peak)
    assert.is_true(peak < 384, "the 384Mi limit is below the measured peak " .. peak .. " MiB")
    assert.matches('"max%-requests%-inflight", "400"', read("host/config.c"))
  end)

  it("runs as 65532, non-root, read-only root, no privilege escalation, no capabilities, RuntimeDefault", function()
    local sc = container(objects).securityContext
    assert.is_true(sc.runAsNonRoot)
    assert.equal(65532, sc.runAsUser)
    assert.is_true(sc.readOnlyRootFilesystem)
    assert.is_false(sc.allowPrivilegeEscalation)
    assert.same({ "ALL" }, sc.capabilities.drop)
    assert.equal("RuntimeDefault", sc.seccompProfile.type)
    assert.equal("RuntimeDefault", pod_spec(objects).securityContext.seccompProfile.type)
  end)

  it("mounts the TLS Secret and the providers ConfigMap where the arguments point", function()
    local spec, c = pod_spec(objects), container(objects)
    local tls = volume(spec, "tls")
    assert.equal("myapiserver-tls", tls.secret.secretName)
    assert.same({ { key = "tls.crt", path = "tls.crt" }, { key = "tls.key", path = "tls.key" } }, tls.secret.items)
    assert.equal("myapiserver-providers", volume(spec, "providers").configMap.name)
    local path, ro = mount_path(c, "tls")
    assert.equal("/etc/myapiserver/tls", path)
    assert.is_true(ro)
    path, ro = mount_path(c, "providers")
    assert.equal("/etc/myapiserver/providers", path)
    assert.is_true(ro)
  end)

  it("passes only flags that myapiserver --help lists", function()
    local flags = help_flags()
    assert.truthy(flags["--secure-port"] and flags["--providers-dir"], "help parsed")
    for _, arg in ipairs(container(objects).args) do
      local flag = arg:match("^(%-%-[%w%-]+)")
      assert.truthy(flag and flags[flag], "unknown flag: " .. arg)
    end
  end)
end)

describe("deploy/base Service, PodDisruptionBudget and APIService", function()
  local objects

  setup(function()
    objects = objects_of("kubectl kustomize deploy/base")
  end)

  it("keeps one replica through disruptions", function()
    local pdb = find(objects, "PodDisruptionBudget", "myapiserver")
    assert.equal("default", pdb.metadata.namespace)
    assert.equal(1, pdb.spec.minAvailable)
    assert.same(find(objects, "Deployment", "myapiserver").spec.template.metadata.labels, pdb.spec.selector.matchLabels)
  end)

  it("serves infraops-service port 443 from the container's 8443", function()
    local svc = find(objects, "Service", "infraops-service")
    assert.equal("default", svc.metadata.namespace)
    assert.equal(1, #svc.spec.ports)
    local port = svc.spec.ports[1]
    assert.equal(443, port.port)
    assert.equal("https", port.name)
    local c = container(objects)
    local target
    for _, p in ipairs(c.ports) do
      if p.name == port.targetPort or p.containerPort == port.targetPort then
        target = p.containerPort
      end
    end
    assert.equal(8443, target)
    assert.same(find(objects, "Deployment", "myapiserver").spec.template.metadata.labels, svc.spec.selector)
  end)

  it("registers v1.infraops.michael.io for that Service", function()
    local api = find(objects, "APIService", "v1.infraops.michael.io")
    assert.equal("apiregistration.k8s.io/v1", api.apiVersion)
    assert.equal("infraops.michael.io", api.spec.group)
    assert.equal("v1", api.spec.version)
    assert.same({ namespace = "default", name = "infraops-service", port = 443 }, api.spec.service)
    assert.equal(1000, api.spec.groupPriorityMinimum)
    assert.equal(100, api.spec.versionPriority)
    assert.is_nil(api.spec.insecureSkipTLSVerify)
    assert.equal("", api.spec.caBundle)
  end)

  it("still keeps the reader RoleBinding in kube-system (no kustomization namespace)", function()
    local b = find(objects, "RoleBinding", "myapiserver:extension-apiserver-authentication-reader")
    assert.equal("kube-system", b.metadata.namespace)
    assert.is_nil(read("deploy/base/kustomization.yaml"):match("\nnamespace:"))
  end)
end)

describe("deploy/overlays", function()
  it("every overlay renders, and every container argument is a flag myapiserver knows", function()
    local flags = help_flags()
    for _, name in ipairs(OVERLAYS) do
      local objects = render("overlays/" .. name)
      assert.is_table(find(objects, "APIService", "v1.infraops.michael.io"), name)
      for _, o in ipairs(objects) do
        if o.kind == "Deployment" then
          for _, c in ipairs(o.spec.template.spec.containers) do
            for _, arg in ipairs(c.args or {}) do
              assert.truthy(flags[arg:match("^(%-%-[%w%-]+)") or ""], name .. ": unknown flag " .. arg)
            end
          end
        end
      end
    end
  end)

  it("ship both provider scripts byte for byte in a hashed ConfigMap the Deployment mounts", function()
    local scripts = {
      ["aws.lua"] = read("providers/aws.lua"),
      ["tencentcloud.lua"] = read("providers/tencentcloud.lua"),
    }
    for _, name in ipairs(IN_CLUSTER) do
      local objects = render("overlays/" .. name)
      assert.equal(1, count_kind(objects, "ConfigMap"), name)
      local cm = find_prefix(objects, "ConfigMap", "myapiserver-providers-")
      assert.is_table(cm, name)
      assert.equal("default", cm.metadata.namespace)
      assert.same(scripts, cm.data, name)
      assert.equal(cm.metadata.name, volume(pod_spec(objects), "providers").configMap.name, name)
    end
  end)

  it("give a changed provider script a new ConfigMap name, so the pods roll", function()
    local before = find_prefix(render("overlays/self-built"), "ConfigMap", "myapiserver-providers-").metadata.name
    local copy = work .. "/changed"
    shell.must("mkdir " .. shell.quote(copy) .. " && cp -R " .. shell.quote(work .. "/deploy") .. " "
      .. shell.quote(work .. "/providers") .. " " .. shell.quote(work .. "/certs") .. " " .. shell.quote(copy))
    shell.must("echo '-- changed' >> " .. shell.quote(copy .. "/providers/aws.lua"))
    local objects = objects_of(KUSTOMIZE .. shell.quote(copy .. "/deploy/overlays/self-built"))
    local after = find_prefix(objects, "ConfigMap", "myapiserver-providers-").metadata.name
    assert.not_equal(before, after)
    assert.equal(after, volume(pod_spec(objects), "providers").configMap.name)
  end)

  it("fill the APIService caBundle from hack/gen.sh's certs/caBundle.txt", function()
    local bundle = read(work .. "/certs/caBundle.txt"):gsub("%s", "")
    local ca = read(work .. "/certs/ca.crt")
    for _, name in ipairs(OVERLAYS) do
      local objects = render("overlays/" .. name)
      local api = find(objects, "APIService", "v1.infraops.michael.io")
      assert.equal(bundle, (api.spec.caBundle:gsub("%s", "")), name)
      assert.is_nil(find(objects, "ConfigMap", "myapiserver-ca-bundle"), name .. ": helper ConfigMap left out")
    end
    local decoded = shell.must("printf %s " .. shell.quote(bundle) .. " | base64 -d")
    assert.equal(ca, decoded)
  end)

  it("in cluster: the TLS Secret myapiserver-tls holds hack/gen.sh's certificate and key", function()
    local crt, key = read(work .. "/certs/tls.crt"), read(work .. "/certs/tls.key")
    for _, name in ipairs(IN_CLUSTER) do
      local s = find(render("overlays/" .. name), "Secret", "myapiserver-tls")
      assert.is_table(s, name)
      assert.equal("default", s.metadata.namespace)
      assert.equal("kubernetes.io/tls", s.type)
      assert.equal(crt, shell.must("printf %s " .. shell.quote(s.data["tls.crt"]) .. " | base64 -d"))
      assert.equal(key, shell.must("printf %s " .. shell.quote(s.data["tls.key"]) .. " | base64 -d"))
    end
  end)

  it("self-built: both credential Secrets optional, with example env files", function()
    assert.same({ ["myapiserver-aws"] = true, ["myapiserver-tencentcloud"] = true },
      secret_refs(container(render("overlays/self-built"))))
    assert.truthy(read("deploy/overlays/self-built/aws.env.example"):find("AWS_ACCESS_KEY_ID=", 1, true))
    assert.truthy(read("deploy/overlays/self-built/tencentcloud.env.example"):find("TENCENTCLOUD_SECRET_ID=", 1, true))
  end)

  it("eks-static-keys: the AWS Secret and nothing else, required", function()
    assert.same({ ["myapiserver-aws"] = false }, secret_refs(container(render("overlays/eks-static-keys"))))
  end)

  it("eks-irsa: the ServiceAccount names an IAM role and no key Secret is referenced", function()
    local objects = render("overlays/eks-irsa")
    local sa = find(objects, "ServiceAccount", "myapiserver")
    assert.matches("^arn:aws:iam::%d+:role/.+", sa.metadata.annotations["eks.amazonaws.com/role-arn"])
    assert.same({}, secret_refs(container(objects)))
    assert.is_nil(find(objects, "Secret", "myapiserver-aws"))
    -- The rest of the pod is the base's.
    assert.equal("spec.nodeName", env_of(container(objects)).MY_NODE_NAME.valueFrom.fieldRef.fieldPath)
  end)

  it("tke: the Tencent Cloud Secret and nothing else, required", function()
    assert.same({ ["myapiserver-tencentcloud"] = false }, secret_refs(container(render("overlays/tke"))))
  end)

  it("out-of-cluster: no pods, an ExternalName Service to the developer machine on the APIService's port", function()
    local objects = render("overlays/out-of-cluster")
    assert.equal(0, count_kind(objects, "Deployment"))
    assert.equal(0, count_kind(objects, "PodDisruptionBudget"))
    assert.equal(0, count_kind(objects, "Secret"))
    assert.equal(0, count_kind(objects, "ConfigMap"))
    local svc = find(objects, "Service", "infraops-service")
    assert.equal("ExternalName", svc.spec.type)
    assert.equal("host.docker.internal", svc.spec.externalName)
    assert.is_nil(svc.spec.selector)
    local api = find(objects, "APIService", "v1.infraops.michael.io")
    assert.same({ namespace = "default", name = "infraops-service", port = 8443 }, api.spec.service)
    assert.equal(1, #svc.spec.ports)
    assert.equal(api.spec.service.port, svc.spec.ports[1].port)
  end)
end)

describe("deploy/Dockerfile", function()
  local text, stages

  setup(function()
    text = read("deploy/Dockerfile")
    stages = {}
    local start = 1
    while true do
      local s = text:find("\nFROM ", start, true)
      if not s then
        break
      end
      local e = text:find("\nFROM ", s + 1, true)
      stages[#stages + 1] = text:sub(s, (e or #text + 1) - 1)
      start = s + 1
    end
  end)

  it("builds on and runs from debian:bookworm-slim, as 65532, with myapiserver as the entrypoint", function()
    assert.equal(2, #stages)
    assert.truthy(stages[1]:find("^\nFROM debian:bookworm%-slim AS build"))
    assert.truthy(stages[2]:find("^\nFROM debian:bookworm%-slim\n"))
    assert.truthy(stages[2]:find("\nUSER 65532:65532\n", 1, true))
    assert.truthy(stages[2]:find('\nENTRYPOINT ["/usr/local/bin/myapiserver"]', 1, true))
    assert.truthy(stages[2]:find("COPY --from=build /out/usr/local/ /usr/local/", 1, true))
  end)

  it("installs every -dev package of hack/deps.sh in the build stage only", function()
    local deps = read("hack/deps.sh"):match('\nbuild_packages="(.-)"') -- not the test-only ones
    local n = 0
    for pkg in deps:gmatch("[%w%.%-]+%-dev") do
      n = n + 1
      assert.truthy(stages[1]:find(" " .. pkg:gsub("%p", "%%%0") .. "[%s\\]"), "build stage lacks " .. pkg)
      assert.falsy(stages[2]:find(pkg, 1, true), "runtime stage installs " .. pkg)
    end
    assert.is_true(n >= 7)
  end)

  it("installs the package of every library the binary links directly in the runtime stage", function()
    local needed = shell.must("readelf -d " .. shell.quote(BUILD .. "/myapiserver"))
    local n = 0
    for lib in needed:gmatch("Shared library: %[([^%]]+)%]") do
      local owner = shell.must("dpkg -S " .. shell.quote("*/" .. lib) .. " | head -n 1 | cut -d: -f1")
      owner = owner:gsub("%s+$", "")
      -- libc6 is in the base image; the sanitizer runtimes only in the ASan build.
      if owner ~= "libc6" and not lib:match("^libasan") and not lib:match("^libubsan") then
        n = n + 1
        assert.truthy(stages[2]:find(" " .. owner:gsub("%p", "%%%0") .. "[%s\\]"), lib .. " needs " .. owner)
      end
    end
    assert.is_true(n >= 7)
    assert.truthy(stages[2]:find(" ca-certificates", 1, true))
  end)
end)
