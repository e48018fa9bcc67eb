-- End to end: restarting nodes of both clouds through kubectl, the fake
-- aggregator, the real server and provider scripts, against fake cloud APIs
-- that verify every signature and record every reboot.
local cjson = require("cjson")
local fake_cloud = require("spec.helpers.fake_cloud")
local fake_kube = require("spec.helpers.fake_kube")
local server = require("spec.helpers.server")
local shell = require("spec.helpers.shell")

local GV = "/apis/infraops.michael.io/v1"
local SA = "system:serviceaccount:default:myapiserver"
local A, T = fake_cloud.AWS, fake_cloud.TENCENT

local function literal(s) -- a Lua pattern matching s literally
  return (s:gsub("%p", "%%%0"))
end

local function ready_node(name, provider_id, labels)
  return { name = name, providerID = provider_id, labels = labels or {}, ready = true }
end

local NODES = {
  ready_node("aws-1", "aws:///us-east-1a/" .. A.instance),
  ready_node("aws-eu", "aws:///eu-west-1b/" .. A.eu_instance),
  ready_node("aws-stopped", "aws:///us-east-1c/" .. A.stopped_instance),
  ready_node("tc-1", "qcloud:///100003/" .. T.instance,
    { ["topology.com.tencent.cloud.csi.cbs/zone"] = "ap-guangzhou-3" }),
  ready_node("cp-1", "aws:///us-east-1a/" .. A.instance, { ["node-role.kubernetes.io/control-plane"] = "" }),
  ready_node("self-node", "aws:///us-east-1a/" .. A.instance),
  { name = "bare", ready = true },
  ready_node("aws-race", "aws:///us-east-1a/" .. A.instance),
  ready_node("aws-throttled", "aws:///us-east-1a/" .. A.instance),
  ready_node("aws-throttled-long", "aws:///us-east-1a/" .. A.instance),
  ready_node("aws-5xx", "aws:///us-east-1a/" .. A.instance),
  ready_node("aws-hang", "aws:///us-east-1a/" .. A.instance),
  ready_node("aws-irsa", "aws:///us-east-1a/" .. A.instance),
  ready_node("aws-pod-identity", "aws:///us-east-1a/" .. A.instance),
  ready_node("aws-plugins", "aws:///us-east-1a/" .. A.instance),
  ready_node("gce-1", "gce://project/us-central1-a/vm-1"),
}

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

