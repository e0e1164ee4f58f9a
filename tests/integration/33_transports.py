"""One stream route, three transports: SSE, WebSocket and long-polling clients on the same
topic see the same events, with the same ids and data, in the same order; each resumes from an
id (Last-Event-ID, ?lastEventId on the upgrade, lastEventId on a poll), composite ids of
multi-topic streams included, and each gets the same 416 / 400 / reset answers.

Also: subscribe/unsubscribe on a live WebSocket, a `message` hook that publishes (chat) reaching
an SSE subscriber, long-poll 204 after poll_timeout with keep-alive reuse, a poll answer capped
at the tier's queue, the server's ping and its timeout, and a WebSocket that stops reading
closed with 1013 then resuming without a gap."""

import json
import threading
import time

import frtest as ft

REPLAY = 50  # replay.events: small, so that eviction (416) is quick to reach

APP = """
    heartbeat = 60,
    retry = 1000,
    poll_timeout = 1,
    replay = { events = 50, seconds = 300 },
    tiers = { tiny = { queue = 4 } },
"""

ROUTES = """
    app:publish("/pubjson/:topic", "routes/pubjson.lua")
    app:stream("/gap/:topics", "routes/gap.lua")
    app:publish("/pubpair/:first/:second", "routes/pubpair.lua")
    app:publish("/pubmany/:topic", "routes/pubmany.lua")
"""

# Topics from the path; over WebSocket, subscribe/unsubscribe add or remove topics (kept ones
# first, in their order); ?tier= picks a tier; the message hook publishes chat lines.
SUB = """
    local freshet = require "freshet"
    local route = {}
    function route.auth(req)
      return { name = req.query.user or "anon" }
    end
    function route.topics(req, who, change)
      if change then
        local drop, list, seen = {}, {}, {}
        if change.op == "unsubscribe" then
          for _, t in ipairs(change.topics) do drop[t] = true end
        end
        for _, t in ipairs(change.current) do
          if not drop[t] then list[#list + 1] = t; seen[t] = true end
        end
        if change.op == "subscribe" then
          for _, t in ipairs(change.topics) do
            if not seen[t] then list[#list + 1] = t; seen[t] = true end
          end
        end
        return list
      end
      local list = {}
      for name in req.params.topics:gmatch("[^,]+") do list[#list + 1] = name end
      return list
    end
    function route.tier(req, who)
      return req.query.tier
    end
    function route.message(conn, msg, who)
      if msg.type == "say" then
        local id = freshet.publish("room:" .. msg.room, { user = who.name, text = msg.text },
                                   { event = "chat" })
        return { type = "said", id = id }
      end
      return { type = "unknown" }
    end
    return route
"""

GAP = """
    local route = { on_gap = "reset" }
    function route.topics(req, who)
      local list = {}
      for name in req.params.topics:gmatch("[^,]+") do list[#list + 1] = name end
      return list
    end
    return route
"""

PUBJSON = """
    local route = { body = "json" }
    function route.publish(req, body, who)
      return { topic = req.params.topic, data = body, event = req.headers["x-event"] }
    end
    return route
"""

# Publishes the body to two topics in one request (the same millisecond), data "<body> <topic>".
PUBPAIR = """
    local route = {}
    function route.publish(req, body, who)
      return { { topic = req.params.first, data = body .. " " .. req.params.first },
               { topic = req.params.second, data = body .. " " .. req.params.second } }
    end
    return route
"""

# 200 events from one request: they reach a waiting long-poll together.
PUBMANY = """
    local route = {}
    function route.publish(req, body, who)
      local list = {}
      for i = 1, 200 do list[i] = { topic = req.params.topic, data = body .. i } end
      return list
    end
    return route
"""

# A stream that is over its queue is closed (so it resumes from replay instead of skipping).
SLOW = """
    local route = { on_slow = "disconnect" }
    function route.topics(req, who) return { req.params.topic } end
    function route.tier(req, who) return "tiny" end
    return route
"""


# ---- helpers --------------------------------------------------------------------------------


def sse_view(events):
    """(id, event name, data) of SSE events."""
    return [(e.id, e.type, e.data) for e in events]


