-- End to end: who may call myapiserver, through real TLS, with the fake
-- kube-apiserver as the cluster (ConfigMap, TokenReview, SubjectAccessReview,
-- and the aggregation proxy kubectl goes through).
local cjson = require("cjson")
local fake_kube = require("spec.helpers.fake_kube")
local server = require("spec.helpers.server")
local shell = require("spec.helpers.shell")

local GV = "/apis/infraops.michael.io/v1"
local FORGED = { "X-Remote-User: admin", "X-Remote-Group: system:masters" }
local SA = "system:serviceaccount:default:myapiserver"

local function rules()
  local list = fake_kube.myapiserver_rules({ users = { SA, "exec-sa" } })
  -- alice may see the group's discovery; nobody else has discovery rights here
  -- (default_rbac = false), so a denial comes from the RBAC table, not a default.
  list[#list + 1] = { subjects = { users = { "alice" } }, verbs = { "get" },
    nonResourceURLs = { "/apis", "/apis/*", "/api", "/api/*", "/version", "/probe" } }
  return list
end

-- curl straight to myapiserver: `cert` names a PKI pair (nil: none); extra curl words.
local function direct(pki, srv, path, cert, extra)
  local words = { "curl", "-sS", "--max-time", "15", "--cacert", pki .. "/serving-ca.crt",
    "-o", "-", "-w", "\n%{http_code}" }
  if cert then
    words[#words + 1] = "--cert"
    words[#words + 1] = pki .. "/" .. cert .. ".crt"
    words[#words + 1] = "--key"
    words[#words + 1] = pki .. "/" .. cert .. ".key"
  end
  for _, w in ipairs(extra or {}) do
    words[#words + 1] = w
  end
  words[#words + 1] = srv.url(path)
  local _, out = shell.run(shell.join(words))
  local body, code = out:match("^(.*)\n(%d%d%d)$")
  return tonumber(code), body or out
end

local function headers(list)
  local out = {}
  for _, h in ipairs(list) do
    out[#out + 1] = "-H"
    out[#out + 1] = h
  end
  return out
end

-- The SubjectAccessReviews the fake received since the last clear.
local function reviews(kube)
  local out = {}
  local path = "/apis/authorization.k8s.io/v1/subjectaccessreviews"
  for _, r in ipairs(kube.requests(function(r) return r.path == path end)) do
    out[#out + 1] = r
  end
  return out
end

local function last_user(srv, path)
  local entries = srv.entries("request", { path = path })
  return entries[#entries] and entries[#entries].user
end

describe("identity end to end", function()
  local pki, kube, srv

  setup(function()
    pki = server.pki()
    kube = fake_kube.start({ pki = pki, config = {
      default_rbac = false,
      rbac = rules(),
      tokens = {
        ["sa-token"] = { username = SA, groups = { "system:serviceaccounts" } },
        ["bob-token"] = { username = "bob", groups = { "dev" } },
      },
    } })
    -- Trust comes from the cluster: no CA flags, the ConfigMap is re-read every second.
    srv = server.start({ pki = pki, kubeconfig = kube.kubeconfig({ token = "sa-token" }),
      client_ca = false, requestheader_ca = false, args = { "--authentication-lookup-interval=1s" } })
    kube.set_backend(srv.port)
  end)

  teardown(function()
    if srv then
      srv.cleanup()
    end
    if kube then
      kube.stop()
    end
  end)

  before_each(function()
    kube.clear_requests()
  end)

  describe("through the aggregator, with kubectl", function()
    it("serves a permitted user, whose name reaches the SubjectAccessReview", function()
      local doc = kube.kubectl_json("alice", { "get", "--raw", GV })
      assert.equal("infraops.michael.io/v1", doc.groupVersion)
      assert.equal("alice", last_user(srv, GV))
      local sar = reviews(kube)
      assert.is_true(#sar >= 1)
      local spec = sar[#sar].body.spec
      assert.equal("alice", spec.user)
      assert.same({ path = GV, verb = "get" }, spec.nonResourceAttributes)
      assert.equal(SA, sar[#sar].user.username) -- asked with the server's own credentials
    end)

    it("prints kube's Forbidden line for another user", function()
      local code, out = kube.kubectl("bob", { "get", "--raw", GV })
      assert.not_equal(0, code)
      local expected = ('Error from server (Forbidden): forbidden: User "bob" cannot get path "%s"'):format(GV)
      assert.is_truthy(out:find(expected, 1, true), out)
    end)
  end)

  describe("front-proxy headers", function()
    local AS_ALICE = headers({ "X-Remote-User: alice", "X-Remote-Group: dev", "X-Remote-Group: ops",
      "X-Remote-Extra-Scopes: read" })

    it("are taken from the aggregator's certificate, and the user reaches the review", function()
      local code = direct(pki, srv, GV, "front-proxy-client", AS_ALICE)
      assert.equal(200, code)
      assert.equal("alice", last_user(srv, GV))
    end)

    it("come with every group and extra into the review", function()
      -- other groups and extras than above: a new cache key, so a new review
      direct(pki, srv, GV, "front-proxy-client", headers({ "X-Remote-User: alice", "X-Remote-Group: dev",
        "X-Remote-Group: qa", "X-Remote-Extra-Scopes: read", "X-Remote-Extra-Scopes: write",
        "X-Remote-Extra-Example.com%2fteam: sre" }))
      local sar = reviews(kube)
      assert.equal(1, #sar)
      local spec = sar[1].body.spec
      assert.same({ "dev", "qa", "system:authenticated" }, spec.groups)
      assert.same({ "read", "write" }, spec.extra.scopes)
      assert.same({ "sre" }, spec.extra["example.com/team"])
    end)

    it("are not trusted from a client-CA certificate", function()
      local code = direct(pki, srv, GV, "alice", headers(FORGED))
      assert.equal(200, code) -- alice herself is allowed
      assert.equal("alice", last_user(srv, GV))
    end)

    it("are not trusted without a certificate", function()
      local code, body = direct(pki, srv, GV, nil, headers(FORGED))
      assert.equal(403, code)
      assert.matches('User "system:anonymous"', cjson.decode(body).message)
    end)

    it("are refused with the allowed CN from an unknown CA", function()
      local code, body = direct(pki, srv, GV, "rogue-front-proxy", headers(FORGED))
      assert.equal(401, code)
      assert.equal("Unauthorized", cjson.decode(body).reason)
    end)

    it("are refused from the front-proxy CA with a CN not in the allowed names", function()
      local code = direct(pki, srv, GV, "front-proxy-other", headers(FORGED))
      assert.equal(401, code)
    end)
  end)

  describe("client certificates", function()
    it("refuse an expired certificate with 401", function()
      assert.equal(401, (direct(pki, srv, GV, "expired")))
    end)
  end)

  describe("authorization", function()
    it("answers a denied review with 403 worded as kube-apiserver words it", function()
      local as_bob = headers({ "X-Remote-User: bob", "X-Remote-Group: dev" })
      table.insert(as_bob, "-X")
      table.insert(as_bob, "POST")
      local code, body = direct(pki, srv, GV .. "/nodes/n1/restart", "front-proxy-client", as_bob)
      assert.equal(403, code)
      local status = cjson.decode(body)
      assert.equal("Forbidden", status.reason)
      assert.equal('nodes.infraops.michael.io "n1" is forbidden: User "bob" cannot create resource "nodes/restart" '
        .. 'in API group "infraops.michael.io" at the cluster scope', status.message)
      assert.same({ name = "n1", group = "infraops.michael.io", kind = "nodes" }, status.details)
    end)

    it("denies with 503 when the SubjectAccessReview fails, and allows nothing", function()
      kube.control("PUT", "/faults", { ["create subjectaccessreviews"] = { status = 500 } })
      local code, body = direct(pki, srv, GV, "front-proxy-client", headers({ "X-Remote-User: dana" }))
      assert.equal(503, code)
      assert.equal("ServiceUnavailable", cjson.decode(body).reason)
      kube.control("PUT", "/faults", { ["create subjectaccessreviews"] = { drop = true } })
      code = direct(pki, srv, GV, "front-proxy-client", headers({ "X-Remote-User: erin" }))
      assert.equal(503, code)
      kube.control("PUT", "/faults", {})
    end)
  end)

  describe("bearer tokens", function()
    it("are accepted through a TokenReview", function()
      local code = direct(pki, srv, GV, nil, headers({ "Authorization: Bearer bob-token" }))
      assert.equal(403, code) -- bob is authenticated, but has no rights here
      assert.equal("bob", last_user(srv, GV))
      local tr = kube.requests(function(r) return r.path == "/apis/authentication.k8s.io/v1/tokenreviews" end)
      assert.equal(1, #tr)
    end)

    it("are refused with 401 when the TokenReview says no", function()
      local code, body = direct(pki, srv, GV, nil, headers({ "Authorization: Bearer not-a-token" }))
      assert.equal(401, code)
      assert.equal("Unauthorized", cjson.decode(body).reason)
      for _, e in ipairs(srv.log()) do
        assert.is_nil(cjson.encode(e):find("not-a-token", 1, true), "a token reached the log")
      end
    end)
  end)

  describe("the authentication ConfigMap", function()
    it("rotates the client CA without a restart", function()
      local original = kube.control("GET", "/configmap")
      original = original.data or original
      assert.equal(401, (direct(pki, srv, "/probe", "carol"))) -- client-ca-2 is not trusted yet
      local rotated = {}
      for k, v in pairs(original) do
        rotated[k] = v
      end
      rotated["client-ca-file"] = shell.read_file(pki .. "/client-ca-2.crt")
      kube.control("PUT", "/configmap", rotated)
      local code = shell.wait_for(function()
        local c = direct(pki, srv, "/probe", "carol")
        return c ~= 401 and c
      end, 10, 0.2)
      local carol_seen_as = last_user(srv, "/probe")
      local alice_code = direct(pki, srv, "/probe", "alice")
      kube.control("PUT", "/configmap", original)
      assert.equal(403, code) -- carol is now authenticated (and has no rights)
      assert.equal("carol", carol_seen_as)
      assert.equal(401, alice_code) -- the old CA is gone
      assert.is_truthy(shell.wait_for(function() -- restored: alice is back, authorized, and /probe is no route
        return direct(pki, srv, "/probe", "alice") == 404
      end, 10, 0.2))
    end)
  end)
end)

describe("the server's own kubeconfig", function()
  local pki, kube

  setup(function()
    pki = server.pki()
    kube = fake_kube.start({ pki = pki, config = {
      default_rbac = false,
      rbac = rules(),
      tokens = { ["exec-token"] = { username = "exec-sa" } },
    } })
  end)

  teardown(function()
    kube.stop()
  end)

  -- Starts a server with this kubeconfig, asks as alice, returns who asked the review.
  local function reviewer_with(kubeconfig)
    local srv = server.start({ pki = pki, kubeconfig = kubeconfig, client_ca = false,
      requestheader_ca = false })
    kube.clear_requests()
    local code = direct(pki, srv, GV, "alice")
    srv.cleanup()
    local sar = reviews(kube)
    return code, sar[#sar] and sar[#sar].user.username
  end

  it("works with a client certificate", function()
    local code, who = reviewer_with(kube.kubeconfig("admin"))
    assert.equal(200, code)
    assert.equal("admin", who)
  end)

  it("works with an exec credential plugin", function()
    local dir = shell.temp_dir()
    local plugin = dir .. "/get-token"
    shell.write_file(plugin, table.concat({
      "#!/bin/sh",
      "# prints an ExecCredential, as aws eks get-token does",
      'test -n "$KUBERNETES_EXEC_INFO" || exit 3',
      "cat <<'EOT'",
      '{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential",'
        .. '"status":{"token":"exec-token","expirationTimestamp":"2099-01-01T00:00:00Z"}}',
      "EOT",
    }, "\n") .. "\n")
    shell.must("chmod +x " .. shell.quote(plugin))
    local kubeconfig = dir .. "/kubeconfig"
    shell.write_file(kubeconfig, table.concat({
      "apiVersion: v1",
      "kind: Config",
      "clusters:",
      "- name: fake",
      "  cluster:",
      "    server: " .. kube.api_url,
      "    certificate-authority: " .. pki .. "/serving-ca.crt",
      "users:",
      "- name: plugin",
      "  user:",
      "    exec:",
      "      apiVersion: client.authentication.k8s.io/v1",
      "      command: " .. plugin,
      "      interactiveMode: Never",
      "contexts:",
      "- name: fake",
      "  context: {cluster: fake, user: plugin}",
      "current-context: fake",
    }, "\n") .. "\n")
    local code, who = reviewer_with(kubeconfig)
    shell.remove_tree(dir)
    assert.equal(200, code)
    assert.equal("exec-sa", who)
  end)

  it("refuses to start when the authentication ConfigMap cannot be read", function()
    local dir = shell.temp_dir()
    local ok, err = pcall(server.start, { pki = pki, kubeconfig = kube.kubeconfig({ token = "nobody" }),
      client_ca = false, requestheader_ca = false })
    shell.remove_tree(dir)
    assert.is_false(ok)
    assert.matches("extension%-apiserver%-authentication", err)
  end)
end)
