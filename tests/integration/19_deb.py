"""The Debian package: built from the build tree with CPack, its control fields (name, version,
dependencies that this machine's packages satisfy), installed with dpkg into a clean root (a
temp dir with its own dpkg database: `dpkg --root`, so the machine's own /usr is not touched),
where the installed binary serves the installed chat example and a plain luajit loads the
installed modules from the paths Debian's luajit searches; then removed and purged, leaving
nothing behind."""

import glob
import os
import re
import shutil
import subprocess

import frtest as ft
import pkgcheck


def host_satisfies(dep):
    """Whether an installed package on this machine satisfies `name (op version)`."""
    m = re.fullmatch(r"\s*([a-z0-9.+-]+)(?::any)?\s*(?:\(\s*([<>=]+)\s*([^)\s]+)\s*\))?\s*", dep)
    ft.check(m is not None, f"cannot read the dependency {dep!r}")
    name, op, version = m.groups()
    q = subprocess.run(["dpkg-query", "-W", "-f=${Status}\t${Version}", name],
                       capture_output=True, text=True)
    if q.returncode != 0 or not q.stdout.startswith("install ok installed"):
        return False
    if not op:
        return True
    have = q.stdout.split("\t", 1)[1]
    dpkg_op = {">=": "ge", "<=": "le", ">>": "gt", "<<": "lt", "=": "eq"}[op]
    return subprocess.run(["dpkg", "--compare-versions", have, dpkg_op, version]).returncode == 0


def run():
    ft.check(shutil.which("cpack") and shutil.which("dpkg-deb") and shutil.which("dpkg"),
             "cpack, dpkg-deb and dpkg are needed (Debian: cmake, dpkg)")
    tmp = ft.tempdir("freshet-deb-")
    build = pkgcheck.build_dir()

    with ft.subtest("cpack builds freshet_<version>_<arch>.deb"):
        pkgcheck.run(["cpack", "-G", "DEB", "--config", os.path.join(build, "CPackConfig.cmake"),
                      "-B", os.path.join(tmp, "out")], "cpack -G DEB", cwd=build, timeout=100)
        debs = glob.glob(os.path.join(tmp, "out", "freshet_*.deb"))
        ft.check_eq(len(debs), 1, f"one .deb in {tmp}/out")
    deb = debs[0]
    version = pkgcheck.run([ft.BIN, "--version"], "freshet --version").stdout.split()[-1]

    with ft.subtest("the control fields: name, version, dependencies this machine satisfies"):
        fields = {}
        for name in ("Package", "Version", "Architecture", "Depends", "Section", "Maintainer"):
            fields[name] = pkgcheck.run(["dpkg-deb", "-f", deb, name], f"dpkg-deb -f {name}").stdout.strip()
        ft.check_eq(fields["Package"], "freshet", "Package")
        ft.check_eq(fields["Version"], version, "Version (the binary's)")
        arch = pkgcheck.run(["dpkg", "--print-architecture"], "dpkg --print-architecture").stdout.strip()
        ft.check_eq(fields["Architecture"], arch, "Architecture")
        for lib in ("libuv1", "libluajit", "libhiredis", "libssl3", "libc6"):
            ft.check(lib in fields["Depends"], f"Depends does not name {lib}", fields["Depends"])
        for group in fields["Depends"].split(","):
            ft.check(any(host_satisfies(alt) for alt in group.split("|")),
                     f"no installed package satisfies the dependency {group.strip()!r}")

    multiarch = pkgcheck.run(["dpkg-architecture", "-qDEB_HOST_MULTIARCH"],
                             "dpkg-architecture (dpkg-dev)").stdout.strip()
    arch_lib = f"usr/lib/{multiarch}"
    root = os.path.join(tmp, "root")
    admin = os.path.join(root, "var/lib/dpkg")
    for d in ("updates", "info"):
        os.makedirs(os.path.join(admin, d))
    open(os.path.join(admin, "status"), "w").close()
    # The clean root has no packages at all, so dependencies cannot be met inside it; they were
    # checked against this machine above, and the binary runs with this machine's libraries.
    dpkg = ["dpkg", f"--root={root}", "--log=/dev/null", "--force-depends"]
    if os.geteuid() != 0:
        dpkg.append("--force-not-root")

    with ft.subtest("dpkg installs the package into a clean root"):
        pkgcheck.run([*dpkg, "-i", deb], "dpkg -i")
        status = pkgcheck.run([*dpkg, "-s", "freshet"], "dpkg -s freshet").stdout
        ft.check("Status: install ok installed" in status, "dpkg -s: not installed", status)
        usr = os.path.join(root, "usr")
        pkgcheck.layout(usr, os.path.join(root, arch_lib, "lua/5.1"),
                        os.path.join(usr, "lib/systemd/system"))

    usr = os.path.join(root, "usr")
    bin_path = os.path.join(usr, "bin/freshet")
    with ft.subtest("the installed binary serves the installed chat example"):
        pkgcheck.serve_chat(bin_path, os.path.join(usr, "share/freshet/examples"),
                            os.path.join(usr, "share/freshet/client/freshet.js"))

    with ft.subtest("a plain luajit loads the modules from Debian's Lua paths in the root"):
        pkgcheck.lua_modules(os.path.join(usr, "share/lua/5.1"), os.path.join(root, arch_lib, "lua/5.1"))

    with ft.subtest("the unit names /usr/bin/freshet"):
        with open(os.path.join(usr, "lib/systemd/system/freshet.service")) as f:
            unit = f.read()
        ft.check("\nExecStart=/usr/bin/freshet ${FRESHET_APP} $FRESHET_OPTS\n" in unit,
                 "ExecStart does not run /usr/bin/freshet", unit)

    with ft.subtest("dpkg removes and purges it, leaving nothing"):
        pkgcheck.run([*dpkg, "--purge", "freshet"], "dpkg --purge freshet")
        q = subprocess.run([*dpkg, "-s", "freshet"], capture_output=True, text=True)
        ft.check(q.returncode != 0 or "Status: install ok installed" not in q.stdout,
                 "freshet is still installed", q.stdout)
        left = [os.path.relpath(os.path.join(d, f), root)
                for d, _, files in os.walk(root) for f in files
                if not os.path.relpath(d, root).startswith("var/lib/dpkg")]
        ft.check(left == [], "files left after purge", left[:20])


ft.main(run, limit=110)
