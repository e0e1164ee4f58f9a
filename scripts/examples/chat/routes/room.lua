-- GET /rooms/:room/events?token=TOKEN   (or ?user=NAME) — the stream of one chat room,
-- over Server-Sent Events, long-polling or WebSocket.
--
-- A token from routes/login.lua says who is listening (and, over WebSocket, who is talking).
-- Without a token, a `user` query parameter is taken at its word: it only labels the
-- listener, which is enough to try the app with curl. Use tokens only before putting a chat
-- on the internet (drop the `user` branch in auth).
local freshet = require "freshet"
local names = require "names"
local messages = require "messages"
local session = require "session"

local route = {}

-- A browser that comes back after a long outage (or after a server restart: the memory
-- broker forgets) sends a Last-Event-ID that can no longer be replayed. Instead of refusing
-- it with 416, start its stream with a "reset" event so the page can say messages were missed.
route.on_gap = "reset"

-- who.id is what freshet.presence lists: the user's name.
local function identity(who)
  if who then who.id = who.id or who.name end
  return who
end

function route.auth(req)
  local problem = names.problem(req.params.room)
  if problem then return nil, 400, "room name " .. problem end

  if session.has_token(req) then
    local who, status, message = session.identify(req)
    return identity(who), status, message
  end

  local user = req.query.user
  if user == nil or user == "" then return nil, 401, "user required" end
  problem = names.problem(user)
  if problem then return nil, 400, "user name " .. problem end
  return identity({ name = user })
end

function route.topics(req, who)
  return { "room:" .. req.params.room }
end

-- A WebSocket client says something with {"type": "say", "text": "..."}; everyone in the room
-- (on any transport) gets it as a "message" event, exactly as if it had been POSTed. The reply
-- goes to the sender alone: {"type": "said", "id": "<id>"}, or {"type": "error", ...}.
-- {"type": "who"} answers who is in the room: {"type": "who", "count": N, "names": [...]},
-- across every node when the app runs on the Redis broker (refreshed every second).
function route.message(conn, msg, who)
  if msg.type == "who" then
    local p = freshet.presence(conn.topics[1])
    table.sort(p.ids)
    return { type = "who", count = p.count, names = p.ids }
  end
  if msg.type ~= "say" then
    return { type = "error", error = "unknown message type (send {\"type\":\"say\",\"text\":...} or {\"type\":\"who\"})" }
  end
  local room = conn.topics[1]:match("^room:(.*)$")
  local event, why = messages.event(room, who.name, msg.text)
  if not event then return { type = "error", error = why } end
  local id = freshet.publish(event.topic, event.data, { event = event.event })
  -- With the Redis broker publish returns true (Redis assigns the id a moment later).
  return { type = "said", id = type(id) == "string" and id or nil }
end

return route
