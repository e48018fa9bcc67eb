-- End to end: the real binary, real TLS, curl and kubectl as clients.
local cjson = require("cjson")
local server = require("spec.helpers.server")
local shell = require("spec.helpers.shell")

local GROUP_VERSION = "/apis/infraops.michael.io/v1"

-- curl with the serving CA; `cert` names a client cert/key pair in the PKI dir.
-- Requests go as `admin` (group system:masters: no SubjectAccessReview needed,
-- and no cluster runs here) unless opts.cert names another or opts.anonymous.
local function curl(pki, url, opts)
  opts = opts or {}
  if not opts.cert and not opts.anonymous then
    opts.cert = "admin"
  end
  local words = { "curl", "-sS", "--max-time", "10", "--cacert", pki .. "/serving-ca.crt",
    "-o", "-", "-w", "\n%{http_code}" }
  if opts.cert then
    local cert = opts.chain and (pki .. "/" .. opts.cert .. "-chain.crt") or (pki .. "/" .. opts.cert .. ".crt")
    words[#words + 1] = "--cert"
    words[#words + 1] = cert
    words[#words + 1] = "--key"
    words[#words + 1] = pki .. "/" .. opts.cert .. ".key"
  end
  for _, w in ipairs(opts.args or {}) do
    words[#words + 1] = w
  end
  words[#words + 1] = url
  local _, out = shell.run(shell.join(words))
  local body, code = out:match("^(.*)\n(%d%d%d)$")
  return tonumber(code), body or out
end

local function decode(body)
  local ok, value = pcall(cjson.decode, body)
  assert(ok, "not JSON: " .. tostring(body))
  return value
end

local function kubeconfig(dir, pki, port, user)
  local path = dir .. "/kubeconfig-" .. user
  shell.write_file(path, ([[
apiVersion: v1
kind: Config
clusters:
- name: local
  cluster:
    server: https://127.0.0.1:%d
    certificate-authority: %s/serving-ca.crt
users:
- name: %s
  user:
    client-certificate: %s/%s.crt
    client-key: %s/%s.key
contexts:
- name: local
  context: {cluster: local, user: %s}
current-context: local
]]):format(port, pki, user, pki, user, pki, user, user))
  return path
end

describe("myapiserver end to end", function()
  local pki, srv

  setup(function()
    pki = server.pki()
    srv = server.start({ pki = pki, args = { "--max-request-body-bytes=1Ki" } })
  end)

  teardown(function()
    if srv then
      srv.cleanup()
    end
  end)

  describe("discovery", function()
    it("serves the APIGroupList at /apis", function()
      local code, body = curl(pki, srv.url("/apis"))
      assert.equal(200, code)
      local doc = decode(body)
      assert.equal("APIGroupList", doc.kind)
      assert.equal("infraops.michael.io", doc.groups[1].name)
      assert.equal("infraops.michael.io/v1", doc.groups[1].preferredVersion.groupVersion)
    end)

    it("serves the APIGroup", function()
      local code, body = curl(pki, srv.url("/apis/infraops.michael.io"))
      assert.equal(200, code)
      local doc = decode(body)
      assert.equal("APIGroup", doc.kind)
      assert.equal("v1", doc.versions[1].version)
    end)

    it("serves the APIResourceList with nodes and nodes/restart", function()
      local code, body = curl(pki, srv.url(GROUP_VERSION))
      assert.equal(200, code)
      local doc = decode(body)
      assert.equal("APIResourceList", doc.kind)
      local by_name = {}
      for _, r in ipairs(doc.resources) do
        by_name[r.name] = r
      end
      assert.equal("Node", by_name.nodes.kind)
      assert.is_false(by_name.nodes.namespaced)
      assert.same({ "get", "list" }, by_name.nodes.verbs)
      assert.same({ "create" }, by_name["nodes/restart"].verbs)
    end)

    it("answers aggregated discovery v2 when the aggregator asks for it", function()
      local v2 = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
      local _, out = shell.run(shell.join({ "curl", "-sS", "-D", "-", "-o", "/dev/null", "--cacert",
        pki .. "/serving-ca.crt", "--cert", pki .. "/admin.crt", "--key", pki .. "/admin.key",
        "-H", "Accept: " .. v2, srv.url("/apis") }))
      assert.matches("[Cc]ontent%-[Tt]ype: application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList", out)
    end)

    it("is read by kubectl get --raw", function()
      local config = kubeconfig(srv.dir, pki, srv.port, "admin")
      local out = shell.must(shell.join({ "kubectl", "--kubeconfig", config, "get", "--raw", GROUP_VERSION }))
      assert.equal("infraops.michael.io/v1", decode(out).groupVersion)
    end)

    it("gives kubectl kube's error line for an unknown path", function()
      local config = kubeconfig(srv.dir, pki, srv.port, "admin")
      local code, out = shell.run(shell.join({ "kubectl", "--kubeconfig", config, "get", "--raw", "/apis/nope" }))
      assert.is_not.equal(0, code)
      assert.matches("Error from server %(NotFound%): the server could not find the requested resource", out)
    end)
  end)

  describe("errors", function()
    it("answers an unknown path with a 404 Status", function()
      local code, body = curl(pki, srv.url("/no/such/path"))
      assert.equal(404, code)
      local status = decode(body)
      assert.equal("Status", status.kind)
      assert.equal("NotFound", status.reason)
      assert.equal(404, status.code)
    end)

    it("answers a wrong method with a 405 Status", function()
      local code, body = curl(pki, srv.url("/apis"), { args = { "-X", "DELETE" } })
      assert.equal(405, code)
      assert.equal("MethodNotAllowed", decode(body).reason)
    end)

    it("refuses a body over the limit with 413, by Content-Length", function()
      local code, body = curl(pki, srv.url(GROUP_VERSION), { args = { "--data-binary", string.rep("x", 2048) } })
      assert.equal(413, code)
      assert.equal(413, decode(body).code)
    end)

    it("refuses a chunked body over the limit with 413", function()
      local code, body = curl(pki, srv.url(GROUP_VERSION), {
        args = { "-H", "Transfer-Encoding: chunked", "--data-binary", string.rep("y", 4096) } })
      assert.equal(413, code)
      assert.equal("Status", decode(body).kind)
    end)

    it("refuses request headers over --max-header-bytes with 431", function()
      local code = curl(pki, srv.url("/apis"), { args = { "-H", "X-Big: " .. string.rep("z", 80 * 1024) } })
      assert.equal(431, code)
    end)

    it("reads a chunked body within the limit and answers the request", function()
      local code, body = curl(pki, srv.url("/apis"), {
        args = { "-H", "Transfer-Encoding: chunked", "--data-binary", '{"a":1}' } })
      assert.equal(405, code) -- read in full, then routed: POST is not allowed here
      assert.equal("MethodNotAllowed", decode(body).reason)
    end)
  end)

  describe("client identity", function()
    local function user_of(request_path)
      local entries = srv.entries("request", { path = request_path })
      return entries[#entries] and entries[#entries].user
    end

    it("names the user of a certificate from the client CA", function()
      assert.equal(200, (curl(pki, srv.url("/healthz?who=alice"), { cert = "alice" })))
      assert.equal("alice", user_of("/healthz"))
    end)

    it("follows a chain through an intermediate CA", function()
      assert.equal(200, (curl(pki, srv.url("/livez"), { cert = "bob", chain = true })))
      assert.equal("bob", user_of("/livez"))
    end)

    for _, case in ipairs({
      { cert = "rogue-alice", why = "from an unknown CA" },
      { cert = "expired", why = "expired" },
      { cert = "server-only", why = "without the client-auth purpose" },
    }) do
      it("treats a certificate " .. case.why .. " as none on health paths", function()
        assert.equal(200, (curl(pki, srv.url("/readyz"), { cert = case.cert })))
        assert.equal("system:anonymous", user_of("/readyz"))
      end)

      it("refuses a certificate " .. case.why .. " elsewhere with 401", function()
        local code, body = curl(pki, srv.url("/apis"), { cert = case.cert })
        assert.equal(401, code)
        assert.equal("Unauthorized", decode(body).reason)
      end)
    end

    it("does not take X-Remote-User from a client-CA certificate or from no certificate", function()
      local forged = { "-H", "X-Remote-User: mallory", "-H", "X-Remote-Group: system:masters" }
      assert.equal(200, (curl(pki, srv.url("/livez?forged=1"), { cert = "alice", args = forged })))
      assert.equal("alice", user_of("/livez"))
      assert.equal(200, (curl(pki, srv.url("/healthz?forged=2"), { anonymous = true, args = forged })))
      assert.equal("system:anonymous", user_of("/healthz"))
    end)
  end)

  describe("TLS", function()
    it("refuses TLS 1.1", function()
      local code = shell.run(shell.join({ "openssl", "s_client", "-connect", "127.0.0.1:" .. srv.port,
        "-tls1_1", "-CAfile", pki .. "/serving-ca.crt" }) .. " </dev/null")
      assert.is_not.equal(0, code)
    end)

    it("speaks TLS 1.3 and TLS 1.2", function()
      for _, version in ipairs({ "-tls1_3", "-tls1_2" }) do
        local code, out = shell.run(shell.join({ "openssl", "s_client", "-connect", "127.0.0.1:" .. srv.port,
          version, "-CAfile", pki .. "/serving-ca.crt", "-verify_return_error" }) .. " </dev/null")
        assert.equal(0, code, out)
      end
    end)
  end)
end)
