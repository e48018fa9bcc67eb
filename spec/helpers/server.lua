-- Starts the real myapiserver binary for end-to-end specs and stops it.
-- The binary comes from MYAPISERVER_BUILD_DIR (default build/); it listens on
-- a free port (--secure-port=0) that is read back from its JSON log.
local cjson = require("cjson")
local shell = require("spec.helpers.shell")

local server = {}

local BUILD = os.getenv("MYAPISERVER_BUILD_DIR") or "build"

server.binary = BUILD .. "/myapiserver"

-- MYAPISERVER_WRAP: words every server of a run is started under (hack/valgrind.sh runs the
-- end-to-end specs under valgrind this way); "%d" in a word becomes the server's own directory.
local WRAP = {}
for word in (os.getenv("MYAPISERVER_WRAP") or ""):gmatch("%S+") do
  WRAP[#WRAP + 1] = word
end
-- Start-up takes longer under a wrapper such as valgrind.
local START_TIMEOUT = #WRAP > 0 and 120 or 15

local function log_lines(path)
  local lines = {}
  for line in (shell.read_file(path) or ""):gmatch("[^\n]+") do
    local ok, entry = pcall(cjson.decode, line)
    if ok and type(entry) == "table" then
      lines[#lines + 1] = entry
    end
  end
  return lines
end

--- Starts the server. opts.args: extra flags; opts.pki: directory of
-- hack/test-pki.sh output (serving.crt/key, client-ca.crt, front-proxy-ca.crt);
-- opts.env: extra environment variables; opts.kubeconfig: a cluster (else
-- --authentication-skip-lookup); opts.wrap: words to run the binary under
-- (e.g. valgrind; default: $MYAPISERVER_WRAP) and opts.start_timeout: seconds
-- to wait for it (15, or 120 under a wrapper).
-- Returns a handle: port, url(path), log(), stop(), wait_exit().
function server.start(opts)
  local dir = shell.temp_dir()
  local pki = opts.pki
  local args = {
    opts.binary or server.binary, "--secure-port=0", "--bind-address=127.0.0.1", "--log-format=json",
    "--tls-reload-interval=200ms",
    "--tls-cert-file=" .. (opts.cert or pki .. "/serving.crt"),
    "--tls-private-key-file=" .. (opts.key or pki .. "/serving.key"),
  }
  if opts.client_ca ~= false then
    args[#args + 1] = "--client-ca-file=" .. (opts.client_ca or pki .. "/client-ca.crt")
  end
  if opts.requestheader_ca ~= false then
    args[#args + 1] = "--requestheader-client-ca-file=" .. (opts.requestheader_ca or pki .. "/front-proxy-ca.crt")
  end
  if opts.kubeconfig then
    args[#args + 1] = "--kubeconfig=" .. opts.kubeconfig
  else
    args[#args + 1] = "--authentication-skip-lookup" -- no cluster: flags and client certificates only
  end
  for _, a in ipairs(opts.args or {}) do
    args[#args + 1] = a
  end
  local log_path, exit_path, pid_path = dir .. "/server.log", dir .. "/exit", dir .. "/pid"
  -- A background shell starts the binary, records its pid and, later, its exit code.
  for i, word in ipairs(opts.wrap or WRAP) do
    table.insert(args, i, (word:gsub("%%d", dir)))
  end
  local script = ("%s >%s 2>&1 & echo $! >%s; wait $!; echo $? >%s"):format(
    shell.join(args), shell.quote(log_path), shell.quote(pid_path), shell.quote(exit_path))
  -- `env` takes quoted NAME=value words (a quoted word is no shell assignment).
  local env = "env ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:exitcode=23 "
  local names = {}
  for name in pairs(opts.env or {}) do
    names[#names + 1] = name
  end
  table.sort(names)
  for _, name in ipairs(names) do
    env = env .. shell.quote(name .. "=" .. opts.env[name]) .. " "
  end
  shell.spawn(env .. "sh -c " .. shell.quote(script))

  local self = { dir = dir, log_path = log_path }
  self.pid = shell.wait_for(function()
    return tonumber((shell.read_file(pid_path) or ""):match("%d+"))
  end, 10)

  function self.log()
    return log_lines(log_path)
  end

  function self.exit_code()
    return tonumber((shell.read_file(exit_path) or ""):match("%d+"))
  end

  --- Log entries with this msg (and, optionally, matching fields).
  function self.entries(msg, fields)
    local out = {}
    for _, e in ipairs(self.log()) do
      local match = e.msg == msg
      for k, v in pairs(fields or {}) do
        match = match and e[k] == v
      end
      if match then
        out[#out + 1] = e
      end
    end
    return out
  end

  self.port = shell.wait_for(function()
    if self.exit_code() then
      return -1
    end
    local started = self.entries("serving HTTPS")[1]
    return started and tonumber(started.port)
  end, opts.start_timeout or START_TIMEOUT)
  if not self.port or self.port < 0 then
    local log = shell.read_file(log_path) or ""
    error("myapiserver did not start: " .. log)
  end

  function self.url(path)
    return ("https://127.0.0.1:%d%s"):format(self.port, path)
  end

  function self.signal(name)
    os.execute(("kill -%s %d 2>/dev/null"):format(name, self.pid))
  end

  --- Waits for the process to end; returns its exit code or nil on timeout.
  function self.wait_exit(timeout)
    return shell.wait_for(self.exit_code, timeout or 20)
  end

  --- SIGTERM, wait; returns the exit code. Safe to call twice.
  function self.stop()
    if not self.exit_code() then
      self.signal("TERM")
      if not self.wait_exit(30) then
        self.signal("KILL")
      end
    end
    return self.exit_code()
  end

  function self.cleanup()
    self.stop()
    shell.remove_tree(dir)
  end

  return self
end

--- Makes the test PKI (hack/test-pki.sh) once per process and returns its directory.
local pki_dir
function server.pki()
  if not pki_dir then
    pki_dir = shell.temp_dir()
    shell.must("hack/test-pki.sh " .. shell.quote(pki_dir))
  end
  return pki_dir
end

return server
