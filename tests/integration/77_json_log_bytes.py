"""JSON logs stay JSON whatever bytes a script puts in them. With log.format = "json", a hook
that raises an error whose message holds bytes that are not UTF-8 (0xFF, an overlong form, an
encoded surrogate, a code point past U+10FFFF, a truncated sequence) and control characters,
and a freshet.log call with byte 0xFF, still leave one JSON object per line on stderr: every
line decodes as UTF-8 and parses with json.loads, each bad byte shows as U+FFFD, control
characters come back as themselves, and well-formed UTF-8 ("café") passes through."""

import json
import re

import frtest as ft

# Lua decimal escapes keep the script file itself ASCII.
BAD_ROUTE = r"""
    local freshet = require "freshet"
    local route = {}
    function route.topics(req) return { req.params.topic } end
    function route.auth(req)
      freshet.log("info", "from log \255 tail \1 ctl caf\195\169")
      error("boom \255 bytes \192\128 overlong \237\160\128 surrogate \244\144\128\128 big "
            .. "\226\130 truncated \1\t\n ctl caf\195\169 end")
    end
    return route
"""

APP = """
    local freshet = require "freshet"
    local app = freshet.app {
      heartbeat = 30,
      log = { level = "info", format = "json" },
    }
    app:stream("/bad/:topic", "routes/bad.lua")
    app:stream("/feed/:topic", "routes/feed.lua")
    return app
"""

FEED_ROUTE = """
    local route = {}
    function route.topics(req) return { req.params.topic } end
    return route
"""


def raw_lines(srv):
    """The server's stderr as written, split into lines (bytes: nothing decoded yet)."""
    with open(srv.log_path, "rb") as f:
        return [line for line in f.read().split(b"\n") if line]


def parse_all(lines):
    """Every line as a JSON object; fails on the first line that is not UTF-8 or not JSON."""
    out = []
    for line in lines:
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            ft.fail(f"a log line is not UTF-8 ({exc})", line)
        try:
            obj = json.loads(text)
        except ValueError as exc:
            ft.fail(f"a log line is not JSON ({exc})", line)
        ft.check(isinstance(obj, dict) and isinstance(obj.get("msg", ""), str),
                 "a log line is not a JSON object", line)
        out.append(obj)
    return out


def run():
    app = ft.AppDir({"app.lua": APP, "routes/bad.lua": BAD_ROUTE, "routes/feed.lua": FEED_ROUTE})
    with ft.Server(app) as srv:
        with ft.subtest("the hook's error answers 500 and is logged"):
            resp = srv.get("/bad/t")
            ft.check_eq(resp.status, 500, "status of a stream whose auth hook raised")
            srv.wait_log(r"boom", timeout=5)
            srv.wait_log(r"from log", timeout=5)

        with ft.subtest("the server still serves"):
            resp = srv.get("/health")
            ft.check_eq(resp.status, 200, "GET /health after the fault")

        with ft.subtest("every stderr line is UTF-8 JSON"):
            objs = parse_all(raw_lines(srv))
            ft.check(len(objs) >= 3, "too few log lines", objs)

        with ft.subtest("freshet.log: 0xFF is U+FFFD, the control character survives"):
            msgs = [o["msg"] for o in parse_all(raw_lines(srv)) if "from log" in o.get("msg", "")]
            ft.check_eq(len(msgs), 1, "lines from freshet.log")
            ft.check("from log \ufffd tail \x01 ctl caf\u00e9" in msgs[0],
                     "the freshet.log message is not as expected", msgs[0])

        with ft.subtest("lua error: each ill-formed sequence is U+FFFD, nothing else changes"):
            msgs = [o for o in parse_all(raw_lines(srv)) if "boom" in o.get("msg", "")]
            ft.check_eq(len(msgs), 1, "lines with the hook's error")
            ft.check_eq(msgs[0].get("level"), "error", "level of the lua error line")
            msg = msgs[0]["msg"]
            ft.check("lua error in" in msg and "(auth)" in msg, "not the lua error line", msg)
            shape = re.compile(
                "boom \ufffd bytes \ufffd+ overlong \ufffd+ surrogate \ufffd+ big \ufffd+ "
                "truncated \x01\t\n ctl caf\u00e9 end")
            ft.check(shape.search(msg), "the error message is not as expected", msg)
            ft.check("\ufffd\ufffd\ufffd\ufffd big" in msg,
                     "the four bytes past U+10FFFF are not four U+FFFD", msg)


ft.main(run, limit=60)
