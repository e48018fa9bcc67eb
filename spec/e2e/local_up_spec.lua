-- End to end: hack/local-up.sh, the one-command sandbox. Started in the background
-- with its own state directory; kubectl and the plugin used with the kubeconfig it
-- writes; then SIGINT must stop everything it started.
local cjson = require("cjson")
local shell = require("spec.helpers.shell")

local BUILD = os.getenv("MYAPISERVER_BUILD_DIR") or "build"
local PYTHON = (os.execute("test -x /usr/bin/python3") and "/usr/bin/python3") or "python3"

describe("hack/local-up.sh", function()
  local dir, state, ready, endpoints, hack, pid

  local function exit_code()
    return tonumber((shell.read_file(dir .. "/rc") or ""):match("%d+"))
  end

  setup(function()
    dir = shell.temp_dir()
    state = dir .. "/state"
    ready = dir .. "/ready"
    hack = (shell.must("pwd"):gsub("%s+$", "")) .. "/hack"
    -- A background `sh -c '... &'` starts with SIGINT ignored, which bash cannot trap:
    -- a small Python wrapper restores the default before exec'ing the script.
    local wrapper = PYTHON .. [[ -c 'import os, signal, sys
signal.signal(signal.SIGINT, signal.SIG_DFL)
os.execv(sys.argv[1], sys.argv[1:])' hack/local-up.sh]]
    local env = "LOCAL_UP_SKIP_BUILD=1 MYAPISERVER_BUILD_DIR=" .. shell.quote(BUILD)
      .. " LOCAL_UP_DIR=" .. shell.quote(state) .. " LOCAL_UP_READY_FILE=" .. shell.quote(ready)
    shell.spawn(("%s %s >%s/out 2>%s/err & echo $! >%s/pid; wait $!; echo $? >%s/rc"):format(
      env, wrapper, dir, dir, dir, dir))
    pid = shell.wait_for(function()
      return tonumber((shell.read_file(dir .. "/pid") or ""):match("%d+"))
    end, 10)
    local ok = shell.wait_for(function()
      return shell.read_file(ready) or exit_code()
    end, 60, 0.1)
    if shell.read_file(ready) then
      endpoints = cjson.decode(shell.read_file(state .. "/endpoints.json"))
    else
      error("local-up did not get ready (" .. tostring(ok) .. "): " .. tostring(shell.read_file(dir .. "/err")))
    end
  end)

  teardown(function()
    if pid and not exit_code() then
      os.execute(("kill -TERM %d 2>/dev/null"):format(pid))
      shell.wait_for(exit_code, 20)
    end
    for p in (shell.read_file(state .. "/pids") or ""):gmatch("%d+") do
      os.execute(("kill -KILL %s 2>/dev/null"):format(p))
    end
    shell.remove_tree(dir)
  end)

  local function kubectl(args)
    local words = { "kubectl" }
    for _, a in ipairs(args) do
      words[#words + 1] = a
    end
    -- As the printed instructions say: KUBECONFIG and PATH (the plugin takes no flags before its name).
    return shell.run("KUBECONFIG=" .. shell.quote(state .. "/kubeconfig") .. " PATH="
      .. shell.quote(hack .. ":" .. os.getenv("PATH")) .. " HOME=" .. shell.quote(dir)
      .. " " .. shell.join(words))
  end

  local function control(url)
    return cjson.decode(shell.must("curl -fsS --max-time 10 " .. shell.quote(url)))
  end

  it("prints the commands to try and where the logs are", function()
    local out = shell.read_file(dir .. "/out")
    assert.truthy(out:find("export KUBECONFIG=" .. state .. "/kubeconfig", 1, true), out)
    assert.truthy(out:find("kubectl restart node ip-10-0-1-7.ec2.internal", 1, true), out)
    assert.truthy(out:find("*.log", 1, true), out)
  end)

  it("kubectl get nodes.infraops.michael.io lists the fake nodes with their clouds", function()
    local code, out = kubectl({ "get", "nodes.infraops.michael.io" })
    assert.equal(0, code, out)
    assert.matches("^NAME%s+PROVIDER%s+INSTANCE", out)
    assert.matches("ip%-10%-0%-1%-7%.ec2%.internal%s+aws%s+i%-0123456789abcdef0", out)
    assert.matches("tke%-worker%-1%s+tencentcloud%s+ins%-abcdefgh", out)
  end)

  it("kubectl restart node reboots the instance once at the fake EC2 and records an Event", function()
    local before = #control(endpoints.aws_control_url .. "/reboots")
    local code, out = kubectl({ "restart", "node", "ip-10-0-1-7.ec2.internal", "--reason", "trying it out" })
    assert.equal(0, code, out)
    assert.matches("node/ip%-10%-0%-1%-7%.ec2%.internal restart requested %(aws i%-0123456789abcdef0", out)
    local reboots = control(endpoints.aws_control_url .. "/reboots")
    assert.equal(1, #reboots - before)
    assert.equal("i-0123456789abcdef0", reboots[#reboots].instance)
    local events = control(endpoints.kube_control_url .. "/events")
    events = events.items or events
    local found
    for _, e in ipairs(events) do
      if e.involvedObject.name == "ip-10-0-1-7.ec2.internal" and e.reason == "RestartRequested" then
        found = e
      end
    end
    assert.is_table(found)
    assert.truthy(found.message:find("trying it out", 1, true), found.message)
  end)

  it("refuses to restart the server's own node", function()
    local code, out = kubectl({ "restart", "node", "ip-10-0-0-5.ec2.internal" })
    assert.equal(1, code, out)
    assert.matches("Forbidden", out)
  end)

  it("SIGINT stops everything it started, exits 0 and frees the ports", function()
    local pids = {}
    for p in (shell.read_file(state .. "/pids") or ""):gmatch("%d+") do
      pids[#pids + 1] = p
    end
    assert.equal(4, #pids)
    assert.equal(tostring(pid), (shell.read_file(state .. "/local-up.pid") or ""):match("%d+"))
    os.execute(("kill -INT %d"):format(pid))
    assert.equal(0, shell.wait_for(exit_code, 30))
    for _, p in ipairs(pids) do
      assert.is_not_true(os.execute("kill -0 " .. p .. " 2>/dev/null"), "process " .. p .. " still runs")
    end
    for _, port in ipairs(endpoints.ports) do
      local code = shell.run(("curl -sk --max-time 2 -o /dev/null http://127.0.0.1:%d/"):format(port))
      assert.equal(7, code, "port " .. tostring(port) .. " still answers") -- 7: could not connect
    end
    assert.is_nil(shell.read_file(ready))
    assert.is_nil(shell.read_file(state .. "/local-up.pid"))
  end)

  it("--help describes it and a bad argument exits 2", function()
    local code, out = shell.run("hack/local-up.sh --help")
    assert.equal(0, code, out)
    assert.matches("LOCAL_UP_READY_FILE", out)
    code, out = shell.run("hack/local-up.sh --bogus")
    assert.equal(2, code, out)
    assert.matches("unknown argument", out)
  end)
end)
