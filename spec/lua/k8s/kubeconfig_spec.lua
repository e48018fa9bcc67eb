-- infraops.k8s.kubeconfig (lua/infraops/k8s/kubeconfig.lua): where the API is
-- and how to authenticate. Fixtures are JSON (valid YAML) decoded by cjson;
-- one real YAML fixture goes through host.yaml in the #host spec.
local cjson = require("cjson")
local fake = require("helpers.fake_http")
local kubeconfig = require("infraops.k8s.kubeconfig")

local DIR = "spec/fixtures/kubeconfig"
local ROOT = "/run/sa"

local function deps(env, fs, log)
  env = env or {}
  return {
    fs = fs or fake.disk_fs(),
    yaml = fake.json_yaml,
    getenv = function(name)
      return env[name]
    end,
    base64_decode = fake.base64_decode,
    base64_encode = fake.base64_encode,
    log = log or fake.log(),
  }
end

local function resolve(opts, d)
  return table.pack(kubeconfig.resolve(opts, d or deps()))
end

local function fixture(name, context, d)
  return resolve({ kubeconfig = DIR .. "/" .. name, context = context }, d)
end

local function read(path)
  return fake.disk_fs().read_file(path)
end

local function assert_refused(r, code)
  assert.is_nil(r[1])
  assert.is_string(r[2])
  assert.are.equal(code or "invalid_config", r[3])
end

