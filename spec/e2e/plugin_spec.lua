-- End to end: the kubectl plugin (hack/kubectl-restart) run as `kubectl restart`,
-- through the fake kube-apiserver's aggregator, the real server and the fake EC2.
local cjson = require("cjson")
local fake_cloud = require("spec.helpers.fake_cloud")
local fake_kube = require("spec.helpers.fake_kube")
local server = require("spec.helpers.server")
local shell = require("spec.helpers.shell")

local SA = "system:serviceaccount:default:myapiserver"
local A = fake_cloud.AWS

local function literal(s) -- a Lua pattern matching s literally
  return (s:gsub("%p", "%%%0"))
end

local function aws_node(name)
  return { name = name, providerID = "aws:///us-east-1a/" .. A.instance, ready = true }
end

-- A full Node with a bootID (so that a new boot can be told apart) and a Ready condition.
local function booted_node(name, boot_id, ready)
  return {
    metadata = { name = name, labels = {} },
    spec = { providerID = "aws:///us-east-1a/" .. A.instance },
    status = {
      conditions = { { type = "Ready", status = ready and "True" or "False" } },
      nodeInfo = { kubeletVersion = "v1.33.1", bootID = boot_id },
    },
  }
end

local NODES = {
  aws_node("one"), aws_node("multi-a"), aws_node("multi-b"), aws_node("multi-c"),
  aws_node("dry"), aws_node("forbidden"), aws_node("after-ghost"), aws_node("reasoned"),
  booted_node("waited", "boot-1", true), booted_node("slow", "boot-1", true),
  booted_node("expired", "boot-1", true),
}

local function rbac()
  local rules = fake_kube.myapiserver_rules({ users = { SA } })
  rules[#rules + 1] = { subjects = { users = { "alice" } }, verbs = { "get", "list" },
    apiGroups = { "infraops.michael.io" }, resources = { "nodes" } }
  rules[#rules + 1] = { subjects = { users = { "alice" } }, verbs = { "create" },
    apiGroups = { "infraops.michael.io" }, resources = { "nodes/restart" } }
  return rules
end

