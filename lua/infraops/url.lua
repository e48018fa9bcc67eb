-- Request path and query handling. The host hands both over still
-- percent-encoded; decoding happens here, once, per segment, so an encoded
-- "/" ("%2F") can never become a path separator.
local url = {}

local function hex_byte(hex)
  return string.char(tonumber(hex, 16))
end

--- Percent-decodes s. Returns nil, err, "invalid_escape" on a malformed escape.
-- @tparam string s
-- @tparam[opt] boolean plus_is_space true for query strings (form encoding)
function url.decode(s, plus_is_space)
  if s:find("%%[^%x]") or s:find("%%%x[^%x]") or s:find("%%%x?$") then
    return nil, "malformed percent-encoding", "invalid_escape"
  end
  if plus_is_space then
    s = s:gsub("+", " ")
  end
  return (s:gsub("%%(%x%x)", hex_byte))
end

--- Splits a raw path into decoded segments. "/a/b" -> {"a", "b"}.
-- Returns nil, err, code when the path is not canonical: it must start with
-- "/", have no empty, "." or ".." segment, and no segment that decodes to
-- something containing "/" or NUL.
function url.segments(raw_path)
  if raw_path:sub(1, 1) ~= "/" then
    return nil, "path must start with /", "invalid_path"
  end
  local segments = {}
  if raw_path == "/" then
    return segments
  end
  for raw in (raw_path:sub(2) .. "/"):gmatch("([^/]*)/") do
    local segment, err, code = url.decode(raw)
    if not segment then
      return nil, err, code
    end
    if segment == "" or segment == "." or segment == ".." or segment:find("[/%z]") then
      return nil, "path is not canonical", "invalid_path"
    end
    segments[#segments + 1] = segment
  end
  return segments
end

--- Decodes the host's raw query pairs into name -> {values...}.
-- Returns nil, err, code on a malformed escape.
function url.query(raw_pairs)
  local out = {}
  for _, pair in ipairs(raw_pairs) do
    local name, err, code = url.decode(pair[1], true)
    if not name then
      return nil, err, code
    end
    local value
    value, err, code = url.decode(pair[2], true)
    if not value then
      return nil, err, code
    end
    local values = out[name]
    if not values then
      values = {}
      out[name] = values
    end
    values[#values + 1] = value
  end
  return out
end

return url
