-- Restart path figures against the loopback fakes (prints, asserts nothing):
--   1. server-side time of one restart (authn, cached authz, node read, Lease,
--      signing, cloud call, Lease update, Event), sequential, median/p99;
--   2. 100 concurrent restarts of different nodes while the cloud takes 300 ms
--      to answer: total wall time and per-request server time.
-- Run: hack/bench/restart.sh [sequential-count]
local fake_cloud = require("spec.helpers.fake_cloud")
local fake_kube = require("spec.helpers.fake_kube")
local server = require("spec.helpers.server")
local shell = require("spec.helpers.shell")
local clock = require("host.time")

local SEQUENTIAL = tonumber(arg[1]) or 200
local CONCURRENT = 100
local GV = "/apis/infraops.michael.io/v1"
local SA = "system:serviceaccount:default:myapiserver"

local nodes = {}
for i = 1, SEQUENTIAL + CONCURRENT do
  nodes[i] = { name = ("node-%04d"):format(i), providerID = "aws:///us-east-1a/" .. fake_cloud.AWS.instance,
    ready = true }
end
local rules = fake_kube.myapiserver_rules({ users = { SA } })
rules[#rules + 1] = { subjects = { users = { "alice" } }, verbs = { "create" },
  apiGroups = { "infraops.michael.io" }, resources = { "nodes/restart" } }

local started = {}

-- Stops whatever was started, also when a step fails.
local function cleanup()
  for i = #started, 1, -1 do
    local x = started[i]
    pcall(x.cleanup or x.stop)
  end
end

local function main()
  local pki = server.pki()
  local aws = fake_cloud.start_aws()
  started[#started + 1] = aws
  local kube = fake_kube.start({ pki = pki, config = { nodes = nodes, rbac = rules,
    tokens = { ["sa-token"] = { username = SA } } } })
  started[#started + 1] = kube
  local env = aws.env()
  local srv = server.start({ pki = pki, kubeconfig = kube.kubeconfig({ token = "sa-token" }), client_ca = false,
    requestheader_ca = false, env = env, args = { "--lease-namespace=bench", "--node-name=none" } })
  started[#started + 1] = srv

  local function curl_config(first, last)
    local entries = {}
    for i = first, last do
      entries[#entries + 1] = ('url = "%s"\nrequest = "POST"\nheader = "X-Remote-User: alice"\n'
        .. 'header = "X-Remote-Group: system:authenticated"\noutput = "/dev/null"\n'
        .. 'cacert = "%s/serving-ca.crt"\ncert = "%s/front-proxy-client.crt"\nkey = "%s/front-proxy-client.key"')
        :format(srv.url(GV .. "/nodes/" .. nodes[i].name .. "/restart"), pki, pki, pki)
    end
    return entries
  end

  -- "2026-11-24T10:51:34.123Z" -> seconds within the day (enough for a span of seconds)
  local function clock_seconds(ts)
    local h, m, s = ts:match("T(%d+):(%d+):([%d%.]+)Z$")
    return tonumber(h) * 3600 + tonumber(m) * 60 + tonumber(s)
  end

  local function durations()
    local out = {}
    for _, e in ipairs(srv.entries("request")) do
      if e.path:match("/restart$") and e.status == "202" then
        local ms = tonumber(e.duration_ms)
        local done = clock_seconds(e.ts)
        out[#out + 1] = { node = e.path:match("nodes/([^/]+)/"), ms = ms, started = done - ms / 1000, done = done }
      end
    end
    return out
  end

  local function stats(xs)
    table.sort(xs)
    local function pct(p) return xs[math.max(1, math.ceil(#xs * p))] end
    return ("n=%d median %.2f ms  p90 %.2f ms  p99 %.2f ms  min %.2f  max %.2f"):format(
      #xs, pct(0.5), pct(0.9), pct(0.99), xs[1], xs[#xs])
  end

  -- 1. Sequential, one keep-alive connection (as the aggregator's).
  local path = srv.dir .. "/sequential"
  shell.write_file(path, table.concat(curl_config(1, SEQUENTIAL), "\nnext\n") .. "\n")
  shell.must("curl -s -K " .. shell.quote(path))
  local seq = {}
  for i, d in ipairs(durations()) do
    if i > 1 then -- the first one pays for the review that is cached afterwards
      seq[#seq + 1] = d.ms
    end
  end

  -- 2. Concurrent: every request on its own connection, all at once, cloud at 300 ms.
  aws.faults({ RebootInstances = { delay = 0.3 } })
  local dir = srv.dir .. "/concurrent"
  shell.must("mkdir -p " .. shell.quote(dir))
  local entries = curl_config(SEQUENTIAL + 1, SEQUENTIAL + CONCURRENT)
  for i, entry in ipairs(entries) do
    shell.write_file(("%s/%03d"):format(dir, i), entry .. "\n")
  end
  local t0 = clock.monotonic()
  shell.must(("ls %s/* | xargs -P %d -n 1 curl -s -K"):format(shell.quote(dir), CONCURRENT))
  local wall = clock.monotonic() - t0
  aws.faults({})
  local conc, first_in, last_out = {}, math.huge, 0
  for _, d in ipairs(durations()) do
    local n = tonumber(d.node:match("%d+"))
    if n > SEQUENTIAL then
      conc[#conc + 1] = d.ms
      first_in, last_out = math.min(first_in, d.started), math.max(last_out, d.done)
    end
  end

  print("restart path against loopback fakes (fake kube-apiserver and EC2 in Python), server-side time:")
  print(("  sequential, one connection:           %s"):format(stats(seq)))
  print(("  %d concurrent, cloud answers in 300 ms: accepted %d/%d; client wall time %.2f s "
    .. "(includes starting %d curl processes); server span, first request in to last answer out: %.2f s"):format(
    CONCURRENT, #conc, CONCURRENT, wall, CONCURRENT, last_out - first_in))
  print(("    per request:                        %s"):format(stats(conc)))
  print(("  reboots recorded by the fake EC2: %d (expected %d)"):format(#aws.reboots(), SEQUENTIAL + CONCURRENT))
  local status = shell.read_file(("/proc/%d/status"):format(srv.pid)) or ""
  print(("  server memory: peak RSS (VmHWM) %s, RSS now %s"):format(
    status:match("VmHWM:%s*(%d+ kB)") or "?", status:match("VmRSS:%s*(%d+ kB)") or "?"))
end

local ok, err = pcall(main)
cleanup()
if not ok then
  error(err, 0)
end
