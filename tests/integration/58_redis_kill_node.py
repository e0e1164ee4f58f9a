"""A node killed with SIGKILL mid-stream loses nothing: while about 1,000 events/s are
published through the two nodes that stay up, the node most clients are on is killed; its
clients reconnect to the other nodes with their Last-Event-ID; in the end every client has
every event of its topic exactly once, in order. (Named 5x so ctest runs it alone: it keeps
both CPUs busy.)"""

import os
import signal
import threading
import time

import frtest as ft

TOPICS = [f"k{i}" for i in range(4)]
CLIENTS_ON_A, CLIENTS_ON_OTHERS = 12, 4   # clients on the node that dies / on the others
RATE = 1000          # events per second, all publishers together
DURATION = 5.0       # seconds of publishing
KILL_AT = 1.5        # seconds into the publishing


class Client:
    """One EventSource-like client on its own thread: reads its stream; when the stream ends
    (its node died) it reconnects to the next of its fallback nodes with the id of the last
    event it received."""

    def __init__(self, name, topic, first, fallbacks, last_id):
        self.name, self.topic = name, topic
        self.nodes = [first] + fallbacks
        self.fallbacks = fallbacks
        self.last_id = last_id
        self.events = []           # (id, data) over every connection
        self.connects = []         # (node port, HTTP status) of every attempt
        self.error = None
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        port = self.nodes[0]
        turn = 0
        try:
            while not self.stop.is_set():
                try:
                    s = ft.SSEStream(port, f"/sub/{self.topic}", last_event_id=self.last_id)
                except OSError as exc:
                    self.connects.append((port, repr(exc)))
                    port = self.fallbacks[turn % len(self.fallbacks)]
                    turn += 1
                    time.sleep(0.05)
                    continue
                self.connects.append((port, s.status))
                if s.status != 200:
                    self.error = f"{self.name}: GET on port {port} after {self.last_id}: " \
                                 f"status {s.status} {s.response.text[:200]}"
                    s.close()
                    return
                seen = 0
                try:
                    while not self.stop.is_set() and not s.ended:
                        s.pump(0.1)
                        items = s.parser.items
                        while seen < len(items):
                            it = items[seen]
                            seen += 1
                            if isinstance(it, ft.Event):
                                self.events.append((it.id, it.data))
                                self.last_id = it.id
                finally:
                    s.close()
                if not self.stop.is_set():
                    # the node went away: the next fallback, as a load balancer would pick
                    port = self.fallbacks[turn % len(self.fallbacks)]
                    turn += 1
        except Exception as exc:  # reported by the main thread
            self.error = f"{self.name}: {exc!r}"

    def finish(self):
        self.stop.set()
        self.thread.join(timeout=10)


