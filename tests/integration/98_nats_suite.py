"""The memory-broker suites for the SSE wire format (20_sse.py), publishing (21_publish.py) and
replay (22_replay.py), run unchanged against the NATS JetStream broker (one nats-server with
JetStream), as 84_redis_suite.py runs them against Redis: the same checks must hold, with the
same id shape. Every server they start is pointed at NATS:
- the bench app takes its broker from FRESHET_BROKER (set for this process);
- ft.pubsub_app gets `broker = "nats://..."` with a stream of its own per app (?stream=…), so a
  small replay window of one case cannot trim another's topics;
- a server counts as started only once /health says the broker is ok.
Left out: 22's restart case (an id from before a restart gets 416 on the memory broker, which
forgets; JetStream keeps it, which the last case here checks instead)."""

import importlib.util
import os

import frtest as ft

HERE = os.path.dirname(os.path.abspath(__file__))


def load_suite(filename):
    """Imports a test script without running it: its module-level ft.main() is a no-op while
    it loads."""
    spec = importlib.util.spec_from_file_location(
        "suite_" + filename.split(".")[0], os.path.join(HERE, filename))
    module = importlib.util.module_from_spec(spec)
    real_main = ft.main
    ft.main = lambda *a, **k: None
    try:
        spec.loader.exec_module(module)
    finally:
        ft.main = real_main
    return module


def point_at_nats(nats):
    os.environ["FRESHET_BROKER"] = nats.url
    apps = [0]

    real_pubsub_app = ft.pubsub_app

    def pubsub_app_on_nats(settings="", routes="", files=None):
        apps[0] += 1
        settings = ft.lua(settings) + f'\nbroker = "{nats.url}?stream=app{apps[0]}",\n'
        return real_pubsub_app(settings=settings, routes=routes, files=files)

    ft.pubsub_app = pubsub_app_on_nats

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
    ft.subtest = lambda name: real_subtest(f"[nats] {name}")


def restart_keeps_replay():
    with ft.subtest("an id from a previous node process resumes exactly (JetStream "
                    "keeps what the memory broker forgets)"):
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


def run():
    ft.require_file(ft.BENCH_APP, "bench app")
    sse, pub, replay = (load_suite(f) for f in ("20_sse.py", "21_publish.py", "22_replay.py"))
    nats = ft.NatsServer().start()
    point_at_nats(nats)

    sse.run()        # heartbeats, SIGTERM; headers, retry first, order, multi-line, big, Accept
    pub.run()        # 201 ids, bad UTF-8, priorities, event names, JSON bodies, id lists
    replay.ring_cases()    # replay.events = 3: 416, the last 3, on_gap = "reset"
    replay.window_cases()  # replay.seconds = 1: 416
    with ft.Server(ft.BENCH_APP) as srv:
        replay.basic_resume(srv)
        replay.resume_under_publishing(srv)
        replay.multi_topic(srv)
        replay.bad_ids(srv)
    restart_keeps_replay()
    nats.stop()


ft.main(run, limit=110)
