"""freshet.presence(topic): the streams following a topic and their identities, on the memory
broker (this node) and across nodes on Redis, where a node that dies drops out once its part
expires."""

import json
import time

import frtest as ft

APP = """
    local freshet = require "freshet"
    local app = freshet.app { broker = os.getenv("FRESHET_BROKER") or "memory" }
    app:stream("/sub/:topic", "routes/sub.lua")
    app:publish("/who/:topic", "routes/who.lua")
    return app
"""

SUB = """
    local route = {}
    function route.auth(req) return { id = req.query.user } end
    function route.topics(req) return { req.params.topic } end
    return route
"""

# Publishes the presence of a topic on "answers", where the test reads it from a stream.
WHO = """
    local freshet = require "freshet"
    local cjson = require "cjson"
    local route = {}
    function route.publish(req)
      local p = freshet.presence(req.params.topic)
      table.sort(p.ids)
      return { topic = "answers", data = cjson.encode(p) }
    end
    return route
"""


def app_dir():
    return ft.AppDir({"app.lua": APP, "routes/sub.lua": SUB, "routes/who.lua": WHO})


def presence(srv, topic, timeout=5):
    with ft.open_stream(srv.port, "/sub/answers?user=probe") as s:
        s.wait_retry()
        srv.publish("/who/" + topic, "")
        e = s.next_event(timeout=timeout)
        return json.loads(e.data)


def hold(port, topic, user):
    s = ft.open_stream(port, f"/sub/{topic}?user={user}")
    s.wait_retry()
    return s


def wait_presence(srv, topic, want, timeout=8):
    """Asks until the answer equals want (Redis answers are refreshed every second)."""
    deadline = time.monotonic() + timeout
    got = None
    while time.monotonic() < deadline:
        got = presence(srv, topic)
        if (got["count"], sorted(got["ids"])) == want:
            return got
        time.sleep(0.3)
    ft.fail(f"presence of {topic} never became {want}", got)


def run():
    with ft.subtest("memory broker: count and ids of the streams on this node"):
        with ft.Server(app_dir()) as srv:
            streams = [hold(srv.port, "room", u) for u in ("ann", "bob", "bob")]
            got = presence(srv, "room")
            ft.check_eq((got["count"], got["ids"], got["nodes"]), (3, ["ann", "bob"], 1),
                        "presence with three streams (bob twice)")
            streams.pop().close()
            wait_presence(srv, "room", (2, ["ann", "bob"]))
            for s in streams:
                s.close()
            wait_presence(srv, "room", (0, []))

    with ft.subtest("chat example: {type: who} over WebSocket lists the room"):
        with ft.Server(ft.CHAT_APP) as srv:
            a = ft.open_stream(srv.port, "/rooms/lobby/events?user=ann")
            b = ft.open_stream(srv.port, "/rooms/lobby/events?user=bob")
            a.wait_retry()
            b.wait_retry()
            with ft.ws_connect(srv.port, "/ws/lobby?user=cat") as ws:
                ws.send_json({"type": "who"})
                got = ws.next_control("who")
                ft.check_eq((got["count"], got["names"]), (3, ["ann", "bob", "cat"]),
                            "who is in the lobby")
            a.close()
            b.close()

    with ft.subtest("Redis: merged across nodes; a killed node drops out when its part expires"):
        with ft.RedisServer() as redis:
            a = ft.redis_node(redis, app_dir())
            b = ft.redis_node(redis, app_dir())
            try:
                streams = [hold(a.port, "room", "ann"), hold(b.port, "room", "cat"),
                           hold(b.port, "room", "dan")]
                got = wait_presence(a, "room", (3, ["ann", "cat", "dan"]))
                ft.check_eq(got["nodes"], 2, "two nodes reported")
                wait_presence(b, "room", (3, ["ann", "cat", "dan"]))
                # A node killed outright cannot remove its part: it must expire.
                killed_at = time.monotonic()
                b.kill()
                got = wait_presence(a, "room", (1, ["ann"]), timeout=12)
                took = time.monotonic() - killed_at
                ft.check(took <= 10, "the killed node's part expired within 10 s", took)
                for s in streams:
                    s.close()
            finally:
                a.stop()


ft.main(run, limit=90)
