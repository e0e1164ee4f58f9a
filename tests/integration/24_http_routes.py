"""app:http routes: handle(req, body, who) answers status, body[, headers]; a table body is JSON;
auth, tier and its rate limit apply; waiting functions work; freshet.publish works; a Lua error
or a bad return is a 500 with a log line naming the script's line or the mistake."""

import json
import time

import frtest as ft

LOGIN = """
    local freshet = require "freshet"
    local route = { body = "json" }
    function route.handle(req, body, who)
      if type(body) ~= "table" or type(body.name) ~= "string" or body.name == "" then
        return 400, { error = "name required" }
      end
      freshet.sleep(20)                      -- a waiting function, as a backend call would be
      local id = freshet.publish("room:lobby", { joined = body.name })
      return 200, { token = "t-" .. body.name, joined_id = id,
                    position = freshet.position("room:lobby") },
             { ["Set-Cookie"] = "session=t-" .. body.name .. "; HttpOnly", ["X-Seen"] = 1 }
    end
    return route
"""

WHO = """
    local route = {}
    function route.auth(req)
      if req.headers.authorization ~= "Bearer ok" then return nil, 401, "who are you?" end
      return { id = "ann" }
    end
    function route.tier(req, who) return "small" end
    function route.handle(req, body, who)
      return 200, "hello " .. who.id .. " " .. req.params.name, { ["Content-Type"] = "text/x-hi" }
    end
    return route
"""

BROKEN = """
    local route = {}
    function route.handle(req, body, who)
      if req.query.kind == "error" then
        error("boom")
      elseif req.query.kind == "status" then
        return "200", "x"
      elseif req.query.kind == "body" then
        return 200, function() end
      elseif req.query.kind == "header" then
        return 200, "x", { ["X-Bad"] = "a\\r\\nInjected: 1" }
      elseif req.query.kind == "length" then
        return 200, "x", { ["Content-Length"] = "99" }
      end
      return 204
    end
    return route
"""

ROUTES = """
    app:http("POST", "/login", "routes/login.lua")
    app:http("GET", "/hello/:name", "routes/who.lua")
    app:http("DELETE", "/hello/:name", "routes/who.lua")
    app:http("GET", "/broken", "routes/broken.lua")
"""


def run():
    app = ft.pubsub_app(settings="""
        tiers = { small = { rate = 1, burst = 3 } },
    """, routes=ROUTES, files={"routes/login.lua": LOGIN, "routes/who.lua": WHO,
                               "routes/broken.lua": BROKEN})
    with ft.Server(app) as srv:
        with ft.subtest("a login: JSON in, JSON out, headers, a publish and a position"):
            with ft.open_stream(srv.port, "/sub/room:lobby") as s:
                r = srv.post("/login", json.dumps({"name": "ann"}),
                             headers={"Content-Type": "application/json"})
                ft.check_eq(r.status, 200, "login status")
                ft.check_eq(r.header("content-type"), "application/json", "content type")
                body = r.json()
                ft.check_eq(body["token"], "t-ann", "token")
                ft.check_eq(body["position"], body["joined_id"], "the position after the publish")
                ft.check_eq(r.header("set-cookie"), "session=t-ann; HttpOnly", "Set-Cookie")
                ft.check_eq(r.header("x-seen"), "1", "a number header value")
                e = s.next_event()
                ft.check_eq((e.id, json.loads(e.data)), (body["joined_id"], {"joined": "ann"}),
                            "the event the login published")
            r = srv.post("/login", json.dumps({"name": ""}), headers={"Content-Type": "application/json"})
            ft.check_eq((r.status, r.json()), (400, {"error": "name required"}), "a refusal")
            srv.post("/login", "{not json").check_error(400, "a body that is not JSON")

        with ft.subtest("auth and tier apply: 401, then 429 past the tier's burst"):
            srv.get("/hello/x").check_error(401, "no credentials")
            ok = {"Authorization": "Bearer ok"}
            r = srv.get("/hello/bob", headers=ok)
            ft.check_eq((r.status, r.text, r.header("content-type")),
                        (200, "hello ann bob", "text/x-hi"), "an authorized GET")
            r = ft.request(srv.port, "DELETE", "/hello/bob", headers=ok)
            ft.check_eq(r.status, 200, "DELETE on the same path")
            r = ft.request(srv.port, "PUT", "/hello/bob", headers=ok)
            r.check_error(405, "PUT on an http route")
            allow = [m.strip() for m in r.header("allow").split(",")]
            ft.check(set(allow) >= {"GET", "HEAD", "DELETE", "OPTIONS"}, "Allow", r.summary())
            statuses = [srv.get("/hello/bob", headers=ok).status for _ in range(3)]
            ft.check(429 in statuses, "the tier's burst of 3 is not enforced", statuses)

        with ft.subtest("mistakes: a Lua error and bad returns are 500 with a clear log line"):
            start = srv.log_size()
            srv.get("/broken?kind=error").check_error(500, "a Lua error")
            srv.wait_log(r"lua error in .*broken\.lua:4 \(handle\).*boom", start=start)
            for kind, words in (("status", "status"), ("body", "body must be"),
                                ("header", "CR, LF"), ("length", "sets itself")):
                start = srv.log_size()
                srv.get(f"/broken?kind={kind}").check_error(500, f"bad return: {kind}")
                srv.wait_log(r"route /broken: handle must return status, body\[, headers\]: .*" +
                             words, start=start)
            r = srv.get("/broken")
            ft.check_eq((r.status, r.body), (204, b""), "a 204 without a body")


ft.main(run)
