"""The failover scenarios that 88_redis_failover.py and 89_redis_failover_loss.py run (this file
is not a test itself: the test runner only picks up NN_*.py).

One primary, one replica and three Sentinels (ft.SentinelGroup); two freshet nodes with
broker = "redis-sentinel://…"; on each node, for each of two topics, a subscriber on a route
that answers a gap with 416 and one on a route that answers it with a `reset` event; a
publisher at 200 events/s through both nodes (fresh connections, as HTTP clients do). Then the
primary is killed with SIGKILL, and the scenario checks what the issue asks:
- every publish is answered (201, or 503 while there is no writable primary: never accepted
  and lost without a word); publishing answers 201 again within 15 s (measured, printed);
- /health says degraded while the nodes have no primary, ok after, and names the new one;
- open streams stay open through the failover and keep their heartbeats;
- the subscribers' ids only go up, none twice, and none of them misses an event that survived
  in the new primary's Streams without being told (416 or reset);
- resumes with ids from before the failover: exact when nothing after the id was lost, 416 or
  reset when something a subscriber saw after it is gone (never 400, never a silent gap);
- the old primary, started again with its old configuration (so it comes back as a primary
  with no data until the Sentinels turn it into a replica), never gets a freshet connection.

Options: `replicas` puts ?replicas=1 on the URL (then every 201 must survive); `stall` stops
the replica (SIGSTOP) for a moment before the kill, while 40 MB of writes fill its link, so that
the events published meanwhile are not on the replica when the primary dies — a loss window
made visible (without ?replicas) or 503s that say the event may be stored (with it)."""

import os
import signal
import threading
import time

import frtest as ft

TOPICS = ["f0", "f1"]
RATE = 200           # publishes per second, all publishers together
PUBLISHERS = 4       # two per node
BEFORE_KILL = 1.5    # seconds of publishing before the kill (or the stall)
STALL = 1.5          # seconds the replica is stopped before the kill (more than a WAIT)
AFTER_OK = 1.5       # seconds of publishing once everything is back
RECOVERY_LIMIT = 15  # publishing must work again within this many seconds of the kill

RSUB_ROUTE = ft.lua("""
    local route = { on_gap = "reset" }
    function route.topics(req, who)
      local list = {}
      for name in req.params.topics:gmatch("[^,]+") do list[#list + 1] = name end
      return list
    end
    return route
""")


def sentinel_app(url):
    return ft.pubsub_app(settings=f'broker = "{url}", heartbeat = 1, retry = 1000, '
                                  'replay = { events = 100000 },',
                         routes='app:stream("/rsub/:topics", "routes/rsub.lua")',
                         files={"routes/rsub.lua": RSUB_ROUTE})


class Outcome:
    __slots__ = ("t0", "t1", "node", "topic", "data", "status", "id", "body")


def maybe_stored(o):
    """A publish whose answer does not say the event was not stored: 201, or a 503 that says it
    may be (unconfirmed by the replicas, or in flight when the connection went)."""
    return o.status == 201 or (o.status == 503 and "nothing was published" not in o.body)


