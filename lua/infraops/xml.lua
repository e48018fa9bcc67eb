-- Reads leaf values out of small XML answers (EC2, STS): not a general XML
-- parser. One linear pass over the document with a stack of open elements, so
-- garbage, truncated or huge input costs O(n) and never raises.
--
-- Rules:
-- * An element matches `tag` by local name (`<ns:tag>` matches "tag"); a tag
--   given with a prefix ("ns:tag") must match the qualified name exactly.
-- * An element counts only when its own end tag closes it (or it is
--   self-closing, text ""); unclosed elements give nothing.
-- * The text of a leaf has the five predefined entities and numeric
--   character references decoded, CDATA sections kept literally; unknown
--   entities and references to characters XML forbids are left as written.
-- * An element with child markup (elements, comments, processing
--   instructions) gives its raw inner text, undecoded.
local xml = {}

local MARKUP = "<[%a_:!?/\128-\255]" -- a '<' that can open markup; others are text
local START_NAME = "^([%a_:\128-\255][%w_:%.%-\128-\255]*)()"
local NAME = "^([%w_:%.%-\128-\255]+)()"
local PREDEFINED = { lt = "<", gt = ">", amp = "&", quot = '"', apos = "'" }

local function allowed_char(n)
  return n == 0x9 or n == 0xA or n == 0xD or (n >= 0x20 and n <= 0xD7FF) or (n >= 0xE000 and n <= 0xFFFD)
    or (n >= 0x10000 and n <= 0x10FFFF)
end

local function decode_reference(ref)
  local digits = ref:match("^#[xX](%x+)$")
  local n
  if digits then
    n = #digits <= 8 and tonumber(digits, 16) or nil
  else
    digits = ref:match("^#(%d+)$")
    n = digits and #digits <= 10 and tonumber(digits) or nil
  end
  if n then
    return allowed_char(n) and utf8.char(n) or nil
  end
  return PREDEFINED[ref] -- nil keeps the reference as written
end

local function decode_entities(s)
  return (s:gsub("&(#?%w+);", decode_reference))
end

