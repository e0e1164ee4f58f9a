"""freshet behind a real nginx, with the configuration docs/DEPLOY.md gives (read from the doc
itself, so the documented configuration is the tested one).

Two freshet nodes on one Redis are the upstreams, without sticky sessions. Through nginx: SSE
events arrive unbuffered (each within 50 ms of its publish), streams spread over both nodes
and all get every event, Last-Event-ID resumes on whichever node nginx picks, WebSocket
upgrades pass (X-Forwarded-For reaches the route), and on an HTTP/2 listener (cleartext, prior
knowledge) several SSE streams share one client connection: the way around the browser's limit
of six HTTP/1.1 connections per origin.

Needs Debian's nginx (and redis-server); fails, never skips, when they are missing. nginx runs
in the foreground on free ports of 127.0.0.1 with everything it writes in a temp dir, and is
stopped by its PID."""

import os
import re
import shutil
import signal
import socket
import subprocess
import time

import frtest as ft

DEPLOY_MD = os.path.join(ft.ROOT, "docs", "DEPLOY.md")
MARKER = "tests/integration/35_nginx_proxy.py runs nginx with the block below"
LATENCY_LIMIT = 0.050

# The freshet app behind the proxy: the bench app's routes, with the broker from the
# environment, and a stream route that remembers X-Forwarded-For and tells it over WebSocket.
APP_SETTINGS = """
    heartbeat = 15,
    retry = 1000,
    replay = { events = 1000, seconds = 300 },
    broker = os.getenv("FRESHET_BROKER") or "memory",
    drain = 1,
"""

SUB = """
    local route = {}
    function route.auth(req)
      return { forwarded = req.headers["x-forwarded-for"] or "",
               proto = req.headers["x-forwarded-proto"] or "" }
    end
    function route.topics(req, who)
      local list = {}
      for name in req.params.topics:gmatch("[^,]+") do list[#list + 1] = name end
      return list
    end
    function route.message(conn, msg, who)
      return { forwarded = who.forwarded, proto = who.proto }
    end
    return route
"""


# ---- nginx ------------------------------------------------------------------------------------


def nginx_binary():
    found = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None)
    ft.check(found is not None, "nginx not found: this test needs Debian's nginx package "
             "(apt-get install --no-install-recommends nginx); it never skips")
    return found


def documented_config():
    """The nginx block of docs/DEPLOY.md that follows the marker comment."""
    ft.require_file(DEPLOY_MD, "docs/DEPLOY.md")
    with open(DEPLOY_MD, encoding="utf-8") as f:
        text = f.read()
    at = text.find(MARKER)
    ft.check(at >= 0, f"docs/DEPLOY.md has no marker {MARKER!r} before its tested nginx block")
    m = re.search(r"```nginx\n(.*?)```", text[at:], re.S)
    ft.check(m is not None, "no ```nginx block after the marker in docs/DEPLOY.md")
    return m.group(1)


def adapt(conf, node_ports, http1_port, h2_port):
    """The documented block with the test's addresses: its upstream servers become the test's
    nodes, and `listen 80;` becomes an HTTP/1.1 listener and a cleartext HTTP/2 one (browsers
    speak HTTP/2 only over TLS, `listen 443 ssl http2;`; the proxying behind it is the same)."""
    servers = re.findall(r"^(\s*)server 127\.0\.0\.1:\d+;$", conf, re.M)
    ft.check_eq(len(servers), 2, "upstream server lines in the documented block")
    it = iter(node_ports)
    conf = re.sub(r"^(\s*)server 127\.0\.0\.1:\d+;$",
                  lambda m: f"{m.group(1)}server 127.0.0.1:{next(it)};", conf, flags=re.M)
    ft.check(re.search(r"^\s*listen 80;$", conf, re.M), "no `listen 80;` in the documented block")
    conf = re.sub(r"^(\s*)listen 80;$",
                  lambda m: f"{m.group(1)}listen 127.0.0.1:{http1_port};\n"
                            f"{m.group(1)}listen 127.0.0.1:{h2_port} http2;",
                  conf, flags=re.M)
    return conf