describe("restarting nodes end to end", function()
  local pki, kube, aws, tc, srv

  -- kubectl create --raw as alice; returns code, output.
  local function restart(node, query, body)
    local path = GV .. "/nodes/" .. node .. "/restart" .. (query or "")
    local file = srv.dir .. "/body.json"
    shell.write_file(file, body or "")
    return kube.kubectl("alice", { "create", "--raw", path, "-f", file })
  end

  local function start_server(env, args)
    local s = server.start({ pki = pki, kubeconfig = kube.kubeconfig({ token = "sa-token" }),
      client_ca = false, requestheader_ca = false, env = env,
      args = merged({ "--node-name=self-node", "--lease-namespace=infra", "--restart-cooldown=10m" }, args or {}) })
    kube.set_backend(s.port)
    return s
  end

  setup(function()
    pki = server.pki()
    aws = fake_cloud.start_aws()
    tc = fake_cloud.start_tencentcloud()
    kube = fake_kube.start({ pki = pki, config = {
      nodes = NODES, rbac = rbac(), tokens = { ["sa-token"] = { username = SA } },
    } })
    srv = start_server(merged(aws.env(), tc.env()))
  end)

  teardown(function()
    for _, x in ipairs({ srv, kube, aws, tc }) do
      if x then
        (x.cleanup or x.stop)()
      end
    end
  end)

  it("restarts an AWS node: one verified reboot, a Lease, an Event naming the user", function()
    local code, out = restart("aws-1", nil, '{"reason":"kernel upgrade"}')
    assert.equal(0, code, out)
    local nr = cjson.decode(out)
    assert.equal("NodeRestart", nr.kind)
    assert.same({ "aws", A.instance, "us-east-1", "alice" },
      { nr.status.provider, nr.status.instanceID, nr.status.region, nr.status.requestedBy })
    local reboots = aws.reboots()
    assert.equal(1, #reboots)
    assert.equal(A.instance, reboots[1].instance)
    assert.equal(nr.status.requestID, reboots[1].request_id)
    local events = kube.control("GET", "/events")
    events = events.items or events
    local found
    for _, e in ipairs(events) do
      if e.involvedObject.name == "aws-1" and e.reason == "RestartRequested" then
        found = e
      end
    end
    assert.is_table(found)
    assert.matches("alice", found.message)
    assert.matches("kernel upgrade", found.message)
    assert.matches(literal(nr.status.requestID), found.message)
  end)

  it("refuses a second restart of the node inside its cooldown with 409", function()
    local code, out = restart("aws-1")
    assert.not_equal(0, code)
    assert.matches("Error from server %(Conflict%)", out)
    assert.equal(1, #aws.reboots())
  end)

  it("restarts a Tencent Cloud node with a soft-first reboot", function()
    local code, out = restart("tc-1")
    assert.equal(0, code, out)
    local reboots = tc.reboots()
    assert.equal(1, #reboots)
    assert.equal(T.instance, reboots[1].instance)
    assert.equal("SOFT_FIRST", reboots[1].stop_type)
  end)

  it("dry run checks with the cloud and reboots nothing", function()
    local before = #aws.reboots()
    local code, out = restart("aws-eu", "?dryRun=All")
    assert.equal(0, code, out)
    assert.is_true(cjson.decode(out).status.dryRun)
    assert.equal(before, #aws.reboots())
    local code2 = restart("aws-eu") -- no lease was taken by the dry run
    assert.equal(0, code2)
  end)

  for _, case in ipairs({
    { node = "self-node", line = "Error from server %(Forbidden%)", why = "the node the server runs on" },
    { node = "cp-1", line = "Error from server %(Forbidden%)", why = "a control-plane node" },
    { node = "bare", line = 'The Node "bare" is invalid: spec.providerID', why = "a node without providerID" },
    { node = "gce-1", line = "loaded providers: aws, tencentcloud", why = "a node no provider matches" },
    { node = "ghost", line = 'Error from server %(NotFound%): nodes.infraops.michael.io "ghost" not found',
      why = "a missing node" },
    { node = "Bad_Name", line = "Error from server %(BadRequest%)", why = "an invalid name" },
  }) do
    it("refuses " .. case.why, function()
      local before = #aws.reboots()
      local code, out = restart(case.node)
      assert.not_equal(0, code)
      assert.matches(case.line, out)
      assert.equal(before, #aws.reboots())
    end)
  end

  it("maps a refusing cloud (stopped instance) to a BadGateway naming the cloud code", function()
    local code, out = restart("aws-stopped")
    assert.not_equal(0, code)
    assert.matches("Error from server %(BadGateway%)", out)
    assert.matches("Incorrect", out)
  end)

  it("lists nodes with their cloud view for kubectl get", function()
    local code, out = kube.kubectl("alice", { "get", "nodes.infraops.michael.io" })
    assert.equal(0, code, out)
    assert.matches("NAME%s+PROVIDER%s+INSTANCE%s+REGION%s+RESTARTABLE%s+AGE", out)
    assert.matches("aws%-1%s+aws%s+" .. literal(A.instance) .. "%s+us%-east%-1%s+true", out)
    assert.matches("tc%-1%s+tencentcloud%s+" .. literal(T.instance) .. "%s+ap%-guangzhou%s+true", out)
    assert.matches("cp%-1%s+aws%s+%S+%s+%S+%s+false", out)
  end)

  it("shows the last restart on the node", function()
    local node = kube.kubectl_json("alice", { "get", "--raw", GV .. "/nodes/aws-1" })
    assert.equal("Requested", node.status.lastRestart.phase)
    assert.equal("alice", node.status.lastRestart.requestedBy)
  end)

  describe("under faults", function()
    local function reboot_attempts()
      return #aws.requests(function(r) return r.action == "RebootInstances" end)
    end

    -- POST as alice through the front-proxy certificate, in the background; returns a
    -- function that gives the HTTP status once the request is done.
    local function background_restart(node, tag)
      local out = srv.dir .. "/" .. tag
      shell.spawn(("curl -s -o /dev/null -w '%%{http_code}' --max-time 30 -X POST --cacert %s --cert %s --key %s "
        .. "-H 'X-Remote-User: alice' -H 'X-Remote-Group: system:authenticated' %s >%s.tmp; mv %s.tmp %s"):format(
        pki .. "/serving-ca.crt", pki .. "/front-proxy-client.crt", pki .. "/front-proxy-client.key",
        srv.url(GV .. "/nodes/" .. node .. "/restart"), out, out, out))
      return function() return tonumber(shell.read_file(out) or "") end
    end

    after_each(function()
      aws.faults({})
    end)

    it("lets only one of two concurrent restarts of a node reboot it; the other gets 409", function()
      local before = #aws.reboots()
      aws.faults({ RebootInstances = { delay = 1 } }) -- both requests are in flight together
      local first = background_restart("aws-race", "race-1")
      local second = background_restart("aws-race", "race-2")
      local codes = { shell.wait_for(first, 20), shell.wait_for(second, 20) }
      table.sort(codes)
      assert.same({ 202, 409 }, codes)
      assert.equal(before + 1, #aws.reboots())
    end)

    it("retries throttling with backoff and reboots once", function()
      local before, attempts = #aws.reboots(), reboot_attempts()
      aws.faults({ RebootInstances = { code = "RequestLimitExceeded", times = 2 } })
      local code, out = restart("aws-throttled")
      assert.equal(0, code, out)
      assert.equal(before + 1, #aws.reboots())
      assert.equal(attempts + 3, reboot_attempts())
    end)

    it("answers lasting throttling with 429, releasing the node for a later try", function()
      local before = #aws.reboots()
      aws.faults({ RebootInstances = { code = "RequestLimitExceeded", times = 10 } })
      local code, out = restart("aws-throttled-long")
      assert.not_equal(0, code)
      assert.matches("Error from server %(TooManyRequests%)", out)
      assert.equal(before, #aws.reboots())
      aws.faults({})
      assert.equal(0, (restart("aws-throttled-long")))
      assert.equal(before + 1, #aws.reboots())
    end)

    it("retries a 5xx and then succeeds", function()
      local before = #aws.reboots()
      aws.faults({ RebootInstances = { status = 503, code = "Unavailable", times = 1 } })
      local code, out = restart("aws-5xx")
      assert.equal(0, code, out)
      assert.equal(before + 1, #aws.reboots())
    end)

    it("answers a cloud that never answers with 504, keeping the node locked (the reboot may have happened)", function()
      aws.faults({ RebootInstances = { hang = true, times = 1 } })
      local code, out = restart("aws-hang")
      assert.not_equal(0, code)
      assert.matches("Error from server %(Timeout%)", out)
      aws.faults({})
      local code2, out2 = restart("aws-hang")
      assert.not_equal(0, code2)
      assert.matches("Error from server %(Conflict%)", out2)
    end)
  end)

  describe("with other AWS credentials", function()
    local function restart_with(env, node)
      local other = start_server(merged(env, tc.env()))
      local before = #aws.reboots()
      local code, out = restart(node)
      other.cleanup()
      kube.set_backend(srv.port)
      local reboots = aws.reboots()
      return code, out, #reboots - before, reboots[#reboots]
    end

    it("restarts with IRSA (web identity through STS)", function()
      local code, out, count, reboot = restart_with(aws.env("irsa"), "aws-irsa")
      assert.equal(0, code, out)
      assert.equal(1, count)
      assert.is_not.equal(A.access_key, reboot.access_key)
      assert.is_true(#aws.sts_calls() >= 1)
    end)

    it("restarts with EKS Pod Identity", function()
      local code, out, count, reboot = restart_with(aws.env("pod_identity"), "aws-pod-identity")
      assert.equal(0, code, out)
      assert.equal(1, count)
      assert.is_not.equal(A.access_key, reboot.access_key)
    end)
  end)

  it("serves with a provider script that has a syntax error next to good ones", function()
    local dir = shell.temp_dir()
    shell.must(("cp providers/aws.lua providers/tencentcloud.lua %s/"):format(dir))
    shell.write_file(dir .. "/broken.lua", "local broken = { name = 'broken'\nreturn broken\n")
    local other = start_server(merged(aws.env(), tc.env()), { "--providers-dir=" .. dir })
    local failures = other.entries("provider script failed to load; the others still serve")
    local before = #aws.reboots()
    local code, out = restart("aws-plugins")
    local ready = shell.must(("curl -s --cacert %s %s"):format(pki .. "/serving-ca.crt", other.url("/readyz?verbose")))
    other.cleanup()
    kube.set_backend(srv.port)
    shell.remove_tree(dir)
    assert.equal(1, #failures)
    assert.matches("broken%.lua", failures[1].file)
    assert.equal(0, code, out)
    assert.equal(before + 1, #aws.reboots())
    assert.matches("%[%+%]provider%-aws ok", ready)
    assert.matches("%[%+%]provider%-tencentcloud ok", ready)
  end)
end)