class Subscriber:
    """An EventSource-like client on a thread of its own: reads its stream, and when the stream
    ends resumes on the same node with the last id it got. A 416 (the id is too old) makes it
    start afresh, a `reset` event goes on from the position it carries; both are gaps it was
    told of. A 503 (the node has no broker) is retried."""

    def __init__(self, node, path, topic):
        self.node, self.path, self.topic = node, path, topic
        self.events = []     # (id, data, t)
        self.gaps = []       # (t, "416" | "reset", how many events it had got by then)
        self.connects = []   # (t, status)
        self.ends = []       # t of each end of a stream that had started
        self.beats = []      # t of each heartbeat comment
        self.last_id = None
        self.error = None
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        try:
            while not self.stop.is_set():
                try:
                    s = ft.SSEStream(self.node.port, self.path, last_event_id=self.last_id)
                except OSError as exc:
                    self.connects.append((time.monotonic(), repr(exc)))
                    time.sleep(0.1)
                    continue
                self.connects.append((time.monotonic(), s.status))
                if s.status == 416:
                    self.gaps.append((time.monotonic(), "416", len(self.events)))
                    self.last_id = None
                    continue
                if s.status == 503:
                    time.sleep(0.2)
                    continue
                if s.status != 200:
                    self.error = f"{self.path} on port {self.node.port} after {self.last_id}: " \
                                 f"{s.status} {s.response.text[:200]}"
                    return
                seen = 0
                try:
                    while not self.stop.is_set() and not s.ended:
                        s.pump(0.1)
                        items = s.parser.items
                        while seen < len(items):
                            it = items[seen]
                            seen += 1
                            if isinstance(it, ft.Comment):
                                self.beats.append(it.t)
                            elif isinstance(it, ft.Event) and it.type == "reset":
                                self.gaps.append((it.t, "reset", len(self.events)))
                                self.last_id = it.id
                            elif isinstance(it, ft.Event):
                                self.events.append((it.id, it.data, it.t))
                                self.last_id = it.id
                finally:
                    s.close()
                if not self.stop.is_set():
                    self.ends.append(time.monotonic())
        except Exception as exc:  # reported by the test
            self.error = f"{self.path}: {exc!r}"

    def finish(self):
        self.stop.set()
        self.thread.join(timeout=10)

    def describe(self):
        return f"{self.path} on node {self.node.port}"


def publisher(nodes, k, stop, out):
    """Publisher k of PUBLISHERS, on node k % 2, at RATE / PUBLISHERS events per second."""
    node = nodes[k % len(nodes)]
    every = PUBLISHERS / RATE
    start = time.monotonic()
    n = 0
    while not stop.is_set():
        o = Outcome()
        o.node, o.topic = k % len(nodes), TOPICS[n % len(TOPICS)]
        o.data = f"{o.topic} p{k} #{n}"
        o.t0 = time.monotonic()
        try:
            r = ft.publish_raw(node.port, f"/pub/{o.topic}", o.data, timeout=10)
            o.status, o.body = r.status, r.text
            o.id = r.json().get("id") if r.status == 201 else None
        except (OSError, ft.Failure) as exc:
            o.status, o.body, o.id = None, repr(exc), None
        o.t1 = time.monotonic()
        out.append(o)
        n += 1
        delay = start + n * every - time.monotonic()
        if delay > 0:
            time.sleep(delay)


def health_poller(nodes, stop, out):
    while not stop.is_set():
        for i, n in enumerate(nodes):
            try:
                h = n.health()
                b = h.get("broker", {})
                out.append((time.monotonic(), i, h.get("status"), b.get("primary"),
                            b.get("subscriber")))
            except Exception as exc:  # a node that cannot answer /health is a failure below
                out.append((time.monotonic(), i, repr(exc), None, None))
        time.sleep(0.05)


def broker_log(nodes, t0=None):
    """The nodes' log lines about Redis (the context of a failure)."""
    return {f"node {i}": [line[11:] for line in n.log().splitlines() if "redis:" in line][-25:]
            for i, n in enumerate(nodes)}


def cmd(server, *args):
    """One command on a connection of its own (a Sentinel kills the kept ones in a failover)."""
    with server.conn(timeout=10) as c:
        return c.command(*args)


def stream_entries(server, topic):
    """(id, data) of a topic's Stream on a Redis server, oldest first."""
    with server.conn() as c:
        entries = c.command("XRANGE", f"fr:{{{topic}}}:s", "-", "+")
    return [(e[0], dict(zip(e[1][0::2], e[1][1::2])).get("d")) for e in entries]


def stall_replica(group):
    """Stops the replica and pushes 40 MB of writes through the primary, so that its link to
    the replica is full: what is published next stays in the primary's memory."""
    replica = group.servers[1]
    os.kill(replica.proc.pid, signal.SIGSTOP)
    blob = "x" * (4 << 20)
    with group.servers[0].conn(timeout=20) as c:
        c.pipeline([["SET", f"fr:test:ballast:{i}", blob] for i in range(10)])
    return replica