class Nginx:
    """nginx in the foreground with its files in `dir`. One process (master_process off), so
    that nothing of it can outlive the test: it dies with the test (PR_SET_PDEATHSIG) and is
    stopped by its own PID; the proxying is the same as with worker processes."""

    def __init__(self, binary, site_conf):
        self.binary = binary
        self.dir = ft.tempdir("freshet-nginx-")
        self.site_conf = site_conf
        self.proc = None
        self.port = None
        self.h2_port = None
        self.access_log = os.path.join(self.dir, "access.log")
        self.error_log = os.path.join(self.dir, "error.log")

    def start(self, node_ports):
        for attempt in range(4):
            self.port, self.h2_port = ft.free_port(), ft.free_port()
            if self.port == self.h2_port:
                continue
            site = adapt(self.site_conf, node_ports, self.port, self.h2_port)
            with open(os.path.join(self.dir, "freshet.conf"), "w") as f:
                f.write(site)
            d = self.dir
            main = f"""
                worker_processes 1;
                events {{ worker_connections 512; }}
                http {{
                    client_body_temp_path {d}/client_body;
                    proxy_temp_path {d}/proxy;
                    fastcgi_temp_path {d}/fastcgi;
                    uwsgi_temp_path {d}/uwsgi;
                    scgi_temp_path {d}/scgi;
                    log_format freshet_test 'conn=$connection proto=$server_protocol '
                                            'status=$status upstream=$upstream_addr '
                                            'uri=$request_uri';
                    access_log {d}/access.log freshet_test;
                    include {d}/freshet.conf;
                }}
            """
            conf = os.path.join(d, "nginx.conf")
            with open(conf, "w") as f:
                f.write(ft.lua(main))
            cmd = [self.binary, "-p", d + "/", "-c", conf, "-g",
                   f"daemon off; master_process off; pid {d}/nginx.pid; "
                   f"error_log {d}/error.log;"]
            out = open(os.path.join(d, "stderr.log"), "wb")
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                         cwd=d, preexec_fn=ft._die_with_parent)
            out.close()
            ft._cleanups.append(self.kill)
            if self._wait_ready():
                return self
            exited = self.proc.poll() is not None
            log = self.log_tail()
            self.kill()
            if exited and "in use" in log:
                continue
            ft.fail(f"nginx did not start: {' '.join(cmd)}", log)
        ft.fail("no free ports for nginx")

    def _wait_ready(self, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            ok = 0
            for port in (self.port, self.h2_port):
                try:
                    socket.create_connection((ft.HOST, port), timeout=1).close()
                    ok += 1
                except OSError:
                    pass
            if ok == 2:
                return True
            time.sleep(0.05)
        return False

    def log_tail(self, n=30):
        out = []
        for name in ("stderr.log", "error.log"):
            try:
                with open(os.path.join(self.dir, name), "rb") as f:
                    lines = f.read().decode("utf-8", "replace").splitlines()
                out += [f"{name}: {line}" for line in lines[-n:]]
            except OSError:
                pass
        return "\n".join(out) or "(no nginx log)"

    def access_lines(self):
        try:
            with open(self.access_log, encoding="utf-8", errors="replace") as f:
                return f.read().splitlines()
        except OSError:
            return []

    def stop(self):
        """SIGTERM (nginx's fast shutdown: open streams are cut) and wait for the exit."""
        if self.proc is None or self.proc.poll() is not None:
            return
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.kill()
            ft.fail("nginx did not exit within 10 s of SIGTERM; killed it", self.log_tail())

    def kill(self):
        ft.kill_process(self.proc)


# ---- a minimal HTTP/2 client (cleartext, prior knowledge) -----------------------------------


H2_DATA, H2_HEADERS, H2_RST, H2_SETTINGS, H2_PING, H2_GOAWAY, H2_WINDOW, H2_CONT = \
    0x0, 0x1, 0x3, 0x4, 0x6, 0x7, 0x8, 0x9
END_STREAM, ACK, END_HEADERS, PADDED, PRIORITY = 0x1, 0x1, 0x4, 0x8, 0x20

# The response status as nginx encodes it: an indexed field of HPACK's static table for the
# common ones (RFC 7541 appendix A, entries 8-14), else a literal with the :status name.
STATIC_STATUS = {0x88: 200, 0x89: 204, 0x8a: 206, 0x8b: 304, 0x8c: 400, 0x8d: 404, 0x8e: 500}


def h2_frame(ftype, flags, stream, payload=b""):
    return len(payload).to_bytes(3, "big") + bytes([ftype, flags]) + \
        stream.to_bytes(4, "big") + payload


def hpack_int(n, prefix_bits, first=0):
    """An HPACK integer (RFC 7541 §5.1) with `first` holding the bits above the prefix."""
    limit = (1 << prefix_bits) - 1
    if n < limit:
        return bytes([first | n])
    out = [first | limit]
    n -= limit
    while n >= 128:
        out.append(n % 128 + 128)
        n //= 128
    out.append(n)
    return bytes(out)


def hpack_literal(name, value):
    """A literal header field without indexing, new name, no Huffman (RFC 7541 §6.2.2)."""
    name, value = name.encode(), value.encode()
    return b"\x00" + hpack_int(len(name), 7) + name + hpack_int(len(value), 7) + value


class H2Stream:
    def __init__(self, path):
        self.path = path
        self.header_block = b""
        self.status = None
        self.parser = ft.SSEParser()
        self.ended = False
        self.reset = None

    def events(self):
        return [i for i in self.parser.items if isinstance(i, ft.Event)]


class H2Conn:
    """One TCP connection speaking HTTP/2: GET requests as streams, SSE bodies parsed per
    stream. Only what these checks need: no server push, no priorities, no Huffman decoding."""

    def __init__(self, port, timeout=5):
        self.port = port
        self.sock = socket.create_connection((ft.HOST, port), timeout=timeout)
        self.buf = b""
        self.streams = {}
        self.next_id = 1
        self.goaway = None
        self.server_settings = False
        # Initial window 1 MiB for each stream, and as much again for the connection.
        settings = (0x4).to_bytes(2, "big") + (1 << 20).to_bytes(4, "big")
        self.sock.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
                          + h2_frame(H2_SETTINGS, 0, 0, settings)
                          + h2_frame(H2_WINDOW, 0, 0, (1 << 20).to_bytes(4, "big")))

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def local_port(self):
        return self.sock.getsockname()[1]

    def get(self, path, headers=()):
        sid = self.next_id
        self.next_id += 2
        fields = [(":method", "GET"), (":scheme", "http"), (":path", path),
                  (":authority", f"{ft.HOST}:{self.port}"), ("accept", "text/event-stream"),
                  *headers]
        block = b"".join(hpack_literal(k, v) for k, v in fields)
        self.sock.sendall(h2_frame(H2_HEADERS, END_HEADERS | END_STREAM, sid, block))
        self.streams[sid] = H2Stream(path)
        return sid

    def cancel(self, sid):
        self.sock.sendall(h2_frame(H2_RST, 0, sid, (0x8).to_bytes(4, "big")))  # CANCEL

    def pump(self, timeout):
        self.sock.settimeout(max(0.001, timeout))
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            return False
        if not data:
            ft.fail("nginx closed the HTTP/2 connection", {"goaway": self.goaway})
        self.buf += data
        while len(self.buf) >= 9:
            n = int.from_bytes(self.buf[:3], "big")
            if len(self.buf) < 9 + n:
                break
            ftype, flags = self.buf[3], self.buf[4]
            sid = int.from_bytes(self.buf[5:9], "big") & 0x7FFFFFFF
            payload, self.buf = self.buf[9:9 + n], self.buf[9 + n:]
            self._frame(ftype, flags, sid, payload)
        return True

    def _unpad(self, flags, payload):
        if flags & PADDED:
            pad = payload[0]
            payload = payload[1:len(payload) - pad]
        return payload

    def _frame(self, ftype, flags, sid, payload):
        if ftype == H2_SETTINGS:
            if not flags & ACK:
                self.server_settings = True
                self.sock.sendall(h2_frame(H2_SETTINGS, ACK, 0))
        elif ftype == H2_PING:
            if not flags & ACK:
                self.sock.sendall(h2_frame(H2_PING, ACK, 0, payload))
        elif ftype == H2_GOAWAY:
            self.goaway = payload
        elif ftype in (H2_HEADERS, H2_CONT):
            s = self.streams.get(sid)
            ft.check(s is not None, f"HEADERS for a stream never opened ({sid})")
            if ftype == H2_HEADERS:
                payload = self._unpad(flags, payload)
                if flags & PRIORITY:
                    payload = payload[5:]
            s.header_block += payload
            if flags & END_HEADERS and s.status is None:
                s.status = self._status(s.header_block)
            if flags & END_STREAM:
                s.ended = True
        elif ftype == H2_DATA:
            s = self.streams.get(sid)
            ft.check(s is not None, f"DATA for a stream never opened ({sid})")
            body = self._unpad(flags, payload)
            s.parser.feed(body)
            if payload:
                # Give the window back at once, for the stream and for the connection.
                inc = len(payload).to_bytes(4, "big")
                self.sock.sendall(h2_frame(H2_WINDOW, 0, 0, inc) + h2_frame(H2_WINDOW, 0, sid, inc))
            if flags & END_STREAM:
                s.ended = True
        elif ftype == H2_RST:
            s = self.streams.get(sid)
            if s:
                s.reset = int.from_bytes(payload[:4], "big")
                s.ended = True

    @staticmethod
    def _status(block):
        if block and block[0] in STATIC_STATUS:
            return STATIC_STATUS[block[0]]
        # Literal with the indexed name :status (index 8), 3 raw digits.
        m = re.match(rb"^[\x08\x48\x18]\x03(\d{3})", block)
        return int(m.group(1)) if m else f"undecoded {block[:20]!r}"

    def wait(self, pred, timeout, what):
        deadline = time.monotonic() + timeout
        while not pred():
            left = deadline - time.monotonic()
            if left <= 0:
                ft.fail(f"HTTP/2: {what} within {timeout}s",
                        {sid: (s.path, s.status, [e.data for e in s.events()], s.reset)
                         for sid, s in self.streams.items()})
            self.pump(left)


