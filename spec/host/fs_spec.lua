-- host.fs (host/bindings/fs.c): read_file, stat and list_dir on a temporary tree,
-- checked against coreutils; permissions (as root too), FIFOs, symlinks, bounds, misuse.
local fs = require("host.fs")
local shell = require("helpers.shell")

local BUILD = os.getenv("MYAPISERVER_BUILD_DIR") or "build"
local MIB = 1024 * 1024
local SECRET = "SECRET-CONTENT-7f3a" -- must never show up in a message

local IS_ROOT = shell.must("id -u"):match("^%s*(%d+)") == "0"
local HAVE_SETPRIV = shell.run("command -v setpriv") == 0

local function raises(fn, ...)
  local ok, err = pcall(fn, ...)
  return not ok, tostring(err)
end

-- Runs a Lua chunk in a child lua5.4 with host.fs loaded as `fs`, after `prefix`
-- (e.g. "timeout 10"). LD_PRELOAD (sanitizer pass) is kept for lua5.4 only.
-- Returns the child's output and whether it exited 0.
local function run_lua(prefix, body)
  local code = string.format("package.cpath = %q .. package.cpath; local fs = require('host.fs'); %s",
    BUILD .. "/lua/?.so;", body)
  local preload = os.getenv("LD_PRELOAD") or ""
  local command = string.format("env -u LD_PRELOAD %s env LD_PRELOAD=%s lua5.4 -e %s 2>&1", prefix,
    shell.quote(preload), shell.quote(code))
  local p = assert(io.popen(command))
  local out = p:read("a")
  local ok = p:close()
  return out, ok == true
end

-- The code a call returns when made by an unprivileged user (uid/gid 65534).
local function code_as_nobody(call)
  local out, ok = run_lua("setpriv --reuid=65534 --regid=65534 --clear-groups",
    "local v, m, c = " .. call .. " io.write(tostring(c), '|', tostring(m))")
  assert(ok, out)
  return out:match("^([^|]*)|"), out
end

local function assert_failure(code, path, value, message, got_code)
  assert.is_nil(value)
  assert.are.equal(code, got_code, message)
  assert.truthy(message:find(path, 1, true), message)
  assert.truthy(message:find("host.fs.", 1, true), message)
  assert.is_nil(message:find(SECRET, 1, true))
end

