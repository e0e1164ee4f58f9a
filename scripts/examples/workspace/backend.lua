-- What the route scripts ask the app's backend (WORKSPACE_BACKEND): who a request is, from the
-- browser's own cookies, and which role they have in a project. Every call waits without
-- holding up the worker; a backend that is down or slow becomes a clear 503 or 504.
--
--   GET /api/session                         Cookie: sid=…   → 200 {"id":"ann","name":"Ann"} | 401
--   GET /api/projects/<project>/members/<id>                 → 200 {"role":"editor"} | 404
local freshet = require "freshet"
local cjson = require "cjson"

local M = {}

local base = os.getenv("WORKSPACE_BACKEND") or "http://127.0.0.1:3001"

-- How long a role answer is kept (freshet.shared is the whole process's): a burst of streams
-- for one project asks the backend once, and a role taken away counts within this many seconds.
local ROLE_TTL = 10

local function get_json(path, headers)
  local res, err = freshet.http.request { url = base .. path, headers = headers, timeout = 2000 }
  if not res then
    freshet.log("warn", "backend", path, "failed:", err)
    return nil, 503, "the workspace backend is unavailable"
  end
  if res.status ~= 200 then return nil, res.status end
  local ok, value = pcall(cjson.decode, res.body)
  if not ok or type(value) ~= "table" then
    freshet.log("warn", "backend", path, "answered what is not a JSON object")
    return nil, 502, "the workspace backend answered nonsense"
  end
  return value
end

--- The signed-in user as the backend knows them ({ id =, name = }), or nil, status, message:
--- the shape auth returns.
function M.user(req)
  local cookie = req.headers.cookie
  if not cookie or not cookie:find("sid=", 1, true) then return nil, 401, "sign in first" end
  local user, status, msg = get_json("/api/session", { Cookie = cookie })
  if not user then
    if status == 401 then return nil, 401, "sign in first" end
    return nil, msg and status or 502, msg or ("the session service answered " .. status)
  end
  if type(user.id) ~= "string" then return nil, 502, "the session service answered no user id" end
  return user
end

--- The user's role in the project: "viewer", "editor", or false (not a member); nil, status,
--- message when the backend could not say.
function M.role(user_id, project)
  local key = "role:" .. project .. ":" .. user_id
  local cached = freshet.shared:get(key)
  if cached ~= nil then return cached end
  local path = ("/api/projects/%s/members/%s"):format(
    freshet.request.escape(project), freshet.request.escape(user_id))
  local member, status, msg = get_json(path)
  local role
  if member then
    role = member.role == "editor" and "editor" or "viewer"
  elseif status == 404 then
    role = false
  else
    return nil, msg and status or 502, msg or ("the membership service answered " .. status)
  end
  freshet.shared:set(key, role, ROLE_TTL)
  return role
end

return M
