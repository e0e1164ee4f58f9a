"""Replay on reconnect: Last-Event-ID / lastEventId, no gap and no duplicate under load,
composite ids of multi-topic streams, eviction (416), bad ids (400), on_gap = "reset"."""

import threading
import time
import urllib.parse

import frtest as ft


def resume(port, path, last_id, via="header"):
    """Opens a stream resuming after last_id, through the header or the query parameter."""
    if via == "header":
        return ft.SSEStream(port, path, last_event_id=last_id)
    sep = "&" if "?" in path else "?"
    return ft.SSEStream(port, f"{path}{sep}lastEventId={urllib.parse.quote(last_id, safe='')}")


def resume_ok(port, path, last_id, via="header"):
    s = resume(port, path, last_id, via)
    if s.status != 200:
        s.close()
        ft.fail(f"resume {path} after {last_id} via {via}: status {s.status}", s.response.summary())
    s.wait_retry()
    return s


def expect_resume_error(port, path, last_id, status, what, via="header"):
    s = resume(port, path, last_id, via)
    s.close()
    s.response.check_error(status, f"{what} (resume {path} after {last_id!r} via {via})")


def basic_resume(srv):
    port = srv.port
    with ft.subtest("resume via Last-Event-ID header and lastEventId query"):
        ids = [srv.publish("/pub/basic", f"b{i}") for i in range(6)]
        datas = [f"b{i}" for i in range(6)]
        for via in ("header", "query"):
            with resume_ok(port, "/sub/basic", ids[2], via) as s:
                got = s.take(len(ids) - 3)
                ft.check_eq([(e.id, e.data) for e in got], list(zip(ids[3:], datas[3:])),
                            f"replayed events after {ids[2]} via {via}")
                s.expect_no_event(0.2)
                live = srv.publish("/pub/basic", f"live-{via}")
                e = s.next_event()
                ft.check_eq((e.id, e.data), (live, f"live-{via}"), "the live event after the replay")
            ids.append(live)
            datas.append(f"live-{via}")
        with resume_ok(port, "/sub/basic", ids[-1]) as s:
            s.expect_no_event(0.3)


def resume_under_publishing(srv):
    port = srv.port
    with ft.subtest("reconnects while a publisher keeps publishing: no gap, no duplicate"):
        total = 300
        published, errors = [], []
        stream = ft.open_stream(port, "/sub/flow")

        def publisher():
            try:
                for i in range(total):
                    published.append(ft.publish(port, "/pub/flow", f"n{i}"))
                    time.sleep(0.002)
            except BaseException as exc:  # reported by the main thread
                errors.append(repr(exc))

        worker = threading.Thread(target=publisher, daemon=True)
        worker.start()
        received = []
        try:
            for k, cut in enumerate((40, 110, 180, 250)):
                while len(received) < cut:
                    received.append(stream.next_event(timeout=5))
                # half the disconnects are a FIN, half a reset; publishes land in between
                if k % 2:
                    stream.reset()
                else:
                    stream.close()
                time.sleep(0.02)
                stream = resume_ok(port, "/sub/flow", received[-1].id,
                                   "header" if k % 2 == 0 else "query")
            worker.join(timeout=30)
            ft.check(not worker.is_alive(), "publisher did not finish within 30 s")
            ft.check(not errors, "publisher failed", errors)
            while len(received) < len(published):
                received.append(stream.next_event(timeout=5))
            stream.expect_no_event(0.3)
        finally:
            stream.close()
        got = [e.id for e in received]
        missing = [i for i in published if i not in set(got)]
        dups = sorted({i for i in got if got.count(i) > 1})
        ft.check(not missing and not dups,
                 f"{len(missing)} missing and {len(dups)} duplicate ids across 4 reconnects",
                 {"missing": missing[:20], "duplicates": dups[:20]})
        ft.check_eq(got, published, "ids received vs ids returned to the publisher, in order")
        ft.check_eq([e.data for e in received], [f"n{i}" for i in range(total)], "data in order")


