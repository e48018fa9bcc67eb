-- Starts, controls and stops the fake cloud APIs (spec/fakes/fake_aws.py and
-- spec/fakes/fake_tencentcloud.py), and sends requests to them signed by
-- spec/fakes/sign_request.py (independent of myapiserver's signers).
--
--   local fake_cloud = require("spec.helpers.fake_cloud")
--   local aws = fake_cloud.start_aws({ config = { instances = {...} } }) -- defaults: fake_cloud.AWS
--   aws.url                                 -- "http://127.0.0.1:N" (EC2, STS and Pod Identity)
--   aws.env()                               -- env vars for a static key; aws.env("irsa"), aws.env("pod_identity")
--   aws.reboots()                           -- recorded reboots (the proof of "exactly one reboot")
--   aws.requests(filter)                    -- what the api port received (secrets redacted)
--   aws.faults({ RebootInstances = { code = "RequestLimitExceeded", times = 2 } })
--   aws.request({ action = "RebootInstances", instances = { "i-..." } }) -- independently signed call
--   aws.control("PUT", "/instances", {...}) -- any control route; decoded JSON answer
--   aws.stop()
--   local tc = fake_cloud.start_tencentcloud({...}) -- same shape; tc.env(), tc.env("oidc")
-- See spec/fakes/README.md ("Fake cloud APIs") for config keys and control routes.
local cjson = require("cjson")
local fake_control = require("spec.helpers.fake_control")
local shell = require("spec.helpers.shell")

local fake_cloud = {}

-- FAKE_AWS_SCRIPT / FAKE_TENCENTCLOUD_SCRIPT run another copy (e.g. a deliberately broken one).
fake_cloud.aws_script = os.getenv("FAKE_AWS_SCRIPT") or "spec/fakes/fake_aws.py"
fake_cloud.tencent_script = os.getenv("FAKE_TENCENTCLOUD_SCRIPT") or "spec/fakes/fake_tencentcloud.py"
fake_cloud.signer = "spec/fakes/sign_request.py"
-- Debian's python3 when present (a pyenv shim in PATH costs half a second per start).
fake_cloud.python = os.getenv("FAKE_CLOUD_PYTHON")
  or (os.execute("test -x /usr/bin/python3") and "/usr/bin/python3") or "python3"

--- Names used by the default AWS config (and by env()).
fake_cloud.AWS = {
  access_key = "AKIAFAKESTATIC000001",
  secret = "fakeStaticSecret/0000+AWS/EXAMPLEKEY0001",
  denied_key = "AKIAFAKEDENIED000001",
  denied_secret = "fakeDeniedSecret/000+AWS/EXAMPLEKEY0002",
  account = "111122223333",
  region = "us-east-1",
  instance = "i-0123456789abcdef0",            -- us-east-1, running
  eu_instance = "i-0fedcba9876543210",         -- eu-west-1, running
  stopped_instance = "i-0badc0ffee0000000",    -- us-east-1, stopped
  terminated_instance = "i-0deadbeef00000000", -- us-east-1, terminated
  role_arn = "arn:aws:iam::111122223333:role/myapiserver",
  web_identity_token = "eyJhbGciOiJSUzI1NiJ9.fake-irsa-token.c2ln",
  pod_identity_path = "/v1/credentials",
  pod_identity_token = "eyJhbGciOiJSUzI1NiJ9.fake-pod-identity-token.c2ln",
}

--- Names used by the default Tencent Cloud config.
fake_cloud.TENCENT = {
  secret_id = "AKIDFAKESTATIC00000000000000000000001",
  secret_key = "fakeStaticSecretKey0000000000001",
  denied_secret_id = "AKIDFAKEDENIED00000000000000000000001",
  denied_secret_key = "fakeDeniedSecretKey0000000000001",
  region = "ap-guangzhou",
  instance = "ins-abcdefgh",          -- ap-guangzhou, RUNNING
  stopped_instance = "ins-stopped1",  -- ap-guangzhou, STOPPED
  hk_instance = "ins-hk000001",       -- ap-hongkong, RUNNING
  role_arn = "qcs::cam::uin/100000000001:roleName/myapiserver",
  provider_id = "cls-fake0001",
  web_identity_token = "eyJhbGciOiJSUzI1NiJ9.fake-tke-oidc-token.c2ln",
}

function fake_cloud.aws_default_config()
  local A = fake_cloud.AWS
  return {
    credentials = {
      [A.access_key] = { secret = A.secret, account = A.account },
      [A.denied_key] = { secret = A.denied_secret, account = A.account, deny = { "RebootInstances" } },
    },
    instances = {
      [A.instance] = { region = "us-east-1", az = "us-east-1a", state = "running" },
      [A.eu_instance] = { region = "eu-west-1", az = "eu-west-1b", state = "running" },
      [A.stopped_instance] = { region = "us-east-1", az = "us-east-1c", state = "stopped" },
      [A.terminated_instance] = { region = "us-east-1", az = "us-east-1a", state = "terminated" },
    },
    roles = { [A.role_arn] = { tokens = { A.web_identity_token } } },
    pod_identity = { path = A.pod_identity_path,
      tokens = { [A.pod_identity_token] = { account = A.account, role_arn = A.role_arn } } },
  }
end

function fake_cloud.tencent_default_config()
  local T = fake_cloud.TENCENT
  return {
    credentials = {
      [T.secret_id] = { secret = T.secret_key },
      [T.denied_secret_id] = { secret = T.denied_secret_key, deny = { "RebootInstances" } },
    },
    instances = {
      [T.instance] = { region = "ap-guangzhou", zone = "ap-guangzhou-3", state = "RUNNING" },
      [T.stopped_instance] = { region = "ap-guangzhou", zone = "ap-guangzhou-3", state = "STOPPED" },
      [T.hk_instance] = { region = "ap-hongkong", zone = "ap-hongkong-2", state = "RUNNING" },
    },
    roles = { [T.role_arn] = { provider_id = T.provider_id, tokens = { T.web_identity_token } } },
  }
end

local function decode_line(text)
  for line in (text or ""):gmatch("[^\n]+") do
    if line:match("^{") then
      local ok, value = pcall(cjson.decode, line)
      if ok then
        return value
      end
    end
  end
  return nil
end

--- Sorted "k=v" words of a map (or the list itself when given a list of "k=v").
local function param_words(params)
  local out = {}
  if params[1] ~= nil then
    for i, p in ipairs(params) do
      out[i] = p
    end
    return out
  end
  for k, v in pairs(params) do
    out[#out + 1] = k .. "=" .. tostring(v)
  end
  table.sort(out)
  return out
end

-- Starts a fake script with opts.config (merged over defaults unless opts.defaults == false).
local function start(script, defaults, opts)
  opts = opts or {}
  local dir = shell.temp_dir()
  local self = { dir = dir }
  local config = opts.defaults == false and {} or defaults
  for k, v in pairs(opts.config or {}) do
    config[k] = v
  end
  self.config = config
  local config_path, out_path, err_path = dir .. "/config.json", dir .. "/out", dir .. "/err"
  shell.write_file(config_path, cjson.encode(config))
  shell.spawn(("%s %s --config %s --lifetime %d >%s 2>%s"):format(
    shell.quote(fake_cloud.python), shell.quote(script), shell.quote(config_path), opts.lifetime or 900,
    shell.quote(out_path), shell.quote(err_path)))
  local info = shell.wait_for(function()
    return decode_line(shell.read_file(out_path))
  end, 10, 0.02)
  if not info then
    shell.remove_tree(dir)
    error(script .. " did not start: " .. tostring(shell.read_file(err_path)))
  end
  for k, v in pairs(info) do
    info[k] = math.tointeger(v) or v -- cjson may decode integers as floats
  end
  self.pid, self.port, self.control_port = info.pid, info.port, info.control_port
  self.url = ("http://127.0.0.1:%d"):format(info.port)
  self.control_url = ("http://127.0.0.1:%d"):format(info.control_port)
  self.info = info
  self.stderr_path = err_path

  --- A control-port call; body_table is sent as JSON. Returns the decoded answer, raises on non-200.
  fake_control.attach(self, dir)

  function self.reboots()
    return self.control("GET", "/reboots")
  end

  function self.clear_reboots()
    return self.control("DELETE", "/reboots")
  end


  --- Replaces the fault table: { [action or "*"] = { status, code, message, times, delay,
  -- record_before_delay, hang, reset, close, body, headers } }.
  function self.faults(tbl)
    return self.control("PUT", "/faults", tbl or {})
  end

  --- Merges settings (max_skew, clock_offset, ...); returns them.
  function self.settings(tbl)
    return self.control("PUT", "/settings", tbl or {})
  end

  --- STS / credential-endpoint calls (kind: optional "AssumeRoleWithWebIdentity" or "PodIdentity").
  function self.sts_calls(kind)
    local out = {}
    for _, call in ipairs(self.control("GET", "/sts-calls")) do
      if not kind or call.kind == kind then
        out[#out + 1] = call
      end
    end
    return out
  end

  --- Runs sign_request.py with these words; returns its decoded result (status, body, headers,
  -- error, elapsed, sent).
  function self.sign_and_send(words)
    local cmd = { fake_cloud.python, fake_cloud.signer }
    for _, w in ipairs(words) do
      cmd[#cmd + 1] = w
    end
    local _, out = shell.run(shell.join(cmd))
    local result = decode_line(out)
    if not result then
      error("sign_request.py failed: " .. tostring(out), 2)
    end
    for k, v in pairs(result) do
      if v == cjson.null then
        result[k] = nil -- no HTTP answer: status and body are nil (error says why)
      end
    end
    result.status = result.status and math.tointeger(result.status) or result.status
    return result
  end

  --- Kills the fake (SIGTERM, then SIGKILL) and removes its directory. Safe to call twice.
  function self.stop()
    if self.pid then
      os.execute(("kill %d 2>/dev/null"):format(self.pid))
      local gone = shell.wait_for(function()
        return os.execute(("kill -0 %d 2>/dev/null"):format(self.pid)) ~= true
      end, 5)
      if not gone then
        os.execute(("kill -9 %d 2>/dev/null"):format(self.pid))
      end
      self.pid = nil
    end
    shell.remove_tree(dir)
  end

  return self
end

--- Starts the fake AWS. opts.config: keys over fake_cloud.aws_default_config() (top level
-- replaced); opts.defaults = false: only opts.config; opts.lifetime (default 900 s).
function fake_cloud.start_aws(opts)
  local self = start(fake_cloud.aws_script, fake_cloud.aws_default_config(), opts)
  local A = fake_cloud.AWS
  self.pod_identity_url = ("http://127.0.0.1:%d%s"):format(self.info.pod_identity_port or self.port,
    (self.config.pod_identity or {}).path or A.pod_identity_path)

  --- Environment that points an SDK (or our provider) at the fake.
  -- mode "static" (default): AWS_ACCESS_KEY_ID/SECRET (opts.access_key/secret/session_token);
  -- "irsa": AWS_ROLE_ARN + AWS_WEB_IDENTITY_TOKEN_FILE (written here; opts.token, opts.role_arn);
  -- "pod_identity": AWS_CONTAINER_CREDENTIALS_FULL_URI + AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE.
  -- Always: AWS_ENDPOINT_URL_EC2/_STS, AWS_REGION, AWS_DEFAULT_REGION, AWS_EC2_METADATA_DISABLED.
  function self.env(mode, o)
    o = o or {}
    local env = {
      AWS_ENDPOINT_URL_EC2 = self.url,
      AWS_ENDPOINT_URL_STS = self.url,
      AWS_REGION = o.region or A.region,
      AWS_DEFAULT_REGION = o.region or A.region,
      AWS_EC2_METADATA_DISABLED = "true",
    }
    mode = mode or "static"
    if mode == "static" then
      env.AWS_ACCESS_KEY_ID = o.access_key or A.access_key
      env.AWS_SECRET_ACCESS_KEY = o.secret or A.secret
      env.AWS_SESSION_TOKEN = o.session_token
    elseif mode == "irsa" then
      local path = self.dir .. "/web-identity-token"
      shell.write_file(path, o.token or A.web_identity_token)
      env.AWS_ROLE_ARN = o.role_arn or A.role_arn
      env.AWS_WEB_IDENTITY_TOKEN_FILE = path
      env.AWS_ROLE_SESSION_NAME = o.session_name
      env.AWS_STS_REGIONAL_ENDPOINTS = "regional"
    elseif mode == "pod_identity" then
      local path = self.dir .. "/eks-pod-identity-token"
      shell.write_file(path, o.token or A.pod_identity_token)
      env.AWS_CONTAINER_CREDENTIALS_FULL_URI = self.pod_identity_url
      env.AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE = path
    else
      error("aws.env: mode must be static, irsa or pod_identity, not " .. tostring(mode), 2)
    end
    return env
  end

  --- An EC2 (or STS) Query API call signed by sign_request.py. r: action (default
  -- RebootInstances), instances (list -> InstanceId.N), dry_run, params (map or list of "k=v"),
  -- version, key/secret/token (default the static key), region, service, method, time_offset,
  -- tamper ("signature"|"body"|"date"), unsigned_token, no_token_header, no_auth, timeout.
  -- Returns the sign_request result plus `code` (the XML error code, if any).
  function self.request(r)
    r = r or {}
    local action = r.action or "RebootInstances"
    local params = { "Action=" .. action, "Version=" .. (r.version or "2016-11-15") }
    for i, id in ipairs(r.instances or {}) do
      params[#params + 1] = ("InstanceId.%d=%s"):format(i, id)
    end
    if r.dry_run then
      params[#params + 1] = "DryRun=true"
    end
    for _, p in ipairs(param_words(r.params or {})) do
      params[#params + 1] = p
    end
    local words = { "aws", r.url or (self.url .. "/"), "--region", r.region or A.region,
      "--service", r.service or "ec2", "--method", r.method or "POST", "--timeout", tostring(r.timeout or 10),
      "--time-offset", tostring(r.time_offset or 0) }
    if not r.no_auth then
      for _, w in ipairs({ "--key", r.key or A.access_key, "--secret", r.secret or A.secret }) do
        words[#words + 1] = w
      end
    else
      words[#words + 1] = "--no-auth"
    end
    for flag, value in pairs({ ["--token"] = r.token, ["--tamper"] = r.tamper }) do
      words[#words + 1] = flag
      words[#words + 1] = value
    end
    for flag, on in pairs({ ["--unsigned-token"] = r.unsigned_token, ["--no-token-header"] = r.no_token_header }) do
      if on then
        words[#words + 1] = flag
      end
    end
    for _, p in ipairs(params) do
      words[#words + 1] = "--param"
      words[#words + 1] = p
    end
    local result = self.sign_and_send(words)
    result.code = result.body and result.body:match("<Code>(.-)</Code>")
    return result
  end

  --- STS AssumeRoleWithWebIdentity (unsigned). r: role_arn, token, session_name, duration.
  -- Returns creds {AccessKeyId, SecretAccessKey, SessionToken, Expiration} or nil, result.
  function self.assume_role(r)
    r = r or {}
    local params = { "RoleArn=" .. (r.role_arn or A.role_arn), "RoleSessionName=" .. (r.session_name or "spec"),
      "WebIdentityToken=" .. (r.token or A.web_identity_token) }
    if r.duration then
      params[#params + 1] = "DurationSeconds=" .. tostring(r.duration)
    end
    local result = self.request({ action = "AssumeRoleWithWebIdentity", version = "2011-06-15", no_auth = true,
      params = params, timeout = r.timeout })
    if result.status ~= 200 then
      return nil, result
    end
    local creds = {}
    for _, f in ipairs({ "AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration" }) do
      creds[f] = result.body:match("<" .. f .. ">(.-)</" .. f .. ">")
    end
    return creds, result
  end

  --- GET the Pod Identity endpoint with `Authorization: token` (nil: no header).
  -- Returns the decoded JSON (or nil) and the raw result.
  function self.pod_identity(token, timeout)
    local words = { "get", self.pod_identity_url, "--timeout", tostring(timeout or 10) }
    if token then
      words[#words + 1] = "--header"
      words[#words + 1] = "Authorization: " .. token
    end
    local result = self.sign_and_send(words)
    local ok, value = pcall(cjson.decode, result.body or "")
    return ok and value or nil, result
  end

  return self
end

--- Starts the fake Tencent Cloud (CVM + STS on one port). Options as start_aws.
function fake_cloud.start_tencentcloud(opts)
  local self = start(fake_cloud.tencent_script, fake_cloud.tencent_default_config(), opts)
  local T = fake_cloud.TENCENT

  --- mode "static" (default): TENCENTCLOUD_SECRET_ID/KEY (+ TENCENTCLOUD_SESSION_TOKEN if o.token);
  -- "oidc": TKE_REGION, TKE_PROVIDER_ID, TKE_WEB_IDENTITY_TOKEN_FILE (written here), TKE_ROLE_ARN.
  -- Always: TENCENTCLOUD_CVM_ENDPOINT, TENCENTCLOUD_STS_ENDPOINT, TENCENTCLOUD_REGION.
  function self.env(mode, o)
    o = o or {}
    local env = {
      TENCENTCLOUD_CVM_ENDPOINT = self.url,
      TENCENTCLOUD_STS_ENDPOINT = self.url,
      TENCENTCLOUD_REGION = o.region or T.region,
    }
    mode = mode or "static"
    if mode == "static" then
      env.TENCENTCLOUD_SECRET_ID = o.secret_id or T.secret_id
      env.TENCENTCLOUD_SECRET_KEY = o.secret_key or T.secret_key
      env.TENCENTCLOUD_SESSION_TOKEN = o.token
    elseif mode == "oidc" then
      local path = self.dir .. "/tke-web-identity-token"
      shell.write_file(path, o.token or T.web_identity_token)
      env.TKE_REGION = o.region or T.region
      env.TKE_PROVIDER_ID = o.provider_id or T.provider_id
      env.TKE_WEB_IDENTITY_TOKEN_FILE = path
      env.TKE_ROLE_ARN = o.role_arn or T.role_arn
    else
      error("tencentcloud.env: mode must be static or oidc, not " .. tostring(mode), 2)
    end
    return env
  end

  --- A CVM/STS API 3.0 call signed by sign_request.py. r: action (default RebootInstances),
  -- body (table or JSON string), version (default 2017-03-12), region (default ap-guangzhou;
  -- false: no X-TC-Region), secret_id/secret_key/token, service, skip_auth, sign_headers (list),
  -- tamper ("signature"|"body"), time_offset, timeout. Returns the sign_request result plus
  -- `json` (decoded body) and `code` (Response.Error.Code, if any).
  function self.request(r)
    r = r or {}
    local body = r.body or {}
    if type(body) == "table" then
      body = cjson.encode(body)
    end
    local words = { "tc3", r.url or (self.url .. "/"), "--action", r.action or "RebootInstances",
      "--version", r.version or "2017-03-12", "--service", r.service or "cvm", "--body", body,
      "--timeout", tostring(r.timeout or 10), "--time-offset", tostring(r.time_offset or 0),
      "--secret-id", r.secret_id or T.secret_id, "--secret-key", r.secret_key or T.secret_key }
    if r.region ~= false then
      words[#words + 1] = "--region"
      words[#words + 1] = r.region or T.region
    end
    for flag, value in pairs({ ["--token"] = r.token, ["--tamper"] = r.tamper }) do
      words[#words + 1] = flag
      words[#words + 1] = value
    end
    if r.skip_auth then
      words[#words + 1] = "--skip-auth"
    end
    for _, h in ipairs(r.sign_headers or {}) do
      words[#words + 1] = "--sign-header"
      words[#words + 1] = h
    end
    local result = self.sign_and_send(words)
    local ok, value = pcall(cjson.decode, result.body or "")
    result.json = ok and value or nil
    local response = type(result.json) == "table" and result.json.Response or nil
    result.code = response and response.Error and response.Error.Code or nil
    return result
  end

  --- STS AssumeRoleWithWebIdentity (Authorization: SKIP). r: role_arn, provider_id, token,
  -- session_name, duration. Returns Response.Credentials (+ ExpiredTime) or nil, result.
  function self.assume_role(r)
    r = r or {}
    local result = self.request({ action = "AssumeRoleWithWebIdentity", version = "2018-08-13", skip_auth = true,
      body = { ProviderId = r.provider_id or T.provider_id, WebIdentityToken = r.token or T.web_identity_token,
        RoleArn = r.role_arn or T.role_arn, RoleSessionName = r.session_name or "spec",
        DurationSeconds = r.duration or 7200 } })
    local response = type(result.json) == "table" and result.json.Response or {}
    if result.status ~= 200 or response.Error then
      return nil, result
    end
    local creds = response.Credentials
    creds.ExpiredTime, creds.Expiration = response.ExpiredTime, response.Expiration
    return creds, result
  end

  return self
end

return fake_cloud
