-- GET /dashboard/events[?token=TOKEN][&view=free][&node=NAME] — the server's metrics, once a
-- second. Every snapshot is published twice on metrics:<node>: as a `public` event
-- ({connections, streams}) and as a `full` event (every counter, rates, uptime, memory). The
-- filter gives each viewer exactly one of the two, by the view its tier allows:
--
--   free:  event: public   data: {"node":"local","at":…,"connections":3,"streams":2}
--   pro:   event: full     data: {"node":"local","at":…,"connections":3,"streams":2,
--                                  "published":{…},"delivered":…,"rates":{…},"rss":…,…}
local viewers = require "viewers"

local route = {}

-- Only the latest snapshot matters to someone who fell behind.
route.on_slow = "conflate"
-- A viewer back after more than a minute carries on from now.
route.on_gap = "reset"

function route.auth(req)
  local node = req.query.node
  if node ~= nil and not node:find("^[%w_%-.]+$") then
    return nil, 400, "node must be letters, digits, '_', '-' or '.'"
  end
  return viewers.identify(req)
end

function route.topics(req, who)
  return { "metrics:" .. (req.query.node or viewers.NODE) }
end

-- The tier decides how often a viewer may open a dashboard and how much may queue for it.
function route.tier(req, who)
  return who.view
end

-- Runs once per event per viewer: it must be cheap, and depend only on the event and who.
function route.filter(event, who)
  if who.view == "pro" then return event.event == "full" end
  return event.event == "public"
end

return route
