"""The memory-broker suites for the SSE wire format (20_sse.py), publishing (21_publish.py) and
replay (22_replay.py), run unchanged against the Redis broker: the same checks must hold, with
the same id shape. Their case functions are imported and run here with every server they start
pointed at a Redis of its own:
- the bench app takes its broker from FRESHET_BROKER (set for this process, so for every
  Server(BENCH_APP) they start);
- ft.pubsub_app gets `broker = "redis://..."` added to its settings, with a fresh redis-server
  per app (so a small replay window of one case cannot trim another's topics);
- a server counts as started only once /health says the broker is ok.
Left out: 22's restart case (an id from before a restart gets 416 on the memory broker, which
forgets; Redis keeps it, which the last case here checks instead)."""

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


def point_at_redis(bench_redis):
    os.environ["FRESHET_BROKER"] = bench_redis.url

    real_pubsub_app = ft.pubsub_app

    def pubsub_app_on_redis(settings="", routes="", files=None):
        redis = ft.RedisServer().start()  # stopped by ft.main's clean-up
        settings = ft.lua(settings) + f'\nbroker = "{redis.url}",\n'
        return real_pubsub_app(settings=settings, routes=routes, files=files)

    ft.pubsub_app = pubsub_app_on_redis

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
    ft.subtest = lambda name: real_subtest(f"[redis] {name}")


def restart_keeps_replay():
    with ft.subtest("an id from a previous node process resumes exactly (Redis keeps "
                    "what the memory broker forgets)"):
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
    bench_redis = ft.RedisServer().start()
    point_at_redis(bench_redis)

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
    bench_redis.stop()


ft.main(run, limit=110)
