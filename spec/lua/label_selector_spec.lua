-- infraops.label_selector (lua/infraops/label_selector.lua): Kubernetes label
-- selectors; cases from k8s.io/apimachinery pkg/labels/selector_test.go.
local label_selector = require("infraops.label_selector")

local function parse(text)
  local sel, err, code = label_selector.parse(text)
  assert(sel, ("expected %q to parse, got: %s"):format(text, tostring(err)))
  assert.is_nil(code)
  return sel
end

local function bad(text)
  local sel, err, code = label_selector.parse(text)
  assert.is_nil(sel, ("expected %q to be refused"):format(tostring(text)))
  assert.is_string(err)
  assert.are.equal("invalid_selector", code)
end

-- The requirements as {key, op, sorted values} for comparison.
local function shape(sel)
  local out = {}
  for _, r in ipairs(sel.requirements) do
    local values = {}
    for _, v in ipairs(r.values or {}) do
      values[#values + 1] = v
    end
    table.sort(values)
    out[#out + 1] = { r.key, r.op, values }
  end
  return out
end

local function matches(text, labels)
  return parse(text):matches(labels)
end

describe("infraops.label_selector", function()
  describe("parse()", function()
    it("accepts apimachinery's good strings", function()
      for _, text in ipairs({
        "x=a,y=b,z=c", "", "x!=a,y=b", "x=", "x= ", "x=,z= ", "x= ,z= ", "!x", "x>1", "x>1,z<5",
        "\rx", "this-is-a-dns.domain.com/key-with-dash", "this-is-another-dns.domain.com/key-with-dash in (so,what)",
        "0.1.2.domain/99 notin (10.10.100.1, tick.tock.clock)", "foo  in\t (abc)", "x notin\n (abc)",
        "x  notin\t\t(abc,def)", "x in (abc,def)", "x in (abc,)", "x in ()", "x notin (abc,,def),bar,z in (),w",
        "x,y in (a)", "x=a", "x<7", "x=a,y!=b", "x=a,y!=b,z in (h,i,j)", "x notin ( )", "x notin (, a)", "a ",
        "a in (x,y,notin, z,in)", "x==a", "notin=in", "   ", "node-role.kubernetes.io/control-plane",
        "!node-role.kubernetes.io/control-plane", "x=A_b.9", "x>0",
      }) do
        parse(text)
      end
    end)

    it("refuses apimachinery's bad strings", function()
      for _, text in ipairs({
        "x=a||y=b", "x==a==b", "!x=a", "x<a", "x,,y", ",x,y", "x nott in (y)", "a in (xyz),",
        "a in (xyz)b notin ()", "a in (xyz abc)", "a notin(", "a (", "(", "x in (,,)", "x=a,", ",", "!", "!,x",
        "x in a", "x in (a", "x=(a)", "x=-5", "x>-3", "x<+3", "x>1.5", "x>", "x<99999999999999999999",
        "x !in (a)", "=a", "x=>1",
      }) do
        bad(text)
      end
    end)

    it("validates keys as qualified names", function()
      for _, text in ipairs({
        "-x", "x-", "a/b/c", "/x", "Example.com/x", "ex_ample.com/x", "example.com/", ("k"):rep(64),
        ("a"):rep(254) .. "/x", "x$y", "x.-y.com/z",
      }) do
        bad(text)
      end
      parse(("k"):rep(63))
      parse("example.com/" .. ("k"):rep(63))
      parse("A_b.C-d")
      parse("in") -- a keyword in key position is a key
    end)

    it("validates values as label values", function()
      bad("x=" .. ("v"):rep(64))
      bad("x=-v")
      bad("x=v-")
      bad("x in (ok,-bad)")
      bad("x=a/b")
      parse("x=" .. ("v"):rep(63))
      parse("x=in")
    end)

    it("never raises on garbage", function()
      for _, input in ipairs({ "\0", "x=\0y", "((((", "))))", "!!!!", "===", "!=!=", "<>", "x in ((a))", "\255\254",
        ("x=a,"):rep(1000) .. "y", ("("):rep(10000) }) do
        local ok, sel_or_err = pcall(label_selector.parse, input)
        assert.is_true(ok, sel_or_err)
      end
      bad(nil)
      bad(42)
      bad({})
    end)

    it("builds the requirements apimachinery builds", function()
      assert.are.same({ { "x", "exists", {} } }, shape(parse("\rx")))
      assert.are.same({ { "x", "notin", { "", "abc", "def" } }, { "bar", "exists", {} }, { "z", "in", { "" } },
        { "w", "exists", {} } }, shape(parse("x notin (abc,,def),bar,z in (),w")))
      assert.are.same({ { "a", "in", { "in", "notin", "x", "y", "z" } } }, shape(parse("a in (x,y,notin, z,in)")))
      assert.are.same({ { "x", "notin", { "" } } }, shape(parse("x notin ( )")))
      assert.are.same({ { "x", "notin", { "", "a" } } }, shape(parse("x notin (, a)")))
      assert.are.same({ { "x", "in", { "", "abc" } } }, shape(parse("x in (abc,)")))
      assert.are.same({ { "x", "=", { "" } }, { "z", "=", { "" } } }, shape(parse("x= ,z= ")))
      assert.are.same({ { "x", "=", { "a" } } }, shape(parse("x==a")))
      assert.are.same({ { "x", "!", {} } }, shape(parse("!x")))
      assert.are.same({ { "notin", "=", { "in" } } }, shape(parse("notin=in")))
      assert.are.same({}, shape(parse("")))
      assert.is_true(parse(" "):empty())
      assert.is_false(parse("x"):empty())
    end)
  end)

  describe("matches()", function()
    it("matches as apimachinery's TestSelectorMatches", function()
      assert.is_true(matches("", { x = "y" }))
      assert.is_true(matches("x=y", { x = "y" }))
      assert.is_true(matches("x=y,z=w", { x = "y", z = "w" }))
      assert.is_true(matches("x!=y,z!=w", { x = "z", z = "a" }))
      assert.is_true(matches("notin=in", { notin = "in" }))
      assert.is_true(matches("x", { x = "z" }))
      assert.is_true(matches("!x", { y = "z" }))
      assert.is_true(matches("x>1", { x = "2" }))
      assert.is_true(matches("x<1", { x = "0" }))
      assert.is_false(matches("x=z", {}))
      assert.is_false(matches("x=y", { x = "z" }))
      assert.is_false(matches("x=y,z=w", { x = "w", z = "w" }))
      assert.is_false(matches("x!=y,z!=w", { x = "z", z = "w" }))
      assert.is_false(matches("x", { y = "z" }))
      assert.is_false(matches("!x", { x = "z" }))
      assert.is_false(matches("x>1", { x = "0" }))
      assert.is_false(matches("x<1", { x = "2" }))
      local labelset = { foo = "bar", baz = "blah" }
      assert.is_true(matches("foo=bar", labelset))
      assert.is_true(matches("baz=blah", labelset))
      assert.is_true(matches("foo=bar,baz=blah", labelset))
      assert.is_false(matches("foo=blah", labelset))
      assert.is_false(matches("baz=bar", labelset))
      assert.is_false(matches("foo=bar,foobar=bar,baz=blah", labelset))
    end)

    it("lets != and notin match when the key is absent, as kube does", function()
      assert.is_true(matches("x!=y", {}))
      assert.is_true(matches("x!=y", { other = "y" }))
      assert.is_true(matches("x notin (a,b)", {}))
      assert.is_false(matches("x notin (a,b)", { x = "a" }))
      assert.is_true(matches("x notin (a,b)", { x = "c" }))
      assert.is_false(matches("x in (a,b)", {}))
    end)

    it("matches empty values", function()
      assert.is_true(matches("x=", { x = "" }))
      assert.is_false(matches("x=", {}))
      assert.is_false(matches("x=", { x = "a" }))
      assert.is_true(matches("x in ()", { x = "" }))
      assert.is_true(matches("x in (a,)", { x = "" }))
      assert.is_true(matches("x", { x = "" }))
    end)

    it("compares integers for > and <, and never matches a non-integer label", function()
      assert.is_true(matches("x>0", { x = "12" }))
      assert.is_true(matches("x<3", { x = "-2" }))
      assert.is_false(matches("x>1", { x = "abc" }))
      assert.is_false(matches("x<1", {}))
      assert.is_false(matches("x>1", { x = "1.5" }))
      assert.is_false(matches("x>1", { x = "99999999999999999999" }))
      assert.is_true(matches("x<10", { x = "+9" }))
    end)

    it("matches prefixed keys such as node roles", function()
      local cp = { ["node-role.kubernetes.io/control-plane"] = "", ["kubernetes.io/os"] = "linux" }
      assert.is_true(matches("node-role.kubernetes.io/control-plane", cp))
      assert.is_false(matches("!node-role.kubernetes.io/control-plane", cp))
      assert.is_true(matches("kubernetes.io/os in (linux,windows)", cp))
      assert.is_false(matches("node-role.kubernetes.io/master", cp))
    end)

    it("treats missing or odd labels as no labels", function()
      assert.is_true(matches("", nil))
      assert.is_false(matches("x", nil))
      assert.is_true(matches("!x", "garbage"))
      assert.is_false(matches("x", { x = 5 }))
    end)
  end)

  describe("is_dns1123_subdomain()", function()
    it("checks lower-case names of dot-separated alphanumeric parts", function()
      local goods = { "a", "node-1", "ip-10-0-1-7.ec2.internal", "0", ("a"):rep(253), ("a"):rep(70) .. ".b" }
      for _, good in ipairs(goods) do
        assert.is_true(label_selector.is_dns1123_subdomain(good), good)
      end
      for _, no in ipairs({ "", "A", "a_b", "-a", "a-", "a..b", ".a", "a.", ("a"):rep(254), "a/b", "a b", "a.-b",
        nil, 5 }) do
        assert.is_false(label_selector.is_dns1123_subdomain(no), tostring(no))
      end
    end)
  end)
end)
