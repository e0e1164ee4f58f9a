"""Three freshet nodes on one Redis behave as one server: subscribers spread over the nodes
receive every event of their topic, published on any node, in per-topic id order and never
twice; a client that leaves one node resumes on another with its Last-Event-ID and gets
exactly the rest, also while events keep coming."""

import random
import threading
import time

import frtest as ft

NODES = 3
TOPICS = [f"t{i}" for i in range(5)]
STREAMS = 30
PER_PUBLISHER = 200


def fan_out(nodes):
    with ft.subtest(f"{STREAMS} streams on {NODES} nodes, publishers on every node at once"):
        readers = []  # (topic, node index, StreamReader)
        try:
            for k in range(STREAMS):
                topic, node = TOPICS[k % len(TOPICS)], k % NODES
                readers.append((topic, node,
                                ft.StreamReader(nodes[node].stream(f"/sub/{topic}"))))
            results = [None] * NODES
            errors = []

            def publisher(n):
                # Pipelined on one connection so every node is publishing at the same time.
                try:
                    items = [(f"/pub/{TOPICS[i % len(TOPICS)]}", f"n{n}-{i}", {})
                             for i in range(PER_PUBLISHER)]
                    with ft.Publisher(nodes[n].port) as pub:
                        results[n] = list(zip(items, pub.publish_ids(items, window=16)))
                except BaseException as exc:  # reported below
                    errors.append(f"publisher on node {n}: {exc!r}")

            threads = [threading.Thread(target=publisher, args=(n,), daemon=True)
                       for n in range(NODES)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=60)
            ft.check(not any(t.is_alive() for t in threads), "a publisher did not finish in 60 s")
            ft.check(not errors, "publishers failed", errors)

            # What each topic holds, in id order (the order every subscriber must see).
            expected = {t: [] for t in TOPICS}
            for n in range(NODES):
                for (path, data, _), eid in results[n]:
                    expected[path.rsplit("/", 1)[1]].append((ft.parse_id(eid), eid, data))
            for t in TOPICS:
                expected[t] = [(eid, data) for _, eid, data in sorted(expected[t])]
                ft.check_eq(len({eid for eid, _ in expected[t]}), len(expected[t]),
                            f"distinct ids returned for topic {t}")

            per_topic = NODES * PER_PUBLISHER // len(TOPICS)
            problems = []
            for topic, node, reader in readers:
                try:
                    got = reader.wait_events(per_topic, timeout=30)
                except ft.Failure as exc:
                    problems.append(f"node {node} {topic}: {exc}")
                    continue
                got = [(e.id, e.data) for e in got]
                if got != expected[topic]:
                    ids = [g[0] for g in got]
                    want = [w[0] for w in expected[topic]]
                    problems.append({
                        "stream": f"node {node} /sub/{topic}",
                        "received": len(got), "expected": len(want),
                        "duplicates": sorted({i for i in ids if ids.count(i) > 1})[:10],
                        "missing": [i for i in want if i not in set(ids)][:10],
                        "out of order": [(a, b) for a, b in zip(ids, ids[1:])
                                         if ft.parse_id(a) >= ft.parse_id(b)][:5],
                        "wrong data": [(g, w) for g, w in zip(got, expected[topic]) if g != w][:3],
                    })
            ft.check(not problems, f"{len(problems)} of {STREAMS} streams did not get exactly "
                     "every event of their topic in order", problems[:5])
            # nothing extra trickles in afterwards
            time.sleep(0.3)
            extra = [(topic, node, len(r.events())) for topic, node, r in readers
                     if len(r.events()) != per_topic]
            ft.check(not extra, "streams received more events than were published", extra)
            for i, n in enumerate(nodes):
                ft.check_eq(n.health()["status"], "ok", f"node {i} /health status")
        finally:
            for _, _, r in readers:
                r.stop()


def hop(nodes):
    with ft.subtest("leave node A, resume on node B with Last-Event-ID: exactly the rest"):
        path = "/sub/hop"
        with ft.open_stream(nodes[0].port, path) as s:
            ids = [nodes[1].publish("/pub/hop", f"h{i}") for i in range(10)]
            got = s.take(5)
            ft.check_eq([e.id for e in got], ids[:5], "first half on node 0")
        ids += [nodes[2].publish("/pub/hop", f"h{i}") for i in range(10, 15)]
        with ft.SSEStream(nodes[1].port, path, last_event_id=got[-1].last_event_id) as s:
            ft.check_eq(s.status, 200, f"resume on node 1 ({s.response.summary()})")
            got = s.take(10)
            ft.check_eq([(e.id, e.data) for e in got],
                        [(ids[i], f"h{i}") for i in range(5, 15)], "the rest, on node 1")
            s.expect_no_event(0.3)
            live = nodes[0].publish("/pub/hop", "live")
            e = s.next_event()
            ft.check_eq((e.id, e.data), (live, "live"), "a live event published on node 0")

    with ft.subtest("hopping between nodes on every reconnect while events keep coming"):
        total, published, errors = 400, [], []
        stop = threading.Event()

        def publisher():
            try:
                rnd = random.Random(7)
                for i in range(total):
                    node = nodes[rnd.randrange(NODES)]
                    published.append((ft.publish(node.port, "/pub/flow", f"f{i}"), f"f{i}"))
                    time.sleep(0.002)
            except BaseException as exc:
                errors.append(repr(exc))
            finally:
                stop.set()

        worker = threading.Thread(target=publisher, daemon=True)
        stream = ft.open_stream(nodes[0].port, "/sub/flow")
        worker.start()
        received = []
        try:
            node = 0
            for k, cut in enumerate((50, 120, 190, 260, 330)):
                while len(received) < cut:
                    received.append(stream.next_event(timeout=10))
                if k % 2:
                    stream.reset()
                else:
                    stream.close()
                node = (node + 1) % NODES
                time.sleep(0.02)
                stream = ft.SSEStream(nodes[node].port, "/sub/flow",
                                      last_event_id=received[-1].last_event_id)
                ft.check_eq(stream.status, 200,
                            f"resume on node {node} after {received[-1].id} "
                            f"({stream.response.summary()})")
            worker.join(timeout=60)
            ft.check(not worker.is_alive(), "publisher did not finish within 60 s")
            ft.check(not errors, "publisher failed", errors)
            while len(received) < len(published):
                received.append(stream.next_event(timeout=10))
            stream.expect_no_event(0.3)
        finally:
            stop.set()
            stream.close()
        got = [e.id for e in received]
        want = [i for i, _ in published]
        missing = [i for i in want if i not in set(got)]
        dups = sorted({i for i in got if got.count(i) > 1})
        ft.check(not missing and not dups,
                 f"{len(missing)} missing and {len(dups)} duplicate ids across 5 node hops",
                 {"missing": missing[:20], "duplicates": dups[:20]})
        ft.check_eq([(e.id, e.data) for e in received], published,
                    "events received vs published, in order")


def run():
    ft.require_file(ft.BENCH_APP, "bench app")
    redis = ft.RedisServer().start()
    nodes = [ft.redis_node(redis) for _ in range(NODES)]
    fan_out(nodes)
    hop(nodes)
    for n in nodes:
        n.stop()
    redis.stop()


ft.main(run, limit=110)
