-- The chat starter's sign-in (routes/login.lua, session.lua) and the tokens it hands out, as
-- the room and post routes check them. freshet.jwt needs freshet.crypto, built from
-- src/lua/crypto.c as a Lua module (docs/LUA_API.md, "Outside the server"):
--   cd scripts/examples/chat && busted        (see .busted for the Lua paths)
local t = require "freshet.test"
local cjson = require "cjson"

local APP = "app.lua" -- run from this app's directory: busted

describe("chat example sign-in", function()
  local srv, room, post, login

  before_each(function()
    srv = t.server { app = APP, now = 1700000000000 }
    room = srv:route("/rooms/:room/events")
    post = srv:route("/rooms/:room/messages")
    login = srv:route("/login")
  end)

  -- Signs in as the page does (POST /login, an app:http route); returns the token.
  local function sign_in(name)
    local status, body, headers, res = srv:http("POST", "/login", { body = cjson.encode({ name = name }) })
    assert.equal(200, status, body)
    assert.equal("application/json", headers["content-type"])
    return res.json.token, res.json
  end

  -- The claims of a token, without checking it (the routes do that).
  local function claims_of(token)
    local crypto = require "freshet.crypto"
    local payload = token:match("^[^.]+%.([^.]+)%.[^.]+$")
    return cjson.decode(crypto.base64url_decode(payload))
  end

  describe("login.lua (demo sign-in)", function()
    it("hands out a 15-minute HS256 token for the name asked for", function()
      local token, reply = sign_in("ann")
      assert.same({ name = "ann", token = token, expires_in = 900 }, reply)
      local claims = claims_of(token)
      assert.same({ sub = "ann", aud = "chat", iat = 1700000000, exp = 1700000900 }, claims)
    end)

    it("answers the room's position with a room, and only POST", function()
      local first = srv:publish("room:lobby", { user = "bob", text = "hi" })
      local status, _, _, res = srv:http("POST", "/login", { body = '{"name":"ann","room":"lobby"}' })
      assert.equal(200, status)
      assert.equal(first, res.json.position)
      assert.equal(first, srv.freshet.position("room:lobby"))
      assert.equal(405, (srv:http("GET", "/login")))
      assert.equal("no-store", select(3, srv:http("POST", "/login", { body = '{"name":"ann"}' }))["cache-control"])
    end)

    it("refuses bad names and bodies", function()
      assert.same({ 400, { error = "name must be a non-empty string" } },
        { login:handle(login:request { path = "/login" }, "{}") })
      local status, body = srv:http("POST", "/login", { body = '{"name":"a b"}' })
      assert.equal(400, status)
      assert.same({ error = "user name may only use letters, digits, '_', '-' and '.'" }, cjson.decode(body))
      assert.equal(400, (srv:http("POST", "/login", { body = "not json" })))
      assert.equal(400, (srv:http("POST", "/login")))
      assert.same({}, srv.published)
    end)
  end)

  describe("tokens", function()
    it("identify the listener of a room", function()
      local token = sign_in("ann")
      local req = room:request { path = "/rooms/lobby/events?token=" .. token }
      assert.same({ name = "ann", id = "ann", verified = true }, room:auth(req))
      -- The Authorization header works too (for clients that can set it).
      req = room:request { path = "/rooms/lobby/events", headers = { Authorization = "Bearer " .. token } }
      assert.same({ name = "ann", id = "ann", verified = true }, room:auth(req))
    end)

    it("are refused when tampered with, expired or made with another secret", function()
      local token = sign_in("ann")
      local forged = token:sub(1, -2) .. (token:sub(-1) == "A" and "B" or "A")
      assert.same({ nil, 401, "bad signature" },
        { room:auth(room:request { path = "/rooms/lobby/events?token=" .. forged }) })
      local other = require("freshet.jwt").sign({ sub = "ann", aud = "chat", exp = 1800000000 }, "not the secret")
      assert.same({ nil, 401, "bad signature" },
        { room:auth(room:request { path = "/rooms/lobby/events?token=" .. other }) })
      srv:advance(900 * 1000)
      assert.same({ nil, 401, "token expired" },
        { room:auth(room:request { path = "/rooms/lobby/events?token=" .. token }) })
      -- A token always wins over ?user=: a bad one is not quietly ignored.
      assert.same({ nil, 401, "token expired" },
        { room:auth(room:request { path = "/rooms/lobby/events?user=ann&token=" .. token }) })
    end)

    it("name the sender of a POST, who cannot claim to be someone else", function()
      local token = sign_in("ann")
      local auth = { Authorization = "Bearer " .. token }
      local res = post:post(post:request { path = "/rooms/lobby/messages", headers = auth }, '{"text":"hi"}')
      assert.equal(201, res.status)
      assert.same({ user = "ann", text = "hi", at = 1700000000000 }, srv.published[1].data)
      assert.same({ status = 403, error = "the token is for 'ann', not 'bob'" },
        post:post(post:request { path = "/rooms/lobby/messages", headers = auth }, '{"user":"bob","text":"hi"}'))
      assert.same({ status = 401, error = "malformed token: the header is not a base64url JSON object" },
        post:post(post:request { path = "/rooms/lobby/messages", headers = { Authorization = "Bearer x.y.z" } },
          '{"text":"hi"}'))
    end)
  end)

end)
