-- The fake kube-apiserver (spec/fakes/kube_apiserver.py) answers like the real one:
-- kubectl is the client wherever it can be, and the lines it prints are kube's.
local cjson = require("cjson")
local fake_kube = require("spec.helpers.fake_kube")
local server = require("spec.helpers.server")
local shell = require("spec.helpers.shell")

local GV = "/apis/infraops.michael.io/v1"
local SA = "system:serviceaccount:default:myapiserver"

local NODES = {
  { name = "n1", labels = { zone = "a", tier = "web" }, providerID = "aws:///us-east-1a/i-0001" },
  { name = "n2", labels = { zone = "a" } },
  { name = "n3", labels = { zone = "b", tier = "db" } },
  { name = "n4", labels = { zone = "b", ["node-role.kubernetes.io/control-plane"] = "" } },
  { name = "n5" },
}

local TOKENS = {
  ["sa-token"] = { username = SA, uid = "sa-uid", groups = { "system:serviceaccounts",
    "system:serviceaccounts:default" } },
  ["tina-token"] = { username = "tina", uid = "tina-uid", groups = { "dev", "team a" },
    extra = { ["acme.com/team"] = { "blue" }, scopes = { "read", "write" } } },
  ["carol-token"] = { username = "carol" },
}

local function rules()
  local out = fake_kube.myapiserver_rules({ users = { SA } })
  out[#out + 1] = { name = "alice-nodes", subjects = { users = { "alice" } }, verbs = { "get", "list" },
    apiGroups = { "", "infraops.michael.io" }, resources = { "nodes" } }
  out[#out + 1] = { name = "alice-restart", subjects = { users = { "alice" } }, verbs = { "create" },
    apiGroups = { "infraops.michael.io" }, resources = { "nodes/restart" }, resourceNames = { "n1" } }
  return out
end

