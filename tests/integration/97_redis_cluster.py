"""broker = "redis-cluster://…" on a real Redis Cluster (3 primaries, 3 replicas, made with
redis-cli --cluster create): two freshet nodes, 300 topics spread over every shard, streams of
ten topics each on one node and publishers on the other: every event arrives once and in order,
each primary holds some of the Streams, topics travel by sharded pub/sub (SSUBSCRIBE on the
owning shard, no plain channel), and the function library is on every primary. A stream that
follows topics on three shards resumes exactly on the other node; presence counts across
shards."""

import threading
import time

import frtest as ft
import redis_cluster as rc

TOPICS = [f"t{i:03d}" for i in range(300)]
PER_TOPIC = 5
PER_STREAM = 10

PRESENCE_ROUTE = ft.lua("""
    local freshet = require "freshet"
    local route = {}
    function route.handle(req)
      local counts = {}
      for name in req.params.topics:gmatch("[^,]+") do
        counts[#counts + 1] = freshet.presence(name).count
      end
      return 200, table.concat(counts, ",")
    end
    return route
""")


def app(cluster):
    return ft.pubsub_app(
        settings=f'broker = "{cluster.url()}", heartbeat = 1, retry = 500, '
                 'replay = { events = 100000 },',
        routes='app:http("GET", "/presence/:topics", "routes/presence.lua")',
        files={"routes/presence.lua": PRESENCE_ROUTE})


def topic_of(data):
    return data.split(":", 1)[0]


def check_streams(readers, expected, what):
    """Each reader got, for each of its topics, exactly the expected data in order."""
    problems = []
    for topics, reader in readers:
        want = sum(len(expected[t]) for t in topics)
        try:
            got = reader.wait_events(want, timeout=30)
        except ft.Failure as exc:
            problems.append(str(exc))
            continue
        time.sleep(0.05)
        got = reader.events()
        per = {t: [] for t in topics}
        for e in got:
            per.setdefault(topic_of(e.data), []).append(e.data)
        for t in topics:
            if per[t] != expected[t]:
                problems.append({"stream": reader.stream.path[:60], "topic": t,
                                 "got": per[t][:10], "expected": expected[t][:10]})
        if len(got) != want:
            problems.append({"stream": reader.stream.path[:60], "events": len(got),
                             "expected": want})
    ft.check(not problems, f"{what}: {len(problems)} problems", problems[:5])


