"""Losing the Redis primary with broker = "redis-sentinel://…?replicas=1": one primary, one
replica, three Sentinels, two nodes, subscribers on both, 200 publishes/s through both; the
replica is stopped for a second (so the primary's last writes never reach it), then the primary
is killed (SIGKILL). Every event answered 201 must reach every subscriber of its topic, in
order, once: a publish the replica did not confirm answers 503 and says the event may be
stored. After the failover the new primary has no replica, so publishes answer 503 until the
old primary, started again, has been made its replica by the Sentinels; no node ever connects
to the old primary meanwhile. The checks are sentinel_failover.py's."""

import frtest as ft
import sentinel_failover as sf


def run():
    sf.run(replicas=True, stall=True, label="replicas=1, replica stalled")


ft.main(run, limit=110)