# ---- the checks -------------------------------------------------------------------------------


def count_log(srv, pattern):
    return len(re.findall(pattern, srv.log()))


def latency_series(nginx, reader, pub, first, n=20):
    """Publishes n events through nginx 50 ms apart; returns each one's delay from just before
    its POST to its arrival on the stream."""
    latencies = []
    for i in range(first, first + n):
        time.sleep(0.05)
        sent = time.monotonic()
        resp = pub.request("POST", "/pub/live", body=f"tick {i}")
        ft.check_eq(resp.status, 201, f"publish {i} through nginx ({resp.text})")
        eid = resp.json()["id"]
        e = reader.wait_events(i + 1, timeout=2)[i]
        ft.check_eq((e.id, e.data), (eid, f"tick {i}"), f"event {i}")
        latencies.append(e.t - sent)
    return latencies


def sse_unbuffered(nginx, nodes):
    with ft.subtest("SSE through nginx: stream headers, and each event within 50 ms of its "
                    "publish (nothing buffered)"):
        sse = ft.open_stream(nginx.port, "/sub/live")
        ft.check_eq((sse.response.header("content-type") or "").split(";")[0],
                    "text/event-stream", "Content-Type through nginx")
        ft.check(sse.response.header("content-length") is None,
                 "a stream through nginx has no Content-Length", sse.response.summary())
        reader = ft.StreamReader(sse)
        try:
            # A proxy that buffers holds back every event (until its buffer fills or the
            # response ends). A busy host can also stall any one process for tens of
            # milliseconds now and then, so a series with one late event is run again: one
            # series of 20 with every event on time shows that nothing is buffered.
            series = []
            with ft.Conn(nginx.port) as pub:
                for attempt in range(3):
                    lat = latency_series(nginx, reader, pub, first=20 * attempt)
                    series.append(lat)
                    print(f"    publish-to-delivery through nginx: worst {max(lat) * 1000:.1f} "
                          f"ms, median {sorted(lat)[len(lat) // 2] * 1000:.1f} ms", flush=True)
                    if max(lat) <= LATENCY_LIMIT:
                        break
            ft.check(max(series[-1]) <= LATENCY_LIMIT,
                     f"every event of a series within {LATENCY_LIMIT * 1000:.0f} ms of its "
                     "publish", [[f"{x * 1000:.1f} ms" for x in lat] for lat in series])
            ft.check(reader.error is None, "reader error", reader.error)
        finally:
            reader.stop()


