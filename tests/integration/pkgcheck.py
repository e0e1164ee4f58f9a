"""Checks shared by the install tests (18_install.py: `cmake --install`, 19_deb.py: the Debian
package): an installed tree serves an example, its Lua modules load in a plain luajit, its man
page renders and its systemd unit verifies. Each function takes the installed paths."""

import contextlib
import json
import os
import re
import shutil
import subprocess

import frtest as ft

EXAMPLES = ("chat", "ticker", "notifications", "dashboard", "workspace")
LUA_MODULES = ("init", "app", "fakecore", "http", "jwt", "request", "test")


def build_dir():
    """The build tree under test: the one holding the binary ctest points at."""
    return os.path.dirname(os.path.abspath(ft.BIN))


def run(cmd, what, env=None, cwd=None, timeout=120, stdin_text=None):
    proc = subprocess.run(cmd, input=stdin_text if stdin_text is not None else "",
                          capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout)
    ft.check(proc.returncode == 0, f"{what} failed (exit {proc.returncode}): {' '.join(cmd)}",
             {"stdout": proc.stdout[-3000:], "stderr": proc.stderr[-3000:]})
    return proc


@contextlib.contextmanager
def binary(path):
    """frtest's Server runs ft.BIN: point it at an installed binary for the duration."""
    saved = ft.BIN
    ft.BIN = path
    try:
        yield
    finally:
        ft.BIN = saved


def layout(prefix, lua_cdir, unit_dir):
    """Every file the install promises, under prefix."""
    expect = [
        "bin/freshet",
        "share/man/man1/freshet.1",
        "share/freshet/client/freshet.js",
        "share/freshet/client/freshet.mjs",
        "share/freshet/client/index.d.ts",
        "share/doc/freshet/LICENSE",
        "share/doc/freshet/copyright",
        "share/doc/freshet/README.md",
        *[f"share/lua/5.1/freshet/{m}.lua" for m in LUA_MODULES],
        *[f"share/freshet/examples/{e}/app.lua" for e in EXAMPLES],
        "share/freshet/examples/workspace/backend.py",
    ]
    for rel in expect:
        ft.require_file(os.path.join(prefix, rel), rel)
    ft.check(os.access(os.path.join(prefix, "bin/freshet"), os.X_OK), "bin/freshet is not executable")
    for mod in ("crypto", "native"):
        ft.require_file(os.path.join(lua_cdir, "freshet", f"{mod}.so"), f"freshet.{mod} C module")
    ft.require_file(os.path.join(unit_dir, "freshet.service"), "the systemd unit")
    for rel, built in (("share/freshet/client/freshet.js", os.path.join(ft.ROOT, "client/freshet.js")),
                       ("share/freshet/client/freshet.mjs", os.path.join(build_dir(), "client/freshet.mjs"))):
        with open(built, "rb") as a, open(os.path.join(prefix, rel), "rb") as b:
            ft.check(a.read() == b.read(), f"{rel} differs from {built}")


def serve_chat(bin_path, examples_dir, client_js):
    """The installed binary runs the installed chat example from another directory: the page,
    the client it links (the installed client file, byte for byte), a stream that receives a
    POSTed message, and a clean exit on SIGTERM."""
    ft.check_eq(run([bin_path, "--version"], "freshet --version").stdout.strip(),
                run([ft.BIN, "--version"], "the build's freshet --version").stdout.strip(),
                "the installed binary's version")
    app = os.path.join(examples_dir, "chat", "app.lua")
    check = run([bin_path, "--check", app], "freshet --check on the installed chat example",
                cwd="/")
    ft.check("/rooms/:room/events" in check.stdout, "--check lists the chat routes", check.stdout)
    with binary(bin_path), ft.Server(app) as srv:
        page = srv.get("/")
        ft.check_eq(page.status, 200, f"GET / ({page.summary()})")
        ft.check("/_freshet/freshet.js" in page.text, "the chat page loads the client", page.text[:500])
        js = srv.get("/_freshet/freshet.js")
        with open(client_js, "rb") as f:
            ft.check(js.status == 200 and js.body == f.read(),
                     f"GET /_freshet/freshet.js is not the installed {client_js}", js.summary())
        stream = srv.stream("/rooms/lobby/events?user=ann")
        try:
            resp = srv.post("/rooms/lobby/messages", json.dumps({"user": "bob", "text": "hi"}),
                            headers={"Content-Type": "application/json"})
            ft.check_eq(resp.status, 201, f"POST a message ({resp.summary()})")
            ev = stream.next_event(timeout=10)
            ft.check(ev.id == resp.json().get("id") and '"hi"' in ev.data,
                     "the stream gets the posted message", (ev.id, ev.type, ev.data))
        finally:
            stream.close()


