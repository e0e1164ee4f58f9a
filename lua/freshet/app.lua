-- freshet.app: builds the app object that an app file returns. Every key is checked here, so a
-- typo is reported at the line of the app file that made it.
local M = {}

local App = {}
App.__index = App

-- Checks raise a marked table; the public entry points re-raise it as a string at the level of
-- the app file's own line, however deep the check was.
local Failure = {}
local function fail(msg)
  error(setmetatable({ msg = msg }, Failure))
end

local function rethrow(err, prefix)
  if getmetatable(err) == Failure then
    error(prefix .. err.msg, 3)
  end
  error(err, 0)
end

local function check_type(where, value, expected)
  if type(value) ~= expected then
    fail(("%s must be a %s, got %s"):format(where, expected, type(value)))
  end
end

local function check_int(where, value, min)
  check_type(where, value, "number")
  if value ~= math.floor(value) or value < min then
    fail(("%s must be an integer >= %d, got %s"):format(where, min, tostring(value)))
  end
end

local function check_positive(where, value)
  check_type(where, value, "number")
  if not (value > 0) then
    fail(("%s must be a number > 0, got %s"):format(where, tostring(value)))
  end
end

local function check_keys(where, t, allowed)
  for k in pairs(t) do
    if type(k) ~= "string" or not allowed[k] then
      fail(("%s: unknown key '%s'"):format(where, tostring(k)))
    end
  end
end

local checks = {}

-- "host:port" (IPv4 or a name) or "[v6addr]:port".
local function check_address(name, v)
  check_type(name, v, "string")
  if not (v:match("^[^:]+:%d+$") or v:match("^%[[%x:]+%]:%d+$")) then
    fail(("%s must be \"host:port\", got %q"):format(name, v))
  end
end

function checks.listen(v) check_address("listen", v) end
-- admin = "host:port": a listener of its own for /health, /readyz and /metrics.
function checks.admin(v) check_address("admin", v) end

-- access_log = { path = "/var/log/freshet/access.log" | "stderr", format = "text" | "json" }
function checks.access_log(v)
  check_type("access_log", v, "table")
  check_keys("access_log", v, { path = true, format = true })
  check_type("access_log.path", v.path, "string")
  if v.path == "" then fail("access_log.path must name a file, or be \"stderr\"") end
  if v.format ~= nil and v.format ~= "text" and v.format ~= "json" then
    fail("access_log.format must be \"text\" or \"json\", got " .. tostring(v.format))
  end
end

function checks.heartbeat(v) check_positive("heartbeat", v) end
function checks.retry(v) check_int("retry", v, 0) end
function checks.budget(v) check_int("budget", v, 1000) end
function checks.memory(v) check_int("memory", v, 1) end
function checks.jit(v) check_type("jit", v, "boolean") end
-- h2c = true: a cleartext listener speaks HTTP/2 to a client that starts with its preface
-- (prior knowledge: proxies and load balancers that speak it); HTTP/1.1 still works there.
function checks.h2c(v) check_type("h2c", v, "boolean") end

-- workers: a count of worker threads (each with its own loop and Lua VM), or "auto" for one
-- per core. Environment variables arrive as strings, so "4" is taken as 4.
function checks.workers(v)
  if v == "auto" then return end
  if type(v) == "string" and v:match("^%d+$") then v = tonumber(v) end
  if type(v) ~= "number" or v ~= math.floor(v) or v < 1 or v > 64 then
    fail(("workers must be \"auto\" or a whole number from 1 to 64, got %s"):format(tostring(v)))
  end
end

function checks.replay(v)
  check_type("replay", v, "table")
  check_keys("replay", v, { events = true, seconds = true })
  if v.events ~= nil then check_int("replay.events", v.events, 0) end
  if v.seconds ~= nil then
    check_type("replay.seconds", v.seconds, "number")
    if v.seconds < 0 then fail("replay.seconds must be >= 0") end
  end
end

