-- Running commands from specs: quoting, capturing output and exit status.
-- LD_PRELOAD (set for the sanitizer pass so lua5.4 can load instrumented
-- modules) is dropped for child processes, which do not need it.
local clock = require("host.time")

local shell = {}

--- Quotes one word for /bin/sh.
function shell.quote(word)
  return "'" .. tostring(word):gsub("'", "'\\''") .. "'"
end

--- Joins words into a quoted command line.
function shell.join(words)
  local out = {}
  for i, w in ipairs(words) do
    out[i] = shell.quote(w)
  end
  return table.concat(out, " ")
end

--- Runs a shell command line; returns exit code and combined stdout+stderr.
function shell.run(command)
  local pipe = assert(io.popen("env -u LD_PRELOAD sh -c " .. shell.quote(command) .. " 2>&1"))
  local output = pipe:read("a")
  local _, _, code = pipe:close()
  return code, output
end

--- Starts a shell command line in the background (output is the caller's to redirect).
function shell.spawn(command)
  os.execute("env -u LD_PRELOAD sh -c " .. shell.quote(command) .. " >/dev/null 2>&1 &")
end

--- Runs and asserts success; returns the output.
function shell.must(command)
  local code, output = shell.run(command)
  if code ~= 0 then
    error(("command failed (%s): %s\n%s"):format(tostring(code), command, output), 2)
  end
  return output
end

function shell.sleep(seconds)
  os.execute("sleep " .. tostring(seconds))
end

--- A new temporary directory (removed by shell.remove_tree).
function shell.temp_dir()
  return (shell.must("mktemp -d"):gsub("%s+$", ""))
end

function shell.remove_tree(path)
  if path and path:match("^/tmp/") then
    os.execute("rm -rf " .. shell.quote(path))
  end
end

function shell.read_file(path)
  local f = io.open(path, "rb")
  if not f then
    return nil
  end
  local data = f:read("a")
  f:close()
  return data
end

function shell.write_file(path, data)
  local f = assert(io.open(path, "wb"))
  f:write(data)
  f:close()
end

--- Polls fn() every interval seconds until it returns a truthy value or
-- timeout seconds pass; returns that value or nil.
function shell.wait_for(fn, timeout, interval)
  local deadline = clock.monotonic() + (timeout or 10)
  repeat
    local value = fn()
    if value then
      return value
    end
    shell.sleep(interval or 0.05)
  until clock.monotonic() > deadline
  return fn()
end

return shell
