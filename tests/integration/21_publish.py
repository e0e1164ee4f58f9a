"""Publish routes: 201 with the id(s), validation of data, event names, JSON bodies, priority."""

import json
import time

import frtest as ft

JSON_ROUTE = """
    local route = { body = "json" }
    function route.publish(req, body, who)
      return { topic = body.topic or "j", data = body.data, event = body.event,
               priority = body.priority }
    end
    return route
"""

MULTI_ROUTE = """
    local route = {}
    function route.publish(req, body, who)
      return {
        { topic = "m1", data = "first:" .. body },
        { topic = "m2", data = "second:" .. body, event = "two" },
      }
    end
    return route
"""


def bench_cases(srv):
    port = srv.port
    with ft.open_stream(port, "/sub/v") as watch:
        accepted = []

        with ft.subtest("POST -> 201 application/json {\"id\": \"<ms>-<seq>\"}"):
            r = srv.post("/pub/v", b"hello")
            ft.check_eq(r.status, 201, "status")
            ft.check_eq((r.header("content-type") or "").split(";")[0].strip(), "application/json",
                        "Content-Type")
            body = r.json()
            ft.check(set(body) == {"id"} and ft.ID_RE.match(str(body["id"])),
                     'body is not {"id": "<ms>-<seq>"}', r.summary())
            accepted.append((body["id"], "hello", "message"))
            ms, _ = ft.parse_id(body["id"])
            ft.check(abs(ms - time.time() * 1000) < 10000, "the id's <ms> is not the wall clock",
                     (body["id"], time.time()))

        with ft.subtest("invalid UTF-8 data -> 400"):
            for bad in (b"\xff\xfe", b"ok then \xc3\x28", b"\xed\xa0\x80 surrogate",
                        b"\xc0\xaf overlong", b"cut \xe2\x82"):
                srv.post("/pub/v", bad).check_error(400, f"data {bad!r}")

        with ft.subtest("bad priority -> 400; the three named ones -> 201"):
            for bad in ("urgent", "CRITICAL", "high"):
                srv.post("/pub/v", b"p", headers={"X-Priority": bad}).check_error(
                    400, f"X-Priority {bad!r}")
            for good in ("critical", "normal", "telemetry"):
                eid = srv.publish("/pub/v", f"prio {good}", headers={"X-Priority": good})
                accepted.append((eid, f"prio {good}", "message"))

        with ft.subtest("event name from X-Event is sent as 'event:'"):
            eid = srv.publish("/pub/v", "named", headers={"X-Event": "update"})
            accepted.append((eid, "named", "update"))

        with ft.subtest("subscribers get exactly the accepted publishes, in order"):
            got = watch.take(len(accepted))
            ft.check_eq([(e.id, e.data, e.type) for e in got], accepted, "events on /sub/v")
            watch.expect_no_event(0.3)


def own_cases():
    app = ft.pubsub_app(routes="""
        app:publish("/json", "routes/json.lua")
        app:publish("/multi", "routes/multi.lua")
    """, files={"routes/json.lua": JSON_ROUTE, "routes/multi.lua": MULTI_ROUTE})
    with ft.Server(app) as srv:
        port = srv.port
        with ft.open_stream(port, "/sub/j") as watch:
            accepted = []

            with ft.subtest("body=\"json\": a table as data is sent as JSON"):
                payload = {"text": "hi", "n": 3, "list": [1, 2], "nested": {"ok": True}}
                eid = srv.publish("/json", json.dumps({"data": payload}),
                                  headers={"Content-Type": "application/json"})
                e = watch.next_event()
                ft.check_eq(e.id, eid, "id")
                ft.check_eq(json.loads(e.data), payload, "data decoded from the event")
                ft.check("\n" not in e.data, "JSON data must fit on one line", e.data)
                eid = srv.publish("/json", json.dumps({"data": "plain string"}))
                e = watch.next_event()
                ft.check_eq((e.id, e.data), (eid, "plain string"), "string data sent as is")

            with ft.subtest("bad JSON on a body=\"json\" route -> 400"):
                for bad in (b'{"data": ', b"not json", b"{'data': 1}", b""):
                    srv.post("/json", bad, headers={"Content-Type": "application/json"}).check_error(
                        400, f"body {bad!r}")

            with ft.subtest("event name with CR or LF -> 400"):
                for name in ("a\nb", "a\rb", "a\r\nb", "trailing\n"):
                    r = srv.post("/json", json.dumps({"data": "x", "event": name}))
                    r.check_error(400, f"event {name!r}")

            with ft.subtest("rejected publishes reach nobody"):
                eid = srv.publish("/json", json.dumps({"data": "after the bad ones", "event": "ok"}))
                e = watch.next_event()
                ft.check_eq((e.id, e.type, e.data), (eid, "ok", "after the bad ones"),
                            "first event after the rejected publishes")
                watch.expect_no_event(0.3)

        with ft.subtest("a hook returning a list -> 201 {\"ids\": [...]} in order"):
            s1 = ft.open_stream(port, "/sub/m1")
            s2 = ft.open_stream(port, "/sub/m2")
            r = srv.post("/multi", b"x")
            ft.check_eq(r.status, 201, f"status ({r.summary()})")
            body = r.json()
            ids = body.get("ids") if isinstance(body, dict) else None
            ft.check(isinstance(ids, list) and len(ids) == 2 and all(ft.ID_RE.match(i) for i in ids),
                     'body is not {"ids": [id, id]}', r.summary())
            e1, e2 = s1.next_event(), s2.next_event()
            ft.check_eq((e1.id, e1.data, e1.type), (ids[0], "first:x", "message"), "event on m1")
            ft.check_eq((e2.id, e2.data, e2.type), (ids[1], "second:x", "two"), "event on m2")
            s1.close()
            s2.close()


def run():
    own_cases()
    ft.require_file(ft.BENCH_APP, "bench app")
    with ft.Server(ft.BENCH_APP) as srv:
        bench_cases(srv)


ft.main(run, limit=50)
