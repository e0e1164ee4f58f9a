-- POST /login with {"name": "ann", "room": "lobby"} (room optional): answers
-- {"name": "ann", "token": "<JWT>", "expires_in": 900, "room": "lobby", "position": "<id>"}.
-- `position` is where the room stands now: the page opens its stream from it (as
-- Last-Event-ID), so messages posted between the sign-in and the stream are not lost.
--
-- A DEMO: anyone gets a token for any name (see session.lua).
local freshet = require "freshet"
local names = require "names"
local session = require "session"

local route = { body = "json" }

function route.handle(req, body, who)
  if type(body) ~= "table" then
    return 400, { error = "send a JSON object: {\"name\": \"...\"}" }
  end
  local name = body.name
  if type(name) ~= "string" or name == "" then
    return 400, { error = "name must be a non-empty string" }
  end
  local problem = names.problem(name)
  if problem then return 400, { error = "user name " .. problem } end
  local answer = { name = name }
  answer.token, answer.expires_in = session.sign(name)
  if body.room ~= nil then
    problem = type(body.room) ~= "string" and "must be a string" or names.problem(body.room)
    if problem then return 400, { error = "room name " .. problem } end
    answer.room = body.room
    answer.position = freshet.position("room:" .. body.room)
  end
  return 200, answer, { ["Cache-Control"] = "no-store" }
end

return route
