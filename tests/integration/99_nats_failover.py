"""Losing a NATS server, then a freshet node, with broker = "nats://n1,n2,n3?replicas=3": three
nats-server nodes in one JetStream cluster (the stream has three replicas), two freshet nodes,
on each node for each of two topics a subscriber on a route that answers a gap with 416 and one
that answers it with a `reset` event, and a publisher at 200 events/s through both nodes.

1. SIGKILL the nats-server that leads the stream. Every publish is answered (201, or 503 while
   the stream elects a new leader: never accepted and lost); publishing answers 201 again
   within 15 s (measured, printed); every event answered 201 reaches every subscriber of its
   topic, in order, once, and no subscriber is told of a gap (416 or reset): JetStream acked
   only what a majority stored.
2. SIGKILL a freshet node: its subscribers resume on the other node with their last ids and
   miss nothing answered 201, none twice.
The subscriber and publisher clients are sentinel_failover.py's."""

import threading
import time

import frtest as ft
import sentinel_failover as sf

RECOVERY_LIMIT = 15


def nats_app(url):
    return ft.pubsub_app(settings=f'broker = "{url}", heartbeat = 1, retry = 1000, '
                                  'replay = { events = 100000 },',
                         routes='app:stream("/rsub/:topics", "routes/rsub.lua")',
                         files={"routes/rsub.lua": sf.RSUB_ROUTE})


def broker_log(nodes):
    """The nodes' log lines about NATS (the context of a failure)."""
    return {f"node {i}": [line[11:] for line in n.log().splitlines() if "nats:" in line][-15:]
            for i, n in enumerate(nodes) if n.alive()}


def newest_201(outcomes):
    newest = {}
    for o in outcomes:
        if o.status == 201 and (o.topic not in newest or
                                ft.parse_id(o.id) > ft.parse_id(newest[o.topic])):
            newest[o.topic] = o.id
    return newest


def wait_caught_up(subs, outcomes, limit=15):
    newest = newest_201(outcomes)
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and not all(
            s.events and ft.parse_id(s.events[-1][0]) >= ft.parse_id(newest[s.topic])
            for s in subs if s.topic in newest):
        time.sleep(0.05)
    time.sleep(0.3)


def check_delivery(subs, outcomes, what):
    accepted = {t: [o for o in outcomes if o.status == 201 and o.topic == t] for t in sf.TOPICS}
    for s in subs:
        ft.check(not s.error, f"subscriber {s.describe()} failed", s.error)
        ft.check(not s.gaps, f"{s.describe()} was told of a gap ({what})", s.gaps[:5])
        ids = [e[0] for e in s.events]
        keys = [ft.parse_id(i) for i in ids]
        dups = len(ids) - len(set(ids))
        ft.check(dups == 0, f"{s.describe()} got {dups} events twice ({what})")
        ft.check(all(a < b for a, b in zip(keys, keys[1:])),
                 f"{s.describe()}: ids out of order ({what})")
        got = set(ids)
        missing = [(o.id, o.data) for o in accepted[s.topic] if o.id not in got]
        ft.check(not missing, f"{s.describe()} misses {len(missing)} of "
                 f"{len(accepted[s.topic])} events answered 201 ({what})", missing[:10])


