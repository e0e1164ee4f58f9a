"""Readiness and the admin listener:
- GET /readyz answers 200 {"ready":true} while the process takes new clients, 503 (with
  Retry-After) while it drains or while the Redis broker cannot take publishes; /health keeps
  its JSON and its 200 meanwhile;
- `admin = "host:port"` serves /health, /readyz and /metrics on a listener of its own (404 for
  anything else there), the public listener answers them 404, /metrics on the admin listener
  sums every worker (workers = 2), and the admin listener answers /readyz 503 through a drain;
- an admin address that cannot be bound stops the start with exit code 1."""

import json
import signal
import socket
import time

import frtest as ft


def ready(port):
    r = ft.request(port, "GET", "/readyz")
    return r.status, json.loads(r.text or "null"), r


def wait_ready(port, status, timeout=15):
    deadline = time.monotonic() + timeout
    got = None
    while time.monotonic() < deadline:
        got = ready(port)
        if got[0] == status:
            return got
        time.sleep(0.1)
    ft.fail(f"/readyz did not answer {status} within {timeout}s", got and got[2].summary())


def memory_broker():
    with ft.subtest("/readyz: 200 when ready, HEAD too, 405 for POST"):
        with ft.Server(ft.pubsub_app()) as srv:
            status, body, r = ready(srv.port)
            ft.check_eq((status, body), (200, {"ready": True}), "GET /readyz")
            ft.check_eq(r.header("cache-control"), "no-cache", "Cache-Control of /readyz")
            h = ft.request(srv.port, "HEAD", "/readyz")
            ft.check_eq((h.status, h.body), (200, b""), "HEAD /readyz (status, body)")
            p = ft.request(srv.port, "POST", "/readyz", body=b"x")
            ft.check_eq((p.status, p.header("allow")), (405, "GET, HEAD"), "POST /readyz")
            ft.check_eq(srv.health().get("status"), "ok", "/health status beside /readyz")

    with ft.subtest("/readyz: 503 draining once SIGTERM came"):
        with ft.Server(ft.pubsub_app("drain = 3,")) as srv:
            s = srv.stream("/sub/d")  # keeps the drain going for its window
            # A request being read when the signal comes is still answered.
            c = socket.create_connection((ft.HOST, srv.port), timeout=5)
            c.sendall(b"GET /readyz HTTP/1.1\r\nHost: x\r\n")
            time.sleep(0.1)
            srv.send_signal(signal.SIGTERM)
            srv.wait_log(r"SIGTERM: draining")
            c.sendall(b"\r\n")
            raw = b""
            c.settimeout(5)
            while b"\r\n\r\n" not in raw or not raw.rstrip().endswith(b"}"):
                chunk = c.recv(4096)
                if not chunk:
                    break
                raw += chunk
            c.close()
            head, _, body = raw.partition(b"\r\n\r\n")
            ft.check(head.startswith(b"HTTP/1.1 503 "), "/readyz during the drain is not 503",
                     raw)
            ft.check(b"\r\nRetry-After: " in head, "503 without Retry-After", raw)
            ft.check_eq(json.loads(body), {"ready": False, "reason": "draining"},
                        "/readyz body during the drain")
            s.close()
            srv.wait_exit(10)
            ft.check_eq(srv.returncode, 0, "exit code after the drain")


def redis_broker():
    with ft.subtest("/readyz: 503 while Redis is down, 200 once it is back; /health stays 200"):
        port = ft.free_port()
        redis = ft.RedisServer(port=port).start()
        app = ft.pubsub_app(f'broker = "{redis.url}", workers = 2,')
        with ft.Server(app) as srv:
            ft.wait_health(srv)
            wait_ready(srv.port, 200)
            redis.stop()
            _, body, r = wait_ready(srv.port, 503)
            ft.check_eq(body, {"ready": False, "reason": "broker unavailable"},
                        "/readyz without Redis")
            ft.check(r.header("retry-after") is not None, "503 without Retry-After", r.summary())
            pub = srv.post("/pub/x", b"x")
            ft.check_eq(pub.status, 503, "a publish while /readyz says 503")
            h = ft.request(srv.port, "GET", "/health")
            ft.check_eq((h.status, json.loads(h.text)["status"]), (200, "degraded"),
                        "/health without Redis (status code, status)")
            redis = ft.RedisServer(port=port).start()
            wait_ready(srv.port, 200)
            ft.check_eq(srv.post("/pub/x", b"x").status, 201, "a publish once /readyz is 200")
            # The Redis families pass the same checks as the rest (76_metrics).
            ft.promtool_check(ft.request(srv.port, "GET", "/metrics").text)
        redis.stop()


