"""Redis failing under freshet nodes:
- a node started before Redis is degraded (503s) and recovers by itself;
- a Redis that refuses writes (maxmemory) makes publishes 503, not 400;
- Redis stopped with publishes in flight: each is answered, and publishing works again after;
- Redis stopped (SIGTERM) for ~3 s while two nodes publish: publishes answer 503 during the
  outage and 201 once Redis is back; /health says degraded, then ok; open streams stay open
  and keep their heartbeats; every accepted (201) event reaches every subscriber of its topic
  exactly once, in order.
Run twice: with an empty Redis coming back (no persistence: what was stored before is gone, so
an id from before the outage can only get 416) and with --appendonly yes (everything stored
before comes back, so such an id resumes exactly)."""

import threading
import time

import frtest as ft

TOPICS = ["o0", "o1"]
OUTAGE = 3.0


def app_on(redis):
    return ft.pubsub_app(settings=f'broker = "{redis.url}", heartbeat = 1, retry = 1000,')


def started_before_redis():
    with ft.subtest("a node started before Redis: degraded and 503s, then ok by itself"):
        redis = ft.RedisServer(port=ft.free_port())  # not started yet
        srv = ft.Server(app_on(redis)).start()
        h = srv.health()
        ft.check_eq((h.get("status"), ft.broker_state(h)),
                    ("degraded", {"kind": "redis", "status": "unavailable"}),
                    "/health without Redis")
        r = srv.post("/pub/early", b"x")
        err = r.check_error(503, "publish without Redis")
        ft.check("broker is unavailable" in err, "503 message", err)
        ft.check(r.header("retry-after") is not None, "503 without Retry-After", r.summary())
        s = ft.SSEStream(srv.port, "/sub/early?refusal=status")
        s.close()
        s.response.check_error(503, "stream without Redis")
        ft.check(s.response.header("retry-after") is not None, "stream 503 without Retry-After",
                 s.response.summary())
        # A browser's EventSource gets it in the stream, and comes back by itself.
        s = ft.SSEStream(srv.port, "/sub/early")
        s.close()
        s.response.check_refused("broker_unavailable", 503, "stream without Redis, as an "
                                 "EventSource", retry_ms=(2000, 3000))
        redis.start()
        ft.wait_health(srv, "ok", timeout=15)
        with ft.open_stream(srv.port, "/sub/early") as s:
            eid = srv.publish("/pub/early", "now")
            e = s.next_event()
            ft.check_eq((e.id, e.data), (eid, "now"), "event once Redis is there")
        srv.stop()
        redis.stop()


def redis_refuses_writes():
    with ft.subtest("Redis refusing writes (maxmemory reached): publishes get 503, not 400"):
        # The node checks every event before it calls Redis, so an error reply from Redis on
        # a publish is the broker's failure, never the client's: 503 with Retry-After, so the
        # client retries instead of dropping the event as malformed.
        redis = ft.RedisServer().start()
        srv = ft.Server(app_on(redis)).start()
        ft.wait_health(srv)
        with ft.open_stream(srv.port, "/sub/full") as s:
            redis.command("CONFIG", "SET", "maxmemory", "1")  # below use: every write refused
            r = srv.post("/pub/full", b"refused")
            redis.command("CONFIG", "SET", "maxmemory", "0")
            eid = srv.publish("/pub/full", "accepted")
            e = s.next_event()
            ft.check_eq((e.id, e.data), (eid, "accepted"), "the first event the stream gets")
            ft.check_eq(redis.stream_ids("full"), [eid], "fr:{full}:s")
        err = r.check_error(503, "publish while Redis refuses writes")
        ft.check(r.header("retry-after") is not None, "503 without Retry-After", r.summary())
        ft.check(err, "503 without a message", r.summary())
        srv.stop()
        redis.stop()


