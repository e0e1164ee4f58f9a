-- What a chat message is, shared by the two ways to send one: POST /rooms/:room/messages
-- (routes/post.lua) and a WebSocket message on the room's stream (routes/room.lua).
local freshet = require "freshet"

local M = {}

M.MAX_TEXT = 2000

-- Characters, not bytes: every byte that is not a UTF-8 continuation byte starts one.
-- (Text that is not valid UTF-8 is refused by the server with a 400 when it is published.)
local function length(s)
  local _, n = s:gsub("[^\128-\191]", "")
  return n
end

--- The event that says `text` from `user` in `room`, or nil and what is wrong with the text.
function M.event(room, user, text)
  if type(text) ~= "string" or not text:find("%S") then
    return nil, "text must be a non-empty string"
  end
  if length(text) > M.MAX_TEXT then
    return nil, "text must be at most " .. M.MAX_TEXT .. " characters"
  end
  return {
    topic = "room:" .. room,
    event = "message",
    data = { user = user, text = text, at = freshet.now() },
  }
end

return M
