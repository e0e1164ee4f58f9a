-- Sign-in for the chat: short-lived HS256 tokens naming a user.
--
-- THIS IS A DEMO. routes/login.lua hands a token to anyone for any name they ask for, with no
-- password. A real app issues tokens from its own login (checking a password, an SSO session,
-- ...) and shares only the secret with freshet; the verifying side below stays the same.
--
-- The secret comes from CHAT_JWT_SECRET. Without it, one is made up for this process and kept
-- in freshet.shared, so tokens survive a reload (SIGHUP) but not a restart, and a second node
-- would not accept them: set CHAT_JWT_SECRET on every node when running on Redis.
local freshet = require "freshet"
local names = require "names"

local M = {}

M.TTL = 15 * 60      -- seconds a token is good for; the page signs in again when it runs out
M.AUDIENCE = "chat"  -- tokens made for something else (aud) are refused

local secret

local function get_secret()
  if secret then return secret end
  local configured = os.getenv("CHAT_JWT_SECRET")
  if configured and configured ~= "" then
    secret = configured
    return secret
  end
  local shared = freshet.shared
  local made = shared:get("chat:jwt-secret")
  if not made then
    local crypto = require "freshet.crypto"
    made = crypto.base64url_encode(assert(crypto.random_bytes(32)))
    shared:set("chat:jwt-secret", made)
  end
  secret = made
  return secret
end

-- Seconds since the epoch by the server's clock (freshet.test's fake clock in specs, so a spec
-- can move past a token's expiry).
local function now() return math.floor(freshet.now() / 1000) end

--- A token for `name`, and how many seconds it is good for.
function M.sign(name)
  local t = now()
  return freshet.jwt.sign({ sub = name, aud = M.AUDIENCE, iat = t, exp = t + M.TTL }, get_secret()), M.TTL
end

--- True when the request carries a token (Authorization: Bearer, or ?token=).
function M.has_token(req)
  return req.query.token ~= nil or req.headers.authorization ~= nil
end

--- The identity in the request's token: { name = <sub>, verified = true }, or nil, 401, reason.
function M.identify(req)
  local claims, status, why = freshet.jwt.authenticate(req, get_secret(), {
    aud = M.AUDIENCE, now = now(), require = { "sub", "exp" },
  })
  if not claims then return nil, status, why end
  if type(claims.sub) ~= "string" or names.problem(claims.sub) then
    return nil, 401, "the token does not name a valid user"
  end
  return { name = claims.sub, verified = true }
end

return M
