-- freshet.fakecore: the stand-in for the server's C half ("freshet.core") that freshet.test
-- binds the real freshet module to. It keeps the server's rules — the checks on events, the
-- shared dictionary's semantics and errors, the timers' argument checks — and records what a
-- script does on the fake server it serves (srv.published, srv.timers, srv.logs), reading
-- srv.clock for the time.
--
-- The fake server (freshet.test) provides: clock, timers, logs, shared, _loading (true while
-- a script's top level runs), _publish(topic, text, name, priority, json) → id, and
-- _call(fn, ...) to run Lua as the server would.
local cjson = require "cjson"

local M = {}

-- ---- the server's rules for events (src/event.c) ------------------------------------------

-- Well-formed UTF-8 as the Unicode standard's table 3-7 has it: no overlongs, no surrogates,
-- nothing past U+10FFFF.
local function utf8_valid(s)
  if not s:find("[\128-\255]") then return true end
  local i, n = 1, #s
  while i <= n do
    local c = s:byte(i)
    if c < 0x80 then
      i = i + 1
    elseif c >= 0xC2 and c <= 0xDF then
      local c2 = s:byte(i + 1)
      if not c2 or c2 < 0x80 or c2 > 0xBF then return false end
      i = i + 2
    elseif c >= 0xE0 and c <= 0xEF then
      local c2, c3 = s:byte(i + 1, i + 2)
      local lo, hi = 0x80, 0xBF
      if c == 0xE0 then lo = 0xA0 elseif c == 0xED then hi = 0x9F end
      if not c3 or c2 < lo or c2 > hi or c3 < 0x80 or c3 > 0xBF then return false end
      i = i + 3
    elseif c >= 0xF0 and c <= 0xF4 then
      local c2, c3, c4 = s:byte(i + 1, i + 3)
      local lo, hi = 0x80, 0xBF
      if c == 0xF0 then lo = 0x90 elseif c == 0xF4 then hi = 0x8F end
      if not c4 or c2 < lo or c2 > hi or c3 < 0x80 or c3 > 0xBF or c4 < 0x80 or c4 > 0xBF then
        return false
      end
      i = i + 4
    else
      return false
    end
  end
  return true
end

local function field_ok(s) return not s:find("[\r\n%z]") end

-- nil when the event may be published, else the server's reason.
local function event_problem(topic, name, data)
  if type(topic) ~= "string" or topic == "" then return "topic must be a non-empty string" end
  if not field_ok(topic) or not utf8_valid(topic) then
    return "topic must be UTF-8 without CR, LF or NUL"
  end
  if name and (not field_ok(name) or not utf8_valid(name)) then
    return "event name must be UTF-8 without CR, LF or NUL"
  end
  if not utf8_valid(data) then return "data must be valid UTF-8" end
  return nil
end

local priorities = { critical = true, normal = true, telemetry = true }

-- ---- the fake freshet.shared -------------------------------------------------------------

local Shared = {}
Shared.__index = Shared

local function shared_self(self, fn, key)
  if getmetatable(self) ~= Shared then
    error(("freshet.shared:%s: call it with ':' (freshet.shared:%s(key, ...))"):format(fn, fn), 3)
  end
  if type(key) ~= "string" then
    error(("freshet.shared:%s: bad argument #1 'key' (string expected, got %s)"):format(fn, type(key)), 3)
  end
end

local function shared_ttl(fn, ttl)
  if ttl == nil then return nil end
  if type(ttl) ~= "number" or ttl < 0 then
    error(("freshet.shared:%s: bad argument 'ttl' (seconds >= 0 expected, got %s)"):format(fn, type(ttl)), 3)
  end
  return ttl > 0 and ttl * 1000 or nil
end

-- The live entry for key, dropping it when its time is up.
local function shared_entry(self, key)
  local e = self._entries[key]
  if e and e.expires and self._srv.clock >= e.expires then
    self._entries[key] = nil
    return nil
  end
  return e
end

function Shared:get(key)
  shared_self(self, "get", key)
  local e = shared_entry(self, key)
  return e and e.value
end

function Shared:set(key, value, ttl)
  shared_self(self, "set", key)
  local ms = shared_ttl("set", ttl)
  local tv = type(value)
  if value == nil then
    self._entries[key] = nil
    return true
  end
  if tv ~= "string" and tv ~= "number" and tv ~= "boolean" then
    error(("freshet.shared:set: bad argument #2 'value' (string, number or boolean expected, got %s)"):format(tv), 2)
  end
  self._entries[key] = { value = value, expires = ms and self._srv.clock + ms }
  return true
end

function Shared:incr(key, n, init, ttl)
  shared_self(self, "incr", key)
  if n ~= nil and type(n) ~= "number" then
    error(("freshet.shared:incr: bad argument #2 'n' (number expected, got %s)"):format(type(n)), 2)
  end
  if init ~= nil and type(init) ~= "number" then
    error(("freshet.shared:incr: bad argument #3 'init' (number expected, got %s)"):format(type(init)), 2)
  end
  local ms = shared_ttl("incr", ttl)
  local e = shared_entry(self, key)
  if not e then
    if init == nil then return nil, "not found" end
    e = { value = init, expires = ms and self._srv.clock + ms }
    self._entries[key] = e
  elseif type(e.value) ~= "number" then
    return nil, "not a number"
  end
  e.value = e.value + (n or 1)
  return e.value
end

function Shared:delete(key)
  shared_self(self, "delete", key)
  local existed = shared_entry(self, key) ~= nil
  self._entries[key] = nil
  return existed
end

-- ---- timers ------------------------------------------------------------------------------

local Timer = {}
Timer.__index = Timer

--- Stops the timer, as in the server.
function Timer:cancel()
  self.active = false
end

--- Runs the timer's function now (whether or not it is due), inside its fake server; an
--- `after` timer is then done. Errors propagate to the test.
function Timer:fire()
  if self.kind == "after" then self.active = false end
  self.fired = self.fired + 1
  return self._srv:_call(self.fn)
end

-- ---- the fake freshet.core ---------------------------------------------------------------

local function ours(src)
  return src:find("freshet/init%.lua$") or src:find("freshet/test%.lua$")
    or src:find("freshet/fakecore%.lua$")
end

-- The error level, seen from the function that calls this, of the first Lua code outside
-- init.lua and this file: the script line to blame. Counted, not fixed, because init.lua
-- reaches core through tail calls, which Lua 5.1 and LuaJIT record differently.
local function script_level()
  local level = 3
  while true do
    local info = debug.getinfo(level, "S")
    if not info then return 1 end
    if info.what ~= "C" and info.what ~= "tail" and not ours(info.short_src) then
      return level - 1
    end
    level = level + 1
  end
end

local function new_core(srv)
  local core = { version = "test" }

  function core.publish(topic, data, name, priority, json)
    -- The server has no topics yet while scripts load; a publish there is a script bug.
    if srv._loading then
      return nil, "cannot publish while the app file is loading (publish from a hook or a timer)"
    end
    if name == "" then name = nil end
    local problem = event_problem(topic, name, data)
    if problem then return nil, problem end
    if not priorities[priority] then
      error("freshet.publish: priority must be critical, normal or telemetry", 2)
    end
    return srv:_publish(topic, data, name, priority, json)
  end

  function core.encode(t)
    local ok, text = pcall(cjson.encode, t)
    if not ok then error("data cannot be sent as JSON: " .. tostring(text), 2) end
    return text
  end

  function core.timer(kind, ms, fn)
    local every = kind == "every"
    if type(ms) ~= "number" or ms < (every and 1 or 0) or ms > 86400000 * 365 then
      error(("freshet.%s: bad argument #1 'ms' (a number of milliseconds %s, got %s)"):format(
        kind, every and ">= 1" or ">= 0", tostring(ms)), script_level())
    end
    if type(fn) ~= "function" then
      error(("freshet.%s: bad argument #2 'fn' (function expected, got %s)"):format(kind, type(fn)),
        script_level())
    end
    ms = math.floor(ms)
    local timer = setmetatable({
      kind = kind, ms = ms, fn = fn, due = srv.clock + ms, active = true, fired = 0, _srv = srv,
    }, Timer)
    srv.timers[#srv.timers + 1] = timer
    return timer
  end

  local levels = { debug = true, info = true, warn = true, error = true }
  function core.log(level, ...)
    if not levels[level] then
      error(("freshet.log: bad argument #1 'level' (debug, info, warn or error, got '%s')"):format(
        tostring(level)), script_level())
    end
    local parts = {}
    for i = 1, select("#", ...) do parts[i] = tostring((select(i, ...))) end
    local info = debug.getinfo(script_level(), "Sl")
    srv.logs[#srv.logs + 1] = {
      level = level,
      message = table.concat(parts, " "),
      where = info and info.currentline > 0 and (info.short_src .. ":" .. info.currentline) or nil,
    }
  end

  function core.now() return srv.clock end

  core.shared = srv.shared
  return core
end

M.utf8_valid, M.event_problem, M.priorities = utf8_valid, event_problem, priorities

--- The fake dictionary for srv (expiry follows srv.clock).
function M.new_shared(srv)
  return setmetatable({ _entries = {}, _srv = srv }, Shared)
end

--- The fake core for srv.
M.new = new_core

return M
