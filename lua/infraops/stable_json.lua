-- JSON with object keys in sorted order, so a document encodes to the same
-- bytes in every Lua state (cjson follows table order, which differs between
-- states). For documents clients compare or hash, such as discovery: the same
-- answer from every request and every replica. Scalars and strings are
-- encoded by cjson; a table with [1] set is an array, any other an object
-- (an empty table is {} as with cjson).
local cjson = require("cjson")

local stable_json = {}

local function encode(value, out)
  if type(value) ~= "table" then
    out[#out + 1] = cjson.encode(value)
    return
  end
  if value[1] ~= nil then
    out[#out + 1] = "["
    for i = 1, #value do
      if i > 1 then
        out[#out + 1] = ","
      end
      encode(value[i], out)
    end
    out[#out + 1] = "]"
    return
  end
  local keys = {}
  for k in pairs(value) do
    if type(k) ~= "string" then
      error("infraops.stable_json.encode: object keys must be strings, got " .. type(k), 0)
    end
    keys[#keys + 1] = k
  end
  table.sort(keys)
  out[#out + 1] = "{"
  for i, k in ipairs(keys) do
    out[#out + 1] = (i > 1 and "," or "") .. cjson.encode(k) .. ":"
    encode(value[k], out)
  end
  out[#out + 1] = "}"
end

--- The JSON text of value (tables nested as above).
function stable_json.encode(value)
  local out = {}
  encode(value, out)
  return table.concat(out)
end

return stable_json
