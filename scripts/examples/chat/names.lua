-- Shared by routes/room.lua and routes/post.lua (route scripts can `require` modules that
-- sit beside app.lua). A user or room name is 1 to 32 characters from letters, digits,
-- "_", "-" and "."; names made only of dots are refused, since "." and ".." are path segments.
local M = {}

M.MAX = 32

-- Returns nil for a good name, else what is wrong with it (to finish "user name ...").
function M.problem(name)
  if #name > M.MAX then return "longer than " .. M.MAX .. " characters" end
  if name:find("[^%w_%-.]") then return "may only use letters, digits, '_', '-' and '.'" end
  if not name:find("[^.]") then return "must not be made of dots only" end
  return nil
end

return M