def ws_view(envelopes, topic=None):
    """The same view of WebSocket envelopes: data published as JSON comes as JSON, which an
    SSE client sees as its text, so it is compared in its decoded form."""
    out = []
    for m in envelopes:
        ft.check_eq(m.get("v"), 1, "envelope version")
        if topic is not None:
            ft.check(m.get("topic") in topic, f"envelope topic is one of {topic}", m)
        data = m["data"]
        out.append((m["id"], m.get("event", "message"),
                    data if isinstance(data, str) else ("json", data)))
    return out


def sse_as_ws(events, json_ids=()):
    """SSE (id, event, data) with the data of events published as JSON decoded."""
    return [(i, t, ("json", json.loads(d)) if i in json_ids else d)
            for i, t, d in sse_view(events)]


def poll_once(conn, path, last_id=None):
    return conn.request("GET", ft.poll_path(path, last_id))


def poll_events(conn, path, last_id, n, timeout=10):
    """Polls from last_id on one keep-alive connection, each poll from the last id received,
    until n events came back (a 204 just means: poll again); returns the events."""
    deadline = time.monotonic() + timeout
    got = []
    while len(got) < n:
        ft.check(time.monotonic() < deadline, f"{len(got)} of {n} events by long-polling "
                 f"{path} within {timeout}s", sse_view(got))
        resp = poll_once(conn, path, last_id)
        if resp.status == 204:
            continue
        ft.check_eq(resp.status, 200, f"long-poll {path} status ({resp.text[:300]})")
        ft.check_eq(resp.header("content-type"), "text/event-stream; charset=utf-8",
                    "Content-Type of a long-poll answer")
        ft.check_eq(resp.header("content-length"), str(len(resp.body)),
                    "Content-Length of a long-poll answer")
        events = ft.parse_sse(resp.body)
        ft.check(events, "a 200 long-poll answer without an event", resp.summary())
        got += events
        last_id = events[-1].id
    return got


# ---- the same events on every transport ---------------------------------------------------


