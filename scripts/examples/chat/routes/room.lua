-- GET /rooms/:room/events?user=NAME — the stream of one chat room.
--
-- Anyone who gives a name may listen. The name only says who is talking, so a query
-- parameter is enough for a starter; check a signed cookie or token here instead before
-- putting this on the internet.
local names = require "names"

local route = {}

-- A browser that comes back after a long outage (or after a server restart: the memory
-- broker forgets) sends a Last-Event-ID that can no longer be replayed. Instead of refusing
-- it with 416, start its stream with a "reset" event so the page can say messages were missed.
route.on_gap = "reset"

function route.auth(req)
  local problem = names.problem(req.params.room)
  if problem then return nil, 400, "room name " .. problem end

  local user = req.query.user
  if user == nil or user == "" then return nil, 401, "user required" end
  problem = names.problem(user)
  if problem then return nil, 400, "user name " .. problem end

  return { name = user }
end

function route.topics(req, who)
  return { "room:" .. req.params.room }
end

return route
