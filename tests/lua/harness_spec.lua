-- freshet.test, the route-test harness, checked against the fixtures in tests/lua/fixtures/.
local t = require "freshet.test"
local cjson = require "cjson"

local FIX = "tests/lua/fixtures"
local APP = FIX .. "/feed/app.lua"

describe("freshet.test", function()
  describe("t.request", function()
    it("fills in what the server always gives", function()
      assert.same({ method = "GET", path = "/", params = {}, query = {}, headers = {}, remote = "127.0.0.1" },
        t.request())
    end)

    it("splits and decodes a query string in the path", function()
      local req = t.request { path = "/rooms/a%20b/events?user=ann+s&x&user=bob" }
      assert.equal("/rooms/a b/events", req.path)
      assert.same({ user = "ann s", x = "" }, req.query)
    end)

    it("lower-cases header names and joins repeats, and builds a Cookie header", function()
      local req = t.request {
        method = "POST", remote = "10.0.0.1", params = { room = "lobby" }, query = "a=1",
        headers = { ["Last-Event-ID"] = "1-0", Cookie = "x=1" }, cookies = { b = "2", a = "1" },
      }
      assert.same({ ["last-event-id"] = "1-0", cookie = "x=1; a=1; b=2" }, req.headers)
      assert.same({ a = "1" }, req.query)
      assert.same({ room = "lobby" }, req.params)
      assert.equal("POST", req.method)
      assert.equal("10.0.0.1", req.remote)
    end)

    it("raises for what no server would send", function()
      assert.has_error(function() t.request { pathh = "/" } end,
        "freshet.test.request: unknown key 'pathh' (cookies, headers, method, params, path, query, remote)")
      assert.has_error(function() t.request { path = "rooms" } end,
        "freshet.test.request: path must be a string starting with '/', got rooms")
      assert.has_error(function() t.request { path = "/?a=%zz" } end,
        "freshet.test.request: invalid percent-encoding in the query string")
      assert.has_error(function() t.request { path = "/a%2" } end,
        "freshet.test.request: invalid percent-encoding in the path")
      assert.has_error(function() t.request { headers = { accept = 1 } } end,
        "freshet.test.request: headers must map names to strings, got accept = number")
    end)
  end)

  describe("t.event, t.who and t.conn", function()
    it("builds an event as filter sees it", function()
      assert.same({ topic = "test", id = "1700000000000-0", data = "", priority = "normal",
                    published_at = 1700000000000 }, t.event())
    end)

    it("sends table data through JSON, as a published table goes", function()
      local ev = t.event { topic = "room:a", event = "message", data = { to = cjson.null, n = { [1] = 1, [3] = 3 } } }
      assert.equal(cjson.null, ev.data.to)
      assert.equal("message", ev.event)
    end)

    it("refuses an event the server would refuse", function()
      assert.has_error(function() t.event { topic = "a\nb" } end,
        "freshet.test.event: topic must be UTF-8 without CR, LF or NUL")
      assert.has_error(function() t.event { data = "\192\128" } end,
        "freshet.test.event: data must be valid UTF-8")
      assert.has_error(function() t.event { priority = "urgent" } end,
        "freshet.test.event: priority must be critical, normal or telemetry, got urgent")
    end)

    it("copies identities and builds the conn a message hook gets", function()
      local fields = { id = "ann" }
      local who = t.who(fields)
      assert.same(fields, who)
      assert.not_equal(fields, who)
      assert.same({ id = 1, remote = "127.0.0.1", topics = {} }, t.conn())
      assert.same({ id = 7, remote = "10.0.0.1", topics = { "a" } },
        t.conn { id = 7, remote = "10.0.0.1", topics = { "a" } })
    end)
  end)

  describe("loading", function()
    it("loads an app's routes by pattern, with the app's tiers", function()
      local srv = t.server { app = APP }
      assert.equal("stream", srv:route("/feed/:user").kind)
      assert.equal("publish", srv:route("/feed/:user/notes").kind)
      assert.same({ free = true, pro = true }, srv.tiers)
      assert.equal(1, #srv:active_timers())
      assert.has_error(function() srv:route("/nope") end,
        "freshet.test.route: no route '/nope' (the app has: /feed/:user, /feed/:user/notes)")
    end)

    it("loads one script, finding the modules beside the app file", function()
      local route = t.load(FIX .. "/feed/routes/feed.lua")
      assert.equal("stream", route.kind)
      local who = route:auth(t.request { headers = { ["X-Token"] = "t1" } })
      assert.equal("ann", who.id)
    end)

    it("reports what the server reports for a bad script", function()
      local function load_error(name)
        local ok, err = pcall(t.load, FIX .. "/bad/" .. name)
        assert.is_false(ok)
        return err
      end
      assert.equal(FIX .. "/bad/typo.lua:1: unknown field 'filtr' in a stream route script", load_error("typo.lua"))
      assert.equal(FIX .. "/bad/notable.lua:1: a route script must return a table of hooks, got string",
        load_error("notable.lua"))
      assert.equal(FIX .. "/bad/notopics.lua:1: a stream route needs a topics(req, who) hook",
        load_error("notopics.lua"))
      assert.equal(FIX .. "/bad/wrongtype.lua:1: hook 'auth' must be a function, got string\n"
        .. FIX .. "/bad/wrongtype.lua:1: on_gap must be \"reset\" or \"416\"", load_error("wrongtype.lua"))
      assert.matches("^" .. FIX .. "/bad/syntax.lua:2: ", load_error("syntax.lua"))
      assert.matches("cannot open", load_error("missing.lua"))
      assert.matches("publish_at_load.lua:2: freshet.publish: cannot publish while the app file is loading",
        load_error("publish_at_load.lua"), 1, true)
    end)

    it("checks a script as a publish route when asked", function()
      local ok, err = pcall(t.load, FIX .. "/feed/routes/feed.lua", { kind = "publish" })
      assert.is_false(ok)
      assert.matches("unknown field 'topics' in a publish route script", err, 1, true)
    end)
  end)

  describe("calling hooks", function()
    local srv, feed, notes

    before_each(function()
      srv = t.server { app = APP }
      feed, notes = srv:route("/feed/:user"), srv:route("/feed/:user/notes")
    end)

    it("fills params from the route's pattern", function()
      local req = feed:request { path = "/feed/ann?x=1" }
      assert.same({ user = "ann" }, req.params)
      assert.equal("GET", req.method)
      assert.equal("POST", notes:request { path = "/feed/ann/notes" }.method)
      assert.has_error(function() feed:request { path = "/other/ann" } end,
        "freshet.test.request: path /other/ann does not match the route's pattern /feed/:user")
      assert.same({ user = "a/b c" }, feed:request { path = "/feed/a%2Fb%20c" }.params)
      local ok, err = pcall(srv.load, srv, FIX .. "/mistakes.lua", { pattern = "/:a/:a" })
      assert.is_false(ok)
      assert.matches('opts.pattern: parameter name used twice in "/:a/:a"', err, 1, true)
    end)

    it("returns what auth returns", function()
      local who = feed:auth(feed:request { path = "/feed/ann", headers = { ["x-token"] = "t1" } })
      assert.same({ id = "ann", plan = "pro", seen = 1700000000000 }, who)
      assert.same({ nil, 401, "token required" }, { feed:auth(feed:request { path = "/feed/ann" }) })
      assert.same({ nil, 403, "unknown token" },
        { feed:auth(feed:request { path = "/feed/ann", headers = { ["x-token"] = "zz" } }) })
    end)

    it("returns topics, tier and filter answers", function()
      local req = feed:request { path = "/feed/ann" }
      local ann, bob = t.who { id = "ann", plan = "pro" }, t.who { id = "bob", plan = "free" }
      assert.same({ "user:ann", "clock" }, feed:topics(req, ann))
      assert.equal("pro", feed:tier(req, ann))
      assert.is_true(feed:filter(t.event { topic = "clock" }, ann))
      assert.is_false(feed:filter(t.event { topic = "clock" }, bob))
      assert.is_false(feed:filter(t.event { topic = "user:ann", data = { to = "ann" } }, bob))
      assert.is_true(feed:filter(t.event { topic = "user:ann", data = "plain" }, bob))
    end)

    it("decodes a JSON body for publish as the server does", function()
      local req = notes:request { path = "/feed/ann/notes" }
      local who = t.who { id = "bob" }
      local ev = notes:publish(req, '{"text":"hi","to":"ann"}', who)
      assert.same({ topic = "user:ann", event = "note", data = { text = "hi", to = "ann", from = "bob" } }, ev)
      assert.same({ nil, 422, "text required" }, { notes:publish(req, { nope = 1 }, who) })
      assert.has_error(function() notes:publish(req, "{", who) end,
        "freshet.test.publish: the route takes JSON bodies and this one is not: invalid JSON: Expected object key string but found T_END at character 2")
    end)

    it("lets errors in hooks reach the test", function()
      assert.has_error(function() feed:filter(t.event { topic = "user:ann", data = "boom" }, {}) end)
    end)

    it("calls message with a connection and returns the reply", function()
      local route = srv:load(FIX .. "/mistakes.lua")
      local conn = t.conn { remote = "10.0.0.1" }
      assert.same({ type = "sent", id = "1700000000000-0", from = "10.0.0.1" },
        route:message(conn, '{"type":"say","text":"hi"}', {}))
      assert.same({ type = "sent", id = "1700000000000-1", from = "10.0.0.1" },
        route:message(conn, { type = "say", text = "again" }, {}))
      assert.equal("hi", srv.published[1].data)
      assert.has_error(function() route:message(conn, "42", {}) end,
        "freshet.test.message: messages are JSON objects")
      assert.has_error(function() route:message(conn, { type = "bad" }, {}) end,
        "route " .. FIX .. "/mistakes.lua: message hook returned what JSON cannot hold: Cannot serialise function: type not supported")
    end)

    it("raises for answers the server could not use", function()
      local route = t.load(FIX .. "/mistakes.lua", { tiers = { "free" } })
      local name = FIX .. "/mistakes.lua"
      local function req(case) return route:request { query = { case = case } } end
      assert.has_error(function() route:auth(req("auth")) end,
        "route " .. name .. ": auth must return an identity table, or nil, status, message; got string")
      local topics = {
        empty = "topics hook must return between 1 and 64 topics, got 0",
        twice = "topics hook: topic 2 is invalid: listed twice",
        string = "topics hook must return a list of topic names, got string",
        newline = "topics hook: topic 1 is invalid: topic must be UTF-8 without CR, LF or NUL",
        number = "topics hook: topic 1 is invalid: not a string",
      }
      for case, msg in pairs(topics) do
        assert.has_error(function() route:topics(req(case), {}) end, "route " .. name .. ": " .. msg)
      end
      assert.has_error(function() route:tier(req("tier"), {}) end,
        "route " .. name .. ": tier hook must return a tier name or nil, got number")
      assert.has_error(function() route:auth(req("publish")) end, "freshet.publish: data must be valid UTF-8")
    end)

    it("lists the globals a script sets", function()
      local route = t.load(FIX .. "/mistakes.lua")
      assert.same({ "calls" }, route:globals())
      assert.is_nil(rawget(_G, "calls"))
    end)
  end)

  describe("the server's request flow", function()
    local srv, feed, notes
    local ann = { ["x-token"] = "t1" }
    local bob = { ["x-token"] = "t2" }

    before_each(function()
      srv = t.server { app = APP }
      feed, notes = srv:route("/feed/:user"), srv:route("/feed/:user/notes")
    end)

    local function post(user, headers, body)
      return notes:post(notes:request { path = "/feed/" .. user .. "/notes", headers = headers }, body)
    end

    it("opens a stream and hands it what its filter keeps", function()
      local s = feed:open(feed:request { path = "/feed/ann", headers = ann })
      assert.equal(200, s.status)
      assert.same({ "user:ann", "clock" }, s.topics)
      assert.equal("pro", s.tier)
      assert.same({ ["user:ann"] = "drop", clock = "conflate" }, s.slow)

      local res = post("ann", bob, '{"text":"hi ann","to":"ann"}')
      assert.same({ status = 201, id = "1700000000000-0", events = { srv.published[1] } }, res)
      post("ann", bob, '{"text":"not for ann","to":"carol"}')
      srv:advance(2000)

      assert.equal(3, #s.events)
      assert.equal("hi ann", s.events[1].data.text)
      assert.same({ "tick", "tick" }, { s.events[2].event, s.events[3].event })
      assert.equal(1700000001000, s.events[2].data.at)
      assert.equal("telemetry", s.events[3].priority)
    end)

    it("answers as the server would when auth refuses", function()
      assert.same({ status = 401, error = "token required" }, feed:open(feed:request { path = "/feed/ann" }))
      local route = srv:load(FIX .. "/mistakes.lua")
      assert.same({ status = 403, error = "not allowed" }, route:open(route:request { query = { case = "refuse" } }))
    end)

    it("answers 500 for an error or an unusable answer, and records why", function()
      local res = feed:open(feed:request { path = "/feed/eve", headers = { ["x-token"] = "t3" } })
      assert.equal(500, res.status)
      assert.equal("internal error", res.error)
      assert.matches("tier hook returned unknown tier 'gold'", res.reason, 1, true)
      local route = srv:load(FIX .. "/mistakes.lua")
      res = route:open(route:request { query = { case = "raise" } })
      assert.equal(500, res.status)
      assert.matches("mistakes.lua:%d+: auth broke", res.reason)
      assert.equal(2, #srv.errors)
      assert.equal("auth", srv.errors[2].hook)
    end)

    it("answers 400 when the topics hook names a topic no event may have, as the server does", function()
      local route = srv:load(FIX .. "/mistakes.lua")
      assert.same({ status = 400, error = "the request names an invalid topic (CR, LF, NUL or not UTF-8)" },
        route:open(route:request { query = { case = "newline" } }))
      local res = route:open(route:request { query = { case = "twice" } })
      assert.equal(500, res.status)
      assert.matches("topics hook: topic 2 is invalid: listed twice", res.reason, 1, true)
    end)

    it("refuses a publish from a filter, as the server does", function()
      local route = srv:load(FIX .. "/mistakes.lua")
      local s = route:open(route:request())
      srv:publish("a", "publish")
      assert.equal(1, #s.events)
      assert.equal("freshet.publish: cannot publish from a filter (it runs during a delivery): "
        .. "use freshet.after(0, function() … end)", srv.shared:get("filter"))
      assert.equal(1, #srv.published)
    end)

    it("ends a stream whose filter raises", function()
      local s = feed:open(feed:request { path = "/feed/bob", headers = bob })
      srv:publish("user:bob", "boom")
      srv:publish("user:bob", "after")
      assert.is_true(s.closed)
      assert.matches("cannot filter this", s.error)
      assert.same({}, s.events)
      assert.equal("filter", srv.errors[1].hook)
    end)

    it("stops offering events to a closed stream", function()
      local s = feed:open(feed:request { path = "/feed/bob", headers = bob })
      srv:publish("user:bob", "one")
      s:close()
      srv:publish("user:bob", "two")
      assert.equal(1, #s.events)
      assert.same({}, srv.streams)
    end)

    it("publishes a list and answers with every id", function()
      local res = post("bob", ann, '{"text":"x","copies":3}')
      assert.equal(201, res.status)
      assert.same({ "1700000000000-0", "1700000000000-1", "1700000000000-2" }, res.ids)
      assert.equal(3, #srv.published)
    end)

    it("answers 400 for a body or an event the server refuses, publishing nothing", function()
      assert.same({ status = 400, error = "invalid JSON body: the body is empty" }, post("bob", ann, ""))
      assert.same({ status = 400, error = "invalid JSON body: Expected value but found invalid token at character 1" },
        post("bob", ann, "nope"))
      assert.same({ status = 422, error = "text required" }, post("bob", ann, "{}"))
      assert.same({ status = 400, error = "priority must be critical, normal or telemetry" },
        post("bob", ann, '{"text":"x","priority":"urgent"}'))
      assert.same({ status = 400, error = "data must be valid UTF-8" },
        post("bob", ann, { text = "\255", copies = 1 }))
      assert.same({ status = 401, error = "token required" }, post("bob", {}, "{}"))
      assert.same({}, srv.published)
    end)

    it("answers 500 when the script hands over what cannot be published", function()
      local res = post("bob", ann, { text = { f = print } })
      assert.equal(500, res.status)
      assert.matches("data cannot be sent as JSON", res.reason, 1, true)
      res = post("bob", ann, '{"text":"x","copies":0}')
      assert.equal(500, res.status)
      assert.matches("publish returned 0 events (1 to 256 allowed)", res.reason, 1, true)
    end)

    it("refuses the wrong flow for the route", function()
      assert.has_error(function() notes:open(t.request()) end,
        "freshet.test.open: route:open is for stream routes; use route:post")
      assert.has_error(function() feed:post(t.request()) end,
        "freshet.test.post: route:post is for publish routes; use route:open")
    end)
  end)

  describe("the fake freshet module", function()
    local srv
    before_each(function() srv = t.server { now = 5000.5 } end)

    it("is init.lua bound to the fake core", function()
      assert.equal("test", srv.freshet.version)
      assert.equal(5000.5, srv.freshet.now())
      assert.equal(srv.shared, srv.freshet.shared)
      assert.is_function(srv.freshet.app)
      assert.is_table(srv.freshet.request)
    end)

    it("gives increasing ids per topic, even when the clock steps back", function()
      local f = srv.freshet
      assert.equal("5000-0", f.publish("a", "1"))
      assert.equal("5000-1", f.publish("a", "2"))
      assert.equal("5000-0", f.publish("b", "1"))
      srv:advance(1)
      assert.equal("5001-0", f.publish("a", "3"))
      srv:set_now(10)
      assert.equal("5001-1", f.publish("a", "4"))
    end)

    it("records events with their fields, and checks them as the server does", function()
      srv.freshet.publish("room", { text = "hi" }, { event = "message", priority = "critical" })
      local ev = srv.published[1]
      assert.same({ text = "hi" }, ev.data)
      assert.equal('{"text":"hi"}', ev.raw)
      assert.is_true(ev.json)
      assert.equal("message", ev.event)
      assert.equal("critical", ev.priority)
      assert.equal(5000.5, ev.published_at)
      assert.has_error(function() srv.freshet.publish("", "x") end, "freshet.publish: topic must be a non-empty string")
      assert.has_error(function() srv.freshet.publish("a", "x", { event = "a\rb" }) end,
        "freshet.publish: event name must be UTF-8 without CR, LF or NUL")
      assert.has_error(function() srv.freshet.publish("a", "x", { name = "n" }) end,
        "freshet.publish: unknown option 'name' (event, priority)")
    end)

    it("fires timers as the clock advances", function()
      local f, seen = srv.freshet, {}
      local every = f.every(1000, function() seen[#seen + 1] = "every@" .. f.now() end)
      f.after(2500, function() seen[#seen + 1] = "after@" .. f.now() end)
      assert.equal(4, srv:advance(3000))
      assert.same({ "every@6000.5", "every@7000.5", "after@7500.5", "every@8000.5" }, seen)
      every:cancel()
      assert.equal(0, srv:advance(5000))
      assert.same({}, srv:active_timers())
      every:fire()
      assert.equal(4, every.fired)
      assert.has_error(function() f.every(0, print) end,
        "freshet.every: bad argument #1 'ms' (a number of milliseconds >= 1, got 0)")
      assert.has_error(function() f.after(10, "x") end,
        "freshet.after: bad argument #2 'fn' (function expected, got string)")
    end)

    it("records log lines with the script's file and line", function()
      local route = t.load(FIX .. "/feed/routes/feed.lua")
      route:auth(t.request { headers = { ["x-token"] = "t2" } })
      local line = route.server.logs[1]
      assert.equal("info", line.level)
      assert.equal("stream for bob", line.message)
      assert.matches("feed%.lua:%d+$", line.where)
      assert.is_true(route.server:logged("^stream for bob$", "info"))
      assert.is_false(route.server:logged("bob", "error"))
      assert.has_error(function() srv.freshet.log("loud", "x") end,
        "freshet.log: bad argument #1 'level' (debug, info, warn or error, got 'loud')")
    end)

    it("keeps a shared dictionary with the server's rules", function()
      local shared = srv.freshet.shared
      assert.is_nil(shared:get("k"))
      assert.is_true(shared:set("k", "v", 2))
      assert.equal("v", shared:get("k"))
      srv:advance(2000)
      assert.is_nil(shared:get("k"))
      assert.same({ nil, "not found" }, { shared:incr("n") })
      assert.equal(1, shared:incr("n", 1, 0))
      assert.equal(3.5, shared:incr("n", 2.5))
      shared:set("s", true)
      assert.same({ nil, "not a number" }, { shared:incr("s") })
      assert.is_true(shared:delete("s"))
      assert.is_false(shared:delete("s"))
      shared:set("n", nil)
      assert.is_nil(shared:get("n"))
      assert.has_error(function() shared.get("k") end,
        "freshet.shared:get: call it with ':' (freshet.shared:get(key, ...))")
      assert.has_error(function() shared:set(1, "v") end,
        "freshet.shared:set: bad argument #1 'key' (string expected, got number)")
      assert.has_error(function() shared:set("k", {}) end,
        "freshet.shared:set: bad argument #2 'value' (string, number or boolean expected, got table)")
    end)
  end)

  describe("isolation", function()
    it("gives each server its own modules, as each server VM has", function()
      local a, b = t.server { app = APP }, t.server { app = APP }
      local req = t.request { path = "/feed/ann", headers = { ["x-token"] = "t1" } }
      a:route("/feed/:user"):auth(req)
      a:route("/feed/:user"):auth(req)
      b:route("/feed/:user"):auth(req)
      assert.equal(2, a.modules.accounts.lookups)
      assert.equal(1, b.modules.accounts.lookups)
      assert.equal(2, a.shared:get("streams:ann"))
      assert.equal(1, b.shared:get("streams:ann"))
    end)

    it("leaves package.loaded as it found it", function()
      local before = package.loaded["freshet"]
      local srv = t.server { app = APP }
      srv:route("/feed/:user"):auth(t.request { headers = { ["x-token"] = "t1" } })
      assert.equal(before, package.loaded["freshet"])
      assert.is_nil(package.loaded["freshet.core"])
      assert.is_nil(package.loaded["accounts"])
    end)
  end)
end)