def same_events(srv):
    port = srv.port
    with ft.subtest("SSE, WebSocket and long-poll clients get the same events, ids and data"):
        start = srv.publish("/pub/same", "before the clients")
        sse = ft.open_stream(port, "/sub/same")
        ws = ft.ws_connect(port, "/sub/same")
        srv.wait_streams(2)
        plan = [
            ("/pub/same", "hello", {}),
            ("/pub/same", "named", {"X-Event": "greeting"}),
            ("/pub/same", "line 1\nline 2\nline 3", {}),
            ("/pub/same", "κόσμε 𝄞 \u00e9", {}),
            ("/pub/same", '{"looks":"like json","but":"is a string"}', {}),
            ("/pubjson/same", json.dumps({"k": "v", "n": [1, 2, 3], "u": "µ"}), {}),
            ("/pubjson/same", json.dumps({"nested": {"a": None, "b": True}}),
             {"X-Event": "state"}),
            ("/pub/same", 'quotes " and \\ backslashes\tand a tab', {}),
        ]
        ids, json_ids = [], set()
        for path, body, headers in plan:
            ids.append(srv.publish(path, body, headers=headers))
            if path.startswith("/pubjson"):
                json_ids.add(ids[-1])
        sse_got = sse.take(len(plan))
        ws_got = ws.events(len(plan))
        with ft.Conn(port) as c:
            poll_got = poll_events(c, "/sub/same", start, len(plan))
        ft.check_eq([e.id for e in sse_got], ids, "SSE ids are the publish answers' ids")
        ft.check_eq(sse_view(poll_got), sse_view(sse_got),
                    "long-poll events (id, event, data) vs SSE")
        ft.check_eq(ws_view(ws_got, topic=("same",)), sse_as_ws(sse_got, json_ids),
                    "WebSocket envelopes (id, event, data) vs SSE")
        for m, i in zip(ws_got, ids):
            if i in json_ids:
                ft.check(isinstance(m["data"], dict), "data published as JSON reaches a "
                         "WebSocket as JSON, not as a string", m)
        sse.close()
        ws.close()

    with ft.subtest("same events on a multi-topic stream: composite ids agree on all three"):
        a0 = srv.publish("/pub/mx", "mx start")
        b0 = srv.publish("/pub/my", "my start")
        start = f"{a0},{b0}"
        sse = ft.open_stream(port, "/sub/mx,my")
        ws = ft.ws_connect(port, "/sub/mx,my")
        srv.wait_streams(2)
        for i in range(8):
            # A few milliseconds apart: events of different topics never share an id, so id
            # order (what a replay follows) is publish order.
            time.sleep(0.003)
            srv.publish("/pub/mx" if i % 3 else "/pub/my", f"multi {i}")
        sse_got = sse.take(8)
        ws_got = ws.events(8)
        with ft.Conn(port) as c:
            poll_got = poll_events(c, "/sub/mx,my", start, 8)
        for e in sse_got:
            ft.check(e.id.startswith("v1") and len(ft.parse_ids(e.id)) == 2,
                     "a composite id has one position per topic", e.id)
        ft.check_eq(sse_view(poll_got), sse_view(sse_got), "long-poll vs SSE (composite ids)")
        ft.check_eq(ws_view(ws_got, topic=("mx", "my")), sse_view(sse_got),
                    "WebSocket vs SSE (composite ids)")
        ft.check_eq([m["topic"] for m in ws_got],
                    ["my" if i % 3 == 0 else "mx" for i in range(8)],
                    "each envelope names the topic its event was published to")
        sse.close()
        ws.close()

    with ft.subtest("multi-topic events published in the same millisecond: every transport "
                    "gets each once, per-topic order kept, composite ids exact"):
        a0 = srv.publish("/pub/sx", "sx start")
        b0 = srv.publish("/pub/sy", "sy start")
        sse = ft.open_stream(port, "/sub/sx,sy")
        ws = ft.ws_connect(port, "/sub/sx,sy")
        srv.wait_streams(2)
        # One request publishes to sy then sx: same millisecond, so often the same id on both.
        own = {}
        for i in range(3):
            resp = ft.request(port, "POST", "/pubpair/sy/sx", body=f"pair {i}")
            ft.check_eq(resp.status, 201, f"pair publish ({resp.text})")
            ids = resp.json()["ids"]
            own[f"pair {i} sy"], own[f"pair {i} sx"] = ids
        sse_got = sse.take(6)
        ws_got = ws.events(6)
        with ft.Conn(port) as c:
            poll_got = poll_events(c, "/sub/sx,sy", f"{a0},{b0}", 6)
        seqs = {"live SSE": sse_view(sse_got), "live WebSocket": ws_view(ws_got),
                "long-poll": sse_view(poll_got)}
        for name, seq in seqs.items():
            check_composite(name, seq, ("sx", "sy"), (a0, b0), own)
        ft.check_eq(seqs["live WebSocket"], seqs["live SSE"], "live WebSocket vs live SSE")
        sse.close()
        ws.close()


def check_composite(name, seq, topics, start, own):
    """seq: (composite id, event, data) where data is '<text> <topic>'. Each event comes once;
    per topic, events keep their publish order; each composite id holds the event's own id at
    its topic's place and, elsewhere, the last id of that topic seen so far in seq."""
    pos = list(start)
    datas = [d for _, _, d in seq]
    ft.check_eq(sorted(datas), sorted(own), f"{name}: every event exactly once")
    for t in topics:
        mine = [d for d in datas if d.endswith(" " + t)]
        ft.check_eq(mine, sorted(mine), f"{name}: events of topic {t} in publish order")
    for cid, _, d in seq:
        t = d.rsplit(" ", 1)[1]
        pos[topics.index(t)] = own[d]
        ft.check_eq(cid, ft.format_ids([ft.parse_id(p) for p in pos]),
                    f"{name}: composite id of {d!r}")


# ---- resume ---------------------------------------------------------------------------------