-- The broker URL, read the way the server reads it (src/broker/redis_url.c), so that a mistake
-- is reported with the app file's line:
--   redis://[[user]:password@]host[:port][/db][?params]
--   redis-sentinel://[[user]:password@]host[:port][,host[:port]...]/master-name[/db][?params]
--   redis-cluster://[[user]:password@]host[:port][,host[:port]...][?params]
--   unix:///path[?params]
--   params: replicas=N (0-100) and wait=MS (1-60000, with replicas), joined by '&'
local BROKER_FORMS = "\"memory\", \"redis://[user:password@]host:port[/db]\", " ..
  "\"redis-sentinel://host:port[,host:port...]/master-name[/db]\", " ..
  "\"redis-cluster://host:port[,host:port...]\" or \"unix:///path\" " ..
  "(each with an optional ?replicas=N&wait=MS), or " ..
  "\"nats://[user:password@]host:port[,host:port...][?replicas=N&stream=NAME]\""

local function broker_num(s, min, max)
  if not s:match("^%d+$") or #s > 9 then return nil end
  local n = tonumber(s)
  if n < min or n > max then return nil end
  return n
end

local function broker_params(q, url)
  local replicas, wait = 0, nil
  if q == "" then return end
  for param in (q .. "&"):gmatch("([^&]*)&") do
    local k, val = param:match("^([^=]*)=?(.*)$")
    if param == "" then
      fail(("broker: empty parameter in %q"):format(url))
    elseif k == "replicas" then
      replicas = broker_num(val, 0, 100)
      if not replicas then
        fail(("broker: replicas must be a whole number from 0 to 100 in %q"):format(url))
      end
    elseif k == "wait" then
      wait = broker_num(val, 1, 60000)
      if not wait then fail(("broker: wait must be milliseconds from 1 to 60000 in %q"):format(url)) end
    else
      fail(("broker: unknown parameter '%s' in %q (known: replicas, wait)"):format(k, url))
    end
  end
  if wait and replicas == 0 then
    fail(("broker: wait= only means something with replicas=N, in %q"):format(url))
  end
end

local function broker_hostport(s, allow_empty, url)
  local host, port -- port: nil when there is none
  if s:sub(1, 1) == "[" then
    local after
    host, after = s:match("^%[([^%]]+)%](.*)$")
    if not host then fail(("broker: bad IPv6 address in %q (write it as [addr]:port)"):format(url)) end
    if after ~= "" then
      if after:sub(1, 1) ~= ":" then fail(("broker: unexpected text after ']' in %q"):format(url)) end
      port = after:sub(2)
    end
  else
    local colon = s:find(":", 1, true)
    host = colon and s:sub(1, colon - 1) or s
    port = colon and s:sub(colon + 1) or nil
  end
  if host:find("[@/?,]") or host:find("[^\33-\126]") or (host:find(":", 1, true) and s:sub(1, 1) ~= "[") then
    fail(("broker: bad host name in %q"):format(url))
  end
  if host == "" and not allow_empty then
    fail(("broker: a Sentinel address without a host in %q"):format(url))
  end
  if #host >= 256 then fail("broker: host name too long") end
  if port and not broker_num(port, 1, 65535) then fail(("broker: bad port in %q"):format(url)) end
end

local function broker_db(s, url)
  if not broker_num(s, 0, 1000) then fail(("broker: bad database number in %q"):format(url)) end
end

-- nats://[user:password@]host[:port][,host[:port]...][?replicas=N&stream=NAME]
-- (src/broker/nats_url.c)
local function nats_broker(v)
  local rest = v:sub(8)
  local at = rest:match(".*()@")
  local q = rest:find("?", at or 1, true)
  local base = q and rest:sub(1, q - 1) or rest
  if at and at <= #base then
    local cred = base:sub(1, at - 1)
    if cred:find("[^\33-\126]") or cred:find("[/,]") then
      fail(("broker: bad credentials (user:password@) in %q"):format(v))
    end
    base = base:sub(at + 1)
  end
  if base == "" then fail(("broker: no server address in %q"):format(v)) end
  local n = 0
  for hp in (base .. ","):gmatch("([^,]*),") do
    n = n + 1
    if n > 16 then fail(("broker: at most 16 servers in %q"):format(v)) end
    if hp == "" then fail(("broker: a server address without a host in %q"):format(v)) end
    broker_hostport(hp, false, v)
  end
  if not q then return end
  local params = rest:sub(q + 1)
  for param in (params .. "&"):gmatch("([^&]*)&") do
    local k, val = param:match("^([^=]*)=(.*)$")
    if not k then
      fail(("broker: empty or malformed parameter in %q"):format(v))
    elseif k == "replicas" then
      if not broker_num(val, 1, 5) then
        fail(("broker: replicas must be a whole number from 1 to 5 in %q"):format(v))
      end
    elseif k == "stream" then
      if not val:match("^[%w_%-]+$") or #val > 64 then
        fail(("broker: stream must be 1-64 characters from A-Z a-z 0-9 _ - in %q"):format(v))
      end
    else
      fail(("broker: unknown parameter '%s' in %q (known: replicas, stream)"):format(k, v))
    end
  end
