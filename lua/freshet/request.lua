-- freshet.request: helpers for reading a request in a hook — cookies, query and form decoding,
-- JSON bodies, and the client's address behind trusted proxies.
--
-- Plain Lua apart from cjson, so it also works outside the server (in route specs).
-- Misuse raises an error naming the function and the argument; input a client controls
-- (a bad percent-escape, invalid JSON) gives nil, err.
local cjson = require "cjson"

local M = {}

local function arg_error(fn, n, name, expected, got)
  error(("freshet.request.%s: bad argument #%d '%s' (%s expected, got %s)"):format(
    fn, n, name, expected, got), 3)
end

local function check_string(fn, n, name, v)
  if type(v) ~= "string" then arg_error(fn, n, name, "string", type(v)) end
end

local function check_opts(fn, n, opts, allowed)
  if opts == nil then return {} end
  if type(opts) ~= "table" then arg_error(fn, n, "opts", "table", type(opts)) end
  for k in pairs(opts) do
    if not allowed[k] then
      local names = {}
      for a in pairs(allowed) do names[#names + 1] = a end
      table.sort(names)
      error(("freshet.request.%s: unknown option '%s' (%s)"):format(
        fn, tostring(k), table.concat(names, ", ")), 3)
    end
  end
  return opts
end

-- ---- percent-encoding ---------------------------------------------------------------------

local function hex_to_char(h) return string.char(tonumber(h, 16)) end

-- The same rules as the server's own decoder, so a helper never accepts what the server would
-- have refused: every '%' starts two hex digits, and %00 is refused (a NUL inside a value
-- truncates it in C code further along).
local function unescape(s, plus)
  if plus and s:find("+", 1, true) then s = s:gsub("+", " ") end
  if not s:find("%", 1, true) then return s end
  if s:find("%%%x?[^%x]") or s:find("%%%x?$") or s:find("%%00") then return nil end
  return (s:gsub("%%(%x%x)", hex_to_char))
end

--- Percent-decodes s; '+' stands for a space (the query and form convention) unless
--- opts.plus is false. Returns the text, or nil, err for a malformed escape.
function M.unescape(s, opts)
  check_string("unescape", 1, "s", s)
  opts = check_opts("unescape", 2, opts, { plus = true })
  local out = unescape(s, opts.plus ~= false)
  if not out then return nil, "invalid percent-encoding" end
  return out
end

local function escape_char(c) return ("%%%02X"):format(c:byte()) end

--- Percent-encodes every byte except the unreserved ones (RFC 3986: letters, digits, - . _ ~),
--- so the result is safe in a query value, a path segment or a cookie.
function M.escape(s)
  check_string("escape", 1, "s", s)
  return (s:gsub("[^%w%-%._~]", escape_char))
end

-- Splits "a=1&b=2" into a table. With all, each value is a list of every value in order;
-- otherwise the first value of a repeated key wins, as for req.query.
local function parse_pairs(s, all)
  local out = {}
  for pair in s:gmatch("[^&]+") do
    local eq = pair:find("=", 1, true)
    local k, v = unescape(eq and pair:sub(1, eq - 1) or pair, true), ""
    if eq then v = unescape(pair:sub(eq + 1), true) end
    if not k or not v then return nil end
    if all then
      local list = out[k]
      if not list then list = {}; out[k] = list end
      list[#list + 1] = v
    elseif out[k] == nil then
      out[k] = v
    end
  end
  return out
end

--- Decodes a query string ("a=1&b=x+y", without the '?') into a table, by the same rules the
--- server uses for req.query: '+' is a space, a key without '=' has the value "", and the first
--- value of a repeated key wins — or, with opts.all, every value is kept in a list.
--- Returns the table, or nil, err for a malformed percent-escape.
function M.parse_query(s, opts)
  check_string("parse_query", 1, "s", s)
  opts = check_opts("parse_query", 2, opts, { all = true })
  local t = parse_pairs(s, opts.all)
  if not t then return nil, "invalid percent-encoding in the query string" end
  return t
end

--- Decodes an application/x-www-form-urlencoded body, by the rules of parse_query.
--- Returns the table, or nil, err.
function M.form(body, opts)
  check_string("form", 1, "body", body)
  opts = check_opts("form", 2, opts, { all = true })
  local t = parse_pairs(body, opts.all)
  if not t then return nil, "invalid percent-encoding in the form body" end
  return t
end

-- ---- cookies -----------------------------------------------------------------------------

local function trim(s) return (s:gsub("^[ \t]+", ""):gsub("[ \t]+$", "")) end

--- The request's cookies as a table of name → value, from the Cookie header of req (or from a
--- Cookie header value given as a string). Values are returned as sent, without
--- percent-decoding (cookies have no standard encoding; use unescape if the app encodes);
--- surrounding double quotes are removed. When a name repeats, the first wins: browsers send
--- the cookie with the most specific path first. A request without cookies gives {}.
function M.cookies(req)
  local header
  if type(req) == "string" then
    header = req
  elseif type(req) == "table" then
    header = type(req.headers) == "table" and req.headers.cookie or nil
  else
    arg_error("cookies", 1, "req", "table or string", type(req))
  end
  local out = {}
  if type(header) ~= "string" then return out end
  for part in header:gmatch("[^;]+") do
    local eq = part:find("=", 1, true)
    if eq then
      local name = trim(part:sub(1, eq - 1))
      local value = trim(part:sub(eq + 1))
      if #value >= 2 and value:sub(1, 1) == '"' and value:sub(-1) == '"' then
        value = value:sub(2, -2)
      end
      if name ~= "" and out[name] == nil then out[name] = value end
    end
  end
  return out
end

-- ---- JSON --------------------------------------------------------------------------------

--- Decodes a JSON body. Returns the value (a table for objects and arrays; JSON null is
--- cjson.null), or nil, "invalid JSON: <what is wrong>" for an empty body or bad JSON.
function M.json(body)
  check_string("json", 1, "body", body)
  if not body:find("%S") then return nil, "invalid JSON: the body is empty" end
  local ok, value = pcall(cjson.decode, body)
  if not ok then
    return nil, "invalid JSON: " .. tostring(value):gsub("^[^:]*:%d+: ", "")
  end
  return value
end

-- ---- addresses ---------------------------------------------------------------------------

-- An IPv4 address as a number, refusing leading zeros ("010" means 8 to some parsers, 10 to
-- others: an address that reads two ways must not pass a trust check).
local function parse_v4(s)
  local a, b, c, d = s:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$")
  if not a then return nil end
  local n = 0
  for _, part in ipairs({ a, b, c, d }) do
    if #part > 3 or (#part > 1 and part:sub(1, 1) == "0") then return nil end
    local v = tonumber(part)
    if v > 255 then return nil end
    n = n * 256 + v
  end
  return n
end

-- An IPv6 address as a list of 8 numbers (0..65535), or nil.
local function parse_v6(s)
  if not s:find(":", 1, true) or s:find("[^%x:%.]") then return nil end
  local groups = {}
  local head, tail = s, nil
  local dbl = s:find("::", 1, true)
  if dbl then
    head, tail = s:sub(1, dbl - 1), s:sub(dbl + 2)
    if tail:find("::", 1, true) then return nil end
  end
  local function split(part, into)
    if part == "" then return true end
    local fields = {}
    for f in (part .. ":"):gmatch("([^:]*):") do fields[#fields + 1] = f end
    for i, f in ipairs(fields) do
      if i == #fields and f:find(".", 1, true) then
        local v4 = parse_v4(f)
        if not v4 then return false end
        into[#into + 1] = math.floor(v4 / 65536)
        into[#into + 1] = v4 % 65536
      elseif f:match("^%x%x?%x?%x?$") then
        into[#into + 1] = tonumber(f, 16)
      else
        return false
      end
    end
    return true
  end
  local left, right = {}, {}
  if not split(head, left) or not split(tail or "", right) then return nil end
  -- A dotted quad may only end the address.
  if head:find(".", 1, true) and tail then return nil end
  local missing = 8 - #left - #right
  if dbl then
    if missing < 1 then return nil end
  elseif missing ~= 0 then
    return nil
  end
  for _, v in ipairs(left) do groups[#groups + 1] = v end
  for _ = 1, missing do groups[#groups + 1] = 0 end
  for _, v in ipairs(right) do groups[#groups + 1] = v end
  return groups
end

-- Parses an address into (family, value). IPv4-mapped IPv6 (::ffff:a.b.c.d, which a dual-stack
-- listener reports for IPv4 clients) becomes plain IPv4, so one rule covers both spellings.
local function parse_ip(s)
  local v4 = parse_v4(s)
  if v4 then return 4, v4 end
  local g = parse_v6(s)
  if not g then return nil end
  if g[1] == 0 and g[2] == 0 and g[3] == 0 and g[4] == 0 and g[5] == 0 and g[6] == 0xffff then
    return 4, g[7] * 65536 + g[8]
  end
  return 6, g
end

local function match_rule(rule, family, value)
  if rule.family ~= family then return false end
  if family == 4 then
    local size = 2 ^ (32 - rule.bits)
    return math.floor(value / size) == math.floor(rule.value / size)
  end
  local bits = rule.bits
  for i = 1, 8 do
    if bits <= 0 then return true end
    local take = bits >= 16 and 16 or bits
    local size = 2 ^ (16 - take)
    if math.floor(value[i] / size) ~= math.floor(rule.value[i] / size) then return false end
    bits = bits - take
  end
  return true
end

local Trusted = {}
Trusted.__index = Trusted

function Trusted:contains(address)
  local family, value = parse_ip(address)
  if not family then return false end
  for _, rule in ipairs(self.rules) do
    if match_rule(rule, family, value) then return true end
  end
  return false
end

local function compile_trusted(fn, n, list)
  if getmetatable(list) == Trusted then return list end
  if type(list) ~= "table" then arg_error(fn, n, "trusted", "list of addresses", type(list)) end
  local rules = {}
  for i, entry in ipairs(list) do
    if type(entry) ~= "string" then
      error(("freshet.request.%s: bad argument #%d 'trusted' (entry %d is a %s, not an address)"):format(
        fn, n, i, type(entry)), 3)
    end
    local addr, bits = entry:match("^([^/]+)/(%d+)$")
    addr = addr or entry
    local family, value = parse_ip(addr)
    local max = family == 4 and 32 or 128
    bits = bits and tonumber(bits) or max
    if not family or bits > max or (family == 4 and addr:find(":", 1, true) and bits ~= max) then
      error(("freshet.request.%s: bad argument #%d 'trusted' (entry %d '%s' is not an IP address or CIDR range)"):format(
        fn, n, i, entry), 3)
    end
    rules[#rules + 1] = { family = family, value = value, bits = bits }
  end
  return setmetatable({ rules = rules }, Trusted)
end

--- Compiles a list of trusted proxies — exact addresses ("10.0.0.7", "::1") and CIDR ranges
--- ("10.0.0.0/8", "fd00::/8") — once, for client_ip. Raises for an entry that is neither.
--- The result has :contains(address).
function M.trusted(list)
  return compile_trusted("trusted", 1, list)
end

-- A list passed directly to client_ip is compiled once and remembered for as long as the list
-- itself lives, so a route can keep its list in a local and pass it on every request.
local compiled = setmetatable({}, { __mode = "k" })

-- "1.2.3.4:567" → "1.2.3.4"; "[::1]:80" or "[::1]" → "::1"; anything else as is.
local function strip_port(s)
  local bracketed = s:match("^%[([^%]]+)%]")
  if bracketed then return bracketed end
  local v4 = s:match("^(%d+%.%d+%.%d+%.%d+):%d+$")
  return v4 or s
end

--- The address of the client that made req, as far as it can be trusted.
---
--- Without trusted proxies, or when req.remote is not one of them, that is req.remote:
--- anyone can send an X-Forwarded-For header, so it counts only when a trusted proxy
--- connected. Otherwise X-Forwarded-For is read from the right (each proxy appends the
--- address it saw), skipping trusted proxies, and the first address that is not trusted is
--- the client. If every address is trusted, the left-most is taken. An entry that is not an
--- address ends the walk: what stands left of it was written by someone no trusted proxy
--- vouches for, so the last address that was vouched for is returned.
---
--- trusted is a list of addresses and CIDR ranges, or the result of freshet.request.trusted.
function M.client_ip(req, trusted)
  if type(req) ~= "table" then arg_error("client_ip", 1, "req", "table", type(req)) end
  local remote = req.remote
  if type(remote) ~= "string" then arg_error("client_ip", 1, "req.remote", "string", type(remote)) end
  if trusted == nil then return remote end
  local t = compiled[trusted]
  if not t then
    t = compile_trusted("client_ip", 2, trusted)
    if type(trusted) == "table" and getmetatable(trusted) == nil then compiled[trusted] = t end
  end
  if not t:contains(remote) then return remote end
  local xff = type(req.headers) == "table" and req.headers["x-forwarded-for"] or nil
  if type(xff) ~= "string" then return remote end
  local hops = {}
  for part in xff:gmatch("[^,]+") do hops[#hops + 1] = trim(part) end
  local last = remote
  for i = #hops, 1, -1 do
    local addr = strip_port(hops[i])
    if not parse_ip(addr) then return last end
    last = addr:lower()
    if not t:contains(addr) then return last end
  end
  return last
end

return M