def resume(srv):
    port = srv.port
    with ft.subtest("resume after an id: SSE Last-Event-ID, WebSocket ?lastEventId, "
                    "long-poll lastEventId"):
        ids = [srv.publish("/pub/res", f"r{i}") for i in range(6)]
        want = [(ids[i], "message", f"r{i}") for i in range(3, 6)]
        with ft.open_stream(port, "/sub/res", last_event_id=ids[2]) as s:
            ft.check_eq(sse_view(s.take(3)), want, "SSE replay after Last-Event-ID")
        with ft.open_stream(port, f"/sub/res?lastEventId={ids[2]}") as s:
            ft.check_eq(sse_view(s.take(3)), want, "SSE replay after ?lastEventId")
        ws = ft.ws_connect(port, f"/sub/res?lastEventId={ids[2]}")
        ft.check_eq(ws_view(ws.events(3)), want, "WebSocket replay after ?lastEventId")
        live = srv.publish("/pub/res", "live")
        ft.check_eq(ws_view(ws.events(1)), [(live, "message", "live")],
                    "the live event after the WebSocket replay")
        ws.expect_no_message(0.2)
        ws.close()
        with ft.Conn(port) as c:
            got = poll_events(c, "/sub/res", ids[2], 4)
            ft.check_eq(sse_view(got), want + [(live, "message", "live")],
                        "long-poll events after lastEventId")
            resp = c.request("GET", "/sub/res?transport=poll",
                             headers={"Last-Event-ID": ids[4]})
            ft.check_eq(resp.status, 200, "long-poll with a Last-Event-ID header")
            ft.check_eq(sse_view(ft.parse_sse(resp.body)),
                        [(ids[5], "message", "r5"), (live, "message", "live")],
                        "long-poll events after the Last-Event-ID header")

    with ft.subtest("resume with a composite id of a multi-topic stream, on all three"):
        for i in range(3):
            srv.publish("/pub/ra", f"a{i}")
            srv.publish("/pub/rb", f"b{i}")
        with ft.open_stream(port, "/sub/ra,rb") as s:
            for i in range(6):
                # Milliseconds apart, so that a replay (in id order) keeps the live order.
                time.sleep(0.003)
                srv.publish(f"/pub/r{'ab'[i % 2]}", f"m{i}")
            got = s.take(6)
        ft.check_eq([e.data for e in got], [f"m{i}" for i in range(6)], "live events")
        mid = got[2].id
        want = sse_view(got[3:])
        with ft.open_stream(port, "/sub/ra,rb", last_event_id=mid) as s:
            ft.check_eq(sse_view(s.take(3)), want, "SSE resume from a composite id")
        ws = ft.ws_connect(port, "/sub/ra,rb?lastEventId=" + mid)
        ft.check_eq(ws_view(ws.events(3)), want, "WebSocket resume from a composite id")
        ws.expect_no_message(0.2)
        ws.close()
        with ft.Conn(port) as c:
            ft.check_eq(sse_view(poll_events(c, "/sub/ra,rb", mid, 3)), want,
                        "long-poll resume from a composite id")

    with ft.subtest("WebSocket {type: resume} on an open connection replays after the id"):
        ids = [srv.publish("/pub/rr", f"x{i}") for i in range(4)]
        ws = ft.ws_connect(port, "/sub/rr")
        ws.send_json({"type": "resume", "id": ids[1]})
        ft.check_eq(ws_view(ws.events(2)), [(ids[2], "message", "x2"), (ids[3], "message", "x3")],
                    "events replayed after a resume message")
        ws.send_json({"type": "resume", "id": "not-an-id"})
        err = ws.next_json()
        ft.check_eq(err.get("type"), "error", "reply to a resume with a malformed id")
        ws.close()


