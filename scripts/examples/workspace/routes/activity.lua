-- GET /projects/:project/activity — a project's activity, for its members only. The answers
-- come from the app's backend: who the session cookie belongs to, and whether that user is a
-- member of the project. Both are asked in auth, where a refusal is a status the page shows
-- (401: sign in; 403: not a member; 503/504: the backend is down or slow).
--
--   event: post
--   data: {"by":"ann","name":"Ann","text":"Deploy is green","at":1732176000000}
local backend = require "backend"

local route = {}

function route.auth(req)
  local who, status, msg = backend.user(req)
  if not who then return nil, status, msg end
  local role, rstatus, rmsg = backend.role(who.id, req.params.project)
  if role == nil then return nil, rstatus, rmsg end
  if not role then return nil, 403, "you are not a member of this project" end
  who.role = role
  return who
end

function route.topics(req, who)
  return { "project:" .. req.params.project }
end

return route
