"""The Redis broker on one node: ids are the Stream entry ids, resume replays exactly from the
Stream, the replay window gives 416 (or `reset`), never-issued ids give 400, composite ids of
multi-topic streams, the external-producer contract through redis-cli (FCALL freshet_publish),
the broker URL forms (password, ACL user, database number, unix socket), and pipelined HTTP/1.1
requests answered in their order while a publish waits on Redis."""

import json
import os
import threading
import time
import urllib.parse

import frtest as ft

RESET_ROUTE = """
    local route = { on_gap = "reset" }
    function route.topics(req, who) return { req.params.topic } end
    return route
"""


def resume(port, path, last_id, via="header"):
    if via == "header":
        return ft.SSEStream(port, path, last_event_id=last_id)
    return ft.SSEStream(port, f"{path}?lastEventId={urllib.parse.quote(last_id, safe='')}")


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
    return s.response.check_error(status, f"{what} (resume {path} after {last_id!r} via {via})")


def ids_and_stream(redis, srv):
    with ft.subtest("ids have the <ms>-<seq> shape and are the Stream entry ids"):
        with ft.open_stream(srv.port, "/sub/basic") as s:
            ids = [srv.publish("/pub/basic", f"b{i}", headers={"X-Event": "note"} if i == 2 else {})
                   for i in range(5)]
            got = s.take(5)
        for i in ids:
            ft.check(ft.ID_RE.match(i), "id is not <ms>-<seq>", i)
        ft.check_eq([e.id for e in got], ids, "ids on the stream vs ids in the 201 answers")
        ft.check_eq([e.data for e in got], [f"b{i}" for i in range(5)], "data on the stream")
        ft.check_eq(got[2].type, "note", "event name of the third event")
        ft.check_eq(redis.stream_ids("basic"), ids, "redis-cli XRANGE fr:{basic}:s - +")

    with ft.subtest("Stream entries hold d, and e, p, j only when not the defaults; no other keys"):
        # The contract that external consumers and producers rely on (docs/REDIS.md). The
        # publish time is the entry id's time: no field of its own, no metadata hash, no global
        # configuration key. A field at its default is left out (a reader takes it as default).
        sent = srv.publish("/pub/fields", "payload", headers={"X-Event": "upd",
                                                              "X-Priority": "critical"})
        plain = srv.publish("/pub/fields", "plain")
        entries = redis.command("XRANGE", "fr:{fields}:s", "-", "+")
        ft.check_eq([e[0] for e in entries], [sent, plain], "entry ids in fr:{fields}:s")
        ft.check_eq([dict(zip(e[1][::2], e[1][1::2])) for e in entries],
                    [{"d": "payload", "e": "upd", "p": "critical"}, {"d": "plain"}],
                    "entry fields")
        keys = set(redis.command("KEYS", "*fields*")) | set(redis.command("KEYS", "fr:config*"))
        ft.check_eq(keys, {"fr:{fields}:s"}, "keys written for topic 'fields'")

    with ft.subtest("resume via Last-Event-ID header and lastEventId query replays exactly"):
        ids = [srv.publish("/pub/res", f"r{i}") for i in range(6)]
        datas = [f"r{i}" for i in range(6)]
        for via in ("header", "query"):
            with resume_ok(srv.port, "/sub/res", ids[2], via) as s:
                got = s.take(len(ids) - 3)
                ft.check_eq([(e.id, e.data) for e in got], list(zip(ids[3:], datas[3:])),
                            f"replayed events after {ids[2]} via {via}")
                s.expect_no_event(0.3)
                live = srv.publish("/pub/res", f"live-{via}")
                e = s.next_event()
                ft.check_eq((e.id, e.data), (live, f"live-{via}"), "the live event after the replay")
            ids.append(live)
            datas.append(f"live-{via}")
        with resume_ok(srv.port, "/sub/res", ids[-1]) as s:
            s.expect_no_event(0.3)
        with resume_ok(srv.port, "/sub/res", ids[0]) as s:
            got = s.take(len(ids) - 1)
            ft.check_eq([e.id for e in got], ids[1:], "replay of everything after the first id")
            s.expect_no_event(0.3)


