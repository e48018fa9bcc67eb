-- Tencent Cloud CVM: reboots the instance behind a TKE (or self-built) node.
--
-- providerID: qcloud:///<zone>/ins-xxxxxxxx, where <zone> is TKE's numeric
-- zone id (100003) or, on self-built clusters, a zone name (ap-beijing-3).
-- There is no tencentcloud:// form (../shared/docs/cloud-apis.md section 2).
-- Reboot: CVM RebootInstances, API 3.0 (version 2017-03-12), POST JSON signed
-- with TC3-HMAC-SHA256 (ctx.tc3). Credentials: TENCENTCLOUD_SECRET_ID/
-- TENCENTCLOUD_SECRET_KEY (+ TENCENTCLOUD_SESSION_TOKEN), else TKE OIDC
-- (TKE_ROLE_ARN, TKE_WEB_IDENTITY_TOKEN_FILE, TKE_PROVIDER_ID, TKE_REGION)
-- exchanged at STS AssumeRoleWithWebIdentity for temporary credentials that
-- are cached in ctx.cache until 5 minutes before they expire.
-- Contract: docs/providers.md. One attempt per call; the core retries.
local tencentcloud = { name = "tencentcloud", api_version = 1 }

local CVM_VERSION = "2017-03-12"
local STS_VERSION = "2018-08-13"
local CONTENT_TYPE = "application/json; charset=utf-8"
local HTTP_TIMEOUT = 10
local REFRESH_MARGIN = 300 -- seconds before expiry when cached temporary credentials are renewed
local STS_DURATION = 7200 -- the Go SDK's default for AssumeRoleWithWebIdentity
local MAX_MESSAGE = 512

local CBS_ZONE_LABEL = "topology.com.tencent.cloud.csi.cbs/zone"
local REGION_LABEL = "topology.kubernetes.io/region"

local STOP_TYPES = { SOFT = true, HARD = true, SOFT_FIRST = true }

local CREDENTIALS_HELP = "set TENCENTCLOUD_SECRET_ID and TENCENTCLOUD_SECRET_KEY (and TENCENTCLOUD_SESSION_TOKEN "
  .. "for temporary keys), or TKE_ROLE_ARN, TKE_WEB_IDENTITY_TOKEN_FILE, TKE_PROVIDER_ID and TKE_REGION (TKE OIDC)"

---------------------------------------------------------------------------
-- providerID and region
---------------------------------------------------------------------------

-- ins- and 8 lower-case letters or digits (ins-3ven36lk), as TKE writes them.
local function valid_instance_id(id)
  return type(id) == "string" and id:match("^ins%-[%l%d][%l%d][%l%d][%l%d][%l%d][%l%d][%l%d][%l%d]$") ~= nil
end

-- A full region name (ap-guangzhou, ap-shanghai-fsi, na-siliconvalley), not
-- a short code (gz, hk) nor a zone (ap-guangzhou-3).
local function valid_region(region)
  return type(region) == "string" and #region <= 64 and region:match("^%l+%-[%l%d%-]*%l$") ~= nil
end

-- The region of a zone name (ap-guangzhou-3 -> ap-guangzhou), or nil.
local function region_of_zone(zone)
  if type(zone) ~= "string" or #zone > 64 then
    return nil
  end
  local region = zone:match("^(.-)%-%d+$")
  if valid_region(region) then
    return region
  end
  return nil
end

local function labels_of(node)
  local metadata = type(node) == "table" and node.metadata
  local labels = type(metadata) == "table" and metadata.labels
  return type(labels) == "table" and labels or {}
end

local function nonempty(value)
  if type(value) == "string" and value ~= "" then
    return value
  end
  return nil
end

local function env(ctx, name)
  return nonempty(ctx.env(name))
end

local function shorten(s)
  s = tostring(s)
  if #s > 200 then
    return s:sub(1, 200) .. "..."
  end
  return s
end

