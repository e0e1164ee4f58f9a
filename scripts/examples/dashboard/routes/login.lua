-- GET /login as a WebSocket: send {"type": "login", "name": "ann", "plan": "pro"} and get back
-- {"type": "token", "token": "<JWT>", "plan": "pro", "expires_in": 3600}.
--
-- A DEMO: anyone may have a pro token. A real deployment issues viewer tokens from its own
-- account system (a JWT signed with DASHBOARD_JWT_SECRET, audience "dashboard", claims sub and
-- plan) and deletes this route. It is a WebSocket because the reply of a `message` hook is the
-- one place a route script hands a value straight back to one client.
local viewers = require "viewers"

local route = {}

function route.auth(req)
  if (req.headers.upgrade or ""):lower() ~= "websocket" then
    return nil, 400, "sign in over a WebSocket: connect to /login and send "
      .. "{\"type\":\"login\",\"name\":\"...\",\"plan\":\"pro\"}"
  end
  return {}
end

-- A stream route follows at least one topic; nothing is ever published on this one.
function route.topics(req, who)
  return { "login" }
end

function route.message(conn, msg, who)
  if msg.type ~= "login" then
    return { type = "error", error = "unknown message type (send {\"type\":\"login\",...})" }
  end
  if type(msg.name) ~= "string" or not msg.name:find("^[%w_%-.]+$") or #msg.name > 64 then
    return { type = "error", error = "name must be 1 to 64 letters, digits, '_', '-' or '.'" }
  end
  if msg.plan ~= "pro" and msg.plan ~= "free" then
    return { type = "error", error = "plan must be \"pro\" or \"free\"" }
  end
  local token, ttl = viewers.sign(msg.name, msg.plan)
  return { type = "token", token = token, plan = msg.plan, expires_in = ttl }
end

return route