def bad_ids(redis, srv):
    with ft.subtest("never-issued ids -> 400 (ahead of the topic, or between issued ids)"):
        ids = []
        for i in range(4):
            ids.append(srv.publish("/pub/never", f"n{i}"))
            time.sleep(0.003)  # ids in different milliseconds leave unissued ids between them
        ms, seq = ft.parse_id(ids[-1])
        for bad in (f"{ms + 60000}-0", f"{ms}-{seq + 5}", f"{ms + 3600000}-7"):
            expect_resume_error(srv.port, "/sub/never", bad, 400, "id ahead of the topic")
        expect_resume_error(srv.port, "/sub/never", f"{ms}-{seq + 5}", 400, "id ahead",
                            via="query")
        issued = {ft.parse_id(i) for i in ids}
        first = ft.parse_id(ids[0])
        # an id inside the Stream's range that no event has: the first event's ms, seq + 1
        # unless that was issued too, else one ms after it with seq 7
        between = next(c for c in ((first[0], first[1] + 1), (first[0] + 1, 7), (first[0], 999))
                       if c not in issued and c < ft.parse_id(ids[-1]))
        expect_resume_error(srv.port, "/sub/never", f"{between[0]}-{between[1]}", 400,
                            "id between issued ids that was never issued")
        with resume_ok(srv.port, "/sub/never", ids[-1]) as s:  # the last id itself is fine
            s.expect_no_event(0.2)

    with ft.subtest("malformed ids and wrong id counts -> 400"):
        for bad in ("abc", "1-", "1-2-3", "x-1"):
            expect_resume_error(srv.port, "/sub/never", bad, 400, "malformed id")
        one = srv.publish("/pub/never2", "y")
        expect_resume_error(srv.port, "/sub/never,never2", one, 400, "one id for two topics")

    with ft.subtest("an id on a topic that has no Stream at all -> 416, not a hang or 500"):
        # Nothing was ever published to this topic, so nothing after the id can be replayed.
        ms, _ = ft.parse_id(srv.publish("/pub/other", "x"))
        expect_resume_error(srv.port, "/sub/empty-topic", f"{ms - 1000}-0", 416,
                            "id on a topic without events")


def multi_topic(redis, srv):
    a, b = "ma", "mb"
    path = f"/sub/{a},{b}"
    published = []  # (topic, id, data)

    def pub(topic, data):
        eid = srv.publish(f"/pub/{topic}", data)
        published.append((topic, eid, data))
        return eid

    def check_events(got, pos, what):
        """Per topic, the events after pos in publish order; each composite id is the
        positions of a then b after that event. (Across topics the order is the id order,
        which two topics publishing in the same millisecond need not share with publish
        order, so only the per-topic order is checked.)"""
        pos = dict(pos)
        by_data = {d: (t, i) for t, i, d in published}
        for topic in (a, b):
            want = [d for t, i, d in published
                    if t == topic and ft.parse_id(i) > ft.parse_id(pos[topic])]
            ft.check_eq([e.data for e in got if by_data[e.data][0] == topic], want,
                        f"{what}: events of {topic}")
        for e in got:
            topic, eid = by_data[e.data]
            pos[topic] = eid
            ft.check_eq(ft.ids_text(e.id), [pos[a], pos[b]], f"{what}: composite id of {e.data}")
        ids = [tuple(ft.parse_ids(e.id)) for e in got]
        ft.check(all(max(x) <= max(y) for x, y in zip(ids, ids[1:])),
                 f"{what}: events not merged in id order", [e.id for e in got])
        return pos

    with ft.subtest("multi-topic /sub/a,b: composite ids resume every topic exactly"):
        with ft.open_stream(srv.port, path) as s:
            for data in ("a1", "b1", "a2", "b2"):
                pub(a if data[0] == "a" else b, data)
            first = s.take(4)
        ft.check_eq([e.data for e in first], ["a1", "b1", "a2", "b2"], "live events in order")
        ida = {d: i for _, i, d in published}
        # b has had no event yet when a1 arrives: its part is a placeholder position, and that
        # id must resume like any other (checked below)
        start_b = ft.ids_text(first[0].id)[1]
        ft.check(ft.ids_text(first[0].id)[0] == ida["a1"] and ft.ID_RE.match(start_b),
                 "composite id of a1 on fresh topics", first[0].id)
        pos = check_events(first[1:], {a: ida["a1"], b: start_b}, "live")
        for topic, data in ((a, "a3"), (b, "b3"), (a, "a4")):
            pub(topic, data)
        with resume_ok(srv.port, path, first[-1].id) as s:
            got = s.take(3)
            pos = check_events(got, pos, f"resume after {first[-1].id}")
            s.expect_no_event(0.3)
            live = pub(b, "b4")
            e = s.next_event()
            ft.check_eq((e.data, ft.ids_text(e.id)), ("b4", [pos[a], live]),
                        "live event after the replay")
        # an early composite id: after a1 and b1
        ida = {d: i for _, i, d in published}
        early = f"{ida['a1']},{ida['b1']}"
        with resume_ok(srv.port, path, early, via="query") as s:
            got = s.take(6)
            check_events(got, {a: ida["a1"], b: ida["b1"]}, f"resume after {early}")
            s.expect_no_event(0.3)
        # the very first composite id, with b's placeholder part
        with resume_ok(srv.port, path, first[0].id) as s:
            got = s.take(7)
            check_events(got, {a: ida["a1"], b: start_b}, f"resume after {first[0].id}")
            s.expect_no_event(0.3)
        # one topic's part never issued: the whole resume is refused
        ms, _ = ft.parse_id(ida["b4"])
        expect_resume_error(srv.port, path, f"{ida['a4']},{ms + 60000}-0", 400,
                            "composite id with an ahead part")