describe("kubectl restart (the plugin) end to end", function()
  local pki, kube, aws, srv, hack, work

  setup(function()
    pki = server.pki()
    aws = fake_cloud.start_aws()
    kube = fake_kube.start({ pki = pki, config = {
      nodes = NODES, rbac = rbac(), tokens = { ["sa-token"] = { username = SA } },
    } })
    srv = server.start({ pki = pki, kubeconfig = kube.kubeconfig({ token = "sa-token" }),
      client_ca = false, requestheader_ca = false, env = aws.env(),
      args = { "--lease-namespace=infra", "--restart-cooldown=10m" } })
    kube.set_backend(srv.port)
    hack = (shell.must("pwd"):gsub("%s+$", "")) .. "/hack"
    work = shell.temp_dir()
  end)

  teardown(function()
    for _, x in ipairs({ srv, kube, aws }) do
      if x then
        (x.cleanup or x.stop)()
      end
    end
    shell.remove_tree(work)
  end)

  -- The command line for `kubectl restart ARGS...` as user, with hack/ in PATH.
  local function command(user, args)
    local words = { "kubectl", "restart" }
    if user then
      words[#words + 1] = "--kubeconfig=" .. kube.kubeconfig(user)
    end
    for _, a in ipairs(args) do
      words[#words + 1] = a
    end
    return "PATH=" .. shell.quote(hack .. ":" .. os.getenv("PATH")) .. " HOME=" .. shell.quote(work)
      .. " " .. shell.join(words)
  end

  -- Runs it; returns exit code, stdout, stderr.
  local function plugin(user, args)
    local err_path = work .. "/stderr"
    local code, out = shell.run(command(user, args) .. " 2>" .. shell.quote(err_path))
    return code, out, shell.read_file(err_path) or ""
  end

  -- Starts it in the background; returns a function giving code, stdout, stderr once it exited.
  local function background(user, args, tag)
    local base = work .. "/" .. tag
    shell.spawn(("%s >%s.out 2>%s.err; echo $? >%s.tmp; mv %s.tmp %s.rc"):format(command(user, args),
      base, base, base, base, base))
    return function()
      local rc = tonumber(shell.read_file(base .. ".rc") or "")
      if rc then
        return rc, shell.read_file(base .. ".out"), shell.read_file(base .. ".err")
      end
    end
  end

  local function reboots_since(before)
    return #aws.reboots() - before
  end

  it("restarts one node: one reboot at the cloud and a line naming instance and request id", function()
    local before = #aws.reboots()
    local code, out, err = plugin("alice", { "node", "one" })
    assert.equal(0, code, err)
    local reboots = aws.reboots()
    assert.equal(1, #reboots - before)
    local last = reboots[#reboots]
    assert.equal(A.instance, last.instance)
    assert.equal(("node/one restart requested (aws %s, request id %s)\n"):format(A.instance, last.request_id), out)
    assert.equal("", err)
  end)

  it("restarts several nodes in one call", function()
    local before = #aws.reboots()
    local code, out, err = plugin("alice", { "node", "multi-a", "multi-b", "multi-c" })
    assert.equal(0, code, err)
    assert.equal(3, reboots_since(before))
    for _, n in ipairs({ "multi-a", "multi-b", "multi-c" }) do
      assert.matches("node/" .. literal(n) .. " restart requested %(aws ", out)
    end
  end)

  it("--dry-run=server validates and reboots nothing", function()
    local before = #aws.reboots()
    local code, out, err = plugin("alice", { "node", "dry", "--dry-run=server" })
    assert.equal(0, code, err)
    assert.equal("node/dry restart validated (dry run)\n", out)
    assert.equal(0, reboots_since(before))
    local dry = kube.requests(function(r) return r.path:match("/nodes/dry/restart$") end)
    assert.equal(1, #dry)
    assert.same({ "All" }, dry[1].body.dryRun)
  end)

  it("prints kube's Forbidden line for a user without RBAC and exits 1", function()
    local before = #aws.reboots()
    local code, out, err = plugin("bob", { "node", "forbidden" })
    assert.equal(1, code)
    assert.equal("", out)
    assert.matches("^Error from server %(Forbidden%): ", err)
    assert.matches('User "bob" cannot create resource "nodes/restart"', err)
    assert.equal(0, reboots_since(before))
  end)

  it("prints the NotFound line for an unknown node, still restarts the others, and exits 1", function()
    local before = #aws.reboots()
    local code, out, err = plugin("alice", { "node", "ghost", "after-ghost" })
    assert.equal(1, code)
    assert.matches('Error from server %(NotFound%): nodes.infraops.michael.io "ghost" not found', err)
    assert.matches("node/after%-ghost restart requested", out)
    assert.equal(1, reboots_since(before))
  end)

  for _, case in ipairs({
    { args = {}, line = "you must name the nodes" },
    { args = { "node" }, line = "at least one node" },
    { args = { "pods", "x" }, line = 'unknown resource "pods"' },
    { args = { "node", "x", "--bogus" }, line = "unknown flag: %-%-bogus" },
    { args = { "node", "Bad_Name" }, line = 'invalid node name "Bad_Name"' },
    { args = { "node", "x", "--wait=soon" }, line = 'invalid %-%-wait value "soon"' },
    { args = { "node", "x", "--dry-run=client" }, line = 'invalid %-%-dry%-run value "client"' },
    { args = { "node", "x", "--reason" }, line = "flag needs an argument: %-%-reason" },
  }) do
    it("exits 2 on a usage error: " .. table.concat(case.args, " "), function()
      local before = #kube.requests()
      local code, out, err = plugin("alice", case.args)
      assert.equal(2, code)
      assert.equal("", out)
      assert.matches("^error: [^\n]*" .. case.line, err)
      assert.matches("See 'kubectl restart %-%-help' for usage", err)
      assert.equal(before, #kube.requests()) -- nothing was sent
    end)
  end

  it("sends --reason JSON-escaped: quotes, backslashes, control characters and UTF-8 reach the Event", function()
    local reason = 'say "hi" C:\\temp\\x\tüñí'
    local code, _, err = plugin("alice", { "node", "reasoned", "--reason", reason })
    assert.equal(0, code, err)
    local events = kube.control("GET", "/events")
    events = events.items or events
    local found
    for _, e in ipairs(events) do
      if e.involvedObject.name == "reasoned" and e.reason == "RestartRequested" then
        found = e
      end
    end
    assert.is_table(found)
    assert.truthy(found.message:find("(reason: " .. reason .. ")", 1, true), found.message)
  end)

  it("--wait follows the node to a new Ready boot and exits 0", function()
    local before = #aws.reboots()
    local done = background("alice", { "node", "waited", "--wait=30s", "--wait-interval=0.2s" }, "waited")
    assert.truthy(shell.wait_for(function() return reboots_since(before) == 1 end, 20))
    shell.sleep(0.5)
    assert.is_nil(done()) -- still waiting: the node reports its old boot
    kube.control("PUT", "/nodes/waited", booted_node("waited", "boot-2", false))
    shell.sleep(0.6)
    assert.is_nil(done()) -- a new boot, not Ready yet
    kube.control("PUT", "/nodes/waited", booted_node("waited", "boot-2", true))
    assert.truthy(shell.wait_for(done, 20))
    local code, out, err = done()
    assert.equal(0, code, err)
    assert.matches("node/waited restart requested %(aws ", out)
    assert.matches("node/waited restarted %(new boot, Ready%)\n$", out)
  end)

  it("--wait=2s without a new boot exits 3 after about two seconds", function()
    local started = os.time()
    local code, out, err = plugin("alice", { "node", "slow", "--wait=2s", "--wait-interval=0.2s" })
    assert.equal(3, code, err)
    assert.matches("node/slow restart requested", out)
    assert.matches("timed out after 2s waiting for node/slow to restart %(last phase: Requested%)", err)
    assert.is_true(os.time() - started < 15)
  end)

  it("exits 3 when the server reports TimedOut (no new boot within --restart-timeout)", function()
    local other = server.start({ pki = pki, kubeconfig = kube.kubeconfig({ token = "sa-token" }),
      client_ca = false, requestheader_ca = false, env = aws.env(),
      args = { "--lease-namespace=infra", "--restart-cooldown=10m", "--restart-timeout=1s" } })
    kube.set_backend(other.port)
    local code, out, err = plugin("alice", { "node", "expired", "--wait=30s", "--wait-interval=0.2s" })
    other.cleanup()
    kube.set_backend(srv.port)
    assert.equal(3, code, err)
    assert.matches("node/expired restart requested", out)
    assert.matches("node/expired: no new boot within the server's restart timeout %(phase TimedOut%)", err)
  end)

  it("passes --context to kubectl (an unknown context is kubectl's own error, exit 1)", function()
    local code, out, err = plugin("alice", { "node", "one", "--context", "elsewhere" })
    assert.equal(1, code)
    assert.equal("", out)
    assert.matches('context "elsewhere"', err)
  end)

  describe("with a stub kubectl", function()
    local stub

    -- Runs hack/kubectl-restart directly with a stub kubectl first in PATH that logs its
    -- arguments, keeps the bodies it is sent and answers restart.json / node.json.
    local function run(args, env)
      local words = { hack .. "/kubectl-restart" }
      for _, a in ipairs(args) do
        words[#words + 1] = a
      end
      local err_path = stub .. "/stderr"
      local code, out = shell.run(("%s PATH=%s STUB=%s %s 2>%s"):format(env or "",
        shell.quote(stub .. ":" .. os.getenv("PATH")), shell.quote(stub), shell.join(words), shell.quote(err_path)))
      return code, out, shell.read_file(err_path) or ""
    end

    local function calls()
      local out = {}
      for line in (shell.read_file(stub .. "/log") or ""):gmatch("[^\n]+") do
        out[#out + 1] = line
      end
      return out
    end

    local function answer(phase)
      shell.write_file(stub .. "/restart.json", cjson.encode({ kind = "NodeRestart",
        status = { provider = "aws", instanceID = "i-0abc", requestID = "req-1", dryRun = false } }))
      shell.write_file(stub .. "/node.json", cjson.encode({ kind = "Node",
        status = { lastRestart = { phase = phase, error = phase == "Unknown" and "cloud timeout" or nil } } }))
    end

    before_each(function()
      stub = shell.temp_dir()
      shell.write_file(stub .. "/kubectl", table.concat({
        "#!/bin/sh",
        'printf "%s\\n" "$*" >>"$STUB/log"',
        'prev=; for a in "$@"; do [ "$prev" = -f ] && { cat "$a"; echo; } >>"$STUB/bodies"; prev=$a; done',
        'case "$*" in',
        '  *"create --raw"*) cat "$STUB/restart.json" ;;',
        '  *"get --raw"*) cat "$STUB/node.json" ;;',
        "esac", "" }, "\n"))
      shell.must("chmod +x " .. shell.quote(stub .. "/kubectl"))
    end)

    after_each(function()
      shell.remove_tree(stub)
    end)

    it("passes --context, --kubeconfig and --request-timeout to every kubectl call", function()
      answer("Completed")
      local code, out, err = run({ "node", "n1", "n2", "--context", "c1", "--kubeconfig=/k/config",
        "--request-timeout", "7s", "--wait=10s", "--wait-interval=0.1s" })
      assert.equal(0, code, err)
      assert.equal(table.concat({ "node/n1 restart requested (aws i-0abc, request id req-1)",
        "node/n2 restart requested (aws i-0abc, request id req-1)",
        "node/n1 restarted (new boot, Ready)", "node/n2 restarted (new boot, Ready)", "" }, "\n"), out)
      local log = calls()
      assert.equal(4, #log)
      for _, line in ipairs(log) do
        assert.matches("^%-%-context=c1 %-%-kubeconfig=/k/config %-%-request%-timeout=7s ", line)
      end
      assert.matches("create %-%-raw /apis/infraops%.michael%.io/v1/nodes/n1/restart %-f ", log[1])
      assert.matches("get %-%-raw /apis/infraops%.michael%.io/v1/nodes/n2$", log[4])
    end)

    it("builds a JSON body that decodes back to the exact reason", function()
      answer("Requested")
      local reason = 'a "b" \\ c\n\1\127 d\té中'
      local code, _, err = run({ "node", "n1", "--reason", reason, "--dry-run=server" })
      assert.equal(0, code, err)
      local body = cjson.decode(shell.read_file(stub .. "/bodies"))
      assert.same({ apiVersion = "infraops.michael.io/v1", kind = "RestartOptions", reason = reason,
        dryRun = { "All" } }, body)
      answer("Requested")
      os.remove(stub .. "/bodies")
      run({ "node", "n1" })
      assert.equal('{"apiVersion":"infraops.michael.io/v1","kind":"RestartOptions"}\n\n',
        shell.read_file(stub .. "/bodies"))
    end)

    it("exits 1 with a clear message when the restart ends Unknown", function()
      answer("Unknown")
      local code, _, err = run({ "node", "n1", "--wait=10s", "--wait-interval=0.1s" })
      assert.equal(1, code)
      assert.matches("node/n1: the cloud did not answer; the VM may or may not have rebooted %(phase Unknown%): "
        .. "cloud timeout", err)
    end)

    it("reads the answers with sed when python3 is not there", function()
      answer("Completed")
      local code, out, err = run({ "node", "n1", "--wait=10s", "--wait-interval=0.1s" },
        "KUBECTL_RESTART_PYTHON=none")
      assert.equal(0, code, err)
      assert.equal("node/n1 restart requested (aws i-0abc, request id req-1)\n"
        .. "node/n1 restarted (new boot, Ready)\n", out)
    end)
  end)

  it("--help exits 0 and lists the flags and exit codes", function()
    for _, args in ipairs({ { "--help" }, { "node", "-h" } }) do
      local code, out = plugin(nil, args)
      assert.equal(0, code)
      for _, flag in ipairs({ "--dry-run", "--reason", "--wait", "--context", "--kubeconfig", "--request-timeout" }) do
        assert.matches(literal(flag), out)
      end
      assert.matches("Exit codes:", out)
      for _, n in ipairs({ "0", "1", "2", "3" }) do
        assert.matches("\n  " .. n .. "  ", out)
      end
    end
  end)

  it("is clean for shellcheck", function()
    if not os.execute("command -v shellcheck >/dev/null 2>&1") then
      pending("shellcheck is not installed")
      return
    end
    local code, out = shell.run("shellcheck " .. shell.quote(hack .. "/kubectl-restart"))
    assert.equal(0, code, out)
  end)
end)
