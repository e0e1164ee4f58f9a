"""Hooks that wait: auth, topics, tier, publish and a WebSocket's message hook may wait
(freshet.sleep here; a backend request in 46_backend_http.py) without holding up the worker:
other requests are answered meanwhile; a hook past timeouts.hook gets 504 and a log line with
file:line; a client that leaves while its hook waits costs nothing afterwards; a waiting
function where nothing may wait (filter, the app file) is a clear error."""

import threading
import time

import frtest as ft

ROUTES = {
    "routes/slow_auth.lua": """
        local freshet = require "freshet"
        local route = {}
        function route.auth(req)
          freshet.sleep(tonumber(req.query.ms or "200"))
          if req.query.deny then return nil, 403, "denied after waiting" end
          return { id = req.query.user or "anon" }
        end
        function route.topics(req, who)
          freshet.sleep(10)
          return { "t-" .. who.id }
        end
        function route.tier(req, who)
          freshet.sleep(5)
          return nil
        end
        return route
    """,
    "routes/stuck.lua": """
        local freshet = require "freshet"
        local route = {}
        function route.auth(req)
          freshet.sleep(60000)
          return {}
        end
        function route.topics() return { "never" } end
        return route
    """,
    "routes/slow_pub.lua": """
        local freshet = require "freshet"
        local route = {}
        function route.auth(req)
          freshet.sleep(50)
          return { id = "publisher" }
        end
        function route.publish(req, body, who)
          freshet.sleep(100)
          return { topic = req.params.topic, data = body .. " by " .. who.id }
        end
        return route
    """,
    "routes/sleep_in_filter.lua": """
        local freshet = require "freshet"
        local route = {}
        function route.topics() return { "f" } end
        function route.filter(ev, who)
          freshet.sleep(1)
          return true
        end
        return route
    """,
    "routes/ws_slow.lua": """
        local freshet = require "freshet"
        local route = {}
        function route.topics(req, who, change)
          if change then
            freshet.sleep(100)
            return change.topics
          end
          return { "w0" }
        end
        function route.message(conn, msg, who)
          freshet.sleep(tonumber(msg.ms) or 50)
          return { type = "echo", n = msg.n }
        end
        return route
    """,
}

SETTINGS = """
    timeouts = { hook = 1 },
"""

EXTRA_ROUTES = """
app:stream("/slow", "routes/slow_auth.lua")
app:stream("/stuck", "routes/stuck.lua")
app:publish("/slowpub/:topic", "routes/slow_pub.lua")
app:stream("/filtered", "routes/sleep_in_filter.lua")
app:stream("/ws", "routes/ws_slow.lua")
"""


def open_connections(samples):
    return sum(v for (name, _), v in samples.items() if name == "freshet_connections")


