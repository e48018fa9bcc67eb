-- Kubernetes label selectors, parsed the way k8s.io/apimachinery's
-- labels.Parse does (pkg/labels/selector.go): comma-separated requirements
--
--   key=value  key==value  key!=value   key in (a,b)  key notin (a,b)
--   key        (exists)     !key         (does not exist)
--   key>3      key<3        (integer comparisons)
--
-- Keys are qualified names (an optional DNS-1123 subdomain prefix and "/",
-- then a name of at most 63 characters); values are label values (at most 63
-- characters, may be empty). Whitespace between tokens is ignored. An empty
-- text selects everything. As in kube, `key!=value` and `key notin (...)`
-- also select objects that do not have the key at all.
--
--   local sel, err = label_selector.parse("env in (prod,staging),!canary")
--   if sel and sel:matches(node.metadata.labels) then ... end
--
-- parse() never raises: anything that is not a selector gives
-- nil, message, "invalid_selector".
local label_selector = {}

local methods = {}
local metatable = { __index = methods }

local INVALID = "invalid_selector"

-- Lexer ---------------------------------------------------------------------

local SPECIAL = { ["="] = true, ["!"] = true, ["("] = true, [")"] = true, [","] = true, [">"] = true,
  ["<"] = true }
local WHITESPACE = { [" "] = true, ["\t"] = true, ["\r"] = true, ["\n"] = true }
-- The operator and punctuation tokens of apimachinery's lexer (string2token).
local SYMBOLS = {
  ["!"] = "not", ["!="] = "!=", ["("] = "(", [")"] = ")", [","] = ",", ["="] = "=", ["=="] = "==",
  [">"] = ">", ["<"] = "<",
}

