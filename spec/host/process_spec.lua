-- host.process (host/bindings/process.c): output, exit status, environment, deadlines and
-- cleanup of real child processes (sh, cat, env, sleep from the system).
local process = require("host.process")

local function now()
  local p = assert(io.popen("date +%s.%N"))
  local t = tonumber(p:read("l"))
  p:close()
  return t
end

local function lua_pid()
  local f = assert(io.open("/proc/self/stat", "r"))
  local pid = f:read("a"):match("^(%d+)")
  f:close()
  return pid
end

local function run_ok(options)
  local res, message, code = process.run(options)
  assert(res, tostring(message) .. " " .. tostring(code))
  return res
end

-- For the spec's own helper commands: without LD_PRELOAD (set in the sanitizer pass), under
-- which ps and pgrep hang.
local CLEAN_ENV = { PATH = os.getenv("PATH") }

-- A sleep argument no other process on the machine has, so pgrep -f finds only ours.
local function unique_sleep()
  return string.format("%d.%06d", 10 + math.random(0, 9), math.random(0, 999999))
end

-- Processes whose command line contains pattern (pgrep excludes itself; no shell involved).
local function matching(pattern)
  return run_ok({ argv = { "pgrep", "-f", pattern }, env = CLEAN_ENV, inherit_env = false }).stdout
end

-- A killed grandchild may take a moment to go: ask again for up to about a second.
local function gone(pattern)
  for _ = 1, 50 do
    if matching(pattern) == "" then return true end
    run_ok({ argv = { "sleep", "0.02" }, env = CLEAN_ENV, inherit_env = false })
  end
  return false
end