def resume_errors(srv):
    port = srv.port
    first = srv.publish("/pub/evict", "first")
    for i in range(REPLAY + 5):
        srv.publish("/pub/evict", f"e{i}")
    future = f"{int(time.time() * 1000) + 86400000}-0"
    cases = [
        ("/sub/evict", first, 416, "an id whose next events were evicted"),
        ("/sub/evict", "garbage", 400, "a malformed id"),
        ("/sub/evict", future, 400, "an id ahead of the topic"),
        ("/sub/evict,other", first, 400, "one id for a two-topic stream"),
    ]
    for path, last, status, what in cases:
        with ft.subtest(f"{status} for {what} on SSE, WebSocket and long-poll"):
            s = ft.SSEStream(port, path, last_event_id=last)
            s.close()
            s.response.check_error(status, f"SSE with Last-Event-ID {last!r}")
            from urllib.parse import quote
            ws = ft.WSClient(port, f"{path}?lastEventId={quote(last, safe='')}")
            ws.close()
            ft.check(ws.status != 101, "a WebSocket resume that cannot be served must not be "
                     "upgraded", ws.response.summary())
            ws.response.check_error(status, f"WebSocket upgrade with ?lastEventId={last!r}")
            resp = ft.request(port, "GET", ft.poll_path(path, last))
            resp.check_error(status, f"long-poll with lastEventId={last!r}")

    with ft.subtest("on_gap = reset: SSE, WebSocket and long-poll get a reset, then live "
                    "events"):
        now = srv.publish("/pub/evict", "latest")
        with ft.open_stream(port, "/gap/evict", last_event_id=first) as s:
            e = s.next_event()
            ft.check_eq((e.type, e.id), ("reset", now),
                        "SSE: a reset event whose id is the topic's current position")
            ws = ft.ws_connect(port, f"/gap/evict?lastEventId={first}")
            m = ws.next_json()
            ft.check_eq((m.get("v"), m.get("type"), m.get("id")), (1, "reset", now),
                        "WebSocket: the reset control message with the current position")
            with ft.Conn(port) as c:
                resp = poll_once(c, "/gap/evict", first)
                ft.check_eq(resp.status, 200, "long-poll status with a stale id and reset")
                got = ft.parse_sse(resp.body)
                ft.check_eq([(e.type, e.id) for e in got], [("reset", now)],
                            "long-poll: the reset event")
            live = srv.publish("/pub/evict", "after the reset")
            ft.check_eq((s.next_event().id, ws.events(1)[0]["id"]), (live, live),
                        "the live event after the reset on SSE and WebSocket")
            ws.close()


# ---- subscribe / unsubscribe, chat through the message hook --------------------------------


def live_topics(srv):
    port = srv.port
    with ft.subtest("subscribe / unsubscribe on a live WebSocket change what it gets"):
        ws = ft.ws_connect(port, "/sub/ta")
        srv.publish("/pub/tb", "b before subscribing")
        srv.publish("/pub/ta", "a1")
        ft.check_eq([m["data"] for m in ws.events(1)], ["a1"], "only topic ta before subscribe")
        ws.send_json({"type": "subscribe", "topics": ["tb"]})
        ft.check_eq(ws.next_json(), {"v": 1, "type": "subscribed", "topics": ["ta", "tb"]},
                    "the reply to subscribe")
        b1 = srv.publish("/pub/tb", "b1")
        a2 = srv.publish("/pub/ta", "a2")
        got = ws.events(2)
        ft.check_eq([(m["topic"], m["data"]) for m in got], [("tb", "b1"), ("ta", "a2")],
                    "both topics after subscribe")
        ft.check_eq(ft.ids_text(got[1]["id"]), [a2, b1],
                    "a stream that follows two topics sends composite ids (ta, then tb)")
        # The composite id means the same on a new SSE stream.
        b2 = srv.publish("/pub/tb", "b2")
        ws.events(1)
        with ft.open_stream(port, "/sub/ta,tb", last_event_id=got[1]["id"]) as s:
            e = s.next_event()
            ft.check_eq((ft.ids_text(e.id), e.data), ([a2, b2], "b2"),
                        "an SSE stream resumed from the WebSocket's composite id")
        ws.send_json({"type": "unsubscribe", "topics": ["ta"]})
        ft.check_eq(ws.next_json(), {"v": 1, "type": "subscribed", "topics": ["tb"]},
                    "the reply to unsubscribe")
        srv.publish("/pub/ta", "a3 after unsubscribing")
        b3 = srv.publish("/pub/tb", "b3")
        got = ws.events(1)
        ft.check_eq((got[0]["topic"], got[0]["id"], got[0]["data"]), ("tb", b3, "b3"),
                    "only tb after unsubscribing ta (a plain id again)")
        ws.expect_no_message(0.2)
        ws.send_json({"type": "unsubscribe", "topics": ["tb"]})
        m = ws.next_json()
        ft.check_eq(m.get("type"), "error", "unsubscribing from the last topic is refused")
        ws.send_json({"type": "subscribe", "topics": ["bad\ntopic"]})
        m = ws.next_json()
        ft.check_eq(m.get("type"), "error", "subscribing to an invalid topic is refused")
        ws.send_json({"type": "subscribe", "topics": "tc"})
        m = ws.next_json()
        ft.check_eq(m.get("type"), "error", "subscribe without a list is refused")
        b4 = srv.publish("/pub/tb", "b4")
        ft.check_eq(ws.events(1)[0]["id"], b4, "the stream still follows tb after the errors")
        ws.close()

    with ft.subtest("a message hook that calls freshet.publish reaches an SSE subscriber"):
        sse = ft.open_stream(port, "/sub/room:lobby")
        ws = ft.ws_connect(port, "/sub/room:lobby?user=ann")
        ws.send_json({"type": "say", "room": "lobby", "text": "hello, room"})
        got = [ws.next_json(), ws.next_json()]
        said = [m for m in got if m.get("type") == "said"]
        env = [m for m in got if "type" not in m]
        ft.check(len(said) == 1 and len(env) == 1,
                 "the sender gets the hook's reply and its own message as an event", got)
        eid = said[0]["id"]
        ft.parse_id(eid)
        ft.check_eq((env[0]["id"], env[0]["event"], env[0]["data"]),
                    (eid, "chat", {"user": "ann", "text": "hello, room"}),
                    "the envelope of the published message")
        e = sse.next_event()
        ft.check_eq((e.id, e.type, json.loads(e.data)),
                    (eid, "chat", {"user": "ann", "text": "hello, room"}),
                    "the SSE subscriber's event")
        ws.send_json({"type": "whatever"})
        ft.check_eq(ws.next_json(), {"type": "unknown"}, "the hook's reply to another message")
        sse.close()
        ws.close()


