-- The workspace starter (scripts/examples/workspace): route scripts that ask the app's backend
-- over HTTP, run on freshet.test with the backend stubbed by srv:on_http.
--   cd scripts/examples/workspace && busted        (see .busted for the Lua paths)
local t = require "freshet.test"
local cjson = require "cjson"

local APP = "app.lua" -- run from this app's directory: busted
local BASE = "http://127.0.0.1:3001"

-- The backend as backend.py answers, plus a switch to take it down.
local function backend(state)
  local sessions = { ["sid=demo-ann"] = { id = "ann", name = "Ann" },
                     ["sid=demo-bob"] = { id = "bob", name = "Bob" } }
  local roles = { ["apollo/ann"] = "editor", ["apollo/bob"] = "viewer" }
  return function(req)
    if state.down then return nil, "connection refused" end
    if req.url == BASE .. "/api/session" then
      local who = sessions[req.headers.Cookie or ""]
      if not who then return { status = 401, body = { error = "no session" } } end
      return { status = 200, body = who }
    end
    local project, user = req.url:match("/api/projects/([^/]+)/members/([^/]+)$")
    if project and roles[project .. "/" .. user] then
      return { status = 200, body = { role = roles[project .. "/" .. user] } }
    end
    return { status = 404, body = { error = "not a member" } }
  end
end

describe("workspace example", function()
  local srv, activity, post, state

  before_each(function()
    srv = t.server { app = APP, now = 1700000000000 }
    state = {}
    srv:on_http(backend(state))
    activity = srv:route("/projects/:project/activity")
    post = srv:route("/projects/:project/posts")
  end)

  local function open(project, sid)
    return activity:open(activity:request {
      path = "/projects/" .. project .. "/activity", headers = { Cookie = sid and ("sid=" .. sid) } })
  end

  local function send(project, sid, text)
    return post:post(post:request {
      path = "/projects/" .. project .. "/posts", headers = { Cookie = "sid=" .. sid } },
      cjson.encode({ text = text }))
  end

  it("lets a member follow the project, with the backend's answers in who", function()
    local s = open("apollo", "demo-bob")
    assert.equal(200, s.status)
    assert.same({ "project:apollo" }, s.topics)
    assert.equal("viewer", s.who.role)
    assert.equal(BASE .. "/api/session", srv.http_calls[1].url)
    assert.equal("sid=demo-bob", srv.http_calls[1].headers.Cookie)
  end)

  it("refuses no session with 401 and a non-member with 403", function()
    assert.same({ status = 401, error = "sign in first" }, open("apollo", nil))
    assert.equal(0, #srv.http_calls)
    assert.same({ status = 401, error = "sign in first" }, open("apollo", "forged"))
    local r = open("gemini", "demo-bob")
    assert.same({ status = 403, error = "you are not a member of this project" }, r)
  end)

  it("answers 503 when the backend is down, and says why in the log", function()
    state.down = true
    assert.same({ status = 503, error = "the workspace backend is unavailable" }, open("apollo", "demo-ann"))
    assert.is_true(srv:logged("connection refused", "warn"))
  end)

  it("asks for a role once per 10 s", function()
    open("apollo", "demo-ann")
    open("apollo", "demo-ann")
    local role_calls = 0
    for _, c in ipairs(srv.http_calls) do
      if c.url:find("/members/") then role_calls = role_calls + 1 end
    end
    assert.equal(1, role_calls)
  end)

  it("publishes an editor's post to the followers and refuses a viewer's", function()
    local s = open("apollo", "demo-bob")
    local res = send("apollo", "demo-ann", "Deploy is green")
    assert.equal(201, res.status)
    assert.equal(1, #s.events)
    assert.same({ by = "ann", name = "Ann", text = "Deploy is green", at = 1700000000000 }, s.events[1].data)
    assert.same({ status = 403, error = "only the project's editors may post" },
      send("apollo", "demo-bob", "me too"))
    assert.same({ status = 400, error = "text must be a non-empty string" }, send("apollo", "demo-ann", "  "))
  end)
end)
