"""Load: 1,000 concurrent streams all get a broadcast; server memory returns to its baseline
after 1,000 stream connect/disconnect cycles."""

import os
import selectors
import socket
import time

import frtest as ft

STREAMS = 1000
CYCLES = 1000
WARMUP = 200
BATCH = 50
RSS_SLACK_KB = (32 if ft.SANITIZED else 3) * 1024


class Client:
    __slots__ = ("sock", "head", "status", "decoder", "parser", "sent", "ready", "error")

    def __init__(self, sock):
        self.sock = sock
        self.head = b""
        self.status = None
        self.decoder = ft.ChunkedDecoder()
        self.parser = ft.SSEParser()
        self.sent = False
        self.ready = False
        self.error = None

    def feed(self, data):
        if self.status is None:
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                return
            head, data = self.head[:end], self.head[end + 4:]
            line = head.split(b"\r\n")[0]
            parts = line.split(b" ")
            self.status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else -1
            if self.status != 200:
                self.error = f"status line {line!r}"
                return
        self.parser.feed(self.decoder.feed(data))
        if self.parser.retry is not None:
            self.ready = True


class Swarm:
    """Many streams over non-blocking sockets in one selector."""

    def __init__(self, port, path):
        self.port = port
        self.request = ft.build_request("GET", path, {"Accept": "text/event-stream"}, None, port)
        self.sel = selectors.DefaultSelector()
        self.clients = []

    def _new(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        s.connect_ex((ft.HOST, self.port))
        c = Client(s)
        self.clients.append(c)
        self.sel.register(s, selectors.EVENT_WRITE, c)
        return c

    def _step(self, timeout):
        for key, mask in self.sel.select(timeout):
            c = key.data
            if mask & selectors.EVENT_WRITE and not c.sent:
                err = c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    c.error = f"connect failed: {os.strerror(err)}"
                    self.sel.unregister(c.sock)
                    continue
                c.sock.send(self.request)  # a few hundred bytes: fits the empty send buffer
                c.sent = True
                self.sel.modify(c.sock, selectors.EVENT_READ, c)
            elif mask & selectors.EVENT_READ:
                try:
                    data = c.sock.recv(65536)
                except (ConnectionResetError, BlockingIOError) as exc:
                    data = b"" if isinstance(exc, ConnectionResetError) else None
                if data is None:
                    continue
                if not data:
                    c.error = c.error or "closed by the server"
                    self.sel.unregister(c.sock)
                    continue
                try:
                    c.feed(data)
                except ft.Failure as exc:
                    c.error = str(exc)
                if c.error:
                    self.sel.unregister(c.sock)

    def open(self, n, timeout=30, in_flight=100):
        """Opens n streams (at most in_flight handshakes at once) and waits for their retry
        frames."""
        start = len(self.clients)
        deadline = time.monotonic() + timeout
        while True:
            mine = self.clients[start:]
            bad = [c for c in mine if c.error]
            ft.check(not bad, f"{len(bad)} of {len(mine)} streams failed while opening",
                     [c.error for c in bad[:5]])
            ready = sum(1 for c in mine if c.ready)
            if ready == n:
                return mine
            pending = len(mine) - ready
            while len(mine) < n and pending < in_flight:
                mine.append(self._new())
                pending += 1
            ft.check(time.monotonic() < deadline, f"only {ready} of {n} streams open after {timeout}s")
            self._step(0.05)

    def pump_until(self, pred, timeout, what):
        deadline = time.monotonic() + timeout
        while not pred():
            ft.check(time.monotonic() < deadline, f"{what}: not done after {timeout}s")
            self._step(0.05)

    def close_all(self, reset=False):
        for c in self.clients:
            try:
                self.sel.unregister(c.sock)
            except (KeyError, ValueError):
                pass
            if reset:
                try:
                    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
                except OSError:
                    pass
            c.sock.close()
        self.clients = []
        self.sel.close()


def broadcast(srv):
    with ft.subtest(f"{STREAMS} concurrent streams on one topic all receive a broadcast"):
        swarm = Swarm(srv.port, "/sub/load")
        try:
            clients = swarm.open(STREAMS, timeout=40)
            h = srv.wait_streams(STREAMS, timeout=10)
            ft.check(h["connections"] >= STREAMS, "health.connections counts the streams", h)
            marker = f"broadcast {time.time()}"
            eid = srv.publish("/pub/load", marker)

            def got_it(c):
                return any(isinstance(i, ft.Event) for i in c.parser.items)

            try:
                swarm.pump_until(lambda: all(got_it(c) for c in clients), 30, "broadcast delivery")
            finally:
                missing = [c for c in clients if not got_it(c)]
                if missing:
                    print(f"    {len(missing)} of {STREAMS} streams did not get the event", flush=True)
            for c in clients:
                events = [i for i in c.parser.items if isinstance(i, ft.Event)]
                ft.check_eq([(e.id, e.data) for e in events], [(eid, marker)],
                            "the events one stream received")
        finally:
            swarm.close_all()
        srv.wait_streams(0, timeout=15)


def cycles(srv, n, batch_no):
    """n stream connect/disconnect cycles, BATCH at a time. Batches alternate between getting
    an event before they go or not, and pairs of batches between leaving with a FIN or a reset,
    so every combination of the two is exercised."""
    for _ in range(n // BATCH):
        swarm = Swarm(srv.port, "/sub/churn")
        clients = swarm.open(BATCH, timeout=20)
        if batch_no % 2 == 0:
            srv.publish("/pub/churn", f"batch {batch_no}")
            swarm.pump_until(lambda: all(any(isinstance(i, ft.Event) for i in c.parser.items)
                                         for c in clients), 10, "event to a batch")
        swarm.close_all(reset=(batch_no // 2) % 2 == 1)
        batch_no += 1
    srv.wait_streams(0, timeout=15)
    return batch_no


def settled_rss(srv):
    time.sleep(0.5)  # lets the workers finish closing and freeing
    return srv.rss_kb()


def memory(srv):
    with ft.subtest(f"RSS after {CYCLES} connect/disconnect cycles returns near its baseline"):
        batch_no = cycles(srv, WARMUP, 0)
        base = settled_rss(srv)
        batch_no = cycles(srv, CYCLES, batch_no)
        after = settled_rss(srv)
        print(f"    VmRSS baseline {base} kB, after {CYCLES} cycles {after} kB "
              f"(+{after - base} kB, allowed +{RSS_SLACK_KB} kB)", flush=True)
        ft.check(after <= base + RSS_SLACK_KB,
                 f"RSS grew by {after - base} kB over {CYCLES} cycles (allowed {RSS_SLACK_KB} kB)")


def run():
    hard = ft.raise_nofile()
    ft.check(hard >= STREAMS + 200, f"RLIMIT_NOFILE hard limit {hard} is too low for {STREAMS} streams")
    ft.require_file(ft.BENCH_APP, "bench app")
    env = dict(os.environ)
    if ft.SANITIZED:
        # ASan keeps freed memory in a quarantine (256 MB by default) that would look like growth;
        # a small one still catches use-after-free in this test's short reuse distances.
        env["ASAN_OPTIONS"] = ":".join(filter(None, [env.get("ASAN_OPTIONS"), "quarantine_size_mb=8"]))
    with ft.Server(ft.BENCH_APP, env=env, ready_timeout=20) as srv:
        broadcast(srv)
        memory(srv)


ft.main(run, limit=90)
