-- End to end: a matrix of attacks on the real binary, with the fake
-- kube-apiserver as the cluster (RBAC, TokenReview, the aggregation proxy) and
-- the fake EC2 as the cloud, whose record of reboots proves that no attempt
-- restarted anything. Each row is one attempt and the answer kube-apiserver
-- would give (or the documented one); docs/security.md "What was tried" lists
-- the same rows.
-- identity_spec.lua holds the basic cases (forged headers on GET, expired and
-- rogue certificates); this file does not repeat them.
local cjson = require("cjson")
local fake_cloud = require("spec.helpers.fake_cloud")
local fake_kube = require("spec.helpers.fake_kube")
local server = require("spec.helpers.server")
local shell = require("spec.helpers.shell")

local GV = "/apis/infraops.michael.io/v1"
local NODES = GV .. "/nodes"
local TARGET = NODES .. "/aws-1/restart" -- what every attack tries to restart
local DRY = TARGET .. "?dryRun=All"
local SA = "system:serviceaccount:default:myapiserver"
local A = fake_cloud.AWS
local PYTHON = (os.execute("test -x /usr/bin/python3") and "/usr/bin/python3") or "python3"
local RAW = "spec/helpers/raw_https.py"
local IDLE = 2 -- --idle-connection-timeout of the connection-limit server, seconds
local SLACK = 1.5 -- scheduling slack on a shared machine, seconds

local function hex(s)
  return (s:gsub(".", function(c) return ("%02x"):format(c:byte()) end))
end