--- providerID -> target { instance_id, region, zone, zone_id }, nil when not
-- qcloud://, or nil, message when qcloud:// but malformed. Never raises.
-- Region: the zone name in the providerID, else the CBS CSI zone label minus
-- its last -<n>, else topology.kubernetes.io/region when it holds a full
-- region name (TKE puts short codes like "hk" there), else left nil here and
-- taken from TENCENTCLOUD_REGION (or TKE_REGION) at restart: match gets no
-- ctx. (An optional third argument ctx, if a core ever passes one, is used.)
-- Numeric zone ids are not mapped: cloud-apis.md has no official table.
function tencentcloud.match(provider_id, node, ctx)
  if type(provider_id) ~= "string" then
    return nil
  end
  local rest = provider_id:match("^qcloud://(.*)$")
  if not rest then
    return nil
  end
  local zone, instance_id = rest:match("^/([%l%d%-]*)/([^/]*)$")
  if not zone then
    return nil, ("malformed providerID %q: expected qcloud:///<zone>/ins-xxxxxxxx"):format(shorten(provider_id))
  end
  if not valid_instance_id(instance_id) then
    return nil, ("malformed providerID %q: instance id must be ins- followed by 8 lower-case letters or digits")
      :format(shorten(provider_id))
  end
  local target = { instance_id = instance_id }
  local labels = labels_of(node)
  local cbs_zone = labels[CBS_ZONE_LABEL]
  if zone:match("^%d+$") then
    target.zone_id = zone
  elseif zone ~= "" then
    target.zone = zone
    target.region = region_of_zone(zone)
  end
  if not target.region then
    target.region = region_of_zone(cbs_zone)
    if target.region then
      target.zone = cbs_zone
    end
  end
  if not target.region and valid_region(labels[REGION_LABEL]) then
    target.region = labels[REGION_LABEL]
  end
  if not target.region and type(ctx) == "table" and type(ctx.env) == "function" then
    local from_env = nonempty(ctx.env("TENCENTCLOUD_REGION"))
    if valid_region(from_env) then
      target.region = from_env
    end
  end
  target.zone = target.zone or target.zone_id
  return target
end

---------------------------------------------------------------------------
-- errors
---------------------------------------------------------------------------

