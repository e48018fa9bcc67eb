-- Regressions found by fuzzing (fuzz/regressions/cloud_xml, cloud_json):
-- credentials whose key id or session token holds a line break (from an STS
-- answer, or a Secret with a trailing newline) would make host.http raise on
-- the signed headers; the providers answer Unauthorized instead, send
-- nothing, and drop cached temporary credentials.
local fake_provider_ctx = require("helpers.fake_provider_ctx")
local providers = require("infraops.providers")

local function load(path)
  local f = assert(io.open(path, "rb"))
  local text = f:read("a")
  f:close()
  return assert(providers.load_script(text, path))
end

local aws = load("providers/aws.lua")
local tencentcloud = load("providers/tencentcloud.lua")

local STS_ANSWER = [[<AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentityResult><Credentials>
<SessionToken>AQoDYXdzEE0a8ANEXAMPLE</SessionToken><SecretAccessKey>wJalrXUtnFEMIEXAMPLEKEY</SecretAccessKey>
<Expiration>2023-11-14T23:13:20Z</Expiration><AccessKeyId>ASIA
EXAMPLE</AccessKeyId></Credentials></AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>]]

local TKE_STS_ANSWER = '{"Response":{"Credentials":{"Token":"\\rE","TmpSecretId":"AKIDtmp",'
  .. '"TmpSecretKey":"tmpSecretKeyEXAMPLE"},"ExpiredTime":1700007200,"RequestId":"s-1"}}'

describe("fuzz regressions: providers", function()
  it("aws: an STS access key id with a line break is Unauthorized, not a raise", function()
    local ctx = fake_provider_ctx.new({
      env = { AWS_REGION = "us-east-1", AWS_ROLE_ARN = "arn:aws:iam::111122223333:role/r",
        AWS_WEB_IDENTITY_TOKEN_FILE = "/t" },
      files = { ["/t"] = "web-identity-token" },
      responses = { { status = 200, body = STS_ANSWER } },
    })
    local result, err = aws.restart({ instance_id = "i-0123456789abcdef0", region = "us-east-1" }, {}, ctx)
    assert.is_nil(result)
    assert.are.equal("Unauthorized", err.reason)
    assert.is_false(err.sent)
    assert.are.equal(1, #ctx.requests) -- STS only: nothing reached EC2
  end)

  it("aws: a static key id with a trailing newline is Unauthorized", function()
    local ctx = fake_provider_ctx.new({ env = { AWS_REGION = "us-east-1", AWS_ACCESS_KEY_ID = "AKIDEXAMPLE\n",
      AWS_SECRET_ACCESS_KEY = "secret" } })
    local result, err = aws.restart({ instance_id = "i-0123456789abcdef0" }, {}, ctx)
    assert.is_nil(result)
    assert.are.equal("Unauthorized", err.reason)
  end)

  it("tencentcloud: an STS token with a carriage return is Unauthorized and not kept", function()
    local ctx = fake_provider_ctx.new({
      env = { TKE_ROLE_ARN = "qcs::cam::uin/1:roleName/r", TKE_WEB_IDENTITY_TOKEN_FILE = "/t",
        TKE_PROVIDER_ID = "oidc", TKE_REGION = "ap-guangzhou" },
      files = { ["/t"] = "web-identity-token" },
      responses = { { status = 200, body = TKE_STS_ANSWER } },
    })
    local result, err = tencentcloud.restart({ instance_id = "ins-3ven36lk", region = "ap-guangzhou" }, {}, ctx)
    assert.is_nil(result)
    assert.are.equal("Unauthorized", err.reason)
    assert.are.equal(1, #ctx.requests)
    assert.is_nil(ctx.cache.get("tke-oidc:oidc:qcs::cam::uin/1:roleName/r"))
  end)
end)