end

function checks.broker(v)
  check_type("broker", v, "string")
  if v == "memory" then return end
  if v:match("^nats://") then return nats_broker(v) end
  -- Neither the parameters nor a host or master name hold '@': the last one ends the password.
  local at = v:match(".*()@")
  local q = v:find("?", at or 1, true)
  local base = q and v:sub(1, q - 1) or v
  if q then broker_params(v:sub(q + 1), v) end
  if base:match("^unix://") then
    if not base:match("^unix:///.") then
      fail(("broker: unix:// wants an absolute path, got %q"):format(v))
    end
    return
  end
  local sentinel = base:match("^redis%-sentinel://") ~= nil
  local cluster = base:match("^redis%-cluster://") ~= nil
  if not sentinel and not cluster and not base:match("^redis://") then
    fail(("broker must be %s, got %q"):format(BROKER_FORMS, v))
  end
  local rest = base:sub(sentinel and 18 or cluster and 17 or 9)
  if at and at <= #base then rest = base:sub(at + 1) end
  if cluster then
    if rest:find("/", 1, true) then
      fail(("broker: a Redis Cluster has no database number, in %q"):format(v))
    end
    if rest == "" then
      fail(("broker: redis-cluster:// needs at least one host:port, in %q"):format(v))
    end
    local n = 0
    for hp in (rest .. ","):gmatch("([^,]*),") do
      n = n + 1
      if n > 16 then fail(("broker: at most 16 seed nodes in %q"):format(v)) end
      if hp == "" then fail(("broker: a seed address without a host in %q"):format(v)) end
      broker_hostport(hp, false, v)
    end
    return
  end
  if not sentinel then
    local hostport, db = rest:match("^([^/]*)/?(.*)$")
    broker_hostport(hostport, true, v)
    if db ~= "" then broker_db(db, v) end
    return
  end
  local hosts, name, db = rest:match("^([^/]+)/([^/]*)/?(.*)$")
  if not hosts then
    fail(("broker: expected redis-sentinel://host:port[,host:port...]/master-name[/db], got %q"):format(v))
  end
  local n = 0
  for hp in (hosts .. ","):gmatch("([^,]*),") do
    n = n + 1
    if n > 16 then fail(("broker: at most 16 Sentinels in %q"):format(v)) end
    broker_hostport(hp, false, v)
  end
  if name == "" then
    fail(("broker: the master name is missing in %q (redis-sentinel://host:port/master-name)"):format(v))
  end
  if name:find("[,@#]") or name:find("[^\33-\126]") then
    fail(("broker: bad master name in %q"):format(v))
  end
  if #name > 200 then fail("broker: master name too long") end
  if db ~= "" then broker_db(db, v) end
end

-- redis: the app's own Redis, for freshet.redis (without it, the broker's when that is Redis).
-- The broker's URL forms, read by the same rules, but neither Sentinels nor ?parameters: those
-- are the broker's.
function checks.redis(v)
  check_type("redis", v, "string")
  if not (v:match("^redis://") or v:match("^unix://")) then
    fail(("redis must be \"redis://[user:password@]host:port[/db]\" or \"unix:///path\", got %q"):format(v))
  end
  local ok, err = pcall(checks.broker, v)
  if not ok then
    if getmetatable(err) == Failure then err.msg = err.msg:gsub("^broker", "redis", 1) end
    error(err, 0)
  end
  if v:find("?", v:match(".*()@") or 1, true) then
    fail(("redis: no ?parameters here (replicas and wait are the broker's), got %q"):format(v))
  end
end

