"""Slow consumer: a client with a small receive buffer stops reading while 20,000 events are
published at full speed. Server memory stays bounded; the client is told in-band what was
dropped, gets `retry: 5000` and the end of the body; coming back with its last id it gets every
critical and normal event from replay, in order, none twice."""

import json
import os
import time

import frtest as ft

TOTAL = 20000
PAYLOAD = 200
WINDOW = 100          # pipelined publishes in flight at once
# The stream's budget is 256 events / 1 MiB (no tier); the replay ring holds every event of
# this run (30,000 > 20,000) as about 20,000 x ~300 B = ~6 MB. 64 MB over the baseline is
# room for that and the allocator, while an out-queue that grew without bound (20,000 queued
# frames plus a socket backlog) would show. ASan's redzones and quarantine need more.
RSS_SLACK_KB = (256 if ft.SANITIZED else 64) * 1024
RECONNECT_LIMIT = 200

APP_SETTINGS = """
    heartbeat = 60,
    retry = 3000,
    replay = { events = 30000, seconds = 600 },
"""


def priority_of(i):
    # Mostly telemetry; 2% critical and 5% normal, spread through the run.
    # The last one is critical too, so a client that has it has caught up.
    if i % 50 == 0 or i == TOTAL - 1:
        return "critical"
    if i % 20 == 7:
        return "normal"
    return "telemetry"


def payload(i, prio):
    head = f"n={i} p={prio} "
    return head + "." * (PAYLOAD - len(head))


def id_key(text):
    return ft.parse_id(text)


def messages(items):
    return [i for i in items if isinstance(i, ft.Event) and i.type == "message"]