def joins_during_traffic(redis, srv):
    with ft.subtest("streams opening while events flow do not make other streams skip events"):
        # Every join reads the topic's position from Redis; the node's live feed may not have
        # delivered the newest of those events yet, and the streams already open must still get
        # each of them once.
        watch = ft.StreamReader(srv.stream("/sub/busy"))
        stop, ids, errors = threading.Event(), [], []

        def publisher():
            try:
                with ft.Publisher(srv.port) as pub:
                    n = 0
                    while not stop.is_set():
                        items = [("/pub/busy", f"x{n + i}", {}) for i in range(5)]
                        ids.extend(pub.publish_ids(items, window=5))
                        n += 5
            except BaseException as exc:
                errors.append(repr(exc))

        worker = threading.Thread(target=publisher, daemon=True)
        worker.start()
        joins = 0
        try:
            until = time.monotonic() + 2.0
            while time.monotonic() < until:
                with ft.open_stream(srv.port, "/sub/busy"):
                    joins += 1
        finally:
            stop.set()
            worker.join(timeout=10)
        ft.check(not errors, "publisher failed", errors)
        deadline = time.monotonic() + 10
        while len(watch.events()) < len(ids) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)
        got = [e.id for e in watch.events()]
        watch.stop()
        missing = [i for i in ids if i not in set(got)]
        ft.check(not missing, f"the open stream missed {len(missing)} of {len(ids)} events "
                 f"published while {joins} other streams opened on the same topic",
                 missing[:10])
        ft.check_eq(got, ids, "events on the open stream vs published, in order")


def window_cases():
    # A Redis of its own, with the default Stream node size (100 entries): MAXLEN ~ trims whole
    # nodes, so with a window of 3 nothing is trimmed yet, and the window is kept by the resume
    # itself (82_redis_window.py covers Streams that were trimmed).
    redis = ft.RedisServer().start()
    app = ft.pubsub_app(
        settings=f'broker = "{redis.url}", replay = {{ events = 3, seconds = 300 }},',
        routes='app:stream("/reset/:topic", "routes/reset.lua")\n',
        files={"routes/reset.lua": RESET_ROUTE})
    srv = ft.Server(app).start()
    ft.wait_health(srv)
    port = srv.port
    ids = [srv.publish("/pub/ring", f"r{i}") for i in range(6)]

    with ft.subtest("replay.events = 3: the Stream keeps whole nodes (MAXLEN ~ 4), no other keys"):
        ft.check_eq(redis.stream_ids("ring"), ids, "entries left in fr:{ring}:s")
        ft.check_eq(set(redis.command("KEYS", "*")), {"fr:{ring}:s"}, "keys in Redis")

    with ft.subtest("replay.events = 3: an id older than the window -> 416"):
        for k in (0, 1):
            msg = expect_resume_error(port, "/sub/ring", ids[k], 416, f"id {k} of 6")
            ft.check("replay window" in msg, "416 message does not say why", msg)
        expect_resume_error(port, "/sub/ring", ids[1], 416, "evicted", via="query")

    with ft.subtest("replay.events = 3: the newest evicted id still replays the last 3"):
        with resume_ok(port, "/sub/ring", ids[2]) as s:
            got = s.take(3)
            ft.check_eq([(e.id, e.data) for e in got], [(ids[i], f"r{i}") for i in (3, 4, 5)],
                        "events after the 3rd of 6 with a window of 3")
            s.expect_no_event(0.3)

    with ft.subtest('on_gap = "reset": a stale id starts with a reset event, then live'):
        with resume_ok(port, "/reset/ring", ids[0]) as s:
            first = s.next_event()
            ft.check_eq(first.type, "reset", "type of the first dispatched event")
            s.expect_no_event(0.3)
            live = srv.publish("/pub/ring", "after reset")
            e = s.next_event()
            ft.check_eq((e.id, e.data), (live, "after reset"), "live event after the reset")
        ids.append(live)

    with ft.subtest('on_gap = "reset": an id still in the window replays normally'):
        with resume_ok(port, "/reset/ring", ids[4]) as s:
            got = s.take(2)
            ft.check_eq([(e.type, e.id) for e in got], [("message", ids[5]), ("message", ids[6])],
                        "replay on the on_gap route")
    srv.stop()
    redis.stop()


