"""The NATS JetStream broker around its connection, with real nats-server processes:
- NATS unreachable when a node starts (a server that accepts TCP and never speaks, so every
  connect attempt waits for its timeout): /health answers at once, degraded, publishes get 503;
  once a nats-server listens there the node connects by itself and serves;
- the nats-server stopped under two nodes: /health degraded and publishes 503 on both; it
  restarts (same store) while one node still cannot reach it (a proxy in between is cut) and
  the other publishes: once the first reconnects its open streams get every event published
  meanwhile, in order, none twice, then the live ones;
- 20 streams opened at once on a topic the node does not follow yet while another node
  publishes: each gets every event after the position its first frame names (joins complete in
  any order; the first to finish must not skip events an earlier-read position still needs);
- presence (86_presence.py's app and helpers) merged across two nodes; a killed node drops out;
- an external producer's JetStream publish with the Fr-* headers (docs/NATS.md) is delivered and
  replayed like a freshet publish, with the id <stream ms>-<PubAck seq>."""

import contextlib
import json
import select
import socket
import threading
import time

import frtest as ft


def nats_app(url):
    return ft.pubsub_app(settings=f'broker = "{url}", heartbeat = 1, retry = 1000,')


class CutProxy:
    """A TCP proxy to a nats-server, on a thread of its own. cut() closes the connections it
    carries and refuses new ones (closes them at once) until mend()."""

    def __init__(self, target_port):
        self.target = target_port
        self.lsock = ft.listener()
        self.port = self.lsock.getsockname()[1]
        self.pairs = []
        self.is_cut = False
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    @property
    def url(self):
        return f"nats://{ft.HOST}:{self.port}"

    def _drop(self, pair):
        for s in pair:
            s.close()
        self.pairs.remove(pair)

    def cut(self):
        with self.lock:
            self.is_cut = True
            for p in list(self.pairs):
                self._drop(p)

    def mend(self):
        with self.lock:
            self.is_cut = False

    def run(self):
        while not self.stop.is_set():
            with self.lock:
                socks = [self.lsock] + [s for p in self.pairs for s in p]
            ready, _, _ = select.select(socks, [], [], 0.05)
            with self.lock:
                for s in ready:
                    if s is self.lsock:
                        c, _ = s.accept()
                        try:
                            if self.is_cut:
                                raise OSError("cut")
                            u = socket.create_connection((ft.HOST, self.target), timeout=1)
                        except OSError:
                            c.close()
                            continue
                        self.pairs.append([c, u])
                        continue
                    pair = next((p for p in self.pairs if s in p), None)
                    if pair is None:
                        continue
                    try:
                        data = s.recv(65536)
                        if data:
                            (pair[1] if s is pair[0] else pair[0]).sendall(data)
                    except OSError:
                        data = b""
                    if not data:
                        self._drop(pair)

    def close(self):
        self.stop.set()
        self.thread.join(timeout=5)
        for p in list(self.pairs):
            self._drop(p)
        self.lsock.close()


@contextlib.contextmanager
def two_nodes(nats):
    """Two nodes on one nats-server, both healthy; stopped at the end."""
    a = ft.Server(nats_app(nats.url)).start()
    b = ft.Server(nats_app(nats.url)).start()
    try:
        for n in (a, b):
            ft.wait_health(n, "ok", timeout=20)
        yield a, b
    finally:
        a.stop()
        b.stop()


def broker_status(srv):
    h = srv.health()
    return h.get("status"), ft.broker_state(h)


def unreachable_at_start():
    with ft.subtest("NATS unreachable when the node starts (connects time out): /health answers "
                    "at once, degraded; publishes 503; the node connects once NATS is there"):
        # Accepts TCP (the kernel's backlog) and never sends INFO: each connect attempt waits
        # for the client library's 1 s timeout.
        mute = ft.listener(128)
        port = mute.getsockname()[1]
        srv = ft.Server(nats_app(f"nats://{ft.HOST}:{port}")).start()
        try:
            slowest, answers, end = 0.0, 0, time.monotonic() + 4
            while time.monotonic() < end:
                t0 = time.monotonic()
                st = broker_status(srv)
                slowest = max(slowest, time.monotonic() - t0)
                answers += 1
                ft.check_eq(st, ("degraded", {"kind": "nats", "status": "unavailable"}),
                            "/health while NATS does not answer")
                time.sleep(0.05)
            print(f"    {answers} /health answers in 4 s while connecting, the slowest "
                  f"{slowest * 1000:.0f} ms", flush=True)
            ft.check(slowest < 0.4, f"/health took {slowest:.2f} s while the node was connecting "
                     "(the first connect must not block the worker's loop)")
            err = srv.post("/pub/early", b"x").check_error(503, "publish without NATS")
            ft.check("broker is unavailable" in err, "503 message", err)
            mute.close()
            nats = ft.NatsServer()
            nats.port, nats.mport = port, ft.free_port()
            nats.start()
            ft.wait_health(srv, "ok", timeout=20)
            with ft.open_stream(srv.port, "/sub/early") as s:
                eid = srv.publish("/pub/early", "now")
                e = s.next_event()
                ft.check_eq((e.id, e.data), (eid, "now"), "an event once NATS is there")
            srv.stop()
            nats.stop()
        finally:
            mute.close()


