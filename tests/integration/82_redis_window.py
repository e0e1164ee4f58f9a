"""The replay window on the Redis broker once Streams are trimmed the cheap way: a publish is
XADD with MAXLEN ~ (Redis drops whole Stream nodes) and the time window is enforced by the
resume and by a periodic trim, yet resumes stay exact. Each Redis here runs with a small
Stream node size (stream-node-max-entries) so that approximate trimming happens after a few
events:

- the count window: every id at most replay.events behind replays exactly, older ones get 416
  (or a `reset` event), never-issued ones 400 — whichever entries Redis still holds;
- the time window: events older than replay.seconds are never replayed (416 for a client whose
  next event expired, exact for one whose next event is younger), before and after the node's
  periodic trim, which drops the expired nodes and keeps the newest expired entry;
- a stretch recorded as lost (freshet_mark, what a node calls when a new primary lacks events
  it delivered): a resume from before it gets 416, from its end exactly what followed, until
  the Stream is trimmed past it."""

import time

import frtest as ft

RESET_ROUTE = """
    local route = { on_gap = "reset" }
    function route.topics(req, who) return { req.params.topic } end
    return route
"""


def node(redis, events, seconds):
    app = ft.pubsub_app(
        settings=f'broker = "{redis.url}", replay = {{ events = {events}, seconds = {seconds} }},',
        routes='app:stream("/reset/:topic", "routes/reset.lua")\n',
        files={"routes/reset.lua": RESET_ROUTE})
    srv = ft.Server(app).start()
    ft.wait_health(srv)
    return srv


def resume_events(port, path, last_id, n):
    """Resumes after last_id; checks 200 and returns the n events that follow, then checks
    that nothing else was replayed."""
    with ft.SSEStream(port, path, last_event_id=last_id) as s:
        if s.status != 200:
            ft.fail(f"resume {path} after {last_id}: status {s.status}", s.response.summary())
        got = s.take(n) if n else []
        s.expect_no_event(0.15)
        return got


def resume_status(port, path, last_id):
    with ft.SSEStream(port, path, last_event_id=last_id) as s:
        return s.status


def xinfo(redis, key):
    flat = redis.command("XINFO", "STREAM", key)
    return dict(zip(flat[::2], flat[1::2]))


def count_window():
    redis = ft.RedisServer(extra_args=["--stream-node-max-entries", "3"]).start()
    srv = node(redis, events=5, seconds=300)
    port = srv.port
    ids = []
    for i in range(30):
        ids.append(srv.publish("/pub/cnt", f"c{i}"))
        time.sleep(0.002)  # one id per millisecond: (ms, 1) is never issued
    held = redis.stream_ids("cnt")

    with ft.subtest("MAXLEN ~: whole nodes trimmed, at least events + 1 entries kept"):
        info = xinfo(redis, "fr:{cnt}:s")
        ft.check_eq(info["entries-added"], 30, "XINFO entries-added")
        ft.check(6 <= len(held) <= 8 and held == ids[-len(held):],
                 "the Stream should hold the newest 6 to 8 events (nodes of 3, MAXLEN ~ 6)",
                 {"held": len(held), "first held": held[0] if held else None})
        ft.check_eq((30 - len(held)) % 3, 0, "entries trimmed are whole nodes of 3")
        ft.check_eq(set(redis.command("KEYS", "*")), {"fr:{cnt}:s"}, "keys in Redis")

    with ft.subtest("every id at most 5 events behind replays exactly; older ones get 416"):
        for k in range(30):
            if k >= 30 - 1 - 5:
                got = resume_events(port, "/sub/cnt", ids[k], 29 - k)
                ft.check_eq([(e.id, e.data) for e in got],
                            [(ids[i], f"c{i}") for i in range(k + 1, 30)],
                            f"replay after the id {k} of 30")
            else:
                ft.check_eq(resume_status(port, "/sub/cnt", ids[k]), 416,
                            f"resume after the id {k} of 30 (held from {ids.index(held[0])})")

    with ft.subtest('on_gap = "reset": 6 events behind starts with a reset, 5 replays'):
        with ft.open_stream(port, "/reset/cnt", last_event_id=ids[23]) as s:
            ft.check_eq(s.next_event().type, "reset", "first event after a stale id")
        got = resume_events(port, "/reset/cnt", ids[24], 5)
        ft.check_eq([e.type for e in got], ["message"] * 5, "events replayed on the reset route")

    with ft.subtest("never-issued ids: ahead -> 400, inside the held range -> 400"):
        last_ms = ft.parse_id(ids[-1])[0]
        for bad in (f"{last_ms + 5000}-0", f"{last_ms}-9"):
            ft.check_eq(resume_status(port, "/sub/cnt", bad), 400, f"resume after {bad} (ahead)")
        for k in (len(ids) - len(held), 27, 28):
            ms, _ = ft.parse_id(ids[k])
            ft.check_eq(resume_status(port, "/sub/cnt", f"{ms}-1"), 400,
                        f"resume after {ms}-1 (never issued, after held id {k})")

    with ft.subtest("a never-issued id older than the held entries -> 416 (nothing to tell it by)"):
        ms, _ = ft.parse_id(ids[0])
        ft.check_eq(resume_status(port, "/sub/cnt", f"{ms}-1"), 416, f"resume after {ms}-1")

    with ft.subtest("an external producer's publish trims like a node's (events argument)"):
        for i in range(20):
            redis.command("FCALL", "freshet_publish", "1", "fr:{ext}:s", f"e{i}", "", "normal",
                          "0", "2")
        n = redis.command("XLEN", "fr:{ext}:s")
        ft.check(3 <= n <= 5, "XLEN after 20 publishes with events = 2 (MAXLEN ~ 3, nodes of 3)", n)
    srv.stop()
    redis.stop()


