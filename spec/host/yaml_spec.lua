-- host.yaml (host/bindings/yaml.c): kubeconfig-shaped documents, the YAML 1.2 core schema,
-- and the limits that keep hostile documents cheap.
local yaml = require("host.yaml")
local cjson = require("cjson")

local FIXTURES = "spec/fixtures/yaml/"

local function read_file(path)
  local f = assert(io.open(path, "rb"))
  local data = f:read("a")
  f:close()
  return data
end

local function decode_fixture(name)
  local value, message, code = yaml.decode(read_file(FIXTURES .. name))
  assert(value ~= nil, tostring(message) .. " " .. tostring(code))
  return value
end

-- Asserts text is refused with invalid_yaml and returns the message.
local function invalid(text)
  local value, message, code = yaml.decode(text)
  assert.is_nil(value, "expected invalid_yaml for: " .. text:sub(1, 60))
  assert.equal("invalid_yaml", code)
  assert.is_string(message)
  assert.matches("host.yaml.decode: ", message, 1, true)
  return message
end

local function nested_flow(depth)
  return string.rep("[", depth) .. string.rep("]", depth)
end

local function nested_block(depth)
  local lines = {}
  for i = 1, depth do
    lines[#lines + 1] = string.rep("  ", i - 1) .. "k" .. i .. ":"
  end
  lines[#lines + 1] = string.rep("  ", depth) .. "leaf: 1"
  return table.concat(lines, "\n") .. "\n"
end

describe("host.yaml", function()
  it("is a table with decode and null and sets no globals", function()
    assert.is_function(yaml.decode)
    assert.is_not_nil(yaml.null)
    assert.is_nil(rawget(_G, "yaml"))
    assert.is_nil(rawget(_G, "host"))
  end)

  it("uses cjson.null as its null, so decoded documents re-encode as JSON", function()
    assert.equal(cjson.null, yaml.null)
    assert.equal('{"a":null}', cjson.encode(yaml.decode("a: ~")))
  end)

  describe("decode()", function()
    describe("kubeconfig documents", function()
      local config

      lazy_setup(function()
        config = decode_fixture("kubeconfig.yaml")
      end)

      it("reads the top-level fields", function()
        assert.equal("v1", config.apiVersion)
        assert.equal("Config", config.kind)
        assert.equal("prod", config["current-context"])
        assert.same({}, config.preferences)
      end)

      it("reads clusters as a list with base64 CA data as a string", function()
        assert.equal(2, #config.clusters)
        local prod = config.clusters[1]
        assert.equal("arn:aws:eks:eu-west-1:123456789012:cluster/prod", prod.name)
        assert.equal("https://ABCDEF0123456789.gr7.eu-west-1.eks.amazonaws.com", prod.cluster.server)
        local ca = prod.cluster["certificate-authority-data"]
        assert.is_string(ca)
        assert.matches("^LS0tLS1CRUdJTi", ca)
        assert.matches("=$", ca)
        local dev = config.clusters[2].cluster
        assert.is_true(dev["insecure-skip-tls-verify"])
        assert.equal("https://127.0.0.1:8443", dev.server)
        assert.equal("http://proxy.internal:3128", dev["proxy-url"])
      end)

      it("reads contexts", function()
        assert.equal(2, #config.contexts)
        assert.same({
          name = "prod",
          context = {
            cluster = "arn:aws:eks:eu-west-1:123456789012:cluster/prod",
            user = "arn:aws:eks:eu-west-1:123456789012:cluster/prod",
            namespace = "default",
          },
        }, config.contexts[1])
        assert.same({ name = "dev", context = { cluster = "kind-dev", user = "kind-dev" } }, config.contexts[2])
      end)

      it("reads an exec user with its args list and env list", function()
        local exec = config.users[1].user.exec
        assert.equal("client.authentication.k8s.io/v1beta1", exec.apiVersion)
        assert.equal("aws", exec.command)
        assert.same({ "--region", "eu-west-1", "eks", "get-token", "--cluster-name", "prod", "--output", "json" },
          exec.args)
        assert.same({
          { name = "AWS_PROFILE", value = "prod-admin" },
          { name = "AWS_STS_REGIONAL_ENDPOINTS", value = "regional" },
        }, exec.env)
        assert.equal("IfAvailable", exec.interactiveMode)
        assert.is_false(exec.provideClusterInfo)
      end)

      it("keeps a null field present as yaml.null", function()
        local user = config.users[2].user
        assert.equal(yaml.null, user.token)
        assert.equal("Y2VydA==", user["client-certificate-data"])
      end)
    end)

    describe("plain scalars (YAML 1.2 core schema)", function()
      local cases = {
        { "null", yaml.null }, { "Null", yaml.null }, { "NULL", yaml.null }, { "~", yaml.null },
        { "true", true }, { "True", true }, { "TRUE", true },
        { "false", false }, { "False", false }, { "FALSE", false },
        { "0", 0 }, { "-12", -12 }, { "+3", 3 }, { "007", 7 }, { "0x1F", 31 }, { "0xff", 255 }, { "0o17", 15 },
        { "9223372036854775807", math.maxinteger }, { "-9223372036854775808", math.mininteger },
        { "1.5", 1.5 }, { "-0.25", -0.25 }, { ".5", 0.5 }, { "5.", 5.0 }, { "6.02e23", 6.02e23 },
        { "1e3", 1000.0 }, { "1E-2", 0.01 }, { "+2.5e+2", 250.0 },
        { ".inf", math.huge }, { ".Inf", math.huge }, { "+.INF", math.huge }, { "-.Inf", -math.huge },
        { "abc", "abc" }, { "yes", "yes" }, { "no", "no" }, { "on", "on" }, { "off", "off" },
        { "y", "y" }, { "nil", "nil" }, { "tRUE", "tRUE" }, { "nULL", "nULL" },
        { "0x", "0x" }, { "0xG1", "0xG1" }, { "0o8", "0o8" }, { "-0x1F", "-0x1F" }, { "0b101", "0b101" },
        { "1_000", "1_000" }, { "1.2.3", "1.2.3" }, { "e3", "e3" }, { "1e", "1e" }, { ".", "." },
        { "inf", "inf" }, { "-.nan", "-.nan" }, { "12:30", "12:30" },
        { "2024-01-02", "2024-01-02" }, { "https://x:443/p", "https://x:443/p" },
      }
      for _, case in ipairs(cases) do
        it(string.format("resolves %q", case[1]), function()
          local doc = assert(yaml.decode("v: " .. case[1]))
          assert.equal(case[2], doc.v)
          assert.equal(math.type(case[2]), math.type(doc.v))
        end)
      end

      it("resolves .nan in its three spellings", function()
        for _, text in ipairs({ ".nan", ".NaN", ".NAN" }) do
          local v = yaml.decode(text)
          assert.is_number(v)
          assert.is_true(v ~= v)
        end
      end)

      it("makes an integer too large for Lua a float", function()
        local doc = yaml.decode("[9223372036854775808, 99999999999999999999, 0xFFFFFFFFFFFFFFFFFF]")
        assert.equal("float", math.type(doc[1]))
        assert.equal(2.0 ^ 63, doc[1])
        assert.equal(1e20, doc[2])
        assert.equal("float", math.type(doc[3]))
        assert.equal(2.0 ^ 72 - 1, doc[3])
      end)

      it("gives an empty value yaml.null and keeps the key", function()
        local doc = yaml.decode("a:\nb: 1\n")
        assert.equal(yaml.null, doc.a)
        assert.same({ "a", "b" }, (function()
          local keys = {}
          for k in pairs(doc) do keys[#keys + 1] = k end
          table.sort(keys)
          return keys
        end)())
        assert.same({ yaml.null, 1 }, yaml.decode("[~, 1]"))
      end)
    end)

    describe("quoted and block scalars", function()
      it("are strings whatever they look like", function()
        local doc = assert(yaml.decode([[
port: "8443"
single: '8443'
bool: "true"
null_word: 'null'
tilde: "~"
empty: ""
float: '1.5'
]]))
        assert.same({
          port = "8443", single = "8443", bool = "true", null_word = "null", tilde = "~", empty = "",
          float = "1.5",
        }, doc)
      end)

      it("keeps literal and folded blocks as strings", function()
        local doc = assert(yaml.decode("literal: |\n  12\n  line two\nfolded: >\n  true\n  more\n"))
        assert.equal("12\nline two\n", doc.literal)
        assert.equal("true more\n", doc.folded)
        assert.equal("42", yaml.decode("|-\n  42\n"))
      end)

      it("decodes escapes, including NUL, and UTF-8", function()
        assert.equal("a\0b\tc\n\u{e9}", yaml.decode([["a\0b\tc\n\u00e9"]]))
        assert.equal("caf\u{e9} \u{1F600}", yaml.decode("caf\u{e9} \u{1F600}"))
        assert.equal("it's", yaml.decode("'it''s'"))
      end)
    end)

    describe("tags", function()
      it("!!str forces a string, and so does the non-specific !", function()
        assert.same({ "12", "true", "null", "", "1.5", "13" },
          yaml.decode("[!!str 12, !!str true, !!str null, !!str , !!str 1.5, ! 13]"))
      end)

      it("!!int, !!float, !!bool and !!null apply to quoted text too", function()
        local doc = yaml.decode([=[[!!int "14", !!float "3", !!float 2.5, !!bool "true", !!null ""]]=])
        assert.equal(14, doc[1])
        assert.equal("integer", math.type(doc[1]))
        assert.equal(3.0, doc[2])
        assert.equal("float", math.type(doc[2]))
        assert.equal(2.5, doc[3])
        assert.is_true(doc[4])
        assert.equal(yaml.null, doc[5])
      end)

      it("refuses a value that does not fit its core tag", function()
        invalid("!!int abc")
        invalid("!!bool yes")
        invalid("!!null 0")
        invalid("!!float x")
      end)

      it("ignores other tags", function()
        assert.same({ "aGk=", 5, "x" }, yaml.decode("[!!binary aGk=, !custom 5, !custom x]"))
        assert.same({ a = 1 }, yaml.decode("!!map {a: 1}"))
      end)
    end)

    describe("collections", function()
      it("turns sequences into 1-based arrays", function()
        local list = yaml.decode("- a\n- 2\n- [x, y]\n- {k: v}\n")
        assert.equal(4, #list)
        assert.same({ "a", 2, { "x", "y" }, { k = "v" } }, list)
        assert.same({}, yaml.decode("[]"))
        assert.same({}, yaml.decode("{}"))
      end)

      it("keeps mapping keys as their text, even when they look like other types", function()
        local doc = yaml.decode("1: one\ntrue: t\nnull: n\n\"2\": two\n~: tilde\n1.5: f\n")
        assert.same({ ["1"] = "one", ["true"] = "t", ["null"] = "n", ["2"] = "two", ["~"] = "tilde",
          ["1.5"] = "f" }, doc)
      end)

      it("reads JSON, a subset of YAML", function()
        assert.same({ a = { 1, 2 } }, yaml.decode('{"a":[1,2]}'))
        local doc = yaml.decode('{"s":"x","n":-1.5e2,"t":true,"f":false,"z":null,"o":{"l":[]}}')
        assert.same({ s = "x", n = -150.0, t = true, f = false, z = yaml.null, o = { l = {} } }, doc)
      end)

      it("refuses duplicate keys, as sigs.k8s.io/yaml does", function()
        assert.matches("line 2 column 1: duplicate key 'a'", invalid("a: 1\na: 2\n"), 1, true)
        invalid("{a: 1, a: 2}")
        invalid("a: 1\n\"a\": 2\n")
        invalid("outer:\n  x: 1\n  y: 2\n  x: 3\n")
        assert.same({ { a = 1 }, { a = 2 } }, yaml.decode("- a: 1\n- a: 2\n"))
      end)

      it("refuses keys that are not scalars", function()
        assert.matches("mapping keys must be scalars", invalid("? [a]\n: b\n"), 1, true)
        invalid("? {a: 1}\n: b\n")
        invalid("{[a]: b}")
        invalid("base: &b x\n*b : y\n")
      end)
    end)

    describe("anchors and aliases", function()
      it("expands aliases into independent copies", function()
        local doc = decode_fixture("anchors.yaml")
        local expected = { timeout = 10, retries = 3, tags = { "a", "b" } }
        assert.same(expected, doc.defaults)
        assert.same(expected, doc.first)
        assert.same(expected, doc.second)
        assert.equal("shared-name", doc.again)
        assert.are_not.equal(doc.first, doc.second)
        doc.first.tags[1] = "changed"
        assert.equal("a", doc.second.tags[1])
        assert.equal("a", doc.defaults.tags[1])
      end)

      it("refuses an unknown anchor, and an anchor used inside itself", function()
        assert.matches("unknown anchor 'nope'", invalid("a: *nope\n"), 1, true)
        invalid("a: &x [1, *x]\n")
      end)

      it("refuses a billion-laughs document", function()
        local lines = { 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]' }
        local prev = "a"
        for name in ("bcdefghi"):gmatch(".") do
          lines[#lines + 1] = string.format("%s: &%s [*%s,*%s,*%s,*%s,*%s,*%s,*%s,*%s,*%s,*%s]", name, name,
            prev, prev, prev, prev, prev, prev, prev, prev, prev, prev)
          prev = name
        end
        assert.matches("more than 100000 nodes", invalid(table.concat(lines, "\n")), 1, true)
      end)

      it("counts expanded aliases against the node limit", function()
        -- 1 mapping + 2 keys + 2 x (1 sequence + 49997 items) = 99999 nodes: accepted;
        -- one more item counts twice: 100001.
        local items = string.rep("1,", 49996) .. "1"
        local doc = assert(yaml.decode("a: &x [" .. items .. "]\nb: *x\n"))
        assert.equal(49997, #doc.b)
        invalid("a: &x [" .. items .. ",1]\nb: *x\n")
      end)

      it("counts expanded aliases against the depth limit", function()
        local deep = "x: &d " .. nested_flow(40) .. "\n"
        assert.is_table(yaml.decode(deep .. "y: " .. string.rep("[", 23) .. "*d" .. string.rep("]", 23) .. "\n"))
        assert.matches("nested deeper than 64",
          invalid(deep .. "y: " .. string.rep("[", 24) .. "*d" .. string.rep("]", 24) .. "\n"), 1, true)
      end)
    end)

    describe("documents", function()
      it("returns the first of several documents", function()
        assert.same({ kind = "First", spec = { replicas = 1 } }, decode_fixture("multi.yaml"))
        assert.same({ a = 1 }, yaml.decode("a: 1\n---\nb: [unclosed\n"))
        assert.same({ a = 1 }, yaml.decode("a: 1\n...\n"))
      end)

      it("returns yaml.null when there is no document or it is empty", function()
        for _, text in ipairs({ "", "\n\n", "# only a comment\n", "---\n", "--- ~\n", "---\n...\n" }) do
          assert.equal(yaml.null, yaml.decode(text), string.format("%q", text))
        end
      end)

      it("returns a scalar document as a scalar", function()
        assert.equal("hello", yaml.decode("hello"))
        assert.equal(42, yaml.decode("--- 42\n"))
      end)

      it("accepts a %YAML directive and a byte-order mark", function()
        assert.same({ a = 1 }, yaml.decode("%YAML 1.1\n---\na: 1\n"))
        assert.same({ a = 1 }, yaml.decode("\239\187\191a: 1\n"))
      end)
    end)

    describe("invalid input", function()
      local cases = {
        { "a tab used for indentation", "a:\n\tb: c\n" },
        { "an unclosed double quote", 'a: "unclosed\n' },
        { "an unclosed single quote", "a: 'unclosed\n" },
        { "a nested plain mapping on one line", "a: b: c\n" },
        { "an unclosed flow sequence", "[1, 2\n" },
        { "an unclosed flow mapping", "{a: 1\n" },
        { "trailing garbage after the document", "[1] ]\n" },
        { "a bad indentation", "a:\n  b: 1\n c: 2\n" },
        { "an unknown escape", '"\\q"' },
        { "an undefined tag handle", "!x!y z\n" },
        { "invalid UTF-8", "a: \255\254\n" },
      }
      for _, case in ipairs(cases) do
        it("refuses " .. case[1], function()
          invalid(case[2])
        end)
      end

      it("gives 1-based line and column numbers", function()
        assert.matches("line 3 column 5:", invalid("a: 1\nb: 2\nc: d: e\n"), 1, true)
        assert.matches("line 1 column ", invalid('x: "open'), 1, true)
      end)

      it("never quotes more than 40 characters of the document", function()
        local secret = "s3cr3t" .. string.rep("X", 60) .. "tail"
        for _, text in ipairs({
          "token: \"" .. secret .. "\ntoken2: x: y\n",
          secret .. ": 1\n" .. secret .. ": 2\n",
          "a: *" .. secret .. "\n",
          "!!int " .. secret .. "\n",
        }) do
          local message = invalid(text)
          assert.is_nil(message:find(secret:sub(1, 41), 1, true), message)
          assert.is_nil(message:find("tail", 1, true), message)
        end
      end)
    end)

    describe("limits", function()
      it("accepts 64 nested collections and refuses 65", function()
        assert.is_table(yaml.decode(nested_flow(64)))
        assert.matches("nested deeper than 64", invalid(nested_flow(65)), 1, true)
        assert.is_table(yaml.decode(nested_block(63)))
        invalid(nested_block(64)) -- 64 mappings plus the one holding "leaf"
      end)

      it("accepts 100000 nodes and refuses more", function()
        local items = string.rep("1,", 99998) .. "1"
        assert.equal(99999, #yaml.decode("[" .. items .. "]"))
        assert.matches("more than 100000 nodes", invalid("[" .. items .. ",1]"), 1, true)
      end)

      it("accepts 8 MiB of input and refuses more", function()
        local big = "a" .. string.rep("b", 8 * 1024 * 1024 - 1)
        assert.equal(big, yaml.decode(big))
        assert.matches("too large", invalid(big .. "b"), 1, true)
      end)
    end)

    describe("misuse", function()
      for _, arg in ipairs({ "nothing", 12, true, {} }) do
        it("raises for a " .. (arg == "nothing" and "missing" or type(arg)) .. " argument", function()
          local ok, err
          if arg == "nothing" then
            ok, err = pcall(yaml.decode)
          else
            ok, err = pcall(yaml.decode, arg)
          end
          assert.is_false(ok)
          assert.matches("host.yaml.decode: text must be a string", tostring(err), 1, true)
        end)
      end
    end)
  end)
end)
