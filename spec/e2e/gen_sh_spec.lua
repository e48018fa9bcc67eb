-- End-to-end checks of hack/gen.sh (serving certificates for the APIService) and
-- hack/test-pki.sh (the PKI the end-to-end tests use). Needs sh, bash, openssl and
-- coreutils; only the Lua stdlib is used.

local function dirname(p)
  return (p:match("^(.*)/[^/]*$")) or "."
end

local function q(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

-- Runs a shell command; returns exit code, combined stdout+stderr.
local function run(cmd)
  local p = assert(io.popen("(" .. cmd .. ") 2>&1", "r"))
  local out = p:read("a")
  local _, _, code = p:close()
  return code, out
end

-- Runs a command that must succeed; returns its output.
local function must(cmd)
  local code, out = run(cmd)
  assert(code == 0, ("command failed (exit %s): %s\n%s"):format(tostring(code), cmd, out))
  return out
end

local function readfile(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

local source = debug.getinfo(1, "S").source:gsub("^@", "")
local ROOT = must("cd " .. q(dirname(source)) .. "/../.. && pwd"):gsub("%s+$", "")
local GEN = ROOT .. "/hack/gen.sh"
local PKI = ROOT .. "/hack/test-pki.sh"
-- The caller's environment must not leak into the scripts under test.
local CLEAN_ENV = "env -u NAMESPACE -u CERT_DIR -u EXTRA_SANS "

local tmpdirs = {}
local function tmpdir()
  local d = must("mktemp -d"):gsub("%s+$", "")
  tmpdirs[#tmpdirs + 1] = d
  return d
end
local function cleanup()
  for i = #tmpdirs, 1, -1 do
    os.execute("rm -rf " .. q(tmpdirs[i]))
    tmpdirs[i] = nil
  end
end

-- hack/gen.sh as `hack/gen.sh ARGS` from the repository root.
local function gen(args)
  return run("cd " .. q(ROOT) .. " && " .. CLEAN_ENV .. "hack/gen.sh " .. args)
end
local function must_gen(args)
  local code, out = gen(args)
  assert(code == 0, "gen.sh " .. args .. " failed (exit " .. tostring(code) .. "):\n" .. out)
  return out
end

local function sans(cert)
  return must("openssl x509 -noout -ext subjectAltName -in " .. q(cert))
end

local function fingerprint(cert)
  return must("openssl x509 -noout -fingerprint -sha256 -in " .. q(cert))
end

local function pubkey_of_cert(cert)
  return must("openssl x509 -noout -pubkey -in " .. q(cert))
end

local function pubkey_of_key(key)
  return must("openssl pkey -pubout -in " .. q(key))
end

local function mode(path)
  return must("stat -c %a " .. q(path)):gsub("%s+$", "")
end

local function lines(s)
  local n = 0
  for _ in s:gmatch("[^\n]+") do n = n + 1 end
  return n
end

local REQUIRED = {
  "DNS:infraops-service,",
  "DNS:infraops-service.%s,",
  "DNS:infraops-service.%s.svc,",
  "DNS:infraops-service.%s.svc.cluster.local,",
  "DNS:localhost,",
  "IP Address:127.0.0.1",
}

local function assert_required_sans(cert, ns)
  local text = sans(cert):gsub("%s+", " ") .. ","
  for _, fmt in ipairs(REQUIRED) do
    local want = fmt:format(ns, ns)
    assert.is_truthy(text:find(want, 1, true), "missing SAN " .. want .. " in " .. text)
  end
end

describe("hack/gen.sh", function()
  after_each(cleanup)

  local FILES = { "ca.crt", "ca.key", "tls.crt", "tls.key", "caBundle.txt" }

  it("works as `cd hack && sh gen.sh` and as `hack/gen.sh`", function()
    local a, b = tmpdir() .. "/a", tmpdir() .. "/b"
    local out = must("cd " .. q(ROOT .. "/hack") .. " && " .. CLEAN_ENV .. "sh gen.sh --out " .. q(a))
    must_gen("--out " .. q(b))
    for _, dir in ipairs({ a, b }) do
      for _, f in ipairs(FILES) do
        assert.is_true(exists(dir .. "/" .. f), dir .. "/" .. f .. " missing")
      end
    end
    -- it says where it wrote, and prints the caBundle line to paste
    assert.is_truthy(out:find(a, 1, true))
    assert.is_truthy(out:find(readfile(a .. "/caBundle.txt"):gsub("%s+$", ""), 1, true))
  end)

  it("defaults to certs/ at the repository root for both invocation styles", function()
    -- A copy in a scratch "repository", so the real tree's certs/ is not touched.
    local repo = tmpdir()
    must("mkdir " .. q(repo .. "/hack") .. " && cp " .. q(GEN) .. " " .. q(repo .. "/hack/gen.sh"))
    must("cd " .. q(repo .. "/hack") .. " && " .. CLEAN_ENV .. "sh gen.sh")
    assert.is_true(exists(repo .. "/certs/tls.crt"))
    assert.is_false(exists(repo .. "/hack/certs"))
    local fp = fingerprint(repo .. "/certs/ca.crt")
    must("cd " .. q(repo) .. " && " .. CLEAN_ENV .. "hack/gen.sh")
    assert.equals(fp, fingerprint(repo .. "/certs/ca.crt"))
    assert.is_false(exists(repo .. "/hack/certs"))
  end)

  it("puts every required name in the SANs for namespace default", function()
    local d = tmpdir()
    must_gen("--out " .. q(d))
    assert_required_sans(d .. "/tls.crt", "default")
  end)

  it("puts every required name in the SANs for --namespace infra (and NAMESPACE=infra)", function()
    local d, e = tmpdir(), tmpdir()
    must_gen("--namespace infra --out " .. q(d))
    assert_required_sans(d .. "/tls.crt", "infra")
    assert.is_falsy(sans(d .. "/tls.crt"):find("default", 1, true))
    must("cd " .. q(ROOT) .. " && " .. CLEAN_ENV .. "NAMESPACE=infra hack/gen.sh --out " .. q(e))
    assert_required_sans(e .. "/tls.crt", "infra")
  end)

  it("issues a serving certificate that verifies against ca.crt, with the right extensions", function()
    local d = tmpdir()
    must_gen("--out " .. q(d))
    must("openssl verify -CAfile " .. q(d .. "/ca.crt") .. " -purpose sslserver " .. q(d .. "/tls.crt"))
    local leaf = must("openssl x509 -noout -text -in " .. q(d .. "/tls.crt"))
    assert.is_truthy(leaf:find("CA:FALSE", 1, true))
    assert.is_truthy(leaf:find("Digital Signature, Key Encipherment", 1, true))
    assert.is_truthy(leaf:find("TLS Web Server Authentication", 1, true))
    assert.is_falsy(leaf:find("TLS Web Client Authentication", 1, true))
    assert.is_truthy(leaf:find("prime256v1", 1, true) or leaf:find("P-256", 1, true))
    local ca = must("openssl x509 -noout -text -in " .. q(d .. "/ca.crt"))
    assert.is_truthy(ca:find("Basic Constraints: critical%s+CA:TRUE"))
    assert.is_truthy(ca:find("Key Usage: critical%s+Certificate Sign, CRL Sign"))
  end)

  it("writes a key that matches the certificate", function()
    local d = tmpdir()
    must_gen("--out " .. q(d))
    assert.equals(pubkey_of_cert(d .. "/tls.crt"), pubkey_of_key(d .. "/tls.key"))
    assert.equals(pubkey_of_cert(d .. "/ca.crt"), pubkey_of_key(d .. "/ca.key"))
  end)

  it("writes caBundle.txt as one base64 line decoding to exactly ca.crt", function()
    local d = tmpdir()
    must_gen("--out " .. q(d))
    local bundle = readfile(d .. "/caBundle.txt")
    assert.is_truthy(bundle:match("^[A-Za-z0-9+/]+=*\n?$"), "not one base64 line: " .. bundle)
    must("base64 -d " .. q(d .. "/caBundle.txt") .. " | cmp -s - " .. q(d .. "/ca.crt"))
  end)

  it("makes the key files mode 0600", function()
    local d = tmpdir()
    must_gen("--out " .. q(d))
    assert.equals("600", mode(d .. "/ca.key"))
    assert.equals("600", mode(d .. "/tls.key"))
    assert.equals("644", mode(d .. "/tls.crt"))
  end)

  it("adds extra --dns/--ip SANs and EXTRA_SANS", function()
    local d = tmpdir()
    must("cd " .. q(ROOT) .. " && " .. CLEAN_ENV .. "EXTRA_SANS=DNS:env.example.org,IP:10.9.8.7 hack/gen.sh"
      .. " --dns api.example.com --dns=other.example.com --ip 10.0.0.5 --ip fd00::1 --out " .. q(d))
    local text = sans(d .. "/tls.crt")
    for _, want in ipairs({ "DNS:api.example.com", "DNS:other.example.com", "DNS:env.example.org",
      "IP Address:10.0.0.5", "IP Address:10.9.8.7", "IP Address:FD00:0:0:0:0:0:0:1" }) do
      assert.is_truthy(text:find(want, 1, true), "missing " .. want .. " in " .. text)
    end
    assert_required_sans(d .. "/tls.crt", "default")
  end)

  it("issues RSA keys with --rsa", function()
    local d = tmpdir()
    must_gen("--rsa --out " .. q(d))
    assert.is_truthy(must("openssl pkey -noout -text -in " .. q(d .. "/tls.key")):find("2048 bit", 1, true))
    must("openssl verify -CAfile " .. q(d .. "/ca.crt") .. " " .. q(d .. "/tls.crt"))
  end)

  it("keeps the CA without --force and reissues tls.crt", function()
    local d = tmpdir()
    must_gen("--out " .. q(d))
    local ca, bundle = fingerprint(d .. "/ca.crt"), readfile(d .. "/caBundle.txt")
    local leaf = fingerprint(d .. "/tls.crt")
    must_gen("--out " .. q(d) .. " --dns added.example.com")
    assert.equals(ca, fingerprint(d .. "/ca.crt"))
    assert.equals(bundle, readfile(d .. "/caBundle.txt"))
    assert.are_not.equals(leaf, fingerprint(d .. "/tls.crt"))
    assert.is_truthy(sans(d .. "/tls.crt"):find("DNS:added.example.com", 1, true))
    must("openssl verify -CAfile " .. q(d .. "/ca.crt") .. " " .. q(d .. "/tls.crt"))
  end)

  it("creates a new CA with --force", function()
    local d = tmpdir()
    must_gen("--out " .. q(d))
    local ca, bundle = fingerprint(d .. "/ca.crt"), readfile(d .. "/caBundle.txt")
    must_gen("--force --out " .. q(d))
    assert.are_not.equals(ca, fingerprint(d .. "/ca.crt"))
    assert.are_not.equals(bundle, readfile(d .. "/caBundle.txt"))
    must("openssl verify -CAfile " .. q(d .. "/ca.crt") .. " " .. q(d .. "/tls.crt"))
  end)

  it("refuses a bad namespace with exit 2, one line, and writes nothing", function()
    local d = tmpdir() .. "/out"
    local code, out = gen("--namespace Bad_NS --out " .. q(d))
    assert.equals(2, code)
    assert.equals(1, lines(out))
    assert.is_truthy(out:find("Bad_NS", 1, true))
    assert.is_false(exists(d))
  end)

  it("refuses other bad input with exit 2 and one line", function()
    local d = tmpdir() .. "/out"
    for _, args in ipairs({
      "--service Infra_Service", "--ip 10.0.0.256", "--ip not-an-ip", "--ip 1.2.3",
      "--dns Bad_Name", "--days 0", "--days soon", "--bogus", "--namespace",
    }) do
      local code, out = gen("--out " .. q(d) .. " " .. args)
      assert.equals(2, code, args .. ": " .. out)
      assert.equals(1, lines(out), args .. ": " .. out)
    end
    local code = run("cd " .. q(ROOT) .. " && " .. CLEAN_ENV .. "EXTRA_SANS=FOO:bar hack/gen.sh --out " .. q(d))
    assert.equals(2, code)
    assert.is_false(exists(d))
  end)

  it("prints usage with --help", function()
    local code, out = gen("--help")
    assert.equals(0, code)
    assert.is_truthy(out:find("--namespace", 1, true))
  end)
end)

describe("hack/test-pki.sh", function()
  local dir, summary

  setup(function()
    dir = tmpdir() .. "/pki"
    summary = must(CLEAN_ENV .. q(PKI) .. " " .. q(dir))
  end)

  teardown(cleanup)

  local function f(name)
    return q(dir .. "/" .. name)
  end

  local function verify(args)
    return run("openssl verify " .. args)
  end

  local PAIRS = {
    "serving-ca", "serving", "client-ca", "alice", "admin", "front-proxy-ca", "front-proxy-client",
    "front-proxy-other", "rogue-ca", "rogue-front-proxy", "rogue-alice", "expired", "server-only",
    "intermediate-ca", "client-ca-2", "carol",
  }

  local function subject(name)
    return must("openssl x509 -noout -subject -nameopt RFC2253 -in " .. f(name))
  end

  it("prints one summary line", function()
    assert.equals(1, lines(summary))
  end)

  it("creates every file, keys 0600 and matching their certificates (ECDSA P-256)", function()
    for _, name in ipairs(PAIRS) do
      assert.is_true(exists(dir .. "/" .. name .. ".crt"), name .. ".crt missing")
      assert.is_true(exists(dir .. "/" .. name .. ".key"), name .. ".key missing")
      assert.equals("600", mode(dir .. "/" .. name .. ".key"), name .. ".key mode")
      assert.equals(pubkey_of_cert(dir .. "/" .. name .. ".crt"), pubkey_of_key(dir .. "/" .. name .. ".key"),
        name .. ": key does not match")
      local text = must("openssl pkey -noout -text -in " .. f(name .. ".key"))
      assert.is_truthy(text:find("prime256v1", 1, true) or text:find("P-256", 1, true), name .. " not P-256")
    end
    assert.is_true(exists(dir .. "/bob-chain.crt"))
    assert.is_true(exists(dir .. "/bob.key"))
    assert.equals(pubkey_of_cert(dir .. "/bob-chain.crt"), pubkey_of_key(dir .. "/bob.key"))
  end)

  it("issues the serving certificate with the localhost and service SANs", function()
    local text = sans(dir .. "/serving.crt")
    for _, want in ipairs({ "DNS:localhost", "IP Address:127.0.0.1", "DNS:infraops-service.default.svc" }) do
      assert.is_truthy(text:find(want, 1, true), "missing " .. want)
    end
    must("openssl verify -purpose sslserver -CAfile " .. f("serving-ca.crt") .. " " .. f("serving.crt"))
  end)

  it("issues client certificates that verify against their CAs", function()
    for _, c in ipairs({
      { "client-ca.crt", "alice.crt" }, { "client-ca.crt", "admin.crt" },
      { "front-proxy-ca.crt", "front-proxy-client.crt" }, { "front-proxy-ca.crt", "front-proxy-other.crt" },
      { "client-ca-2.crt", "carol.crt" }, { "rogue-ca.crt", "rogue-front-proxy.crt" },
      { "rogue-ca.crt", "rogue-alice.crt" }, { "client-ca.crt", "intermediate-ca.crt" },
    }) do
      local code, out = verify("-purpose sslclient -CAfile " .. f(c[1]) .. " " .. f(c[2]))
      if c[2] == "intermediate-ca.crt" then
        code, out = verify("-CAfile " .. f(c[1]) .. " " .. f(c[2]))
      end
      assert.equals(0, code, c[2] .. " vs " .. c[1] .. ": " .. out)
    end
  end)

  it("sets the expected subjects", function()
    local alice = subject("alice.crt")
    assert.is_truthy(alice:find("CN=alice", 1, true))
    assert.is_truthy(alice:find("O=dev", 1, true))
    assert.is_truthy(alice:find("O=ops", 1, true))
    local admin = subject("admin.crt")
    assert.is_truthy(admin:find("CN=admin", 1, true))
    assert.is_truthy(admin:find("O=system:masters", 1, true))
    assert.is_truthy(subject("front-proxy-client.crt"):find("CN=front-proxy-client", 1, true))
    assert.is_truthy(subject("front-proxy-other.crt"):find("CN=not-allowed", 1, true))
    assert.is_truthy(subject("rogue-front-proxy.crt"):find("CN=front-proxy-client", 1, true))
    assert.is_truthy(subject("rogue-alice.crt"):find("CN=alice", 1, true))
    assert.is_truthy(subject("expired.crt"):find("CN=alice", 1, true))
    assert.is_truthy(subject("server-only.crt"):find("CN=alice", 1, true))
    assert.is_truthy(subject("carol.crt"):find("CN=carol", 1, true))
    local bob = subject("bob-chain.crt") -- the first certificate: the leaf
    assert.is_truthy(bob:find("CN=bob", 1, true))
    assert.is_truthy(bob:find("O=dev", 1, true))
  end)

  it("builds bob's chain: leaf first, then the intermediate, verifying only with it", function()
    local chain = readfile(dir .. "/bob-chain.crt")
    local _, n = chain:gsub("%-%-%-%-%-BEGIN CERTIFICATE%-%-%-%-%-", "")
    assert.equals(2, n)
    local inter = readfile(dir .. "/intermediate-ca.crt")
    assert.equals(inter, chain:sub(-#inter))
    local leaf = tmpdir() .. "/bob-leaf.crt"
    must("openssl x509 -in " .. f("bob-chain.crt") .. " -out " .. q(leaf))
    local code, out = verify("-purpose sslclient -CAfile " .. f("client-ca.crt") .. " -untrusted " .. f("bob-chain.crt")
      .. " " .. q(leaf))
    assert.equals(0, code, out)
    code = verify("-CAfile " .. f("client-ca.crt") .. " " .. q(leaf))
    assert.are_not.equals(0, code)
    code = verify("-CAfile " .. f("client-ca-2.crt") .. " -untrusted " .. f("bob-chain.crt") .. " " .. q(leaf))
    assert.are_not.equals(0, code)
  end)

  it("does not let the rogue look-alikes verify against the real CAs", function()
    for _, c in ipairs({
      { "front-proxy-ca.crt", "rogue-front-proxy.crt" }, { "client-ca.crt", "rogue-alice.crt" },
      { "front-proxy-ca.crt", "alice.crt" }, { "client-ca.crt", "front-proxy-client.crt" },
      { "client-ca.crt", "carol.crt" }, { "client-ca-2.crt", "alice.crt" },
    }) do
      local code, out = verify("-CAfile " .. f(c[1]) .. " " .. f(c[2]))
      assert.are_not.equals(0, code, c[2] .. " verified against " .. c[1] .. ": " .. out)
    end
  end)

  it("makes expired.crt expired, and only that", function()
    local code, out = verify("-CAfile " .. f("client-ca.crt") .. " " .. f("expired.crt"))
    assert.are_not.equals(0, code)
    assert.is_truthy(out:find("certificate has expired", 1, true), out)
    code, out = verify("-no_check_time -purpose sslclient -CAfile " .. f("client-ca.crt") .. " " .. f("expired.crt"))
    assert.equals(0, code, out)
  end)

  it("gives server-only.crt no clientAuth", function()
    local code, out = verify("-purpose sslclient -CAfile " .. f("client-ca.crt") .. " " .. f("server-only.crt"))
    assert.are_not.equals(0, code, out)
    code, out = verify("-CAfile " .. f("client-ca.crt") .. " " .. f("server-only.crt"))
    assert.equals(0, code, out)
    local eku = must("openssl x509 -noout -ext extendedKeyUsage -in " .. f("server-only.crt"))
    assert.is_falsy(eku:find("Client", 1, true))
  end)

  it("regenerates everything on a rerun", function()
    local before = fingerprint(dir .. "/client-ca.crt")
    local out = must(CLEAN_ENV .. q(PKI) .. " " .. q(dir))
    assert.equals(1, lines(out))
    assert.are_not.equals(before, fingerprint(dir .. "/client-ca.crt"))
    must("openssl verify -CAfile " .. f("client-ca.crt") .. " " .. f("alice.crt"))
    assert.equals("", must("ls -A " .. q(dir) .. " | grep '^\\.' || true"))
  end)

  it("requires OUTDIR", function()
    local code, out = run(q(PKI))
    assert.equals(2, code)
    assert.is_truthy(out:find("usage", 1, true))
  end)
end)
