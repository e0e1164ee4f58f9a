"""scripts/new-app.sh writes an app that works as written: --check passes, `busted` in its
directory passes its spec, and the server runs it: the http route answers a position, the
publish route publishes, and a stream opened from the position gets the item."""

import json
import os
import shutil
import subprocess

import frtest as ft


def run():
    tmp = ft.tempdir("freshet-newapp-")
    script = os.path.join(ft.ROOT, "scripts", "new-app.sh")
    with ft.subtest("new-app writes the app, and refuses to overwrite or a bad name"):
        out = subprocess.run([script, "demo", tmp], capture_output=True, text=True, timeout=30)
        ft.check(out.returncode == 0, "new-app.sh failed", out.stderr)
        app = os.path.join(tmp, "demo")
        for rel in ("app.lua", "routes/feed.lua", "routes/post.lua", "routes/state.lua",
                    "spec/app_spec.lua", ".busted", "README.md"):
            ft.check(os.path.isfile(os.path.join(app, rel)), f"no {rel}")
        again = subprocess.run([script, "demo", tmp], capture_output=True, text=True, timeout=30)
        ft.check(again.returncode != 0 and "exists" in again.stderr, "overwrote an app", again.stderr)
        bad = subprocess.run([script, "../x", tmp], capture_output=True, text=True, timeout=30)
        ft.check_eq(bad.returncode, 2, "a name with a slash")

    with ft.subtest("freshet --check accepts it"):
        r = ft.run_cli(["--check", os.path.join(app, "app.lua")])
        ft.check_eq(r.returncode, 0, f"--check: {r.stderr!r}")
        ft.check(b"http     /feeds/:feed" in r.stdout, "the route table", r.stdout)

    with ft.subtest("busted in the app's directory passes its spec"):
        ft.check(shutil.which("busted"), "busted is not installed (scripts/setup.sh installs it)")
        cpath = os.path.join(tmp, "cmods")
        ft.build_lua_modules(cpath, ["native"])
        lua = os.path.join(ft.ROOT, "lua")
        env = dict(os.environ, LUA_PATH=f"{lua}/?.lua;{lua}/?/init.lua;;",
                   LUA_CPATH=f"{cpath}/?.so;;")
        out = subprocess.run(["busted", "--output=plainTerminal"], cwd=app, env=env,
                             capture_output=True, text=True, timeout=60)
        ft.check(out.returncode == 0, "busted failed", out.stdout + out.stderr)
        ft.check("2 successes / 0 failures" in out.stdout, "busted ran the wrong specs", out.stdout)

    with ft.subtest("the server runs it: position, publish, stream from the position"):
        curl = shutil.which("curl")
        ft.check(curl, "curl is not installed")
        with ft.Server(os.path.join(app, "app.lua")) as srv:
            base = f"http://{ft.HOST}:{srv.port}"
            got = subprocess.run([curl, "-sS", f"{base}/feeds/news"], capture_output=True,
                                 text=True, timeout=10)
            position = json.loads(got.stdout)["position"]
            posted = subprocess.run([curl, "-sS", "-X", "POST", "-H", "Content-Type: application/json",
                                     "-d", '{"text":"hello"}', f"{base}/feeds/news/items"],
                                    capture_output=True, text=True, timeout=10)
            item = json.loads(posted.stdout)["id"]
            with ft.open_stream(srv.port, f"/feeds/news/events?lastEventId={position}") as s:
                e = s.next_event()
                ft.check_eq((e.id, e.type, json.loads(e.data)), (item, "item", {"text": "hello"}),
                            "the item, from the position")


ft.main(run)
