-- POST /projects/:project/posts {"text": "…"} — a post to the project's activity, by an editor.
-- The backend says who is signed in and what their role is; viewers are refused.
local freshet = require "freshet"
local backend = require "backend"

local route = {}

route.body = "json"

function route.auth(req)
  local who, status, msg = backend.user(req)
  if not who then return nil, status, msg end
  local role, rstatus, rmsg = backend.role(who.id, req.params.project)
  if role == nil then return nil, rstatus, rmsg end
  if role ~= "editor" then return nil, 403, "only the project's editors may post" end
  return who
end

function route.publish(req, body, who)
  local text = type(body) == "table" and body.text
  if type(text) ~= "string" or not text:find("%S") then
    return nil, 400, "text must be a non-empty string"
  end
  if #text > 2000 then return nil, 400, "text is longer than 2000 bytes" end
  return {
    topic = "project:" .. req.params.project,
    event = "post",
    data = { by = who.id, name = who.name or who.id, text = text, at = freshet.now() },
  }
end

return route
