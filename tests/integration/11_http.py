"""HTTP layer: routing errors, malformed requests, limits, /health, CORS, keep-alive."""

import time

import frtest as ft

ALLOWED = "https://allowed.example"


def run():
    app = ft.pubsub_app(settings=f"""
        cors = {{ "{ALLOWED}" }},
        limits = {{ body = 1024, headers = 4096 }},
        heartbeat = 30,
    """)
    with ft.Server(app) as srv:
        port = srv.port

        with ft.subtest("unknown path -> 404 JSON error"):
            srv.get("/no/such/route").check_error(404, "GET /no/such/route")
            srv.post("/nothing", b"x").check_error(404, "POST /nothing")

        with ft.subtest("wrong method on a known path -> 405 with Allow"):
            r = srv.get("/pub/t")
            r.check_error(405, "GET on a publish route")
            allow = [m.strip().upper() for m in (r.header("allow") or "").split(",")]
            ft.check("POST" in allow, "Allow of the publish route does not list POST", r.summary())
            r = ft.request(port, "DELETE", "/sub/t")
            r.check_error(405, "DELETE on a stream route")
            allow = [m.strip().upper() for m in (r.header("allow") or "").split(",")]
            ft.check("GET" in allow, "Allow of the stream route does not list GET", r.summary())

        with ft.subtest("malformed requests -> 400 and the connection is closed"):
            cases = {
                "header line without a colon":
                    b"GET /health HTTP/1.1\r\nHost: a\r\nthis is not a header\r\n\r\n",
                "TLS hello on the plain port":
                    b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + bytes(range(32)) + b"\r\n\r\n",
                "non-numeric Content-Length":
                    b"POST /pub/t HTTP/1.1\r\nHost: a\r\nContent-Length: abc\r\n\r\nxyz",
                "bad HTTP version": b"GET /health HTTP/7.q\r\nHost: a\r\n\r\n",
            }
            for what, raw in cases.items():
                with ft.Conn(port) as c:
                    c.send(raw)
                    r = c.read_response()
                    r.check_error(400, what)
                    ft.check(c.closed_by_peer(3), f"{what}: connection still open after the 400")
            ft.check_eq(srv.get("/health").status, 200, "server still answers after bad requests")

        with ft.subtest("headers over limits.headers -> 431"):
            r = srv.get("/health", headers={"X-Big": "a" * 8000})
            r.check_error(431, "8000-byte header with limits.headers = 4096")
            many = [(f"X-H{i}", "v" * 60) for i in range(120)]
            r = srv.get("/health", headers=many)
            r.check_error(431, "120 headers of ~70 bytes with limits.headers = 4096")
            ft.check_eq(srv.get("/health", headers={"X-Small": "a" * 1000}).status, 200,
                        "a 1000-byte header is under the limit")

        with ft.subtest("body over limits.body -> 413"):
            r = srv.post("/pub/t", b"x" * 4096)
            r.check_error(413, "4096-byte body (Content-Length) with limits.body = 1024")
            chunked = b"".join(b"100\r\n" + b"y" * 256 + b"\r\n" for _ in range(8)) + b"0\r\n\r\n"
            r = srv.post("/pub/t", chunked, headers={"Transfer-Encoding": "chunked"})
            r.check_error(413, "2048-byte chunked body with limits.body = 1024")
            ft.check_eq(srv.post("/pub/t", b"z" * 1000).status, 201, "1000-byte body is under the limit")

        with ft.subtest("GET /health -> 200 JSON status, connections, streams, uptime"):
            r = srv.get("/health")
            ft.check_eq(r.status, 200, "status")
            ft.check_eq((r.header("content-type") or "").split(";")[0].strip(), "application/json",
                        "Content-Type of /health")
            h = r.json()
            ft.check_eq(h.get("status"), "ok", "health.status")
            for key in ("connections", "streams"):
                ft.check(type(h.get(key)) is int and h[key] >= 0, f"health.{key} is not a count", h)
            ft.check(isinstance(h.get("uptime"), (int, float)) and h["uptime"] >= 0,
                     "health.uptime is not a number >= 0", h)
            s1 = ft.open_stream(port, "/sub/h1")
            s2 = ft.open_stream(port, "/sub/h2")
            h2 = srv.wait_streams(2, timeout=3)
            ft.check(h2["connections"] >= 3, "two streams + this request: connections >= 3", h2)
            ft.check(h2["uptime"] >= h["uptime"], "uptime went backwards", (h, h2))
            s1.close()
            s2.reset()
            srv.wait_streams(0, timeout=5)

        with ft.subtest("CORS: allowed origin echoed, others not, preflight 204"):
            r = srv.post("/pub/t", b"cors", headers={"Origin": ALLOWED})
            ft.check_eq(r.status, 201, "publish with an allowed Origin")
            ft.check_eq(r.header("access-control-allow-origin"), ALLOWED,
                        "Access-Control-Allow-Origin on a publish")
            r = srv.post("/pub/t", b"cors", headers={"Origin": "https://evil.example"})
            ft.check(r.header("access-control-allow-origin") not in ("https://evil.example", "*"),
                     "a foreign Origin must not be allowed", r.summary())
            with ft.open_stream(port, "/sub/t", headers={"Origin": ALLOWED}) as s:
                ft.check_eq(s.response.header("access-control-allow-origin"), ALLOWED,
                            "Access-Control-Allow-Origin on a stream")
            r = ft.request(port, "OPTIONS", "/pub/t", headers={
                "Origin": ALLOWED, "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type"})
            ft.check_eq(r.status, 204, f"OPTIONS preflight status ({r.summary()})")
            ft.check_eq(r.header("access-control-allow-origin"), ALLOWED,
                        "Access-Control-Allow-Origin on the preflight")

        with ft.subtest("keep-alive: several requests on one connection"):
            with ft.Conn(port) as c:
                a = c.request("GET", "/health")
                ft.check_eq(a.status, 200, "first request")
                b = c.request("POST", "/pub/ka", headers={"Content-Type": "text/plain"}, body="one")
                ft.check_eq(b.status, 201, f"second request on the same connection ({b.summary()})")
                d = c.request("GET", "/no/such")
                ft.check_eq(d.status, 404, "third request (a 404 keeps the connection)")
                e = c.request("GET", "/health")
                ft.check_eq(e.status, 200, "fourth request")
                for resp in (a, b, d, e):
                    ft.check((resp.header("connection") or "").lower() != "close",
                             "server asked to close a keep-alive connection", resp.summary())

        with ft.subtest("a request arriving a byte at a time"):
            with ft.Conn(port) as c:
                raw = ft.build_request("POST", "/pub/slow", {"X-Event": "slow"}, b"bytewise", port)
                for i in range(len(raw)):
                    c.send(raw[i:i + 1])
                    time.sleep(0.001)
                r = c.read_response()
                ft.check_eq(r.status, 201, f"status ({r.summary()})")

        with ft.subtest("pipelined requests get their responses in order"):
            with ft.Conn(port) as c:
                c.send(ft.build_request("GET", "/health", None, None, port)
                       + ft.build_request("POST", "/pub/pipe", None, b"two", port)
                       + ft.build_request("GET", "/no/such", None, None, port)
                       + ft.build_request("POST", "/pub/pipe", None, b"four", port))
                got = [c.read_response().status for _ in range(4)]
                ft.check_eq(got, [200, 201, 404, 201], "statuses of 4 pipelined requests")

        with ft.subtest("Connection: close is honoured"):
            with ft.Conn(port) as c:
                r = c.request("GET", "/health", headers={"Connection": "close"})
                ft.check_eq(r.status, 200, "status")
                ft.check(c.closed_by_peer(3), "connection still open after 'Connection: close'")

        with ft.subtest("the server still serves after all of the above"):
            time.sleep(0.05)
            ft.check_eq(srv.get("/health").json().get("status"), "ok", "health after the tests")

    with ft.Server(ft.pubsub_app(settings='cors = "*",')) as srv:
        with ft.subtest('cors = "*": any Origin is allowed'):
            for origin in ("https://one.example", "http://localhost:8080"):
                r = srv.post("/pub/t", b"x", headers={"Origin": origin})
                ft.check_eq(r.status, 201, "publish status")
                ft.check(r.header("access-control-allow-origin") in (origin, "*"),
                         f"Access-Control-Allow-Origin for {origin}", r.summary())
                r = ft.request(srv.port, "OPTIONS", "/sub/t", headers={
                    "Origin": origin, "Access-Control-Request-Method": "GET"})
                ft.check_eq(r.status, 204, f"preflight for {origin} ({r.summary()})")


ft.main(run, limit=50)