-- A raw HTTP/1.1 request: exactly these header lines, then Connection: close
-- (unless keep_alive: then whatever follows the body is read as the next request).
local function request_text(method, path, headers, body, keep_alive)
  local lines = { ("%s %s HTTP/1.1"):format(method, path), "Host: 127.0.0.1" }
  for _, h in ipairs(headers or {}) do
    lines[#lines + 1] = h
  end
  if not keep_alive then
    lines[#lines + 1] = "Connection: close"
  end
  return table.concat(lines, "\r\n") .. "\r\n\r\n" .. (body or "")
end

-- Certificates hack/test-pki.sh does not make, issued here by its CAs.
local EXTENSIONS = [[
[client]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
[no_eku]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature
[server_only_ca]
basicConstraints = critical,CA:TRUE,pathlen:0
keyUsage = critical,keyCertSign,cRLSign
extendedKeyUsage = serverAuth
]]

local function make_certs(pki, dir)
  shell.write_file(dir .. "/ext.cnf", EXTENSIONS)
  local serial = 0
  local function issue(name, subject, issuer, ext)
    serial = serial + 1
    local key, csr, crt = dir .. "/" .. name .. ".key", dir .. "/" .. name .. ".csr", dir .. "/" .. name .. ".crt"
    local ca = issuer:find("/", 1, true) and issuer or (pki .. "/" .. issuer)
    shell.must(shell.join({ "openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
      "-out", key }))
    shell.must(shell.join({ "openssl", "req", "-new", "-key", key, "-subj", subject, "-out", csr }))
    shell.must(shell.join({ "openssl", "x509", "-req", "-in", csr, "-CA", ca .. ".crt", "-CAkey", ca .. ".key",
      "-set_serial", ("0x%x%04x"):format(os.time(), serial), "-days", "30", "-extfile", dir .. "/ext.cnf",
      "-extensions", ext, "-out", crt }))
  end
  local function concat(out, ...)
    local parts = {}
    for i, path in ipairs({ ... }) do
      parts[i] = shell.read_file(path)
    end
    shell.write_file(out, table.concat(parts))
  end
  issue("cn-front-proxy-client", "/CN=front-proxy-client", "client-ca", "client")
  concat(dir .. "/rogue-with-real-ca.crt", pki .. "/rogue-front-proxy.crt", pki .. "/front-proxy-ca.crt")
  shell.must(shell.join({ "cp", pki .. "/rogue-front-proxy.key", dir .. "/rogue-with-real-ca.key" }))
  issue("server-only-ca", "/CN=server-only-intermediate", "client-ca", "server_only_ca")
  issue("eve", "/CN=eve/O=system:masters", dir .. "/server-only-ca", "client")
  concat(dir .. "/eve-chain.crt", dir .. "/eve.crt", dir .. "/server-only-ca.crt")
  shell.must(shell.join({ "cp", dir .. "/eve.key", dir .. "/eve-chain.key" }))
  issue("no-eku", "/CN=noeku/O=dev", "client-ca", "no_eku")
  issue("two-cn", "/CN=alice/CN=mallory", "client-ca", "client")
  issue("empty-cn", "/O=system:masters", "client-ca", "client")
end

-- After a run of attacks: the server still answers, exits 0 on SIGTERM (under
-- the sanitizer build: no leak either) and its log holds no sanitizer report.
local function assert_clean_exit(srv, probe_code)
  assert.equal(200, probe_code)
  assert.equal(0, srv.stop())
  local log = shell.read_file(srv.log_path) or ""
  assert.is_nil(log:find("Sanitizer", 1, true), log:sub(-2000))
  assert.is_nil(log:find("runtime error:", 1, true), log:sub(-2000))
end

local function rbac()
  local rules = fake_kube.myapiserver_rules({ users = { SA } })
  rules[#rules + 1] = { subjects = { users = { "alice" } }, verbs = { "get", "list" },
    apiGroups = { "infraops.michael.io" }, resources = { "nodes" } }
  rules[#rules + 1] = { subjects = { users = { "alice" } }, verbs = { "create" },
    apiGroups = { "infraops.michael.io" }, resources = { "nodes/restart" } }
  return rules
end

local function node(name)
  return { name = name, providerID = "aws:///us-east-1a/" .. A.instance, ready = true }
end

describe("security matrix", function()
  local pki, certs, kube, aws, srv

  setup(function()
    pki = server.pki()
    certs = shell.temp_dir()
    make_certs(pki, certs)
    aws = fake_cloud.start_aws()
    kube = fake_kube.start({ pki = pki, config = {
      nodes = { node("aws-1"), node("aws-2"), node("aws-ok") },
      rbac = rbac(),
      tokens = {
        ["sa-token"] = { username = SA },
        ["mallory-token"] = { username = "mallory", groups = { "dev" } },
      },
    } })
    srv = server.start({ pki = pki, kubeconfig = kube.kubeconfig({ token = "sa-token" }), env = aws.env(),
      args = { "--requestheader-allowed-names=front-proxy-client" } })
    kube.set_backend(srv.port)
  end)

  teardown(function()
    for _, x in ipairs({ srv, kube, aws }) do
      (x.cleanup or x.stop)()
    end
    shell.remove_tree(certs)
  end)

  -- Credentials by name: a test-PKI pair, one made above, or a bearer token.
  local function credential(name)
    if name == nil then
      return {}
    elseif name == "mallory-token" then
      return { token = "mallory-token" }
    end
    local dir = shell.read_file(certs .. "/" .. name .. ".crt") and certs or pki
    local crt = name == "bob" and (pki .. "/bob-chain.crt") or (dir .. "/" .. name .. ".crt")
    return { cert = crt, key = dir .. "/" .. name .. ".key" }
  end

  -- The user the server logged for a response (by its Audit-Id), else for the path.
  local function logged_user(audit_id, path)
    local entries = audit_id and srv.entries("request", { request_id = audit_id }) or {}
    if #entries == 0 and path then
      entries = srv.entries("request", { path = path })
    end
    return entries[#entries] and entries[#entries].user
  end

  local function finish(res, path)
    local ok, doc = pcall(cjson.decode, res.body or "")
    res.status = ok and type(doc) == "table" and doc or nil
    res.audit_id = (res.head or ""):match("[Aa]udit%-[Ii]d: *([%w%-]+)")
    res.user = res.audit_id and logged_user(res.audit_id) or nil
    res.path = path
    return res
  end

  -- curl straight to the server. req: method, path (sent as is), cred, headers, body, content_type, max_time.
  local function curl(req)
    local head = srv.dir .. "/security-head"
    os.remove(head)
    local words = { "curl", "-sS", "--path-as-is", "--max-time", tostring(req.max_time or 10), "--cacert",
      pki .. "/serving-ca.crt", "-D", head, "-o", "-", "-w", "\n%{http_code}" }
    if req.method == "HEAD" then
      words[#words + 1] = "-I"
    else
      words[#words + 1] = "-X"
      words[#words + 1] = req.method or "GET"
    end
    local cred = credential(req.cred)
    if cred.cert then
      for _, w in ipairs({ "--cert", cred.cert, "--key", cred.key }) do
        words[#words + 1] = w
      end
    elseif cred.token then
      words[#words + 1] = "-H"
      words[#words + 1] = "Authorization: Bearer " .. cred.token
    end
    for _, h in ipairs(req.headers or {}) do
      words[#words + 1] = "-H"
      words[#words + 1] = h
    end
    if req.body or req.content_type then
      words[#words + 1] = "-H" -- "Content-Type:" with no value: curl sends none
      words[#words + 1] = "Content-Type:" .. (req.content_type and (" " .. req.content_type) or "")
    end
    if req.body then
      shell.write_file(srv.dir .. "/security-body", req.body)
      words[#words + 1] = "--data-binary"
      words[#words + 1] = "@" .. srv.dir .. "/security-body"
    end
    words[#words + 1] = srv.url(req.path)
    local _, out = shell.run(shell.join(words))
    local body, code = out:match("^(.*)\n(%d%d%d)$")
    code = tonumber(code)
    return finish({ code = code ~= 0 and code or nil, body = body or out, head = shell.read_file(head) }, req.path)
  end

  -- Exact bytes over TLS (spec/helpers/raw_https.py); cred as for curl.
  local function raw(text, cred, timeout)
    local words = { PYTHON, RAW, "send", "--port", tostring(srv.port), "--ca", pki .. "/serving-ca.crt",
      "--data-hex", hex(text), "--timeout", tostring(timeout or 10) }
    local c = credential(cred)
    if c.cert then
      for _, w in ipairs({ "--cert", c.cert, "--key", c.key }) do
        words[#words + 1] = w
      end
    end
    local _, out = shell.run(shell.join(words))
    local ok, r = pcall(cjson.decode, out:match("{.*}") or "")
    assert(ok, "raw_https.py: " .. out)
    local code = r.status ~= cjson.null and r.status or nil
    return finish({ code = code and math.tointeger(code), body = r.body, head = r.head, closed = r.closed,
      answers = select(2, (r.head .. "\r\n\r\n" .. r.body):gsub("HTTP/1%.1 %d%d%d", "")) })
  end

  -- Through the fake kube-apiserver's aggregation proxy, as a kube user.
  local function aggregated(user, req)
    local code, body, head = kube.curl(user, req.path, { method = req.method or "POST", body = req.body,
      content_type = req.content_type, headers = req.headers })
    local res = finish({ code = code, body = body, head = head })
    res.user = logged_user(nil, (req.path:gsub("%?.*", "")))
    return res
  end

  local function reviews()
    local path = "/apis/authorization.k8s.io/v1/subjectaccessreviews"
    return kube.requests(function(r) return r.path == path end)
  end

  local function attempt(row)
    if row.kubectl then
      local code, out = kube.kubectl(row.kubectl[1], row.kubectl[2])
      return { code = code == 0 and 200 or nil, body = out }
    elseif row.raw then
      return raw(row.raw, row.cred, row.timeout)
    elseif row.via_aggregator then
      return aggregated(row.via_aggregator, row.req)
    end
    return curl(row.req)
  end

  -- The invariants first (no reboot unless the row expects one, the server
  -- alive), then the answer. `status = "none"`: no HTTP answer at all.
  local function verify(row, res, reboots_before)
    assert.equal(reboots_before + (row.reboots or 0), #aws.reboots(), "reboots seen by the cloud")
    assert.is_nil(srv.exit_code(), "the server exited")
    local wrong = {}
    local function expect(what, want, got)
      if want ~= nil and want ~= got then
        wrong[#wrong + 1] = ("%s: want %s, got %s"):format(what, tostring(want), tostring(got))
      end
    end
    expect("status", row.status, res.code or "none")
    expect("reason", row.reason, res.status and res.status.reason)
    expect("user", row.user, res.user)
    if row.check then
      row.check(res, expect)
    end
    assert.is_true(#wrong == 0, table.concat(wrong, "; ") .. "\n" .. tostring(res.body):sub(1, 400))
  end

  local function run_rows(rows)
    for _, row in ipairs(rows) do
      local want = row.outcome or (row.status == "none" and "no answer" or tostring(row.status))
      it(("%s -> %s%s"):format(row.attempt, want, row.user and (" as " .. row.user) or ""), function()
        kube.clear_requests()
        local before = #aws.reboots()
        verify(row, attempt(row), before)
      end)
    end
  end

  describe("controls: the harness sees a real restart", function()
    run_rows({
      { attempt = "alice through the front-proxy certificate restarts aws-ok",
        req = { method = "POST", path = NODES .. "/aws-ok/restart", cred = "front-proxy-client",
          headers = { "X-Remote-User: alice" } },
        status = 202, user = "alice", reboots = 1 },
      { attempt = "?dryrun=All (lower-case r) is an unknown parameter, as in kube: a real restart of aws-2",
        req = { method = "POST", path = NODES .. "/aws-2/restart?dryrun=All", cred = "admin" },
        status = 202, user = "admin", reboots = 1 },
    })
  end)

  -- Every kind of client x every way to claim someone else's identity. The
  -- forged identity, alice (or system:masters), may restart aws-1: a forgery
  -- that worked would be a 202 and a reboot.
  describe("forged identity headers", function()
    local clients = {
      { name = "no certificate", status = 403, user = "system:anonymous" },
      { name = "a client-CA certificate (bob)", cred = "bob", status = 403, user = "bob" },
      { name = "a client-CA certificate whose CN is the allowed front-proxy name", cred = "cn-front-proxy-client",
        status = 403, user = "front-proxy-client" },
      { name = "a rogue-CA certificate with the allowed front-proxy CN", cred = "rogue-front-proxy",
        status = 401, user = "system:anonymous" },
      { name = "a rogue-CA certificate sent with the real front-proxy CA as its chain", cred = "rogue-with-real-ca",
        status = 401, user = "system:anonymous" },
      { name = "a front-proxy-CA certificate whose CN is not allowed", cred = "front-proxy-other",
        status = 401, user = "system:anonymous" },
      { name = "a bearer token (mallory)", cred = "mallory-token", status = 403, user = "mallory" },
    }
    local forgeries = {
      { name = "X-Remote-User/-Group/-Extra", headers = { "X-Remote-User: alice", "X-Remote-Group: system:masters",
        "X-Remote-Extra-Scopes: all" } },
      { name = "lower-case x-remote-user", headers = { "x-remote-user: alice", "x-remote-group: system:masters" } },
      { name = "upper-case X-REMOTE-USER", headers = { "X-REMOTE-USER: alice", "X-REMOTE-GROUP: system:masters" } },
      { name = "two X-Remote-User lines", headers = { "X-Remote-User: alice", "X-Remote-User: admin" } },
      { name = "Impersonate-User/-Group",
        headers = { "Impersonate-User: alice", "Impersonate-Group: system:masters" } },
    }
    local rows = {}
    for _, c in ipairs(clients) do
      for _, f in ipairs(forgeries) do
        rows[#rows + 1] = { attempt = ("%s from %s"):format(f.name, c.name), status = c.status, user = c.user,
          req = { method = "POST", path = TARGET, cred = c.cred, headers = f.headers } }
      end
    end
    run_rows(rows)
  end)

  -- From the real front-proxy certificate the headers are trusted; these rows
  -- check that they are read as kube reads them (first non-empty user, one
  -- group per header value, extras decoded) and cannot be bent into more.
  -- mallory has no rights: anything but 403 as mallory would be a bypass.
  describe("header tricks on the trusted front-proxy connection", function()
    local function from_proxy(headers)
      return request_text("POST", TARGET, headers)
    end
    local long_name = "m" .. string.rep("x", 40 * 1024 - 1)
    run_rows({
      { attempt = "X-Remote-User: mallory then X-Remote-User: alice (first value wins, as kube)",
        raw = from_proxy({ "X-Remote-User: mallory", "X-Remote-User: alice" }), cred = "front-proxy-client",
        status = 403, user = "mallory" },
      { attempt = "an empty X-Remote-User then X-Remote-User: mallory (kube reads only the first line: no user)",
        raw = from_proxy({ "X-Remote-User:", "X-Remote-User: mallory" }), cred = "front-proxy-client",
        status = 401, user = "system:anonymous" },
      { attempt = "only an empty X-Remote-User (no user, and the certificate is no client-CA one)",
        raw = from_proxy({ "X-Remote-User:", "X-Remote-Group: system:masters" }), cred = "front-proxy-client",
        status = 401, user = "system:anonymous" },
      { attempt = "x-remote-user in lower case (header names are case-insensitive)",
        raw = from_proxy({ "x-remote-user: mallory" }), cred = "front-proxy-client", status = 403, user = "mallory" },
      { attempt = "a space before the colon: 'X-Remote-User : alice'",
        raw = from_proxy({ "X-Remote-User : alice" }), cred = "front-proxy-client",
        status = 401, user = "system:anonymous" },
      { attempt = "X-Remote-Group: dev,system:masters (a comma does not split a value)",
        raw = from_proxy({ "X-Remote-User: mallory", "X-Remote-Group: dev,system:masters" }),
        cred = "front-proxy-client", status = 403, user = "mallory",
        check = function(_, expect)
          local sar = reviews()
          expect("review groups", "dev,system:masters|system:authenticated",
            sar[1] and table.concat(sar[1].body.spec.groups, "|"))
        end },
      { attempt = "a bare CR inside X-Remote-User to smuggle an X-Remote-Group line (one odd user name)",
        raw = from_proxy({ "X-Remote-User: mallory\rX-Remote-Group: system:masters" }), cred = "front-proxy-client",
        status = 403, check = function(res, expect)
          expect("user", "mallory\rX-Remote-Group: system:masters", res.user)
        end },
      { attempt = "X-Remote-Extra-%ZZ and X-Remote-Extra-Scopes%2Fx (extra keys decoded as kube does)",
        raw = from_proxy({ "X-Remote-User: mallory", "X-Remote-Extra-%ZZ: a", "X-Remote-Extra-Scopes%2Fx: b" }),
        cred = "front-proxy-client", status = 403, user = "mallory",
        check = function(_, expect)
          local sar = reviews()
          local extra = sar[1] and sar[1].body.spec.extra or {}
          expect("extra %zz", "a", extra["%zz"] and extra["%zz"][1])
          expect("extra scopes/x", "b", extra["scopes/x"] and extra["scopes/x"][1])
        end },
      { attempt = "a 40 KiB X-Remote-User",
        raw = from_proxy({ "X-Remote-User: " .. long_name }), cred = "front-proxy-client", status = 403,
        check = function(res, expect) -- the whole name reaches the review (the log line cuts it)
          local message = res.status and res.status.message or ""
          expect("whole user name in the Status", true, message:find('User "' .. long_name .. '"', 1, true) ~= nil)
        end },
      { attempt = "Impersonate-User: alice next to X-Remote-User: mallory (impersonation is not honoured)",
        raw = from_proxy({ "X-Remote-User: mallory", "Impersonate-User: alice", "Impersonate-Group: system:masters" }),
        cred = "front-proxy-client", status = 403, user = "mallory" },
    })
  end)

  describe("forgeries through the aggregator", function()
    run_rows({
      { attempt = "alice sends X-Remote-User: admin and X-Remote-Group: system:masters (the proxy replaces them)",
        via_aggregator = "alice", req = { path = DRY, headers = { "X-Remote-User: admin",
          "X-Remote-Group: system:masters" } },
        status = 202, user = "alice" },
      { attempt = "kubectl create --raw --as=alice --as-group=system:masters as mallory (token)",
        kubectl = { { token = "mallory-token" }, { "create", "--raw", TARGET, "-f", "/dev/null", "--as=alice",
          "--as-group=system:masters" } },
        outcome = "Forbidden (impersonation refused upstream)",
        check = function(res, expect)
          expect("kubectl output", true, res.body:find("Error from server (Forbidden)", 1, true) ~= nil)
        end },
      { attempt = "mallory (token) sends X-Remote-User: alice",
        via_aggregator = { token = "mallory-token" }, req = { path = TARGET, headers = { "X-Remote-User: alice" } },
        status = 403 },
      { attempt = "a browser-form POST (application/x-www-form-urlencoded, empty body), as via kubectl proxy",
        via_aggregator = "alice", req = { path = DRY, body = "", content_type = "application/x-www-form-urlencoded" },
        status = 415, reason = "UnsupportedMediaType" },
    })
  end)

  describe("client certificates", function()
    run_rows({
      { attempt = "a client certificate under an intermediate CA limited to serverAuth (O=system:masters)",
        req = { path = DRY, method = "POST", cred = "eve-chain" }, status = 401, user = "system:anonymous" },
      { attempt = "a client-CA certificate without extendedKeyUsage (any use, as Go reads it)",
        req = { path = GV, cred = "no-eku" }, status = 200, user = "noeku" },
      { attempt = "a client-CA certificate with an empty CN and O=system:masters (kube: anonymous)",
        req = { path = DRY, method = "POST", cred = "empty-cn" }, status = 401, user = "system:anonymous" },
      { attempt = "a client-CA certificate with two CNs, CN=alice then CN=mallory (Go takes the last)",
        req = { path = DRY, method = "POST", cred = "two-cn" }, status = 403, user = "mallory" },
    })
  end)

  -- Every path must be canonical: no decoding can move a request to another
  -- route or another node. All as admin (system:masters: no review stands in the way).
  describe("paths", function()
    local function post(path)
      return { method = "POST", path = path, cred = "admin" }
    end
    local function get(path, cred)
      return { method = "GET", path = path, cred = cred == nil and "admin" or cred or nil }
    end
    local long_label = string.rep("a", 64) .. ".example"
    run_rows({
      { attempt = "GET nodes/../../../healthz", req = get(NODES .. "/../../../healthz"), status = 404,
        reason = "NotFound" },
      { attempt = "POST nodes/x/../aws-1/restart", req = post(NODES .. "/x/../aws-1/restart"), status = 404 },
      { attempt = "POST nodes/aws-1/restart/..", req = post(TARGET .. "/.."), status = 404 },
      { attempt = "POST nodes/%2e%2e/aws-1/restart", req = post(NODES .. "/%2e%2e/aws-1/restart"), status = 404 },
      { attempt = "POST nodes/aws-1%2Frestart", req = post(NODES .. "/aws-1%2Frestart"), status = 404 },
      { attempt = "POST nodes/x%2F..%2Faws-1/restart", req = post(NODES .. "/x%2F..%2Faws-1/restart"), status = 404 },
      { attempt = "POST nodes/aws-1/restart%2F", req = post(TARGET .. "%2F"), status = 404 },
      { attempt = "POST nodes/aws-1//restart", req = post(NODES .. "/aws-1//restart"), status = 404 },
      { attempt = "POST //apis/.../nodes/aws-1/restart", req = post("/" .. TARGET), status = 404 },
      { attempt = "POST nodes/aws-1/restart/ (kube ignores a trailing slash; here it is not canonical)",
        req = post(TARGET .. "/"), status = 404 },
      { attempt = "POST nodes/aws-1%00/restart", req = post(NODES .. "/aws-1%00/restart"), status = 404 },
      { attempt = "POST nodes/aws-1/restart%00", req = post(TARGET .. "%00"), status = 404 },
      { attempt = "POST nodes/aws-1/restart;x=y", req = post(TARGET .. ";x=y"), status = 404 },
      { attempt = "POST nodes/aws-1/restart/extra", req = post(TARGET .. "/extra"), status = 404 },
      { attempt = "POST nodes/aws%ZZ1/restart (malformed escape)", req = post(NODES .. "/aws%ZZ1/restart"),
        status = 404 },
      { attempt = "POST /APIS/... (paths are case-sensitive)", req = post(TARGET:gsub("^/apis", "/APIS")),
        status = 404 },
      { attempt = "POST nodes/AWS-1/restart (upper case)", req = post(NODES .. "/AWS-1/restart"), status = 400,
        reason = "BadRequest" },
      { attempt = "POST nodes/aws_1/restart (underscore)", req = post(NODES .. "/aws_1/restart"), status = 400 },
      { attempt = "POST nodes/aws-%C3%A9/restart (UTF-8)", req = post(NODES .. "/aws-%C3%A9/restart"), status = 400 },
      { attempt = "POST nodes/%E2%80%AEaws-1/restart (right-to-left override)",
        req = post(NODES .. "/%E2%80%AEaws-1/restart"), status = 400 },
      { attempt = "POST nodes/<254 characters>/restart", req = post(NODES .. "/" .. string.rep("a", 254) .. "/restart"),
        status = 400 },
      { attempt = "POST nodes/<64-character label>.example/restart (valid, as in kube; no such node)",
        req = post(NODES .. "/" .. long_label .. "/restart"), status = 404, reason = "NotFound" },
      { attempt = "GET nodes/aws-1/ (trailing slash)", req = get(NODES .. "/aws-1/"), status = 404 },
      { attempt = "GET /healthz/ anonymously", req = get("/healthz/", false), status = 404 },
      { attempt = "GET /healthz%00 anonymously", req = get("/healthz%00", false), status = 404 },
      { attempt = "GET /%68ealthz anonymously (an always-allow path is matched undecoded)",
        req = get("/%68ealthz", false), status = 403, user = "system:anonymous" },
      { attempt = "absolute-form request target https://evil.example/apis/...",
        raw = request_text("POST", "https://evil.example" .. TARGET), cred = "admin", status = 404 },
      { attempt = "request target *", raw = request_text("POST", "*"), cred = "admin", status = 404 },
      { attempt = "HTTP/2.0 in an HTTP/1 request line",
        raw = request_text("POST", TARGET):gsub("HTTP/1%.1", "HTTP/2.0"), cred = "admin", status = 505 },
      { attempt = "a header line without a colon", raw = request_text("POST", TARGET, { "X-Remote-User alice" }),
        cred = "admin", status = 400 },
      { attempt = "a request target over --max-header-bytes (70 KiB)",
        req = get("/healthz/" .. string.rep("a", 70 * 1024)), status = 414 },
    })
  end)

  describe("query strings", function()
    local function post(query, cred)
      return { method = "POST", path = TARGET .. query, cred = cred or "admin" }
    end
    local many = {}
    for i = 1, 1000 do
      many[i] = "a=" .. i
    end
    run_rows({
      { attempt = "?dryRun=All&dryRun= (kube: 422 Invalid)", req = post("?dryRun=All&dryRun="), status = 400,
        reason = "BadRequest" },
      { attempt = "?dryRun= (empty)", req = post("?dryRun="), status = 400 },
      { attempt = "?dryRun=all (wrong case)", req = post("?dryRun=all"), status = 400 },
      { attempt = "?dryRun=All%00", req = post("?dryRun=All%00"), status = 400 },
      { attempt = "?dryRun=%ZZ (malformed escape)", req = post("?dryRun=%ZZ"), status = 400,
        reason = "BadRequest" },
      { attempt = "?dryRun=%41ll (an escaped All is All)", req = post("?dryRun=%41ll"), status = 202 },
      { attempt = "?dryRun=All&dryRun=All", req = post("?dryRun=All&dryRun=All"), status = 202 },
      { attempt = "?dryRun=All;dryRun= (no ; separator)", req = post("?dryRun=All;dryRun="), status = 400 },
      { attempt = "a 60 KiB query string", req = post("?dryRun=All&x=" .. string.rep("q", 60 * 1024)),
        status = 202 },
      { attempt = "a query string over --max-header-bytes (70 KiB)",
        req = post("?dryRun=All&x=" .. string.rep("q", 70 * 1024)), status = 414 },
      { attempt = "900 query parameters", req = post("?dryRun=All&" .. table.concat(many, "&", 1, 900)),
        status = 202 },
      { attempt = "1000 query parameters (libmicrohttpd's per-connection pool runs out)",
        req = post("?dryRun=All&" .. table.concat(many, "&")), status = "none" },
    })
  end)

  describe("methods on nodes/NAME/restart", function()
    local rows = {}
    for _, method in ipairs({ "GET", "HEAD", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT", "FOO" }) do
      rows[#rows + 1] = { attempt = method .. " as admin", req = { method = method, path = TARGET, cred = "admin" },
        status = 405, reason = method ~= "HEAD" and "MethodNotAllowed" or nil }
    end
    rows[#rows + 1] = { attempt = "PUT as alice, who may only create (authorization comes first, as in kube)",
      req = { method = "PUT", path = TARGET, cred = "front-proxy-client", headers = { "X-Remote-User: alice" } },
      status = 403, user = "alice" }
    run_rows(rows)
  end)

  describe("bodies and Content-Type", function()
    local function restart_with(headers, body, keep_alive)
      return request_text("POST", DRY, headers, body, keep_alive)
    end
    local json = '{"reason":"x"}'
    run_rows({
      { attempt = "Content-Type: text/plain with a JSON body",
        req = { method = "POST", path = DRY, cred = "admin", body = json, content_type = "text/plain" },
        status = 415, reason = "UnsupportedMediaType" },
      { attempt = "Content-Type: application/x-www-form-urlencoded, empty body",
        req = { method = "POST", path = DRY, cred = "admin", body = "",
          content_type = "application/x-www-form-urlencoded" },
        status = 415, reason = "UnsupportedMediaType" },
      { attempt = "Content-Type: multipart/form-data",
        req = { method = "POST", path = DRY, cred = "admin", body = "--b\r\n\r\n" .. json .. "\r\n--b--\r\n",
          content_type = "multipart/form-data; boundary=b" },
        status = 415, reason = "UnsupportedMediaType" },
      { attempt = "Content-Type: application/json; charset=utf-8",
        req = { method = "POST", path = DRY, cred = "admin", body = json,
          content_type = "application/json; charset=utf-8" },
        status = 202 },
      { attempt = "no Content-Type with a JSON body (kube reads JSON)",
        req = { method = "POST", path = DRY, cred = "admin", body = json }, status = 202 },
      { attempt = "chunk size zz", raw = restart_with({ "Transfer-Encoding: chunked" }, "zz\r\nabc\r\n0\r\n\r\n"),
        cred = "admin", status = 400 },
      { attempt = "chunk size -1", raw = restart_with({ "Transfer-Encoding: chunked" }, "-1\r\nabc\r\n0\r\n\r\n"),
        cred = "admin", status = 400 },
      { attempt = "chunk size 2^72", raw = restart_with({ "Transfer-Encoding: chunked" },
        "ffffffffffffffffff\r\nabc\r\n0\r\n\r\n"), cred = "admin", status = 413 },
      { attempt = "a chunk shorter than its size",
        raw = restart_with({ "Transfer-Encoding: chunked" }, "5\r\nabc\r\n0\r\n\r\n"), cred = "admin", status = 400 },
      { attempt = "Content-Length: -1", raw = restart_with({ "Content-Length: -1" }), cred = "admin", status = 400 },
      { attempt = "Content-Length: abc", raw = restart_with({ "Content-Length: abc" }), cred = "admin", status = 400 },
      { attempt = "Content-Length: 2 and Content-Length: 40, then a second request in the body",
        raw = restart_with({ "Content-Length: 2", "Content-Length: 40" },
          "{}" .. request_text("GET", "/healthz"), true), cred = "admin", status = 400,
        check = function(res, expect) expect("answers", 1, res.answers) end },
      { attempt = "Transfer-Encoding: chunked and Content-Length (chunked wins, as RFC 9112 says)",
        raw = restart_with({ "Transfer-Encoding: chunked", "Content-Length: 40" }, "0\r\n\r\n"),
        cred = "admin", status = 202 },
      { attempt = "Transfer-Encoding: gzip, chunked (kube: 501)",
        raw = restart_with({ "Transfer-Encoding: gzip, chunked" }, "0\r\n\r\n"), cred = "admin", timeout = 2,
        status = 501 },
    })
  end)

  describe("TLS", function()
    local function s_client(args, stdin)
      local words = { "openssl", "s_client", "-connect", "127.0.0.1:" .. srv.port, "-CAfile",
        pki .. "/serving-ca.crt" }
      for _, a in ipairs(args) do
        words[#words + 1] = a
      end
      return shell.run((stdin or "</dev/null") .. " " .. "timeout 10 " .. shell.join(words))
    end

    local function gnutls_cli(priority)
      return shell.run("timeout 10 " .. shell.join({ "gnutls-cli", "--x509cafile", pki .. "/serving-ca.crt",
        "-p", tostring(srv.port), "127.0.0.1", "--priority", priority }) .. " </dev/null")
    end

    local function hello(kind)
      local _, out = shell.run(shell.join({ PYTHON, RAW, "hello", "--hello", kind, "--port", tostring(srv.port),
        "--ca", pki .. "/serving-ca.crt", "--timeout", "5" }))
      return cjson.decode(out:match("{.*}"))
    end

    local GNUTLS_BASE = "NONE:+VERS-TLS1.2:+SHA1:+ECDHE-ECDSA:+ECDHE-RSA:+RSA:+COMP-NULL:+SIGN-ALL:+GROUP-ALL:"
    local refused = {
      { "TLS 1.0 (s_client -tls1, client at SECLEVEL=0)", { "-tls1", "-cipher", "DEFAULT:@SECLEVEL=0" } },
      { "TLS 1.1 (s_client -tls1_1, client at SECLEVEL=0)", { "-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0" } },
      { "TLS 1.2 ECDHE-ECDSA-AES128-SHA (CBC)", { "-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-SHA" } },
      { "TLS 1.2 ECDHE-ECDSA-AES256-SHA384 (CBC)", { "-tls1_2", "-cipher", "ECDHE-ECDSA-AES256-SHA384" } },
      { "TLS 1.2 AES128-GCM-SHA256 (static RSA key exchange)", { "-tls1_2", "-cipher", "AES128-GCM-SHA256" } },
      { "TLS 1.2 DHE-RSA-AES128-GCM-SHA256 (finite-field DHE)", { "-tls1_2", "-cipher", "DHE-RSA-AES128-GCM-SHA256" } },
      { "TLS 1.2 ECDHE-ECDSA-NULL-SHA (no encryption)",
        { "-tls1_2", "-cipher", "ECDHE-ECDSA-NULL-SHA:@SECLEVEL=0" } },
      { "TLS 1.2 AECDH-AES128-SHA (anonymous)", { "-tls1_2", "-cipher", "AECDH-AES128-SHA:@SECLEVEL=0" } },
      { "TLS 1.2 ECDHE-ECDSA-AES128-CCM (an AEAD not on the list)",
        { "-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-CCM" } },
      { "TLS 1.3 TLS_AES_128_CCM_SHA256", { "-tls1_3", "-ciphersuites", "TLS_AES_128_CCM_SHA256" } },
    }
    for _, case in ipairs(refused) do
      it(case[1] .. " -> refused", function()
        local code, out = s_client(case[2])
        assert.not_equal(0, code, out)
        -- the client sent its ClientHello; the server closed without a ServerHello
        assert.matches("SSL handshake has read 0 bytes and written [1-9]%d* bytes", out)
      end)
    end

    for _, case in ipairs({
      { "TLS 1.2 TLS_ECDHE_ECDSA_3DES_EDE_CBC_SHA1 (gnutls-cli; OpenSSL 3 cannot offer 3DES)", "+3DES-CBC" },
      { "TLS 1.2 TLS_ECDHE_ECDSA_ARCFOUR_128_SHA1 (gnutls-cli; OpenSSL 3 cannot offer RC4)", "+ARCFOUR-128" },
      { "TLS 1.2 TLS_ECDHE_ECDSA_NULL_SHA1 (gnutls-cli)", "+NULL" },
    }) do
      it(case[1] .. " -> refused", function()
        local code, out = gnutls_cli(GNUTLS_BASE .. case[2])
        assert.not_equal(0, code, out)
        assert.matches("non%-properly terminated", out)
      end)
    end

    for _, kind in ipairs({ "sslv2", "sslv3" }) do
      it(("an %s ClientHello (raw bytes; no client here speaks it) -> closed, nothing sent back"):format(kind),
        function()
          local r = hello(kind)
          assert.is_true(r.closed)
          assert.equal("", r.answer_hex)
        end)
    end

    for _, case in ipairs({
      { "TLS 1.3 TLS_AES_128_GCM_SHA256", { "-tls1_3", "-ciphersuites", "TLS_AES_128_GCM_SHA256" } },
      { "TLS 1.3 TLS_AES_256_GCM_SHA384", { "-tls1_3", "-ciphersuites", "TLS_AES_256_GCM_SHA384" } },
      { "TLS 1.3 TLS_CHACHA20_POLY1305_SHA256", { "-tls1_3", "-ciphersuites", "TLS_CHACHA20_POLY1305_SHA256" } },
      { "TLS 1.2 ECDHE-ECDSA-AES128-GCM-SHA256", { "-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256" } },
      { "TLS 1.2 ECDHE-ECDSA-AES256-GCM-SHA384", { "-tls1_2", "-cipher", "ECDHE-ECDSA-AES256-GCM-SHA384" } },
      { "TLS 1.2 ECDHE-ECDSA-CHACHA20-POLY1305", { "-tls1_2", "-cipher", "ECDHE-ECDSA-CHACHA20-POLY1305" } },
    }) do
      it(case[1] .. " -> accepted", function()
        local args = { "-verify_return_error" }
        for _, a in ipairs(case[2]) do
          args[#args + 1] = a
        end
        local code, out = s_client(args)
        assert.equal(0, code, out)
        local suite = case[1]:match("(%S+)$")
        assert.matches("Cipher is " .. suite:gsub("%-", "%%-"), out)
      end)
    end

    it("a client-initiated TLS 1.2 renegotiation -> connection closed, no answer; the server serves on", function()
      local input = "(printf 'R\\n'; sleep 0.5; printf 'GET /healthz HTTP/1.1\\r\\nHost: x\\r\\n"
        .. "Connection: close\\r\\n\\r\\n'; sleep 0.5) |"
      local _, out = s_client({ "-tls1_2", "-cert", pki .. "/admin.crt", "-key", pki .. "/admin.key" }, input)
      assert.matches("RENEGOTIATING", out)
      assert.is_nil(out:find("HTTP/1.1 200", 1, true), out)
      assert.equal(200, curl({ path = "/healthz" }).code)
      assert.is_nil(srv.exit_code())
    end)
  end)

  it("after all of it the server serves, exits 0 on SIGTERM and reported no sanitizer error", function()
    assert_clean_exit(srv, curl({ path = "/healthz" }).code)
  end)
end)

-- Slow and idle connections against a server with small limits: --idle-connection-timeout
-- (libmicrohttpd's inactivity timeout) and --max-connections.
describe("slow and idle connections #timing", function()
  local pki, srv
  local MAX = 6

  setup(function()
    pki = server.pki()
    local args = { "--idle-connection-timeout=" .. IDLE .. "s", "--max-connections=" .. MAX }
    args[#args + 1] = "--request-read-timeout=" .. (IDLE + 1) .. "s"
    srv = server.start({ pki = pki, args = args })
  end)

  teardown(function()
    srv.cleanup()
  end)

  -- Starts raw_https.py in the background; returns a function that waits for its result.
  local function hold(mode, args, name)
    local out, ready = srv.dir .. "/" .. name, srv.dir .. "/" .. name .. ".ready"
    local words = { PYTHON, RAW, mode, "--port", tostring(srv.port), "--ca", pki .. "/serving-ca.crt",
      "--out", out, "--ready-file", ready }
    for _, a in ipairs(args) do
      words[#words + 1] = a
    end
    shell.spawn(shell.join(words))
    assert.is_truthy(shell.wait_for(function() return shell.read_file(ready) end, 10), name .. " did not connect")
    return function(timeout)
      local text = shell.wait_for(function() return shell.read_file(out) end, timeout or 20)
      assert.is_string(text, name .. " gave no result")
      return cjson.decode(text)
    end
  end

  -- A normal client: status and seconds taken.
  local function normal(max_time)
    local _, out = shell.run(shell.join({ "curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{time_total}",
      "--max-time", tostring(max_time), "--cacert", pki .. "/serving-ca.crt", srv.url("/healthz") }))
    local code, seconds = out:match("(%d+) ([%d.]+)")
    return tonumber(code), tonumber(seconds)
  end

  local PARTIAL = hex("GET /healthz HTTP/1.1\r\nHost: x\r\nX-a")

  it("idle, handshake-only and half-sent connections are closed within the idle timeout; "
    .. "a normal client is served meanwhile", function()
    local duration = tostring(IDLE * 4)
    local results = {
      tcp = hold("idle", { "--no-tls", "--duration", duration }, "tcp"),
      tls = hold("idle", { "--duration", duration }, "tls"),
      partial = hold("drip", { "--data-hex", PARTIAL, "--drip-hex", "", "--duration", duration }, "partial"),
    }
    local code, seconds = normal(5)
    assert.equal(200, code)
    assert.is_true(seconds < IDLE - 0.5, "a normal client waited " .. tostring(seconds) .. " s")
    for name, wait in pairs(results) do
      local c = wait().connections[1]
      assert.is_true(c.closed, name .. " was not closed")
      assert.is_true(c.elapsed <= IDLE + SLACK, ("%s closed after %.1f s"):format(name, c.elapsed))
    end
    assert.is_nil(srv.exit_code())
  end)

  it("--max-connections idle connections: a new client waits at most the idle timeout, then is served",
    function()
      local wait = hold("idle", { "--count", tostring(MAX), "--duration", tostring(IDLE * 4) }, "full")
      local code, seconds = normal(IDLE * 4)
      assert.equal(200, code)
      assert.is_true(seconds <= IDLE + SLACK, ("served after %.1f s"):format(seconds))
      local result = wait()
      assert.equal(MAX, result.connected)
      assert.is_nil(srv.exit_code())
    end)

  -- A thread per connection would leak: GnuTLS 3.7 keeps every thread's random generator state
  -- until the process exits (docs/development.md, Soak). Connections are libmicrohttpd's
  -- threads' work; a thread is only started for a request when no worker is free.
  it("connections hold no thread of their own: the server's thread count stays as it was", function()
    local function threads()
      return tonumber((shell.read_file("/proc/" .. srv.pid .. "/status") or ""):match("Threads:%s*(%d+)"))
    end
    assert.equal(200, (normal(5))) -- a worker is started for the first request, and kept
    local before = threads()
    local wait = hold("idle", { "--count", tostring(MAX), "--duration", "1" }, "threads")
    local during = threads()
    assert.equal(MAX, wait().connected)
    for _ = 1, 5 do
      assert.equal(200, (normal(5)))
    end
    assert.equal(before, during, ("%d threads with %d TLS connections open, %d before"):format(during, MAX, before))
    assert.equal(before, threads(), "threads after 5 more requests, each on a new connection")
    assert.is_nil(srv.exit_code())
  end)

  it("--max-connections connections that trickle their headers (one byte every 0.5 s) -> "
    .. "closed by a read deadline, others served", function()
    local trickle = IDLE * 3
    local wait = hold("drip", { "--data-hex", PARTIAL, "--drip-hex", hex(": b\r\nX-c"), "--interval", "0.5",
      "--count", tostring(MAX), "--duration", tostring(trickle) }, "trickle")
    local code = normal(IDLE + SLACK)
    local result = wait()
    -- Invariants: the server lives and serves again as soon as the trickling stops.
    assert.is_nil(srv.exit_code())
    assert.equal(200, (normal(IDLE + SLACK)))
    local held = 0
    for _, c in ipairs(result.connections) do
      if not c.closed then
        held = held + 1
      end
    end
    assert.equal(0, held, ("trickling connections held for %d s"):format(trickle))
    assert.equal(200, code, "a normal client while they trickled")
  end)

  it("after all of it the server serves, exits 0 on SIGTERM and reported no sanitizer error", function()
    assert_clean_exit(srv, (normal(5)))
  end)
end)
