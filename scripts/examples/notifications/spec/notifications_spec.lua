-- The notifications starter (scripts/examples/notifications): the inbox's cookie auth, the
-- admin-only publish route, private delivery and the demo sign-in, with freshet.test. The
-- routes use freshet.jwt and freshet.crypto, so freshet.crypto must be built as a Lua module
-- (docs/LUA_API.md, "Outside the server"):
--   cd scripts/examples/notifications && busted        (see .busted for the Lua paths)
local t = require "freshet.test"

local APP = "app.lua" -- run from this app's directory: busted
local ADMIN = { Authorization = "Bearer demo-admin-token" }

describe("notifications example", function()
  local srv, inbox, notify, login, jwt

  before_each(function()
    srv = t.server { app = APP, now = 1700000000000 }
    inbox = srv:route("/inbox")
    notify = srv:route("/users/:id/notifications")
    login = srv:route("/login")
    jwt = srv.freshet.jwt
  end)

  -- Without NOTIFY_JWT_SECRET the app makes one up when it first needs it, and keeps it here.
  local function secret() return assert(srv.shared:get("notifications:jwt-secret")) end

  -- A session as the demo sign-in hands it out.
  local function sign_in(id)
    local req = login:request { path = "/login", headers = { Upgrade = "websocket" } }
    local who = assert(login:auth(req))
    return login:message(t.conn { topics = { "login" } }, { type = "login", id = id }, who)
  end

  local function inbox_req(cookies, extra)
    local spec = { path = "/inbox", cookies = cookies }
    for k, v in pairs(extra or {}) do spec[k] = v end
    return inbox:request(spec)
  end

  local function send(id, body, headers)
    return notify:post(notify:request { path = "/users/" .. id .. "/notifications", headers = headers or ADMIN }, body)
  end

  describe("the demo sign-in", function()
    it("hands out an 8-hour session token for the user id", function()
      local reply = sign_in("ann@example.com")
      assert.equal("session", reply.type)
      assert.equal(8 * 3600, reply.expires_in)
      local claims = assert(jwt.verify(reply.token, secret(), { now = 1700000000 }))
      assert.same({ sub = "ann@example.com", aud = "notifications", iat = 1700000000,
                    exp = 1700000000 + 8 * 3600 }, claims)
    end)

    it("refuses a bad id and plain HTTP", function()
      assert.same({ type = "error", error = "id must be 1 to 64 letters, digits, '_', '-', '.' or '@'" },
        sign_in("ann smith"))
      assert.equal(400, login:open(login:request { path = "/login" }).status)
    end)
  end)

  describe("routes/inbox.lua", function()
    it("takes the user from the session cookie and follows their private topic", function()
      local req = inbox_req { session = sign_in("ann").token }
      local who = inbox:auth(req)
      assert.same({ id = "ann" }, who)
      assert.same({ "user:ann" }, inbox:topics(req, who))
    end)

    it("also takes an Authorization header, but never a token in the URL", function()
      local token = sign_in("ann").token
      assert.same({ id = "ann" }, inbox:auth(inbox_req(nil, { headers = { Authorization = "Bearer " .. token } })))
      assert.same({ nil, 401, "no token: expected an Authorization: Bearer header or a 'session' cookie" },
        { inbox:auth(inbox_req(nil, { query = { token = token } })) })
    end)

    it("refuses expired, foreign and other-audience tokens with the reason", function()
      local token = sign_in("ann").token
      srv:advance(8 * 3600 * 1000)
      assert.same({ nil, 401, "token expired" }, { inbox:auth(inbox_req { session = token }) })
      local other = jwt.sign({ sub = "ann", aud = "notifications", exp = 1800000000 }, "someone else's")
      assert.same({ nil, 401, "bad signature" }, { inbox:auth(inbox_req { session = other }) })
      local chat = jwt.sign({ sub = "ann", aud = "chat", exp = 1800000000 }, secret())
      assert.same({ nil, 401, "wrong audience" }, { inbox:auth(inbox_req { session = chat }) })
    end)

    it("resets on a stale id and disconnects a slow reader rather than skip a notification", function()
      assert.equal("reset", inbox.hooks.on_gap)
      local s = inbox:open(inbox_req { session = sign_in("ann").token })
      assert.same({ ["user:ann"] = "disconnect" }, s.slow)
    end)
  end)

  describe("routes/notify.lua", function()
    it("publishes a critical notification on the user's topic", function()
      local res = send("ann", { title = "Export ready", body = "42 rows", url = "/exports/42" })
      assert.equal(201, res.status)
      local ev = srv.published[1]
      assert.equal("user:ann", ev.topic)
      assert.equal("notification", ev.event)
      assert.equal("critical", ev.priority)
      assert.same({ title = "Export ready", body = "42 rows", url = "/exports/42", at = 1700000000000 }, ev.data)
    end)

    it("needs the admin token", function()
      assert.same({ status = 401, error = "an admin token is required (Authorization: Bearer ...)" },
        send("ann", { title = "x" }, {}))
      assert.same({ status = 403, error = "wrong admin token" },
        send("ann", { title = "x" }, { Authorization = "Bearer guess" }))
      assert.same({}, srv.published)
    end)

    it("warns at load that the demo admin token is in use", function()
      assert.is_true(srv:logged("NOTIFY_ADMIN_TOKEN is not set", "warn"))
    end)

    it("refuses what is not a notification", function()
      assert.same({ status = 400, error = "title must be a non-empty string" }, send("ann", { body = "x" }))
      assert.same({ status = 400, error = "body must be a string" }, send("ann", { title = "t", body = 5 }))
      assert.same({ status = 400, error = "title must be at most 200 bytes" }, send("ann", { title = ("x"):rep(201) }))
      assert.same({ status = 400, error = "url must be a path (/...) or an http(s) address" },
        send("ann", { title = "t", url = "javascript:alert(1)" }))
      assert.same({ status = 400, error = "user id must be 1 to 64 letters, digits, '_', '-', '.' or '@'" },
        send("a%20b", { title = "t" }))
      assert.same({}, srv.published)
    end)
  end)

  it("delivers a notification to its user only", function()
    local ann = inbox:open(inbox_req { session = sign_in("ann").token })
    local bob = inbox:open(inbox_req { session = sign_in("bob").token })
    send("ann", { title = "for ann" })
    send("bob", { title = "for bob" })
    assert.equal(1, #ann.events)
    assert.equal("for ann", ann.events[1].data.title)
    assert.equal(1, #bob.events)
    assert.equal("for bob", bob.events[1].data.title)
  end)
end)