def external_producer(redis, srv):
    with ft.subtest("redis-cli FCALL freshet_publish reaches an open stream with its id"):
        with ft.open_stream(srv.port, "/sub/room:x") as s:
            r = redis.cli("FCALL", "freshet_publish", "1", "fr:{room:x}:s", '{"a":1}', "message",
                          "normal", "1")
            out = r.stdout.strip()
            ft.check(r.returncode == 0 and ft.ID_RE.match(out),
                     "FCALL freshet_publish did not answer an id", r.stdout + r.stderr)
            e = s.next_event()
            ft.check_eq((e.id, e.type, e.data), (out, "message", '{"a":1}'), "the event on the stream")
            ft.check(f"id: {out}\nevent: message\ndata: {{\"a\":1}}\n\n".encode() in s.raw,
                     "frame of the FCALL event", s.raw[-300:])

            r = redis.cli("FCALL", "freshet_publish", "1", "fr:{room:x}:s", "line 1\nline 2",
                          "update", "critical", "0", "1000")
            named = r.stdout.strip()
            ft.check(ft.ID_RE.match(named), "FCALL with event update", r.stdout + r.stderr)
            e = s.next_event()
            ft.check_eq((e.id, e.type, e.data), (named, "update", "line 1\nline 2"),
                        "named multi-line event")

            r = redis.cli("FCALL", "freshet_publish", "1", "fr:{room:x}:s", "only data")
            plain = r.stdout.strip()
            ft.check(ft.ID_RE.match(plain), "FCALL with only the data", r.stdout + r.stderr)
            e = s.next_event()
            ft.check_eq((e.id, e.type, e.data), (plain, "message", "only data"),
                        "event published with the defaults")

            # what HTTP publishes next follows what redis-cli published, in one id order
            after = srv.publish("/pub/room:x", "from http")
            e = s.next_event()
            ft.check_eq((e.id, e.data), (after, "from http"), "HTTP publish after the FCALLs")
            ft.check(ft.parse_id(after) > ft.parse_id(plain), "ids not increasing", (plain, after))
            ft.check_eq(redis.stream_ids("room:x"), [out, named, plain, after],
                        "fr:{room:x}:s holds every event in order")

        with resume_ok(srv.port, "/sub/room:x", out) as s:
            got = s.take(3)
            ft.check_eq([(e.id, e.type) for e in got],
                        [(named, "update"), (plain, "message"), (after, "message")],
                        "resume after an id issued by redis-cli")

    with ft.subtest("bad FCALL arguments are refused with an error reply and store nothing"):
        with ft.open_stream(srv.port, "/sub/room:x") as s:
            before = redis.stream_ids("room:x")
            key = "fr:{room:x}:s"
            cases = [
                ((key, "x", "message", "urgent", "0"), "priority must be critical"),
                ((key, "x", "message", "CRITICAL"), "priority must be critical"),
                ((key, "x", "bad\nname"), "event name must not hold CR, LF or NUL"),
                ((key,), "data is required"),
                (("fr:{bad\ntopic}:s", "x"), "topic must be non-empty"),
                (("fr:{}:s", "x"), "topic must be non-empty"),
                ((key, "x", "message", "normal", "0", "-1"), "events must be a whole number"),
                ((key, "x", "message", "normal", "0", "many"), "events must be a whole number"),
                # the old contract named the topic itself as the key
                (("room:x", "x"), "the key must be the topic's Stream, fr:{<topic>}:s"),
                (("fr:{room:x}:m", "x"), "the key must be the topic's Stream"),
            ]
            for args, want in cases:
                r = redis.cli("FCALL", "freshet_publish", "1", *args)
                # redis-cli exits 0 on an error reply; the reply text is on stdout
                ft.check(want in r.stdout and not ft.ID_RE.match(r.stdout.strip()),
                         f"FCALL freshet_publish 1 {args!r}: no error reply containing {want!r}",
                         r.stdout + r.stderr)
            try:
                redis.command("FCALL", "freshet_publish", "1", "fr:{room:x}:s", "x", "message",
                              "urgent")
                ft.fail("RESP: a bad priority was accepted")
            except ft.RedisError as exc:
                ft.check("priority" in str(exc), "RESP error reply for a bad priority", str(exc))
            ft.check_eq(redis.stream_ids("room:x"), before, "fr:{room:x}:s after the refused calls")
            s.expect_no_event(0.3)


