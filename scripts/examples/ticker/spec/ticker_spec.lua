-- The ticker starter (scripts/examples/ticker): its timer, its market and its stream route,
-- with freshet.test. From the repository root:
--   cd scripts/examples/ticker && busted        (see .busted for the Lua paths)
local t = require "freshet.test"

local APP = "app.lua" -- run from this app's directory: busted

describe("ticker example", function()
  local srv, prices

  before_each(function()
    srv = t.server { app = APP, now = 1700000000000 }
    prices = srv:route("/prices")
  end)

  local function open(query)
    return prices:open(prices:request { path = "/prices" .. (query or "") })
  end

  describe("the timer in app.lua", function()
    it("publishes a price for each of the 100 symbols every 100 ms, as telemetry", function()
      assert.equal(0, srv:advance(99))
      assert.equal(1, srv:advance(1))
      assert.equal(100, #srv.published)
      local seen = {}
      for _, ev in ipairs(srv.published) do
        assert.equal("price", ev.event)
        assert.equal("telemetry", ev.priority)
        assert.equal("price:" .. ev.data.symbol, ev.topic)
        assert.equal(1700000000100, ev.data.at)
        assert.is_number(ev.data.price)
        assert.is_number(ev.data.change)
        seen[ev.data.symbol] = true
      end
      local n = 0
      for _ in pairs(seen) do n = n + 1 end
      assert.equal(100, n)
    end)

    it("runs at 10 Hz: 1000 prices a second", function()
      assert.equal(10, srv:advance(1000))
      assert.equal(1000, #srv.published)
    end)

    it("keeps the prices in freshet.shared every second, for a reload to carry on from", function()
      srv:advance(1000)
      local last = {}
      for _, ev in ipairs(srv.published) do last[ev.data.symbol] = ev.data.price end
      assert.equal(last.DORC, srv.shared:get("ticker:DORC"))
      assert.equal(last.DISU, srv.shared:get("ticker:DISU"))
    end)
  end)

  describe("market.lua", function()
    local market, symbols
    before_each(function()
      market, symbols = srv.modules.market, srv.modules.symbols
    end)

    it("moves each price by at most 0.2 % a tick, in cents, with the change since the open", function()
      local m = market.new { random = function() return 1 end }  -- the largest step up
      local q = m:tick(5)[1]
      assert.same({ symbol = "DORC", price = 40.94, change = 0.2, at = 5 }, q)
      m = market.new { random = function() return 0 end }         -- the largest step down
      assert.equal(40.78, m:tick(5)[1].price)
    end)

    it("never goes below a cent", function()
      local m = market.new { random = function() return 0 end, prices = { DORC = 0.01 } }
      assert.equal(0.01, m:tick(1)[1].price)
    end)

    it("starts from saved prices when it has them", function()
      local m = market.new { prices = { KUB = 500 } }
      assert.equal(500, m.price.KUB)
      assert.equal(symbols.open.DORC, m.price.DORC)
    end)
  end)

  describe("routes/prices.lua", function()
    it("follows the symbols asked for, in order, once each, whatever their case", function()
      local s = open("?symbols=kub,DORC,KUB")
      assert.equal(200, s.status)
      assert.same({ "price:KUB", "price:DORC" }, s.topics)
    end)

    it("follows the first 24 symbols when none are asked for", function()
      local s = open()
      assert.equal(24, #s.topics)
      assert.equal("price:DORC", s.topics[1])
      assert.equal("price:KEPF", s.topics[21])
    end)

    it("refuses unknown symbols and lists longer than 64", function()
      assert.same({ status = 400, error = "unknown symbol 'ACME'" }, open("?symbols=DORC,ACME"))
      assert.same({ status = 400, error = "symbols must name at least one symbol" }, open("?symbols=,,"))
      local many = {}
      for i = 1, 65 do many[i] = srv.modules.symbols.list[i][1] end
      assert.same({ status = 400, error = "at most 64 symbols per stream, got 65" },
        open("?symbols=" .. table.concat(many, ",")))
    end)

    it("conflates every topic and resets instead of refusing a stale id", function()
      local s = open("?symbols=DORC,KUB")
      assert.same({ ["price:DORC"] = "conflate", ["price:KUB"] = "conflate" }, s.slow)
      assert.equal("reset", prices.hooks.on_gap)
    end)

    it("delivers the prices of its symbols only", function()
      local s = open("?symbols=DORC,KUB")
      srv:advance(300)
      assert.equal(6, #s.events)
      for _, ev in ipairs(s.events) do
        assert.is_true(ev.data.symbol == "DORC" or ev.data.symbol == "KUB")
      end
    end)

    it("lets a WebSocket client change its watchlist, within the rules", function()
      local req = prices:request { path = "/prices?symbols=DORC" }
      local who = prices:auth(req)
      local current = { "price:DORC" }
      local function change(op, topics) return { op = op, topics = topics, current = current } end
      -- route:topics(req, who) has no `change` argument: call the hook itself.
      local topics = prices.hooks.topics
      assert.same({ "price:DORC", "price:KUB" },
        topics(req, who, change("subscribe", { "price:KUB", "price:ACME", "news", "price:DORC" })))
      current = { "price:DORC", "price:KUB" }
      assert.same({ "price:KUB" }, topics(req, who, change("unsubscribe", { "price:DORC" })))
      current = { "price:KUB" }
      assert.same({ "price:KUB" }, topics(req, who, change("unsubscribe", { "price:KUB" })))
    end)
  end)
end)