# ---- long-poll specifics ------------------------------------------------------------------


def long_poll(srv):
    port = srv.port
    with ft.subtest("long-poll: 204 after poll_timeout (1 s), the connection kept for the "
                    "next poll, which gets the next event as it is published"):
        with ft.Conn(port, timeout=10) as c:
            for n in range(2):
                t0 = time.monotonic()
                resp = poll_once(c, "/sub/quiet")
                took = time.monotonic() - t0
                ft.check_eq(resp.status, 204, f"poll {n + 1} on a quiet topic")
                ft.check_eq(resp.body, b"", "a 204 has no body")
                ft.check(0.8 <= took <= 3.0, "the 204 comes after poll_timeout = 1 s", took)
                ft.check((resp.header("connection") or "").lower() != "close",
                         "a 204 keeps the connection alive", resp.summary())
            result = {}

            def held():
                t = time.monotonic()
                result["resp"] = poll_once(c, "/sub/quiet")
                result["t"] = time.monotonic() - t
            th = threading.Thread(target=held, daemon=True)
            th.start()
            time.sleep(0.3)
            eid = srv.publish("/pub/quiet", "finally")
            th.join(5)
            resp = result.get("resp")
            ft.check(resp is not None, "the held poll did not answer")
            ft.check_eq(resp.status, 200, "a held poll answers when an event arrives")
            ft.check(result["t"] < 0.9, "the held poll answered as soon as the event arrived "
                     "(not at the timeout)", result["t"])
            ft.check_eq(sse_view(ft.parse_sse(resp.body)), [(eid, "message", "finally")],
                        "the held poll's event")
            ft.check_eq(resp.header("cache-control"), "no-cache", "Cache-Control of a poll")
            ft.check((resp.header("connection") or "").lower() == "keep-alive",
                     "a poll answer keeps the connection alive", resp.summary())
            # Same socket again, from that event: nothing new yet, so 204.
            resp = poll_once(c, "/sub/quiet", eid)
            ft.check_eq(resp.status, 204, "the next poll on the same connection")

    with ft.subtest("long-poll: a poll pipelined behind another on one connection is "
                    "answered too, in order"):
        # HTTP/1.1 lets a client send its next request before the previous answer arrives; a
        # client that polls again the moment it has read an answer is the same case whenever
        # its request reaches the server before the server has finished with the answer.
        ids = [srv.publish("/pub/piped", f"p{i}") for i in range(3)]
        with ft.Conn(port, timeout=4) as c:
            c.send(ft.build_request("GET", ft.poll_path("/sub/piped", ids[0]), None, None, port)
                   + ft.build_request("GET", ft.poll_path("/sub/piped", ids[1]), None, None,
                                      port))
            first = c.read_response()
            ft.check_eq((first.status, [e.id for e in ft.parse_sse(first.body)]),
                        (200, ids[1:]), "the first pipelined poll")
            try:
                second = c.read_response()
            except ft.Failure as exc:
                ft.fail("the second pipelined poll was never answered (not even with 204 "
                        "after poll_timeout)", str(exc))
            ft.check_eq((second.status, [e.id for e in ft.parse_sse(second.body)]),
                        (200, ids[2:]), "the second pipelined poll")

    with ft.subtest("long-poll: one answer holds at most the tier's queue (4) of events"):
        start = srv.publish("/pub/many", "start")
        ids = [srv.publish("/pub/many", f"m{i}") for i in range(10)]
        with ft.Conn(port) as c:
            sizes, got, last = [], [], start
            while len(got) < 10:
                resp = poll_once(c, "/sub/many?tier=tiny", last)
                ft.check_eq(resp.status, 200, "poll status")
                events = ft.parse_sse(resp.body)
                sizes.append(len(events))
                got += events
                last = events[-1].id
                ft.check(len(sizes) < 10, "too many polls", sizes)
        ft.check(all(1 <= n <= 4 for n in sizes), "each answer holds 1 to 4 events "
                 "(queue = 4)", sizes)
        ft.check_eq([e.id for e in got], ids, "every event once, in order, over three polls")

    with ft.subtest("long-poll: 200 events that arrive together come in one answer"):
        with ft.Conn(port, timeout=10) as c:
            c.send(ft.build_request("GET", ft.poll_path("/sub/bulk"), None, None, port))
            time.sleep(0.3)  # the poll waits
            resp = ft.publish_raw(port, "/pubmany/bulk", "b")
            ft.check_eq(resp.status, 201, f"publish of 200 ({resp.text[:200]})")
            answer = c.read_response()
            ft.check_eq(answer.status, 200, "the poll's answer")
            ft.check_eq([e.data for e in ft.parse_sse(answer.body)],
                        [f"b{i}" for i in range(1, 201)], "all 200, in order, in one answer")