def channel_format(redis, srv):
    with ft.subtest("the channel: a node's batch (*<ms>, then <id> <event> <priority> <json> "
                    "<len> <data> per event) and an external producer's single event"):
        # What an external subscriber of fr:{<topic>}:c reads (docs/REDIS.md): a node's publish
        # arrives as a batch of one, an external producer's FCALL as one event.
        with ft.RedisConn(redis.port) as c:
            ft.check_eq(c.command("SUBSCRIBE", "fr:{chan}:c"), ["subscribe", "fr:{chan}:c", 1],
                        "SUBSCRIBE reply")
            before = int(time.time() * 1000)
            a = srv.publish("/pub/chan", "line 1\nline 2", headers={"X-Event": "upd",
                                                                    "X-Priority": "critical"})
            b = redis.command("FCALL", "freshet_publish", "1", "fr:{chan}:s", '{"k":1}', "",
                              "telemetry", "1")
            after = int(time.time() * 1000)
            got = [c._reply() for _ in range(2)]
        ft.check_eq([g[:2] for g in got], [["message", "fr:{chan}:c"]] * 2,
                    "message kinds and channels")
        head, rest = got[0][2].split("\n", 1)
        ft.check(head[:1] == "*" and head[1:].isdigit() and
                 before - 1000 <= int(head[1:]) <= after + 1000,
                 "a node's message starts with *<ms>, the publish time", head)
        ft.check_eq(rest, f"{a}\nupd\ncritical\n0\n13\nline 1\nline 2",
                    "the one event of the node's batch")
        parts = got[1][2].split("\n", 5)
        ft.check_eq([parts[0], parts[1], parts[2], parts[3], parts[5]],
                    [b, "", "telemetry", "1", '{"k":1}'], "the external producer's message")
        ft.check(parts[4].isdigit() and before - 1000 <= int(parts[4]) <= after + 1000,
                 "the <ms> line is not the publish time", parts[4])

    with ft.subtest("a batch of several events reaches streams in order with their fields"):
        # freshet_publish_unchecked as a node calls it, with events a node would batch: the
        # channel carries one message for the call, the node splits it back into events.
        key, ms = "fr:{chan2}:s", str(int(time.time() * 1000))
        events = [("", "normal", "0", "a\nb"), ("upd", "critical", "0", "c"),
                  ("", "telemetry", "1", '{"x":2}'), ("", "normal", "0", "")]
        args = []
        for e, p, j, d in events:
            args += [f"\n{e}\n{p}\n{j}\n{len(d.encode())}\n", d]
        with ft.open_stream(srv.port, "/sub/chan2") as s, ft.RedisConn(redis.port) as c:
            c.command("SUBSCRIBE", "fr:{chan2}:c")
            ids = redis.command("FCALL", "freshet_publish_unchecked", "1", key, "1001",
                                f"*{ms}\n", *args)
            ft.check(len(ids) == 4 and all(ft.ID_RE.match(i) for i in ids),
                     "freshet_publish_unchecked answers 4 ids", ids)
            msg = c._reply()
            ft.check_eq(msg[2], f"*{ms}\n" + "".join(
                i + a for i, a in zip(ids, ["".join(args[k:k + 2]) for k in range(0, 8, 2)])),
                        "one channel message for the call")
            got = s.take(4)
            ft.check_eq([(e.id, e.type, e.data) for e in got],
                        [(ids[0], "message", "a\nb"), (ids[1], "upd", "c"),
                         (ids[2], "message", '{"x":2}'), (ids[3], "message", "")],
                        "the batch's events on the stream")
            s.expect_no_event(0.3)
        entries = redis.command("XRANGE", key, "-", "+")
        ft.check_eq([dict(zip(e[1][::2], e[1][1::2])) for e in entries],
                    [{"d": "a\nb"}, {"d": "c", "e": "upd", "p": "critical"},
                     {"d": '{"x":2}', "p": "telemetry", "j": "1"}, {"d": ""}],
                    "Stream fields of the batch (defaults left out)")
        with resume_ok(srv.port, "/sub/chan2", ids[0]) as s:
            got = s.take(3)
            ft.check_eq([(e.id, e.type, e.data) for e in got],
                        [(ids[1], "upd", "c"), (ids[2], "message", '{"x":2}'),
                         (ids[3], "message", "")], "the batch resumed from the Stream")