describe("host.fs", function()
  local dir

  local function path(name)
    return dir .. "/" .. name
  end

  lazy_setup(function()
    dir = shell.temp_dir()
    shell.must("chmod 755 " .. shell.quote(dir)) -- the unprivileged child must get in
  end)

  lazy_teardown(function()
    if dir then
      shell.run("chmod -R u+rwx " .. shell.quote(dir))
      shell.remove_tree(dir)
    end
  end)

  describe("read_file()", function()
    it("returns the bytes exactly", function()
      local all = {}
      for b = 0, 255 do all[#all + 1] = string.char(b) end
      local bytes = table.concat(all) .. "\r\n\0end"
      shell.write_file(path("bytes"), bytes)
      assert.are.equal(bytes, fs.read_file(path("bytes")))
      shell.write_file(path("empty"), "")
      assert.are.equal("", fs.read_file(path("empty")))
    end)

    it("reads exactly max_bytes and returns too_large for one byte more", function()
      shell.write_file(path("ten"), "0123456789")
      assert.are.equal("0123456789", fs.read_file(path("ten"), 10))
      assert.are.equal("0123456789", fs.read_file(path("ten"), 11))
      assert_failure("too_large", path("ten"), fs.read_file(path("ten"), 9))
      assert_failure("too_large", path("ten"), fs.read_file(path("ten"), 1))
    end)

    it("defaults max_bytes to 1 MiB", function()
      shell.write_file(path("mib"), string.rep("x", MIB))
      assert.are.equal(MIB, #fs.read_file(path("mib")))
      shell.write_file(path("mib1"), string.rep("x", MIB) .. "y")
      assert_failure("too_large", path("mib1"), fs.read_file(path("mib1")))
      assert_failure("too_large", path("mib1"), fs.read_file(path("mib1"), nil))
      assert.are.equal(MIB + 1, #fs.read_file(path("mib1"), 2 * MIB))
    end)

    it("reads files whose size the kernel does not report (procfs)", function()
      local status = assert(fs.read_file("/proc/self/status"))
      assert.truthy(status:find("Name:", 1, true))
      assert.are.equal(0, fs.stat("/proc/self/status").size)
      assert_failure("too_large", "/proc/self/status", fs.read_file("/proc/self/status", 10))
    end)

    it("returns not_found for a missing file, a missing directory, or a file used as one", function()
      shell.write_file(path("plain"), SECRET)
      for _, p in ipairs({ path("missing"), path("nodir/file"), path("plain/child"), "" }) do
        assert_failure("not_found", p, fs.read_file(p))
      end
    end)

    it("returns permission for an unreadable file, except for root", function()
      shell.write_file(path("locked"), SECRET)
      shell.must("chmod 000 " .. shell.quote(path("locked")))
      if IS_ROOT then
        -- root bypasses permission bits: the read succeeds.
        assert.are.equal(SECRET, fs.read_file(path("locked")))
        assert.is_true(HAVE_SETPRIV, "running as root without setpriv: permission untested")
        local code, out = code_as_nobody(string.format("fs.read_file(%q)", path("locked")))
        assert.are.equal("permission", code, out)
        assert.is_nil(out:find(SECRET, 1, true))
      else
        assert_failure("permission", path("locked"), fs.read_file(path("locked")))
      end
    end)

    it("returns io for a directory", function()
      assert_failure("io", dir, fs.read_file(dir))
    end)

    it("returns io for a FIFO without waiting for a writer", function()
      shell.must("mkfifo " .. shell.quote(path("fifo")))
      -- In a child under timeout: a regression fails here instead of hanging the run.
      local out, ok = run_lua("timeout 10", string.format(
        "local v, m, c = fs.read_file(%q) io.write(tostring(v), '|', tostring(c))", path("fifo")))
      assert.is_true(ok, out)
      assert.are.equal("nil|io", out)
    end)

    it("follows symlinks", function()
      shell.write_file(path("target"), "via link")
      shell.must("ln -s target " .. shell.quote(path("link")))
      assert.are.equal("via link", fs.read_file(path("link")))
      shell.must("ln -s missing-target " .. shell.quote(path("dangling")))
      assert_failure("not_found", path("dangling"), fs.read_file(path("dangling")))
    end)

    it("raises for max_bytes outside 1..64 MiB or not an integer", function()
      shell.write_file(path("small"), "x")
      for _, bad in ipairs({ 0, -1, 64 * MIB + 1, math.maxinteger, 1.5, "lots", {}, true }) do
        local raised, err = raises(fs.read_file, path("small"), bad)
        assert.is_true(raised, "accepted " .. tostring(bad))
        assert.truthy(err:find("host.fs.read_file", 1, true), err)
      end
      assert.are.equal("x", fs.read_file(path("small"), 64 * MIB))
    end)
  end)

  describe("stat()", function()
    -- coreutils' view of the same path.
    local function coreutils_stat(p)
      local out = shell.must("stat -L -c '%s %i %d %.9Y' " .. shell.quote(p))
      local size, inode, dev, mtime = out:match("^(%d+) (%d+) (%d+) ([%d.]+)")
      return { size = tonumber(size), inode = tonumber(inode), dev = tonumber(dev), mtime = tonumber(mtime) }
    end

    it("reports size, mtime with a fraction, inode, dev and type of a file", function()
      shell.write_file(path("stat-file"), "12345")
      shell.must("touch -d @1704164645.123456789 " .. shell.quote(path("stat-file")))
      local st = assert(fs.stat(path("stat-file")))
      local want = coreutils_stat(path("stat-file"))
      assert.are.equal("file", st.type)
      assert.are.equal(5, st.size)
      assert.are.equal(want.inode, st.inode)
      assert.are.equal(want.dev, st.dev)
      assert.are.equal("float", math.type(st.mtime))
      assert.is_true(math.abs(st.mtime - 1704164645.123456789) < 1e-6, tostring(st.mtime))
      assert.are.equal("integer", math.type(st.size))
    end)

    it("reports directories and other file types", function()
      assert.are.equal("directory", fs.stat(dir).type)
      shell.must("mkfifo " .. shell.quote(path("stat-fifo")))
      assert.are.equal("other", fs.stat(path("stat-fifo")).type)
      assert.are.equal("other", fs.stat("/dev/null").type)
    end)

    it("follows symlinks, so a Secret volume's ..data swap shows as a new inode", function()
      local vol = path("volume")
      shell.must(table.concat({
        "mkdir -p " .. shell.quote(vol .. "/..2024_a") .. " " .. shell.quote(vol .. "/..2024_b"),
        "printf old > " .. shell.quote(vol .. "/..2024_a/token"),
        "printf new-token > " .. shell.quote(vol .. "/..2024_b/token"),
        "ln -s ..2024_a " .. shell.quote(vol .. "/..data"),
        "ln -s ..data/token " .. shell.quote(vol .. "/token"),
      }, " && "))
      local before = assert(fs.stat(vol .. "/token"))
      assert.are.equal("file", before.type)
      assert.are.equal(coreutils_stat(vol .. "/..2024_a/token").inode, before.inode)
      assert.are.equal(3, before.size)
      -- kubelet's atomic swap: a new ..data link renamed over the old one.
      shell.must("ln -s ..2024_b " .. shell.quote(vol .. "/..data_tmp") .. " && mv -T " ..
        shell.quote(vol .. "/..data_tmp") .. " " .. shell.quote(vol .. "/..data"))
      local after = assert(fs.stat(vol .. "/token"))
      assert.are.equal(coreutils_stat(vol .. "/..2024_b/token").inode, after.inode)
      assert.are_not.equal(before.inode, after.inode)
      assert.are.equal(9, after.size)
      assert.are.equal("new-token", fs.read_file(vol .. "/token"))
    end)

    it("returns not_found for a missing path or a dangling link", function()
      shell.run("ln -s nowhere " .. shell.quote(path("stat-dangling")))
      for _, p in ipairs({ path("nope"), path("nope/deeper"), path("stat-dangling") }) do
        assert_failure("not_found", p, fs.stat(p))
      end
    end)

    it("returns permission below an unsearchable directory, except for root", function()
      shell.must("mkdir -p " .. shell.quote(path("closed")) .. " && touch " ..
        shell.quote(path("closed/inside")) .. " && chmod 000 " .. shell.quote(path("closed")))
      if IS_ROOT then
        assert.are.equal("file", fs.stat(path("closed/inside")).type)
        assert.is_true(HAVE_SETPRIV, "running as root without setpriv: permission untested")
        local code, out = code_as_nobody(string.format("fs.stat(%q)", path("closed/inside")))
        assert.are.equal("permission", code, out)
      else
        assert_failure("permission", path("closed/inside"), fs.stat(path("closed/inside")))
      end
    end)
  end)

  describe("list_dir()", function()
    it("returns the entry names sorted by bytes, without . and ..", function()
      local d = path("listing")
      shell.must("mkdir -p " .. shell.quote(d .. "/sub"))
      for _, name in ipairs({ "b", "a", "B", ".hidden", "with space", "\195\169t\195\169", "a.txt", "10", "9" }) do
        shell.write_file(d .. "/" .. name, "")
      end
      assert.are.same({ ".hidden", "10", "9", "B", "a", "a.txt", "b", "sub", "with space", "\195\169t\195\169" },
        fs.list_dir(d))
    end)

    it("returns an empty table for an empty directory", function()
      shell.must("mkdir -p " .. shell.quote(path("empty-dir")))
      assert.are.same({}, fs.list_dir(path("empty-dir")))
    end)

    it("lists up to 10000 entries and returns too_large beyond", function()
      local d = path("many")
      shell.must("mkdir -p " .. shell.quote(d) .. " && cd " .. shell.quote(d) ..
        " && seq -f 'f%05g' 1 10000 | xargs touch")
      local names = assert(fs.list_dir(d))
      assert.are.equal(10000, #names)
      assert.are.equal("f00001", names[1])
      assert.are.equal("f10000", names[10000])
      shell.must("touch " .. shell.quote(d .. "/f10001"))
      assert_failure("too_large", d, fs.list_dir(d))
    end)

    it("returns not_found for a missing directory and io for a file", function()
      shell.write_file(path("not-a-dir"), SECRET)
      assert_failure("not_found", path("no-such-dir"), fs.list_dir(path("no-such-dir")))
      assert_failure("io", path("not-a-dir"), fs.list_dir(path("not-a-dir")))
    end)

    it("returns permission for an unreadable directory, except for root", function()
      shell.must("mkdir -p " .. shell.quote(path("sealed")) .. " && touch " ..
        shell.quote(path("sealed/x")) .. " && chmod 000 " .. shell.quote(path("sealed")))
      if IS_ROOT then
        assert.are.same({ "x" }, fs.list_dir(path("sealed")))
        assert.is_true(HAVE_SETPRIV, "running as root without setpriv: permission untested")
        local code, out = code_as_nobody(string.format("fs.list_dir(%q)", path("sealed")))
        assert.are.equal("permission", code, out)
      else
        assert_failure("permission", path("sealed"), fs.list_dir(path("sealed")))
      end
    end)
  end)

  describe("misuse", function()
    for _, name in ipairs({ "read_file", "stat", "list_dir" }) do
      it("raises for " .. name .. " with a path that is not a string or holds a NUL", function()
        shell.write_file(path("real"), "x")
        for _, bad in ipairs({ 123, {}, true, path("real") .. "\0ignored", "\0" }) do
          local raised, err = raises(fs[name], bad)
          assert.is_true(raised, name .. " accepted " .. tostring(bad))
          assert.truthy(err:find("host.fs." .. name, 1, true), err)
        end
        local raised, err = raises(fs[name])
        assert.is_true(raised)
        assert.truthy(err:find("path must be a string", 1, true), err)
        assert.truthy(select(2, raises(fs[name], "a\0b")):find("NUL", 1, true))
      end)
    end
  end)
end)