function checks.tiers(v)
  check_type("tiers", v, "table")
  for name, t in pairs(v) do
    if type(name) ~= "string" then fail("tiers: tier names must be strings") end
    local where = "tiers." .. name
    check_type(where, t, "table")
    check_keys(where, t, { rate = true, burst = true, queue = true, bytes = true, lag = true })
    if t.rate ~= nil then check_positive(where .. ".rate", t.rate) end
    if t.burst ~= nil then check_positive(where .. ".burst", t.burst) end
    if t.queue ~= nil then check_int(where .. ".queue", t.queue, 1) end
    if t.bytes ~= nil then check_int(where .. ".bytes", t.bytes, 1024) end
    if t.lag ~= nil then check_int(where .. ".lag", t.lag, 1) end
    if (t.rate == nil) ~= (t.burst == nil) then
      fail(where .. ": rate and burst go together (tokens per second, bucket size)")
    end
  end
end

function checks.cors(v)
  if v == "*" then return end
  check_type("cors", v, "table")
  -- pairs, not ipairs: a hole must not hide what follows it.
  for i, origin in pairs(v) do
    if type(i) == "number" then check_type(("cors[%d]"):format(i), origin, "string") end
  end
  for k in pairs(v) do
    if type(k) ~= "number" then fail(("cors: unknown key '%s' (a list of origins)"):format(tostring(k))) end
  end
end

function checks.timeouts(v)
  check_type("timeouts", v, "table")
  check_keys("timeouts", v, { headers = true, idle = true, hook = true, ack = true, redis = true })
  if v.headers ~= nil then check_positive("timeouts.headers", v.headers) end
  if v.idle ~= nil then check_positive("timeouts.idle", v.idle) end
  if v.hook ~= nil then check_positive("timeouts.hook", v.hook) end
  if v.ack ~= nil then check_positive("timeouts.ack", v.ack) end
  if v.redis ~= nil then check_positive("timeouts.redis", v.redis) end
end

function checks.poll_timeout(v) check_positive("poll_timeout", v) end

function checks.drain(v)
  check_type("drain", v, "number")
  if v < 0 then fail("drain must be >= 0 seconds") end
end

local log_levels = { debug = true, info = true, warn = true, error = true }
function checks.log(v)
  check_type("log", v, "table")
  check_keys("log", v, { level = true, format = true })
  if v.level ~= nil and not log_levels[v.level] then
    fail("log.level must be debug, info, warn or error, got " .. tostring(v.level))
  end
  if v.format ~= nil and v.format ~= "text" and v.format ~= "json" then
    fail("log.format must be \"text\" or \"json\", got " .. tostring(v.format))
  end
end

function checks.limits(v)
  check_type("limits", v, "table")
  check_keys("limits", v, { body = true, headers = true, header_lines = true, streams_at = true,
    backend_response = true, backend_calls = true, backend_idle = true, calls_per_hook = true,
    redis_calls = true, h2_streams = true, h2_streams_per_client = true })
  if v.streams_at ~= nil then
    check_type("limits.streams_at", v.streams_at, "number")
    if v.streams_at <= 0 or v.streams_at > 1 then
      fail("limits.streams_at must be a fraction of the descriptor limit in (0, 1], got " .. tostring(v.streams_at))
    end
  end
  if v.body ~= nil then check_int("limits.body", v.body, 0) end
  if v.headers ~= nil then check_int("limits.headers", v.headers, 1024) end
  if v.header_lines ~= nil then check_int("limits.header_lines", v.header_lines, 8) end
  if v.backend_response ~= nil then check_int("limits.backend_response", v.backend_response, 1024) end
  if v.backend_calls ~= nil then check_int("limits.backend_calls", v.backend_calls, 1) end
  if v.backend_idle ~= nil then check_int("limits.backend_idle", v.backend_idle, 0) end
  if v.calls_per_hook ~= nil then check_int("limits.calls_per_hook", v.calls_per_hook, 1) end
  if v.h2_streams ~= nil then check_int("limits.h2_streams", v.h2_streams, 1) end
  if v.h2_streams_per_client ~= nil then
    check_int("limits.h2_streams_per_client", v.h2_streams_per_client, 1)
  end
  if v.redis_calls ~= nil then check_int("limits.redis_calls", v.redis_calls, 1) end
end

-- tls = { cert = "cert.pem", key = "key.pem" }: the listener speaks HTTPS. Paths are relative
-- to the app file's directory; whether the files load is checked when the server starts (and
-- by freshet --check).
function checks.tls(v)
  check_type("tls", v, "table")
  check_keys("tls", v, { cert = true, key = true })
  for _, k in ipairs { "cert", "key" } do
    if v[k] == nil then
      fail(("tls.%s is missing (tls = { cert = \"cert.pem\", key = \"key.pem\" })"):format(k))
    end
    check_type("tls." .. k, v[k], "string")
    if v[k] == "" then fail(("tls.%s must be a file path, got an empty string"):format(k)) end
  end
