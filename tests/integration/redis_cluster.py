"""A Redis Cluster for the tests (this file is not a test itself: the runner only picks up
NN_*.py): `redis-server --cluster-enabled yes` on free ports of 127.0.0.1, each in its own temp
dir, joined with `redis-cli --cluster create … --cluster-replicas N --cluster-yes`, stopped by
PID. Fails loudly when a server or redis-cli does not do its part: the Redis tests never skip.

Shared by 97_redis_cluster.py, 98_redis_cluster_failover.py and 99_redis_cluster_reshard.py,
with what they share: the multi-topic subscriber route and the slot of a topic."""

import socket
import subprocess
import time

import frtest as ft


def crc16(data):
    crc = 0
    for b in data:
        crc ^= b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def key_slot(key):
    """The slot Redis gives a key (hash tags included), computed here without freshet."""
    k = key.encode()
    start = k.find(b"{")
    if start >= 0:
        end = k.find(b"}", start + 1)
        if end > start + 1:
            k = k[start + 1:end]
    return crc16(k) % 16384


def bus_free_port():
    """A free port whose cluster bus port (+10000) is free too (a node needs both)."""
    for _ in range(100):
        port = ft.free_port()
        with socket.socket() as s:
            try:
                s.bind((ft.HOST, port + 10000))
                return port
            except OSError:
                continue
    ft.fail("no free port with a free cluster bus port")


def topic_slot(topic):
    return key_slot(f"fr:{{{topic}}}:s")


class RedisCluster:
    """`primaries` primaries with `replicas` replicas each. node_timeout (ms) is how long the
    cluster waits before it fails a primary over; full coverage is not required, so the other
    shards keep serving while one has no primary (what an app wants)."""

    def __init__(self, primaries=3, replicas=1, node_timeout=2000):
        self.nprimaries = primaries
        self.nreplicas = replicas
        self.node_timeout = node_timeout
        self.servers = []

    def _args(self):
        return ["--cluster-enabled", "yes", "--cluster-node-timeout", str(self.node_timeout),
                "--cluster-require-full-coverage", "no", "--repl-diskless-sync-delay", "0",
                "--cluster-allow-replica-migration", "no"]

    def start(self, timeout=30):
        ft.check(ft.REDIS_CLI_BIN, "redis-cli not found (package redis-tools)")
        n = self.nprimaries * (1 + self.nreplicas)
        self.servers = [ft.RedisServer(extra_args=self._args(), port=bus_free_port()).start()
                        for _ in range(n)]
        addrs = [f"{ft.HOST}:{rs.port}" for rs in self.servers]
        r = subprocess.run([ft.REDIS_CLI_BIN, "--cluster", "create", *addrs,
                            "--cluster-replicas", str(self.nreplicas), "--cluster-yes"],
                           capture_output=True, text=True, timeout=60)
        ft.check(r.returncode == 0, "redis-cli --cluster create failed", r.stdout + r.stderr)
        self.wait_ok(timeout)
        return self

    def wait_ok(self, timeout=30):
        """Until every live node says cluster_state:ok and knows the same primaries, each
        with its replicas in sync."""
        deadline = time.monotonic() + timeout
        while True:
            states = []
            for rs in self.servers:
                if not rs.alive():
                    continue
                try:
                    info = rs.command("CLUSTER", "INFO")
                    states.append("cluster_state:ok" in info)
                except (OSError, ConnectionError, ft.RedisError) as exc:
                    states.append(repr(exc))
            shards = None
            try:
                shards = self.shards()
                for s in shards:
                    for node in s["nodes"]:
                        if node["port"] in self.live_ports() and node["role"] == "replica":
                            states.append(node["health"] == "online")
                states.append(sum(1 for s in shards if s["slots"]) == self.nprimaries)
            except (OSError, ConnectionError, ft.RedisError) as exc:
                states.append(repr(exc))
            if all(s is True for s in states):
                return
            if time.monotonic() > deadline:
                ft.fail(f"the cluster was not ok within {timeout}s", {"states": states,
                                                                     "shards": shards})
            time.sleep(0.1)

    def live_ports(self):
        return {rs.port for rs in self.servers if rs.alive()}

    def any_live(self):
        return next(rs for rs in self.servers if rs.alive())

    def shards(self):
        """CLUSTER SHARDS as a list of {"slots": [(a, b)…], "nodes": [{port, role, health,
        id}…]}, asked of a live node."""
        raw = self.any_live().command("CLUSTER", "SHARDS")
        out = []
        for s in raw:
            d = dict(zip(s[::2], s[1::2]))
            slots = list(zip(d["slots"][::2], d["slots"][1::2]))
            nodes = [dict(zip(n[::2], n[1::2])) for n in d["nodes"]]
            out.append({"slots": slots, "nodes": nodes})
        return out

    def owner_port(self, slot):
        """The port of the primary that owns a slot now."""
        for s in self.shards():
            if any(a <= slot <= b for a, b in s["slots"]):
                return next((n["port"] for n in s["nodes"]
                             if n["role"] == "master" and n["health"] == "online"), None)
        return None

    def primaries(self):
        """The servers that are online primaries with slots, in slot order."""
        ports = []
        for s in sorted(self.shards(), key=lambda s: s["slots"][0] if s["slots"] else (1 << 20,)):
            if s["slots"]:
                ports += [n["port"] for n in s["nodes"]
                          if n["role"] == "master" and n["health"] == "online"]
        return [self.server_on(p) for p in ports]

    def node_id(self, port):
        for s in self.shards():
            for n in s["nodes"]:
                if n["port"] == port:
                    return n["id"]
        return None

    def server_on(self, port):
        return next(rs for rs in self.servers if rs.port == port)

    def url(self, query="", seeds=1):
        hosts = ",".join(f"{ft.HOST}:{rs.port}" for rs in self.servers[:seeds])
        return f"redis-cluster://{hosts}" + (f"?{query}" if query else "")


