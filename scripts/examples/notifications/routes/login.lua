-- GET /login as a WebSocket: send {"type": "login", "id": "ann"} and get back
-- {"type": "session", "id": "ann", "token": "<JWT>", "expires_in": 28800}; the page stores the
-- token in the `session` cookie.
--
-- A DEMO: anyone gets a session for any user id, with no password. In a real deployment the
-- app that signs users in sets the cookie (a JWT signed with NOTIFY_JWT_SECRET, audience
-- "notifications") and this route is deleted. (It is a WebSocket because the reply of a
-- `message` hook is the one place a route script hands a value straight back to one client.)
local session = require "session"

local route = {}

function route.auth(req)
  if (req.headers.upgrade or ""):lower() ~= "websocket" then
    return nil, 400, "sign in over a WebSocket: connect to /login and send "
      .. "{\"type\":\"login\",\"id\":\"...\"}"
  end
  return {}
end

-- A stream route follows at least one topic; nothing is ever published on this one.
function route.topics(req, who)
  return { "login" }
end

function route.message(conn, msg, who)
  if msg.type ~= "login" then
    return { type = "error", error = "unknown message type (send {\"type\":\"login\",\"id\":...})" }
  end
  if not session.valid_id(msg.id) then
    return { type = "error", error = "id must be 1 to 64 letters, digits, '_', '-', '.' or '@'" }
  end
  local token, ttl = session.sign(msg.id)
  return { type = "session", id = msg.id, token = token, expires_in = ttl }
end

return route
