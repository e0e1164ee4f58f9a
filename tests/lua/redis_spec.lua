-- freshet.redis under freshet.test: srv:on_redis answers the scripts' calls as Redis would,
-- srv.redis_calls lists them, and the checks on arguments are the server's (lua/freshet/redis.lua
-- runs in both).
local t = require "freshet.test"

local ROUTE = "tests/lua/fixtures/redis/session.lua"
local PROBE = "tests/lua/fixtures/redis/probe.lua"

-- A small Redis: strings and sets, enough for the route.
local function fake_redis(state)
  return function(cmd, key, ...)
    if state.down then return nil, "connection refused" end
    if cmd == "GET" then return state.strings[key] end          -- nothing: a missing key
    if cmd == "EXPIRE" then return state.strings[key] and 1 or 0 end
    if cmd == "SMEMBERS" then return state.sets[key] or {} end
    return nil, "ERR unknown command '" .. cmd .. "'"
  end
end

describe("freshet.redis in freshet.test", function()
  local srv, route, probe, state

  before_each(function()
    state = { strings = { ["session:s1"] = "ann" }, sets = { ["rooms:ann"] = { "lobby", "dev" } } }
    srv = t.server { dir = "tests/lua/fixtures/redis" }
    route = srv:load(ROUTE, { kind = "stream", pattern = "/rooms" })
    probe = srv:load(PROBE, { kind = "stream", pattern = "/probe" })
    srv:on_redis(fake_redis(state))
  end)

  local function open(sid)
    return route:open(route:request { path = "/rooms", headers = { Cookie = sid and ("sid=" .. sid) } })
  end

  -- freshet.redis(args...) from a hook; returns reply, err.
  local function call(args, with_table)
    local who = probe:auth(probe:request { path = "/probe?args=" .. args .. (with_table and "&table=1" or "") })
    return who.reply, who.err
  end

  -- The message of the error a hook raised, without the script's position.
  local function hook_error(args, with_table)
    local ok, err = pcall(call, args, with_table)
    assert.is_false(ok)
    return (tostring(err):gsub("^[^:]*:%d+: ", ""))
  end

  it("answers with the stub's replies and records every call as Redis sees it", function()
    local s = open("s1")
    assert.equal(200, s.status)
    assert.same({ id = "ann" }, s.who)
    assert.same({ "dev", "lobby" }, s.topics)
    assert.same({ { "GET", "session:s1" }, { "EXPIRE", "session:s1", "3600" },
                  { "SMEMBERS", "rooms:ann" } }, srv.redis_calls)
  end)

  it("gives freshet.null for a missing value", function()
    assert.same({ status = 401, error = "sign in first" }, open("nope"))
    assert.same({ { "GET", "session:nope" } }, srv.redis_calls)
  end)

  it("gives nil, err for a failed call or an error reply", function()
    state.down = true
    assert.same({ status = 503, error = "the session store is unavailable" }, open("s1"))
    assert.equal("session store failed: connection refused", srv.logs[1].message)
    state.down = false
    local reply, err = call("HGETALL,x")
    assert.is_nil(reply)
    assert.equal("ERR unknown command 'HGETALL'", err)
  end)

  it("writes numbers as the server does", function()
    local seen
    srv:on_redis(function(...) seen = { ... } return "OK" end)
    assert.equal("OK", (call("SET,k,41.0,1e15,0.5,-3")))
    assert.same({ "SET", "k", "41", "1000000000000000", "0.5", "-3" }, seen)
  end)

  it("maps the stub's nested replies and refuses ones Redis could not send", function()
    local null = route.server.freshet.null
    srv:on_redis(function() return { "a", 2, null, { err = "ERR x" } } end)
    assert.same({ "a", 2, null, { err = "ERR x" } }, (call("EVAL,s,0")))
    srv:on_redis(function() return true end)
    assert.equal("freshet.test.on_redis: the on_redis stub for GET must return a string, a number, "
      .. "a table, freshet.null or nil, err; got boolean", hook_error("GET,k"))
    srv:on_redis(function() return 1.5 end)
    assert.matches("Redis integers are whole numbers", hook_error("GET,k"))
  end)

  it("raises the server's errors for bad arguments and commands", function()
    assert.equal("freshet.redis: bad argument #2 to GET (string or number expected, got table)",
      hook_error("GET", true))
    assert.equal("freshet.redis: MULTI would change the connection every hook shares; use a Lua "
      .. "script (EVAL) for transactions", hook_error("multi"))
    assert.equal("freshet.redis: bad argument #1 'command' (a command name expected, got nil)",
      hook_error(""))
    assert.same({}, srv.redis_calls)
  end)
end)
