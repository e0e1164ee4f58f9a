-- The dashboard starter (scripts/examples/dashboard): the timer that publishes
-- freshet.metrics() snapshots, the viewer tokens, the tier hook and the filter that hides what a
-- free viewer may not see, with freshet.test. freshet.test has no metrics of its own, so the
-- spec stands in for freshet.metrics(). The tokens need freshet.crypto as a Lua module:
--   cd scripts/examples/dashboard && busted        (see .busted for the Lua paths)
local t = require "freshet.test"

local APP = "app.lua" -- run from this app's directory: busted

local function fake_metrics(n)
  return {
    connections = 3 + n, streams = 2, topics = 1, requests = 10 * n,
    published = { telemetry = 100 * n, normal = 5, critical = 1 },
    delivered = 50 * n, dropped = { telemetry = n, normal = 0, critical = 0 },
    conflated = 0, replayed = 0, resumes = 0, resets = 0,
    evicted = { lag = 0, drop = 0, slow = 0 }, rate_limited = 0, lua_errors = 0, reloads = 0,
    uptime = n, rss = 8 * 1048576, broker = "memory",
  }
end

describe("dashboard example", function()
  local srv, dash, login, calls

  before_each(function()
    srv = t.server { app = APP, now = 1700000000000 }
    dash = srv:route("/dashboard/events")
    login = srv:route("/login")
    calls = 0
    srv.freshet.metrics = function()
      calls = calls + 1
      return fake_metrics(calls)
    end
  end)

  local function token(plan, name)
    local reply = login:message(t.conn { topics = { "login" } }, { type = "login", name = name or "ann", plan = plan }, {})
    assert.equal("token", reply.type)
    return reply.token
  end

  local function viewer(query)
    return dash:request { path = "/dashboard/events" .. (query or "") }
  end

  describe("the timer in app.lua", function()
    it("publishes a public and a full snapshot every second on metrics:<node>", function()
      assert.equal(1, srv:advance(1000))
      assert.equal(2, #srv.published)
      local public, full = srv.published[1], srv.published[2]
      assert.equal("metrics:local", public.topic)
      assert.equal("public", public.event)
      assert.equal("telemetry", public.priority)
      assert.same({ node = "local", at = 1700000001000, connections = 4, streams = 2 }, public.data)
      assert.equal("full", full.event)
      assert.equal(8 * 1048576, full.data.rss)
      assert.same({ telemetry = 100, normal = 5, critical = 1 }, full.data.published)
      assert.same({}, full.data.rates) -- no rate before a second snapshot
    end)

    it("turns counters into rates per second", function()
      srv:advance(2000)
      local full = srv.published[4].data
      -- published: 106 -> 206, delivered: 50 -> 100, dropped: 1 -> 2, over one second
      assert.same({ published = 100, delivered = 50, dropped = 1 }, full.rates)
    end)

    it("logs and skips a tick when there are no metrics to read", function()
      srv.freshet.metrics = function() return nil, "freshet.metrics: not available" end
      srv:advance(1000)
      assert.same({}, srv.published)
      assert.is_true(srv:logged("freshet.metrics: not available", "warn"))
    end)
  end)

  describe("viewers and tiers", function()
    it("makes a viewer without a token a free one", function()
      local req = viewer()
      local who = dash:auth(req)
      assert.same({ plan = "free", view = "free" }, who)
      assert.equal("free", dash:tier(req, who))
      assert.same({ "metrics:local" }, dash:topics(req, who))
    end)

    it("takes the plan from the token, and lets a pro viewer ask for the free view", function()
      local pro = token("pro")
      local req = viewer("?token=" .. pro)
      local who = dash:auth(req)
      assert.same({ id = "ann", plan = "pro", view = "pro" }, who)
      assert.equal("pro", dash:tier(req, who))
      req = viewer("?view=free&token=" .. pro)
      who = dash:auth(req)
      assert.same({ id = "ann", plan = "pro", view = "free" }, who)
      assert.equal("free", dash:tier(req, who))
      -- Asking for more than the token gives changes nothing.
      assert.same({ id = "ann", plan = "free", view = "free" }, dash:auth(viewer("?view=pro&token=" .. token("free"))))
    end)

    it("refuses a bad token rather than falling back to free", function()
      local forged = srv.freshet.jwt.sign({ sub = "ann", plan = "pro", aud = "dashboard", exp = 1800000000 }, "guess")
      assert.same({ nil, 401, "bad signature" }, { dash:auth(viewer("?token=" .. forged)) })
      local pro = token("pro")
      srv:advance(3600 * 1000)
      assert.same({ nil, 401, "token expired" }, { dash:auth(viewer("?token=" .. pro)) })
    end)

    it("follows another node's metrics on request, with a checked name", function()
      local req = viewer("?node=web-2")
      assert.same({ "metrics:web-2" }, dash:topics(req, dash:auth(req)))
      assert.same({ nil, 400, "node must be letters, digits, '_', '-' or '.'" }, { dash:auth(viewer("?node=a/b")) })
    end)

    it("has the tiers the hook names", function()
      assert.is_truthy(srv.app.config.tiers.free.rate)
      assert.is_truthy(srv.app.config.tiers.pro.rate)
    end)
  end)

  describe("the filter", function()
    local public = t.event { topic = "metrics:local", event = "public", data = { connections = 1 } }
    local full = t.event { topic = "metrics:local", event = "full", data = { connections = 1, rss = 1 } }

    it("shows free viewers the public snapshot only, pro viewers the full one only", function()
      assert.is_true(dash:filter(public, { view = "free" }))
      assert.is_false(dash:filter(full, { view = "free" }))
      assert.is_false(dash:filter(public, { view = "pro" }))
      assert.is_true(dash:filter(full, { view = "pro" }))
    end)

    it("gives each open dashboard one snapshot a second, of its kind", function()
      local free = dash:open(viewer())
      local pro = dash:open(viewer("?token=" .. token("pro")))
      assert.equal("free", free.tier)
      assert.equal("pro", pro.tier)
      assert.same({ ["metrics:local"] = "conflate" }, free.slow)
      srv:advance(3000)
      assert.equal(3, #free.events)
      assert.equal(3, #pro.events)
      for i = 1, 3 do
        assert.equal("public", free.events[i].event)
        assert.is_nil(free.events[i].data.rss)
        assert.equal("full", pro.events[i].event)
      end
    end)
  end)

  it("hands out demo tokens over /login and refuses unknown plans", function()
    local c = t.conn { topics = { "login" } }
    assert.same({ type = "error", error = "plan must be \"pro\" or \"free\"" },
      login:message(c, { type = "login", name = "ann", plan = "gold" }))
    assert.equal(400, login:open(login:request { path = "/login" }).status)
  end)
end)
