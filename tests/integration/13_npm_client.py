"""The browser client as an npm package (client/): `npm pack`, installed from the tarball into a
temp project with no registry (--offline), then used the ways a project uses it, each against a
running freshet: an ES module import and a CommonJS require in Node (both follow a stream by
long-polling and get an event from replay), the TypeScript declarations (a strict tsc accepts
correct code and rejects wrong calls), and a page bundled with esbuild and run in headless
Chromium. The server keeps serving the packed freshet.js, byte for byte."""

import html
import json
import os
import shutil
import subprocess
import tarfile
import urllib.parse

import frtest as ft
import pkgcheck

PAGE = b"""<!doctype html>
<html><head><title>freshet bundle</title></head>
<body><pre id="out">waiting</pre><script type="module" src="bundle.js"></script></body></html>
"""

# The page's entry point: imports the package by name, follows the stream from the id in the
# page's query, and shows the first event (and stops) or a refusal.
ENTRY = """
import freshet, { connect, states } from 'freshet';
const q = new URLSearchParams(location.search);
const out = document.getElementById('out');
const s = connect('/sub/room', {
  lastEventId: q.get('after'),
  onEvent(ev) { out.textContent = JSON.stringify({ id: ev.id, data: ev.data, transport: ev.transport,
                                                   same: freshet.connect === connect, states }); s.close(); },
  onState(state, info) { if (state === 'closed' && info.status) out.textContent = 'refused ' + info.status; },
});
"""

# Node, both module systems: the same flow over long-polling (Node has fetch, not EventSource).
NODE_FLOW = """
const [url, after] = process.argv.slice(2);
const timer = setTimeout(() => { console.log('timeout'); process.exit(3); }, 10000);
const s = freshet.connect(url, {
  transport: 'poll', lastEventId: after,
  onEvent(ev) { console.log(JSON.stringify({ id: ev.id, data: ev.data, transport: ev.transport,
                                             version: freshet.version, kind: KIND })); s.close(); clearTimeout(timer); },
});
"""
ESM = ("import freshet, { connect, version, states, Connection } from 'freshet';\n"
       "if (freshet.connect !== connect || freshet.version !== version || !Array.isArray(states) ||\n"
       "    typeof Connection !== 'function') throw new Error('named exports differ from the default');\n"
       "const KIND = 'esm';\n" + NODE_FLOW)
CJS = ("const freshet = require('freshet');\n"
       "if (require('freshet/package.json').license !== 'MIT') throw new Error('license');\n"
       "const KIND = 'cjs';\n" + NODE_FLOW)

TS_GOOD_MTS = """
import freshet, { connect, type FreshetEvent, type GapInfo, type Connection } from 'freshet';
const seen: string[] = [];
const s: Connection = connect('/sub/room', {
  transport: 'poll',
  backoff: { base: 500 },
  onEvent(ev: FreshetEvent) { seen.push(ev.id, ev.text, ev.transport); },
  onState(state, info) { if (state === 'closed') seen.push(info.reason ?? ''); },
  onGap(info: GapInfo) { if (info.type === 'reset') seen.push(String(info.id)); },
});
const off: () => void = s.on('price', (ev) => seen.push(ev.event));
off();
s.close();
const v: string = freshet.version;
export { v };
"""
TS_GOOD_CTS = """
import freshet = require('freshet');
const s: freshet.Connection = freshet.connect(() => '/sub/room', { events: ['price'] });
const n: number = s.stats.events;
s.subscribe(['a', 'b']).then((topics: string[]) => topics.length + n);
export = s;
"""
TS_BAD_MTS = """
import { connect } from 'freshet';
connect(42);
connect('/sub/room', { transport: 'pigeon' });
connect('/sub/room').lastEventId = 7;
"""


def tool(name, package):
    path = shutil.which(name)
    ft.check(path is not None, f"{name} is not installed (Debian: {package}; scripts/setup.sh installs it)")
    return path