def run():
    app = ft.pubsub_app(SETTINGS, EXTRA_ROUTES, ROUTES)
    with ft.Server(app) as srv:
        with ft.subtest("auth, topics and tier wait; the stream opens on the topic they chose"):
            started = time.monotonic()
            s = srv.stream("/slow?user=ann&ms=300")
            took = time.monotonic() - started
            ft.check(took >= 0.3, f"the stream opened after {took:.3f}s, before auth's sleep ended")
            ft.publish(srv.port, "/pub/t-ann", "hello")
            ev = s.next_event()
            ft.check_eq(ev.data, "hello", "event on the topic the waiting hooks chose")
            s.close()

        with ft.subtest("a refusal after waiting is answered as the script says"):
            resp = srv.get("/slow?deny=1&ms=50", headers={"Accept": "text/event-stream"})
            resp.check_error(403, "refused after waiting")
            ft.check("denied after waiting" in resp.text, "the script's message", resp.text)

        with ft.subtest("while auth waits, the worker answers others"):
            result = {}

            def slow():
                result["resp"] = srv.get("/slow?ms=800&deny=1",
                                         headers={"Accept": "text/event-stream"})
            th = threading.Thread(target=slow)
            th.start()
            time.sleep(0.1)
            started = time.monotonic()
            for _ in range(20):
                ft.check_eq(srv.get("/health").status, 200, "health while a hook waits")
            took = time.monotonic() - started
            ft.check(took < 0.6, f"20 health checks took {took:.3f}s while a hook slept 800 ms")
            th.join(5)
            ft.check_eq(result["resp"].status, 403, "the slow request got its answer")

        with ft.subtest("a hook past timeouts.hook: 504 and a log line with file:line"):
            mark = srv.log_size()
            started = time.monotonic()
            resp = srv.get("/stuck?refusal=status", headers={"Accept": "text/event-stream"},
                           timeout=10)
            took = time.monotonic() - started
            resp.check_error(504, "auth past its limit")
            ft.check(0.9 <= took < 3, f"answered after {took:.2f}s with timeouts.hook = 1")
            srv.wait_log(r"stuck\.lua:4 .*timeouts\.hook", start=mark)
            # Asked as a browser's EventSource asks: in the stream, so that it comes back.
            resp = srv.get("/stuck", headers={"Accept": "text/event-stream"}, timeout=10)
            resp.check_refused("hook_timeout", 504, "auth past its limit, as an EventSource")

        with ft.subtest("a client that leaves while auth waits: the wait is cancelled"):
            before = srv.metrics()
            errors_before = ft.metric(before, "freshet_lua_errors_total")
            conns = [ft.Conn(srv.port) for _ in range(20)]
            for c in conns:
                c.send(ft.build_request("GET", "/stuck", {"Accept": "text/event-stream"},
                                        None, srv.port))
            time.sleep(0.2)
            for c in conns:
                c.close()
            time.sleep(1.5)
            after = srv.metrics()
            # /metrics counts the connection that asks.
            ft.check_eq(open_connections(after), open_connections(before),
                        "connections left after the clients went")
            ft.check_eq(ft.metric(after, "freshet_lua_errors_total"), errors_before,
                        "no hook ran on to its limit for clients that left")

        with ft.subtest("publish: auth and publish wait, the event carries what they chose"):
            s = srv.stream("/sub/news")
            resp = ft.publish_raw(srv.port, "/slowpub/news", "flash")
            ft.check_eq(resp.status, 201, f"publish after waiting hooks ({resp.text})")
            ev = s.next_event()
            ft.check_eq(ev.data, "flash by publisher", "the waiting publish hook's event")
            s.close()

        with ft.subtest("pipelined publishes through waiting hooks are answered in order"):
            s = srv.stream("/sub/seq")
            with ft.Conn(srv.port, timeout=10) as c:
                c.send(b"".join(ft.build_request("POST", "/slowpub/seq", None, f"m{i}", srv.port)
                                for i in range(5)))
                for i in range(5):
                    resp = c.read_response("POST")
                    ft.check_eq(resp.status, 201, f"pipelined publish {i}")
            got = [e.data for e in s.take(5)]
            ft.check_eq(got, [f"m{i} by publisher" for i in range(5)], "events in request order")
            s.close()

        with ft.subtest("WebSocket: replies keep the order of messages whose hooks wait"):
            with ft.ws_connect(srv.port, "/ws") as ws:
                # The first waits longest; the replies still come back 1, 2, 3.
                for n, ms in ((1, 300), (2, 10), (3, 100)):
                    ws.send_json({"type": "work", "n": n, "ms": ms})
                got = [ws.next_control("echo")["n"] for _ in range(3)]
                ft.check_eq(got, [1, 2, 3], "replies in message order")

        with ft.subtest("WebSocket: events flow while a message hook waits"):
            with ft.ws_connect(srv.port, "/ws") as ws:
                ws.send_json({"type": "work", "n": 9, "ms": 600})
                time.sleep(0.05)
                ft.publish(srv.port, "/pub/w0", "during")
                started = time.monotonic()
                ev = ws.events(1)[0]
                ft.check_eq(ev["data"], "during", "the event delivered while the hook waits")
                ft.check(time.monotonic() - started < 0.5, "the event waited for the hook")
                ft.check_eq(ws.next_control("echo")["n"], 9, "the reply after the wait")

        with ft.subtest("WebSocket: subscribe through a topics hook that waits"):
            with ft.ws_connect(srv.port, "/ws") as ws:
                ws.send_json({"type": "subscribe", "topics": ["w1", "w2"]})
                ws.send_json({"type": "work", "n": 5, "ms": 1})
                sub = ws.next_control("subscribed")
                ft.check_eq(sub["topics"], ["w1", "w2"], "the new topics")
                ft.check_eq(ws.next_control("echo")["n"], 5, "the message sent behind it")
                ft.publish(srv.port, "/pub/w2", "on w2")
                ft.check_eq(ws.events(1)[0]["data"], "on w2", "an event on a new topic")

        with ft.subtest("a waiting function in filter is an error naming the place"):
            mark = srv.log_size()
            s = srv.stream("/filtered")
            ft.publish(srv.port, "/pub/f", "x")
            srv.wait_log(r"sleep_in_filter\.lua:5 .*cannot wait here", start=mark)
            s.close()


if __name__ == "__main__":
    ft.main(run)
