-- A Lua tree for end-to-end specs: the real lua/infraops modules, with
-- app.lua wrapped so that GET /test/slow?seconds=N makes a real host.http
-- call to a slow upstream (as a slow cloud call would) before answering.
local shell = require("spec.helpers.shell")

local slow_lua = {}

local WRAPPER = [[
local real_app = require("infraops.real_app")
local http = require("host.http")

local wrapper = {}

function wrapper.new(config, deps)
  local handle = real_app.new(config, deps)
  return function(req)
    if req.path == "/test/slow" then
      local seconds = "1"
      for _, pair in ipairs(req.query) do
        if pair[1] == "seconds" then
          seconds = pair[2]
        end
      end
      local client = http.new({ timeout = 30 })
      local res, err = client:request({ method = "GET", url = "%s/sleep?seconds=" .. seconds })
      client:close()
      return { status = res and 200 or 502, headers = {}, body = res and res.body or err, user = "slow" }
    end
    return handle(req)
  end
end

return wrapper
]]

--- Starts the slow upstream and builds the Lua tree. Returns
-- { lua_dir = ..., stop = function }.
function slow_lua.start()
  local dir = shell.temp_dir()
  local port_file = dir .. "/port"
  shell.spawn(("python3 spec/helpers/slow_upstream.py >%s 2>/dev/null & echo $! >%s/pid")
    :format(shell.quote(port_file), shell.quote(dir)))
  local port = shell.wait_for(function()
    return tonumber((shell.read_file(port_file) or ""):match("%d+"))
  end, 10)
  assert(port, "slow upstream did not start")
  local tree = dir .. "/lua/infraops"
  shell.must("mkdir -p " .. shell.quote(tree))
  local cwd = shell.must("pwd"):gsub("%s+$", "")
  for file in shell.must("ls lua/infraops"):gmatch("[^\n]+") do
    local target = file == "app.lua" and "real_app.lua" or file
    shell.must(("ln -s %s %s"):format(shell.quote(cwd .. "/lua/infraops/" .. file), shell.quote(tree .. "/" .. target)))
  end
  shell.write_file(tree .. "/app.lua", WRAPPER:format("http://127.0.0.1:" .. port))
  return {
    lua_dir = dir .. "/lua",
    stop = function()
      os.execute(("kill $(cat %s/pid) 2>/dev/null"):format(shell.quote(dir)))
      shell.remove_tree(dir)
    end,
  }
end

return slow_lua
