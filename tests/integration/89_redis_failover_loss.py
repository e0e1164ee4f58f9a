"""Losing the Redis primary with broker = "redis-sentinel://…" (no ?replicas): one primary,
one replica, three Sentinels, two nodes, subscribers on both, 200 publishes/s through both,
then SIGKILL on the primary. Run twice:
- with a healthy replica: publishing answers 201 again within 15 s; the loss window (events
  answered 201 that the new primary does not hold) is measured and printed;
- with the replica stopped for a second before the kill, so that the last events accepted
  (and delivered) never reach it: those are lost, and nothing hides it: no subscriber misses a
  surviving event without being told, and a resume across the lost stretch gets 416 or reset.
Both times the old primary is started again and never gets a node's connection. The checks are
sentinel_failover.py's."""

import frtest as ft
import sentinel_failover as sf


def run():
    sf.run(replicas=False, stall=False, label="no replicas=, healthy replica")
    sf.run(replicas=False, stall=True, label="no replicas=, replica stalled")


ft.main(run, limit=110)
