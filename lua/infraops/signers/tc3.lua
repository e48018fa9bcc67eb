-- Tencent Cloud API 3.0 signature TC3-HMAC-SHA256 (docs/providers.md
-- "Signers"; ../shared/docs/cloud-apis.md section 2). Pure: hashing comes
-- from the `crypto` argument (host.crypto), the time from the request.
-- Misuse (a missing field) raises; there is no expected failure.
local tc3 = {}

local ALGORITHM = "TC3-HMAC-SHA256"

local function fail(message)
  error("infraops.signers.tc3: " .. message, 3)
end

--- UTC calendar date "YYYY-MM-DD" of Unix seconds, by arithmetic (no
-- os.date, locale or time zone; days-to-civil from H. Hinnant).
function tc3.utc_date(t)
  local z = math.floor(t) // 86400 + 719468
  local era = z // 146097
  local doe = z - era * 146097
  local yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
  local doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
  local mp = (5 * doy + 2) // 153
  local day = doy - (153 * mp + 2) // 5 + 1
  local month = mp < 10 and mp + 3 or mp - 9
  return string.format("%04d-%02d-%02d", yoe + era * 400 + (month <= 2 and 1 or 0), month, day)
end

--- The canonical request string.
function tc3.canonical_request(method, path, query, headers_block, signed_headers, payload_hash)
  return table.concat({ method, path, query, headers_block, signed_headers, payload_hash }, "\n")
end

--- The string to sign.
function tc3.string_to_sign(timestamp, scope, canonical_request, crypto)
  return table.concat({ ALGORITHM, timestamp, scope, crypto.hex_encode(crypto.sha256(canonical_request)) }, "\n")
end

--- The signing key: HMAC chain "TC3"..secret_key -> date -> service -> "tc3_request".
function tc3.signing_key(secret_key, date, service, crypto)
  local k = crypto.hmac_sha256("TC3" .. secret_key, date)
  k = crypto.hmac_sha256(k, service)
  return crypto.hmac_sha256(k, "tc3_request")
end

local function check_string(req, field, allow_empty)
  local v = req[field]
  if type(v) ~= "string" or (v == "" and not allow_empty) then
    fail("'" .. field .. "' must be a " .. (allow_empty and "" or "non-empty ") .. "string")
  end
  return v
end

-- The names to sign: content-type and host always, plus req.signed_headers
-- (a list of names or "a;b"), lower-cased, sorted, without duplicates.
local function signed_names(extra)
  local seen = { ["content-type"] = true, host = true }
  local names = { "content-type", "host" }
  if type(extra) == "string" then
    local list = {}
    for name in extra:gmatch("[^;]+") do
      list[#list + 1] = name
    end
    extra = list
  elseif extra ~= nil and type(extra) ~= "table" then
    fail("'signed_headers' must be a list of header names or a \"a;b\" string")
  end
  for _, name in ipairs(extra or {}) do
    if type(name) ~= "string" then
      fail("'signed_headers' must hold strings")
    end
    name = name:lower():gsub("^%s+", ""):gsub("%s+$", "")
    if name ~= "" and not seen[name] then
      seen[name] = true
      names[#names + 1] = name
    end
  end
  table.sort(names)
  return names
end

--- Signs a request. req = { method, host, path, query, headers, body, service,
-- secret_id, secret_key, session_token, time }, optionally signed_headers
-- naming headers to sign besides content-type and host (e.g. { "X-TC-Action" },
-- as the newer SDKs do). Content-Type must be in `headers`; Host is taken from
-- `headers` or else `host`. Canonical header values are lower-cased and
-- trimmed, as Tencent specifies.
-- Returns the headers to add (Authorization, X-TC-Timestamp, and X-TC-Token
-- when a session token is given; the token is not signed) and a debugging
-- table { canonical_request, string_to_sign, signed_headers, credential_scope,
-- signature, hashed_request_payload }.
function tc3.sign(req, crypto)
  if type(req) ~= "table" then
    fail("request must be a table")
  end
  if type(crypto) ~= "table" then
    fail("'crypto' (host.crypto) is required")
  end
  local method = check_string(req, "method"):upper()
  local service = check_string(req, "service")
  local secret_id, secret_key = check_string(req, "secret_id"), check_string(req, "secret_key")
  local path = req.path == nil and "/" or check_string(req, "path")
  local query = req.query == nil and "" or check_string(req, "query", true)
  local body = req.body == nil and "" or check_string(req, "body", true)
  local token = req.session_token
  if token ~= nil and (type(token) ~= "string" or token == "") then
    fail("'session_token' must be a non-empty string when given")
  end
  local t = req.time
  if type(t) ~= "number" or t ~= t or t < 0 or t >= 253402300800 then
    fail("'time' must be Unix seconds")
  end
  local headers = req.headers or {}
  if type(headers) ~= "table" then
    fail("'headers' must be a table")
  end

  local by_name = {}
  for name, value in pairs(headers) do
    if type(name) ~= "string" or type(value) ~= "string" then
      fail("headers must map string names to string values")
    end
    by_name[name:lower()] = value
  end
  if by_name.host == nil and type(req.host) == "string" and req.host ~= "" then
    by_name.host = req.host
  end

  local names = signed_names(req.signed_headers)
  local lines = {}
  for i, name in ipairs(names) do
    local value = by_name[name]
    if value == nil then
      fail("header '" .. name .. "' is signed but not given")
    end
    lines[i] = name .. ":" .. value:lower():gsub("^%s+", ""):gsub("%s+$", "") .. "\n"
  end
  local signed_headers = table.concat(names, ";")

  local timestamp = string.format("%d", math.floor(t))
  local date = tc3.utc_date(t)
  local scope = date .. "/" .. service .. "/tc3_request"
  local payload_hash = crypto.hex_encode(crypto.sha256(body))
  local canonical_request = tc3.canonical_request(method, path, query, table.concat(lines), signed_headers,
    payload_hash)
  local string_to_sign = tc3.string_to_sign(timestamp, scope, canonical_request, crypto)
  local signature = crypto.hex_encode(crypto.hmac_sha256(tc3.signing_key(secret_key, date, service, crypto),
    string_to_sign))

  local add = {
    Authorization = ALGORITHM .. " Credential=" .. secret_id .. "/" .. scope .. ", SignedHeaders=" .. signed_headers
      .. ", Signature=" .. signature,
    ["X-TC-Timestamp"] = timestamp,
    ["X-TC-Token"] = token,
  }
  return add, {
    canonical_request = canonical_request,
    string_to_sign = string_to_sign,
    signed_headers = signed_headers,
    credential_scope = scope,
    signature = signature,
    hashed_request_payload = payload_hash,
  }
end

return tc3
