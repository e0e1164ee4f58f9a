"""Publishes to Redis are pipelined: every publish a worker makes in one loop iteration leaves in
one write, nothing waits for a reply before the next publish is sent, and replies are matched
to their publishes in order. Checked against a small fake Redis (in this file) that speaks
enough RESP for a node, records what arrives in each recv, and holds its answers to publishes
until all the expected ones have arrived (a node that waited for a reply per publish would
stall):

- a Lua timer that publishes 50 events in one callback;
- a publish route whose hook returns 50 events;
- a WebSocket `message` hook that publishes 50 events;
- 20 HTTP clients publishing at the same moment: each gets the id the fake gave its event;
- a publish route whose events go to two topics, a a a b b a.

Consecutive events of one topic in one loop iteration travel in one call (FCALL
freshet_publish_unchecked with two arguments per event), whose reply holds their ids in order;
another topic's event starts another call, so answers keep the order of the publishes.

The node's count of write system calls (/proc/PID/io syscw) confirms one write per batch,
since the receiving side could also merge several small writes into one recv. (hiredis buffers
every command; the adapter in src/broker/redis_conn.c writes the buffer once per loop
iteration, right after the poll.)"""

import json
import socket
import threading
import time

import frtest as ft

PUB_FN = b"freshet_publish_unchecked"

APP_ROUTES = """
app:publish("/go", "routes/go.lua")
app:publish("/many/:topic", "routes/many.lua")
app:publish("/mix", "routes/mix.lua")
app:stream("/ws/:topic", "routes/ws.lua")
"""

GO_ROUTE = """
    local freshet = require "freshet"
    local route = {}
    function route.publish(req, body, who)
      -- the timer's callback runs in a later loop iteration and publishes 50 events at once
      freshet.after(0, function()
        for i = 1, 50 do
          assert(freshet.publish("timer", "t" .. i))
        end
      end)
      return { topic = "go", data = "go" }
    end
    return route
"""

MANY_ROUTE = """
    local route = {}
    function route.publish(req, body, who)
      local list = {}
      for i = 1, 50 do list[i] = { topic = req.params.topic, data = body .. i } end
      return list
    end
    return route
"""

MIX_ROUTE = """
    local route = {}
    function route.publish(req, body, who)
      local list = {}
      for i, t in ipairs({ "a", "a", "a", "b", "b", "a" }) do
        list[i] = { topic = "mix-" .. t, data = "m" .. i }
      end
      return list
    end
    return route
"""

WS_ROUTE = """
    local freshet = require "freshet"
    local route = {}
    function route.topics(req, who) return { req.params.topic } end
    function route.message(conn, msg, who)
      for i = 1, 50 do
        assert(freshet.publish("ws-out", "w" .. i))
      end
      return { type = "done" }
    end
    return route
"""


