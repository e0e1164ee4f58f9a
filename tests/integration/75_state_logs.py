"""Connection state logs: one structured line per transition. A stream that connects and
leaves logs CONNECTING, ACTIVE, CLOSED; one that comes back with Last-Event-ID after two
publishes logs CONNECTING, RECONNECTING (replayed 2), ACTIVE, CLOSED. In the text format the
message is the JSON object; with log.format = "json" every line is a JSON object."""

import json
import time

import frtest as ft

ROUTE = """
    local route = {}
    function route.topics(req) return { req.params.topic } end
    function route.tier(req) return req.query.tier end
    return route
"""


def make_app(log_format):
    return ft.AppDir({
        "app.lua": f"""
            local freshet = require "freshet"
            local app = freshet.app {{
              heartbeat = 30,
              tiers = {{ gold = {{ queue = 100 }} }},
              log = {{ level = "info", format = "{log_format}" }},
            }}
            app:stream("/feed/:topic", "routes/feed.lua")
            app:publish("/pub/:topic", "routes/pub.lua")
            return app
        """,
        "routes/feed.lua": ROUTE,
        "routes/pub.lua": ft.PUB_ROUTE,
    })


def by_conn(entries):
    out = {}
    for e in entries:
        out.setdefault(e.get("conn"), []).append(e)
    return out


def wait_active(srv, n, json_format, timeout=5):
    """The log is written by a thread of its own, so a line may land just after the client
    saw the stream's first bytes: waits until n ACTIVE lines are there, then checks there
    are exactly n."""
    deadline = time.monotonic() + timeout
    while True:
        entries = ft.state_log_entries(srv.log(), json_format)
        active = [e for e in entries if e["event"] == "ACTIVE"]
        if len(active) >= n or time.monotonic() > deadline:
            return active
        time.sleep(0.02)


def wait_closed(srv, conn_id, json_format, timeout=5):
    deadline = time.monotonic() + timeout
    while True:
        entries = ft.state_log_entries(srv.log(), json_format)
        if any(e["event"] == "CLOSED" and e.get("conn") == conn_id for e in entries):
            return entries
        if time.monotonic() > deadline:
            ft.fail(f"no CLOSED line for connection {conn_id} within {timeout}s",
                    [e for e in entries if e.get("conn") == conn_id])
        time.sleep(0.05)


def check_sequence(entries, conn_id, expected, what):
    got = by_conn(entries).get(conn_id, [])
    ft.check_eq([e["event"] for e in got], expected, f"{what}: state lines of connection {conn_id}")
    return got


def run_format(json_format):
    fmt = "json" if json_format else "text"
    with ft.Server(make_app(fmt)) as srv:
        with ft.subtest(f"[{fmt}] connect, close; resume after 2 publishes, close"):
            # A first event gives the topic an id to resume from.
            base = srv.publish("/pub/room", "before")
            s = srv.stream("/feed/room")
            first_bytes = len(s.raw)
            s.close()
            active = wait_active(srv, 1, json_format)
            ft.check_eq(len(active), 1, "ACTIVE lines after the first stream")
            c1 = active[0]["conn"]
            entries = wait_closed(srv, c1, json_format)
            ids = [srv.publish("/pub/room", f"message {n}") for n in range(2)]
            # Back with the id of the event before both, in tier gold this time.
            s = srv.stream("/feed/room?tier=gold", last_event_id=base)
            events = s.take(2)
            ft.check_eq([e.id for e in events], ids, "replayed ids")
            s.drain(0.2)
            second_bytes = len(s.raw)
            s.close()
            active = wait_active(srv, 2, json_format)
            ft.check_eq(len(active), 2, "ACTIVE lines after the second stream")
            c2 = active[1]["conn"]
            ft.check(c2 > c1, "connection ids do not increase", (c1, c2))
            entries = wait_closed(srv, c2, json_format)

            one = check_sequence(entries, c1, ["CONNECTING", "ACTIVE", "CLOSED"], "first stream")
            ft.check_eq(one[0], dict(one[0], event="CONNECTING", conn=c1, remote="127.0.0.1"),
                        "CONNECTING fields")
            ft.check_eq({k: one[1].get(k) for k in ("route", "topics", "tier")},
                        {"route": "/feed/:topic", "topics": 1, "tier": None}, "ACTIVE fields")
            closed = one[2]
            ft.check_eq({k: closed.get(k) for k in ("reason", "events", "bytes", "dropped")},
                        {"reason": "client", "events": 0, "bytes": closed.get("bytes"), "dropped": 0},
                        "CLOSED fields of the first stream")
            ft.check(isinstance(closed.get("duration_ms"), int) and closed["duration_ms"] >= 0,
                     "CLOSED duration_ms is not a non-negative integer", closed)
            ft.check(isinstance(closed.get("bytes"), int) and closed["bytes"] >= first_bytes > 0,
                     f"CLOSED bytes is not at least the {first_bytes} body bytes the client got",
                     closed)

            two = check_sequence(entries, c2, ["CONNECTING", "RECONNECTING", "ACTIVE", "CLOSED"],
                                 "resumed stream")
            ft.check_eq({k: two[1].get(k) for k in ("replayed", "reset")},
                        {"replayed": 2, "reset": False}, "RECONNECTING fields")
            ft.check_eq({k: two[2].get(k) for k in ("route", "topics", "tier")},
                        {"route": "/feed/:topic", "topics": 1, "tier": "gold"}, "ACTIVE fields")
            closed = two[3]
            ft.check_eq({k: closed.get(k) for k in ("reason", "events", "dropped")},
                        {"reason": "client", "events": 2, "dropped": 0},
                        "CLOSED fields of the resumed stream")
            ft.check(isinstance(closed.get("bytes"), int) and closed["bytes"] >= second_bytes > 0,
                     f"CLOSED bytes is not at least the {second_bytes} body bytes the client got",
                     closed)

            # Every line of the two streams carries a time and the level info.
            for e in one + two:
                ft.check(isinstance(e.get("ts"), str) and e["ts"].endswith("Z"), "no ts", e)
                ft.check_eq(e.get("level"), "info", f"level of {e['event']}")

            # The other connections (readiness checks, publishes) never became streams: each
            # is CONNECTING then CLOSED, and only the two streams have ACTIVE lines.
            for conn, seq in by_conn(entries).items():
                if conn in (c1, c2):
                    continue
                ft.check_eq([e["event"] for e in seq], ["CONNECTING", "CLOSED"],
                            f"state lines of non-stream connection {conn}")

        if json_format:
            with ft.subtest("[json] every log line is one JSON object with ts and level"):
                lines = srv.log().splitlines()
                ft.check(len(lines) >= 10, "too few log lines", lines)
                for line in lines:
                    try:
                        obj = json.loads(line)
                    except ValueError:
                        ft.fail("a log line is not JSON", line)
                    ft.check(isinstance(obj, dict), "a log line is not a JSON object", line)
                    ft.check(isinstance(obj.get("ts"), str) and obj.get("level") in
                             ("debug", "info", "warn", "error"), "a line without ts/level", line)
                ft.check(any(json.loads(l).get("msg", "").startswith("listening on") for l in lines),
                         "plain messages are not JSON objects with msg", lines[:5])


def run():
    run_format(False)
    run_format(True)


ft.main(run, limit=60)
