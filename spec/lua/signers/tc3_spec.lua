-- infraops.signers.tc3 (lua/infraops/signers/tc3.lua) against every vector in
-- ../shared/testvectors/tencent-tc3.json (MYAPISERVER_TESTVECTORS overrides
-- the directory): canonical request, string to sign, signature and
-- Authorization byte for byte, plus the request shapes providers send.
local tc3 = require("infraops.signers.tc3")
local crypto = require("host.crypto")
local fs = require("host.fs")
local cjson = require("cjson")

local VECTORS = (os.getenv("MYAPISERVER_TESTVECTORS") or "../shared/testvectors") .. "/tencent-tc3.json"

-- Only the masked-key vector lacks these inputs; the documented example
-- states them and they are identical for both editions (see the file).
local DEFAULTS = {
  host = "cvm.tencentcloudapi.com", method = "POST", path = "/", query = "",
  content_type = "application/json; charset=utf-8",
}

local function input(inputs, field)
  if inputs[field] ~= nil then
    return inputs[field]
  end
  return DEFAULTS[field]
end

describe("infraops.signers.tc3", function()
  describe("sign()", function()
    describe("tencent-tc3.json vectors", function()
      local data = cjson.decode((assert(fs.read_file(VECTORS))))

      it("finds the 2 copied vectors", function()
        assert.is_true(#data.vectors >= 2)
      end)

      for _, vector in ipairs(data.vectors) do
        it(vector.name .. ": every expected value", function()
          local inputs, expected = vector.inputs, vector.expected
          local host = input(inputs, "host")
          local add, debug = tc3.sign({
            method = input(inputs, "method"),
            host = host,
            path = input(inputs, "path"),
            query = input(inputs, "query"),
            headers = { ["Content-Type"] = input(inputs, "content_type"), Host = host },
            body = inputs.payload,
            service = inputs.service,
            secret_id = inputs.SecretId,
            secret_key = inputs.SecretKey,
            time = inputs.timestamp,
          }, crypto)
          local checked = 0
          local actual = {
            hashed_request_payload = debug.hashed_request_payload,
            canonical_request = debug.canonical_request,
            hashed_canonical_request = crypto.hex_encode(crypto.sha256(debug.canonical_request)),
            credential_scope = debug.credential_scope,
            string_to_sign = debug.string_to_sign,
            signature = debug.signature,
            authorization = add.Authorization,
          }
          for field, value in pairs(actual) do
            if expected[field] ~= nil then
              assert.are.equal(expected[field], value, field)
              checked = checked + 1
            end
          end
          assert.is_true(checked >= 3) -- string to sign, signature, authorization at least
          assert.are.equal(inputs.date, debug.credential_scope:sub(1, 10))
          assert.are.equal(string.format("%d", inputs.timestamp), add["X-TC-Timestamp"])
          if expected.request_headers then
            assert.are.equal(expected.request_headers["X-TC-Timestamp"], add["X-TC-Timestamp"])
          end
        end)
      end
    end)

    describe("request shapes", function()
      local BODY = '{"InstanceIds":["ins-abc"],"StopType":"SOFT_FIRST"}'
      local function sign(overrides)
        local req = {
          method = "POST", host = "cvm.tencentcloudapi.com", path = "/", query = "",
          headers = { ["Content-Type"] = "application/json; charset=utf-8", Host = "cvm.tencentcloudapi.com",
            ["X-TC-Action"] = "RebootInstances" },
          body = BODY, service = "cvm", secret_id = "AKIDEXAMPLE", secret_key = "SECRETEXAMPLE",
          time = 1700000000,
        }
        for k, v in pairs(overrides or {}) do
          req[k] = v
        end
        return tc3.sign(req, crypto)
      end

      it("signs RebootInstances with content-type;host by default", function()
        local add, debug = sign()
        assert.are.equal("1700000000", add["X-TC-Timestamp"])
        assert.is_nil(add["X-TC-Token"])
        assert.are.equal("content-type;host", debug.signed_headers)
        assert.are.equal("2023-11-14/cvm/tc3_request", debug.credential_scope)
        assert.are.equal(table.concat({
          "POST", "/", "",
          "content-type:application/json; charset=utf-8",
          "host:cvm.tencentcloudapi.com",
          "",
          "content-type;host",
          crypto.hex_encode(crypto.sha256(BODY)),
        }, "\n"), debug.canonical_request)
        assert.matches("^TC3%-HMAC%-SHA256 Credential=AKIDEXAMPLE/2023%-11%-14/cvm/tc3_request, "
          .. "SignedHeaders=content%-type;host, Signature=%x+$", add.Authorization)
        assert.are.equal(64, #debug.signature)
      end)

      it("adds X-TC-Token with a session token, unsigned", function()
        local plain_add, plain = sign()
        local add, debug = sign({ session_token = "tmp-token" })
        assert.are.equal("tmp-token", add["X-TC-Token"])
        assert.are.equal("content-type;host", debug.signed_headers)
        assert.are.equal(plain.signature, debug.signature)
        assert.are.equal(plain_add.Authorization, add.Authorization)
      end)

      it("returns only the headers to add and leaves the request untouched", function()
        local req = {
          method = "POST", host = "h", headers = { ["Content-Type"] = "application/json" }, body = "{}",
          service = "cvm", secret_id = "id", secret_key = "key", time = 1700000000, session_token = "t",
        }
        local add = tc3.sign(req, crypto)
        local names = {}
        for name in pairs(add) do
          names[#names + 1] = name
        end
        table.sort(names)
        assert.are.same({ "Authorization", "X-TC-Timestamp", "X-TC-Token" }, names)
        assert.are.same({ ["Content-Type"] = "application/json" }, req.headers)
      end)

      it("signs extra headers named in signed_headers, value lower-cased", function()
        local _, debug = sign({ signed_headers = { "X-TC-Action" } })
        assert.are.equal("content-type;host;x-tc-action", debug.signed_headers)
        assert.matches("\nx%-tc%-action:rebootinstances\n\ncontent%-type;host;x%-tc%-action\n", debug.canonical_request)
        local _, same = sign({ signed_headers = "x-tc-action;host" })
        assert.are.equal(debug.signature, same.signature)
      end)

      it("takes Host from `host` when headers have none, and the date in UTC", function()
        -- 1551139199 is 2019-02-25T23:59:59Z, already the 26th in UTC+8
        local _, debug = sign({ headers = { ["content-type"] = "application/json" },
          host = "cvm.internal.tencentcloudapi.com", time = 1551139199 })
        assert.matches("\nhost:cvm.internal.tencentcloudapi.com\n", debug.canonical_request)
        assert.are.equal("2019-02-25/cvm/tc3_request", debug.credential_scope)
        assert.are.equal("2019-02-26", tc3.utc_date(1551139200))
        assert.are.equal("2024-02-29", tc3.utc_date(1709251199))
      end)

      it("uses the query as given for GET", function()
        local _, debug = sign({ method = "GET", query = "Limit=10&Offset=0", body = "" })
        local prefix = "GET\n/\nLimit=10&Offset=0\ncontent-type:"
        assert.are.equal(prefix, debug.canonical_request:sub(1, #prefix))
      end)

      it("raises on misuse", function()
        assert.has_error(function() sign({ secret_key = "" }) end)
        assert.has_error(function() sign({ time = "1700000000" }) end)
        assert.has_error(function() sign({ headers = { Host = "h" } }) end) -- no Content-Type
        assert.has_error(function() sign({ signed_headers = { "x-missing" } }) end)
        assert.has_error(function() sign({ signed_headers = 5 }) end)
        assert.has_error(function() tc3.sign(nil, crypto) end)
      end)
    end)
  end)
end)
