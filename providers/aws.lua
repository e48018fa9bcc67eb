-- AWS EC2: reboots the instance behind a node with the EC2 Query API
-- RebootInstances (version 2016-11-15), SigV4-signed. Contract:
-- docs/providers.md; AWS details: shared/docs/cloud-apis.md section 1.
--
-- Uses only what `ctx` gives (no require, io or os beyond os.time/clock/date).
--
-- Behaviour choices:
-- * providerIDs: `aws:///<zone>/i-...`, `aws:////i-...`, `aws:///i-...`,
--   `aws://<region>/i-...` (optionally `aws://<region>/<zone>/i-...`) and a bare
--   `i-...` (cloud-provider-aws accepts it). The instance id is `i-` and 8 or 17
--   lower-case hex digits. `aws:///<zone>/fargate-...` is ours but cannot be
--   rebooted (nil, message). Anything else starting with `aws://` is ours and
--   malformed (nil, message); other strings are not ours (nil).
-- * Region: from the zone (cloud-provider-aws rule `^([a-zA-Z]+-)+\d+`, so Local
--   Zones and Wavelength zones work), else the `aws://<region>/` host, else the
--   node's `topology.kubernetes.io/region` label. match() has no ctx, so when
--   none of these gives one it returns the target with region = nil and
--   restart() falls back to AWS_REGION / AWS_DEFAULT_REGION, else answers
--   InvalidRequest "no region ...".
-- * Credentials, in the SDKs' order: static env keys, IRSA web identity (STS
--   AssumeRoleWithWebIdentity, unsigned), container credentials (EKS Pod
--   Identity / ECS). IMDS is deliberately not used: a pod should not borrow
--   the node's instance role (and IMDSv2's hop limit usually blocks it).
--   Temporary credentials are cached in ctx.cache until 5 minutes before they
--   expire, and dropped when EC2 rejects them.
-- * One attempt per call; every HTTP request has a 10 s timeout.
-- * No secret (secret key, session token, web identity or pod identity token)
--   ever appears in an error or a log line: messages from outside are scrubbed.
local aws = { name = "aws", api_version = 1 }

local EC2_VERSION = "2016-11-15"
local STS_VERSION = "2011-06-15"
local HTTP_TIMEOUT = 10
local REFRESH_MARGIN = 300 -- seconds before Expiration when cached credentials are refreshed
local MAX_MESSAGE = 512
local FORM_TYPE = "application/x-www-form-urlencoded; charset=utf-8"
local REGION_LABEL = "topology.kubernetes.io/region"
local NO_CREDENTIALS = "no AWS credentials: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN), "
  .. "or IRSA (AWS_ROLE_ARN + AWS_WEB_IDENTITY_TOKEN_FILE), "
  .. "or EKS Pod Identity (AWS_CONTAINER_CREDENTIALS_FULL_URI + AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE)"

