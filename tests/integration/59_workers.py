"""Worker threads: `workers = 2` runs two loops, each with its own Lua VM and its own
SO_REUSEPORT listener. Whichever worker a connection lands on, a client sees one server: every
stream gets every event once and in order, resumes replay exactly, presence, rate-limit buckets
and freshet.shared span the workers, /metrics counts the whole process, SIGHUP reloads every
worker and SIGTERM drains them all."""

import json
import os
import re
import signal
import time

import frtest as ft

APP = """
    local freshet = require "freshet"
    local app = freshet.app {
      workers = WORKERS,
      broker = os.getenv("FRESHET_BROKER") or "memory",
      heartbeat = 30,
      tiers = { tight = { rate = 0.01, burst = 3 } },
    }
    app:stream("/sub/:topics", "routes/sub.lua")
    app:publish("/pub/:topic", "routes/pub.lua")
    app:publish("/count/:topic", "routes/count.lua")
    app:publish("/who/:topic", "routes/who.lua")
    app:publish("/tight/:topic", "routes/tight.lua")
    app:publish("/wk/:topic", "routes/wk.lua")
    return app
"""

SUB = """
    local route = {}
    function route.auth(req) return { id = req.query.user } end
    function route.topics(req)
      local list = {}
      for name in req.params.topics:gmatch("[^,]+") do list[#list + 1] = name end
      return list
    end
    return route
"""

PUB = """
    local route = {}
    function route.publish(req, body)
      return { topic = req.params.topic, data = "v1:" .. body }
    end
    return route
"""

# A counter every worker increments: the values published must be 1..n, each once.
COUNT = """
    local freshet = require "freshet"
    local route = {}
    function route.publish(req)
      local n = assert(freshet.shared:incr("hits", 1, 0))
      return { topic = req.params.topic, data = tostring(n) }
    end
    return route
"""

WHO = """
    local freshet = require "freshet"
    local cjson = require "cjson"
    local route = {}
    function route.publish(req)
      local p = freshet.presence(req.params.topic)
      table.sort(p.ids)
      return { topic = "answers", data = cjson.encode(p) }
    end
    return route
"""

TIGHT = """
    local route = {}
    function route.publish(req, body) return { topic = req.params.topic, data = body } end
    function route.tier() return "tight" end
    return route
"""


WK = """
    local freshet = require "freshet"
    local route = {}
    function route.publish(req) return { topic = req.params.topic, data = tostring(freshet.worker) } end
    return route
"""


def app_dir(workers="2"):
    return ft.AppDir({"app.lua": APP.replace("WORKERS", workers), "routes/sub.lua": SUB,
                      "routes/pub.lua": PUB, "routes/count.lua": COUNT,
                      "routes/who.lua": WHO, "routes/tight.lua": TIGHT, "routes/wk.lua": WK})


def workers_of(srv, first_conn_line=0):
    """Connection ids are numbered k+1, k+1+N, … on worker k: with two workers the parity of
    an id says which worker accepted it."""
    ids = [int(m) for m in re.findall(r'"event":"CONNECTING","conn":(\d+)', srv.log())]
    return {i % 2 for i in ids[first_conn_line:]}


