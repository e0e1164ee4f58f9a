"""SSE wire format: headers, retry frame, event framing and order, multi-line data, Accept,
heartbeats, shutdown."""

import signal
import re
import time

import frtest as ft

BENCH_RETRY = 3000


def frame(event_id, data, event=None):
    out = f"id: {event_id}\n"
    if event is not None:
        out += f"event: {event}\n"
    for line in data.split("\n"):
        out += f"data: {line}\n"
    return (out + "\n").encode()


def bench_cases(srv):
    port = srv.port

    with ft.subtest("stream response headers are exactly the SSE ones"):
        with ft.SSEStream(port, "/sub/hdr") as s:
            r = s.response
            ft.check_eq(r.head.split(b"\r\n")[0], b"HTTP/1.1 200 OK", "status line")
            expect = {
                "content-type": "text/event-stream; charset=utf-8",
                "cache-control": "no-cache",
                "connection": "keep-alive",
                "x-accel-buffering": "no",
                "transfer-encoding": "chunked",
            }
            for name, value in expect.items():
                ft.check_eq(r.header_all(name), [value], f"{name} header", )
            ft.check(r.header("content-encoding") is None, "a stream must not be encoded", r.summary())
            ft.check(r.header("content-length") is None, "a stream has no Content-Length", r.summary())

    with ft.subtest("first frame is 'retry: <ms>\\nid: <position>\\n\\n', no event"):
        first_id = srv.publish("/pub/first", "before")
        with ft.open_stream(port, "/sub/first") as s:
            ft.check_eq(s.raw[:s.raw.index(b"\n\n") + 2],
                        b"retry: %d\nid: %s\n\n" % (BENCH_RETRY, first_id.encode()),
                        "the first frame carries the topic's newest id")
            ft.check_eq(s.parser.last_event_id, first_id, "the client's last event id")
            ft.check(not s.events(), "the first frame dispatched an event", s.raw)

    with ft.subtest("events arrive in order, framed exactly, ids strictly increasing"):
        with ft.open_stream(port, "/sub/order") as s:
            sent = []
            for i in range(30):
                headers = {"X-Event": "note"} if i % 3 == 0 else {}
                data = f"m{i}"
                sent.append((srv.publish("/pub/order", data, headers), data, headers.get("X-Event")))
            got = s.take(len(sent))
            ft.check_eq([(e.id, e.data, e.type) for e in got],
                        [(i, d, ev or "message") for i, d, ev in sent],
                        "events received (id, data, type) vs published")
            ids = [ft.parse_id(e.id) for e in got]
            ft.check(all(a < b for a, b in zip(ids, ids[1:])), "ids not strictly increasing", ids)
            first = s.raw[:s.raw.index(b"\n\n") + 2]
            ft.check(re.fullmatch(rb"retry: %d\nid: [0-9]+-[0-9]+\n\n" % BENCH_RETRY, first),
                     "the first frame", first)
            expected = first + b"".join(frame(*x) for x in sent)
            ft.check_eq(s.raw, expected, "exact bytes of the stream body")

    with ft.subtest("multi-line data (LF, CR, CRLF) arrives line by line"):
        cases = [
            ("l1\nl2\rl3\r\nl4", "l1\nl2\nl3\nl4"),
            ("a\n\nb", "a\n\nb"),
            ("ends with a newline\n", "ends with a newline\n"),
            ("\r\nstarts with CRLF", "\nstarts with CRLF"),
            ("héllo ✓ 🌊 ñ", "héllo ✓ 🌊 ñ"),
        ]
        with ft.open_stream(port, "/sub/lines") as s:
            ids = [srv.publish("/pub/lines", body.encode()) for body, _ in cases]
            got = s.take(len(cases))
            for (body, want), event, eid in zip(cases, got, ids):
                ft.check_eq(event.data, want, f"data of the event published as {body!r}")
                ft.check_eq(event.id, eid, "id of that event")
            first = frame(ids[0], "l1\nl2\nl3\nl4")
            ft.check(first in s.raw, "CR and CRLF must become separate 'data:' lines",
                     s.raw[:400])
            ft.check(b"\r" not in s.raw, "no CR may reach the stream body", s.raw[:400])

    with ft.subtest("a 300 KB event and a burst of 500 events arrive intact and in order"):
        big = "".join(chr(0x41 + i % 26) for i in range(300 * 1024))
        with ft.open_stream(port, "/sub/big") as s:
            eid = srv.publish("/pub/big", big)
            e = s.next_event(timeout=10)
            ft.check_eq((e.id, len(e.data)), (eid, len(big)), "id and size of the big event")
            ft.check(e.data == big, "the big event's data differs from what was published")
            with ft.Conn(port) as c:  # one keep-alive connection keeps the burst quick
                ids = []
                for i in range(500):
                    r = c.request("POST", "/pub/big", body=f"burst {i}")
                    ft.check_eq(r.status, 201, f"publish {i}")
                    ids.append(r.json()["id"])
            got = s.take(500, timeout=15)
            ft.check_eq([(e.id, e.data) for e in got], [(ids[i], f"burst {i}") for i in range(500)],
                        "the burst, in order")

    with ft.subtest("Accept: application/json -> 406; absent, */*, text/* -> stream"):
        s = ft.SSEStream(port, "/sub/acc", accept="application/json")
        s.response.check_error(406, "Accept: application/json")
        s.close()
        for accept in (None, "*/*", "text/*", "text/event-stream"):
            with ft.SSEStream(port, "/sub/acc", accept=accept) as s:
                ft.check_eq(s.status, 200, f"status with Accept {accept!r}")
                s.wait_retry()
                eid = srv.publish("/pub/acc", f"for {accept}")
                e = s.next_event()
                ft.check_eq((e.id, e.data), (eid, f"for {accept}"), f"event with Accept {accept!r}")