-- Decodes the character data between content_start and content_end
-- (inclusive), keeping CDATA sections literal.
local function leaf_text(doc, first, last, has_cdata)
  if not has_cdata then
    return decode_entities(doc:sub(first, last))
  end
  local parts = {}
  local i = first
  while i <= last do
    local open = doc:find("<![CDATA[", i, true)
    if not open or open > last then
      parts[#parts + 1] = decode_entities(doc:sub(i, last))
      break
    end
    parts[#parts + 1] = decode_entities(doc:sub(i, open - 1))
    local close = doc:find("]]>", open + 9, true)
    parts[#parts + 1] = doc:sub(open + 9, close - 1)
    i = close + 3
  end
  return table.concat(parts)
end

local function matcher(tag)
  if tag:find(":", 1, true) then
    return function(qname)
      return qname == tag
    end
  end
  local suffix = ":" .. tag
  return function(qname)
    return qname == tag or (#qname > #suffix and qname:sub(-#suffix) == suffix)
  end
end

-- Finds the '>' ending a start tag whose name ended before `i`, skipping
-- quoted attribute values. Returns its position, or false when the tag is
-- broken by a '<' (not a tag: rescan from there), or nil at the end of input.
local function start_tag_end(doc, i)
  while true do
    local p = doc:find("[<>\"']", i)
    if not p then
      return nil
    end
    local c = doc:byte(p)
    if c == 62 then -- '>'
      return p
    elseif c == 60 then -- '<'
      return false, p
    end
    local close = doc:find(c == 34 and '"' or "'", p + 1, true)
    if not close then
      return nil
    end
    i = close + 1
  end
end

-- Walks the document and calls on_match(text) for every outermost matching
-- element, in document order; stops when on_match returns true. The stack of
-- open elements is kept in parallel arrays (no table per element).
local function scan(doc, tag, on_match)
  local is_match = matcher(tag)
  local names, contents, flags, n = {}, {}, {}, 0 -- flags: 1 = has child markup, 2 = has CDATA
  local open = {} -- open[qname] = how many of that name are on the stack
  local current = 0 -- stack index of the open matching element, 0 if none (matches never nest)
  local i = 1
  while true do
    local lt = doc:find(MARKUP, i)
    if not lt then
      return
    end
    local c = doc:byte(lt + 1)
    if c == 33 then -- '!'
      local close
      if doc:sub(lt, lt + 8) == "<![CDATA[" then
        close = doc:find("]]>", lt + 9, true)
        if n > 0 then
          flags[n] = flags[n] | 2
        end
      else
        if doc:sub(lt, lt + 3) == "<!--" then
          close = doc:find("-->", lt + 4, true)
        else
          close = doc:find(">", lt + 2, true)
          close = close and close - 2
        end
        if n > 0 then
          flags[n] = flags[n] | 1
        end
      end
      if not close then
        return
      end
      i = close + 3
    elseif c == 63 then -- '?'
      local close = doc:find("?>", lt + 2, true)
      if not close then
        return
      end
      if n > 0 then
        flags[n] = flags[n] | 1
      end
      i = close + 2
    elseif c == 47 then -- '/': end tag
      local name, after = doc:match(NAME, lt + 2)
      local gt = after and (doc:byte(after) == 62 and after or doc:match("^%s*()>", after))
      if not gt then
        i = after or lt + 2
      else
        i = gt + 1
        if (open[name] or 0) > 0 then
          while names[n] ~= name do -- elements left unclosed inside this one: dropped
            open[names[n]] = open[names[n]] - 1
            if n == current then
              current = 0
            end
            n = n - 1
          end
          local closed = n
          open[name] = open[name] - 1
          n = n - 1
          if closed == current then
            current = 0
            local first, f = contents[closed], flags[closed]
            local text
            if f & 1 ~= 0 then
              text = doc:sub(first, lt - 1)
            else
              text = leaf_text(doc, first, lt - 1, f & 2 ~= 0)
            end
            if on_match(text) then
              return
            end
          end
        end
      end
    else -- a start tag (MARKUP guarantees the name's first character)
      local name, after = doc:match(START_NAME, lt + 1)
      local gt, resume = after, nil
      if doc:byte(after) ~= 62 then -- not a plain "<name>": attributes, spaces or "/>"
        gt, resume = start_tag_end(doc, after)
      end
      if gt == nil then
        return
      elseif gt == false then
        i = resume
      else
        i = gt + 1
        if n > 0 then
          flags[n] = flags[n] | 1
        end
        local matches = current == 0 and is_match(name)
        if gt - 1 >= after and doc:byte(gt - 1) == 47 then -- self-closing
          if matches and on_match("") then
            return
          end
        else
          n = n + 1
          names[n], contents[n], flags[n] = name, gt + 1, 0
          open[name] = (open[name] or 0) + 1
          if matches then
            current = n
          end
        end
      end
    end
  end
end

local function check_tag(tag, fname)
  if type(tag) ~= "string" or tag == "" then
    error("infraops.xml." .. fname .. ": 'tag' must be a non-empty string", 3)
  end
end

--- The text of the first element named `tag`, or nil when there is none.
-- A document that is not a string (e.g. a missing body) has no elements.
-- @tparam string document
-- @tparam string tag local name ("requestId") or qualified name ("ns:requestId")
-- @treturn string|nil
function xml.text(document, tag)
  check_tag(tag, "text")
  if type(document) ~= "string" then
    return nil
  end
  local found
  scan(document, tag, function(text)
    found = text
    return true
  end)
  return found
end

--- The texts of every element named `tag`, in document order (elements
-- nested inside a matching element are part of its text, not listed).
-- @tparam string document
-- @tparam string tag
-- @treturn {string,...} possibly empty
function xml.all(document, tag)
  check_tag(tag, "all")
  local list = {}
  if type(document) ~= "string" then
    return list
  end
  scan(document, tag, function(text)
    list[#list + 1] = text
  end)
  return list
end

return xml
