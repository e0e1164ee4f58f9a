"""freshet --check on route scripts: unknown hooks and fields with a suggestion and the line
they are defined on, hooks of the wrong kind or type, and globals assigned by accident while a
script loads. In a running server unknown hooks stay errors (it does not start) while globals
are logged as warnings and behave as before. The four starter apps check clean."""

import os
import re
import signal
import subprocess

import frtest as ft

APP = """
    local freshet = require "freshet"
    local app = freshet.app {}
    app:stream("/rooms/:room/events", "routes/room.lua")
    app:publish("/rooms/:room/messages", "routes/post.lua")
    return app
"""

GOOD_ROOM = """
    local route = {}
    function route.topics(req, who) return { "room:" .. req.params.room } end
    return route
"""

GOOD_POST = """
    local route = { body = "json" }
    function route.publish(req, body, who)
      return { topic = "room:" .. req.params.room, data = body }
    end
    return route
"""


def check_app(files, cwd=True):
    """Runs `freshet --check app.lua` in the app's directory; returns (exit code, stderr lines,
    stdout)."""
    all_files = {"app.lua": APP, "routes/room.lua": GOOD_ROOM, "routes/post.lua": GOOD_POST}
    all_files.update(files)
    app = ft.AppDir(all_files)
    try:
        p = subprocess.run([ft.BIN, "--check", "app.lua" if cwd else app.app],
                           cwd=app.path if cwd else None, stdin=subprocess.DEVNULL,
                           capture_output=True, timeout=15)
    except subprocess.TimeoutExpired:
        ft.fail("freshet --check did not finish within 15 s")
    return p.returncode, p.stderr.decode().splitlines(), p.stdout.decode()


def expect_errors(files, expected, what):
    rc, lines, out = check_app(files)
    ft.check_eq(rc, 1, f"exit code of --check with {what} ({lines})")
    ft.check_eq(lines, expected, f"what --check reports for {what}")
    ft.check_eq(out, "", "nothing on stdout when the check fails")


