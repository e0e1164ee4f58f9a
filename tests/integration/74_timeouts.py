"""Connection hygiene: a request whose headers do not arrive within timeouts.headers gets 408
and is closed (slow-loris, and a connection that sends nothing); a keep-alive connection idle
for timeouts.idle is closed; headers over limits.headers get 431; streams are subject to
neither timeout."""

import socket
import time

import frtest as ft

APP_SETTINGS = """
    heartbeat = 30,
    timeouts = { headers = 1, idle = 1 },
    limits = { headers = 2048 },
"""


def recv_some(sock, timeout):
    """What arrives within timeout: bytes, b"" on EOF or reset, None if nothing."""
    sock.settimeout(timeout)
    try:
        return sock.recv(65536)
    except socket.timeout:
        return None
    except ft.GONE:
        return b""


def read_until_eof(sock, timeout):
    """Everything until the server closes; (data, closed, seconds waited)."""
    started = time.monotonic()
    data = b""
    while time.monotonic() - started < timeout:
        chunk = recv_some(sock, max(0.01, timeout - (time.monotonic() - started)))
        if chunk is None:
            break
        if chunk == b"":
            return data, True, time.monotonic() - started
        data += chunk
    return data, False, time.monotonic() - started


def parse_response(raw, what):
    """A Response from the bytes of one complete response with Content-Length."""
    ft.check(b"\r\n\r\n" in raw, f"{what}: no complete response", raw[:500])
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    ft.check(len(parts) >= 2 and parts[1].isdigit(), f"{what}: bad status line", lines[0])
    headers = []
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers.append((name.decode("latin-1"), value.strip().decode("latin-1")))
    resp = ft.Response(parts[0].decode(), int(parts[1]), (parts[2] if len(parts) > 2 else b"").decode(),
                       headers, b"", head + b"\r\n\r\n")
    length = int(resp.header("content-length") or 0)
    ft.check(len(body) >= length, f"{what}: body shorter than Content-Length", raw[:500])
    resp.body = body[:length]
    return resp


def run():
    app = ft.pubsub_app(APP_SETTINGS)
    with ft.Server(app) as srv:
        with ft.subtest("slow-loris: headers one byte per 300 ms get 408 and a close"):
            req = ft.build_request("GET", "/health", {"X-Padding": "a" * 20}, None, srv.port)
            sock = ft.wrap(socket.create_connection((ft.HOST, srv.port), timeout=5), srv.port)
            try:
                started = time.monotonic()
                got = b""
                sent = 0
                for byte in req:
                    try:
                        sock.send(bytes([byte]))
                        sent += 1
                    except (BrokenPipeError, *ft.GONE):
                        break
                    chunk = recv_some(sock, 0.3)
                    if chunk:
                        got += chunk
                    if chunk == b"" or b"\r\n\r\n" in got:
                        break
                answered = time.monotonic() - started
                rest, closed, _ = read_until_eof(sock, 3)
                got += rest
            finally:
                sock.close()
            ft.check(sent < len(req), "the whole slow request was accepted", got[:300])
            resp = parse_response(got, "slow-loris")
            resp.check_error(408, "slow-loris")
            ft.check(closed, "the connection was not closed after the 408")
            print(f"    408 after {answered:.2f}s and {sent} of {len(req)} bytes", flush=True)
            ft.check(0.9 <= answered <= 2.5, f"the 408 came after {answered:.2f}s "
                                             f"(timeouts.headers = 1)")

        with ft.subtest("a connection that sends nothing gets 408 and a close"):
            sock = ft.wrap(socket.create_connection((ft.HOST, srv.port), timeout=5), srv.port)
            try:
                data, closed, waited = read_until_eof(sock, 4)
            finally:
                sock.close()
            resp = parse_response(data, "silent connection")
            resp.check_error(408, "silent connection")
            ft.check(closed, "the silent connection was not closed after the 408")
            ft.check(waited <= 3, f"the silent connection was closed after {waited:.2f}s")

        with ft.subtest("an idle keep-alive connection is closed after timeouts.idle"):
            with ft.Conn(srv.port) as c:
                resp = c.request("GET", "/health")
                ft.check_eq(resp.status, 200, "GET /health")
                ft.check((resp.header("connection") or "").lower() != "close",
                         "the server closed a keep-alive request", resp.summary())
                started = time.monotonic()
                data, closed, waited = read_until_eof(c.sock, 4)
            ft.check(closed, "the idle keep-alive connection was still open after 4 s")
            ft.check_eq(data, b"", "bytes sent on an idle connection before closing it")
            print(f"    idle connection closed after {waited:.2f}s", flush=True)
            ft.check(0.8 <= waited <= 2.2, f"idle connection closed after {waited:.2f}s "
                                           f"(timeouts.idle = 1)")

        with ft.subtest("a keep-alive connection in use is not closed"):
            with ft.Conn(srv.port) as c:
                for _ in range(6):
                    resp = c.request("GET", "/health")
                    ft.check_eq(resp.status, 200, "GET /health on a busy keep-alive connection")
                    time.sleep(0.5)

        with ft.subtest("headers over limits.headers get 431 and a close"):
            with ft.Conn(srv.port) as c:
                c.send(ft.build_request("GET", "/health", {"X-Big": "b" * 3000}, None, srv.port))
                resp = c.read_response()
                resp.check_error(431, "oversize headers")
                ft.check(c.closed_by_peer(3), "the connection stayed open after the 431")
            # Just under the limit is fine.
            resp = srv.get("/health", headers={"X-Big": "b" * 1500})
            ft.check_eq(resp.status, 200, "headers under the limit")

        with ft.subtest("a stream outlives both timeouts"):
            s = srv.stream("/sub/quiet")
            try:
                time.sleep(3)
                ft.check(not s.ended, "the stream was ended")
                eid = srv.publish("/pub/quiet", "after 3 s")
                ev = s.next_event(timeout=5)
                ft.check_eq((ev.id, ev.data), (eid, "after 3 s"), "event after 3 quiet seconds")
                time.sleep(2.5)
                eid = srv.publish("/pub/quiet", "after 5.5 s")
                ev = s.next_event(timeout=5)
                ft.check_eq((ev.id, ev.data), (eid, "after 5.5 s"), "event after 5.5 s")
            finally:
                s.close()

        with ft.subtest("/metrics counts the 408s and the idle closes"):
            m = srv.metrics()
            ft.check(ft.metric(m, "freshet_request_timeouts_total") >= 2,
                     "freshet_request_timeouts_total below the two 408s")
            ft.check(ft.metric(m, "freshet_idle_closed_total") >= 1,
                     "freshet_idle_closed_total does not count the idle close")

        with ft.subtest("the CLOSED log lines say timeout and idle"):
            reasons = [e.get("reason") for e in ft.state_log_entries(srv.log())
                       if e["event"] == "CLOSED"]
            ft.check(reasons.count("timeout") >= 2, "fewer than two CLOSED lines with reason "
                                                    "timeout", reasons)
            ft.check(reasons.count("idle") >= 1, "no CLOSED line with reason idle", reasons)


ft.main(run, limit=60)
