"""Auth cannot be talked around: a stream whose `auth` rejects is never subscribed and never
replayed (the connection, stream, replay and topic counts do not move), and its error names no
topic and carries no event; a topic the `topics` hook refuses cannot be added over WebSocket;
and a Last-Event-ID (or WebSocket resume id) taken from topic A cannot read topic B: 400, never
A's events."""

import json
import time

import frtest as ft

ROUTES = """
app:stream("/private/:topic", "routes/private.lua")
"""

# Alice may read "alice-*" topics; "Bearer boom" makes auth fail with a Lua error.
PRIVATE = """
    local route = {}
    function route.auth(req)
      local h = req.headers["authorization"] or ""
      if h == "Bearer boom" then error("auth exploded") end
      if h == "Bearer alice" then return { id = "alice" } end
      if req.headers["x-echo"] then return nil, 401, "bad token: " .. req.headers["x-echo"] end
      return nil, 401, "not allowed"
    end
    local function allowed(who, t) return t:sub(1, #who.id + 1) == who.id .. "-" end
    function route.topics(req, who, change)
      local want = change and change.topics or { req.params.topic }
      local out = {}
      for _, t in ipairs(want) do
        if type(t) == "string" and allowed(who, t) then out[#out + 1] = t end
      end
      if #out == 0 then out[1] = who.id .. "-inbox" end
      return out
    end
    return route
"""

SECRET = "bob-payroll"
SECRET_DATA = "salary of bob: 1,000,000"


def counters(srv):
    m = srv.metrics()
    h = srv.health()
    return {
        "streams_open": h["streams"],
        "topics": h["topics"],
        "streams_started": ft.metric(m, "freshet_streams_started_total"),
        "replayed": ft.metric(m, "freshet_events_replayed_total"),
        "resumes": sum(v for (name, _), v in m.items() if name == "freshet_resumes_total"),
    }


def check_no_leak(resp, what):
    text = resp.body.decode("utf-8", "replace")
    for secret in (SECRET, "payroll", SECRET_DATA, "salary"):
        ft.check(secret not in text, f"{what}: the answer mentions {secret!r}", text[:400])
    ft.check(b"data:" not in resp.body and b"id:" not in resp.body,
             f"{what}: the answer carries an event", text[:400])


def spaced_publish(port, path, data):
    """Publishes with a pause first, so ids of different topics never share a millisecond (ids
    are per topic: two topics may issue the same <ms>-<seq> in one millisecond)."""
    time.sleep(0.003)
    return ft.publish(port, path, data)


