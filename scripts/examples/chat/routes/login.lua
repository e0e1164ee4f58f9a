-- GET /login, as a WebSocket: send {"type": "login", "name": "ann"} and get back
-- {"type": "token", "name": "ann", "token": "<JWT>", "expires_in": 900}.
--
-- A DEMO: anyone gets a token for any name (see session.lua). It is a WebSocket because a
-- route's answer to a plain HTTP request is an event stream or a publish receipt: the
-- `message` hook's reply is the one place a route script hands a value straight back to the
-- client that asked.
local names = require "names"
local session = require "session"

local route = {}

function route.auth(req)
  if (req.headers.upgrade or ""):lower() ~= "websocket" then
    return nil, 400, "sign in over a WebSocket: connect to /login and send "
      .. "{\"type\":\"login\",\"name\":\"...\"}"
  end
  return {}
end

-- A stream route follows at least one topic; nothing is ever published on this one.
function route.topics(req, who)
  return { "login" }
end

function route.message(conn, msg, who)
  if msg.type ~= "login" then
    return { type = "error", error = "unknown message type (send {\"type\":\"login\",\"name\":...})" }
  end
  local name = msg.name
  if type(name) ~= "string" or name == "" then
    return { type = "error", error = "name must be a non-empty string" }
  end
  local problem = names.problem(name)
  if problem then return { type = "error", error = "user name " .. problem } end
  local token, ttl = session.sign(name)
  return { type = "token", name = name, token = token, expires_in = ttl }
end

return route