def run():
    cluster = rc.RedisCluster(primaries=3, replicas=1).start()
    primaries = cluster.primaries()
    ft.check_eq(len(primaries), 3, "primaries")
    appdir = app(cluster)
    with ft.Server(appdir.app) as a, ft.Server(appdir.app) as b:
        rc.wait_ready(a)
        h = rc.wait_ready(b)["broker"]
        ft.check_eq(h.get("shards"), 3, "/health broker.shards")

        with ft.subtest("the library is on every primary, announcing with SPUBLISH"):
            for rs in primaries:
                libs = rs.command("FUNCTION", "LIST", "LIBRARYNAME", "freshet", "WITHCODE")
                ft.check(libs, f"no freshet library on the primary on port {rs.port}")
                code = dict(zip(libs[0][::2], libs[0][1::2]))["library_code"]
                ft.check("'SPUBLISH'" in code and "'PUBLISH'" not in code,
                         "the cluster's library announces with SPUBLISH only")

        with ft.subtest(f"{len(TOPICS)} topics on every shard, streams on one node, "
                        "publishers on the other: every event once, in order"):
            owners = {t: cluster.owner_port(rc.topic_slot(t)) for t in TOPICS}
            per_shard = {rs.port: sum(1 for p in owners.values() if p == rs.port)
                         for rs in primaries}
            ft.check(all(n > 0 for n in per_shard.values()), "each primary owns some topics",
                     per_shard)
            readers = []
            for k in range(0, len(TOPICS), PER_STREAM):
                topics = TOPICS[k:k + PER_STREAM]
                readers.append((topics, ft.StreamReader(a.stream("/sub/" + ",".join(topics)))))
            a.wait_streams(len(readers))
            errors = []
            results = {}

            def publisher(part):
                try:
                    items = [(f"/pub/{t}", f"{t}:{i}", {}) for i in range(PER_TOPIC)
                             for t in TOPICS[part::4]]
                    with ft.Publisher(b.port) as pub:
                        results[part] = pub.publish_ids(items, window=16)
                except BaseException as exc:  # reported below
                    errors.append(repr(exc))

            threads = [threading.Thread(target=publisher, args=(p,), daemon=True)
                       for p in range(4)]
            t0 = time.monotonic()
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=60)
            ft.check(not errors, "publishers failed", errors[:3])
            print(f"    {len(TOPICS) * PER_TOPIC} publishes through node b in "
                  f"{time.monotonic() - t0:.2f} s", flush=True)
            expected = {t: [f"{t}:{i}" for i in range(PER_TOPIC)] for t in TOPICS}
            check_streams(readers, expected, "streams on node a")
            for rs in primaries:
                held = [t for t in TOPICS if owners[t] == rs.port]
                ft.check_eq(rs.command("XLEN", f"fr:{{{held[0]}}}:s"), PER_TOPIC,
                            f"events in the Stream of {held[0]} on its primary {rs.port}")
                # Sharded pub/sub: a's subscriber on the owner, nothing on plain channels.
                ch = f"fr:{{{held[0]}}}:c"
                ft.check_eq(rs.command("PUBSUB", "SHARDNUMSUB", ch)[1], 1,
                            f"sharded subscribers of {ch} on its primary")
                ft.check_eq(rs.command("PUBSUB", "NUMSUB", ch)[1], 0,
                            f"plain subscribers of {ch}")
                names = rs.command("CLIENT", "LIST")
                ft.check(names.count("-sub ") >= 2 or names.count("-sub\n") >= 2 or
                         names.count("freshet-") >= 4,
                         f"both nodes connect to the primary on port {rs.port}", names)
            for _, r in readers:
                r.stream.close()

        with ft.subtest("a stream on three shards resumes exactly, on the other node"):
            picked, seen_ports = [], set()
            for t in TOPICS:
                if owners[t] not in seen_ports:
                    seen_ports.add(owners[t])
                    picked.append(t)
            ft.check_eq(len(picked), 3, "topics on three shards")
            path = "/sub/" + ",".join(picked)
            s = a.stream(path)
            r = ft.StreamReader(s)
            a.wait_streams(1)
            with ft.Publisher(b.port) as pub:
                pub.publish_ids([(f"/pub/{t}", f"{t}:r{i}", {}) for i in range(3)
                                 for t in picked], window=4)
            got = r.wait_events(9, timeout=15)
            cut = got[4]  # two events in: the resume point names a position on every shard
            ft.check_eq(len(ft.parse_ids(cut.id)), 3, "the stream's id names three positions")
            s.close()
            with ft.Publisher(b.port) as pub:
                pub.publish_ids([(f"/pub/{t}", f"{t}:r{i}", {}) for i in range(3, 6)
                                 for t in picked], window=4)
            s2 = b.stream(path, last_event_id=cut.id)
            r2 = ft.StreamReader(s2)
            want = [e.data for e in got[5:]] + [f"{t}:r{i}" for i in range(3, 6) for t in picked]
            back = r2.wait_events(len(want), timeout=15)
            time.sleep(0.3)
            back = r2.events()
            ft.check_eq(sorted(e.data for e in back), sorted(want),
                        "events after the resume point: all, none twice")
            for t in picked:
                ft.check_eq([e.data for e in back if topic_of(e.data) == t],
                            [d for d in want if topic_of(d) == t], f"order of {t} after resume")
            s2.close()

        with ft.subtest("presence counts streams of every node, on every shard"):
            streams = [a.stream("/sub/" + ",".join(picked)), b.stream("/sub/" + ",".join(picked)),
                       b.stream(f"/sub/{picked[1]}")]
            readers = [ft.StreamReader(s) for s in streams]
            want = "2,3,2"
            deadline = time.monotonic() + 15
            body = None
            while time.monotonic() < deadline:
                resp = ft.request(a.port, "GET", "/presence/" + ",".join(picked))
                body = resp.text
                if body == want:
                    break
                time.sleep(0.3)
            ft.check_eq(body, want, "presence of the three topics asked on node a")
            for s in streams:
                s.close()


ft.main(run, limit=170)
