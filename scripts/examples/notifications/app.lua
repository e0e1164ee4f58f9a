-- The notifications starter: each signed-in user follows a private inbox; a back office posts
-- notifications to a user with an admin token; none is lost while the user is away.
--
--   scripts/run-example.sh notifications          (from the repository root)
--
-- Secrets come from the environment (see session.lua and routes/notify.lua); the broker from
-- FRESHET_BROKER, so the same app runs on several nodes over Redis.
local freshet = require "freshet"

local app = freshet.app {
  listen = "127.0.0.1:3000",
  heartbeat = 15,
  retry = 3000,
  -- What a user who was away gets when they come back: up to 1000 notifications of the last
  -- hour. With Redis the window is kept in Redis and survives a restart of freshet.
  replay = { events = 1000, seconds = 3600 },
  broker = os.getenv("FRESHET_BROKER") or "memory",
}

app:stream("/inbox", "routes/inbox.lua")                          -- the user's own stream
app:publish("/users/:id/notifications", "routes/notify.lua")      -- admin token required
app:stream("/login", "routes/login.lua")                          -- a demo sign-in (WebSocket)
app:static("/", "public")

return app
