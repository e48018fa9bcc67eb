-- host.shared (host/bindings/shared.c): every function, TTL expiry, add and incr
-- semantics, bounds, LRU eviction. Threads are exercised in host/tests/shared_test.c.
local shared = require("host.shared")
local time = require("host.time")

local MAX_ENTRIES = 10000
local MIB = 1024 * 1024

local function raises(fn, ...)
  local ok, err = pcall(fn, ...)
  return not ok, tostring(err)
end

local function assert_raises(pattern, fn, ...)
  local raised, err = raises(fn, ...)
  assert.is_true(raised, "did not raise")
  assert.truthy(err:find(pattern, 1, true), err)
end

describe("host.shared", function()
  before_each(function()
    shared.flush()
  end)

  after_each(function()
    shared.flush()
  end)

  describe("set() / get()", function()
    it("stores strings, bytes and all", function()
      assert.is_true(shared.set("k", "v"))
      local value, ttl = shared.get("k")
      assert.are.equal("v", value)
      assert.are.equal(math.huge, ttl)
      assert.is_true(shared.set("bin\0key", "a\0b\255"))
      assert.are.equal("a\0b\255", shared.get("bin\0key"))
      assert.is_nil(shared.get("bin"))
      assert.is_true(shared.set("", ""))
      assert.are.equal("", shared.get(""))
    end)

    it("replaces the value and the ttl", function()
      shared.set("k", "one", 60)
      shared.set("k", "two")
      local value, ttl = shared.get("k")
      assert.are.equal("two", value)
      assert.are.equal(math.huge, ttl)
      shared.set("k", "three", 30)
      value, ttl = shared.get("k")
      assert.are.equal("three", value)
      assert.is_true(ttl > 0 and ttl <= 30, tostring(ttl))
      assert.are.equal(1, shared.count())
    end)

    it("returns a single nil for an absent key", function()
      assert.are.equal(1, select("#", shared.get("absent")))
      assert.is_nil(shared.get("absent"))
    end)

    it("expires entries after their ttl", function()
      shared.set("short", "v", 0.05)
      shared.set("long", "v", 60)
      shared.set("forever", "v", math.huge) -- math.huge: no expiry, like nil
      local value, ttl = shared.get("short")
      assert.are.equal("v", value)
      assert.is_true(ttl > 0 and ttl <= 0.05, tostring(ttl))
      assert.are.equal(3, shared.count())
      time.sleep(0.1)
      assert.is_nil(shared.get("short"))
      assert.are.equal(2, shared.count())
      assert.are.equal(math.huge, select(2, shared.get("forever")))
      assert.is_false(shared.delete("short"))
    end)
  end)

  describe("delete()", function()
    it("returns whether a live entry existed", function()
      shared.set("k", "v")
      assert.is_true(shared.delete("k"))
      assert.is_false(shared.delete("k"))
      assert.is_nil(shared.get("k"))
      assert.is_false(shared.delete("never"))
      assert.are.equal(0, shared.count())
    end)
  end)

  describe("add()", function()
    it("stores only if no live entry has the key", function()
      assert.is_true(shared.add("k", "first"))
      assert.is_false(shared.add("k", "second"))
      assert.are.equal("first", shared.get("k"))
      shared.delete("k")
      assert.is_true(shared.add("k", "third"))
      assert.are.equal("third", shared.get("k"))
    end)

    it("stores over an expired entry, with its own ttl", function()
      assert.is_true(shared.add("refresh-lock", "a", 0.05))
      assert.is_false(shared.add("refresh-lock", "b", 0.05))
      time.sleep(0.1)
      assert.is_true(shared.add("refresh-lock", "c", 60))
      local value, ttl = shared.get("refresh-lock")
      assert.are.equal("c", value)
      assert.is_true(ttl > 0.05 and ttl <= 60, tostring(ttl))
    end)
  end)

  describe("incr()", function()
    it("starts an absent key at 0 and returns integers", function()
      assert.are.equal(5, shared.incr("n", 5))
      assert.are.equal(3, shared.incr("n", -2))
      assert.are.equal(3, shared.incr("n", 0))
      assert.are.equal(5, shared.incr("n", 2.0))
      assert.are.equal("integer", math.type(shared.incr("n", 1)))
      assert.are.equal("6", shared.get("n"))
    end)

    it("counts on a value set as a decimal string", function()
      shared.set("n", "-41")
      assert.are.equal(-40, shared.incr("n", 1))
      shared.set("big", tostring(math.maxinteger - 1))
      assert.are.equal(math.maxinteger, shared.incr("big", 1))
      shared.set("small", tostring(math.mininteger))
      assert.are.equal(math.mininteger + 1, shared.incr("small", 1))
    end)

    it("applies the ttl when it creates the key and keeps the expiry after", function()
      assert.are.equal(1, shared.incr("window", 1, 0.05))
      assert.are.equal(2, shared.incr("window", 1, 60))
      assert.is_true(select(2, shared.get("window")) <= 0.05)
      time.sleep(0.1)
      assert.is_nil(shared.get("window"))
      assert.are.equal(1, shared.incr("window", 1))
      assert.are.equal(math.huge, select(2, shared.get("window")))
    end)

    it("raises for a stored value that is not an integer, or on overflow", function()
      for _, stored in ipairs({ "abc", "1.5", "", " 1", "1 ", "+1", "-", "99999999999999999999" }) do
        shared.set("bad", stored)
        assert_raises("host.shared.incr: the stored value is not an integer", shared.incr, "bad", 1)
        assert.are.equal(stored, shared.get("bad"))
      end
      shared.set("max", tostring(math.maxinteger))
      assert_raises("host.shared.incr: integer overflow", shared.incr, "max", 1)
      shared.set("min", tostring(math.mininteger))
      assert_raises("host.shared.incr: integer overflow", shared.incr, "min", -1)
      assert.are.equal(tostring(math.mininteger), shared.get("min"))
    end)

    it("raises for a delta that is not an integer", function()
      for _, bad in ipairs({ 1.5, "1", {}, true, 0 / 0 }) do
        assert_raises("host.shared.incr: delta must be an integer", shared.incr, "n", bad)
      end
      assert_raises("host.shared.incr: delta must be an integer", shared.incr, "n")
      assert.is_nil(shared.get("n"))
    end)
  end)

  describe("count() / flush()", function()
    it("counts live entries and flush removes them all", function()
      assert.are.equal(0, shared.count())
      for i = 1, 10 do
        shared.set("k" .. i, "v", i <= 3 and 0.05 or nil)
      end
      assert.are.equal(10, shared.count())
      time.sleep(0.1)
      assert.are.equal(7, shared.count())
      assert.are.equal(0, select("#", shared.flush()))
      assert.are.equal(0, shared.count())
      assert.is_nil(shared.get("k10"))
    end)
  end)

  describe("bounds and misuse", function()
    it("accepts a 1024-byte key and a 1 MiB value, raises beyond", function()
      assert.is_true(shared.set(string.rep("k", 1024), "v"))
      assert.is_true(shared.set("big", string.rep("v", MIB)))
      assert.are.equal(MIB, #shared.get("big"))
      assert_raises("host.shared.set: key longer than 1024 bytes", shared.set, string.rep("k", 1025), "v")
      assert_raises("host.shared.get: key longer than 1024 bytes", shared.get, string.rep("k", 1025))
      assert_raises("host.shared.set: value longer than 1048576 bytes", shared.set, "k", string.rep("v", MIB + 1))
      assert_raises("host.shared.add: value longer than 1048576 bytes", shared.add, "k", string.rep("v", MIB + 1))
      assert.are.equal(2, shared.count())
    end)

    it("raises for a ttl that is not a positive number", function()
      for _, bad in ipairs({ 0, -1, 0 / 0, -math.huge, "5", {}, true }) do
        assert_raises("host.shared.set: ttl must be", shared.set, "k", "v", bad)
        assert_raises("host.shared.add: ttl must be", shared.add, "k", "v", bad)
        assert_raises("host.shared.incr: ttl must be", shared.incr, "k", 1, bad)
      end
      assert.are.equal(0, shared.count())
    end)

    it("raises for keys and values that are not strings", function()
      for _, name in ipairs({ "set", "get", "delete", "add", "incr" }) do
        for _, bad in ipairs({ 1, {}, true }) do
          assert_raises("host.shared." .. name .. ": key must be a string", shared[name], bad, "v")
        end
        assert_raises("host.shared." .. name .. ": key must be a string", shared[name])
      end
      for _, name in ipairs({ "set", "add" }) do
        for _, bad in ipairs({ 42, {}, false }) do
          assert_raises("host.shared." .. name .. ": value must be a string", shared[name], "k", bad)
        end
        assert_raises("host.shared." .. name .. ": value must be a string", shared[name], "k")
      end
      assert.are.equal(0, shared.count())
    end)
  end)

  describe("eviction", function()
    local function fill(n, prefix)
      for i = 1, n do
        shared.set(prefix .. i, tostring(i))
      end
    end

    it("evicts the least recently used entry beyond 10000", function()
      fill(MAX_ENTRIES, "k")
      assert.are.equal(MAX_ENTRIES, shared.count())
      assert.are.equal("1", shared.get("k1")) -- k1 is now the most recently used; k2 the least
      assert.is_true(shared.set("new", "x"))
      assert.are.equal(MAX_ENTRIES, shared.count())
      assert.are.equal("1", shared.get("k1"))
      assert.is_nil(shared.get("k2"))
      assert.are.equal("3", shared.get("k3"))
      assert.are.equal("x", shared.get("new"))
      -- set on an existing key counts as a use; add and incr insert like set.
      shared.set("k4", "again")
      assert.is_true(shared.add("new2", "y"))
      assert.are.equal(1, shared.incr("new3", 1))
      assert.is_nil(shared.get("k5"))
      assert.is_nil(shared.get("k6"))
      assert.are.equal("again", shared.get("k4"))
      assert.are.equal(MAX_ENTRIES, shared.count())
    end)

    it("drops expired entries before evicting a live one", function()
      fill(MAX_ENTRIES - 1, "k")
      shared.set("short", "v", 0.05)
      time.sleep(0.1)
      shared.set("late", "v")
      assert.are.equal("1", shared.get("k1"))
      assert.are.equal("v", shared.get("late"))
      assert.are.equal(MAX_ENTRIES, shared.count())
    end)
  end)

  it("is one store for the process: a reloaded module sees the same entries", function()
    shared.set("k", "v")
    package.loaded["host.shared"] = nil
    local again = require("host.shared")
    package.loaded["host.shared"] = shared
    assert.are_not.equal(shared, again)
    assert.are.equal("v", again.get("k"))
  end)
end)
