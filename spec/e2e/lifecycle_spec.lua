-- End to end: certificate rotation, concurrency limits and graceful shutdown.
local server = require("spec.helpers.server")
local shell = require("spec.helpers.shell")
local slow_lua = require("spec.helpers.slow_lua")

-- The SHA-256 fingerprint of the certificate a new connection is served.
local function served_fingerprint(pki, port)
  local cmd = shell.join({ "openssl", "s_client", "-connect", "127.0.0.1:" .. port,
    "-CAfile", pki .. "/serving-ca.crt" }) .. " </dev/null 2>/dev/null | openssl x509 -noout -fingerprint -sha256"
  local _, out = shell.run(cmd)
  return out:match("=(%S+)")
end

local function file_fingerprint(path)
  return shell.must("openssl x509 -noout -fingerprint -sha256 -in " .. shell.quote(path)):match("=(%S+)")
end

-- Starts `curl URL` in the background; returns a function giving "code" once done, else nil.
local function background_curl(pki, url, dir, name)
  local out = dir .. "/" .. name
  shell.spawn(("curl -s -o /dev/null -w '%%{http_code}' --max-time 20 --cacert %s %s >%s.tmp 2>&1; mv %s.tmp %s")
    :format(shell.quote(pki .. "/serving-ca.crt"), shell.quote(url), out, out, out))
  return function()
    return shell.read_file(out)
  end
end

-- As `admin` (system:masters): authorized without a cluster.
local function curl_code(pki, url)
  local _, out = shell.run(("curl -s -o /dev/null -w '%%{http_code}' --max-time 10 --cacert %s --cert %s --key %s %s")
    :format(shell.quote(pki .. "/serving-ca.crt"), shell.quote(pki .. "/admin.crt"), shell.quote(pki .. "/admin.key"),
      shell.quote(url)))
  return tonumber(out)
end