class FakeRedis:
    """Enough of Redis for a freshet node: FUNCTION LOAD, PING, SUBSCRIBE, the freshet
    functions. Publishes get ids base-1, base-2… in the order they arrive; their answers (and
    everything after them on the same connection, to keep RESP order) wait until `hold` publishes
    have arrived in all."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((ft.HOST, 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.lock = threading.Condition()
        self.recvs = []          # (connection number, bytes, [commands completed by this recv])
        self.published = []      # (data, id) in arrival order
        self.calls = []          # (key, [data…]) per publish call
        self.hold = 0            # answers to publishes wait until len(published) >= hold
        self.base = int(time.time() * 1000)
        self.conns = []
        self.errors = []
        self.stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self):
        return f"redis://{ft.HOST}:{self.port}"

    def stop(self):
        self.stopped = True
        self.sock.close()
        for c in self.conns:
            try:
                c.close()
            except OSError:
                pass

    # -- the server

    def _accept(self):
        n = 0
        while not self.stopped:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            n += 1
            self.conns.append(c)
            threading.Thread(target=self._serve, args=(c, n), daemon=True).start()

    @staticmethod
    def _parse(buf):
        """Complete commands at the start of buf: ([argv…], bytes consumed)."""
        cmds, pos = [], 0
        while True:
            if buf[pos:pos + 1] != b"*":
                if pos < len(buf):
                    raise ValueError(f"not a RESP array: {buf[pos:pos + 40]!r}")
                return cmds, pos
            end = buf.find(b"\r\n", pos)
            if end < 0:
                return cmds, pos
            n, p, argv = int(buf[pos + 1:end]), end + 2, []
            for _ in range(n):
                e = buf.find(b"\r\n", p)
                if e < 0 or buf[p:p + 1] != b"$":
                    return cmds, pos
                ln = int(buf[p + 1:e])
                if len(buf) < e + 2 + ln + 2:
                    return cmds, pos
                argv.append(buf[e + 2:e + 2 + ln])
                p = e + 2 + ln + 2
            cmds.append(argv)
            pos = p

    @staticmethod
    def _bulk(b):
        return b"$%d\r\n%s\r\n" % (len(b), b)

    def _answer(self, argv):
        """The reply to one command: bytes, or ("pub", index) for a publish."""
        name = argv[0].upper()
        if name == b"FUNCTION":
            return self._bulk(b"freshet")
        if name == b"PING":
            return b"+PONG\r\n"
        if name in (b"SUBSCRIBE", b"UNSUBSCRIBE"):
            kind = name.lower()
            return b"".join(b"*3\r\n" + self._bulk(kind) + self._bulk(ch) + b":1\r\n"
                            for ch in argv[1:])
        if name != b"FCALL":
            return b"-ERR the fake does not know " + name + b"\r\n"
        fn = argv[1]
        if fn == PUB_FN:
            # 1 <key> <maxlen> *<ms>\n then <head> <data> per event
            if argv[2] != b"1" or (len(argv) - 6) % 2 or len(argv) < 8:
                return b"-ERR malformed " + PUB_FN + b"\r\n"
            with self.lock:
                first = len(self.published)
                for data in argv[7::2]:
                    self.published.append([data.decode(), None])
                self.calls.append((argv[3].decode(), [d.decode() for d in argv[7::2]]))
                return ("pub", first, len(self.published))
        if fn == b"freshet_resume":
            n = int(argv[2])
            last = b"%d-%d" % (self.base, len(self.published))
            return b"*%d\r\n" % n + (b"*3\r\n" + self._bulk(b"ok") + self._bulk(last) +
                                     b"*0\r\n") * n
        if fn == b"freshet_presence_get":
            return b"*0\r\n"
        if fn in (b"freshet_presence_put", b"freshet_presence_drop", b"freshet_trim"):
            return b":1\r\n"
        return b"-ERR the fake does not know " + fn + b"\r\n"

    def _serve(self, c, num):
        buf, out = b"", []  # out: replies not sent yet, in command order
        try:
            while True:
                data = c.recv(1 << 20)
                if not data:
                    return
                buf += data
                cmds, used = self._parse(buf)
                buf = buf[used:]
                with self.lock:
                    self.recvs.append((num, len(data), cmds))
                    self.lock.notify_all()
                for argv in cmds:
                    out.append(self._answer(argv))
                # send what is not held: publish answers go once `hold` publishes arrived
                while True:
                    with self.lock:
                        ready = len(self.published) >= self.hold
                        send = b""
                        while out and (isinstance(out[0], bytes) or ready):
                            r = out.pop(0)
                            if not isinstance(r, bytes):
                                ids = [b"%d-%d" % (self.base, k + 1) for k in range(r[1], r[2])]
                                for k, pid in zip(range(r[1], r[2]), ids):
                                    self.published[k][1] = pid.decode()
                                r = b"*%d\r\n" % len(ids) + b"".join(map(self._bulk, ids))
                            send += r
                        held = bool(out)
                        if held:
                            self.lock.wait(0.05)
                    if send:
                        c.sendall(send)
                    if not held:
                        break
                    # a held answer: keep reading too (more publishes may be on their way)
                    c.settimeout(0.01)
                    try:
                        more = c.recv(1 << 20)
                    except socket.timeout:
                        more = None
                    finally:
                        c.settimeout(None)
                    if more == b"":
                        return
                    if more:
                        buf += more
                        cmds, used = self._parse(buf)
                        buf = buf[used:]
                        with self.lock:
                            self.recvs.append((num, len(more), cmds))
                            self.lock.notify_all()
                        for argv in cmds:
                            out.append(self._answer(argv))
        except Exception as exc:  # reported by the test
            if not self.stopped:
                self.errors.append(repr(exc))

    # -- what the test reads

    def mark(self):
        with self.lock:
            return len(self.recvs)

    def expect(self, hold):
        with self.lock:
            self.hold = hold
            self.lock.notify_all()

    def wait_published(self, n, timeout=10):
        deadline = time.monotonic() + timeout
        with self.lock:
            while len(self.published) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    ft.fail(f"the fake Redis got {len(self.published)} of {n} publishes within "
                            f"{timeout}s", self.published[-5:])
                self.lock.wait(left)

    def batches(self, since, prefix):
        """For the publishes whose data starts with prefix, received after mark `since`: the
        number of them each recv completed (recvs with none left out)."""
        with self.lock:
            out = []
            for num, size, cmds in self.recvs[since:]:
                k = sum(1 for a in cmds if a[0].upper() == b"FCALL" and a[1] == PUB_FN
                        for d in a[7::2] if d.decode().startswith(prefix))
                if k:
                    out.append(k)
            return out

    def calls_of(self, prefix):
        """The publish calls holding events whose data starts with prefix: (key, events)."""
        with self.lock:
            return [(k, len(ds)) for k, ds in self.calls if any(d.startswith(prefix) for d in ds)]

    def ids_of(self, prefix):
        with self.lock:
            return [(d, i) for d, i in self.published if d.startswith(prefix)]


def syscw(pid):
    with open(f"/proc/{pid}/io") as f:
        for line in f:
            if line.startswith("syscw:"):
                return int(line.split()[1])
    ft.fail("no syscw in /proc/PID/io")


def check_one_batch(fake, srv, since, writes_before, prefix, n, what, key):
    batches = fake.batches(since, prefix)
    ft.check_eq(batches, [n], f"{what}: publishes completed per recv by the fake Redis")
    ft.check_eq(fake.calls_of(prefix), [(key, n)],
                f"{what}: publish calls (one FCALL per topic and loop iteration)")
    writes = syscw(srv.proc.pid) - writes_before
    # the batch itself, the HTTP or WebSocket answer, at most a PING and a presence write
    ft.check(writes <= 8, f"{what}: the node made {writes} write calls for {n} publishes "
             "(one write per publish would be 50 or more)", writes)


def run():
    fake = FakeRedis()
    app = ft.pubsub_app(settings=f'broker = "{fake.url()}",', routes=APP_ROUTES,
                        files={"routes/go.lua": GO_ROUTE, "routes/many.lua": MANY_ROUTE,
                               "routes/mix.lua": MIX_ROUTE,
                               "routes/ws.lua": WS_ROUTE})
    srv = ft.Server(app, args=["--log-level", "warn"]).start()
    ft.wait_health(srv)
    total = 0

    with ft.subtest("a Lua timer's 50 publishes leave in one write, without waiting for replies"):
        since, before = fake.mark(), syscw(srv.proc.pid)
        total += 51
        fake.expect(total)  # nothing is answered until the timer's 50 are in too
        resp = ft.publish_raw(srv.port, "/go", "x")
        ft.check_eq(resp.status, 201, f"POST /go ({resp.text[:200]})")
        fake.wait_published(total)
        check_one_batch(fake, srv, since, before, "t", 50, "timer", "fr:{timer}:s")
        ft.check_eq([d for d, _ in fake.ids_of("t")], [f"t{i}" for i in range(1, 51)],
                    "the timer's events in publish order")

    with ft.subtest("a publish route's 50 events leave in one write; the 201 has their ids in order"):
        since, before = fake.mark(), syscw(srv.proc.pid)
        total += 50
        fake.expect(total)
        resp = ft.publish_raw(srv.port, "/many/http", "h")
        ft.check_eq(resp.status, 201, f"POST /many/http ({resp.text[:200]})")
        check_one_batch(fake, srv, since, before, "h", 50, "publish route", "fr:{http}:s")
        given = [i for d, i in fake.ids_of("h")]
        ft.check_eq(resp.json()["ids"], given, "ids in the 201 vs ids the fake gave, in order")

    with ft.subtest("a WebSocket message hook's 50 publishes leave in one write"):
        with ft.ws_connect(srv.port, "/ws/room") as ws:
            since, before = fake.mark(), syscw(srv.proc.pid)
            total += 50
            fake.expect(total)
            ws.send_json({"type": "go"})
            ws.next_control("done", timeout=10)
            fake.wait_published(total)
            check_one_batch(fake, srv, since, before, "w", 50, "message hook", "fr:{ws-out}:s")

    with ft.subtest("20 clients publishing at once: nobody waits for another's reply, each gets "
                    "its own id"):
        n = 20
        conns = [ft.Conn(srv.port, timeout=10) for _ in range(n)]
        total += n
        fake.expect(total)
        for k, c in enumerate(conns):
            c.send(ft.build_request("POST", "/pub/c", [("Content-Type", "text/plain")],
                                    f"c{k}".encode(), srv.port))
        answers = [c.read_response("POST") for c in conns]
        for c in conns:
            c.close()
        given = dict(fake.ids_of("c"))
        for k, resp in enumerate(answers):
            ft.check_eq(resp.status, 201, f"client {k} ({resp.text[:200]})")
            ft.check_eq(resp.json()["id"], given.get(f"c{k}"), f"the id client {k} got")

    with ft.subtest("events of two topics, a a a b b a: a call per run of one topic, ids in order"):
        total += 6
        fake.expect(total)
        resp = ft.publish_raw(srv.port, "/mix", "x")
        ft.check_eq(resp.status, 201, f"POST /mix ({resp.text[:200]})")
        with fake.lock:
            calls = [(k, ds) for k, ds in fake.calls if ds[0].startswith("m")]
        ft.check_eq(calls, [("fr:{mix-a}:s", ["m1", "m2", "m3"]), ("fr:{mix-b}:s", ["m4", "m5"]),
                            ("fr:{mix-a}:s", ["m6"])], "publish calls, in order")
        given = dict(fake.ids_of("m"))
        ft.check_eq(resp.json()["ids"], [given[f"m{i}"] for i in range(1, 7)],
                    "ids in the 201, in the order of the route's events")

    ft.check(not fake.errors, "the fake Redis failed", fake.errors)
    srv.stop()
    fake.stop()


ft.main(run, limit=60)
