"""The memory-broker suites (20_sse, 21_publish, 22_replay) run unchanged against the NATS
JetStream broker (broker_suite.py says how), on one nats-server with JetStream: the bench app
on the default stream, each pubsub app on a stream of its own (?stream=appN)."""

import itertools

import broker_suite
import frtest as ft


def run():
    nats = ft.NatsServer().start()
    apps = itertools.count(1)
    broker_suite.run("nats", "JetStream", nats.url,
                     lambda: f"{nats.url}?stream=app{next(apps)}")
    nats.stop()


ft.main(run, limit=110)