def publisher(node, topics, rate, duration, out, errors):
    """Publishes round-robin over topics at `rate` events/s for `duration` s, pipelined in
    small batches on one connection; records (topic, id, data)."""
    try:
        with ft.Publisher(node.port, timeout=15) as pub:
            start = time.monotonic()
            n = 0
            batch = max(1, rate // 100)
            while True:
                elapsed = time.monotonic() - start
                if elapsed >= duration:
                    break
                due = int(elapsed * rate) + batch
                if n >= due:
                    time.sleep(0.002)
                    continue
                items = []
                for k in range(n, due):
                    topic = topics[k % len(topics)]
                    items.append((f"/pub/{topic}", f"{topic}:{node.port}:{k}", {}))
                ids = pub.publish_ids(items, window=len(items))
                for (path, data, _), eid in zip(items, ids):
                    out.append((path.rsplit("/", 1)[1], eid, data))
                n = due
    except BaseException as exc:
        errors.append(f"publisher on port {node.port}: {exc!r}")


def run():
    ft.require_file(ft.BENCH_APP, "bench app")
    ft.raise_nofile()
    redis = ft.RedisServer().start()
    a, b, c = (ft.redis_node(redis) for _ in range(3))

    with ft.subtest(f"SIGKILL a node during {RATE} events/s: its clients resume elsewhere, "
                    "nothing lost or doubled"):
        # One event per topic first: every client starts from a known id, so even a client
        # that had received nothing yet when its node died resumes exactly.
        seed = {t: b.publish(f"/pub/{t}", f"seed {t}") for t in TOPICS}
        clients = []
        for i in range(CLIENTS_ON_A + CLIENTS_ON_OTHERS):
            topic = TOPICS[i % len(TOPICS)]
            if i < CLIENTS_ON_A:
                first, fallbacks = a.port, [b.port, c.port] if i % 2 else [c.port, b.port]
            else:
                first = b.port if i % 2 else c.port
                fallbacks = [c.port if i % 2 else b.port]
            clients.append(Client(f"client {i}", topic, first, fallbacks, seed[topic]))
        try:
            deadline = time.monotonic() + 10
            while any(not cl.connects for cl in clients):
                ft.check(time.monotonic() < deadline, "clients did not connect within 10 s",
                         [cl.name for cl in clients if not cl.connects])
                time.sleep(0.02)
            for node, n in ((a, CLIENTS_ON_A), (b, CLIENTS_ON_OTHERS // 2),
                            (c, CLIENTS_ON_OTHERS - CLIENTS_ON_OTHERS // 2)):
                node.wait_streams(n)

            published, errors = [[], []], []
            threads = [threading.Thread(target=publisher,
                                        args=(node, TOPICS, RATE // 2, DURATION, out, errors),
                                        daemon=True)
                       for node, out in ((b, published[0]), (c, published[1]))]
            started = time.monotonic()
            for t in threads:
                t.start()
            time.sleep(KILL_AT)
            before = sum(len(p) for p in published)
            os.kill(a.proc.pid, signal.SIGKILL)
            a.wait_exit(timeout=5)
            killed_at = time.monotonic() - started
            for t in threads:
                t.join(timeout=DURATION + 30)
            took = time.monotonic() - started
            ft.check(not any(t.is_alive() for t in threads), "publishers did not finish")
            ft.check(not errors, "publishing failed (every publish must be 201)", errors)
            total = sum(len(p) for p in published)
            rate = total / took
            print(f"    published {total} events in {took:.1f} s ({rate:.0f}/s), "
                  f"{before} before the kill at {killed_at:.2f} s", flush=True)
            ft.check(rate >= RATE * 0.7, f"the publishers reached only {rate:.0f} events/s "
                     f"of {RATE}: the test did not apply its load")

            expected = {t: [] for t in TOPICS}
            for out in published:
                for topic, eid, data in out:
                    expected[topic].append((ft.parse_id(eid), eid, data))
            for t in TOPICS:
                expected[t] = [(eid, data) for _, eid, data in sorted(expected[t])]

            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                if all(len(cl.events) >= len(expected[cl.topic]) or cl.error for cl in clients):
                    break
                time.sleep(0.05)
            time.sleep(0.3)  # anything extra (a duplicate) would arrive now
        finally:
            for cl in clients:
                cl.finish()

        problems = []
        for i, cl in enumerate(clients):
            want = expected[cl.topic]
            if cl.error:
                problems.append({"client": cl.name, "error": cl.error, "connects": cl.connects})
                continue
            if cl.events != want:
                ids = [e[0] for e in cl.events]
                have = set(ids)
                problems.append({
                    "client": cl.name, "topic": cl.topic, "on A": i < CLIENTS_ON_A,
                    "received": len(ids), "expected": len(want),
                    "missing": [w[0] for w in want if w[0] not in have][:10],
                    "duplicates": sorted({x for x in ids if ids.count(x) > 1})[:10],
                    "out of order": [(p, q) for p, q in zip(ids, ids[1:])
                                     if ft.parse_id(p) >= ft.parse_id(q)][:5],
                    "connects": cl.connects,
                })
        ft.check(not problems, f"{len(problems)} of {len(clients)} clients did not get every "
                 "event of their topic exactly once, in order", problems[:4])
        moved = [cl for cl in clients[:CLIENTS_ON_A] if len(cl.connects) >= 2]
        ft.check_eq(len(moved), CLIENTS_ON_A, "clients of the killed node that reconnected")
        for cl in clients[:CLIENTS_ON_A]:
            ft.check(all(st == 200 for port, st in cl.connects if port != a.port),
                     f"{cl.name}: a resume on another node was refused", cl.connects)
        for node in (b, c):
            ft.check_eq(ft.broker_state(ft.wait_health(node)), {"kind": "redis", "status": "ok"},
                        "broker of a surviving node")

    b.stop()
    c.stop()
    redis.stop()


ft.main(run, limit=110)
