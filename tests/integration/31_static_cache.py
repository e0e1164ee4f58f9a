"""Static files and caches: a strong ETag and Last-Modified on every file, 304 for
If-None-Match and If-Modified-Since, Cache-Control from app:static's max_age and immutable
(no-cache by default), options checked; and a 50 MB file read off the loop in chunks while
streams on the same worker keep their heartbeats on time and the server's memory stays flat."""

import email.utils
import os
import threading
import time

import frtest as ft

HEARTBEAT = 0.4
BIG = 50 << 20


def peak_rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    ft.fail("no VmHWM in /proc/PID/status")


def run():
    app = ft.pubsub_app(settings=f"heartbeat = {HEARTBEAT},", routes="""
        app:static("/files", "public")
        app:static("/assets", "hashed", { max_age = 31536000, immutable = true })
        app:static("/cached", "public", { max_age = 60 })
    """, files={
        "public/page.html": b"<!doctype html><p>cached</p>\n",
        "hashed/app.3f2a.js": b"console.log('v1');\n",
    })
    big = app.file("public/big.bin")
    with open(big, "wb") as f:
        block = os.urandom(1 << 20)
        for i in range(BIG >> 20):
            f.write(bytes([i & 0xff]) + block[1:])

    with ft.Server(app) as srv:
        with ft.subtest("a file carries a strong ETag, Last-Modified and Cache-Control: no-cache"):
            r = srv.get("/files/page.html")
            ft.check_eq(r.status, 200, "status")
            etag = r.header("etag") or ""
            ft.check(etag.startswith('"') and etag.endswith('"') and len(etag) > 2,
                     "a strong (quoted, no W/) ETag", r.summary())
            lm = r.header("last-modified") or ""
            mtime = int(os.stat(app.file("public/page.html")).st_mtime)
            ft.check_eq(email.utils.parsedate_to_datetime(lm).timestamp(), float(mtime),
                        "Last-Modified is the file's modification time")
            ft.check(lm.endswith(" GMT") and len(lm) == 29, "an IMF-fixdate", lm)
            ft.check_eq(r.header("cache-control"), "no-cache", "Cache-Control by default")
            ft.check_eq(srv.get("/files/page.html").header("etag"), etag,
                        "the same file gives the same ETag")

        with ft.subtest("If-None-Match with the ETag -> 304 without a body"):
            for inm in (etag, f'"nope", {etag}', "W/" + etag, "*"):
                r = srv.get("/files/page.html", headers={"If-None-Match": inm})
                ft.check_eq(r.status, 304, f"If-None-Match: {inm}")
                ft.check_eq(r.body, b"", "no body")
                ft.check_eq(r.header("etag"), etag, "the 304 carries the ETag")
                ft.check_eq(r.header("cache-control"), "no-cache", "and Cache-Control")
                ft.check(r.header("content-length") is None,
                         "a 304 says no Content-Length it would have to lie about", r.summary())
            r = srv.get("/files/page.html", headers={"If-None-Match": '"other"'})
            ft.check_eq(r.status, 200, "another tag -> the file")

        with ft.subtest("If-Modified-Since -> 304 unless the file is newer"):
            r = srv.get("/files/page.html", headers={"If-Modified-Since": lm})
            ft.check_eq(r.status, 304, "If-Modified-Since: Last-Modified")
            later = email.utils.formatdate(mtime + 3600, usegmt=True)
            ft.check_eq(srv.get("/files/page.html", headers={"If-Modified-Since": later}).status,
                        304, "a later date")
            earlier = email.utils.formatdate(mtime - 3600, usegmt=True)
            r = srv.get("/files/page.html", headers={"If-Modified-Since": earlier})
            ft.check_eq(r.status, 200, "an earlier date -> the file")
            ft.check_eq(r.body, b"<!doctype html><p>cached</p>\n", "body")
            ft.check_eq(srv.get("/files/page.html",
                                headers={"If-Modified-Since": "yesterday"}).status, 200,
                        "an unreadable date is ignored")
            r = srv.get("/files/page.html", headers={"If-Modified-Since": lm,
                                                     "If-None-Match": '"other"'})
            ft.check_eq(r.status, 200, "If-None-Match decides when both are sent")

        with ft.subtest("a changed file gets a new ETag"):
            time.sleep(0.01)
            with open(app.file("public/page.html"), "wb") as f:
                f.write(b"<!doctype html><p>changed</p>\n")
            r = srv.get("/files/page.html", headers={"If-None-Match": etag})
            ft.check_eq(r.status, 200, "the old tag no longer matches")
            ft.check(r.header("etag") != etag, "a new ETag", r.summary())
            ft.check_eq(r.body, b"<!doctype html><p>changed</p>\n", "the new bytes")

        with ft.subtest("max_age and immutable set Cache-Control"):
            r = srv.get("/assets/app.3f2a.js")
            ft.check_eq(r.status, 200, "status")
            ft.check_eq(r.header("cache-control"), "public, max-age=31536000, immutable",
                        "immutable route")
            r = srv.get("/cached/page.html")
            ft.check_eq(r.header("cache-control"), "public, max-age=60", "max_age route")
            r = srv.get("/cached/page.html", headers={"If-None-Match": r.header("etag")})
            ft.check_eq((r.status, r.header("cache-control")), (304, "public, max-age=60"),
                        "a 304 repeats Cache-Control")

        with ft.subtest("HEAD says the length and sends no body; keep-alive goes on"):
            with ft.Conn(srv.port) as c:
                r = c.request("HEAD", "/files/big.bin")
                ft.check_eq(r.status, 200, "HEAD status")
                ft.check_eq(r.header("content-length"), str(BIG), "Content-Length")
                r = c.request("GET", "/files/page.html")
                ft.check_eq(r.status, 200, "the next request on the same connection")

        with ft.subtest("a 50 MB file is served whole while heartbeats stay on time"):
            streams = [ft.StreamReader(srv.stream(f"/sub/hb{i}")) for i in range(8)]
            time.sleep(HEARTBEAT * 2)
            hwm_before = peak_rss_kb(srv.proc.pid)
            got = bytearray()
            started = time.monotonic()
            done = threading.Event()

            def download():
                with ft.Conn(srv.port, timeout=30) as c:
                    c.send(ft.build_request("GET", "/files/big.bin", None, None, srv.port))
                    resp = c.read_head()
                    ft.check_eq(resp.status, 200, "status")
                    ft.check_eq(resp.header("content-length"), str(BIG), "Content-Length")
                    while len(got) < BIG:
                        # A client that reads at about 50 MB/s: the answer takes about a second
                        # and the server keeps serving the streams meanwhile.
                        got.extend(c.read_exact(min(256 << 10, BIG - len(got))))
                        time.sleep(0.004)
                done.set()

            t = threading.Thread(target=download, daemon=True)
            t.start()
            t.join(60)
            took = time.monotonic() - started
            ended = time.monotonic()
            ft.check(done.is_set(), f"the download did not finish ({len(got)} of {BIG} bytes)")
            with open(big, "rb") as f:
                ft.check(bytes(got) == f.read(), "the bytes are the file's")
            gaps = []
            for rd in streams:
                ts = [c.t for c in rd.comments() if started - HEARTBEAT <= c.t <= ended]
                ft.check(len(ts) >= 2, "heartbeats arrived during the download", len(ts))
                gaps += [b - a for a, b in zip(ts, ts[1:])]
                ft.check(not rd.stream.ended, "the stream is still open")
            worst = max(gaps)
            print(f"    50 MB in {took:.2f}s; heartbeat gaps on 8 streams meanwhile: "
                  f"worst {worst * 1000:.0f} ms (interval {HEARTBEAT * 1000:.0f} ms)")
            ft.check(worst <= HEARTBEAT * 1.6,
                     f"a heartbeat came {worst * 1000:.0f} ms after the one before "
                     f"(interval {HEARTBEAT * 1000:.0f} ms)")
            grew = peak_rss_kb(srv.proc.pid) - hwm_before
            print(f"    peak resident memory grew by {grew} KB while sending it")
            ft.check(grew < 16 * 1024, f"peak memory grew by {grew} KB: the file is read in "
                     "chunks, not whole")
            for rd in streams:
                rd.stop()

    with ft.subtest("bad app:static options name the app file line"):
        bad = ft.AppDir({"app.lua": """
            local freshet = require "freshet"
            local app = freshet.app { }
            app:static("/", "public", { max_age = -1 })
            return app
        """, "public/x.txt": b"x"})
        r = ft.run_cli([bad.app, "--check"])
        err = r.stderr.decode(errors="replace")
        ft.check(r.returncode != 0, "--check refuses it", err)
        ft.check("app.lua:3" in err and "max_age" in err,
                 "the error names the line and the option", err)
        bad.write({"app.lua": """
            local freshet = require "freshet"
            local app = freshet.app { }
            app:static("/", "public", { immutable = true, maxage = 3 })
            return app
        """})
        r = ft.run_cli([bad.app, "--check"])
        err = r.stderr.decode(errors="replace")
        ft.check(r.returncode != 0 and "unknown option 'maxage'" in err,
                 "an unknown option is refused", err)


ft.main(run, limit=110)
