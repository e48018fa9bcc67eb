-- infraops.xml (lua/infraops/xml.lua): leaf values of EC2/STS answers, entity
-- and CDATA handling, and garbage input that must neither raise nor take long.
local xml = require("infraops.xml")

local REBOOT_OK = [[<?xml version="1.0" encoding="UTF-8"?>
<RebootInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
    <requestId>59dbff89-35bd-4eac-99ed-be587EXAMPLE</requestId>
    <return>true</return>
</RebootInstancesResponse>]]

local EC2_ERROR = '<?xml version="1.0" encoding="UTF-8"?>\n'
  .. "<Response><Errors><Error><Code>InvalidInstanceID.NotFound</Code>"
  .. "<Message>The instance ID 'i-0123456789abcdef0' does not exist</Message></Error></Errors>"
  .. "<RequestID>ea966190-f9aa-478e-9ede-example</RequestID></Response>"

local STS_OK = [[<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleWithWebIdentityResult>
    <SubjectFromWebIdentityToken>system:serviceaccount:infraops:myapiserver</SubjectFromWebIdentityToken>
    <Audience>sts.amazonaws.com</Audience>
    <AssumedRoleUser>
      <Arn>arn:aws:sts::123456789012:assumed-role/infraops/1700000000000000000</Arn>
      <AssumedRoleId>AROACLKWSDQRAOEXAMPLE:1700000000000000000</AssumedRoleId>
    </AssumedRoleUser>
    <Credentials>
      <SessionToken>AQoDYXdzEE0a8ANXXXXXXXXNO1ewxE5TijQyp+IEXAMPLE/ab+c=</SessionToken>
      <SecretAccessKey>wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY</SecretAccessKey>
      <Expiration>2023-11-14T23:13:20Z</Expiration>
      <AccessKeyId>ASgeIAIOSFODNN7EXAMPLE</AccessKeyId>
    </Credentials>
    <Provider>arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/EXAMPLE</Provider>
  </AssumeRoleWithWebIdentityResult>
  <ResponseMetadata>
    <RequestId>ad4156e9-bce1-11e2-82e6-6b6efEXAMPLE</RequestId>
  </ResponseMetadata>
</AssumeRoleWithWebIdentityResponse>]]

local STS_ERROR = [[<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <Error>
    <Type>Sender</Type>
    <Code>InvalidIdentityToken</Code>
    <Message>Couldn&apos;t retrieve verification key from your identity provider,  please reference
      AssumeRoleWithWebIdentity documentation for requirements</Message>
  </Error>
  <RequestId>c3bd5a7e-1bbf-4b71-9e8c-example</RequestId>
</ErrorResponse>]]

-- Deterministic pseudo-random bytes (a 32-bit LCG), so a failure reproduces.
local function random_bytes(seed, n, alphabet)
  local out, state = {}, seed
  for i = 1, n do
    state = (state * 1103515245 + 12345) % 2147483648
    if alphabet then
      local k = state % #alphabet + 1
      out[i] = alphabet:sub(k, k)
    else
      out[i] = string.char(state % 256)
    end
  end
  return table.concat(out)
end

local function timed(fn)
  local start = os.clock()
  fn()
  return os.clock() - start
end