def cluster_app(url, settings=""):
    return ft.pubsub_app(settings=f'broker = "{url}", heartbeat = 1, retry = 500, '
                                  'replay = { events = 100000 },' + settings)


def wait_ready(node, timeout=20):
    """Until the node's /health says the broker is ok and every shard is ready."""
    deadline = time.monotonic() + timeout
    while True:
        h = node.health()
        b = h.get("broker", {})
        if h.get("status") == "ok" and b.get("shards") and b.get("shards_ready") == b["shards"]:
            return h
        if time.monotonic() > deadline:
            ft.fail(f"node on port {node.port} not ready within {timeout}s", h)
        time.sleep(0.1)


def open_readers(node, topics, per_stream):
    """Streams of `per_stream` topics each on node, read on threads; waits until all are open.
    Returns [(topics, StreamReader)]."""
    readers = []
    for k in range(0, len(topics), per_stream):
        part = topics[k:k + per_stream]
        readers.append((part, ft.StreamReader(node.stream("/sub/" + ",".join(part)))))
    node.wait_streams(len(readers))
    return readers


def delivery_problems(readers, accepted, publishers):
    """What each stream got against what was accepted (topic → data list): missing, twice, or
    out of the order each publisher sent (data "<topic>:<publisher>-<n>")."""
    problems = []
    for topics, reader in readers:
        by = {}
        for e in reader.events():
            by.setdefault(e.data.split(":", 1)[0], []).append(e.data)
        for t in topics:
            mine = by.get(t, [])
            if len(mine) != len(set(mine)):
                problems.append((t, "duplicates"))
            missing = [d for d in accepted.get(t, []) if d not in set(mine)]
            if missing:
                problems.append((t, "missing accepted", missing[:5]))
            for k in range(publishers):
                seq = [int(d.rsplit("-", 1)[1]) for d in mine
                       if d.split(":", 1)[1].startswith(f"{k}-")]
                if seq != sorted(seq):
                    problems.append((t, f"publisher {k} out of order"))
    return problems
