-- Line coverage of the server's Lua code by the fuzz corpora: reads the
-- "source<TAB>line" files the fuzz targets write with FUZZ_LUA_LINES=path
-- (hack/fuzz.sh --coverage does that), takes each file's executable lines from
-- luac5.4's listing, and prints covered/executable per file.
--   lua5.4 fuzz/coverage.lua ROOT LINES_FILE...
local root = assert(arg[1], "usage: coverage.lua ROOT LINES_FILE...")

local covered = {} -- path relative to root -> set of lines
for i = 2, #arg do
  for entry in io.lines(arg[i]) do
    local source, line = entry:match("^@(.-)\t(%d+)$")
    if source and source:sub(1, #root + 1) == root .. "/" then
      local rel = source:sub(#root + 2)
      covered[rel] = covered[rel] or {}
      covered[rel][tonumber(line)] = true
    end
  end
end

-- Lines that hold an instruction, from `luac5.4 -l -l -p` (function headers,
-- the line of a function's definition and its final RETURN excluded: a hook
-- never reports them as reached).
local function executable(path)
  local lines, skip = {}, {}
  local pipe = assert(io.popen(("luac5.4 -l -p %q 2>/dev/null"):format(root .. "/" .. path)))
  for text in pipe:lines() do
    local first, last = text:match("^%a+ <.-:(%d+),(%d+)>")
    if first then
      skip[tonumber(first)] = first ~= "0" or nil
      skip[tonumber(last)] = true
    end
    local line, op = text:match("^%s+%d+%s+%[(%d+)%]%s+(%u+)")
    if line and op ~= "VARARGPREP" then
      lines[tonumber(line)] = true
    end
  end
  pipe:close()
  for line in pairs(skip) do
    lines[line] = nil
  end
  return lines
end

local files = {}
local list = assert(io.popen(("cd %q && ls lua/infraops/*.lua lua/infraops/*/*.lua providers/*.lua"):format(root)))
for path in list:lines() do
  files[#files + 1] = path
end
list:close()

local total_hit, total_all = 0, 0
print(("%-40s %9s %6s"):format("file", "lines", "cover"))
for _, path in ipairs(files) do
  local hit, all = 0, 0
  for line in pairs(executable(path)) do
    all = all + 1
    if covered[path] and covered[path][line] then
      hit = hit + 1
    end
  end
  total_hit, total_all = total_hit + hit, total_all + all
  if all > 0 then
    print(("%-40s %4d/%-4d %5.1f%%"):format(path, hit, all, 100 * hit / all))
  end
end
print(("%-40s %4d/%-4d %5.1f%%"):format("total", total_hit, total_all, 100 * total_hit / total_all))