def multi_topic(srv):
    port = srv.port
    a, b = "ma", "mb"
    path = f"/sub/{a},{b}"
    published = []  # (topic, id, data) in publish order

    def pub(topic, data):
        eid = srv.publish(f"/pub/{topic}", data)
        published.append((topic, eid, data))
        return eid

    def topic_of(event):
        return a if event.data.startswith("a") else b

    def check_positions(events, pos):
        """Each composite id is the current position of topic a, then of topic b."""
        by_data = {d: i for _, i, d in published}
        for e in events:
            pos[topic_of(e)] = by_data[e.data]
            parts = ft.ids_text(e.id)
            ft.check(len(parts) == 2, "composite id does not have one position per topic", e)
            mine = parts[0] if topic_of(e) == a else parts[1]
            ft.check_eq(mine, by_data[e.data], f"position of {topic_of(e)} in the id of {e.data}")
            if pos[a] and pos[b]:
                ft.check_eq(ft.ids_text(e.id), [pos[a], pos[b]], f"composite id of {e.data}")

    def expected_after(pos):
        return [(t, i, d) for t, i, d in published
                if ft.parse_id(i) > ft.parse_id(pos[t])]

    def check_replay(got, want, what):
        for topic in (a, b):
            ft.check_eq([e.data for e in got if topic_of(e) == topic],
                        [d for t, _, d in want if t == topic], f"{what}: events of {topic}")

    with ft.subtest("multi-topic stream: composite ids resume every topic exactly"):
        first = []
        with ft.open_stream(port, path) as s:
            for data in ("a1", "b1", "a2", "b2"):
                pub(a if data[0] == "a" else b, data)
            first = s.take(4)
            check_replay(first, published, "live events")
            check_positions(first, {a: None, b: None})
            last = first[-1]
        for topic, data in ((a, "a3"), (b, "b3"), (a, "a4")):
            pub(topic, data)

        pos = {}
        for e in first:
            pos[topic_of(e)] = next(i for _, i, d in published if d == e.data)
        with resume_ok(port, path, last.id) as s:
            want = expected_after(pos)
            got = s.take(len(want))
            check_replay(got, want, f"resume after {last.id}")
            check_positions(got, dict(pos))
            s.expect_no_event(0.2)
            live = pub(b, "b4")
            e = s.next_event()
            ft.check_eq(e.data, "b4", "live event after the replay")
            ft.check_eq(ft.ids_text(e.id)[1], live, "live event's composite id")

        # an earlier composite id (normally a1,b1): replays the rest of both topics
        issued = {i for _, i, _ in published}
        early = next(e for e in first if all(p in issued for p in ft.ids_text(e.id)))
        pos = dict(zip((a, b), ft.ids_text(early.id)))
        with resume_ok(port, path, early.id, via="query") as s:
            want = expected_after(pos)
            got = s.take(len(want))
            check_replay(got, want, f"resume after {early.id} via the query")
            check_positions(got, dict(pos))
            s.expect_no_event(0.2)


def bad_ids(srv):
    port = srv.port
    with ft.subtest("malformed ids -> 400"):
        srv.publish("/pub/mal", "x")
        for bad in ("abc", "123", "1-", "-1", "1-2-3", "1-x", "x-1", "1_2", "0x10-1"):
            expect_resume_error(port, "/sub/mal", bad, 400, "malformed id")
        expect_resume_error(port, "/sub/mal", "abc", 400, "malformed id", via="query")
        one = srv.publish("/pub/mal2", "y")
        for bad in (one, f"{one},{one},{one}", f"{one},", f",{one}"):
            expect_resume_error(port, "/sub/mal,mal2", bad, 400, "id count not matching 2 topics")

    with ft.subtest("ids ahead of the topic / never issued -> 400"):
        last = srv.publish("/pub/ahead", "x")
        ms, seq = ft.parse_id(last)
        for bad in (f"{ms + 60000}-0", f"{ms}-{seq + 5}", f"{ms + 3600000}-7"):
            expect_resume_error(port, "/sub/ahead", bad, 400, "id ahead of the topic")
        expect_resume_error(port, "/sub/ahead", f"{ms}-{seq + 5}", 400, "id ahead", via="query")
        with resume_ok(port, "/sub/ahead", last) as s:  # the latest id itself is fine
            s.expect_no_event(0.2)


