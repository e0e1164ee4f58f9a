-- The ticker starter: a made-up market of 100 symbols whose prices move ten times a second,
-- streamed to a page that follows a watchlist.
--
--   scripts/run-example.sh ticker        (from the repository root)
--
-- Every price is published on its own topic, price:<SYMBOL>, as `telemetry`: the priority a
-- slow stream may skip first. The stream route conflates (routes/prices.lua): a reader that
-- falls behind gets the latest price of each symbol, never a backlog of stale ones.
local freshet = require "freshet"
local market = require "market"
local symbols = require "symbols"

local app = freshet.app {
  listen = "127.0.0.1:3000",
  heartbeat = 15,
  retry = 2000,
  -- A price is stale a moment later: keep little to replay. A client that comes back after
  -- more than that gets a `reset` (on_gap) and simply carries on from the latest prices.
  replay = { events = 20, seconds = 10 },
  broker = os.getenv("FRESHET_BROKER") or "memory",
}

local TICK_MS = 100 -- 10 Hz

-- Prices survive a reload (SIGHUP runs this file again) through freshet.shared.
local saved = {}
for _, s in ipairs(symbols.list) do saved[s[1]] = freshet.shared:get("ticker:" .. s[1]) end
local m = market.new { prices = saved }

-- One node publishes the market; with Redis, start the others with TICKER_FEED=off so they
-- only serve streams (two feeds would both move the same prices).
if os.getenv("TICKER_FEED") ~= "off" then
  local ticks = 0
  freshet.every(TICK_MS, function()
    for _, q in ipairs(m:tick(freshet.now())) do
      freshet.publish("price:" .. q.symbol, q, { event = "price", priority = "telemetry" })
    end
    ticks = ticks + 1
    if ticks % 10 == 0 then
      for sym, p in pairs(m.price) do freshet.shared:set("ticker:" .. sym, p) end
    end
  end)
end

app:stream("/prices", "routes/prices.lua")
app:static("/", "public")

return app
