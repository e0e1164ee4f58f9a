"""HTTP/2: over TLS (ALPN h2) and as h2c with prior knowledge (`h2c = true`).

curl --http2 over https: headers, events, resume with Last-Event-ID, publish, long-poll, static,
/health, /metrics, %{http_version} = 2, and --http1.1 on the same port; curl
--http2-prior-knowledge on a cleartext h2c listener, HTTP/1.1 there too. A raw HTTP/2 client
(python3-h2) opens 50 streams on one connection and resets 10: those leave /metrics and log
CLOSED with reason "reset", the 40 others keep receiving. A stream whose window the client never
opens is cut off by its budget (RST_STREAM) while the others on its connection get everything.
SETTINGS_MAX_CONCURRENT_STREAMS holds (a client
past it gets GOAWAY). Drain: GOAWAY, and each stream ends with its retry:.
Hostile clients (rapid reset, a header block past the limit, PING, SETTINGS and WINDOW_UPDATE
floods, a window overflow) are sent away with GOAWAY while /health answers. A bounded load: 2,000
streams over 40 connections, each gets every event.

python3-h2 is Debian's (scripts/setup.sh) for /usr/bin/python3: run by another Python, this file
runs itself again with /usr/bin/python3."""

import os
import sys

try:
    import h2.config
    import h2.connection
    import h2.errors
    import h2.events
    import h2.settings
except ImportError:
    if sys.executable != "/usr/bin/python3" and os.path.exists("/usr/bin/python3"):
        os.execv("/usr/bin/python3", ["/usr/bin/python3", *sys.argv])
    print("14_h2: FAIL: python3-h2 is missing (scripts/setup.sh installs it)", flush=True)
    sys.exit(1)

import collections
import json
import re
import select
import shutil
import signal
import socket
import ssl
import subprocess
import time

import frtest as ft

CURL = shutil.which("curl")

# The pubsub app's stream route, with the tier "tiny" for topics that say "slow".
SLOW_ROUTE = ft.SUB_ROUTE.replace("return route", """function route.tier(req, who)
      if req.params.topics:find("slow", 1, true) then return "tiny" end
    end
    return route""")


def h2_app(tls=True, extra="", limits="h2_streams = 64, headers = 8192", routes_extra="",
           files_extra=None):
    settings = f"""
        heartbeat = 1,
        retry = 2000,
        drain = 1,
        replay = {{ events = 100, seconds = 600 }},
        limits = {{ {limits} }},
        tiers = {{ tiny = {{ queue = 4, bytes = 4096, lag = 8 }} }},
        {'tls = { cert = "cert.pem", key = "key.pem" },' if tls else 'h2c = true,'}
        {extra}
    """
    routes = """
        app:stream("/slow/:topics", "routes/slow.lua")
        app:static("/files", "public")
    """ + routes_extra
    app = ft.pubsub_app(settings, routes, files={"public/hello.txt": b"hello over h2\n",
                                                 "routes/slow.lua": ft.lua(SLOW_ROUTE).encode(),
                                                 **(files_extra or {})})
    if tls:
        cert, key = ft.make_cert(app.path)
        os.replace(cert, app.file("cert.pem"))
        os.replace(key, app.file("key.pem"))
    return app


curl = ft.curl


def metric_value(text, name, **labels):
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        m = re.match(r"^([a-zA-Z0-9_:]+)(\{[^}]*\})? (\S+)$", line)
        if not m or m.group(1) != name:
            continue
        got = ",".join(sorted((m.group(2) or "{}")[1:-1].split(","))) if m.group(2) else ""
        if got == want:
            return float(m.group(3))
    return 0.0


def scrape(base, path="/metrics"):
    r = curl(["-k", base + path])
    ft.check(r.returncode == 0, f"GET {path} failed", r.stderr)
    return r.stdout.decode()


