-- The load soak: mixed discovery, list, get and restart traffic at 64
-- connections against the real server, with faults injected into the fake
-- kube-apiserver and the fake EC2 and CVM endpoints (spec/fakes), for a given
-- time. A test, not a benchmark: it fails on broken invariants, never on timing.
--
--   hack/soak.sh [DURATION]                  (30m by default; 90s, 10m, 1h)
--   lua5.4 hack/soak.lua [DURATION]          (what soak.sh runs, after building)
--   require("hack.soak").run({ duration = 45 })  -> report (spec/e2e/soak_spec.lua)
--
-- The run is a series of rounds. In each, 9 loadgen processes (64 connections
-- together) send discovery (/apis, /apis/infraops.michael.io/v1), lists
-- (nodes, nodes?limit=25), gets (nodes/node-{i}, cycling through every node)
-- and restarts: one block of AWS nodes and one of Tencent Cloud nodes, each
-- node once plus one repeat inside the cooldown, and 3 concurrent restarts of
-- one "race" node per cloud. Blocks rotate so a node comes back only after its
-- --restart-cooldown (loadgen --index-modulo). After the round's traffic the
-- faults are lifted; some rounds end with a probe (a lost cloud answer on a
-- kept-alive connection, below); a short fixed burst of GETs follows, then
-- the server is left idle until its pooled Lua states are trimmed
-- (--lua-state-idle-timeout), sampled, and the books are balanced. The next
-- round brings the next fault set.
--
-- Invariants (any failure makes the run fail; see docs/development.md, "Soak"):
--   - the server never exits, and its log holds only JSON lines (no sanitizer
--     or crash output); at the end SIGTERM stops it with exit code 0 (under
--     ASan: no leak report);
--   - every request gets an HTTP answer (no transport errors in loadgen);
--   - answers are those the fault rules allow (docs/restart.md): discovery
--     always 200; lists and gets 200, or 429/503 while the fake
--     kube-apiserver fails; restarts 202 or 409, and 429/503/504 only while a
--     fault is on; never a 500 anywhere;
--   - restarts balance with the fake clouds' records, round by round: every
--     202 is one "restart requested" line whose cloud request id is exactly one
--     recorded reboot of that node's instance; a reboot no 202 explains is a
--     lost answer (the fake rebooted, then dropped the connection) on a node
--     that got a 504 for it; a 504 only where the cloud really left a call
--     unanswered; no instance rebooted twice within the cooldown; at the end
--     no Lease claims a reboot that did not happen, and none is left
--     InProgress unless the server logged why;
--   - no leak: resident memory sampled idle after each round (after the same
--     short burst, and the Lua states trimmed); the median of the last third
--     of the samples at most max(8 MiB, 25%) above the median of the first
--     third; idle fds back to their level after the warm-up round (client
--     connections none; the sockets of the one Lua state left, capped);
--     threads, idle or not, at most one per connection above the server's
--     count before any traffic (workers are kept, not started per request).
local cjson = require("cjson")
local clock = require("host.time")
local fake_cloud = require("spec.helpers.fake_cloud")
local fake_kube = require("spec.helpers.fake_kube")
local server = require("spec.helpers.server")
local shell = require("spec.helpers.shell")

local soak = {}

local GV = "/apis/infraops.michael.io/v1"
local SA = "system:serviceaccount:default:myapiserver"
local COOLDOWN = 20     -- --restart-cooldown, seconds: short so nodes come back during the run
local IDLE_TIMEOUT = 3  -- --lua-state-idle-timeout, seconds: trimming runs between every two rounds
local REPEATS = 1       -- restarts per round of nodes already restarted in it (409 inside the cooldown)
local RACERS = 3        -- concurrent restarts of one node per cloud and round
local AWS_PREFIX, TC_PREFIX = "aws:///us-east-1a/", "qcloud:///100003/"
local TC_ZONE_LABEL = "topology.com.tencent.cloud.csi.cbs/zone"
-- Request lines the server logs for every answered GET with 200 are dropped
-- before they reach the log file: at ~10,000 discovery requests a second they
-- would fill gigabytes, and loadgen counts them anyway. Everything else stays.
local LOG_DROP = '"msg":"request",.*"method":"GET",.*"status":"200",'
-- Error lines a fault can legitimately cause (a Lease update that failed after
-- its retries); anything else at level error fails the run.
local ALLOWED_ERRORS = {
  ["could not record the restart outcome in its lease"] = true,
  ["could not release the restart lease"] = true,
}

