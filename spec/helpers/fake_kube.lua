-- Starts, controls and stops the fake kube-apiserver (spec/fakes/kube_apiserver.py).
--
--   local fake_kube = require("spec.helpers.fake_kube")
--   local kube = fake_kube.start({ pki = server.pki(), config = { nodes = {...}, rbac = {...} } })
--   kube.api_url                         -- "https://127.0.0.1:N"
--   kube.control("PUT", "/faults", {...}) -- decoded JSON answer of the control port
--   kube.set_backend(port)               -- aggregation proxy target https://127.0.0.1:port
--   kube.kubeconfig("alice")             -- path of a kubeconfig (PKI cert user, or {token = "..."})
--   kube.kubectl("alice", { "get", "nodes" }) -- code, output (own discovery cache dir)
--   kube.curl("alice", "/api/v1/nodes", { method = "POST", body = "{}", headers = {...} })
--   kube.requests()                      -- what the api port received
--   kube.stop()                          -- kills the process, removes its temp dir
-- See spec/fakes/README.md for the config keys and control routes.
local cjson = require("cjson")
local fake_control = require("spec.helpers.fake_control")
local shell = require("spec.helpers.shell")

local fake_kube = {}

-- FAKE_KUBE_SCRIPT: run another copy (e.g. a deliberately broken one, to see specs fail).
fake_kube.script = os.getenv("FAKE_KUBE_SCRIPT") or "spec/fakes/kube_apiserver.py"
-- Debian's python3 when present (a pyenv shim in PATH costs half a second per start).
fake_kube.python = os.getenv("FAKE_KUBE_PYTHON")
  or (os.execute("test -x /usr/bin/python3") and "/usr/bin/python3") or "python3"

--- RBAC rules granting a subject ({users = {...}} or {groups = {...}}) what myapiserver
-- needs from kube-apiserver (docs/k8s-aggregation.md section 2.4, plus Leases and Events).
function fake_kube.myapiserver_rules(subjects)
  return {
    { name = "system:auth-delegator", subjects = subjects, verbs = { "create" },
      apiGroups = { "authentication.k8s.io" }, resources = { "tokenreviews" } },
    { name = "system:auth-delegator", subjects = subjects, verbs = { "create" },
      apiGroups = { "authorization.k8s.io" }, resources = { "subjectaccessreviews" } },
    { name = "extension-apiserver-authentication-reader", subjects = subjects, namespaces = { "kube-system" },
      verbs = { "get", "list", "watch" }, apiGroups = { "" }, resources = { "configmaps" },
      resourceNames = { "extension-apiserver-authentication" } },
    { name = "myapiserver-nodes", subjects = subjects, verbs = { "get", "list", "watch" },
      apiGroups = { "" }, resources = { "nodes" } },
    { name = "myapiserver-leases", subjects = subjects,
      verbs = { "get", "list", "watch", "create", "update", "delete" },
      apiGroups = { "coordination.k8s.io" }, resources = { "leases" } },
    { name = "myapiserver-events", subjects = subjects, verbs = { "create", "get", "list" },
      apiGroups = { "" }, resources = { "events" } },
  }
end

--- sha256 hex prefix the fake logs in place of a bearer token.
function fake_kube.digest(secret)
  return (shell.must("printf %s " .. shell.quote(secret) .. " | sha256sum"):sub(1, 16))
end

local function copy_into(dst, src)
  for k, v in pairs(src or {}) do
    dst[k] = v
  end
  return dst
end