# ---- the server's pings ---------------------------------------------------------------------


def ping_timeout():
    appdir = ft.pubsub_app("heartbeat = 1,\nretry = 1000,")
    with ft.Server(appdir) as srv:
        with ft.subtest("heartbeat = 1: the server pings idle WebSockets; one that never "
                        "answers is closed with 1001, one that answers stays"):
            mute = ft.ws_connect(srv.port, "/sub/hb", timeout=10)
            good = ft.ws_connect(srv.port, "/sub/hb", timeout=10)
            opened = time.monotonic()
            # The good client answers every ping on a thread of its own meanwhile.
            stop, errors = threading.Event(), []

            def answer():
                try:
                    while not stop.is_set():
                        good.expect_no_message(0.1)
                except BaseException as exc:  # reported below
                    errors.append(str(exc))
            th = threading.Thread(target=answer, daemon=True)
            th.start()
            try:
                f = mute.recv_frame(timeout=3)
                ft.check(f is not None and f.opcode == ft.WS_PING,
                         "the first frame on an idle WebSocket is the server's ping",
                         f and f.describe())
                ft.check(time.monotonic() - opened < 2.5, "the ping comes within a heartbeat",
                         time.monotonic() - opened)
                closing = mute.expect_close(1001, timeout=4)
                took = time.monotonic() - opened
                ft.check(1.0 <= took <= 4.5, "closed about one heartbeat after the unanswered "
                         "ping", took)
                ft.check(closing.close_reason, "the 1001 close says why", closing.payload)
                time.sleep(max(0.0, 4.0 - (time.monotonic() - opened)))
            finally:
                stop.set()
                th.join(5)
                mute.close()
            try:
                ft.check(not errors, "the answering client was closed or got something else",
                         errors)
                pings = sum(1 for fr in good.frames if fr.opcode == ft.WS_PING)
                ft.check(pings >= 2, "the answering client was pinged on each heartbeat "
                         "(4 s at heartbeat = 1)", pings)
                eid = srv.publish("/pub/hb", "still here")
                ft.check_eq(good.events(1)[0]["id"], eid,
                            "the answering client still gets events")
            finally:
                good.close()

        with ft.subtest("heartbeat = 1: a WebSocket that got an event and then never answers "
                        "the ping is closed with 1001"):
            # The 101 is written in the loop iteration that subscribes the stream: once it is
            # read, a publish reaches the stream.
            mute = ft.ws_connect(srv.port, "/sub/hb2", timeout=10)
            eid = srv.publish("/pub/hb2", "one")
            f = mute.recv_frame(timeout=3)
            ft.check(f is not None and f.opcode == ft.WS_TEXT and eid in f.text,
                     "the event", f and f.describe())
            t0 = time.monotonic()
            f = mute.recv_frame(timeout=3)
            ft.check(f is not None and f.opcode == ft.WS_PING, "then the server's ping",
                     f and f.describe())
            ft.check(time.monotonic() - t0 < 2.5, "the ping comes within a heartbeat",
                     time.monotonic() - t0)
            mute.expect_close(1001, timeout=4)
            took = time.monotonic() - t0
            ft.check(took <= 3.5, "closed about one heartbeat after the unanswered ping", took)
            mute.close()


