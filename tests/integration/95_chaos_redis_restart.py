"""SIGKILL of a node mid-stream with the Redis broker, and the node restarted on the same port:
its clients (which know no other node) keep retrying it, and once it is back they resume with
their Last-Event-ID and get every event exactly once, in order, including those published
through another node while the killed one was down.

58_redis_kill_node covers clients moving to *other* nodes after a kill; this one covers the
restarted node itself: a fresh process with an empty hub that must serve resumes entirely from
Redis. (About 300 events/s for 4 s; the node is down for 1 s.)"""

import os
import signal
import threading
import time

import frtest as ft

TOPICS = ["r0", "r1"]
CLIENTS = 6
RATE = 300
DURATION = 4.0
KILL_AT = 1.0
DOWN_FOR = 1.0


class Client:
    """Streams one topic from one node, reconnecting to that same node (with the last id it
    received) whenever the stream ends or the node refuses connections."""

    def __init__(self, name, topic, port, last_id):
        self.name, self.topic, self.port, self.last_id = name, topic, port, last_id
        self.events, self.connects, self.refused = [], [], 0
        self.error = None
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        try:
            while not self.stop.is_set():
                try:
                    s = ft.SSEStream(self.port, f"/sub/{self.topic}", last_event_id=self.last_id)
                except (OSError, ft.Failure):
                    self.refused += 1
                    time.sleep(0.05)
                    continue
                self.connects.append((round(time.monotonic(), 3), s.status, self.last_id))
                if s.status != 200:
                    if s.status == 503:  # the restarted node is not on Redis yet
                        s.close()
                        time.sleep(0.1)
                        continue
                    self.error = f"{self.name}: status {s.status} after {self.last_id}: " \
                                 f"{s.response.text[:200]}"
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
                except OSError:
                    pass
                finally:
                    s.close()
        except Exception as exc:  # reported by the main thread
            self.error = f"{self.name}: {exc!r}"

    def finish(self):
        self.stop.set()
        self.thread.join(timeout=10)


def run():
    ft.require_file(ft.BENCH_APP, "bench app")
    redis = ft.RedisServer().start()
    a = ft.redis_node(redis)
    b = ft.redis_node(redis)
    port_a = a.port

    with ft.subtest("SIGKILL the clients' node, restart it: they resume there, nothing lost"):
        seed = {t: b.publish(f"/pub/{t}", f"seed {t}") for t in TOPICS}
        clients = [Client(f"client {i}", TOPICS[i % 2], port_a, seed[TOPICS[i % 2]])
                   for i in range(CLIENTS)]
        restarted = None
        try:
            a.wait_streams(CLIENTS)
            published, errors = [], []

            def publish():
                try:
                    with ft.Publisher(b.port, timeout=15) as pub:
                        start, n = time.monotonic(), 0
                        while time.monotonic() - start < DURATION:
                            due = int((time.monotonic() - start) * RATE) + 3
                            if n >= due:
                                time.sleep(0.002)
                                continue
                            items = [(f"/pub/{TOPICS[k % 2]}", f"e{k}", {}) for k in range(n, due)]
                            for (path, data, _), eid in zip(items, pub.publish_ids(items)):
                                published.append((path.rsplit("/", 1)[1], eid, data))
                            n = due
                except BaseException as exc:
                    errors.append(repr(exc))

            t = threading.Thread(target=publish, daemon=True)
            t.start()
            time.sleep(KILL_AT)
            os.kill(a.proc.pid, signal.SIGKILL)
            ft.check_eq(a.wait_exit(timeout=5), -signal.SIGKILL, "exit status of the killed node")
            killed = len(published)
            time.sleep(DOWN_FOR)
            during = len(published) - killed
            restarted = ft.Server(ft.BENCH_APP, env=redis.env(), port=port_a).start()
            ft.wait_health(restarted, "ok")
            t.join(timeout=DURATION + 30)
            ft.check(not t.is_alive() and not errors, "publishing through the other node", errors)
            print(f"    {len(published)} events published; {killed} before the kill, {during} "
                  "while the node was down", flush=True)
            ft.check(during > 50, f"only {during} events were published while the node was down")

            expected = {tp: [] for tp in TOPICS}
            for tp, eid, data in published:
                expected[tp].append((ft.parse_id(eid), eid, data))
            for tp in TOPICS:
                expected[tp] = [(eid, data) for _, eid, data in sorted(expected[tp])]
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                if all(len(c.events) >= len(expected[c.topic]) or c.error for c in clients):
                    break
                time.sleep(0.05)
            time.sleep(0.3)  # a duplicate would arrive now
        finally:
            for c in clients:
                c.finish()

        problems = []
        for c in clients:
            ids = [e[0] for e in c.events]
            if c.error or c.events != expected[c.topic]:
                have = set(ids)
                problems.append({
                    "client": c.name, "error": c.error, "received": len(ids),
                    "expected": len(expected[c.topic]),
                    "missing": [w[0] for w in expected[c.topic] if w[0] not in have][:10],
                    "duplicates": sorted({x for x in ids if ids.count(x) > 1})[:10],
                    "connects": c.connects[-4:], "refused": c.refused})
        ft.check(not problems, f"{len(problems)} of {CLIENTS} clients did not get every event "
                               "exactly once, in order", problems)
        for c in clients:
            after = [x for x in c.connects if x[1] == 200]
            ft.check(len(after) >= 2, f"{c.name} never reconnected to the restarted node",
                     c.connects)
        print(f"    every client: {len(expected[TOPICS[0]])}/{len(expected[TOPICS[1]])} events, "
              f"refused while down: {[c.refused for c in clients]}", flush=True)

    if restarted is not None:
        restarted.stop()
    b.stop()
    redis.stop()


ft.main(run, limit=90)
