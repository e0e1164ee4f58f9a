"""Conflate policy: a reader of a price topic that falls behind keeps only the newest price of
the topic in its queue, so once it reads again it ends with the latest value and has received
far fewer events than were published."""

import json
import time

import frtest as ft

TOTAL = 20000
WINDOW = 100
PAD = "." * 160  # ~200-byte events: the client's buffers fill after a few thousand

APP = """
    local freshet = require "freshet"
    local app = freshet.app {
      heartbeat = 60,
      retry = 2000,
      replay = { events = 100, seconds = 60 },
    }
    app:stream("/prices/:symbol", "routes/prices.lua")
    app:stream("/mixed/:symbol", "routes/mixed.lua")
    app:publish("/pub/:topic", "routes/pub.lua")
    return app
"""

PRICES = """
    local route = { on_slow = "conflate" }
    function route.topics(req) return { "price." .. req.params.symbol } end
    return route
"""

# on_slow as a function: prices conflate, the news topic keeps the default (drop).
MIXED = """
    local route = {}
    function route.topics(req) return { "price." .. req.params.symbol, "news" } end
    function route.on_slow(topic, who)
      if topic:sub(1, 6) == "price." then return "conflate" end
      return "drop"
    end
    return route
"""


def price_items(symbol, n, start=0):
    return [(f"/pub/price.{symbol}", json.dumps({"symbol": symbol, "seq": start + i, "pad": PAD}),
             {"X-Priority": "normal"}) for i in range(n)]


def read_until_quiet(s, quiet=2.0, limit=30):
    """Reads until nothing has arrived for `quiet` seconds (or the stream ends)."""
    deadline = time.monotonic() + limit
    quiet_since = time.monotonic()
    while not s.ended and time.monotonic() - quiet_since < quiet and time.monotonic() < deadline:
        if s.pump(0.2):
            quiet_since = time.monotonic()


def run():
    app = ft.AppDir({"app.lua": APP, "routes/prices.lua": PRICES, "routes/mixed.lua": MIXED,
                     "routes/pub.lua": ft.PUB_ROUTE})
    with ft.Server(app) as srv:
        with ft.subtest("a slow reader of a conflated price topic ends with the latest price"):
            sock = ft.small_rcvbuf_socket(srv.port, rcvbuf=4096)
            s = ft.SSEStream(srv.port, "/prices/ACME", sock=sock, timeout=10)
            try:
                ft.check_eq(s.status, 200, "stream status")
                s.wait_retry()
                # Stop reading; fill the client's buffers, then publish every price at full
                # speed.
                ft.fill_until_stalled(srv, "/pub/price.ACME")
                with ft.Publisher(srv.port, timeout=20) as pub:
                    ids = []
                    items = price_items("ACME", TOTAL)
                    for k in range(0, TOTAL, WINDOW):
                        ids += pub.publish_ids(items[k:k + WINDOW], window=WINDOW)
                time.sleep(0.3)
                read_until_quiet(s)
                events = [e for e in s.events() if e.type == "message" and e.data.startswith("{")]
                ft.check(not s.ended, "the conflated stream was ended; it should keep flowing",
                         s.raw[-500:])
                ft.check(events, "the reader got no price at all; nothing more came for 2 s "
                                 "after its last frames", [repr(i)[:100] for i in s.items[-3:]])
                seqs = [json.loads(e.data)["seq"] for e in events]
                print(f"    published {TOTAL} prices; the reader got {len(events)} "
                      f"(last seq {seqs[-1]})", flush=True)
                ft.check_eq(seqs[-1], TOTAL - 1, "the last price the reader holds (seq)")
                ft.check_eq(events[-1].id, ids[-1], "the id of the last price the reader holds")
                ft.check(all(b > a for a, b in zip(seqs, seqs[1:])),
                         "prices arrived out of order or twice", seqs[:50])
                # The client's buffers were full before the first price: every price met a
                # stalled stream, where each replaces the one queued before it.
                ft.check(len(events) <= TOTAL // 100,
                         f"the reader got {len(events)} of {TOTAL} prices: conflation did not "
                         f"replace the queued ones")
                ft.check(not [e for e in s.events() if e.type == "dropped"],
                         "conflation is not a drop: no `event: dropped` report expected",
                         [e.data for e in s.events() if e.type == "dropped"][:3])
                # It is still live: one more price arrives at once.
                s.drain(0.01)
                eid = srv.publish("/pub/price.ACME", json.dumps({"symbol": "ACME", "seq": TOTAL}))
                ev = s.next_event(timeout=5)
                ft.check_eq((ev.id, json.loads(ev.data)["seq"]), (eid, TOTAL),
                            "the next price after catching up")
            finally:
                s.close()

        with ft.subtest("/metrics counts conflated events"):
            m = srv.metrics()
            n = ft.metric(m, "freshet_events_dropped_total", priority="any", reason="conflated")
            ft.check(n > 0, "freshet_events_dropped_total{reason=\"conflated\"} is 0", n)

        with ft.subtest("on_slow as a function: the price topic conflates, news keeps its order"):
            sock = ft.small_rcvbuf_socket(srv.port, rcvbuf=4096)
            s = ft.SSEStream(srv.port, "/mixed/XYZ", sock=sock, timeout=10)
            try:
                ft.check_eq(s.status, 200, "stream status")
                s.wait_retry()
                ft.fill_until_stalled(srv, "/pub/price.XYZ")
                news = []
                with ft.Publisher(srv.port, timeout=20) as pub:
                    items = price_items("XYZ", TOTAL)
                    for k in range(0, TOTAL, WINDOW):
                        pub.publish_ids(items[k:k + WINDOW], window=WINDOW)
                        if k % 2000 == 0:
                            # A few news items, far fewer than the queue's 256.
                            news += pub.publish_ids([("/pub/news", f"headline {k}",
                                                      {"X-Priority": "normal"})])
                time.sleep(0.3)
                read_until_quiet(s)
                events = [e for e in s.events() if e.type == "message"]
                prices = [json.loads(e.data)["seq"] for e in events if e.data.startswith("{")]
                got_news = [e.data for e in events if e.data.startswith("headline")]
                print(f"    the reader got {len(prices)} of {TOTAL} prices and {len(got_news)} "
                      f"of {len(news)} headlines", flush=True)
                ft.check(prices and prices[-1] == TOTAL - 1,
                         f"the last price is not the latest ({len(prices)} prices, "
                         f"{len(got_news)} of {len(news)} headlines arrived)", prices[-5:])
                ft.check(len(prices) <= TOTAL // 100, "prices were not conflated", len(prices))
                ft.check_eq(got_news, [f"headline {k}" for k in range(0, TOTAL, 2000)],
                            "headlines (never conflated, in order)")
            finally:
                s.close()


ft.main(run, limit=100)
