-- freshet.test: runs route scripts outside the server, for unit tests with busted.
--
--   local t = require "freshet.test"
--   local srv = t.server { app = "app.lua" }            -- a fake server with the app's routes
--   local room = srv:route("/rooms/:room/events")
--   local who = assert(room:auth(room:request { path = "/rooms/lobby/events?user=ann" }))
--   assert.same({ "room:lobby" }, room:topics(room:request { path = "/rooms/lobby/events" }, who))
--
-- A fake server stands in for the C core: route scripts that `require "freshet"` get the real
-- lua/freshet/init.lua, bound to a fake "freshet.core" (freshet.fakecore) that records what
-- the script does. The server's rules are not written again in Lua: the checks on events,
-- priorities, timers and log levels, the shared dictionary, route patterns and percent-decoding
-- are the server's own C, loaded as the C module freshet.native (src/lua/native.c), so a spec
-- and the server refuse the same input with the same words.
-- freshet.publish records events (srv.published) and hands them to streams opened with
-- route:open; freshet.every / freshet.after record timers that srv:advance(ms) fires;
-- freshet.log records lines (srv.logs); freshet.now reads a clock the test sets; freshet.shared
-- is the server's dictionary code with an instance per fake server, expiring by that clock.
-- Each fake server has its own module table for what its scripts require, as each server VM
-- does.
--
-- Two ways to drive a route:
--   route:auth(req), :topics(req, who), :tier(req, who), :filter(event, who),
--   :publish(req, body, who), :message(conn, msg, who)
--       call one hook and return what it returns. An error in the hook propagates to the test.
--       A return value the server could not use (a string from auth, an empty topic list)
--       raises the error the server would log.
--   route:open(req) and route:post(req, body)
--       run the hooks in the server's order and answer as the server would: a response table
--       with the status, and for a stream the events its filter let through.
local cjson = require "cjson"
local request = require "freshet.request"
local native = require "freshet.native"
local fakecore = require "freshet.fakecore"

local unpack = unpack or table.unpack

local M = {}

local START = 1700000000000 -- the fake clock's default start, ms since the epoch

local function pack(...) return { n = select("#", ...), ... } end

local function fail(fn, msg, level)
  error(("freshet.test.%s: %s"):format(fn, msg), (level or 1) + 2)
end

local function arg_error(fn, n, name, expected, got)
  error(("freshet.test.%s: bad argument #%d '%s' (%s expected, got %s)"):format(
    fn, n, name, expected, got), 3)
end

