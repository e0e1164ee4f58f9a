"""The page-load gap, closed: a page renders its state with freshet.position(topic) (through an
app:http route) and subscribes from that id; every stream's first frame is an `id:` with the
current position and no data; every long-poll answer carries Last-Event-ID. Checked on the
memory broker and on Redis:

- events published between the render and the subscribe arrive, once;
- a client that drops before its first event resumes with the first frame's id and gets
  exactly what was published meanwhile (no loss, no duplicate), on one topic and on several;
- a long-poll's empty answer (204) says where to resume, and resuming from it loses nothing;
- freshet.position with a bad topic (not a string, a NUL in it, an empty one) is the script's
  error: 500, a log line with the script's file:line and what was wrong, the worker serving on."""

import os
import time

import frtest as ft

STATE = """
    local freshet = require "freshet"
    local route = {}
    function route.handle(req, body, who)
      local pos, err = freshet.position(req.params.topic)
      if not pos then return 503, { error = err } end
      return 200, { position = pos }
    end
    return route
"""

BAD_POSITION = """
    local freshet = require "freshet"
    local route = {}
    local bad = { number = 42, nul = "a\\0b", empty = "" }
    function route.handle(req, body, who)
      return 200, { position = freshet.position(bad[req.params.kind]) }
    end
    return route
"""

SETTINGS = """
    broker = os.getenv("FRESHET_BROKER") or "memory",
    poll_timeout = 1,
"""


def first_frame_id(s):
    while b"\n\n" not in s.raw:
        ft.check(s.pump(5), "no first frame", s.raw)
    first = s.raw[:s.raw.index(b"\n\n") + 2]
    ft.check(first.startswith(b"retry: ") and b"\nid: " in first, "the first frame", first)
    ft.check(not s.events(), "the first frame dispatched an event", s.raw)
    return s.parser.last_event_id


def cases(srv, tag):
    port = srv.port

    with ft.subtest(f"{tag}: render at position P, publish, subscribe from P: nothing lost"):
        topic = f"{tag}-page"
        srv.publish(f"/pub/{topic}", "old")
        pos = srv.get(f"/state/{topic}").json()["position"]
        gap = [srv.publish(f"/pub/{topic}", f"gap{i}") for i in range(3)]
        with ft.open_stream(port, f"/sub/{topic}?lastEventId={pos}") as s:
            later = srv.publish(f"/pub/{topic}", "later")
            got = s.take(4)
            ft.check_eq([e.id for e in got], gap + [later], "events after the render, once")
        empty = srv.get(f"/state/{tag}-never-used").json()["position"]
        first = srv.publish(f"/pub/{tag}-never-used", "first")
        with ft.open_stream(port, f"/sub/{tag}-never-used", last_event_id=empty) as s:
            ft.check_eq(s.next_event().id, first, "a topic nobody used: its first event")

    with ft.subtest(f"{tag}: a client that drops before its first event resumes exactly"):
        for path in (f"/sub/{tag}-drop", f"/sub/{tag}-d1,{tag}-d2"):
            topics = path.rsplit("/", 1)[1].split(",")
            srv.publish(f"/pub/{topics[0]}", "before")
            s = ft.open_stream(port, path)
            pos = first_frame_id(s)
            s.close()
            sent = [srv.publish(f"/pub/{t}", f"{t}-{i}") for i in range(2) for t in topics]
            with ft.open_stream(port, path, last_event_id=pos) as again:
                got = again.take(len(sent))
                ft.check_eq(sorted(e.data for e in got),
                            sorted(f"{t}-{i}" for i in range(2) for t in topics),
                            f"{path}: what was published after the drop")
                ft.check(not again.pump(0.3) or len(again.events()) == len(sent),
                         f"{path}: a duplicate after the resume", again.raw)

    with ft.subtest(f"{tag}: a long-poll's empty answer says where to resume"):
        topic = f"{tag}-poll"
        srv.publish(f"/pub/{topic}", "before")
        r = srv.get(ft.poll_path(f"/sub/{topic}"), timeout=5)
        ft.check_eq(r.status, 204, "nothing new: 204")
        pos = r.header("last-event-id")
        ft.check(pos, "the 204 has no Last-Event-ID", r.summary())
        eid = srv.publish(f"/pub/{topic}", "after")
        r = srv.get(ft.poll_path(f"/sub/{topic}", pos), timeout=5)
        ft.check_eq(r.status, 200, "the next poll")
        ft.check(b"id: " + eid.encode() + b"\n" in r.body and b"before" not in r.body,
                 "the poll from the 204's id holds exactly the new event", r.body)
        ft.check_eq(r.header("last-event-id"), eid, "the 200's Last-Event-ID")


def bad_arguments(srv):
    with ft.subtest("freshet.position with a bad topic: 500, the error logged with file:line"):
        for kind, why in (("number", "bad argument #1 'topic' (string expected, got number)"),
                          ("nul", "bad argument #1 'topic' (a topic holds no NUL)"),
                          ("empty", "bad argument #1 'topic' (")):
            r = srv.get(f"/badpos/{kind}", timeout=5)
            ft.check_eq(r.status, 500, f"{kind}: status")
            deadline = time.monotonic() + 5
            while f"freshet.position: {why}" not in srv.log_tail() and time.monotonic() < deadline:
                time.sleep(0.05)
            ft.check(f"freshet.position: {why}" in srv.log_tail(),
                     f"{kind}: a log line with freshet.position: {why}", srv.log_tail())
            ft.check("badpos.lua:" in srv.log_tail(), f"{kind}: the log names badpos.lua:<line>",
                     srv.log_tail())
        ft.check_eq(srv.get("/health", timeout=5).status, 200, "the worker still serves")


def run():
    app = ft.pubsub_app(settings=SETTINGS,
                        routes='app:http("GET", "/state/:topic", "routes/state.lua")\n'
                               'app:http("GET", "/badpos/:kind", "routes/badpos.lua")\n',
                        files={"routes/state.lua": STATE, "routes/badpos.lua": BAD_POSITION})
    with ft.Server(app) as srv:
        cases(srv, "memory")
        bad_arguments(srv)
    redis = ft.RedisServer().start()
    try:
        srv = ft.redis_node(redis, app)
        try:
            cases(srv, "redis")
        finally:
            srv.stop()
    finally:
        redis.stop()


ft.main(run, limit=90)
