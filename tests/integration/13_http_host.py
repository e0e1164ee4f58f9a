"""Host and request-target rules (RFC 9112 §3.2), unknown methods, and header floods.

- HTTP/1.1 without Host, with two Host lines or with an invalid one: 400 and closed. HTTP/1.0
  may omit Host (§3.2: the requirement is HTTP/1.1's), but not repeat it or send a bad one.
- A repeated Host never reaches a script joined as "a, evil".
- Absolute-form targets (`GET http://host/path`) are served; their authority is the host the
  scripts see (§3.2.2).
- A method token llhttp does not know: 501 and closed; bytes that are no method stay 400.
- 120,000 repeats of one header with raised limits: answered in well under a second, and
  /health on another connection answers meanwhile (repeats are joined in linear time); past
  limits.header_lines: 431."""

import threading
import time

import frtest as ft

ECHO = """
    local route = {}
    function route.auth(req)
      return nil, 403, "host=" .. tostring(req.headers.host) .. " path=" .. req.path ..
        " q=" .. tostring(req.query.q) .. " x=" .. #(req.headers.x or "")
    end
    function route.topics(req, who) return { "t" } end
    return route
"""


def raw(port, data, timeout=5.0):
    """Sends bytes on a new connection; returns (everything received, closed by the server)."""
    return ft.exchange(port, data, timeout)


def status_of(data):
    line = data.split(b"\r\n", 1)[0]
    parts = line.split(b" ")
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None


def run():
    app = ft.pubsub_app(settings="""
        limits = { headers = 4 * 1024 * 1024, header_lines = 200000 },
        timeouts = { headers = 30 },
    """, routes='app:stream("/echo/:x", "routes/echo.lua")\n', files={"routes/echo.lua": ECHO})
    with ft.Server(app) as srv:
        port = srv.port

        with ft.subtest("HTTP/1.1 without Host -> 400, closed; HTTP/1.0 without Host -> 200"):
            out, closed = raw(port, b"GET /health HTTP/1.1\r\n\r\n")
            ft.check_eq(status_of(out), 400, "HTTP/1.1 with no Host")
            ft.check(b"Host" in out, "the 400 does not name Host", out)
            ft.check(closed, "the connection stays open after the 400")
            out, _ = raw(port, b"GET /health HTTP/1.0\r\n\r\n")
            ft.check_eq(status_of(out), 200, "HTTP/1.0 with no Host")

        with ft.subtest("repeated Host -> 400 and never reaches the script as 'a, evil'"):
            for version in (b"1.1", b"1.0"):
                out, closed = raw(port, b"GET /echo/x HTTP/" + version +
                                  b"\r\nHost: a\r\nHost: evil\r\n\r\n")
                ft.check_eq(status_of(out), 400, f"HTTP/{version.decode()} with two Host lines")
                ft.check(b"evil" not in out and b"host=" not in out,
                         "the script saw the request", out)
                ft.check(closed, "the connection stays open after the 400")

        with ft.subtest("invalid Host values -> 400; valid ones reach the script"):
            for bad in (b"a b", b"a/b", b"a:port", b"a:123456", b"[::1", b"a\x80b", b"u@h"):
                out, _ = raw(port, b"GET /echo/x HTTP/1.1\r\nHost: " + bad + b"\r\n\r\n")
                ft.check_eq(status_of(out), 400, f"Host: {bad!r}")
            for good in (b"example.com", b"example.com:8080", b"[::1]:80", b"127.0.0.1", b""):
                out, _ = raw(port, b"GET /echo/x HTTP/1.1\r\nHost: " + good +
                             b"\r\nConnection: close\r\n\r\n")
                ft.check_eq(status_of(out), 403, f"Host: {good!r} reaches the auth hook")
                ft.check(b"host=" + good + b" " in out, f"the script saw another host for {good!r}",
                         out)

        with ft.subtest("absolute-form target: served, its authority is the host"):
            out, _ = raw(port, b"GET http://app.example:81/echo/x?q=1 HTTP/1.1\r\n"
                               b"Host: other.example\r\nConnection: close\r\n\r\n")
            ft.check_eq(status_of(out), 403, "absolute-form GET reaches the route")
            ft.check(b"host=app.example:81 path=/echo/x q=1 " in out,
                     "the script did not see the target's host, path and query", out)
            out, _ = raw(port, b"GET http://app.example HTTP/1.1\r\nHost: app.example\r\n"
                               b"Connection: close\r\n\r\n")
            ft.check_eq(status_of(out), 404, "http://app.example is the path /")
            out, _ = raw(port, b"GET HTTP://APP.EXAMPLE/health HTTP/1.1\r\nHost: x\r\n"
                               b"Connection: close\r\n\r\n")
            ft.check_eq(status_of(out), 200, "an upper-case scheme")
            out, _ = raw(port, b"GET http:///health HTTP/1.1\r\nHost: x\r\n\r\n")
            ft.check_eq(status_of(out), 400, "an absolute target without a host")

        with ft.subtest("unknown method -> 501 and closed; garbage stays 400"):
            out, closed = raw(port, b"BREW /health HTTP/1.1\r\nHost: a\r\n\r\n")
            ft.check_eq(status_of(out), 501, "BREW")
            ft.check(closed, "the connection stays open after the 501")
            out, _ = raw(port, b"\x16\x03\x01\x00\xa5\x01\x00\x00 /x HTTP/1.1\r\n\r\n")
            ft.check_eq(status_of(out), 400, "bytes that are no method token")

        with ft.subtest("120,000 repeats of a header: joined fast, /health answers meanwhile"):
            n = 120000
            flood = (b"GET /echo/x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n" +
                     b"X: a\r\n" * n + b"\r\n")
            result = {}

            def send_flood():
                started = time.monotonic()
                result["out"], _ = raw(port, flood, timeout=30)
                result["took"] = time.monotonic() - started

            t = threading.Thread(target=send_flood)
            t.start()
            worst = 0.0
            while t.is_alive():
                started = time.monotonic()
                ft.check_eq(srv.get("/health", timeout=10).status, 200, "/health during the flood")
                worst = max(worst, time.monotonic() - started)
                time.sleep(0.02)
            t.join()
            out = result["out"]
            ft.check_eq(status_of(out), 403, "the flooded request reaches its route")
            # "a, a, ..." of n values: 3n - 2 bytes.
            ft.check(b" x=%d" % (3 * n - 2) in out, "the joined header has the wrong length", out)
            print(f"    flood answered in {result['took']:.2f}s; /health worst {worst:.3f}s")
            ft.check(result["took"] < 3, f"the flood took {result['took']:.2f}s to answer")
            ft.check(worst < 1.0, f"/health took {worst:.2f}s during the flood")

    app = ft.pubsub_app(settings="limits = { headers = 4 * 1024 * 1024 },")
    with ft.Server(app) as srv:
        with ft.subtest("past limits.header_lines (100 by default) -> 431"):
            many = b"".join(b"X-%d: v\r\n" % i for i in range(99))
            out, _ = raw(srv.port, b"GET /health HTTP/1.1\r\nHost: a\r\n" + many + b"\r\n")
            ft.check_eq(status_of(out), 200, "100 header lines")
            out, closed = raw(srv.port, b"GET /health HTTP/1.1\r\nHost: a\r\n" + many +
                              b"X-last: v\r\n\r\n")
            ft.check_eq(status_of(out), 431, "101 header lines")
            ft.check(b"header_lines" in out, "the 431 does not name the limit", out)
            ft.check(closed, "the connection stays open after the 431")


ft.main(run)