def spread_over_nodes(nginx, nodes):
    with ft.subtest("no sticky sessions: streams through nginx land on both nodes, and an "
                    "event published on either reaches all of them"):
        streams = [ft.open_stream(nginx.port, "/sub/spread") for _ in range(4)]
        try:
            per_node = [n.health()["streams"] for n in nodes]
            ft.check_eq(sum(per_node), 4, "streams open on the two nodes")
            ft.check(all(c > 0 for c in per_node), "nginx spreads streams over both nodes",
                     per_node)
            ids = [ft.publish(n.port, "/pub/spread", f"from node {k}")
                   for k, n in enumerate(nodes)]
            for s in streams:
                got = s.take(2)
                ft.check_eq([(e.id, e.data) for e in got],
                            [(ids[0], "from node 0"), (ids[1], "from node 1")],
                            "every stream gets both nodes' events in order")
        finally:
            for s in streams:
                s.close()


def resume_through_nginx(nginx, nodes):
    with ft.subtest("Last-Event-ID through nginx resumes exactly, on whichever node serves it"):
        ids = [ft.publish(nginx.port, "/pub/again", f"a{i}") for i in range(8)]
        before = [count_log(n, r'"event":"RECONNECTING"') for n in nodes]
        for k in range(4):
            with ft.open_stream(nginx.port, "/sub/again", last_event_id=ids[k]) as s:
                got = s.take(len(ids) - k - 1)
                ft.check_eq([(e.id, e.data) for e in got],
                            [(ids[i], f"a{i}") for i in range(k + 1, len(ids))],
                            f"events after {ids[k]} through nginx")
                s.expect_no_event(0.1)
        time.sleep(0.2)
        after = [count_log(n, r'"event":"RECONNECTING"') for n in nodes]
        served = [a - b for a, b in zip(after, before)]
        ft.check_eq(sum(served), 4, "resumed streams counted in the nodes' logs")
        ft.check(all(c > 0 for c in served), "both nodes served resumes (no stickiness needed)",
                 served)