-- Children of this Lua process other than the ps that lists them, as "pid stat args" lines.
local function children()
  local argv = { "ps", "--ppid", lua_pid(), "-o", "pid=,stat=,args=" }
  local out = run_ok({ argv = argv, env = CLEAN_ENV, inherit_env = false }).stdout
  local rest = {}
  for line in out:gmatch("[^\n]+") do
    if not line:match("^%s*%d+%s+%S+%s+ps ") then rest[#rest + 1] = line end
  end
  return rest
end

local function failure(options)
  local res, message, code = process.run(options)
  assert.is_nil(res)
  assert.is_string(message)
  assert.matches("host.process.run: ", message, 1, true)
  return code, message
end

local function raises(text, options)
  local ok, err = pcall(process.run, options)
  assert.is_false(ok, "expected a raise containing: " .. text)
  assert.matches("host.process.run: " .. text, tostring(err), 1, true)
end

describe("host.process", function()
  it("is a table with run and sets no globals", function()
    assert.is_function(process.run)
    assert.is_nil(rawget(_G, "process"))
    assert.is_nil(rawget(_G, "host"))
  end)

  describe("run()", function()
    describe("output and status", function()
      it("returns stdout, stderr and the exit code", function()
        local res = run_ok({ argv = { "echo", "hello", "world" } })
        assert.same({ exit_code = 0, stdout = "hello world\n", stderr = "" }, res)
      end)

      it("passes arguments verbatim, without a shell", function()
        local res = run_ok({ argv = { "printf", "%s|", "a b", "$HOME", "'q'", "*", "" } })
        assert.equal("a b|$HOME|'q'|*||", res.stdout)
      end)

      it("keeps stderr separate", function()
        local res = run_ok({ argv = { "sh", "-c", "echo out; echo err >&2; echo out2" } })
        assert.equal("out\nout2\n", res.stdout)
        assert.equal("err\n", res.stderr)
      end)

      it("returns a non-zero exit code as a result, not a failure", function()
        local res = run_ok({ argv = { "sh", "-c", "echo partial; exit 3" } })
        assert.equal(3, res.exit_code)
        assert.is_nil(res.signal)
        assert.equal("partial\n", res.stdout)
        assert.equal(1, run_ok({ argv = { "false" } }).exit_code)
      end)

      it("reports a child killed by a signal with signal and no exit code", function()
        local res = run_ok({ argv = { "sh", "-c", "kill -KILL $$" } })
        assert.equal(9, res.signal)
        assert.is_nil(res.exit_code)
      end)

      it("preserves binary output, NUL bytes included", function()
        assert.equal("a\0b\255\n", run_ok({ argv = { "printf", "a\\000b\\377\\n" } }).stdout)
        local all = run_ok({ argv = { "head", "-c", "70000", "/dev/urandom" } }).stdout
        assert.equal(70000, #all)
      end)

      it("waits for the exit of a child that closed its output early", function()
        local res = run_ok({ argv = { "sh", "-c", "exec >&- 2>&-; sleep 0.2; exit 4" } })
        assert.equal(4, res.exit_code)
        assert.equal("", res.stdout)
      end)

      it("runs in cwd when given", function()
        assert.equal("/\n", run_ok({ argv = { "pwd" }, cwd = "/" }).stdout)
        assert.equal("/usr/bin\n", run_ok({ argv = { "pwd" }, cwd = "/usr/bin" }).stdout)
      end)

      it("fails with io for a cwd that does not exist or is not a directory", function()
        assert.equal("io", (failure({ argv = { "pwd" }, cwd = "/nonexistent-dir-for-spec" })))
        assert.equal("io", (failure({ argv = { "pwd" }, cwd = "/etc/hostname" })))
      end)
    end)

    describe("stdin", function()
      it("passes text through", function()
        assert.equal("line 1\nline 2", run_ok({ argv = { "cat" }, stdin = "line 1\nline 2" }).stdout)
      end)

      it("passes binary and large input through", function()
        local data = string.rep("\0\1\2\255xyz", 200000)
        assert.equal(data, run_ok({ argv = { "cat" }, stdin = data, max_output = #data }).stdout)
      end)

      it("is empty (/dev/null) when not given, so a reader does not hang", function()
        assert.equal("", run_ok({ argv = { "cat" } }).stdout)
        assert.equal("", run_ok({ argv = { "cat" }, stdin = "" }).stdout)
      end)

      it("does not trouble the caller when the child does not read it", function()
        local res = run_ok({ argv = { "true" }, stdin = string.rep("x", 1000000) })
        assert.equal(0, res.exit_code)
      end)
    end)

    describe("environment", function()
      local function env_lines(options)
        local lines = {}
        for line in run_ok(options).stdout:gmatch("[^\n]+") do lines[#lines + 1] = line end
        table.sort(lines)
        return lines
      end

      it("inherits the host environment by default and adds the given variables", function()
        local lines = env_lines({ argv = { "env" }, env = { MYAPISERVER_SPEC_VAR = "a value=with equals" } })
        local seen_path, seen_var = false, false
        for _, line in ipairs(lines) do
          seen_path = seen_path or line:match("^PATH=") ~= nil
          seen_var = seen_var or line == "MYAPISERVER_SPEC_VAR=a value=with equals"
        end
        assert.is_true(seen_path)
        assert.is_true(seen_var)
      end)

      it("overrides an inherited variable rather than repeating it", function()
        local homes = {}
        for _, line in ipairs(env_lines({ argv = { "env" }, env = { HOME = "/overridden" } })) do
          if line:match("^HOME=") then homes[#homes + 1] = line end
        end
        assert.same({ "HOME=/overridden" }, homes)
      end)

      it("passes only the given variables with inherit_env = false", function()
        assert.same({ "A=1", "B=" }, env_lines({ argv = { "env" }, env = { A = "1", B = "" }, inherit_env = false }))
        assert.same({}, env_lines({ argv = { "env" }, inherit_env = false }))
      end)

      it("looks programs up on the host's PATH, also when the child's environment is empty", function()
        assert.equal("x\n", run_ok({ argv = { "echo", "x" }, inherit_env = false }).stdout)
        assert.equal("y\n", run_ok({ argv = { "/bin/echo", "y" } }).stdout)
      end)

      it("gives the child a normal signal state in its own process group", function()
        local status = run_ok({ argv = { "grep", "-E", "^Sig(Blk|Ign)", "/proc/self/status" } }).stdout
        local blocked, ignored = status:match("^SigBlk:%s*(%x+)\nSigIgn:%s*(%x+)\n$")
        -- Signals 1-31 (bits 0-30); glibc's posix_spawn itself ignores its internal 32 and 33.
        assert.equal(0, tonumber(blocked, 16) & 0x7fffffff, status)
        assert.equal(0, tonumber(ignored, 16) & 0x7fffffff, status)
        local ids = run_ok({ argv = { "sh", "-c", "echo $$; cut -d' ' -f5 /proc/$$/stat" } }).stdout
        local pid, pgid = ids:match("^(%d+)\n(%d+)\n$")
        assert.is_not_nil(pid)
        assert.equal(pid, pgid)
      end)

      it("resets a blocked mask and ignored signals the host set up, as the server does", function()
        -- python3 blocks SIGTERM/SIGINT and ignores SIGPIPE, then execs a Lua that runs grep.
        local lua = string.format([[package.cpath = %q
          local r = require("host.process").run({ argv = { "grep", "-E", "^Sig(Blk|Ign)", "/proc/self/status" } })
          io.write(r.stdout)]], package.cpath)
        local python = [=[
import os, signal, sys
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
signal.signal(signal.SIGPIPE, signal.SIG_IGN)
os.execvp("lua5.4", ["lua5.4", "-e", sys.argv[1]])
]=]
        local status = run_ok({ argv = { "python3", "-c", python, lua } }).stdout
        local blocked, ignored = status:match("^SigBlk:%s*(%x+)\nSigIgn:%s*(%x+)\n$")
        assert.is_not_nil(blocked, status)
        assert.equal(0, tonumber(blocked, 16) & 0x7fffffff, status)
        assert.equal(0, tonumber(ignored, 16) & 0x7fffffff, status)
      end)
    end)

    describe("not_found", function()
      it("is returned for a program that is not on PATH", function()
        local code, message = failure({ argv = { "no-such-program-for-myapiserver-spec" } })
        assert.equal("not_found", code)
        assert.matches("no-such-program-for-myapiserver-spec", message, 1, true)
      end)

      it("is returned for a missing path, a directory and a file that is not executable", function()
        assert.equal("not_found", (failure({ argv = { "/nonexistent/program" } })))
        assert.equal("not_found", (failure({ argv = { "/" } })))
        assert.equal("not_found", (failure({ argv = { "/etc/hostname" } })))
      end)
    end)

    describe("timeout", function()
      it("kills a child that runs too long and leaves nothing behind", function()
        local marker = unique_sleep()
        local started = now()
        local code, message = failure({ argv = { "sleep", marker }, timeout = 0.3 })
        assert.equal("timeout", code)
        assert.matches("0.3 s", message, 1, true)
        assert.is_true(now() - started < 5, "took " .. (now() - started) .. " s")
        assert.is_true(gone("sleep " .. marker))
      end)

      it("kills a child that ignores SIGTERM", function()
        local marker = unique_sleep()
        local started = now()
        local code = failure({ argv = { "sh", "-c", 'trap "" TERM; sleep ' .. marker .. "; :" }, timeout = 0.3 })
        assert.equal("timeout", code)
        assert.is_true(now() - started < 5)
        assert.is_true(gone("sleep " .. marker))
      end)

      it("kills grandchildren in the child's process group", function()
        local outer, inner = unique_sleep(), unique_sleep()
        local script = string.format("sleep %s & sleep %s; :", inner, outer)
        assert.equal("timeout", (failure({ argv = { "sh", "-c", script }, timeout = 0.3 })))
        assert.is_true(gone("sleep " .. outer))
        assert.is_true(gone("sleep " .. inner))
      end)

      it("covers a grandchild that keeps the output open after the child exited", function()
        local marker = unique_sleep()
        local code = failure({ argv = { "sh", "-c", "sleep " .. marker .. " & exit 0" }, timeout = 0.3 })
        assert.equal("timeout", code)
        assert.is_true(gone("sleep " .. marker))
      end)

      it("covers a child that closed its output but does not exit", function()
        local marker = unique_sleep()
        local code = failure({ argv = { "sh", "-c", "exec >&- 2>&-; sleep " .. marker .. "; :" }, timeout = 0.3 })
        assert.equal("timeout", code)
        assert.is_true(gone("sleep " .. marker))
      end)

      it("never puts the output into the message", function()
        local _, message = failure({ argv = { "sh", "-c", "echo SECRET-OUT; echo SECRET-ERR >&2; sleep 5" },
          timeout = 0.3 })
        assert.is_nil(message:find("SECRET", 1, true))
      end)
    end)

    describe("too_large", function()
      it("is returned, and the child killed, when stdout passes max_output", function()
        local code, message = failure({ argv = { "yes", "SECRET" }, max_output = 1000 })
        assert.equal("too_large", code)
        assert.is_nil(message:find("SECRET", 1, true))
      end)

      it("applies to stderr as well", function()
        local code = failure({ argv = { "sh", "-c", "head -c 5000 /dev/zero >&2" }, max_output = 100 })
        assert.equal("too_large", code)
      end)

      it("accepts output of exactly max_output bytes", function()
        assert.equal("abc", run_ok({ argv = { "printf", "abc" }, max_output = 3 }).stdout)
        assert.equal("too_large", (failure({ argv = { "printf", "abcd" }, max_output = 3 })))
      end)

      it("applies a 1 MiB limit by default", function()
        assert.equal(1048576, #run_ok({ argv = { "head", "-c", "1048576", "/dev/zero" } }).stdout)
        assert.equal("too_large", (failure({ argv = { "head", "-c", "1048577", "/dev/zero" } })))
      end)
    end)

    describe("cleanup", function()
      it("leaves no zombie or other child after many runs", function()
        assert.same({}, children())
        for i = 1, 20 do
          local res = run_ok({ argv = { "sh", "-c", "exit " .. (i % 4) } })
          assert.equal(i % 4, res.exit_code)
        end
        failure({ argv = { "sleep", unique_sleep() }, timeout = 0.1 })
        failure({ argv = { "yes" }, max_output = 10 })
        failure({ argv = { "no-such-program-for-myapiserver-spec" } })
        assert.same({}, children())
      end)
    end)

    describe("misuse", function()
      local cases = {
        { "argument must be a table", nil },
        { "argument must be a table", "echo" },
        { "'argv' must be a non-empty list of strings", {} },
        { "'argv' must be a non-empty list of strings", { argv = {} } },
        { "'argv' must be a non-empty list of strings", { argv = "echo" } },
        { "every 'argv' element must be a string", { argv = { "echo", 1 } } },
        { "every 'argv' element must be a string", { argv = { "echo", {} } } },
        { "every 'argv' element must not contain NUL", { argv = { "echo", "a\0b" } } },
        { "'argv[1]' must not be empty", { argv = { "" } } },
        { "unknown option 'args'", { argv = { "echo" }, args = {} } },
        { "option names must be strings", { argv = { "echo" }, [1] = "x" } },
        { "'timeout' must be > 0", { argv = { "echo" }, timeout = 0 } },
        { "'timeout' must be > 0", { argv = { "echo" }, timeout = -1 } },
        { "'timeout' must be > 0", { argv = { "echo" }, timeout = 0 / 0 } },
        { "'timeout' must be a number", { argv = { "echo" }, timeout = "1" } },
        { "'max_output' must be between", { argv = { "echo" }, max_output = 0 } },
        { "'max_output' must be an integer", { argv = { "echo" }, max_output = 1.5 } },
        { "'env' must be a table", { argv = { "echo" }, env = "A=1" } },
        { "'env' value of 'A' must be a string", { argv = { "echo" }, env = { A = 1 } } },
        { "'env' value of 'A' must not contain NUL", { argv = { "echo" }, env = { A = "x\0y" } } },
        { "'env' name 'A=B' is empty or contains '='", { argv = { "echo" }, env = { ["A=B"] = "1" } } },
        { "'env' name '' is empty", { argv = { "echo" }, env = { [""] = "1" } } },
        { "'env' names must be strings", { argv = { "echo" }, env = { "x" } } },
        { "'inherit_env' must be a boolean", { argv = { "echo" }, inherit_env = "yes" } },
        { "'stdin' must be a string", { argv = { "echo" }, stdin = 5 } },
        { "'cwd' must be a string", { argv = { "echo" }, cwd = 5 } },
      }
      for _, case in ipairs(cases) do
        it("raises '" .. case[1] .. "'", function()
          raises(case[1], case[2])
        end)
      end

      it("does not put env values into messages", function()
        local ok, err = pcall(process.run, { argv = { "echo" }, env = { TOKEN = "secret\0value" } })
        assert.is_false(ok)
        assert.is_nil(tostring(err):find("secret", 1, true))
      end)
    end)
  end)
end)