describe("myapiserver lifecycle", function()
  local pki

  setup(function()
    pki = server.pki()
  end)

  describe("certificate rotation", function()
    local dir, srv

    before_each(function()
      dir = shell.temp_dir()
      shell.must(("cp %s/serving.crt %s/serving.key %s/"):format(pki, pki, dir))
      -- gen.sh reuses the CA it finds in --out, so this issues a second serving cert from it.
      shell.must(("mkdir %s/next && cp %s/serving-ca.crt %s/next/ca.crt && cp %s/serving-ca.key %s/next/ca.key")
        :format(dir, pki, dir, pki, dir))
      shell.must(("hack/gen.sh --out %s/next >/dev/null"):format(dir))
      srv = server.start({ pki = pki, cert = dir .. "/serving.crt", key = dir .. "/serving.key" })
    end)

    after_each(function()
      srv.cleanup()
      shell.remove_tree(dir)
    end)

    it("serves a replaced certificate to new connections without a restart", function()
      local old = file_fingerprint(dir .. "/serving.crt")
      local new = file_fingerprint(dir .. "/next/tls.crt")
      assert.is_not.equal(old, new)
      assert.equal(old, served_fingerprint(pki, srv.port))
      -- Like a Secret update: each file replaced by rename.
      shell.must(("cp %s/next/tls.key %s/k.tmp && mv %s/k.tmp %s/serving.key"):format(dir, dir, dir, dir))
      shell.must(("cp %s/next/tls.crt %s/c.tmp && mv %s/c.tmp %s/serving.crt"):format(dir, dir, dir, dir))
      local served = shell.wait_for(function()
        local fp = served_fingerprint(pki, srv.port)
        return fp == new and fp
      end, 10, 0.2)
      assert.equal(new, served)
      assert.is_true(#srv.entries("reloaded TLS certificates and CA bundles") >= 1)
    end)

    it("keeps the working certificate when the new one is invalid, and says why", function()
      local old = file_fingerprint(dir .. "/serving.crt")
      shell.write_file(dir .. "/c.tmp", "-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n")
      shell.must(("mv %s/c.tmp %s/serving.crt"):format(dir, dir))
      local logged = shell.wait_for(function()
        return #srv.entries("TLS files changed but cannot be loaded; still serving the previous certificates") > 0
      end, 10)
      assert.is_true(logged)
      assert.equal(old, served_fingerprint(pki, srv.port))
      assert.equal(200, curl_code(pki, srv.url("/healthz")))
    end)
  end)

  describe("slow requests", function()
    local slow, srv

    setup(function()
      slow = slow_lua.start()
      srv = server.start({ pki = pki, args = { "--lua-dir=" .. slow.lua_dir, "--providers-dir=providers",
        "--max-requests-inflight=3",
        "--shutdown-timeout=20s" } })
    end)

    teardown(function()
      if srv then
        srv.cleanup()
      end
      slow.stop()
    end)

    it("never hold up other requests", function()
      local done = background_curl(pki, srv.url("/test/slow?seconds=3"), srv.dir, "slow1")
      shell.sleep(0.5) -- the slow request is now inside the server, waiting upstream
      -- Discovery is answered while the slow request is still waiting on its upstream.
      assert.equal(200, curl_code(pki, srv.url("/apis/infraops.michael.io/v1")))
      assert.is_nil(done())
      assert.equal("200", shell.wait_for(done, 15))
    end)

    it("beyond --max-requests-inflight get 429 with Retry-After", function()
      local waits = {}
      for i = 1, 3 do
        waits[i] = background_curl(pki, srv.url("/test/slow?seconds=3"), srv.dir, "held" .. i)
      end
      shell.sleep(1) -- all three are now inside the server, waiting upstream
      local _, headers = shell.run(("curl -s -D - -o /dev/null --max-time 10 --cacert %s %s")
        :format(shell.quote(pki .. "/serving-ca.crt"), shell.quote(srv.url("/healthz"))))
      assert.matches("^HTTP/1.1 429", headers)
      assert.matches("\n[Rr]etry%-[Aa]fter: 1\r", headers)
      for i = 1, 3 do
        assert.equal("200", shell.wait_for(waits[i], 15))
      end
      assert.equal(200, curl_code(pki, srv.url("/healthz")))
    end)

    it("leave Lua states behind that are closed once idle for --lua-state-idle-timeout", function()
      local trimmed = server.start({ pki = pki, args = { "--lua-dir=" .. slow.lua_dir, "--providers-dir=providers",
        "--lua-state-idle-timeout=1s", "--log-level=debug" } })
      local waits = {}
      for i = 1, 4 do -- four at once: the pool holds one state, so three more are made
        waits[i] = background_curl(pki, trimmed.url("/test/slow?seconds=4"), trimmed.dir, "burst" .. i)
      end
      shell.sleep(2) -- all four are now inside the server, each holding a state (slower under ASan)
      assert.is_nil(waits[1]()) -- still waiting upstream: they overlapped
      for i = 1, 4 do
        assert.equal("200", shell.wait_for(waits[i], 20))
      end
      local closed = shell.wait_for(function()
        local n = 0
        for _, e in ipairs(trimmed.entries("closed idle Lua states")) do
          n = n + tonumber(e.closed)
        end
        return n >= 3 and n or nil
      end, 20)
      assert.is_number(closed, "no idle state was closed")
      -- At least the three extra ones (the periodic task may have made one more while all were busy).
      assert.is_true(closed >= 3)
      assert.equal(200, curl_code(pki, trimmed.url("/apis/infraops.michael.io/v1")))
      trimmed.cleanup()
    end)

    it("finish on SIGTERM before the server exits 0", function()
      local done = background_curl(pki, srv.url("/test/slow?seconds=2"), srv.dir, "last")
      shell.sleep(0.5)
      srv.signal("TERM")
      assert.equal("200", shell.wait_for(done, 15))
      assert.equal(0, srv.wait_exit(20))
      assert.equal(1, #srv.entries("stopped"))
      -- and it no longer accepts connections
      assert.is_not.equal(200, curl_code(pki, srv.url("/healthz")))
    end)
  end)
end)
