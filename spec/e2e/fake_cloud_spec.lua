-- The fake cloud APIs (spec/fakes/fake_aws.py, fake_tencentcloud.py) check what the real
-- endpoints check. Requests are signed by spec/fakes/sign_request.py, written apart from the
-- fakes' verifiers and from myapiserver's signers; all three are held to the published vectors.
local fake_cloud = require("spec.helpers.fake_cloud")
local shell = require("spec.helpers.shell")

local A, T = fake_cloud.AWS, fake_cloud.TENCENT
local py = shell.quote(fake_cloud.python)
local VECTORS = "../shared/testvectors"

--- Runs a fake's (or the signer's) --self-test against a vector directory.
local function self_test(script, dir)
  return shell.run(("%s %s --self-test %s"):format(py, shell.quote(script), shell.quote(dir or VECTORS)))
end

local function count(list, pred)
  local n = 0
  for _, x in ipairs(list) do
    if pred(x) then
      n = n + 1
    end
  end
  return n
end

describe("fake cloud verifiers", function()
  it("reproduce every published SigV4 vector and reject tampered copies", function()
    local code, out = self_test(fake_cloud.aws_script)
    assert.are.equal(0, code, out)
    assert.matches("%(15 vectors%): %d+ checks, 0 failures", out)
  end)

  it("reproduce the published TC3 examples and reject tampered copies", function()
    local code, out = self_test(fake_cloud.tencent_script)
    assert.are.equal(0, code, out)
    assert.matches("%(2 vectors%): %d+ checks, 0 failures", out)
  end)

  it("hold the independent signer (sign_request.py) to the same vectors", function()
    local code, out = self_test(fake_cloud.signer)
    assert.are.equal(0, code, out)
    assert.matches("17 signatures, 0 failures", out)
  end)

  it("fail when a vector is wrong", function()
    local dir = shell.temp_dir()
    finally(function() shell.remove_tree(dir) end)
    shell.must(("cp -r %s/. %s/"):format(VECTORS, shell.quote(dir)))
    local sig = dir .. "/aws-sigv4/get-vanilla/header-signature.txt"
    shell.write_file(sig, (shell.read_file(sig):gsub("^5", "6")))
    local tc3 = dir .. "/tencent-tc3.json"
    shell.write_file(tc3, (shell.read_file(tc3):gsub("72e494ea809ad7a8", "72e494ea809ad7a9")))
    local code, out = self_test(fake_cloud.aws_script, dir)
    assert.are_not.equal(0, code, out)
    assert.matches("FAIL get%-vanilla signature", out)
    code, out = self_test(fake_cloud.tencent_script, dir)
    assert.are_not.equal(0, code, out)
    code, out = self_test(fake_cloud.signer, dir)
    assert.are_not.equal(0, code, out)
    assert.matches("2 failures", out)
  end)
end)