def external_bad_utf8(redis, srv):
    with ft.subtest("FCALL with data that is not UTF-8 is refused, not stored and then dropped"):
        # Every node refuses to deliver such data (the HTTP route answers 400), so accepting it
        # would hand the producer an id for an event no subscriber can ever receive.
        with ft.open_stream(srv.port, "/sub/utf") as s:
            before = redis.stream_ids("utf")
            try:
                reply = redis.command("FCALL", "freshet_publish", "1", "fr:{utf}:s", b"bad \xff\xfe")
            except ft.RedisError as exc:
                reply = exc
            ok = redis.command("FCALL", "freshet_publish", "1", "fr:{utf}:s", "good")
            e = s.next_event()
            ft.check_eq((e.id, e.data), (ok, "good"), "the valid event after it")
            ft.check(isinstance(reply, ft.RedisError),
                     "FCALL freshet_publish accepted invalid UTF-8 data (reply: an id) although "
                     "no node will deliver it", {"reply": reply,
                                                 "Stream after": redis.stream_ids("utf"),
                                                 "before": before})


def external_utf8_cases(redis):
    with ft.subtest("freshet_publish accepts exactly the valid UTF-8 (the check in Lua)"):
        good = ["café", "漢字かな", "emoji 😀 end", "\u07ff\u0800\uffff\U00010000\U0010ffff",
                "mixed ascii and é at the end é"]
        bad = [b"\xc0\x80", b"\xc1\xbf", b"\xed\xa0\x80", b"\xf5\x80\x80\x80",
               b"\xe2\x82", b"x\x80", b"\xf4\x90\x80\x80", b"\xe0\x9f\xbf",
               b"\xf0\x8f\xbf\xbf", b"ok \xe2\x82\xac then \xff", b"\xe2\x28\xa1"]
        with ft.RedisConn(redis.port) as c:
            replies = c.pipeline([("FCALL", "freshet_publish", "1", "fr:{utf8}:s", g) for g in good]
                                 + [("FCALL", "freshet_publish", "1", "fr:{utf8}:s", b)
                                    for b in bad])
        for text, reply in zip(good, replies):
            ft.check(isinstance(reply, str) and ft.ID_RE.match(reply),
                     f"valid UTF-8 {text!r} was refused", reply)
        for data, reply in zip(bad, replies[len(good):]):
            ft.check(isinstance(reply, ft.RedisError) and "valid UTF-8" in str(reply),
                     f"invalid UTF-8 {data!r} was accepted", reply)
        ft.check_eq(len(redis.stream_ids("utf8")), len(good), "entries stored")


def pipelined_in_order(srv):
    """A publish waits on Redis for its id, a /health or a 404 is answered at once: pipelined on
    one connection, the answers must still come in the requests' order (RFC 9112 §9.3.2)."""
    with ft.subtest("pipelined requests behind a waiting publish are answered in order"):
        with ft.Conn(srv.port) as c:
            c.send(ft.build_request("POST", "/pub/pipe", None, b"one", srv.port)
                   + ft.build_request("GET", "/health", None, None, srv.port)
                   + ft.build_request("POST", "/pub/pipe", None, b"three", srv.port)
                   + ft.build_request("GET", "/no/such", None, None, srv.port)
                   + ft.build_request("POST", "/pub/pipe", None, b"five", srv.port))
            answers = [c.read_response() for _ in range(5)]
            ft.check_eq([r.status for r in answers], [201, 200, 201, 404, 201],
                        "statuses of 5 pipelined requests")
            ids = [ft.parse_id(json.loads(answers[i].body)["id"]) for i in (0, 2, 4)]
            ft.check(ids == sorted(ids) and len(set(ids)) == 3,
                     "the publishes' ids follow the requests' order", ids)