def publishes_in_flight():
    with ft.subtest("Redis stopped with publishes in flight: each gets an answer, then 201s again"):
        # Four publishers without pauses keep requests in flight on the node's command
        # connection at the moment Redis exits; three stop/start cycles on the same node.
        redis = ft.RedisServer().start()
        srv = ft.Server(app_on(redis)).start()
        ft.wait_health(srv)
        report = []
        for cycle in range(3):
            stop, outcomes = threading.Event(), []

            def loop(k):
                n = 0
                while not stop.is_set():
                    t0 = time.monotonic()
                    try:
                        r = ft.publish_raw(srv.port, "/pub/flight", f"c{cycle} p{k} #{n}",
                                           timeout=5)
                        outcomes.append((t0, time.monotonic(), r.status, r.text[:100]))
                    except (OSError, ft.Failure) as exc:
                        outcomes.append((t0, time.monotonic(), None, repr(exc)[:100]))
                    n += 1

            threads = [threading.Thread(target=loop, args=(k,), daemon=True) for k in range(4)]
            for t in threads:
                t.start()
            time.sleep(0.5)
            redis.stop()
            t_down = time.monotonic()
            time.sleep(1.0)
            redis.start()
            try:
                ft.wait_health(srv, "ok", timeout=20)
                t_ok = time.monotonic()
                time.sleep(1.5)
            finally:
                stop.set()
                for t in threads:
                    t.join(timeout=10)
            unanswered = [f"{t0 - t_down:+.3f} s" for t0, _, st, _ in outcomes if st is None]
            # one more, alone, once the publishers are done
            probe = srv.post("/pub/flight", f"probe {cycle}".encode())
            after = [(st, body) for t0, _, st, body in outcomes if t0 > t_ok + 0.2]
            after.append((probe.status, probe.text[:100]))
            report.append({"cycle": cycle, "publishes": len(outcomes),
                           "unanswered (sent, from Redis' exit)": unanswered[:5],
                           "after /health ok": len(after),
                           "/health now": srv.health()["status"],
                           "not 201 after /health ok": [a for a in after if a[0] != 201][:3]})
            if unanswered or not after or any(st != 201 for st, _ in after):
                break
        bad = [r for r in report if r["unanswered (sent, from Redis' exit)"]
               or not r["after /health ok"] or r["not 201 after /health ok"]]
        ft.check(not bad, "a publish must always be answered (201 or 503), and once /health says "
                 "ok again publishes must succeed", {"report": report,
                                                     "log": srv.log_tail(6)})
        srv.stop()
        redis.stop()


class Outcome:
    __slots__ = ("t0", "t1", "node", "topic", "data", "status", "id", "body", "retry_after")


def publish_loop(node, idx, stop, out, errors, every=0.02):
    """Publishes one event every `every` s on fresh connections until stop; records each
    attempt with the times it was sent and answered."""
    n = 0
    try:
        while not stop.is_set():
            topic = TOPICS[n % len(TOPICS)]
            o = Outcome()
            o.node, o.topic, o.data = idx, topic, f"{topic} node{idx} #{n}"
            o.t0 = time.monotonic()
            try:
                r = ft.publish_raw(node.port, f"/pub/{topic}", o.data, timeout=5)
                o.status, o.body = r.status, r.text
                o.retry_after = r.header("retry-after")
                o.id = r.json().get("id") if r.status == 201 else None
            except (OSError, ft.Failure) as exc:
                o.status, o.body, o.id, o.retry_after = None, repr(exc), None, None
            o.t1 = time.monotonic()
            out.append(o)
            n += 1
            time.sleep(every)
    except BaseException as exc:
        errors.append(repr(exc))