describe("fake AWS", function()
  local aws

  setup(function()
    aws = fake_cloud.start_aws({ lifetime = 300 })
  end)

  teardown(function()
    if aws then
      aws.stop()
    end
  end)

  before_each(function()
    aws.faults({})
    aws.clear_reboots()
    aws.clear_requests()
    aws.control("DELETE", "/sts-calls")
  end)

  local function reboot(r)
    r = r or {}
    r.instances = r.instances or { A.instance }
    return aws.request(r)
  end

  it("records a correctly signed RebootInstances exactly once", function()
    local res = reboot()
    assert.are.equal(200, res.status, res.body)
    assert.matches('<RebootInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">', res.body, 1, true)
    assert.matches("<return>true</return>", res.body, 1, true)
    local request_id = res.body:match("<requestId>(.-)</requestId>")
    local reboots = aws.reboots()
    assert.are.equal(1, #reboots)
    assert.are.same({ A.instance, "us-east-1", A.access_key, request_id, "static" },
      { reboots[1].instance, reboots[1].region, reboots[1].access_key, reboots[1].request_id, reboots[1].source })
    local log = aws.requests()
    assert.are.equal(1, #log)
    assert.is_true(log[1].auth.ok)
    assert.are.same({ "content-type", "host", "x-amz-date" }, log[1].auth.signed_headers)
    for _, h in ipairs(log[1].headers) do
      if h[1]:lower() == "authorization" then
        assert.matches("^<redacted", h[2])
      end
    end
  end)

  it("verifies GET requests with the parameters in the query string", function()
    local res = reboot({ method = "GET" })
    assert.are.equal(200, res.status, res.body)
    assert.are.equal(1, #aws.reboots())
  end)

  it("answers a bad signature with 403 SignatureDoesNotMatch and records nothing", function()
    for _, r in ipairs({ { tamper = "signature" }, { tamper = "body" }, { tamper = "date" },
      { secret = A.secret .. "x" }, { service = "sts" } }) do
      local res = reboot(r)
      assert.are.equal(403, res.status, res.body)
      assert.are.equal("SignatureDoesNotMatch", res.code)
      assert.matches("^<%?xml.-<Response><Errors><Error><Code>", res.body)
      assert.matches("<RequestID>%x+%-", res.body)
    end
    assert.are.equal(0, #aws.reboots())
    local log = aws.requests()
    assert.is_truthy(log[1].auth.canonical_request) -- what the fake computed, for debugging signers
  end)

  it("answers an unknown access key with 401 AuthFailure", function()
    local res = reboot({ key = "AKIAUNKNOWN000000000" })
    assert.are.equal(401, res.status)
    assert.are.equal("AuthFailure", res.code)
    assert.are.equal(0, #aws.reboots())
  end)

  it("answers a request signed more than 5 minutes off with 400 RequestExpired", function()
    local res = reboot({ time_offset = -400 })
    assert.are.equal(400, res.status)
    assert.are.equal("RequestExpired", res.code)
    res = reboot({ time_offset = 400 })
    assert.are.equal("RequestExpired", res.code)
    assert.are.equal(0, #aws.reboots())
    res = reboot({ time_offset = -200 })
    assert.are.equal(200, res.status, res.body)
    aws.settings({ max_skew = 60 })
    finally(function() aws.settings({ max_skew = 300 }) end)
    assert.are.equal("RequestExpired", reboot({ time_offset = -200 }).code)
  end)

  it("does not find an instance through another region's scope", function()
    local res = reboot({ region = "eu-west-1" })
    assert.are.equal(400, res.status)
    assert.are.equal("InvalidInstanceID.NotFound", res.code)
    assert.matches("The instance ID '" .. A.instance .. "' does not exist", res.body, 1, true)
    res = reboot({ region = "eu-west-1", instances = { A.eu_instance } })
    assert.are.equal(200, res.status, res.body)
    local reboots = aws.reboots()
    assert.are.equal(1, #reboots)
    assert.are.same({ A.eu_instance, "eu-west-1" }, { reboots[1].instance, reboots[1].region })
  end)

  it("answers unknown and malformed instance ids", function()
    local res = reboot({ instances = { "i-0000000000000aaaa" } })
    assert.are.same({ 400, "InvalidInstanceID.NotFound" }, { res.status, res.code })
    res = reboot({ instances = { "i-xyz" } })
    assert.are.same({ 400, "InvalidInstanceID.Malformed" }, { res.status, res.code })
    res = reboot({ instances = {} })
    assert.are.same({ 400, "MissingParameter" }, { res.status, res.code })
    assert.are.equal(0, #aws.reboots())
  end)

  it("refuses to reboot a stopped instance and ignores a terminated one", function()
    local res = reboot({ instances = { A.stopped_instance } })
    assert.are.same({ 400, "IncorrectState" }, { res.status, res.code })
    res = reboot({ instances = { A.terminated_instance } })
    assert.are.equal(200, res.status, res.body)
    assert.are.equal(0, #aws.reboots())
    aws.control("PUT", "/instances/" .. A.stopped_instance, { region = "us-east-1", state = "stopped",
      reboot_error = { code = "IncorrectInstanceState" } })
    assert.are.equal("IncorrectInstanceState", reboot({ instances = { A.stopped_instance } }).code)
  end)

  it("answers 403 UnauthorizedOperation for a key without permission", function()
    local res = reboot({ key = A.denied_key, secret = A.denied_secret })
    assert.are.same({ 403, "UnauthorizedOperation" }, { res.status, res.code })
    assert.matches("Encoded authorization failure message", res.body, 1, true)
    assert.are.equal(0, #aws.reboots())
  end)

  it("answers a dry run with 412 DryRunOperation and records no reboot", function()
    local res = reboot({ dry_run = true })
    assert.are.same({ 412, "DryRunOperation" }, { res.status, res.code })
    assert.matches("Request would have succeeded", res.body, 1, true)
    assert.are.equal(0, #aws.reboots())
    res = reboot({ dry_run = true, key = A.denied_key, secret = A.denied_secret })
    assert.are.equal("UnauthorizedOperation", res.code)
  end)

  it("issues STS web identity credentials that EC2 accepts only with their session token", function()
    local creds, res = aws.assume_role({ session_name = "myapiserver-1" })
    assert.is_table(creds, res and res.body)
    assert.matches("^ASIA", creds.AccessKeyId)
    assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%dZ$", creds.Expiration)
    local calls = aws.sts_calls("AssumeRoleWithWebIdentity")
    assert.are.equal(1, #calls)
    assert.are.same({ A.role_arn, "myapiserver-1", creds.AccessKeyId }, { calls[1].role_arn, calls[1].session_name,
      calls[1].access_key })
    local temp = { key = creds.AccessKeyId, secret = creds.SecretAccessKey }
    local res2 = reboot({ key = temp.key, secret = temp.secret })
    assert.are.same({ 401, "AuthFailure" }, { res2.status, res2.code }) -- no X-Amz-Security-Token
    res2 = reboot({ key = temp.key, secret = temp.secret, token = creds.SessionToken .. "x" })
    assert.are.equal("AuthFailure", res2.code)
    res2 = reboot({ key = temp.key, secret = temp.secret, token = creds.SessionToken })
    assert.are.equal(200, res2.status, res2.body)
    res2 = reboot({ key = temp.key, secret = temp.secret, token = creds.SessionToken, unsigned_token = true })
    assert.are.equal(200, res2.status, res2.body) -- a token added after signing is accepted, as AWS does
    local reboots = aws.reboots()
    assert.are.equal(2, #reboots)
    assert.are.same({ "sts", A.role_arn }, { reboots[1].source, reboots[1].role_arn })
    aws.control("PATCH", "/credentials/" .. creds.AccessKeyId, { expires = 0 })
    res2 = reboot({ key = temp.key, secret = temp.secret, token = creds.SessionToken })
    assert.are.same({ 400, "RequestExpired" }, { res2.status, res2.code })
  end)

  it("rejects a wrong web identity token or role, and counts every call", function()
    local creds, res = aws.assume_role({ token = "not-the-token" })
    assert.is_nil(creds)
    assert.are.equal(400, res.status)
    assert.are.equal("InvalidIdentityToken", res.code)
    assert.matches("<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">", res.body, 1, true)
    assert.matches("<Type>Sender</Type>", res.body, 1, true)
    creds, res = aws.assume_role({ role_arn = "arn:aws:iam::111122223333:role/other" })
    assert.are.same({ 403, "AccessDenied" }, { res.status, res.code })
    assert.is_nil(creds)
    creds, res = aws.assume_role({ session_name = "bad name!" })
    assert.are.equal("ValidationError", res.code)
    assert.is_nil(creds)
    assert.are.equal(3, #aws.sts_calls())
  end)

  it("serves EKS Pod Identity credentials that EC2 accepts", function()
    local creds, res = aws.pod_identity(A.pod_identity_token)
    assert.are.equal(200, res.status, res.body)
    assert.are.equal(A.account, creds.AccountId)
    local res2 = reboot({ key = creds.AccessKeyId, secret = creds.SecretAccessKey, token = creds.Token })
    assert.are.equal(200, res2.status, res2.body)
    assert.are.equal("pod-identity", aws.reboots()[1].source)
    local _, bad = aws.pod_identity("wrong-token")
    assert.are.equal(403, bad.status)
    _, bad = aws.pod_identity(nil)
    assert.are.equal(401, bad.status)
    assert.are.equal(3, #aws.sts_calls("PodIdentity"))
  end)

  it("throttles as configured, then succeeds", function()
    aws.faults({ RebootInstances = { code = "RequestLimitExceeded", times = 2 } })
    for _ = 1, 2 do
      local res = reboot()
      assert.are.same({ 503, "RequestLimitExceeded" }, { res.status, res.code })
    end
    assert.are.equal(0, #aws.reboots())
    assert.are.equal(200, reboot().status)
    assert.are.equal(1, #aws.reboots())
  end)

  it("checks the signature before injecting a fault", function()
    aws.faults({ RebootInstances = { status = 500, code = "InternalError" } })
    assert.are.equal("SignatureDoesNotMatch", reboot({ tamper = "signature" }).code)
    local res = reboot()
    assert.are.same({ 500, "InternalError" }, { res.status, res.code })
  end)

  it("can reboot and then answer too late (record_before_delay)", function()
    aws.faults({ RebootInstances = { delay = 2, record_before_delay = true, times = 1 } })
    local res = reboot({ timeout = 0.5 })
    assert.are.equal("timeout", res.error)
    assert.is_nil(res.status)
    assert.are.equal(1, #aws.reboots())
  end)

  it("delays before the action without record_before_delay", function()
    aws.faults({ RebootInstances = { delay = 1.5, times = 1 } })
    local res = reboot({ timeout = 0.5 })
    assert.are.equal("timeout", res.error)
    assert.are.equal(0, #aws.reboots())
    assert.is_truthy(shell.wait_for(function() return #aws.reboots() == 1 end, 5))
  end)

  it("hangs until the client gives up, resets, closes, or answers garbage", function()
    aws.faults({ RebootInstances = { hang = true, times = 1 } })
    local res = reboot({ timeout = 0.5 })
    assert.are.equal("timeout", res.error)
    aws.faults({ RebootInstances = { reset = true, times = 1 } })
    res = reboot()
    assert.are.equal("reset", res.error)
    aws.faults({ RebootInstances = { close = true, times = 1 } })
    res = reboot()
    assert.are.equal("closed", res.error)
    aws.faults({ RebootInstances = { status = 200, body = "not xml", times = 1 } })
    res = reboot()
    assert.are.same({ 200, "not xml" }, { res.status, res.body })
    assert.are.equal(0, #aws.reboots())
    local faulted = aws.requests(function(e) return e.fault ~= nil end)
    assert.are.equal(4, #faulted)
  end)
end)

describe("fake Tencent Cloud", function()
  local tc

  setup(function()
    tc = fake_cloud.start_tencentcloud({ lifetime = 300 })
  end)

  teardown(function()
    if tc then
      tc.stop()
    end
  end)

  before_each(function()
    tc.faults({})
    tc.clear_reboots()
    tc.clear_requests()
  end)

  local function reboot(r, body)
    r = r or {}
    r.body = body or { InstanceIds = { T.instance }, StopType = "SOFT_FIRST" }
    return tc.request(r)
  end

  it("records a signed RebootInstances with its StopType", function()
    local res = reboot()
    assert.are.equal(200, res.status, res.body)
    assert.is_nil(res.code, res.body)
    assert.matches("^%x+%-", res.json.Response.RequestId)
    local reboots = tc.reboots()
    assert.are.equal(1, #reboots)
    assert.are.same({ T.instance, "ap-guangzhou", "SOFT_FIRST", false, T.secret_id, res.json.Response.RequestId },
      { reboots[1].instance, reboots[1].region, reboots[1].stop_type, reboots[1].force_reboot,
        reboots[1].secret_id, reboots[1].request_id })
    res = reboot(nil, { InstanceIds = { T.instance }, StopType = "HARD", ForceReboot = true })
    assert.is_nil(res.code, res.body)
    reboots = tc.reboots()
    assert.are.same({ "HARD", true }, { reboots[2].stop_type, reboots[2].force_reboot })
    res = reboot(nil, { InstanceIds = { T.instance }, StopType = "NOW" })
    assert.are.equal("InvalidParameterValue", res.code)
  end)

  it("answers signature failures as HTTP 200 with Response.Error", function()
    for _, r in ipairs({ { tamper = "signature" }, { tamper = "body" }, { secret_key = "wrong" },
      { service = "sts" } }) do
      local res = reboot(r)
      assert.are.equal(200, res.status)
      assert.are.equal("AuthFailure.SignatureFailure", res.code, res.body)
      assert.is_string(res.json.Response.RequestId)
    end
    assert.are.equal("AuthFailure.SecretIdNotFound", reboot({ secret_id = "AKIDunknown" }).code)
    assert.are.equal("AuthFailure.SignatureExpire", reboot({ time_offset = -400 }).code)
    assert.are.equal("AuthFailure.InvalidAuthorization", reboot({ skip_auth = true }).code)
    assert.are.equal(0, #tc.reboots())
  end)

  it("verifies extra signed headers", function()
    local res = reboot({ sign_headers = { "x-tc-action" } })
    assert.is_nil(res.code, res.body)
    assert.are.same({ "content-type", "host", "x-tc-action" }, tc.requests()[1].auth.signed_headers)
  end)

  it("does not find an instance through another region, and checks ids and state", function()
    assert.are.equal("InvalidInstanceId.NotFound", reboot({ region = "ap-hongkong" }).code)
    assert.is_nil(reboot({ region = "ap-hongkong" }, { InstanceIds = { T.hk_instance } }).code)
    assert.are.equal("InvalidInstanceId.Malformed", reboot(nil, { InstanceIds = { "i-abc" } }).code)
    assert.are.equal("UnsupportedOperation.InstanceStateStopped",
      reboot(nil, { InstanceIds = { T.stopped_instance } }).code)
    assert.are.equal("MissingParameter", reboot({ region = false }).code)
    assert.are.equal("AuthFailure.UnauthorizedOperation",
      reboot({ secret_id = T.denied_secret_id, secret_key = T.denied_secret_key }).code)
    local reboots = tc.reboots()
    assert.are.equal(1, #reboots)
    assert.are.equal(T.hk_instance, reboots[1].instance)
  end)

  it("describes instances for dry runs", function()
    local res = tc.request({ action = "DescribeInstances", body = { InstanceIds = { T.instance } } })
    assert.is_nil(res.code, res.body)
    assert.are.equal(1, res.json.Response.TotalCount)
    local inst = res.json.Response.InstanceSet[1]
    assert.are.same({ T.instance, "RUNNING", "ap-guangzhou-3" }, { inst.InstanceId, inst.InstanceState,
      inst.Placement.Zone })
    res = tc.request({ action = "DescribeInstances", body = { InstanceIds = { T.instance } }, region = "ap-hongkong" })
    assert.are.equal(0, res.json.Response.TotalCount)
    assert.are.equal(0, #tc.reboots())
  end)

  it("issues TKE OIDC credentials usable only with X-TC-Token", function()
    local creds, res = tc.assume_role()
    assert.is_table(creds, res and res.body)
    assert.is_number(creds.ExpiredTime)
    local call = tc.control("GET", "/sts-calls")[1]
    assert.are.same({ T.role_arn, T.provider_id, "SKIP" }, { call.role_arn, call.provider_id, call.authorization })
    local temp = { secret_id = creds.TmpSecretId, secret_key = creds.TmpSecretKey }
    assert.are.equal("AuthFailure.TokenFailure", reboot(temp).code)
    temp.token = creds.Token
    local ok = reboot(temp)
    assert.is_nil(ok.code, ok.body)
    assert.are.equal("sts", tc.reboots()[1].source)
    local none, bad = tc.assume_role({ token = "wrong" })
    assert.is_nil(none)
    assert.are.equal("InvalidParameter.WebIdentityTokenError", bad.code)
    none, bad = tc.assume_role({ role_arn = "qcs::cam::uin/1:roleName/none" })
    assert.is_nil(none)
    assert.are.equal("ResourceNotFound.RoleNotFound", bad.code)
  end)

  it("throttles with HTTP 200 RequestLimitExceeded, then succeeds", function()
    tc.faults({ RebootInstances = { code = "RequestLimitExceeded", times = 1 } })
    local res = reboot()
    assert.are.same({ 200, "RequestLimitExceeded" }, { res.status, res.code })
    assert.are.equal(0, #tc.reboots())
    assert.is_nil(reboot().code)
    assert.are.equal(1, count(tc.reboots(), function(r) return r.instance == T.instance end))
  end)

  it("can reboot and then fail to answer", function()
    tc.faults({ RebootInstances = { record_before_delay = true, reset = true, times = 1 } })
    local res = reboot()
    assert.are.equal("reset", res.error)
    assert.are.equal(1, #tc.reboots())
  end)
end)
