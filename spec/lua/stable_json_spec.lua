local cjson = require("cjson")
local stable_json = require("infraops.stable_json")

describe("infraops.stable_json", function()
  it("writes object keys in sorted order at every depth", function()
    assert.equal('{"a":1,"b":{"x":true,"y":"z"},"c":[3,{"m":null,"n":2}]}',
      stable_json.encode({ c = { 3, { n = 2, m = cjson.null } }, b = { y = "z", x = true }, a = 1 }))
  end)

  it("gives the same bytes whatever order the keys were inserted in", function()
    local names = {}
    for i = 1, 50 do
      names[i] = "key" .. i
    end
    local forward, backward = {}, {}
    for i = 1, 50 do
      forward[names[i]] = i
      backward[names[51 - i]] = 51 - i
    end
    assert.equal(stable_json.encode(forward), stable_json.encode(backward))
  end)

  it("round-trips through cjson, strings escaped as cjson does", function()
    local doc = { kind = "APIResourceList", list = { "a\"b", "line\nbreak", "\1" }, empty = {}, n = 1.5 }
    local text = stable_json.encode(doc)
    assert.same(cjson.decode(cjson.encode(doc)), cjson.decode(text))
    assert.matches('"empty":{}', text, 1, true)
  end)

  it("refuses keys that are not strings in an object", function()
    assert.has_error(function()
      stable_json.encode({ name = "x", [true] = 1 })
    end, "infraops.stable_json.encode: object keys must be strings, got boolean")
  end)
end)
