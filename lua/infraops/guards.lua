-- Which nodes this server refuses to restart, whoever asks: the node it runs
-- on (--node-name, default $MY_NODE_NAME: rebooting it would cut the request
-- short), and nodes matching --protected-nodes-selector.
--
-- The default selector is `node-role.kubernetes.io/control-plane` (the key
-- exists). Clusters that still label control-plane nodes only with the legacy
-- `node-role.kubernetes.io/master` role must say so with the flag, e.g.
--   --protected-nodes-selector=node-role.kubernetes.io/master
-- (kubeadm 1.20-1.23 set both labels, so those clusters are covered by the
-- default; a selector is an AND of its requirements and cannot say "either
-- role"). An explicitly empty
-- flag (`--protected-nodes-selector=`) protects no node; this differs from an
-- empty label selector's "select everything" on purpose.
--
-- Used by the restart handler (refuse with 403) and by the read side
-- (status.restartable = false with a reason).
local label_selector = require("infraops.label_selector")

local guards = {}

guards.DEFAULT_PROTECTED = "node-role.kubernetes.io/control-plane"
guards.FLAG = "--protected-nodes-selector"

local methods = {}
local metatable = { __index = methods }

--- Builds the guards. Raises on an invalid selector (start-up misuse).
-- @tparam table opts { own_node = "name" | nil, protected = "<selector text>" | nil (default) }
function guards.new(opts)
  opts = opts or {}
  local text = opts.protected
  if text == nil then
    text = guards.DEFAULT_PROTECTED
  end
  if type(text) ~= "string" then
    error(("invalid %s: must be a string"):format(guards.FLAG), 2)
  end
  local selector
  if text:find("%S") then
    local err
    selector, err = label_selector.parse(text)
    if not selector then
      error(("invalid %s %q: %s"):format(guards.FLAG, text, err), 2)
    end
  end
  local own = opts.own_node
  if own == "" then
    own = nil
  end
  return setmetatable({ own_node = own, protected_text = text, selector = selector }, metatable)
end

--- May this node be restarted through this server?
-- @tparam table node the core Node (metadata.name, metadata.labels)
-- @return true, or false, code ("own_node" | "protected"), message
function methods:check(node)
  local metadata = type(node) == "table" and type(node.metadata) == "table" and node.metadata or {}
  if self.own_node and metadata.name == self.own_node then
    return false, "own_node", "the node this server runs on cannot be restarted through it"
  end
  if self.selector and self.selector:matches(metadata.labels) then
    return false, "protected", ("node matches %s %s"):format(guards.FLAG, self.protected_text)
  end
  return true
end

return guards