describe("infraops.k8s.kubeconfig", function()
  describe("resolve() with a kubeconfig file", function()
    it("resolves client certificate files relative to the kubeconfig's directory", function()
      local conn = fixture("client-cert-files.json")[1]
      assert.are.equal("https://api.example.test:6443", conn.server)
      assert.are.equal(DIR .. "/certs/ca.crt", conn.ca_file)
      assert.are.equal(DIR .. "/certs/client.crt", conn.client_cert_file)
      assert.are.equal(DIR .. "/certs/client.key", conn.client_key_file)
      assert.are.equal("team-a", conn.namespace)
      assert.are.equal("kubeconfig:" .. DIR .. "/client-cert-files.json", conn.source)
      assert.is_nil(conn.token)
      assert.is_nil(conn.exec)
    end)

    it("decodes the -data forms into PEM strings", function()
      local conn = fixture("data.json")[1]
      assert.are.equal(read(DIR .. "/certs/ca.crt"), conn.ca_pem)
      assert.are.equal(read(DIR .. "/certs/client.crt"), conn.client_cert_pem)
      assert.are.equal(read(DIR .. "/certs/client.key"), conn.client_key_pem)
      assert.is_nil(conn.ca_file)
      assert.is_nil(conn.client_cert_file)
      assert.are.equal("default", conn.namespace)
    end)

    it("takes a static token and insecure-skip-tls-verify", function()
      local conn = fixture("token.json")[1]
      assert.are.equal("static-token-xyz", conn.token)
      assert.is_true(conn.insecure)
      assert.is_nil(conn.ca_file)
      assert.is_nil(conn.ca_pem)
    end)

    it("resolves tokenFile relative to the kubeconfig and does not read it", function()
      local d = deps()
      local conn = fixture("token-file.json", nil, d)[1]
      assert.are.equal(DIR .. "/token", conn.token_file)
      assert.is_nil(conn.token)
    end)

    it("supports basic auth over http://", function()
      local conn = fixture("basic.json")[1]
      assert.are.equal("http://127.0.0.1:8080", conn.server)
      assert.are.same({ username = "admin", password = "s3cret" }, conn.basic)
    end)

    it("records an exec v1 plugin with args, env and cluster info", function()
      local conn = fixture("exec-v1.json")[1]
      local exec = conn.exec
      assert.are.equal("client.authentication.k8s.io/v1", exec.api_version)
      assert.are.equal("get-token", exec.command) -- no slash: looked up in PATH
      assert.are.same({ "--cluster", "c1" }, exec.args)
      assert.are.same({ { name = "AWS_PROFILE", value = "prod" }, { name = "EMPTY", value = "" } }, exec.env)
      assert.is_true(exec.provide_cluster_info)
      assert.are.equal("install get-token from your admin", exec.install_hint)
      assert.are.equal("https://api.example.test:6443", exec.cluster.server)
      assert.are.equal(read(DIR .. "/certs/ca.crt"), fake.base64_decode(exec.cluster["certificate-authority-data"]))
      assert.are.same({ audience = "myapiserver" }, exec.cluster.config)
    end)

    it("records an exec v1beta1 plugin; a command with a slash is relative to the kubeconfig", function()
      local conn = fixture("exec-v1beta1.json")[1]
      local exec = conn.exec
      assert.are.equal("client.authentication.k8s.io/v1beta1", exec.api_version)
      assert.are.equal(DIR .. "/./bin/plugin", exec.command)
      assert.are.same({}, exec.args)
      assert.are.same({ { name = "MODE", value = "ci" } }, exec.env)
      -- a CA file is read and base64-encoded for the plugin, as client-go does
      assert.are.equal(read(DIR .. "/certs/ca.crt"), fake.base64_decode(exec.cluster["certificate-authority-data"]))
    end)

    it("uses current-context, or the one named by --context", function()
      local dev = fixture("two-contexts.json")[1]
      assert.are.equal("https://dev.example.test", dev.server)
      assert.are.equal("dev-token", dev.token)
      assert.are.equal("dev-ns", dev.namespace)
      local prod = fixture("two-contexts.json", "prod")[1]
      assert.are.equal("https://prod.example.test", prod.server) -- trailing slash dropped
      assert.are.equal("prod-token", prod.token)
      assert.are.equal("default", prod.namespace)
    end)

    it("refuses an unknown context", function()
      assert_refused(fixture("two-contexts.json", "staging"))
    end)

    it("returns not_found for a missing --kubeconfig file", function()
      assert_refused(fixture("does-not-exist.json"), "not_found")
    end)

    it("refuses an auth-provider plugin", function()
      assert_refused(fixture("auth-provider.json"))
    end)

    it("refuses exec interactiveMode Always", function()
      assert_refused(fixture("exec-always.json"))
    end)

    it("refuses an exec v1 plugin without interactiveMode, as client-go does", function()
      assert_refused(fixture("exec-v1-no-mode.json"))
    end)

    it("refuses an unsupported exec apiVersion", function()
      assert_refused(fixture("exec-v1alpha1.json"))
    end)

    it("refuses a client certificate without a key", function()
      assert_refused(fixture("cert-without-key.json"))
    end)

    it("refuses a server that is not an http(s) URL", function()
      assert_refused(fixture("bad-server.json"))
    end)

    it("refuses a certificate-authority file that does not exist", function()
      assert_refused(fixture("missing-ca-file.json"))
    end)

    it("refuses a CA together with insecure-skip-tls-verify", function()
      assert_refused(fixture("ca-and-insecure.json"))
    end)

    it("refuses a token together with username/password", function()
      assert_refused(fixture("token-and-basic.json"))
    end)

    it("refuses -data that is not base64", function()
      assert_refused(fixture("bad-base64.json"))
    end)

    it("records tls-server-name and proxy-url and warns that they are ignored", function()
      local log = fake.log()
      local conn = fixture("tls-server-name.json", nil, deps(nil, nil, log))[1]
      assert.are.equal("api.internal", conn.tls_server_name)
      assert.are.equal("http://proxy:3128", conn.proxy_url)
      assert.are.equal(2, log.count("warn"))
    end)

    it("refuses a document that does not decode", function()
      local fs = fake.memory_fs({ ["/k/config"] = "clusters: [" })
      assert_refused(resolve({ kubeconfig = "/k/config" }, deps(nil, fs)))
    end)

    it("refuses a field of the wrong type", function()
      local doc = cjson.decode(read(DIR .. "/token.json"))
      doc.users[1].user.token = 12345
      local fs = fake.memory_fs({ ["/k/config"] = cjson.encode(doc) })
      assert_refused(resolve({ kubeconfig = "/k/config" }, deps(nil, fs)))
    end)

    it("refuses impersonation, which it cannot honour", function()
      local doc = cjson.decode(read(DIR .. "/token.json"))
      doc.users[1].user.as = "system:admin"
      local fs = fake.memory_fs({ ["/k/config"] = cjson.encode(doc) })
      assert_refused(resolve({ kubeconfig = "/k/config" }, deps(nil, fs)))
    end)

    it("treats null fields as absent", function()
      local text = read(DIR .. "/token.json")
        :gsub('"insecure%-skip%-tls%-verify": true', '"insecure-skip-tls-verify": null')
      local fs = fake.memory_fs({ ["/k/config"] = text })
      local conn = resolve({ kubeconfig = "/k/config" }, deps(nil, fs))[1]
      assert.is_nil(conn.insecure)
      assert.are.equal("static-token-xyz", conn.token)
    end)

    it("lets static credentials win over an exec plugin, with a warning", function()
      local doc = cjson.decode(read(DIR .. "/exec-v1.json"))
      doc.users[1].user.token = "static"
      local fs = fake.memory_fs({ ["/k/config"] = cjson.encode(doc) })
      local log = fake.log()
      local conn = resolve({ kubeconfig = "/k/config" }, deps(nil, fs, log))[1]
      assert.are.equal("static", conn.token)
      assert.is_nil(conn.exec)
      assert.are.equal(1, log.count("warn"))
    end)
  end)

  describe("resolve() in a cluster", function()
    local env = { KUBERNETES_SERVICE_HOST = "10.96.0.1", KUBERNETES_SERVICE_PORT = "443", HOME = "/home/app" }

    local function sa_fs(extra)
      local files = {
        [ROOT .. "/token"] = "sa-token\n",
        [ROOT .. "/ca.crt"] = "-----BEGIN CERTIFICATE-----\n",
        [ROOT .. "/namespace"] = "infra-system\n",
      }
      for k, v in pairs(extra or {}) do
        files[k] = v or nil
      end
      return fake.memory_fs(files)
    end

    it("uses the service account when the env is set and the token file exists", function()
      local fs = sa_fs()
      local conn = resolve({ in_cluster_root = ROOT }, deps(env, fs))[1]
      assert.are.equal("https://10.96.0.1:443", conn.server)
      assert.are.equal(ROOT .. "/ca.crt", conn.ca_file)
      assert.are.equal(ROOT .. "/token", conn.token_file)
      assert.is_nil(conn.token) -- read per request by infraops.k8s.credentials
      assert.are.equal("infra-system", conn.namespace)
      assert.are.equal("in-cluster", conn.source)
    end)

    it("does not load host.yaml", function()
      local saved_loaded, saved_preload = package.loaded["host.yaml"], package.preload["host.yaml"]
      finally(function()
        package.loaded["host.yaml"], package.preload["host.yaml"] = saved_loaded, saved_preload
      end)
      package.loaded["host.yaml"] = nil
      package.preload["host.yaml"] = function() error("host.yaml must not be loaded") end
      local d = deps(env, sa_fs())
      d.yaml, d.base64_decode, d.base64_encode = nil, nil, nil
      local conn = kubeconfig.resolve({ in_cluster_root = ROOT }, d)
      assert.are.equal("in-cluster", conn.source)
    end)

    it("brackets an IPv6 service host", function()
      local v6 = { KUBERNETES_SERVICE_HOST = "fd00:10:96::1", KUBERNETES_SERVICE_PORT = "6443" }
      local conn = resolve({ in_cluster_root = ROOT }, deps(v6, sa_fs()))[1]
      assert.are.equal("https://[fd00:10:96::1]:6443", conn.server)
    end)

    it("prefers --kubeconfig over the service account", function()
      local conn = resolve({ kubeconfig = DIR .. "/token.json", in_cluster_root = ROOT }, deps(env, fake.disk_fs()))[1]
      assert.are.equal("https://10.0.0.1", conn.server)
    end)

    it("is skipped without the token file, falling back to ~/.kube/config", function()
      local fs = fake.memory_fs({ ["/home/app/.kube/config"] = read(DIR .. "/token.json") })
      local conn = resolve({ in_cluster_root = ROOT }, deps(env, fs))[1]
      assert.are.equal("kubeconfig:/home/app/.kube/config", conn.source)
    end)

    it("is skipped when KUBERNETES_SERVICE_PORT is not set", function()
      local fs = sa_fs()
      local r = resolve({ in_cluster_root = ROOT }, deps({ KUBERNETES_SERVICE_HOST = "10.96.0.1" }, fs))
      assert_refused(r, "not_found")
    end)

    it("works without a CA file (system store, with a warning) and defaults the namespace", function()
      local fs = fake.memory_fs({ [ROOT .. "/token"] = "t" })
      local log = fake.log()
      local conn = resolve({ in_cluster_root = ROOT }, deps(env, fs, log))[1]
      assert.is_nil(conn.ca_file)
      assert.are.equal("default", conn.namespace)
      assert.are.equal(1, log.count("warn"))
    end)

    it("is not used when --context names a kubeconfig context", function()
      local fs = sa_fs({ ["/home/app/.kube/config"] = read(DIR .. "/two-contexts.json") })
      local conn = resolve({ context = "prod", in_cluster_root = ROOT }, deps(env, fs))[1]
      assert.are.equal("https://prod.example.test", conn.server)
    end)
  end)

  describe("resolve() from KUBECONFIG and HOME", function()
    it("takes the first existing file of KUBECONFIG", function()
      local fs = fake.memory_fs({
        ["/b/config"] = read(DIR .. "/basic.json"),
        ["/c/config"] = read(DIR .. "/token.json"),
        ["/home/u/.kube/config"] = read(DIR .. "/token.json"),
      })
      local conn = resolve({}, deps({ KUBECONFIG = "/a/config::/b/config:/c/config", HOME = "/home/u" }, fs))[1]
      assert.are.equal("kubeconfig:/b/config", conn.source)
    end)

    it("uses $HOME/.kube/config when KUBECONFIG is not set", function()
      local fs = fake.memory_fs({ ["/home/u/.kube/config"] = read(DIR .. "/token.json") })
      local conn = resolve({}, deps({ HOME = "/home/u/" }, fs))[1]
      assert.are.equal("kubeconfig:/home/u/.kube/config", conn.source)
    end)

    it("does not fall back to ~/.kube/config when KUBECONFIG is set (client-go)", function()
      local fs = fake.memory_fs({ ["/home/u/.kube/config"] = read(DIR .. "/token.json") })
      local r = resolve({}, deps({ KUBECONFIG = "/missing", HOME = "/home/u" }, fs))
      assert_refused(r, "not_found")
    end)

    it("returns not_found naming every place tried", function()
      local r = resolve({ in_cluster_root = ROOT }, deps({ HOME = "/home/u" }, fake.memory_fs()))
      assert_refused(r, "not_found")
      assert.truthy(r[2]:find("in-cluster", 1, true))
      assert.truthy(r[2]:find("/home/u/.kube/config", 1, true))
    end)
  end)

  describe("resolve() with the real host.yaml #host", function()
    it("reads a YAML kubeconfig, IPv6 server and relative files included", function()
      local yaml = require("host.yaml") -- built with the other host modules; missing is a failure
      local d = deps()
      d.yaml = yaml
      local conn, err = kubeconfig.resolve({ kubeconfig = DIR .. "/kubeconfig.yaml" }, d)
      assert.is_table(conn, err)
      assert.are.equal("https://[::1]:6443", conn.server)
      assert.are.equal(DIR .. "/certs/ca.crt", conn.ca_file)
      assert.are.equal(DIR .. "/certs/client.key", conn.client_key_file)
      assert.are.equal("infra", conn.namespace)
      local lab = kubeconfig.resolve({ kubeconfig = DIR .. "/kubeconfig.yaml", context = "lab" }, d)
      assert.is_true(lab.insecure)
      assert.are.same({ "token", "--quiet" }, lab.exec.args)
      assert.are.same({ { name = "LAB_REGION", value = "eu-1" } }, lab.exec.env)
      assert.is_false(lab.exec.provide_cluster_info)
    end)
  end)
end)