def wait_status(srv, want, what, timeout=15):
    deadline = time.monotonic() + timeout
    while True:
        st = broker_status(srv)
        if st == want:
            return
        if time.monotonic() > deadline:
            ft.fail(f"{what}: /health never said {want}", st)
        time.sleep(0.05)


def outage_and_refill():
    with ft.subtest("nats-server stopped: /health degraded and publishes 503 on both nodes; "
                    "restarted while node a still cannot reach it and node b publishes: a's "
                    "open streams get every event, in order, none twice"):
        nats = ft.NatsServer().start()
        proxy = CutProxy(nats.port)
        a = ft.Server(nats_app(proxy.url)).start()
        b = ft.Server(nats_app(nats.url)).start()
        try:
            for n in (a, b):
                ft.wait_health(n, "ok", timeout=20)
            readers = {name: ft.StreamReader(n.stream("/sub/rf"))
                       for name, n in (("a", a), ("b", b))}
            time.sleep(0.3)
            sent = [(a if i % 2 else b).publish("/pub/rf", f"before {i}") for i in range(4)]
            for r in readers.values():
                r.wait_events(4)

            nats.stop()
            for name, n in (("a", a), ("b", b)):
                wait_status(n, ("degraded", {"kind": "nats", "status": "unavailable"}),
                            f"node {name} with nats-server stopped")
                r = n.post("/pub/rf", b"lost?")
                err = r.check_error(503, f"publish on node {name} with nats-server stopped")
                ft.check("broker is unavailable" in err, "503 message", err)
                ft.check(r.header("retry-after") is not None, "503 without Retry-After",
                         r.summary())

            proxy.cut()
            nats.start()  # the same port and store
            ft.wait_health(b, "ok", timeout=20)
            sent += [b.publish("/pub/rf", f"while a was away {i}") for i in range(5)]
            time.sleep(0.5)
            ft.check_eq(broker_status(a)[0], "degraded", "node a, still cut off from NATS")
            ft.check_eq(len(readers["a"].events()), 4, "events on node a while it is cut off")

            proxy.mend()
            ft.wait_health(a, "ok", timeout=20)
            sent += [(a if i % 2 else b).publish("/pub/rf", f"after {i}") for i in range(4)]
            for name, r in readers.items():
                got = r.wait_events(len(sent))
                time.sleep(0.3)
                got = r.events()
                ft.check(not r.stream.ended, f"node {name}'s stream ended")
                ft.check_eq([e.id for e in got], sent, f"node {name}: the ids answered 201, "
                            "in order")
                ft.check_eq([e.data for e in got],
                            [f"before {i}" for i in range(4)] +
                            [f"while a was away {i}" for i in range(5)] +
                            [f"after {i}" for i in range(4)],
                            f"node {name}: every event once, in order")
            h = a.health()["broker"]
            ft.check(h.get("reconnects", 0) >= 1 and h.get("fills", 0) >= 1,
                     "node a's /health counts its reconnect and fill", h)
            for r in readers.values():
                r.stop()
        finally:
            a.stop()
            b.stop()
            proxy.close()
            nats.stop()


def presence_across_nodes(nats):
    with ft.subtest("presence merged across two nodes on NATS; a killed node drops out"):
        pres = ft.load_script("86_presence.py")
        a = ft.Server(pres.app_dir(), env=nats.env()).start()
        b = ft.Server(pres.app_dir(), env=nats.env()).start()
        try:
            for n in (a, b):
                ft.wait_health(n, "ok", timeout=20)
            streams = [pres.hold(a.port, "room", "ann"), pres.hold(b.port, "room", "cat"),
                       pres.hold(b.port, "room", "dan")]
            got = pres.wait_presence(a, "room", (3, ["ann", "cat", "dan"]))
            ft.check_eq(got["nodes"], 2, "two nodes answered")
            pres.wait_presence(b, "room", (3, ["ann", "cat", "dan"]))
            streams.pop().close()
            pres.wait_presence(a, "room", (2, ["ann", "cat"]))
            killed_at = time.monotonic()
            b.kill()
            got = pres.wait_presence(a, "room", (1, ["ann"]))
            took = time.monotonic() - killed_at
            ft.check_eq(got["nodes"], 1, "one node answered")
            print(f"    the killed node left the presence within {took:.1f} s", flush=True)
            ft.check(took <= 5, "a killed node drops out within 5 s (it stops answering)", took)
            for s in streams:
                s.close()
        finally:
            a.stop()