def run():
    app = ft.pubsub_app("heartbeat = 30,", ROUTES, {"routes/private.lua": PRIVATE})
    with ft.Server(app) as srv:
        port = srv.port
        first = spaced_publish(port, f"/pub/{SECRET}", SECRET_DATA)
        spaced_publish(port, f"/pub/{SECRET}", SECRET_DATA + " (2)")

        with ft.subtest("rejected auth: 401, no stream, no subscription, no replay, no leak"):
            before = counters(srv)
            attempts = {
                "SSE": ft.SSEStream(port, f"/private/{SECRET}"),
                "SSE with Last-Event-ID": ft.SSEStream(port, f"/private/{SECRET}",
                                                      last_event_id=first),
                "SSE, wrong token": ft.SSEStream(port, f"/private/{SECRET}",
                                                 headers={"Authorization": "Bearer mallory"}),
                "long-poll": ft.SSEStream(port, ft.poll_path(f"/private/{SECRET}", first)),
            }
            for what, s in attempts.items():
                msg = s.response.check_error(401, what)
                ft.check_eq(msg, "not allowed", f"{what}: error message")
                check_no_leak(s.response, what)
                s.close()
            ws = ft.WSClient(port, f"/private/{SECRET}")
            ft.check_eq(ws.status, 401, "WebSocket upgrade status")
            check_no_leak(ws.response, "WebSocket")
            ws.close()
            time.sleep(0.1)
            after = counters(srv)
            ft.check_eq(after, before, "stream, topic, replay and resume counts after rejections")

        with ft.subtest("an auth message built from client bytes is still a UTF-8 JSON body"):
            # Header values may hold bytes 0x80-0xFF (obs-text); a message that quotes them must
            # not make the error body invalid JSON (finding F7).
            raw = (b"GET /private/alice-x HTTP/1.1\r\nHost: x\r\nX-Echo: caf\xe9 \xb2\xff\r\n"
                   b"Connection: close\r\n\r\n")
            with ft.Conn(port) as c:
                c.send(raw)
                resp = c.read_response()
            ft.check_eq(resp.status, 401, "status")
            try:
                body = json.loads(resp.body.decode("utf-8"))
            except (UnicodeDecodeError, ValueError) as exc:
                ft.fail(f"the 401 body is not UTF-8 JSON ({exc})", resp.body)
            ft.check(body["error"].startswith("bad token: "), "the message", body)

        with ft.subtest("auth that raises: 500 'internal error', no stream, no leak"):
            before = counters(srv)
            s = ft.SSEStream(port, f"/private/{SECRET}", last_event_id=first,
                             headers={"Authorization": "Bearer boom"})
            ft.check_eq(s.response.check_error(500, "auth error"), "internal error", "message")
            check_no_leak(s.response, "auth error")
            s.close()
            srv.wait_log(r"lua error in .*private\.lua:\d+ \(auth\).*auth exploded")
            ft.check_eq(counters(srv), before, "counts after an auth error")

        with ft.subtest("allowed auth, forbidden topic: the hook's own topic, never the secret"):
            s = ft.StreamReader(srv.stream(f"/private/{SECRET}",
                                           headers={"Authorization": "Bearer alice"}))
            spaced_publish(port, f"/pub/{SECRET}", SECRET_DATA + " (3)")
            mine = spaced_publish(port, "/pub/alice-inbox", "for alice")
            ev = s.wait_events(1)
            ft.check_eq([(e.id, e.data) for e in ev], [(mine, "for alice")], "alice's events")
            s.stop()

        with ft.subtest("WebSocket: subscribing to a forbidden topic adds nothing"):
            ws = ft.ws_connect(port, "/private/alice-news", headers={"Authorization": "Bearer alice"})
            ws.send_json({"type": "subscribe", "topics": [SECRET, "alice-news"]})
            m = ws.next_control("subscribed")
            ft.check_eq(m["topics"], ["alice-news"], "topics after subscribing to a secret one")
            spaced_publish(port, f"/pub/{SECRET}", SECRET_DATA + " (4)")
            news = spaced_publish(port, "/pub/alice-news", "news")
            got = ws.events(1)
            ft.check_eq([(e["topic"], e["data"]) for e in got], [("alice-news", "news")],
                        "events over the WebSocket")
            ft.check_eq(got[0]["id"], news, "id of the allowed event")
            ws.close()

        with ft.subtest("Last-Event-ID of topic A on topic B's stream: 400, never A's events"):
            # Both topics exist before their events interleave, so A's ids fall inside B's
            # history: the check must know they were never B's.
            a_ids, b_ids = [], []
            for i in range(6):
                a_ids.append(spaced_publish(port, "/pub/topic-a", f"A secret {i}"))
                b_ids.append(spaced_publish(port, "/pub/topic-b", f"B {i}"))
            a_newer = spaced_publish(port, "/pub/topic-a", "A newest")
            ft.check(not set(a_ids + [a_newer]) & set(b_ids), "ids of A and B collided",
                     (a_ids, b_ids))
            before = counters(srv)
            cases = {"an older id of A": a_ids[1], "an id of A inside B's history": a_ids[4],
                     "an id of A newer than B's last": a_newer}
            for what, lid in cases.items():
                s = ft.SSEStream(port, "/sub/topic-b", last_event_id=lid)
                ft.check_eq(s.status, 400, f"{what}: status ({s.response.text[:200]})")
                ft.check(b"A secret" not in s.response.body and b"A newest" not in s.response.body,
                         f"{what}: A's events in the answer", s.response.body[:300])
                s.close()
                poll = srv.get(ft.poll_path("/sub/topic-b", lid))
                ft.check_eq(poll.status, 400, f"{what} on a long-poll: status")
            # A stream of both topics given the two ids swapped.
            s = ft.SSEStream(port, "/sub/topic-a,topic-b", last_event_id=f"{b_ids[2]},{a_ids[2]}")
            ft.check_eq(s.status, 400, "composite id with the topics swapped: status")
            s.close()
            after = counters(srv)
            ft.check_eq(after["replayed"], before["replayed"], "events replayed for foreign ids")
            ft.check_eq(after["streams_open"], 0, "streams open after refused resumes")

        with ft.subtest("WebSocket resume with another topic's id: an error, no events"):
            ws = ft.ws_connect(port, "/sub/topic-b")
            ws.send_json({"type": "resume", "id": a_ids[3]})
            m = ws.next_control("error")
            ft.check("never issued" in m["error"], "the error does not say why", m)
            ft.check(not ws.skipped, "events arrived before the error", ws.skipped)
            ws.expect_no_message(0.3)
            ws.close()

        with ft.subtest("the right id on the right topic still resumes exactly"):
            s = ft.StreamReader(srv.stream("/sub/topic-b", last_event_id=b_ids[3]))
            got = s.wait_events(2)
            ft.check_eq([e.id for e in got], b_ids[4:6], "replayed ids")
            s.stop()


ft.main(run, limit=60)