def url_forms():
    with ft.subtest("broker URL with a password and a database number: keys live in that db"):
        redis = ft.RedisServer(extra_args=["--requirepass", "s3cret"]).start()
        app = ft.pubsub_app(settings=f'broker = "redis://:s3cret@{ft.HOST}:{redis.port}/2",')
        with ft.Server(app) as srv:
            ft.wait_health(srv)
            with ft.open_stream(srv.port, "/sub/auth") as s:
                eid = srv.publish("/pub/auth", "with a password")
                e = s.next_event()
                ft.check_eq((e.id, e.data), (eid, "with a password"), "event through an AUTH'd Redis")
            with ft.RedisConn(redis.port) as c:
                c.command("AUTH", "s3cret")
                c.command("SELECT", "2")
                ft.check_eq([x[0] for x in c.command("XRANGE", "fr:{auth}:s", "-", "+")], [eid],
                            "fr:{auth}:s in db 2")
                c.command("SELECT", "0")
                ft.check_eq(c.command("EXISTS", "fr:{auth}:s"), 0, "fr:{auth}:s must not be in db 0")
        redis.stop()

    with ft.subtest("broker URL with an ACL user and password"):
        redis = ft.RedisServer().start()
        # The functions declare the real keys they touch (fr:{topic}:s, fr:{topic}:p), so a
        # user limited to ~fr:* can publish, resume, trim and write presence.
        redis.command("ACL", "SETUSER", "freshet", "on", ">pw-of-freshet", "~fr:*", "&fr:*",
                      "+@all")
        redis.command("ACL", "SETUSER", "default", "off")
        app = ft.pubsub_app(settings=f'broker = "redis://freshet:pw-of-freshet@{ft.HOST}:{redis.port}",')
        with ft.Server(app) as srv:
            ft.wait_health(srv)
            with ft.open_stream(srv.port, "/sub/acl") as s:
                eid = srv.publish("/pub/acl", "as user freshet")
                e = s.next_event()
                ft.check_eq((e.id, e.data), (eid, "as user freshet"), "event as an ACL user")
                later = srv.publish("/pub/acl", "second")
                s.next_event()
                # presence is written every other second for the topics a node follows
                with ft.RedisConn(redis.port) as c:
                    c.command("AUTH", "freshet", "pw-of-freshet")
                    deadline = time.monotonic() + 5
                    while not c.command("EXISTS", "fr:{acl}:p") and time.monotonic() < deadline:
                        time.sleep(0.1)
                    ft.check_eq(c.command("EXISTS", "fr:{acl}:p"), 1,
                                "presence hash written by a node limited to ~fr:*")
            with resume_ok(srv.port, "/sub/acl", eid) as s:
                e = s.next_event()
                ft.check_eq((e.id, e.data), (later, "second"), "resume as an ACL user")
        redis.stop()

    with ft.subtest("broker over a unix socket (unix:///path)"):
        sockdir = ft.tempdir("freshet-sock-")
        path = os.path.join(sockdir, "redis.sock")
        redis = ft.RedisServer(extra_args=["--unixsocket", path, "--unixsocketperm", "700"]).start()
        app = ft.pubsub_app(settings=f'broker = "unix://{path}",')
        with ft.Server(app) as srv:
            ft.wait_health(srv)
            with ft.open_stream(srv.port, "/sub/unix") as s:
                eid = srv.publish("/pub/unix", "over a socket")
                e = s.next_event()
                ft.check_eq((e.id, e.data), (eid, "over a socket"), "event over the unix socket")
            ft.check_eq(redis.stream_ids("unix"), [eid], "fr:{unix}:s")
        redis.stop()


def run():
    ft.require_file(ft.BENCH_APP, "bench app")
    redis = ft.RedisServer().start()
    srv = ft.redis_node(redis)
    ids_and_stream(redis, srv)
    bad_ids(redis, srv)
    multi_topic(redis, srv)
    external_producer(redis, srv)
    external_bad_utf8(redis, srv)
    channel_format(redis, srv)
    external_utf8_cases(redis)
    joins_during_traffic(redis, srv)
    pipelined_in_order(srv)
    srv.stop()
    redis.stop()
    window_cases()
    url_forms()


ft.main(run, limit=100)