def external_producer(nats):
    with ft.subtest("an external JetStream publish with Fr-* headers is delivered and replayed "
                    "like a freshet publish"):
        srv = ft.Server(nats_app(nats.url)).start()
        try:
            ft.wait_health(srv, "ok", timeout=20)
            topic = "ext.1"  # '.' is written =2E in the subject token
            with ft.open_stream(srv.port, f"/sub/{topic}") as s:
                first = srv.publish(f"/pub/{topic}", "from freshet")
                with ft.NatsConn(nats.port) as nc:
                    hdrs, ack = nc.request("fr.freshet.s.ext=2E1", '{"n": 1}',
                                           headers={"Fr-Event": "greet",
                                                    "Fr-Priority": "critical",
                                                    "Fr-Json": "1"})
                puback = json.loads(ack)
                ft.check(puback.get("stream") == "freshet" and puback.get("seq"),
                         "JetStream's PubAck", (hdrs, ack))
                ext_id = f"{first.split('-')[0]}-{puback['seq']}"
                last = srv.publish(f"/pub/{topic}", "from freshet again")
                got = s.take(3)
                ft.check_eq([(e.id, e.type, e.data) for e in got],
                            [(first, "message", "from freshet"), (ext_id, "greet", '{"n": 1}'),
                             (last, "message", "from freshet again")],
                            "live: the external event between two freshet publishes")
            with ft.SSEStream(srv.port, f"/sub/{topic}", last_event_id=first) as s:
                ft.check_eq(s.status, 200, f"resume ({s.response.summary()})")
                got = s.take(2)
                ft.check_eq([(e.id, e.type, e.data) for e in got],
                            [(ext_id, "greet", '{"n": 1}'), (last, "message", "from freshet again")],
                            "replayed after the id before it")
            with ft.SSEStream(srv.port, f"/sub/{topic}", last_event_id=ext_id) as s:
                ft.check_eq(s.status, 200, f"resume from the external id "
                                           f"({s.response.summary()})")
                e = s.next_event()
                ft.check_eq((e.id, e.data), (last, "from freshet again"),
                            "replayed after the external id")
            srv.stop()
        finally:
            srv.kill()


def fresh_joins_while_publishing(nats):
    with ft.subtest("20 streams opened at once on a topic the node does not follow yet, while "
                    "another node publishes: each gets every event after its opening position"):
        with two_nodes(nats) as (a, b):
            stop, ids = threading.Event(), []

            def publisher():
                with ft.Publisher(a.port) as p:
                    k = 0
                    while not stop.is_set():
                        rs = p.publish_many([("/pub/busy", f"e{k + i}".encode(), None)
                                             for i in range(16)], window=16)
                        ids.extend(r.json()["id"] for r in rs if r.status == 201)
                        k += 16

            pub = threading.Thread(target=publisher, daemon=True)
            pub.start()
            time.sleep(0.5)
            streams, opened = [None] * 20, [None] * 20

            def open_one(i):
                s = ft.SSEStream(b.port, "/sub/busy")
                s.wait_retry()
                # The first frame (retry and id) names the stream's position.
                head = s.raw.split(b"\n\n")[0].decode()
                pos = [ln[3:].strip() for ln in head.splitlines() if ln.startswith("id:")]
                streams[i], opened[i] = s, pos[0] if pos else None

            openers = [threading.Thread(target=open_one, args=(i,)) for i in range(20)]
            for t in openers:
                t.start()
            for t in openers:
                t.join(timeout=15)
            readers = [ft.StreamReader(s) for s in streams if s is not None]
            ft.check_eq(len(readers), 20, "streams opened")
            time.sleep(1.0)
            stop.set()
            pub.join(timeout=10)
            published = list(ids)
            time.sleep(1.0)
            for k, (r, start) in enumerate(zip(readers, opened)):
                ft.check(start, f"stream {k}: no position in its first frame")
                want = [i for i in published if ft.parse_id(i) > ft.parse_id(start)]
                got = [e.id for e in r.events()]
                missing = sorted(set(want) - set(got), key=ft.parse_id)
                ft.check(not missing, f"stream {k} (opened at {start}) misses {len(missing)} "
                         f"of {len(want)} events after its position", missing[:10])
                ft.check_eq(got, want, f"stream {k}: the events after its position, in order")
            for r in readers:
                r.stop()


def live_from_the_start(nats):
    with ft.subtest("a topic whose live events flow from its first stream on is not read back "
                    "from JetStream (no recheck fill holding its live events), and every event "
                    "arrives in order"):
        with two_nodes(nats) as (a, b):
            fills0 = b.health().get("broker", {}).get("fills")
            ft.check(fills0 is not None, "node B's /health reports its fills", b.health())
            s = ft.SSEStream(b.port, "/sub/flowing")
            s.wait_retry()
            reader = ft.StreamReader(s)
            ids = []
            # Past the recheck's second after the first follow, one event every 50 ms.
            for k in range(50):
                ids.append(ft.publish(a.port, "/pub/flowing", f"f{k}"))
                time.sleep(0.05)
            time.sleep(0.5)
            ft.check_eq([e.id for e in reader.events()], ids, "the events, in order")
            reader.stop()
            fills = b.health().get("broker", {}).get("fills")
            ft.check_eq(fills, fills0, "fills on node B while live events flowed")


def run():
    unreachable_at_start()
    outage_and_refill()
    nats = ft.NatsServer().start()
    fresh_joins_while_publishing(nats)
    live_from_the_start(nats)
    presence_across_nodes(nats)
    external_producer(nats)
    nats.stop()


ft.main(run, limit=110)