-- Splits text into tokens {kind, text}; kind is "id", "in", "notin", a symbol
-- kind from SYMBOLS, or "eos". A NUL byte ends the text, as in Go's lexer.
local function lex(text)
  local tokens = {}
  local i, n = 1, #text
  local nul = text:find("\0", 1, true)
  if nul then
    n = nul - 1
  end
  while true do
    while i <= n and WHITESPACE[text:sub(i, i)] do
      i = i + 1
    end
    if i > n then
      tokens[#tokens + 1] = { kind = "eos", text = "" }
      return tokens
    end
    local ch = text:sub(i, i)
    if SPECIAL[ch] then
      -- Longest run of special characters that still names a token.
      local buffer, last, last_end = "", nil, i
      local j = i
      while j <= n and SPECIAL[text:sub(j, j)] do
        buffer = buffer .. text:sub(j, j)
        if SYMBOLS[buffer] then
          last, last_end = SYMBOLS[buffer], j
        elseif last then
          break
        end
        j = j + 1
      end
      if not last then
        return nil, ("unexpected %q"):format(buffer)
      end
      tokens[#tokens + 1] = { kind = last, text = text:sub(i, last_end) }
      i = last_end + 1
    else
      local j = i
      while j <= n do
        local c = text:sub(j, j)
        if WHITESPACE[c] or SPECIAL[c] then
          break
        end
        j = j + 1
      end
      local word = text:sub(i, j - 1)
      local kind = (word == "in" or word == "notin") and word or "id"
      tokens[#tokens + 1] = { kind = kind, text = word }
      i = j
    end
  end
end

-- Validation (k8s.io/apimachinery/pkg/util/validation) -----------------------

local function is_dns1123_label(s)
  return #s >= 1 and s:find("^[a-z0-9]") ~= nil and s:find("[a-z0-9]$") ~= nil and s:find("^[a-z0-9-]+$") ~= nil
end

--- True if s is a DNS-1123 subdomain (lower-case alphanumerics, '-' and '.',
-- at most 253 characters, every dot-separated part starting and ending with
-- an alphanumeric; apimachinery's IsDNS1123Subdomain has no per-part limit).
function label_selector.is_dns1123_subdomain(s)
  if type(s) ~= "string" or #s == 0 or #s > 253 then
    return false
  end
  for label in (s .. "."):gmatch("([^.]*)%.") do
    if not is_dns1123_label(label) then
      return false
    end
  end
  return true
end

-- ([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9], at most 63 characters.
local function is_name_part(s)
  return #s >= 1 and #s <= 63 and s:find("^[%w]") ~= nil and s:find("[%w]$") ~= nil
    and s:find("^[%w_.-]+$") ~= nil
end

local function key_error(key)
  local prefix, name = key:match("^(.*)/(.*)$")
  if not prefix then
    name = key
  elseif prefix == "" then
    return "prefix part must be non-empty"
  elseif prefix:find("/", 1, true) then
    return "a qualified name must consist of alphanumeric characters, '-', '_' or '.', with an optional "
      .. "DNS subdomain prefix and '/'"
  elseif not label_selector.is_dns1123_subdomain(prefix) then
    return "prefix part must be a lowercase RFC 1123 subdomain"
  end
  if name == "" then
    return "name part must be non-empty"
  elseif #name > 63 then
    return "name part must be no more than 63 characters"
  elseif not is_name_part(name) then
    return "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end "
      .. "with an alphanumeric character"
  end
  return nil
end

local function value_error(value)
  if value == "" then
    return nil
  elseif #value > 63 then
    return "must be no more than 63 characters"
  elseif not is_name_part(value) then
    return "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', "
      .. "and must start and end with an alphanumeric character"
  end
  return nil
end

-- strconv.ParseInt(s, 10, 64), or nil.
local function parse_int64(s)
  if type(s) ~= "string" or not s:find("^[+-]?%d+$") then
    return nil
  end
  local digits = s:gsub("^%+", "")
  return math.tointeger(tonumber(digits))
end

-- Parser ----------------------------------------------------------------------

local function found(tok)
  return tok.kind == "eos" and "end of string" or tok.text
end

local function new_parser(tokens)
  local p = { tokens = tokens, pos = 1 }
  -- In value position the keywords "in" and "notin" are plain identifiers.
  function p.peek(values)
    local tok = p.tokens[p.pos]
    if values and (tok.kind == "in" or tok.kind == "notin") then
      return { kind = "id", text = tok.text }
    end
    return tok
  end
  function p.next(values)
    local tok = p.peek(values)
    if tok.kind ~= "eos" then
      p.pos = p.pos + 1
    end
    return tok
  end
  return p
end

-- The values inside "( ... )", following apimachinery's parseValues and
-- parseIdentifiersList: "()" is the set {""}; an empty entry (a leading,
-- trailing or doubled comma) adds "".
local function parse_identifiers(p, add)
  local count = 0
  while true do
    local tok = p.next(true)
    if tok.kind == "id" then
      add(tok.text)
      count = count + 1
      local after = p.peek(true)
      if after.kind == ")" then
        return true
      elseif after.kind ~= "," then
        return nil, ("found '%s', expected: ',' or ')'"):format(found(after))
      end
    elseif tok.kind == "," then
      if count == 0 then
        add("")
        count = 1
      end
      local after = p.peek(true)
      if after.kind == ")" then
        add("")
        return true
      elseif after.kind == "," then
        p.next(true)
        add("")
      end
    else
      return nil, ("found '%s', expected: ',', or identifier"):format(found(tok))
    end
  end
end

local function parse_values(p)
  local tok = p.next(true)
  if tok.kind ~= "(" then
    return nil, ("found '%s', expected: '('"):format(found(tok))
  end
  local values, seen = {}, {}
  local function add(v)
    if not seen[v] then
      seen[v] = true
      values[#values + 1] = v
    end
  end
  tok = p.peek(true)
  if tok.kind == ")" then
    p.next(true)
    add("")
    return values
  elseif tok.kind ~= "id" and tok.kind ~= "," then
    return nil, ("found '%s', expected: ',', ')' or identifier"):format(found(tok))
  end
  local ok, err = parse_identifiers(p, add)
  if not ok then
    return nil, err
  end
  tok = p.next(true)
  if tok.kind ~= ")" then
    return nil, ("found '%s', expected: ')'"):format(found(tok))
  end
  return values
end

-- The single value after =, ==, !=, >, <: may be empty ("k=" or "k=,...").
local function parse_exact_value(p)
  local tok = p.peek(true)
  if tok.kind == "eos" or tok.kind == "," then
    return { "" }
  end
  tok = p.next(true)
  if tok.kind == "id" then
    return { tok.text }
  end
  return nil, ("found '%s', expected: identifier"):format(found(tok))
end

local OPERATORS = {
  ["="] = "=", ["=="] = "=", ["!="] = "!=", ["in"] = "in", ["notin"] = "notin", [">"] = ">", ["<"] = "<",
}

local function parse_requirement(p)
  local tok = p.next(true)
  local negated = false
  if tok.kind == "not" then
    negated = true
    tok = p.next(true)
  end
  if tok.kind ~= "id" then
    return nil, ("found '%s', expected: identifier"):format(found(tok))
  end
  local key = tok.text
  local why = key_error(key)
  if why then
    return nil, ("invalid label key %q: %s"):format(key, why)
  end
  local after = p.peek(true)
  if negated then
    return { key = key, op = "!" }
  elseif after.kind == "eos" or after.kind == "," then
    return { key = key, op = "exists" }
  end
  tok = p.next(false)
  local op = OPERATORS[tok.kind]
  if not op then
    return nil, ("found '%s', expected: one of =, ==, !=, in, notin, >, <"):format(found(tok))
  end
  local values, err
  if op == "in" or op == "notin" then
    values, err = parse_values(p)
  else
    values, err = parse_exact_value(p)
  end
  if not values then
    return nil, err
  end
  local requirement = { key = key, op = op, values = values, set = {} }
  for _, v in ipairs(values) do
    local bad = value_error(v)
    if bad then
      return nil, ("invalid label value %q: %s"):format(v, bad)
    end
    requirement.set[v] = true
  end
  if op == ">" or op == "<" then
    requirement.number = parse_int64(values[1])
    if not requirement.number then
      return nil, ("for '>', '<' operators, the value must be an integer (got %q)"):format(values[1])
    end
  end
  return requirement
end

local function parse_tokens(tokens)
  local p = new_parser(tokens)
  local requirements = {}
  while true do
    local tok = p.peek(true)
    if tok.kind == "eos" then
      return requirements
    elseif tok.kind ~= "id" and tok.kind ~= "not" then
      return nil, ("found '%s', expected: !, identifier, or 'end of string'"):format(found(tok))
    end
    local r, err = parse_requirement(p)
    if not r then
      return nil, err
    end
    requirements[#requirements + 1] = r
    tok = p.next(true)
    if tok.kind == "eos" then
      return requirements
    elseif tok.kind ~= "," then
      return nil, ("found '%s', expected: ',' or 'end of string'"):format(found(tok))
    end
    local following = p.peek(true)
    if following.kind ~= "id" and following.kind ~= "not" then
      return nil, ("found '%s', expected: identifier after ','"):format(found(following))
    end
  end
end

--- Parses a selector.
-- @tparam string text e.g. "node-role.kubernetes.io/control-plane,env!=dev"
-- @return selector, or nil, message, "invalid_selector"
function label_selector.parse(text)
  if type(text) ~= "string" then
    return nil, "a label selector must be a string", INVALID
  end
  local tokens, lex_err = lex(text)
  if not tokens then
    return nil, ("unable to parse label selector %q: %s"):format(text, lex_err), INVALID
  end
  local requirements, err = parse_tokens(tokens)
  if not requirements then
    return nil, ("unable to parse label selector %q: %s"):format(text, err), INVALID
  end
  return setmetatable({ text = text, requirements = requirements }, metatable)
end

local function requirement_matches(r, labels)
  local value = labels[r.key]
  if type(value) ~= "string" then
    value = nil
  end
  local op = r.op
  if op == "exists" then
    return value ~= nil
  elseif op == "!" then
    return value == nil
  elseif op == "=" or op == "in" then
    return value ~= nil and r.set[value] == true
  elseif op == "!=" or op == "notin" then
    return value == nil or not r.set[value]
  end
  -- > and <: the label must hold an integer.
  local number = value and parse_int64(value)
  if not number then
    return false
  end
  if op == ">" then
    return number > r.number
  end
  return number < r.number
end

--- True if the labels (key -> value; nil counts as no labels) satisfy every
-- requirement.
function methods:matches(labels)
  if type(labels) ~= "table" then
    labels = {}
  end
  for _, r in ipairs(self.requirements) do
    if not requirement_matches(r, labels) then
      return false
    end
  end
  return true
end

--- True if the selector has no requirement (it selects everything).
function methods:empty()
  return #self.requirements == 0
end

return label_selector
