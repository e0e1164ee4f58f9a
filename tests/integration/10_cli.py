"""Command line: --version, --help, --check, --name=VALUE and --name VALUE, missing values,
missing app file, bad app settings, signals."""

import os
import re
import signal
import subprocess
import time

import frtest as ft

GOOD_APP = {
    "app.lua": """
        local freshet = require "freshet"
        local app = freshet.app { heartbeat = 5, retry = 1000 }
        app:stream("/rooms/:room/events", "routes/room.lua")
        app:publish("/rooms/:room/messages", "routes/post.lua")
        app:static("/", "public")
        return app
    """,
    "routes/room.lua": """
        local route = {}
        function route.topics(req, who) return { "room:" .. req.params.room } end
        return route
    """,
    "routes/post.lua": """
        local route = {}
        function route.publish(req, body, who)
          return { topic = "room:" .. req.params.room, data = body }
        end
        return route
    """,
    "public/index.html": "<!doctype html><title>x</title>\n",
}


def project_version():
    with open(os.path.join(ft.ROOT, "CMakeLists.txt")) as f:
        m = re.search(r"project\(\s*freshet\s+VERSION\s+([0-9][0-9.]*)", f.read())
    return m.group(1) if m else None


def out(proc):
    return {"rc": proc.returncode, "stdout": proc.stdout.decode("utf-8", "replace"),
            "stderr": proc.stderr.decode("utf-8", "replace")}