def time_window():
    redis = ft.RedisServer(extra_args=["--stream-node-max-entries", "2"]).start()
    window = 4
    srv = node(redis, events=1000, seconds=window)
    port = srv.port
    follower = ft.open_stream(port, "/sub/tw")  # the node trims only topics it follows
    old = [srv.publish("/pub/tw", f"old{i}") for i in range(5)]
    lonely_old = [srv.publish("/pub/lonely", f"old{i}") for i in range(3)]
    time.sleep(window + 0.6)
    fresh = [srv.publish("/pub/tw", f"new{i}") for i in range(2)]
    published = time.monotonic()
    lonely_new = srv.publish("/pub/lonely", "new")

    with ft.subtest("expired events are not replayed, before any trim ran"):
        ft.check_eq(redis.stream_ids("lonely"), lonely_old + [lonely_new],
                    "fr:{lonely}:s (followed by no node, never trimmed by time)")
        for k in range(2):
            ft.check_eq(resume_status(port, "/sub/lonely", lonely_old[k]), 416,
                        f"resume after expired id {k} whose next event expired too")
        got = resume_events(port, "/sub/lonely", lonely_old[2], 1)
        ft.check_eq((got[0].id, got[0].data), (lonely_new, "new"),
                    "resume after the newest expired id replays what followed it")

    with ft.subtest("the periodic trim drops expired nodes and keeps the newest expired entry"):
        deadline = time.monotonic() + 5
        while redis.stream_ids("tw")[0] != old[4] and time.monotonic() < deadline:
            time.sleep(0.1)
        ft.check_eq(redis.stream_ids("tw"), old[4:] + fresh,
                    "fr:{tw}:s after the trim (nodes of 2: [o0 o1] [o2 o3] go)")

    with ft.subtest("after the trim: the newest expired id replays exactly, older ones get 416"):
        ft.check(time.monotonic() - published < window - 0.5,
                 "the machine was too slow: the fresh events are about to expire")
        got = resume_events(port, "/sub/tw", old[4], 2)
        ft.check_eq([(e.id, e.data) for e in got], [(fresh[0], "new0"), (fresh[1], "new1")],
                    "replay after the newest expired id")
        for k in range(4):
            ft.check_eq(resume_status(port, "/sub/tw", old[k]), 416, f"resume after old id {k}")
        with ft.open_stream(port, "/reset/tw", last_event_id=old[2]) as s:
            ft.check_eq(s.next_event().type, "reset", 'on_gap = "reset" after an expired id')
    follower.close()
    srv.stop()
    redis.stop()


def lost_stretch():
    redis = ft.RedisServer(extra_args=["--stream-node-max-entries", "3"]).start()
    srv = node(redis, events=5, seconds=300)
    port = srv.port
    ids = [srv.publish("/pub/lost", f"a{i}") for i in range(4)]
    # The node delivered events up to `end` that this Redis never got (a failover).
    end = f"{ft.parse_id(ids[-1])[0] + 3}-0"
    ft.check_eq(redis.command("FCALL", "freshet_mark", "1", "fr:{lost}:s", end), 1,
                "FCALL freshet_mark")
    info = xinfo(redis, "fr:{lost}:s")
    ft.check_eq((info["last-generated-id"], info["max-deleted-entry-id"]), (end, end),
                "XINFO after the mark")
    ft.check_eq(redis.stream_ids("lost"), ids, "entries stored before the mark are kept")

    with ft.subtest("freshet_mark: before the lost stretch -> 416 or reset, its end -> exact"):
        for k in range(4):
            ft.check_eq(resume_status(port, "/sub/lost", ids[k]), 416,
                        f"resume after id {k}, before the lost stretch")
        with ft.open_stream(port, "/reset/lost", last_event_id=ids[1]) as s:
            ft.check_eq(s.next_event().type, "reset", 'on_gap = "reset" before the lost stretch')
        ft.check_eq(resume_events(port, "/sub/lost", end, 0), [], "resume after its end")
        later = [srv.publish("/pub/lost", f"b{i}") for i in range(3)]
        ft.check(all(ft.parse_id(i) > ft.parse_id(end) for i in later),
                 "ids after the mark come after the lost stretch", later)
        got = resume_events(port, "/sub/lost", end, 3)
        ft.check_eq([(e.id, e.data) for e in got], [(later[i], f"b{i}") for i in range(3)],
                    "replay after the end of the lost stretch")
        for bad in ("0-0", "1-0"):
            ft.check_eq(redis.command("FCALL", "freshet_resume", "1", "fr:{lost}:s", bad, "5",
                                      "0")[0][0], "stale", f"freshet_resume after {bad}")

    with ft.subtest("freshet_mark: once trimmed past the stretch's end, its end -> 416"):
        for i in range(6):  # MAXLEN ~ 6 with nodes of 3: the nodes up to the mark go
            srv.publish("/pub/lost", f"c{i}")
        held = redis.stream_ids("lost")
        ft.check(ft.parse_id(held[0]) > ft.parse_id(end), "first entry after the end", held)
        ft.check_eq(resume_status(port, "/sub/lost", end), 416, "resume after the end")
    srv.stop()
    redis.stop()


def run():
    count_window()
    time_window()
    lost_stretch()


ft.main(run, limit=100)