def run():
    with ft.subtest("a misspelt hook is named with a suggestion and its line"):
        expect_errors({"routes/room.lua": """
            local route = {}

            function route.topics(req, who) return { "room:" .. req.params.room } end

            -- route.filtr is meant to be route.filter
            function route.filtr(event, who)
              return true
            end

            return route
        """}, ["routes/room.lua:6: unknown hook 'filtr' (did you mean 'filter'?)"], "route.filtr")

    with ft.subtest("fields in a table constructor and with [\"...\"] are found too"):
        expect_errors({"routes/room.lua": """
            local route = {
              -- topcis: the hook below is misspelt
              topcis = function(req, who) return { "x" } end,
            }
            route["on_gapp"] = "reset"
            return route
        """}, [
            "routes/room.lua:1: a stream route needs a topics(req, who) hook",
            "routes/room.lua:3: unknown hook 'topcis' (did you mean 'topics'?)",
            "routes/room.lua:5: unknown field 'on_gapp' (did you mean 'on_gap'?)",
        ], "topcis and on_gapp")

    with ft.subtest("a name far from every hook lists what the route may have"):
        expect_errors({"routes/post.lua": """
            local route = { body = "json" }
            function route.publish(req, body, who) return { topic = "t", data = "x" } end
            route.ratelimit = 5
            return route
        """}, ["routes/post.lua:3: unknown field 'ratelimit' in a publish route script (a publish "
               "route script may have: auth, publish, tier, body, deprecated)"], "route.ratelimit")

    with ft.subtest("a hook of the other kind of route says where it belongs"):
        expect_errors({"routes/room.lua": """
            local route = {}
            function route.topics(req, who) return { "x" } end
            function route.publish(req, body, who) end
            return route
        """, "routes/post.lua": """
            local route = {}
            function route.publish(req, body, who) return { topic = "t", data = "x" } end
            route.on_slow = "drop"
            return route
        """}, [
            "routes/room.lua:3: unknown hook 'publish' in a stream route script (it belongs in a "
            "publish route script)",
            "routes/post.lua:3: unknown field 'on_slow' in a publish route script (it belongs in "
            "a stream route script)",
        ], "publish in a stream route, on_slow in a publish route")

    with ft.subtest("hooks and options of the wrong type say what they should be"):
        expect_errors({"routes/room.lua": """
            local route = {}
            function route.topics(req, who) return { "x" } end
            route.filter = true
            route.tier = "pro"
            route.on_slow = "fast"
            route.on_gap = 416
            return route
        """, "routes/post.lua": """
            local route = { body = "text" }
            route.publish = { topic = "t" }
            return route
        """}, [
            "routes/room.lua:3: hook 'filter' must be a function(event, who), got boolean",
            "routes/room.lua:4: hook 'tier' must be a function(req, who), got string",
            'routes/room.lua:5: on_slow must be "drop", "conflate", "disconnect" or a '
            'function(topic, who) returning one of them, got "fast"',
            'routes/room.lua:6: on_gap must be "reset" or "416", got number',
            'routes/post.lua:1: body must be "json" or "raw", got "text"',
            "routes/post.lua:1: a publish route needs a publish(req, body, who) hook",
            "routes/post.lua:2: hook 'publish' must be a function(req, body, who), got table",
        ], "wrong types")

    with ft.subtest("globals assigned while a script loads are reported with their line"):
        expect_errors({"routes/room.lua": """
            local route = {}
            count = 0
            local function bump() total = (total or 0) + 1 end
            function helper() return 1 end
            bump()
            function route.topics(req, who)
              late = true -- assigned in a hook, not while loading: not reported
              return { "x" }
            end
            return route
        """}, [
            "routes/room.lua:2: global 'count' assigned (use local)",
            "routes/room.lua:3: global 'total' assigned (use local)",
            "routes/room.lua:4: global 'helper' assigned (use local)",
        ], "three globals")

    with ft.subtest("an app given by absolute path names its scripts by absolute path"):
        rc, lines, _ = check_app({"routes/room.lua": """
            local route = {}
            function route.topics() return { "x" } end
            route.filtr = function() end
            return route
        """}, cwd=False)
        ft.check_eq(rc, 1, "exit code")
        ft.check(len(lines) == 1 and re.fullmatch(
            r"/.*/routes/room\.lua:3: unknown hook 'filtr' \(did you mean 'filter'\?\)", lines[0]),
            "the message names the script by its full path", lines)

    with ft.subtest("freshet.metrics() under --check is nil and a reason, not an error"):
        rc, lines, out = check_app({"app.lua": APP.replace(
            "return app",
            "local m, err = freshet.metrics()\n"
            "assert(m == nil and err == 'freshet.metrics: not available while only checking the app', err)\n"
            "return app")})
        ft.check_eq((rc, lines[-1:]), (0, ["app.lua: ok, listen 127.0.0.1:3000, 2 routes"]),
                    "--check of an app that calls freshet.metrics() at load")

    with ft.subtest("the five starter apps check clean"):
        for name in ("chat", "ticker", "notifications", "dashboard", "workspace"):
            app = os.path.join(ft.ROOT, "scripts", "examples", name, "app.lua")
            p = ft.run_cli(["--check", app])
            ft.check_eq(p.returncode, 0, f"--check of the {name} example: {p.stderr.decode()}")
            ft.check(any(line.startswith(f"{app}: ok") for line in p.stderr.decode().splitlines()),
                     f"{name}: says ok", p.stderr)

    with ft.subtest("the server does not start with an unknown hook"):
        app = ft.AppDir({"app.lua": APP, "routes/post.lua": GOOD_POST, "routes/room.lua": """
            local route = {}
            function route.topics() return { "x" } end
            function route.fitler(event, who) return true end
            return route
        """})
        p = ft.run_cli([app.app, "--listen", f"{ft.HOST}:{ft.free_port()}"])
        ft.check_eq(p.returncode, 1, "exit code of the server with a misspelt hook")
        ft.check(re.search(r"routes/room\.lua:3: unknown hook 'fitler' \(did you mean 'filter'\?\)",
                           p.stderr.decode()), "the server names the hook, the line and the fix",
                 p.stderr)

    with ft.subtest("in a running server a global is a warning and works as before"):
        app = ft.AppDir({"app.lua": APP, "routes/post.lua": """
            -- Reads the global the other script set: scripts of one VM still share globals.
            local route = {}
            function route.publish(req, body, who)
              return { topic = greeting .. ":" .. req.params.room, data = body }
            end
            return route
        """, "routes/room.lua": """
            local route = {}
            greeting = "hello"
            function route.topics(req, who)
              opened = (opened or 0) + 1
              return { greeting .. ":" .. req.params.room }
            end
            return route
        """})
        with ft.Server(app) as srv:
            srv.wait_log(r"warn routes/room\.lua:2: global 'greeting' assigned \(use local\)|"
                         r"warn /.*/routes/room\.lua:2: global 'greeting' assigned \(use local\)")
            ft.check("opened" not in srv.log(), "a global set in a hook is not reported", srv.log_tail())
            with srv.stream("/rooms/lobby/events") as s:
                srv.publish("/rooms/lobby/messages", "hi")
                ev = s.next_event()
                ft.check_eq(ev.data, "hi", "the event published on the topic named by the global")

            with ft.subtest("a reload with a new global logs it and goes ahead"):
                app.write({"routes/room.lua": """
                    local route = {}
                    greeting = "hello"
                    extra = 1
                    function route.topics(req, who) return { greeting .. ":" .. req.params.room } end
                    return route
                """})
                start = srv.log_size()
                srv.send_signal(signal.SIGHUP)
                srv.wait_log(r"reloaded ", start=start)
                srv.wait_log(r"warn \S*routes/room\.lua:3: global 'extra' assigned \(use local\)",
                             start=start)
                ft.check("reload failed" not in srv.log()[start:], "the reload failed", srv.log_tail())


ft.main(run, limit=60)
