-- label_selector: selector text (the labelSelector of a list, the
-- --protected-nodes-selector flag) through infraops.label_selector.parse,
-- then matching labels; and names through is_dns1123_subdomain (node names
-- in restart and get).
--
-- Input: selector NUL labels. labels: "key=value" lines.
--
-- Checks: parse returns a selector or nil, message, "invalid_selector" and
-- never raises; matches() returns a boolean; an empty selector matches everything; guards built from a valid
-- selector never raise.
local common = require("harness.common")
local guards = require("infraops.guards")
local label_selector = require("infraops.label_selector")

local CODES = { invalid_selector = true }

local function labels_of(text)
  local labels = {}
  for line in text:gmatch("[^\n]+") do
    local k, v = line:match("^([^=]*)=(.*)$")
    labels[k or line] = v or ""
  end
  return labels
end

return function(data)
  local fields = common.split(data, 2)
  local text, labels = fields[1], labels_of(fields[2])
  local is_name = label_selector.is_dns1123_subdomain(text)
  if type(is_name) ~= "boolean" then
    common.fail("is_dns1123_subdomain returned a %s", type(is_name))
  end
  local selector, err, code = label_selector.parse(text)
  if not common.check_result("label_selector.parse", selector, err, code, CODES) then
    return
  end
  local matched = selector:matches(labels)
  if type(matched) ~= "boolean" then
    common.fail("matches returned a %s", type(matched))
  end
  if selector:empty() and not matched then
    common.fail("an empty selector did not match")
  end
  local g = guards.new({ own_node = "own", protected = text })
  local allowed = g:check({ metadata = { name = "n", labels = labels } })
  if type(allowed) ~= "boolean" then
    common.fail("guards:check returned a %s", type(allowed))
  end
end