describe("infraops.xml", function()
  describe("text()", function()
    it("reads an EC2 RebootInstances answer (namespace attribute, prolog)", function()
      assert.are.equal("59dbff89-35bd-4eac-99ed-be587EXAMPLE", xml.text(REBOOT_OK, "requestId"))
      assert.are.equal("true", xml.text(REBOOT_OK, "return"))
    end)

    it("reads an EC2 error answer", function()
      assert.are.equal("InvalidInstanceID.NotFound", xml.text(EC2_ERROR, "Code"))
      assert.are.equal("The instance ID 'i-0123456789abcdef0' does not exist", xml.text(EC2_ERROR, "Message"))
      assert.are.equal("ea966190-f9aa-478e-9ede-example", xml.text(EC2_ERROR, "RequestID"))
    end)

    it("reads STS AssumeRoleWithWebIdentity credentials", function()
      assert.are.equal("ASgeIAIOSFODNN7EXAMPLE", xml.text(STS_OK, "AccessKeyId"))
      assert.are.equal("wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY", xml.text(STS_OK, "SecretAccessKey"))
      assert.are.equal("AQoDYXdzEE0a8ANXXXXXXXXNO1ewxE5TijQyp+IEXAMPLE/ab+c=", xml.text(STS_OK, "SessionToken"))
      assert.are.equal("2023-11-14T23:13:20Z", xml.text(STS_OK, "Expiration"))
      assert.are.equal("ad4156e9-bce1-11e2-82e6-6b6efEXAMPLE", xml.text(STS_OK, "RequestId"))
    end)

    it("reads an STS error answer, decoding entities", function()
      assert.are.equal("InvalidIdentityToken", xml.text(STS_ERROR, "Code"))
      assert.are.equal("Sender", xml.text(STS_ERROR, "Type"))
      assert.matches("^Couldn't retrieve verification key", xml.text(STS_ERROR, "Message"))
    end)

    it("matches names exactly and case-sensitively", function()
      assert.is_nil(xml.text(EC2_ERROR, "requestId"))
      assert.is_nil(xml.text(EC2_ERROR, "Cod"))
      assert.is_nil(xml.text("<CodeX>a</CodeX>", "Code"))
      assert.is_nil(xml.text("<XCode>a</XCode>", "Code"))
      assert.is_nil(xml.text(REBOOT_OK, "absent"))
    end)

    it("matches a prefixed element by local name, or by qualified name when asked", function()
      local doc = '<soap:Envelope xmlns:soap="urn:s"><ec2:Code a="1">X</ec2:Code><Code>Y</Code></soap:Envelope>'
      assert.are.equal("X", xml.text(doc, "Code"))
      assert.are.equal("X", xml.text(doc, "ec2:Code"))
      assert.is_nil(xml.text(doc, "other:Code"))
    end)

    it("allows attributes, including quoted '>' and '/', and spaces before '>'", function()
      assert.are.equal("v", xml.text([[<a x="1>2" y='/'  >v</a >]], "a"))
      assert.are.equal("v", xml.text('<a\n  xmlns="http://x/"\n>v</a>', "a"))
    end)

    it("decodes the five predefined entities and numeric references once", function()
      assert.are.equal([[<>&"']], xml.text("<a>&lt;&gt;&amp;&quot;&apos;</a>", "a"))
      assert.are.equal("&&&", xml.text("<a>&#38;&#x26;&#X26;</a>", "a"))
      assert.are.equal("&lt;", xml.text("<a>&amp;lt;</a>", "a"))
      assert.are.equal("中é", xml.text("<a>&#x4E2D;&#233;</a>", "a"))
    end)

    it("leaves unknown entities and forbidden characters as written", function()
      local kept = "&nbsp; &#0; &#xD800; &#x110000; & ;"
      assert.are.equal(kept, xml.text("<a>" .. kept .. "</a>", "a"))
      assert.are.equal("&#x" .. string.rep("f", 20) .. ";", xml.text("<a>&#x" .. string.rep("f", 20) .. ";</a>", "a"))
    end)

    it("keeps CDATA literally, decoding the text around it", function()
      assert.are.equal("<b>&amp;</b>", xml.text("<a><![CDATA[<b>&amp;</b>]]></a>", "a"))
      assert.are.equal("x&<y>&", xml.text("<a>x&amp;<![CDATA[<y>]]>&#38;</a>", "a"))
    end)

    it("ignores elements inside comments, CDATA and processing instructions", function()
      local doc = "<r><!-- <Code>c</Code> --><![CDATA[<Code>d</Code>]]><?pi <Code>e</Code> ?><Code>real</Code></r>"
      assert.are.equal("real", xml.text(doc, "Code"))
    end)

    it("returns the first match, an empty or self-closing element as ''", function()
      assert.are.equal("1", xml.text("<r><v>1</v><v>2</v></r>", "v"))
      assert.are.equal("", xml.text("<r><v></v><v>2</v></r>", "v"))
      assert.are.equal("", xml.text("<r><v/><v>2</v></r>", "v"))
      assert.are.equal("", xml.text('<r><v a="b" /></r>', "v"))
    end)

    it("returns the raw inner text of an element with children", function()
      assert.are.equal("<Error><Code>X&amp;</Code></Error>",
        xml.text("<Errors><Error><Code>X&amp;</Code></Error></Errors>", "Errors"))
      assert.are.equal("<a>in</a>tail", xml.text("<a><a>in</a>tail</a>", "a"))
    end)

    it("returns nil for unclosed or truncated elements but keeps complete earlier ones", function()
      assert.is_nil(xml.text("<a>text", "a"))
      local truncated = EC2_ERROR:sub(1, EC2_ERROR:find("Message") + 20)
      assert.are.equal("InvalidInstanceID.NotFound", xml.text(truncated, "Code"))
      assert.is_nil(xml.text(truncated, "Message"))
      assert.is_nil(xml.text(truncated, "RequestID"))
      assert.is_nil(xml.text("<r><a>x</r><a", "a"))
    end)

    it("returns every prefix of a real answer without raising", function()
      for _, doc in ipairs({ REBOOT_OK, EC2_ERROR, STS_OK, STS_ERROR }) do
        for n = 0, #doc do
          local prefix = doc:sub(1, n)
          for _, tag in ipairs({ "Code", "requestId", "SessionToken", "Message" }) do
            local value = xml.text(prefix, tag)
            assert.is_true(value == nil or type(value) == "string")
          end
        end
      end
    end)

    it("never raises on random bytes or random markup", function()
      local alphabet = "<>/!?[]-&#;x=\"' aCDT:" -- markup-heavy, so tags and entities occur
      for seed = 1, 300 do
        local bytes = random_bytes(seed, 200)
        local markup = random_bytes(seed, 200, alphabet)
        for _, doc in ipairs({ bytes, markup, "<a>" .. markup .. "</a>" }) do
          local ok, value = pcall(xml.text, doc, "a")
          assert.is_true(ok)
          assert.is_true(value == nil or type(value) == "string")
          local ok_all, list = pcall(xml.all, doc, "a")
          assert.is_true(ok_all)
          assert.are.equal("table", type(list))
        end
      end
    end)

    it("returns quickly on 1 MB of pathological input", function()
      local mb = 1024 * 1024
      local inputs = {
        string.rep("<a>", mb // 3),
        string.rep("<a>", mb // 6) .. string.rep("</a>", mb // 8),
        string.rep("<", mb),
        string.rep("</a", mb // 3),
        string.rep("<a x='", mb // 6),
        "<a>" .. string.rep("&amp;", mb // 5) .. "</a>",
        string.rep("<!--", mb // 4),
        string.rep("<a><b>", mb // 12) .. string.rep("</a>", mb // 8),
        "<a>" .. string.rep("x", mb) .. "</a>",
        random_bytes(7, mb),
      }
      for i, doc in ipairs(inputs) do
        local elapsed = timed(function()
          local ok = pcall(xml.text, doc, "a")
          assert.is_true(ok)
          assert.is_true(pcall(xml.all, doc, "a"))
          assert.is_true(pcall(xml.text, doc, "zz"))
        end)
        assert.is_true(elapsed < 2, "input " .. i .. " took " .. elapsed .. " s")
      end
      assert.are.equal(mb, #xml.text(inputs[9], "a"))
    end)

    it("returns nil for a document that is not a string and raises for a bad tag", function()
      assert.is_nil(xml.text(nil, "a"))
      assert.is_nil(xml.text(42, "a"))
      assert.has_error(function() xml.text("<a/>", "") end)
      assert.has_error(function() xml.text("<a/>", nil) end)
    end)
  end)

  describe("all()", function()
    it("lists every matching element in document order", function()
      local doc = "<r><instancesSet><item><instanceId>i-1</instanceId></item>"
        .. "<item><instanceId>i-2</instanceId></item><item><instanceId/></item></instancesSet></r>"
      assert.are.same({ "i-1", "i-2", "" }, xml.all(doc, "instanceId"))
      assert.are.same({ "InvalidInstanceID.NotFound" }, xml.all(EC2_ERROR, "Code"))
    end)

    it("returns an empty list when nothing matches or the input is not a string", function()
      assert.are.same({}, xml.all(REBOOT_OK, "Code"))
      assert.are.same({}, xml.all(nil, "Code"))
    end)

    it("lists the outermost of nested same-name elements only, skipping unclosed ones", function()
      assert.are.same({ "<a>x</a>", "y" }, xml.all("<r><a><a>x</a></a><a>y</a><a>z</r>", "a"))
    end)
  end)
end)
