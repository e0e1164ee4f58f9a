-- Who is watching the dashboard, and what their tier lets them see.
--
-- A viewer without a token is `free`. A token (`?token=` for EventSource, or an
-- Authorization: Bearer header) is an HS256 JWT with audience "dashboard" whose `plan` claim
-- says "pro" or "free". A pro viewer may still ask for the free view with `?view=free` (to see
-- what free viewers get); nobody can ask for more than their token gives.
--
-- DASHBOARD_JWT_SECRET is the secret shared with whatever issues the tokens; without it one is
-- made up for this process (so only tokens from routes/login.lua, the demo sign-in, work).
local freshet = require "freshet"

local M = {}

M.AUDIENCE = "dashboard"
M.TTL = 3600
-- This node's name: its metrics go to the topic metrics:<NODE>. Give each node of a Redis
-- deployment its own (DASHBOARD_NODE) and open /?node=<name> to watch another one.
M.NODE = os.getenv("DASHBOARD_NODE") or "local"

local secret

local function get_secret()
  if secret then return secret end
  local configured = os.getenv("DASHBOARD_JWT_SECRET")
  if configured and configured ~= "" then
    secret = configured
    return secret
  end
  local made = freshet.shared:get("dashboard:jwt-secret")
  if not made then
    local crypto = require "freshet.crypto"
    made = crypto.base64url_encode(assert(crypto.random_bytes(32)))
    freshet.shared:set("dashboard:jwt-secret", made)
  end
  secret = made
  return secret
end

local function now() return math.floor(freshet.now() / 1000) end

--- A viewer token for `name` on `plan`.
function M.sign(name, plan)
  local t = now()
  return freshet.jwt.sign({ sub = name, plan = plan, aud = M.AUDIENCE, iat = t, exp = t + M.TTL },
    get_secret()), M.TTL
end

--- The viewer of a request: { id?, plan, view }, or nil, 401, reason for a bad token.
function M.identify(req)
  local who = { plan = "free" }
  if req.query.token or req.headers.authorization then
    local claims, status, why = freshet.jwt.authenticate(req, get_secret(), {
      aud = M.AUDIENCE, now = now(), require = { "sub", "exp" },
    })
    if not claims then return nil, status, why end
    who.id = claims.sub
    if claims.plan == "pro" then who.plan = "pro" end
  end
  who.view = req.query.view == "free" and "free" or who.plan
  return who
end

return M