class H2Client:
    """A raw HTTP/2 client on one connection (TLS with ALPN h2, or h2c prior knowledge)."""

    def __init__(self, port, tls=True, settings=None, window=None, sock=None):
        raw = sock or socket.create_connection((ft.HOST, port), timeout=10)
        if tls:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            ctx.set_alpn_protocols(["h2"])
            self.sock = ctx.wrap_socket(raw)
            ft.check_eq(self.sock.selected_alpn_protocol(), "h2", "ALPN protocol")
        else:
            self.sock = raw
        cfg = h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
        self.conn = h2.connection.H2Connection(config=cfg)
        self.conn.initiate_connection()
        if settings:
            self.conn.update_settings(settings)
        if window:
            self.conn.increment_flow_control_window(window)
        self.flush()
        self.data = {}       # stream id -> bytes received
        self.headers = {}    # stream id -> dict
        self.ended = set()
        self.reset = {}      # stream id -> error code (from the server)
        self.goaway = None   # error code of a GOAWAY received
        self.closed = False
        self.no_ack = set()  # streams whose window is never given back

    def flush(self):
        out = self.conn.data_to_send()
        if out:
            self.sock.sendall(out)

    def request(self, path, method="GET", headers=(), body=None, end=True):
        sid = self.conn.get_next_available_stream_id()
        hs = [(":method", method), (":path", path), (":scheme", "https"),
              (":authority", "localhost"), *headers]
        self.conn.send_headers(sid, hs, end_stream=body is None and end)
        if body is not None:
            self.conn.send_data(sid, body, end_stream=True)
        self.data[sid] = b""
        return sid

    def pump(self, timeout=0.2):
        """Reads what arrives within timeout; False once the server has closed."""
        if self.closed:
            return False
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            pending = isinstance(self.sock, ssl.SSLSocket) and self.sock.pending()
            if left <= 0 and not pending:
                return True
            if not pending:
                r, _, _ = select.select([self.sock], [], [], max(left, 0))
                if not r:
                    return True
            try:
                chunk = self.sock.recv(65536)
            except (ConnectionResetError, ssl.SSLError, OSError):
                chunk = b""
            if not chunk:
                self.closed = True
                return False
            try:
                events = self.conn.receive_data(chunk)
            except h2.exceptions.ProtocolError:
                events = []
            for ev in events:
                self.on_event(ev)
            try:
                self.flush()
            except OSError:
                self.closed = True
                return False

    def on_event(self, ev):
        if isinstance(ev, h2.events.ResponseReceived):
            self.headers[ev.stream_id] = dict(ev.headers)
        elif isinstance(ev, h2.events.DataReceived):
            self.data[ev.stream_id] = self.data.get(ev.stream_id, b"") + ev.data
            if ev.stream_id not in self.no_ack and ev.flow_controlled_length:
                self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
        elif isinstance(ev, h2.events.StreamEnded):
            self.ended.add(ev.stream_id)
        elif isinstance(ev, h2.events.StreamReset):
            self.reset[ev.stream_id] = ev.error_code
        elif isinstance(ev, h2.events.ConnectionTerminated):
            self.goaway = ev.error_code

    def wait(self, cond, timeout=10, what="condition"):
        deadline = time.monotonic() + timeout
        while not cond():
            if time.monotonic() > deadline:
                ft.fail(f"timed out waiting for {what}")
            if not self.pump(0.1) and not cond():
                ft.fail(f"the server closed the connection while waiting for {what}")

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def events_of(data):
    return [line[6:] for line in data.decode(errors="replace").split("\n")
            if line.startswith("data: ")]


