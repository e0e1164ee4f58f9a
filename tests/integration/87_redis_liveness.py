"""The Redis broker's URL, ?replicas=N, failover signals and pub/sub liveness, each on Redis
servers of its own (88 and 89 test failovers under Sentinels):
- the app file's check and the server's parser agree on every URL of a list (the same list as
  tests/unit/test_redis_url.c): accepted by both, or refused with the app file's line; a node
  started with a malformed URL exits before it listens;
- redis-sentinel:// with a dead Sentinel first in the list: the next one answers; a master name
  the Sentinels do not know: the node stays degraded and logs why;
- ?replicas=1&wait=200 on a Redis without replicas: a publish answers 503 saying the event is
  stored but not confirmed (and it is delivered); with a replica in sync, 201;
- a primary demoted under a redis:// node (REPLICAOF): publishes answer 503, the node drops its
  connections (READONLY) and keeps trying; promoted again, it publishes;
- redis-sentinel:// with the Sentinel the node listens to stopped (SIGSTOP) while another one
  fails over: the node never hears +switch-master, yet it leaves the demoted primary, asks the
  Sentinels that answer, and publishes on the new primary;
- a subscribe connection killed with CLIENT KILL TYPE pubsub: the node notices, re-subscribes
  and fills the gap; /health and /metrics showed it;
- a subscribe connection that goes silent while its TCP connection stays up (a proxy that
  stops forwarding): only the probe can notice; it does, the node reconnects and refills."""

import json
import os
import select
import signal
import socket
import subprocess
import threading
import time

import frtest as ft

# (url, accepted): the cases of tests/unit/test_redis_url.c, and a few more.
URLS = [
    ("redis://127.0.0.1:6379", True),
    ("redis://", True),
    ("redis://cache.internal/7", True),
    ("redis://:s3cret@10.0.0.5:6380/2", True),
    ("redis://freshet:p@ss/w?rd@h:1", True),
    ("redis://justpassword@h", True),
    ("redis://[::1]:7000/", True),
    ("redis://h:1?replicas=2&wait=250", True),
    ("unix:///run/redis/redis.sock?replicas=1", True),
    ("redis-sentinel://10.0.0.1:26379,10.0.0.2,[fe80::1]:26380/mymaster/3?replicas=2&wait=250",
     True),
    ("redis-sentinel://user:pw@s1:1,s2:2/m.x-1_b", True),
    ("redis-sentinel://s/m/", True),
    ("redis-sentinel://s/m?replicas=0", True),
    ("http://h:1", False),
    ("redis:/h", False),
    ("redis://h:0", False),
    ("redis://h:65536", False),
    ("redis://h:", False),
    ("redis://h:x", False),
    ("redis://h:1/1001", False),
    ("redis://h:1/x", False),
    ("redis://h:1/1/2", False),
    ("redis://h h:1", False),
    ("redis://[::1:1", False),
    ("redis://[]:1", False),
    ("redis://[::1]x", False),
    ("redis://[::1]:", False),
    ("redis://h?replicas=x", False),
    ("redis://h?replicas=101", False),
    ("redis://h?replicas=", False),
    ("redis://h?replicas=1&wait=0", False),
    ("redis://h?replicas=1&wait=60001", False),
    ("redis://h?wait=100", False),
    ("redis://h?replica=1", False),
    ("redis://h?replicas=1&", False),
    ("unix://run/redis.sock", False),
    ("unix:///", False),
    ("redis-sentinel://h:26379", False),
    ("redis-sentinel:///m", False),
    ("redis-sentinel://h:26379/", False),
    ("redis-sentinel://h1,,h2/m", False),
    ("redis-sentinel://h1,/m", False),
    ("redis-sentinel://:1/m", False),
    ("redis-sentinel://h:99999/m", False),
    ("redis-sentinel://h/m#1", False),
    ("redis-sentinel://h/m,n", False),
    ("redis-sentinel://h/m/db", False),
    ("redis-sentinel://h/m?replicas=1&wait=x", False),
    ("redis-sentinel://a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,q/m", False),
]


def check_app(url):
    app = ft.pubsub_app(settings=f"broker = {json.dumps(url)},")
    p = subprocess.run([ft.BIN, "--check", "app.lua"], cwd=app.path, stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=15)
    return p.returncode, p.stderr.decode()