def outage(appendonly):
    mode = "appendonly yes" if appendonly else "no persistence"
    redis = ft.RedisServer(appendonly=appendonly).start()
    nodes = [ft.Server(app_on(redis)).start() for _ in range(2)]
    for n in nodes:
        ft.wait_health(n)
    readers = [(topic, i, ft.StreamReader(nodes[i].stream(f"/sub/{topic}")))
               for topic in TOPICS for i in range(2)]
    stop = threading.Event()
    outcomes, errors = [], []
    health = {0: [], 1: []}  # (t, status, broker status)
    threads = [threading.Thread(target=publish_loop, args=(nodes[i], i, stop, outcomes, errors),
                                daemon=True) for i in range(2)]
    pre_ids = {}
    marks = {"t_down": float("inf")}

    def in_flight_extra(data):
        # A publish in flight when Redis stopped may have been stored although its reply never
        # came back: the node answers 503 "…: the event may have been stored" (not "the broker
        # is unavailable: nothing was published"), and subscribers may see the event. That is
        # right; the 503 only says the outcome is unknown to the publisher.
        o = next((x for x in outcomes if x.data == data), None)
        return (o is not None and o.status == 503 and o.t0 < marks["t_down"]
                and "nothing was published" not in o.body)

    try:
        with ft.subtest(f"[{mode}] Redis stopped for {OUTAGE:.0f} s while two nodes publish"):
            for t in threads:
                t.start()
            time.sleep(1.5)
            t_stop = time.monotonic()
            redis.stop()                      # SIGTERM by PID, waits for the exit
            t_down = marks["t_down"] = time.monotonic()
            refused_streams = []
            while time.monotonic() - t_down < OUTAGE:
                for i, n in enumerate(nodes):
                    h = n.health()
                    health[i].append((time.monotonic(), h["status"], h["broker"]["status"]))
                if len(refused_streams) < 2 and time.monotonic() - t_down > 0.5:
                    s = ft.SSEStream(nodes[len(refused_streams)].port,
                                     "/sub/o0?refusal=status")
                    s.close()
                    refused_streams.append(s.response)
                time.sleep(0.1)
            t_restart = time.monotonic()
            redis.start()                     # same port, same dir
            for i, n in enumerate(nodes):
                ft.wait_health(n, "ok", timeout=20)
            t_ok = time.monotonic()
            time.sleep(1.5)                   # publishing goes on with Redis back
            stop.set()
            for t in threads:
                t.join(timeout=15)
            ft.check(not any(t.is_alive() for t in threads), "publishers did not stop")
            ft.check(not errors, "publisher threads failed", errors)
            print(f"    [{mode}] outage {t_restart - t_down:.2f} s; nodes ok "
                  f"{t_ok - t_restart:.2f} s after the restart; {len(outcomes)} publishes",
                  flush=True)

            accepted = [o for o in outcomes if o.status == 201]
            for t in TOPICS:
                pre = [o for o in accepted if o.topic == t and o.t1 < t_stop]
                pre_ids[t] = pre[len(pre) // 2].id if pre else None
            # A publish must always get an answer: 201 once stored, 503 when Redis is away.
            unanswered = [{"node": o.node, "sent": f"{o.t0 - t_down:+.3f} s from Redis' exit",
                           "error": o.body[:100]} for o in outcomes if o.status is None]
            ft.check(not unanswered, f"{len(unanswered)} publishes got no HTTP answer within "
                     f"5 s (Redis exited at 0, came back at {t_restart - t_down:+.3f} s)",
                     unanswered[:8])
            during = [o for o in outcomes if o.t0 > t_down and o.t1 < t_restart]
            ft.check(len(during) >= 20, f"only {len(during)} publishes during the outage")
            bad = [(o.node, o.status, o.body[:120]) for o in during if o.status != 503]
            ft.check(not bad, "publishes during the outage must answer 503", bad[:10])
            # (one sent as Redis exited may still have been in flight: "may have been stored")
            ft.check(all("broker is unavailable" in o.body or "may have been stored" in o.body
                         for o in during),
                     "503 body does not say the broker is unavailable", during[0].body)
            ft.check(all(o.retry_after for o in during), "503 without Retry-After")
            # Redis serves commands for a moment after SIGTERM (until its next cron tick), so
            # the boundary is its exit, not the signal
            late = [(o.node, o.id) for o in accepted if t_down < o.t0 and o.t1 < t_restart]
            ft.check(not late, "publishes sent after Redis exited were answered 201", late)
            after = [o for o in outcomes if o.t0 > t_ok]
            ft.check(len(after) >= 20 and all(o.status == 201 for o in after),
                     "publishes after both nodes said ok must be 201",
                     [(o.node, o.status, o.body[:100]) for o in after if o.status != 201][:10])
            odd = [(o.status, o.body[:100]) for o in outcomes if o.status not in (201, 503)]
            ft.check(not odd, "publishes answered neither 201 nor 503", odd[:10])

            for i in range(2):
                states = {(s, b) for t, s, b in health[i] if t > t_down + 0.3}
                ft.check_eq(states, {("degraded", "unavailable")},
                            f"node {i} /health during the outage")
                h = nodes[i].health()
                ft.check_eq((h["status"], ft.broker_state(h)), ("ok", {"kind": "redis", "status": "ok"}),
                            f"node {i} /health after the outage")
            for r in refused_streams:
                r.check_error(503, "a new stream during the outage")
                ft.check(r.header("retry-after") is not None, "stream 503 without Retry-After",
                         r.summary())

            for topic, i, rd in readers:
                ft.check(not rd.stream.ended and not rd.error,
                         f"stream {topic} on node {i} ended during the outage",
                         rd.error or rd.stream.raw[-300:])
                beats = [c.t for c in rd.comments() if t_down <= c.t <= t_restart]
                ft.check(len(beats) >= 2, f"stream {topic} on node {i}: {len(beats)} heartbeats "
                         f"in the {t_restart - t_down:.1f} s outage (heartbeat = 1)",
                         rd.stream.raw[-300:])

            expected = {t: sorted((ft.parse_id(o.id), o.id, o.data) for o in accepted
                                  if o.topic == t) for t in TOPICS}
            for t in TOPICS:
                expected[t] = [(eid, data) for _, eid, data in expected[t]]
            time.sleep(0.5)
            problems = []
            for topic, i, rd in readers:
                every = [e.id for e in rd.events()]
                got = [(e.id, e.data) for e in rd.events() if not in_flight_extra(e.data)]
                if got != expected[topic] or len(set(every)) != len(every):
                    ids = every
                    want = [w[0] for w in expected[topic]]
                    byid = {o.id: o for o in accepted}
                    missing = [w for w in want if w not in set(ids)]
                    problems.append({
                        "stream": f"{topic} on node {i}", "received": len(ids),
                        "expected": len(want),
                        "missing": [(m, f"published on node {byid[m].node} "
                                        f"{byid[m].t0 - t_restart:+.3f} s after the restart")
                                    for m in missing][:10],
                        "duplicates": sorted({x for x in ids if ids.count(x) > 1})[:10],
                        "unexpected": [g for g in got if g[0] not in set(want)][:10],
                    })
            ft.check(not problems, "every accepted event must reach every subscriber of its "
                     "topic exactly once, in order", problems)

        with ft.subtest(f"[{mode}] resuming with an id from before the outage"):
            for topic in TOPICS:
                old = pre_ids.get(topic)
                ft.check(old is not None, f"no event of {topic} was accepted before the outage")
                s = ft.SSEStream(nodes[1].port, f"/sub/{topic}", last_event_id=old)
                if appendonly:
                    # everything Redis accepted came back from the append-only file
                    want = sorted((ft.parse_id(o.id), o.id, o.data) for o in outcomes
                                  if o.status == 201 and o.topic == topic
                                  and ft.parse_id(o.id) > ft.parse_id(old))
                    want = [(eid, data) for _, eid, data in want]
                    ft.check_eq(s.status, 200, f"resume {topic} after {old} ({s.response.summary()})")
                    got = []
                    while len(got) < len(want):
                        e = s.next_event(timeout=10)
                        if not in_flight_extra(e.data):
                            got.append(e)
                    s.close()
                    ft.check_eq([(e.id, e.data) for e in got], want,
                                f"replay of {topic} after {old}")
                else:
                    # the restarted Redis is empty: the events after the id are gone, so the
                    # client must reload its state (416), as after a memory broker restart;
                    # 400 would claim the id was never issued
                    s.close()
                    s.response.check_error(416, f"resume {topic} after pre-outage id {old} on "
                                                "a Redis that came back empty")
    finally:
        stop.set()
        for t in threads:
            if t.is_alive():
                t.join(timeout=15)
        for _, _, rd in readers:
            rd.stop()
        for n in nodes:
            if n.alive():
                n.stop()
        redis.stop()


def run():
    started_before_redis()
    redis_refuses_writes()
    publishes_in_flight()
    outage(appendonly=False)
    outage(appendonly=True)


ft.main(run, limit=110)
