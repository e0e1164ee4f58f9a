"""Hostile events: event names, topics and ids that clients or scripts supply can never add a
line to an SSE stream (an `id:`, `event:` or `retry:` of their own) nor break the JSON of a
WebSocket envelope; data with CR, LF and NUL arrives as the same text, framed safely, over SSE,
long-poll and WebSocket.

Each stream's raw bytes are checked as a client reads them: only freshet's own fields, no CR
anywhere (freshet ends lines with LF; a CR could only come from a value), and the parsed event
equal to what was published."""

import json
import re
import time
from urllib.parse import quote

import frtest as ft

ROUTES = """
app:stream("/ws/:topics", "routes/sub.lua")
app:publish("/json/:topic", "routes/json.lua")
app:publish("/q/:topic", "routes/query.lua")
app:publish("/scripted/:topic", "routes/scripted.lua")
"""

FILES = {
    # Whatever a JSON body says becomes the event: the server must refuse what cannot be framed.
    "routes/json.lua": """
        local route = { body = "json" }
        function route.publish(req, body)
          return { topic = body.topic or req.params.topic, event = body.event,
                   data = body.data or "", priority = body.priority }
        end
        return route
    """,
    # The event name from a query parameter, percent-decoded by the server.
    "routes/query.lua": """
        local route = {}
        function route.publish(req, body)
          return { topic = req.params.topic, event = req.query.event, data = body }
        end
        return route
    """,
    # A script that publishes with freshet.publish and reports what happened.
    "routes/scripted.lua": """
        local freshet = require "freshet"
        local route = { body = "json" }
        function route.publish(req, body)
          local ok, err = pcall(freshet.publish, req.params.topic, body.data or "",
                                { event = body.event })
          if ok then return nil, 409, "published from the script" end
          return nil, 422, tostring(err)
        end
        return route
    """,
}

# Every line a stream from freshet may hold.
LINE_OK = re.compile(rb"^(id: (?:[0-9-]+|v1[A-Za-z0-9_-]+)|event: [^\r\n]*|data: [^\r\n]*|retry: [0-9]+|:[^\r\n]*|)$")

NASTY = [
    "plain",
    "two\nlines",
    "crlf\r\nline",
    "bare\rcr",
    "trailing newline\n",
    "\nleading newline",
    "x\nid: 999999999999999-0\nevent: admin\nretry: 1\ndata: forged",
    "nul\x00inside",
    "quote \" backslash \\ tab \t bell \x07 esc \x1b",
    "unicode caf\u00e9 \U0001F600 line-sep \u2028 para-sep \u2029 bom \ufeff",
    "\r\n\r\n",
    ": comment-looking",
    "data: data-looking",
    "",
]


def expected_lines(data):
    """What an EventSource reads back: CR, LF and CRLF each end a line; lines joined by LF."""
    return "\n".join(re.split(r"\r\n|\r|\n", data))


def check_stream_bytes(raw, what):
    ft.check(b"\r" not in raw, f"{what}: a CR in the event stream", raw[:600])
    for line in raw.split(b"\n"):
        ft.check(LINE_OK.match(line), f"{what}: a line that is not one of freshet's fields",
                 {"line": line, "stream": raw[:600]})