def urls():
    with ft.subtest("broker URLs: the app file's check and the server agree"):
        wrong = []
        for url, ok in URLS:
            rc, err = check_app(url)
            # Refused by the app file's check: with its line. (Refused by the server's parser
            # only would be "app.lua: broker: …" without a line: the two disagree.)
            if ok and rc != 0:
                wrong.append((url, "refused", err.strip()))
            elif not ok and (rc != 1 or "app.lua:2: freshet.app: broker" not in err):
                wrong.append((url, "accepted" if rc == 0 else "refused without a line",
                              err.strip()))
        ft.check(not wrong, "URLs the app file's check and the server judge differently",
                 wrong)

    with ft.subtest("a node with a malformed broker URL exits before it listens"):
        app = ft.pubsub_app(settings='broker = "redis-sentinel://127.0.0.1:1",')
        p = subprocess.run([ft.BIN, app.app], stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=15)
        err = p.stderr.decode()
        ft.check(p.returncode != 0, "the node started", err)
        ft.check("master-name" in err and "app.lua:" in err and "listening" not in err,
                 "the error names the URL's form and the app file's line", err)


def sentinel_list():
    with ft.subtest("redis-sentinel://: a dead Sentinel is skipped; an unknown master name "
                    "leaves the node degraded and says why"):
        primary = ft.RedisServer().start()
        sentinel = ft.SentinelServer(primary.port, "mm", quorum=1).start()
        dead = ft.free_port()
        url = f"redis-sentinel://{ft.HOST}:{dead},{ft.HOST}:{sentinel.port}/mm"
        node = ft.Server(ft.pubsub_app(settings=f'broker = "{url}",')).start()
        h = ft.wait_health(node, timeout=10)
        ft.check_eq(h["broker"].get("primary"), f"{ft.HOST}:{primary.port}",
                    "the primary the second Sentinel named")
        node.publish("/pub/s", "via the second Sentinel")
        ft.check_eq(sorted(n.rsplit("-", 1)[1] for n in ft.freshet_clients(primary)),
                    ["cmd", "sub"], "the node's connections on the primary")

        wrong = f"redis-sentinel://{ft.HOST}:{sentinel.port}/nosuchmaster"
        other = ft.Server(ft.pubsub_app(settings=f'broker = "{wrong}",')).start()
        other.wait_log(r"does it monitor 'nosuchmaster'", timeout=5)
        h = other.health()
        ft.check_eq((h["status"], h["broker"].get("primary")), ("degraded", None),
                    "/health of a node whose master the Sentinels do not know")
        other.post("/pub/s", b"x").check_error(503, "publish without a primary")
        other.stop()
        node.stop()
        sentinel.stop()
        primary.stop()


def replicas_wait():
    with ft.subtest("?replicas=1: 503 'stored but not confirmed' without a replica, 201 with"):
        primary = ft.RedisServer(extra_args=["--repl-diskless-sync-delay", "0"]).start()
        url = f"{primary.url}?replicas=1&wait=200"
        node = ft.Server(ft.pubsub_app(settings=f'broker = "{url}",')).start()
        ft.wait_health(node)
        h = node.health()["broker"]
        ft.check_eq((h.get("replicas"), h.get("unconfirmed")), (1, 0), "/health before")
        with ft.open_stream(node.port, "/sub/w") as s:
            t0 = time.monotonic()
            r = node.post("/pub/w", b"unconfirmed")
            took = time.monotonic() - t0
            err = r.check_error(503, "publish with no replica to confirm it")
            ft.check("only 0 of 1 replicas" in err and "may still be delivered" in err,
                     "the 503 says the event is stored but not confirmed", err)
            ft.check(r.header("retry-after") is not None, "503 without Retry-After", r.summary())
            ft.check(0.15 <= took < 2.0, f"the answer came after {took:.2f} s (WAIT 1 200)")
            e = s.next_event()
            ft.check_eq(e.data, "unconfirmed", "the unconfirmed event is delivered all the same")
            h = node.health()["broker"]
            ft.check_eq(h.get("unconfirmed"), 1, "/health counts it")
            m = node.metrics()
            ft.check_eq(ft.metric(m, "freshet_redis_publishes_unconfirmed_total"), 1.0,
                        "freshet_redis_publishes_unconfirmed_total")

            replica = ft.RedisServer(extra_args=["--replicaof", ft.HOST,
                                                 str(primary.port)]).start()
            ft.wait_replicas(primary, 1)
            eid = node.publish("/pub/w", "confirmed")
            e = s.next_event()
            ft.check_eq((e.id, e.data), (eid, "confirmed"), "the confirmed event")
            ft.check(eid in replica.stream_ids("w"), "201 before the replica had the event",
                     replica.stream_ids("w"))
        node.stop()
        replica.stop()
        primary.stop()


