"""Ids of streams that follow several topics are short: the v1 form (src/codec/ids.h, one base
and a small delta per topic in base64url digits), on the memory broker and on Redis.

- 64 topics: every event's id, the first frame's id and a long-poll's Last-Event-ID are the v1
  form of exactly the stream's positions, and its size is measured against the comma-joined
  ids streams sent before (at most a quarter here);
- the v1 id resumes exactly (no loss, no duplicate) as a Last-Event-ID header, as ?lastEventId=
  written raw (nothing to escape), on a WebSocket and on a long-poll;
- the comma-joined form of the same positions (what clients kept from before) resumes the same;
- one topic: ids stay <ms>-<seq>, the publish answer's id;
- garbage, a v1 id for another number of topics or not as the server writes it: 400 with a
  message that says what is wrong, and on an open WebSocket an error message."""

import re
import time
from urllib.parse import quote

import frtest as ft

TOPICS = 64
V1_RE = re.compile(r"^v1[A-Za-z0-9_-]+$")

SETTINGS = """
    broker = os.getenv("FRESHET_BROKER") or "memory",
    poll_timeout = 1,
    replay = { events = 1000, seconds = 300 },
"""

def first_frame_id(s):
    while b"\n\n" not in s.raw:
        ft.check(s.pump(5), "no first frame", s.raw)
    ft.check(not s.events(), "the first frame dispatched an event", s.raw)
    return s.parser.last_event_id


def check_v1(eid, want, what):
    """eid is the v1 id of exactly the positions in want (['<ms>-<seq>', ...])."""
    ft.check(V1_RE.match(eid), f"{what}: not a v1 id", eid)
    ft.check_eq(ft.ids_text(eid), want, f"{what}: the positions it holds")
    ft.check_eq(eid, ft.format_ids([ft.parse_id(p) for p in want]), f"{what}: its bytes")


def view(events):
    return [(e.id, e.data) for e in events]


def resume_everywhere(srv, path, last_id, in_query, want, after):
    """Resuming from last_id (in_query: as written in ?lastEventId=) gets exactly want, as a
    Last-Event-ID header and a query on SSE, on a WebSocket and on a long-poll, whose
    Last-Event-ID is then `after`."""
    port, n = srv.port, len(want)
    with ft.open_stream(port, path, last_event_id=last_id) as again:
        ft.check_eq(view(again.take(n)), want, "SSE, Last-Event-ID header")
        again.expect_no_event(0.2)
    with ft.open_stream(port, f"{path}?lastEventId={in_query}") as again:
        ft.check_eq(view(again.take(n)), want, "SSE, ?lastEventId=")
    ws = ft.ws_connect(port, f"{path}?lastEventId={in_query}")
    ft.check_eq([(m["id"], m["data"]) for m in ws.events(n)], want, "WebSocket ?lastEventId")
    ws.expect_no_message(0.2)
    ws.close()
    r = srv.get(ft.poll_path(path, last_id), timeout=5)
    ft.check_eq(r.status, 200, "the poll")
    ft.check_eq(view(ft.parse_sse(r.body)), want, "long-poll")
    ft.check_eq(r.header("last-event-id"), after, "the poll's Last-Event-ID")


