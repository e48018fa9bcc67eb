-- The binary as a process: flags, start-up failures, --help, --version, install.
local server = require("spec.helpers.server")
local shell = require("spec.helpers.shell")

local function run_binary(args)
  return shell.run(shell.join({ server.binary, table.unpack(args) }))
end

local function lines(text)
  local out = {}
  for line in text:gmatch("[^\n]+") do
    out[#out + 1] = line
  end
  return out
end

describe("myapiserver process", function()
  local pki

  setup(function()
    pki = server.pki()
  end)

  it("--help lists every flag with its default and exits 0", function()
    local code, out = run_binary({ "--help" })
    assert.equal(0, code)
    for _, flag in ipairs({ "secure-port", "bind-address", "tls-cert-file", "tls-private-key-file",
      "client-ca-file", "requestheader-client-ca-file", "lua-dir", "providers-dir", "log-format",
      "max-requests-inflight", "max-request-body-bytes", "shutdown-timeout" }) do
      assert.matches("%-%-" .. flag:gsub("%-", "%%-") .. "\n", out)
    end
    assert.matches('default "8443"', out)
  end)

  it("--version prints the version", function()
    local code, out = run_binary({ "--version" })
    assert.equal(0, code)
    assert.matches("^myapiserver %d+%.%d+%.%d+\n$", out)
  end)

  local function assert_usage_error(args, ...)
    local code, out = run_binary(args)
    assert.equal(2, code)
    assert.equal(1, #lines(out), out)
    for _, expected in ipairs({ ... }) do
      assert.is_truthy(out:find(expected, 1, true), ("%q not in %q"):format(expected, out))
    end
  end

  it("exits 2 naming an unknown flag", function()
    assert_usage_error({ "--no-such-flag=1" }, "--no-such-flag")
  end)

  -- The serving pair from the test PKI, then the extra flags.
  local function with_serving(cert, key, ...)
    return { "--tls-cert-file=" .. cert, "--tls-private-key-file=" .. key, ... }
  end

  it("exits 2 naming a flag with a bad value", function()
    assert_usage_error({ "--secure-port=http", table.unpack(with_serving("x", "y")) }, "--secure-port", "http")
    assert_usage_error({ "--shutdown-timeout=soon", table.unpack(with_serving("x", "y")) }, "--shutdown-timeout")
  end)

  it("exits 2 naming the flag and the path of an unreadable file", function()
    local cert, key = pki .. "/serving.crt", pki .. "/serving.key"
    assert_usage_error(with_serving(cert, "/nonexistent/tls.key"), "--tls-private-key-file", "/nonexistent/tls.key")
    assert_usage_error(with_serving(cert, key, "--client-ca-file=/nonexistent/ca.crt"),
      "--client-ca-file", "/nonexistent/ca.crt")
  end)

  it("exits 2 when the certificate does not match its key", function()
    local cert = pki .. "/serving.crt"
    assert_usage_error(with_serving(cert, pki .. "/alice.key"), "--tls-cert-file", cert, "does not match")
  end)

  it("exits 2 when a CA bundle holds no certificate", function()
    local dir = shell.temp_dir()
    local bundle = dir .. "/empty.crt"
    shell.write_file(bundle, "no certificates here\n")
    assert_usage_error(with_serving(pki .. "/serving.crt", pki .. "/serving.key",
      "--requestheader-client-ca-file=" .. bundle), "--requestheader-client-ca-file", bundle)
    shell.remove_tree(dir)
  end)

  it("exits 1 naming the port when another process listens on it (no silent port sharing)", function()
    local first = server.start({ pki = pki })
    local code, out = run_binary(with_serving(pki .. "/serving.crt", pki .. "/serving.key",
      "--bind-address=127.0.0.1", "--secure-port=" .. first.port, "--authentication-skip-lookup"))
    assert.equal(1, code)
    assert.matches("cannot listen on 127.0.0.1 port " .. first.port, out, 1, true)
    first.cleanup()
  end)

  it("runs from an install prefix with its Lua tree found beside it", function()
    local prefix = shell.temp_dir()
    local build = server.binary:match("^(.*)/myapiserver$")
    shell.must(shell.join({ "cmake", "--install", build, "--prefix", prefix }))
    assert.is_truthy(shell.read_file(prefix .. "/share/myapiserver/lua/infraops/app.lua"))
    local installed = server.start({ pki = pki, binary = prefix .. "/bin/myapiserver" })
    local started = installed.entries("serving HTTPS")[1]
    assert.equal(prefix .. "/bin/../share/myapiserver/lua", started.lua_dir)
    local code = shell.run(shell.join({ "curl", "-sf", "--cacert", pki .. "/serving-ca.crt",
      "--cert", pki .. "/admin.crt", "--key", pki .. "/admin.key", installed.url("/apis/infraops.michael.io/v1") }))
    assert.equal(0, code)
    assert.equal(0, installed.stop())
    installed.cleanup()
    shell.remove_tree(prefix)
  end)
end)