def demoted_primary():
    with ft.subtest("a redis:// primary demoted (READONLY): 503s, the node reconnects, 201 "
                    "once it is a primary again"):
        redis = ft.RedisServer().start()
        other = ft.RedisServer().start()
        node = ft.Server(ft.pubsub_app(settings=f'broker = "{redis.url}",')).start()
        ft.wait_health(node)
        node.publish("/pub/d", "before")
        redis.command("REPLICAOF", ft.HOST, str(other.port))
        r = node.post("/pub/d", b"refused")
        r.check_error(503, "publish to a replica")
        node.wait_log(r"answered 'READONLY", timeout=5)
        node.wait_log(r"a failover is probably under way", timeout=5)
        redis.command("REPLICAOF", "NO", "ONE")
        deadline = time.monotonic() + 10
        while True:
            r = node.post("/pub/d", b"after")
            if r.status == 201:
                break
            ft.check(time.monotonic() < deadline, "no 201 within 10 s of REPLICAOF NO ONE",
                     r.summary())
            time.sleep(0.1)
        m = node.metrics()
        ft.check(ft.metric(m, "freshet_redis_failovers_total") >= 1,
                 "freshet_redis_failovers_total counts the drop")
        node.stop()
        redis.stop()
        other.stop()


class HealthWatch:
    """Polls a node's /health every 10 ms on a thread; samples are (t, status, subscriber)."""

    def __init__(self, node):
        self.node, self.samples, self.stop = node, [], threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop.is_set():
            try:
                h = self.node.health()
                self.samples.append((time.monotonic(), h["status"],
                                     h["broker"].get("subscriber")))
            except Exception:  # noqa: BLE001 - a missed sample is not the point here
                pass
            time.sleep(0.01)

    def finish(self):
        self.stop.set()
        self.thread.join(timeout=5)


def paced_publisher(node, topic, stop, out, every=0.01):
    n = 0
    while not stop.is_set():
        r = ft.publish_raw(node.port, f"/pub/{topic}", f"{topic} #{n}")
        out.append((time.monotonic(), r.status, r.json().get("id") if r.status == 201 else None,
                    f"{topic} #{n}"))
        n += 1
        time.sleep(every)


def redis_publisher(redis, topic, stop, out, every=0.005):
    """Publishes straight into Redis (FCALL freshet_publish, as an external producer does), so
    publishing goes on while the nodes' subscribers are down."""
    n = 0
    with redis.conn() as c:
        while not stop.is_set():
            data = f"{topic} #{n}"
            eid = c.command("FCALL", "freshet_publish", "1", f"fr:{{{topic}}}:s", data)
            out.append((time.monotonic(), 201, eid, data))
            n += 1
            time.sleep(every)


def check_delivery(readers, accepted, what):
    problems = []
    want = sorted(accepted, key=lambda x: ft.parse_id(x[0]))
    for name, rd in readers:
        got = [(e.id, e.data) for e in rd.events()]
        if got != want:
            ids = [g[0] for g in got]
            problems.append({"stream": name, "got": len(got), "expected": len(want),
                             "missing": [w for w in want if w[0] not in set(ids)][:5],
                             "twice": sorted({i for i in ids if ids.count(i) > 1})[:5]})
    ft.check(not problems, f"{what}: every accepted event, in order, once, on every stream",
             problems)