def run():
    node = tool("node", "nodejs")
    npm = tool("npm", "npm")
    tsc = tool("tsc", "node-typescript")
    esbuild = tool("esbuild", "esbuild")
    chromium = tool("chromium", "chromium")
    tmp = ft.tempdir("freshet-npm-")
    # npm keeps its cache and config in the temp dir, and never asks a registry.
    env = dict(os.environ, HOME=os.path.join(tmp, "home"), npm_config_cache=os.path.join(tmp, "cache"),
               npm_config_offline="true", npm_config_audit="false", npm_config_fund="false",
               npm_config_update_notifier="false")

    # npm pack runs in a copy: its prepack step writes freshet.mjs and the LICENSE there.
    src = os.path.join(tmp, "src")
    shutil.copytree(os.path.join(ft.ROOT, "client"), os.path.join(src, "client"),
                    ignore=shutil.ignore_patterns("*.tgz", "node_modules", "LICENSE", "freshet.mjs"))
    os.makedirs(os.path.join(src, "cmake"))
    shutil.copy(os.path.join(ft.ROOT, "cmake", "client_esm.cmake"), os.path.join(src, "cmake"))
    shutil.copy(os.path.join(ft.ROOT, "LICENSE"), os.path.join(src, "LICENSE"))
    with ft.subtest("npm pack: the files, the metadata"):
        pkgcheck.run([npm, "pack", "--pack-destination", tmp], "npm pack", env=env,
                     cwd=os.path.join(src, "client"))
        with open(os.path.join(ft.ROOT, "client", "package.json")) as f:
            meta = json.load(f)
        tgz = os.path.join(tmp, f"{meta['name']}-{meta['version']}.tgz")
        ft.require_file(tgz, "the packed tarball")
        with tarfile.open(tgz) as t:
            names = sorted(n for n in t.getnames())
            packed_js = t.extractfile("package/freshet.js").read()
            packed_mjs = t.extractfile("package/freshet.mjs").read()
        ft.check_eq(names, sorted(f"package/{n}" for n in (
            "LICENSE", "README.md", "freshet.d.mts", "freshet.js", "freshet.mjs", "index.d.ts",
            "package.json")), "files in the tarball")
        ft.check_eq(meta["license"], "MIT", "license")
        with open(os.path.join(pkgcheck.build_dir(), "client", "freshet.mjs"), "rb") as f:
            ft.check(packed_mjs == f.read(), "the packed freshet.mjs differs from the build's")
        ft.check(set(meta["exports"]["."]) == {"import", "require"}, "exports has import and require",
                 meta["exports"])

    project = os.path.join(tmp, "project")
    os.makedirs(project)
    with open(os.path.join(project, "package.json"), "w") as f:
        json.dump({"name": "freshet-consumer", "version": "1.0.0", "private": True}, f)
    with ft.subtest("npm install <tarball> with no registry"):
        pkgcheck.run([npm, "install", "--no-package-lock", tgz], "npm install --offline", env=env,
                     cwd=project)
        ft.require_file(os.path.join(project, "node_modules/freshet/freshet.mjs"), "installed package")

    files = {"public/index.html": PAGE}
    app = ft.pubsub_app(settings="poll_timeout = 2,", routes='app:static("/", "public")\n', files=files)
    with ft.Server(app) as srv:
        with ft.subtest("the server serves the packed freshet.js"):
            resp = srv.get("/_freshet/freshet.js")
            ft.check(resp.status == 200 and resp.body == packed_js,
                     "GET /_freshet/freshet.js differs from the package's freshet.js", resp.summary())

        first = srv.publish("/pub/room", "first")
        second = srv.publish("/pub/room", json.dumps({"n": 2}))
        base = f"http://{ft.HOST}:{srv.port}"

        for kind, name, code in (("esm", "use.mjs", ESM), ("cjs", "use.cjs", CJS)):
            with ft.subtest(f"Node: {kind} follows a stream and gets the event after the id"):
                with open(os.path.join(project, name), "w") as f:
                    f.write(code)
                out = pkgcheck.run([node, name, base + "/sub/room", first], f"node {name}",
                                   env=env, cwd=project, timeout=20).stdout.strip()
                got = json.loads(out.splitlines()[-1])
                ft.check_eq(got, {"id": second, "data": {"n": 2}, "transport": "poll",
                                  "version": "1", "kind": kind}, f"what {name} printed")

        with ft.subtest("TypeScript: strict tsc accepts correct use from .mts and .cts"):
            for name, code in (("good.mts", TS_GOOD_MTS), ("good.cts", TS_GOOD_CTS), ("bad.mts", TS_BAD_MTS)):
                with open(os.path.join(project, name), "w") as f:
                    f.write(code)
            ts = [tsc, "--noEmit", "--strict", "--module", "node16", "--moduleResolution", "node16",
                  "--target", "es2020"]
            pkgcheck.run([*ts, "good.mts", "good.cts"], "tsc on correct code", env=env, cwd=project)

        with ft.subtest("TypeScript: tsc rejects wrong calls"):
            bad = subprocess.run([*ts, "bad.mts"], cwd=project, env=env, capture_output=True, text=True)
            ft.check(bad.returncode != 0, "tsc accepted wrong calls", bad.stdout)
            for line in (3, 4, 5):
                ft.check(f"bad.mts({line}," in bad.stdout, f"tsc did not reject line {line} of bad.mts",
                         bad.stdout)

        with ft.subtest("esbuild bundles the package for a page; Chromium runs it"):
            with open(os.path.join(project, "entry.js"), "w") as f:
                f.write(ENTRY)
            bundle = app.file("public/bundle.js")
            pkgcheck.run([esbuild, "entry.js", "--bundle", "--format=esm", "--platform=browser",
                          f"--outfile={bundle}"], "esbuild", env=env, cwd=project)
            with open(bundle) as f:
                code = f.read()
            ft.check("module.exports" not in code and "require(" not in code,
                     "the bundle took the CommonJS file, not the ES module")
            url = f"{base}/index.html?after={urllib.parse.quote(first)}"
            profile = os.path.join(tmp, "chromium")
            cmd = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                   f"--user-data-dir={profile}", "--virtual-time-budget=5000", "--dump-dom", url]
            try:
                page = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env)
            except subprocess.TimeoutExpired:
                ft.fail("headless Chromium did not finish within 60 s")
            dom = page.stdout
            start, end = dom.find('<pre id="out">'), dom.find("</pre>")
            ft.check(start >= 0 and end > start, "the page's output element", dom[-1500:] + page.stderr[-1500:])
            shown = dom[start + len('<pre id="out">'):end]
            try:
                got = json.loads(html.unescape(shown))
            except ValueError:
                ft.fail(f"the page shows {shown!r}, not an event", page.stderr[-2000:])
            ft.check_eq(got, {"id": second, "data": {"n": 2}, "transport": "sse", "same": True,
                              "states": ["connecting", "active", "reconnecting", "closed"]},
                        "what the bundled page shows")


ft.main(run, limit=110)