-- Regions that use the global STS endpoint when AWS_STS_REGIONAL_ENDPOINTS=legacy (botocore's list).
local STS_LEGACY_GLOBAL = {
  ["ap-northeast-1"] = true, ["ap-south-1"] = true, ["ap-southeast-1"] = true, ["ap-southeast-2"] = true,
  ["aws-global"] = true, ["ca-central-1"] = true, ["eu-central-1"] = true, ["eu-north-1"] = true,
  ["eu-west-1"] = true, ["eu-west-2"] = true, ["eu-west-3"] = true, ["sa-east-1"] = true,
  ["us-east-1"] = true, ["us-east-2"] = true, ["us-west-1"] = true, ["us-west-2"] = true,
}

-- EC2 / STS error codes -> docs/providers.md reasons.
local THROTTLE_CODES = {
  RequestLimitExceeded = true, Throttling = true, ThrottlingException = true, ThrottledException = true,
  EC2ThrottledException = true, TooManyRequestsException = true, RequestThrottled = true,
  RequestThrottledException = true, PriorRequestNotComplete = true, SlowDown = true,
  BandwidthLimitExceeded = true, ProvisionedThroughputExceededException = true,
}
local UNAVAILABLE_CODES = {
  Unavailable = true, ServiceUnavailable = true, InternalError = true, InternalFailure = true,
  RequestTimeout = true, RequestTimeoutException = true, IDPCommunicationError = true,
}
local UNAUTHORIZED_CODES = {
  AuthFailure = true, SignatureDoesNotMatch = true, InvalidClientTokenId = true, RequestExpired = true,
  ExpiredToken = true, ExpiredTokenException = true, IncompleteSignature = true,
  MissingAuthenticationToken = true, InvalidSecurity = true, InvalidAccessKeyId = true,
  InvalidToken = true, UnrecognizedClientException = true,
}
-- Unauthorized codes after which fresh temporary credentials may succeed.
local REFRESHABLE_CODES = { ExpiredToken = true, ExpiredTokenException = true }
local FORBIDDEN_CODES = {
  UnauthorizedOperation = true, AccessDenied = true, AccessDeniedException = true,
  OptInRequired = true, Blocked = true, PendingVerification = true,
}
local INVALID_STATE_CODES = { IncorrectState = true, IncorrectInstanceState = true }
local NOT_FOUND_CODES = { ["InvalidInstanceID.NotFound"] = true }
local INVALID_REQUEST_CODES = {
  ["InvalidInstanceID.Malformed"] = true, InvalidInstanceID = true, InvalidParameterValue = true,
  InvalidParameter = true, InvalidParameterCombination = true, MissingParameter = true,
  InvalidAction = true, InvalidQueryParameter = true, MalformedQueryString = true,
  UnknownParameter = true, UnsupportedOperation = true, UnsupportedProtocol = true,
  InvalidRequest = true, ValidationError = true,
}

-- Small helpers ---------------------------------------------------------------

local function nonempty(value)
  if type(value) == "string" and value ~= "" then
    return value
  end
  return nil
end

local function env(ctx, name)
  return nonempty(ctx.env(name))
end

local function trim(s)
  return (s:gsub("^%s+", ""):gsub("%s+$", ""))
end

--- RFC 3986 encoding for form values (SigV4 and EC2 agree on it).
local function urlencode(s)
  return (s:gsub("[^%w%-%._~]", function(c)
    return string.format("%%%02X", string.byte(c))
  end))
end

--- Replaces every occurrence of each secret in text with "***" (plain find, no patterns).
local function scrub(text, secrets)
  if type(text) ~= "string" then
    return text
  end
  for _, secret in ipairs(secrets or {}) do
    if type(secret) == "string" and #secret >= 4 then
      local parts, pos = {}, 1
      while true do
        local s, e = string.find(text, secret, pos, true)
        if not s then
          break
        end
        parts[#parts + 1] = text:sub(pos, s - 1)
        parts[#parts + 1] = "***"
        pos = e + 1
      end
      parts[#parts + 1] = text:sub(pos)
      text = table.concat(parts)
    end
  end
  if #text > MAX_MESSAGE then
    text = text:sub(1, MAX_MESSAGE) .. "..."
  end
  return text
end

local function cloud_error(reason, message, fields)
  local err = { reason = reason, message = message }
  for k, v in pairs(fields or {}) do
    err[k] = v
  end
  return err
end

-- Regions, zones and providerIDs ---------------------------------------------

--- cloud-provider-aws's `^([a-zA-Z]+-)+\d+`: the region prefix of a zone (or a
-- region itself), e.g. us-west-2a -> us-west-2, us-west-2-lax-1a -> us-west-2.
local function region_prefix(s)
  if type(s) ~= "string" or #s > 128 then
    return nil
  end
  local pos, groups = 1, 0
  while true do
    local e = select(2, string.find(s, "^%a+%-", pos))
    if not e then
      break
    end
    pos, groups = e + 1, groups + 1
  end
  local e = select(2, string.find(s, "^%d+", pos))
  if groups == 0 or not e then
    return nil
  end
  return s:sub(1, e)
end

--- A region name usable in a host name and a signing scope (e.g. us-gov-west-1).
local function valid_region(s)
  return type(s) == "string" and s:match("^%l[%l%-]*%-%d+$") ~= nil and region_prefix(s) == s
end

local function valid_instance_id(id)
  return type(id) == "string" and (#id == 10 or #id == 19) and id:match("^i%-[0-9a-f]+$") ~= nil
end

local function node_region(node)
  if type(node) ~= "table" or type(node.metadata) ~= "table" or type(node.metadata.labels) ~= "table" then
    return nil
  end
  local label = node.metadata.labels[REGION_LABEL]
  if valid_region(label) then
    return label
  end
  return nil
end

local function split_path(path)
  local segments = {}
  for segment in (path .. "/"):gmatch("([^/]*)/") do
    segments[#segments + 1] = segment
  end
  return segments
end

--- Parses the part after `aws://`: [region] "/" [zone "/"] id, with the
-- leniency of cloud-provider-aws (leading/trailing slashes trimmed).
local function parse_aws_uri(rest)
  local host, path = rest:match("^([^/]*)(.*)$")
  if host ~= "" and not valid_region(host) then
    return nil, "host part '" .. host .. "' is not an AWS region"
  end
  path = path:gsub("^/+", ""):gsub("/+$", "")
  if path == "" then
    return nil, "no instance id"
  end
  local segments = split_path(path)
  local zone, id
  if #segments == 1 then
    id = segments[1]
  elseif #segments == 2 then
    zone, id = segments[1], segments[2]
  else
    return nil, "expected aws:///<zone>/<instance-id>"
  end
  if zone and not zone:match("^[%w%-]+$") then
    return nil, "zone '" .. zone .. "' is not an availability zone name"
  end
  if id:sub(1, 8) == "fargate-" then
    return nil, "Fargate nodes have no EC2 instance to reboot"
  end
  if not valid_instance_id(id) then
    return nil, "instance id '" .. id .. "' is not i- followed by 8 or 17 hex digits"
  end
  return { instance_id = id, zone = zone, host_region = host ~= "" and host or nil }
end

function aws.match(provider_id, node)
  if type(provider_id) ~= "string" then
    return nil
  end
  local parsed
  if provider_id:sub(1, 6) == "aws://" then
    if #provider_id > 512 then
      return nil, "malformed AWS providerID: longer than 512 bytes"
    end
    local err
    parsed, err = parse_aws_uri(provider_id:sub(7))
    if not parsed then
      return nil, "malformed AWS providerID '" .. provider_id .. "': " .. err
    end
  elseif valid_instance_id(provider_id) then
    parsed = { instance_id = provider_id }
  else
    return nil
  end
  local zone_region = region_prefix(parsed.zone)
  if zone_region and parsed.host_region and zone_region ~= parsed.host_region then
    return nil, "malformed AWS providerID '" .. provider_id .. "': zone " .. parsed.zone
      .. " is not in region " .. parsed.host_region
  end
  if zone_region and not valid_region(zone_region) then
    zone_region = nil
  end
  return {
    instance_id = parsed.instance_id,
    zone = parsed.zone,
    region = zone_region or parsed.host_region or node_region(node),
  }
end

-- Endpoints ---------------------------------------------------------------------

local function dns_suffix(region)
  if region:sub(1, 3) == "cn-" then
    return "amazonaws.com.cn"
  end
  return "amazonaws.com"
end

--- The endpoint override for a service (AWS_ENDPOINT_URL_<SERVICE>, else
-- AWS_ENDPOINT_URL): url, or nil; or nil, error message when it is not a URL.
local function endpoint_override(ctx, service)
  local ignore = env(ctx, "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS")
  if ignore and ignore:lower() == "true" then
    return nil
  end
  local name = "AWS_ENDPOINT_URL_" .. service
  local value = env(ctx, name)
  if not value then
    name, value = "AWS_ENDPOINT_URL", env(ctx, "AWS_ENDPOINT_URL")
  end
  if not value then
    return nil
  end
  local scheme, authority, path = value:match("^(%a+)://([^/?#@%s]+)(.*)$")
  if not scheme or (scheme:lower() ~= "http" and scheme:lower() ~= "https")
    or not (path == "" or path:match("^/[^?#@%s]*$")) then
    return nil, name .. " is not an http(s) URL without query: " .. value
  end
  if path == "" then
    path = "/"
  end
  return scheme:lower() .. "://" .. authority .. path
end

local function ec2_endpoint(ctx, region)
  local override, err = endpoint_override(ctx, "EC2")
  if err then
    return nil, err
  end
  return override or ("https://ec2." .. region .. "." .. dns_suffix(region) .. "/")
end

local function sts_endpoint(ctx, region)
  local override, err = endpoint_override(ctx, "STS")
  if err then
    return nil, err
  end
  if override then
    return override
  end
  local mode = env(ctx, "AWS_STS_REGIONAL_ENDPOINTS")
  if not region or (mode and mode:lower() == "legacy" and STS_LEGACY_GLOBAL[region]) then
    return "https://sts.amazonaws.com/"
  end
  return "https://sts." .. region .. "." .. dns_suffix(region) .. "/"
end

local function env_region(ctx)
  for _, name in ipairs({ "AWS_REGION", "AWS_DEFAULT_REGION" }) do
    local value = env(ctx, name)
    if value then
      if not valid_region(value) then
        return nil, name .. " is not an AWS region: " .. value
      end
      return value
    end
  end
  return nil
end

-- Credentials ---------------------------------------------------------------

--- Which credential source the environment configures, or nil.
local function credential_source(ctx)
  if env(ctx, "AWS_ACCESS_KEY_ID") and env(ctx, "AWS_SECRET_ACCESS_KEY") then
    return "static"
  end
  if env(ctx, "AWS_ROLE_ARN") and env(ctx, "AWS_WEB_IDENTITY_TOKEN_FILE") then
    return "irsa"
  end
  if env(ctx, "AWS_CONTAINER_CREDENTIALS_FULL_URI") or env(ctx, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI") then
    return "container"
  end
  return nil
end

local function cache_drop(ctx, key)
  if ctx.cache.delete then
    ctx.cache.delete(key)
  else
    ctx.cache.set(key, "", 1) -- an empty value reads as absent
  end
end

local function cache_load(ctx, key)
  local text = ctx.cache.get(key)
  if not nonempty(text) then
    return nil
  end
  local creds = ctx.json.decode(text)
  if type(creds) ~= "table" or not nonempty(creds.access_key) or not nonempty(creds.secret_key)
    or type(creds.expires_at) ~= "number" or creds.expires_at - REFRESH_MARGIN <= ctx.time.now() then
    return nil
  end
  return creds
end

--- Caches temporary credentials until REFRESH_MARGIN before they expire; without
-- a usable Expiration they are used for this call only.
local function cache_store(ctx, key, creds)
  if type(creds.expires_at) ~= "number" then
    return
  end
  local ttl = creds.expires_at - REFRESH_MARGIN - ctx.time.now()
  if ttl > 0 then
    ctx.cache.set(key, ctx.json.encode({
      access_key = creds.access_key, secret_key = creds.secret_key,
      session_token = creds.session_token, expires_at = creds.expires_at,
    }), ttl)
  end
end

local function parse_expiration(ctx, value)
  if type(value) ~= "string" then
    return nil
  end
  local ok, t = pcall(ctx.time.parse_iso8601, value)
  if ok and type(t) == "number" then
    return t
  end
  return nil
end

--- A failure while getting credentials. Transport problems and throttling are
-- transient (the reboot was not sent); everything else is Unauthorized.
local function credential_error(source, status, code, message, request_id, secrets)
  local text = source .. ": " .. (scrub(message, secrets) or "failed")
  local fields = { cloud_code = code, request_id = request_id, sent = false }
  if THROTTLE_CODES[code] or status == 429 then
    fields.retryable = true
    return cloud_error("Throttled", text, fields)
  end
  if UNAVAILABLE_CODES[code] or (status and status >= 500) then
    fields.retryable = true
    return cloud_error("Unavailable", text, fields)
  end
  -- aws-sdk-go-v2 treats InvalidIdentityToken as transient (a token not yet valid).
  fields.retryable = code == "InvalidIdentityToken" or nil
  return cloud_error("Unauthorized", text, fields)
end

local function transport_credential_error(source, message, code)
  -- Nothing was rebooted yet, so even a timeout is safe to repeat.
  return cloud_error("Unavailable", source .. ": " .. tostring(code or "io") .. ": " .. tostring(message),
    { retryable = code == "connect" or code == "timeout", sent = false })
end

local IRSA = "IRSA web identity (STS AssumeRoleWithWebIdentity)"

local function irsa_credentials(ctx, region)
  local role = env(ctx, "AWS_ROLE_ARN")
  local key = "irsa:" .. role
  local cached = cache_load(ctx, key)
  if cached then
    return cached, key
  end
  local token_file = env(ctx, "AWS_WEB_IDENTITY_TOKEN_FILE")
  -- Read on every fetch: the kubelet rotates the projected token.
  local data, read_err = ctx.read_file(token_file)
  if not data then
    return nil, cloud_error("Unauthorized", IRSA .. ": cannot read AWS_WEB_IDENTITY_TOKEN_FILE " .. token_file
      .. ": " .. tostring(read_err), { sent = false })
  end
  local token = trim(data)
  if token == "" then
    return nil, cloud_error("Unauthorized", IRSA .. ": AWS_WEB_IDENTITY_TOKEN_FILE " .. token_file .. " is empty",
      { sent = false })
  end
  local secrets = { token }
  local sts_region = env_region(ctx) or region
  local url, url_err = sts_endpoint(ctx, sts_region)
  if not url then
    return nil, cloud_error("InvalidRequest", IRSA .. ": " .. url_err, { sent = false })
  end
  local session = env(ctx, "AWS_ROLE_SESSION_NAME") or ("myapiserver-" .. math.floor(ctx.time.now()))
  local body = "Action=AssumeRoleWithWebIdentity&Version=" .. STS_VERSION
    .. "&RoleArn=" .. urlencode(role) .. "&RoleSessionName=" .. urlencode(session)
    .. "&WebIdentityToken=" .. urlencode(token)
  local resp, http_err, http_code = ctx.http({
    method = "POST", url = url, body = body, timeout = HTTP_TIMEOUT,
    headers = { ["Content-Type"] = FORM_TYPE, Accept = "application/xml" },
  })
  if not resp then
    return nil, transport_credential_error(IRSA, scrub(http_err, secrets), http_code)
  end
  local text = type(resp.body) == "string" and resp.body or ""
  local request_id = nonempty(ctx.xml.text(text, "RequestId")) or (resp.headers or {})["x-amzn-requestid"]
  if resp.status ~= 200 then
    return nil, credential_error(IRSA, resp.status, nonempty(ctx.xml.text(text, "Code")),
      nonempty(ctx.xml.text(text, "Message")) or ("HTTP " .. tostring(resp.status)), request_id, secrets)
  end
  local creds = {
    access_key = ctx.xml.text(text, "AccessKeyId"),
    secret_key = ctx.xml.text(text, "SecretAccessKey"),
    session_token = ctx.xml.text(text, "SessionToken"),
    expires_at = parse_expiration(ctx, ctx.xml.text(text, "Expiration")),
  }
  if not nonempty(creds.access_key) or not nonempty(creds.secret_key) or not nonempty(creds.session_token) then
    return nil, credential_error(IRSA, resp.status, nil, "the answer holds no credentials", request_id)
  end
  cache_store(ctx, key, creds)
  ctx.log.info("aws: assumed role with web identity", {
    source = "irsa", role_arn = role, request_id = request_id,
    expires_at = creds.expires_at and ctx.time.iso8601(creds.expires_at) or nil,
  })
  return creds, key
end

local CONTAINER = "container credentials (EKS Pod Identity)"

--- The SDKs only send the token over plain http to loopback or the ECS/EKS agent addresses.
local function container_host_allowed(scheme, host)
  if scheme == "https" then
    return true
  end
  host = host:lower()
  local bare = host:match("^(%[[^%]]+%])") or host:match("^([^:]+)")
  if not bare then
    return false
  end
  return bare == "localhost" or bare == "[::1]" or bare == "169.254.170.2" or bare == "169.254.170.23"
    or bare == "[fd00:ec2::23]" or bare:match("^127%.%d+%.%d+%.%d+$") ~= nil
end

local function container_credentials(ctx)
  -- Like the SDKs, the ECS-style relative URI wins over the full URI.
  local relative = env(ctx, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
  local url = relative and ("http://169.254.170.2" .. relative) or env(ctx, "AWS_CONTAINER_CREDENTIALS_FULL_URI")
  local key = "container:" .. url
  local cached = cache_load(ctx, key)
  if cached then
    return cached, key
  end
  local scheme, host, rest = url:match("^(%a+)://([^/?#@%s]+)(.*)$")
  scheme = scheme and scheme:lower()
  if (scheme ~= "http" and scheme ~= "https") or not (rest == "" or rest:match("^[/?]"))
    or not container_host_allowed(scheme, host) then
    return nil, cloud_error("Unauthorized", CONTAINER .. ": AWS_CONTAINER_CREDENTIALS_FULL_URI must be https, "
      .. "or http to a loopback address or 169.254.170.2/169.254.170.23/[fd00:ec2::23]: " .. url,
      { sent = false })
  end
  local token
  local token_file = env(ctx, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE")
  if token_file then
    -- Read on every fetch: the projected token rotates.
    local data, read_err = ctx.read_file(token_file)
    if not data then
      return nil, cloud_error("Unauthorized", CONTAINER .. ": cannot read AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE "
        .. token_file .. ": " .. tostring(read_err), { sent = false })
    end
    token = trim(data)
  else
    token = env(ctx, "AWS_CONTAINER_AUTHORIZATION_TOKEN")
  end
  local secrets = { token }
  local headers = { Accept = "application/json" }
  if nonempty(token) then
    headers.Authorization = token
  end
  local resp, http_err, http_code = ctx.http({ method = "GET", url = url, headers = headers, timeout = HTTP_TIMEOUT })
  if not resp then
    return nil, transport_credential_error(CONTAINER, scrub(http_err, secrets), http_code)
  end
  local value = ctx.json.decode(type(resp.body) == "string" and resp.body or "")
  if type(value) ~= "table" then
    value = {}
  end
  if resp.status ~= 200 then
    local code = type(value.code) == "string" and value.code or nil
    local message = type(value.message) == "string" and value.message or ("HTTP " .. tostring(resp.status))
    return nil, credential_error(CONTAINER, resp.status, code, message, nil, secrets)
  end
  local creds = {
    access_key = nonempty(value.AccessKeyId),
    secret_key = nonempty(value.SecretAccessKey),
    session_token = nonempty(value.Token),
    expires_at = parse_expiration(ctx, value.Expiration),
  }
  if not creds.access_key or not creds.secret_key then
    return nil, credential_error(CONTAINER, resp.status, nil, "the answer holds no credentials", nil)
  end
  cache_store(ctx, key, creds)
  ctx.log.info("aws: fetched container credentials", {
    source = "container",
    expires_at = creds.expires_at and ctx.time.iso8601(creds.expires_at) or nil,
  })
  return creds, key
end

--- credentials, cache key (nil for static keys) | nil, cloud error
local function get_credentials(ctx, region)
  local source = credential_source(ctx)
  if source == "static" then
    return {
      access_key = env(ctx, "AWS_ACCESS_KEY_ID"),
      secret_key = env(ctx, "AWS_SECRET_ACCESS_KEY"),
      session_token = env(ctx, "AWS_SESSION_TOKEN"),
    }
  elseif source == "irsa" then
    return irsa_credentials(ctx, region)
  elseif source == "container" then
    return container_credentials(ctx)
  end
  return nil, cloud_error("Unauthorized", NO_CREDENTIALS, { sent = false })
end

-- RebootInstances -------------------------------------------------------------

local function classify(code, status)
  if THROTTLE_CODES[code] then
    return "Throttled", true
  elseif UNAVAILABLE_CODES[code] then
    return "Unavailable", true
  elseif UNAUTHORIZED_CODES[code] or (code and code:sub(1, 12) == "AuthFailure.") then
    return "Unauthorized", false
  elseif FORBIDDEN_CODES[code] then
    return "Forbidden", false
  elseif NOT_FOUND_CODES[code] then
    return "NotFound", false
  elseif INVALID_STATE_CODES[code] then
    return "InvalidState", false
  elseif INVALID_REQUEST_CODES[code] then
    return "InvalidRequest", false
  elseif status == 429 then
    return "Throttled", true
  elseif status == 401 then
    return "Unauthorized", false
  elseif status == 403 then
    return "Forbidden", false
  elseif status >= 500 then
    return "Unavailable", true
  elseif status >= 400 then
    return "InvalidRequest", false
  end
  return "Internal", false
end

local function retry_after(headers)
  local value = tonumber((headers or {})["retry-after"])
  if value and value >= 0 then
    return value
  end
  return nil
end

local function transport_error(message, code)
  if code == "connect" then
    return cloud_error("Unavailable", "EC2: connect: " .. message, { retryable = true, sent = false })
  elseif code == "timeout" then
    -- The request may have reached EC2: the reboot may be queued.
    return cloud_error("Timeout", "EC2: timeout: " .. message, { sent = true })
  elseif code == "tls" then
    return cloud_error("Unavailable", "EC2: tls: " .. message, { sent = false })
  end
  return cloud_error("Unavailable", "EC2: " .. tostring(code or "io") .. ": " .. message, { sent = true })
end

local function handle_response(ctx, resp, target, dry_run, cred_key, secrets)
  local body = type(resp.body) == "string" and resp.body or ""
  local headers = resp.headers or {}
  local status = tonumber(resp.status) or 0
  if status == 200 then
    local request_id = nonempty(ctx.xml.text(body, "requestId")) or headers["x-amzn-requestid"]
    if string.find(body, "RebootInstancesResponse", 1, true) and ctx.xml.text(body, "return") == "true" then
      return { request_id = request_id, dry_run = dry_run and true or false }
    end
    return nil, cloud_error("Internal", "EC2 answered 200 without a RebootInstancesResponse returning true",
      { request_id = request_id, sent = true })
  end
  local code = nonempty(ctx.xml.text(body, "Code"))
  local request_id = nonempty(ctx.xml.text(body, "RequestID")) or nonempty(ctx.xml.text(body, "RequestId"))
    or nonempty(ctx.xml.text(body, "requestId")) or headers["x-amzn-requestid"]
  if code == "DryRunOperation" then
    if dry_run then
      return { request_id = request_id, dry_run = true }
    end
    return nil, cloud_error("Internal", "EC2 answered DryRunOperation to a real reboot",
      { cloud_code = code, request_id = request_id })
  end
  local reason, retryable = classify(code, status)
  local message = scrub(nonempty(ctx.xml.text(body, "Message")), secrets)
    or ("EC2 answered HTTP " .. status .. (code and (" " .. code) or ""))
  local err = cloud_error(reason, message, {
    cloud_code = code, request_id = request_id, retryable = retryable or nil,
    retry_after = retry_after(headers),
  })
  if reason == "Unauthorized" and cred_key then
    -- Drop temporary credentials so the next call fetches fresh ones.
    cache_drop(ctx, cred_key)
    if REFRESHABLE_CODES[code] then
      err.retryable = true
    end
  end
  ctx.log.debug("aws: RebootInstances failed", {
    instance_id = target.instance_id, status = status, cloud_code = code, request_id = request_id,
  })
  return nil, err
end

function aws.restart(target, opts, ctx)
  opts = opts or {}
  if type(target) ~= "table" or not valid_instance_id(target.instance_id) then
    return nil, cloud_error("InvalidRequest", "target has no valid EC2 instance id", { sent = false })
  end
  local region = target.region
  if region ~= nil and not valid_region(region) then
    return nil, cloud_error("InvalidRequest", "not an AWS region: " .. tostring(region), { sent = false })
  end
  if not region then
    local env_err
    region, env_err = env_region(ctx)
    if not region then
      return nil, cloud_error("InvalidRequest", env_err or ("no region for " .. target.instance_id
        .. ": the providerID has no zone, the node has no " .. REGION_LABEL
        .. " label, and AWS_REGION/AWS_DEFAULT_REGION are not set"), { sent = false })
    end
  end
  local url, url_err = ec2_endpoint(ctx, region)
  if not url then
    return nil, cloud_error("InvalidRequest", url_err, { sent = false })
  end
  local creds, cred_key = get_credentials(ctx, region)
  if not creds then
    return nil, cred_key
  end
  -- The key id and token travel in headers, where the HTTP client raises on a
  -- line break (a Secret written with a trailing newline, a broken answer).
  for _, value in ipairs({ creds.access_key, creds.session_token or "" }) do
    if value:find("%c") then
      if cred_key then
        cache_drop(ctx, cred_key)
      end
      return nil, cloud_error("Unauthorized", "the AWS access key id or session token holds a control "
        .. "character (a trailing newline?)", { sent = false })
    end
  end
  local secrets = { creds.secret_key, creds.session_token }
  local dry_run = opts.dry_run and true or false
  local body = "Action=RebootInstances&InstanceId.1=" .. target.instance_id .. "&Version=" .. EC2_VERSION
    .. (dry_run and "&DryRun=true" or "")
  local headers = { ["Content-Type"] = FORM_TYPE }
  local ok, added = pcall(ctx.sigv4.sign, {
    method = "POST", url = url, headers = headers, body = body, service = "ec2", region = region,
    access_key = creds.access_key, secret_key = creds.secret_key, session_token = creds.session_token,
    time = math.floor(ctx.time.now()),
  }, ctx.crypto)
  if not ok or type(added) ~= "table" then
    return nil, cloud_error("Internal", "SigV4 signing failed: " .. tostring(scrub(tostring(added), secrets)),
      { sent = false })
  end
  for name, value in pairs(added) do
    headers[name] = value
  end
  ctx.log.debug("aws: RebootInstances", {
    instance_id = target.instance_id, region = region, url = url, dry_run = dry_run,
  })
  local resp, http_err, http_code = ctx.http({
    method = "POST", url = url, headers = headers, body = body, timeout = HTTP_TIMEOUT,
  })
  if not resp then
    return nil, transport_error(scrub(tostring(http_err), secrets), http_code)
  end
  return handle_response(ctx, resp, target, dry_run, cred_key, secrets)
end

function aws.check(ctx)
  if credential_source(ctx) then
    return true
  end
  return false, NO_CREDENTIALS
end

return aws