def run():
    ft.require_file(ft.BIN, "freshet binary")
    appdir = ft.pubsub_app(APP_SETTINGS)
    env = dict(os.environ)
    if ft.SANITIZED:
        env["ASAN_OPTIONS"] = ":".join(filter(None, [env.get("ASAN_OPTIONS"), "quarantine_size_mb=8"]))
    with ft.Server(appdir, env=env) as srv:
        published = []  # (id, index, priority)
        fill = []
        slow = None
        with ft.subtest("RSS stays bounded while a client that stopped reading is flooded"):
            sock = ft.small_rcvbuf_socket(srv.port, rcvbuf=4096)
            slow = ft.SSEStream(srv.port, "/sub/flood", sock=sock, timeout=10)
            ft.check_eq(slow.status, 200, "the slow client's stream status")
            slow.wait_retry()
            # From here the client reads nothing until the flood is over. Big telemetry events
            # first fill its TCP buffers, so that the whole flood meets a stalled client
            # whatever the host's buffer sizes.
            fill = ft.fill_until_stalled(srv, "/pub/flood", headers={"X-Priority": "telemetry"})
            print(f"    the client's buffers were full after {len(fill)} big events", flush=True)
            time.sleep(0.2)
            base = srv.rss_kb()
            peak = base
            items = []
            for i in range(TOTAL):
                prio = priority_of(i)
                items.append(("/pub/flood", payload(i, prio), {"X-Priority": prio}))
            started = time.monotonic()
            with ft.Publisher(srv.port, timeout=20) as pub:
                for k in range(0, TOTAL, WINDOW):
                    ids = pub.publish_ids(items[k:k + WINDOW], window=WINDOW)
                    for j, eid in enumerate(ids):
                        published.append((eid, k + j, items[k + j][2]["X-Priority"]))
                    if (k // WINDOW) % 10 == 0:
                        peak = max(peak, srv.rss_kb())
            took = time.monotonic() - started
            peak = max(peak, srv.rss_kb())
            print(f"    published {TOTAL} events in {took:.1f}s; VmRSS baseline {base} kB, "
                  f"peak {peak} kB (+{peak - base} kB, allowed +{RSS_SLACK_KB} kB)", flush=True)
            ft.check(peak <= base + RSS_SLACK_KB,
                     f"server RSS grew by {peak - base} kB while a client was not reading "
                     f"(allowed {RSS_SLACK_KB} kB)")

        with ft.subtest("/metrics counts the dropped telemetry and the lag eviction"):
            m = srv.metrics()
            dropped_t = ft.metric(m, "freshet_events_dropped_total", priority="telemetry", reason="queue")
            ft.check(dropped_t > 0, "no telemetry drops counted in /metrics", dropped_t)
            ft.check_eq(ft.metric(m, "freshet_events_published_total", priority="telemetry"),
                        float(len(fill) + sum(1 for p in published if p[2] == "telemetry")),
                        "telemetry events published (the flood's and the big ones first)")
            for prio in ("critical", "normal"):
                ft.check_eq(ft.metric(m, "freshet_events_published_total", priority=prio),
                            float(sum(1 for p in published if p[2] == prio)),
                            f"{prio} events published")
            evicted = ft.metric(m, "freshet_streams_evicted_total", reason="lag")
            ft.check(evicted >= 1, "no stream counted as evicted for lag", evicted)

        # The client starts reading again: everything the server still sends, until the body
        # ends or nothing has come for 5 s (heartbeats are 60 s apart, so silence means the
        # server stopped writing).
        first = []
        if slow is not None:
            quiet_since = time.monotonic()
            while not slow.ended and time.monotonic() - quiet_since < 5:
                if slow.pump(0.25):
                    quiet_since = time.monotonic()
            first = messages(slow.items)
        with ft.subtest("the slow client reads: a dropped report, then retry: 5000, then the end"):
            ft.check(slow is not None, "the slow stream was not opened")
            items = slow.items
            ft.check(slow._decoder is not None and slow._decoder.done,
                     f"the body did not end with the chunked terminator (0 CRLF CRLF): the "
                     f"server sent nothing for 5 s after {len(first)} events and "
                     f"{len(slow.raw)} body bytes; connection "
                     f"{'closed' if slow.ended else 'still open'}; the last frames were",
                     [repr(i)[:160] for i in items[-3:]])
            first = messages(items)
            reports = [(n, i) for n, i in enumerate(items) if isinstance(i, ft.Event) and i.type == "dropped"]
            ft.check(reports, "no `event: dropped` report in the stream", slow.raw[-1500:])
            for _, ev in reports:
                ft.check(ev.id is None, "the dropped report carries an id line", ev)
                body = json.loads(ev.data)
                ft.check(isinstance(body.get("dropped"), int) and body["dropped"] > 0,
                         "the dropped report does not name how many were dropped", ev.data)
                ft.check(isinstance(body.get("total"), dict)
                         and body["total"].get("telemetry", 0) > 0,
                         "the dropped report's totals have no telemetry drops", ev.data)
            retries = [i.ms for i in items if isinstance(i, ft.Retry)]
            ft.check_eq(retries[0], 3000, "the first frame's retry")
            ft.check(isinstance(items[-1], ft.Retry) and items[-1].ms == 5000,
                     "the stream's last frame is not `retry: 5000`",
                     [repr(i)[:120] for i in items[-4:]])
            ft.check(reports[-1][0] < len(items) - 1,
                     "the dropped report does not come before the final retry")
            ft.check(first, "the slow client got no event at all before it stalled")
            print(f"    the slow client got {len(first)} events before the end; "
                  f"{len(reports)} dropped report(s): {reports[-1][1].data}", flush=True)

        if slow is not None:
            slow.close()

        with ft.subtest("the slow stream's CLOSED log line says lag and counts drops"):
            srv.wait_log(r'"event":"CLOSED"[^\n]*"reason":"lag"', timeout=5)
            closed = [e for e in ft.state_log_entries(srv.log())
                      if e["event"] == "CLOSED" and e.get("reason") == "lag"]
            ft.check_eq(len(closed), 1, "CLOSED lines with reason lag")
            ft.check(closed[0].get("dropped", 0) > 0, "CLOSED (lag) reports no drops", closed[0])

        with ft.subtest("reconnecting with Last-Event-ID replays every critical and normal event, "
                        "in order, none twice"):
            ft.check(first, "nothing to resume from (the first connection got no events)")
            got = list(first)
            last = first[-1].id
            final = published[-1][0]
            attempts = 0
            stalled = 0
            trace = []
            deadline = time.monotonic() + 60
            caught_up = False
            while not caught_up:
                attempts += 1
                ft.check(attempts <= RECONNECT_LIMIT,
                         f"still not caught up after {RECONNECT_LIMIT} reconnects", trace[-5:])
                ft.check(time.monotonic() < deadline, "still not caught up after 60 s", trace[-5:])
                s = ft.SSEStream(srv.port, "/sub/flood", last_event_id=last, timeout=10)
                try:
                    ft.check_eq(s.status, 200, f"resume with Last-Event-ID {last}: status "
                                               f"({s.response.body[:200]!r})")
                    # Read until the stream ends (evicted again: resume from the new last id),
                    # has the last published event (caught up), or goes quiet for 3 s.
                    quiet_since = time.monotonic()
                    while True:
                        new = messages(s.items)
                        if new and new[-1].id == final:
                            caught_up = True
                            break
                        if s.ended or time.monotonic() - quiet_since >= 3:
                            break
                        if s.pump(0.25):
                            quiet_since = time.monotonic()
                    other = [repr(i)[:100] for i in s.items if not (isinstance(i, ft.Event)
                                                                    and i.type == "message")]
                    trace.append({"attempt": attempts, "from": last, "events": len(new),
                                  "got up to": new[-1].id if new else None, "final": final,
                                  "ended": s.ended, "other frames": other[:6]})
                finally:
                    s.close()
                got += new
                if caught_up:
                    break
                ft.check(s.ended, f"resumed stream {attempts} (Last-Event-ID {last}) stalled: "
                                  f"{len(new)} events, then nothing for 3 s, the body not ended "
                                  f"and the last published event not reached", trace[-1])
                if new:
                    last = new[-1].id
                    stalled = 0
                else:
                    stalled += 1
                    ft.check(stalled < 3, f"resuming from {last} makes no progress: {stalled} "
                                          f"reconnects in a row ended without a single event",
                             trace[-3:])
            print(f"    caught up after {attempts} reconnect(s); {len(got)} events in all",
                  flush=True)
            keys = [id_key(e.id) for e in got]
            dup = [got[k].id for k in range(1, len(got)) if keys[k] <= keys[k - 1]]
            ft.check(not dup, "events received twice or out of order (ids not increasing)", dup[:10])
            by_id = {e.id: e for e in got}
            want = [(eid, i, p) for eid, i, p in published if p != "telemetry"]
            missing = [(eid, i, p) for eid, i, p in want if eid not in by_id]
            ft.check(not missing, f"{len(missing)} of {len(want)} critical/normal events never "
                                  f"arrived", missing[:10])
            for eid, i, p in want:
                ft.check_eq(by_id[eid].data, payload(i, p), f"data of event {eid}")


ft.main(run, limit=110)