def run():
    ft.require_file(ft.BIN, "freshet binary")
    # The load test opens 2,000 streams from one address.
    app = h2_app(tls=True, limits="h2_streams = 64, h2_streams_per_client = 2048, headers = 8192")
    with ft.Server(app, tls=True) as srv:
        base = f"https://127.0.0.1:{srv.port}"

        with ft.subtest("curl --http2 over https: /health, /metrics, static, http_version 2"):
            for path, want in (("/health", b'"status":"ok"'), ("/metrics", b"freshet_h2_streams_total"),
                               ("/files/hello.txt", b"hello over h2")):
                r = curl(["-k", "--http2", "-w", "\n%{http_version} %{http_code}", base + path])
                ft.check(r.returncode == 0, f"curl {path}", r.stderr)
                body, _, tail = r.stdout.rpartition(b"\n")
                ft.check_eq(tail.decode(), "2 200", f"{path}: http_version and status")
                ft.check(want in body, f"{path} body", body[:300])
            r = curl(["-k", "--http1.1", "-w", "\n%{http_version} %{http_code}",
                      base + "/files/hello.txt"])
            ft.check_eq(r.stdout.rpartition(b"\n")[2].decode(), "1.1 200",
                        "--http1.1 on the same port")

        with ft.subtest("curl --http2: an SSE stream's headers and events, publish over h2, "
                        "resume with Last-Event-ID"):
            proc = subprocess.Popen([CURL, "-sSkN", "--http2", "-D", "-", base + "/sub/news"],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            try:
                srv.wait_streams(1)
                ids = []
                for i in range(3):
                    r = curl(["-k", "--http2", "-w", " %{http_version} %{http_code}", "-X", "POST",
                              "--data-binary", f"item {i}", base + "/pub/news"])
                    ft.check(r.stdout.endswith(b" 2 201"), "publish over h2", r.stdout + r.stderr)
                    ids.append(json.loads(r.stdout.rsplit(b" ", 2)[0])["id"])
                time.sleep(0.5)
            finally:
                proc.send_signal(signal.SIGINT)
                out, _ = proc.communicate(timeout=5)
            text = out.decode()
            ft.check(text.startswith("HTTP/2 200"), "status line over h2", text[:300])
            ft.check("content-type: text/event-stream" in text, "content-type", text[:300])
            ft.check("connection:" not in text.lower(), "no connection-specific header", text[:300])
            ft.check_eq([l[6:] for l in text.split("\n") if l.startswith("data: ")],
                        ["item 0", "item 1", "item 2"], "events over h2")
            r = curl(["-k", "--http2", "-m", "2", "-H", f"Last-Event-ID: {ids[0]}",
                      base + "/sub/news"], timeout=10)
            ft.check_eq([l[6:] for l in r.stdout.decode().split("\n") if l.startswith("data: ")],
                        ["item 1", "item 2"], "resumed after Last-Event-ID over h2")

        with ft.subtest("long-poll over h2 answers with the events since lastEventId"):
            r = curl(["-k", "--http2", "-w", "\n%{http_version} %{http_code}",
                      base + f"/sub/news?transport=poll&lastEventId={ids[1]}"])
            body, _, tail = r.stdout.rpartition(b"\n")
            ft.check_eq(tail.decode(), "2 200", "long-poll status over h2")
            ft.check(b"data: item 2" in body, "long-poll body", body[:300])

        with ft.subtest("50 streams on one connection, 10 reset: those leave /metrics, "
                        "the 40 others keep receiving"):
            c = H2Client(srv.port, window=1 << 30)
            sids = [c.request(f"/sub/s{i},all") for i in range(50)]
            c.wait(lambda: len(c.headers) == 50, what="50 response heads")
            srv.wait_streams(50)
            m = scrape(base)
            active = dict(route="/sub/:topics", transport="sse", state="active")
            before_resets = metric_value(m, "freshet_h2_resets_total")
            log_at = srv.log_size()
            for sid in sids[:10]:
                c.conn.reset_stream(sid, h2.errors.ErrorCodes.CANCEL)
            c.flush()
            srv.wait_streams(40)
            deadline = time.monotonic() + 5
            while True:
                m = scrape(base)
                if metric_value(m, "freshet_connections", **active) == 40 or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            ft.check_eq(metric_value(m, "freshet_connections", **active), 40,
                        "active SSE streams in /metrics after 10 resets")
            ft.check_eq(metric_value(m, "freshet_h2_resets_total") - before_resets, 10,
                        "freshet_h2_resets_total")
            ft.check_eq(metric_value(m, "freshet_topics"), 41 + 1, "topics: 40 own, all, news")
            srv.wait_log(r'"event":"CLOSED".*"reason":"reset"', start=log_at)
            closed = re.findall(r'"event":"CLOSED"[^\n]*"reason":"reset"', srv.log()[log_at:])
            ft.check_eq(len(closed), 10, "CLOSED lines with reason reset")
            for i in range(3):
                srv.publish("/pub/all", f"to all {i}")
            c.wait(lambda: all(events_of(c.data[s]).count("to all 2") == 1 for s in sids[10:]),
                   what="the 40 streams to get every event")
            for s in sids[10:]:
                ft.check_eq(events_of(c.data[s]), ["to all 0", "to all 1", "to all 2"],
                            f"stream {s}'s events")
            for s in sids[:10]:
                ft.check("to all" not in c.data[s].decode(), f"reset stream {s} got nothing more")
            ft.check(not c.closed and c.goaway is None, "the connection stays open")
            c.close()

        with ft.subtest("a stream whose window stays closed is cut off by its budget; the others "
                        "on its connection get everything"):
            c = H2Client(srv.port, window=1 << 30)
            slow = c.request("/slow/slow")
            c.no_ack.add(slow)
            others = [c.request(f"/sub/fast{i}") for i in range(5)]
            c.wait(lambda: len(c.headers) == 6, what="6 response heads")
            big = "x" * 8000
            for i in range(40):
                srv.publish("/pub/slow", f"{i} {big}")
                for k in range(5):
                    srv.publish(f"/pub/fast{k}", f"fast {i}")
            c.wait(lambda: slow in c.reset or slow in c.ended, timeout=15,
                   what="the slow stream to be cut off")
            c.wait(lambda: all(events_of(c.data[s]).count("fast 39") == 1 for s in others),
                   what="the fast streams to get every event")
            for k, s in enumerate(others):
                ft.check_eq(events_of(c.data[s]), [f"fast {i}" for i in range(40)],
                            f"fast stream {k}")
            ft.check(len(c.data[slow]) <= 65535 + 200, "the slow stream got at most its window",
                     len(c.data[slow]))
            m = scrape(base)
            ft.check(metric_value(m, "freshet_streams_evicted_total", reason="lag") +
                     metric_value(m, "freshet_streams_evicted_total", reason="drop") >= 1,
                     "the slow stream was evicted by its budget")
            ft.check(not c.closed and c.goaway is None, "the connection stays open")
            c.close()

        with ft.subtest("the connection's window holds: a client that gives nothing back gets "
                        "at most 65,535 bytes of DATA over all its streams"):
            c = H2Client(srv.port)
            sids = [c.request(f"/sub/win{i},win") for i in range(5)]
            c.no_ack.update(sids)
            c.wait(lambda: len(c.headers) == 5, what="5 heads")
            for i in range(40):
                srv.publish("/pub/win", f"{i} " + "w" * 4000)
            c.wait(lambda: sum(len(d) for d in c.data.values()) >= 65535, timeout=10,
                   what="the connection's window to fill")
            c.pump(1.0)
            ft.check_eq(sum(len(c.data[s]) for s in sids), 65535, "DATA bytes received")
            c.conn.increment_flow_control_window(1 << 20)
            for s in sids:
                c.conn.increment_flow_control_window(1 << 20, stream_id=s)
            c.flush()
            c.no_ack.clear()
            c.wait(lambda: all(b"data: 39 " in c.data[s] for s in sids),
                   what="every stream to get the rest once the windows open")
            c.close()

        with ft.subtest("SETTINGS_MAX_CONCURRENT_STREAMS: a client past it is sent away"):
            c = H2Client(srv.port)
            c.pump(0.3)
            ft.check_eq(c.conn.remote_settings.max_concurrent_streams, 64, "the server's setting")
            # Past the server's limit on purpose: the client library would refuse.
            c.conn.remote_settings._settings[h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS] = \
                collections.deque([1000])
            for i in range(70):
                c.request(f"/sub/many{i}")
            c.flush()
            deadline = time.monotonic() + 10
            while not c.closed and time.monotonic() < deadline:
                c.pump(0.2)
            ft.check(c.closed, "the connection is closed")
            ft.check_eq(c.goaway, h2.errors.ErrorCodes.PROTOCOL_ERROR, "GOAWAY's error code")
            ft.check(len(c.headers) <= 64, "no more than 64 streams answered", len(c.headers))
            srv.wait_streams(0)
            c.close()

        def hostile(name, attack, want_code=h2.errors.ErrorCodes.ENHANCE_YOUR_CALM):
            with ft.subtest(f"hostile: {name} → GOAWAY, /health answers"):
                c = H2Client(srv.port)
                c.pump(0.2)
                try:
                    attack(c)
                    c.flush()
                except OSError:
                    pass
                deadline = time.monotonic() + 10
                while not c.closed and time.monotonic() < deadline:
                    c.pump(0.2)
                ft.check(c.closed, f"{name}: the server closed the connection")
                ft.check(c.goaway is not None, f"{name}: GOAWAY before the close")
                if want_code is not None:
                    ft.check_eq(c.goaway, want_code, f"{name}: GOAWAY's error code")
                r = curl(["-k", "--http2", "-w", " %{http_code}", base + "/health"])
                ft.check(r.stdout.endswith(b" 200"), "/health after the attack", r.stdout)
                c.close()

        def rapid_reset(c):
            for _ in range(2000):
                sid = c.conn.get_next_available_stream_id()
                c.conn.send_headers(sid, [(":method", "GET"), (":path", "/sub/rr"),
                                          (":scheme", "https"), (":authority", "x")])
                c.conn.reset_stream(sid)

        def huge_headers(c):
            c.request("/health", headers=[("x-big", "a" * 20000)])

        def ping_flood(c):
            for i in range(5000):
                c.conn.ping(i.to_bytes(8, "big"))

        def settings_flood(c):
            for i in range(5000):
                c.conn.update_settings({h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 100 + i})

        def window_flood(c):
            for _ in range(5000):
                c.conn.increment_flow_control_window(1)

        def window_overflow(c):
            c.conn.increment_flow_control_window(2 ** 31 - 1 - 65535)
            c.flush()
            # One more than the protocol allows, written by hand (the library refuses).
            c.sock.sendall(b"\x00\x00\x04\x08\x00\x00\x00\x00\x00" + (2 ** 31 - 1).to_bytes(4, "big"))

        def continuation_flood(c):
            sid = c.conn.get_next_available_stream_id()
            block = b"\x82\x87\x04\x07/health"  # GET https, :path /health (HPACK, no Huffman)
            frames = [len(block).to_bytes(3, "big") + b"\x01\x00" + sid.to_bytes(4, "big") + block]
            frames += [b"\x00\x00\x00\x09\x00" + sid.to_bytes(4, "big")] * 3000
            c.flush()
            c.sock.sendall(b"".join(frames))

        hostile("rapid reset (2,000 HEADERS + RST_STREAM)", rapid_reset)
        hostile("CONTINUATION flood (3,000 empty frames after a HEADERS)", continuation_flood,
                h2.errors.ErrorCodes.ENHANCE_YOUR_CALM)
        hostile("a header block past limits.headers", huge_headers)
        hostile("PING flood", ping_flood)
        hostile("SETTINGS flood", settings_flood)
        hostile("WINDOW_UPDATE flood", window_flood)
        hostile("window overflow", window_overflow, h2.errors.ErrorCodes.FLOW_CONTROL_ERROR)

        with ft.subtest("bounded load: 2,000 streams over 40 connections get every event"):
            clients = [H2Client(srv.port, window=1 << 30) for _ in range(40)]
            streams = [(c, c.request("/sub/load")) for c in clients for _ in range(50)]
            for c in clients:
                c.flush()
            deadline = time.monotonic() + 30
            while sum(len(c.headers) for c in clients) < 2000 and time.monotonic() < deadline:
                for c in clients:
                    c.pump(0.01)
            srv.wait_streams(2000, timeout=30)
            for i in range(5):
                srv.publish("/pub/load", f"load {i}")
            deadline = time.monotonic() + 30
            def complete():
                return all(b"data: load 4" in c.data[s] for c, s in streams)
            while not complete() and time.monotonic() < deadline:
                for c in clients:
                    c.pump(0.01)
            for c, s in streams:
                ft.check_eq(events_of(c.data[s]), [f"load {i}" for i in range(5)],
                            "every stream's events")
            for c in clients:
                c.close()
            srv.wait_streams(0, timeout=15)

        with ft.subtest("drain: GOAWAY, and each stream ends with its retry:"):
            # nghttp (nghttp2-client) keeps reading the streams a GOAWAY lets finish; python3-h2
            # stops at the GOAWAY.
            nghttp = shutil.which("nghttp")
            ft.check(nghttp is not None, "nghttp is missing (scripts/setup.sh: nghttp2-client)")
            proc = subprocess.Popen([nghttp, "-v", *(f"{base}/sub/d{i}" for i in range(3))],
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            try:
                srv.wait_streams(3)
                srv.send_signal(signal.SIGTERM)
                out, _ = proc.communicate(timeout=15)
            finally:
                if proc.poll() is None:
                    proc.kill()
            text = out.decode(errors="replace")
            ft.check(re.search(r"recv GOAWAY frame.*\n.*error_code=NO_ERROR", text) is not None,
                     "GOAWAY(NO_ERROR) on drain", text[-2000:])
            ft.check_eq(len(re.findall(r"recv DATA frame[^\n]*\n\s*; END_STREAM", text)), 3,
                        "three streams ended with END_STREAM")
            retries = [int(v) for v in re.findall(r"^retry: (\d+)$", text, re.M)]
            ft.check_eq(retries[:3], [2000, 2000, 2000], "each stream's opening retry:")
            ft.check(len(retries) == 6 and all(2000 <= r <= 3000 for r in retries[3:]),
                     "each stream's closing retry: is jittered above retry", retries)
            srv.wait_exit(10)

    # Six streams per client address over all its connections; the load test above is TLS.
    app = h2_app(tls=False, limits="h2_streams = 64, h2_streams_per_client = 6, headers = 8192")
    with ft.Server(app, tls=False) as srv:
        base = f"http://127.0.0.1:{srv.port}"
        with ft.subtest("h2c with prior knowledge: curl --http2-prior-knowledge, HTTP/1.1 too"):
            r = curl(["--http2-prior-knowledge", "-w", "\n%{http_version} %{http_code}",
                      base + "/health"])
            ft.check_eq(r.stdout.rpartition(b"\n")[2].decode(), "2 200", "h2c /health")
            r = curl(["--http1.1", "-w", "\n%{http_version} %{http_code}", base + "/files/hello.txt"])
            ft.check_eq(r.stdout.rpartition(b"\n")[2].decode(), "1.1 200", "HTTP/1.1 on h2c")
            ft.check(r.stdout.startswith(b"hello over h2"), "HTTP/1.1 body", r.stdout)
            c = H2Client(srv.port, tls=False)
            sid = c.request("/sub/plain")
            c.wait(lambda: sid in c.headers, what="the head")
            srv.publish("/pub/plain", "over h2c")
            c.wait(lambda: b"data: over h2c" in c.data[sid], what="the event over h2c")
            pub = c.request("/pub/plain", method="POST", body=b"posted over h2c")
            c.wait(lambda: pub in c.ended, what="the publish answer")
            ft.check_eq(c.headers[pub][":status"], "201", "publish over h2c")
            c.wait(lambda: b"data: posted over h2c" in c.data[sid], what="the posted event")
            c.close()

        with ft.subtest("limits.h2_streams_per_client: two connections from one address over "
                        "the limit get REFUSED_STREAM, the others flow, another address is "
                        "unaffected"):
            refused_before = metric_value(scrape(base), "freshet_h2_streams_refused_total")
            a = H2Client(srv.port, tls=False)
            sa = [a.request("/sub/pc") for _ in range(4)]
            a.flush()
            a.wait(lambda: all(s in a.headers for s in sa), what="the first connection's 4 heads")
            b = H2Client(srv.port, tls=False)
            sb = [b.request("/sub/pc") for _ in range(4)]
            b.flush()
            b.wait(lambda: all(s in b.headers or s in b.reset for s in sb),
                   what="the second connection's answers")
            ft.check_eq([s for s in sb if s in b.headers], sb[:2], "the streams within the limit")
            ft.check_eq({s: b.reset.get(s) for s in sb[2:]},
                        {s: h2.errors.ErrorCodes.REFUSED_STREAM for s in sb[2:]},
                        "the excess streams are refused (RST_STREAM REFUSED_STREAM)")
            other_sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            other_sock.bind(("127.0.0.2", 0))
            other_sock.settimeout(10)
            other_sock.connect((ft.HOST, srv.port))
            o = H2Client(srv.port, tls=False, sock=other_sock)
            so = [o.request("/sub/pc") for _ in range(4)]
            o.flush()
            o.wait(lambda: all(s in o.headers for s in so), what="another address's 4 heads")
            ft.check(not o.reset, "another address: nothing refused", o.reset)
            srv.wait_streams(10)
            srv.publish("/pub/pc", "per client")
            for c, sids in ((a, sa), (b, sb[:2]), (o, so)):
                c.wait(lambda: all(b"data: per client" in c.data[s] for s in sids),
                       what="the event on every stream within the limit")
            ft.check(not a.reset and not a.closed and not b.closed,
                     "the client's other streams and connections go on")
            ft.check_eq(metric_value(scrape(base), "freshet_h2_streams_refused_total")
                        - refused_before, 2.0, "freshet_h2_streams_refused_total")
            # A stream that ends frees its place: the retry of a refused one is served.
            a.conn.reset_stream(sa[0])
            a.flush()
            srv.wait_streams(9)
            retry = b.request("/sub/pc")
            b.flush()
            b.wait(lambda: retry in b.headers or retry in b.reset, what="the retried stream")
            ft.check(retry in b.headers and retry not in b.reset, "the retry is served", b.reset)
            for c in (a, b, o):
                c.close()
            srv.wait_streams(0, timeout=15)

        with ft.subtest("a client that stops reading altogether: its connection is closed, "
                        "the worker goes on"):
            # Windows wide open: what stops the bytes is the socket, not flow control.
            c = H2Client(srv.port, tls=False, window=1 << 30,
                         settings={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 2 ** 31 - 1},
                         sock=ft.small_rcvbuf_socket(srv.port, rcvbuf=4096))
            sids = [c.request(f"/slow/slowstall{i},slowstall") for i in range(3)]
            c.wait(lambda: len(c.headers) == 3, what="3 heads")
            srv.wait_streams(3)
            log_at = srv.log_size()
            # One at a time, each within the tier's 4 KB: the streams write every event until
            # the socket is full, then fall behind and are ended, which cannot be sent either.
            big = "s" * 3000
            with ft.Publisher(srv.port, timeout=20) as pub:
                for i in range(20):
                    pub.publish_ids([("/pub/slowstall", f"{i}.{k} {big}", None)
                                     for k in range(200)], window=1)
                    if srv.health()["streams"] == 0:
                        break
            srv.wait_streams(0, timeout=20)
            srv.wait_log(r'"event":"CLOSED","conn":\d+,"reason":"slow","duration_ms":\d+}',
                         start=log_at, timeout=10)
            r = curl(["--http2-prior-knowledge", "-w", " %{http_code}", base + "/health"])
            ft.check(r.stdout.endswith(b" 200"), "/health after the stalled client", r.stdout)
            c.close()

    # The kernel spreads one client's connections over the workers' listeners (SO_REUSEPORT):
    # the count per client address is the process's, not a worker's.
    wk = 'local freshet = require "freshet"\n' \
         'return { handle = function() return 200, tostring(freshet.worker) end }\n'
    app = h2_app(tls=False, extra="workers = 2,",
                 limits="h2_streams = 64, h2_streams_per_client = 6, headers = 8192",
                 routes_extra='app:http("GET", "/wk", "routes/wk.lua")\n',
                 files_extra={"routes/wk.lua": wk.encode()})
    with ft.Server(app, tls=False) as srv:
        with ft.subtest("limits.h2_streams_per_client with workers = 2: one count over the "
                        "connections of both workers"):
            srv.wait_log(r"2 workers \(threads\)")
            conns, workers = [], []
            # Each connection asks which worker it is on, until both are.
            while len(conns) < 4 or len(set(workers)) < 2:
                ft.check(len(conns) < 40, "40 connections all on one worker", workers)
                c = H2Client(srv.port, tls=False)
                sid = c.request("/wk")
                c.flush()
                c.wait(lambda: sid in c.ended, what="/wk's answer")
                ft.check_eq(c.headers[sid][":status"], "200", "/wk's status")
                conns.append(c)
                workers.append(c.data[sid].decode())
            served, refused = [], []
            for c in conns:  # one connection at a time, so which ones are served is known
                sids = [c.request("/sub/pcw") for _ in range(2)]
                c.flush()
                c.wait(lambda: all(s in c.headers or s in c.reset for s in sids),
                       what="the answers to a connection's 2 streams")
                served += [(c, s) for s in sids if s in c.headers]
                refused += [(c, s) for s in sids if c.reset.get(s) ==
                            h2.errors.ErrorCodes.REFUSED_STREAM]
            ft.check_eq(len(served), 6, f"streams served over {len(conns)} connections on both "
                        "workers (2 asked on each)")
            ft.check_eq(len(refused), 2 * len(conns) - 6, "streams refused with REFUSED_STREAM")
            ft.check_eq([c for c, _ in served], [c for c in conns[:3] for _ in range(2)],
                        "the first three connections' streams are the ones served")
            srv.wait_streams(6)
            # A stream that ends, on whichever worker, frees its place for the others.
            last = conns[-1]
            conns[0].conn.reset_stream(served[0][1])
            conns[0].flush()
            srv.wait_streams(5)
            retry = last.request("/sub/pcw")
            last.flush()
            last.wait(lambda: retry in last.headers or retry in last.reset,
                      what="the retried stream")
            ft.check(retry in last.headers, "the retry on the last connection is served",
                     last.reset)
            for c in conns:
                c.close()
            srv.wait_streams(0, timeout=15)


if __name__ == "__main__":
    ft.main(run, limit=115)