local function check_keys(fn, spec, allowed)
  for k in pairs(spec) do
    if not allowed[k] then
      local names = {}
      for a in pairs(allowed) do names[#names + 1] = a end
      table.sort(names)
      error(("freshet.test.%s: unknown key '%s' (%s)"):format(
        fn, tostring(k), table.concat(names, ", ")), 3)
    end
  end
end

local function copy(t)
  local out = {}
  for k, v in pairs(t) do out[k] = v end
  return out
end

-- A fresh instance of lua/freshet/init.lua bound to core. It is loaded through the ordinary
-- package searchers (or the server's preload), with core standing in for "freshet.core".
local function load_freshet(core)
  local saved_core, saved = package.loaded["freshet.core"], package.loaded["freshet"]
  package.loaded["freshet.core"] = core
  package.loaded["freshet"] = nil
  local ok, mod = pcall(require, "freshet")
  package.loaded["freshet.core"] = saved_core
  package.loaded["freshet"] = saved
  if not ok then error(mod, 0) end
  return mod
end

-- ---- paths -------------------------------------------------------------------------------

local function dirname(path)
  local dir = path:match("^(.*)/[^/]*$")
  if dir == nil then return "." end
  if dir == "" then return "/" end
  return dir
end

local function join(dir, path)
  if path:sub(1, 1) == "/" or dir == "." then return path end
  return dir .. "/" .. path
end

local function exists(path)
  local f = io.open(path, "r")
  if f then f:close() end
  return f ~= nil
end

-- The directory the server would put on package.path for a script: the app file's. Without
-- an app, the nearest of the script's directory and its two parents that holds an app.lua
-- (routes usually sit in routes/ beside it), else the script's own directory.
local function guess_app_dir(script)
  local dir = dirname(script)
  for _, d in ipairs({ dir, dir .. "/..", dir .. "/../.." }) do
    if exists(d .. "/app.lua") then return d end
  end
  return dir
end

-- ---- requests, identities, events, connections -------------------------------------------

local request_keys = {
  method = true, path = true, params = true, query = true, headers = true, remote = true,
  cookies = true,
}

--- Builds a req table as the server hands it to hooks:
---   t.request { path = "/rooms/lobby/events?user=ann", headers = { Authorization = "..." } }
--- method (default "GET"), path (default "/"; a query string in it fills query), params
--- (default {}), query (a table, or a query string to decode), headers (names are lower-cased),
--- cookies (a table of name → value, sent as a Cookie header), remote (default "127.0.0.1").
function M.request(spec)
  if spec == nil then spec = {} end
  if type(spec) ~= "table" then arg_error("request", 1, "spec", "table", type(spec)) end
  check_keys("request", spec, request_keys)
  local path, qs = spec.path or "/", nil
  if type(path) ~= "string" or path:sub(1, 1) ~= "/" then
    fail("request", "path must be a string starting with '/', got " .. tostring(path))
  end
  local q = path:find("?", 1, true)
  if q then path, qs = path:sub(1, q - 1), path:sub(q + 1) end
  local decoded, err = native.decode_path(path)
  if not decoded then fail("request", err) end
  local query = spec.query
  if query == nil and qs then query = qs end
  if type(query) == "string" then
    query, err = native.decode_query(query)
    if not query then fail("request", err) end
  elseif query == nil then
    query = {}
  elseif type(query) == "table" then
    query = copy(query)
  else
    fail("request", "query must be a table or a query string, got " .. type(query))
  end
  local headers = {}
  for name, value in pairs(spec.headers or {}) do
    if type(name) ~= "string" or type(value) ~= "string" then
      fail("request", ("headers must map names to strings, got %s = %s"):format(
        tostring(name), type(value)))
    end
    local lname = name:lower()
    -- The server joins a repeated header's values with ", ".
    headers[lname] = headers[lname] and headers[lname] .. ", " .. value or value
  end
  if spec.cookies then
    local names = {}
    for name in pairs(spec.cookies) do names[#names + 1] = name end
    table.sort(names)
    local parts = {}
    for _, name in ipairs(names) do parts[#parts + 1] = name .. "=" .. tostring(spec.cookies[name]) end
    local cookie = table.concat(parts, "; ")
    headers.cookie = headers.cookie and headers.cookie .. "; " .. cookie or cookie
  end
  return {
    method = spec.method or "GET",
    path = decoded,
    params = spec.params and copy(spec.params) or {},
    query = query,
    headers = headers,
    remote = spec.remote or "127.0.0.1",
  }
end

--- An identity table, as auth would return it: t.who { id = "ann", plan = "pro" }.
function M.who(fields)
  if fields == nil then return {} end
  if type(fields) ~= "table" then arg_error("who", 1, "fields", "table", type(fields)) end
  return copy(fields)
end

local event_keys = {
  topic = true, data = true, event = true, priority = true, id = true, published_at = true,
}

--- An event table as filter receives it. data may be a string, or a table: then it goes
--- through JSON and back, as a published table does (so cjson.null and string keys show).
--- Defaults: topic "test", data "", priority "normal", published_at the fake clock's start,
--- id "<published_at>-0". Raises for an event the server would refuse to publish.
function M.event(spec)
  if spec == nil then spec = {} end
  if type(spec) ~= "table" then arg_error("event", 1, "spec", "table", type(spec)) end
  check_keys("event", spec, event_keys)
  local data = spec.data == nil and "" or spec.data
  local text
  if type(data) == "table" then
    local ok, encoded = pcall(cjson.encode, data)
    if not ok then fail("event", "data cannot be sent as JSON: " .. tostring(encoded)) end
    text, data = encoded, cjson.decode(encoded)
  elseif type(data) == "string" then
    text = data
  else
    fail("event", "data must be a string or a table, got " .. type(data))
  end
  local topic = spec.topic or "test"
  if type(topic) ~= "string" then fail("event", "topic must be a string, got " .. type(topic)) end
  if spec.event ~= nil and type(spec.event) ~= "string" then
    fail("event", "event must be a string, got " .. type(spec.event))
  end
  local ok, problem = native.event_check(topic, spec.event, text)
  if not ok then fail("event", problem) end
  local priority, why = native.priority_check(spec.priority or "normal")
  if not priority then fail("event", why .. ", got " .. tostring(spec.priority)) end
  local at = spec.published_at or START
  return {
    topic = topic,
    id = spec.id or ("%d-0"):format(at),
    event = spec.event,
    data = data,
    priority = priority,
    published_at = at,
  }
end

--- The conn table a message hook receives for a WebSocket connection: { id, remote, topics }.
--- Defaults: id 1, remote "127.0.0.1", topics {}; other fields in spec are copied too.
function M.conn(spec)
  if spec ~= nil and type(spec) ~= "table" then arg_error("conn", 1, "spec", "table", type(spec)) end
  local c = { id = 1, remote = "127.0.0.1", topics = {} }
  for k, v in pairs(spec or {}) do c[k] = v end
  return c
end

-- ---- the fake server ---------------------------------------------------------------------

local Server = {}
Server.__index = Server

local Route = {}
Route.__index = Route

local Stream = {}
Stream.__index = Stream

local server_keys = { now = true, tiers = true, app = true, dir = true }

--- A fake server. opts (all optional):
---   now    the clock's start in ms since the epoch (default 1700000000000)
---   app    an app file: it is run, its tiers are taken, and every stream and publish route
---          is loaded (srv:route(pattern) returns one)
---   dir    the directory put on package.path for scripts (default: the app file's)
---   tiers  the tier names tier hooks may return (a list, or the app's tiers table); without
---          it or an app, any name is accepted
function M.server(opts)
  if opts == nil then opts = {} end
  if type(opts) ~= "table" then arg_error("server", 1, "opts", "table", type(opts)) end
  check_keys("server", opts, server_keys)
  if opts.now ~= nil and type(opts.now) ~= "number" then
    fail("server", "opts.now must be a number of ms since the epoch, got " .. type(opts.now))
  end
  local srv = setmetatable({
    clock = opts.now or START,
    published = {}, -- every event published, in order (event tables, plus raw and json)
    logs = {},      -- { level, message, where } for each freshet.log line
    timers = {},    -- every timer created
    http_calls = {}, -- every freshet.http.request call, in order (see srv:on_http)
    redis_calls = {}, -- every freshet.redis call as { command, args... }, in order (srv:on_redis)
    errors = {},    -- Lua errors the server would have logged (from route:open/post, filters)
    streams = {},   -- streams opened with route:open and not closed
    routes = {},    -- by pattern, when loaded from an app
    ordered = {},   -- the app's scripted routes in its order (srv:http matches through them)
    modules = {},   -- what this server's scripts required, kept apart from other servers
    depth = 0,
    dir = opts.dir,
    _last = {},     -- per topic: { ms, seq } of the last id
  }, Server)
  srv.shared = native.shared(function() return srv.clock end)
  srv.core = fakecore.new(srv)
  srv.freshet = load_freshet(srv.core)
  -- The fake process started just before its clock: what position answers for a topic with no
  -- events, below the first id any topic issues (the hub's floor in src/core/hub.c).
  srv._start = math.floor(srv.clock) - 1
  -- freshet.position: the server's is C (src/lua/position.c); this one answers as the memory
  -- broker does.
  rawset(srv.freshet, "position", function(topic)
    if type(topic) ~= "string" then
      error(("freshet.position: bad argument #1 'topic' (string expected, got %s)"):format(type(topic)), 2)
    end
    return srv:position(topic)
  end)
  if opts.tiers then srv:_set_tiers(opts.tiers) end
  if opts.app then srv:_load_app(opts.app) end
  return srv
end

--- Loads one route script into a fresh fake server and returns the route; the server is
--- route.server. opts as for srv:load, plus now and tiers as for t.server.
function M.load(path, opts)
  if type(path) ~= "string" then arg_error("load", 1, "path", "string", type(path)) end
  if opts ~= nil and type(opts) ~= "table" then arg_error("load", 2, "opts", "table", type(opts)) end
  opts = opts or {}
  local srv = M.server { now = opts.now, tiers = opts.tiers, dir = opts.dir }
  local rest = {}
  for k, v in pairs(opts) do
    if k ~= "now" and k ~= "tiers" then rest[k] = v end
  end
  return srv:load(path, rest)
end

function Server:_set_tiers(tiers)
  if type(tiers) ~= "table" then fail("server", "tiers must be a list of names or a table of tiers") end
  self.tiers = {}
  if #tiers > 0 then
    for _, name in ipairs(tiers) do self.tiers[name] = true end
  else
    for name in pairs(tiers) do self.tiers[name] = true end
  end
end

-- Runs fn(...) the way the server runs Lua: with this server's freshet module and its own
-- required modules in package.loaded, and the app directory on package.path. Nested calls
-- (a hook that publishes to a stream whose filter runs) share one set-up.
function Server:_call(fn, ...)
  if self.depth > 0 then return fn(...) end
  local loaded = package.loaded
  local before, saved = {}, {}
  for name in pairs(loaded) do before[name] = true end
  for name, mod in pairs(self.modules) do
    saved[name] = loaded[name]
    loaded[name] = mod
  end
  local saved_freshet, saved_core, saved_path = loaded["freshet"], loaded["freshet.core"], package.path
  loaded["freshet"], loaded["freshet.core"] = self.freshet, self.core
  if self.dir then
    package.path = self.dir .. "/?.lua;" .. self.dir .. "/?/init.lua;" .. package.path
  end
  self.depth = 1
  local res = pack(pcall(fn, ...))
  self.depth = 0
  package.path = saved_path
  loaded["freshet"], loaded["freshet.core"] = saved_freshet, saved_core
  local mine = {}
  for name, mod in pairs(loaded) do
    if (self.modules[name] ~= nil or not before[name]) and name ~= "freshet"
        and name ~= "freshet.core" then
      mine[name] = mod
    end
  end
  for name, mod in pairs(mine) do
    self.modules[name] = mod
    loaded[name] = saved[name]
  end
  if not res[1] then error(res[2], 0) end
  return unpack(res, 2, res.n)
end

-- Runs an app file or a route script's top level, where the server cannot publish yet.
function Server:_run_loading(chunk)
  local was = self._loading
  self._loading = true
  local res = pack(pcall(self._call, self, chunk))
  self._loading = was
  if not res[1] then error(res[2], 0) end
  return unpack(res, 2, res.n)
end

function Server:_next_id(topic)
  -- A topic's first id comes after the server's start id (what freshet.position answers for
  -- a topic with no events), as the hub's floor works in src/core/hub.c.
  local last = self._last[topic] or { self._start, 0 }
  local ms = math.floor(self.clock)
  local seq = 0
  if last and ms <= last[1] then ms, seq = last[1], last[2] + 1 end
  self._last[topic] = { ms, seq }
  return ("%d-%d"):format(ms, seq)
end

-- Records an event (already checked) and offers it to every open stream on its topic.
function Server:_publish(topic, text, name, priority, json)
  local id = self:_next_id(topic)
  local record = {
    topic = topic, id = id, event = name, priority = priority, published_at = self.clock,
    data = json and cjson.decode(text) or text, raw = text, json = json and true or false,
  }
  self.published[#self.published + 1] = record
  local event = {
    topic = topic, id = id, event = name, priority = priority, published_at = self.clock,
    data = record.data,
  }
  for _, s in ipairs(self:_streams_for(topic)) do s:_offer(event) end
  return id
end

function Server:_streams_for(topic)
  local out = {}
  for _, s in ipairs(self.streams) do
    for _, t in ipairs(s.topics) do
      if t == topic then out[#out + 1] = s break end
    end
  end
  return out
end

--- Publishes as a script would with freshet.publish (returns the id); open streams on the
--- topic are offered the event.
function Server:publish(topic, data, opts)
  return self:_call(self.freshet.publish, topic, data, opts)
end

--- The fake clock, in ms since the epoch.
function Server:now() return self.clock end

--- Sets the clock (ms since the epoch). It may go back; ids stay increasing, as in the server.
function Server:set_now(ms)
  if type(ms) ~= "number" then arg_error("set_now", 1, "ms", "number", type(ms)) end
  self.clock = ms
end

--- Moves the clock forward by ms, firing each timer that falls due, in order of due time (an
--- `every` timer as often as it falls due); the clock reads each timer's due time while it
--- runs. Returns the number of timer calls.
function Server:advance(ms)
  if type(ms) ~= "number" or ms < 0 then arg_error("advance", 1, "ms", "number >= 0", type(ms)) end
  local target = self.clock + ms
  local calls = 0
  while true do
    local next_timer
    for _, timer in ipairs(self.timers) do
      if timer.active and timer.due <= target and (not next_timer or timer.due < next_timer.due) then
        next_timer = timer
      end
    end
    if not next_timer then break end
    if next_timer.due > self.clock then self.clock = next_timer.due end
    if next_timer.kind == "every" then next_timer.due = next_timer.due + next_timer.ms end
    next_timer:fire()
    calls = calls + 1
  end
  self.clock = target
  return calls
end

--- Answers the scripts' freshet.http.request calls: handler(req) gets { method, url, headers,
--- body, timeout, ca, verify } and returns a response { status = 200, headers = {}, body = "" } (a table
--- body is sent as JSON) or nil, err ("timeout", "connection refused", …). handler may also
--- be a table of responses keyed by "METHOD url" or by url; a call it has no entry for gets
--- nil, "connection refused". Every call is recorded in srv.http_calls.
function Server:on_http(handler)
  if type(handler) ~= "function" and type(handler) ~= "table" then
    arg_error("on_http", 1, "handler", "function or table", type(handler))
  end
  self.http_handler = handler
end

local function stub_response(res, where)
  if type(res) ~= "table" then
    fail("on_http", where .. " must return a response table or nil, err; got " .. type(res), 0)
  end
  local out = { status = res.status or 200, headers = {}, body = res.body or "" }
  if type(out.status) ~= "number" then fail("on_http", where .. ": status must be a number", 0) end
  for k, v in pairs(res.headers or {}) do out.headers[tostring(k):lower()] = tostring(v) end
  if type(out.body) == "table" then
    out.body = cjson.encode(out.body)
    out.headers["content-type"] = out.headers["content-type"] or "application/json"
  end
  return out
end

function Server:_http(method, url, headers, body, timeout, ca, verify)
  local req = { method = method, url = url, headers = headers or {}, body = body, timeout = timeout,
                ca = ca, verify = verify }
  self.http_calls[#self.http_calls + 1] = req
  local h = self.http_handler
  if h == nil then
    error(("freshet.test: the script called freshet.http.request (%s %s) and this server has no "
      .. "stub: srv:on_http(function(req) return { status = 200, body = ... } end)"):format(method, url), 0)
  end
  local res, err
  if type(h) == "function" then
    res, err = h(req)
  else
    res = h[method .. " " .. url] or h[url]
    if res == nil then err = "connection refused" end
  end
  if res == nil then return nil, err or "connection refused" end
  return stub_response(res, "the on_http stub for " .. method .. " " .. url)
end

--- Answers the scripts' freshet.redis calls: handler(command, args...) gets the command and
--- its arguments as Redis would (numbers written as text) and returns the reply: a string, a
--- whole number, a table (an array; nested the same way), freshet.null, or nothing for a
--- missing value (freshet.null too); or nil, err for an error reply or a failed call
--- ("ERR wrong type", "timeout", ...). Every call is recorded in srv.redis_calls.
function Server:on_redis(handler)
  if type(handler) ~= "function" then arg_error("on_redis", 1, "handler", "function", type(handler)) end
  self.redis_handler = handler
end

-- The text Redis gets for a number argument (src/lua/redis.c's number_text).
local function redis_number(v)
  if v == math.floor(v) and math.abs(v) < 2 ^ 53 then return string.format("%d", v) end
  return string.format("%.17g", v)
end

local function check_redis_reply(v, where)
  local t = type(v)
  if t == "string" or v == cjson.null then return end
  if t == "number" then
    if v ~= math.floor(v) or math.abs(v) >= 2 ^ 63 then
      fail("on_redis", where .. " returned " .. tostring(v) .. ": Redis integers are whole numbers "
        .. "(return a string for other values)", 0)
    end
    return
  end
  if t == "table" then
    if type(v.err) == "string" and next(v, next(v)) == nil then return end
    local n = #v
    for k in pairs(v) do
      if type(k) ~= "number" or k < 1 or k > n or k ~= math.floor(k) then
        fail("on_redis", where .. " returned a table with key " .. tostring(k)
          .. ": a Redis array is a sequence (an error inside one is { err = \"...\" })", 0)
      end
    end
    for i = 1, n do check_redis_reply(v[i], where) end
    return
  end
  fail("on_redis", where .. " must return a string, a number, a table, freshet.null or nil, err; got "
    .. t, 0)
end

function Server:_redis(cmd, args, n)
  local call = { cmd }
  for i = 1, n do
    local v = args[i]
    call[i + 1] = type(v) == "number" and redis_number(v) or v
  end
  self.redis_calls[#self.redis_calls + 1] = call
  local h = self.redis_handler
  if h == nil then
    error(("freshet.test: the script called freshet.redis (%s) and this server has no stub: "
      .. "srv:on_redis(function(cmd, ...) return reply end)"):format(cmd), 0)
  end
  local reply, err = h(unpack(call, 1, n + 1))
  if reply == nil and err ~= nil then
    if type(err) ~= "string" then
      fail("on_redis", "the on_redis stub for " .. cmd .. " returned nil and a " .. type(err)
        .. " (nil, err wants a string)", 0)
    end
    return nil, err
  end
  if reply == nil then reply = cjson.null end
  check_redis_reply(reply, "the on_redis stub for " .. cmd)
  return { reply }
end

--- The timers that have not been cancelled or run out.
function Server:active_timers()
  local out = {}
  for _, timer in ipairs(self.timers) do
    if timer.active then out[#out + 1] = timer end
  end
  return out
end

--- True when a line was logged whose message matches the Lua pattern (at level, if given).
function Server:logged(pattern, level)
  for _, line in ipairs(self.logs) do
    if (level == nil or line.level == level) and line.message:find(pattern) then return true end
  end
  return false
end

--- The route loaded from the app for pattern (raises when there is none).
function Server:route(pattern)
  local r = self.routes[pattern]
  if not r then
    local known = {}
    for p in pairs(self.routes) do known[#known + 1] = p end
    table.sort(known)
    fail("route", ("no route '%s' (the app has: %s)"):format(tostring(pattern),
      #known > 0 and table.concat(known, ", ") or "none"), 1)
  end
  return r
end

function Server:_load_app(path)
  self.dir = self.dir or dirname(path)
  local chunk, err = loadfile(path)
  if not chunk then error(err, 0) end
  local app = self:_run_loading(chunk)
  if type(app) ~= "table" or app.kind ~= "freshet.app" then
    error(path .. ": the app file must return the app (return freshet.app{...})", 0)
  end
  -- An app without tiers has no names a tier hook may return, as in the server.
  if not self.tiers then self:_set_tiers(app.config.tiers or {}) end
  self.app = app
  for _, r in ipairs(app.routes) do
    if r.kind == "stream" or r.kind == "publish" or r.kind == "http" then
      local _, err = native.pattern(r.pattern)
      if err then
        error(("%s:%d: app:%s: %s in \"%s\""):format(r.source, r.line, r.kind, err, r.pattern), 0)
      end
      local route = self:load(join(dirname(path), r.target), {
        kind = r.kind, pattern = r.pattern, method = r.method,
      })
      -- srv:route(pattern) finds the first route of a pattern; srv:http finds each http route
      -- by method and path, in the app's order, as the server matches them.
      self.routes[r.pattern] = self.routes[r.pattern] or route
      self.ordered[#self.ordered + 1] = route
    end
  end
end

-- The fields a route script may hold, as the server checks them (src/vm.c). Stream routes
-- may also hold `message`, the hook for messages a WebSocket client sends.
local route_fields = {
  stream = { auth = true, topics = true, tier = true, filter = true, on_gap = true,
             on_slow = true, message = true },
  publish = { auth = true, publish = true, tier = true, body = true },
  http = { auth = true, handle = true, tier = true, body = true },
}
local hook_names = { "auth", "topics", "tier", "filter", "publish", "message", "handle" }
local slow_policies = { drop = true, conflate = true, disconnect = true }

local load_keys = { kind = true, pattern = true, dir = true, method = true }

--- Loads a route script into this server. path is relative to the current directory.
--- opts: kind ("stream" or "publish"; default: "publish" when the script has a publish hook),
--- pattern (the route's pattern, for route:request and error messages), dir (as for
--- t.server, when the server has none yet). Raises the errors the server reports at load.
function Server:load(path, opts)
  if type(path) ~= "string" then arg_error("load", 1, "path", "string", type(path)) end
  if opts ~= nil and type(opts) ~= "table" then arg_error("load", 2, "opts", "table", type(opts)) end
  opts = opts or {}
  check_keys("load", opts, load_keys)
  local pattern
  if opts.pattern ~= nil then
    if type(opts.pattern) ~= "string" then
      fail("load", "opts.pattern must be a string, got " .. type(opts.pattern))
    end
    local why
    pattern, why = native.pattern(opts.pattern)
    if not pattern then fail("load", ("opts.pattern: %s in \"%s\""):format(why, opts.pattern)) end
  end
  self.dir = self.dir or opts.dir or guess_app_dir(path)
  local chunk, err = loadfile(path)
  if not chunk then error(err, 0) end
  -- Globals the script sets land in its own table, so tests cannot leak into each other
  -- and route:globals() can list them.
  local env = setmetatable({}, { __index = _G })
  setfenv(chunk, env)
  local hooks = self:_run_loading(chunk)
  if type(hooks) ~= "table" then
    error(("%s:1: a route script must return a table of hooks, got %s"):format(path, type(hooks)), 0)
  end
  local kind = opts.kind or (hooks.publish ~= nil and "publish")
    or (hooks.handle ~= nil and "http") or "stream"
  local allowed = route_fields[kind]
  if not allowed then
    fail("load", "opts.kind must be \"stream\", \"publish\" or \"http\", got " .. tostring(kind))
  end
  local problems = {}
  local function problem(fmt, ...) problems[#problems + 1] = path .. ":1: " .. fmt:format(...) end
  for k in pairs(hooks) do
    if type(k) ~= "string" or not allowed[k] then
      problem("unknown field '%s' in a %s route script", tostring(k), kind)
    end
  end
  for _, name in ipairs(hook_names) do
    local v = hooks[name]
    if allowed[name] and v ~= nil and type(v) ~= "function" then
      problem("hook '%s' must be a function, got %s", name, type(v))
    end
  end
  if hooks.on_gap ~= nil and hooks.on_gap ~= "reset" and hooks.on_gap ~= "416" then
    problem("on_gap must be \"reset\" or \"416\"")
  end
  local slow = hooks.on_slow
  if slow ~= nil and type(slow) ~= "function" and not slow_policies[slow] then
    problem("on_slow must be \"drop\", \"conflate\", \"disconnect\" or a function(topic, who) returning one of them")
  end
  if hooks.body ~= nil and hooks.body ~= "json" and hooks.body ~= "raw" then
    problem("body must be \"json\" or \"raw\"")
  end
  if kind == "stream" and type(hooks.topics) ~= "function" then
    problem("a stream route needs a topics(req, who) hook")
  end
  if kind == "publish" and type(hooks.publish) ~= "function" then
    problem("a publish route needs a publish(req, body, who) hook")
  end
  if kind == "http" and type(hooks.handle) ~= "function" then
    problem("an http route needs a handle(req, body, who) hook")
  end
  if #problems > 0 then error(table.concat(problems, "\n"), 0) end
  return setmetatable({
    server = self, freshet = self.freshet, hooks = hooks, path = path, kind = kind,
    pattern = opts.pattern, _pattern = pattern, _env = env,
    method = kind == "http" and (opts.method or "GET") or nil,
  }, Route)
end

-- ---- routes ------------------------------------------------------------------------------

function Route:_name() return self.pattern or self.path end

-- Raises the error the server would log for a hook's unusable answer.
function Route:_mistake(msg)
  error(("route %s: %s"):format(self:_name(), msg), 3)
end

local function check_req(fn, req)
  if type(req) ~= "table" then
    error(("freshet.test: route:%s: bad argument #1 'req' (table expected, got %s; build one with t.request)"):format(
      fn, type(req)), 3)
  end
end

--- A req for this route: as t.request, with method defaulting to the route's (GET for a
--- stream, POST for a publish route) and params taken from the path when the route has a
--- pattern and spec gives none.
function Route:request(spec)
  if spec == nil then spec = {} end
  if type(spec) ~= "table" then arg_error("request", 1, "spec", "table", type(spec)) end
  spec = copy(spec)
  spec.method = spec.method or self.method or (self.kind == "publish" and "POST" or "GET")
  -- Through pcall, so that a bad spec blames the caller's line rather than this one.
  local ok, req = pcall(M.request, spec)
  if not ok then error(req, 2) end
  if spec.params == nil and self._pattern then
    local raw = (spec.path or "/"):gsub("%?.*$", "")
    local params, err = self._pattern:match(raw)
    if params == nil then fail("request", err, 1) end
    if not params then
      fail("request", ("path %s does not match the route's pattern %s"):format(raw, self.pattern), 1)
    end
    req.params = params
  end
  return req
end

--- Names of the globals the script has set (at load or in hooks), sorted.
function Route:globals()
  local names = {}
  for k in pairs(self._env) do names[#names + 1] = tostring(k) end
  table.sort(names)
  return names
end

--- Calls auth(req). Without an auth hook, returns {} (the server lets everyone in).
function Route:auth(req)
  check_req("auth", req)
  if not self.hooks.auth then return {} end
  local r = pack(self.server:_call(self.hooks.auth, req))
  if r[1] and type(r[1]) ~= "table" then
    self:_mistake("auth must return an identity table, or nil, status, message; got " .. type(r[1]))
  end
  return unpack(r, 1, r.n)
end

-- Checks a topics answer as src/stream/stream.c does: nil, or what is wrong and, as a second
-- value, true when it is a name no topic may have. The server takes that for the client's
-- mistake (the name most likely came from the request) and answers 400 instead of logging it.
local function topics_problem(list)
  if type(list) ~= "table" then return "topics hook must return a list of topic names, got " .. type(list) end
  local n = #list
  if n == 0 or n > 64 then return ("topics hook must return between 1 and 64 topics, got %d"):format(n) end
  local seen = {}
  for i = 1, n do
    local topic = list[i]
    local ok, err = false, "not a string"
    if type(topic) == "string" then
      ok, err = native.event_check(topic, nil, "")
      if not ok then return ("topics hook: topic %d is invalid: %s"):format(i, err), true end
      ok, err = not seen[topic], "listed twice"
      seen[topic] = true
    end
    if not ok then return ("topics hook: topic %d is invalid: %s"):format(i, err) end
  end
  return nil
end

-- What a WebSocket topic change hands the topics hook, as src/transport/ws.c builds it:
-- { op = "subscribe" | "unsubscribe", topics = <the client's list>, current = <the stream's> }.
local function check_change(change)
  if change == nil then return end
  if type(change) ~= "table" then
    error(("freshet.test: route:topics: bad argument #3 'change' (table expected, got %s)"):format(
      type(change)), 3)
  end
  if change.op ~= "subscribe" and change.op ~= "unsubscribe" then
    error("freshet.test: route:topics: change.op must be \"subscribe\" or \"unsubscribe\"", 3)
  end
  if type(change.topics) ~= "table" or type(change.current) ~= "table" then
    error("freshet.test: route:topics: change.topics and change.current must be lists", 3)
  end
end

--- Calls topics(req, who[, change]) (who defaults to {}) and returns the list. change is what
--- a WebSocket client's subscribe/unsubscribe hands the hook: { op =, topics =, current = }.
function Route:topics(req, who, change)
  check_req("topics", req)
  if not self.hooks.topics then fail("topics", "the route has no topics hook", 1) end
  check_change(change)
  local list = self.server:_call(self.hooks.topics, req, who or {}, change)
  local problem = topics_problem(list)
  if problem then self:_mistake(problem) end
  return list
end

-- Checks a tier answer; returns nil or what is wrong.
function Route:_tier_problem(name)
  if name == nil then return nil end
  if type(name) ~= "string" then return "tier hook must return a tier name or nil, got " .. type(name) end
  local tiers = self.server.tiers
  if tiers and not tiers[name] then return ("tier hook returned unknown tier '%s'"):format(name) end
  return nil
end

--- Calls tier(req, who); nil without a tier hook.
function Route:tier(req, who)
  check_req("tier", req)
  if not self.hooks.tier then return nil end
  local name = self.server:_call(self.hooks.tier, req, who or {})
  local problem = self:_tier_problem(name)
  if problem then self:_mistake(problem) end
  return name
end

--- Calls filter(event, who) and returns its answer; true without a filter hook (every event
--- is sent).
function Route:filter(event, who)
  if type(event) ~= "table" then arg_error("filter", 1, "event", "table (see t.event)", type(event)) end
  if not self.hooks.filter then return true end
  return self.server:_call(self.hooks.filter, event, who or {})
end

--- Calls publish(req, body, who). A string body is decoded first when the script has
--- body = "json", as the server does (a body that is not JSON raises here; route:post
--- answers 400 instead); a table body is passed as is.
function Route:publish(req, body, who)
  check_req("publish", req)
  if not self.hooks.publish then fail("publish", "the route has no publish hook", 1) end
  if body == nil then body = "" end
  if self.hooks.body == "json" and type(body) == "string" then
    local value, err = request.json(body)
    if value == nil then fail("publish", "the route takes JSON bodies and this one is not: " .. err, 1) end
    body = value
  end
  local r = pack(self.server:_call(self.hooks.publish, req, body, who or {}))
  if r[1] and type(r[1]) ~= "table" then
    self:_mistake("publish must return an event table, a list of them, or nil, status, message; got "
      .. type(r[1]))
  end
  return unpack(r, 1, r.n)
end

--- Calls message(conn, msg, who), the hook for a message a WebSocket client sent, and returns
--- its reply (a table is sent back as JSON, a string as it is). conn is from t.conn; msg is a
--- table, or JSON text that is decoded as the server does.
function Route:message(conn, msg, who)
  if not self.hooks.message then fail("message", "the route has no message hook", 1) end
  if type(conn) ~= "table" then arg_error("message", 1, "conn", "table (see t.conn)", type(conn)) end
  -- The server decodes each text frame and hands the hook only JSON objects.
  if type(msg) == "string" then
    local ok, value = pcall(cjson.decode, msg)
    if not ok or type(value) ~= "table" then fail("message", "messages are JSON objects", 1) end
    msg = value
  elseif type(msg) ~= "table" then
    arg_error("message", 2, "msg", "table or JSON text", type(msg))
  end
  local reply = self.server:_call(self.hooks.message, conn, msg, who or {})
  if type(reply) == "table" then
    local ok, err = pcall(cjson.encode, reply)
    if not ok then self:_mistake("message hook returned what JSON cannot hold: " .. tostring(err)) end
  end
  return reply
end

-- ---- the server's request flow ----------------------------------------------------------

-- Runs a hook as the server does: an error is logged and becomes a 500.
function Route:_guard(what, fn, ...)
  local r = pack(pcall(fn, ...))
  if r[1] then return true, unpack(r, 2, r.n) end
  local msg = tostring(r[2])
  self.server.errors[#self.server.errors + 1] = {
    hook = what, route = self:_name(), message = msg,
  }
  return false, msg
end

local function internal(reason) return { status = 500, error = "internal error", reason = reason } end

-- Answers 500 for a script mistake the server logs as "route <pattern>: <what>", and records it.
function Route:_internal(hook, what)
  local reason = ("route %s: %s"):format(self:_name(), what)
  local errors = self.server.errors
  errors[#errors + 1] = { hook = hook, route = self:_name(), message = reason }
  return internal(reason)
end

-- What the server answers a stream whose topics hook names a topic no event may have
-- (src/stream/stream.c).
local BAD_TOPIC = "the request names an invalid topic (CR, LF, NUL or not UTF-8)"

-- What auth's refusal answers: status 400..599 (else 403), default message "not allowed".
local function refusal(status, msg, default_status, default_msg)
  status = type(status) == "number" and math.floor(status) or default_status
  if status < 400 or status > 599 then status = default_status end
  return { status = status, error = type(msg) == "string" and msg or default_msg }
end

local function run_auth(route, req)
  local ok, who, status, msg = route:_guard("auth", Route.auth, route, req)
  if not ok then return nil, internal(who) end
  if type(who) ~= "table" then return nil, refusal(status, msg, 403, "not allowed") end
  return who
end

--- Runs a stream request through the server's steps — auth, topics, tier, on_slow — and
--- returns the response: { status = 200, who, topics, tier, slow = { topic = policy },
--- events = {} } for an open stream, or { status, error } when refused (a Lua error or an
--- unusable answer gives { status = 500, error = "internal error", reason = ... }).
--- From then on every event published on its topics (srv:publish, route:post, a script's
--- freshet.publish, timers) is offered to filter; those it keeps are appended to events.
--- stream:close() ends it. A filter error ends the stream (closed, error), as in the server.
function Route:open(req)
  check_req("open", req)
  if self.kind ~= "stream" then fail("open", "route:open is for stream routes; use route:post", 1) end
  local who, refused = run_auth(self, req)
  if not who then return refused end
  local srv = self.server
  local ok, topics = self:_guard("topics", srv._call, srv, self.hooks.topics, req, who)
  if not ok then return internal(topics) end
  local problem, clients = topics_problem(topics)
  if clients then return { status = 400, error = BAD_TOPIC } end
  if problem then return self:_internal("topics", problem) end
  local tier
  ok, tier = self:_guard("tier", Route.tier, self, req, who)
  if not ok then return internal(tier) end
  local slow = {}
  for _, topic in ipairs(topics) do
    local policy = self.hooks.on_slow or "drop"
    if type(policy) == "function" then
      local answered
      ok, answered = self:_guard("on_slow", srv._call, srv, policy, topic, who)
      if not ok then return internal(answered) end
      if answered ~= nil and not slow_policies[answered] then
        local t = type(answered)
        return self:_internal("on_slow", ("on_slow must return drop, conflate or disconnect, got %s"):format(
          (t == "string" or t == "number") and tostring(answered) or t))
      end
      policy = answered or "drop"
    end
    slow[topic] = policy
  end
  local stream = setmetatable({
    status = 200, who = who, topics = copy(topics), tier = tier, slow = slow, events = {},
    closed = false, route = self, req = req,
  }, Stream)
  local streams = self.server.streams
  streams[#streams + 1] = stream
  return stream
end

function Stream:_offer(event)
  if self.closed then return end
  -- A filter runs during a delivery, where the server refuses to publish.
  local srv = self.route.server
  local was = srv._delivering
  srv._delivering = true
  local ok, keep = self.route:_guard("filter", Route.filter, self.route, event, self.who)
  srv._delivering = was
  if not ok then
    self:close()
    self.error = keep
    return
  end
  if keep then self.events[#self.events + 1] = event end
end

--- Ends the stream: it is offered no more events.
function Stream:close()
  self.closed = true
  local streams = self.route.server.streams
  for i = #streams, 1, -1 do
    if streams[i] == self then table.remove(streams, i) end
  end
end

-- Reads one event description as src/app/publish.c does, in its order: nil, status, message
-- when it cannot be published (400 for the client's fault, 500 for the script's). A NUL in
-- the topic or the event name is refused as soon as that field is read.
local function read_item(route, item)
  local topic, name, priority = item.topic, item.event, item.priority
  if type(topic) ~= "string" then
    return nil, 500, ("route %s: publish hook: topic must be a string, got %s"):format(route:_name(), type(topic))
  end
  if topic:find("%z") then return nil, 400, select(2, native.event_check(topic, nil, "")) end
  if name ~= nil and type(name) ~= "string" then
    return nil, 500, ("route %s: publish hook: event must be a string, got %s"):format(route:_name(), type(name))
  end
  if name and name:find("%z") then
    -- Checked beside a topic that passes, so the message is the one for the name.
    return nil, 400, select(2, native.event_check("t", name, ""))
  end
  if name == "" then name = nil end
  if priority ~= nil then
    local known, why = native.priority_check(priority)
    if not known then return nil, 400, why end
    priority = known
  end
  local data, json = item.data, false
  if type(data) == "table" then
    local ok, text = pcall(cjson.encode, data)
    if not ok then
      return nil, 500, ("route %s: publish hook: data cannot be sent as JSON: %s"):format(route:_name(), tostring(text))
    end
    data, json = text, true
  elseif type(data) ~= "string" then
    return nil, 500, ("route %s: publish hook: data must be a string or a table, got %s"):format(route:_name(), type(data))
  end
  local ok, problem = native.event_check(topic, name, data)
  if not ok then return nil, 400, problem end
  return { topic = topic, event = name, priority = priority or "normal", data = data, json = json }
end

--- Runs a POST through the server's steps — auth, tier, body decoding, publish, the event
--- checks — and publishes the events. Returns { status = 201, id = "<id>" } (or ids = { ... }
--- when the hook returned a list), with events = the published event tables; or
--- { status, error } as the client would see it (500s also carry reason). body is a string
--- (default ""); for a body = "json" route it may also be a table, taken as already decoded.
function Route:post(req, body)
  check_req("post", req)
  if self.kind ~= "publish" then fail("post", "route:post is for publish routes; use route:open", 1) end
  if body == nil then body = "" end
  local who, refused = run_auth(self, req)
  if not who then return refused end
  -- The server asks tier before it reads the body and calls publish (src/app/publish.c).
  local tier_ok, tier = self:_guard("tier", Route.tier, self, req, who)
  if not tier_ok then return internal(tier) end
  if self.hooks.body == "json" and type(body) == "string" then
    if body == "" then return { status = 400, error = "invalid JSON body: the body is empty" } end
    local ok, value = pcall(cjson.decode, body)
    if not ok then return { status = 400, error = "invalid JSON body: " .. tostring(value) } end
    body = value
  end
  local srv = self.server
  local ok, result, status, msg = self:_guard("publish", srv._call, srv, self.hooks.publish, req, body, who)
  if not ok then return internal(result) end
  if type(result) ~= "table" then
    if result then
      local reason = ("route %s: publish must return an event table, a list of them, or nil, status, message; got %s"):format(
        self:_name(), type(result))
      srv.errors[#srv.errors + 1] = { hook = "publish", route = self:_name(), message = reason }
      return internal(reason)
    end
    return refusal(status, msg, 400, "not published")
  end
  local many = result.topic == nil
  local list = many and result or { result }
  if #list == 0 or #list > 256 then
    local reason = ("route %s: publish returned %d events (1 to 256 allowed)"):format(self:_name(), #list)
    srv.errors[#srv.errors + 1] = { hook = "publish", route = self:_name(), message = reason }
    return internal(reason)
  end
  -- Every event is checked before any is published: all or none.
  local items = {}
  for i, item in ipairs(list) do
    if type(item) ~= "table" then
      local reason = ("route %s: publish: item %d is a %s, not a table"):format(self:_name(), i, type(item))
      srv.errors[#srv.errors + 1] = { hook = "publish", route = self:_name(), message = reason }
      return internal(reason)
    end
    local it, code, why = read_item(self, item)
    if not it then
      if code == 500 then
        srv.errors[#srv.errors + 1] = { hook = "publish", route = self:_name(), message = why }
        return internal(why)
      end
      return { status = code, error = why }
    end
    items[i] = it
  end
  local ids, events = {}, {}
  for i, it in ipairs(items) do
    ids[i] = srv:_call(srv._publish, srv, it.topic, it.data, it.event, it.priority, it.json)
    events[i] = srv.published[#srv.published]
  end
  local res = { status = 201, events = events }
  if many then res.ids = ids else res.id = ids[1] end
  return res
end

-- ---- http routes -------------------------------------------------------------------------

--- Calls handle(req, body, who) and returns what it returned (status, body, headers). A string
--- body is decoded first when the script has body = "json" ("" becomes nil), as the server does.
function Route:handle(req, body, who)
  check_req("handle", req)
  if not self.hooks.handle then fail("handle", "the route has no handle hook", 1) end
  if self.hooks.body == "json" and type(body) == "string" then
    if body == "" then
      body = nil
    else
      local value, err = request.json(body)
      if value == nil then fail("handle", "the route takes JSON bodies and this one is not: " .. err, 1) end
      body = value
    end
  elseif body == nil and self.hooks.body ~= "json" then
    body = ""
  end
  return self.server:_call(self.hooks.handle, req, body, who or {})
end

local reserved_headers = { ["content-length"] = true, ["transfer-encoding"] = true, connection = true }

-- handle's results as src/app/http_route.c reads them: { status, body, headers } as the client
-- gets them, or nil and what was wrong.
local function read_answer(status, body, headers)
  if type(status) ~= "number" then return nil, "the first result must be the status (a number)" end
  if status ~= math.floor(status) or status < 200 or status > 599 then
    return nil, "the status must be an integer from 200 to 599"
  end
  local out = { status = status, headers = {} }
  if type(body) == "table" then
    local ok, text = pcall(cjson.encode, body)
    if not ok then return nil, "the body table cannot be sent as JSON: " .. tostring(text) end
    out.body, out.json, out.headers["content-type"] = text, body, "application/json"
  elseif body == nil then
    out.body = ""
  elseif type(body) == "string" then
    out.body, out.headers["content-type"] = body, "text/plain; charset=utf-8"
  else
    return nil, "the body must be a string, a table (sent as JSON) or nil"
  end
  if headers ~= nil then
    if type(headers) ~= "table" then return nil, "headers must be a table of name = value" end
    for name, value in pairs(headers) do
      if type(name) ~= "string" or (type(value) ~= "string" and type(value) ~= "number") then
        return nil, "headers must be a table of name = string"
      end
      value = tostring(value)
      if name == "" then return nil, "an empty header name" end
      if not name:match("^[%w!#$%%&'*+%-.^_`|~]+$") then return nil, "a header name that is not a token" end
      if value:find("[\r\n%z]") then return nil, "CR, LF or NUL in a header value" end
      if reserved_headers[name:lower()] then
        return nil, "a header the server sets itself (Content-Length, Transfer-Encoding, Connection)"
      end
      out.headers[name:lower()] = value
    end
  end
  if out.body == "" then out.headers["content-type"] = nil end
  return out
end

--- Runs a request through the server's steps for an http route — auth, tier, body decoding,
--- handle, the answer's checks — and returns { status, body, headers } as the client gets them
--- (headers by lower-case name; json = the decoded body when handle returned a table), or
--- { status, error } for a refusal (500s also carry reason).
function Route:call(req, body)
  check_req("call", req)
  if self.kind ~= "http" then fail("call", "route:call is for http routes", 1) end
  local who, refused = run_auth(self, req)
  if not who then return refused end
  local tier_ok, tier = self:_guard("tier", Route.tier, self, req, who)
  if not tier_ok then return internal(tier) end
  if body == nil then body = "" end
  if self.hooks.body == "json" and type(body) == "string" then
    if body == "" then
      body = nil
    else
      local ok, value = pcall(cjson.decode, body)
      if not ok then return { status = 400, error = "invalid JSON body: " .. tostring(value) } end
      body = value
    end
  end
  local srv = self.server
  local r = pack(self:_guard("handle", srv._call, srv, self.hooks.handle, req, body, who))
  if not r[1] then return internal(r[2]) end
  local out, why = read_answer(r[2], r[3], r[4])
  if not out then
    local reason = ("route %s: handle must return status, body[, headers]: %s"):format(self:_name(), why)
    srv.errors[#srv.errors + 1] = { hook = "handle", route = self:_name(), message = reason }
    return internal(reason)
  end
  return out
end

local http_keys = { headers = true, body = true, query = true, cookies = true, remote = true }

--- Sends a request to the app's http routes as the server would route it: srv:http("POST",
--- "/login", { body = '{"name":"ann"}', headers = { ... } }) returns status, body, headers
--- (and the answer table as a fourth value). A path no http route takes answers 404 (405 when
--- one takes it with another method). body may be a table for a body = "json" route.
function Server:http(method, path, opts)
  if type(method) ~= "string" then arg_error("http", 1, "method", "string", type(method)) end
  if type(path) ~= "string" then arg_error("http", 2, "path", "string", type(path)) end
  if opts ~= nil and type(opts) ~= "table" then arg_error("http", 3, "opts", "table", type(opts)) end
  opts = opts or {}
  check_keys("http", opts, http_keys)
  local raw = path:gsub("%?.*$", "")
  local other = false
  for _, route in ipairs(self.ordered) do
    if route.kind == "http" and route._pattern then
      local params = route._pattern:match(raw)
      if params then
        if route.method == method or (method == "HEAD" and route.method == "GET") then
          local req = route:request { method = method, path = path, headers = opts.headers,
                                      query = opts.query, cookies = opts.cookies, remote = opts.remote }
          local body = opts.body
          if type(body) == "table" and route.hooks.body ~= "json" then
            fail("http", "a table body needs a body = \"json\" route", 1)
          end
          local res = route:call(req, body)
          if res.error then res.body = cjson.encode({ error = res.error }) end
          return res.status, res.body, res.headers or { ["content-type"] = "application/json" }, res
        end
        other = true
      end
    end
  end
  local res = other and { status = 405, error = ("method %s is not allowed here"):format(method) }
    or { status = 404, error = "no route for this path" }
  return res.status, cjson.encode({ error = res.error }), { ["content-type"] = "application/json" }, res
end

--- freshet.position(topic) in the fake server: the topic's newest id, or the server's start
--- id ("<clock at start>-0") for a topic with no events, as the memory broker answers.
function Server:position(topic)
  if type(topic) ~= "string" then arg_error("position", 1, "topic", "string", type(topic)) end
  local last = self._last[topic]
  if last then return ("%d-%d"):format(last[1], last[2]) end
  return ("%d-0"):format(self._start)
end

M.Server, M.Route, M.Stream = Server, Route, Stream
return M
