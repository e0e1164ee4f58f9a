"""Hostile app files: whatever an app file holds, `freshet --check` answers with an exit code and
an error naming the file (never a crash, a Lua PANIC or a sanitizer report), and a SIGHUP with
such a file leaves the running server serving with its old scripts.

The shapes come from the app-loader fuzz target (tests/fuzz/fuzz_app.c): an app file is Lua,
so it can rewrite app.config and app.routes after freshet.app{} has checked them, and some
values pass the checks yet cannot be read back. docs/RELIABILITY.md lists them as findings
F1-F4; these tests fail until the loader refuses them cleanly."""

import signal
import time

import frtest as ft

ROUTE = """
    local route = {}
    function route.topics(req) return { req.params.topic } end
    return route
"""

GOOD = """
    local freshet = require "freshet"
    local app = freshet.app { heartbeat = 30 }
    app:stream("/sub/:topic", "routes/sub.lua")
    return app
"""

# name -> (finding, app file body after `local app = ...`)
BAD = {
    "app.config replaced by a boolean": ("F2", "app.config = true"),
    "a route record that is not a table": ("F2", "table.insert(app.routes, false)"),
    "a tier that is not a table": ("F2", "app.config.tiers = { free = 5 }"),
    "app.routes replaced by a number": ("F4", "app.routes = 5"),
    "app.routes replaced by a string": ("F4", 'app.routes = "/sub"'),
    "a route record without a pattern": ("F4", 'table.insert(app.routes, { kind = "stream", '
                                               'target = "routes/sub.lua" })'),
    "a static route record without a directory": ("F4", 'table.insert(app.routes, { kind = '
                                                        '"static", pattern = "/f" })'),
    "a route record without a kind": ("F4", 'table.insert(app.routes, { pattern = "/x", '
                                            'target = "routes/sub.lua" })'),
}

# Settings that freshet.app{} accepts but the C side cannot hold.
CHECKED_BUT_BROKEN = {
    "cors list with a hole and a table after it": ("F3", '{ cors = { "http://a", nil, {} } }'),
}


def app_text(settings="{ heartbeat = 30 }", extra=""):
    return ft.lua(f"""
        local freshet = require "freshet"
        local app = freshet.app {settings}
        app:stream("/sub/:topic", "routes/sub.lua")
        {extra}
        return app
    """)


def check_refused(app, what):
    r = ft.run_cli([app.app, "--check"])
    err = (r.stderr + r.stdout).decode("utf-8", "replace")
    ft.check(r.returncode >= 0, f"{what}: freshet --check was killed by signal "
                                f"{-r.returncode}", err[-1500:])
    ft.check("PANIC" not in err, f"{what}: a Lua PANIC (an error outside a protected call)",
             err[-1500:])
    ft.check("runtime error" not in err and "Sanitizer" not in err,
             f"{what}: a sanitizer report", err[-1500:])
    ft.check_eq(r.returncode, 1, f"{what}: exit code of --check ({err[-300:]!r})")
    ft.check("app.lua" in err, f"{what}: the error does not name the app file", err[-600:])


def run():
    with ft.subtest("--check refuses app files whose app object was rewritten"):
        failed = {}
        for what, (finding, extra) in BAD.items():
            app = ft.AppDir({"app.lua": app_text(extra=extra), "routes/sub.lua": ROUTE})
            try:
                check_refused(app, f"{finding}: {what}")
            except ft.Failure as exc:
                failed[f"{finding}: {what}"] = str(exc).splitlines()[0]
        ft.check(not failed, f"{len(failed)} of {len(BAD)} rewritten app files not refused "
                             "cleanly", failed)

    with ft.subtest("--check refuses settings that pass freshet.app{} but cannot be read"):
        for what, (finding, settings) in CHECKED_BUT_BROKEN.items():
            app = ft.AppDir({"app.lua": app_text(settings), "routes/sub.lua": ROUTE})
            check_refused(app, f"{finding}: {what}")

    with ft.subtest("F1: heartbeat = 1e300 is refused or means 'rarely', never a flood"):
        app = ft.AppDir({"app.lua": app_text("{ heartbeat = 1e300 }"), "routes/sub.lua": ROUTE})
        r = ft.run_cli([app.app, "--check"])
        if r.returncode == 0:
            with ft.Server(app) as srv:
                s = srv.stream("/sub/t")
                s.drain(1.5)
                beats = len(s.comments())
                got = len(s.raw)
                s.close()
                ft.check(beats <= 1, f"{beats} heartbeats ({got} bytes) in 1.5 s with "
                                     "heartbeat = 1e300 (the number became 0 ms)")
        else:
            err = r.stderr.decode("utf-8", "replace")
            ft.check_eq(r.returncode, 1, "exit code of --check")
            ft.check("heartbeat" in err, "the error does not name the setting", err)

    with ft.subtest("SIGHUP with each broken app file: the server keeps serving the old one"):
        app = ft.AppDir({"app.lua": ft.lua(GOOD), "routes/sub.lua": ROUTE})
        with ft.Server(app) as srv:
            s = ft.StreamReader(srv.stream("/sub/keep"))
            cases = {w: app_text(extra=e) for w, (_, e) in BAD.items()}
            cases.update({w: app_text(st) for w, (_, st) in CHECKED_BUT_BROKEN.items()})
            died = []
            for n, (what, text) in enumerate(cases.items()):
                app.write({"app.lua": text.encode()})
                start = srv.log_size()
                srv.send_signal(signal.SIGHUP)
                deadline = time.monotonic() + 3
                while "reload failed" not in srv.log()[start:] and srv.alive():
                    if time.monotonic() > deadline:
                        break
                    time.sleep(0.02)
                if not srv.alive():
                    died.append((what, srv.log_tail(5)))
                    break
                ft.check("reload failed" in srv.log()[start:], f"{what}: no 'reload failed' line",
                         srv.log()[start:][-800:])
                ft.check_eq(srv.get("/health").status, 200, f"after reloading {what}: /health")
                ft.check(not s.stream.ended, f"after reloading {what}: the open stream ended")
            ft.check(not died, "a SIGHUP with a broken app file killed the server", died)
            s.stop()


ft.main(run, limit=90)
