-- AWS Signature Version 4, header form (docs/providers.md "Signers";
-- ../shared/docs/cloud-apis.md section 1). Pure: hashing comes from the
-- `crypto` argument (host.crypto), the time from the request, nothing else.
-- Path rules are those of every service but S3 (normalised, each segment
-- encoded again). Misuse (a missing field) raises; there is no expected failure.
local sigv4 = {}

local ALGORITHM = "AWS4-HMAC-SHA256"

-- Never signed: the signature itself, and headers that clients, proxies or
-- the HTTP library may add, drop or rewrite on the way (botocore and
-- aws-c-auth leave these out too).
local UNSIGNED = {
  authorization = true, connection = true, expect = true, ["transfer-encoding"] = true,
  ["user-agent"] = true, ["x-amzn-trace-id"] = true,
}

local function fail(message)
  error("infraops.signers.sigv4: " .. message, 3)
end

--- RFC 3986 encoding: unreserved `A-Za-z0-9-._~` kept, the rest `%XX` upper-case.
function sigv4.uri_encode(s)
  return (s:gsub("[^%w%-%._~]", function(c)
    return string.format("%%%02X", c:byte())
  end))
end

local function percent_decode(s)
  return (s:gsub("%%(%x%x)", function(hex)
    return string.char(tonumber(hex, 16))
  end))
end

