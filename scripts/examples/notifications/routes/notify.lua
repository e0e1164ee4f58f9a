-- POST /users/:id/notifications with  Authorization: Bearer <admin token>
--   {"title": "Your export is ready", "body": "…", "url": "/exports/42"}
--
-- For the back office, not for browsers: the admin token is a shared secret from
-- NOTIFY_ADMIN_TOKEN. The notification goes to the user's private topic, user:<id>, as a
-- `critical` event: never dropped for a slow reader, and (being critical) not counted against
-- a tier's publish rate. Answers 201 {"id": "…"}.
local freshet = require "freshet"
local crypto = require "freshet.crypto"
local session = require "session"

local route = { body = "json" }

local DEMO_TOKEN = "demo-admin-token"
local MAX_TITLE, MAX_BODY = 200, 2000

local admin_token = os.getenv("NOTIFY_ADMIN_TOKEN")
if not admin_token or admin_token == "" then
  admin_token = DEMO_TOKEN
  freshet.log("warn", "NOTIFY_ADMIN_TOKEN is not set: POST /users/:id/notifications takes the demo "
    .. "token '" .. DEMO_TOKEN .. "'. Set NOTIFY_ADMIN_TOKEN before exposing this server.")
end

function route.auth(req)
  local given = (req.headers.authorization or ""):match("^%s*[Bb]earer%s+(%S+)%s*$")
  if not given then return nil, 401, "an admin token is required (Authorization: Bearer ...)" end
  -- In constant time: how much of a guess matched must not show in how long the answer takes.
  if not crypto.constant_time_equal(given, admin_token) then
    return nil, 403, "wrong admin token"
  end
  return { admin = true }
end

local function optional_string(body, name, max)
  local v = body[name]
  if v == nil then return true end
  if type(v) ~= "string" then return nil, name .. " must be a string" end
  if #v > max then return nil, ("%s must be at most %d bytes"):format(name, max) end
  return true
end

function route.publish(req, body, who)
  local id = req.params.id
  if not session.valid_id(id) then
    return nil, 400, "user id must be 1 to 64 letters, digits, '_', '-', '.' or '@'"
  end
  if type(body) ~= "table" then return nil, 400, "body must be a JSON object" end
  if type(body.title) ~= "string" or not body.title:find("%S") then
    return nil, 400, "title must be a non-empty string"
  end
  local ok, problem = optional_string(body, "title", MAX_TITLE)
  if ok then ok, problem = optional_string(body, "body", MAX_BODY) end
  if ok then ok, problem = optional_string(body, "url", MAX_BODY) end
  if not ok then return nil, 400, problem end
  -- Pages turn url into a link: a path or a web address, never javascript: or data:.
  if body.url and not (body.url:find("^/") or body.url:find("^https?://")) then
    return nil, 400, "url must be a path (/...) or an http(s) address"
  end
  return {
    topic = "user:" .. id,
    event = "notification",
    priority = "critical",
    data = { title = body.title, body = body.body, url = body.url, at = freshet.now() },
  }
end

return route
