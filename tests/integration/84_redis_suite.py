"""The memory-broker suites (20_sse, 21_publish, 22_replay) run unchanged against the Redis
broker (broker_suite.py says how): the bench app on one redis-server, each pubsub app on a
fresh redis-server of its own."""

import broker_suite
import frtest as ft


def run():
    bench_redis = ft.RedisServer().start()
    # Each app's redis-server is stopped by ft.main's clean-up.
    broker_suite.run("redis", "Redis", bench_redis.url, lambda: ft.RedisServer().start().url)
    bench_redis.stop()


ft.main(run, limit=110)