def client_kill_pubsub():
    with ft.subtest("CLIENT KILL TYPE pubsub: the node re-subscribes and fills the gap; "
                    "/health showed it"):
        redis = ft.RedisServer().start()
        app = ft.pubsub_app(settings=f'broker = "{redis.url}",')
        a, b = ft.Server(app).start(), ft.Server(app).start()
        for n in (a, b):
            ft.wait_health(n)
        readers = [(f"{x} on {i}", ft.StreamReader(n.stream("/sub/k")))
                   for i, n in enumerate((a, b)) for x in range(2)]
        watch = HealthWatch(a)
        stop, out = threading.Event(), []
        pub = threading.Thread(target=redis_publisher, args=(redis, "k", stop, out), daemon=True)
        pub.start()
        time.sleep(0.5)
        t_kill = time.monotonic()
        killed = redis.command("CLIENT", "KILL", "TYPE", "pubsub")
        ft.check(killed >= 2, f"CLIENT KILL TYPE pubsub killed {killed} connections")
        a.wait_log(r"subscriber connection lost", timeout=5)
        deadline = time.monotonic() + 5
        while a.health()["broker"]["subscriber"] != "ok" or a.health()["status"] != "ok":
            ft.check(time.monotonic() < deadline, "node a did not recover in 5 s", a.health())
            time.sleep(0.02)
        t_back = time.monotonic()
        time.sleep(1.0)
        stop.set()
        pub.join(timeout=10)
        time.sleep(0.5)
        watch.finish()
        accepted = [(eid, data) for _, st, eid, data in out if st == 201]
        ft.check(any(t_kill < t < t_back for t, _, eid, _ in out if eid),
                 "no event was accepted while node a's subscription was down: no gap to fill")
        check_delivery(readers, accepted, "after CLIENT KILL TYPE pubsub")
        down = [(round(t - t_kill, 3), st, sub) for t, st, sub in watch.samples
                if t > t_kill and (st != "ok" or sub != "ok")]
        ft.check(down, "/health never showed the subscriber down",
                 [(round(t - t_kill, 3), st, sub) for t, st, sub in watch.samples
                  if abs(t - t_kill) < 1][:30])
        h = a.health()["broker"]
        ft.check(h["subscriber_losses"] >= 1, "/health counts the lost subscriber", h)
        m = a.metrics()
        ft.check(ft.metric(m, "freshet_redis_subscriber_losses_total") >= 1,
                 "freshet_redis_subscriber_losses_total")
        ft.check_eq(ft.metric(m, "freshet_redis_subscriber_live"), 1.0,
                    "freshet_redis_subscriber_live once back")
        print(f"    /health said degraded for {down[-1][0] - down[0][0] + 0.01:.2f} s "
              f"({len(down)} samples); back {t_back - t_kill:.2f} s after the kill", flush=True)
        for _, rd in readers:
            rd.stop()
        a.stop()
        b.stop()
        redis.stop()


class FreezingProxy:
    """A TCP proxy to Redis on a thread of its own. freeze_subscriber() makes it swallow what
    Redis sends on the connection a freshet subscriber opened (it names itself
    freshet-<node>-sub): Redis still sees a live subscriber, the node hears nothing, and TCP
    says nothing is wrong."""

    def __init__(self, target_port):
        self.target = target_port
        self.lsock = ft.listener()
        self.port = self.lsock.getsockname()[1]
        self.pairs = []          # [client, upstream, is a subscriber, frozen]
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    @property
    def url(self):
        return f"redis://{ft.HOST}:{self.port}"

    def freeze_subscriber(self):
        """From now on, nothing Redis sends reaches the subscriber connections open now (one
        opened later works)."""
        for p in self.pairs:
            if p[2]:
                p[3] = True

    def run(self):
        while not self.stop.is_set():
            socks = [self.lsock] + [s for p in self.pairs for s in p[:2]]
            ready, _, _ = select.select(socks, [], [], 0.05)
            for s in ready:
                if s is self.lsock:
                    c, _ = s.accept()
                    u = socket.create_connection((ft.HOST, self.target))
                    self.pairs.append([c, u, False, False])
                    continue
                pair = next((p for p in self.pairs if s in p[:2]), None)
                if pair is None:
                    continue
                try:
                    data = s.recv(65536)
                except OSError:
                    data = b""
                if not data:
                    pair[0].close()
                    pair[1].close()
                    self.pairs.remove(pair)
                    continue
                if s is pair[0]:
                    if b"-sub" in data and b"SETNAME" in data.upper():
                        pair[2] = True
                    pair[1].sendall(data)
                elif not pair[3]:
                    pair[0].sendall(data)

    def close(self):
        self.stop.set()
        self.thread.join(timeout=5)
        for p in self.pairs:
            p[0].close()
            p[1].close()
        self.lsock.close()