def run():
    cluster = ft.NatsCluster().start()
    url = cluster.url + "?replicas=3"
    nodes = [ft.Server(nats_app(url)).start() for _ in range(2)]
    for n in nodes:
        ft.wait_health(n, timeout=30)
    subs = [sf.Subscriber(nodes[i], f"{route}/{topic}", topic)
            for i in range(2) for topic in sf.TOPICS for route in ("/sub", "/rsub")]
    stop, outcomes = threading.Event(), []
    threads = [threading.Thread(target=sf.publisher, args=(nodes, k, stop, outcomes),
                                daemon=True) for k in range(sf.PUBLISHERS)]
    try:
        with ft.subtest("SIGKILL the nats-server leading the stream (R3) while two nodes "
                        "publish 200/s: every 201 reaches every subscriber, in order, once"):
            deadline = time.monotonic() + 10
            while not all(any(st == 200 for _, st in s.connects) for s in subs):
                ft.check(time.monotonic() < deadline, "the subscribers' streams did not open",
                         [(s.describe(), s.connects, s.error) for s in subs])
                time.sleep(0.02)
            for t in threads:
                t.start()
            time.sleep(sf.BEFORE_KILL)
            leader = cluster.leader()
            ft.check(leader is not None, "no node says it leads the stream")
            leader.kill()  # SIGKILL, by PID
            t_kill = time.monotonic()
            first = None
            deadline = t_kill + RECOVERY_LIMIT + 5
            while first is None and time.monotonic() < deadline:
                first = next((o for o in list(outcomes) if o.status == 201 and o.t0 > t_kill),
                             None)
                time.sleep(0.02)
            ft.check(first is not None, f"no publish answered 201 within "
                     f"{RECOVERY_LIMIT + 5} s of the kill",
                     [(o.status, o.body[:120]) for o in outcomes[-5:]])
            # Both nodes publish again (each finds the new leader on its own).
            while time.monotonic() < deadline and not all(
                    any(o.status == 201 and o.t0 > t_kill and o.node == i for o in list(outcomes))
                    for i in range(2)):
                time.sleep(0.05)
            per_node = []
            for i in range(2):
                o = next((o for o in outcomes if o.status == 201 and o.t0 > t_kill and
                          o.node == i), None)
                per_node.append(f"{o.t1 - t_kill:.2f}" if o else "never")
            failed = [o for o in outcomes if o.status != 201 and o.t0 > t_kill - 1]
            print(f"    leader {leader.name} killed; first 201 after {first.t1 - t_kill:.2f} s "
                  f"(node 0 {per_node[0]} s, node 1 {per_node[1]} s); "
                  f"{len(failed)} publishes answered 503 around the kill", flush=True)
            time.sleep(sf.AFTER_OK + 1.0)
            ft.check(first.t1 - t_kill <= RECOVERY_LIMIT,
                     f"publishing answered 201 again only {first.t1 - t_kill:.2f} s after the "
                     f"kill (limit {RECOVERY_LIMIT} s)")
            ft.check(all(p != "never" and float(p) <= RECOVERY_LIMIT for p in per_node),
                     f"a node did not publish again within {RECOVERY_LIMIT} s",
                     {"first 201 (s after the kill)": per_node, "log": broker_log(nodes),
                      "health": [n.health() for n in nodes],
                      "last answers": [(o.node, o.status, o.body[:100]) for o in outcomes[-6:]]})
            unanswered = [(o.node, round(o.t0 - t_kill, 3), o.body[:100]) for o in outcomes
                          if o.status is None]
            ft.check(not unanswered, "publishes without an HTTP answer", unanswered[:10])
            odd = [(o.status, o.body[:120]) for o in outcomes if o.status not in (201, 503)]
            ft.check(not odd, "publishes answered neither 201 nor 503", odd[:10])
            wait_caught_up(subs, outcomes)
            check_delivery(subs, outcomes, "after the leader's kill")

        with ft.subtest("SIGKILL a freshet node: its subscribers resume on the other node with "
                        "nothing lost, nothing twice"):
            # From now on publishing goes through node 1 only; node 0's subscribers come back
            # to node 1 with their last ids when their streams end.
            stop.set()
            for t in threads:
                t.join(timeout=15)
            stop2 = threading.Event()
            threads2 = [threading.Thread(target=sf.publisher,
                                         args=([nodes[1]], k, stop2, outcomes), daemon=True)
                        for k in range(2)]
            for t in threads2:
                t.start()
            time.sleep(0.5)
            for s in subs:
                if s.node is nodes[0]:
                    s.node = nodes[1]
            nodes[0].kill()
            time.sleep(2.0)
            stop2.set()
            for t in threads2:
                t.join(timeout=15)
            wait_caught_up(subs, outcomes)
            moved = [s for s in subs if s.ends]
            ft.check(len(moved) == len(subs) // 2, "node 0's subscribers' streams must have "
                     "ended with it (and only theirs)", [s.describe() for s in moved])
            check_delivery(subs, outcomes, "after node 0's kill")
            print(f"    {sum(1 for o in outcomes if o.status == 201)} events answered 201 in "
                  f"all; each subscriber got every one of its topic's", flush=True)
    finally:
        stop.set()
        for s in subs:
            s.finish()


ft.main(run, limit=115)
