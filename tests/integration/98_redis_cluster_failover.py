"""Losing a primary of a Redis Cluster under load, with broker = "redis-cluster://…?replicas=1":
two freshet nodes, 60 topics over the three shards, streams on node a, publishers on both nodes
at about 300 publishes/s. The primary of one shard is killed with SIGKILL; its replica takes
over (cluster-node-timeout 2 s); the killed server is started again and rejoins as the new
primary's replica (with replicas=1 a shard without a replica cannot confirm a publish).

Checked: every publish accepted (201) is delivered to every stream of its topic, once and in
order; publishing to the shard's topics answers 201 again (the time is printed); the other
shards keep answering 201 throughout; the nodes' /health names the new primary."""

import signal
import threading
import time

import frtest as ft
import redis_cluster as rc

TOPICS = [f"f{i:02d}" for i in range(60)]
PER_STREAM = 10
RECOVERY_LIMIT = 25


class Load:
    """Publishers on both nodes, round-robin over the topics, each event on its own short
    request (as HTTP clients do), until stop(). Records (topic, data, status, t)."""

    def __init__(self, nodes, rate=300):
        self.nodes, self.rate = nodes, rate
        self.out = []
        self.stop_ev = threading.Event()
        self.threads = [threading.Thread(target=self.run, args=(k,), daemon=True)
                        for k in range(4)]
        for t in self.threads:
            t.start()

    def run(self, k):
        node = self.nodes[k % len(self.nodes)]
        i = 0
        period = 4 / self.rate
        while not self.stop_ev.is_set():
            topic = TOPICS[(i * 4 + k) % len(TOPICS)]
            data = f"{topic}:{k}-{i}"
            t = time.monotonic()
            try:
                resp = ft.request(node.port, "POST", f"/pub/{topic}", body=data.encode(),
                                  timeout=5)
                status = resp.status
            except OSError:
                status = None
            self.out.append((topic, data, status, t))
            i += 1
            time.sleep(max(0.0, period - (time.monotonic() - t)))

    def stop(self):
        self.stop_ev.set()
        for t in self.threads:
            t.join(timeout=10)


def run():
    cluster = rc.RedisCluster(primaries=3, replicas=1, node_timeout=2000).start()
    appdir = rc.cluster_app(cluster.url("replicas=1"))
    with ft.Server(appdir.app) as a, ft.Server(appdir.app) as b:
        rc.wait_ready(a)
        rc.wait_ready(b)
        readers = rc.open_readers(a, TOPICS, PER_STREAM)
        victim = cluster.primaries()[1]
        victim_topics = {t for t in TOPICS if cluster.owner_port(rc.topic_slot(t)) == victim.port}
        ft.check(victim_topics, "the victim shard owns some topics")

        with ft.subtest("SIGKILL a primary under load: its replica takes over, every 201 is "
                        "delivered once and in order"):
            load = Load([a, b])
            time.sleep(1.5)
            t_kill = time.monotonic()
            victim.stop(signal.SIGKILL)
            # The cluster fails it over; then the old primary comes back as a replica, so that
            # the new primary can confirm publishes again (replicas=1).
            deadline = time.monotonic() + 20
            while cluster.owner_port(rc.topic_slot(next(iter(victim_topics)))) in (None,
                                                                                    victim.port):
                ft.check(time.monotonic() < deadline, "no replica took over within 20 s")
                time.sleep(0.1)
            t_promoted = time.monotonic()
            new_port = cluster.owner_port(rc.topic_slot(next(iter(victim_topics))))
            victim.start()
            # Publishing to the shard's topics answers 201 again.
            deadline = t_kill + RECOVERY_LIMIT
            recovered = None
            while recovered is None and time.monotonic() < deadline:
                time.sleep(0.2)
                for topic, _, status, t in list(load.out):
                    if status == 201 and topic in victim_topics and t > t_promoted:
                        recovered = t
                        break
            time.sleep(1.5)
            load.stop()
            ft.check(recovered is not None,
                     f"publishing to the failed shard's topics did not answer 201 within "
                     f"{RECOVERY_LIMIT} s of the kill")
            print(f"    replica promoted {t_promoted - t_kill:.1f} s after the kill; 201 again "
                  f"after {recovered - t_kill:.1f} s", flush=True)
            # The other shards kept answering.
            others_ok = [s for tp, _, s, t in load.out
                         if tp not in victim_topics and t_kill + 0.5 < t < t_promoted]
            ft.check(others_ok and all(s == 201 for s in others_ok),
                     "the other shards answer 201 while one fails over",
                     sorted({s for s in others_ok if s != 201}))
            accepted = {}
            for topic, data, status, _ in load.out:
                if status == 201:
                    accepted.setdefault(topic, []).append(data)
            statuses = sorted({str(s) for _, _, s, _ in load.out})
            print(f"    {len(load.out)} publishes, {sum(map(len, accepted.values()))} "
                  f"accepted; statuses {statuses}", flush=True)
            time.sleep(2)
            for _, reader in readers:
                ft.check(not reader.stream.ended, "a stream stayed open through the failover")
            problems = rc.delivery_problems(readers, accepted, 4)
            ft.check(not problems, f"{len(problems)} delivery problems", problems[:8])
            h = a.health()["broker"]
            ft.check(f"127.0.0.1:{new_port}" in h.get("primaries", []),
                     "/health names the new primary", h)
            for _, r in readers:
                r.stream.close()


ft.main(run, limit=170)
