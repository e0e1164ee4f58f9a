-- The freshet module that route scripts and app files require. Its C half ("freshet.core")
-- is provided by the server binary; outside it, freshet.app and the library modules
-- (freshet.request; freshet.jwt with freshet.crypto built) work, and freshet.test supplies a
-- stand-in core for testing route scripts.
local app = require "freshet.app"

local has_core, core = pcall(require, "freshet.core")
if not has_core then core = nil end

local M = { app = app.new, version = core and core.version or "outside-server",
            worker = core and core.worker or 0 }

local function need_core(name)
  if not core then
    error(("freshet.%s is only available inside the freshet server"):format(name), 3)
  end
end

local function arg_error(fn, n, name, expected, got)
  error(("freshet.%s: bad argument #%d '%s' (%s expected, got %s)"):format(fn, n, name, expected, got), 3)
end

-- Waiting functions say where they cannot wait at the script's line.
local function need_wait(name)
  local ok, why = core.can_wait()
  if not ok then error(("freshet.%s: %s"):format(name, why), 3) end
end

local priorities = { critical = true, normal = true, telemetry = true }

--- Publishes `data` (string, or table sent as JSON) on `topic`; returns the event id.
function M.publish(topic, data, opts)
  need_core("publish")
  if type(topic) ~= "string" then arg_error("publish", 1, "topic", "string", type(topic)) end
  local json = false
  if type(data) == "table" then
    data = core.encode(data)
    json = true
  elseif type(data) ~= "string" then
    arg_error("publish", 2, "data", "string or table", type(data))
  end
  local event, priority
  if opts ~= nil then
    if type(opts) ~= "table" then arg_error("publish", 3, "opts", "table", type(opts)) end
    for k in pairs(opts) do
      if k ~= "event" and k ~= "priority" then
        error(("freshet.publish: unknown option '%s' (event, priority)"):format(tostring(k)), 2)
      end
    end
    event, priority = opts.event, opts.priority
    if event ~= nil and type(event) ~= "string" then arg_error("publish", 3, "opts.event", "string", type(event)) end
    if priority ~= nil and not priorities[priority] then
      error(("freshet.publish: opts.priority must be critical, normal or telemetry, got %s"):format(tostring(priority)), 2)
    end
  end
  local id, err = core.publish(topic, data, event, priority or "normal", json)
  if not id then error("freshet.publish: " .. err, 2) end
  return id
end

--- Calls fn every `ms` milliseconds; returns a timer with :cancel().
function M.every(ms, fn)
  need_core("every")
  return core.timer("every", ms, fn)
end

--- Calls fn once after `ms` milliseconds; returns a timer with :cancel().
function M.after(ms, fn)
  need_core("after")
  return core.timer("after", ms, fn)
end

--- Waits `ms` milliseconds without holding up the worker: the hook (auth, topics, tier,
--- publish, message, a timer) goes on afterwards. Not in filter, nor while the app file loads.
function M.sleep(ms)
  need_core("sleep")
  if type(ms) ~= "number" or ms ~= ms or ms < 0 or ms == math.huge then
    arg_error("sleep", 1, "ms", "a number of milliseconds >= 0", type(ms) == "number" and tostring(ms) or type(ms))
  end
  need_wait("sleep")
  core.sleep(ms)
end

--- Logs a line at level debug, info, warn or error; the other arguments are joined by spaces.
function M.log(level, ...)
  need_core("log")
  -- Not a tail call: the C side names the caller's file:line two frames up.
  core.log(level, ...)
end

--- Milliseconds since the epoch.
function M.now()
  need_core("now")
  return core.now()
end

--- This worker's counters (connections, streams, published, delivered, ...), or nil, err
--- where there are none to read (under --check, while the server starts, in a stand-in core).
function M.metrics()
  need_core("metrics")
  if not core.metrics then
    return nil, "freshet.metrics: not available outside a running server"
  end
  return core.metrics()
end

if core then M.shared = core.shared end

-- A missing value in a freshet.redis reply (a nil bulk): cjson.null, so it also encodes as
-- JSON null. A table stands in where cjson is not installed.
do
  local has_cjson, cjson = pcall(require, "cjson")
  M.null = has_cjson and cjson.null or setmetatable({}, { __tostring = function() return "freshet.null" end })
end

-- Library modules load on first use: an app that never touches them pays nothing for them,
-- and freshet.request stays usable in a plain Lua that lacks the C module freshet.jwt needs.
local library = { jwt = "freshet.jwt", request = "freshet.request", presence = "freshet.presence",
                  position = "freshet.position", http = "freshet.http", redis = "freshet.redis" }
setmetatable(M, {
  __index = function(t, key)
    local name = library[key]
    if not name then return nil end
    local mod = require(name)
    rawset(t, key, mod)
    return mod
  end,
})

return M
