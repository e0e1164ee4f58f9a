-- The chat starter: rooms to join and post to, with a (demo) sign-in that hands out JWTs.
--
--   scripts/run-example.sh chat          (from the repository root)
--   build/freshet scripts/examples/chat/app.lua --listen 127.0.0.1:3001
--
-- Paths given to app:stream / app:publish / app:http / app:static are relative to this file.
local freshet = require "freshet"

local app = freshet.app {
  listen = "127.0.0.1:3000",
  heartbeat = 15,                            -- seconds of silence before a ":" comment
  retry = 3000,                              -- ms the browser waits before reconnecting
  replay = { events = 1000, seconds = 300 }, -- what a reconnecting client can catch up on
  broker = os.getenv("FRESHET_BROKER") or "memory",
}

app:stream("/rooms/:room/events", "routes/room.lua")     -- SSE, long-poll or WebSocket
app:stream("/ws/:room", "routes/room.lua")                -- the same rooms at a /ws path
app:publish("/rooms/:room/messages", "routes/post.lua")
app:http("POST", "/login", "routes/login.lua")            -- sign-in: a token and the room's position
app:static("/", "public")

return app