def run():
    with ft.subtest("two workers: connections land on both listeners"):
        with ft.Server(app_dir()) as srv:
            srv.wait_log(r"2 workers \(threads\)")
            streams = [ft.open_stream(srv.port, "/sub/room") for _ in range(24)]
            ft.check_eq(workers_of(srv), {0, 1}, "workers that accepted 24 connections")
            for s in streams:
                s.close()

    with ft.subtest("every stream on either worker gets every event once, in order; resume "
                    "on any worker replays exactly"):
        with ft.Server(app_dir()) as srv:
            streams = [ft.open_stream(srv.port, "/sub/room") for _ in range(20)]
            # Each publish on a new connection: the publishing worker varies too.
            ids = [srv.publish("/pub/room", str(i)) for i in range(300)]
            ft.check_eq(workers_of(srv), {0, 1}, "workers that took streams and publishes")
            want = ["v1:%d" % i for i in range(300)]
            for k, s in enumerate(streams):
                got = s.take(300, timeout=10)
                ft.check_eq([e.data for e in got], want, f"stream {k}: data in order")
                ft.check_eq([e.id for e in got], ids, f"stream {k}: ids")
                s.expect_no_event(0.05)
            for k in range(10):
                with ft.open_stream(srv.port, "/sub/room", last_event_id=ids[149]) as r:
                    got = r.take(150, timeout=10)
                    ft.check_eq([e.id for e in got], ids[150:], f"resume {k}: replayed ids")
                    r.expect_no_event(0.05)
            for s in streams:
                s.close()

    with ft.subtest("WebSocket and SSE streams on both workers share each event's frames"):
        with ft.Server(app_dir()) as srv:
            sockets = [ft.ws_connect(srv.port, "/sub/mixed") for _ in range(12)]
            streams = [ft.open_stream(srv.port, "/sub/mixed") for _ in range(12)]
            ft.check_eq(workers_of(srv), {0, 1}, "workers holding the streams")
            # The frame of an event is built by whichever worker needs it first, and read by
            # the other: every envelope must arrive whole.
            ids = [srv.publish("/pub/mixed", "payload %d " % i + "x" * (i % 97))
                   for i in range(200)]
            want = ["v1:payload %d " % i + "x" * (i % 97) for i in range(200)]
            for k, ws in enumerate(sockets):
                got = ws.events(200, timeout=10)
                ft.check_eq([m["id"] for m in got], ids, f"WebSocket {k}: ids")
                ft.check_eq([m["data"] for m in got], want, f"WebSocket {k}: data")
                ws.close()
            for k, s in enumerate(streams):
                ft.check_eq([e.data for e in s.take(200, timeout=10)], want, f"SSE {k}: data")
                s.close()

    with ft.subtest("freshet.shared:incr is one counter over the workers"):
        with ft.Server(app_dir()) as srv:
            with ft.open_stream(srv.port, "/sub/hits") as s:
                for _ in range(40):
                    srv.publish("/count/hits", "")
                got = [int(e.data) for e in s.take(40, timeout=10)]
                ft.check_eq(got, list(range(1, 41)), "counter values published")

    with ft.subtest("freshet.worker tells the workers apart"):
        with ft.Server(app_dir()) as srv:
            with ft.open_stream(srv.port, "/sub/wk") as s:
                for _ in range(30):
                    srv.publish("/wk/wk", "")
                got = {e.data for e in s.take(30, timeout=10)}
                ft.check_eq(got, {"0", "1"}, "freshet.worker values seen over 30 publishes")

    with ft.subtest("presence counts the streams of every worker"):
        with ft.Server(app_dir()) as srv:
            held = [ft.open_stream(srv.port, f"/sub/lobby?user=u{i % 5}") for i in range(16)]
            ft.check_eq(workers_of(srv), {0, 1}, "workers holding the lobby's streams")
            for attempt in range(6):
                with ft.open_stream(srv.port, "/sub/answers?user=probe") as probe:
                    srv.publish("/who/lobby", "")
                    got = json.loads(probe.next_event(timeout=5).data)
                ft.check_eq((got["count"], got["ids"]),
                            (16, ["u0", "u1", "u2", "u3", "u4"]), f"presence, asked {attempt}")
            for s in held[:6]:
                s.close()
            deadline = time.monotonic() + 5
            while True:
                with ft.open_stream(srv.port, "/sub/answers?user=probe") as probe:
                    srv.publish("/who/lobby", "")
                    got = json.loads(probe.next_event(timeout=5).data)
                if got["count"] == 10 or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            ft.check_eq(got["count"], 10, "presence after 6 streams closed")
            for s in held[6:]:
                s.close()

    with ft.subtest("a rate-limit bucket is one bucket over the workers"):
        with ft.Server(app_dir()) as srv:
            codes = [ft.publish_raw(srv.port, "/tight/t", b"x").status for _ in range(12)]
            ft.check_eq(workers_of(srv), {0, 1}, "workers that took the 12 publishes")
            ft.check_eq(codes, [201] * 3 + [429] * 9, "statuses with burst 3, rate 0.01/s")

    with ft.subtest("/metrics and /health count the whole process"):
        with ft.Server(app_dir()) as srv:
            streams = [ft.open_stream(srv.port, "/sub/m") for _ in range(10)]
            for i in range(25):
                srv.publish("/pub/m", str(i))
            for s in streams:
                s.take(25, timeout=10)
            for attempt in range(8):
                text = ft.request(srv.port, "GET", "/metrics").text
                pub = re.search(r'^freshet_events_published_total\{priority="normal"\} (\d+)$',
                                text, re.M)
                ft.check(pub is not None, "no published counter", text[:2000])
                ft.check_eq(int(pub.group(1)), 25, f"published total, scrape {attempt}")
                dl = re.search(r"^freshet_events_delivered_total (\d+)$", text, re.M)
                ft.check_eq(int(dl.group(1)), 250, f"delivered total, scrape {attempt}")
                h = srv.health()
                ft.check_eq((h["streams"], h["published"], h["topics"]), (10, 25, 1),
                            f"/health, ask {attempt}")
            # Other workers' connections are counted as of their last heartbeat tick (1 s).
            deadline = time.monotonic() + 5
            while True:
                text = ft.request(srv.port, "GET", "/metrics").text
                act = re.search(r'^freshet_connections\{route="/sub/:topics",transport="sse",'
                                r'state="active"\} (\d+)$', text, re.M)
                depth = re.search(r"^freshet_stream_queue_depth_events_count (\d+)$", text, re.M)
                got = (int(act.group(1)) if act else 0, int(depth.group(1)) if depth else 0)
                if got == (10, 10) or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            ft.check_eq(got, (10, 10), "active streams and queue-depth samples over the workers")
            for s in streams:
                s.close()

    with ft.subtest("SIGHUP reloads the scripts of every worker"):
        app = app_dir()
        with ft.Server(app) as srv:
            app.write({"routes/pub.lua": PUB.replace('"v1:"', '"v2:"')})
            srv.send_signal(signal.SIGHUP)
            deadline = time.monotonic() + 5
            while len(re.findall(r"reloaded ", srv.log())) < 2:
                ft.check(time.monotonic() < deadline, "two workers did not both reload",
                         srv.log_tail())
                time.sleep(0.05)
            with ft.open_stream(srv.port, "/sub/r") as s:
                for i in range(20):
                    srv.publish("/pub/r", str(i))
                got = [e.data for e in s.take(20, timeout=10)]
                ft.check_eq(got, ["v2:%d" % i for i in range(20)], "data after the reload")

    with ft.subtest("SIGTERM drains the streams of both workers and exits 0"):
        with ft.Server(app_dir()) as srv:
            streams = [ft.open_stream(srv.port, "/sub/d") for _ in range(20)]
            ft.check_eq(workers_of(srv), {0, 1}, "workers holding the streams")
            srv.send_signal(signal.SIGTERM)
            for s in streams:
                s.wait_end(timeout=10)
                ft.check(s.parser.retry is not None, "stream ended without retry")
            srv.stop(expect_code=0)

    with ft.subtest("Redis broker: each worker is a node; streams on both get every event"):
        with ft.RedisServer() as redis:
            srv = ft.redis_node(redis, app_dir())
            try:
                streams = [ft.open_stream(srv.port, "/sub/red") for _ in range(16)]
                ft.check_eq(workers_of(srv), {0, 1}, "workers holding the streams")
                ids = [srv.publish("/pub/red", str(i)) for i in range(100)]
                for k, s in enumerate(streams):
                    got = s.take(100, timeout=10)
                    ft.check_eq([e.id for e in got], ids, f"stream {k}: ids in order")
                    s.expect_no_event(0.05)
                with ft.open_stream(srv.port, "/sub/red", last_event_id=ids[49]) as r:
                    ft.check_eq([e.id for e in r.take(50, timeout=10)], ids[50:],
                                "resumed on a Redis-backed worker")
                for s in streams:
                    s.close()
                srv.stop(expect_code=0)
            finally:
                srv.kill()

    with ft.subtest("a workers value that is not a count from 1 to 64 or \"auto\" is refused"):
        for bad in ("0", "65", "1.5", '"many"', '"-2"', "true"):
            p = ft.run_cli(["--check", app_dir(bad).app])
            ft.check_eq(p.returncode, 1, f"--check exit code with workers = {bad}")
            msg = 'workers must be "auto" or a whole number from 1 to 64'
            ft.check(msg in p.stderr.decode(), f"--check message with workers = {bad}", p.stderr)
        p = ft.run_cli(["--check", app_dir('"3"').app])
        ft.check_eq(p.returncode, 0, 'exit code with workers = "3" (as os.getenv gives it)')

    with ft.subtest('workers = "auto" starts one worker per core'):
        cores = len(os.sched_getaffinity(0))
        with ft.Server(app_dir('"auto"')) as srv:
            if cores > 1:
                srv.wait_log(r"%d workers \(threads\)" % min(cores, 64))
            else:
                ft.check("workers (threads)" not in srv.log(), "one core, one worker",
                         srv.log_tail())
            with ft.open_stream(srv.port, "/sub/a") as s:
                srv.publish("/pub/a", "x")
                ft.check_eq(s.next_event().data, "v1:x", "event on auto workers")


if __name__ == "__main__":
    ft.main(run, limit=120)
