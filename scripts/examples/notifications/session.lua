-- Session tokens: HS256 JWTs whose `sub` is the user id, carried in the `session` cookie.
--
-- The secret comes from NOTIFY_JWT_SECRET, which the app that signs users in shares with
-- freshet. Without it, one is made up for this process (kept in freshet.shared, so it survives
-- a reload but not a restart, and a second node would not know it): set NOTIFY_JWT_SECRET on
-- every node in production.
local freshet = require "freshet"

local M = {}

M.COOKIE = "session"
M.AUDIENCE = "notifications"
M.TTL = 8 * 3600 -- seconds; the demo sign-in's tokens last a working day

-- A user id: 1 to 64 letters, digits, '_', '-', '.' or '@' (an email address will do).
function M.valid_id(id)
  return type(id) == "string" and #id >= 1 and #id <= 64 and not id:find("[^%w_%-.@]")
end

local secret

local function get_secret()
  if secret then return secret end
  local configured = os.getenv("NOTIFY_JWT_SECRET")
  if configured and configured ~= "" then
    secret = configured
    return secret
  end
  local made = freshet.shared:get("notifications:jwt-secret")
  if not made then
    local crypto = require "freshet.crypto"
    made = crypto.base64url_encode(assert(crypto.random_bytes(32)))
    freshet.shared:set("notifications:jwt-secret", made)
  end
  secret = made
  return secret
end

local function now() return math.floor(freshet.now() / 1000) end

--- A session token for user `id`, and how many seconds it lasts.
function M.sign(id)
  local t = now()
  return freshet.jwt.sign({ sub = id, aud = M.AUDIENCE, iat = t, exp = t + M.TTL }, get_secret()), M.TTL
end

--- The user of a request: the token from the `session` cookie (or an Authorization: Bearer
--- header, for other clients), checked. Never from the query string: a URL ends up in logs and
--- in the browser's history, and this token lasts hours. Returns { id = <sub> } or
--- nil, 401, reason.
function M.user(req)
  local token, err = freshet.jwt.from_request(req, { cookie = M.COOKIE, query = false })
  if not token then return nil, 401, err end
  local claims, why = freshet.jwt.verify(token, get_secret(), {
    aud = M.AUDIENCE, now = now(), require = { "sub", "exp" },
  })
  if not claims then return nil, 401, why end
  if not M.valid_id(claims.sub) then return nil, 401, "the token does not name a valid user" end
  return { id = claims.sub }
end

return M
