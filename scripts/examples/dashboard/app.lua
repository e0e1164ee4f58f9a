-- The dashboard starter: the server's own metrics, streamed to a page every second. Free
-- viewers see how many are connected; pro viewers see everything.
--
--   scripts/run-example.sh dashboard          (from the repository root)
local freshet = require "freshet"
local snapshot = require "snapshot"
local viewers = require "viewers"

local app = freshet.app {
  listen = "127.0.0.1:3000",
  heartbeat = 15,
  retry = 3000,
  replay = { events = 120, seconds = 60 }, -- a viewer that reconnects gets the last minute
  broker = os.getenv("FRESHET_BROKER") or "memory",
  tiers = {
    -- Free viewers: 3 dashboards at once, then one more every 5 seconds; a short queue.
    free = { rate = 0.2, burst = 3, queue = 16 },
    pro = { rate = 5, burst = 20, queue = 256 },
  },
}

-- Every second, two events on this node's topic: `public` (connection counts) and `full`
-- (every counter, with rates). The route's filter hands each viewer the one its tier may see.
local snap = snapshot.new()
freshet.every(1000, function()
  local m, err = freshet.metrics()
  if not m then
    freshet.log("warn", err)
    return
  end
  local public, full = snap:take(m, freshet.now(), viewers.NODE)
  local topic = "metrics:" .. viewers.NODE
  freshet.publish(topic, public, { event = "public", priority = "telemetry" })
  freshet.publish(topic, full, { event = "full", priority = "telemetry" })
end)

app:stream("/dashboard/events", "routes/dashboard.lua")
app:stream("/login", "routes/login.lua") -- a demo: hands out viewer tokens (WebSocket)
app:static("/", "public")

return app
