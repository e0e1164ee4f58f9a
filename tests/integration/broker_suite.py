"""The memory-broker suites for the SSE wire format (20_sse.py), publishing (21_publish.py) and
replay (22_replay.py), run unchanged against another broker (84_redis_suite.py: Redis,
98_nats_suite.py: NATS JetStream): the same checks must hold, with the same id shape. Their
case functions are imported and run with every server they start pointed at the broker:
- the bench app takes its broker from FRESHET_BROKER (set for this process, so for every
  Server(BENCH_APP) they start);
- ft.pubsub_app gets `broker = "..."` added to its settings, from app_broker(), called once
  per app (so a small replay window of one case cannot trim another's topics);
- a server counts as started only once /health says the broker is ok.
Left out: 22's restart case (an id from before a restart gets 416 on the memory broker, which
forgets; the broker keeps it, which restart_keeps_replay checks instead)."""

import os

import frtest as ft


def point_at(label, bench_url, app_broker):
    os.environ["FRESHET_BROKER"] = bench_url

    real_pubsub_app = ft.pubsub_app

    def pubsub_app_on_broker(settings="", routes="", files=None):
        settings = ft.lua(settings) + f'\nbroker = "{app_broker()}",\n'
        return real_pubsub_app(settings=settings, routes=routes, files=files)

    ft.pubsub_app = pubsub_app_on_broker

    real_wait_ready = ft.Server._wait_ready

    def wait_ready_and_broker(self):
        if not real_wait_ready(self):
            return False
        try:
            ft.wait_health(self, "ok", timeout=self.ready_timeout)
        except ft.Failure:
            return False
        return True

    ft.Server._wait_ready = wait_ready_and_broker

    real_subtest = ft.subtest
    ft.subtest = lambda name: real_subtest(f"[{label}] {name}")


def restart_keeps_replay(what):
    with ft.subtest(f"an id from a previous node process resumes exactly ({what} keeps what "
                    "the memory broker forgets)"):
        with ft.Server(ft.BENCH_APP) as first:
            ids = [first.publish("/pub/rs", f"before {i}") for i in range(3)]
        with ft.Server(ft.BENCH_APP) as second:
            with ft.SSEStream(second.port, "/sub/rs", last_event_id=ids[0]) as s:
                ft.check_eq(s.status, 200, f"resume after a node restart ({s.response.summary()})")
                got = s.take(2)
                ft.check_eq([(e.id, e.data) for e in got],
                            [(ids[1], "before 1"), (ids[2], "before 2")], "replay after the restart")
                live = second.publish("/pub/rs", "after")
                e = s.next_event()
                ft.check_eq((e.id, e.data), (live, "after"), "live event on the new process")


def run(label, what, bench_url, app_broker):
    """Runs the suites with the bench app on bench_url and each pubsub app on app_broker()."""
    ft.require_file(ft.BENCH_APP, "bench app")
    sse, pub, replay = (ft.load_script(f) for f in ("20_sse.py", "21_publish.py",
                                                      "22_replay.py"))
    point_at(label, bench_url, app_broker)

    sse.run()        # heartbeats, SIGTERM; headers, retry first, order, multi-line, big, Accept
    pub.run()        # 201 ids, bad UTF-8, priorities, event names, JSON bodies, id lists
    replay.ring_cases()    # replay.events = 3: 416, the last 3, on_gap = "reset"
    replay.window_cases()  # replay.seconds = 1: 416; a quiet topic's last id: 200
    with ft.Server(ft.BENCH_APP) as srv:
        replay.basic_resume(srv)
        replay.resume_under_publishing(srv)
        replay.multi_topic(srv)
        replay.bad_ids(srv)
    restart_keeps_replay(what)
