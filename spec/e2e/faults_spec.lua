-- End to end: the real server under faults. kube-apiserver down, slow or
-- answering garbage; cloud endpoints that reset, close, hang after acting,
-- answer 5xx then 200 or answer garbage; a serving certificate replaced by an
-- invalid one; provider scripts that loop or allocate without bound; SIGTERM
-- during a restart. Each test states what the server answered and shows that it
-- keeps serving. (restart_spec.lua has throttling, a 5xx retry and a hang on
-- AWS; these are the rest of the matrix.)
local cjson = require("cjson")
local crypto = require("host.crypto")
local fake_cloud = require("spec.helpers.fake_cloud")
local fake_kube = require("spec.helpers.fake_kube")
local restart_record = require("infraops.restart_record")
local server = require("spec.helpers.server")
local shell = require("spec.helpers.shell")

local GV = "/apis/infraops.michael.io/v1"
local SA = "system:serviceaccount:default:myapiserver"
local A, T = fake_cloud.AWS, fake_cloud.TENCENT
local INSTRUCTIONS = 2000000 -- far above what the real providers need (a few thousand)

-- Misbehaves on purpose: restart(target) does what target.instance_id names.
local RUNAWAY = [[
local p = { name = "runaway", api_version = 1 }
local count = 0 -- lives as long as the Lua state
local function spin() while true do end end
local behaviours = {
  loop = spin,
  catch = function() while true do pcall(spin) end end,
  coroutine = function()
    local co = coroutine.wrap(function() while true do pcall(spin) end end)
    while true do pcall(co) end
  end,
  hog = function()
    local t = {}
    while true do t[#t + 1] = ("x"):rep(1024) .. #t end
  end,
  count = function()
    count = count + 1
    return { request_id = "count-" .. count, dry_run = true }
  end,
}
function p.match(id)
  if id == "runaway://match-loop" then spin() end
  local what = id:match("^runaway://(.+)$")
  if what then return { instance_id = what, region = "nowhere" } end
end
function p.restart(target) return behaviours[target.instance_id]() end
return p
]]

local function ready_node(name, provider_id)
  return { name = name, providerID = provider_id, labels = {}, ready = true }
end

local NODES = {
  ready_node("aws-slow-kube", "aws:///us-east-1a/" .. A.instance),
  ready_node("aws-kube-garbage", "aws:///us-east-1a/" .. A.instance),
  ready_node("aws-reset", "aws:///us-east-1a/" .. A.instance),
  ready_node("tc-close", "qcloud:///100003/" .. T.instance),
  ready_node("tc-lost-answer", "qcloud:///100003/" .. T.instance),
  ready_node("tc-5xx", "qcloud:///100003/" .. T.instance),
  ready_node("aws-garbage", "aws:///us-east-1a/" .. A.instance),
  ready_node("tc-garbage", "qcloud:///100003/" .. T.instance),
  ready_node("aws-sigterm", "aws:///us-east-1a/" .. A.instance),
  ready_node("aws-sigterm-late", "aws:///us-east-1a/" .. A.instance),
  ready_node("aws-after", "aws:///us-east-1a/" .. A.instance),
  ready_node("aws-kube-lost", "aws:///us-east-1a/" .. A.instance),
  ready_node("aws-kube-lost-twice", "aws:///us-east-1a/" .. A.instance),
}
for _, how in ipairs({ "loop", "catch", "coroutine", "hog", "count", "match-loop" }) do
  NODES[#NODES + 1] = ready_node("runaway-" .. how, "runaway://" .. how)
end

local function rbac()
  local rules = fake_kube.myapiserver_rules({ users = { SA } })
  rules[#rules + 1] = { subjects = { users = { "alice" } }, verbs = { "get", "list" },
    apiGroups = { "infraops.michael.io" }, resources = { "nodes" } }
  rules[#rules + 1] = { subjects = { users = { "alice" } }, verbs = { "create" },
    apiGroups = { "infraops.michael.io" }, resources = { "nodes/restart" } }
  return rules
end

local function merged(...)
  local out = {}
  for _, t in ipairs({ ... }) do
    for k, v in pairs(t) do
      out[k] = v
    end
  end
  return out
end

describe("the server under faults", function()
  local pki, kube, aws, tc, srv, providers_dir

  local function start_server(k, extra_args, opts)
    local args = { "--lease-namespace=infra", "--restart-cooldown=10m", "--kubernetes-api-timeout=1s",
      "--providers-dir=" .. providers_dir, "--provider-instruction-limit=" .. INSTRUCTIONS,
      "--provider-memory-limit=8Mi" }
    for _, a in ipairs(extra_args or {}) do
      args[#args + 1] = a
    end
    return server.start(merged({ pki = pki, kubeconfig = k.kubeconfig({ token = "sa-token" }), client_ca = false,
      requestheader_ca = false, env = merged(aws.env(), tc.env()), args = args }, opts or {}))
  end

  -- One HTTPS request to a server; as = "alice" (front-proxy headers, so a
  -- SubjectAccessReview), "admin" (system:masters client certificate) or
  -- "anonymous". Returns status (nil: no answer), body (decoded JSON when it
  -- is), response headers (lower-case names).
  local function request(s, path, o)
    o = o or {}
    local head = s.dir .. "/curl-head"
    local words = { "curl", "-sS", "--max-time", tostring(o.max_time or 40), "--cacert", pki .. "/serving-ca.crt",
      "-X", o.method or "GET", "-D", head, "-o", "-", "-w", "\n%{http_code}" }
    local as = o.as or "alice"
    if as == "alice" then
      for _, w in ipairs({ "--cert", pki .. "/front-proxy-client.crt", "--key", pki .. "/front-proxy-client.key",
        "-H", "X-Remote-User: alice", "-H", "X-Remote-Group: system:authenticated" }) do
        words[#words + 1] = w
      end
    elseif as == "admin" then
      for _, w in ipairs({ "--cert", pki .. "/admin.crt", "--key", pki .. "/admin.key" }) do
        words[#words + 1] = w
      end
    end
    words[#words + 1] = s.url(path)
    os.remove(head)
    local _, out = shell.run(shell.join(words))
    local body, code = out:match("^(.*)\n(%d%d%d)$")
    local headers = {}
    for name, value in (shell.read_file(head) or ""):gmatch("([%w%-]+): ([^\r\n]*)") do
      headers[name:lower()] = value
    end
    local ok, doc = pcall(cjson.decode, body or "")
    code = tonumber(code)
    return code ~= 0 and code or nil, ok and doc or (body or out), headers
  end

  local function restart(node, o)
    o = o or {}
    return request(o.server or srv, GV .. "/nodes/" .. node .. "/restart" .. (o.query or ""),
      { method = "POST", as = o.as })
  end

  -- The server still answers health checks and, for alice, discovery.
  local function assert_serving(s)
    local code, body = request(s or srv, "/readyz", { as = "anonymous" })
    assert.equal(200, code)
    assert.equal("ok", body)
    local code2, doc = request(s or srv, GV)
    assert.equal(200, code2)
    assert.equal("APIResourceList", doc.kind)
  end

  local function lease_phase(node)
    local name = restart_record.lease_name(node, crypto)
    for _, lease in ipairs(kube.control("GET", "/leases")) do
      if lease.metadata.name == name then
        local record = restart_record.from_lease(lease)
        return record and record.phase
      end
    end
    return nil
  end

  local function reboots_of(fake, instance)
    local n = 0
    for _, r in ipairs(fake.reboots()) do
      n = n + (r.instance == instance and 1 or 0)
    end
    return n
  end

  setup(function()
    pki = server.pki()
    aws = fake_cloud.start_aws()
    tc = fake_cloud.start_tencentcloud()
    kube = fake_kube.start({ pki = pki, config = {
      nodes = NODES, rbac = rbac(), tokens = { ["sa-token"] = { username = SA } },
    } })
    providers_dir = shell.temp_dir()
    shell.must(("cp providers/aws.lua providers/tencentcloud.lua %s/"):format(providers_dir))
    shell.write_file(providers_dir .. "/runaway.lua", RUNAWAY)
    srv = start_server(kube)
  end)

  teardown(function()
    for _, x in ipairs({ srv, kube, aws, tc }) do
      if x then
        (x.cleanup or x.stop)()
      end
    end
    shell.remove_tree(providers_dir)
  end)

  after_each(function()
    kube.control("PUT", "/faults", {})
    aws.faults({})
    tc.faults({})
  end)

  describe("kube-apiserver", function()
    it("down: restarts answer 503 naming the Kubernetes API, health and masters' discovery still answer", function()
      local other_kube = fake_kube.start({ pki = pki, config = {
        nodes = NODES, rbac = rbac(), tokens = { ["sa-token"] = { username = SA } },
      } })
      local other = start_server(other_kube)
      other_kube.stop()
      local code, status = restart("aws-after", { server = other, as = "admin" })
      local alice_code, alice_status = restart("aws-after", { server = other })
      local ready = request(other, "/readyz", { as = "anonymous" })
      local apis = request(other, GV, { as = "admin" })
      other.cleanup()
      assert.equal(503, code)
      assert.equal("ServiceUnavailable", status.reason)
      assert.matches("^the Kubernetes API could not be reached %(read the node%)", status.message)
      assert.equal(503, alice_code) -- no SubjectAccessReview possible: refused, not allowed
      assert.equal("authorization could not be checked; please try again later", alice_status.message)
      assert.equal(200, ready)
      assert.equal(200, apis)
    end)

    it("slow (past --kubernetes-api-timeout on every retry): 504 Timeout, nothing rebooted", function()
      local before = reboots_of(aws, A.instance)
      kube.control("PUT", "/faults", { ["get nodes"] = { delay = 3 } })
      local code, status, headers = restart("aws-slow-kube")
      assert.equal(504, code)
      assert.equal("Timeout", status.reason)
      assert.equal("Timeout: the Kubernetes API did not answer in time (read the node)", status.message)
      assert.is_nil(headers["retry-after"])
      assert.equal(before, reboots_of(aws, A.instance))
      assert.is_nil(lease_phase("aws-slow-kube"))
      kube.control("PUT", "/faults", {})
      assert_serving()
    end)

    for _, case in ipairs({
      { what = "invalid JSON", fault = { status = 200, body = '{"kind":"Node","metadata":', content_type =
        "application/json" }, message = "^the Kubernetes API gave an answer that cannot be read %(read the node%): "
        .. "the response body is not a JSON object$" },
      { what = "a protobuf body (wrong content type)", fault = { status = 200, body = "k8s\0\n\16\n\2v1\18\4Node",
        content_type = "application/vnd.kubernetes.protobuf" }, message = "^the Kubernetes API gave an answer "
        .. "that cannot be read %(read the node%): the response body is not a JSON object$" },
      { what = "a truncated body", fault = { status = 200, body = '{"kind":"Node","apiVersion":"v1","metadata":'
        .. '{"name":"aws-kube-garbage"}}', content_type = "application/json", truncate = 20 },
        message = "^the Kubernetes API could not be reached %(read the node%): .+" },
    }) do
      it("answering garbage (" .. case.what .. "): 503 saying so, nothing rebooted", function()
        local before = reboots_of(aws, A.instance)
        kube.control("PUT", "/faults", { ["get nodes"] = case.fault })
        local code, status = restart("aws-kube-garbage")
        assert.equal(503, code)
        assert.equal("ServiceUnavailable", status.reason)
        assert.matches(case.message, status.message)
        assert.equal(before, reboots_of(aws, A.instance))
        kube.control("PUT", "/faults", {})
        assert_serving()
      end)
    end
  end)

  describe("kube-apiserver losing its answers to what it wrote", function()
    -- The connection dies after the write landed: libcurl sends the request again on a new
    -- connection, and the second attempt finds the first one's Lease or Event.
    local function status_text(e) -- the request log's status: a number, or what became of the answer
      return type(e.status) == "number" and ("%d"):format(e.status) or e.status
    end

    it("a Lease create, the outcome's update and the Event: each found as its own; 202, one reboot, "
      .. "the lease says Requested, nothing logged", function()
      local before = reboots_of(aws, A.instance)
      kube.clear_requests()
      local lost = { lose_answer = true, times = 1 }
      kube.control("PUT", "/faults", { ["create leases"] = lost, ["update leases"] = lost, ["create events"] = lost })
      local code, nr = restart("aws-kube-lost")
      assert.equal(202, code)
      assert.equal("NodeRestart", nr.kind)
      assert.equal(before + 1, reboots_of(aws, A.instance))
      assert.equal("Requested", lease_phase("aws-kube-lost"))
      local writes = {}
      for _, e in ipairs(kube.requests(function(e) return e.method ~= "GET" end)) do
        writes[#writes + 1] = e.method .. " " .. e.path:match("[^/]+$") .. " " .. status_text(e)
      end
      assert.same({ "POST subjectaccessreviews 201", "POST leases answer lost (201)", "POST leases 409",
        "PUT restart-aws-kube-lost answer lost (200)", "PUT restart-aws-kube-lost 409",
        "POST events answer lost (201)", "POST events 409" }, writes)
      for _, e in ipairs(srv.log()) do
        assert.is_falsy(e.msg:match("could not record"), e.msg)
      end
      assert_serving()
    end)

    it("a Lease create whose second attempt is lost too (an error, no answer): read back, its own; 202, one "
      .. "reboot", function()
      local before = reboots_of(aws, A.instance)
      kube.clear_requests()
      kube.control("PUT", "/faults", { ["create leases"] = { lose_answer = true, times = 2 } })
      local code = restart("aws-kube-lost-twice")
      assert.equal(202, code)
      assert.equal(before + 1, reboots_of(aws, A.instance))
      assert.equal("Requested", lease_phase("aws-kube-lost-twice"))
      local leases = {}
      for _, e in ipairs(kube.requests(function(e) return e.path:match("/leases") end)) do
        leases[#leases + 1] = e.method .. " " .. status_text(e)
      end
      assert.same({ "POST answer lost (201)", "POST answer lost (409)", "GET 200", "PUT 200" }, leases)
      assert_serving()
    end)
  end)

  describe("cloud endpoints", function()
    for _, case in ipairs({
      { node = "aws-reset", fake = function() return aws end, fault = { RebootInstances = { reset = true } },
        what = "resets the connection" },
      { node = "tc-close", fake = function() return tc end, fault = { RebootInstances = { close = true } },
        what = "closes the connection without answering" },
    }) do
      it(case.what .. ": 504 without Retry-After, the node stays locked (the reboot may have gone out)", function()
        local fake = case.fake()
        fake.faults(case.fault)
        local code, status, headers = restart(case.node)
        assert.equal(504, code)
        assert.equal("Timeout", status.reason)
        assert.matches('may or may not have happened', status.message)
        assert.is_nil(headers["retry-after"])
        assert.equal("Unknown", lease_phase(case.node))
        fake.faults({})
        local again, conflict = restart(case.node)
        assert.equal(409, again)
        assert.equal("Conflict", conflict.reason)
        assert_serving()
      end)
    end

    it("hangs after acting on the reboot: 504, exactly one reboot, the node stays locked", function()
      local before = reboots_of(tc, T.instance)
      tc.faults({ RebootInstances = { hang = true, record_before_delay = true, times = 1 } })
      local code, status = restart("tc-lost-answer")
      assert.equal(504, code)
      assert.matches("^Timeout: the cloud provider did not answer; the restart of node \"tc%-lost%-answer\" may or "
        .. "may not have happened %(tencentcloud: timed out: RebootInstances", status.message)
      assert.equal(before + 1, reboots_of(tc, T.instance))
      assert.equal("Unknown", lease_phase("tc-lost-answer"))
      assert.equal(409, (restart("tc-lost-answer")))
      assert.equal(before + 1, reboots_of(tc, T.instance))
    end)

    it("answers 5xx (an HTML error page) then 200: retried, 202, one reboot", function()
      local function attempts()
        return #tc.requests(function(r) return r.action == "RebootInstances" end)
      end
      local before, tried = reboots_of(tc, T.instance), attempts()
      tc.faults({ RebootInstances = { status = 502, body = "<html><body>502 Bad Gateway</body></html>",
        content_type = "text/html", times = 1 } })
      local code, nr = restart("tc-5xx")
      assert.equal(202, code)
      assert.equal("NodeRestart", nr.kind)
      assert.equal(before + 1, reboots_of(tc, T.instance))
      assert.equal(tried + 2, attempts())
      assert.equal("Requested", lease_phase("tc-5xx"))
    end)

    for _, case in ipairs({
      { node = "aws-garbage", fake = function() return aws end, body = "<<<RebootInstancesResponse garbage",
        content_type = "text/xml", says = "aws: EC2 answered 200 without a RebootInstancesResponse returning true" },
      { node = "tc-garbage", fake = function() return tc end, body = '{"Response": [1, 2',
        content_type = "application/json", says = "tencentcloud: RebootInstances: the answer from 127%.0%.0%.1:%d+ "
          .. "is not an API 3%.0 JSON response %(InvalidResponse" },
    }) do
      it("answers 200 with a malformed body (" .. case.node .. "): 502, the node stays locked", function()
        local fake = case.fake()
        fake.faults({ RebootInstances = { status = 200, body = case.body, content_type = case.content_type } })
        local code, status, headers = restart(case.node)
        assert.equal(502, code)
        assert.equal("BadGateway", status.reason)
        assert.matches("^the cloud provider's answer could not be understood; the restart of node \"" ..
          case.node:gsub("%-", "%%-") .. "\" may or may not have happened: " .. case.says, status.message)
        assert.is_nil(headers["retry-after"])
        assert.equal("Unknown", lease_phase(case.node))
        assert_serving()
      end)
    end
  end)

  describe("the serving certificate", function()
    local function fingerprint(s)
      return shell.must(("openssl s_client -connect 127.0.0.1:%d -servername localhost </dev/null 2>/dev/null "
        .. "| openssl x509 -noout -fingerprint -sha256"):format(s.port)):match("=(%S+)")
    end

    it("replaced by an invalid file: the old one stays in use and the error is logged", function()
      local dir = shell.temp_dir()
      shell.must(("cp %s/serving.crt %s/serving.key %s/"):format(pki, pki, dir))
      local s = start_server(kube, nil, { cert = dir .. "/serving.crt", key = dir .. "/serving.key" })
      local original = fingerprint(s)
      local replacements = {
        "not a certificate\n",
        shell.read_file(pki .. "/admin.crt"), -- a valid certificate, but not for this key
      }
      local results = {}
      for i, text in ipairs(replacements) do
        shell.write_file(dir .. "/serving.crt.new", text)
        shell.must(("mv %s/serving.crt.new %s/serving.crt"):format(dir, dir))
        local logged = shell.wait_for(function()
          return #s.entries("TLS files changed but cannot be loaded; still serving the previous certificates") >= i
        end, 10)
        results[i] = { logged = logged, fingerprint = fingerprint(s), ready = request(s, "/readyz",
          { as = "anonymous" }) }
      end
      local errors = s.entries("TLS files changed but cannot be loaded; still serving the previous certificates")
      s.cleanup()
      shell.remove_tree(dir)
      assert.is_string(original)
      for i, r in ipairs(results) do
        assert.is_true(r.logged, "replacement " .. i)
        assert.equal(original, r.fingerprint, "replacement " .. i)
        assert.equal(200, r.ready, "replacement " .. i)
      end
      assert.equal(2, #errors)
      assert.matches("tls%-cert%-file", errors[1].error)
    end)
  end)

  describe("provider scripts", function()
    local function limit_entries(request_id)
      return srv.entries("a provider call hit its limit; closing its Lua state", { request_id = request_id })
    end

    for _, case in ipairs({
      { how = "loop", limit = "instruction limit (--provider-instruction-limit=" .. INSTRUCTIONS .. ")",
        what = "loops forever" },
      { how = "catch", limit = "instruction limit (--provider-instruction-limit=" .. INSTRUCTIONS .. ")",
        what = "loops, catching the limit's error in its own pcall" },
      { how = "coroutine", limit = "instruction limit (--provider-instruction-limit=" .. INSTRUCTIONS .. ")",
        what = "loops in a coroutine, catching the error" },
      { how = "hog", limit = "memory limit (--provider-memory-limit=8Mi)", what = "allocates without bound" },
    }) do
      it(case.what .. ": 500 naming the provider and the limit, logged once, the node left free", function()
        local node = "runaway-" .. case.how
        local code, status, headers = restart(node)
        assert.equal(500, code)
        assert.equal("InternalError", status.reason)
        assert.equal("Internal error occurred: runaway: the restart call exceeded its " .. case.limit,
          status.message)
        local logged = limit_entries(headers["audit-id"])
        assert.equal(1, #logged)
        assert.matches("^provider runaway %(restart%): " .. (case.how == "hog" and "memory" or "instruction")
          .. " limit exceeded$", logged[1].error)
        assert.is_nil(lease_phase(node)) -- no HTTP request was made: nothing can have been rebooted
        assert.equal(500, (restart(node))) -- not 409
        assert_serving()
      end)
    end

    it("loops in match: 500 for the restart of its node, the others unaffected", function()
      local code, status = restart("runaway-match-loop")
      assert.equal(500, code)
      assert.equal("Internal error occurred: runaway: the match call exceeded its instruction limit "
        .. "(--provider-instruction-limit=" .. INSTRUCTIONS .. ")", status.message)
      local code2 = restart("aws-after", { query = "?dryRun=All" })
      assert.equal(202, code2)
    end)

    it("a Lua state whose provider call hit a limit is replaced, not reused", function()
      local function count()
        local code, nr = restart("runaway-count", { query = "?dryRun=All" })
        assert.equal(202, code)
        return nr.status.requestID
      end
      local first = count()
      local second = count()
      assert.equal(tonumber(first:match("%d+")) + 1, tonumber(second:match("%d+"))) -- one state, reused
      assert.equal(500, (restart("runaway-loop")))
      assert.equal("count-1", count()) -- the module's counter starts again: a fresh state
    end)
  end)

  describe("SIGTERM during a restart waiting on a slow cloud", function()
    -- Starts a server, sends a restart of node whose cloud call takes delay
    -- seconds, sends SIGTERM once the call reached the cloud. Returns the HTTP
    -- status the client got (0: none), the decoded body, the exit code, the log.
    local function restart_then_sigterm(node, delay, args)
      local s = start_server(kube, args)
      local function calls()
        return #aws.requests(function(r) return r.action == "RebootInstances" end)
      end
      local seen = calls()
      aws.faults({ RebootInstances = { delay = delay } })
      local out = s.dir .. "/sigterm-restart"
      shell.spawn(("curl -s -o %s.body -w '%%{http_code}' --max-time 30 -X POST --cacert %s --cert %s --key %s "
        .. "-H 'X-Remote-User: alice' -H 'X-Remote-Group: system:authenticated' %s >%s.tmp; mv %s.tmp %s"):format(
        out, pki .. "/serving-ca.crt", pki .. "/front-proxy-client.crt", pki .. "/front-proxy-client.key",
        s.url(GV .. "/nodes/" .. node .. "/restart"), out, out, out))
      assert.is_truthy(shell.wait_for(function() return calls() > seen end, 10))
      s.signal("TERM")
      local status = shell.wait_for(function() return tonumber(shell.read_file(out) or "") end, 30)
      local exit = s.wait_exit(30)
      local ok, body = pcall(cjson.decode, shell.read_file(out .. ".body") or "")
      local log = s.log()
      s.cleanup()
      return status, ok and body or nil, exit, log
    end

    local function messages(log)
      local out = {}
      for _, e in ipairs(log) do
        out[e.msg] = (out[e.msg] or 0) + 1
      end
      return out
    end

    it("finishes the restart before exiting: 202, one reboot, the lease says Requested, exit 0", function()
      local before = reboots_of(aws, A.instance)
      local status, nr, exit, log = restart_then_sigterm("aws-sigterm", 2)
      assert.equal(202, status)
      assert.equal("NodeRestart", nr.kind)
      assert.equal(before + 1, reboots_of(aws, A.instance))
      assert.equal("Requested", lease_phase("aws-sigterm"))
      assert.equal(0, exit)
      local seen = messages(log)
      assert.equal(1, seen["shutting down: no new connections, finishing requests"])
      assert.equal(1, seen["restart requested"])
      assert.is_nil(seen["shutdown timeout reached with requests still in flight"])
    end)

    it("past --shutdown-timeout: the server still waits for the restart, the client gets its 202 and the lease "
      .. "says so", function()
        local before = reboots_of(aws, A.instance)
        local status, nr, exit, log = restart_then_sigterm("aws-sigterm-late", 3, { "--shutdown-timeout=1s" })
        assert.equal(202, status)
        assert.equal("NodeRestart", nr.kind)
        assert.equal(before + 1, reboots_of(aws, A.instance))
        assert.equal("Requested", lease_phase("aws-sigterm-late"))
        assert.equal(0, exit)
        local seen = messages(log)
        assert.equal(1, seen["shutdown timeout reached with requests still in flight"])
        assert.equal(1, seen["restart requested"])
      end)
  end)

  it("exits 0 after all of the above: no leak or sanitizer finding in the states it replaced", function()
    local log = srv.log()
    assert.equal(0, srv.stop())
    local replaced = 0
    for _, e in ipairs(log) do
      replaced = replaced + (e.msg == "a provider call hit its limit; closing its Lua state" and 1 or 0)
    end
    assert.is_true(replaced >= 8)
  end)
end)
