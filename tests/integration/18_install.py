"""`cmake --install` into a temp prefix: the layout (binary, Lua modules and their C halves,
browser client, examples, man page, systemd unit, docs), and that the installed tree works on
its own: the installed binary serves the installed chat example from another directory, a plain
luajit loads the installed modules, `man -l` renders the page, the unit passes
`systemd-analyze verify`."""

import os

import frtest as ft
import pkgcheck


def run():
    prefix = os.path.join(ft.tempdir("freshet-install-"), "prefix")
    with ft.subtest("cmake --install --prefix puts every file in place"):
        pkgcheck.run(["cmake", "--install", pkgcheck.build_dir(), "--prefix", prefix],
                     "cmake --install")
        # Not /usr: luajit's C module path for other prefixes is <prefix>/lib/lua/5.1.
        pkgcheck.layout(prefix, os.path.join(prefix, "lib/lua/5.1"),
                        os.path.join(prefix, "lib/systemd/system"))

    bin_path = os.path.join(prefix, "bin", "freshet")
    with ft.subtest("the installed binary serves the installed chat example"):
        pkgcheck.serve_chat(bin_path, os.path.join(prefix, "share/freshet/examples"),
                            os.path.join(prefix, "share/freshet/client/freshet.js"))

    with ft.subtest("a plain luajit loads the installed Lua modules"):
        pkgcheck.lua_modules(os.path.join(prefix, "share/lua/5.1"), os.path.join(prefix, "lib/lua/5.1"))

    manpath = os.path.join(prefix, "share/man")
    with ft.subtest("man -l renders freshet.1"):
        pkgcheck.man_page(os.path.join(manpath, "man1/freshet.1"), manpath)

    with ft.subtest("the systemd unit names the installed binary and verifies"):
        pkgcheck.unit_file(os.path.join(prefix, "lib/systemd/system/freshet.service"), bin_path, manpath)


ft.main(run, limit=110)
