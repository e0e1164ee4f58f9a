"""Lua limits: a hook that allocates without bound is stopped by the VM's memory limit (500, a log
line with file:line, counted in /metrics) and the worker keeps serving; the instruction budget
is counted there too."""

import frtest as ft

APP = """
    local freshet = require "freshet"
    local app = freshet.app { memory = 32, budget = 200000 }
    app:stream("/hog", "routes/hog.lua")
    app:stream("/spin", "routes/spin.lua")
    app:stream("/ok/:t", "routes/ok.lua")
    return app
"""

# Module-level: what it keeps stays in the VM, as a leaking script's would.
HOG = """
    local keep = {}
    return { topics = function()
      while true do keep[#keep + 1] = string.rep("x", 4096) .. #keep end
    end }
"""

SPIN = """
    return { topics = function() local n = 0 while true do n = n + 1 end end }
"""

OK = """
    return { topics = function(req) return { req.params.t } end }
"""


def run():
    app = ft.AppDir({"app.lua": APP, "routes/hog.lua": HOG, "routes/spin.lua": SPIN,
                     "routes/ok.lua": OK})
    with ft.Server(app) as srv:
        # The budget first: once the hog has filled this VM, any long hook in it meets the
        # memory limit instead (the limit is the VM's, not the call's).
        with ft.subtest("a runaway hook is stopped by the budget"):
            r = srv.get("/spin", headers={"Accept": "text/event-stream"})
            r.check_error(500, "the runaway hook")
            srv.wait_log(r"lua error in \S*routes/spin\.lua:1 \(topics\) route /spin: "
                         r"instruction budget exceeded")

        with ft.subtest("a hook allocating without bound gets 500, the worker keeps serving"):
            r = srv.get("/hog", headers={"Accept": "text/event-stream"})
            r.check_error(500, "the memory hog")
            srv.wait_log(r"lua error in \S*routes/hog\.lua:\d+ \(topics\) route /hog: memory "
                         r"limit exceeded")
            with srv.stream("/ok/a") as s:
                s.wait_retry()
            rss_mb = srv.rss_kb() / 1024
            limit = 256 if ft.SANITIZED else 96
            ft.check(rss_mb < limit, f"the process stays small (RSS under {limit} MB)", rss_mb)

        with ft.subtest("both are counted in /metrics"):
            m = srv.get("/metrics").text
            ft.check("freshet_lua_stopped_total{limit=\"memory\"} 1\n" in m,
                     "memory stops counted", m[-2000:])
            ft.check("freshet_lua_stopped_total{limit=\"budget\"} 1\n" in m,
                     "budget stops counted", m[-2000:])


ft.main(run)