def websocket_through_nginx(nginx, nodes):
    with ft.subtest("WebSocket upgrades pass through nginx: 101, events, messages, "
                    "X-Forwarded-For, resume, close handshake"):
        ws = ft.ws_connect(nginx.port, "/sub/wsx", protocols="freshet.v1",
                           headers={"X-Forwarded-For": "203.0.113.7"})
        ft.check_eq(ws.response.header("sec-websocket-protocol"), "freshet.v1",
                    "subprotocol through nginx")
        first = ft.publish(nginx.port, "/pub/wsx", "over ws")
        m = ws.events(1)[0]
        ft.check_eq((m["id"], m["data"], m["topic"]), (first, "over ws", "wsx"),
                    "an event through nginx")
        ws.send_json({"type": "ping"})
        ft.check_eq(ws.next_json(), {"v": 1, "type": "pong"}, "ping through nginx")
        ws.send_json({"type": "who"})
        ft.check_eq(ws.next_json(), {"forwarded": "203.0.113.7, 127.0.0.1", "proto": "http"},
                    "X-Forwarded-For (the client's, then nginx's peer) and X-Forwarded-Proto "
                    "as the route sees them")
        ws.send_frame(ft.WS_PING, b"raw ping")
        f = ws.recv_frame()
        ft.check_eq((f.opcode, f.payload), (ft.WS_PONG, b"raw ping"), "a ping frame's pong")
        ws.send_close(1000, b"done")
        ws.expect_close(1000)
        ws.close()
        more = [ft.publish(nginx.port, "/pub/wsx", f"later {i}") for i in range(3)]
        ws = ft.ws_connect(nginx.port, f"/sub/wsx?lastEventId={first}")
        ft.check_eq([(e["id"], e["data"]) for e in ws.events(3)],
                    [(more[i], f"later {i}") for i in range(3)],
                    "a WebSocket resumed through nginx with ?lastEventId")
        ws.close()


def http2_multiplexing(nginx, nodes):
    with ft.subtest("HTTP/2 (h2c, prior knowledge): three SSE streams share one client "
                    "connection, each gets its events"):
        h2 = H2Conn(nginx.h2_port)
        try:
            topics = ["h2a", "h2b", "h2c"]
            sids = [h2.get(f"/sub/{t}") for t in topics]
            h2.wait(lambda: all(h2.streams[s].status is not None for s in sids), 5,
                    "response headers on every stream")
            ft.check_eq([h2.streams[s].status for s in sids], [200, 200, 200],
                        "status of each stream")
            # Published once the streams are on (their 200 came from freshet's stream start).
            want = {}
            for k, t in enumerate(topics):
                for i in range(2):
                    want.setdefault(t, []).append(
                        (ft.publish(nodes[(k + i) % 2].port, f"/pub/{t}", f"{t} {i}"),
                         f"{t} {i}"))
            h2.wait(lambda: all(len(h2.streams[s].events()) >= 2 for s in sids), 5,
                    "two events on every stream")
            for s, t in zip(sids, topics):
                ft.check_eq([(e.id, e.data) for e in h2.streams[s].events()], want[t],
                            f"events on the HTTP/2 stream for {t}")
                ft.check(not h2.streams[s].ended, "the stream is still open", t)
            client_port = h2.local_port()
            for s in sids:
                h2.cancel(s)
            # nginx logs each request when it ends: three lines, one connection, HTTP/2.0.
            deadline = time.monotonic() + 5
            lines = []
            while time.monotonic() < deadline:
                lines = [ln for ln in nginx.access_lines() if "uri=/sub/h2" in ln]
                if len(lines) >= 3:
                    break
                time.sleep(0.05)
            ft.check_eq(len(lines), 3, "access log lines for the three HTTP/2 streams")
            conns = {re.search(r"conn=(\d+)", ln).group(1) for ln in lines}
            protos = {re.search(r"proto=(\S+)", ln).group(1) for ln in lines}
            ft.check_eq(len(conns), 1, f"client connections nginx served the three streams on "
                        f"(client port {client_port})")
            ft.check_eq(protos, {"HTTP/2.0"}, "protocol of the three streams")
        finally:
            h2.close()