end

--- Builds an app from its settings; see docs/LUA_API.md for every key.
function M.new(opts)
  if opts == nil then opts = {} end
  local ok, err = pcall(function()
    if type(opts) ~= "table" then
      fail("settings must be a table, got " .. type(opts))
    end
    for k, v in pairs(opts) do
      local check = type(k) == "string" and checks[k]
      if not check then
        fail(("unknown key '%s'"):format(tostring(k)))
      end
      check(v)
    end
  end)
  if not ok then rethrow(err, "freshet.app: ") end
  local app = setmetatable({ kind = "freshet.app", config = opts, routes = {} }, App)
  return app
end

-- Raises at level 3: the app file line that called app:stream / app:publish / app:static.
local function add_route(self, kind, pattern, target, what)
  if getmetatable(self) ~= App then
    error(("app:%s: call it with ':' (app:%s(pattern, %s))"):format(kind, kind, what), 3)
  end
  if type(pattern) ~= "string" or pattern:sub(1, 1) ~= "/" then
    error(("app:%s: pattern must be a string starting with '/', got %s"):format(kind, tostring(pattern)), 3)
  end
  if type(target) ~= "string" or target == "" then
    error(("app:%s: %s must be a non-empty string, got %s"):format(kind, what, type(target)), 3)
  end
  local info = debug.getinfo(3, "Sl")
  self.routes[#self.routes + 1] = {
    kind = kind, pattern = pattern, target = target,
    source = info and info.short_src or "?", line = info and info.currentline or 0,
  }
  return self
end

--- A streaming route: SSE on GET, served by the hooks of `script`.
-- (Each method keeps its own frame, no tail call, so add_route can name the app file's line.)
function App:stream(pattern, script)
  local app = add_route(self, "stream", pattern, script, "script")
  return app
end
--- A publish route: POST bodies handed to the `publish` hook of `script`.
function App:publish(pattern, script)
  local app = add_route(self, "publish", pattern, script, "script")
  return app
end
local http_methods = { GET = true, POST = true, PUT = true, PATCH = true, DELETE = true }
--- A plain HTTP route: requests with `method` handed to the `handle` hook of `script`, whose
-- answer is the response (see docs/LUA_API.md, app:http).
function App:http(method, pattern, script)
  if getmetatable(self) ~= App then
    error("app:http: call it with ':' (app:http(method, pattern, script))", 2)
  end
  if type(method) ~= "string" or not http_methods[method] then
    error(("app:http: method must be one of GET, POST, PUT, PATCH, DELETE, got %s"):format(
      tostring(method)), 2)
  end
  local app = add_route(self, "http", pattern, script, "script")
  app.routes[#app.routes].method = method
  return app
end
--- Static files under `dir` (relative to the app file). opts: { max_age = seconds,
-- immutable = true } for Cache-Control (default: no-cache, revalidate every time).
function App:static(prefix, dir, opts)
  local app = add_route(self, "static", prefix, dir, "dir")
  if opts ~= nil then
    if type(opts) ~= "table" then
      error(("app:static: options must be a table { max_age = seconds, immutable = true }, got %s"):format(type(opts)), 2)
    end
    for k in pairs(opts) do
      if k ~= "max_age" and k ~= "immutable" then
        error(("app:static: unknown option '%s' (max_age, immutable)"):format(tostring(k)), 2)
      end
    end
    local ma = opts.max_age
    if ma ~= nil and (type(ma) ~= "number" or ma < 0 or ma ~= math.floor(ma) or ma > 2147483647) then
      error(("app:static: max_age must be a whole number of seconds >= 0, got %s"):format(tostring(ma)), 2)
    end
    if opts.immutable ~= nil and type(opts.immutable) ~= "boolean" then
      error(("app:static: immutable must be true or false, got %s"):format(tostring(opts.immutable)), 2)
    end
    if opts.immutable and ma == nil then
      error("app:static: immutable needs max_age (how long a cache may keep the files)", 2)
    end
    local r = self.routes[#self.routes]
    r.max_age, r.immutable = ma, opts.immutable
  end
  return app
end

M.App = App
return M
