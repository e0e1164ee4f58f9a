"""Static routes: files under the dir with their type, traversal refused, missing files 404."""

import frtest as ft

INDEX = "<!doctype html>\n<html><head><title>freshet static</title></head><body>hi ✓</body></html>\n"
SECRET = "TOP-SECRET-NOT-SERVED\n"


def run():
    app = ft.AppDir({
        "app.lua": """
            local freshet = require "freshet"
            local app = freshet.app { }
            app:static("/", "public")
            return app
        """,
        "public/index.html": INDEX.encode(),
        "public/css/site.css": "body { color: #123; }\n",
        "secret.txt": SECRET,
    })
    with ft.Server(app) as srv:
        port = srv.port

        with ft.subtest("a page is served with text/html and its exact bytes"):
            for path in ("/index.html", "/"):
                r = srv.get(path)
                ft.check_eq(r.status, 200, f"GET {path} status")
                ctype = (r.header("content-type") or "").lower()
                ft.check(ctype.split(";")[0].strip() == "text/html", f"GET {path} Content-Type",
                         r.summary())
                ft.check_eq(r.body, INDEX.encode(), f"GET {path} body")

        with ft.subtest("a file in a subdirectory"):
            r = srv.get("/css/site.css")
            ft.check_eq(r.status, 200, "GET /css/site.css status")
            ft.check_eq(r.body, b"body { color: #123; }\n", "body")

        with ft.subtest("'..' raw or percent-encoded -> 400, never the file"):
            for path in ("/../secret.txt", "/css/../../secret.txt", "/%2e%2e/secret.txt",
                         "/%2E%2E/secret.txt", "/css/%2e%2e/%2e%2e/secret.txt", "/.%2e/secret.txt",
                         "/%2e./secret.txt", "/css/..", "/.."):
                r = srv.get(path)
                ft.check(SECRET.encode() not in r.body, f"GET {path} served the file outside",
                         r.summary())
                r.check_error(400, f"GET {path}")

        with ft.subtest("missing file -> 404"):
            for path in ("/nope.html", "/css/nope.css", "/deep/er/nope"):
                srv.get(path).check_error(404, f"GET {path}")

        with ft.subtest("still serving after the bad requests"):
            ft.check_eq(srv.get("/index.html").status, 200, "GET /index.html")


ft.main(run, limit=40)
