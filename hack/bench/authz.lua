-- Prints the server-side time of requests whose SubjectAccessReview is cached
-- versus ones that need a review from the (fake) kube-apiserver. A benchmark:
-- it prints figures and asserts nothing. Run: hack/bench/authz.sh
local fake_kube = require("spec.helpers.fake_kube")
local server = require("spec.helpers.server")
local shell = require("spec.helpers.shell")

local N = tonumber(arg[1]) or 200
local GV = "/apis/infraops.michael.io/v1"

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
  local kube = fake_kube.start({ pki = pki, config = {
    rbac = fake_kube.myapiserver_rules({ users = { "system:serviceaccount:default:myapiserver" } }),
    tokens = { ["sa-token"] = { username = "system:serviceaccount:default:myapiserver" } },
  } })
  started[#started + 1] = kube
  local srv = server.start({ pki = pki, kubeconfig = kube.kubeconfig({ token = "sa-token" }),
    client_ca = false, requestheader_ca = false, args = { "--log-level=info" } })
  started[#started + 1] = srv

  -- One curl process sends every request over one keep-alive connection, as the aggregator does.
  local function run(users, tag)
    local config = {}
    for i, user in ipairs(users) do
      config[#config + 1] = ('url = "%s?%s=%d"\nheader = "X-Remote-User: %s"\noutput = "/dev/null"\n'
        .. 'cacert = "%s/serving-ca.crt"\ncert = "%s/front-proxy-client.crt"\nkey = "%s/front-proxy-client.key"')
        :format(srv.url(GV), tag, i, user, pki, pki, pki)
    end
    local path = srv.dir .. "/curl-" .. tag
    -- "next": each URL gets its own header (curl options are otherwise global)
    shell.write_file(path, table.concat(config, "\nnext\n") .. "\n")
    shell.must(("curl -s -K %s"):format(path))
    local durations = {}
    for _, e in ipairs(srv.entries("request")) do
      if e.path == GV and e.status == "200" then
        durations[#durations + 1] = tonumber(e.duration_ms)
      end
    end
    return durations
  end

  local function stats(list, from)
    local xs = {}
    for i = from + 1, #list do
      xs[#xs + 1] = list[i]
    end
    table.sort(xs)
    local function pct(p) return xs[math.max(1, math.ceil(#xs * p))] end
    return ("n=%d median %.3f ms  p90 %.3f ms  p99 %.3f ms  min %.3f  max %.3f"):format(
      #xs, pct(0.5), pct(0.9), pct(0.99), xs[1], xs[#xs])
  end

  local distinct, same = {}, {}
  for i = 1, N do
    distinct[i] = "user-" .. i -- a new user each time: every request needs a review
    same[i] = "cached-user"    -- the same user: one review, then cache hits
  end
  local uncached = run(distinct, "uncached") -- the log's durations so far: N uncached requests
  local all = run(same, "cached")
  local cached = {}
  for i = #uncached + 2, #all do -- the first same-user request is its one review
    cached[#cached + 1] = all[i]
  end
  print(("authorization, %d requests each over one keep-alive connection, server-side duration (request log):")
    :format(N))
  print("  uncached (SubjectAccessReview to the fake kube-apiserver): " .. stats(uncached, 0))
  print("  cached (decision from the shared cache):                  " .. stats(cached, 0))
  print(("  SubjectAccessReviews the fake kube-apiserver received: %d"):format(
    #kube.requests(function(r) return r.path:match("subjectaccessreviews$") ~= nil end)))
end

local ok, err = pcall(main)
cleanup()
if not ok then
  error(err, 0)
end
