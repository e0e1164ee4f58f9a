-- POST /rooms/:room/messages  {"user": "ann", "text": "hello"}
--
-- `body = "json"` has the server decode the body before publish is called (bad JSON gets a
-- 400 without reaching this script). A good message goes to every stream that follows
-- "room:<room>" as a "message" event; the server answers 201 {"id": "..."}.
local freshet = require "freshet"
local names = require "names"

local MAX_TEXT = 2000

-- Characters, not bytes: every byte that is not a UTF-8 continuation byte starts one.
-- (Text that is not valid UTF-8 is refused by the server with a 400 when it is published.)
local function length(s)
  local _, n = s:gsub("[^\128-\191]", "")
  return n
end

local route = {}

route.body = "json"

function route.publish(req, body, who)
  local room = req.params.room
  local problem = names.problem(room)
  if problem then return nil, 400, "room name " .. problem end

  if type(body) ~= "table" then return nil, 400, "body must be a JSON object" end
  local user, text = body.user, body.text

  if type(user) ~= "string" or user == "" then
    return nil, 400, "user must be a non-empty string"
  end
  problem = names.problem(user)
  if problem then return nil, 400, "user name " .. problem end

  if type(text) ~= "string" or not text:find("%S") then
    return nil, 400, "text must be a non-empty string"
  end
  if length(text) > MAX_TEXT then
    return nil, 400, "text must be at most " .. MAX_TEXT .. " characters"
  end

  return {
    topic = "room:" .. room,
    event = "message",
    data = { user = user, text = text, at = freshet.now() },
  }
end

return route