def misc_paths(nginx, nodes):
    with ft.subtest("through nginx: /health answers, /metrics is refused"):
        resp = ft.request(nginx.port, "GET", "/health")
        ft.check_eq(resp.status, 200, "/health through nginx")
        ft.check_eq(resp.json().get("status"), "ok", "/health body")
        resp = ft.request(nginx.port, "GET", "/metrics")
        ft.check_eq(resp.status, 403, "/metrics through nginx (scrape each node directly)")


def drain_one_node(nginx, nodes):
    with ft.subtest("a node drained with SIGTERM: its stream ends with retry:, and reconnecting "
                    "through nginx resumes on the other node with no gap"):
        streams = [ft.open_stream(nginx.port, "/sub/drain") for _ in range(2)]
        try:
            per_node = [n.health()["streams"] for n in nodes]
            ft.check_eq(per_node, [1, 1], "one stream on each node")
            ids = [ft.publish(nodes[1].port, "/pub/drain", f"d{i}") for i in range(3)]
            for s in streams:
                ft.check_eq([e.id for e in s.take(3)], ids, "both streams before the drain")
            nodes[0].stop()
            # The other node keeps publishing while the drained node's client comes back.
            ids += [ft.publish(nodes[1].port, "/pub/drain", f"d{i}") for i in range(3, 6)]
            ended = None
            deadline = time.monotonic() + 5
            while ended is None and time.monotonic() < deadline:
                for k, s in enumerate(streams):
                    s.pump(0.02)
                    if s.ended:
                        ended = k
            ft.check(ended is not None, "the drained node's stream ended",
                     [s.raw[-300:] for s in streams])
            gone = streams[ended]
            ft.check(gone.retries() and gone.retries()[-1].ms > 0,
                     "the drained stream's last frame is a retry:", gone.raw[-300:])
            seen = [e.id for e in gone.events()]
            ft.check_eq(seen, ids[:len(seen)], "what the drained stream got, in order")
            with ft.open_stream(nginx.port, "/sub/drain", last_event_id=seen[-1]) as back:
                rest = back.take(len(ids) - len(seen))
                ft.check_eq(seen + [e.id for e in rest], ids,
                            "after reconnecting through nginx: every event once, in order")
                ft.check_eq(nodes[1].health()["streams"], 2,
                            "the reconnected stream is on the node still running")
        finally:
            for s in streams:
                s.close()


def run():
    ft.require_file(ft.BIN, "freshet binary")
    binary = nginx_binary()
    site = documented_config()
    appdir = ft.pubsub_app(APP_SETTINGS, files={"routes/sub.lua": SUB})
    redis = ft.RedisServer().start()
    nodes = [ft.redis_node(redis, app=appdir) for _ in range(2)]
    nginx = Nginx(binary, site).start([n.port for n in nodes])
    try:
        sse_unbuffered(nginx, nodes)
        spread_over_nodes(nginx, nodes)
        resume_through_nginx(nginx, nodes)
        websocket_through_nginx(nginx, nodes)
        http2_multiplexing(nginx, nodes)
        misc_paths(nginx, nodes)
        drain_one_node(nginx, nodes)
    finally:
        if any(ft._failures):
            print("    --- nginx log ---\n" + nginx.log_tail(), flush=True)
        nginx.stop()
    for n in nodes:
        n.stop()
    redis.stop()


ft.main(run, limit=100)