def run(replicas, stall, label):
    group = ft.SentinelGroup(replicas=1).start()
    old, replica = group.servers[0], group.servers[1]
    url = group.url("replicas=1" if replicas else "")
    nodes = [ft.Server(sentinel_app(url)).start() for _ in range(2)]
    for n in nodes:
        ft.wait_health(n)
    subs = [Subscriber(nodes[i], f"{route}/{topic}", topic)
            for i in range(2) for topic in TOPICS for route in ("/sub", "/rsub")]
    stop, outcomes, health = threading.Event(), [], []
    threads = [threading.Thread(target=publisher, args=(nodes, k, stop, outcomes), daemon=True)
               for k in range(PUBLISHERS)]
    poll_stop = threading.Event()
    poller = threading.Thread(target=health_poller, args=(nodes, poll_stop, health), daemon=True)
    marks = {}
    final = None
    try:
        with ft.subtest(f"[{label}] SIGKILL the primary while two nodes publish 200/s"):
            # Every stream is open (joined: its 200 is sent after the join) before the first
            # publish, so every subscriber must get every event.
            deadline = time.monotonic() + 10
            while not all(any(st == 200 for _, st in s.connects) for s in subs):
                ft.check(time.monotonic() < deadline, "the subscribers' streams did not open",
                         [(s.describe(), s.connects, s.error) for s in subs])
                time.sleep(0.02)
            for t in threads:
                t.start()
            poller.start()
            time.sleep(BEFORE_KILL)
            if stall:
                marks["stall"] = time.monotonic()
                stall_replica(group)
                time.sleep(max(0.0, marks["stall"] + STALL - time.monotonic()))
            old.kill()                                   # SIGKILL, by PID
            t_kill = marks["kill"] = time.monotonic()
            if stall:
                os.kill(replica.proc.pid, signal.SIGCONT)

            # Until the nodes are on the new primary.
            deadline = t_kill + RECOVERY_LIMIT + 5
            while not all(n.health()["status"] == "ok" for n in nodes):
                ft.check(time.monotonic() < deadline,
                         f"the nodes did not say ok within {RECOVERY_LIMIT + 5} s of the kill",
                         [n.health() for n in nodes])
                time.sleep(0.05)
            t_ok = marks["ok"] = time.monotonic()
            new_port = group.primary_port()
            ft.check_eq(new_port, replica.port, "the Sentinels' primary after the failover")
            new = replica
            cmd(new, "DEL", *[f"fr:test:ballast:{i}" for i in range(10)])

            # The old primary comes back with its own configuration: a primary, empty, until
            # the Sentinels make it a replica of the new one. No node may go there.
            time.sleep(1.0)
            old.start()
            t_back = marks["back"] = time.monotonic()
            seen_on_old, converted = [], None
            while time.monotonic() - t_back < 20:
                names = ft.freshet_clients(old)
                if names:
                    seen_on_old.append((round(time.monotonic() - t_back, 2), names))
                role = cmd(old, "ROLE")[0]
                if role == "slave" and converted is None:
                    converted = time.monotonic()
                if converted and time.monotonic() - converted > 1.0 and \
                        "master_link_status:up" in cmd(old, "INFO", "replication"):
                    break
                time.sleep(0.1)
            ft.check(converted is not None, "the Sentinels did not make the old primary a "
                     "replica within 20 s", cmd(old, "ROLE"))
            # Publishing goes on with everything back (with ?replicas=1 the old primary is the
            # replica that lets publishes be confirmed again).
            first_201 = None
            deadline = time.monotonic() + 10
            while first_201 is None and time.monotonic() < deadline:
                first_201 = next((o for o in outcomes if o.status == 201 and o.t0 > t_kill),
                                 None)
                time.sleep(0.05)
            time.sleep(AFTER_OK)
            stop.set()
            for t in threads:
                t.join(timeout=15)
            # The last events reach the subscribers (a loaded machine, a sanitizer build: give
            # them up to 10 s, then the checks below say what is missing).
            newest = {}
            for o in outcomes:
                if maybe_stored(o) and o.id and (o.topic not in newest or
                                                 ft.parse_id(o.id) > ft.parse_id(newest[o.topic])):
                    newest[o.topic] = o.id
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and not all(
                    s.events and ft.parse_id(s.events[-1][0]) >= ft.parse_id(newest[s.topic])
                    for s in subs if s.topic in newest):
                time.sleep(0.05)
            time.sleep(0.3)
            poll_stop.set()
            poller.join(timeout=5)
            for s in subs:
                s.finish()

            # -- publishing
            ft.check(not any(t.is_alive() for t in threads), "publishers did not stop")
            ft.check(first_201 is not None, "no publish was answered 201 after the kill")
            took = first_201.t1 - t_kill
            per_node = []
            for i in range(2):
                o = next((o for o in outcomes if o.status == 201 and o.t0 > t_kill
                          and o.node == i), None)
                per_node.append(f"{o.t1 - t_kill:.2f}" if o else "never")
            print(f"    [{label}] kill -> nodes ok {t_ok - t_kill:.2f} s; first 201 after "
                  f"{took:.2f} s (node 0 {per_node[0]} s, node 1 {per_node[1]} s); "
                  f"{len(outcomes)} publishes", flush=True)
            if replicas:
                print(f"    [{label}] the old primary came back {t_back - t_kill:.2f} s after "
                      f"the kill; a replica {converted - t_back:.2f} s later", flush=True)
            ft.check(took <= RECOVERY_LIMIT, f"publishing answered 201 again only {took:.2f} s "
                     f"after the kill (limit {RECOVERY_LIMIT} s)")
            ft.check(all(p != "never" for p in per_node), "a node never published again",
                     per_node)
            unanswered = [(o.node, round(o.t0 - t_kill, 3), o.body[:100]) for o in outcomes
                          if o.status is None]
            ft.check(not unanswered, "publishes without an HTTP answer", unanswered[:10])
            odd = [(o.status, o.body[:120]) for o in outcomes if o.status not in (201, 503)]
            ft.check(not odd, "publishes answered neither 201 nor 503", odd[:10])
            # Each node's first /health ok after the kill: publishes on it before then must
            # have answered 503.
            node_ok = [min((h[0] for h in health if h[1] == i and h[0] > t_kill + 0.1 and
                            h[2] == "ok"), default=t_ok) for i in range(2)]
            down = [o for o in outcomes if t_kill + 0.2 < o.t0 and o.t1 < node_ok[o.node] - 0.2]
            ft.check(all(o.status == 503 for o in down),
                     "publishes while their node had no primary must answer 503",
                     [(o.status, o.body[:100]) for o in down if o.status != 503][:5])
            if replicas:
                unsure = [o for o in outcomes if o.status == 503 and "may" in o.body]
                print(f"    [{label}] {len(unsure)} publishes answered 503 'may be stored' "
                      f"(not confirmed by a replica)", flush=True)
                if stall:
                    ft.check(any(marks["stall"] < o.t0 < t_kill for o in unsure),
                             "with the replica stopped, publishes must answer 503 and say the "
                             "event may be stored",
                             {"answers": [(round(o.t0 - t_kill, 2), o.status, o.body[:150])
                                          for o in outcomes if marks["stall"] < o.t0 < t_kill],
                              "log": broker_log(nodes)})

            # -- /health
            for i in range(2):
                during = [h for h in health if h[1] == i and t_kill + 0.3 < h[0] < node_ok[i]]
                after = [h for h in health if h[1] == i and h[0] > t_ok + 0.5]
                ft.check(during and all(h[2] == "degraded" for h in during),
                         f"node {i} must say degraded while it has no primary",
                         [(round(h[0] - t_kill, 2), h[2]) for h in health if h[1] == i and
                          t_kill < h[0] < t_ok + 0.5][:20])
                bad = [h for h in after if h[2] != "ok" or h[3] != f"{ft.HOST}:{new.port}"]
                ft.check(not bad, f"node {i} after the failover: /health must say ok with "
                         f"the new primary {ft.HOST}:{new.port}", bad[:5])

            # -- the old primary
            ft.check(not seen_on_old, "freshet connections on the old primary after it came "
                     "back (seconds after its start, names)", seen_on_old[:5])
            names = ft.freshet_clients(new)
            ft.check(sum(1 for n in names if n.endswith("-cmd")) == 2 and
                     sum(1 for n in names if n.endswith("-sub")) == 2,
                     "both nodes' command and subscriber connections on the new primary", names)

            # -- open streams
            for s in subs:
                ft.check(not s.error, f"subscriber {s.describe()} failed", s.error)
                if not stall:
                    ft.check(not s.ends, f"{s.describe()} ended during the failover "
                             f"(nothing was lost: it should have stayed open)",
                             [round(t - t_kill, 2) for t in s.ends])
                beats = [t for t in s.beats if t_kill <= t <= t_ok]
                if t_ok - t_kill > 2.5 and not s.ends:
                    ft.check(len(beats) >= 1, f"{s.describe()}: no heartbeat during the "
                             f"{t_ok - t_kill:.1f} s without a primary")

            # -- what the subscribers saw
            final = {t: stream_entries(new, t) for t in TOPICS}
            final_ids = {t: {eid for eid, _ in final[t]} for t in TOPICS}
            accepted = [o for o in outcomes if o.status == 201]
            lost_201 = [o for o in accepted if o.id not in final_ids[o.topic]]
            marks["lost_201"] = lost_201
            if lost_201:
                print(f"    [{label}] loss window: {len(lost_201)} events answered 201 are not "
                      f"in the new primary, published from "
                      f"{min(o.t0 for o in lost_201) - t_kill:+.2f} s to "
                      f"{max(o.t0 for o in lost_201) - t_kill:+.2f} s of the kill", flush=True)
            else:
                print(f"    [{label}] loss window: every event answered 201 is in the new "
                      f"primary", flush=True)
            if replicas:
                ft.check(not lost_201, "with ?replicas=1 an event answered 201 was lost",
                         [(o.topic, o.id, round(o.t0 - t_kill, 3)) for o in lost_201][:10])
            late_lost = [o for o in lost_201 if o.t0 > t_kill]
            ft.check(not late_lost, "events answered 201 after the kill are missing",
                     [(o.topic, o.id) for o in late_lost][:10])

            byid = {o.id: o for o in outcomes if o.id}
            bydata = {o.data: o for o in outcomes}
            problems = []
            for s in subs:
                ids = [eid for eid, _, _ in s.events]
                keys = [ft.parse_id(x) for x in ids]
                if keys != sorted(keys) or len(set(ids)) != len(ids):
                    problems.append({"subscriber": s.describe(), "problem": "out of order or "
                                     "twice", "ids": ids[:50]})
                    continue
                # Every event that survived, between the first and the last it got, must have
                # reached it, unless it lies in a gap it was told of (between the events it got
                # before and after a 416 or a reset).
                got = set(ids)
                first, last = keys[0], keys[-1]
                told = [(keys[n - 1] if n > 0 else (0, 0), keys[n] if n < len(keys) else last)
                        for _, _, n in s.gaps]
                missing = [eid for eid, _ in final[s.topic]
                           if first < ft.parse_id(eid) < last and eid not in got and
                           not any(a < ft.parse_id(eid) < b for a, b in told)]
                if missing:
                    problems.append({"subscriber": s.describe(), "problem": "silent gap",
                                     "missing": missing[:10], "gaps told": s.gaps})
                if replicas:
                    want = [o.id for o in accepted if o.topic == s.topic]
                    absent = [x for x in want if x not in got and
                              not any(a < ft.parse_id(x) < b for a, b in told)]
                    if absent:
                        around = []
                        for x in absent[:3]:
                            o = byid[x]
                            k = ft.parse_id(x)
                            before = [(eid, round(t - t_kill, 3)) for eid, _, t in s.events
                                      if ft.parse_id(eid) < k][-2:]
                            after = [(eid, round(t - t_kill, 3)) for eid, _, t in s.events
                                     if ft.parse_id(eid) > k][:2]
                            around.append({"id": x, "published on node": o.node,
                                           "sent": round(o.t0 - t_kill, 3),
                                           "answered": round(o.t1 - t_kill, 3),
                                           "got before": before, "got after": after})
                        problems.append({"subscriber": s.describe(), "problem": "events "
                                         "answered 201 not delivered", "absent": absent[:10],
                                         "around": around, "log": broker_log([s.node])})
                    extra = [(eid, d) for eid, d, _ in s.events if eid not in byid and
                             not (d in bydata and maybe_stored(bydata[d]))]
                    if extra:
                        problems.append({"subscriber": s.describe(), "problem": "events "
                                         "nobody published", "extra": extra[:10]})
            ft.check(not problems, "what the subscribers saw", problems)
            told = [(s.describe(), [(round(t - t_kill, 2), k) for t, k, _ in s.gaps])
                    for s in subs if s.gaps]
            if told:
                print(f"    [{label}] gaps told to subscribers: {told}", flush=True)

        with ft.subtest(f"[{label}] resuming with ids from before the failover"):
            ft.check(final is not None, "the failover itself failed: nothing to resume from")
            check_resumes(nodes, subs, final, t_kill, label)
    finally:
        stop.set()
        poll_stop.set()
        for t in threads:
            if t.is_alive():
                t.join(timeout=15)
        for s in subs:
            s.finish()
        for n in nodes:
            if n.alive():
                n.stop()
        group.stop()
    return marks