def silent_subscriber():
    with ft.subtest("a subscriber that goes silent with its TCP connection up: the probe "
                    "notices, the node reconnects and refills"):
        redis = ft.RedisServer().start()
        proxy = FreezingProxy(redis.port)
        a = ft.Server(ft.pubsub_app(settings=f'broker = "{proxy.url}",')).start()
        b = ft.Server(ft.pubsub_app(settings=f'broker = "{redis.url}",')).start()
        for n in (a, b):
            ft.wait_health(n)
        time.sleep(0.5)
        readers = [("on a", ft.StreamReader(a.stream("/sub/q")))]
        stop, out = threading.Event(), []
        pub = threading.Thread(target=paced_publisher, args=(b, "q", stop, out, 0.02),
                               daemon=True)
        pub.start()
        time.sleep(0.5)
        t_freeze = time.monotonic()
        proxy.freeze_subscriber()
        line = a.wait_log(r"the subscriber failed its probe \([^)]*\)", timeout=8).group(0)
        t_noticed = time.monotonic()
        deadline = time.monotonic() + 5
        while a.health()["broker"]["subscriber"] != "ok":
            ft.check(time.monotonic() < deadline, "node a's subscriber did not come back",
                     a.health())
            time.sleep(0.02)
        time.sleep(1.0)
        stop.set()
        pub.join(timeout=10)
        time.sleep(0.5)
        accepted = [(eid, data) for _, st, eid, data in out if st == 201]
        ft.check(sum(1 for t, _, eid, _ in out if eid and t_freeze < t < t_noticed) >= 10,
                 "too few events published while the subscriber was silent")
        check_delivery(readers, accepted, "after a silent subscriber")
        h = a.health()["broker"]
        ft.check(h["probe_failures"] >= 1, "/health counts the failed probe", h)
        m = a.metrics()
        ft.check(ft.metric(m, "freshet_redis_probe_failures_total") >= 1,
                 "freshet_redis_probe_failures_total")
        print(f"    the probe noticed {t_noticed - t_freeze:.2f} s after the subscriber went "
              f"silent: {line}", flush=True)
        ft.check(t_noticed - t_freeze < 8.0, "the probe took more than 8 s (one every 2 s "
                 "on a 1 s tick, 2 s to come back)")
        for _, rd in readers:
            rd.stop()
        a.stop()
        b.stop()
        proxy.close()
        redis.stop()


def missed_switch():
    with ft.subtest("redis-sentinel://: +switch-master missed (the Sentinel the node listens to "
                    "is stopped): the node still moves to the new primary"):
        g = ft.SentinelGroup(replicas=1).start()
        stopped = []
        node = None
        try:
            node = ft.Server(ft.pubsub_app(settings=f'broker = "{g.url()}",')).start()
            ft.wait_health(node)
            node.publish("/pub/m", "before")
            old, new = g.servers[0], g.servers[1]
            # Every Sentinel the node holds a connection to stops: the one it listens to for
            # +switch-master, and the one it asks. One of the others fails over.
            for sn in g.sentinels:
                if any(n.endswith("-sentinel-sub") or n.endswith("-sentinel")
                       for n in ft.freshet_clients(sn)):
                    stopped.append(sn)
            ft.check(stopped and len(stopped) < len(g.sentinels),
                     "the node's Sentinel connections should be on some of the Sentinels",
                     [ft.freshet_clients(sn) for sn in g.sentinels])
            for sn in stopped:
                os.kill(sn.proc.pid, signal.SIGSTOP)
            active = next(sn for sn in g.sentinels if sn not in stopped)
            t0 = time.monotonic()
            active.command("SENTINEL", "FAILOVER", g.name)
            deadline = t0 + 20
            while True:
                r = node.post("/pub/m", b"after")
                primary = json.loads(node.get("/health").text).get("broker", {}).get("primary")
                if r.status == 201 and primary == f"{ft.HOST}:{new.port}":
                    break
                ft.check(time.monotonic() < deadline, "the node did not publish on the new "
                         "primary within 20 s of the failover", {"publish": r.summary(),
                                                                 "primary": primary})
                time.sleep(0.1)
            print(f"    publishing on the new primary {time.monotonic() - t0:.2f} s after "
                  "SENTINEL FAILOVER, without +switch-master", flush=True)
            ft.check_eq(ft.freshet_clients(old), [], "freshet connections on the demoted primary")
            ft.check(r.json()["id"] in new.stream_ids("m"), "the event is on the new primary")
        finally:
            for sn in stopped:
                os.kill(sn.proc.pid, signal.SIGCONT)
            if node:
                node.stop()
            g.stop()


def run():
    urls()
    sentinel_list()
    replicas_wait()
    demoted_primary()
    missed_switch()
    client_kill_pubsub()
    silent_subscriber()


ft.main(run, limit=100)