def restart_case():
    with ft.subtest("an id from a previous server process -> 416"):
        with ft.Server(ft.BENCH_APP) as first:
            old = first.publish("/pub/rs", "before restart")
            first.publish("/pub/rs", "also before")
        with ft.Server(ft.BENCH_APP) as second:
            expect_resume_error(second.port, "/sub/rs", old, 416, "empty topic after restart")
            second.publish("/pub/rs", "after restart")
            expect_resume_error(second.port, "/sub/rs", old, 416, "topic with new events")


def ring_cases():
    app = ft.pubsub_app(
        settings="replay = { events = 3, seconds = 300 },",
        routes='app:stream("/reset/:topic", "routes/reset.lua")\n',
        files={"routes/reset.lua": """
            local route = { on_gap = "reset" }
            function route.topics(req, who) return { req.params.topic } end
            return route
        """})
    with ft.Server(app) as srv:
        port = srv.port
        ids = [srv.publish("/pub/ring", f"r{i}") for i in range(6)]

        with ft.subtest("replay.events = 3: evicted events -> 416"):
            expect_resume_error(port, "/sub/ring", ids[0], 416, "3 of 5 later events evicted")
            expect_resume_error(port, "/sub/ring", ids[1], 416, "1 of 4 later events evicted")
            expect_resume_error(port, "/sub/ring", ids[1], 416, "evicted", via="query")

        with ft.subtest("replay.events = 3: the last 3 are still replayed"):
            with resume_ok(port, "/sub/ring", ids[2]) as s:
                got = s.take(3)
                ft.check_eq([(e.id, e.data) for e in got], [(ids[i], f"r{i}") for i in (3, 4, 5)],
                            "events after the 3rd of 6 with a ring of 3")
                s.expect_no_event(0.2)

        with ft.subtest("on_gap = \"reset\": a stale id starts with a reset event, then live"):
            with resume_ok(port, "/reset/ring", ids[0]) as s:
                first = s.next_event()
                ft.check_eq(first.type, "reset", "type of the first dispatched event", )
                ft.check(b"event: reset\n" in s.raw, "no 'event: reset' line", s.raw[:300])
                s.expect_no_event(0.2)
                live = srv.publish("/pub/ring", "after reset")
                e = s.next_event()
                ft.check_eq((e.id, e.data), (live, "after reset"), "live event after the reset")
            ids.append(live)

        with ft.subtest("on_gap = \"reset\": an id still in the ring replays normally"):
            with resume_ok(port, "/reset/ring", ids[4]) as s:
                got = s.take(2)
                ft.check_eq([(e.type, e.id) for e in got], [("message", ids[5]), ("message", ids[6])],
                            "replay on the on_gap route with no gap")


def window_cases():
    app = ft.pubsub_app(settings="replay = { events = 1000, seconds = 1 },")
    with ft.Server(app) as srv:
        port = srv.port
        with ft.subtest("replay.seconds = 1: events older than the window -> 416"):
            ids = [srv.publish("/pub/win", f"w{i}") for i in range(3)]
            with resume_ok(port, "/sub/win", ids[0]) as s:  # still inside the window
                got = s.take(2)
                ft.check_eq([e.id for e in got], ids[1:], "replay inside the window")
            time.sleep(2.5)
            expect_resume_error(port, "/sub/win", ids[0], 416, "events older than replay.seconds")
        with ft.subtest("replay.seconds = 1: a topic quiet for longer resumes exactly from its "
                        "last id (200, nothing missed); an id before an aged-out event -> 416"):
            # Every event of the topic is older than the window now, but nothing came after the
            # last one: a resume from it misses nothing. Another topic moves on meanwhile (on
            # NATS both share one stream and its sequence).
            srv.publish("/pub/win-other", "elsewhere")
            with resume_ok(port, "/sub/win", ids[-1]) as s:
                live = srv.publish("/pub/win", "after the quiet")
                e = s.next_event()
                ft.check_eq((e.id, e.data), (live, "after the quiet"),
                            "the first event after the quiet, live")
            expect_resume_error(port, "/sub/win", ids[1], 416,
                                "the event after this id aged out")


def run():
    ring_cases()
    window_cases()
    ft.require_file(ft.BENCH_APP, "bench app")
    with ft.Server(ft.BENCH_APP) as srv:
        basic_resume(srv)
        resume_under_publishing(srv)
        multi_topic(srv)
        bad_ids(srv)
    restart_case()


ft.main(run, limit=58)
