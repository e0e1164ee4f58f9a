"""The ticker starter against the real binary: 100 symbols at 10 Hz on price:<SYMBOL> topics,
a stream per watchlist (24 symbols by default, unknown symbols refused), a reader that stops
reading has its waiting prices conflated (replaced by newer ones) and stays open, an id older
than the short replay window starts with a `reset`, a WebSocket client can add a symbol on the
open connection, and the page is served."""

import json
import os
import time

import frtest as ft

APP = os.path.join(ft.ROOT, "scripts", "examples", "ticker", "app.lua")
# The first 24 symbols of symbols.lua: the default watchlist.
FIRST = ["DORC", "KUB", "BALV", "NOB", "FUB", "BEBI", "LENF", "CUPL", "PAP", "TIMO", "GETK",
         "CUGE", "SOGU", "NOD", "ZOLC", "TUP", "KIPA", "CAGA", "BIR", "GOZS", "KEPF", "TIDM",
         "CEMT", "VOVI"]


def prices(events):
    out = []
    for e in events:
        if e.type == "price":
            out.append(json.loads(e.data))
    return out


def run():
    ft.require_file(APP, "ticker example")
    # Timers slip on a loaded machine (or under the sanitizers): rates are checked loosely.
    slack = 2.0 if ft.SANITIZED else 1.0
    with ft.Server(APP, env=dict(os.environ, FRESHET_BROKER="memory")) as srv:
        first_id = None
        with ft.subtest("a watchlist stream gets each of its symbols about ten times a second"):
            with srv.stream("/prices?symbols=DORC,kub") as s:
                s.drain(3.0)
                got = prices(s.events())
                by = {}
                for q in got:
                    by.setdefault(q["symbol"], []).append(q)
                ft.check_eq(sorted(by), ["DORC", "KUB"], "symbols received")
                for sym, qs in by.items():
                    ft.check(30 / (2 * slack) <= len(qs) <= 40, f"{len(qs)} updates of {sym} in 3 s "
                             "(expected about 30)", [q["at"] for q in qs][:50])
                    ft.check(all(isinstance(q["price"], (int, float)) and q["price"] > 0 and
                                 isinstance(q["change"], (int, float)) for q in qs),
                             f"every {sym} quote has a positive price and a change", qs[:3])
                    ats = [q["at"] for q in qs]
                    ft.check(ats == sorted(ats), f"{sym} quotes arrive in time order", ats)
                ft.check(all(e.id for e in s.events()), "every event has an id", s.raw[:300])
                first_id = s.events()[0].id

        with ft.subtest("an id older than the replay window starts with a reset, then live prices"):
            # replay keeps 20 events (2 s) per symbol; the first id above is 3 s old.
            with srv.stream("/prices?symbols=DORC,KUB", last_event_id=first_id) as s:
                ev = s.next_event()
                ft.check_eq(ev.type, "reset", f"first event after a stale id ({ev.data})")
                ft.check(prices([s.next_event()]), "live prices follow the reset")

        with ft.subtest("without symbols: the first 24; unknown symbols are refused"):
            with srv.stream("/prices") as s:
                s.drain(0.6)
                syms = sorted({q["symbol"] for q in prices(s.events())})
                ft.check_eq(syms, sorted(FIRST), "symbols of the default watchlist")
            resp = srv.get("/prices?symbols=DORC,ACME", headers={"Accept": "text/event-stream"})
            ft.check_eq(resp.check_error(400, "an unknown symbol"), "unknown symbol 'ACME'", "message")

        with ft.subtest("a reader that stops reading has its prices conflated and stays open"):
            # 64 symbols: 640 events a second (about 200 bytes each with its 64-position id),
            # enough to fill the socket's buffers in a few seconds once small segments keep the
            # server's send buffer small (on loopback it otherwise grows to megabytes).
            many = ",".join(FIRST + [
                "FEBA", "GIBG", "PUKG", "MUL", "CORT", "FOD", "CAP", "VEP", "KUKA", "MOMP", "SIS",
                "NAFE", "TUG", "SIN", "KENI", "REPL", "SEFE", "BIM", "MIKD", "MEKL", "MIT", "ZOT",
                "MELR", "MOSD", "DADO", "PUMS", "BATF", "LEVL", "GUFO", "VEBS", "VUDI", "VOT",
                "TED", "NAK", "TAZI", "GATF", "TAM", "SIME", "NESE", "ZUZL"])
            sock = ft.small_rcvbuf_socket(srv.port, rcvbuf=4096, mss=536)
            s = ft.SSEStream(srv.port, f"/prices?symbols={many}", sock=sock, timeout=10)
            try:
                ft.check_eq(s.status, 200, "stream status")
                s.wait_retry()
                # Not reading: wait until the server can hand nothing more to the socket.
                last, same, deadline = None, 0, time.monotonic() + 25
                while same < 3:
                    ft.check(time.monotonic() < deadline, "the socket never filled up")
                    time.sleep(0.25)
                    written = ft.metric(srv.metrics(), "freshet_stream_bytes_written_total")
                    same = same + 1 if written == last else 0
                    last = written
                before = ft.metric(srv.metrics(), "freshet_events_dropped_total",
                                   priority="any", reason="conflated")
                time.sleep(2.0)  # about 1280 prices of these symbols are published meanwhile
                after = ft.metric(srv.metrics(), "freshet_events_dropped_total",
                                  priority="any", reason="conflated")
                ft.check(after - before >= 640 / slack, f"only {after - before} prices were "
                         "conflated while the reader was stalled for 2 s (about 1280 published)")
                # Reading again: the stream is still open and flowing (a `disconnect` policy
                # would have ended it; `drop` would have sent `dropped` notices).
                s.drain(1.0)
                ft.check(not s.ended, "the stream was ended; a conflated stream keeps flowing")
                ft.check(not [e for e in s.events() if e.type == "dropped"],
                         "conflation is not reported as a `dropped` notice")
            finally:
                s.close()

        with ft.subtest("a WebSocket client adds a symbol to its open stream"):
            with ft.ws_connect(srv.port, "/prices?symbols=DORC", protocols="freshet.v1") as ws:
                first = ws.events(1)[0]
                ft.check_eq((first["topic"], first["event"]), ("price:DORC", "price"), "first envelope")
                ws.send_json({"type": "subscribe", "topics": ["price:KUB", "price:ACME"]})
                sub = ws.next_control("subscribed")
                ft.check_eq(sub.get("topics"), ["price:DORC", "price:KUB"],
                            "the new watchlist (unknown symbols left out)")
                topics = {m["topic"] for m in ws.events(10)}
                ft.check_eq(topics, {"price:DORC", "price:KUB"}, "topics of the next events")

        with ft.subtest("the page is served with the browser client"):
            page = srv.get("/")
            ft.check_eq(page.status, 200, "GET /")
            ft.check("/_freshet/freshet.js" in page.text and "ticker.js" in page.text,
                     "the page loads the client and ticker.js", page.text[:400])
            js = srv.get("/ticker.js")
            ft.check_eq(js.status, 200, "GET /ticker.js")
            ft.check("freshet.connect('/prices'" in js.text.replace('"', "'") or "/prices" in js.text,
                     "ticker.js follows /prices")

        with ft.subtest("no Lua errors were logged"):
            ft.check("lua error" not in srv.log(), "the server logged a Lua error", srv.log_tail(30))


ft.main(run, limit=90)
