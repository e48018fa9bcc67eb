-- The control-port plumbing every fake shares (spec/fakes/*.py): a JSON call to
-- the control port, and the request log the fake keeps of its api port.
local cjson = require("cjson")
local shell = require("spec.helpers.shell")

local fake_control = {}

--- Adds control(method, path, body_table), requests(filter) and clear_requests()
-- to a fake's handle. self.control_url must be set; dir is a scratch directory.
function fake_control.attach(self, dir)
  --- A control-port call: the decoded JSON answer; raises on any status but 200.
  function self.control(method, path, body_table)
    local words = { "curl", "-sS", "--max-time", "10", "-X", method, "-o", "-", "-w", "\n%{http_code}" }
    if body_table ~= nil then
      local body_path = dir .. "/control-body.json"
      shell.write_file(body_path, cjson.encode(body_table))
      words[#words + 1] = "--data-binary"
      words[#words + 1] = "@" .. body_path
    end
    words[#words + 1] = self.control_url .. path
    local out = shell.must(shell.join(words))
    local body, code = out:match("^(.*)\n(%d%d%d)$")
    if code ~= "200" then
      error(("control %s %s: %s %s"):format(method, path, tostring(code), tostring(body)), 2)
    end
    return cjson.decode(body)
  end

  --- Requests the api port received (filter: optional function(entry) -> bool).
  function self.requests(filter)
    local out = {}
    for _, entry in ipairs(self.control("GET", "/requests")) do
      if not filter or filter(entry) then
        out[#out + 1] = entry
      end
    end
    return out
  end

  function self.clear_requests()
    return self.control("DELETE", "/requests")
  end

  return self
end

return fake_control
