-- host.crypto (host/bindings/crypto.c) against published test vectors and openssl.
local crypto = require("host.crypto")

-- Independent of the module, so a broken hex_encode cannot hide a broken digest.
local function tohex(s)
  return (s:gsub(".", function(c) return string.format("%02x", c:byte()) end))
end

local function fromhex(h)
  return (h:gsub("%x%x", function(pair) return string.char(tonumber(pair, 16)) end))
end

local function shell_quote(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

local function run(command)
  local ok = os.execute(command .. " >/dev/null 2>&1")
  return ok == true
end

local function write_file(path, data)
  local f = assert(io.open(path, "wb"))
  assert(f:write(data))
  assert(f:close())
end

local function read_file(path)
  local f = assert(io.open(path, "rb"))
  local data = f:read("a")
  f:close()
  return data
end

local function raises(fn, ...)
  local ok, err = pcall(fn, ...)
  return not ok, tostring(err)
end

local MILLION_A = string.rep("a", 1000000)
local MSG_448 = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"

describe("host.crypto", function()
  it("is a table of functions and sets no globals", function()
    assert.is_table(crypto)
    assert.is_function(crypto.sha256)
    assert.is_nil(rawget(_G, "crypto"))
    assert.is_nil(rawget(_G, "host"))
  end)

  describe("sha256()", function()
    -- FIPS 180-2 appendix B and NIST example vectors.
    it("matches the FIPS 180 examples", function()
      assert.equal("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        tohex(crypto.sha256("abc")))
      assert.equal("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        tohex(crypto.sha256("")))
      assert.equal("248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
        tohex(crypto.sha256(MSG_448)))
      assert.equal("cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0",
        tohex(crypto.sha256(MILLION_A)))
    end)

    it("returns 32 raw bytes and handles embedded NULs", function()
      local d = crypto.sha256("a\0b")
      assert.equal(32, #d)
      assert.not_equal(crypto.sha256("a"), d)
    end)
  end)

  describe("sha1()", function()
    it("matches the FIPS 180 examples", function()
      assert.equal("a9993e364706816aba3e25717850c26c9cd0d89d", tohex(crypto.sha1("abc")))
      assert.equal("da39a3ee5e6b4b0d3255bfef95601890afd80709", tohex(crypto.sha1("")))
      assert.equal("84983e441c3bd26ebaae4aa1f95129e5e54670f1", tohex(crypto.sha1(MSG_448)))
      assert.equal("34aa973cd4c4daa4f61eeb2bdbad27316534016f", tohex(crypto.sha1(MILLION_A)))
    end)
  end)

  describe("hmac_sha256()", function()
    local key_25 = fromhex("0102030405060708090a0b0c0d0e0f10111213141516171819")
    -- RFC 4231 section 4, test cases 1-7.
    local cases = {
      { string.rep("\11", 20), "Hi There",
        "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7" },
      { "Jefe", "what do ya want for nothing?",
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843" },
      { string.rep("\170", 20), string.rep("\221", 50),
        "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe" },
      { key_25, string.rep("\205", 50),
        "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b" },
      { string.rep("\12", 20), "Test With Truncation", "a3b6167473100ee06e0c796c2955552b" },
      { string.rep("\170", 131), "Test Using Larger Than Block-Size Key - Hash Key First",
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54" },
      { string.rep("\170", 131),
        "This is a test using a larger than block-size key and a larger than block-size data."
          .. " The key needs to be hashed before being used by the HMAC algorithm.",
        "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2" },
    }
    for i, case in ipairs(cases) do
      it("matches RFC 4231 test case " .. i, function()
        local mac = crypto.hmac_sha256(case[1], case[2])
        assert.equal(32, #mac)
        -- Case 5 publishes only the first 128 bits.
        assert.equal(case[3], tohex(mac):sub(1, #case[3]))
      end)
    end
  end)

  describe("hmac_sha1()", function()
    local key_25 = fromhex("0102030405060708090a0b0c0d0e0f10111213141516171819")
    -- RFC 2202 section 3, test cases 1-7.
    local cases = {
      { string.rep("\11", 20), "Hi There", "b617318655057264e28bc0b6fb378c8ef146be00" },
      { "Jefe", "what do ya want for nothing?", "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79" },
      { string.rep("\170", 20), string.rep("\221", 50), "125d7342b9ac11cd91a39af48aa17b4f63f175d3" },
      { key_25, string.rep("\205", 50), "4c9007f4026250c6bc8414f9bf50c86c2d7235da" },
      { string.rep("\12", 20), "Test With Truncation", "4c1a03424b55e07fe7f27be1d58bb9324a9a5a04" },
      { string.rep("\170", 80), "Test Using Larger Than Block-Size Key - Hash Key First",
        "aa4ae5e15272d00e95705637ce8a3b55ed402112" },
      { string.rep("\170", 80),
        "Test Using Larger Than Block-Size Key and Larger Than One Block-Size Data",
        "e8e99d0f45237d786d6bbaa7965c7808bbff1a91" },
    }
    for i, case in ipairs(cases) do
      it("matches RFC 2202 test case " .. i, function()
        assert.equal(case[3], tohex(crypto.hmac_sha1(case[1], case[2])))
      end)
    end
  end)

  -- RFC 4648 section 10.
  local BASE64_VECTORS = {
    { "", "" }, { "f", "Zg==" }, { "fo", "Zm8=" }, { "foo", "Zm9v" },
    { "foob", "Zm9vYg==" }, { "fooba", "Zm9vYmE=" }, { "foobar", "Zm9vYmFy" },
  }
  local BASE16_VECTORS = {
    { "", "" }, { "f", "66" }, { "fo", "666F" }, { "foo", "666F6F" },
    { "foob", "666F6F62" }, { "fooba", "666F6F6261" }, { "foobar", "666F6F626172" },
  }

  local function assert_invalid(code, value, message, got_code)
    assert.is_nil(value)
    assert.is_string(message)
    assert.equal(code, got_code)
  end

  describe("base64_encode() / base64_decode()", function()
    for _, v in ipairs(BASE64_VECTORS) do
      it(string.format("maps %q <-> %q (RFC 4648)", v[1], v[2]), function()
        assert.equal(v[2], crypto.base64_encode(v[1]))
        assert.equal(v[1], crypto.base64_decode(v[2]))
      end)
    end

    it("round-trips every byte value", function()
      local all = {}
      for b = 0, 255 do all[#all + 1] = string.char(b) end
      local bytes = table.concat(all)
      assert.equal(bytes, crypto.base64_decode(crypto.base64_encode(bytes)))
    end)

    it("skips whitespace, as nettle does, so wrapped text decodes", function()
      assert.equal("foobar", crypto.base64_decode("Zm9v\r\nYmFy\n"))
      assert.equal("foo", crypto.base64url_decode(" Zm9v\t"))
    end)

    it("uses the standard alphabet", function()
      assert.equal("+//+", crypto.base64_encode("\251\255\254"))
    end)

    for _, bad in ipairs({ "Zg", "Zg=", "Z", "Zm9v!", "Zh==", "A===", "Zg==Zg==", "====", "-__-" }) do
      it(string.format("rejects %q with invalid_base64", bad), function()
        local value, message, code = crypto.base64_decode(bad)
        assert_invalid("invalid_base64", value, message, code)
        assert.matches("host.crypto.base64_decode", message, 1, true)
      end)
    end
  end)

  describe("base64url_encode() / base64url_decode()", function()
    it("uses - and _ and omits padding", function()
      assert.equal("-__-", crypto.base64url_encode("\251\255\254"))
      assert.equal("__4", crypto.base64url_encode("\255\254"))
      assert.equal("-w", crypto.base64url_encode("\251"))
      assert.equal("Zm9vYmFy", crypto.base64url_encode("foobar"))
      assert.equal("", crypto.base64url_encode(""))
    end)

    it("round-trips bytes that need - and _", function()
      for _, bytes in ipairs({ "\251\255\254", "\255\254", "\251", "\248\0\255\191" }) do
        assert.equal(bytes, crypto.base64url_decode(crypto.base64url_encode(bytes)))
      end
    end)

    it("decodes with and without padding", function()
      for _, v in ipairs(BASE64_VECTORS) do
        assert.equal(v[1], crypto.base64url_decode(v[2]))
        assert.equal(v[1], crypto.base64url_decode((v[2]:gsub("=", ""))))
      end
      assert.equal("\255\254", crypto.base64url_decode("__4="))
      assert.equal("\255\254", crypto.base64url_decode("__4"))
    end)

    for _, bad in ipairs({ "+//+", "Z", "Zg=", "Zh", "A===", "Zm9v!", "Zg==Zg" }) do
      it(string.format("rejects %q with invalid_base64", bad), function()
        local value, message, code = crypto.base64url_decode(bad)
        assert_invalid("invalid_base64", value, message, code)
        assert.matches("host.crypto.base64url_decode", message, 1, true)
      end)
    end
  end)

  describe("hex_encode() / hex_decode()", function()
    for _, v in ipairs(BASE16_VECTORS) do
      it(string.format("maps %q <-> %q (RFC 4648)", v[1], v[2]), function()
        assert.equal(v[2]:lower(), crypto.hex_encode(v[1]))
        assert.equal(v[1], crypto.hex_decode(v[2]))
        assert.equal(v[1], crypto.hex_decode(v[2]:lower()))
      end)
    end

    it("encodes every byte value in lower case", function()
      local all = {}
      for b = 0, 255 do all[#all + 1] = string.char(b) end
      local bytes = table.concat(all)
      assert.equal(tohex(bytes), crypto.hex_encode(bytes))
      assert.equal(bytes, crypto.hex_decode(crypto.hex_encode(bytes)))
      assert.equal(bytes, crypto.hex_decode(crypto.hex_encode(bytes):upper()))
    end)

    for _, bad in ipairs({ "0", "abc", "zz", "0x00", "g0" }) do
      it(string.format("rejects %q with invalid_hex", bad), function()
        local value, message, code = crypto.hex_decode(bad)
        assert_invalid("invalid_hex", value, message, code)
        assert.matches("host.crypto.hex_decode", message, 1, true)
      end)
    end
  end)

  describe("rsa_sha256_sign()", function()
    local dir, pkcs8_pem, pkcs1_pem

    local function path(name)
      return dir .. "/" .. name
    end

    local function openssl(args)
      assert(run("openssl " .. args), "openssl " .. args)
    end

    -- openssl's exit status is the verdict: the test fails if verification is wrong.
    local function verifies(signature, data)
      write_file(path("sig.bin"), signature)
      write_file(path("data.bin"), data)
      return run(string.format("openssl dgst -sha256 -verify %s -signature %s %s",
        shell_quote(path("pub.pem")), shell_quote(path("sig.bin")), shell_quote(path("data.bin"))))
    end

    lazy_setup(function()
      dir = os.tmpname()
      os.remove(dir)
      assert(run("mkdir -m 700 " .. shell_quote(dir)))
      openssl("genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out " .. shell_quote(path("key8.pem")))
      openssl("rsa -traditional -in " .. shell_quote(path("key8.pem")) .. " -out " .. shell_quote(path("key1.pem")))
      openssl("pkey -pubout -in " .. shell_quote(path("key8.pem")) .. " -out " .. shell_quote(path("pub.pem")))
      pkcs8_pem = read_file(path("key8.pem"))
      pkcs1_pem = read_file(path("key1.pem"))
    end)

    lazy_teardown(function()
      if dir then run("rm -rf " .. shell_quote(dir)) end
    end)

    it("was given the two PEM forms", function()
      assert.matches("-----BEGIN PRIVATE KEY-----", pkcs8_pem, 1, true)
      assert.matches("-----BEGIN RSA PRIVATE KEY-----", pkcs1_pem, 1, true)
    end)

    for _, form in ipairs({ "pkcs8", "pkcs1" }) do
      it("signs with a " .. form .. " key so that openssl verifies it", function()
        local pem = form == "pkcs8" and pkcs8_pem or pkcs1_pem
        local data = "GET /apis/example.com/v1 \0 with a NUL"
        local signature = assert(crypto.rsa_sha256_sign(pem, data))
        assert.equal(256, #signature)
        assert.is_true(verifies(signature, data))
        assert.is_false(verifies(signature, data .. "!"))
        local tampered = string.char(signature:byte(1) ~ 1) .. signature:sub(2)
        assert.is_false(verifies(tampered, data))
      end)
    end

    it("matches openssl's own PKCS#1 v1.5 signature byte for byte", function()
      local data = "payload"
      write_file(path("data.bin"), data)
      openssl(string.format("dgst -sha256 -sign %s -out %s %s", shell_quote(path("key8.pem")),
        shell_quote(path("expected.bin")), shell_quote(path("data.bin"))))
      local expected = read_file(path("expected.bin"))
      assert.equal(tohex(expected), tohex(crypto.rsa_sha256_sign(pkcs8_pem, data)))
      assert.equal(tohex(expected), tohex(crypto.rsa_sha256_sign(pkcs1_pem, data)))
    end)

    it("signs empty data", function()
      assert.is_true(verifies(assert(crypto.rsa_sha256_sign(pkcs1_pem, "")), ""))
    end)

    it("returns invalid_key for garbage PEM without echoing it", function()
      local body = "VGhpcyBpcyBub3QgYSBrZXkgYXQgYWxsLCBqdXN0IHNvbWUgdGV4dA=="
      local garbage = "-----BEGIN PRIVATE KEY-----\n" .. body .. "\n-----END PRIVATE KEY-----\n"
      for _, pem in ipairs({ garbage, "not a key", "", pkcs8_pem:sub(1, 200) }) do
        local value, message, code = crypto.rsa_sha256_sign(pem, "data")
        assert_invalid("invalid_key", value, message, code)
        assert.matches("host.crypto.rsa_sha256_sign", message, 1, true)
        assert.is_nil(message:find(body, 1, true))
        assert.is_nil(message:find("BEGIN", 1, true))
        if #pem > 40 then
          assert.is_nil(message:find(pem:sub(30, 60), 1, true))
        end
      end
    end)

    it("returns invalid_key for a non-RSA key", function()
      openssl("genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out " .. shell_quote(path("ec.pem")))
      local value, message, code = crypto.rsa_sha256_sign(read_file(path("ec.pem")), "data")
      assert_invalid("invalid_key", value, message, code)
      assert.matches("not an RSA key", message, 1, true)
    end)
  end)

  describe("random_bytes()", function()
    it("returns n bytes", function()
      assert.equal(32, #crypto.random_bytes(32))
      assert.equal("", crypto.random_bytes(0))
      assert.equal(65536, #crypto.random_bytes(65536))
    end)

    it("returns different bytes on each call", function()
      assert.not_equal(crypto.random_bytes(32), crypto.random_bytes(32))
    end)

    it("raises when n is out of range or not an integer", function()
      for _, n in ipairs({ -1, 65537, math.maxinteger, math.mininteger }) do
        local raised, err = raises(crypto.random_bytes, n)
        assert.is_true(raised)
        assert.matches("host.crypto.random_bytes: n must be between 0 and 65536", err, 1, true)
      end
      assert.is_true((raises(crypto.random_bytes, 1.5)))
      assert.is_true((raises(crypto.random_bytes, "many")))
      assert.is_true((raises(crypto.random_bytes)))
    end)
  end)

  describe("constant_time_equal()", function()
    it("is true for equal strings", function()
      assert.is_true(crypto.constant_time_equal("secret-token", "secret-token"))
      assert.is_true(crypto.constant_time_equal("", ""))
      assert.is_true(crypto.constant_time_equal("a\0b", "a\0b"))
    end)

    it("is false for unequal strings of the same length", function()
      assert.is_false(crypto.constant_time_equal("secret-token", "Secret-token"))
      assert.is_false(crypto.constant_time_equal("secret-token", "secret-tokeN"))
      assert.is_false(crypto.constant_time_equal("a\0b", "a\0c"))
    end)

    it("is false for different lengths", function()
      assert.is_false(crypto.constant_time_equal("secret", "secret-token"))
      assert.is_false(crypto.constant_time_equal("", "x"))
    end)
  end)

  describe("argument misuse", function()
    local calls = {
      { "sha256", {} }, { "sha256", { nil } }, { "sha1", { {} } },
      { "hmac_sha256", { "key" } }, { "hmac_sha1", { nil, "data" } },
      { "base64_encode", { {} } }, { "base64_decode", { nil } },
      { "base64url_encode", { true } }, { "base64url_decode", { nil } },
      { "hex_encode", { nil } }, { "hex_decode", { {} } },
      { "rsa_sha256_sign", { nil, "data" } }, { "rsa_sha256_sign", { "pem" } },
      { "constant_time_equal", { "a" } }, { "constant_time_equal", { nil, "a" } },
    }
    for _, call in ipairs(calls) do
      it("raises for " .. call[1] .. " with bad arguments", function()
        local raised, err = raises(crypto[call[1]], table.unpack(call[2], 1, 2))
        assert.is_true(raised)
        assert.matches("host.crypto." .. call[1], err, 1, true)
      end)
    end
  end)
end)