def check_resumes(nodes, subs, final, t_kill, label):
    """Resumes with ids the subscribers got before the kill: when an event a subscriber saw
    after the id is gone from the new primary, the resume must be refused (416) or reset;
    otherwise it must replay exactly what the Stream holds after the id."""
    checked = []
    for topic in TOPICS:
        held = [eid for eid, _ in final[topic]]
        seen = sorted({eid for s in subs if s.topic == topic for eid, _, t in s.events
                       if t < t_kill + 0.5}, key=ft.parse_id)
        gone = [eid for eid in seen if eid not in set(held)]
        # The last ids before the kill, the oldest lost one, and an older one still held.
        picks = seen[-3:] + gone[:1] + seen[len(seen) // 2:len(seen) // 2 + 1]
        for i, after in enumerate(dict.fromkeys(picks)):
            k = ft.parse_id(after)
            lost_after = [eid for eid in gone if ft.parse_id(eid) > k]
            want = [(eid, d) for eid, d in final[topic] if ft.parse_id(eid) > k]
            for route in ("/sub", "/rsub"):
                node = nodes[i % 2]
                s = ft.SSEStream(node.port, f"{route}/{topic}", last_event_id=after)
                try:
                    if lost_after:
                        if route == "/sub":
                            s.response.check_error(416, f"resume {topic} after {after} (events "
                                                        f"after it were lost: {lost_after[:3]})")
                        else:
                            ft.check_eq(s.status, 200, f"reset route, resume after {after}")
                            e = s.next_event(timeout=5)
                            ft.check_eq(e.type, "reset", f"first event of a resume after "
                                        f"{after}, across lost {lost_after[:3]}")
                        checked.append((topic, after, route, "gap told"))
                        continue
                    ft.check_eq(s.status, 200, f"resume {topic} after {after} "
                                f"({s.response.summary() if s.status != 200 else ''})")
                    got = []
                    while len(got) < len(want):
                        e = s.next_event(timeout=5)
                        ft.check(e.type != "reset", f"reset on a resume after {after} although "
                                 "nothing after it was lost", e)
                        got.append((e.id, e.data))
                    ft.check_eq(got, want, f"replay of {topic} after {after} on {route}")
                    checked.append((topic, after, route, f"exact, {len(want)} events"))
                finally:
                    s.close()
    told = sum(1 for c in checked if c[3] == "gap told")
    print(f"    [{label}] {len(checked)} resumes checked: {told} across a lost stretch "
          f"(416 or reset), {len(checked) - told} exact", flush=True)
