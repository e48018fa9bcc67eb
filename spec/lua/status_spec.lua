-- infraops.status (lua/infraops/status.lua): metav1.Status failure responses
-- (../shared/docs/k8s-aggregation.md section 5) and plain JSON responses.
local cjson = require("cjson")
local status = require("infraops.status")

local function assert_status(res, code, reason)
  assert.are.equal(code, res.status)
  assert.are.equal("application/json", res.headers["Content-Type"])
  local body = cjson.decode(res.body)
  assert.are.equal("Status", body.kind)
  assert.are.equal("v1", body.apiVersion)
  assert.are.equal("Failure", body.status)
  assert.are.equal(code, body.code)
  assert.are.equal(reason, body.reason)
  assert.is_string(body.message)
  assert.are.same({}, body.metadata)
  return body
end

describe("infraops.status", function()
  describe("failure()", function()
    it("builds a Failure Status whose code equals the HTTP status", function()
      local res = status.failure(409, "Conflict", "busy")
      local body = assert_status(res, 409, "Conflict")
      assert.are.equal("busy", body.message)
      assert.is_nil(body.details)
    end)

    it("passes details through", function()
      local details = {
        name = "node-1",
        group = "infraops.michael.io",
        kind = "nodes",
        causes = { { reason = "FieldValueInvalid", message = "bad", field = "gracePeriodSeconds" } },
        retryAfterSeconds = 5,
      }
      local body = assert_status(status.failure(403, "Forbidden", "no", details), 403, "Forbidden")
      assert.are.same(details, body.details)
    end)

    it("encodes metadata as a JSON object", function()
      local res = status.failure(500, "InternalError", "x")
      assert.is_truthy(res.body:find('"metadata":{}', 1, true))
    end)

    it("merges extra headers and keeps Content-Type", function()
      local res = status.failure(429, "TooManyRequests", "slow down", { retryAfterSeconds = 1 },
        { ["Retry-After"] = "1", ["X-Extra"] = "yes" })
      assert_status(res, 429, "TooManyRequests")
      assert.are.equal("1", res.headers["Retry-After"])
      assert.are.equal("yes", res.headers["X-Extra"])
    end)

    it("does not share header tables between responses", function()
      local a = status.failure(400, "BadRequest", "a", nil, { ["X-A"] = "1" })
      local b = status.failure(400, "BadRequest", "b")
      assert.are.equal("1", a.headers["X-A"])
      assert.is_nil(b.headers["X-A"])
    end)

    it("escapes a message with quotes and newlines into valid JSON", function()
      local msg = 'nodes.infraops.michael.io "node-1" not found\n\t\\'
      local body = assert_status(status.failure(404, "NotFound", msg), 404, "NotFound")
      assert.are.equal(msg, body.message)
    end)
  end)

  describe("helpers", function()
    it("not_found_path() is a 404 NotFound with details", function()
      local body = assert_status(status.not_found_path(), 404, "NotFound")
      assert.are.same({}, body.details)
    end)

    it("method_not_allowed() is a 405 MethodNotAllowed", function()
      assert_status(status.method_not_allowed(), 405, "MethodNotAllowed")
    end)

    it("bad_request() is a 400 BadRequest carrying the message", function()
      local body = assert_status(status.bad_request("malformed query string"), 400, "BadRequest")
      assert.are.equal("malformed query string", body.message)
    end)
  end)

  describe("json()", function()
    it("answers 200 with the body as given and application/json", function()
      local res = status.json('{"a":1}')
      assert.are.equal(200, res.status)
      assert.are.equal('{"a":1}', res.body)
      assert.are.equal("application/json", res.headers["Content-Type"])
    end)

    it("uses a given content type", function()
      local ct = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
      assert.are.equal(ct, status.json("{}", ct).headers["Content-Type"])
    end)
  end)
end)
