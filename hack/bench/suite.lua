-- The benchmark figures besides discovery (hack/bench/discovery.sh), against the
-- loopback fakes (spec/fakes: kube-apiserver, EC2), with the load generator
-- (hack/bench/loadgen) where requests must be concurrent or many:
--   restart   server-side latency of POST .../restart, sequential, and CPU
--             instructions per restart (valgrind --tool=callgrind)
--   isolation discovery p99 while 100 restarts wait on a 2 s cloud; 100
--             concurrent restarts against a 300 ms cloud, total time; peak RSS
--             with 400 restarts (the in-flight limit) waiting on a 2 s cloud
--   memory    RSS idle, peak under 64 connections, growth over 100,000 requests
--   start     exec to first answered /readyz (hack/bench/startup.sh)
--   scale     GET .../nodes for 500 to 5000 realistic nodes: time and peak RSS
-- Prints each section's figures as it goes, then a table with the budgets.
-- A benchmark: it asserts nothing. Run through hack/bench/run.sh.
--   lua5.4 hack/bench/suite.lua [section...]   (default: all, in the order above)
local cjson = require("cjson")
local fake_cloud = require("spec.helpers.fake_cloud")
local fake_kube = require("spec.helpers.fake_kube")
local server = require("spec.helpers.server")
local shell = require("spec.helpers.shell")

local BUILD = os.getenv("MYAPISERVER_BUILD_DIR") or "build"
local LOADGEN = BUILD .. "/loadgen"
local RUNS = tonumber(os.getenv("RUNS") or "") or 3
local GV = "/apis/infraops.michael.io/v1"
local SA = "system:serviceaccount:default:myapiserver"

local rows = {} -- the summary: { section, figure, value, budget, verdict }
local started = {} -- everything to stop, also when a step fails

