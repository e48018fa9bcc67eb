-- infraops.url (lua/infraops/url.lua): percent-decoding, canonical path
-- segments and query pairs. Errors are checked by code (third return).
local url = require("infraops.url")

-- Packs every return value so nil holes and the count can be asserted.
local function call(fn, ...)
  return table.pack(fn(...))
end

describe("infraops.url", function()
  describe("decode()", function()
    it("decodes valid escapes in either case of hex digit", function()
      assert.are.equal("A/b c", url.decode("%41%2fb%20c"))
      assert.are.equal("//", url.decode("%2F%2f"))
      assert.are.equal("\0", url.decode("%00"))
      assert.are.equal("\xff", url.decode("%FF"))
    end)

    it("returns exactly one value on success", function()
      local r = call(url.decode, "plain")
      assert.are.equal(1, r.n)
      assert.are.equal("plain", r[1])
    end)

    it("leaves text without escapes unchanged", function()
      assert.are.equal("nodes", url.decode("nodes"))
      assert.are.equal("", url.decode(""))
    end)

    it("does not decode an escape twice", function()
      assert.are.equal("%41", url.decode("%2541"))
    end)

    it("keeps + literal unless plus_is_space", function()
      assert.are.equal("a+b", url.decode("a+b"))
      assert.are.equal("a+b", url.decode("a+b", false))
      assert.are.equal("a b", url.decode("a+b", true))
      assert.are.equal("a  b", url.decode("a++b", true))
    end)

    it("keeps an encoded + as + even with plus_is_space", function()
      assert.are.equal("a+b", url.decode("a%2Bb", true))
    end)

    for _, bad in ipairs({ "%G1", "%1G", "%4", "abc%", "%", "%%41", "a%4x", "%zz", "x%2" }) do
      it("rejects the malformed escape " .. string.format("%q", bad), function()
        local r = call(url.decode, bad)
        assert.is_nil(r[1])
        assert.is_string(r[2])
        assert.are.equal("invalid_escape", r[3])
      end)
    end

    it("rejects a malformed escape also with plus_is_space", function()
      local r = call(url.decode, "a+%G1", true)
      assert.is_nil(r[1])
      assert.are.equal("invalid_escape", r[3])
    end)
  end)

  describe("segments()", function()
    it("returns an empty list for /", function()
      local segments = url.segments("/")
      assert.are.same({}, segments)
    end)

    it("splits the group-version path", function()
      assert.are.same({ "apis", "infraops.michael.io", "v1" }, url.segments("/apis/infraops.michael.io/v1"))
    end)

    it("decodes each segment once", function()
      assert.are.same({ "nodes", "node 1", "%41" }, url.segments("/nodes/node%201/%2541"))
    end)

    it("keeps + literal in a path", function()
      assert.are.same({ "a+b" }, url.segments("/a+b"))
    end)

    local rejected = {
      { "/apis/a%2Fb", "an encoded / inside a segment" },
      { "/apis/a%2fb", "an encoded lower-case / inside a segment" },
      { "//", "an empty segment (//)" },
      { "/apis//v1", "an empty segment in the middle" },
      { "/apis/", "a trailing /" },
      { "/apis/infraops.michael.io/v1/", "a trailing / after the version" },
      { "/.", "a . segment" },
      { "/apis/./v1", "a . segment in the middle" },
      { "/apis/..", "a .. segment" },
      { "/apis/../api", "a .. segment in the middle" },
      { "/apis/%2e%2e", "an encoded .. segment" },
      { "/apis/%2E", "an encoded . segment" },
      { "/apis/a%00b", "an encoded NUL" },
      { "apis/v1", "a missing leading /" },
      { "", "an empty path" },
    }
    for _, case in ipairs(rejected) do
      it("rejects " .. case[2] .. " as invalid_path", function()
        local r = call(url.segments, case[1])
        assert.is_nil(r[1])
        assert.is_string(r[2])
        assert.are.equal("invalid_path", r[3])
      end)
    end

    it("keeps a segment that only contains dots beyond ..", function()
      assert.are.same({ "..." }, url.segments("/..."))
      assert.are.same({ ".hidden" }, url.segments("/.hidden"))
    end)

    it("passes a malformed escape through as invalid_escape", function()
      local r = call(url.segments, "/apis/%G1")
      assert.is_nil(r[1])
      assert.are.equal("invalid_escape", r[3])
    end)
  end)

  describe("query()", function()
    it("returns an empty table for no pairs", function()
      assert.are.same({}, url.query({}))
    end)

    it("keeps repeated keys in order", function()
      local q = url.query({ { "exclude", "a" }, { "verbose", "" }, { "exclude", "b" }, { "exclude", "c" } })
      assert.are.same({ exclude = { "a", "b", "c" }, verbose = { "" } }, q)
    end)

    it("turns + into a space in names and values", function()
      local q = url.query({ { "label+selector", "a+b" } })
      assert.are.same({ ["label selector"] = { "a b" } }, q)
    end)

    it("decodes escapes in names and values", function()
      local q = url.query({ { "field%53elector", "metadata.name%3Dn1%26x" } })
      assert.are.same({ fieldSelector = { "metadata.name=n1&x" } }, q)
    end)

    it("keeps empty values", function()
      local q = url.query({ { "verbose", "" }, { "dryRun", "" } })
      assert.are.same({ verbose = { "" }, dryRun = { "" } }, q)
    end)

    it("rejects a malformed escape in a value", function()
      local r = call(url.query, { { "ok", "1" }, { "bad", "%G1" } })
      assert.is_nil(r[1])
      assert.is_string(r[2])
      assert.are.equal("invalid_escape", r[3])
    end)

    it("rejects a malformed escape in a name", function()
      local r = call(url.query, { { "bad%", "1" } })
      assert.is_nil(r[1])
      assert.are.equal("invalid_escape", r[3])
    end)
  end)
end)