-- RSS margin. Sampled idle (after the same short burst of GETs, the pool's
-- Lua states trimmed and malloc_trim called), resident memory is the
-- libraries (~10 MiB), one Lua state, and what glibc's arenas keep: the live
-- heap is only ~2.5 MB then (mallinfo2, read with gdb while measuring this),
-- but its objects are spread over 16 arenas and keep 10-17 MiB of pages
-- resident. That part moves by up to +-4 MiB from round to round, and creeps
-- up by a few MiB over the first minutes as the long-lived Lua state's
-- objects land in more arenas, while the live heap stays flat. Hence 8 MiB
-- (25% of a larger heap, such as the sanitizer build's, whose 32 MiB
-- quarantine and shadow memory are resident too). A leak still shows: 16
-- bytes a request is 80 MiB over the millions of requests of a 30-minute
-- soak; small leaks are for LeakSanitizer (this soak under ASan, and the
-- sanitizer pass of hack/test.sh) and hack/valgrind.sh.
local RSS_MARGIN_KIB, RSS_MARGIN_RATIO = 8192, 0.25
-- Idle, the one Lua state the pool keeps holds the sockets of its HTTP
-- clients (kube-apiserver, each cloud: a kept-alive connection or two and
-- libcurl's socket pair each): how many depends on which state it is, so they
-- are capped, not compared. Every other fd must come back to its level after
-- the warm-up.
local OUTBOUND_CAP = 24
local THREAD_SLACK = 4  -- workers started for requests of connections loadgen is just replacing

-- ---- small things ----------------------------------------------------------------------------

local function say(out, fmt, ...)
  out:write((fmt):format(...), "\n")
  out:flush()
end

local function sorted(xs)
  local copy = { table.unpack(xs) }
  table.sort(copy)
  return copy
end

local function median(xs)
  local s = sorted(xs)
  if #s == 0 then
    return nil
  end
  return #s % 2 == 1 and s[(#s + 1) // 2] or (s[#s // 2] + s[#s // 2 + 1]) / 2
end

local function add(map, key, n)
  map[key] = (map[key] or 0) + (n or 1)
end

local function null(v) -- cjson decodes JSON null as cjson.null
  return v == nil or v == cjson.null
end

-- "200:5 409:2" of a { [status] = count } map, statuses ascending.
local function status_text(map)
  local keys = {}
  for k in pairs(map or {}) do
    keys[#keys + 1] = k
  end
  table.sort(keys)
  local words = {}
  for _, k in ipairs(keys) do
    words[#words + 1] = ("%s:%d"):format(k, map[k])
  end
  return #words > 0 and table.concat(words, " ") or "-"
end

local function clock_text(seconds)
  seconds = math.floor(seconds + 0.5)
  return ("%dm%02ds"):format(seconds // 60, seconds % 60)
end

--- "90s", "10m", "1h", "45" (seconds) -> seconds, or nil.
function soak.parse_duration(text)
  local n, unit = tostring(text or ""):match("^(%d+%.?%d*)([smh]?)$")
  n = tonumber(n)
  if not n or n <= 0 then
    return nil
  end
  return n * ({ s = 1, m = 60, h = 3600 })[unit ~= "" and unit or "s"]
end

-- ---- /proc ----------------------------------------------------------------------------------

local function proc_status(pid)
  local text = shell.read_file(("/proc/%d/status"):format(pid)) or ""
  return { rss = tonumber(text:match("VmRSS:%s*(%d+) kB")), hwm = tonumber(text:match("VmHWM:%s*(%d+) kB")),
    threads = tonumber(text:match("Threads:%s*(%d+)")) }
end

-- The server's open fds in three kinds: `inbound`, client connections (TCP,
-- the server's port, not listening); `outbound`, the sockets of the Lua
-- states' HTTP clients (TCP connections to kube-apiserver and the clouds kept
-- alive, and the socket pairs libcurl keeps per handle: any other socket);
-- `other`, everything else (the listening socket, files, pipes, eventfds).
-- total = all three.
local function fd_census(pid, server_port)
  local sockets = {}
  for _, file in ipairs({ "/proc/net/tcp", "/proc/net/tcp6" }) do
    for line in (shell.read_file(file) or ""):gmatch("[^\n]+") do
      local f = {}
      for word in line:gmatch("%S+") do
        f[#f + 1] = word
      end
      -- sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode ...
      local port = f[2] and f[2]:match(":(%x+)$")
      if port and f[1]:match("^%d+:$") and f[10] then
        sockets[f[10]] = { port = tonumber(port, 16), listening = f[4] == "0A" }
      end
    end
  end
  local code, out = shell.run(("ls -l /proc/%d/fd 2>/dev/null"):format(pid))
  local c = { inbound = 0, outbound = 0, other = 0, total = 0 }
  if code ~= 0 then
    return c
  end
  for target in out:gmatch("%-> ([^\n]+)") do
    local sock = sockets[target:match("^socket:%[(%d+)%]$") or ""]
    local kind = "other"
    if sock and sock.port == server_port and not sock.listening then
      kind = "inbound"
    elseif (sock and sock.port ~= server_port) or (not sock and target:match("^socket:")) then
      kind = "outbound"
    end
    c[kind], c.total = c[kind] + 1, c.total + 1
  end
  return c
end

local function alive(pid)
  return os.execute(("kill -0 %d 2>/dev/null"):format(pid)) == true
end

local function own_pid()
  return tonumber((shell.read_file("/proc/self/stat") or ""):match("^(%d+)"))
end

-- ---- the plan --------------------------------------------------------------------------------

--- What a run of `duration` seconds does: round length, blocks, nodes, connections.
-- opts.connections: the total (default 64), split in the same proportions.
function soak.plan(duration, opts)
  opts = opts or {}
  local load = math.max(6, math.min(25, math.floor(duration / 6)))
  -- A block comes back after blocks-1 whole rounds: longer than the cooldown.
  local blocks = math.ceil(COOLDOWN / load) + 2
  local block = math.max(8, math.floor(load * 0.8)) -- restarts per cloud and round (the cooldown caps the rate)
  local per_cloud = blocks * block + 3 * blocks      -- the blocks, then per block one race node and two probe nodes
  local total = opts.connections or 64
  local function share(n)
    return math.max(1, math.floor(n * total / 64 + 0.5))
  end
  return {
    duration = duration, load = load, blocks = blocks, block = block, per_cloud = per_cloud,
    nodes = 2 * per_cloud, cooldown = COOLDOWN, idle_timeout = IDLE_TIMEOUT,
    settle = IDLE_TIMEOUT + 8, -- seconds the server gets to go idle after a round
    conns = { discovery = share(8), discovery_apis = share(8), list = share(8), list_limit = share(8),
      get = share(18), restart = share(4), race = RACERS },
  }
end

-- The fault sets rounds rotate through after the warm-up (the first is quiet).
-- Cloud faults fire on the first calls of a round (`times`) or on all of them
-- (`delay`); kube faults likewise. None leaves an outcome the books cannot
-- settle: a call the fake answers late (delay) is answered well inside the
-- provider's timeout; a dropped connection is either before the action (no
-- reboot) or after it (record_before_delay: a reboot the server must answer
-- with 504, and the node stays locked); a Lease or Event write kube-apiserver
-- acted on but whose answer was lost (lose_answer) is found as the server's own.
local function slow(rand)
  return { RebootInstances = { delay = 0.5 + 1.5 * rand() } }
end

local FAULT_SETS = {
  { name = "aws throttled, tencent 5xx, kube errors",
    aws = function() return { RebootInstances = { code = "RequestLimitExceeded", times = 6 } } end,
    tc = function() return { RebootInstances = { code = "InternalError", times = 3 },
      ["*"] = { status = 502, body = "<html>502 Bad Gateway</html>", content_type = "text/html", times = 2 } } end,
    kube = function() return {
      ["list nodes"] = { status = 500, times = 4 }, ["get nodes"] = { status = 503, times = 4 },
      ["create leases"] = { status = 500, times = 2 }, ["update leases"] = { status = 500, times = 2 },
      ["create events"] = { status = 500, times = 2 }, ["get leases"] = { drop = true, times = 2 },
    } end },
  { name = "aws answers lost, tencent slow, kube slow", probe = "aws",
    aws = function() return { RebootInstances = { reset = true, times = 2 },
      ["*"] = { record_before_delay = true, close = true, times = 2 } } end,
    tc = function(rand) return slow(rand) end,
    kube = function() return { ["*"] = { delay = 0.2 } } end },
  { name = "aws 5xx, tencent throttled, kube throttling",
    aws = function() return { RebootInstances = { status = 503, code = "Unavailable", times = 3 },
      ["*"] = { code = "InternalError", times = 2 } } end,
    tc = function() return { RebootInstances = { code = "RequestLimitExceeded", times = 6 } } end,
    kube = function() return {
      ["list nodes"] = { status = 429, retry_after = 1, times = 6 }, ["get nodes"] = { delay = 1, times = 20 },
      ["update leases"] = { status = 429, retry_after = 1, times = 2 }, ["list leases"] = { status = 503, times = 3 },
    } end },
  { name = "aws slow, tencent answers lost, kube answers to writes lost", probe = "tc",
    aws = function(rand) return slow(rand) end,
    tc = function() return { RebootInstances = { reset = true, times = 2 },
      ["*"] = { record_before_delay = true, close = true, times = 2 } } end,
    kube = function() return { -- acted on, then the connection dies: the writes are found as the server's own
      ["create leases"] = { lose_answer = true, times = 3 }, ["update leases"] = { lose_answer = true, times = 3 },
      ["create events"] = { lose_answer = true, times = 2 },
    } end },
  { name = "none (everything must succeed)" },
}

-- ---- the run ---------------------------------------------------------------------------------

local Run = {}
Run.__index = Run

function Run:fail(fmt, ...)
  local message = (fmt):format(...)
  self.failures[#self.failures + 1] = ("round %d: %s"):format(self.round or 0, message)
  say(self.out, "FAILED: round %d: %s", self.round or 0, message)
end

function Run:track(x)
  self.started[#self.started + 1] = x
  return x
end

local function instance_id(cloud, j)
  return cloud == "aws" and ("i-%017d"):format(j) or ("ins-%08d"):format(j)
end

-- Node index -> { name, cloud, instance }; AWS nodes first, then Tencent Cloud's.
function Run:node(i)
  local p = self.plan
  local cloud = i < p.per_cloud and "aws" or "tc"
  local j = cloud == "aws" and i or i - p.per_cloud
  return { name = "node-" .. i, cloud = cloud, instance = instance_id(cloud, j) }
end

function Run:start_cluster()
  local p, nodes, aws_instances, tc_instances = self.plan, {}, {}, {}
  for i = 0, p.nodes - 1 do
    local n = self:node(i)
    self.node_of_instance[n.instance] = n.name
    self.instance_of_node[n.name] = n.instance
    if n.cloud == "aws" then
      aws_instances[n.instance] = { region = "us-east-1", az = "us-east-1a", state = "running" }
      nodes[#nodes + 1] = { name = n.name, providerID = AWS_PREFIX .. n.instance, ready = true }
    else
      tc_instances[n.instance] = { region = "ap-guangzhou", zone = "ap-guangzhou-3", state = "RUNNING" }
      nodes[#nodes + 1] = { name = n.name, providerID = TC_PREFIX .. n.instance, ready = true,
        labels = { [TC_ZONE_LABEL] = "ap-guangzhou-3" } }
    end
  end
  local lifetime = math.floor(p.duration + 600)
  self.aws = self:track(fake_cloud.start_aws({ config = { instances = aws_instances }, lifetime = lifetime }))
  self.tc = self:track(fake_cloud.start_tencentcloud({ config = { instances = tc_instances }, lifetime = lifetime }))
  local rules = fake_kube.myapiserver_rules({ users = { SA } })
  rules[#rules + 1] = { subjects = { users = { "alice" } }, verbs = { "get", "list" },
    apiGroups = { "infraops.michael.io" }, resources = { "nodes" } }
  rules[#rules + 1] = { subjects = { users = { "alice" } }, verbs = { "create" },
    apiGroups = { "infraops.michael.io" }, resources = { "nodes/restart" } }
  self.kube = self:track(fake_kube.start({ pki = self.pki, lifetime = lifetime, config = {
    nodes = nodes, rbac = rules, tokens = { ["sa-token"] = { username = SA } } } }))
  local env = self.aws.env()
  for k, v in pairs(self.tc.env()) do
    env[k] = v
  end
  if self.asan then -- fill the quarantine early (during the warm-up), so RSS can level off
    env.ASAN_OPTIONS = "detect_leaks=1:abort_on_error=0:exitcode=23:quarantine_size_mb=32"
  end
  -- bash between the shell and the server: the log filter, and a watchdog that
  -- stops the server within a second if this process goes away (killed, say),
  -- then exec: the pid the helper records is the server's own.
  local script = [[orch=$1; pattern=$2; shift 2
( while kill -0 "$orch" 2>/dev/null && kill -0 $$ 2>/dev/null; do sleep 1; done
  kill -TERM $$ 2>/dev/null ) </dev/null >/dev/null 2>&1 &
exec > >(exec grep --line-buffered -v -E -e "$pattern") 2>&1
exec "$@"]]
  self.srv = self:track(server.start({ pki = self.pki, binary = self.build .. "/myapiserver",
    kubeconfig = self.kube.kubeconfig({ token = "sa-token" }), client_ca = self.pki .. "/client-ca.crt",
    requestheader_ca = false, env = env, start_timeout = self.asan and 60 or 20,
    wrap = { "bash", "-c", script, "myapiserver-soak", tostring(own_pid()), LOG_DROP },
    args = { "--lease-namespace=soak", "--node-name=none", "--restart-cooldown=" .. p.cooldown .. "s",
      "--lua-state-idle-timeout=" .. p.idle_timeout .. "s" } }))
  self.log_offset = 0
  self.base_threads = proc_status(self.srv.pid).threads
end

-- ---- loadgen -----------------------------------------------------------------------------------

function Run:loadgen_args(who, path, extra)
  local pki = self.pki
  local args = { self.build .. "/loadgen", "--url", self.srv.url(path), "--cacert", pki .. "/serving-ca.crt",
    "--timeout", "60", "--max-latencies", "20000" }
  local creds = who == "admin" and { "--cert", pki .. "/admin.crt", "--key", pki .. "/admin.key" }
    or { "--cert", pki .. "/front-proxy-client.crt", "--key", pki .. "/front-proxy-client.key",
      "--header", "X-Remote-User: alice", "--header", "X-Remote-Group: system:authenticated" }
  for _, list in ipairs({ creds, extra }) do
    for _, a in ipairs(list) do
      args[#args + 1] = a
    end
  end
  return args
end

-- The GET jobs, each for `--duration` seconds, or a number of requests (counts: by kind).
function Run:get_jobs(name, duration, counts)
  local p, c = self.plan, self.plan.conns
  local function bound(kind)
    return counts and { "--requests", tostring(counts[kind]) } or { "--duration", tostring(duration) }
  end
  local function job(kind, suffix, who, path, conns, extra)
    local args = { "--connections", tostring(conns) }
    for _, list in ipairs({ bound(kind), extra or {} }) do
      table.move(list, 1, #list, #args + 1, args)
    end
    return { kind = kind, name = name .. kind .. suffix, args = self:loadgen_args(who, path, args) }
  end
  return {
    job("discovery", "-group", "admin", GV, c.discovery),
    job("discovery", "-apis", "admin", "/apis", c.discovery_apis),
    job("list", "", "alice", GV .. "/nodes", c.list),
    job("list", "-limit", "alice", GV .. "/nodes?limit=25", c.list_limit),
    job("get", "", "admin", "/", c.get, { "--path-template", GV .. "/nodes/node-{i}", "--index-modulo",
      tostring(p.nodes) }),
  }
end

-- The loadgen jobs of one round.
function Run:jobs(round)
  local p, c = self.plan, self.plan.conns
  local b = round % p.blocks
  local jobs = self:get_jobs("", p.load)
  for _, cloud in ipairs({ "aws", "tc" }) do
    local base = cloud == "aws" and 0 or p.per_cloud
    -- The block: every node once, then REPEATS of its first nodes again (inside their cooldown).
    jobs[#jobs + 1] = { kind = "restart", name = "restart-" .. cloud, args = self:loadgen_args("alice", "/", {
      "--method", "POST", "--path-template", GV .. "/nodes/node-{i}/restart", "--connections", c.restart,
      "--requests", tostring(p.block + REPEATS), "--index-start", tostring(base + b * p.block),
      "--index-modulo", tostring(p.block) }) }
    -- RACERS restarts of one node at once: one may win.
    jobs[#jobs + 1] = { kind = "restart", name = "race-" .. cloud, args = self:loadgen_args("alice", "/", {
      "--method", "POST", "--path-template", GV .. "/nodes/node-{i}/restart", "--connections", c.race,
      "--requests", tostring(c.race), "--index-start", tostring(base + p.blocks * p.block + b),
      "--index-modulo", "1" }) }
  end
  return jobs
end

-- The lost answer on a kept-alive connection, made (nearly) certain: with the
-- server idle, one restart warms the cloud connection of the Lua state on top
-- of the pool (which the next request gets again, unless the periodic task
-- holds it at that moment), then the cloud reboots the next node and drops the
-- connection without answering. Right: 504, one reboot. (Under load the faults
-- of the round mostly meet fresh connections.)
function Run:probe_lost_answer(cloud, round)
  local p = self.plan
  local first = (cloud == "aws" and 0 or p.per_cloud) + p.blocks * (p.block + 1) + 2 * (round % p.blocks)
  local fake = cloud == "aws" and self.aws or self.tc
  local results = {}
  for k = 0, 1 do
    if k == 1 then
      fake.faults({ RebootInstances = { record_before_delay = true, close = true, times = 1 } })
    end
    local job = { kind = "restart", name = ("probe-%s-%d"):format(cloud, k), args = self:loadgen_args("alice", "/", {
      "--method", "POST", "--path-template", GV .. "/nodes/node-{i}/restart", "--connections", "1",
      "--requests", "1", "--index-start", tostring(first + k) }) }
    self:spawn(job, round)
    if not shell.wait_for(function() return shell.read_file(job.out_path) end, 90, 0.05) then
      self:fail("loadgen %s did not finish", job.name)
    end
    results[#results + 1] = job
  end
  fake.faults({})
  self.jobs_running = {}
  return results
end

function Run:spawn(job, round)
  local base = ("%s/r%03d-%s"):format(self.dir, round, job.name)
  job.out_path, job.pid_path = base .. ".out", base .. ".pid"
  local tmp = base .. ".tmp"
  shell.spawn(("%s >%s 2>&1 & echo $! >%s; wait $!; echo \"exit=$?\" >>%s; mv %s %s"):format(
    shell.join(job.args), shell.quote(tmp), shell.quote(job.pid_path), shell.quote(tmp), shell.quote(tmp),
    shell.quote(job.out_path)))
  self.jobs_running[#self.jobs_running + 1] = job
end

function Run:kill_jobs()
  for _, job in ipairs(self.jobs_running) do
    local pid = tonumber((shell.read_file(job.pid_path or "") or ""):match("%d+"))
    if pid and not shell.read_file(job.out_path) then
      os.execute(("kill %d 2>/dev/null"):format(pid))
    end
  end
  self.jobs_running = {}
end

-- loadgen's output: the figures line, the "got no response" line, exit=N.
local function figures(text)
  local r = { statuses = {}, failed = 0 }
  local line = (text or ""):match("(requests=[^\n]+)")
  if line then
    for key, value in line:gmatch("([%w_]+)=(%S+)") do
      if key ~= "statuses" then
        r[key] = tonumber(value) or value
      end
    end
    for code, n in (line:match("statuses=(%S*)") or ""):gmatch("(%d+):(%d+)") do
      r.statuses[tonumber(code)] = tonumber(n)
    end
  end
  r.failed = tonumber((text or ""):match("loadgen: (%d+) requests got no response")) or 0
  r.why = (text or ""):match("requests got no response; the first: ([^\n]*)")
  r.exit = tonumber((text or ""):match("exit=(%d+)"))
  r.line = line
  return r
end

-- ---- the books ---------------------------------------------------------------------------------

-- New complete lines of the server log since the last call, decoded.
function Run:read_log()
  local f = io.open(self.srv.log_path, "rb")
  if not f then
    return {}
  end
  f:seek("set", self.log_offset)
  local text = f:read("a") or ""
  f:close()
  local last_newline = text:match(".*()\n")
  if not last_newline then
    return {}
  end
  self.log_offset = self.log_offset + last_newline
  local entries = {}
  for line in text:sub(1, last_newline):gmatch("[^\n]+") do
    local ok, e = pcall(cjson.decode, line)
    if ok and type(e) == "table" then
      entries[#entries + 1] = e
    else
      self.stray_lines = self.stray_lines + 1
      if self.stray_lines <= 5 then
        self:fail("the server printed a line that is not JSON (a sanitizer report?): %s", line:sub(1, 300))
      end
    end
  end
  return entries
end

-- The fake cloud's RebootInstances calls and reboots since the last round; both records cleared.
local function cloud_books(fake, cloud)
  local calls = {}
  for _, r in ipairs(fake.requests(function(r) return r.action == "RebootInstances" end)) do
    local instance
    if cloud == "aws" then
      instance = type(r.params) == "table" and r.params["InstanceId.1"] or nil
    else
      instance = type(r.body) == "table" and type(r.body.InstanceIds) == "table" and r.body.InstanceIds[1] or nil
    end
    calls[#calls + 1] = { instance = instance, request_id = r.request_id, answered = not null(r.status),
      fault = r.fault }
  end
  local reboots = fake.reboots()
  fake.clear_requests()
  fake.clear_reboots()
  return calls, reboots
end

-- Settles the restarts of a round: server log lines, loadgen figures, fake records.
function Run:balance(entries, restart_202, faulted)
  local p = self.plan
  local accepted, by_node = {}, {}
  local function node_stats(name)
    by_node[name] = by_node[name] or { statuses = {}, extra = 0, unanswered = 0 }
    return by_node[name]
  end
  local logged_202 = 0
  for _, e in ipairs(entries) do
    if e.msg == "request" then
      local name = (e.path or ""):match("^" .. GV:gsub("%p", "%%%0") .. "/nodes/([%w%-]+)/restart$")
      if name and e.method == "POST" then
        add(node_stats(name).statuses, tonumber(e.status))
        logged_202 = logged_202 + (e.status == "202" and 1 or 0)
      end
      if e.status == "500" then
        self:fail("%s %s answered 500 (%s)", tostring(e.method), tostring(e.path), tostring(e.request_id))
      end
    elseif e.msg == "restart requested" then
      accepted[#accepted + 1] = { node = e.node, request_id = e.request_id }
    end
    if e.level == "error" then
      add(self.errors, e.msg)
      if not ALLOWED_ERRORS[e.msg] then
        self:fail("the server logged an error: %s", cjson.encode(e):sub(1, 400))
      end
    end
  end
  if logged_202 ~= restart_202 or #accepted ~= restart_202 then
    self:fail("restarts accepted: loadgen counted %d 202s, the server logged %d 202 answers and %d "
      .. "'restart requested' lines", restart_202, logged_202, #accepted)
  end

  local reboots_by_id, unanswered_by_id = {}, {}
  local round_reboots = {}
  for _, cloud in ipairs({ "aws", "tc" }) do
    local calls, reboots = cloud_books(cloud == "aws" and self.aws or self.tc, cloud)
    for _, call in ipairs(calls) do
      add(self.cloud_calls, cloud)
      if not call.answered then
        unanswered_by_id[call.request_id] = call
        local name = self.node_of_instance[call.instance]
        if name then
          node_stats(name).unanswered = node_stats(name).unanswered + 1
        end
      end
    end
    for _, rb in ipairs(reboots) do
      rb.cloud = cloud
      round_reboots[#round_reboots + 1] = rb
      add(self.reboots, cloud)
      if reboots_by_id[rb.request_id] then
        self:fail("two reboots carry one cloud request id %s", tostring(rb.request_id))
      end
      reboots_by_id[rb.request_id] = rb
      self.all_reboot_ids[rb.request_id] = rb.instance
    end
  end

  -- Every 202: one reboot, of the node's own instance.
  local explained = {}
  for _, a in ipairs(accepted) do
    local rb = reboots_by_id[a.request_id]
    if not rb then
      self:fail("node %s: 202 with cloud request id %s, but the cloud recorded no such reboot", tostring(a.node),
        tostring(a.request_id))
    elseif explained[a.request_id] then
      self:fail("node %s: two 202s name one reboot (%s)", tostring(a.node), tostring(a.request_id))
    elseif rb.instance ~= self.instance_of_node[a.node] then
      self:fail("node %s: 202 names reboot %s of instance %s, not of %s", tostring(a.node), a.request_id,
        tostring(rb.instance), tostring(self.instance_of_node[a.node]))
    else
      explained[a.request_id] = true
    end
  end
  -- Every other reboot: an answer the cloud lost after acting, on a node that got a 504 for it.
  for id, rb in pairs(reboots_by_id) do
    local name = self.node_of_instance[rb.instance]
    if not name then
      self:fail("the cloud rebooted %s, which is no node's instance", tostring(rb.instance))
    elseif not explained[id] then
      if not unanswered_by_id[id] then
        self:fail("node %s: reboot %s has no 202 and its answer was not lost", name, tostring(id))
      end
      local s = node_stats(name)
      s.extra = s.extra + 1
    end
  end
  for name, s in pairs(by_node) do
    local timeouts = s.statuses[504] or 0
    if s.extra > timeouts then
      self:fail("node %s: %d reboots without a 202 but only %d answers 504 (statuses %s): a restart rebooted "
        .. "more than once", name, s.extra, timeouts, status_text(s.statuses))
    end
    if timeouts > s.unanswered then
      self:fail("node %s: %d answers 504 but the cloud left only %d calls unanswered", name, timeouts, s.unanswered)
    end
    self.lost_answers = self.lost_answers + s.extra
  end
  -- No instance rebooted twice inside the cooldown (requested-at has whole seconds: allow 1 s).
  table.sort(round_reboots, function(x, y) return x.time < y.time end)
  for _, rb in ipairs(round_reboots) do
    local last = self.last_reboot[rb.instance]
    if last and rb.time - last < p.cooldown - 1.01 then
      self:fail("instance %s (node %s) rebooted twice %.2f s apart, inside its %d s cooldown", rb.instance,
        tostring(self.node_of_instance[rb.instance]), rb.time - last, p.cooldown)
    end
    self.last_reboot[rb.instance] = rb.time
  end
  if not faulted then
    for name, s in pairs(by_node) do
      for status in pairs(s.statuses) do
        if status ~= 202 and status ~= 409 then
          self:fail("node %s: restart answered %d in a round without faults", name, status)
        end
      end
    end
  end
end

-- Statuses a kind of request may get; faulted: a fault set was on in the round.
local function allowed(kind, status, faulted)
  if kind == "discovery" then
    return status == 200
  elseif kind == "list" or kind == "get" then
    return status == 200 or (faulted and (status == 429 or status == 503))
  end
  return status == 202 or status == 409 or (faulted and (status == 429 or status == 503 or status == 504))
end

-- ---- rounds ------------------------------------------------------------------------------------

function Run:set_faults(set)
  set = set or {}
  self.aws.faults(set.aws and set.aws(math.random) or {})
  self.tc.faults(set.tc and set.tc(math.random) or {})
  self.kube.control("PUT", "/faults", set.kube and set.kube() or {})
end

function Run:check_alive()
  if self.srv.exit_code() or not alive(self.srv.pid) then
    self:fail("the server exited (exit code %s)", tostring(self.srv.exit_code()))
    error("the server is gone", 0)
  end
end

function Run:progress(force)
  local now = clock.monotonic()
  if not force and now - self.last_progress < 60 then
    return
  end
  self.last_progress = now
  local st = proc_status(self.srv.pid)
  local parts = {}
  for _, kind in ipairs({ "discovery", "list", "get", "restart" }) do
    parts[#parts + 1] = ("%s %s"):format(kind, status_text(self.totals[kind]))
  end
  say(self.out, "[%s] round %d: RSS %.1f MiB, threads %d, fds %d | %s | reboots aws %d, tencent %d",
    clock_text(now - self.t0), self.round, (st.rss or 0) / 1024, st.threads or 0,
    fd_census(self.srv.pid, self.srv.port).total,
    table.concat(parts, " | "), self.reboots.aws or 0, self.reboots.tc or 0)
end

-- Waits until the server is idle again: its pooled Lua states trimmed (the
-- idle timeout and a second for the periodic thread to notice), then threads
-- and fds down to their idle level (or the time is up).
-- trim: false to wait only until no request is in flight (no client connection open).
function Run:settle(trim)
  local start = clock.monotonic()
  local deadline = start + self.plan.settle
  local st, fds, quiet
  repeat
    clock.sleep(0.5)
    self:check_alive()
    st, fds = proc_status(self.srv.pid), fd_census(self.srv.pid, self.srv.port)
    if not trim then
      quiet = fds.inbound == 0
    else
      local trimmed = clock.monotonic() - start >= self.plan.idle_timeout + 1.5
      quiet = trimmed and (not self.idle or (st.threads <= self:thread_cap() and fds.inbound == 0
        and fds.other <= self.idle.other and fds.outbound <= OUTBOUND_CAP))
    end
  until quiet or clock.monotonic() > deadline
  return st, fds
end

-- The most threads the server may have: the ones it started with, and a worker per connection
-- (each has at most one request in flight; workers are kept for the next ones).
function Run:thread_cap()
  return self.base_threads + self.plan.total_conns + THREAD_SLACK
end

-- Starts the jobs and waits for them, watching the server (alive, threads) meanwhile.
function Run:run_jobs(jobs, round, timeout)
  for _, job in ipairs(jobs) do
    self:spawn(job, round)
  end
  local deadline = clock.monotonic() + timeout
  local pending = #jobs
  while pending > 0 do
    clock.sleep(0.5)
    self:check_alive()
    local st = proc_status(self.srv.pid)
    if st.threads and st.threads > self.max_threads then
      self.max_threads = st.threads
    end
    pending = 0
    for _, job in ipairs(jobs) do
      if not shell.read_file(job.out_path) then
        pending = pending + 1
      end
    end
    self:progress()
    if clock.monotonic() > deadline then
      self:kill_jobs()
      self:fail("%d loadgen runs did not finish in time", pending)
      error("loadgen runs did not finish", 0)
    end
  end
  self.jobs_running = {}
end

-- loadgen's figures of finished jobs into the totals, with the checks on statuses and
-- missing answers; returns the number of restarts accepted (202).
function Run:tally(jobs, round, faulted)
  local restart_202 = 0
  for _, job in ipairs(jobs) do
    local r = figures(shell.read_file(job.out_path))
    if not r.line or r.exit ~= 0 then
      self:fail("loadgen %s did not run (exit %s): %s", job.name, tostring(r.exit),
        tostring(shell.read_file(job.out_path)):sub(1, 300))
    end
    local answered, not_success = 0, 0
    self.totals[job.kind] = self.totals[job.kind] or {}
    for status, n in pairs(r.statuses) do
      answered = answered + n
      add(self.totals[job.kind], status, n)
      if status < 200 or status > 299 then
        not_success = not_success + n
      end
      if not allowed(job.kind, status, faulted and not job.quiet) then
        self:fail("%s: %d answers %d%s", job.name, n, status,
          (faulted and not job.quiet) and "" or " without faults")
      end
    end
    local transport = (tonumber(r.errors) or 0) - not_success
    if r.failed > 0 or transport ~= 0 or (tonumber(r.requests) or 0) ~= answered then
      self:fail("%s: %d of %d requests got no HTTP answer (first: %s)", job.name, math.max(r.failed, transport),
        tonumber(r.requests) or 0, tostring(r.why))
    end
    self.transport_errors = self.transport_errors + math.max(r.failed, transport)
    if job.kind == "restart" then
      restart_202 = restart_202 + (r.statuses[202] or 0)
    end
    self.lines[#self.lines + 1] = ("r%d %-22s %s"):format(round, job.name, tostring(r.line))
  end
  return restart_202
end

-- The same short burst of GETs (no faults) after every round, before the idle
-- sample: what the allocator keeps after trimming depends on the last burst,
-- and after the same burst it varies by about a MiB instead of several.
function Run:normalize(round)
  local scale = self.asan and 0.25 or 1
  local jobs = self:get_jobs("normal-", nil, { discovery = math.floor(2000 * scale),
    list = math.floor(150 * scale), get = math.floor(300 * scale) })
  for _, job in ipairs(jobs) do
    job.quiet = true
  end
  self:run_jobs(jobs, round, 120)
  return jobs
end

function Run:round_once(round, set)
  self.round = round
  local faulted = set ~= nil and (set.aws or set.tc or set.kube) ~= nil
  self:set_faults(set)
  local jobs = self:jobs(round)
  self:run_jobs(jobs, round, self.plan.load + 120)
  self:set_faults(nil)
  -- Requests loadgen gave up on at the end of its time finish before anything else.
  self:settle(false)
  local extra = {}
  if set and set.probe then
    extra = self:probe_lost_answer(set.probe, round)
  end
  for _, job in ipairs(self:normalize(round)) do
    extra[#extra + 1] = job
  end
  local st, fds = self:settle(true)
  local restart_202 = self:tally(jobs, round, faulted)
  restart_202 = restart_202 + self:tally(extra, round, faulted)
  self:balance(self:read_log(), restart_202, faulted)
  self.kube.control("DELETE", "/events") -- the fake keeps every Event: bound its memory
  if not self.idle then -- the warm-up round: the idle level everything must come back to
    self.idle = { threads = st.threads, fds = fds.total, other = fds.other, rss = st.rss }
  else
    self.rss[#self.rss + 1] = st.rss
    if st.threads > self:thread_cap() then
      self:fail("%d threads after the round: more than one per connection (%d) above the %d before any traffic",
        st.threads, self.plan.total_conns, self.base_threads)
    end
    if fds.inbound > 0 or fds.other > self.idle.other or fds.outbound > OUTBOUND_CAP then
      self:fail("open fds after the round: %d client connections (want 0), %d files, pipes and listeners (%d after "
        .. "the warm-up), %d connections of its own (at most %d)", fds.inbound, fds.other, self.idle.other,
        fds.outbound, OUTBOUND_CAP)
    end
  end
  self.max_idle_fds = math.max(self.max_idle_fds, fds.total)
  self.max_idle_outbound = math.max(self.max_idle_outbound, fds.outbound)
  self.max_idle_threads = math.max(self.max_idle_threads, st.threads)
  self.rounds_done = round
end

-- Leases at the end: none claims a reboot that did not happen; none stuck InProgress without a reason logged.
function Run:check_leases()
  local answer = self.kube.control("GET", "/leases")
  local items = answer.items or answer
  local in_progress, requested = 0, 0
  for _, lease in ipairs(items) do
    local meta = lease.metadata or {}
    local ann = meta.annotations or {}
    local phase = ann["infraops.michael.io/phase"]
    if meta.namespace == "soak" and phase then
      if phase == "InProgress" then
        in_progress = in_progress + 1
      elseif phase == "Requested" then
        requested = requested + 1
        local id = ann["infraops.michael.io/request-id"]
        if self.all_reboot_ids[id] ~= ann["infraops.michael.io/instance-id"] then
          self:fail("lease %s: phase Requested with request id %s, which is no reboot of %s", meta.name,
            tostring(id), tostring(ann["infraops.michael.io/instance-id"]))
        end
      end
    end
  end
  local unrecorded = self.errors["could not record the restart outcome in its lease"] or 0
  if in_progress > unrecorded then
    self:fail("%d leases still InProgress after every request was answered (the server logged %d failed "
      .. "lease updates)", in_progress, unrecorded)
  end
  self.leases = { requested = requested, in_progress = in_progress }
end

function Run:finish()
  self.round = self.rounds_done
  local code = self.srv.stop()
  clock.sleep(0.5) -- the log filter's last lines
  self:read_log()
  self.exit_code = code
  if code ~= 0 then
    self:fail("the server exited with %s on SIGTERM (23: LeakSanitizer found leaks)", tostring(code))
  end
  if self.max_threads > self:thread_cap() then
    self:fail("%d threads under load: more than one per connection (%d) above the %d before any traffic",
      self.max_threads, self.plan.total_conns, self.base_threads)
  end
  local rss = self.rss
  local third = math.max(1, #rss // 3)
  if #rss >= 2 then
    self.rss_first = median({ table.unpack(rss, 1, third) })
    self.rss_last = median({ table.unpack(rss, #rss - third + 1, #rss) })
    local limit = self.rss_first + math.max(RSS_MARGIN_KIB, self.rss_first * RSS_MARGIN_RATIO)
    if self.rss_last > limit then
      self:fail("resident memory grew: median of the last third %.1f MiB, of the first third %.1f MiB (limit %.1f)",
        self.rss_last / 1024, self.rss_first / 1024, limit / 1024)
    end
  else
    self:fail("only %d RSS samples: the run is too short to say anything about leaks", #rss)
  end
end

function Run:save_logs()
  local keep = self.build .. "/soak"
  os.execute("mkdir -p " .. shell.quote(keep))
  os.execute(("cp %s %s/server.log 2>/dev/null"):format(shell.quote(self.srv.log_path), shell.quote(keep)))
  shell.write_file(keep .. "/loadgen.txt", table.concat(self.lines, "\n") .. "\n")
  self.logs = keep
end

function Run:report()
  local out = self.out
  say(out, "")
  say(out, "soak: %s, %d rounds of %d s after a warm-up round, %d connections, %d nodes (cooldown %d s)",
    clock_text(clock.monotonic() - self.t0), math.max(0, self.rounds_done - 1), self.plan.load,
    self.plan.total_conns, self.plan.nodes, self.plan.cooldown)
  for _, kind in ipairs({ "discovery", "list", "get", "restart" }) do
    local n = 0
    for _, c in pairs(self.totals[kind] or {}) do
      n = n + c
    end
    say(out, "  %-10s %9d requests  %s", kind, n, status_text(self.totals[kind]))
  end
  say(out, "  requests without an HTTP answer: %d", self.transport_errors)
  say(out, "  reboots recorded: aws %d, tencent %d (RebootInstances calls: aws %d, tencent %d); answers lost "
    .. "after a reboot: %d", self.reboots.aws or 0, self.reboots.tc or 0, self.cloud_calls.aws or 0,
    self.cloud_calls.tc or 0, self.lost_answers)
  if self.leases then
    say(out, "  leases at the end: %d Requested, %d InProgress", self.leases.requested, self.leases.in_progress)
  end
  if self.idle then
    say(out, "  idle RSS after the warm-up %.1f MiB; samples: first-third median %.1f MiB, last-third median "
      .. "%.1f MiB (min %.1f, max %.1f); peak %.1f MiB", self.idle.rss / 1024, (self.rss_first or 0) / 1024,
      (self.rss_last or 0) / 1024, (sorted(self.rss)[1] or 0) / 1024, (sorted(self.rss)[#self.rss] or 0) / 1024,
      (self.peak or 0) / 1024)
    local mib = {}
    for i, kib in ipairs(self.rss) do
      mib[i] = ("%.1f"):format(kib / 1024)
    end
    say(out, "  idle RSS by round, MiB: %s", table.concat(mib, " "))
    say(out, "  threads: idle %d (max idle %d), max under load %d; fds idle: %d after the warm-up (%d not "
      .. "connections), max %d (of which the server's own connections at most %d)", self.idle.threads,
      self.max_idle_threads, self.max_threads, self.idle.fds, self.idle.other, self.max_idle_fds,
      self.max_idle_outbound)
  end
  local errs = {}
  for msg, n in pairs(self.errors) do
    errs[#errs + 1] = ("%s: %d"):format(msg, n)
  end
  say(out, "  server error lines: %s; exit code %s", #errs > 0 and table.concat(errs, "; ") or "none",
    tostring(self.exit_code))
  say(out, "  logs: %s", tostring(self.logs))
  if #self.failures == 0 then
    say(out, "soak: PASSED")
  else
    say(out, "soak: FAILED (%d)", #self.failures)
    for _, f in ipairs(self.failures) do
      say(out, "  - %s", f)
    end
  end
end

function Run:main()
  self.pki = server.pki()
  self:start_cluster()
  say(self.out, "soak: %s at %d connections; server pid %d (%s), %d nodes, cooldown %d s, rounds of %d s",
    clock_text(self.plan.duration), self.plan.total_conns, self.srv.pid, self.build, self.plan.nodes,
    self.plan.cooldown, self.plan.load)
  self.t0 = clock.monotonic()
  self.last_progress = self.t0
  local round = 1
  self:round_once(round, nil) -- warm-up
  -- Another round while it still fits in the duration (its load time, the settling, the short burst).
  while clock.monotonic() - self.t0 + self.plan.load + self.plan.idle_timeout + 5 <= self.plan.duration
    or round < 3 do
    round = round + 1
    local set = FAULT_SETS[(round - 2) % #FAULT_SETS + 1]
    self.round = round
    self.fault_names[#self.fault_names + 1] = set.name
    self:round_once(round, set)
  end
  self.peak = proc_status(self.srv.pid).hwm
  self:progress(true)
  self:check_leases()
  self:finish()
end

--- Runs a soak; returns the report: { ok, failures = {...}, totals = {kind = {status = n}}, reboots, ... }.
-- opts: duration (seconds, required), build (default $MYAPISERVER_BUILD_DIR or build), connections
-- (default 64; 32 under a sanitizer build), out (a file, default io.stdout).
function soak.run(opts)
  local build = opts.build or os.getenv("MYAPISERVER_BUILD_DIR") or "build"
  local cache = shell.read_file(build .. "/CMakeCache.txt") or ""
  local asan = cache:match("ENABLE_ASAN_UBSAN:BOOL=ON") ~= nil
  local plan = soak.plan(opts.duration, { connections = opts.connections or (asan and 32 or 64) })
  local total = 0
  for _, n in pairs(plan.conns) do
    total = total + n
  end
  plan.total_conns = total + plan.conns.restart + plan.conns.race -- restart and race run per cloud
  local self = setmetatable({ plan = plan, build = build, asan = asan, out = opts.out or io.stdout,
    dir = shell.temp_dir(), started = {}, jobs_running = {}, failures = {}, totals = {}, reboots = {},
    cloud_calls = {}, errors = {}, rss = {}, lines = {}, fault_names = {}, node_of_instance = {},
    instance_of_node = {}, last_reboot = {}, all_reboot_ids = {}, transport_errors = 0, lost_answers = 0,
    stray_lines = 0, max_threads = 0, max_idle_fds = 0, max_idle_outbound = 0, max_idle_threads = 0,
    rounds_done = 0 }, Run)
  self.t0, self.last_progress = clock.monotonic(), clock.monotonic()
  math.randomseed(os.time())
  local ok, err = xpcall(Run.main, debug.traceback, self)
  if not ok then
    self.failures[#self.failures + 1] = "the soak stopped: " .. tostring(err)
    say(self.out, "soak: stopped: %s", tostring(err))
  end
  self:kill_jobs()
  if self.srv then
    pcall(self.save_logs, self)
  end
  for i = #self.started, 1, -1 do
    pcall(self.started[i].cleanup or self.started[i].stop)
  end
  shell.remove_tree(self.dir)
  pcall(self.report, self)
  return {
    ok = #self.failures == 0, failures = self.failures, totals = self.totals, reboots = self.reboots,
    rounds = self.rounds_done, plan = plan, rss = self.rss, rss_first = self.rss_first, rss_last = self.rss_last,
    idle = self.idle, max_threads = self.max_threads, transport_errors = self.transport_errors,
    lost_answers = self.lost_answers, exit_code = self.exit_code, fault_sets = self.fault_names, logs = self.logs,
  }
end

-- As a script: lua5.4 hack/soak.lua [DURATION]; exit status 1 when an invariant failed.
if ... ~= "hack.soak" then
  local text = (...) or os.getenv("SOAK_DURATION") or "30m"
  local duration = soak.parse_duration(text)
  if not duration then
    io.stderr:write("usage: hack/soak.sh [DURATION]   (e.g. 90s, 10m, 1h; default 30m)\n")
    os.exit(2)
  end
  local report = soak.run({ duration = duration })
  os.exit(report.ok and 0 or 1)
end

return soak