def heartbeat_cases():
    app = ft.pubsub_app(settings="heartbeat = 1, retry = 1500,")
    with ft.Server(app) as srv:
        with ft.subtest("heartbeat=1: ':\\n\\n' about every second on an idle stream"):
            with ft.open_stream(srv.port, "/sub/idle") as s:
                ft.check(re.match(rb"retry: 1500\nid: [0-9]+-[0-9]+\n\n", s.raw),
                         "retry frame with retry = 1500", s.raw[:100])
                start = s.retries()[0].t
                s.drain(5.2)
                end = time.monotonic()
                beats = [c.t for c in s.comments()]
                ft.check(len(beats) >= 2, f"{len(beats)} heartbeats in 5.2 s of idle stream",
                         s.raw)
                gaps = [b - a for a, b in zip([start] + beats, beats)]
                ft.check(all(0.7 <= g <= 2.5 for g in gaps),
                         "heartbeat gaps outside 0.7-2.5 s", [round(g, 3) for g in gaps])
                # the silence after the last heartbeat must not be longer either
                ft.check(end - beats[-1] <= 2.5, "heartbeats stopped",
                         round(end - beats[-1], 3))
                body = s.raw[s.raw.index(b"\n\n") + 2:]
                ft.check_eq(body, b":\n\n" * len(beats), "heartbeat bytes")
                ft.check(not s.events(), "heartbeats must not dispatch events", s.events())

        with ft.subtest("heartbeats keep coming between events"):
            with ft.open_stream(srv.port, "/sub/busy") as s:
                srv.publish("/pub/busy", "one")
                s.next_event()
                s.drain(2.6)
                ft.check(len(s.comments()) >= 1, "no heartbeat within 2.6 s after an event", s.raw)

        with ft.subtest("no heartbeat on a stream that is not idle"):
            with ft.open_stream(srv.port, "/sub/flowing") as s:
                until = time.monotonic() + 2.4
                sent = 0
                while time.monotonic() < until:
                    srv.publish("/pub/flowing", f"tick {sent}")
                    sent += 1
                    s.drain(0.3)
                ft.check_eq(len(s.events()), sent, "events received")
                ft.check(not s.comments(), "heartbeats sent although events kept the stream busy",
                         s.raw[-300:])

        with ft.subtest("SIGTERM: each open stream gets a retry frame, is closed, exit 0"):
            streams = [ft.open_stream(srv.port, f"/sub/bye{i}") for i in range(3)]
            srv.stop(sig=signal.SIGTERM)
            for s in streams:
                s.wait_end(timeout=5)
                retries = s.retries()
                ft.check(len(retries) >= 2, "no retry frame before the stream was closed",
                         s.raw[-200:])
                ft.check(isinstance(s.items[-1], ft.Retry), "the last frame is not the retry frame",
                         s.raw[-200:])
                s.close()


def run():
    heartbeat_cases()
    ft.require_file(ft.BENCH_APP, "bench app")
    with ft.Server(ft.BENCH_APP) as srv:
        bench_cases(srv)


ft.main(run, limit=55)