def run():
    with ft.subtest("--version prints 'freshet <version>' and exits 0"):
        p = ft.run_cli(["--version"])
        ft.check_eq(p.returncode, 0, "exit code of --version")
        text = p.stdout.decode().strip()
        version = project_version()
        ft.check(re.fullmatch(r"freshet [0-9]+\.[0-9]+\.[0-9]+\S*", text) is not None,
                 "--version output is not 'freshet <version>'", out(p))
        if version:
            ft.check_eq(text.split()[1], version, "--version against CMakeLists.txt project VERSION")

    with ft.subtest("--help prints usage and exits 0"):
        p = ft.run_cli(["--help"])
        ft.check_eq(p.returncode, 0, "exit code of --help")
        text = p.stdout.decode()
        ft.check("usage" in text.lower(), "--help says nothing about usage on stdout", out(p))
        for flag in ("--listen", "--check", "--log-level"):
            ft.check(flag in text, f"--help does not mention {flag}", out(p))

    with ft.subtest("--check on a good app prints the route table and exits 0"):
        app = ft.AppDir(GOOD_APP)
        p = ft.run_cli(["--check", app.app])
        ft.check_eq(p.returncode, 0, f"exit code of --check ({out(p)})")
        lines = [line.split() for line in p.stdout.decode().splitlines() if line.strip()]
        ft.check_eq([row[:2] for row in lines],
                    [["stream", "/rooms/:room/events"], ["publish", "/rooms/:room/messages"],
                     ["static", "/"]], "route table (kind, pattern) printed by --check")
        ft.check(all(len(row) == 3 for row in lines), "each route line is '<kind> <pattern> <target>'",
                 out(p))
        for row, target in zip(lines, ("routes/room.lua", "routes/post.lua", "public")):
            ft.check(row[2].rstrip("/").endswith(target), f"route line does not name {target}", row)

    with ft.subtest("--check with a syntax error in a route prints file:line and exits 1"):
        files = dict(GOOD_APP)
        files["routes/room.lua"] = """
            local route = {}
            function route.topics(req, who)
              local x = = 1
              return { "room" }
            end
            return route
        """
        app = ft.AppDir(files)
        p = ft.run_cli(["--check", app.app])
        ft.check_eq(p.returncode, 1, f"exit code of --check with a syntax error ({out(p)})")
        ft.check(re.search(r"room\.lua:3: ", p.stderr.decode()) is not None,
                 "stderr does not say 'room.lua:3: <message>'", out(p))

    with ft.subtest("--check with a syntax error in the app file prints app.lua:line, exit 1"):
        files = dict(GOOD_APP)
        files["app.lua"] = """
            local freshet = require "freshet"
            local app = freshet.app { heartbeat = 5 }
            app:stream("/a", "routes/room.lua"
            return app
        """
        app = ft.AppDir(files)
        p = ft.run_cli(["--check", app.app])
        ft.check_eq(p.returncode, 1, f"exit code ({out(p)})")
        ft.check(re.search(r"app\.lua:4: ", p.stderr.decode()) is not None,
                 "stderr does not say 'app.lua:4: <message>'", out(p))

    with ft.subtest("--check with a route script failing at load time prints file:line, exit 1"):
        files = dict(GOOD_APP)
        files["routes/post.lua"] = """
            local route = {}
            error("refusing to load")
            return route
        """
        app = ft.AppDir(files)
        p = ft.run_cli(["--check", app.app])
        ft.check_eq(p.returncode, 1, f"exit code ({out(p)})")
        ft.check(re.search(r"post\.lua:2: .*refusing to load", p.stderr.decode()) is not None,
                 "stderr does not say 'post.lua:2: ... refusing to load'", out(p))

    with ft.subtest("--check on a stream route without its required topics hook exits 1"):
        files = dict(GOOD_APP)
        files["routes/room.lua"] = "local route = {}\nreturn route\n"
        app = ft.AppDir(files)
        p = ft.run_cli(["--check", app.app])
        ft.check_eq(p.returncode, 1, f"exit code ({out(p)})")
        ft.check(re.search(r"room\.lua:\d+: .*topics", p.stderr.decode()) is not None,
                 "stderr does not name room.lua and the missing topics hook", out(p))

    with ft.subtest("a missing app file exits 2 naming the file"):
        missing = os.path.join(ft.tempdir(), "nowhere", "app.lua")
        for args in ([missing], ["--check", missing]):
            p = ft.run_cli(args)
            ft.check_eq(p.returncode, 2, f"exit code of `freshet {' '.join(args)}` ({out(p)})")
            ft.check(missing in p.stderr.decode(), "stderr does not name the missing file", out(p))

    with ft.subtest("an unknown app key is named in the error"):
        app = ft.AppDir({
            "app.lua": """
                local freshet = require "freshet"
                -- the typo below is on line 3
                local app = freshet.app { heartbaet = 15 }
                return app
            """,
        })
        p = ft.run_cli(["--check", app.app])
        ft.check_eq(p.returncode, 1, f"exit code of --check ({out(p)})")
        ft.check(re.search(r"app\.lua:3: freshet\.app: unknown key 'heartbaet'",
                           p.stderr.decode()) is not None,
                 "stderr lacks \"app.lua:3: freshet.app: unknown key 'heartbaet'\"", out(p))
        port = ft.free_port()
        p = ft.run_cli([app.app, "--listen", f"{ft.HOST}:{port}"], timeout=10)
        ft.check(p.returncode not in (0, None), f"serving a bad app must fail ({out(p)})")
        ft.check("unknown key 'heartbaet'" in p.stderr.decode(),
                 "serving a bad app: stderr does not name the key", out(p))

    with ft.subtest("an unknown key in a nested app setting is named"):
        app = ft.AppDir({
            "app.lua": """
                local freshet = require "freshet"
                local app = freshet.app { replay = { evnets = 3 } }
                return app
            """,
        })
        p = ft.run_cli(["--check", app.app])
        ft.check_eq(p.returncode, 1, f"exit code of --check ({out(p)})")
        ft.check(re.search(r"app\.lua:2: .*unknown key 'evnets'", p.stderr.decode()) is not None,
                 "stderr lacks \"app.lua:2: ... unknown key 'evnets'\"", out(p))

    with ft.subtest("--name=VALUE and --name VALUE both work; a missing value exits 2"):
        app = ft.AppDir(GOOD_APP)
        for flag in ("--listen", "--log-level"):
            for args in ([app.app, flag], [app.app, flag, "--check"], [app.app, f"{flag}="]):
                p = ft.run_cli(args)
                ft.check_eq(p.returncode, 2, f"exit code of `freshet {' '.join(args[1:])}`")
                ft.check(f"{flag} needs a value" in p.stderr.decode(),
                         f"stderr does not say that {flag} needs a value", out(p))
        p = ft.run_cli([app.app, "--log-level=loud"])
        ft.check_eq(p.returncode, 2, f"exit code of --log-level=loud ({out(p)})")
        ft.check("got 'loud'" in p.stderr.decode(), "stderr does not quote the bad level", out(p))
        # The server answers on the port given as --listen=H:P, and --log-level=warn holds
        # back the info lines ("listening on").
        port = ft.free_port()
        logdir = ft.tempdir()
        with open(os.path.join(logdir, "log"), "wb") as log:
            proc = subprocess.Popen([ft.BIN, app.app, f"--listen={ft.HOST}:{port}",
                                     "--log-level=warn"], stdout=log, stderr=log,
                                    stdin=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 10
            status = None
            while time.monotonic() < deadline and status != 200 and proc.poll() is None:
                try:
                    status = ft.request(port, "GET", "/health", timeout=1).status
                except (OSError, ft.Failure):
                    time.sleep(0.05)
            ft.check_eq(status, 200, f"GET /health on the port given by --listen={ft.HOST}:{port}")
        finally:
            proc.send_signal(signal.SIGTERM)
            rc = proc.wait(timeout=10)
        ft.check_eq(rc, 0, "exit code after SIGTERM")
        with open(os.path.join(logdir, "log")) as f:
            text = f.read()
        ft.check(" info " not in text, "--log-level=warn still logged info lines", text[:2000])

    with ft.subtest("serving logs 'listening on' in the log format; SIGINT exits 0"):
        app = ft.AppDir(GOOD_APP)
        srv = ft.Server(app).start()
        line = srv.wait_log(r"(?m)^.*listening on http://127\.0\.0\.1:%d\s*$" % srv.port).group(0)
        ft.check(re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z (?i:info) listening on ", line)
                 is not None, "log line is not '<ISO8601 UTC> <level> <message>'", line)
        srv.stop(sig=signal.SIGINT)

    with ft.subtest("every log line is '<ISO8601 UTC time> <level> <message>'"):
        srv = ft.Server(ft.AppDir(GOOD_APP), args=["--log-level", "debug"]).start()
        with ft.open_stream(srv.port, "/rooms/r/events") as s:
            srv.post("/rooms/r/messages", b"hello")
            s.next_event()
        srv.get("/no/such/page")
        srv.get("/")
        srv.stop(sig=signal.SIGTERM)
        log = srv.log()
        # a sanitizer report, if any, is not a log line
        lines = log.split("\n=================")[0].splitlines()
        rx = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z (debug|info|warn|error) \S")
        bad = [line for line in lines if line.strip() and not rx.match(line)]
        ft.check(not bad, f"{len(bad)} of {len(lines)} log lines are not in the log format", bad[:8])


ft.main(run, limit=60)
