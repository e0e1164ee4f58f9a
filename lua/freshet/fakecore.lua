-- freshet.fakecore: the stand-in for the server's C half ("freshet.core", src/lua/api.c) that
-- freshet.test binds the real freshet module to. It makes no rules of its own: what the server
-- checks (events, timer and log arguments) is checked by the server's C through freshet.native,
-- in the order the server checks it, and freshet.shared is the server's dictionary
-- (native.shared). What is left here is recording what a script does on the fake server it
-- serves (srv.published, srv.timers, srv.logs) and reading srv.clock for the time.
--
-- The fake server (freshet.test) provides: clock, timers, logs, shared, _loading (true while
-- a script's top level runs), _delivering (true while a filter runs), _publish(topic, text,
-- name, priority, json) → id, and _call(fn, ...) to run Lua as the server would.
local cjson = require "cjson"
local native = require "freshet.native"

local M = {}

-- What the server answers a publish it cannot make now. The first is src/lua/api.c's, the
-- second src/server/worker.c's.
local IN_FILTER = "cannot publish from a filter (it runs during a delivery): use "
  .. "freshet.after(0, function() … end)"
local LOADING = "cannot publish while the app file is loading (publish from a hook or a timer)"
-- src/lua/task.h's FR_TASK_CANNOT_WAIT.
local CANNOT_WAIT = "cannot wait here: waiting functions work in auth, topics, tier, publish, "
  .. "message and timers, not in filter (it runs per delivery) or while the app file loads"

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

local function ours(src)
  return src:find("freshet/init%.lua$") or src:find("freshet/test%.lua$")
    or src:find("freshet/fakecore%.lua$")
end

-- The level, seen from the function that calls this, of the first Lua code outside init.lua
-- and the harness: the script line a log line names, and that a bad argument to
-- freshet.every, freshet.after or freshet.log blames, as in the server. Counted, not fixed,
-- because init.lua reaches core through tail calls, which Lua 5.1 and LuaJIT record
-- differently.
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

-- The stand-in for the server's "freshet.core" (src/lua/api.c) that srv's freshet module is
-- bound to: the same checks, in the same order, and a record of what the script did.
local function new_core(srv)
  local core = { version = "test", shared = srv.shared }

  function core.publish(topic, data, name, priority, json)
    -- A NUL in topic or name is refused before anything else, as C strings would lose it
    -- (event_check fails on it, with the server's message).
    if topic:find("%z") or (name and name:find("%z")) then
      return native.event_check(topic, name, data)
    end
    if srv._delivering then return nil, IN_FILTER end
    if srv._loading then return nil, LOADING end
    local ok, err = native.event_check(topic, name, data)
    if not ok then return nil, err end
    if name == "" then name = nil end
    return srv:_publish(topic, data, name, priority, json)
  end

  function core.encode(t)
    local ok, text = pcall(cjson.encode, t)
    if not ok then error("data cannot be sent as JSON: " .. tostring(text), 2) end
    return text
  end

  function core.timer(kind, ms, fn)
    local ok, whole = pcall(native.timer_check, kind, ms, fn)
    if not ok then error(whole, script_level()) end
    ms = whole
    local timer = setmetatable({
      kind = kind, ms = ms, fn = fn, due = srv.clock + ms, active = true, fired = 0, _srv = srv,
    }, Timer)
    srv.timers[#srv.timers + 1] = timer
    return timer
  end

  function core.log(level, ...)
    local ok, err = pcall(native.log_check, level)
    if not ok then error(err, script_level()) end
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

  -- Waiting functions: the fake server answers at once. A sleep moves the clock (timers that
  -- fall due meanwhile do not fire: srv:advance does that); a backend call goes to the stub
  -- set with srv:on_http.
  function core.can_wait()
    if srv._delivering or srv._loading then return false, CANNOT_WAIT end
    return true
  end

  function core.sleep(ms) srv.clock = srv.clock + ms end

  function core.http_request(method, url, headers, body, timeout, ca, verify)
    return srv:_http(method, url, headers, body, timeout, ca, verify)
  end

  function core.http_response(res) return res end

  -- A Redis command goes to the stub set with srv:on_redis, its numbers written as the
  -- server writes them (src/lua/redis.c); the answer comes boxed, as the C side's does.
  function core.redis(cmd, args, n)
    return srv:_redis(cmd, args, n)
  end

  function core.redis_reply(box) return box[1] end

  return core
end

--- The fake core for srv.
M.new = new_core

return M
