-- The chat starter's routes (scripts/examples/chat/routes/room.lua and post.lua), tested with
-- freshet.test the way an app's own specs would be: run from the repository root with
--   cd scripts/examples/chat && busted        (see .busted for the Lua paths)
-- The sign-in and tokens are in chat_auth_spec.lua (they need freshet.crypto built as a Lua
-- module); this file runs with the Lua modules alone.
local t = require "freshet.test"

local APP = "app.lua" -- run from this app's directory: busted

describe("chat example", function()
  local srv, room, post

  before_each(function()
    srv = t.server { app = APP, now = 1700000000000 }
    room = srv:route("/rooms/:room/events")
    post = srv:route("/rooms/:room/messages")
  end)

  local function send(name, body)
    return post:post(post:request { path = "/rooms/" .. name .. "/messages" }, body)
  end

  describe("room.lua", function()
    it("lets in anyone with a name, as an identity of that name", function()
      local who = room:auth(room:request { path = "/rooms/lobby/events?user=ann" })
      assert.same({ name = "ann", id = "ann" }, who) -- id: what presence lists
    end)

    it("asks for a name", function()
      assert.same({ nil, 401, "user required" }, { room:auth(room:request { path = "/rooms/lobby/events" }) })
      assert.same({ nil, 401, "user required" },
        { room:auth(room:request { path = "/rooms/lobby/events?user=" }) })
    end)

    it("refuses bad room and user names", function()
      assert.same({ nil, 400, "user name may only use letters, digits, '_', '-' and '.'" },
        { room:auth(room:request { path = "/rooms/lobby/events?user=a+b" }) })
      assert.same({ nil, 400, "user name longer than 32 characters" },
        { room:auth(room:request { path = "/rooms/lobby/events?user=" .. ("x"):rep(33) }) })
      assert.same({ nil, 400, "room name must not be made of dots only" },
        { room:auth(room:request { path = "/rooms/../events?user=ann" }) })
    end)

    it("follows the room's topic", function()
      local req = room:request { path = "/rooms/lobby/events?user=ann" }
      assert.same({ "room:lobby" }, room:topics(req, room:auth(req)))
    end)

    it("sends a reset event instead of 416 for a stale Last-Event-ID", function()
      assert.equal("reset", room.hooks.on_gap)
    end)
  end)

  describe("post.lua", function()
    it("publishes a message event with the sender, the text and the time", function()
      local res = send("lobby", '{"user":"ann","text":"hello"}')
      assert.equal(201, res.status)
      assert.equal("1700000000000-0", res.id)
      local ev = srv.published[1]
      assert.equal("room:lobby", ev.topic)
      assert.equal("message", ev.event)
      assert.same({ user = "ann", text = "hello", at = 1700000000000 }, ev.data)
    end)

    it("counts characters, not bytes", function()
      assert.equal(201, send("lobby", { user = "ann", text = ("é"):rep(2000) }).status)
      assert.same({ status = 400, error = "text must be at most 2000 characters" },
        send("lobby", { user = "ann", text = ("é"):rep(2001) }))
    end)

    it("refuses what is not a message", function()
      assert.same({ status = 400, error = "body must be a JSON object" }, send("lobby", '"hi"'))
      assert.same({ status = 400, error = "user must be a non-empty string" }, send("lobby", '{"text":"hi"}'))
      assert.same({ status = 400, error = "text must be a non-empty string" },
        send("lobby", '{"user":"ann","text":"  "}'))
      assert.same({ status = 400, error = "user name may only use letters, digits, '_', '-' and '.'" },
        send("lobby", '{"user":"a/b","text":"hi"}'))
      assert.same({ status = 400, error = "room name must not be made of dots only" },
        send("..", '{"user":"ann","text":"hi"}'))
      assert.same({ status = 400, error = "invalid JSON body: Expected object key string but found T_END at character 2" },
        send("lobby", "{"))
      assert.same({}, srv.published)
    end)

    it("lets the server refuse text that is not UTF-8", function()
      assert.same({ status = 400, error = "data must be valid UTF-8" },
        send("lobby", { user = "ann", text = "caf\233" }))
    end)
  end)

  describe("WebSocket messages on the room stream", function()
    local function conn_in(name) return t.conn { topics = { "room:" .. name } } end

    it("publish what is said to the room, as the sender", function()
      local ann = room:open(room:request { path = "/rooms/lobby/events?user=ann" })
      local reply = room:message(conn_in("lobby"), '{"type":"say","text":"over the socket"}', { name = "bob", verified = true })
      assert.same({ type = "said", id = "1700000000000-0" }, reply)
      assert.equal(1, #ann.events)
      assert.equal("message", ann.events[1].event)
      assert.same({ user = "bob", text = "over the socket", at = 1700000000000 }, ann.events[1].data)
    end)

    it("answer mistakes to the sender only", function()
      assert.same({ type = "error", error = "text must be a non-empty string" },
        room:message(conn_in("lobby"), { type = "say", text = " " }, { name = "bob" }))
      assert.same({ type = "error", error = "text must be at most 2000 characters" },
        room:message(conn_in("lobby"), { type = "say", text = ("x"):rep(2001) }, { name = "bob" }))
      assert.matches("unknown message type", room:message(conn_in("lobby"), { type = "shout" }, { name = "bob" }).error, 1, true)
      assert.same({}, srv.published)
    end)
  end)

  it("delivers a posted message to everyone in the room, and only that room", function()
    local ann = room:open(room:request { path = "/rooms/lobby/events?user=ann" })
    local bob = room:open(room:request { path = "/rooms/lobby/events?user=bob" })
    local eve = room:open(room:request { path = "/rooms/kitchen/events?user=eve" })
    assert.equal(200, ann.status)

    send("lobby", '{"user":"ann","text":"hi all"}')
    srv:advance(1500)
    send("lobby", '{"user":"bob","text":"hi ann"}')

    assert.equal(2, #ann.events)
    assert.same(ann.events, bob.events)
    assert.same({}, eve.events)
    assert.equal("hi ann", bob.events[2].data.text)
    assert.equal("1700000001500-0", bob.events[2].id)
  end)
end)