local function track(x)
  started[#started + 1] = x
  return x
end

local function stop_all()
  for i = #started, 1, -1 do
    pcall(started[i].cleanup or started[i].stop)
  end
  started = {}
end

local function row(section, figure, value, budget, ok)
  rows[#rows + 1] = { section, figure, value, budget or "", budget and (ok and "OK" or "MISSED") or "" }
end

local function say(fmt, ...)
  io.write((fmt):format(...), "\n")
  io.flush()
end

-- ---- numbers ------------------------------------------------------------------------

local function sorted(xs)
  local copy = { table.unpack(xs) }
  table.sort(copy)
  return copy
end

local function percentile(xs, p)
  local s = sorted(xs)
  return s[math.max(1, math.ceil(#s * p))]
end

-- "median M (min A, max B)" of a list, with fmt for each number.
local function spread(xs, fmt)
  local s = sorted(xs)
  fmt = fmt or "%.2f"
  return (fmt .. " (min " .. fmt .. ", max " .. fmt .. ")"):format(percentile(s, 0.5), s[1], s[#s])
end

local function status_kib(pid, field)
  local text = shell.read_file(("/proc/%d/status"):format(pid)) or ""
  return tonumber(text:match(field .. ":%s*(%d+) kB"))
end

local function mib(kib)
  return kib / 1024
end

-- ---- the load generator ----------------------------------------------------------------

-- loadgen's result line as a table: numbers where numeric, statuses as { [code] = count }.
local function figures(output)
  local line = (output or ""):match("(requests=[^\n]+)")
  if not line then
    error("loadgen gave no figures: " .. tostring(output))
  end
  local r = {}
  for key, value in line:gmatch("([%w_]+)=(%S+)") do
    r[key] = tonumber(value) or value
  end
  r.statuses = {}
  for code, n in (line:match("statuses=(%S*)") or ""):gmatch("(%d+):(%d+)") do
    r.statuses[tonumber(code)] = tonumber(n)
  end
  return r
end

local function loadgen_command(args)
  return shell.join({ LOADGEN, table.unpack(args) }) .. " 2>&1"
end

local function loadgen(args)
  local _, out = shell.run(loadgen_command(args))
  return figures(out)
end

-- loadgen started in the background; returns a function that waits and gives its figures.
local function loadgen_background(args, dir, name)
  local out = dir .. "/" .. name .. ".out"
  shell.spawn(("%s >%s; mv %s %s"):format(loadgen_command(args), shell.quote(out .. ".tmp"),
    shell.quote(out .. ".tmp"), shell.quote(out)))
  return function(timeout)
    return figures(shell.wait_for(function()
      return shell.read_file(out)
    end, timeout or 120))
  end
end

-- ---- the fakes and the server ---------------------------------------------------------------

local pki

local function restart_rules()
  local rules = fake_kube.myapiserver_rules({ users = { SA } })
  rules[#rules + 1] = { subjects = { users = { "alice" } }, verbs = { "create" },
    apiGroups = { "infraops.michael.io" }, resources = { "nodes/restart" } }
  return rules
end

local function simple_nodes(count)
  local nodes = {}
  for i = 0, count - 1 do
    nodes[#nodes + 1] = { name = "node-" .. i, providerID = "aws:///us-east-1a/" .. fake_cloud.AWS.instance,
      ready = true }
  end
  return nodes
end

-- A fake EC2, a fake kube-apiserver with `nodes`, and myapiserver using both.
local function cluster(nodes, server_opts)
  local aws = track(fake_cloud.start_aws())
  -- Thousands of realistic nodes take the fake a while to load (each is encoded once, at start).
  local kube = track(fake_kube.start({ pki = pki, lifetime = 3600, start_timeout = 120, config = { nodes = nodes,
    rbac = restart_rules(),
    tokens = { ["sa-token"] = { username = SA } } } }))
  local opts = { pki = pki, kubeconfig = kube.kubeconfig({ token = "sa-token" }), client_ca = pki .. "/client-ca.crt",
    requestheader_ca = false, env = aws.env(), args = { "--lease-namespace=bench", "--node-name=none" } }
  for k, v in pairs(server_opts or {}) do
    opts[k] = v
  end
  local srv = track(server.start(opts))
  return aws, kube, srv
end

-- loadgen arguments for POST .../nodes/node-{i}/restart as alice through the front proxy.
local function restart_args(srv, extra, query)
  local args = { "--url", srv.url("/"), "--path-template", GV .. "/nodes/node-{i}/restart" .. (query or ""),
    "--method", "POST",
    "--cacert", pki .. "/serving-ca.crt", "--cert", pki .. "/front-proxy-client.crt",
    "--key", pki .. "/front-proxy-client.key", "--header", "X-Remote-User: alice",
    "--header", "X-Remote-Group: system:authenticated", "--expect-status", "202", "--timeout", "60" }
  for _, a in ipairs(extra) do
    args[#args + 1] = a
  end
  return args
end

-- loadgen arguments for discovery as admin (system:masters client certificate).
local function discovery_args(srv, extra)
  local args = { "--url", srv.url(GV), "--cacert", pki .. "/serving-ca.crt", "--cert", pki .. "/admin.crt",
    "--key", pki .. "/admin.key", "--expect-status", "200" }
  for _, a in ipairs(extra) do
    args[#args + 1] = a
  end
  return args
end

-- Server-side durations (ms) of answered restarts whose node index is in [first, last]: the
-- last answer for each node (a node's dry run, which the log does not tell apart, comes first).
local function restart_durations(srv, first, last)
  local latest = {}
  for _, e in ipairs(srv.entries("request")) do
    local n = tonumber((e.path or ""):match("/nodes/node%-(%d+)/restart$"))
    if n and n >= first and n <= last and e.status == "202" then
      latest[n] = tonumber(e.duration_ms)
    end
  end
  local out = {}
  for _, ms in pairs(latest) do
    out[#out + 1] = ms
  end
  return out
end

-- ---- sections ------------------------------------------------------------------------------

local sections = {}

-- Dry runs of nodes [first, first + count): each caches alice's authorization decision for its
-- node (the attributes name the node), as the restart path to measure assumes; nothing reboots.
local function warm_authorization(srv, first, count)
  loadgen(restart_args(srv, { "--connections", "4", "--requests", tostring(count), "--index-start",
    tostring(first) }, "?dryRun=All"))
end

function sections.restart()
  local count = 300
  local aws, _, srv = cluster(simple_nodes(count + 100))
  loadgen(restart_args(srv, { "--connections", "1", "--requests", "10", "--index-start", tostring(count) })) -- warm
  warm_authorization(srv, 0, count)
  local medians, p99s = {}, {}
  local per_run = math.floor(count / RUNS)
  for run = 1, RUNS do
    local first = (run - 1) * per_run
    local r = loadgen(restart_args(srv, { "--connections", "1", "--requests", tostring(per_run),
      "--index-start", tostring(first) }))
    local ms = restart_durations(srv, first, first + per_run - 1)
    medians[#medians + 1], p99s[#p99s + 1] = percentile(ms, 0.5), percentile(ms, 0.99)
    say("restart: run %d: %d accepted of %d; server-side p50 %.2f ms, p99 %.2f ms; "
      .. "client-side p50 %.2f ms, p99 %.2f ms", run, r.statuses[202] or 0, per_run, medians[#medians],
      p99s[#p99s], r.p50_ms, r.p99_ms)
  end
  say("restart: reboots recorded by the fake EC2: %d (restarts accepted: %d, 10 of them to warm up)",
    #aws.reboots(), #restart_durations(srv, 0, count + 100))
  row("restart", "server-side p50, ms", spread(medians), "< 3", percentile(medians, 0.5) < 3)
  row("restart", "server-side p99, ms", spread(p99s), "< 10", percentile(p99s, 0.5) < 10)
  stop_all()

  -- Instructions: the same path under callgrind, counted only while 50 restarts run.
  local out = shell.temp_dir() .. "/callgrind.out"
  local _, _, cg = cluster(simple_nodes(100), { wrap = { "valgrind", "--tool=callgrind",
    "--callgrind-out-file=" .. out }, start_timeout = 120 })
  loadgen(restart_args(cg, { "--connections", "1", "--requests", "5", "--index-start", "60" })) -- warm
  warm_authorization(cg, 0, 50)
  shell.must("callgrind_control -z " .. cg.pid .. " >/dev/null") -- zero the counters, then dump after
  local r = loadgen(restart_args(cg, { "--connections", "1", "--requests", "50", "--index-start", "0" }))
  shell.must("callgrind_control -d " .. cg.pid .. " >/dev/null")
  stop_all()
  local text = shell.read_file(out .. ".1") or ""
  local total = tonumber(text:match("\nsummary:%s*(%d+)") or text:match("\ntotals:%s*(%d+)") or "")
  local accepted = r.statuses[202] or 0
  if total and accepted > 0 then
    say("restart: %d instructions per restart (callgrind, %d restarts, server process, all threads)",
      total // accepted, accepted)
    row("restart", "CPU instructions per restart", ("%.2f M"):format(total / accepted / 1e6))
  else
    say("restart: no callgrind totals (%d accepted)", accepted)
  end
end

function sections.isolation()
  -- Nodes 0-299: the slow runs; 300-599: the concurrent runs; 790-799: warm-up; 800-1199: the
  -- burst at the in-flight limit (a node restarted once stays in its cooldown, so every run takes
  -- fresh ones).
  local aws, _, srv = cluster(simple_nodes(1200), { args = { "--lease-namespace=bench", "--node-name=none",
    "--max-requests-inflight=400" } })
  loadgen(discovery_args(srv, { "--connections", "4", "--requests", "2000" })) -- warm
  loadgen(restart_args(srv, { "--connections", "4", "--requests", "8", "--index-start", "790" })) -- warm
  -- 1. Discovery while 100 restarts wait on a cloud that answers in 2 s.
  local p99s = {}
  for run = 1, RUNS do
    aws.faults({ RebootInstances = { delay = 2 } })
    aws.clear_requests()
    local wait = loadgen_background(restart_args(srv, { "--connections", "100", "--requests", "100",
      "--index-start", tostring((run - 1) * 100) }), srv.dir, "slow" .. run)
    shell.wait_for(function() -- until all 100 are inside the server, waiting on the cloud
      local n = 0
      for _, req in ipairs(aws.requests() or {}) do
        n = n + ((req.action == "RebootInstances") and 1 or 0)
      end
      return n >= 100 or nil
    end, 20, 0.05)
    local d = loadgen(discovery_args(srv, { "--connections", "4", "--duration", "1" }))
    local slow = wait()
    p99s[#p99s + 1] = d.p99_ms
    say("isolation: run %d: discovery during 100 waiting restarts: %d requests, p50 %.2f ms, p99 %.2f ms, max %.2f ms;"
      .. " restarts accepted %d/100 in %.2f s", run, d.requests, d.p50_ms, d.p99_ms, d.max_ms,
      slow.statuses[202] or 0, slow.elapsed_s)
  end
  row("isolation", "discovery p99 with 100 restarts waiting, ms", spread(p99s), "< 5", percentile(p99s, 0.5) < 5)
  -- 2. 100 concurrent restarts of different nodes, cloud at 300 ms: the whole burst.
  local totals = {}
  for run = 1, RUNS do
    aws.faults({ RebootInstances = { delay = 0.3 } })
    local r = loadgen(restart_args(srv, { "--connections", "100", "--requests", "100",
      "--index-start", tostring(300 + (run - 1) * 100) }))
    totals[#totals + 1] = r.elapsed_s
    say("isolation: run %d: 100 concurrent restarts, cloud 300 ms: accepted %d/100, all answered in %.2f s"
      .. " (p50 %.0f ms, max %.0f ms)", run, r.statuses[202] or 0, r.elapsed_s, r.p50_ms, r.max_ms)
    shell.sleep(0.2)
  end
  aws.faults({})
  row("isolation", "100 concurrent restarts (cloud 300 ms), total s", spread(totals), "< 1",
    percentile(totals, 0.5) < 1)
  -- 3. Memory at the in-flight limit: 400 restarts waiting on a 2 s cloud at once hold 400 Lua
  -- states (what the Deployment's memory limit must allow for).
  aws.faults({ RebootInstances = { delay = 2 } })
  local before = status_kib(srv.pid, "VmRSS")
  local burst = loadgen(restart_args(srv, { "--connections", "400", "--requests", "400", "--index-start", "800" }))
  aws.faults({})
  local peak = status_kib(srv.pid, "VmHWM")
  say("isolation: 400 restarts in flight (cloud 2 s): accepted %d/400 in %.2f s; RSS %.1f MiB before, peak %.1f MiB",
    burst.statuses[202] or 0, burst.elapsed_s, mib(before), mib(peak))
  row("memory", "peak RSS, 400 restarts in flight, MiB", ("%.1f"):format(mib(peak)))
  stop_all()
end

function sections.memory()
  local _, _, srv = cluster(simple_nodes(10))
  shell.sleep(2)
  local idle = status_kib(srv.pid, "VmRSS")
  say("memory: idle RSS %.1f MiB (Kubernetes API configured, after start-up)", mib(idle))
  row("memory", "idle RSS, MiB", ("%.1f"):format(mib(idle)), "< 10", mib(idle) < 10)
  local r = loadgen(discovery_args(srv, { "--connections", "64", "--duration", "5" }))
  local peak = status_kib(srv.pid, "VmHWM")
  say("memory: peak RSS %.1f MiB under 64 connections (%d requests, %.0f/s)", mib(peak), r.requests, r.rps)
  row("memory", "peak RSS under 64 connections, MiB", ("%.1f"):format(mib(peak)), "< 40", mib(peak) < 40)
  loadgen(discovery_args(srv, { "--connections", "16", "--requests", "20000" })) -- settle
  local before = status_kib(srv.pid, "VmRSS")
  r = loadgen(discovery_args(srv, { "--connections", "16", "--requests", "100000" }))
  local after = status_kib(srv.pid, "VmRSS")
  local growth = (after - before) / before * 100
  say("memory: RSS before %d KiB, after 100,000 more requests (%d errors) %d KiB: %+.1f%%", before, r.errors, after,
    growth)
  row("memory", "RSS growth over 100,000 requests", ("%+.1f%%"):format(growth), "< 5%", growth < 5)
  stop_all()
end

function sections.start()
  local _, out = shell.run("hack/bench/startup.sh 9 2>/dev/null")
  io.write(out)
  local med, lo, hi = out:match("readyz[^:]*: median ([%d%.]+)%s+min ([%d%.]+)%s+max ([%d%.]+)")
  if med then
    row("start", "exec to first /readyz, ms", ("%.1f (min %.1f, max %.1f)"):format(med, lo, hi), "< 100",
      tonumber(med) < 100)
  end
end

-- A Node as kubelet and the cloud controller leave it, 10-15 KB of JSON.
local function realistic_node(i)
  local name = ("ip-10-%d-%d-%d.ec2.internal"):format(i // 65536 % 256, i // 256 % 256, i % 256)
  local images = {}
  for k = 1, 36 do
    images[k] = { names = { ("123456789012.dkr.ecr.us-east-1.amazonaws.com/team-%02d/service-%03d@sha256:%064x")
      :format(k % 12, k, k * 7919 + i), ("123456789012.dkr.ecr.us-east-1.amazonaws.com/team-%02d/service-%03d:v1.%d.%d")
      :format(k % 12, k, k, i % 50) }, sizeBytes = 10000000 + k * 123457 }
  end
  local now = "2026-11-20T10:00:00Z"
  local conditions = {}
  for _, c in ipairs({ { "MemoryPressure", "False", "KubeletHasSufficientMemory" },
    { "DiskPressure", "False", "KubeletHasNoDiskPressure" }, { "PIDPressure", "False", "KubeletHasSufficientPID" },
    { "Ready", "True", "KubeletReady" } }) do
    conditions[#conditions + 1] = { type = c[1], status = c[2], reason = c[3], lastHeartbeatTime = now,
      lastTransitionTime = now, message = "kubelet is posting ready status" }
  end
  return {
    metadata = {
      name = name, uid = ("%08x-0000-4000-8000-%012x"):format(i, i),
      creationTimestamp = "2026-10-01T08:00:00Z",
      labels = {
        ["beta.kubernetes.io/arch"] = "amd64", ["beta.kubernetes.io/os"] = "linux",
        ["kubernetes.io/arch"] = "amd64", ["kubernetes.io/os"] = "linux", ["kubernetes.io/hostname"] = name,
        ["node.kubernetes.io/instance-type"] = "m6i.2xlarge", ["topology.kubernetes.io/region"] = "us-east-1",
        ["topology.kubernetes.io/zone"] = "us-east-1a", ["eks.amazonaws.com/nodegroup"] = "workers-" .. i % 8,
        ["eks.amazonaws.com/capacityType"] = "ON_DEMAND", ["k8s.io/cloud-provider-aws"] = "0123456789abcdef",
      },
      annotations = {
        ["alpha.kubernetes.io/provided-node-ip"] = "10.0.0.1",
        ["node.alpha.kubernetes.io/ttl"] = "0",
        ["volumes.kubernetes.io/controller-managed-attach-detach"] = "true",
        ["csi.volume.kubernetes.io/nodeid"] = ('{"ebs.csi.aws.com":"i-%017x"}'):format(i),
      },
    },
    spec = { providerID = "aws:///us-east-1a/" .. fake_cloud.AWS.instance, podCIDR = "10.244.0.0/24",
      podCIDRs = { "10.244.0.0/24" } },
    status = {
      capacity = { cpu = "8", memory = "32386124Ki", pods = "58", ["ephemeral-storage"] = "104845292Ki",
        ["hugepages-1Gi"] = "0", ["hugepages-2Mi"] = "0" },
      allocatable = { cpu = "7910m", memory = "31369292Ki", pods = "58", ["ephemeral-storage"] = "95551679124",
        ["hugepages-1Gi"] = "0", ["hugepages-2Mi"] = "0" },
      conditions = conditions,
      addresses = { { type = "InternalIP", address = "10.0.0.1" }, { type = "Hostname", address = name },
        { type = "InternalDNS", address = name } },
      daemonEndpoints = { kubeletEndpoint = { Port = 10250 } },
      nodeInfo = { machineID = ("%032x"):format(i), systemUUID = ("ec2%029x"):format(i),
        bootID = ("%08x-1111-4222-8333-%012x"):format(i, i), kernelVersion = "6.1.112-122.189.amzn2023.x86_64",
        osImage = "Amazon Linux 2023.6.20241010", containerRuntimeVersion = "containerd://1.7.22",
        kubeletVersion = "v1.31.0-eks-a737599", kubeProxyVersion = "v1.31.0-eks-a737599",
        operatingSystem = "linux", architecture = "amd64" },
      images = images,
    },
  }
end

function sections.scale()
  local sizes = { 500, 1000, 2000, 5000 }
  local node_bytes = #cjson.encode(realistic_node(1))
  say("scale: each node is %d bytes of JSON", node_bytes)
  local all = {}
  for i = 0, sizes[#sizes] - 1 do
    all[#all + 1] = realistic_node(i)
  end
  for _, size in ipairs(sizes) do
    local nodes = { table.unpack(all, 1, size) }
    local _, _, srv = cluster(nodes)
    local times = {}
    local bytes, items = 0, 0
    for _ = 1, RUNS do
      local body = srv.dir .. "/nodes.json"
      local _, out = shell.run(shell.join({ "curl", "-sS", "-o", body, "-w", "%{http_code} %{time_total}",
        "--max-time", "60", "--cacert", pki .. "/serving-ca.crt", "--cert", pki .. "/admin.crt",
        "--key", pki .. "/admin.key", srv.url(GV .. "/nodes") }))
      local code, seconds = out:match("^(%d+) ([%d%.]+)")
      if code ~= "200" then
        error(("GET nodes with %d nodes answered %s: %s"):format(size, tostring(code),
          tostring(shell.read_file(body)):sub(1, 300)))
      end
      times[#times + 1] = tonumber(seconds)
      local text = shell.read_file(body)
      bytes, items = #text, #(cjson.decode(text).items or {})
    end
    local peak = status_kib(srv.pid, "VmHWM")
    say("scale: %d nodes (%.1f MB from the fake kube-apiserver): GET nodes %s s, %d items, %d bytes; peak RSS %.1f MiB",
      size, size * node_bytes / 1e6, spread(times, "%.3f"), items, bytes, mib(peak))
    if size == sizes[#sizes] then
      row("scale", ("GET nodes, %d nodes, s"):format(size), spread(times, "%.3f"), "< 2", percentile(times, 0.5) < 2)
      row("scale", ("peak RSS, %d nodes, MiB"):format(size), ("%.1f"):format(mib(peak)), "< 80", mib(peak) < 80)
    else
      row("scale", ("GET nodes, %d nodes, s / peak MiB"):format(size),
        ("%.3f / %.1f"):format(percentile(times, 0.5), mib(peak)))
    end
    stop_all()
  end
end

-- ---- main ------------------------------------------------------------------------------------

local ORDER = { "restart", "isolation", "memory", "start", "scale" }

local function main(wanted)
  pki = server.pki()
  for _, name in ipairs(wanted) do
    if not sections[name] then
      error("unknown section " .. name .. " (want: " .. table.concat(ORDER, " ") .. ")", 0)
    end
    say("== %s", name)
    sections[name]()
  end
  say("")
  say("%-10s %-48s %-34s %-8s %s", "section", "figure", "value: median (min, max)", "budget", "")
  for _, r in ipairs(rows) do
    say("%-10s %-48s %-34s %-8s %s", r[1], r[2], r[3], r[4], r[5])
  end
end

local wanted = #arg > 0 and { table.unpack(arg) } or ORDER
local ok, err = xpcall(main, debug.traceback, wanted)
stop_all()
if not ok then
  io.stderr:write("suite.lua: ", tostring(err), "\n")
  os.exit(1)
end
