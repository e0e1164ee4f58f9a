-- The workspace starter: a team's project activity, where the app's existing backend decides
-- who is signed in and who may read or post in which project. The route scripts ask it over
-- HTTP (backend.lua); the worker goes on serving everyone else while a hook waits.
--
--   scripts/run-example.sh workspace        (from the repository root; starts backend.py too)
--
-- The backend's address comes from WORKSPACE_BACKEND (default http://127.0.0.1:3001); the
-- broker from FRESHET_BROKER, so the same app runs on several nodes over Redis.
local freshet = require "freshet"

local app = freshet.app {
  listen = "127.0.0.1:3000",
  heartbeat = 15,
  retry = 3000,
  replay = { events = 200, seconds = 600 },
  broker = os.getenv("FRESHET_BROKER") or "memory",
  -- A hook that still waits on the backend after 3 s gets 504: better than a page that hangs.
  timeouts = { hook = 3 },
}

app:stream("/projects/:project/activity", "routes/activity.lua")  -- members read
app:publish("/projects/:project/posts", "routes/post.lua")        -- editors post
app:static("/", "public")

return app