# ---- a WebSocket that stops reading ----------------------------------------------------------


def slow_websocket():
    appdir = ft.pubsub_app(
        "heartbeat = 60,\nreplay = { events = 100000, seconds = 600 },\n"
        "tiers = { tiny = { queue = 4 } },",
        routes='app:stream("/slow/:topic", "routes/slow.lua")\n',
        files={"routes/slow.lua": SLOW})
    with ft.Server(appdir) as srv:
        with ft.subtest("a WebSocket that stops reading is closed with 1013 and resumes from "
                        "its last id with no gap"):
            sock = ft.small_rcvbuf_socket(srv.port, rcvbuf=4096)
            ws = ft.WSClient(srv.port, "/slow/lag", sock=sock, timeout=20)
            ft.check(ws.status == 101, "upgrade status", ws.response.summary())
            srv.wait_streams(1)
            ids = ft.fill_until_stalled(srv, "/pub/lag", size=16384)
            tail = [srv.publish("/pub/lag", f"tail {i}") for i in range(20)]
            ids += tail
            # Now read everything: the events that made it out, then the close.
            seen = []
            while True:
                f = ws.recv_frame(timeout=20)
                ft.check(f is not None, "the connection ended without a close frame",
                         len(seen))
                if f.opcode == ft.WS_CLOSE:
                    break
                if f.opcode == ft.WS_TEXT:
                    m = json.loads(f.payload)
                    if "type" not in m:
                        seen.append(m["id"])
            ft.check_eq(f.close_code, 1013, f"close code for a lagging client "
                        f"(reason {f.close_reason!r})")
            ft.check(f.close_reason, "the 1013 close tells the client to resume", f.payload)
            ws.wait_tcp_close()
            ws.close()
            ft.check(seen and len(seen) < len(ids), "some events were delivered before the "
                     "close and some were not", (len(seen), len(ids)))
            ft.check_eq(seen, ids[:len(seen)], "the delivered events are a prefix, in order")
            back = ft.ws_connect(srv.port, f"/slow/lag?lastEventId={seen[-1]}", timeout=10)
            rest = []
            while len(rest) < len(ids) - len(seen):
                rest.append(back.events(1, timeout=10)[0]["id"])
            ft.check_eq(seen + rest, ids, "after resuming: every event once, in order")
            back.close()


def run():
    ft.require_file(ft.BIN, "freshet binary")
    appdir = ft.pubsub_app(APP, routes=ROUTES, files={
        "routes/sub.lua": SUB, "routes/gap.lua": GAP, "routes/pubjson.lua": PUBJSON,
        "routes/pubpair.lua": PUBPAIR, "routes/pubmany.lua": PUBMANY})
    with ft.Server(appdir) as srv:
        same_events(srv)
        resume(srv)
        resume_errors(srv)
        live_topics(srv)
        long_poll(srv)
    ping_timeout()
    slow_websocket()


ft.main(run, limit=110)