-- Removes every secret from a message (plain matching, not patterns).
local function scrub(message, secrets)
  message = tostring(message or "")
  for _, secret in ipairs(secrets or {}) do
    if type(secret) == "string" and #secret >= 4 then
      local out, start = {}, 1
      while true do
        local i, j = message:find(secret, start, true)
        if not i then
          break
        end
        out[#out + 1] = message:sub(start, i - 1)
        out[#out + 1] = "[REDACTED]"
        start = j + 1
      end
      out[#out + 1] = message:sub(start)
      message = table.concat(out)
    end
  end
  if #message > MAX_MESSAGE then
    message = message:sub(1, MAX_MESSAGE) .. "..."
  end
  return message
end

local function has_prefix(code, prefix)
  return code == prefix or code:sub(1, #prefix + 1) == prefix .. "."
    or (code:sub(1, #prefix) == prefix and code:sub(#prefix + 1, #prefix + 1):match("^%u$") ~= nil)
end

-- Tencent Cloud error code -> reason, retryable (cloud-apis.md section 2, Errors).
local function classify(code)
  if has_prefix(code, "RequestLimitExceeded") then
    return "Throttled", true
  end
  if code == "AuthFailure.UnauthorizedOperation" or code == "AuthFailure.MFAFailure" then
    return "Forbidden", false -- CAM says no: the keys are fine, the permission is missing
  end
  if has_prefix(code, "AuthFailure") then
    return "Unauthorized", false
  end
  if has_prefix(code, "UnauthorizedOperation") then
    return "Forbidden", false
  end
  if code == "OperationDenied.InstanceOperationInProgress" then
    return "InvalidState", false
  end
  if has_prefix(code, "OperationDenied") then
    return "Forbidden", false
  end
  if code == "InvalidInstanceId.NotFound" or code == "InvalidInstance.NotFound" then
    return "NotFound", false
  end
  if code == "IncorrectState" or has_prefix(code, "InvalidInstanceState")
    or code:find("^UnsupportedOperation%.InstanceState") or code == "UnsupportedOperation.InvalidInstanceState" then
    return "InvalidState", false
  end
  if has_prefix(code, "InvalidInstanceId") or has_prefix(code, "InvalidParameter")
    or has_prefix(code, "MissingParameter")
    or has_prefix(code, "UnknownParameter") or has_prefix(code, "UnsupportedRegion")
    or has_prefix(code, "InvalidAction") or has_prefix(code, "UnsupportedOperation") then
    return "InvalidRequest", false
  end
  if has_prefix(code, "InternalError") or has_prefix(code, "InternalServerError") then
    return "Unavailable", true
  end
  return "Internal", false
end

local function transport_error(call, message, code)
  local what = ("%s: %s"):format(call.action, scrub(message, call.secrets))
  if code == "connect" then
    return { reason = "Unavailable", message = "cannot connect to " .. call.host .. ": " .. what, retryable = true }
  end
  if code == "timeout" then
    -- A RebootInstances that timed out may have reached CVM: the outcome is
    -- unknown (sent). A read (DescribeInstances, STS) changed nothing.
    return { reason = "Timeout", message = "timed out: " .. what, sent = not call.read_only,
      retryable = call.read_only or nil }
  end
  if code == "tls" then
    return { reason = "Unavailable", message = "TLS failure with " .. call.host .. ": " .. what }
  end
  if code == "too_large" then
    return { reason = "Internal", message = "answer too large: " .. what, sent = not call.read_only }
  end
  return { reason = "Unavailable", message = "transport error: " .. what, sent = not call.read_only }
end

---------------------------------------------------------------------------
-- endpoints and calls
---------------------------------------------------------------------------

-- "https://host[:port][/path]" (http accepted, for test endpoints) ->
-- { url, host, path }, or nil.
local function parse_endpoint(url)
  if type(url) ~= "string" then
    return nil
  end
  local scheme, authority, path = url:match("^(%a+)://([^/%?#@%s]+)(/?[^%?#%s]*)$")
  if not scheme then
    return nil
  end
  scheme = scheme:lower()
  if scheme ~= "https" and scheme ~= "http" then
    return nil
  end
  if not authority:match("^[%w%.%-]+$") and not authority:match("^[%w%.%-]+:%d+$")
    and not authority:match("^%[[%x:%.]+%]:?%d*$") then
    return nil
  end
  if path == "" then
    path = "/"
  end
  return { url = scheme .. "://" .. authority .. path, host = authority, path = path }
end

-- The endpoint of a service: the override variable, else <svc>.internal.
-- tencentcloudapi.com in a cluster (the VPC endpoint), else the public one.
local function endpoint(ctx, service, override_var)
  local override = env(ctx, override_var)
  if override then
    local ep = parse_endpoint(override)
    if not ep then
      return nil, { reason = "Internal", message = override_var .. " is not an http(s) URL: " .. shorten(override) }
    end
    return ep
  end
  local host = service .. (env(ctx, "KUBERNETES_SERVICE_HOST") and ".internal" or "") .. ".tencentcloudapi.com"
  return { url = "https://" .. host .. "/", host = host, path = "/" }
end

local function now(ctx)
  return math.floor(ctx.time.now())
end

-- One API 3.0 call. call = { endpoint, service, action, version, region, body,
-- credentials (nil: unsigned, Authorization: SKIP), read_only, secrets }.
-- Returns the decoded Response object, or nil, cloud error.
local function api_call(ctx, call)
  local ep = call.endpoint
  call.host = ep.host
  local timestamp = now(ctx)
  local headers = { ["Content-Type"] = CONTENT_TYPE, Host = ep.host }
  local creds = call.credentials
  if creds then
    local ok, added = pcall(ctx.tc3.sign, {
      method = "POST", host = ep.host, path = ep.path, query = "", headers = headers, body = call.body,
      service = call.service, secret_id = creds.secret_id, secret_key = creds.secret_key,
      session_token = creds.session_token, time = timestamp,
    }, ctx.crypto)
    if not ok or type(added) ~= "table" then
      return nil, { reason = "Internal", message = call.action .. ": signing the request failed" }
    end
    for name, value in pairs(added) do
      headers[name] = value
    end
    if creds.session_token and not headers["X-TC-Token"] then
      headers["X-TC-Token"] = creds.session_token
    end
  else
    headers.Authorization = "SKIP"
  end
  headers["X-TC-Action"] = call.action
  headers["X-TC-Version"] = call.version
  headers["X-TC-Region"] = call.region
  headers["X-TC-Timestamp"] = tostring(timestamp)
  headers["X-TC-Language"] = "en-US" -- unsigned; English error messages
  ctx.log.debug("Tencent Cloud API call", { action = call.action, host = ep.host, region = call.region,
    instance = call.instance_id })
  local resp, message, code = ctx.http({ method = "POST", url = ep.url, headers = headers, body = call.body,
    timeout = HTTP_TIMEOUT })
  if not resp then
    return nil, transport_error(call, message, code)
  end
  local status = tonumber(resp.status) or 0
  local data = type(resp.body) == "string" and ctx.json.decode(resp.body) or nil
  local response = type(data) == "table" and type(data.Response) == "table" and data.Response or nil
  local request_id = response and type(response.RequestId) == "string" and response.RequestId or nil
  local retry_after = tonumber((resp.headers or {})["retry-after"])
  if response and type(response.Error) == "table" then
    -- Service errors normally arrive with HTTP 200: the Error object decides.
    local cloud_code = type(response.Error.Code) == "string" and response.Error.Code or "Unknown"
    local reason, retryable = classify(cloud_code)
    if call.classify then
      reason, retryable = call.classify(cloud_code, reason, retryable)
    end
    return nil, { reason = reason, retryable = retryable or nil, cloud_code = cloud_code, request_id = request_id,
      retry_after = retry_after,
      message = ("%s: %s"):format(call.action, scrub(response.Error.Message or cloud_code, call.secrets)) }
  end
  if status >= 500 then
    return nil, { reason = "Unavailable", retryable = true, cloud_code = "HTTP" .. status, request_id = request_id,
      retry_after = retry_after, message = ("%s: HTTP %d from %s"):format(call.action, status, ep.host) }
  end
  if status ~= 200 then
    local reason = ({ [429] = "Throttled", [401] = "Unauthorized", [403] = "Forbidden" })[status] or "Internal"
    return nil, { reason = reason, retryable = status == 429 or nil, cloud_code = "HTTP" .. status,
      request_id = request_id, retry_after = retry_after,
      message = ("%s: unexpected HTTP %d from %s"):format(call.action, status, ep.host) }
  end
  if not response then
    -- HTTP 200 that cannot be read: a RebootInstances may have been done (sent).
    return nil, { reason = "Internal", cloud_code = "InvalidResponse", request_id = request_id,
      sent = not call.read_only,
      message = ("%s: the answer from %s is not an API 3.0 JSON response"):format(call.action, ep.host) }
  end
  return response
end

---------------------------------------------------------------------------
-- credentials
---------------------------------------------------------------------------

local function oidc_config(ctx)
  local cfg = {
    role_arn = env(ctx, "TKE_ROLE_ARN"),
    token_file = env(ctx, "TKE_WEB_IDENTITY_TOKEN_FILE"),
    provider_id = env(ctx, "TKE_PROVIDER_ID"),
    region = env(ctx, "TKE_REGION"),
  }
  if cfg.role_arn and cfg.token_file and cfg.provider_id then
    return cfg
  end
  return nil
end

local function static_credentials(ctx)
  local id, key = env(ctx, "TENCENTCLOUD_SECRET_ID"), env(ctx, "TENCENTCLOUD_SECRET_KEY")
  if id and key then
    return { secret_id = id, secret_key = key, session_token = env(ctx, "TENCENTCLOUD_SESSION_TOKEN"),
      source = "env" }
  end
  return nil
end

local function cache_key(cfg)
  return "tke-oidc:" .. cfg.provider_id .. ":" .. cfg.role_arn
end

local function forget(ctx, key)
  if ctx.cache.delete then
    ctx.cache.delete(key)
  else
    ctx.cache.set(key, "{}", 1)
  end
end

local function cached_credentials(ctx, key)
  local text = ctx.cache.get(key)
  local value = type(text) == "string" and ctx.json.decode(text) or nil
  if type(value) ~= "table" or type(value.secret_id) ~= "string" or type(value.secret_key) ~= "string"
    or type(value.expires) ~= "number" or value.expires - REFRESH_MARGIN <= now(ctx) then
    return nil
  end
  return { secret_id = value.secret_id, secret_key = value.secret_key,
    session_token = type(value.session_token) == "string" and value.session_token or nil,
    source = "oidc", cache_key = key }
end

-- STS errors: a rejected token or role means "cannot authenticate" for the
-- reboot (Unauthorized), whatever STS's code; throttling and 5xx stay retryable.
local function classify_sts(_, reason, retryable)
  if reason == "Throttled" or reason == "Unavailable" then
    return reason, retryable
  end
  return "Unauthorized", false
end

-- AssumeRoleWithWebIdentity with the projected token (re-read every fetch:
-- kubelet rotates it). Unsigned (Authorization: SKIP).
local function fetch_oidc_credentials(ctx, cfg, region, key)
  local token, read_err = ctx.read_file(cfg.token_file)
  token = type(token) == "string" and token:match("^%s*(.-)%s*$") or nil
  if not token or token == "" then
    return nil, { reason = "Unauthorized",
      message = ("cannot read the web identity token (TKE_WEB_IDENTITY_TOKEN_FILE=%s): %s"):format(
        shorten(cfg.token_file), shorten(read_err or "empty file")) }
  end
  local sts_region = cfg.region or region
  if not valid_region(sts_region) then
    return nil, { reason = "Internal", message = "TKE_REGION is not set to a region name (e.g. ap-guangzhou)" }
  end
  local ep, ep_err = endpoint(ctx, "sts", "TENCENTCLOUD_STS_ENDPOINT")
  if not ep then
    return nil, ep_err
  end
  local body = ctx.json.encode({
    ProviderId = cfg.provider_id, WebIdentityToken = token, RoleArn = cfg.role_arn,
    RoleSessionName = "myapiserver-" .. now(ctx), DurationSeconds = STS_DURATION,
  })
  local response, err = api_call(ctx, {
    endpoint = ep, service = "sts", action = "AssumeRoleWithWebIdentity", version = STS_VERSION,
    region = sts_region, body = body, read_only = true, secrets = { token }, classify = classify_sts,
  })
  if not response then
    err.message = "TKE OIDC credentials: " .. err.message
    return nil, err
  end
  local c = response.Credentials
  if type(c) ~= "table" or type(c.TmpSecretId) ~= "string" or type(c.TmpSecretKey) ~= "string"
    or type(c.Token) ~= "string" then
    return nil, { reason = "Unauthorized", cloud_code = "InvalidResponse", request_id = response.RequestId,
      message = "TKE OIDC credentials: AssumeRoleWithWebIdentity answered without Credentials" }
  end
  local expires = tonumber(response.ExpiredTime)
  if not expires and type(response.Expiration) == "string" then
    expires = ctx.time.parse_iso8601(response.Expiration)
  end
  expires = math.floor(tonumber(expires) or (now(ctx) + STS_DURATION))
  local ttl = expires - REFRESH_MARGIN - now(ctx)
  if ttl > 0 then
    ctx.cache.set(key, ctx.json.encode({ secret_id = c.TmpSecretId, secret_key = c.TmpSecretKey,
      session_token = c.Token, expires = expires }), ttl)
  end
  ctx.log.info("fetched Tencent Cloud temporary credentials (TKE OIDC)", { role_arn = cfg.role_arn,
    expires = expires, request_id = response.RequestId })
  return { secret_id = c.TmpSecretId, secret_key = c.TmpSecretKey, session_token = c.Token, source = "oidc",
    cache_key = key }
end

local function credentials(ctx, region)
  local creds = static_credentials(ctx)
  if creds then
    return creds
  end
  local cfg = oidc_config(ctx)
  if not cfg then
    return nil, { reason = "Unauthorized", message = "no Tencent Cloud credentials: " .. CREDENTIALS_HELP }
  end
  local key = cache_key(cfg)
  local cached = cached_credentials(ctx, key)
  if cached then
    return cached
  end
  return fetch_oidc_credentials(ctx, cfg, region, key)
end

---------------------------------------------------------------------------
-- restart
---------------------------------------------------------------------------

local function stop_type(ctx)
  local value = env(ctx, "TENCENTCLOUD_REBOOT_STOP_TYPE")
  if not value then
    return "SOFT_FIRST"
  end
  value = value:upper()
  if STOP_TYPES[value] then
    return value
  end
  return nil
end

-- DescribeInstances answer -> result or error for a dry run.
local function dry_run_result(target, response)
  local set = response.InstanceSet
  local instance
  if type(set) == "table" then
    for _, i in ipairs(set) do
      if type(i) == "table" and i.InstanceId == target.instance_id then
        instance = i
      end
    end
  end
  if not instance then
    return nil, { reason = "NotFound", cloud_code = "InvalidInstanceId.NotFound", request_id = response.RequestId,
      message = ("DescribeInstances: no instance %s in %s"):format(target.instance_id, target.region) }
  end
  local state = type(instance.InstanceState) == "string" and instance.InstanceState or "UNKNOWN"
  if state ~= "RUNNING" then
    return nil, { reason = "InvalidState", cloud_code = "InvalidInstanceState", request_id = response.RequestId,
      message = ("DescribeInstances: instance %s is %s; RebootInstances needs RUNNING"):format(
        target.instance_id, shorten(state)) }
  end
  return { request_id = response.RequestId, dry_run = true }
end

--- Reboots target.instance_id (RebootInstances, StopType from
-- TENCENTCLOUD_REBOOT_STOP_TYPE, default SOFT_FIRST: soft, then hard if the
-- soft reboot fails, what the original project's ForceReboot=true asked for;
-- ForceReboot itself is deprecated and must not be sent with StopType, so it
-- is omitted). opts.dry_run: CVM has no dry-run flag, so a dry run calls
-- DescribeInstances for the instance (same endpoint, credentials and signing)
-- and succeeds when it exists and is RUNNING (the only state RebootInstances
-- accepts), else returns the error the reboot would have met. It proves the
-- credentials and the instance, not the cvm:RebootInstances permission.
function tencentcloud.restart(target, opts, ctx)
  opts = opts or {}
  if type(target) ~= "table" or not valid_instance_id(target.instance_id) then
    return nil, { reason = "InvalidRequest", message = "target has no valid Tencent Cloud instance id" }
  end
  local region = target.region
  if not valid_region(region) then
    region = env(ctx, "TENCENTCLOUD_REGION") or env(ctx, "TKE_REGION")
  end
  if not valid_region(region) then
    return nil, { reason = "InvalidRequest", message = ("cannot tell the region of %s: the node has no %s label "
      .. "and TENCENTCLOUD_REGION is not set to a region name (e.g. ap-guangzhou)"):format(
        target.instance_id, CBS_ZONE_LABEL) }
  end
  local target_in_region = { instance_id = target.instance_id, region = region }
  local stop = stop_type(ctx)
  if not stop then
    return nil, { reason = "Internal", message = "TENCENTCLOUD_REBOOT_STOP_TYPE must be SOFT, HARD or SOFT_FIRST" }
  end
  local ep, ep_err = endpoint(ctx, "cvm", "TENCENTCLOUD_CVM_ENDPOINT")
  if not ep then
    return nil, ep_err
  end
  local creds, cred_err = credentials(ctx, region)
  if not creds then
    return nil, cred_err
  end
  -- The SecretId and token travel in headers, where the HTTP client raises on a
  -- line break (a Secret written with a trailing newline, a broken STS answer).
  for _, value in ipairs({ creds.secret_id, creds.session_token or "" }) do
    if value:find("%c") then
      if creds.cache_key then
        forget(ctx, creds.cache_key)
      end
      return nil, { reason = "Unauthorized", message = "the Tencent Cloud SecretId or session token holds a "
        .. "control character (a trailing newline?)" }
    end
  end
  local call = {
    endpoint = ep, service = "cvm", version = CVM_VERSION, region = region, credentials = creds,
    instance_id = target.instance_id, secrets = { creds.secret_key, creds.session_token, creds.secret_id },
  }
  if opts.dry_run then
    call.action, call.read_only = "DescribeInstances", true
    call.body = ctx.json.encode({ InstanceIds = { target.instance_id } })
  else
    call.action = "RebootInstances"
    -- Built by hand: the documented field order, byte-stable for signing.
    call.body = ('{"InstanceIds":[%s],"StopType":"%s"}'):format(ctx.json.encode(target.instance_id), stop)
  end
  local response, err = api_call(ctx, call)
  if not response then
    if err.reason == "Unauthorized" and creds.cache_key then
      -- Cached temporary credentials were refused: fetch new ones next time.
      forget(ctx, creds.cache_key)
      if err.cloud_code == "AuthFailure.TokenFailure" or err.cloud_code == "AuthFailure.SignatureExpire" then
        err.retryable = true
      end
    end
    return nil, err
  end
  if opts.dry_run then
    return dry_run_result(target_in_region, response)
  end
  ctx.log.info("Tencent Cloud RebootInstances accepted", { instance = target.instance_id, region = region,
    stop_type = stop, request_id = response.RequestId, node = opts.node })
  return { request_id = response.RequestId, dry_run = false }
end

--- Ready when static keys or the TKE OIDC variables are set (no network).
function tencentcloud.check(ctx)
  if not stop_type(ctx) then
    return false, "TENCENTCLOUD_REBOOT_STOP_TYPE must be SOFT, HARD or SOFT_FIRST"
  end
  for _, var in ipairs({ "TENCENTCLOUD_CVM_ENDPOINT", "TENCENTCLOUD_STS_ENDPOINT" }) do
    local value = env(ctx, var)
    if value and not parse_endpoint(value) then
      return false, var .. " is not an http(s) URL"
    end
  end
  if static_credentials(ctx) or oidc_config(ctx) then
    return true
  end
  return false, "no Tencent Cloud credentials: " .. CREDENTIALS_HELP
end

return tencentcloud
