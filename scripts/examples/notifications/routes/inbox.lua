-- GET /inbox — the signed-in user's notifications, and only theirs. The browser sends the
-- `session` cookie by itself (EventSource, fetch and WebSocket alike), so the page never puts
-- the token in a URL.
--
--   event: notification
--   data: {"title":"Your export is ready","body":"…","url":"/exports/42","at":1732176000000.2}
--
-- Every notification is `critical` (routes/notify.lua): a slow stream never drops one. A
-- client that reconnects with the id of the last one it saw gets everything after it from the
-- replay window; one that was away longer than the window gets a `reset` event, and the page
-- fetches the user's state some other way (here: it says so).
local session = require "session"

local route = {}

route.on_gap = "reset"

-- A notification must not be skipped. Rather than let a stream that reads too slowly fall
-- behind, close it (with retry: 5000); the browser comes back with its last id and catches up
-- from replay.
route.on_slow = "disconnect"

function route.auth(req)
  return session.user(req)
end

function route.topics(req, who)
  return { "user:" .. who.id }
end

return route
