"""Deprecated routes: `deprecated = { sunset, link, since }` in a route script puts Deprecation
(RFC 9745, a structured-field date @<unix seconds>), Sunset (RFC 8594, an HTTP-date) and
Link: <url>; rel="deprecation" on every answer of the route (streams, long-polls, refusals,
publishes), counts each request in /metrics per route, and leaves other routes alone. Bad
values are refused with the script's line."""

import email.utils
import time

import frtest as ft

SUNSET = "Sat, 01 Nov 2031 00:00:00 GMT"
SINCE = "Tue, 01 Jul 2025 00:00:00 GMT"
LINK = "https://example.com/docs/migrate-v2"


def run():
    app = ft.AppDir({
        "app.lua": """
            local freshet = require "freshet"
            local app = freshet.app { heartbeat = 1, poll_timeout = 0.3 }
            app:stream("/v1/rooms/:room", "routes/old.lua")
            app:stream("/v2/rooms/:room", "routes/new.lua")
            app:publish("/v1/rooms/:room/messages", "routes/old_post.lua")
            app:stream("/v1/feed", "routes/feed.lua")
            return app
        """,
        "routes/old.lua": f"""
            local route = {{}}
            route.deprecated = {{ sunset = "{SUNSET}", link = "{LINK}", since = "{SINCE}" }}
            function route.auth(req)
              if req.query.user == nil then return nil, 401, "user required" end
              return {{ id = req.query.user }}
            end
            function route.topics(req, who) return {{ "room:" .. req.params.room }} end
            return route
        """,
        "routes/new.lua": """
            local route = {}
            function route.topics(req, who) return { "room:" .. req.params.room } end
            return route
        """,
        "routes/old_post.lua": f"""
            local route = {{ deprecated = {{ sunset = "{SUNSET}" }} }}
            function route.publish(req, body, who)
              return {{ topic = "room:" .. req.params.room, data = body }}
            end
            return route
        """,
        "routes/feed.lua": """
            return { deprecated = {}, topics = function(req) return { "feed" } end }
        """,
    })
    since_unix = int(email.utils.parsedate_to_datetime(SINCE).timestamp())
    with ft.Server(app) as srv:
        def check_headers(resp, what, link=True):
            ft.check_eq(resp.header("deprecation"), f"@{since_unix}", f"{what}: Deprecation")
            ft.check_eq(resp.header("sunset"), SUNSET, f"{what}: Sunset")
            if link:
                ft.check_eq(resp.header("link"), f'<{LINK}>; rel="deprecation"', f"{what}: Link")

        with ft.subtest("a deprecated stream's head carries Deprecation, Sunset and Link"):
            s = srv.stream("/v1/rooms/a?user=ann")
            check_headers(s.response, "SSE head")
            s.close()

        with ft.subtest("a refusal and a long-poll of that route carry them too"):
            r = srv.get("/v1/rooms/a")
            ft.check_eq(r.status, 401, "refused without a user")
            check_headers(r, "401")
            r = srv.get("/v1/rooms/a?user=ann&transport=poll")
            check_headers(r, f"long-poll {r.status}")

        with ft.subtest("a deprecated publish route's answer carries them"):
            r = srv.post("/v1/rooms/a/messages", b"hello")
            ft.check_eq(r.status, 201, "published")
            ft.check_eq(r.header("sunset"), SUNSET, "Sunset")
            ft.check((r.header("deprecation") or "").startswith("@"), "Deprecation", r.summary())
            ft.check(r.header("link") is None, "no link configured, no Link", r.summary())

        with ft.subtest("without `since` the route is deprecated from when it was loaded"):
            s = srv.stream("/v1/feed")
            dep = s.response.header("deprecation") or ""
            ft.check(dep.startswith("@") and dep[1:].isdigit(), "an sf-date", dep)
            ft.check(abs(int(dep[1:]) - time.time()) < 120, "about now", dep)
            ft.check(s.response.header("sunset") is None, "no sunset configured")
            s.close()

        with ft.subtest("other routes carry none of them"):
            s = srv.stream("/v2/rooms/a")
            for h in ("deprecation", "sunset", "link"):
                ft.check(s.response.header(h) is None, f"no {h} on /v2", s.response.summary())
            s.close()
            r = srv.get("/health")
            ft.check(r.header("deprecation") is None, "no Deprecation on /health")

        with ft.subtest("/metrics counts requests per deprecated route"):
            m = srv.metrics()
            ft.check_eq(ft.metric(m, "freshet_deprecated_requests_total",
                                  route="/v1/rooms/:room"), 3.0, "/v1/rooms/:room")
            ft.check_eq(ft.metric(m, "freshet_deprecated_requests_total",
                                  route="/v1/rooms/:room/messages"), 1.0, "the publish route")
            ft.check_eq(ft.metric(m, "freshet_deprecated_requests_total", route="/v1/feed"),
                        1.0, "/v1/feed")
            ft.check(not [k for k in m if k[0] == "freshet_deprecated_requests_total"
                          and dict(k[1]).get("route", "").startswith("/v2")],
                     "/v2 is not counted")

    with ft.subtest("bad `deprecated` values are refused with the script's line"):
        for value, words in (('{ sunset = "tomorrow" }', "deprecated.sunset must be an HTTP-date"),
                             ('{ link = "a\\r\\nX: y" }', "deprecated.link must be"),
                             ('{ sunset = 3 }', "deprecated.sunset must be"),
                             ('{ when = "x" }', "unknown key 'when'"),
                             ('"soon"', "deprecated must be a table")):
            bad = ft.AppDir({
                "app.lua": """
                    local freshet = require "freshet"
                    local app = freshet.app { }
                    app:stream("/x", "routes/x.lua")
                    return app
                """,
                "routes/x.lua": f"""
                    local route = {{ topics = function() return {{ "x" }} end }}
                    route.deprecated = {value}
                    return route
                """,
            })
            r = ft.run_cli([bad.app, "--check"])
            err = r.stderr.decode(errors="replace")
            ft.check(r.returncode != 0, f"--check refuses deprecated = {value}", err)
            ft.check("x.lua:2:" in err and words in err, f"the message for {value}", err)


ft.main(run, limit=60)