LUA_CHECK = r"""
local share, cdir = ...
local function expect(cond, msg) if not cond then error(msg, 2) end end
for _, m in ipairs({ "freshet", "freshet.app", "freshet.jwt", "freshet.test" }) do
  local where = package.searchpath(m, package.path)
  expect(where and where:sub(1, #share) == share, m .. " resolves to " .. tostring(where))
end
for _, m in ipairs({ "freshet.crypto", "freshet.native" }) do
  local where = package.searchpath(m, package.cpath)
  expect(where and where:sub(1, #cdir) == cdir, m .. " resolves to " .. tostring(where))
end
local jwt = require "freshet.jwt"
local claims = jwt.verify(jwt.sign({ sub = "ann" }, "k"), "k")
expect(claims and claims.sub == "ann", "freshet.jwt does not verify its own token")
expect(jwt.verify(jwt.sign({ sub = "ann" }, "k"), "other") == nil, "freshet.jwt accepts a wrong key")
local srv = require("freshet.test").server()
expect(srv.freshet.publish("room", "hi") ~= nil, "freshet.test does not publish")
local app = require("freshet").app { listen = "127.0.0.1:1" }
expect(app.kind == "freshet.app", "freshet.app{} does not build an app")
print("ok")
"""


def lua_modules(share, cdir):
    """A plain luajit loads the installed modules, and only those: freshet.jwt signs and
    verifies (the C module freshet.crypto), the route-test harness runs (freshet.native)."""
    luajit = shutil.which("luajit")
    ft.check(luajit is not None, "luajit is not installed (scripts/setup.sh installs it)")
    env = dict(os.environ,
               LUA_PATH=f"{share}/?.lua;{share}/?/init.lua;;",
               LUA_CPATH=f"{cdir}/?.so;;")
    out = run([luajit, "-", share, cdir], "luajit with the installed modules", env=env, cwd="/",
              stdin_text=LUA_CHECK)
    ft.check_eq(out.stdout.strip(), "ok", "luajit with the installed modules")


def man_page(page, manpath):
    """`man -l` renders the page with every section, and groff has nothing to say about it;
    `man freshet` finds it under the installed man path."""
    man = shutil.which("man")
    ft.check(man is not None, "man is not installed (Debian: man-db; scripts/setup.sh installs it)")
    env = dict(os.environ, MANWIDTH="100")
    out = run([man, "--warnings", "-l", page], "man -l", env=env)
    ft.check_eq(out.stderr.strip(), "", "man --warnings -l prints no warning")
    text = re.sub(r".\x08", "", out.stdout)  # bold and underline as overstrikes
    for section in ("NAME", "SYNOPSIS", "OPTIONS", "SIGNALS", "EXIT STATUS", "APP FILE", "FILES"):
        ft.check(f"\n{section}\n" in text, f"the man page has no {section} section", text[:2000])
    for word in ("--check", "--listen", "--log-level", "SIGHUP", "SIGTERM", "heartbeat",
                 "replay.events", "broker", "workers"):
        ft.check(word in text, f"the man page does not mention {word}")
    found = run([man, "-w", "freshet"], "man -w freshet", env=dict(env, MANPATH=manpath))
    ft.check_eq(os.path.realpath(found.stdout.strip()), os.path.realpath(page), "man -w freshet")


def unit_file(unit, bin_path, manpath):
    """The unit runs the installed binary as a dynamic user, raises the descriptor limit,
    reloads with SIGHUP, and passes `systemd-analyze verify` (which also runs the binary's
    path check and resolves Documentation=man:freshet(1))."""
    with open(unit) as f:
        text = f.read()
    for line in ("Type=simple", "DynamicUser=yes", "LimitNOFILE=262144",
                 "ExecReload=/bin/kill -HUP $MAINPID", f"ExecStart={bin_path} ${{FRESHET_APP}}",
                 f"ExecStartPre={bin_path} --check ${{FRESHET_APP}}", "KillSignal=SIGTERM",
                 "Documentation=man:freshet(1)"):
        ft.check(f"\n{line}" in text, f"the unit has no line `{line}`", text)
    analyze = shutil.which("systemd-analyze")
    ft.check(analyze is not None,
             "systemd-analyze is not installed (Debian: systemd; scripts/setup.sh installs it)")
    run([analyze, "verify", unit], "systemd-analyze verify", env=dict(os.environ, MANPATH=manpath))