def run():
    app = ft.pubsub_app("heartbeat = 30,", ROUTES, FILES)
    with ft.Server(app) as srv:
        port = srv.port

        with ft.subtest("data with CR, LF, NUL and field-looking text: same text, safe framing"):
            sse = ft.StreamReader(srv.stream("/sub/nasty"))
            ws = ft.ws_connect(port, "/ws/nasty")
            ids = [ft.publish(port, "/pub/nasty", d) for d in NASTY]
            events = sse.wait_events(len(NASTY), timeout=5)
            check_stream_bytes(sse.stream.raw, "SSE")
            for d, i, e in zip(NASTY, ids, events):
                ft.check_eq((e.type, e.data, e.id), ("message", expected_lines(d), i),
                            f"SSE event for {d!r}")
            ft.check_eq(sse.stream.parser.last_event_id, ids[-1],
                        "Last-Event-ID after the forged id line")
            got = ws.events(len(NASTY), timeout=5)
            for d, i, env in zip(NASTY, ids, got):
                ft.check_eq((env.get("topic"), env.get("id"), env.get("data")), ("nasty", i, d),
                            f"WebSocket envelope for {d!r}")
            for f in ws.frames:
                if f.opcode == ft.WS_TEXT:
                    f.payload.decode("utf-8")
                    json.loads(f.payload)
            ws.close()
            sse.stop()

        with ft.subtest("the same over long-poll and on a stream of two topics"):
            base = ft.publish(port, "/pub/pa", "start")
            base_b = ft.publish(port, "/pub/pb", "start")
            ids = [ft.publish(port, "/pub/pa", d) for d in NASTY]
            resp = srv.get(ft.poll_path("/sub/pa", base))
            ft.check_eq(resp.status, 200, "long-poll status")
            check_stream_bytes(resp.body, "long-poll")
            got = ft.parse_sse(resp.body)
            ft.check_eq([(e.data, e.id) for e in got], [(expected_lines(d), i)
                                                       for d, i in zip(NASTY, ids)],
                        "long-poll events")
            multi = ft.StreamReader(srv.stream("/sub/pa,pb", last_event_id=f"{base},{base_b}"))
            events = multi.wait_events(len(NASTY), timeout=5)
            check_stream_bytes(multi.stream.raw, "two-topic stream")
            ft.check_eq([e.data for e in events], [expected_lines(d) for d in NASTY],
                        "two-topic stream data")
            multi.stop()

        with ft.subtest("an event name with CR or LF is refused (400) and nothing is published"):
            before = srv.health()["published"]
            for name in ("a\nb", "a\rb", "x\nid: 5-0", "x\r\ndata: forged"):
                resp = srv.post("/q/names?event=" + quote(name, safe=""), "d")
                msg = resp.check_error(400, f"event name {name!r} from the query")
                ft.check("event name" in msg, "the 400 does not say what is wrong", msg)
                resp = srv.post("/json/names", json.dumps({"event": name, "data": "d"}))
                resp.check_error(400, f"event name {name!r} from JSON")
            resp = srv.post("/scripted/names", json.dumps({"event": "a\nb", "data": "d"}))
            msg = resp.check_error(422, "freshet.publish from a script with a bad name")
            ft.check("event name" in msg, "the script was not told why", msg)
            ft.check_eq(srv.health()["published"], before, "events published by refused names")

        with ft.subtest("a priority with CR/LF is refused; an X-Event folded over lines is one line"):
            resp = srv.post("/json/prio", json.dumps({"data": "d", "priority": "critical\r\n"}))
            resp.check_error(400, "priority with CRLF")
            sse = ft.StreamReader(srv.stream("/sub/fold"))
            raw, _ = _exchange(port, b"POST /pub/fold HTTP/1.1\r\nHost: x\r\nX-Event: a\r\n b\r\n"
                                     b"Content-Length: 1\r\nConnection: close\r\n\r\nx")
            ft.check(raw.startswith(b"HTTP/1.1 201 ") or raw.startswith(b"HTTP/1.1 400 "),
                     "an obs-fold header gets 201 (unfolded) or 400", raw[:200])
            if raw.startswith(b"HTTP/1.1 201 "):
                e = sse.wait_events(1)[0]
                ft.check("\n" not in e.type and "\r" not in e.type, "a folded name kept a newline",
                         e.type)
            check_stream_bytes(sse.stream.raw, "stream after a folded header")
            sse.stop()

        with ft.subtest("a topic with CR/LF from the path: publish 400, stream refused"):
            for enc in ("a%0Ab", "a%0Db", "a%0D%0Aevent:%20x"):
                resp = srv.post(f"/pub/{enc}", "d")
                msg = resp.check_error(400, f"POST /pub/{enc}")
                ft.check("topic" in msg, "the 400 does not say the topic is the problem", msg)
                s = ft.SSEStream(port, f"/sub/{enc}")
                # The route's topics hook passes the parameter through; the server refuses the
                # topic it returns as the client's mistake (docs/RELIABILITY.md, finding F6).
                ft.check_eq(s.status, 400, f"GET /sub/{enc} status")
                err = s.response.json().get("error", "")
                ft.check("\n" not in err and "\r" not in err and "event:" not in err,
                         f"GET /sub/{enc}: the error must not echo the topic", err)
                s.close()
                ws = ft.WSClient(port, f"/ws/{enc}")
                ft.check_eq(ws.status, 400, f"WebSocket on /ws/{enc}: status")
                ws.close()
            ft.check_eq(srv.health()["streams"], 0, "streams open after refused topics")
            resp = srv.get("/sub/a%00b")
            resp.check_error(400, "GET /sub/a%00b")

        with ft.subtest("a topic or event name with NUL from JSON is refused, not cut short"):
            # Lua strings may hold NUL; the C side must not read "room\0evil" as "room".
            watch = ft.StreamReader(srv.stream("/sub/room"))
            before = srv.health()["published"]
            r1 = srv.post("/json/x", json.dumps({"topic": "room\u0000evil", "data": "nul topic"}))
            r2 = srv.post("/json/room", json.dumps({"event": "ok\u0000evil", "data": "nul name"}))
            time.sleep(0.3)
            seen = [(e.type, e.data) for e in watch.events()]
            watch.stop()
            ft.check(not seen, "events reached topic 'room' through names cut at the NUL "
                               f"(answers {r1.status} and {r2.status})", seen)
            r1.check_error(400, "topic with NUL")
            r2.check_error(400, "event name with NUL")
            ft.check_eq(srv.health()["published"], before, "events published with NUL in names")

        with ft.subtest("ids from clients are never echoed into the stream"):
            bad = ["1-0\nevent: x", "1-0\r\ndata: y", "abc", "1-0,\n2-0"]
            for value in bad:
                q = ft.SSEStream(port, "/sub/echo?lastEventId=" + quote(value, safe=""))
                ft.check_eq(q.status, 400, f"lastEventId={value!r}")
                ft.check("\n" not in q.response.json()["error"].replace("\\n", ""),
                         "the error echoes a newline", q.response.text)
                q.close()
            with ft.WSClient(port, "/ws/echo") as ws:
                ft.check_eq(ws.status, 101, "WebSocket upgrade")
                ws.send_json({"type": "resume", "id": "1-0\nevent: x"})
                m = ws.next_control("error")
                ft.check("\n" not in m["error"], "the error echoes the id", m)

        with ft.subtest("the server still serves after all of the above"):
            s = ft.StreamReader(srv.stream("/sub/last"))
            i = ft.publish(port, "/pub/last", "ok")
            ft.check_eq([(e.id, e.data) for e in s.wait_events(1)], [(i, "ok")], "last event")
            s.stop()


def _exchange(port, data, timeout=3):
    import socket
    sock = socket.create_connection((ft.HOST, port), timeout=timeout)
    try:
        sock.sendall(data)
        out = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except (socket.timeout, ConnectionResetError):
                break
            if not chunk:
                break
            out += chunk
        return out, True
    finally:
        sock.close()


ft.main(run, limit=90)
