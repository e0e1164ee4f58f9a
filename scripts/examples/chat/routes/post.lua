-- POST /rooms/:room/messages  {"text": "hello"}  with  Authorization: Bearer <token>
--                        or  {"user": "ann", "text": "hello"}  without a token
--
-- `body = "json"` has the server decode the body before publish is called (bad JSON gets a
-- 400 without reaching this script). A good message goes to every stream that follows
-- "room:<room>" as a "message" event; the server answers 201 {"id": "..."}.
--
-- With a token (from routes/login.lua) the sender is the token's user and cannot be forged.
-- Without one the body names the sender, which anyone can claim: fine for trying the app with
-- curl, not for the internet.
local names = require "names"
local messages = require "messages"
local session = require "session"

local route = {}

route.body = "json"

function route.auth(req)
  if session.has_token(req) then return session.identify(req) end
  return {}
end

function route.publish(req, body, who)
  local room = req.params.room
  local problem = names.problem(room)
  if problem then return nil, 400, "room name " .. problem end

  if type(body) ~= "table" then return nil, 400, "body must be a JSON object" end
  local user = body.user
  if who.verified then
    if user ~= nil and user ~= who.name then
      return nil, 403, "the token is for '" .. who.name .. "', not '" .. tostring(user) .. "'"
    end
    user = who.name
  else
    if type(user) ~= "string" or user == "" then
      return nil, 400, "user must be a non-empty string"
    end
    problem = names.problem(user)
    if problem then return nil, 400, "user name " .. problem end
  end

  local event, why = messages.event(room, user, body.text)
  if not event then return nil, 400, why end
  return event
end

return route
