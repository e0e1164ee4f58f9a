"""Moving slots between the primaries of a Redis Cluster under load (redis-cli --cluster
reshard), with broker = "redis-cluster://…": two freshet nodes, 120 topics, streams on node a,
publishers on both nodes. A third of the slots of one primary move to another while events
are published; then some move back.

Checked: topics whose slot moved are among those published to; every publish accepted (201)
is delivered to the streams of its topic once and in order (the nodes follow the move:
MOVED and ASK redirect the publishes, Redis' sunsubscribe and the new slot map move the
subscriptions, and the Streams fill the gap); after the move the topics are subscribed on
their new owner (PUBSUB SHARDNUMSUB)."""

import subprocess
import threading
import time

import frtest as ft
import redis_cluster as rc

TOPICS = [f"m{i:03d}" for i in range(120)]
PER_STREAM = 10


class Load:
    """Pipelined publishers on both nodes, round-robin over the topics, until stop()."""

    def __init__(self, nodes):
        self.out = []
        self.errors = []
        self.stop_ev = threading.Event()
        self.threads = [threading.Thread(target=self.run, args=(k, nodes[k % 2]), daemon=True)
                        for k in range(4)]
        for t in self.threads:
            t.start()

    def run(self, k, node):
        i = 0
        try:
            with ft.Publisher(node.port) as pub:
                while not self.stop_ev.is_set():
                    batch = []
                    for _ in range(8):
                        topic = TOPICS[(i * 4 + k) % len(TOPICS)]
                        batch.append((f"/pub/{topic}", f"{topic}:{k}-{i}", {}))
                        i += 1
                    for (path, data, _), resp in zip(batch, pub.publish_many(batch, 8)):
                        self.out.append((path.rsplit("/", 1)[1], data, resp.status,
                                         resp.text[:200]))
                    time.sleep(0.01)
        except BaseException as exc:  # reported by the test
            self.errors.append(repr(exc))

    def stop(self):
        self.stop_ev.set()
        for t in self.threads:
            t.join(timeout=10)


def reshard(cluster, src, dst, slots):
    entry = cluster.any_live()
    r = subprocess.run([ft.REDIS_CLI_BIN, "--cluster", "reshard", f"{ft.HOST}:{entry.port}",
                        "--cluster-from", cluster.node_id(src.port),
                        "--cluster-to", cluster.node_id(dst.port),
                        "--cluster-slots", str(slots), "--cluster-yes",
                        "--cluster-pipeline", "10"],
                       capture_output=True, text=True, timeout=120)
    ft.check(r.returncode == 0, "redis-cli --cluster reshard failed", r.stdout[-2000:] + r.stderr)


def run():
    cluster = rc.RedisCluster(primaries=3, replicas=1).start()
    appdir = rc.cluster_app(cluster.url())
    with ft.Server(appdir.app) as a, ft.Server(appdir.app) as b:
        rc.wait_ready(a)
        rc.wait_ready(b)
        readers = rc.open_readers(a, TOPICS, PER_STREAM)
        p = cluster.primaries()
        before = {t: cluster.owner_port(rc.topic_slot(t)) for t in TOPICS}

        with ft.subtest("reshard under load: no loss, no duplicate"):
            load = Load([a, b])
            time.sleep(1)
            reshard(cluster, p[0], p[1], 1800)
            time.sleep(0.5)
            reshard(cluster, p[1], p[2], 600)
            time.sleep(1.5)
            load.stop()
            ft.check(not load.errors, "publishers failed", load.errors[:3])
            after = {t: cluster.owner_port(rc.topic_slot(t)) for t in TOPICS}
            moved = [t for t in TOPICS if after[t] != before[t]]
            print(f"    {len(moved)} of {len(TOPICS)} topics changed shard; "
                  f"{len(load.out)} publishes", flush=True)
            ft.check(len(moved) >= 10, "the reshard moved topics that were published to", moved)
            accepted = {}
            refused = {}
            for topic, data, status, text in load.out:
                if status == 201:
                    accepted.setdefault(topic, []).append(data)
                else:
                    refused[status] = text
            print(f"    {sum(map(len, accepted.values()))} accepted; refusals {refused}",
                  flush=True)
            time.sleep(2)
            for _, reader in readers:
                ft.check(not reader.stream.ended, "streams stay open through the reshard")
            problems = rc.delivery_problems(readers, accepted, 4)
            for topics, reader in readers:
                for t in topics:
                    got = sum(1 for e in reader.events() if e.data.split(":", 1)[0] == t)
                    if got != len(accepted.get(t, [])):
                        problems.append((t, "received", got, "accepted", len(accepted.get(t, []))))
            ft.check(not problems, f"{len(problems)} delivery problems", problems[:8])
            for t in moved[:5]:
                owner = cluster.server_on(after[t])
                ft.check_eq(owner.command("PUBSUB", "SHARDNUMSUB", f"fr:{{{t}}}:c")[1], 1,
                            f"node a subscribed to {t} on its new owner")
            moves = a.log().count("moved to the shard of")
            print(f"    node a moved {moves} subscriptions", flush=True)
            ft.check(moves >= len(moved), "node a moved the subscriptions of the moved topics",
                     moves)
            for _, r in readers:
                r.stream.close()


ft.main(run, limit=200)