--- Starts the fake. opts.pki: hack/test-pki.sh output; opts.config: config keys
-- (README); opts.lifetime: seconds after which the fake exits by itself (default 900).
function fake_kube.start(opts)
  assert(opts and opts.pki, "fake_kube.start needs opts.pki")
  local dir = shell.temp_dir()
  local self = { dir = dir, pki = opts.pki }
  local config = copy_into({ pki = opts.pki }, opts.config)
  local config_path, out_path, err_path = dir .. "/config.json", dir .. "/out", dir .. "/err"
  shell.write_file(config_path, cjson.encode(config))
  shell.spawn(("%s %s --config %s --lifetime %d >%s 2>%s"):format(
    shell.quote(fake_kube.python), shell.quote(fake_kube.script), shell.quote(config_path), opts.lifetime or 900,
    shell.quote(out_path), shell.quote(err_path)))
  local info = shell.wait_for(function()
    local line = (shell.read_file(out_path) or ""):match("^(%b{})")
    return line and cjson.decode(line)
  end, opts.start_timeout or 10, 0.02)
  if not info then
    shell.remove_tree(dir)
    error("fake kube-apiserver did not start: " .. tostring(shell.read_file(err_path)))
  end
  self.pid, self.api_port, self.control_port = info.pid, info.api_port, info.control_port
  self.api_url = ("https://127.0.0.1:%d"):format(info.api_port)
  self.control_url = ("http://127.0.0.1:%d"):format(info.control_port)

  --- A control-port call; body_table is sent as JSON. Returns the decoded answer.
  fake_control.attach(self, dir)


  --- Points the aggregation proxy at https://127.0.0.1:port (or applies a settings table).
  function self.set_backend(port_or_settings)
    local settings = type(port_or_settings) == "table" and port_or_settings or { port = port_or_settings }
    return self.control("PUT", "/backend", settings)
  end

  local function credentials(user)
    if type(user) == "table" then
      return user
    end
    if user == nil or user == "anonymous" then
      return {}
    end
    local cert = opts.pki .. "/" .. user .. ".crt"
    if user == "bob" then
      cert = opts.pki .. "/bob-chain.crt" -- bob's leaf is signed by the intermediate CA
    end
    return { cert = cert, key = opts.pki .. "/" .. user .. ".key" }
  end

  local configs = {}
  --- Kubeconfig for the api port: a PKI client-cert user ("alice", "admin", "bob", ...),
  -- or {token = "..."} / {cert = path, key = path}. Returns its path. (An empty user makes
  -- kubectl prompt for a password: use kube.curl("anonymous", ...) for anonymous requests.)
  function self.kubeconfig(user)
    local cred = credentials(user)
    local id = cred.token and ("token-" .. fake_kube.digest(cred.token))
      or (type(user) == "string" and user) or ("cert-" .. fake_kube.digest(tostring(cred.cert)))
    if configs[id] then
      return configs[id]
    end
    local lines = {}
    if cred.token then
      lines[#lines + 1] = "    token: " .. cred.token
    elseif cred.cert then
      lines[#lines + 1] = "    client-certificate: " .. cred.cert
      lines[#lines + 1] = "    client-key: " .. cred.key
    end
    local path = dir .. "/kubeconfig-" .. id
    shell.write_file(path, table.concat({
      "apiVersion: v1",
      "kind: Config",
      "clusters:",
      "- name: fake",
      "  cluster:",
      "    server: " .. self.api_url,
      "    certificate-authority: " .. opts.pki .. "/serving-ca.crt",
      "users:",
      "- name: user",
      "  user:" .. (#lines == 0 and " {}" or ""),
      table.concat(lines, "\n"),
      "contexts:",
      "- name: fake",
      "  context: {cluster: fake, user: user}",
      "current-context: fake",
      "",
    }, "\n"))
    configs[id] = path
    return path
  end

  --- Runs kubectl as `user` with its own discovery cache; returns exit code, stdout+stderr.
  local function kubectl_line(user, args)
    local words = { "kubectl", "--kubeconfig", self.kubeconfig(user), "--cache-dir", dir .. "/kube-cache",
      "--request-timeout", "20s" }
    for _, a in ipairs(args) do
      words[#words + 1] = a
    end
    return shell.join(words)
  end

  function self.kubectl(user, args)
    return shell.run(kubectl_line(user, args))
  end

  --- kubectl whose stdout must be JSON (e.g. get --raw, -o json): returns the decoded value;
  -- raises with stderr when kubectl fails.
  function self.kubectl_json(user, args)
    local stderr_path = dir .. "/kubectl-stderr"
    local code, out = shell.run(kubectl_line(user, args) .. " 2>" .. shell.quote(stderr_path))
    if code ~= 0 then
      error(("kubectl %s failed (%s): %s"):format(table.concat(args, " "), tostring(code),
        tostring(shell.read_file(stderr_path))), 2)
    end
    return cjson.decode(out)
  end

  --- A raw HTTPS request to the api port as `user`. req: method, body (string; sent as
  -- req.content_type, default application/json), headers (list of "Name: value").
  -- Returns status code (nil without an HTTP answer), body (or curl's error), header text.
  function self.curl(user, path, req)
    req = req or {}
    local cred = credentials(user)
    local head_path = dir .. "/curl-headers"
    local words = { "curl", "-sS", "--max-time", "20", "--cacert", opts.pki .. "/serving-ca.crt",
      "-X", req.method or "GET", "-D", head_path, "-o", "-", "-w", "\n%{http_code}" }
    if cred.cert then
      for _, w in ipairs({ "--cert", cred.cert, "--key", cred.key }) do
        words[#words + 1] = w
      end
    end
    if cred.token then
      words[#words + 1] = "-H"
      words[#words + 1] = "Authorization: Bearer " .. cred.token
    end
    local headers = req.headers or {}
    if req.body then
      -- curl would say application/x-www-form-urlencoded, which kube answers with 415.
      words[#words + 1] = "-H"
      words[#words + 1] = "Content-Type: " .. (req.content_type or "application/json")
    end
    for _, h in ipairs(headers) do
      words[#words + 1] = "-H"
      words[#words + 1] = h
    end
    if req.body then
      local body_path = dir .. "/curl-body"
      shell.write_file(body_path, req.body)
      words[#words + 1] = "--data-binary"
      words[#words + 1] = "@" .. body_path
    end
    words[#words + 1] = self.api_url .. path
    os.remove(head_path)
    local _, out = shell.run(shell.join(words))
    local body, code = out:match("^(.*)\n(%d%d%d)$")
    code = tonumber(code)
    if code == 0 then
      code = nil -- no HTTP answer (TLS refused, connection dropped, timeout)
    end
    return code, body or out, shell.read_file(head_path) or ""
  end

  --- Kills the fake (SIGTERM, then SIGKILL) and removes its directory. Safe to call twice.
  function self.stop()
    if self.pid then
      os.execute(("kill %d 2>/dev/null"):format(self.pid))
      local gone = shell.wait_for(function()
        return os.execute(("kill -0 %d 2>/dev/null"):format(self.pid)) ~= true
      end, 5)
      if not gone then
        os.execute(("kill -9 %d 2>/dev/null"):format(self.pid))
      end
      self.pid = nil
    end
    shell.remove_tree(dir)
  end

  return self
end

return fake_kube