def admin_listener():
    with ft.subtest("admin: probes on their own listener, 404 on the public one, whole process"):
        admin = ft.free_port()
        app = ft.pubsub_app(f'admin = "127.0.0.1:{admin}", workers = 2, heartbeat = 0.2, '
                            f'drain = 3,')
        srv = ft.Server(app, health_port=admin).start()
        srv.wait_log(rf"admin listener \(/health, /readyz, /metrics\) on "
                     rf"http://127\.0\.0\.1:{admin}")
        for path in ("/health", "/readyz", "/metrics"):
            r = ft.request(srv.port, "GET", path)
            ft.check_eq(r.status, 404, f"GET {path} on the public listener")
            ft.check_eq(ft.request(admin, "GET", path).status, 200, f"GET {path} on admin")
        ft.check_eq(ft.request(admin, "GET", "/metrics?x=1").status, 200,
                    "GET /metrics?x=1 on admin")
        for path in ("/sub/a", "/pub/a", "/", "/_freshet/freshet.js"):
            ft.check_eq(ft.request(admin, "GET", path).status, 404, f"GET {path} on admin")
        # Streams over both workers (the kernel spreads connections over the two listeners):
        # the admin's /metrics counts all of them.
        streams = [srv.stream(f"/sub/t{i}") for i in range(8)]
        try:
            for i in range(8):
                srv.publish(f"/pub/t{i}", "x")
            for s in streams:
                s.next_event()
            deadline = time.monotonic() + 5
            while True:
                m = ft.parse_metrics(ft.request(admin, "GET", "/metrics").text)
                active = m.get(("freshet_connections", (("route", "/sub/:topics"),
                                                        ("state", "active"),
                                                        ("transport", "sse"))), 0)
                if active == 8 or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            ft.check_eq(active, 8.0, "active streams on the admin's /metrics (two workers)")
            ft.check_eq(ft.metric(m, "freshet_events_published_total", priority="normal"), 8.0,
                        "events published, summed over the workers")
            h = json.loads(ft.request(admin, "GET", "/health").text)
            ft.check_eq(h.get("streams"), 8, "/health streams on the admin listener")
            srv.send_signal(signal.SIGTERM)
            srv.wait_log(r"SIGTERM: draining")
            status, body, _ = ready(admin)
            ft.check_eq((status, body), (503, {"ready": False, "reason": "draining"}),
                        "/readyz on the admin listener during the drain")
        finally:
            for s in streams:
                s.close()
        ft.check_eq(srv.wait_exit(10), 0, "exit code after the drain")

    with ft.subtest("admin: an address that cannot be bound stops the start (exit 1)"):
        taken = socket.socket()
        taken.bind((ft.HOST, 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        try:
            app = ft.pubsub_app(f'admin = "127.0.0.1:{port}",')
            p = ft.run_cli([app.app, "--listen", f"{ft.HOST}:{ft.free_port()}"])
            ft.check_eq(p.returncode, 1, "exit code with the admin port taken")
            ft.check(f"listen on 127.0.0.1:{port}" in p.stderr.decode(),
                     "stderr does not name the admin address", p.stderr.decode())
        finally:
            taken.close()

    with ft.subtest("admin: a malformed address is named by --check"):
        app = ft.pubsub_app('admin = "localhost",')
        p = ft.run_cli(["--check", app.app])
        ft.check_eq(p.returncode, 1, "exit code of --check")
        ft.check("admin must be \"host:port\"" in p.stderr.decode(), "stderr",
                 p.stderr.decode())


def run():
    memory_broker()
    redis_broker()
    admin_listener()


ft.main(run, limit=90)