-- The stand-in aggregated server: serving cert, requires a front-proxy-ca client cert, and
-- answers every request with an APIResourceList (so kubectl discovery works) plus an `echo`
-- of what it received: method, path, header lines in order, body, peer CN, connection id.
local ECHO_BACKEND = [[
import http.server, itertools, json, os, ssl, sys, threading, time
ids = itertools.count(1)
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def setup(self):
        super().setup(); self.conn_id = next(ids)
    def log_message(self, *a): pass
    def do_ANY(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if "redirect" in self.path:
            self.send_response(302); self.send_header("Location", "/elsewhere")
            self.send_header("Content-Length", "0"); self.end_headers(); return
        if "slow" in self.path:
            time.sleep(3)
        cn = [v for rdn in self.connection.getpeercert()["subject"] for k, v in rdn if k == "commonName"]
        out = json.dumps({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "infraops.michael.io/v1",
            "resources": [{"name": "nodes", "singularName": "node", "namespaced": False, "kind": "Node",
                           "verbs": ["get", "list"]},
                          {"name": "nodes/restart", "singularName": "", "namespaced": False,
                           "kind": "RestartOptions", "verbs": ["create"]}],
            "echo": {"method": self.command, "path": self.path, "headers": [[k, v] for k, v in self.headers.items()],
                     "body": body.decode(), "peer": cn, "conn": self.conn_id}}).encode()
        self.send_response(200); self.send_header("Content-Type", "application/json")
        self.send_header("Access-Control-Allow-Origin", "*"); self.send_header("X-Backend", "echo")
        self.send_header("Content-Length", str(len(out))); self.end_headers(); self.wfile.write(out)
    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_ANY
class S(http.server.ThreadingHTTPServer):
    daemon_threads = True
    def finish_request(self, request, addr):
        try:
            tls = ctx.wrap_socket(request, server_side=True)
        except OSError:
            return
        with tls:
            super().finish_request(tls, addr)
pki = sys.argv[1]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(pki + "/serving.crt", pki + "/serving.key")
ctx.load_verify_locations(pki + "/front-proxy-ca.crt")
ctx.verify_mode = ssl.CERT_REQUIRED
srv = S(("127.0.0.1", 0), H)
print(json.dumps({"port": srv.server_address[1], "pid": os.getpid()}), flush=True)
threading.Timer(600, lambda: os._exit(0)).start()
srv.serve_forever()
]]

local function start_echo(pki)
  local dir = shell.temp_dir()
  shell.write_file(dir .. "/echo.py", ECHO_BACKEND)
  shell.spawn(("%s %s %s >%s 2>&1"):format(shell.quote(fake_kube.python), shell.quote(dir .. "/echo.py"),
    shell.quote(pki), shell.quote(dir .. "/out")))
  local info = shell.wait_for(function()
    local line = (shell.read_file(dir .. "/out") or ""):match("^(%b{})")
    return line and cjson.decode(line)
  end, 10, 0.02)
  assert(info, "echo backend did not start: " .. tostring(shell.read_file(dir .. "/out")))
  info.stop = function()
    os.execute(("kill %d 2>/dev/null"):format(info.pid))
    shell.remove_tree(dir)
  end
  return info
end

local function names(list)
  local out = {}
  for i, item in ipairs(list.items) do
    out[i] = item.metadata.name
  end
  return out
end

-- Header values the backend received under `name` (case-insensitive), in order.
local function header_values(echo, name)
  local out = {}
  for _, h in ipairs(echo.headers) do
    if h[1]:lower() == name:lower() then
      out[#out + 1] = h[2]
    end
  end
  return out
end

local function has_header(echo, prefix)
  for _, h in ipairs(echo.headers) do
    if h[1]:lower():sub(1, #prefix) == prefix:lower() then
      return true
    end
  end
  return false
end

local function contains(haystack, needle)
  return haystack:find(needle, 1, true) ~= nil
end

describe("fake kube-apiserver", function()
  local pki, kube, echo, tmp

  local function write(name, text)
    local path = tmp .. "/" .. name
    shell.write_file(path, text)
    return path
  end

  setup(function()
    pki = server.pki()
    tmp = shell.temp_dir()
    echo = start_echo(pki)
    kube = fake_kube.start({ pki = pki, config = { nodes = NODES, tokens = TOKENS, rbac = rules() } })
    kube.set_backend(echo.port)
  end)

  teardown(function()
    if kube then
      kube.stop()
    end
    if echo then
      echo.stop()
    end
    shell.remove_tree(tmp)
  end)

  before_each(function()
    kube.control("PUT", "/faults", {})
    kube.set_backend({ port = echo.port, available = true, server_name = "infraops-service.default.svc",
      cert = pki .. "/front-proxy-client.crt", key = pki .. "/front-proxy-client.key",
      timeouts = { discovery = 5, default = 60 } })
  end)

  describe("core API", function()
    it("gives kubectl get nodes kube's node table", function()
      local code, out = kube.kubectl("alice", { "get", "nodes" })
      assert.equal(0, code, out)
      assert.matches("NAME%s+STATUS%s+ROLES%s+AGE%s+VERSION", out)
      assert.matches("\nn4%s+Ready%s+control%-plane%s+%w+%s+v1%.33%.1", out)
      assert.matches("\nn5%s+Ready%s+<none>", out)
    end)

    it("lists and gets nodes as NodeList and Node", function()
      local list = kube.kubectl_json("alice", { "get", "--raw", "/api/v1/nodes" })
      assert.equal("NodeList", list.kind)
      assert.same({ "n1", "n2", "n3", "n4", "n5" }, names(list))
      assert.matches("^%d+$", list.metadata.resourceVersion)
      assert.is_nil(list.items[1].kind) -- list items carry no kind, as kube sends them
      local node = kube.kubectl_json("alice", { "get", "--raw", "/api/v1/nodes/n1" })
      assert.equal("Node", node.kind)
      assert.equal("aws:///us-east-1a/i-0001", node.spec.providerID)
      assert.truthy(node.metadata.uid and node.metadata.creationTimestamp)
    end)

    it("pages with limit and an opaque continue token", function()
      local page = kube.kubectl_json("alice", { "get", "--raw", "/api/v1/nodes?limit=2" })
      assert.same({ "n1", "n2" }, names(page))
      assert.equal(3, page.metadata.remainingItemCount)
      local token = assert(page.metadata.continue)
      page = kube.kubectl_json("alice", { "get", "--raw", "/api/v1/nodes?limit=2&continue=" .. token })
      assert.same({ "n3", "n4" }, names(page))
      page = kube.kubectl_json("alice", { "get", "--raw", "/api/v1/nodes?limit=2&continue=" .. page.metadata.continue })
      assert.same({ "n5" }, names(page))
      assert.is_nil(page.metadata.continue)
      local code, out = kube.kubectl("alice", { "get", "--raw", "/api/v1/nodes?limit=2&continue=bogus!" })
      assert.not_equal(0, code)
      assert.matches("Error from server %(BadRequest%): continue key is not valid", out)
    end)

    it("filters with label and field selectors", function()
      local function select(query)
        return names(kube.kubectl_json("alice", { "get", "--raw", "/api/v1/nodes?" .. query }))
      end
      assert.same({ "n1", "n2" }, select("labelSelector=zone%3Da"))
      assert.same({ "n3", "n4", "n5" }, select("labelSelector=zone!%3Da"))
      assert.same({ "n1", "n3" }, select("labelSelector=tier"))
      assert.same({ "n2", "n4", "n5" }, select("labelSelector=!tier"))
      assert.same({ "n3" }, select("labelSelector=zone%3Db,tier"))
      assert.same({ "n3" }, select("fieldSelector=metadata.name%3Dn3"))
      local code, out = kube.kubectl("alice", { "get", "--raw", "/api/v1/nodes?fieldSelector=spec.foo%3Dx" })
      assert.not_equal(0, code)
      assert.matches("Error from server %(BadRequest%): field label not supported: spec.foo", out)
    end)

    it("answers a missing node with kube's NotFound", function()
      local code, out = kube.kubectl("alice", { "get", "node", "nope" })
      assert.not_equal(0, code)
      assert.matches('Error from server %(NotFound%): nodes "nope" not found', out)
      local status
      code, status = kube.curl("alice", "/api/v1/nodes/nope")
      assert.equal(404, code)
      assert.same({ kind = "Status", apiVersion = "v1", metadata = {}, status = "Failure",
        message = 'nodes "nope" not found', reason = "NotFound", details = { name = "nope", kind = "nodes" },
        code = 404 }, cjson.decode(status))
    end)

    it("publishes the authentication ConfigMap for this PKI", function()
      local cm = kube.kubectl_json({ token = "sa-token" }, { "get", "--raw",
        "/api/v1/namespaces/kube-system/configmaps/extension-apiserver-authentication" })
      assert.equal("ConfigMap", cm.kind)
      assert.equal(shell.read_file(pki .. "/client-ca.crt"), cm.data["client-ca-file"])
      assert.equal(shell.read_file(pki .. "/front-proxy-ca.crt"), cm.data["requestheader-client-ca-file"])
      assert.equal('["front-proxy-client"]', cm.data["requestheader-allowed-names"])
      assert.equal('["X-Remote-User"]', cm.data["requestheader-username-headers"])
      assert.equal('["X-Remote-Group"]', cm.data["requestheader-group-headers"])
      assert.equal('["X-Remote-Extra-"]', cm.data["requestheader-extra-headers-prefix"])
      assert.equal("[]", cm.data["requestheader-uid-headers"])
    end)

    it("serves discovery, answering /apis/infraops.michael.io itself", function()
      kube.clear_requests()
      local groups = kube.kubectl_json("alice", { "get", "--raw", "/apis" })
      local seen = {}
      for _, g in ipairs(groups.groups) do
        seen[g.name] = g.preferredVersion.groupVersion
      end
      assert.equal("infraops.michael.io/v1", seen["infraops.michael.io"])
      assert.equal("coordination.k8s.io/v1", seen["coordination.k8s.io"])
      assert.equal("authorization.k8s.io/v1", seen["authorization.k8s.io"])
      local group = kube.kubectl_json("alice", { "get", "--raw", "/apis/infraops.michael.io" })
      assert.equal("APIGroup", group.kind)
      for _, r in ipairs(kube.requests()) do
        assert.is_nil(r.upstream, "proxied " .. r.path)
      end
      assert.equal("APIVersions", kube.kubectl_json("alice", { "get", "--raw", "/api" }).kind)
    end)

    it("answers unknown paths with a 404 Status", function()
      local code, out = kube.kubectl("admin", { "get", "--raw", "/apis/nope.example.com/v1/things" })
      assert.not_equal(0, code)
      assert.matches("Error from server %(NotFound%): the server could not find the requested resource", out)
      local status
      code, status = kube.curl("admin", "/api/v1/pods")
      assert.equal(404, code)
      assert.equal("NotFound", cjson.decode(status).reason)
    end)

    it("watches the authentication ConfigMap and streams changes", function()
      local out = tmp .. "/watch.out"
      shell.spawn(shell.join({ "curl", "-sN", "--max-time", "10", "--cacert", pki .. "/serving-ca.crt",
        "-H", "Authorization: Bearer sa-token", "-o", out, kube.api_url .. "/api/v1/namespaces/kube-system/"
        .. "configmaps?watch=1&timeoutSeconds=4&fieldSelector=metadata.name%3Dextension-apiserver-authentication" }))
      assert.truthy(shell.wait_for(function()
        return contains(shell.read_file(out) or "", '"ADDED"')
      end, 5))
      local cm = kube.control("GET", "/configmap")
      cm.data["requestheader-allowed-names"] = "[]"
      kube.control("PUT", "/configmap", cm.data)
      local stream = shell.wait_for(function()
        local text = shell.read_file(out) or ""
        return contains(text, '"MODIFIED"') and text
      end, 5)
      assert.truthy(stream)
      local last = cjson.decode(stream:match("([^\n]+)\n?$"))
      assert.equal("[]", last.object.data["requestheader-allowed-names"])
      cm.data["requestheader-allowed-names"] = '["front-proxy-client"]'
      kube.control("PUT", "/configmap", cm.data)
    end)
  end)

  describe("authentication", function()
    it("answers a bad token with 401 as kube does", function()
      local code, out = kube.kubectl({ token = "wrong" }, { "get", "--raw", "/api/v1/nodes" })
      assert.not_equal(0, code)
      assert.matches("error: You must be logged in to the server %(Unauthorized%)", out)
      local body
      code, body = kube.curl({ token = "wrong" }, "/version")
      assert.equal(401, code)
      assert.same({ kind = "Status", apiVersion = "v1", metadata = {}, status = "Failure", message = "Unauthorized",
        reason = "Unauthorized", code = 401 }, cjson.decode(body))
    end)

    it("knows token users, client-cert users (CN, O) and chains through an intermediate", function()
      local tina = kube.kubectl_json({ token = "tina-token" }, { "auth", "whoami", "-o", "json" }).status.userInfo
      assert.equal("tina", tina.username)
      assert.same({ "dev", "team a", "system:authenticated" }, tina.groups)
      local alice = kube.kubectl_json("alice", { "auth", "whoami", "-o", "json" }).status.userInfo
      assert.same({ "dev", "ops", "system:authenticated" }, alice.groups)
      assert.matches("^X509SHA256=%x+$", alice.extra["authentication.kubernetes.io/credential-id"][1])
      local bob = kube.kubectl_json("bob", { "auth", "whoami", "-o", "json" }).status.userInfo
      assert.equal("bob", bob.username)
    end)

    it("treats requests without credentials as system:anonymous", function()
      local code, body = kube.curl("anonymous", "/version")
      assert.equal(200, code)
      assert.equal("1", cjson.decode(body).major)
      code, body = kube.curl("anonymous", "/api/v1/nodes")
      assert.equal(403, code)
      assert.equal('nodes is forbidden: User "system:anonymous" cannot list resource "nodes" in API group "" '
        .. "at the cluster scope", cjson.decode(body).message)
      code, body = kube.curl("anonymous", "/apis")
      assert.equal(403, code)
      assert.equal('forbidden: User "system:anonymous" cannot get path "/apis"', cjson.decode(body).message)
    end)

    it("refuses a client certificate from an unknown CA", function()
      local code = kube.curl({ cert = pki .. "/rogue-alice.crt", key = pki .. "/rogue-alice.key" }, "/version")
      assert.is_nil(code)
    end)
  end)

  describe("authorization", function()
    it("words Forbidden exactly as kube does", function()
      local code, out = kube.kubectl("bob", { "get", "node", "n1" })
      assert.not_equal(0, code)
      assert.truthy(contains(out, 'Error from server (Forbidden): nodes "n1" is forbidden: User "bob" cannot get '
        .. 'resource "nodes" in API group "" at the cluster scope'), out)
      local body
      code, body = kube.curl("bob", GV .. "/nodes/n1/restart", { method = "POST", body = "{}" })
      assert.equal(403, code)
      local status = cjson.decode(body)
      assert.equal('nodes.infraops.michael.io "n1" is forbidden: User "bob" cannot create resource "nodes/restart" '
        .. 'in API group "infraops.michael.io" at the cluster scope', status.message)
      assert.same({ name = "n1", group = "infraops.michael.io", kind = "nodes" }, status.details)
    end)

    it("lets system:masters impersonate and refuses others", function()
      local code, out = kube.kubectl("admin", { "get", "node", "n1", "--as", "bob" })
      assert.not_equal(0, code)
      assert.truthy(contains(out, 'User "bob" cannot get resource "nodes"'), out)
      code, out = kube.kubectl("admin", { "get", "node", "n1", "--as", "alice" })
      assert.equal(0, code, out)
      code, out = kube.kubectl("alice", { "get", "nodes", "--as", "bob" })
      assert.not_equal(0, code)
      assert.truthy(contains(out, 'Error from server (Forbidden): users "bob" is forbidden: User "alice" cannot '
        .. 'impersonate resource "users" in API group "" at the cluster scope'), out)
    end)

    it("answers kubectl auth can-i from the RBAC table", function()
      local function can(user, name)
        local code, out = kube.kubectl("admin", { "auth", "can-i", "create", "nodes.infraops.michael.io/" .. name,
          "--subresource", "restart", "--as", user })
        return code, out
      end
      local code, out = can("alice", "n1")
      assert.equal(0, code, out)
      assert.matches("yes", out)
      code, out = can("alice", "n2")
      assert.equal(1, code, out)
      assert.matches("no", out)
      code = can("bob", "n1")
      assert.equal(1, code)
    end)

    it("evaluates SubjectAccessReviews for callers allowed to create them", function()
      local function sar(user, groups, attrs, caller)
        local spec = { user = user, groups = groups }
        spec[attrs.path and "nonResourceAttributes" or "resourceAttributes"] = attrs
        local body = cjson.encode({ apiVersion = "authorization.k8s.io/v1", kind = "SubjectAccessReview",
          spec = spec })
        local code, answer = kube.curl({ token = caller or "sa-token" },
          "/apis/authorization.k8s.io/v1/subjectaccessreviews", { method = "POST", body = body })
        return code, cjson.decode(answer)
      end
      local restart = { verb = "create", group = "infraops.michael.io", version = "v1", resource = "nodes",
        subresource = "restart", name = "n1" }
      local code, review = sar("alice", { "dev", "system:authenticated" }, restart)
      assert.equal(201, code)
      assert.is_true(review.status.allowed)
      assert.equal('RBAC: allowed by ClusterRoleBinding "alice-restart" of ClusterRole "alice-restart" to User "alice"',
        review.status.reason)
      restart.name = "n2"
      assert.is_false(select(2, sar("alice", { "dev" }, restart)).status.allowed)
      assert.is_true(select(2, sar("someone", { "system:masters" }, restart)).status.allowed)
      local discovery = { path = GV, verb = "get" }
      assert.is_true(select(2, sar("x", { "system:authenticated" }, discovery)).status.allowed)
      assert.is_false(select(2, sar("x", {}, discovery)).status.allowed)
      local cm = { verb = "get", version = "v1", resource = "configmaps", namespace = "kube-system",
        name = "extension-apiserver-authentication" }
      assert.equal('RBAC: allowed by RoleBinding "extension-apiserver-authentication-reader/kube-system" of Role '
        .. '"extension-apiserver-authentication-reader" to ServiceAccount "myapiserver/default"',
        select(2, sar(SA, {}, cm)).status.reason)
      cm.namespace = "default"
      assert.is_false(select(2, sar(SA, {}, cm)).status.allowed)
      code, review = sar("alice", {}, restart, "carol-token")
      assert.equal(403, code)
      assert.equal('subjectaccessreviews.authorization.k8s.io is forbidden: User "carol" cannot create resource '
        .. '"subjectaccessreviews" in API group "authorization.k8s.io" at the cluster scope', review.message)
    end)

    it("reviews tokens from the token table", function()
      local function review(token, caller)
        local code, body = kube.curl({ token = caller or "sa-token" }, "/apis/authentication.k8s.io/v1/tokenreviews",
          { method = "POST", body = cjson.encode({ apiVersion = "authentication.k8s.io/v1", kind = "TokenReview",
            spec = { token = token } }) })
        return code, cjson.decode(body)
      end
      local code, tr = review("tina-token")
      assert.equal(201, code)
      assert.is_true(tr.status.authenticated)
      assert.same({ username = "tina", uid = "tina-uid", groups = { "dev", "team a", "system:authenticated" },
        extra = TOKENS["tina-token"].extra }, tr.status.user)
      code, tr = review("nope")
      assert.equal(201, code)
      assert.is_nil(tr.status.authenticated)
      assert.truthy(tr.status.error)
      code, tr = review("tina-token", "carol-token")
      assert.equal(403, code)
      assert.equal("Forbidden", tr.reason)
    end)
  end)

  describe("leases and events", function()
    local LEASES = "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases"

    it("does optimistic concurrency on leases", function()
      local sa = { token = "sa-token" }
      local lease = { apiVersion = "coordination.k8s.io/v1", kind = "Lease", metadata = { name = "restart-n1" },
        spec = { holderIdentity = "replica-a", leaseDurationSeconds = 30 } }
      local lease_file = write("lease.json", cjson.encode(lease))
      local created = kube.kubectl_json(sa, { "create", "--raw", LEASES, "-f", lease_file })
      assert.equal("Lease", created.kind)
      local rv = tonumber(created.metadata.resourceVersion)
      local code, out = kube.kubectl(sa, { "create", "--raw", LEASES, "-f", tmp .. "/lease.json" })
      assert.not_equal(0, code)
      assert.truthy(contains(out, 'Error from server (AlreadyExists): leases.coordination.k8s.io "restart-n1" '
        .. "already exists"), out)

      created.spec.holderIdentity = "replica-b"
      local updated = kube.kubectl_json(sa, { "replace", "--raw", LEASES .. "/restart-n1", "-f",
        write("lease2.json", cjson.encode(created)) })
      assert.equal("replica-b", updated.spec.holderIdentity)
      assert.is_true(tonumber(updated.metadata.resourceVersion) > rv)
      code, out = kube.kubectl(sa, { "replace", "--raw", LEASES .. "/restart-n1", "-f", tmp .. "/lease2.json" })
      assert.not_equal(0, code)
      assert.truthy(contains(out, 'Error from server (Conflict): Operation cannot be fulfilled on '
        .. 'leases.coordination.k8s.io "restart-n1": the object has been modified; please apply your changes to '
        .. "the latest version and try again"), out)

      local status = kube.kubectl_json(sa, { "delete", "--raw", LEASES .. "/restart-n1" })
      assert.equal("Success", status.status)
      code, out = kube.kubectl(sa, { "get", "--raw", LEASES .. "/restart-n1" })
      assert.not_equal(0, code)
      assert.truthy(contains(out, 'Error from server (NotFound): leases.coordination.k8s.io "restart-n1" not found'))
    end)

    it("lose_answer: acts on the write, then closes the connection without a byte of answer", function()
      local sa = { token = "sa-token" }
      local body = cjson.encode({ apiVersion = "coordination.k8s.io/v1", kind = "Lease",
        metadata = { name = "restart-lost" }, spec = { holderIdentity = "replica-a" } })
      kube.clear_requests()
      kube.control("PUT", "/faults", { ["create leases"] = { lose_answer = true, times = 1 } })
      local code, out = kube.curl(sa, LEASES, { method = "POST", body = body })
      assert.is_nil(code)
      assert.matches("Empty reply from server", out)
      assert.equal("answer lost (201)", kube.requests()[1].status)
      local stored = kube.kubectl_json(sa, { "get", "--raw", LEASES .. "/restart-lost" })
      assert.equal("replica-a", stored.spec.holderIdentity) -- it was created
      code = kube.curl(sa, LEASES, { method = "POST", body = body }) -- the fault fired once
      assert.equal(409, code)
      kube.kubectl_json(sa, { "delete", "--raw", LEASES .. "/restart-lost" })
    end)

    it("stores Events and validates their namespace", function()
      local sa = { token = "sa-token" }
      local event = { apiVersion = "v1", kind = "Event", metadata = { generateName = "n1." },
        involvedObject = { kind = "Node", name = "n1", apiVersion = "v1" }, reason = "RestartRequested",
        message = "restart of n1 requested", type = "Normal" }
      local created = kube.kubectl_json(sa, { "create", "--raw", "/api/v1/namespaces/default/events", "-f",
        write("event.json", cjson.encode(event)) })
      assert.matches("^n1%.%w+$", created.metadata.name)
      local listed = kube.kubectl_json(sa, { "get", "--raw", "/api/v1/namespaces/default/events" })
      assert.equal("EventList", listed.kind)
      assert.equal("RestartRequested", listed.items[#listed.items].reason)
      local stored = kube.control("GET", "/events")
      assert.equal(created.metadata.uid, stored[#stored].metadata.uid)
      local code, out = kube.kubectl(sa, { "create", "--raw", "/api/v1/namespaces/kube-system/events", "-f",
        tmp .. "/event.json" })
      assert.not_equal(0, code)
      -- kubectl's own wording for Invalid (it lists details.causes)
      assert.matches('The Event "n1%.%w+" is invalid: involvedObject%.namespace: Invalid value: "": does not '
        .. "match event%.namespace", out)
    end)
  end)

  describe("aggregation proxy", function()
    local function last_echo(user, path, req)
      local code, body = kube.curl(user, path, req)
      assert.equal(200, code, body)
      return cjson.decode(body).echo
    end

    it("sends the backend the user as X-Remote-* headers, one line per group", function()
      local e = kube.kubectl_json("alice", { "get", "--raw", GV }).echo
      assert.same({ "front-proxy-client" }, e.peer)
      assert.same({ "alice" }, header_values(e, "X-Remote-User"))
      assert.same({ "dev", "ops", "system:authenticated" }, header_values(e, "X-Remote-Group"))
      local der = shell.must("openssl x509 -in " .. shell.quote(pki .. "/alice.crt") .. " -outform DER | sha256sum")
      assert.same({ "X509SHA256=" .. der:match("%x+") },
        header_values(e, "X-Remote-Extra-Authentication.kubernetes.io%2fcredential-Id"))
      assert.same({ "127.0.0.1" }, header_values(e, "X-Forwarded-For"))
      assert.equal(1, #header_values(e, "Audit-Id"))
      assert.same({}, header_values(e, "Authorization"))
    end)

    it("drops the client's Authorization, forged X-Remote-* and escapes extra keys", function()
      local e = last_echo({ token = "tina-token" }, GV, { headers = { "X-Remote-User: admin",
        "X-Remote-Group: system:masters", "X-Remote-Extra-Scopes: forged" } })
      assert.same({}, header_values(e, "Authorization"))
      assert.same({ "tina" }, header_values(e, "X-Remote-User"))
      assert.same({ "tina-uid" }, header_values(e, "X-Remote-Uid"))
      assert.same({ "dev", "team a", "system:authenticated" }, header_values(e, "X-Remote-Group"))
      assert.same({ "blue" }, header_values(e, "X-Remote-Extra-Acme.com%2fteam"))
      assert.same({ "read", "write" }, header_values(e, "X-Remote-Extra-Scopes"))
    end)

    it("proxies the impersonated identity and removes Impersonate-* headers", function()
      local e = last_echo("admin", GV, { headers = { "Impersonate-User: alice", "Impersonate-Group: g 1",
        "Impersonate-Group: g2", "Impersonate-Extra-Reason%2Fkey: oncall", "Impersonate-Extra-100%25sure: yes" } })
      assert.same({ "alice" }, header_values(e, "X-Remote-User"))
      assert.same({ "g 1", "g2", "system:authenticated" }, header_values(e, "X-Remote-Group"))
      assert.same({ "oncall" }, header_values(e, "X-Remote-Extra-Reason%2fkey"))
      assert.same({ "yes" }, header_values(e, "X-Remote-Extra-100%25sure")) -- '%' itself is escaped
      assert.is_false(has_header(e, "Impersonate-"))
    end)

    it("passes method, path and body through and sorts the query like Go", function()
      local e = last_echo("alice", GV .. "/nodes/n1/restart?dryRun=All&b=1&a=x%20y&a=0",
        { method = "POST", body = '{"reason":"test"}' })
      assert.equal("POST", e.method)
      assert.equal(GV .. "/nodes/n1/restart?a=x+y&a=0&b=1&dryRun=All", e.path)
      assert.equal('{"reason":"test"}', e.body)
    end)

    it("refuses an unauthorized user before the backend sees the request", function()
      kube.clear_requests()
      local code, out = kube.kubectl("bob", { "create", "--raw", GV .. "/nodes/n1/restart", "-f",
        write("empty.json", "{}") })
      assert.not_equal(0, code)
      assert.truthy(contains(out, 'Error from server (Forbidden): nodes.infraops.michael.io "n1" is forbidden: User '
        .. '"bob" cannot create resource "nodes/restart" in API group "infraops.michael.io" at the cluster scope'), out)
      local seen = kube.requests(function(r)
        return r.method == "POST"
      end)
      assert.equal(1, #seen)
      assert.equal(403, seen[1].status)
      assert.is_nil(seen[1].upstream)
    end)

    it("returns the backend's headers and reuses its connection", function()
      local code, body, headers = kube.curl("alice", GV)
      assert.equal(200, code)
      assert.matches("[Xx]%-[Bb]ackend: echo", headers)
      assert.is_nil(headers:lower():find("access-control-allow-origin", 1, true))
      local first = cjson.decode(body).echo.conn
      assert.equal(first, last_echo("alice", GV).conn)
    end)

    it("answers backend failures as the aggregator does", function()
      local code, body = kube.curl("alice", GV .. "/nodes/redirect")
      assert.equal(502, code)
      assert.equal("the backend attempted to redirect this request, which is not permitted", body)

      kube.set_backend({ server_name = "wrong.default.svc" })
      code, body = kube.curl("alice", GV)
      assert.equal(503, code)
      assert.matches("^error trying to reach service: .*certificate", body)

      kube.set_backend({ server_name = "infraops-service.default.svc", cert = pki .. "/rogue-front-proxy.crt",
        key = pki .. "/rogue-front-proxy.key" })
      code = kube.curl("alice", GV)
      assert.equal(503, code)

      kube.set_backend({ available = false })
      local out
      code, out = kube.kubectl("alice", { "get", "--raw", GV })
      assert.not_equal(0, code)
      assert.matches("Error from server %(ServiceUnavailable%): the server is currently unable to handle the request",
        out)
    end)

    it("times out discovery and other requests with the aggregator's answers", function()
      kube.set_backend({ timeouts = { discovery = 1, default = 1 } })
      local code, body = kube.curl("alice", GV .. "?slow=1")
      assert.equal(503, code)
      assert.matches("context deadline exceeded", body)
      code, body = kube.curl("alice", GV .. "/nodes?slow=1")
      assert.equal(504, code)
      local status = cjson.decode(body)
      assert.equal("Timeout", status.reason)
      assert.equal("Timeout: request did not complete within requested timeout - context deadline exceeded",
        status.message)
    end)
  end)

  describe("control port", function()
    it("injects 429 with Retry-After a number of times, which kubectl retries", function()
      kube.clear_requests()
      kube.control("PUT", "/faults", { ["list nodes"] = { status = 429, retry_after = 1, times = 2 } })
      local list = kube.kubectl_json("alice", { "get", "--raw", "/api/v1/nodes" })
      assert.equal("NodeList", list.kind)
      local statuses = {}
      for _, r in ipairs(kube.requests(function(r) return r.path == "/api/v1/nodes" end)) do
        statuses[#statuses + 1] = r.status
      end
      assert.same({ 429, 429, 200 }, statuses)
    end)

    it("injects statuses, delays and dropped connections on reviews", function()
      local body = cjson.encode({ apiVersion = "authentication.k8s.io/v1", kind = "TokenReview",
        spec = { token = "tina-token" } })
      local req = { method = "POST", body = body }
      kube.control("PUT", "/faults", { tokenreviews = { status = 500 } })
      local code, out = kube.curl({ token = "sa-token" }, "/apis/authentication.k8s.io/v1/tokenreviews", req)
      assert.equal(500, code, out)
      assert.equal("InternalError", cjson.decode(out).reason)
      kube.control("PUT", "/faults", { tokenreviews = { drop = true } })
      code, out = kube.curl({ token = "sa-token" }, "/apis/authentication.k8s.io/v1/tokenreviews", req)
      assert.is_nil(code)
      assert.matches("Empty reply from server", out)
      kube.control("PUT", "/faults", { tokenreviews = { delay = 3 } })
      local words = { "curl", "-sS", "--max-time", "1", "--cacert", pki .. "/serving-ca.crt", "-H",
        "Authorization: Bearer sa-token", "-H", "Content-Type: application/json", "--data-binary", body,
        kube.api_url .. "/apis/authentication.k8s.io/v1/tokenreviews" }
      local curl_code = shell.run(shell.join(words))
      assert.equal(28, curl_code) -- curl: operation timed out
    end)

    it("keeps faults of the core API and of proxied requests apart", function()
      kube.control("PUT", "/faults", { nodes = { status = 500 },
        ["aggregated create nodes/restart"] = { status = 503, message = "injected" } })
      assert.equal(200, (kube.curl("alice", GV .. "/nodes/n1")))
      assert.equal(500, (kube.curl("alice", "/api/v1/nodes/n1")))
      local code, body = kube.curl("alice", GV .. "/nodes/n1/restart", { method = "POST", body = "{}" })
      assert.equal(503, code)
      assert.same({ "ServiceUnavailable", "injected" }, { cjson.decode(body).reason, cjson.decode(body).message })
    end)

    it("logs requests with the user and a redacted Authorization", function()
      kube.clear_requests()
      kube.curl({ token = "tina-token" }, "/version")
      local log = kube.requests()
      assert.equal(1, #log)
      assert.equal("tina", log[1].user.username)
      assert.equal("token", log[1].authenticated_by)
      local auth
      for _, h in ipairs(log[1].headers) do
        if h[1]:lower() == "authorization" then
          auth = h[2]
        end
      end
      assert.equal("Bearer " .. fake_kube.digest("tina-token"), auth)
      kube.clear_requests()
      assert.same({}, kube.requests())
    end)

    it("replaces nodes, RBAC rules and tokens", function()
      kube.control("PUT", "/nodes", { { name = "solo", labels = { zone = "c" } } })
      assert.same({ "solo" }, names(kube.kubectl_json("alice", { "get", "--raw", "/api/v1/nodes" })))
      kube.control("PUT", "/nodes", NODES)
      kube.control("PUT", "/rbac", {})
      local code = kube.curl("alice", "/api/v1/nodes")
      assert.equal(403, code)
      kube.control("PUT", "/rbac", rules())
      kube.control("PUT", "/tokens", { ["new-token"] = { username = "nina" } })
      assert.equal(401, (kube.curl({ token = "tina-token" }, "/version")))
      assert.equal(200, (kube.curl({ token = "new-token" }, "/version")))
      kube.control("PUT", "/tokens", TOKENS)
    end)
  end)
end)

describe("fake kube-apiserver lifecycle", function()
  it("starts fast enough to be per-test and leaves nothing behind on stop", function()
    local kube = fake_kube.start({ pki = server.pki() })
    local pid, dir = kube.pid, kube.dir
    assert.equal(200, (kube.curl("admin", "/healthz")))
    kube.stop()
    assert.is_not_true(os.execute(("kill -0 %d 2>/dev/null"):format(pid)))
    assert.is_nil(shell.read_file(dir .. "/config.json"))
    assert.is_nil((kube.curl("admin", "/healthz")))
  end)
end)