def cases(srv, tag, memory):
    port = srv.port
    topics = [f"{tag}{i}" for i in range(TOPICS)]
    path = "/sub/" + ",".join(topics)
    # Some topics have a past, the others none: both kinds of position are in the ids.
    for t in topics[::4]:
        srv.publish(f"/pub/{t}", "past")

    with ft.subtest(f"{tag}: 64 topics: the first frame, every event and the long-poll header "
                    "carry the v1 id of the stream's positions"):
        s = ft.open_stream(port, path)
        start = first_frame_id(s)
        pos = ft.ids_text(start)
        ft.check_eq(len(pos), TOPICS, "positions in the first frame's id")
        check_v1(start, pos, "the first frame's id")
        sent = []
        for i, t in enumerate(topics):
            eid = srv.publish(f"/pub/{t}", f"e{i}")
            pos[i] = eid
            sent.append((list(pos), f"e{i}"))
        got = s.take(TOPICS, timeout=20)
        ft.check_eq([e.data for e in got], [d for _, d in sent], "every event, in order")
        for e, (want, d) in zip(got, sent):
            check_v1(e.id, want, f"the id of {d}")
        s.close()
        last = got[-1].id
        joined = ",".join(ft.ids_text(last))
        spread = max(ms for ms, _ in ft.parse_ids(last)) - min(ms for ms, _ in ft.parse_ids(last))
        print(f"{tag}: 64 topics, published over {spread} ms: id of {len(last)} bytes, "
              f"comma-joined {len(joined)}", flush=True)
        ft.check(len(last) * 4 <= len(joined), "the v1 id is not at most a quarter of the "
                 "comma-joined ids", (len(last), len(joined), last))
        r = srv.get(ft.poll_path(path, last), timeout=5)
        ft.check_eq(r.status, 204, "a poll with nothing new")
        ft.check_eq(r.header("last-event-id"), last, "the 204's Last-Event-ID")

    mid = got[TOPICS // 2 - 1].id
    want = view(got[TOPICS // 2:])
    with ft.subtest(f"{tag}: resuming from a v1 id: header, raw ?lastEventId, WebSocket, poll"):
        resume_everywhere(srv, path, mid, mid, want, last)

    with ft.subtest(f"{tag}: the comma-joined ids streams sent before resume the same"):
        old = ",".join(ft.ids_text(mid))
        resume_everywhere(srv, path, old, quote(old, safe=""), want, last)

    with ft.subtest(f"{tag}: one topic keeps <ms>-<seq>"):
        one = f"{tag}-one"
        with ft.open_stream(port, f"/sub/{one}") as s:
            ft.check(ft.ID_RE.match(first_frame_id(s)), "the first frame's id", s.raw)
            eid = srv.publish(f"/pub/{one}", "x")
            ft.check_eq(s.next_event().id, eid, "the event's id is its publish answer's")

    with ft.subtest(f"{tag}: malformed ids: 400 saying what is wrong"):
        three = f"/sub/{tag}-x,{tag}-y,{tag}-z"
        two = ft.format_ids([(1732176000000, 0), (1732176000000, 0)])
        cases = [
            (three, "v1!!", "a character other than A-Z a-z 0-9 - _"),
            (three, "v1of", "it ends inside a number"),
            (three, "v1ofAQ", "it ends inside a number"),
            (three, "v1oAAAA", "not written in its shortest form"),
            (three, "v1ofKAiBA", "counted from the farther end"),
            (three, "v1ofAA", "a v1 id holds two positions or more"),
            (three, "v9" + two[2:], "expected an id this server sent"),
            (three, two, "Last-Event-ID holds 2 positions but this stream follows 3 topics"),
            (three, "1-0,2-0", "Last-Event-ID holds 2 positions but this stream follows 3 topics"),
            (f"/sub/{tag}-x,{tag}-y", two + "AAA", "more positions than the stream has topics"),
        ]
        for p, bad, says in cases:
            s = ft.SSEStream(port, p, last_event_id=bad)
            s.close()
            err = s.response.check_error(400, f"Last-Event-ID {bad!r}")
            ft.check(says in err, f"Last-Event-ID {bad!r}: the message", err)
            q = ft.SSEStream(port, f"{p}?lastEventId={quote(bad, safe='')}")
            q.close()
            ft.check_eq(q.response.check_error(400, f"?lastEventId={bad!r}"), err,
                        f"?lastEventId={bad!r}: the same message")
        if memory:
            ws = ft.ws_connect(port, f"/sub/{tag}-x,{tag}-y")
            ws.send_json({"type": "resume", "id": "v1ofAA!"})
            m = ws.next_control("error")
            ft.check("id of an event of this stream" in m.get("error", ""), "resume error", m)
            ws.close()

    if memory:
        with ft.subtest(f"{tag}: a WebSocket resume message with the v1 id of its events"):
            pair = [f"{tag}-p", f"{tag}-q"]
            ws = ft.ws_connect(port, f"/sub/{','.join(pair)}")
            srv.wait_streams(1)
            sent = []
            for i in range(6):
                time.sleep(0.003)  # apart: replay (in id order) keeps publish order
                sent.append(srv.publish(f"/pub/{pair[i % 2]}", f"w{i}"))
            got_ws = ws.events(6)
            ft.check(V1_RE.match(got_ws[2]["id"]), "an envelope's id", got_ws[2])
            ws.send_json({"type": "resume", "id": got_ws[2]["id"]})
            ft.check_eq([m["data"] for m in ws.events(3)], ["w3", "w4", "w5"],
                        "replayed after the v1 id")
            ws.close()


def run():
    app = ft.pubsub_app(settings=SETTINGS)
    with ft.Server(app) as srv:
        cases(srv, "m", memory=True)
    redis = ft.RedisServer().start()
    try:
        srv = ft.redis_node(redis, app)
        try:
            cases(srv, "r", memory=False)
        finally:
            srv.stop()
    finally:
        redis.stop()


ft.main(run, limit=110)