--- Splits an absolute URL into host (with any port), path and raw query.
-- Returns nil when the URL has no scheme://host.
function sigv4.parse_url(url)
  local scheme, rest = url:match("^(%a[%w+.-]*)://(.*)$")
  if not scheme then
    return nil
  end
  rest = rest:gsub("#.*$", "")
  local authority, target = rest:match("^([^/?]*)(.*)$")
  authority = authority:gsub("^.*@", "") -- userinfo is never sent as Host
  if authority == "" then
    return nil
  end
  local path, query = target:match("^([^?]*)%??(.*)$")
  scheme = scheme:lower()
  local port = authority:match(":(%d+)$")
  if (scheme == "https" and port == "443") or (scheme == "http" and port == "80") then
    authority = authority:sub(1, -#port - 2)
  end
  return { scheme = scheme, host = authority, path = path, query = query }
end

--- Canonical URI: dot segments removed, empty segments dropped, the trailing
-- slash kept, each segment URI-encoded as given (so "%20" becomes "%2520",
-- AWS's "double encoding" for services other than S3).
function sigv4.canonical_uri(path)
  if path == nil or path == "" then
    return "/"
  end
  local segments = {}
  for segment in path:gmatch("[^/]+") do
    if segment == ".." then
      segments[#segments] = nil
    elseif segment ~= "." then
      segments[#segments + 1] = sigv4.uri_encode(segment)
    end
  end
  local trailing = #segments > 0 and (path:sub(-1) == "/" or path:match("/%.%.?$")) and "/" or ""
  return "/" .. table.concat(segments, "/") .. trailing
end

--- Canonical query string from a raw query ("b=2&a=1"): each key and value
-- percent-decoded then RFC 3986-encoded, sorted by key then value, `k=v`
-- joined with `&` (`k=` for a key without a value).
function sigv4.canonical_query(query)
  if query == nil or query == "" then
    return ""
  end
  local pairs_list = {}
  for part in query:gmatch("[^&]+") do
    local key, value = part:match("^([^=]*)=?(.*)$")
    pairs_list[#pairs_list + 1] = {
      sigv4.uri_encode(percent_decode(key)), sigv4.uri_encode(percent_decode(value)),
    }
  end
  table.sort(pairs_list, function(a, b)
    if a[1] ~= b[1] then
      return a[1] < b[1]
    end
    return a[2] < b[2]
  end)
  for i, kv in ipairs(pairs_list) do
    pairs_list[i] = kv[1] .. "=" .. kv[2]
  end
  return table.concat(pairs_list, "&")
end

local function canonical_value(value)
  return (value:gsub("^%s+", ""):gsub("%s+$", ""):gsub("%s+", " "))
end

-- Collects headers (name -> string, or name -> list of strings for a
-- repeated header) into lower-case name -> list of trimmed values.
local function collect_headers(headers)
  local names, values = {}, {}
  local function add(lname, value)
    if type(value) ~= "string" then
      fail("header '" .. lname .. "' value must be a string or a list of strings")
    end
    if not values[lname] then
      values[lname] = {}
      names[#names + 1] = lname
    end
    local list = values[lname]
    list[#list + 1] = canonical_value(value)
  end
  -- Sorted input names, so two spellings of one header ("X-A", "x-a") join
  -- in a stable order.
  local input = {}
  for name in pairs(headers) do
    if type(name) ~= "string" then
      fail("header names must be strings")
    end
    input[#input + 1] = name
  end
  table.sort(input)
  for _, name in ipairs(input) do
    local lname, value = name:lower(), headers[name]
    if not UNSIGNED[lname] then
      if type(value) == "table" then
        for _, v in ipairs(value) do
          add(lname, v)
        end
      else
        add(lname, value)
      end
    end
  end
  return names, values
end

--- Canonical headers block ("name:value\n" each, sorted) and the signed
-- headers list ("a;b;c") from lower-case name -> list of values.
function sigv4.canonical_headers(names, values)
  local sorted = {}
  for i, name in ipairs(names) do
    sorted[i] = name
  end
  table.sort(sorted)
  local lines = {}
  for i, name in ipairs(sorted) do
    lines[i] = name .. ":" .. table.concat(values[name], ",") .. "\n"
  end
  return table.concat(lines), table.concat(sorted, ";")
end

--- The canonical request string.
function sigv4.canonical_request(method, uri, query, headers_block, signed_headers, payload_hash)
  return table.concat({ method, uri, query, headers_block, signed_headers, payload_hash }, "\n")
end

--- The string to sign.
function sigv4.string_to_sign(amz_date, scope, canonical_request, crypto)
  return table.concat({ ALGORITHM, amz_date, scope, crypto.hex_encode(crypto.sha256(canonical_request)) }, "\n")
end

--- The signing key: HMAC chain "AWS4"..secret -> date -> region -> service -> "aws4_request".
function sigv4.signing_key(secret_key, date, region, service, crypto)
  local k = crypto.hmac_sha256("AWS4" .. secret_key, date)
  k = crypto.hmac_sha256(k, region)
  k = crypto.hmac_sha256(k, service)
  return crypto.hmac_sha256(k, "aws4_request")
end

-- Unix seconds -> "YYYYMMDDTHHMMSSZ" (UTC) by arithmetic: no os.date, no
-- locale, no time zone (days-to-civil from H. Hinnant's date algorithms).
local function format_amz_date(t)
  t = math.floor(t)
  local days, secs = t // 86400, t % 86400
  local z = days + 719468
  local era = z // 146097
  local doe = z - era * 146097
  local yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
  local doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
  local mp = (5 * doy + 2) // 153
  local day = doy - (153 * mp + 2) // 5 + 1
  local month = mp < 10 and mp + 3 or mp - 9
  local year = yoe + era * 400 + (month <= 2 and 1 or 0)
  return string.format("%04d%02d%02dT%02d%02d%02dZ", year, month, day, secs // 3600, secs % 3600 // 60, secs % 60)
end

local function amz_date_of(t)
  if type(t) == "number" and t == t and t > -62135596800 and t < 253402300800 then
    return format_amz_date(t)
  elseif type(t) == "string" and t:match("^%d%d%d%d%d%d%d%dT%d%d%d%d%d%dZ$") then
    return t
  end
  fail("'time' must be Unix seconds or a \"YYYYMMDDTHHMMSSZ\" string")
end

local function check_string(req, field)
  local v = req[field]
  if type(v) ~= "string" or v == "" then
    fail("'" .. field .. "' must be a non-empty string")
  end
  return v
end

--- Signs a request (header form). req = { method, url, headers, body, service,
-- region, access_key, secret_key, session_token, time }, plus options:
-- sign_body = true adds and signs X-Amz-Content-Sha256 (S3 style);
-- sign_session_token = false sends X-Amz-Security-Token unsigned (default: signed,
-- as EC2 and STS accept).
-- Returns the headers to add (Authorization, X-Amz-Date, and
-- X-Amz-Security-Token / X-Amz-Content-Sha256 when asked for) and a debugging
-- table { canonical_request, string_to_sign, signed_headers, scope, signature }.
-- Any Host header given is signed as is; without one, the URL's host (with a
-- port only when not the scheme's default) is signed, which is what the HTTP
-- client sends.
function sigv4.sign(req, crypto)
  if type(req) ~= "table" then
    fail("request must be a table")
  end
  if type(crypto) ~= "table" then
    fail("'crypto' (host.crypto) is required")
  end
  local method = check_string(req, "method"):upper()
  local url = sigv4.parse_url(check_string(req, "url"))
  if not url then
    fail("'url' must be an absolute URL")
  end
  local service, region = check_string(req, "service"), check_string(req, "region")
  local access_key, secret_key = check_string(req, "access_key"), check_string(req, "secret_key")
  local token = req.session_token
  if token ~= nil and (type(token) ~= "string" or token == "") then
    fail("'session_token' must be a non-empty string when given")
  end
  local body = req.body or ""
  if type(body) ~= "string" then
    fail("'body' must be a string")
  end
  if req.headers ~= nil and type(req.headers) ~= "table" then
    fail("'headers' must be a table")
  end

  local amz_date = amz_date_of(req.time)
  local date = amz_date:sub(1, 8)
  local payload_hash = crypto.hex_encode(crypto.sha256(body))
  local add = { ["X-Amz-Date"] = amz_date }

  local names, values = collect_headers(req.headers or {})
  local function set(lname, value)
    if not values[lname] then
      names[#names + 1] = lname
    end
    values[lname] = { canonical_value(value) }
  end
  if not values.host then
    set("host", url.host)
  end
  set("x-amz-date", amz_date)
  if req.sign_body then
    add["X-Amz-Content-Sha256"] = payload_hash
    set("x-amz-content-sha256", payload_hash)
  end
  if token then
    add["X-Amz-Security-Token"] = token
    if req.sign_session_token ~= false then
      set("x-amz-security-token", token)
    elseif values["x-amz-security-token"] then
      fail("'sign_session_token' is false but headers hold X-Amz-Security-Token")
    end
  end

  local headers_block, signed_headers = sigv4.canonical_headers(names, values)
  local canonical_request = sigv4.canonical_request(method, sigv4.canonical_uri(url.path),
    sigv4.canonical_query(url.query), headers_block, signed_headers, payload_hash)
  local scope = table.concat({ date, region, service, "aws4_request" }, "/")
  local string_to_sign = sigv4.string_to_sign(amz_date, scope, canonical_request, crypto)
  local key = sigv4.signing_key(secret_key, date, region, service, crypto)
  local signature = crypto.hex_encode(crypto.hmac_sha256(key, string_to_sign))

  add.Authorization = ALGORITHM .. " Credential=" .. access_key .. "/" .. scope .. ", SignedHeaders="
    .. signed_headers .. ", Signature=" .. signature
  return add, {
    canonical_request = canonical_request,
    string_to_sign = string_to_sign,
    signed_headers = signed_headers,
    scope = scope,
    signature = signature,
  }
end

return sigv4
